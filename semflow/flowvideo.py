"""A compact, re-colourable store of a long clip's flows: short H.264 videos that hold the flows
without a colour normaliser, so that pass 2 of ``semflow run`` draws them under the clip's normaliser
without computing them again.

Each pair is one frame of a segment video (libx264, 10-bit 4:4:4 planes given to the encoder as they
are: no colour conversion). The flow F (H, W, 2) is coded free of any normaliser, continuous
everywhere (also where the direction is undefined, at zero motion):

- ``r = log1p(|F| / S) / log1p(M / S)`` in [0, 1], ``S = 1`` px, ``M = 1024`` px (larger is clipped):
  the log-compressed magnitude, 0.68 % of (magnitude + 1 px) per code step;
- plane Y: ``r`` (1023 levels; the encoder keeps its luma best), planes U, V: ``512 + 511 r u/|F|`` and
  ``512 + 511 r v/|F|`` (the direction, scaled by ``r`` so that it fades out continuously at zero).

Decoding takes the magnitude from Y and the direction from U, V. A semantic method's baseline flow is
a second tile below the flow, coded the same way, and its segmentation (RGB) a third tile, one colour
channel a plane; decoded colours are snapped to the nearest colour of the segmenter's palette.

Size: the bit rate is the byte budget per pair (capped at ``MAX_BITS_PER_PIXEL``) times the nominal
frame rate ``FPS``; the encoder's rate control (VBV: ``maxrate``, ``bufsize``) aims a segment of ``n``
pairs at ``0.8 n per_pair`` bytes and at most ``1.5 n per_pair``. :class:`~semflow.runstore.RunStore`
opens a segment only when that worst case still fits the budget (shortened, down to
``MIN_SEGMENT_PAIRS``, to fit what is left), ends it early when it outgrows its share, and deletes a
completed segment that would take the finished ones over the budget (content the codec cannot shrink):
the finished segments never take more than the budget. When the budget gives under
``MIN_BITS_PER_PIXEL``, the tiles are coded at half size (or less) and resized back when decoded. A
segment appears under its final name ``FIRST-COUNT-LAYOUT-WxH-wxh.mkv`` only once it is complete: an
interrupted run keeps its completed segments.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Generator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np

from semflow.io.atomic import move_into_place
from semflow.io.ffmpeg import FFmpegEncoder
from semflow.warp import length

SCALE_PX = 1.0
MAX_PX = 1024.0
LEVELS = 1023
FPS = 25
"""Nominal frame rate of a segment video (one frame a pair): bit rate = bytes per pair * 8 * FPS."""
SEGMENT_PAIRS = 50
"""Pairs per segment: what an interrupted run loses at most, and the encoder's restart granularity."""
TARGET = 0.8
"""The encoder's average rate as a share of the budget per pair (its peak rate is the whole share)."""
X264_THREADS = 1  # (with frame threads x264's rate control coded the same pairs differently run to run)
_LOG_RANGE = float(np.log1p(MAX_PX / SCALE_PX))
MIN_SEGMENT_PAIRS = 4
"""A segment shorter than this is not started (the budget is as good as spent)."""


def segment_worst_bytes(pairs: int, per_pair: float) -> float:
    """Most bytes a segment of ``pairs`` pairs may take: the rate control's peak rate (``per_pair`` a
    pair) over the segment plus its buffer (VBV), half a segment's worth."""
    return 1.5 * pairs * per_pair


def segment_pairs(room: float, per_pair: float) -> int:
    """How many pairs the next segment may take when ``room`` bytes of the budget are left: at most
    ``SEGMENT_PAIRS``, so that its worst case fits; 0 when that is under ``MIN_SEGMENT_PAIRS``."""
    pairs = min(SEGMENT_PAIRS, int(room // (1.5 * per_pair)) if per_pair > 0 else 0)
    return pairs if pairs >= MIN_SEGMENT_PAIRS else 0


def encode_flow(flow: np.ndarray) -> np.ndarray:
    """Flow (H, W, 2) float32 px -> (3, H, W) uint16 planes (Y, U, V) of 10-bit codes."""
    u, v = np.ascontiguousarray(flow[..., 0], np.float32), np.ascontiguousarray(flow[..., 1], np.float32)
    mag = length(u, v)
    r = np.log1p(mag * np.float32(1 / SCALE_PX))
    r *= np.float32(1 / _LOG_RANGE)
    np.minimum(r, 1, out=r)
    half = LEVELS // 2  # 511
    k = r * np.float32(half) / np.maximum(mag, np.float32(1e-30))  # the direction scaled by r: 0 at |F| = 0
    planes = np.empty((3, *mag.shape), np.float32)
    np.multiply(r, np.float32(LEVELS), out=planes[0])
    np.multiply(u, k, out=planes[1])
    np.multiply(v, k, out=planes[2])
    planes[1:] += np.float32(half + 1)
    planes += np.float32(0.5)  # round half up: the codes are >= 0
    np.clip(planes, 0, LEVELS + 0.5, out=planes)
    return planes.astype(np.uint16)


def decode_flow(planes: np.ndarray) -> np.ndarray:
    """(3, H, W) codes from :func:`encode_flow` (after the codec) -> flow (H, W, 2) float32 px."""
    p = planes.astype(np.float32)
    mag = np.expm1(p[0] * np.float32(_LOG_RANGE / LEVELS)) * np.float32(SCALE_PX)
    du, dv = p[1] - np.float32(LEVELS // 2 + 1), p[2] - np.float32(LEVELS // 2 + 1)
    scale = mag / np.maximum(length(du, dv), np.float32(1e-30))
    return cv2.merge([du * scale, dv * scale])


CELL = 8
"""Side of the colour cubes :func:`snap_colours` looks up (8 x 8 x 8 RGB values each)."""


def nearest_colour_index(rgb: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """For each colour of ``rgb`` (N, 3) the index of the nearest colour of ``palette`` (K, 3) (Euclidean,
    in RGB; the first of equally near ones), by K passes over the colours (no (N, K) array in memory)."""
    pal = np.asarray(palette, np.int32).reshape(-1, 3)
    flat = np.asarray(rgb).reshape(-1, 3).astype(np.int32)
    best = np.zeros(len(flat), np.int64)
    best_d = np.full(len(flat), np.iinfo(np.int64).max)
    for k, colour in enumerate(pal):
        d = ((flat - colour) ** 2).sum(axis=1)
        closer = d < best_d
        best[closer], best_d[closer] = k, d[closer]
    return best


@functools.lru_cache(maxsize=4)
def _cube_table(palette_bytes: bytes) -> np.ndarray:
    """(32 ** 3,) int64: for each cube of ``CELL`` ** 3 colours, the index of the palette colour nearest to
    all of them, or -1 when that differs within the cube. The colours nearest to one palette colour (the
    first of equally near ones) form a convex set, so a cube whose 8 corners share it holds no other."""
    palette = np.frombuffer(palette_bytes, np.int32).reshape(-1, 3)
    cubes = 256 // CELL
    ends = np.stack([np.arange(cubes) * CELL, np.arange(cubes) * CELL + CELL - 1], axis=1).ravel()  # 0, 7, 8, 15, ...
    corners = np.stack(np.meshgrid(ends, ends, ends, indexing="ij"), axis=-1)
    nearest = nearest_colour_index(corners, palette).reshape(cubes, 2, cubes, 2, cubes, 2)
    lowest, highest = nearest.min(axis=(1, 3, 5)), nearest.max(axis=(1, 3, 5))
    return np.where(lowest == highest, lowest, -1).ravel()


def snap_colours(rgb: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Each pixel of ``rgb`` (H, W, 3) uint8 -> the nearest colour of ``palette`` (K, 3) (Euclidean, in RGB;
    the first of equally near ones). Exactly :func:`nearest_colour_index`, at the cost of a table look-up
    for the pixels whose cube of colours has a single nearest palette colour (decoded colours lie close
    to one), computed in full only for the rest."""
    pal = np.asarray(palette, np.int32).reshape(-1, 3)
    flat = np.asarray(rgb, np.uint8).reshape(-1, 3)
    shift = CELL.bit_length() - 1  # a channel's cube: value >> shift, of 8 - shift bits
    r, g, b = ((flat[:, c] >> shift).astype(np.int32) for c in range(3))
    cube = (r << 2 * (8 - shift)) | (g << (8 - shift)) | b
    best = _cube_table(np.ascontiguousarray(pal).tobytes())[cube]
    open_ = np.flatnonzero(best < 0)
    if open_.size:
        best[open_] = nearest_colour_index(flat[open_], pal)
    return pal[best].astype(np.uint8).reshape(rgb.shape)


Flows = tuple[np.ndarray, np.ndarray | None, np.ndarray | None]
"""(flow, segmentation RGB or None, baseline flow or None): what a pair is drawn from."""


def layout(flows: Flows) -> str:
    """The tiles a pair's frame holds, top to bottom: ``f`` flow, ``b`` baseline flow, ``s`` segmentation."""
    _, seg, base = flows
    return "f" + ("b" if base is not None else "") + ("s" if seg is not None else "")


MIN_BITS_PER_PIXEL = 0.015
"""Below this many bits per coded pixel (of all tiles) the tiles are coded at half the size (again, while
the smaller side stays >= 64): H.264 cannot go much lower at full size without outgrowing its rate."""


MAX_BITS_PER_PIXEL = 1.0
"""The rate is capped at this many bits per coded pixel (or ``MIN_CAP_BYTES`` a pair, for small frames):
more buys nothing visible (52 vs 51 dB on vtest.avi's flows) and costs encoding time and disk."""
MIN_CAP_BYTES = 8192


X264_MAX_SIDE = 16384
"""x264's largest frame side (px): a segment's frame (the tiles stacked, sides padded to even) stays within it."""


def coded_shape(shape: tuple[int, int], tiles: int, per_pair: float) -> tuple[int, int]:
    """(H', W') each tile of a pair is coded at, for frames ``shape`` (H, W) and ``per_pair`` bytes: halved
    while the budget is thin, and shrunk (aspect kept) where the ``tiles`` stacked would be taller or wider
    than :data:`X264_MAX_SIDE` (a 32x5600 frame's three tiles: x264 refused the run's intermediate)."""
    h, w = shape
    while per_pair * 8 / (h * w * tiles) < MIN_BITS_PER_PIXEL and min(h, w) >= 128:
        h, w = (h + 1) // 2, (w + 1) // 2
    most_h, most_w = X264_MAX_SIDE // tiles // 2 * 2, X264_MAX_SIDE  # (even: an odd side is padded by one)
    scale = min(1.0, most_h / h, most_w / w)
    if scale < 1.0:
        h, w = min(most_h, max(2, int(h * scale))), min(most_w, max(2, int(w * scale)))
    return h, w


def pair_bytes(shape: tuple[int, int], tiles: str, per_pair: float) -> float:
    """The bytes a pair of frames ``shape`` with ``tiles`` is coded at: ``per_pair``, or the rate cap
    (``MAX_BITS_PER_PIXEL``, at least ``MIN_CAP_BYTES``) when that is less."""
    h, w = coded_shape(shape, len(tiles), per_pair)
    cap = max(MAX_BITS_PER_PIXEL * (w + w % 2) * (h + h % 2) * len(tiles) / 8, MIN_CAP_BYTES)
    return min(per_pair, cap)


def _resize(image: np.ndarray, shape: tuple[int, int], nearest: bool = False) -> np.ndarray:
    if image.shape[:2] == tuple(shape):
        return image
    small = shape[0] < image.shape[0]
    how = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA if small else cv2.INTER_LINEAR
    return cv2.resize(image, (shape[1], shape[0]), interpolation=how)


def encode_pair(flows: Flows, coded: tuple[int, int] | None = None) -> np.ndarray:
    """A pair's flows -> (3, tiles * H', W') uint16 planes: each tile resized to ``coded`` (default: the
    frame size; flows keep their full-size pixel units), then rounded up to even sizes."""
    flow, seg, base = flows
    h, w = coded or flow.shape[:2]
    tiles = [encode_flow(_resize(flow, (h, w)))]
    if base is not None:
        tiles.append(encode_flow(_resize(base, (h, w))))
    if seg is not None:
        tiles.append(np.moveaxis(_resize(np.asarray(seg), (h, w), nearest=True).astype(np.uint16), 2, 0) * 4)
    planes = np.concatenate([np.pad(t, ((0, 0), (0, h % 2), (0, w % 2)), mode="edge") for t in tiles], axis=1)
    return planes


def decode_pair(planes: np.ndarray, shape: tuple[int, int], tiles: str, palette: np.ndarray | None = None,
                coded: tuple[int, int] | None = None) -> Flows:
    """Planes from :func:`encode_pair` (tiles ``coded`` (H', W'), default ``shape``) -> the pair's flows
    at ``shape`` (H, W)."""
    h, w = coded or shape
    tile_h = h + h % 2
    parts = {key: planes[:, k * tile_h:k * tile_h + h, :w] for k, key in enumerate(tiles)}
    seg = None
    if "s" in parts:
        seg = np.moveaxis(np.clip((parts["s"].astype(np.int32) + 2) // 4, 0, 255).astype(np.uint8), 0, 2)
        seg = _resize(np.ascontiguousarray(seg), shape, nearest=True)
        if palette is not None and len(palette):
            seg = snap_colours(seg, palette)
    base = _resize(decode_flow(parts["b"]), shape) if "b" in parts else None
    return _resize(decode_flow(parts["f"]), shape), seg, base


class SegmentWriter:
    """One segment video being written: pairs ``first, first + 1, ...`` of one layout and frame size.

    ``per_pair``: the byte budget per pair (it also sets the coded size: :func:`coded_shape`);
    ``limit``: the most pairs it takes. :meth:`close` finishes the video and moves it to its final name
    ``FIRST-COUNT-LAYOUT-WxH-wxh.mkv`` (frame size, coded size) in ``folder``; :meth:`abandon` drops it.
    A pair is coded and handed to the encoder in a second thread while the caller goes on (one pair at a
    time): its arrays must stay unchanged until the next :meth:`add` or :meth:`close`.
    """

    def __init__(self, folder: Path, first: int, shape: tuple[int, int], tiles: str, per_pair: float,
                 limit: int = SEGMENT_PAIRS) -> None:
        self.folder, self.first, self.shape, self.tiles, self.count = Path(folder), first, shape, tiles, 0
        self.limit = limit
        self.folder.mkdir(parents=True, exist_ok=True)
        self.part = self.folder / f"{first:06d}.part.mkv"
        self.coded = coded_shape(shape, len(tiles), per_pair)
        h, w = self.coded
        size = (w + w % 2, (h + h % 2) * len(tiles))
        self.per_pair = pair_bytes(shape, tiles, per_pair)
        rate = self.per_pair * 8 * FPS  # bits per second
        # At the cap x264's fastest preset loses nothing visible (vtest: 51.9 vs 52.5 dB) for a quarter of
        # the CPU; below it, superfast keeps veryfast's quality (42.9 vs 42.8 dB at 1 KB a pair) at its CPU.
        preset = "ultrafast" if self.per_pair < per_pair else "superfast"
        buffer = rate * limit / FPS / 2  # bits: half the segment at the peak rate
        self._encoder = FFmpegEncoder(self.part, size, FPS, "yuv444p10le", [  # (its errors: OutputError)
            "-vcodec", "libx264", "-pix_fmt", "yuv444p10le", "-preset", preset, "-tune", "psnr",
            "-b:v", f"{int(rate * TARGET)}", "-maxrate", f"{int(rate)}", "-bufsize", f"{int(buffer)}",
            "-threads", str(X264_THREADS), "-f", "matroska"])
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="semflow-segment")
        self._sending: Future | None = None

    def add(self, flows: Flows) -> None:
        """Append the next pair (its flows must have this segment's layout and frame size)."""
        self._wait()
        self._sending = self._pool.submit(self._send, flows)
        self.count += 1

    def _send(self, flows: Flows) -> None:
        self._encoder.write(encode_pair(flows, self.coded).astype("<u2", copy=False).tobytes())

    def _wait(self) -> None:
        """Wait until the pair being coded is with the encoder (raising what coding it raised)."""
        sending, self._sending = self._sending, None
        if sending is not None:
            sending.result()

    def written(self) -> int:
        """Bytes the encoder has written so far (it lags the pairs given by its look-ahead)."""
        try:
            return self.part.stat().st_size
        except OSError:
            return 0

    def close(self) -> Path:
        """Finish the video; returns its final path (an OutputError naming it when FFmpeg cannot: a full disk)."""
        (h, w), (ch, cw) = self.shape, self.coded
        final = self.folder / f"{self.first:06d}-{self.count:06d}-{self.tiles}-{w}x{h}-{cw}x{ch}.mkv"
        try:
            self._wait()
            self._pool.shutdown()
            self._encoder.finish(final)  # (raises when FFmpeg failed: the broken video is dropped)
        except BaseException:
            self.abandon()
            raise
        move_into_place(self.part, final)
        return final

    def abandon(self) -> None:
        """Stop the encoder and delete the unfinished video."""
        try:
            with contextlib.suppress(Exception):
                self._wait()
            self._pool.shutdown()
            self._encoder.kill()
        finally:
            self.part.unlink(missing_ok=True)


Span = tuple[int, int, str, tuple[int, int], tuple[int, int], Path]
"""A finished segment: (first pair, pairs, layout, frame size (H, W), coded size (H', W'), path)."""


def parse_segment(path: Path) -> Span | None:
    """The :data:`Span` a finished segment's file name gives, or None for any other file."""
    parts = path.name.removesuffix(".mkv").split("-")
    if path.suffix != ".mkv" or len(parts) != 5 or not (parts[0].isdecimal() and parts[1].isdecimal()):
        return None
    sizes = [part.split("x") for part in parts[3:]]
    if not all(len(size) == 2 and all(x.isdecimal() for x in size) for size in sizes):
        return None
    (w, h), (cw, ch) = ((int(a), int(b)) for a, b in sizes)
    return int(parts[0]), int(parts[1]), parts[2], (h, w), (ch, cw), path


def read_segment(path: Path, shape: tuple[int, int], tiles: str, palette: np.ndarray | None = None,
                 coded: tuple[int, int] | None = None) -> Generator[Flows, None, None]:
    """Yield the flows of a finished segment's pairs in order (decoded, see :func:`decode_pair`)."""
    h, w = coded or shape
    size = (w + w % 2, (h + h % 2) * len(tiles))
    gen = imageio_ffmpeg.read_frames(str(path), pix_fmt="yuv444p10le", bits_per_pixel=48)
    try:
        next(gen)  # the metadata
        for data in gen:
            planes = np.frombuffer(data, "<u2").reshape(3, size[1], size[0])
            yield decode_pair(planes, shape, tiles, palette, coded)
    finally:
        gen.close()


__all__ = ["FPS", "SEGMENT_PAIRS", "SegmentWriter", "decode_flow", "decode_pair", "encode_flow", "encode_pair",
           "layout", "nearest_colour_index", "parse_segment", "read_segment", "segment_worst_bytes", "snap_colours"]
