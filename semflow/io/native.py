"""Keep what C libraries (libpng, libjpeg, OpenCV, FFmpeg) print on stderr out of semflow's output.

Those libraries write straight to file descriptor 2, below Python: "libpng error: ...", "Premature end
of JPEG file", "moov atom not found". semflow reports every problem itself in one line, so the IO layer
runs its decoders inside :func:`native_stderr`, which sends descriptor 2 to a temporary file for the
duration of the call and hands back what was written, for the caller to turn into its own message.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterator

import cv2

_LOCK = threading.RLock()
MAX_CAPTURED_BYTES = 65536

# OpenCV's own log lines ("[ WARN:0@0.1] global loadsave.cpp ...") go through its logger: silence it.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
# FFmpeg inside OpenCV reads this when it first opens a file; keep it quiet unless the user asks.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


@contextlib.contextmanager
def native_stderr() -> Iterator[list[str]]:
    """Capture file descriptor 2 during the block; the yielded list receives the captured lines after it.

    Lines are decoded as UTF-8 with replacement (libraries may print raw bytes); at most
    ``MAX_CAPTURED_BYTES`` are kept. Where descriptor 2 cannot be duplicated, nothing is captured.
    """
    lines: list[str] = []
    with _LOCK:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:
            yield lines
            return
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield lines
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                sink.seek(0)
                text = sink.read(MAX_CAPTURED_BYTES).decode("utf-8", "replace")
                lines.extend(line.strip() for line in text.splitlines() if line.strip())
