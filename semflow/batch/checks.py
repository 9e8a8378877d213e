"""The clips a batch's driver has still to check, free of Ray: checked one at a time between its tasks.

A batch's clips are checked in their order (:func:`semflow.batch.clips.check_clip`: about 10 ms a small clip,
most of it FFmpeg's keyframe probe, which :func:`~semflow.io.ffmpeg.keyframes_ahead` starts a few clips ahead
in threads). The workers need not wait for them all: the driver hands out the first clips' tasks as soon as
those clips pass, and checks the next clip between tasks. Only two things hold the tasks back, as when every
clip was checked first:

- a fresh batch clears the earlier outputs of each clip's folder at its check, so a batch stopped after its
  first results leaves no earlier run's outputs that a resumed one would take for its own: the tasks wait for
  the check of the last clip whose folder exists when the checks begin (none when every folder is new);
- the workers after the first are started once the clips checked have as many tasks as workers wanted (or
  every clip is checked), before any task: as many workers as before, and a method they cannot build still
  stops the batch before any work.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from semflow.batch.clips import ClipState
from semflow.io.ffmpeg import keyframes_ahead


class CheckRound:
    """The clips of one round of checks (those submitted since the last), checked in order: :meth:`next`
    gives the next one; ``tasks`` counts the tasks the batch's pending clips ask of the workers (each clip's
    chunks to compute, at least 1: its drawing), those of this round as checked."""

    def __init__(self) -> None:
        self._clips: list[ClipState] = []
        self._next = 0
        self._clear_until = 0  # the clips up to this one are checked before any task (their folders exist)
        self._stack = contextlib.ExitStack()
        self._ahead: Callable[[int], None] | None = None
        self.tasks = 0

    @property
    def left(self) -> bool:
        """Whether clips of this round are still to check."""
        return self._next < len(self._clips)

    def begin(self, clips: list[ClipState], batch: Iterable[ClipState], *, whole: bool, fresh: bool) -> None:
        """Start checking ``clips`` (new in ``batch``, its clips in order); ``whole``: probe their whole files
        ahead (not with ``max_frames``); ``fresh``: a fresh batch, whose checks clear the clips' folders."""
        self.close()
        self._clips, self._next = clips, 0
        self.tasks = sum(max(len(c.chunks) if c.opened else c.planned, 1) for c in batch
                         if c.prepared and c.result.status == "pending")
        exists = [k + 1 for k, clip in enumerate(clips) if fresh and os.path.lexists(clip.result.out_dir)]
        self._clear_until = max(exists, default=0)
        self._ahead = self._stack.enter_context(keyframes_ahead([Path(c.item.path) for c in clips], whole=whole))

    def next(self) -> ClipState | None:
        """The next clip to check (the keyframe probes of those after it started), or None when every one
        is (the probes' threads let go)."""
        if not self.left or self._ahead is None:
            self.close()
            return None
        self._ahead(self._next)
        self._next += 1
        return self._clips[self._next - 1]

    def checked(self, clip: ClipState) -> None:
        """``clip`` (the last :meth:`next` gave) is checked: its tasks count when it is pending."""
        if clip.result.status == "pending":
            self.tasks += max(clip.planned, 1)

    def holding(self, wanted: int | None) -> bool:
        """Whether the tasks must wait for the next check: a folder still to clear, or ``wanted`` workers
        (None: none to start) and fewer tasks known."""
        return self.left and (self._next < self._clear_until or (wanted is not None and self.tasks < wanted))

    def close(self) -> None:
        """Stop checking (the batch stopped, or every clip is checked): the probes not begun are dropped."""
        self._stack.close()
        self._ahead, self._clips, self._next = None, [], 0
