"""Which task of a batch comes next, free of Ray: in O(log n) a task for n clips, never a scan of them all.

The order: first the drawing of a clip whose chunks are all done (the first such clip in the batch's
order: drawn early, a finished clip frees its work folder), then the next chunk of the first clip that
has chunks left, then the next clip's folder is opened (a clip is opened only when its first task is due:
the driver holds an open, locked folder only for the clips being worked on). A resumed clip whose pairs
were all finished before (checked unopened: only its drawing is left) is opened when its drawing is due.

The queue keeps the clips that may have a task in two heaps by their place in the batch (checked again
when they come to the top: an entry whose clip has nothing left to do is dropped there) and the clips
not opened yet in order; :meth:`TaskQueue.update` files a clip again after its state changed.
"""

from __future__ import annotations

import collections
import heapq

from semflow.batch.clips import ClipState
from semflow.batch.work import Chunk

Task = tuple[str, ClipState, Chunk | None]
"""(kind, clip, chunk): ``open`` (the driver opens the clip's folder), ``finish`` (draw it), ``compute``
(one chunk) or ``single`` (the whole clip in one pass, ``max_flow`` given)."""


def _drawable(clip: ClipState) -> bool:
    """Whether the clip's drawing is due: opened, every chunk done and none running, not drawn yet."""
    return (clip.result.status == "pending" and clip.opened and not clip.chunks and not clip.running
            and not clip.drawing and not clip.single_pass)


class TaskQueue:
    """The tasks of a batch's clips in the order of the module's docstring."""

    def __init__(self) -> None:
        self._draws: list[tuple[int, ClipState]] = []  # heap by clip order: clips that may be drawable
        self._chunked: list[tuple[int, ClipState]] = []  # heap by clip order: clips that may have chunks
        self._filed: tuple[set[int], set[int]] = (set(), set())  # the orders in each heap (no clip twice)
        self._closed: collections.deque[ClipState] = collections.deque()  # checked, not opened, in order

    def add(self, clip: ClipState, draw_only: bool = False) -> None:
        """A clip checked and pending, to be opened when its first task is due (``draw_only``: nothing but
        its drawing left, as its work folder said: due as soon as the drawings before it)."""
        self._closed.append(clip)
        if draw_only:
            self._file(0, clip)

    def update(self, clip: ClipState) -> None:
        """File the clip again after it was opened, or a task of it came back or was sent back."""
        if _drawable(clip):
            self._file(0, clip)
        if clip.chunks and clip.result.status == "pending":
            self._file(1, clip)

    def requeue(self, clip: ClipState, kind: str, chunk: Chunk | None) -> None:
        """A task that never ran (its worker was restarting) is due again, first of its clip's."""
        if kind == "finish":
            clip.drawing = False
        elif chunk is not None:
            clip.chunks.appendleft(chunk)
        self.update(clip)

    def _file(self, which: int, clip: ClipState) -> None:
        if clip.order not in self._filed[which]:
            self._filed[which].add(clip.order)
            heapq.heappush(self._draws if which == 0 else self._chunked, (clip.order, clip))

    def _drop(self, which: int) -> None:
        heap = self._draws if which == 0 else self._chunked
        self._filed[which].discard(heapq.heappop(heap)[0])

    def next(self) -> Task | None:
        """The next task (a drawing marks its clip ``drawing``, a chunk leaves its clip's queue), or None
        when no clip has one now."""
        while self._draws:
            clip = self._draws[0][1]
            if clip.result.status == "pending" and not clip.opened:
                return "open", clip, None  # (draw_only: opened, it is filed again or dropped here)
            self._drop(0)
            if _drawable(clip):
                clip.drawing = True
                return "finish", clip, None
        while self._chunked:
            clip = self._chunked[0][1]
            if clip.result.status == "pending" and clip.chunks:
                return ("single" if clip.single_pass else "compute"), clip, clip.chunks.popleft()
            self._drop(1)
        while self._closed:
            clip = self._closed.popleft()
            if clip.result.status == "pending" and not clip.opened:
                return "open", clip, None
        return None
