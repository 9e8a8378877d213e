"""A progress bar on a terminal, silence elsewhere (pipes, CI, tests).

A display is never worth a run: the bar writes through :class:`QuietStream`, which stops drawing, quietly,
at the first write its stream refuses (a reader gone away, a full disk, a closed file), and the run goes on.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

STREAM_ERRORS = (OSError, ValueError)
"""What a write to a stream that cannot take it raises: BrokenPipeError, ENOSPC, EIO (OSError); a closed file (ValueError)."""


class QuietStream:
    """``stream`` (stderr when None) for a progress display: the first write or flush it refuses (or no
    stream at all: stderr closed) turns it ``broken``, and from then on writes are dropped. Nothing it
    raises reaches rich, whose own answer to a broken pipe is to point stdout at /dev/null and exit."""

    def __init__(self, stream: TextIO | None = None) -> None:
        stream = sys.stderr if stream is None else stream
        # stderr may be rich's redirection of an outer display: write to the stream behind it
        self._stream = getattr(stream, "rich_proxied_file", stream)
        self.broken = self._stream is None

    def _call(self, name: str, *args: Any) -> Any:
        if not self.broken:
            try:
                return getattr(self._stream, name)(*args)
            except STREAM_ERRORS:
                self.broken = True
        return None

    def write(self, text: str) -> int:
        self._call("write", text)
        return len(text)

    def flush(self) -> None:
        self._call("flush")

    def isatty(self) -> bool:
        return bool(self._call("isatty"))

    def fileno(self) -> int:
        if self.broken:
            raise OSError("the progress display's stream is gone")
        return self._stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self._stream, "encoding", None) or "utf-8"


def on_terminal(enabled: bool | None) -> bool:
    """``enabled``, or when it is None: whether stderr is a terminal (False when stderr is closed)."""
    return QuietStream().isatty() if enabled is None else enabled


DUMB_TERMS = ("dumb", "unknown")
"""``$TERM`` values of a terminal that cannot move its cursor (as rich tells them): a bar is drawn there once, done."""


def quiet_console() -> Console:
    """A rich console on stderr (never stdout) that a failing stream cannot break: see :class:`QuietStream`.
    On a dumb terminal (``TERM=dumb``: Emacs' shell) it is no terminal: rich drew each finished bar there
    followed by an empty line (its newline for a terminal's last live line)."""
    dumb = os.environ.get("TERM", "").lower() in DUMB_TERMS
    return Console(file=QuietStream(), force_terminal=False if dumb else None)  # type: ignore[arg-type]


class _Bar:
    def __init__(self, progress: Progress | None, task: int | None) -> None:
        self._progress, self._task = progress, task

    def advance(self, steps: int = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, steps)


@contextlib.contextmanager
def progress_bar(total: int | None, description: str, *, enabled: bool | None = None) -> Iterator[_Bar]:
    """A bar with ``total`` steps on stderr; ``enabled=None`` means: only when stderr is a terminal."""
    if not on_terminal(enabled):
        yield _Bar(None, None)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=False, console=quiet_console()) as progress:
        yield _Bar(progress, progress.add_task(description, total=total))
