"""TIFF-based camera raw images (DNG, Canon CR2, Nikon NEF, Sony ARW...) told from a TIFF's first directory.

OpenCV's TIFF decoder reads a TIFF's first directory (IFD0) only. A camera raw keeps its full image elsewhere
(a SubIFD, a later directory): its IFD0 is a small preview (NewSubfileType bit 0: a reduced-resolution
image), a JPEG preview (Canon CR2), or the sensor's undemosaiced data (PhotometricInterpretation CFA or
LinearRaw). :func:`tiff_raw_reason` says why such a file is refused, from the tags of its IFD0 alone (no pixel
is decoded), so that semflow never computes flow on a 160x120 thumbnail without a word;
:func:`camera_raw_file_reason` says it of a file given as a video, and of the raws that are no TIFF.

The same directory tells an RGBA TIFF whose alpha is straight (unassociated), whose colours OpenCV's decoder
multiplies by it: :func:`straight_colours` reads them as the file holds them.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from semflow.io.files import FTYP_READ, camera_raw, camera_raw_reason
from semflow.io.image_limits import bytes_at

TIFF_RAW_EXTENSIONS = {".dng": "DNG", ".cr2": "Canon CR2", ".nef": "Nikon NEF", ".nrw": "Nikon NRW", ".arw": "Sony ARW",
                       ".srf": "Sony SRF", ".sr2": "Sony SR2", ".pef": "Pentax PEF", ".srw": "Samsung SRW",
                       ".erf": "Epson ERF", ".3fr": "Hasselblad 3FR", ".dcr": "Kodak DCR", ".mef": "Mamiya MEF",
                       ".mos": "Leaf MOS"}
"""How the camera raw files that are TIFFs are named, each with its format's name (said of such a file)."""
CAMERA_RAW_EXTENSIONS = frozenset(TIFF_RAW_EXTENSIONS) | {".cr3", ".crw", ".raf", ".orf", ".rw2"}
"""How camera raw files are named, TIFFs or not (a folder of them holds no image semflow reads)."""

_DNG_VERSION, _NEW_SUBFILE_TYPE, _PHOTOMETRIC, _SUB_IFDS, _EXTRA_SAMPLES = 50706, 254, 262, 330, 338
_RAW_PHOTOMETRIC = {32803: "colour filter array", 34892: "linear raw"}  # (CFA, LinearRaw: a sensor's data)
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
_MAX_ENTRIES = 4096  # a first directory of more entries is corrupt (real ones hold a few dozen)


def first_directory(read: Callable[[int, int], bytes]) -> dict[int, int] | None:
    """The tags of a TIFF's (or BigTIFF's) first directory that tell a camera raw: {tag: its first value}
    for NewSubfileType, PhotometricInterpretation and ExtraSamples, {tag: its count} for SubIFDs and DNGVersion, and
    -1: the offset of the next directory (0: none). ``read(offset, size)`` gives the file's bytes there
    (fewer at its end). None for bytes that are no TIFF or a directory that cannot be read whole.

    Parsed here, not by tifffile or Pillow: both read IFD0's tag values whole (a 6 GiB sparse file whose IFD0
    claims a 6 GiB StripOffsets array took tifffile 51 s and 18 GB, Pillow 30 s and 12 GB; this reads at most
    82 KB), and on corrupt directories tifffile raises many kinds of error and logs, Pillow warns."""
    head = read(0, 16)
    order = {b"II": "little", b"MM": "big"}.get(head[:2])
    version = int.from_bytes(head[2:4], order) if order and len(head) >= 16 else 0
    if version not in (42, 43):
        return None
    big = version == 43
    word, field = (8, 8) if big else (2, 4)  # the entry count's size, an entry's value field's
    entry = 4 + 8 + field if big else 12
    at = int.from_bytes(head[8:16] if big else head[4:8], order)
    count = int.from_bytes(read(at, word), order) if at >= 8 else 0
    if not 0 < count <= _MAX_ENTRIES:
        return None
    entries = read(at + word, count * entry + field)
    if len(entries) < count * entry + field:
        return None
    tags: dict[int, int] = {-1: int.from_bytes(entries[count * entry:], order)}
    for k in range(count):
        raw = entries[k * entry:(k + 1) * entry]
        tag, kind = int.from_bytes(raw[:2], order), int.from_bytes(raw[2:4], order)
        number = int.from_bytes(raw[4:12] if big else raw[4:8], order)
        if tag in (_SUB_IFDS, _DNG_VERSION):
            tags[tag] = number
        elif tag in (_NEW_SUBFILE_TYPE, _PHOTOMETRIC, _EXTRA_SAMPLES) and kind in (3, 4, 16) and number >= 1:
            size = _TYPE_SIZES[kind]
            value = raw[-field:] if number * size <= field else read(int.from_bytes(raw[-field:], order), size)
            tags[tag] = int.from_bytes(value[:size], order) if len(value) >= size else 0
    return tags


def tiff_raw_reason(data: bytes, name: str | os.PathLike) -> str | None:
    """Why the TIFF of bytes ``data`` (a file named ``name``) is refused, its name left off ("a camera raw image
    (DNG), which semflow cannot read; ..."), or None for one OpenCV reads whole (and for any other bytes)."""
    return _reason(lambda offset, size: data[offset:offset + size], data[:10], name)


def straight_colours(data: bytes, decoded: np.ndarray) -> np.ndarray:
    """``decoded``, OpenCV's decoding of the TIFF of bytes ``data``, or, where that is 8-bit BGRA and the TIFF's
    alpha is straight (ExtraSamples 2), which OpenCV multiplies the colours by (a grey of 100 at alpha 128 read
    50), the same pixels decoded by Pillow, turned upright as OpenCV turns them (its Orientation tag)."""
    if decoded.ndim != 3 or decoded.shape[2] != 4 or decoded.dtype != np.uint8:
        return decoded
    tags = first_directory(lambda offset, size: data[offset:offset + size])
    if tags is None or tags.get(_EXTRA_SAMPLES) != 2:
        return decoded
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (Pillow's warnings on odd tags: OpenCV decoded the file already)
            with Image.open(io.BytesIO(data)) as image:
                pixels = np.asarray(ImageOps.exif_transpose(image)) if image.mode == "RGBA" else None
    except Exception:  # noqa: BLE001 - a TIFF Pillow cannot decode: OpenCV's reading, as before
        return decoded
    return pixels[..., [2, 1, 0, 3]] if pixels is not None and pixels.shape == decoded.shape else decoded


def camera_raw_file_reason(path: str | os.PathLike) -> str | None:
    """Why the file at ``path`` is refused as a camera raw image: one :func:`~semflow.io.files.camera_raw` names
    by its first bytes (CR3, RAF, ORF...) or a TIFF-based one (:func:`tiff_raw_reason`), of which only the bytes
    of the TIFF header and first directory are read; None for any other file and one that cannot be read."""
    try:
        with open(path, "rb") as file:
            read = bytes_at(file, os.fstat(file.fileno()).st_size)
            head = read(0, FTYP_READ)
            if (raw := camera_raw(head)) is not None:
                return camera_raw_reason(raw)
            return _reason(read, head[:10], path)
    except (OSError, ValueError, OverflowError):
        return None


def _reason(read: Callable[[int, int], bytes], head: bytes, name: str | os.PathLike) -> str | None:
    if head[:4] == b"II*\0" and head[8:10] == b"CR":  # (its IFD0: a full-size JPEG preview, the raw data later)
        return camera_raw_reason("Canon CR2")
    try:
        tags = first_directory(read)
    except (OSError, ValueError, OverflowError):  # (a file that cannot be read: the decoder says why)
        return None
    if tags is None:
        return None
    if _DNG_VERSION in tags:
        return camera_raw_reason("DNG")
    named = TIFF_RAW_EXTENSIONS.get(Path(name).suffix.lower())
    if (kind := _RAW_PHOTOMETRIC.get(tags.get(_PHOTOMETRIC, 0))) is not None:
        return camera_raw_reason(named or f"a TIFF of a camera sensor's {kind} data")
    if tags.get(_NEW_SUBFILE_TYPE, 0) & 1 and (tags.get(_SUB_IFDS) or tags[-1]):  # (the full image lies elsewhere)
        if named is not None:
            return camera_raw_reason(named)
        return ("its first image is a reduced-resolution preview (as a camera raw's is; the full image lies"
                " elsewhere in the file), which is all semflow would read; save the full image as PNG or as a"
                " TIFF of one image")
    return None
