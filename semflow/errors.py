"""User-facing errors.

Every problem a user can cause (a missing file, a corrupt .flo, an unknown method name) raises
:class:`SemflowError` with a one-line message. The CLI prints that line and exits non-zero; it never
shows a traceback for these.
"""

from __future__ import annotations

import contextlib
import difflib
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import Any


class SemflowError(Exception):
    """An error caused by the input or the options, with a one-line message for the user."""


class InputError(SemflowError):
    """A file or array that cannot be used as given (missing, unreadable, wrong shape or type)."""


class WeightsError(SemflowError):
    """A weights file that is missing, truncated or does not fit the model."""


class OutputError(SemflowError):
    """An output location that cannot or may not be written (unwritable, a link, locked by another run)."""


class OutputFileError(OutputError, OSError):
    """An output file the system would not let us write (a full disk, a folder in its place, a file in
    place of its folder): one line naming the file; an :class:`OSError` too, with its ``errno``."""

    def __init__(self, errno: int | None, strerror: str, filename: str) -> None:
        OSError.__init__(self, errno, strerror, filename)

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"


@contextlib.contextmanager
def writing_output(path: object) -> Iterator[None]:
    """Turn an OSError of writing the output ``path`` in the block into an :class:`OutputFileError` (a
    :class:`SemflowError`: what the API promises for every problem a user can cause)."""
    try:
        yield
    except OutputFileError:
        raise
    except OSError as exc:
        raise OutputFileError(exc.errno, exc.strerror or str(exc), str(exc.filename or path)) from None


def file_error(exc: OSError) -> str:
    """An OSError as semflow says it in one line: ``FILE: reason`` (its reason alone when it names no file)."""
    said = exc.strerror or str(exc)
    return f"{exc.filename}: {said}" if exc.filename else said


class ResourceError(SemflowError):
    """The work would need more memory (or another resource) than the machine has."""


class Terminated(BaseException):
    """SIGTERM (``timeout``, a scheduler, ``docker stop``), raised where the command is: it unwinds like
    Ctrl-C, so every clean-up runs (staging folders, partial videos, child processes)."""


class CpuTimeExceeded(Terminated):
    """SIGXCPU: the process used the CPU time its soft limit allows (``ulimit -S -t``; the hard limit then
    kills it a second or so later): it unwinds as SIGTERM does, so clean-ups run and ``--resume`` continues."""


def terminated_by_signal(signum: int, frame: Any) -> None:
    """The SIGTERM (and SIGXCPU) handler of the ``semflow`` command: raise :class:`Terminated`
    (:class:`CpuTimeExceeded` for SIGXCPU)."""
    raise CpuTimeExceeded if signum == getattr(signal, "SIGXCPU", None) else Terminated


STOPPING_SIGNALS = (signal.SIGTERM,) + ((signal.SIGXCPU,) if hasattr(signal, "SIGXCPU") else ())
"""The signals the ``semflow`` command turns into :class:`Terminated` (where their action is the default)."""


@contextlib.contextmanager
def signals_held(signums: tuple[int, ...] = (signal.SIGINT, *STOPPING_SIGNALS)) -> Iterator[None]:
    """Hold the signals ``signums`` (Ctrl-C, SIGTERM) while the block runs, then act on them through the
    handlers in force before it (which raise there): the block is never cut short and no signal is lost.
    Around work a signal must not split (moving a command's outputs in, a batch's clean-up) and around an
    import that loads C extensions whose loading runs Python code (matplotlib's pybind11 enums: an exception
    raised inside one failed the import and aborted Python at its exit, SIGABRT). Main thread only
    (elsewhere nothing is held); a signal whose handler Python does not know (installed by C) is not held."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {signum: signal.signal(signum, lambda got, frame: caught.append(got))
                for signum in signums if signal.getsignal(signum) is not None}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(caught):
            signal.raise_signal(signum)  # (through the handler just put back: the first raises here)


class SemflowWarning(UserWarning):
    """Something the user must know that does not stop the work (a gap in a folder's frame numbers, a
    video shorter than its container says, a sample left out): a Python warning from the API, one
    ``semflow: warning:`` line from the command line (:func:`warnings_as_lines`)."""


class FlowRangeWarning(SemflowWarning):
    """Flow written to a format that cannot hold all of it (KITTI ``.png`` beyond +-512 px): those pixels
    were written as unknown."""


def reason(exc: BaseException, limit: int = 160) -> str:
    """One short line that says why ``exc`` happened, for a message of our own: the first line of its
    text (its class name when it has none), cut to its first sentence when longer than ``limit``
    characters and that fits, else at the last space before the limit, with "..." added."""
    lines = str(exc).strip().splitlines()
    text = lines[0].strip() if lines else ""
    if not text:
        return type(exc).__name__
    if len(text) <= limit:
        return text
    end = text.find(". ", 0, limit)
    if end > 0:
        return text[:end]
    cut = text.rfind(" ", 0, limit)
    return text[:cut if cut > limit // 2 else limit].rstrip(" ,;:") + "..."


def counted(count: int, noun: str) -> str:
    """``"1 pair"``, ``"3 pairs"``: a count and its noun, in the plural unless one."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def did_you_mean(name: str, choices: Sequence[str], *, cutoff: float = 0.75) -> str:
    """``" (did you mean X?)"`` with the choice closest to ``name``, case aside (:func:`difflib.get_close_matches`
    at ``cutoff``), or ``""`` when none is close: for a message naming a misspelt choice."""
    lowered = [choice.lower() for choice in choices]
    near = difflib.get_close_matches(str(name).lower(), lowered, n=1, cutoff=cutoff)
    return f" (did you mean {choices[lowered.index(near[0])]}?)" if near else ""


def one_line(text: str) -> str:
    """``text`` with every character that is not printable (a newline in a file name) escaped as Python
    writes it (``\\n``), so that a message stays one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def warn(message: str) -> None:
    """Warn (:class:`SemflowWarning`, one line: :func:`one_line`) about something the user must know that
    does not stop the work (it is also recorded in the outputs where it concerns them). A library does not
    print: the API's caller sees a Python warning (to filter, record or raise as they choose), the
    command line one ``semflow: warning:`` line."""
    warnings.warn(one_line(message), SemflowWarning, stacklevel=2)


@contextlib.contextmanager
def warnings_as_lines() -> Iterator[None]:
    """Inside the block, show every :class:`SemflowWarning` as it is raised, each time, as one line
    ``semflow: warning: <message>`` on stderr (the command line's form); other warnings as Python would."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", SemflowWarning)
        python_shows = warnings.showwarning

        def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: Any = None, line: str | None = None) -> None:
            if issubclass(category, SemflowWarning):
                print(f"semflow: warning: {one_line(str(message))}", file=sys.stderr, flush=True)
            else:
                python_shows(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield
