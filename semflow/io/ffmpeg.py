"""FFmpeg as an encoder semflow checks: the process that writes a video from raw frames, why it failed
(its log, kept off the terminal), and whether an mp4 it wrote is whole. imageio-ffmpeg's ``write_frames``
never checks FFmpeg's exit status: a full disk left a broken video under the final name. And FFmpeg as
the probe of what OpenCV hides of a video read: a frame size that changes mid-stream, damaged keyframes (:func:`probe_keyframes`)."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from semflow.errors import InputError, OutputError
from semflow.io.files import is_playlist, open_regular_file
from semflow.io.mp4 import box_header
from semflow.limits import FEW_PROCESSES_LEFT, limits_in_force, processes_left

FFMPEG_LOG_LINES = 40
"""The first lines FFmpeg logs that an encoder keeps (the cause comes first, its consequences after)."""
_TAG = re.compile(r"^\[[^\]]*\]\s*")
"""The tag FFmpeg puts before a line: ``[out#0/mp4 @ 0x55d4c0a8e4c0]``."""
_SHOWINFO = re.compile(rb"\bpts_time:\s*(\S+).*?\bs:(\d+)x(\d+)")
"""A frame's time and size in a line of FFmpeg's showinfo filter."""
_CORRUPT = b"corrupt decoded frame"
"""What FFmpeg says of a frame its decoder concealed errors in."""
_PACKETS = re.compile(rb"\bInput stream #\d+:\d+ \(video\): (\d+) packets read")
"""FFmpeg's count (``-v verbose``, at its end) of the packets it read of the stream it decoded: one a frame."""
PROBE_TIMEOUT = 120.0
"""Seconds :func:`probe_keyframes` waits for FFmpeg (a file on a slow mount): then it says nothing."""


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
        limit = "RLIMIT_NPROC" if reason == os.strerror(errno.EAGAIN) else "RLIMIT_FSIZE" \
            if self._proc.returncode == -getattr(signal, "SIGXFSZ", 0) else None  # (ulimit -u, ulimit -f)
        if "Error while opening encoder" in reason and (left := processes_left()) is not None \
                and left < FEW_PROCESSES_LEFT:
            reason, limit = f"its encoder could not open, with {max(left, 0)} processes and threads left to this user", \
                "RLIMIT_NPROC"
        if limit and (limits := limits_in_force(limit)):
            reason += f" (limit in force: {limits})"
        return OutputError(f"{self.name}: FFmpeg could not finish the video: {reason}")


def mp4_complete(path: str | os.PathLike) -> bool:
    """Whether ``path``'s top-level mp4 boxes fill it exactly and include its index (``moov``, written
    at the end, then moved first: a file FFmpeg could not finish has none, or a cut one)."""
    end, pos, kinds = os.path.getsize(path), 0, set()
    with open(path, "rb") as f:
        while pos < end:
            f.seek(pos)
            try:
                kind, _, size = box_header(f.read(16), end - pos)
            except ValueError:  # (cut short, smaller than its header, past the end: damaged)
                return False
            kinds.add(kind)
            pos += size
    return b"moov" in kinds


@dataclass(frozen=True)
class KeyframeReport:
    """What a video's keyframes, decoded by FFmpeg, say that OpenCV hides (:func:`probe_keyframes`)."""

    size_change: tuple[float, tuple[int, int], tuple[int, int]] | None = None
    """The first change of frame size: (seconds from the first keyframe, (W, H) before, (W, H) after).
    OpenCV scales every frame to the first one's size and reports that size: read stretched, silently."""
    corrupt: tuple[float, ...] = ()
    """Seconds (from the first keyframe) of the keyframes FFmpeg decoded damaged, concealing the errors (as
    many as there are; each time the damaged keyframe's or, where the decoder ran ahead, an earlier one's)."""
    packets: int | None = None
    """The packets FFmpeg read of the stream, all of it (one a frame: as many as OpenCV decodes), None when unsaid:
    a frame count where the container keeps none (Matroska, WebM, MPEG-TS: OpenCV estimates one from the duration
    and the fastest frame rate) or an AVI's counts the empty chunks of frames shown longer. Measured: no slower."""

    def refusal(self) -> str | None:
        """Why the video cannot be read as one clip, in a line (None: it can)."""
        if self.size_change is None:
            return None
        seconds, (w0, h0), (w1, h1) = self.size_change
        return (f"its frame size changes from {w0}x{h0} to {w1}x{h1} {seconds:.2f} s in (OpenCV would stretch the"
                f" later frames); re-encode it at one size, e.g. ffmpeg -i IN -vf scale={w0}:{h0} OUT")

    def damage(self) -> str | None:
        """A line on damaged keyframes (None: none)."""
        if not self.corrupt:
            return None
        return (f"{len(self.corrupt)} of its keyframes decode damaged (the first {self.corrupt[0]:.2f} s in; the"
                " file is corrupt): the frames up to the next whole keyframe may be garbled, their flows wrong")


AHEAD_MAX_BYTES = 64 * 2**20
"""The largest file :func:`keyframes_ahead` probes ahead: a small clip's check is mostly FFmpeg's start, a
large one's probe is short beside its flow, and a probe in a thread runs on to its end when the process is
stopped (an hour of 1080p: about 9 s)."""
_ahead: dict[tuple, Future] = {}  # probes keyframes_ahead started, by _probe_keyframes' arguments
_ahead_lock = threading.Lock()


@contextlib.contextmanager
def keyframes_ahead(paths: list[Path], *, whole: bool = True, count: int = 8,
                    threads: int = 4) -> Iterator[Callable[[int], None]]:
    """For a loop that checks ``paths`` one after the other (a batch's driver: 15 ms the probe of a small clip,
    most of a check): ``ahead(k)``, called before ``paths[k]``'s check, starts the whole-file probes of the
    ``count`` paths after it in ``threads`` threads, so that their :func:`probe_keyframes` finds them done
    (or waits for them: never a second FFmpeg). Probes not started when the block ends are dropped; files over
    :data:`AHEAD_MAX_BYTES` are left to their checks. ``whole`` False (the checks probe the first seconds only:
    ``--max-frames``): none are started."""
    pool = ThreadPoolExecutor(threads, thread_name_prefix="semflow-keyframes")
    started: set[int] = set()
    submitted: list[tuple[tuple, Future]] = []

    def ahead(k: int) -> None:
        for i in range(k + 1, min(k + 1 + count, len(paths)) if whole else 0):
            if i not in started:
                started.add(i)
                with contextlib.suppress(OSError):
                    if not os.path.isfile(paths[i]) or os.path.getsize(paths[i]) > AHEAD_MAX_BYTES:
                        continue
                    key = _probe_key(paths[i], None)
                    with _ahead_lock:
                        _ahead[key] = future = pool.submit(_probe_keyframes, *key)
                    submitted.append((key, future))

    try:
        yield ahead
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        # A probe still running stays for a check that may wait for it, until it ends (its report is then in
        # _probe_keyframes' cache); it used to stay for good: every stopped batch of a long-lived process added some.
        for key, future in submitted:
            future.add_done_callback(functools.partial(_forget_ahead, key))


def _forget_ahead(key: tuple, future: Future) -> None:
    """Drop ``future`` (a :func:`keyframes_ahead` probe, ended) from the probes ahead, unless replaced."""
    with _ahead_lock:
        if _ahead.get(key) is future:
            del _ahead[key]


def _probe_key(path: str | os.PathLike, within: float | None) -> tuple[Path, tuple[int, int], float | None]:
    """:func:`_probe_keyframes`' arguments for ``path`` as it stands (OSError when it is gone)."""
    info = os.stat(path)
    return Path(path).resolve(), (info.st_size, info.st_mtime_ns), within


def probe_keyframes(path: str | os.PathLike, *, within: float | None = None) -> KeyframeReport:
    """Decode the keyframes alone of the first video stream of ``path`` (within ``within`` seconds of its
    first frame when given) with FFmpeg: where its frame size changes, and which keyframes are damaged
    (:class:`KeyframeReport`). Codecs change size at keyframes (a VP9 or AV1 frame size changed between them
    is missed). 0.15 s for a minute of 1080p H.264, once a process for a file as it stands. An empty report
    when FFmpeg cannot read the file or takes longer than :data:`PROBE_TIMEOUT`."""
    key = _probe_key(path, within)
    with _ahead_lock:
        started = _ahead.pop(key, None)  # (by keyframes_ahead: its report, once done, is in the cache too)
    if started is not None and not started.cancel():
        return started.result()
    return _probe_keyframes(*key)


@functools.lru_cache(maxsize=4096)  # (a batch checks every clip, then each again when it opens: 64 missed at 200)
def _probe_keyframes(path: Path, stamp: tuple[int, int], within: float | None) -> KeyframeReport:
    """:func:`probe_keyframes` of ``path`` as it stands (``stamp``: its size and modification time)."""
    import imageio_ffmpeg

    try:
        ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:  # (no FFmpeg for this platform: the video is read unprobed; writing one says why)
        return KeyframeReport()
    try:  # a playlist, refused by its check, is not handed to FFmpeg (it would read the files it names)
        fd = open_regular_file(path)
        try:
            if is_playlist(fd):
                return KeyframeReport()
        finally:
            os.close(fd)
    except (InputError, OSError):
        return KeyframeReport()
    command = [ffmpeg, "-hide_banner", "-nostats", "-nostdin", "-v", "verbose", "-skip_frame", "nokey",
               "-i", b"file:" + os.fsencode(path), "-map", "0:v:0", "-an", "-vf", "showinfo", "-f", "null", "-"]
    try:
        log = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             timeout=PROBE_TIMEOUT, check=False).stderr
    except (OSError, subprocess.TimeoutExpired):
        return KeyframeReport()
    packets = int(counted[1]) if (counted := _PACKETS.search(log)) else None
    first: tuple[float, tuple[int, int]] | None = None
    corrupt, pending = [], 0  # damaged frames said, not yet shown (the decoder says it before showinfo)
    for line in log.splitlines():
        pending += _CORRUPT in line
        if not (found := _SHOWINFO.search(line)):
            continue
        try:
            seconds, size = float(found[1]), (int(found[2]), int(found[3]))
        except ValueError:  # (pts_time:NOPTS)
            continue
        first = first or (seconds, size)
        if within is not None and seconds - first[0] >= within:
            break
        if pending:
            corrupt.append(seconds - first[0])
            pending -= 1
        if size != first[1]:
            return KeyframeReport(size_change=(seconds - first[0], first[1], size), corrupt=tuple(corrupt),
                                  packets=packets)
    return KeyframeReport(corrupt=tuple(corrupt), packets=packets)
