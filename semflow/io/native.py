"""Keep what C libraries (libpng, libjpeg, OpenCV, FFmpeg) print on stderr out of semflow's output.

Those libraries write straight to file descriptor 2, below Python: "libpng error: ...", "Premature end
of JPEG file", "moov atom not found". semflow reports every problem itself in one line, so the IO layer
runs its decoders inside :func:`native_stderr`, which sends descriptor 2 to a temporary file for the
duration of the call and hands back what was written, for the caller to turn into its own message.

Descriptor 2 belongs to the whole process: while it points at the temporary file, what every other
thread writes to stderr goes there too. So this happens only in processes semflow owns (the CLI, a
batch's workers, compare's method processes: they call :func:`own_native_output`). A program that
imports semflow keeps its stderr and OpenCV's logging as they were; the decoders' own lines reach it,
as they would from OpenCV used directly (semflow's checks do not depend on them).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import cv2

_LOCK = threading.RLock()
MAX_CAPTURED_BYTES = 65536
_sink: tuple[int, Any] | None = None  # (pid, temporary file) the captures of this process write into
_capturing = False  # whether a capture is open (only the thread holding _LOCK changes it)
_owned = False  # whether this process is semflow's own (see the module docstring)
_before: tuple[int, str | None] = (0, None)  # OpenCV's log level and FFmpeg's, before it was
FFMPEG_LOG_ENV = "OPENCV_FFMPEG_LOGLEVEL"


def own_native_output(owned: bool = True) -> bool:
    """Say that semflow owns this process (``owned``) or no longer does; returns what was said before.

    Owned, :func:`native_stderr` captures descriptor 2, OpenCV's own log lines ("[ WARN:0@0.1] global
    loadsave.cpp ...") are silenced, and FFmpeg inside OpenCV is kept quiet unless the user asked for
    its log level (``$OPENCV_FFMPEG_LOGLEVEL``, read when it first opens a file)."""
    global _owned, _before
    before, _owned = _owned, owned
    if owned and not before:
        _before = cv2.utils.logging.getLogLevel(), os.environ.get(FFMPEG_LOG_ENV)
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        os.environ.setdefault(FFMPEG_LOG_ENV, "-8")
    elif before and not owned:  # (the CLI run in-process, by a test or a script: as it was)
        level, ffmpeg_level = _before
        cv2.utils.logging.setLogLevel(level)
        if ffmpeg_level is None:
            os.environ.pop(FFMPEG_LOG_ENV, None)
    return before


@contextlib.contextmanager
def native_stderr() -> Iterator[list[str]]:
    """Capture file descriptor 2 during the block, in a process semflow owns (:func:`own_native_output`;
    elsewhere nothing is captured); the yielded list receives the captured lines after it.

    Lines are decoded as UTF-8 with replacement (libraries may print raw bytes); at most
    ``MAX_CAPTURED_BYTES`` are kept. Where descriptor 2 cannot be duplicated, nothing is captured.
    """
    global _capturing
    lines: list[str] = []
    if not _owned:  # (another program's stderr: its other threads' lines would be lost)
        yield lines
        return
    with _LOCK:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:
            yield lines
            return
        nested = _capturing  # (a capture inside a capture gets a file of its own)
        sink = tempfile.TemporaryFile() if nested else _own_sink()
        os.dup2(sink.fileno(), 2)
        _capturing = True
        try:
            yield lines
        finally:
            _capturing = nested
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read(MAX_CAPTURED_BYTES).decode("utf-8", "replace")
            if nested:
                sink.close()
            else:
                sink.seek(0)
                sink.truncate()
            lines.extend(line.strip() for line in text.splitlines() if line.strip())


def _own_sink() -> Any:
    """This process's temporary file for captures (made once; a forked child makes its own, since the
    parent's shares its offset): one a decoded frame cost 0.12 ms, a third of decoding a 96x72 frame."""
    global _sink
    if _sink is None or _sink[0] != os.getpid():
        _sink = (os.getpid(), tempfile.TemporaryFile())
        atexit.register(_sink[1].close)  # (closed, not left to the interpreter: no ResourceWarning at exit)
    return _sink[1]
