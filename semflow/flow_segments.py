"""The finished segments of a run's intermediate (:mod:`semflow.flowvideo`): which pairs they hold,
how many bytes they take, and a sequential reader over them."""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import Generator
from pathlib import Path

import numpy as np

from semflow.flowvideo import Flows, Span, parse_segment, read_segment

__all__ = ["Segments"]


class Segments:
    """The finished segments in ``folder`` (listed again when a pair is not found, and when the folder
    changed since: other workers of a batch may have added some) and a sequential reader over them.

    Each file is listed and sized once: an hour of a small video (1800 segments) re-listed the folder
    and stat'ed every segment twice a segment (77 s). The folder's modification time tells whether
    another process changed it; one it changes at the very moment this process adds or removes a
    segment is found at the next listing (a pair not found), so the budget it counts may lag by it."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._spans: list[Span] = []
        self._sizes: dict[Path, int] = {}
        self._stamp: int | None = None  # the folder's modification time when last listed
        self._listed = False
        self._reading: tuple[Span, Generator[Flows, None, None], int] | None = None
        self._damaged: set[Path] = set()  # segments FFmpeg could not read: their pairs are computed again

    def _folder_stamp(self) -> int | None:
        try:
            return self.folder.stat().st_mtime_ns
        except OSError:
            return None

    def _list(self) -> None:
        self._stamp = self._folder_stamp()
        found = [span for p in self.folder.iterdir() if (span := parse_segment(p)) and p not in self._damaged] \
            if self.folder.is_dir() else []
        self._spans, self._listed = sorted(found), True
        self._sizes = {span[5]: self._sizes.get(span[5], -1) for span in self._spans}

    def _refresh(self) -> None:
        """List the folder again if it changed since it was listed (or never was)."""
        if not self._listed or self._folder_stamp() != self._stamp:
            self._list()

    def add(self, path: Path) -> None:
        """Note a segment just completed by this process."""
        if (span := parse_segment(path)) is not None:
            bisect.insort(self._spans, span)
            self._sizes[path] = path.stat().st_size
            if self._listed:
                self._stamp = self._folder_stamp()  # (this process's own change)

    def remove(self, path: Path) -> None:
        """Delete a segment (one that took more than the budget left)."""
        path.unlink(missing_ok=True)
        self._spans = [span for span in self._spans if span[5] != path]
        self._sizes.pop(path, None)
        if self._listed:
            self._stamp = self._folder_stamp()

    def find(self, index: int) -> Span | None:
        """The finished segment holding pair ``index``, or None."""
        for attempt in range(2):
            k = bisect.bisect_right(self._spans, (index, float("inf"))) - 1  # the last one starting at or before
            if k >= 0 and self._spans[k][0] <= index < self._spans[k][0] + self._spans[k][1]:
                return self._spans[k]
            for span in self._spans:  # (segments that overlap: a chunk computed twice)
                if span[0] <= index < span[0] + span[1]:
                    return span
            if attempt == 0:
                self._list()
        return None

    def covered(self, start: int, stop: int) -> int:
        """How many of pairs ``start .. stop - 1`` the finished segments (listed now) hold."""
        self._refresh()
        held: set[int] = set()
        for first, count, *_ in self._spans:
            held.update(range(max(first, start), min(first + count, stop)))
        return len(held)

    def bytes(self) -> int:
        """Bytes of the finished segments (listed now)."""
        self._refresh()
        total = 0
        for path, size in self._sizes.items():
            if size < 0:
                with contextlib.suppress(OSError):
                    self._sizes[path] = size = path.stat().st_size
            total += max(size, 0)
        return total

    def read(self, index: int, palette: np.ndarray | None = None) -> Flows | None:
        """The decoded flows of pair ``index`` (None when no finished segment holds it). Reading pairs in
        order decodes each segment once."""
        span = self.find(index)
        if span is None:
            return None
        if self._reading is None or self._reading[0] != span or self._reading[2] > index:
            self.stop()
            self._reading = (span, read_segment(span[5], span[3], span[2], palette, span[4]), span[0])
        span, frames, at = self._reading
        for _ in range(at, index + 1):
            try:
                flows = next(frames, None)
            except (OSError, RuntimeError, ValueError):  # not a video (FFmpeg's "Could not load meta information")
                flows = None
            if flows is None:  # not a video, or one that ends before the pairs its name gives (cut short)
                self._damaged.add(span[5])
                self._spans = [s for s in self._spans if s[5] != span[5]]
                self.stop()
                return None  # a damaged segment: its pairs are computed again, without decoding it again
        self._reading = (span, frames, index + 1)
        return flows

    def stop(self) -> None:
        """Close the open reader."""
        if self._reading is not None:
            self._reading[1].close()
            self._reading = None
