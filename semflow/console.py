"""The ``semflow`` command (console script and ``python -m semflow``): loads the command line and runs it.

Loading it takes a few tenths of a second (numpy, OpenCV, click); Ctrl-C or SIGTERM then would end in a
traceback of the imports, since the command's own handling (:class:`semflow.cli_group.SemflowGroup`) is not
yet in force. Here it ends as it does later: one line, exit 130 (143 for SIGTERM).
"""

from __future__ import annotations

import signal
import sys

from semflow.errors import Terminated, terminated_by_signal


def main() -> None:
    """Run the ``semflow`` command line with ``sys.argv``."""
    previous = signal.signal(signal.SIGTERM, terminated_by_signal) \
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL else None
    try:
        from semflow.cli import main as command_line
    except (KeyboardInterrupt, Terminated) as exc:
        terminated = isinstance(exc, Terminated)
        sys.stderr.write(f"semflow: {'terminated' if terminated else 'interrupted'}\n")
        raise SystemExit(143 if terminated else 130) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    command_line(prog_name="semflow")
