"""Peak resident memory of this process while a block of code runs (Linux /proc, else getrusage)."""

from __future__ import annotations

import resource
import sys
import threading
from pathlib import Path

_PAGE = resource.getpagesize()
_STATM = Path("/proc/self/statm")


def current_rss_bytes() -> int:
    """Resident set size of this process now, in bytes (0 where unknown)."""
    try:
        return int(_STATM.read_text().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


class PeakMemory:
    """Context manager sampling RSS every ``interval`` seconds; ``peak_mb`` is the highest seen.

    ``peak_mb`` is the whole process (Python, libraries, caches included); ``delta_mb`` is the peak
    above what the process held when the block started.
    """

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.start_bytes = 0
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_bytes = max(self.peak_bytes, current_rss_bytes())

    def __enter__(self) -> PeakMemory:
        self.start_bytes = self.peak_bytes = current_rss_bytes()
        if self.start_bytes == 0 and sys.platform != "linux":
            self.start_bytes = self.peak_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_bytes = max(self.peak_bytes, current_rss_bytes())

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 2**20

    @property
    def delta_mb(self) -> float:
        return (self.peak_bytes - self.start_bytes) / 2**20
