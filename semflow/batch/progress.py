"""The progress display of a batch: clips done, pairs done, pairs per second and the time left."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from semflow.progress import on_terminal, quiet_console


class _Rate(ProgressColumn):
    """The task's rate in its own unit (``task.fields["unit"]``: clips/s on the clips bar, pairs/s on the other)."""

    def render(self, task: Any) -> Text:
        unit = task.fields.get("unit", "pairs")
        return Text(f"{task.speed:.1f} {unit}/s" if task.speed else "", style="progress.data.speed")


class BatchProgress:
    """Two bars on stderr (clips and pairs) when ``enabled`` (default: stderr is a terminal); else silent.
    A stderr that refuses a write only stops the display (:class:`~semflow.progress.QuietStream`)."""

    def __init__(self, clips: int, *, enabled: bool | None = None) -> None:
        self.enabled = on_terminal(enabled)
        self.failed = 0
        self._progress: Progress | None = None
        if self.enabled:
            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      _Rate(), TimeRemainingColumn(), console=quiet_console(), transient=True)
            self._clips = self._progress.add_task("clips", total=clips, unit="clips")
            self._pairs = self._progress.add_task("pairs", total=0, unit="pairs")

    def __enter__(self) -> BatchProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Take the bars off the terminal for the block: a line printed meanwhile (a clip's result) stays
        above them, where the running display drew over it (and left old bars behind)."""
        if self._progress is None or not self._progress.live.is_started:
            yield
            return
        self._progress.stop()  # (transient: the bars are erased)
        render = getattr(self._progress.live, "_live_render", None)
        if render is not None and hasattr(render, "_shape"):  # else the restart erases as many lines above
            render._shape = None                                # as the bars took: the printed line among them
        try:
            yield
        finally:
            self._progress.start()

    def add_clips(self, count: int) -> None:
        """Add ``count`` clips to the total (clips submitted while the batch runs join it)."""
        if self._progress is not None:
            total = self._progress.tasks[self._clips].total or 0
            self._progress.update(self._clips, total=total + count)

    def add_pairs(self, count: int) -> None:
        """Add ``count`` (estimated) pairs to the total (less than 0: pairs a clip turned out not to have)."""
        if self._progress is not None:
            total = self._progress.tasks[self._pairs].total or 0
            self._progress.update(self._pairs, total=total + count)

    def advance_pairs(self, count: int) -> None:
        """``count`` more pairs are done (computed or found finished)."""
        if self._progress is not None and count:
            self._progress.advance(self._pairs, count)

    def clip_done(self, failed: bool = False) -> None:
        """One more clip is done (or failed)."""
        self.failed += failed
        if self._progress is not None:
            self._progress.advance(self._clips, 1)
            if failed:
                self._progress.update(self._clips, description=f"clips ({self.failed} failed)")
