"""Reading and writing images as uint8 RGB (H, W, 3). OpenCV's BGR order never leaves this module."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from semflow.errors import InputError
from semflow.io.atomic import atomic_path
from semflow.io.files import require_file
from semflow.io.native import native_stderr

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp")
# The most bytes of stored pixel data (at the file's own bits per pixel) one byte of an image file can
# stand for (deflate's limit is about 1032:1; twice that as margin), and the decoded size always allowed.
# A header that declares more is corrupt or hostile: refused before the decoder allocates memory for it.
MAX_EXPANSION = 2048
ALWAYS_ALLOWED_BYTES = 64 * 2**20
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by IHDR colour type: gray, RGB, palette, gray+alpha, RGBA


def to_rgb_uint8(image: np.ndarray, *, name: str = "image", bgr: bool = False) -> np.ndarray:
    """Convert gray (H, W) / (H, W, 1), RGB, RGBA, 16-bit or float [0, 1] images to uint8 RGB (H, W, 3).

    ``bgr`` says the colour channels are in OpenCV order (as ``cv2.imread`` gives them).
    Alpha is dropped. 16-bit values are scaled by 255/65535; floats must be in [0, 1] (InputError else:
    floats of 0..255 would all clip to white).
    """
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
        raise InputError(f"{name}: expected an image (H, W), (H, W, 3) or (H, W, 4), got shape {img.shape}")
    if img.shape[0] < 2 or img.shape[1] < 2:
        raise InputError(f"{name}: image is too small ({img.shape[1]}x{img.shape[0]})")
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) * (255.0 / 65535.0) + 0.5).astype(np.uint8)
    elif np.issubdtype(img.dtype, np.floating):
        if not np.isfinite(img).all():
            raise InputError(f"{name}: image has NaN or inf values")
        low, high = float(img.min()), float(img.max())
        if low < -0.01 or high > 1.01:  # 0..255 floats (img.astype(np.float32)) would all clip to white
            raise InputError(f"{name}: a float image must hold values in [0, 1], this one holds {low:g} to {high:g}"
                             " (divide by 255, or pass uint8)")
        img = (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif img.dtype == np.bool_:
        img = img.astype(np.uint8) * 255
    elif img.dtype != np.uint8:
        raise InputError(f"{name}: unsupported image dtype {img.dtype}")
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[..., None], 3, axis=2))
    img = img[..., :3]
    if bgr:
        img = img[..., ::-1]
    return np.ascontiguousarray(img)


def jpeg_is_complete(data: bytes) -> bool:
    """True when a JPEG stream runs from its segments through its scans to the end-of-image marker.

    Walks the marker segments (skipping each by its length, so thumbnails inside APP segments are not
    mistaken for the image) and the entropy-coded data after each start-of-scan (where 0xFF is always
    followed by 0x00 or a restart marker); a stream cut short, or with bytes where a marker must be,
    never reaches end-of-image. Linear in ``len(data)``.
    """
    n, i = len(data), 2
    while i + 1 < n:
        if data[i] != 0xFF:
            return False
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker == 0xD9:
            return True
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            i += 2
            continue
        if i + 4 > n:
            return False
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
        if marker == 0xDA:  # scan data up to the next marker that is not a restart marker
            while True:
                j = data.find(b"\xff", i)
                if j < 0 or j + 1 >= n:
                    return False
                following = data[j + 1]
                if following == 0x00 or 0xD0 <= following <= 0xD7:
                    i = j + 2
                elif following == 0xFF:
                    i = j + 1
                else:
                    i = j
                    break
    return False


def png_is_complete(data: bytes) -> bool:
    """True when a PNG's chunks each fit in the file and the last one is IEND.

    OpenCV allocates a buffer of the length a chunk declares before reading it (a 257-byte file with
    one length field changed took 3.6 GB), and a PNG cut short has a chunk that runs past the end.
    """
    n, i = len(data), 8
    while i + 12 <= n:
        length = int.from_bytes(data[i:i + 4], "big")
        if length > 2**31 - 1 or i + 12 + length > n:
            return False
        if data[i + 4:i + 8] == b"IEND":
            return True
        i += 12 + length
    return False


def _opencv_reason(exc: cv2.error) -> str:
    text = str(exc)
    if "CV_IO_MAX_IMAGE_PIXELS" in text:
        return "its header declares more pixels than OpenCV reads (2^30)"
    return text.strip().splitlines()[-1][:200] if text.strip() else "OpenCV error"


def _stored_bytes(data: bytes, width: int, height: int, mode: str, kind: str | None) -> int | None:
    """Bytes of pixel data, as the format stores them before compression, that the declared size needs;
    None where the format's compression has no useful limit (WebP: a flat frame costs a few bits)."""
    if kind == "WEBP":
        return None
    if kind == "PNG" and data[12:16] == b"IHDR" and len(data) >= 26:  # exact: depth and colour type
        bits = min(max(data[24], 1), 16) * _PNG_CHANNELS.get(data[25], 4)
        return height * (1 + (width * bits + 7) // 8)  # each row starts with its filter byte
    bits = {"1": 1, "I": 32, "F": 32}.get(mode, (16 if "16" in mode else 8) * Image.getmodebands(mode))
    return height * ((width * bits + 7) // 8)


def _check_declared_size(data: bytes, name: str) -> None:
    """Read the image header (Pillow, no pixel decoding) and refuse sizes the file cannot hold: more
    than ``ALWAYS_ALLOWED_BYTES`` decoded and more stored pixel data than ``MAX_EXPANSION`` per file byte."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                (width, height), mode, kind = im.size, im.mode, im.format
            stored = _stored_bytes(data, width, height, mode, kind)
    except Image.DecompressionBombError:
        raise InputError(f"{name}: image of more than {2 * Image.MAX_IMAGE_PIXELS} pixels; too large to read") from None
    except UnidentifiedImageError:
        raise InputError(f"{name}: cannot decode as an image") from None
    except Exception as exc:  # noqa: BLE001 - a header parser meeting untrusted bytes: any failure is a corrupt file
        raise InputError(f"{name}: cannot decode as an image (corrupt header: {type(exc).__name__})") from None
    decoded = width * height * (8 if ("16" in mode or mode in ("I", "F")) else 4)  # at most, once converted
    if decoded > ALWAYS_ALLOWED_BYTES and stored is not None and stored > MAX_EXPANSION * len(data):
        raise InputError(f"{name}: its header declares {width}x{height} pixels, more than its {len(data)} bytes"
                         " can hold (a corrupt file)")


def decode_image(data: bytes, name: str) -> np.ndarray:
    """Decode the bytes of an image file with OpenCV, as OpenCV gives it (BGR, gray, alpha, 16-bit kept).

    Raises :class:`InputError` for anything that is not a whole, decodable image: undecodable bytes, a
    header that declares more pixels than the file can hold (checked before decoding, so memory stays
    bounded), a JPEG cut short. Whatever the decoders print on stderr is captured
    (:func:`~semflow.io.native.native_stderr`), not shown.
    """
    _check_declared_size(data, name)
    if data[:2] == b"\xff\xd8" and not jpeg_is_complete(data):
        raise InputError(f"{name}: truncated or corrupt JPEG (it does not reach its end-of-image marker)")
    if data[:8] == b"\x89PNG\r\n\x1a\n" and not png_is_complete(data):
        raise InputError(f"{name}: truncated or corrupt PNG (a chunk runs past the end of the file, or no IEND)")
    if data[:4] == b"RIFF" and int.from_bytes(data[4:8], "little") + 8 > len(data):
        raise InputError(f"{name}: truncated or corrupt WebP (its RIFF header declares more bytes than the file has)")
    with native_stderr() as messages:
        try:
            raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        except cv2.error as exc:
            raise InputError(f"{name}: cannot decode as an image ({_opencv_reason(exc)})") from None
    if raw is None or raw.size == 0:
        raise InputError(f"{name}: cannot decode as an image")
    if any("Premature end" in line for line in messages):
        raise InputError(f"{name}: truncated image ({messages[0][:120]})")
    return raw


def read_image_raw(path: str | os.PathLike, *, gray: bool = False) -> np.ndarray:
    """Read an image file as OpenCV gives it (BGR, 16-bit and extra channels kept), or as one gray
    channel with ``gray``: for label maps and masks. Errors as in :func:`decode_image`."""
    path = require_file(path)
    raw = decode_image(path.read_bytes(), str(path))
    if gray and raw.ndim == 3:
        raw = cv2.cvtColor(np.ascontiguousarray(raw[..., :3]), cv2.COLOR_BGR2GRAY) if raw.shape[2] >= 3 else raw[..., 0]
    return raw


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as uint8 RGB (H, W, 3); gray, alpha and 16-bit files are converted."""
    path = require_file(path)
    return to_rgb_uint8(decode_image(path.read_bytes(), str(path)), name=str(path), bgr=True)


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an RGB (H, W, 3) or label (H, W) uint8/uint16 image atomically; format from the extension."""
    if not is_image_path(path):
        raise InputError(f"{path}: unknown image format; use one of {', '.join(IMAGE_EXTENSIONS)}")
    img = np.asarray(image)
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)) or 0 in img.shape[:2]:
        raise InputError(f"{path}: cannot write an image of shape {img.shape} (expected (H, W) or (H, W, 3))")
    if img.ndim == 3:  # RGB(A) -> OpenCV's BGR(A)
        img = img[..., [2, 1, 0, 3][:img.shape[2]]]
    with atomic_path(path) as tmp:
        try:
            written = cv2.imwrite(str(tmp), np.ascontiguousarray(img))
        except cv2.error as exc:
            raise InputError(f"{path}: could not write image ({str(exc).strip().splitlines()[-1]})") from None
        if not written:
            raise InputError(f"{path}: could not write image")


def is_image_path(path: str | os.PathLike) -> bool:
    """True when ``path`` has an image file extension."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS
