""".npy arrays and uncompressed .npz archives that semflow wrote, read back from an untrusted folder.

``np.load`` inflates a deflated .npz entry before any check sees it (a 125 KB file unpacked to a 128 MB
array) and sizes an array by its header, not by the bytes that follow it (a few bytes that declare
terabytes: a MemoryError, not a damaged file). These readers take only what ``np.save`` and ``np.savez``
write: a stored (not compressed) entry, whose header declares exactly the bytes that follow it; so an
array never holds more than the file's own bytes. Anything else is a ValueError (a damaged file).
"""

from __future__ import annotations

import math
import os
import warnings
import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

from semflow.errors import InputError, reason


def read_npy(fh: BinaryIO, size: int) -> np.ndarray:
    """The array of the ``size`` bytes of .npy data open at their start in ``fh`` (a file or an archive's
    entry); ValueError unless its header (:func:`npy_header`) declares numbers that fill exactly the bytes
    after it."""
    start = fh.tell()
    try:
        shape, fortran, dtype = npy_header(fh, "the array")
    except InputError as exc:
        raise ValueError(str(exc)) from None
    count = math.prod(shape)
    needed = count * dtype.itemsize
    if needed != size - (fh.tell() - start):
        raise ValueError(f".npy header declares {needed} bytes, the file holds {size - (fh.tell() - start)}")
    data = bytearray(needed)
    if fh.readinto(data) != needed:
        raise ValueError(".npy data shorter than its size")
    return np.frombuffer(data, dtype, count).reshape(shape, order="F" if fortran else "C")


def npy_header(fh: BinaryIO, path: str | os.PathLike) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran order, dtype) of the ``.npy`` data open at its start in ``fh`` (a file, or an archive's
    entry), checked before anything is allocated: an :class:`~semflow.errors.InputError` naming ``path`` for an
    .npz under a .npy name, wrong magic bytes, a version other than 1.0 / 2.0, a header numpy's parser fails
    on, values that are no numbers, over 64 dimensions or a negative side; ``fh`` is left at the data."""
    start = fh.tell()
    magic = fh.read(6)
    if magic[:4] == b"PK\x03\x04":
        raise InputError(f"{path}: an .npz archive, not a .npy array (write one array with numpy.save)")
    if magic != b"\x93NUMPY":
        raise InputError(f"{path}: not a readable .npy file (wrong magic bytes)")
    fh.seek(start)
    try:  # numpy's header parser meets untrusted text: any failure of it means a corrupt header
        version = np.lib.format.read_magic(fh)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read_header is None:
            raise InputError(f"{path}: not a readable .npy file (version {version[0]}.{version[1]})")
        with warnings.catch_warnings():  # odd escapes in the header text: no SyntaxWarning lines
            warnings.simplefilter("ignore")
            shape, fortran, dtype = read_header(fh)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - ValueError, SyntaxError, TokenError, RecursionError...
        raise InputError(f"{path}: not a readable .npy file (corrupt header: {reason(exc, 120)})") from None
    if dtype.hasobject or dtype.itemsize == 0 or dtype.subdtype is not None:
        raise InputError(f"{path}: not a readable .npy file (it holds {dtype} values, not numbers)")
    shape = tuple(int(side) for side in shape)  # numpy's parser lets True and negative sides through
    if len(shape) > 64:  # numpy's own limit
        raise InputError(f"{path}: corrupt .npy header ({len(shape)} dimensions)")
    if any(side < 0 for side in shape):
        raise InputError(f"{path}: corrupt .npy header (negative size in its shape {shape})")
    return shape, bool(fortran), dtype


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays (by name) of the .npz archive ``path`` as ``np.savez`` writes it; ValueError for an entry
    that is compressed, not a .npy array, or larger (with the others) than the archive itself
    (:func:`read_npy`); OSError and ``zipfile.BadZipFile`` (a bad CRC) as reading it raises them."""
    size = Path(path).stat().st_size
    arrays: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as archive:
        entries = archive.infolist()
        if sum(entry.file_size for entry in entries) > size:
            raise ValueError(f"{path}: entries larger than the archive")
        for entry in entries:
            if (entry.compress_type != zipfile.ZIP_STORED or entry.file_size != entry.compress_size
                    or not entry.filename.endswith(".npy")):
                raise ValueError(f"{path}: entry {entry.filename!r} is not a stored .npy array")
            with archive.open(entry) as fh:
                arrays[entry.filename[:-4]] = read_npy(fh, entry.file_size)
    return arrays
