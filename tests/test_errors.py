"""semflow.errors.reason: the one short line our own messages quote from an exception's text."""

from __future__ import annotations

import warnings

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
