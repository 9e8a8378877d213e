"""Reading and writing images as uint8 RGB (H, W, 3). OpenCV's BGR order never leaves this module."""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import Image, TiffImagePlugin, UnidentifiedImageError

from semflow.errors import InputError, warn, writing_output
from semflow.io.atomic import write_bytes_atomic
from semflow.io.files import (
    IMAGE_EXTENSIONS,
    NO_IMAGE_START,
    TIFF_HEADS,
    image_file_bytes,
    is_empty_file,
    is_image_path,
    is_video_path,
    require_file,
    starts_as_video,
)
from semflow.io.image_bytes import jpeg_is_complete, png_chunk, png_is_complete
from semflow.io.image_limits import opencv_reason, png_stored_bytes, write_failure_reason, write_limit_reason
from semflow.io.native import native_stderr
from semflow.io.raw_tiff import straight_colours, tiff_raw_reason

if TYPE_CHECKING:
    import torch

# The most bytes of stored pixel data (at the file's own bits per pixel) one byte of an image file can
# stand for (deflate's limit is about 1032:1; twice that as margin), and the decoded size always allowed.
# A header that declares more is corrupt or hostile: refused before the decoder allocates memory for it.
MAX_EXPANSION = 2048
ALWAYS_ALLOWED_BYTES = 64 * 2**20
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_16BIT_EXTENSIONS = (".png", ".tif", ".tiff", ".ppm", ".pgm")  # formats that keep 16 bits a channel


def to_rgb_uint8(image: np.ndarray | torch.Tensor, *, name: str = "image", bgr: bool = False) -> np.ndarray:
    """Convert gray (H, W) / (H, W, 1), RGB, RGBA, 16-bit or float [0, 1] images to uint8 RGB (H, W, 3).

    ``bgr`` says the colour channels are in OpenCV order (as ``cv2.imread`` gives them).
    Alpha is dropped. 16-bit values are scaled by 255/65535 (a warning, once, where they look like 12-bit data
    stored unscaled: :func:`_warn_if_unscaled_12_bit`); floats must be in [0, 1] (InputError else:
    floats of 0..255 would all clip to white). A torch tensor is detached and moved to the CPU first.
    """
    if callable(getattr(image, "detach", None)):  # a torch tensor (that may require grad, or be on a GPU)
        image = image.detach()
        image = image.cpu() if callable(getattr(image, "cpu", None)) else image
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
        raise InputError(f"{name}: expected an image (H, W), (H, W, 3) or (H, W, 4), got shape {img.shape}")
    if img.shape[0] < 2 or img.shape[1] < 2:
        raise InputError(f"{name}: image is too small ({img.shape[1]}x{img.shape[0]}; at least 2x2 px)")
    if img.dtype == np.uint16:
        _warn_if_unscaled_12_bit(img if img.ndim == 2 else img[..., :3], name)
        img = (img.astype(np.float32) * (255.0 / 65535.0) + 0.5).astype(np.uint8)
    elif np.issubdtype(img.dtype, np.floating):
        img = _float_to_uint8(img, name)
    elif img.dtype == np.bool_:
        img = img.astype(np.uint8) * 255
    elif img.dtype != np.uint8:
        raise InputError(f"{name}: unsupported image dtype {img.dtype}")
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[..., None], 3, axis=2))
    img = img[..., :3]
    if bgr:  # (cv2.cvtColor: the same bytes as img[..., ::-1] made contiguous, in a fortieth of the time)
        return cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(img)


TWELVE_BIT_MAX = 4095
"""The largest 12-bit value. A 16-bit image whose colour values never exceed it most likely holds 12-bit
camera data stored unscaled, which reads nearly black (at most 16 of 255). The PNG spec has an encoder
scale such data to the full 16 bits (saying its 12 significant bits in an sBIT chunk), so a file that
follows it reads right; which of the two a file holds cannot be told from its values (a dark scene stored
in 16 bits looks the same), so nothing is rescaled."""
_warned_unscaled = False  # whether this process has warned (once: every frame of a clip would say it)


def _warn_if_unscaled_12_bit(colour: np.ndarray, name: str) -> None:
    """Warn once (:func:`~semflow.errors.warn`) when the 16-bit values ``colour`` (H, W[, 3]) are not all
    zero and never exceed :data:`TWELVE_BIT_MAX`."""
    global _warned_unscaled
    if _warned_unscaled or not 0 < int(colour.max()) <= TWELVE_BIT_MAX:
        return
    _warned_unscaled = True
    warn(f"{name}: a 16-bit image whose values are all at most {TWELVE_BIT_MAX} looks like 12-bit data stored"
         " unscaled and will read dark (scaled by 255/65535); multiply it by 16 to read it as 12-bit"
         " (said for the first such image only)")


def _float_to_uint8(img: np.ndarray, name: str) -> np.ndarray:
    """A float image of values in [0, 1] as uint8 0-255 (same shape); InputError for other values."""
    if not np.isfinite(img).all():
        raise InputError(f"{name}: image has NaN or inf values")
    low, high = float(img.min()), float(img.max())
    if low < -0.01 or high > 1.01:  # 0..255 floats (img.astype(np.float32)) would all clip to white
        raise InputError(f"{name}: a float image must hold values in [0, 1], this one holds {low:g} to {high:g}"
                         " (divide by 255, or pass uint8)")
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _stored_bytes(data: bytes, width: int, height: int, mode: str, kind: str | None) -> int | None:
    """Bytes of pixel data, as the format stores them before compression, that the declared size needs;
    None where the format's compression has no useful limit (WebP: a flat frame costs a few bits)."""
    if kind == "WEBP":
        return None
    if kind == "PNG" and (stored := png_stored_bytes(data)) is not None:  # IHDR: depth, colour type, interlace
        return stored
    bits = {"1": 1, "I": 32, "F": 32}.get(mode, (16 if "16" in mode else 8) * Image.getmodebands(mode))
    return height * ((width * bits + 7) // 8)


def _tiff_header(data: bytes) -> tuple[int, int, int] | None:
    """(width, height, bits per pixel) from a TIFF's first directory, read by Pillow's tag parser, for the
    TIFFs Pillow cannot open as images (OpenCV's three-channel float ones); None for any other bytes."""
    if data[:4] not in (b"II*\0", b"MM\0*"):
        return None
    directory = TiffImagePlugin.ImageFileDirectory_v2(data[:8])
    stream = io.BytesIO(data)
    stream.seek(directory.next)
    directory.load(stream)
    bits = directory.get(258, (1,))
    return int(directory[256]), int(directory[257]), int(sum(bits if isinstance(bits, tuple) else (bits,)))


@contextlib.contextmanager
def _quietly_opened(source: str | os.PathLike | io.BytesIO) -> Iterator[Image.Image]:
    """Pillow's image of ``source`` (a path or a stream of a file's bytes), with Pillow's warnings silenced
    while it is open (untrusted headers make it warn; its exceptions are the caller's to handle)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Image.open(source) as im:
            yield im


def _check_declared_size(data: bytes, name: str) -> None:
    """Read the image header (Pillow, no pixel decoding) and refuse sizes the file cannot hold: more
    than ``ALWAYS_ALLOWED_BYTES`` decoded and more stored pixel data than ``MAX_EXPANSION`` per file byte."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                with Image.open(io.BytesIO(data)) as im:
                    (width, height), mode, kind = im.size, im.mode, im.format
                    animated = kind in ("GIF", "PNG", "WEBP") and getattr(im, "is_animated", False)
                    pages = kind == "TIFF" and _more_pages(im)
                stored = _stored_bytes(data, width, height, mode, kind)
                decoded = width * height * (8 if ("16" in mode or mode in ("I", "F")) else 4)  # at most, converted
            except UnidentifiedImageError:
                if (tiff := _tiff_header(data)) is None:
                    raise
                (width, height, bits), animated, pages = tiff, False, False
                stored = height * ((width * bits + 7) // 8)
                decoded = width * height * max(4, (bits + 7) // 8)
    except Image.DecompressionBombError:
        raise InputError(f"{name}: image of more than {2 * Image.MAX_IMAGE_PIXELS} pixels; too large to read") from None
    except UnidentifiedImageError:
        raise InputError(f"{name}: cannot decode as an image") from None
    except Exception as exc:  # noqa: BLE001 - a header parser meeting untrusted bytes: any failure is a corrupt file
        raise InputError(f"{name}: cannot decode as an image (corrupt header: {type(exc).__name__})") from None
    if decoded > ALWAYS_ALLOWED_BYTES and stored is not None and stored > MAX_EXPANSION * len(data):
        raise InputError(f"{name}: its header declares {width}x{height} pixels, more than its {len(data)} bytes"
                         " can hold (a corrupt file)")
    if animated:  # (its first frame was taken without a word)
        raise InputError(f"{name}: an animation, not one image (`semflow run` reads an animation's frames)")
    if pages:  # (as was its first page; `run` read it as a clip of one frame)
        raise InputError(f"{name}: {MULTIPAGE_TIFF}")


MULTIPAGE_TIFF = ("a TIFF of several pages, not one image (OpenCV reads its first page only); save the page you"
                  " mean as an image, or the pages as a folder of PNG images for `semflow run FOLDER`")
"""Why a TIFF of several pages is refused, where one image is read and where a video is (:func:`tiff_pages`)."""


def _more_pages(im: Image.Image) -> bool:
    """Whether the TIFF ``im`` (Pillow, at its first page) has another page: a later directory (of the first
    ``TIFF_DIRECTORIES``) not a reduced-resolution copy (a thumbnail, an overview: NewSubfileType bit 0).
    Reads tags only; one that cannot be read ends the search (OpenCV reads the first page, as before)."""
    try:
        for k in range(1, TIFF_DIRECTORIES):
            if not getattr(im.tag_v2, "next", 0):
                return False
            im.seek(k)
            if not int(im.tag_v2.get(254, 0)) & 1:
                return True
    except Exception:  # noqa: BLE001 - untrusted bytes after the first page: that page is read as before
        pass
    return False


TIFF_DIRECTORIES = 16  # the directories of a TIFF _more_pages reads at most (overviews come in a few)


def tiff_pages(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a TIFF of several pages (:func:`_more_pages`), which a video reader takes as a clip
    of one frame; False for any other file (read from its header: the pixels are not decoded)."""
    try:
        with _quietly_opened(path) as im:
            return im.format == "TIFF" and _more_pages(im)
    except Exception:  # noqa: BLE001 - not a TIFF Pillow reads: the video reader says what it is
        return False


def _check_bytes(data: bytes, name: str) -> None:
    """Refuse bytes no decoder should see: a header that declares more pixels than the file can hold, a
    JPEG, PNG or WebP cut short, a TIFF of which OpenCV would read a camera raw's preview or sensor data
    (:func:`~semflow.io.raw_tiff.tiff_raw_reason`). InputError naming ``name``."""
    if data[:4] in TIFF_HEADS and (why := tiff_raw_reason(data, name)) is not None:
        raise InputError(f"{name}: {why}")
    _check_declared_size(data, name)
    if data[:2] == b"\xff\xd8" and not jpeg_is_complete(data):
        raise InputError(f"{name}: truncated or corrupt JPEG (it does not reach its end-of-image marker)")
    if data[:8] == _PNG_SIGNATURE and not png_is_complete(data):
        raise InputError(f"{name}: truncated or corrupt PNG (a chunk runs past the end of the file, or no IEND)")
    if data[:4] == b"RIFF" and int.from_bytes(data[4:8], "little") + 8 > len(data):
        raise InputError(f"{name}: truncated or corrupt WebP (its RIFF header declares more bytes than the file has)")


def decode_image(data: bytes, name: str) -> np.ndarray:
    """Decode the bytes of an image file with OpenCV, as OpenCV gives it (BGR, gray, alpha, 16-bit kept).

    Raises :class:`InputError` for anything that is not a whole, decodable image: undecodable bytes, a
    header that declares more pixels than the file can hold (checked before decoding, so memory stays
    bounded), a JPEG cut short. Whatever the decoders print on stderr is captured
    (:func:`~semflow.io.native.native_stderr`), not shown. No EXIF orientation is applied (OpenCV's TIFF
    decoder applies TIFF's own); :func:`read_image` and :func:`read_image_raw` turn images upright.
    """
    _check_bytes(data, name)
    return _decode_checked(data, name)


def _decode_checked(data: bytes, name: str) -> np.ndarray:
    """:func:`decode_image` after :func:`_check_bytes`."""
    with native_stderr():  # (kept off the CLI's terminal; what the decoder says decides nothing: a JPEG
        try:                # cut short was refused from its bytes, in every process)
            raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        except cv2.error as exc:
            raise InputError(f"{name}: cannot decode as an image ({opencv_reason(str(exc), len(data))})") from None
    if raw is None or raw.size == 0:
        raise InputError(f"{name}: cannot decode as an image")
    return raw


def _palette_ids(data: bytes, name: str) -> np.ndarray | None:
    """The class ids (H, W) uint8 of a palette image: its palette indices (as PASCAL VOC masks store them), or
    its grey levels where every palette entry is grey (a gray label map stored as a palette). None for an
    image without a palette. Call after :func:`_check_bytes`."""
    try:
        with _quietly_opened(io.BytesIO(data)) as im:
            if im.mode != "P":
                return None
            ids = np.array(im, np.uint8)
            palette = np.asarray(im.getpalette("RGB") or [0, 0, 0], np.uint8).reshape(-1, 3)[:256]
    except Exception as exc:  # noqa: BLE001 - a decoder meeting untrusted bytes: any failure is a corrupt file
        raise InputError(f"{name}: cannot decode as an image ({type(exc).__name__})") from None
    if ids.ndim != 2 or ids.size == 0:
        raise InputError(f"{name}: cannot decode as an image")
    if (palette == palette[:, :1]).all():  # only greys: the grey levels are the ids, as in a gray PNG
        levels = np.zeros(256, np.uint8)
        levels[:len(palette)] = palette[:, 0]
        ids = levels[ids]
    return ids


def exif_orientation(data: bytes) -> int:
    """The EXIF Orientation tag (0x0112, 1-8) of an image file's bytes; 1 where there is none or it is
    unreadable. Reads the metadata only (the pixels are not decoded)."""
    try:
        with _quietly_opened(io.BytesIO(data)) as im:
            if im.format == "PNG" and "exif" not in im.info:  # Pillow would decode the pixels to look
                chunk = png_chunk(data, b"eXIf")  # for an eXIf chunk after them: found here instead
                if chunk:
                    im.info["exif"] = chunk
                value = Image.Image.getexif(im).get(0x0112, 1)  # the metadata read on opening
            else:
                value = im.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - corrupt metadata in an image that decodes: no rotation
        return 1
    return value if type(value) is int and 1 <= value <= 8 else 1


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(H, W) of the image file at ``path`` as :func:`read_image` gives it (upright as its EXIF orientation
    says), from its header: the pixels are not decoded (but a TIFF's: Pillow reports its size turned by its
    orientation tag or not, by version; it is read, or refused, as :func:`read_image` does). OSError or ValueError
    (Pillow's) for a file whose header Pillow cannot read (UnidentifiedImageError, before reading it whole, for one
    that starts as no image, a camera raw that is no TIFF, one far larger than its header's image:
    :func:`~semflow.io.files.image_file_bytes`, whose message it carries); :class:`InputError` for a path that is not a readable file (a FIFO would block)
    and for a TIFF :func:`read_image` refuses (a camera raw, a TIFF of several pages)."""
    path = require_file(path)
    with open(path, "rb") as file:
        tiff = file.read(4) in TIFF_HEADS
    if tiff:  # (refused as read_image refuses it: a camera raw, several pages; no bytes held meanwhile)
        return read_image(path).shape[:2]
    try:
        data = image_file_bytes(path, palette=True)  # (as before: what Pillow reads the header of)
    except InputError as exc:
        raise UnidentifiedImageError(str(exc)) from None
    with _quietly_opened(io.BytesIO(data)) as im:  # (a corrupt EXIF made Pillow warn on the CLI's stderr)
        width, height = im.size
    return (width, height) if exif_orientation(data) in (5, 6, 7, 8) else (height, width)  # (a quarter turn)


def upright(image: np.ndarray, orientation: int) -> np.ndarray:
    """``image`` (H, W, ...) turned as EXIF ``orientation`` says (1 identity, 2 mirror horizontal, 3 rotate 180,
    4 mirror vertical, 5 transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate 90 counter-clockwise)."""
    turned = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
              5: lambda a: a.swapaxes(0, 1), 6: lambda a: a[::-1].swapaxes(0, 1),
              7: lambda a: a[::-1, ::-1].swapaxes(0, 1), 8: lambda a: a[:, ::-1].swapaxes(0, 1)}.get(orientation)
    return image if turned is None else np.ascontiguousarray(turned(image))


def _read_upright(path: Path, *, labels: bool = False) -> np.ndarray:
    """An image file decoded (as :func:`decode_image`; palette images as their ids with ``labels``) and
    turned upright as its EXIF orientation says."""
    data = image_file_bytes(path, palette=labels)
    _check_bytes(data, str(path))
    raw = _palette_ids(data, str(path)) if labels else None
    if raw is None:
        raw = _decode_checked(data, str(path))
        if data[:4] in TIFF_HEADS:  # OpenCV's TIFF decoder turned it (and multiplied a straight alpha in: not kept)
            return straight_colours(data, raw)
    return upright(raw, exif_orientation(data))


def read_image_raw(path: str | os.PathLike, *, gray: bool = False, labels: bool = False) -> np.ndarray:
    """Read an image file as OpenCV gives it (BGR, 16-bit and extra channels kept), or as one gray
    channel with ``gray``: for label maps and masks. With ``labels``, a palette image (a PASCAL VOC
    mask) is read as its palette indices (H, W), the class ids (its grey levels where every palette entry
    is grey). Turned upright as the file's EXIF orientation says. Errors as in :func:`decode_image`."""
    raw = _read_upright(require_file(path), labels=labels)
    if gray and raw.ndim == 3:
        raw = cv2.cvtColor(np.ascontiguousarray(raw[..., :3]), cv2.COLOR_BGR2GRAY) if raw.shape[2] >= 3 else raw[..., 0]
    return raw


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as uint8 RGB (H, W, 3), upright as its EXIF orientation says (as viewers show it);
    gray, alpha and 16-bit files are converted. A video file that is no image says that ``semflow run`` reads it."""
    path = require_file(path)
    video_hint = "(it is a video: `semflow run VIDEO` computes a video's flows)"
    if starts_as_video(path):  # (said before reading a video of gigabytes whole into memory)
        raise InputError(f"{path}: cannot decode as an image {video_hint}")
    try:
        raw = _read_upright(path)
    except InputError as exc:
        if not is_video_path(path) or is_empty_file(path):  # (its first bytes were looked at above: its name only)
            raise
        said = str(exc).replace(f" ({NO_IMAGE_START})", "")  # (one reason: the hint says what it is)
        raise InputError(f"{said} {video_hint}") from None
    return to_rgb_uint8(raw, name=str(path), bgr=True)


def _writable(img: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """``img`` in a dtype the file's format keeps: bool as 0/255 and floats in [0, 1] as uint8 (other floats:
    InputError); other integers as uint8 or uint16 where their values fit; uint16 only where the format keeps
    16 bits (PNG, TIFF, PPM/PGM: InputError for the others, never a silent scaling)."""
    if img.dtype == np.bool_:
        img = img.astype(np.uint8) * np.uint8(255)
    elif np.issubdtype(img.dtype, np.floating):
        img = _float_to_uint8(img, str(path))
    elif np.issubdtype(img.dtype, np.integer) and img.dtype not in (np.uint8, np.uint16):
        low, high = int(img.min()), int(img.max())
        if low < 0 or high > 65535:
            raise InputError(f"{path}: cannot write {img.dtype} values {low} to {high} as an image (0-255, or"
                             " 0-65535 in 16 bits)")
        img = img.astype(np.uint8 if high <= 255 else np.uint16)
    elif img.dtype not in (np.uint8, np.uint16):
        raise InputError(f"{path}: cannot write an image of dtype {img.dtype}")
    suffix = Path(path).suffix.lower()
    if img.dtype == np.uint16 and suffix not in _16BIT_EXTENSIONS:
        raise InputError(f"{path}: {suffix[1:].upper()} keeps 8 bits and this image is 16-bit; write .png or .tif,"
                         " or convert to uint8")
    return img


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an RGB(A) (H, W, 3|4) or label (H, W) image atomically; format from the extension.

    uint8 is written as given; uint16 as 16-bit (PNG, TIFF, PPM/PGM; other formats refuse it);
    floats in [0, 1] and bool as uint8 0-255. InputError for other values, and for what the format cannot
    hold (RGBA to JPEG or PPM, which keep no alpha: never dropped without a word)."""
    if not is_image_path(path):
        raise InputError(f"{path}: unknown image format; use one of {', '.join(IMAGE_EXTENSIONS)}")
    img = np.asarray(image)
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)) or 0 in img.shape[:2]:
        raise InputError(f"{path}: cannot write an image of shape {img.shape} (expected (H, W) or (H, W, 3))")
    img = _writable(img, path)
    suffix = Path(path).suffix.lower()
    if (reason := write_limit_reason(suffix, img.shape)) is not None:
        raise InputError(f"{path}: cannot write this image: {reason}")
    if img.ndim == 3:  # RGB(A) -> OpenCV's BGR(A)
        img = img[..., [2, 1, 0, 3][:img.shape[2]]]
    try:  # encoded in memory, written by Python (write_bytes_atomic): a full disk raises OSError naming path
        with native_stderr():  # (cv2.imwrite ignored a failing flush at fclose and left a cut-short file)
            encoded, data = cv2.imencode(suffix, np.ascontiguousarray(img))
    except cv2.error:  # (OpenCV's text, of its source files and assertions, is not for a user)
        encoded = False
    if not encoded:
        raise InputError(f"{path}: could not write image: {write_failure_reason(suffix, img.shape)}")
    with writing_output(path):
        write_bytes_atomic(path, memoryview(data))
