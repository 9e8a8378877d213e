"""Flow for a whole video, streamed: ``semflow run``.

Two passes, so that every frame of the output videos is drawn under one shared colour normaliser:

1. Read frames one at a time; for each consecutive pair compute the flow and write it to disk as soon
   as it is made (``DIR/flo/NNNNNN.flo`` with ``save_flo``, else a work folder). A pair whose flow is
   already on disk is skipped when resuming, so an interrupted run loses at most the pair in flight.
2. Choose the normaliser from all pairs' magnitudes, read the frames again and encode ``flow.mp4``
   (colour wheel with a legend) and ``panel.mp4`` (frame beside its flow; with a semantic method also
   the segmentation and the baseline flow, all under the same normaliser). Then write ``summary.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from semflow.baseline.base import FlowMethod
from semflow.errors import InputError
from semflow.io.atomic import atomic_path, write_text_atomic
from semflow.io.flow import read_flo, write_flo
from semflow.io.images import read_image, write_image
from semflow.io.video import FrameSource, VideoWriter
from semflow.methods import DEFAULT_RUN_METHOD, get_method
from semflow.metrics import flow_stats
from semflow.options import options_dict
from semflow.progress import progress_bar
from semflow.video_run import VideoStateStore, state_before
from semflow.viz import add_legend, flow_to_color, label_image, max_flow_of, tile

WORK_DIR = ".semflow-work"


@dataclass
class RunOptions:
    """What ``run_video`` does; mirrors ``semflow run``'s options."""

    method: str = DEFAULT_RUN_METHOD
    method_options: dict[str, Any] = field(default_factory=dict)
    save_flo: bool = False
    max_frames: int | None = None
    max_side: int | None = None
    resume: bool = False
    max_flow: float | None = None
    progress: bool | None = None
    pairwise: bool = False
    """Compute every pair on its own (pair mode); by default a video state is carried from pair to pair."""

    def fingerprint(self, video: Path, method: FlowMethod | None = None) -> dict[str, Any]:
        """The settings a resumed run must share with the run it continues: with the built ``method``,
        its name and every option it was built with (defaults included), else the options given."""
        given = {k: v for k, v in self.method_options.items() if v is not None}
        if method is not None and method.options is not None:
            given = options_dict(method.options)
        return {
            "video": str(video.resolve()), "method": method.name if method is not None else self.method,
            "method_options": dict(sorted(given.items())),
            "max_side": self.max_side, "save_flo": self.save_flo, "pairwise": self.pairwise,
        }


def _pair_name(index: int) -> str:
    return f"{index:06d}"


class _PairStore:
    """Where pass 1 keeps each pair's flow (and panel extras) until pass 2 draws them."""

    def __init__(self, out_dir: Path, save_flo: bool) -> None:
        self.work = out_dir / WORK_DIR
        self.save_flo = save_flo
        self.flo_dir = out_dir / "flo"

    def flow_path(self, index: int) -> Path:
        """``DIR/flo/NNNNNN.flo`` when the user keeps flows, else half-precision ``.npy`` in the work folder."""
        if self.save_flo:
            return self.flo_dir / f"{_pair_name(index)}.flo"
        return self.extra_path(index, "flow", ".npy")

    def extra_path(self, index: int, key: str, ext: str) -> Path:
        return self.work / key / f"{_pair_name(index)}{ext}"

    def has(self, index: int) -> bool:
        return self.flow_path(index).exists()

    def save(self, index: int, flow: np.ndarray, extras: dict[str, np.ndarray], seconds: float) -> None:
        if "segmentation_rgb" in extras:
            write_image(self.extra_path(index, "segmentation", ".png"), extras["segmentation_rgb"])
        if "baseline_flow" in extras:
            write_flo(self.extra_path(index, "baseline", ".flo"), extras["baseline_flow"])
        write_text_atomic(self.extra_path(index, "seconds", ".txt"), f"{seconds:.6f}")
        path = self.flow_path(index)  # written last: its presence marks the pair as done
        if self.save_flo:
            write_flo(path, flow)
        else:
            with atomic_path(path) as tmp:
                np.save(tmp, flow.astype(np.float16))

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        path = self.flow_path(index)
        flow = read_flo(path)[0] if self.save_flo else np.load(path).astype(np.float32)
        seg_path = self.extra_path(index, "segmentation", ".png")
        base_path = self.extra_path(index, "baseline", ".flo")
        seg = read_image(seg_path) if seg_path.exists() else None
        base = read_flo(base_path)[0] if base_path.exists() else None
        return flow, seg, base

    def seconds(self, index: int) -> float | None:
        path = self.extra_path(index, "seconds", ".txt")
        return float(path.read_text()) if path.exists() else None


def _remove_pair_flos(flo_dir: Path) -> None:
    """Delete the ``NNNNNN.flo`` files an earlier run wrote; anything else the user keeps there stays."""
    if not flo_dir.is_dir():
        return
    for path in flo_dir.iterdir():
        if path.suffix == ".flo" and len(path.stem) == 6 and path.stem.isdecimal() and path.is_file():
            path.unlink()
    with contextlib.suppress(OSError):
        flo_dir.rmdir()  # only if now empty


def _check_resume(out_dir: Path, fingerprint: dict[str, Any], resume: bool) -> None:
    state_path = out_dir / WORK_DIR / "state.json"
    if resume and state_path.exists():
        previous = json.loads(state_path.read_text())
        if previous != fingerprint:
            changed = sorted(k for k in fingerprint if previous.get(k) != fingerprint[k])
            raise InputError(f"{out_dir}: cannot resume, the earlier run used other settings ({', '.join(changed)})")
    elif not resume:  # a fresh run: forget what an earlier run left
        shutil.rmtree(out_dir / WORK_DIR, ignore_errors=True)
        _remove_pair_flos(out_dir / "flo")
    write_text_atomic(state_path, json.dumps(fingerprint, indent=2))


def run_video(video: str | os.PathLike, out_dir: str | os.PathLike, options: RunOptions | None = None,
              *, method: FlowMethod | None = None, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Compute flow for every consecutive frame pair of ``video`` and write the outputs to ``out_dir``.

    ``video`` is a video file or a folder of images. Returns the summary also written to
    ``out_dir/summary.json``.
    """
    options = options or RunOptions()
    video, out_dir = Path(video), Path(out_dir)
    source = FrameSource(video, max_side=options.max_side, max_frames=options.max_frames)
    if 0 < len(source) < 2 or (options.max_frames is not None and options.max_frames < 2):
        raise InputError(f"{video}: need at least 2 frames to compute flow, got {min(len(source), options.max_frames or 2**31)}")
    method = method or get_method(options.method, **options.method_options)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_resume(out_dir, options.fingerprint(video, method), options.resume)
    store = _PairStore(out_dir, options.save_flo)
    states = None if options.pairwise else VideoStateStore(store.work)  # video mode: carried state
    state = None

    # Pass 1: flow for each pair, written as soon as it is made.
    pairs, resumed, seconds, max_flows, stats = 0, 0, [], [], []
    previous: np.ndarray | None = None
    size: tuple[int, int] | None = None
    with progress_bar(len(source) - 1 if len(source) > 1 else None, "flow", enabled=options.progress) as bar:
        for frame in source:
            if size is None:
                size = frame.shape[:2]
            if previous is not None:
                index = pairs
                if frame.shape != previous.shape:
                    raise InputError(
                        f"{video}: frame {index + 1} is {frame.shape[1]}x{frame.shape[0]}, the frames before it"
                        f" {previous.shape[1]}x{previous.shape[0]}"
                    )
                if options.resume and store.has(index) and state is None:
                    resumed += 1
                    known = store.seconds(index)
                    if known is not None:
                        seconds.append(known)
                    flow, _, extra_base = store.load(index)
                    if flow.shape[:2] != frame.shape[:2]:
                        raise InputError(f"{out_dir}: stored flow {index} does not fit the video frames")
                else:
                    if states is not None and state is None:
                        state = state_before(index, method, states, source)  # a warm-up when resuming
                    if hasattr(method, "seek"):  # methods that read given per-frame masks
                        method.seek(index)
                    start = time.perf_counter()
                    result = method.estimate(previous, frame, state=state)
                    elapsed = time.perf_counter() - start
                    seconds.append(elapsed)
                    store.save(index, result.flow, result.extras, elapsed)
                    if states is not None:
                        state = result.state
                        states.save(index, state)
                    flow = result.flow
                    extra_base = result.extras.get("baseline_flow")
                if extra_base is not None:  # the panel draws the baseline under the same normaliser
                    max_flows.append(max_flow_of(extra_base))
                max_flows.append(max_flow_of(flow))
                stats.append(flow_stats(flow))
                pairs += 1
                bar.advance()
            previous = frame
    if pairs == 0:
        raise InputError(f"{video}: need at least 2 frames to compute flow, got {1 if previous is not None else 0}")

    # Pass 2: draw every pair under one normaliser.
    max_flow = options.max_flow or max(max_flows)
    _render(source, store, pairs, out_dir, max_flow, options.progress, method.name)

    summary = {
        "method": method.name,
        "mode": "pairwise" if options.pairwise else "video",
        "video": str(video),
        "frames": pairs + 1,
        "pairs": pairs,
        "resolution": [int(size[1]), int(size[0])],
        "fps": source.fps,
        "seconds_per_pair": {
            "mean": statistics.fmean(seconds) if seconds else None,
            "median": statistics.median(seconds) if seconds else None,
            "total": float(sum(seconds)),
        },
        "resumed_pairs": resumed,
        "max_flow_px": max_flow,
        "flow_magnitude_px": {
            "mean": statistics.fmean(s["mean"] for s in stats),
            "p95_mean": statistics.fmean(s["p95"] for s in stats),
            "max": max(s["max"] for s in stats),
        },
        "outputs": {
            "flow_video": "flow.mp4", "panel_video": "panel.mp4",
            "flo_dir": "flo" if options.save_flo else None,
        },
    }
    write_text_atomic(out_dir / "summary.json", json.dumps(summary, indent=2))
    shutil.rmtree(store.work, ignore_errors=True)
    if log:
        log(f"{pairs} pairs -> {out_dir}")
    return summary


def _render(source: FrameSource, store: _PairStore, pairs: int, out_dir: Path, max_flow: float,
            progress: bool | None, method_name: str) -> None:
    """Pass 2: encode flow.mp4 and panel.mp4."""
    with VideoWriter(out_dir / "flow.mp4", source.fps) as flow_video, \
            VideoWriter(out_dir / "panel.mp4", source.fps) as panel_video, \
            progress_bar(pairs, "video", enabled=progress) as bar:
        for index, frame in enumerate(source):
            if index >= pairs:
                break
            flow, seg, base = store.load(index)
            color = add_legend(flow_to_color(flow, max_flow), max_flow)
            flow_video.write(color)
            tiles = [label_image(frame, f"frame {index}")]
            if seg is not None:
                tiles.append(label_image(seg, "segmentation"))
            if base is not None:
                tiles.append(label_image(add_legend(flow_to_color(base, max_flow), max_flow), "baseline"))
            tiles.append(label_image(color, method_name))
            panel_video.write(tile(tiles, columns=2 if len(tiles) == 4 else len(tiles)))
            bar.advance()

