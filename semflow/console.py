"""The ``semflow`` command (console script and ``python -m semflow``): loads the command line and runs it.

Loading it takes a few tenths of a second (numpy, OpenCV, click); Ctrl-C or SIGTERM then would end in a
traceback of the imports, since the command's own handling (:class:`semflow.cli_group.SemflowGroup`) is not
yet in force. Here it ends as it does later: one line, exit 130 (143 for SIGTERM).
"""

from __future__ import annotations

import os
import re
import signal
import sys

from semflow.errors import Terminated, terminated_by_signal


def standard_streams_opened() -> None:
    """Open /dev/null on whichever of descriptors 0, 1 and 2 the command was started without (``2>&-``, some
    daemons and launchers), and give Python a stream for it. Else the next file opened takes that number: a
    process pool's wake-up pipe became descriptor 2, which the decoders' capture of stderr replaced now and
    then, and ``compare`` waited for ever; and Ray refuses to start without ``sys.stderr``."""
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)  # (the lowest free number: this one, the lower ones being open now)
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, mode, closefd=False, encoding="utf-8", errors="backslashreplace"))


def thread_count_checked() -> None:
    """Leave out an ``OMP_NUM_THREADS`` that is no number of threads (``0``, ``-1``, ``abc``), with one
    ``semflow: warning:`` line: OpenMP (torch's, in libgomp) printed "libgomp: Invalid value for
    environment variable OMP_NUM_THREADS" among semflow's lines, and went on with its default."""
    given = os.environ.get("OMP_NUM_THREADS")
    if given is not None and not re.fullmatch(r"\s*[1-9]\d*(\s*,\s*[1-9]\d*)*\s*", given):
        del os.environ["OMP_NUM_THREADS"]
        sys.stderr.write(f"semflow: warning: OMP_NUM_THREADS={given!r} is not a number of threads (1 or more);"
                         " ignored\n")


def main() -> None:
    """Run the ``semflow`` command line with ``sys.argv``."""
    standard_streams_opened()
    thread_count_checked()
    previous = signal.signal(signal.SIGTERM, terminated_by_signal) \
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL else None
    try:
        from semflow.cli import main as command_line
    except (KeyboardInterrupt, Terminated) as exc:
        for signum in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C meanwhile was a traceback
            signal.signal(signum, signal.SIG_IGN)
        terminated = isinstance(exc, Terminated)
        sys.stderr.write(f"semflow: {'terminated' if terminated else 'interrupted'}\n")
        raise SystemExit(143 if terminated else 130) from None
    except ImportError as exc:  # OpenCV's libraries under `ulimit -v`: "failed to map segment from shared object"
        from semflow.limits import limit_message

        said = limit_message(exc)
        if said is None:
            raise
        sys.stderr.write(f"semflow: error: {said}\n")
        raise SystemExit(1) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    try:
        command_line(prog_name="semflow")
    except SystemExit as exc:
        exit_at_once_on_a_signal(exc.code)
        raise


def exit_at_once_on_a_signal(code: int | str | None) -> None:
    """From here on (the command is over: its outputs are in place, its last line printed), Ctrl-C or SIGTERM
    while Python shuts down ends the process at once with the command's own exit status: they raised in
    the interpreter's shutdown (a traceback, exit 0) or killed it without a word."""
    status = code if isinstance(code, int) else (0 if code is None else 1)

    def leave(signum: int, frame: object) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, OSError, ValueError):
                pass
        os._exit(status)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, leave)
