"""The group every ``semflow`` command runs under: a user's error is one line on stderr and a non-zero
exit, Ctrl-C and SIGTERM unwind (so clean-ups run) and say whether the command can resume, and while a
command runs semflow owns the process's native output (:func:`~semflow.io.native.own_native_output`) and
shows its warnings as one ``semflow: warning:`` line each."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

import click

from semflow.errors import (
    STOPPING_SIGNALS,
    CpuTimeExceeded,
    SemflowError,
    Terminated,
    file_error,
    one_line,
    terminated_by_signal,
    warnings_as_lines,
)
from semflow.io.native import own_native_output
from semflow.limits import limit_message


def _error(text: str) -> None:
    """Print ``semflow: error: TEXT`` on one line: control characters (a newline in a file name) escaped."""
    click.echo("semflow: error: " + one_line(text), err=True)


def _usage_error(exc: click.UsageError) -> None:
    """A usage error as one line (click's own text spreads a choice list over lines and tabs), exit 2."""
    hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
    _error(" ".join(f"{exc.format_message()}{hint}".split()))
    sys.exit(2)


class SemflowGroup(click.Group):
    """A click group that reports user errors as one line instead of a traceback."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:  # (the group's own options, before any command: `semflow --bogus`)
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # (`semflow` alone: the help, as click shows it)
                raise
            _usage_error(exc)
            raise  # (not reached)
        except OSError as exc:  # --help or --version into a full disk or a closed pipe: not a traceback
            if not isinstance(exc, BrokenPipeError):
                _error(f"cannot write the output: {exc.strerror or exc}")
            sys.exit(1)

    def _resumable(self, ctx: click.Context) -> bool:
        """Whether the command running can continue with --resume."""
        name = ctx.invoked_subcommand
        return any(p.name == "resume" for p in getattr(self.get_command(ctx, name or ""), "params", []))

    def _interrupted(self, ctx: click.Context, exc: BaseException) -> None:
        hint = " (what it finished is kept: the same command with --resume continues)" if self._resumable(ctx) \
            else ""
        if getattr(exc, "nothing_kept", False):
            hint = " (before any pair was finished: the output folder it made is removed)"
        how = "terminated" if isinstance(exc, Terminated) else "interrupted"
        if isinstance(exc, CpuTimeExceeded):
            how = "stopped: CPU-time limit reached (ulimit -t)"  # (its number: the kernel raises it a second a time)
        click.echo(f"semflow: {how}{hint}", err=True)
        ctx.exit(152 if isinstance(exc, CpuTimeExceeded) else 143 if isinstance(exc, Terminated) else 130)

    def invoke(self, ctx: click.Context) -> Any:
        handled = [signum for signum in STOPPING_SIGNALS if signal.getsignal(signum) is signal.SIG_DFL] \
            if threading.current_thread() is threading.main_thread() else []
        for signum in handled:
            signal.signal(signum, terminated_by_signal)
        owned = own_native_output()
        try:
            with warnings_as_lines():  # the API's warnings, as one line each
                return super().invoke(ctx)
        except SemflowError as exc:  # (an output's EFBIG: an OSError too, said with the limit that caused it)
            _error(limit_message(exc, self._resumable(ctx)) or str(exc))
            ctx.exit(1)
        except click.UsageError as exc:  # a bad option value or a missing argument: one line too
            _usage_error(exc)
        except (KeyboardInterrupt, Terminated) as exc:  # named: `run` or `batch` (with --resume) can continue
            self._interrupted(ctx, exc)
        except SystemError as exc:  # Ctrl-C or SIGTERM inside Ray's wait: Ray wraps what the handler raised
            if not isinstance(exc.__cause__, (KeyboardInterrupt, Terminated)):
                raise
            self._interrupted(ctx, exc.__cause__)
        except BrokenPipeError:  # the reader went away (`semflow methods | head`): nothing to report
            sys.stderr.close()
            ctx.exit(1)
        except OSError as exc:
            _error(limit_message(exc, self._resumable(ctx)) or file_error(exc))
            ctx.exit(1)
        except Exception as exc:  # an allocation the estimate (semflow.memory.check_memory) did not foresee
            said = limit_message(exc, self._resumable(ctx))  # (MemoryError, torch's, OpenCV's), a library or
            if said is None:  # a thread that ulimit -v or -u would not let in; anything else is a bug: as it is
                raise
            _error(said)
            ctx.exit(1)
        finally:  # (as it was: the CLI run in-process by a script or a test)
            own_native_output(owned)
            for signum in handled:
                signal.signal(signum, signal.SIG_DFL)
