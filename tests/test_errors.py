"""semflow.errors.reason: the one short line our own messages quote from an exception's text."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from semflow.errors import FlowRangeWarning, SemflowWarning, reason, warn, warnings_as_lines


def test_reason_takes_the_first_line_and_the_first_sentence_of_a_long_one() -> None:
    assert reason(ValueError("bad header\nsecond line")) == "bad header"
    assert reason(KeyError()) == "KeyError"
    long = "reader failed: not a ZIP archive. This is an internal error. " + "More words follow here. " * 10
    assert reason(RuntimeError(long)) == "reader failed: not a ZIP archive"


def test_reason_cuts_a_long_sentence_at_a_word() -> None:
    text = "word " * 100
    short = reason(RuntimeError(text), 60)
    assert short.endswith("...") and len(short) <= 63
    assert short[:-3].split() == ["word"] * len(short[:-3].split())  # no word cut in half


@given(st.text(max_size=400), st.integers(min_value=20, max_value=200))
def test_reason_is_always_one_short_nonempty_line(text: str, limit: int) -> None:
    line = reason(RuntimeError(text), limit)
    assert line and "\n" not in line and "\r" not in line
    assert len(line) <= limit + 3


def test_the_api_warns_and_the_command_line_says_each_warning_as_a_line(capsys) -> None:
    """A library does not print: run warnings (a gap in a folder's numbering, a truncated video) were
    `semflow: warning:` lines on the stderr of every program that called the API."""
    with pytest.warns(SemflowWarning, match=r"^a\\nb$"):
        warn("a\nb")
    assert capsys.readouterr().err == ""
    with warnings_as_lines():
        warn("a\nb")
        warn("a\nb")  # each time
        warnings.warn("kept", FlowRangeWarning, stacklevel=1)
        with pytest.warns(DeprecationWarning):  # other warnings: Python's own handling
            warnings.warn("not ours", DeprecationWarning, stacklevel=1)
    assert capsys.readouterr().err.splitlines() == ["semflow: warning: a\\nb"] * 2 + ["semflow: warning: kept"]
    with pytest.warns(SemflowWarning):  # as it was outside the block again
        warn("x")
    assert capsys.readouterr().err == ""


# --- signals_held: signals kept while a block runs, then acted on ------------------------------------------


@pytest.fixture
def recorded() -> Iterator[list[str]]:
    """SIGUSR1, SIGUSR2 and SIGXCPU handled by noting their names (the handlers of before put back after)."""
    import signal

    got: list[str] = []
    names = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGXCPU)
    previous = {signum: signal.signal(signum, lambda s, frame: got.append(signal.Signals(s).name)) for signum in names}
    try:
        yield got
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def test_signals_held_are_acted_on_after_the_block_once_each_in_order(recorded: list[str]) -> None:
    import signal

    from semflow.errors import signals_held

    handlers = signal.getsignal(signal.SIGUSR1), signal.getsignal(signal.SIGUSR2)
    with signals_held((signal.SIGUSR1, signal.SIGUSR2)):
        for signum in (signal.SIGUSR2, signal.SIGUSR1, signal.SIGUSR2):
            signal.raise_signal(signum)
        assert recorded == []
    assert recorded == ["SIGUSR2", "SIGUSR1"]
    assert (signal.getsignal(signal.SIGUSR1), signal.getsignal(signal.SIGUSR2)) == handlers


def test_signals_held_by_default_are_those_that_stop_the_command(recorded: list[str]) -> None:
    """Ctrl-C, SIGTERM and SIGXCPU (the CPU-time limit, which the command turns into Terminated too)."""
    import signal

    from semflow.errors import signals_held

    with signals_held():
        signal.raise_signal(signal.SIGXCPU)
        assert recorded == []
    assert recorded == ["SIGXCPU"]


def test_a_signal_whose_handler_python_does_not_know_is_not_held(recorded: list[str], monkeypatch) -> None:
    """A handler C code installed (``getsignal`` says None) is left in force: it could not be put back."""
    import signal

    from semflow.errors import signals_held

    known = signal.getsignal
    monkeypatch.setattr(signal, "getsignal", lambda signum: None if signum == signal.SIGUSR1 else known(signum))
    with signals_held((signal.SIGUSR1, signal.SIGUSR2)):
        signal.raise_signal(signal.SIGUSR1)
        signal.raise_signal(signal.SIGUSR2)
        assert recorded == ["SIGUSR1"]
    assert recorded == ["SIGUSR1", "SIGUSR2"]


def test_signals_held_outside_the_main_thread_just_run_the_block() -> None:
    import threading

    from semflow.errors import signals_held

    ran: list[bool] = []

    def block() -> None:
        with signals_held():
            ran.append(True)

    thread = threading.Thread(target=block)
    thread.start()
    thread.join()
    assert ran == [True]


def test_a_block_that_raises_still_puts_the_handlers_back(recorded: list[str]) -> None:
    import signal

    from semflow.errors import signals_held

    handler = signal.getsignal(signal.SIGUSR1)
    with pytest.raises(KeyError), signals_held((signal.SIGUSR1,)):
        signal.raise_signal(signal.SIGUSR1)
        raise KeyError("the block's own failure")
    assert signal.getsignal(signal.SIGUSR1) is handler and recorded == ["SIGUSR1"]
