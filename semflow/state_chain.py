"""The video state a run carries from pair to pair, and where it restarts from (see :class:`StateChain`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from semflow.baseline.base import FlowMethod, FlowResult
from semflow.io.video import FrameSource
from semflow.runstore import RunStore
from semflow.video_run import VideoStateStore, state_before
from semflow.video_state import VideoState, restore

STATE_INTERVAL = 5.0
"""Seconds of run time between two saves of the latest video state. A resumed run warms up from the
saved state to the pair it starts at (:func:`~semflow.video_run.state_before`), so it computes at most
this much again; saving after every pair wrote 13 MB a pair for ``semantic`` at 960x540 (18 ms)."""


class StateChain:
    """The video state carried from pair to pair (video mode), or nothing (pair mode).

    :meth:`before` gives the state pair ``index`` is computed with: the one the previous pair left, or,
    when the chain starts mid-video (a resumed run, a drawing that recomputes), the one an uninterrupted
    run would have had there (:func:`semflow.video_run.state_before`: the saved state or a warm-up).
    """

    def __init__(self, method: FlowMethod, source: FrameSource, store: RunStore, *, video: bool,
                 save: bool = False, origin: Callable[[int], int] | None = None) -> None:
        self.method, self.source, self.video, self.save = method, source, video, save
        self.origin = origin
        """For a batch's clip: the pair at which the chain that computed pair i started afresh (its chunk's
        first pair less the warm-up); a new chain starts there, and nothing saved is used. None: a run's
        chain, from frame 0 (its saved states)."""
        self.saved = VideoStateStore(store.work) if video else None
        self.checkpoints = VideoStateStore(store.work / "checkpoint") if video else None
        self.state: VideoState | None = None
        self.last_saved: float | None = None  # time.monotonic() of the last save of the latest state

    def before(self, index: int) -> VideoState | None:
        if self.video and self.origin is not None and index > 0 and self.origin(index) != self.origin(index - 1):
            self.state = None  # the first pair of a batch's chunk: its chain started afresh (after a warm-up)
        if self.video and self.state is None:
            if self.origin is not None:
                self.state = state_before(index, self.method, None, self.source, self.origin(index))
            else:
                saved = _Latest(self.saved, self.checkpoints, index, self.method.state_parts())
                self.state = state_before(index, self.method, saved, self.source) if index > 0 else VideoState()
        return self.state

    def checkpoint(self, index: int) -> None:
        """Keep the state after pair ``index`` apart (the end of a completed intermediate segment): a
        resumed run that computes the pairs of a lost segment again starts from it."""
        if self.video and self.save and self.state is not None:
            self.checkpoints.save(index, self.state)

    def checkpoint_before(self, index: int) -> None:
        """Keep the state before pair ``index`` apart, before computing it (as :meth:`checkpoint` does): the
        first pair past the exact cache (a clip longer than its frame count said), which pass 2 computes
        again from that state; the latest state saved is then usually from a later pair, and the drawing
        warmed up to it from frame 0, computing every cached pair again."""
        if self.video and self.save and index > 0:
            self.before(index)
            self.checkpoint(index - 1)

    def after(self, index: int, result: FlowResult) -> None:
        """Carry the state pair ``index`` left (in memory: :meth:`keep` saves it)."""
        if self.video:
            self.state = result.state

    def keep(self, index: int) -> None:
        """Save the state after pair ``index`` as the latest, once the pair is finished (its record
        written), when :data:`STATE_INTERVAL` seconds have passed since the last save (and after the
        first pair): a run resumed later continues from it, after a warm-up over the pairs in between.
        A pair kept in the intermediate is finished only with its segment: :meth:`checkpoint` then
        saves the state."""
        if self.video and self.save and self.state is not None:
            now = time.monotonic()
            if self.last_saved is None or now - self.last_saved >= STATE_INTERVAL:
                self.saved.save(index, self.state)
                self.last_saved = now

    def start_over(self) -> None:
        """Forget the carried state (the next pair does not follow the last one computed)."""
        self.state = None


class _Latest:
    """The saved video state (of two stores) with the largest pair index before ``pair``; a damaged one
    counts as missing (the warm-up then starts further back, and reaches the same state)."""

    def __init__(self, first: VideoStateStore, second: VideoStateStore, pair: int, parts: dict[str, Any]) -> None:
        self.stores, self.pair, self.parts = (first, second), pair, parts

    def load(self) -> tuple[int, dict[str, np.ndarray]] | None:
        found = [s for s in (self._whole(store) for store in self.stores) if s is not None and s[0] < self.pair]
        return max(found, key=lambda s: s[0], default=None)

    def _whole(self, store: VideoStateStore) -> tuple[int, dict[str, np.ndarray]] | None:
        """The store's saved state if it reads and restores into this method's parts, else None (a state of
        other parts would restore to nothing, and shadow an older good one of the other store)."""
        try:  # whatever a damaged file (truncated zip, bad CRC, odd arrays) makes reading or restoring raise
            saved = store.load()
            if saved is not None and restore(saved[1], None, self.parts) is not None:
                return int(saved[0]), saved[1]
        except Exception:  # noqa: BLE001 - the file is untrusted: any damage is "no saved state here"
            pass
        return None
