"""User-facing errors.

Every problem a user can cause (a missing file, a corrupt .flo, an unknown method name) raises
:class:`SemflowError` with a one-line message. The CLI prints that line and exits non-zero; it never
shows a traceback for these.
"""

from __future__ import annotations

import sys


class SemflowError(Exception):
    """An error caused by the input or the options, with a one-line message for the user."""


class InputError(SemflowError):
    """A file or array that cannot be used as given (missing, unreadable, wrong shape or type)."""


class WeightsError(SemflowError):
    """A weights file that is missing, truncated or does not fit the model."""


class OutputError(SemflowError):
    """An output location that cannot or may not be written (unwritable, a link, locked by another run)."""


class ResourceError(SemflowError):
    """The work would need more memory (or another resource) than the machine has."""


def warn(message: str) -> None:
    """Print ``semflow: warning: <message>`` as one line on stderr: something the user must know about
    that does not stop the work (it is also recorded in the outputs where it concerns them)."""
    print(f"semflow: warning: {message}", file=sys.stderr, flush=True)
