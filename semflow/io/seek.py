"""Seeking a video file to a frame that is proven to be the frame a full pass numbers so.

Far into a video file, :meth:`FrameSource.frames(start) <semflow.io.video.FrameSource.frames>` would
decode every frame before ``start`` (a batch's chunks of one long clip: work quadratic in its length).
:func:`open_at` seeks instead, and keeps the seek only when two checks prove that the frame it reached is
frame ``start`` of a full pass (the pass that decodes every frame from the first and counts them):

1. The container's index (an mp4/mov sample table, an AVI ``idx1``) says that the video's frames, in
   presentation order, lie one on each point of a grid of timestamps ``t0 + k * step`` (within 1/8
   step), from the first frame to the last: none missing, none doubled. Frame k of a full pass then
   has timestamp ``t0 + k * step``, so a timestamp names its frame. (Timestamps checked only near the
   seek point are not enough: a frame missing before it, such as an AVI's empty chunk for a dropped
   frame, leaves the later frames on the grid, each one point later than its number.)
2. The frames OpenCV decodes after seeking to ``start - BACK`` are, one after the other, on the grid
   points of frames ``start - BACK - 1 .. start`` (within 1/4 step, against frame 0's timestamp as
   decoded): the seek landed where the index says.

Anything else falls back to decoding from the first frame: another container (mkv, webm, ts), a raw
H.264 stream (no timestamps), a variable frame rate, a fragmented mp4, an edit list that cuts, an
OpenDML (> 1 GB) AVI, an AVI index that does not list its chunks back to back, a codec other than H.264,
HEVC or an intra-only one, a seek that lands elsewhere. The seek starts from the container's keyframes,
trusted when its index tells key frames from others and the decoder waits for a real one (H.264, HEVC), or
the codec has only key frames; from a keyframe on,
a decoder makes the frames a full pass makes (closed GOPs, as every common encoder writes by default). A
file with frames that fail to decode before ``start`` is the one case left: a full pass drops them and
numbers the rest differently, which no timestamp shows.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

from semflow.errors import InputError
from semflow.io.files import open_regular_file
from semflow.io.mp4 import box_header
from semflow.io.native import native_stderr

SEEK_AFTER = 60
"""Frames before this one are reached by decoding from frame 0 (``start`` grabs) rather than by a seek.
A seek costs about as much at such starts: OpenCV seeks to the keyframe at or before ``start - BACK - 16``
and decodes forward from it, after decoding frame 0 (for its timestamp), which with a keyframe every 30
frames (1 s at 30 fps, a common camera and streaming setting) is 20 to 50 frames, and with sparser
keyframes (x264's default: 250) decodes from frame 0 anyway. Measured: scripts/bench_seek.py."""

BACK = 2
"""The seek goes to frame ``start - BACK``; the timestamps of the ``BACK + 2`` frames to ``start`` are checked."""

MAX_INDEX_BYTES = 64 << 20
"""A container index (mp4 ``moov``, AVI ``idx1`` or header list) larger than this is not read: no seek."""

MAX_INDEX_FRAMES = 5_000_000
"""More frames than this (46 hours at 30 fps) in an index: not believed, no seek (the arrays it would
take, about 50 bytes a frame, are sized by what a header claims)."""

INTRA_ONLY = frozenset({b"jpeg", b"mjpa", b"mjpb", b"png ", b"MJPG", b"mjpg", b"AVRn", b"dmb1", b"MPNG",
                        b"DIB ", b"\0\0\0\0"})
"""Codec tags (mp4 sample entry, AVI ``biCompression``) of codecs whose every frame is a keyframe: only for
these is an index that marks every frame as key believed (a writer that marks P-frames as keys would
send the seek to a frame that cannot be decoded alone)."""


RECOVERING = frozenset({b"avc1", b"avc3", b"hvc1", b"hev1", b"H264", b"h264", b"X264", b"x264", b"AVC1",
                        b"HEVC", b"hevc", b"H265", b"h265"})
"""Codec tags (H.264, HEVC) whose decoders in FFmpeg wait for a real keyframe (a recovery point) after a
seek: a P-frame an index marks as key does not make them output frames with missing references, as
MPEG-4 Part 2's decoder did (frames unlike a full pass's, on time). Other codecs are not seeked."""


@dataclass(frozen=True)
class FrameGrid:
    """What a container's index proves of its video: ``count`` frames, one every ``step_ms``."""

    count: int
    step_ms: float


def open_at(path: Path, start: int, open_capture: Callable[[Path], cv2.VideoCapture]
            ) -> tuple[cv2.VideoCapture, np.ndarray] | None:
    """``(capture, frame)``: frame ``start`` of the video file ``path`` (BGR, as ``read()`` gives it) reached
    by a seek that both checks of the module prove, and the capture ``open_capture(path)`` made, next to
    read frame ``start + 1``. None (nothing left open) when ``start`` is under :data:`SEEK_AFTER` or the
    seek is not proven: decode from frame 0 then."""
    if start < max(SEEK_AFTER, BACK + 2):
        return None
    grid = frame_grid(path)
    if grid is None or start >= grid.count:
        return None
    with native_stderr():
        cap = open_capture(path)
        try:
            frame = _seek(cap, start, grid.step_ms)
        except BaseException:  # (a decoder error, Ctrl-C: the capture is not left to the collector)
            cap.release()
            raise
    if frame is None:
        cap.release()
        return None
    return cap, frame


def _seek(cap: cv2.VideoCapture, start: int, step_ms: float) -> np.ndarray | None:
    """Frame ``start`` of the fresh capture ``cap`` through a seek to ``start - BACK``, or None when the frames
    decoded are not on the grid points of ``start - BACK - 1 .. start`` (timestamps missing: all 0)."""
    if not cap.grab():
        return None
    t0 = cap.get(cv2.CAP_PROP_POS_MSEC)  # frame 0's timestamp, as OpenCV gives it (from its stream's start)

    def at(k: int) -> bool:  # the frame last decoded is frame k of a full pass
        return abs((cap.get(cv2.CAP_PROP_POS_MSEC) - t0) / step_ms - k) <= 0.25

    # OpenCV's seek to frame n decodes forward to frame n - 1, which it leaves as the one last decoded.
    if not cap.set(cv2.CAP_PROP_POS_FRAMES, start - BACK) or not at(start - BACK - 1):
        return None
    for k in range(start - BACK, start):
        if not cap.grab() or not at(k):
            return None
    ok, frame = cap.read()
    return frame if ok and at(start) else None


def frame_grid(path: Path) -> FrameGrid | None:
    """The :class:`FrameGrid` that the index of the mp4/mov or AVI file ``path`` proves, or None (another
    container, frames off one grid, an index that cannot be read or trusted)."""
    try:
        fd = open_regular_file(path)
    except InputError:
        return None
    with os.fdopen(fd, "rb") as file:
        try:
            size = os.fstat(fd).st_size
            head = file.read(12)
            if head[:4] == b"RIFF" and head[8:] == b"AVI ":
                return _avi_grid(file, size)
            if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide"):
                return _mp4_grid(file, size)
        except (OSError, ValueError, TypeError, struct.error, IndexError, OverflowError, MemoryError):
            return None
    return None


def _uniform(times: np.ndarray) -> float | None:
    """The step of the one grid ``t[0] + k * step`` that the sorted ``times`` lie on (within 1/8 step), or None."""
    times = np.sort(times.astype(np.int64))
    if len(times) < 2 or times[-1] <= times[0]:
        return None
    step = (times[-1] - times[0]) / (len(times) - 1)
    off = np.abs(times - times[0] - step * np.arange(len(times))).max()
    return float(step) if off <= step / 8 else None


# --- mp4 / mov ----------------------------------------------------------------------------------


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of the ISO BMFF boxes in ``data[start:end]``."""
    while start + 8 <= end:
        kind, head, size = box_header(data[start:start + 16], end - start)
        yield kind, start + head, start + size
        start += size


def _child(data: bytes, parent: tuple[int, int] | None, kind: bytes) -> tuple[int, int] | None:
    """(payload start, end) of the first ``kind`` box in ``parent``'s payload (None: there is none)."""
    if parent is None:
        return None
    return next(((s, e) for k, s, e in _boxes(data, *parent) if k == kind), None)


def _table(data: bytes, box: tuple[int, int] | None, dtype: np.dtype) -> np.ndarray | None:
    """The entries of a full box's table: version/flags, entry count, entries."""
    if box is None:
        return None
    count = struct.unpack_from(">I", data, box[0] + 4)[0]
    return np.frombuffer(data, dtype=dtype, count=count, offset=box[0] + 8)


RUNS = np.dtype([("n", ">u4"), ("v", ">i4")])


def _mp4_grid(file: BinaryIO, size: int) -> FrameGrid | None:
    """The grid of an mp4/mov: its top-level boxes' headers are read to find the ``moov``, then all of it."""
    at = 0
    while at + 8 <= size:  # top-level boxes: headers only, until the moov
        file.seek(at)
        kind, _, box = box_header(file.read(16), size - at)  # (ValueError: a damaged file, no seek)
        if kind == b"moov":
            if box > MAX_INDEX_BYTES:
                return None
            file.seek(at)
            moov = file.read(box)
            if len(moov) != box:
                return None
            return _moov_grid(moov, size)
        at += box
    return None


def _moov_grid(moov: bytes, size: int) -> FrameGrid | None:
    """The grid of the one video track of ``moov``: presentation times from its sample table (``stts``
    durations plus ``ctts`` offsets), trusted keyframes (``stss``), no empty sample, at most one edit."""
    kids = list(_boxes(moov, box_header(moov[:16], len(moov))[1], len(moov)))
    if any(k == b"mvex" for k, _, _ in kids):  # fragmented: the samples are in the fragments
        return None
    videos = []
    for kind, s, e in kids:
        hdlr = _child(moov, _child(moov, (s, e), b"mdia"), b"hdlr") if kind == b"trak" else None
        if hdlr is not None and moov[hdlr[0] + 8:hdlr[0] + 12] == b"vide":
            videos.append((s, e))
    if len(videos) != 1:  # (which one OpenCV takes is its own choice)
        return None
    trak = videos[0]
    elst = _child(moov, _child(moov, trak, b"edts"), b"elst")
    if elst is not None:  # one edit at normal speed (a time shift, a trim of both ends), or none
        wide = moov[elst[0]] == 1
        edits = _table(moov, elst, np.dtype([("d", ">u8"), ("t", ">i8"), ("r", ">i2"), ("f", ">u2")]) if wide
                       else np.dtype([("d", ">u4"), ("t", ">i4"), ("r", ">i2"), ("f", ">u2")]))
        real = edits[edits["t"] != -1]
        if len(real) > 1 or (len(real) and (real["r"][0] != 1 or real["f"][0] != 0)):
            return None
    mdia = _child(moov, trak, b"mdia")
    mdhd = _child(moov, mdia, b"mdhd")
    timescale = struct.unpack_from(">I", moov, mdhd[0] + (20 if moov[mdhd[0]] == 1 else 12))[0]
    stbl = _child(moov, _child(moov, mdia, b"minf"), b"stbl")
    stsd, stsz = _child(moov, stbl, b"stsd"), _child(moov, stbl, b"stsz")
    if stsd is None or stsz is None or not timescale:
        return None
    codec = moov[stsd[0] + 12:stsd[0] + 16]
    sample_size, count = struct.unpack_from(">II", moov, stsz[0] + 4)
    if count < 2 or count > min(size // max(sample_size, 8), MAX_INDEX_FRAMES):  # (it sizes the arrays below)
        return None
    if sample_size == 0 and not np.frombuffer(moov, ">u4", count, stsz[0] + 12).all():
        return None  # an empty sample: no frame
    stts = _table(moov, _child(moov, stbl, b"stts"), RUNS)
    ctts = _table(moov, _child(moov, stbl, b"ctts"), RUNS)
    stss = _table(moov, _child(moov, stbl, b"stss"), np.dtype(">u4"))
    if stts is None or stts["n"].sum(dtype=np.int64) != count:
        return None
    if ctts is not None and ctts["n"].sum(dtype=np.int64) != count:
        return None
    if codec not in INTRA_ONLY and (codec not in RECOVERING or stss is None or not 0 < len(stss) < count):
        return None
    durations = np.repeat(stts["v"].astype(np.int64) & 0xFFFFFFFF, stts["n"])
    times = np.concatenate(([0], np.cumsum(durations[:-1])))
    if ctts is not None:
        times = times + np.repeat(ctts["v"].astype(np.int64), ctts["n"])
    step = _uniform(times)
    return FrameGrid(count, 1000.0 * step / timescale) if step else None


# --- AVI ----------------------------------------------------------------------------------------


def _chunks(file: BinaryIO, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(id, data start, data size) of the RIFF chunks from ``start`` to ``end`` (headers read only)."""
    while start + 8 <= end:
        file.seek(start)
        head = file.read(8)
        if len(head) < 8:
            return
        kind, length = struct.unpack("<4sI", head)
        yield kind, start + 8, length
        start += 8 + length + (length & 1)


def _read(file: BinaryIO, start: int, length: int) -> bytes:
    if length > MAX_INDEX_BYTES:
        raise ValueError("index too large")
    file.seek(start)
    data = file.read(length)
    if len(data) != length:
        raise ValueError("truncated")
    return data


def _avi_grid(file: BinaryIO, size: int) -> FrameGrid | None:
    """The grid of an AVI: its one video stream's chunks in ``idx1``, none empty, ``scale / rate`` s apart."""
    file.seek(4)
    riff_end = min(size, 8 + struct.unpack("<I", file.read(4))[0])
    streams, index, movi = [], None, None
    for kind, start, length in _chunks(file, 12, riff_end):
        if kind == b"LIST" and _read(file, start, 4) == b"hdrl":
            streams = _avi_streams(_read(file, start, length))
            if streams is None:
                return None
        elif kind == b"LIST" and _read(file, start, 4) == b"movi":
            movi = start  # (idx1's offsets count from this "movi", or from the file's start)
        elif kind == b"idx1":
            index = np.frombuffer(_read(file, start, length - length % 16),
                                  np.dtype([("id", "S4"), ("flags", "<u4"), ("at", "<u4"), ("size", "<u4")]))
    more = next(_chunks(file, riff_end + (riff_end & 1), size), None)
    if more is not None and more[0] == b"RIFF":  # OpenDML's AVIX: frames idx1 does not list
        return None
    videos = [(n, s) for n, s in enumerate(streams) if s[0] == b"vids"]
    if index is None or movi is None or len(videos) != 1 or not _tiles(index, movi):
        return None
    number, (_, scale, rate, codec) = videos[0]
    tag = f"{number:02d}".encode()
    ids = index["id"]
    if np.any(ids == tag + b"pc"):  # (palette changes)
        return None
    frames = index[(ids == tag + b"dc") | (ids == tag + b"db")]
    if len(frames) < 2 or not frames["size"].all() or not scale or not rate:
        return None  # an empty chunk is a dropped frame: the next ones are numbered one lower
    keys = frames["flags"] & 0x10
    if codec not in INTRA_ONLY and (codec not in RECOVERING or keys.all() or not keys.any()):
        return None
    return FrameGrid(len(frames), 1000.0 * scale / rate)


def _tiles(index: np.ndarray, movi: int) -> bool:
    """Whether ``idx1``'s entries, all streams', lie back to back from the start of ``movi``'s data: the
    chunks a full pass reads, one after the other, are the ones the index lists (an entry listed twice,
    left out or pointing elsewhere would number the frames after it one off)."""
    if len(index) == 0 or np.any(index["id"] == b"rec "):  # (interleaved groups: not checked, not believed)
        return False
    at, size = index["at"].astype(np.int64), index["size"].astype(np.int64)
    if at[0] - 4 not in (0, movi):
        return False
    return bool(np.all(at[1:] == at[:-1] + 8 + size[:-1] + (size[:-1] & 1)))


def _avi_streams(hdrl: bytes) -> list[tuple[bytes, int, int, bytes]] | None:
    """(type, scale, rate, codec tag) of each stream of an AVI's header list; None with an OpenDML index."""
    streams = []
    at = 4
    while at + 8 <= len(hdrl):
        kind, length = struct.unpack_from("<4sI", hdrl, at)
        if kind == b"LIST" and hdrl[at + 8:at + 12] == b"strl":
            fields: dict[bytes, bytes] = {}
            sub = at + 12
            while sub + 8 <= at + 8 + length:
                name, n = struct.unpack_from("<4sI", hdrl, sub)
                fields.setdefault(name, hdrl[sub + 8:sub + 8 + n])
                sub += 8 + n + (n & 1)
            if b"indx" in fields:
                return None
            strh, strf = fields.get(b"strh", b""), fields.get(b"strf", b"")
            scale, rate = struct.unpack_from("<II", strh, 20)
            streams.append((strh[:4], scale, rate, strf[16:20]))
        at += 8 + length + (length & 1)
    return streams
