"""A progress display whose stream refuses writes (a reader gone away, a full disk, a closed file, no
stderr at all) stops drawing, quietly; the run goes on and writes every output."""

from __future__ import annotations

import errno
import io
import sys
import time
from pathlib import Path

import pytest

from semflow.batch.progress import BatchProgress
from semflow.pipeline import RunOptions, run_video
from semflow.progress import progress_bar

REFUSALS = [BrokenPipeError(errno.EPIPE, "Broken pipe"), OSError(errno.ENOSPC, "No space left on device"),
            OSError(errno.EIO, "Input/output error"), ValueError("I/O operation on closed file.")]


class Refusing(io.TextIOBase):
    """stderr that takes ``accept`` writes, then raises ``error`` on every write and flush."""

    def __init__(self, error: Exception, *, tty: bool = False, accept: int = 0) -> None:
        self.error, self.tty, self.accept = error, tty, accept
        self.writes = self.refused = 0

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        self.writes += 1
        if self.writes > self.accept:
            self.refused += 1
            raise self.error
        return len(text)

    def flush(self) -> None:
        if self.writes > self.accept:
            self.refused += 1
            raise self.error

    def close(self) -> None:  # (IOBase's close flushes: on Python 3.13 the refusal, when the stream was
        self.accept = self.writes  # collected, became an "unraisable exception" warning)
        super().close()


def refusing_stderr(monkeypatch: pytest.MonkeyPatch, error: Exception, **kwargs) -> Refusing:
    stream = Refusing(error, **kwargs)
    monkeypatch.setattr(sys, "stderr", stream)
    return stream


@pytest.mark.parametrize("tty", [False, True], ids=["pipe", "terminal"])
@pytest.mark.parametrize("error", REFUSALS, ids=lambda e: type(e).__name__ + str(getattr(e, "errno", "")))
def test_progress_bar_stops_quietly_when_stderr_refuses(monkeypatch, error: Exception, tty: bool) -> None:
    stream = refusing_stderr(monkeypatch, error, tty=tty)
    done = 0
    with progress_bar(3, "flow", enabled=True) as bar:
        for _ in range(3):
            bar.advance()
            done += 1
        if tty:
            time.sleep(0.25)  # the refresh thread draws (10 times a second) while the work goes on
    assert done == 3
    assert stream.refused == 1  # the first refusal ends the display: nothing is written after it


def test_progress_bar_after_a_reader_took_one_line(monkeypatch) -> None:
    """`semflow run ... --progress 2>&1 | head -1`: the first bar is read, the second one's pipe is gone."""
    stream = refusing_stderr(monkeypatch, BrokenPipeError(errno.EPIPE, "Broken pipe"), accept=2)
    with progress_bar(2, "flow", enabled=True) as bar:
        bar.advance(2)
    with progress_bar(2, "video", enabled=True) as bar:
        bar.advance(2)
    assert stream.writes == 3 and stream.refused == 1  # the first bar and its newline, then one refusal


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("term", ["dumb", "DUMB", "unknown", "xterm"])
def test_progress_bars_on_a_dumb_terminal_leave_no_empty_lines(monkeypatch, term: str) -> None:
    """TERM=dumb (Emacs' shell): each finished bar was followed by an empty line. (``unknown``: no terminal
    rich can drive either, in any case.)"""
    monkeypatch.setenv("TERM", term)
    stream = Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    for name in ("flow", "video"):
        with progress_bar(2, name, enabled=None) as bar:
            bar.advance(2)
    text = stream.getvalue()
    assert "flow" in text and "video" in text and "2/2" in text
    if term != "xterm":
        assert [line.split()[0] for line in text.splitlines()] == ["flow", "video"], repr(text)


@pytest.mark.parametrize("stderr", [None, "closed"])
def test_progress_bar_without_stderr(monkeypatch, stderr) -> None:
    """stderr closed (`2>&-` gives None) or a closed file: no display by default, and none when asked."""
    if stderr == "closed":
        stderr = io.StringIO()
        stderr.close()
    monkeypatch.setattr(sys, "stderr", stderr)
    for enabled in (None, True):
        with progress_bar(2, "flow", enabled=enabled) as bar:
            bar.advance(2)
    assert BatchProgress(1).enabled is False


@pytest.mark.parametrize("error", REFUSALS[:2], ids=["BrokenPipeError", "ENOSPC"])
def test_batch_progress_stops_quietly_when_stderr_refuses(monkeypatch, error: Exception) -> None:
    stream = refusing_stderr(monkeypatch, error)
    with BatchProgress(2, enabled=True) as progress:
        progress.add_pairs(3)
        progress.advance_pairs(3)
        progress.clip_done()
        progress.clip_done(failed=True)
    assert progress.failed == 1 and stream.refused == 1


def test_run_writes_every_output_when_stderr_refuses(monkeypatch, make_frames, tmp_path: Path) -> None:
    frames = make_frames(3)
    stream = refusing_stderr(monkeypatch, OSError(errno.ENOSPC, "No space left on device"))
    summary = run_video(frames, tmp_path / "out", RunOptions(method="dis-ultrafast", progress=True))
    assert summary["pairs"] == 2 and stream.refused >= 1  # two bars, each stopped at its first refusal
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {"flow.mp4", "panel.mp4", "summary.json"}
