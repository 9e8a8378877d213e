"""Atomic file writes: write to a temporary name beside the target, then rename.

An interrupted program therefore never leaves a half-written output under its final name.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

MAX_NAME_BYTES = 255
"""The longest file name most file systems take (NAME_MAX)."""
STALE_STAGING_SECONDS = 60.0
"""A staging folder left this long, and locked by no one, was left by a command that was killed."""


def _umask() -> int:
    """The process's umask, read without changing it where Linux shows it (``Umask:`` in
    /proc/self/status): setting it to 0 and back, as elsewhere, is a moment in which a host's other
    threads create files anyone may write."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0)
    os.umask(mask)
    return mask


TEMP_MARK = "semflow-"
"""What every temporary name :func:`temp_path_beside` gives holds before its random part: a run removes the
temporaries a killed one left by this mark, never a user's own hidden files (``.flow.mybackup.mp4``)."""


def temp_path_beside(path: str | os.PathLike, suffix: str | None = None) -> Path:
    """Create an empty temporary file beside ``path`` (``.<stem>.semflow-XXXXXXXX<suffix>``) and return its name.

    It is created with ``O_EXCL`` (``tempfile.mkstemp``), so it is always a new regular file: never a
    link someone left under a predictable name. ``suffix`` defaults to the target's own suffix so that
    writers which pick a format from the extension (OpenCV, imageio, FFmpeg) still see the right one.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # ("File exists: 'a'" for a/b/x.flo where a is a file)
        raise OSError(errno.ENOTDIR, "a part of its folder is a file, not a folder", str(target)) from None
    suffix = suffix if suffix is not None else target.suffix
    # A name of up to 255 bytes (the usual limit) is a legal target: its stem is shortened in the temporary
    # name, which adds a dot before, a dot, the mark and 8 random characters after it and the suffix.
    stem = cut_name(target.stem, max(MAX_NAME_BYTES - 10 - len(TEMP_MARK) - len(os.fsencode(suffix)), 1))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{stem}.{TEMP_MARK}", suffix=suffix, dir=target.parent)
    except OSError as exc:  # name the file the user asked for, not the temporary one
        raise OSError(exc.errno, exc.strerror, str(target)) from None
    os.close(fd)
    return Path(tmp)


def cut_name(name: str, limit: int) -> str:
    """``name`` cut to at most ``limit`` bytes as the file system stores it: a UTF-8 name between characters,
    another (a name's undecodable bytes) byte by byte, as they are. The result is the cut bytes as Python
    names them (:func:`os.fsdecode`): under an ASCII locale a UTF-8 name's bytes are surrogates, and the
    characters they spell could not be encoded back."""
    raw = os.fsencode(name)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return os.fsdecode(raw[:limit])
    return os.fsdecode(raw[:limit].decode("utf-8", "ignore").encode("utf-8"))


def stream_link(path: str | os.PathLike) -> str | None:
    """What ``path`` is when it is in /dev (but /dev/shm) or /proc, or a link into them (``/dev/stdout``,
    ``/proc/self/fd/1``, a link of one's own to either), whatever it leads to; None for an ordinary name."""
    current = Path(os.path.abspath(path))
    for _ in range(40):  # (a loop of links ends here)
        if current.parts[1:2] == ("proc",) or (current.parts[1:2] == ("dev",) and current.parts[2:3] != ("shm",)):
            return f"{current} (a stream or device)"
        if not current.is_symlink():
            return None
        current = Path(os.path.abspath(current.parent / os.readlink(current)))
    return None


def move_into_place(tmp: Path, path: str | os.PathLike) -> None:
    """Give ``tmp`` the usual permissions (0666 less the umask) and rename it to ``path``; never over a
    device, pipe or socket (``path`` or what a link there names) or a name in /dev or /proc: OSError."""
    os.chmod(tmp, 0o666 & ~_umask())
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISREG(os.stat(path).st_mode) and not os.path.isdir(path):
            raise OSError(errno.EEXIST, "is a device, pipe or socket, not a file", str(path))
    stream = stream_link(path)
    if stream:  # /dev/stdout to a file passes the test above; the link itself would be replaced
        raise OSError(errno.EEXIST, f"is {stream}, not a file", str(path))
    try:
        os.replace(tmp, path)
    except OSError as exc:  # e.g. the target is a folder: name it, not the temporary file
        raise OSError(exc.errno, exc.strerror, str(path)) from None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (:func:`temp_path_beside`); on success rename it to
    ``path``, else delete it. An OSError of writing the temporary file (a full disk: ENOSPC) is raised
    naming ``path``, the file the user asked for."""
    tmp_path = temp_path_beside(path, suffix)
    try:
        yield tmp_path
        move_into_place(tmp_path, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename in (None, str(tmp_path)):
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, suffix: str | None = None) -> Iterator[BinaryIO]:
    """Yield a binary file open for writing on a temporary name beside ``path``; when the block ends,
    close it and rename it to ``path``. Python's file I/O reports every failed write, the last flush at
    closing included: OSError naming ``path`` (e.g. "No space left on device"), the temporary file
    deleted and nothing under ``path``. (C stdio writers such as ``cv2.imwrite`` and numpy's ``tofile``
    lose the reason or ignore a failing close: encode in memory and write the bytes here instead.)"""
    with atomic_path(path, suffix) as tmp, open(tmp, "wb") as fh:
        yield fh


def write_bytes_atomic(path: str | os.PathLike, *chunks: bytes | memoryview, suffix: str | None = None) -> None:
    """Write ``chunks`` one after the other to ``path`` atomically (:func:`atomic_file`); a memoryview of a
    C-contiguous numpy array writes its data without a copy."""
    with atomic_file(path, suffix) as fh:
        for chunk in chunks:
            fh.write(chunk)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def discard_folder(path: Path, *, strict: bool = False) -> None:
    """Delete the folder ``path`` (never following a link) as one step: it is first renamed to
    ``.<name>.semflow-XXXXXXXX.trash`` beside it, so a command killed while it deletes leaves no half of it
    under its name (a run's work folder, half gone, was resumed: pairs computed again, other videos);
    :func:`discard_leftovers` removes such a leftover. ``strict``: raise what the deletion raised."""
    trash = path.with_name(f".{path.name.lstrip('.')}.{TEMP_MARK}{secrets.token_hex(4)}.trash")
    try:
        os.rename(path, trash)
    except FileNotFoundError:
        return
    except OSError:  # (not renamable: deleted in place)
        trash = path
    shutil.rmtree(trash, ignore_errors=not strict)


def discard_leftovers(path: Path) -> None:
    """Delete what :func:`discard_folder` of ``path`` left when its command was killed (real folders only)."""
    mark = re.compile(re.escape(f".{path.name.lstrip('.')}.{TEMP_MARK}") + r"[0-9a-f]{8}\.trash")
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            if mark.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)


@contextlib.contextmanager
def staging_folder(parent: Path, prefix: str, *, stale_seconds: float = STALE_STAGING_SECONDS) -> Iterator[Path]:
    """Yield a fresh folder ``parent/<prefix>XXXXXXXX`` to write a command's outputs into before they
    are moved into place; it is deleted on exit. While in use it is locked (``fcntl.flock``, released
    when the process ends however it ends), so that the next call can delete the ones a killed command
    left: unlocked, older than ``stale_seconds``, real folders (never a link) of that name. (The age spares
    one another command has just made and not yet locked: 0 where ``parent`` is locked by this command.)"""
    _remove_stale_staging(parent, prefix, stale_seconds)
    stage = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    fd = os.open(stage, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        os.close(fd)


def _remove_stale_staging(parent: Path, prefix: str, stale_seconds: float) -> None:
    name = re.compile(re.escape(prefix) + r"[a-z0-9_]{8}")  # what tempfile.mkdtemp names them
    with contextlib.suppress(OSError):
        entries = [p for p in parent.iterdir() if name.fullmatch(p.name)]
        for path in entries:
            with contextlib.suppress(OSError):
                info = os.lstat(path)
                if not stat.S_ISDIR(info.st_mode) or time.time() - info.st_mtime < stale_seconds:
                    continue
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held: a command is still writing there
                    shutil.rmtree(path)  # (never follows a link inside)
                finally:
                    os.close(fd)
