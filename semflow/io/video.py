"""Streaming video input and H.264 output.

:class:`FrameSource` reads a video file (OpenCV) or a folder of images (:mod:`semflow.io.frame_folder`)
one frame at a time; nothing holds the whole video in memory. :class:`VideoWriter` encodes H.264 mp4
that browsers play, through imageio-ffmpeg's FFmpeg (OpenCV's own writer has no H.264 here), scales
frames too large for H.264 level 6.2 down (:func:`video_size`), and renames the file into place on
close only when FFmpeg finished it (:class:`~semflow.io.ffmpeg.FFmpegEncoder`: a full disk is an error,
not a broken video).
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from semflow.errors import InputError, OutputError, ResourceError, warn
from semflow.io.atomic import move_into_place, temp_path_beside
from semflow.io.ffmpeg import FFmpegEncoder, mp4_complete, probe_keyframes
from semflow.io.files import (
    FTYP_READ,
    is_empty_file,
    is_video_path,
    missing,
    open_capture,
    out_of_descriptors,
    too_few_frames,
    too_many_open_files,
    video_container,
)
from semflow.io.frame_folder import camera_raws_note, folder_images, numbering_gaps, raws_skipped_note
from semflow.io.images import MULTIPAGE_TIFF, is_image_path, read_image, tiff_pages, to_rgb_uint8
from semflow.io.native import native_stderr
from semflow.io.raw_tiff import camera_raw_file_reason
from semflow.io.seek import open_at
from semflow.limits import thread_refusal


def max_side_size(height: int, width: int, max_side: int | None) -> tuple[int, int]:
    """(H, W) of a ``height`` x ``width`` frame shrunk so its longer side is at most ``max_side`` (never enlarged)."""
    if not max_side or max(height, width) <= max_side:
        return height, width
    scale = max_side / max(height, width)
    return max(2, round(height * scale)), max(2, round(width * scale))


def shrunk_to(full: tuple[int, ...], size: tuple[int, ...]) -> bool:
    """Whether frames of ``full`` (H, W) shrunk by ``--max-side`` (:func:`max_side_size`) come out ``size``
    (H, W): maps made on the frames as given (label maps, flows) are then shrunk with them."""
    return max(full[:2]) > max(size[:2]) and max_side_size(*full[:2], max(size[:2])) == tuple(size[:2])


def _grab_all(cap: cv2.VideoCapture, limit: int | None = None) -> int:
    """How many frames ``cap`` still has (at most ``limit``), read through without converting them."""
    count = 0
    while (limit is None or count < limit) and cap.grab():
        count += 1
    return count


def resize_max_side(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """Shrink ``image`` so its longer side is at most ``max_side`` pixels (never enlarges)."""
    h, w = max_side_size(*image.shape[:2], max_side)
    if (h, w) == image.shape[:2]:
        return image
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)


def video_identity(path: str | os.PathLike) -> list[int] | None:
    """[size in bytes, modification time in ns] of a video file, or of a folder's first frame (frames
    added after it keep it): what tells a resumed run that its video was replaced. None when unreadable."""
    path = Path(path)
    try:
        if path.is_dir():
            frames = folder_images(path)
            if not frames:
                return None
            path = frames[0]
        stat = path.stat()
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def shortfall_note(path: str | os.PathLike, read: int, expected: int, max_frames: int | None) -> str:
    """The note that only ``read`` of the ``expected`` frames of the video ``path`` could be read: those its
    container declares, or the first ``max_frames`` of them where that is ``expected`` (``--max-frames``)."""
    which = (f"the first {expected} of the frames its container declares (--max-frames {expected};"
             if expected == max_frames else f"the {expected} frames its container declares (")
    return f"{path}: read {read} of {which}the file is truncated or corrupt); the outputs cover the frames read"


MIN_FRAME_BYTES = 8
"""No container stores a frame in fewer bytes than this (its index entry alone takes as many): a
claimed frame count above the file's size over this is a lie, capped (:class:`FrameSource`)."""


class FrameSource:
    """Frames of a video file or of a folder of images (in natural name order), as uint8 RGB.

    ``max_side`` shrinks every frame; ``max_frames`` stops early. ``len()`` is the number of frames that will be
    read when the container or FFmpeg's probe says (folders always do), else an estimate. After a full pass,
    ``frames_read`` says how many frames were decoded, ``end_seconds`` the last one's timestamp, and
    :meth:`shortfall` whether that is fewer than the container declared (a truncated or corrupt file)."""

    def __init__(self, path: str | os.PathLike, *, max_side: int | None = None,
                 max_frames: int | None = None) -> None:
        self.path = Path(path)
        self.max_side = max_side
        self.max_frames = max_frames
        if not self.path.exists():
            raise missing(self.path)
        self.images: list[Path] | None = None
        self.frames_read: int | None = None
        self.declared: int | None = None  # the frame count a video file's container declares
        self.exact_count = False  # whether that count is exact: an mp4/mov's samples (see shortfall)
        self.packets: int | None = None  # else the frames its FFmpeg probe demuxed (KeyframeReport.packets)
        self.end_seconds: float | None = None  # after a full pass: the timestamp of the last frame read
        self._first_size: tuple[int, int] | None = None
        self.numbering_note: str | None = None  # a folder's gaps in its frame numbers (numbering_gaps)
        self.damage_note: str | None = None  # a video file's damaged keyframes (KeyframeReport.damage)
        self.seeked: bool | None = None  # whether frames() last reached its start by a seek (semflow.io.seek)
        # Seconds of a video file known to keep its first frame size (None: all): its keyframe probe's reach
        # (--max-frames), then, once frames ran past it, where the whole file's probe finds the size change.
        self.probed: float | None = None
        self.fps = 10.0
        if self.path.is_dir():
            self.images = folder_images(self.path)
            if not self.images:
                raise InputError(f"{self.path}: folder holds no images" + (camera_raws_note(self.path) or (
                    " (it holds videos: give one of them; batch takes a folder of videos)"
                    if any(map(is_video_path, self.path.iterdir())) else "")))
            if (skipped := raws_skipped_note(self.path)) is not None:  # (once: video_identity lists it unsaid)
                warn(skipped)
            count = len(self.images) if max_frames is None else min(len(self.images), max_frames)
            self.numbering_note = numbering_gaps(self.images[:count])  # (for a summary to keep)
            if self.numbering_note:
                warn(self.numbering_note)
        else:
            if not self.path.is_file():  # (OpenCV would wait for good on a FIFO, deaf to Ctrl-C)
                raise InputError(f"{self.path}: not a regular file")
            if not os.access(self.path, os.R_OK):
                raise InputError(f"{self.path}: not readable")
            if (raw := camera_raw_file_reason(self.path)) is not None:  # (its preview read as a frame, or none)
                raise InputError(f"{self.path}: {raw}")
            with contextlib.suppress(OSError), open(self.path, "rb") as file:  # (EMFILE: said by open_capture)
                self.exact_count = video_container(file.read(FTYP_READ)) == "MP4 or MOV"
            if is_image_path(self.path) and tiff_pages(self.path):  # (read as a clip of one frame)
                raise InputError(f"{self.path}: {MULTIPAGE_TIFF}")
            with native_stderr():
                cap = open_capture(self.path)
                ok = cap.isOpened()
                if ok:
                    fps = cap.get(cv2.CAP_PROP_FPS)
                    self.fps = fps if 0.01 <= fps < 1000 else 10.0  # (a header's 1e-9 fps: FFmpeg refuses rate 0)
                    count = self.declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
                    # A container can claim anything (a header patched to 2**31 frames); every real
                    # frame takes bytes, so the estimate is capped by the file's size.
                    count = min(count, os.path.getsize(self.path) // MIN_FRAME_BYTES)
                    ok, first = cap.read()
                    if ok:
                        self._first_size = first.shape[:2]
                    if ok and count <= 0:  # none declared (raw .h264, a webm written to a pipe): counted
                        more = None if max_frames is None else max_frames - 1  # (the run's cache plan needs it)
                        count, self.declared = 1 + _grab_all(cap, more), None
                cap.release()
            self.probed = max_frames / self.fps if max_frames is not None else None
            keyframes = probe_keyframes(self.path, within=self.probed) if ok else None
            if keyframes and (refusal := keyframes.refusal()):
                raise InputError(f"{self.path}: {refusal}")
            self.packets = (keyframes.packets or None) if keyframes and not self.exact_count else None
            if keyframes and (damage := keyframes.damage()):
                self.damage_note = f"{self.path}: {damage}"
                warn(self.damage_note)
            if not ok:
                if out_of_descriptors():  # (OpenCV had no descriptor for it: it cannot say so)
                    raise too_many_open_files(self.path)
                if refused := thread_refusal():  # (nor for its decoder's threads: ulimit -u)
                    raise ResourceError(f"{self.path}: {refused}")
                if is_image_path(self.path):  # (one FFmpeg cannot decode, a float TIFF: why, or run's hint)
                    read_image(self.path)
                    raise too_few_frames(self.path, 1)
                why = "the file is empty" if is_empty_file(self.path) else "no frame could be decoded"
                raise InputError(f"{self.path}: not a readable video ({why})")
        self.count = count if max_frames is None else min(count, max_frames)

    def __len__(self) -> int:  # (shortfall judges by ``count``: the container's, a cut Matroska file's too)
        return max(self.count if self.packets is None else min(self.count, self.packets), 0)

    def frame_size(self) -> tuple[int, int]:
        """(height, width) of the frames as they will be read (after ``max_side``), from the first frame."""
        if self._first_size is None:
            self._first_size = read_image(self.images[0]).shape[:2]
        return max_side_size(*self._first_size, self.max_side)

    def shortfall(self) -> str | None:
        """After a full pass: a one-line note when more than one frame fewer than the container declared
        could be decoded (one is tolerated: containers round their frame count), else None. Where that count
        is not exact (``exact_count``: OpenCV's estimate from duration x fps where Matroska, MPEG-TS keep none; an
        AVI's, with the empty chunks of frames shown longer), a last frame whose timestamp reaches it (within a
        frame, at ``fps``) is not short: a variable frame rate, not a cut."""
        if self.frames_read is None or self.frames_read >= self.count - 1:
            return None
        if not self.exact_count and self.end_seconds is not None and self.end_seconds * self.fps >= self.count - 2:
            return None
        return shortfall_note(self.path, self.frames_read, self.frames_declared, self.max_frames)

    @property
    def frames_declared(self) -> int:
        """The count :meth:`shortfall` quotes (a cut clip's ``frames_expected``): the container's own, not capped
        by the file's size; ``count`` where ``max_frames`` set it, or where it was counted by decoding."""
        return self.declared if self.declared is not None and self.count != self.max_frames else self.count

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.frames()

    def frames(self, start: int = 0) -> Iterator[np.ndarray]:
        """The frames from frame ``start`` on, each the one a full pass reads. A video file is decoded from
        its start (frames before ``start`` are decoded but not converted), or, from frame
        :data:`~semflow.io.seek.SEEK_AFTER` on, from a keyframe before ``start`` when its index and its
        frames' timestamps prove that the frame reached is frame ``start`` (:func:`~semflow.io.seek.open_at`;
        ``seeked`` says which it was)."""
        limit = self.max_frames if self.max_frames is not None else float("inf")
        if self.images is not None:
            yield from self._folder_frames(start, limit)
            return
        sought = open_at(self.path, start, open_capture) if start < limit else None
        self.seeked = sought is not None
        if sought is None:
            with native_stderr():
                cap = open_capture(self.path)
            i, frame, seconds = 0, None, None
        else:
            (cap, frame), i = sought, start
            seconds = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000
        try:
            while i < min(start, limit):
                if not cap.grab():
                    return
                i += 1
            while i < limit:
                if frame is None:
                    with native_stderr():  # FFmpeg's decoder complaints stay out of the terminal
                        ok, frame = cap.read()
                    if not ok:
                        break
                    seconds = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000
                    # past the seconds its probe covered (its fps is not its frames' rate): probe all of it, once
                    if self.probed is not None and seconds >= self.probed:
                        report = probe_keyframes(self.path)
                        self.probed = report.size_change and report.size_change[0] - 1e-3
                        if self.probed is not None and seconds >= self.probed:
                            raise InputError(f"{self.path}: {report.refusal()}")
                yield resize_max_side(to_rgb_uint8(frame, name=str(self.path), bgr=True), self.max_side)
                frame = None
                i += 1
            self.frames_read, self.end_seconds = i, seconds  # (after a full pass: not for a consumer that stops)
        finally:
            cap.release()

    def _folder_frames(self, start: int, limit: float) -> Iterator[np.ndarray]:
        """:meth:`frames` of a folder: an image whose size (after ``max_side``) is not the first image's
        is an :class:`InputError` naming its file."""
        first: tuple[int, int] | None = None
        for i, path in enumerate(self.images[start:], start):
            if i >= limit:
                break
            image = read_image(path)
            frame = resize_max_side(image, self.max_side)
            if first is None:
                if self._first_size is None:
                    self._first_size = (image if i == 0 else read_image(self.images[0])).shape[:2]
                first = max_side_size(*self._first_size, self.max_side)
            if frame.shape[:2] != first:
                (h, w), (h0, w0) = image.shape[:2], self._first_size
                raise InputError(f"{path} is {w}x{h}, the frames before it {w0}x{h0}")
            yield frame
        self.frames_read = min(len(self.images), self.count)


ENCODER_PRESET = "veryfast"
"""x264's speed preset for the videos a user watches. Against its default (``medium``), at the same
quality setting, re-encoding the 60 panel frames of ``semflow run`` on solidWhiteRight.mp4 (1924x1084):
2.8 vs 6.0 CPU seconds, 2.7 MB either way, 43.0 vs 44.2 dB PSNR. ``sync-lookahead=0``: same bytes run to run
(a 399-frame panel.mp4 encoded 6 times: 3 files before; 24 times: 1); ``+faststart``: a browser plays it early."""


MAX_VIDEO_SIDE = 8192
"""The longest side (px) of a video semflow writes: H.264 level 6.2's widest frame, what browsers and
hardware decoders play (x264 itself refuses more than 16384)."""
MAX_VIDEO_MACROBLOCKS = 139264
"""The most 16x16 macroblocks in a frame of a video semflow writes: H.264 level 6.2's (8192x4352,
35.7 Mpx)."""


def video_fits(height: int, width: int) -> bool:
    """Whether a ``height`` x ``width`` frame (odd sides padded to even, as :class:`VideoWriter` does) is
    within :data:`MAX_VIDEO_SIDE` and :data:`MAX_VIDEO_MACROBLOCKS`."""
    h, w = height + height % 2, width + width % 2
    return max(h, w) <= MAX_VIDEO_SIDE and -(-h // 16) * -(-w // 16) <= MAX_VIDEO_MACROBLOCKS


def video_scale(height: int, width: int) -> float:
    """The factor (at most 1) by which a ``height`` x ``width`` frame shrinks to the limits of
    :func:`video_fits` (before its sides are rounded to whole, even pixels)."""
    area = MAX_VIDEO_MACROBLOCKS * 256 / (height * width)
    return min(1.0, MAX_VIDEO_SIDE / max(height, width), math.sqrt(area))


def video_size(height: int, width: int) -> tuple[int, int]:
    """(H, W) a ``height`` x ``width`` frame is encoded at: its own when it fits (:func:`video_fits`), else
    the largest size of its aspect, sides rounded to even (at least 2 px), that fits."""
    if video_fits(height, width):
        return height, width
    scale = video_scale(height, width)
    while True:
        h, w = (max(2, 2 * round(side * scale / 2)) for side in (height, width))
        if video_fits(h, w):
            return h, w
        scale *= 0.999


def resize_to(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` resized to ``size`` (H, W) by area averaging (for shrinking); itself when of that size."""
    if image.shape[:2] == tuple(size):
        return image
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)


class VideoWriter:
    """Write uint8 RGB frames to an H.264 mp4 (yuv420p); the file appears under its name on close.

    Odd frame sizes are padded by one pixel (H.264 in yuv420p needs even sides). Frames too large for H.264
    level 6.2 are scaled down to :func:`video_size` of the first frame's size (a preview). Use as a context
    manager; on an exception the partial file is deleted. The partial file is a new file with a random
    name (never a link left under a predictable one). When FFmpeg cannot finish the video (a full disk)
    :meth:`write` or :meth:`close` raise an :class:`OutputError` naming ``name`` (default ``path``; a
    staged file: the output it becomes), the partial file is deleted and a file at ``path`` stays."""

    def __init__(self, path: str | os.PathLike, fps: float = 10.0, *, quality: float = 7,
                 preset: str = ENCODER_PRESET, name: str | os.PathLike | None = None) -> None:
        self.path, self.name = Path(path), Path(name if name is not None else path)
        # (Checked here: a bad one was an OutputError, "FFmpeg could not finish the video", at the first frame.)
        if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not (math.isfinite(fps) and fps >= 0.01):
            raise InputError(f"fps must be a number of frames a second of at least 0.01, got {fps!r}")
        if isinstance(quality, bool) or not isinstance(quality, numbers.Real) or not 0 <= quality <= 10:
            raise InputError(f"quality must be a number from 0 to 10, got {quality!r}")
        self.fps = float(fps)
        self.quality, self.preset = quality, preset
        self.tmp: Path | None = None
        self._encoder: FFmpegEncoder | None = None
        self._size: tuple[int, int] | None = None  # (W, H) of the frames
        self.coded: tuple[int, int] | None = None  # (H, W) the frames are scaled to, when they do not fit
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        """Append one uint8 RGB (H, W, 3) frame; all frames must have the size of the first."""
        frame = to_rgb_uint8(frame, name="video frame")
        h, w = frame.shape[:2]
        if self._encoder is None:
            self.tmp = temp_path_beside(self.path, ".partial.mp4")
            self._size = (w, h)
            self.coded = None if video_fits(h, w) else video_size(h, w)
            crf = int((1 - self.quality / 10) * 51)  # (imageio-ffmpeg's scale: quality 7 is CRF 15)
            size = (w + w % 2, h + h % 2) if self.coded is None else self.coded[::-1]
            self._encoder = FFmpegEncoder(self.tmp, size, self.fps, "rgb24", [
                "-vcodec", "libx264", "-pix_fmt", "yuv420p", "-crf", str(crf), "-preset", self.preset,
                "-x264-params", "sync-lookahead=0", "-movflags", "+faststart"],  # see ENCODER_PRESET
                name=self.name)
        elif (w, h) != self._size:  # (not padded: 63x47 then 64x48 passed)
            raise InputError(f"video frame size changed from {self._size[0]}x{self._size[1]} to {w}x{h}")
        if self.coded is not None:
            frame = resize_to(frame, self.coded)
        elif w % 2 or h % 2:
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        try:
            self._encoder.write(np.ascontiguousarray(frame))
        except OutputError:
            self.abort()
            raise
        self.frames += 1

    def close(self) -> None:
        """Finish the file and move it into place (see the class for when FFmpeg cannot)."""
        if self._encoder is None:
            return
        try:
            self._encoder.finish()
            if not mp4_complete(self.tmp):
                raise OutputError(f"{self.name}: FFmpeg could not finish the video: it has no index (moov)")
            move_into_place(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self._encoder = None

    def abort(self) -> None:
        """Stop writing and delete the partial file."""
        encoder, self._encoder = self._encoder, None
        try:
            if encoder is not None:
                encoder.kill()
        finally:
            if self.tmp is not None:
                self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
