"""User-facing errors.

Every problem a user can cause (a missing file, a corrupt .flo, an unknown method name) raises
:class:`SemflowError` with a one-line message. The CLI prints that line and exits non-zero; it never
shows a traceback for these.
"""

from __future__ import annotations


class SemflowError(Exception):
    """An error caused by the input or the options, with a one-line message for the user."""


class InputError(SemflowError):
    """A file or array that cannot be used as given (missing, unreadable, wrong shape or type)."""


class WeightsError(SemflowError):
    """A weights file that is missing, truncated or does not fit the model."""
