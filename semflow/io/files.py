"""Checks on input paths, so that a missing or unreadable file gives one clear line."""

from __future__ import annotations

import os
from pathlib import Path

from semflow.errors import InputError


def require_file(path: str | os.PathLike) -> Path:
    """Return ``path`` as a Path; raise :class:`InputError` if it is missing, not a file or unreadable."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: not readable")
    return path
