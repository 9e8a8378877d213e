"""The ``semflow`` command (console script and ``python -m semflow``): loads the command line and runs it.

Loading it takes a few tenths of a second (numpy, OpenCV, click); Ctrl-C or SIGTERM then would end in a
traceback of the imports, since the command's own handling (:class:`semflow.cli_group.SemflowGroup`) is not
yet in force. Here it ends as it does later: one line, exit 130 (143 for SIGTERM).
"""

from __future__ import annotations

import signal
import sys


class _TerminatedWhileLoading(Exception):
    """SIGTERM arrived while the command line was loading."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _TerminatedWhileLoading


def main() -> None:
    """Run the ``semflow`` command line with ``sys.argv``."""
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL else None
    try:
        from semflow.cli import main as command_line
    except (KeyboardInterrupt, _TerminatedWhileLoading) as exc:
        terminated = isinstance(exc, _TerminatedWhileLoading)
        sys.stderr.write(f"semflow: {'terminated' if terminated else 'interrupted'}\n")
        raise SystemExit(143 if terminated else 130) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    command_line(prog_name="semflow")
