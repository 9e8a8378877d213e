"""Streaming video input and H.264 output.

:class:`FrameSource` reads a video file (OpenCV) or a folder of images one frame at a time; nothing
holds the whole video in memory. :class:`VideoWriter` encodes H.264 mp4 that browsers play, through
imageio-ffmpeg's FFmpeg (OpenCV's own writer has no H.264 here), and renames the file into place on close
only when FFmpeg finished it (:class:`FFmpegEncoder`: a full disk is an error, not a broken video).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from semflow.errors import InputError, OutputError, warn
from semflow.io.atomic import move_into_place, temp_path_beside
from semflow.io.images import is_image_path, read_image, to_rgb_uint8
from semflow.io.native import native_stderr


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


def resize_max_side(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """Shrink ``image`` so its longer side is at most ``max_side`` pixels (never enlarges)."""
    h, w = max_side_size(*image.shape[:2], max_side)
    if (h, w) == image.shape[:2]:
        return image
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)


def natural_key(path: Path) -> list[str | int]:
    """Sort key that orders numbered names by their numbers: frame2.png before frame10.png."""
    return [int(part) if part.isdecimal() else part.lower() for part in re.split(r"(\d+)", path.name)]


def folder_images(folder: str | os.PathLike) -> list[Path]:
    """The image files of ``folder`` (not below it), in natural name order. A device, a FIFO or a dangling
    link named like an image is an :class:`InputError` naming it, not skipped (a frame left out would join
    its neighbours into one pair). Hidden names (``.x.png``, macOS's ``._x.png`` copies), links included,
    are skipped: no one's frames."""
    images = sorted((p for p in Path(folder).iterdir()
                     if not p.name.startswith(".") and is_image_path(p) and not p.is_dir()), key=natural_key)
    for image in images:
        if not image.is_file():
            raise InputError(f"{image}: not a regular file")
    return images


_NUMBERED = re.compile(r"(.*?)(\d+)(\D*)")
"""A numbered frame name: prefix, number, suffix (``frame_0001.png``: ``frame_``, ``0001``, ``.png``)."""


def numbering_gaps(images: list[Path]) -> str | None:
    """A one-line note on where the numbers of ``images`` (in their order) skip, when every name is one
    prefix, a number and one suffix (``000001.png``, ``frame_0001.png``); None when they run on or the
    names follow no one pattern."""
    matches = [_NUMBERED.fullmatch(p.name) for p in images]
    if not matches or not all(matches) or len({(m[1], m[3]) for m in matches}) > 1:
        return None
    numbers = [int(m[2]) for m in matches]
    gaps = [(i, b - a - 1) for i, (a, b) in enumerate(zip(numbers, numbers[1:])) if b - a > 1]
    if not gaps:
        return None
    i, missing = gaps[0]
    more = f"; {len(gaps)} gaps in all, {sum(n for _, n in gaps)} frames missing" if len(gaps) > 1 else ""
    return (f"{images[0].parent}: frame numbers skip from {images[i].name} to {images[i + 1].name}"
            f" ({missing} missing{more}); each pair joins the frames as listed")


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


MIN_FRAME_BYTES = 8
"""No container stores a frame in fewer bytes than this (its index entry alone takes as many): a
claimed frame count above the file's size over this is a lie, capped (:class:`FrameSource`)."""


class FrameSource:
    """Frames of a video file or of a folder of images (in natural name order), as uint8 RGB.

    ``max_side`` shrinks every frame; ``max_frames`` stops early. ``len()`` is the number of frames
    that will be read when the container says (folders always do), else an estimate. After a full
    pass, ``frames_read`` says how many frames were decoded and :meth:`shortfall` whether that is fewer
    than the container declared (a truncated or corrupt file).
    """

    def __init__(self, path: str | os.PathLike, *, max_side: int | None = None,
                 max_frames: int | None = None) -> None:
        self.path = Path(path)
        self.max_side = max_side
        self.max_frames = max_frames
        if not self.path.exists():
            raise InputError(f"{self.path}: no such file or folder")
        self.images: list[Path] | None = None
        self.frames_read: int | None = None
        self.declared: int | None = None  # the frame count a video file's container declares
        self._first_size: tuple[int, int] | None = None
        self.numbering_note: str | None = None  # a folder's gaps in its frame numbers (numbering_gaps)
        self.fps = 10.0
        if self.path.is_dir():
            self.images = folder_images(self.path)
            if not self.images:
                raise InputError(f"{self.path}: folder holds no images")
            count = len(self.images) if max_frames is None else min(len(self.images), max_frames)
            self.numbering_note = numbering_gaps(self.images[:count])  # (for a summary to keep)
            if self.numbering_note:
                warn(self.numbering_note)
        else:
            if not os.access(self.path, os.R_OK):
                raise InputError(f"{self.path}: not readable")
            with native_stderr():
                cap = cv2.VideoCapture(str(self.path))
                ok = cap.isOpened()
                if ok:
                    fps = cap.get(cv2.CAP_PROP_FPS)
                    self.fps = fps if 0 < fps < 1000 else 10.0
                    count = self.declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
                    # A container can claim anything (a header patched to 2**31 frames); every real
                    # frame takes bytes, so the estimate is capped by the file's size.
                    count = min(count, os.path.getsize(self.path) // MIN_FRAME_BYTES)
                    ok, first = cap.read()
                    if ok:
                        self._first_size = first.shape[:2]
                cap.release()
            if not ok:
                raise InputError(f"{self.path}: not a readable video (no frame could be decoded)")
        self.count = count if max_frames is None else min(count, max_frames)

    def __len__(self) -> int:
        return max(self.count, 0)

    def frame_size(self) -> tuple[int, int]:
        """(height, width) of the frames as they will be read (after ``max_side``), from the first frame."""
        if self._first_size is None:
            self._first_size = read_image(self.images[0]).shape[:2]
        h, w = self._first_size
        scale = min(1.0, self.max_side / max(h, w)) if self.max_side else 1.0
        return (max(2, round(h * scale)), max(2, round(w * scale))) if scale < 1.0 else (h, w)

    def shortfall(self) -> str | None:
        """After a full pass: a one-line note when more than one frame fewer than the container declared
        could be decoded (one is tolerated: containers round their frame count), else None."""
        if self.frames_read is None or self.frames_read >= self.count - 1:
            return None
        declared = self.declared if self.declared is not None and self.max_frames is None else self.count
        return (f"{self.path}: read {self.frames_read} of the {declared} frames its container declares"
                " (the file is truncated or corrupt); the outputs cover the frames read")

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.frames()

    def frames(self, start: int = 0) -> Iterator[np.ndarray]:
        """The frames from frame ``start`` on (a video file is decoded from its start, frames before
        ``start`` are decoded but not converted, so every frame is the one a full pass reads)."""
        limit = self.max_frames if self.max_frames is not None else float("inf")
        if self.images is not None:
            yield from self._folder_frames(start, limit)
            return
        with native_stderr():
            cap = cv2.VideoCapture(str(self.path))
        try:
            i = 0
            while i < min(start, limit):
                if not cap.grab():
                    return
                i += 1
            while i < limit:
                with native_stderr():  # FFmpeg's decoder complaints stay out of the terminal
                    ok, frame = cap.read()
                if not ok:
                    break
                yield resize_max_side(to_rgb_uint8(frame, name=str(self.path), bgr=True), self.max_side)
                i += 1
            self.frames_read = i  # only after a full pass (a consumer that stops early never gets here)
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
2.8 vs 6.0 CPU seconds, 2.7 MB either way, 43.0 vs 44.2 dB PSNR."""
FFMPEG_LOG_LINES = 40
"""The first lines FFmpeg logs that an encoder keeps (the cause comes first, its consequences after)."""
_TAG = re.compile(r"^\[[^\]]*\]\s*")
"""The tag FFmpeg puts before a line: ``[out#0/mp4 @ 0x55d4c0a8e4c0]``."""


def ffmpeg_reason(lines: list[str], returncode: int | None) -> str:
    """Why FFmpeg failed, in a few words: the first system error its log names (``No space left on
    device``), else its first line (less its tag), else how it ended (a signal: ``File size limit exceeded``)."""
    texts = [_TAG.sub("", line).strip() for line in lines]
    known = [os.strerror(c) for c in errno.errorcode if c not in (0, errno.EINVAL)]  # (EINVAL: a bad option)
    for text in texts:
        if found := [message for message in known if message in text]:
            return max(found, key=len)
    if any(texts):
        return next(text for text in texts if text)
    if returncode is not None and returncode < 0:
        return signal.strsignal(-returncode) or f"killed by signal {-returncode}"
    return f"exit status {returncode}"


class FFmpegEncoder:
    """An FFmpeg process encoding the raw frames written to it (``pix_fmt_in``, ``size`` (W, H)) into
    ``path``; ``output_params``: codec and muxer options. What it logs is kept, never shown: a failure is
    an :class:`OutputError` naming ``name`` (the file the user asked for, not a temporary one) and why."""

    def __init__(self, path: str | os.PathLike, size: tuple[int, int], fps: float, pix_fmt_in: str,
                 output_params: list[str], *, name: str | os.PathLike | None = None) -> None:
        import imageio_ffmpeg

        self.path, self.name = Path(path), Path(name if name is not None else path)
        rate = Fraction(fps).limit_denominator()
        command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-v", "error", "-y", "-f", "rawvideo",
                   "-pix_fmt", pix_fmt_in, "-s", f"{size[0]}x{size[1]}", "-r", str(rate), "-i", "pipe:0",
                   "-an", *output_params, f"file:{self.path}"]  # (file: a name with a colon is no protocol)
        self.log: list[str] = []
        # Its own session: Ctrl-C reaches semflow alone, which then stops FFmpeg (kill) or lets it finish.
        self._proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, start_new_session=True)
        self._reader = threading.Thread(target=self._keep_log, name="semflow-ffmpeg-log", daemon=True)
        self._reader.start()

    def _keep_log(self) -> None:
        for raw in self._proc.stderr:  # read to the end (a full pipe would stall FFmpeg); keep the first lines
            if len(self.log) < FFMPEG_LOG_LINES and (line := raw.decode("utf-8", "replace").strip()):
                self.log.append(line)

    def write(self, data: bytes | np.ndarray) -> None:
        """Hand FFmpeg one raw frame (bytes or a C-contiguous array); an :class:`OutputError` when it has quit."""
        try:
            self._proc.stdin.write(data)
        except (OSError, ValueError):  # BrokenPipeError: FFmpeg quit (a full disk); say why it did
            self._end(timeout=10.0)
            raise self._failure() from None

    def finish(self, name: str | os.PathLike | None = None) -> None:
        """Let FFmpeg finish the file (``name``: what errors name from now on); an :class:`OutputError`
        when it could not (it exited with an error: a full disk, no room for the mp4 index)."""
        if name is not None:
            self.name = Path(name)
        if self._end() != 0:
            raise self._failure()

    def kill(self) -> None:
        """Stop FFmpeg at once (its file is left as it is); nothing when it has ended."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._end()

    def _end(self, timeout: float | None = None) -> int:
        """Close the pipe, wait for FFmpeg (killed after ``timeout`` s) and its log; its exit status."""
        with contextlib.suppress(OSError, ValueError):
            self._proc.stdin.close()  # (flushes the last frame: FFmpeg may have quit)
        try:
            code = self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            code = self._proc.wait()
        self._reader.join(5.0)
        if not self._reader.is_alive():
            self._proc.stderr.close()
        return code

    def _failure(self) -> OutputError:
        reason = ffmpeg_reason(self.log, self._proc.returncode).replace(str(self.path), str(self.name))
        return OutputError(f"{self.name}: FFmpeg could not finish the video: {reason}")


def mp4_complete(path: str | os.PathLike) -> bool:
    """Whether ``path``'s top-level mp4 boxes fill it exactly and include its index (``moov``, written
    last: a file FFmpeg could not finish has none, or a cut one)."""
    end, pos, kinds = os.path.getsize(path), 0, set()
    with open(path, "rb") as f:
        while pos < end:
            f.seek(pos)
            head = f.read(16)
            size = int.from_bytes(head[:4], "big") if len(head) >= 8 else 0
            if size == 1 and len(head) == 16:
                size = int.from_bytes(head[8:16], "big")
            elif size == 0 and len(head) >= 8:
                size = end - pos  # (a last box "to the end of the file")
            if size < 8:
                return False
            kinds.add(head[4:8])
            pos += size
    return pos == end and b"moov" in kinds


class VideoWriter:
    """Write uint8 RGB frames to an H.264 mp4 (yuv420p); the file appears under its name on close.

    Odd frame sizes are padded by one pixel (H.264 in yuv420p needs even sides). Use as a context
    manager; on an exception the partial file is deleted. The partial file is a new file with a random
    name (never a link left under a predictable one). When FFmpeg cannot finish the video (a full disk)
    :meth:`write` or :meth:`close` raise an :class:`OutputError` naming ``name`` (default ``path``; a
    staged file: the output it becomes), the partial file is deleted and a file at ``path`` stays.
    """

    def __init__(self, path: str | os.PathLike, fps: float = 10.0, *, quality: int = 7,
                 preset: str = ENCODER_PRESET, name: str | os.PathLike | None = None) -> None:
        self.path, self.name = Path(path), Path(name if name is not None else path)
        self.fps = float(fps)
        self.quality, self.preset = quality, preset
        self.tmp: Path | None = None
        self._encoder: FFmpegEncoder | None = None
        self._size: tuple[int, int] | None = None
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        """Append one uint8 RGB (H, W, 3) frame; all frames must have the size of the first."""
        frame = to_rgb_uint8(frame, name="video frame")
        h, w = frame.shape[:2]
        if self._encoder is None:
            self.tmp = temp_path_beside(self.path, ".partial.mp4")
            self._size = (w + w % 2, h + h % 2)
            crf = int((1 - self.quality / 10) * 51)  # (imageio-ffmpeg's scale: quality 7 is CRF 15)
            self._encoder = FFmpegEncoder(self.tmp, self._size, self.fps, "rgb24", [
                "-vcodec", "libx264", "-pix_fmt", "yuv420p", "-crf", str(crf), "-preset", self.preset],
                name=self.name)
        elif (w + w % 2, h + h % 2) != self._size:
            raise InputError(f"video frame size changed from {self._size} to {(w, h)}")
        if w % 2 or h % 2:
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
