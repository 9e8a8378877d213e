"""Drawing a clip's flows: ``flow.mp4`` (colour wheel with a legend) and ``panel.mp4`` (each frame beside
its flow; with a semantic method also the segmentation and the baseline flow), all under one normaliser.

:func:`render_clip` walks the frames once and asks a callback for each pair's flow, so the same loop
draws from kept flows, from flows computed again, or from flows computed right then (a single-pass run
whose normaliser is given). Both videos are previews: a frame too large for H.264 level 6.2 is drawn
smaller (:func:`~semflow.io.video.video_size`); the kept flows have the frames' size.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from semflow.class_legend import (
    add_class_legend,
    class_key_column_width,
    class_key_fits,
    class_key_strip,
    class_key_strip_height,
)
from semflow.io.video import VideoWriter, resize_to, video_fits, video_scale, video_size
from semflow.progress import progress_bar
from semflow.timing import StageTimer
from semflow.viz import TILE_GAP, add_legend, enlarged_in_blocks, flow_to_color, label_image, tile

if TYPE_CHECKING:
    from semflow.segmentation.labels import LabelSet

PairFlows = tuple[np.ndarray, np.ndarray | None, np.ndarray | None]
"""(flow (H, W, 2) float32, segmentation RGB (H, W, 3) uint8 or None, baseline flow or None) of a pair."""
FlowsFor = Callable[[int, np.ndarray, np.ndarray], PairFlows]
"""``flows_for(index, frame_index, frame_index_plus_1)`` -> the pair's :data:`PairFlows`."""
OnPair = Callable[[int, np.ndarray, np.ndarray, PairFlows], None]
"""``on_pair(index, frame_index, frame_index_plus_1, flows)``: called for each pair in order (metrics)."""


def draw_pair(frame: np.ndarray, index: int, flows: PairFlows, max_flow: float,
              method_name: str, label_set: LabelSet | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The frames of pair ``index`` for flow.mp4 and panel.mp4 (uint8 RGB), under ``max_flow`` px; the
    segmentation tile gets ``label_set``'s colour key (class names, palette) when given: in its lower part
    where it fits there, else in a strip below the panel (small frames: the key would hide the tile).
    Either frame too large for a video (:func:`~semflow.io.video.video_fits`) is drawn smaller
    (:func:`panel_tile_size`, :func:`~semflow.io.video.video_size`), its legends and titles drawn at that
    size."""
    flow, seg, base = flows
    names, colors = class_key(label_set) if seg is not None and label_set is not None else ([], None)
    size = panel_tile_size(*frame.shape[:2], 2 + (seg is not None) + (base is not None), tuple(names))
    shrunk = size != frame.shape[:2]

    def fit(image: np.ndarray) -> np.ndarray:  # a tile's image at the panel's tile size
        return resize_to(image, size) if shrunk else image

    full = flow_to_color(flow, max_flow)
    color = add_legend(resize_to(full, video_size(*full.shape[:2])), max_flow)
    tiles = [label_image(fit(frame), f"frame {index}")]
    strip = None
    if seg is not None:
        seg = fit(seg)
        if names:
            if class_key_fits(*seg.shape[:2], names):
                seg = add_class_legend(seg, names, colors)
            else:
                strip = (names, colors)
        tiles.append(label_image(seg, "segmentation"))
    if base is not None:
        tiles.append(label_image(add_legend(fit(flow_to_color(base, max_flow)), max_flow), "baseline"))
    tiles.append(label_image(add_legend(fit(full), max_flow) if shrunk else color, method_name))
    panel = tile(tiles, columns=2 if len(tiles) == 4 else len(tiles))
    if strip is not None:
        key = class_key_strip(panel.shape[1], *strip)
        panel = np.concatenate([panel, np.full((TILE_GAP, panel.shape[1], 3), 255, np.uint8), key])
    return color, panel


@functools.lru_cache(maxsize=16)
def panel_tile_size(height: int, width: int, tiles: int, names: tuple[str, ...] = ()) -> tuple[int, int]:
    """(H, W) of each of the ``tiles`` tiles of :func:`draw_pair`'s panel of a ``height`` x ``width``
    frame: the frame's own size, or the largest of its aspect at which the panel, with the strip of the
    class key of ``names`` below it where the key does not fit the tile, fits a video
    (:func:`~semflow.io.video.video_fits`)."""
    columns = 2 if tiles == 4 else tiles
    rows = -(-tiles // columns)
    scale = 1.0
    while True:
        h, w = max(1, int(height * scale)), max(1, int(width * scale))
        panel = (rows * h + (rows - 1) * TILE_GAP, columns * w + (columns - 1) * TILE_GAP)
        if names and not class_key_fits(h, w, names):
            panel = (panel[0] + TILE_GAP + class_key_strip_height(panel[1], names), panel[1])
        if video_fits(*panel) or h + w == 2:
            return h, w
        # (the gaps, the strip and rounding do not shrink with the tiles: about a pixel less until it fits)
        scale *= min(video_scale(*panel), 1 - 1 / max(panel))


def class_key(label_set: LabelSet) -> tuple[list[str], np.ndarray]:
    """The panel's colour key of ``label_set`` (the set the segmentation tile is coloured in): its class names
    in id order, each in the colour its ``colorize`` gives the tile; void (black there) is left out."""
    ids = np.array([i for i in range(min(len(label_set.class_names), 256)) if i != label_set.void_id], np.uint8)
    return [label_set.class_names[i] for i in ids], label_set.colorize(ids[None])[0]


KEY_MIN_WIDTH = 240
"""An image narrower than this (px) whose class key does not fit in it is drawn enlarged for the key
(:func:`with_class_key`): at 48 px the key's names were cut, in a strip four times the image's height."""
KEY_MAX_SIDE = 1920
"""The longest side (px) :func:`with_class_key` enlarges an image to."""


def with_class_key(image: np.ndarray, label_set: LabelSet) -> np.ndarray:
    """``image`` (uint8 RGB, e.g. a segmentation overlay in ``label_set``'s colours) with ``label_set``'s
    colour key: in its lower left corner where it fits there, else in a strip below it (the image then
    grows by the strip's height and a white gap). An image narrower than :data:`KEY_MIN_WIDTH` whose key
    does not fit is first enlarged by the smallest whole factor to that width (each pixel a square block;
    its longer side at most :data:`KEY_MAX_SIDE`); one still that narrow (a 1000x50 frame) and as tall as
    the key in one column gets that column beside it, on its right, instead of a strip whose names it cuts."""
    names, colors = class_key(label_set)
    h, w = image.shape[:2]
    if w < KEY_MIN_WIDTH and not class_key_fits(h, w, names):
        image = enlarged_in_blocks(image, w, KEY_MIN_WIDTH, KEY_MAX_SIDE)
    if class_key_fits(*image.shape[:2], names):
        return add_class_legend(image, names, colors)
    h, w = image.shape[:2]
    if w < KEY_MIN_WIDTH and h >= class_key_strip_height(class_key_column_width(names), names):
        # (a tall narrow image, which enlarging would make too long: its key in one column beside it)
        column = class_key_strip(class_key_column_width(names), names, colors)
        column = np.concatenate([column, np.full((h - column.shape[0], column.shape[1], 3), 255, np.uint8)])
        return np.concatenate([image, np.full((h, TILE_GAP, 3), 255, np.uint8), column], axis=1)
    key = class_key_strip(image.shape[1], names, colors)
    return np.concatenate([image, np.full((TILE_GAP, image.shape[1], 3), 255, np.uint8), key])


def tile_colours(label_set: LabelSet) -> np.ndarray:
    """Every colour a segmentation tile in ``label_set`` can hold (K, 3) uint8: its classes' colours, and black
    for void and unknown ids; a tile decoded from the run's intermediate is snapped back to these."""
    return np.unique(label_set.colorize(np.arange(256, dtype=np.uint8)[None])[0], axis=0)


def _pairs_one_ahead(frames: Iterable[np.ndarray], pairs: int | None, pool: ThreadPoolExecutor, flows_for: FlowsFor,
                     timer: StageTimer) -> Iterator[tuple[int, np.ndarray, np.ndarray, Future]]:
    """Pairs ``0 .. pairs - 1`` of ``frames`` (all when ``pairs`` is None) as (index, frame, next frame, future
    of its flows), each yielded only once the next pair's flows are asked of ``pool``: they are computed while
    this pair is drawn. Reading a frame counts as ``read``."""
    previous: np.ndarray | None = None
    pending: tuple[int, np.ndarray, np.ndarray, Future] | None = None
    for number, frame in enumerate(frames):
        timer.lap("read")
        if previous is not None:
            future = pool.submit(flows_for, number - 1, previous, frame)
            if pending is not None:
                yield pending
            pending = (number - 1, previous, frame, future)
        if pairs is not None and number >= pairs:
            break
        previous = frame
    if pending is not None:
        yield pending


def render_clip(frames: Iterable[np.ndarray], pairs: int | None, out_dir: Path, fps: float, max_flow: float,
                method_name: str, flows_for: FlowsFor, *, timer: StageTimer | None = None,
                progress: bool | None = None, total: int | None = None, description: str = "video",
                label_set: LabelSet | None = None, on_pair: OnPair | None = None) -> int:
    """Encode ``out_dir/flow.mp4`` and ``out_dir/panel.mp4`` for pairs ``0 .. pairs - 1`` (all pairs of
    ``frames`` when ``pairs`` is None; ``total`` is then the progress bar's estimate). Returns the number
    of pairs drawn.

    ``frames`` yields the clip's frames from frame 0; ``flows_for`` gives each pair's flows. It runs in a
    second thread, one pair ahead, so that computing (or loading) the next pair's flow overlaps drawing and
    encoding this one; pairs are still asked for and drawn in order. Time goes to ``timer`` as the main
    thread spends it: ``read`` (frames), ``flow`` (waiting for a pair's flows), ``draw`` (colours, legend,
    panel) and ``write`` (encoding). Both videos appear under their names only when complete.
    ``label_set``: the segmentation's classes for the panel's colour key; ``on_pair``: called with each
    pair's frames and flows, in order (the temporal metrics), in a third thread while the pair is drawn
    (one pair at a time: the next call waits for it; its time counts as ``draw``).
    """
    timer = timer or StageTimer()
    drawn = 0
    measured: Future | None = None
    with ThreadPoolExecutor(1, thread_name_prefix="semflow-flow") as pool, \
            ThreadPoolExecutor(1, thread_name_prefix="semflow-metrics") as metrics, \
            VideoWriter(out_dir / "flow.mp4", fps) as flow_video, \
            VideoWriter(out_dir / "panel.mp4", fps) as panel_video, \
            progress_bar(pairs if pairs is not None else total, description, enabled=progress) as bar:

        def emit(index: int, frame: np.ndarray, following: np.ndarray, future: Future) -> None:
            """Wait for pair ``index``'s flows, hand them to ``on_pair``, draw the pair and write its frames."""
            nonlocal measured
            flows = future.result()
            timer.lap("flow")
            if on_pair is not None:
                if measured is not None:
                    measured.result()  # the previous pair's (and its error, if any)
                measured = metrics.submit(on_pair, index, frame, following, flows)
            color, panel = draw_pair(frame, index, flows, max_flow, method_name, label_set)
            timer.lap("draw")
            flow_video.write(color)
            panel_video.write(panel)
            timer.lap("write")
            bar.advance()

        for pair in _pairs_one_ahead(frames, pairs, pool, flows_for, timer):
            emit(*pair)
            drawn += 1
        if measured is not None:
            measured.result()
    timer.lap("write")  # the encoders' last frames
    return drawn
