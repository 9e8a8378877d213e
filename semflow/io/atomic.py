"""Atomic file writes: write to a temporary name beside the target, then rename.

An interrupted program therefore never leaves a half-written output under its final name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temp_path_beside(path: str | os.PathLike, suffix: str | None = None) -> Path:
    """Create an empty temporary file beside ``path`` (``.<stem>.XXXX<suffix>``) and return its name.

    It is created with ``O_EXCL`` (``tempfile.mkstemp``), so it is always a new regular file: never a
    link someone left under a predictable name. ``suffix`` defaults to the target's own suffix so that
    writers which pick a format from the extension (OpenCV, imageio, FFmpeg) still see the right one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{target.stem}.", suffix=suffix if suffix is not None else target.suffix,
            dir=target.parent,
        )
    except OSError as exc:  # name the file the user asked for, not the temporary one
        raise OSError(exc.errno, exc.strerror, str(target)) from None
    os.close(fd)
    return Path(tmp)


def move_into_place(tmp: Path, path: str | os.PathLike) -> None:
    """Give ``tmp`` the usual permissions (0666 less the umask) and rename it to ``path``."""
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        os.replace(tmp, path)
    except OSError as exc:  # e.g. the target is a folder: name it, not the temporary file
        raise OSError(exc.errno, exc.strerror, str(path)) from None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (:func:`temp_path_beside`); on success rename it to
    ``path``, else delete it."""
    tmp_path = temp_path_beside(path, suffix)
    try:
        yield tmp_path
        move_into_place(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))
