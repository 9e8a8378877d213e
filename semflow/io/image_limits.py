"""How many bytes an image file may hold, told from its size and its header before it is read whole.

A file of gigabytes that starts as a small image (a 50x40 PNG's first bytes, then 3 GB: data after the
image, a disk image that happens to begin so) was read whole into memory, then handed to OpenCV, which
decodes no buffer of 2 GiB or more and said so in an assertion of its own (11 s and 6.3 GB of memory for
a 3 GB file). :func:`oversize_reason` says, from the file's size (fstat) and the width, height, channels and
bit depth its header declares, when it holds far more than any image of that size could, before it is read.
Writing, :func:`write_limit_reason` says what a format cannot hold (grey in PPM, a JPEG 65501 pixels wide)
before OpenCV's encoder fails on it with text of its own, never shown.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO

MAX_IMAGE_FILE_BYTES = 2**31 - 1
"""The largest image file semflow reads, whatever its header says (or where it says no size: TIFF, GIF, PNM,
JPEG 2000, JPEG XL, OpenEXR...): ``cv2.imdecode`` takes no buffer of 2 GiB or more (its length must fit a C
``int``: it fails an assertion), and no image OpenCV decodes (at most 2^30 pixels) needs a file that large."""
METADATA_ROOM = 64 * 2**20
"""Bytes allowed in an image file beyond its image data: metadata (PNG text and ICC chunks, JPEG EXIF, XMP,
ICC and MPF previews, a motion photo's video after the image)."""
PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
"""A PNG's samples a pixel by its IHDR colour type: gray, RGB, palette, gray+alpha, RGBA (4: unknown types)."""
_MOST_CHUNKS = 1024  # the chunks (PNG) or segments (JPEG) before the image data that are read, 8 or 10 bytes each
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOF0-SOF15 (not DHT, JPG, DAC)


def size_text(size: int) -> str:
    """``size`` bytes in words: "3.0 GB", "120 MB", "4 KB" (of 1024)."""
    if size >= 2**30:
        return f"{size / 2**30:.1f} GB"
    return f"{size / 2**20:.0f} MB" if size >= 2**20 else f"{(size + 1023) // 1024} KB"


def png_stored_bytes(head: bytes) -> int | None:
    """The bytes of filtered pixel data (before compression) a PNG of ``head`` (its first 33 bytes or more)
    declares in its IHDR: each row's bytes and filter byte, the more rows of Adam7's passes where it is
    interlaced; None where ``head`` holds no IHDR."""
    if head[12:16] != b"IHDR" or len(head) < 29:
        return None
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    bits = min(max(head[24], 1), 16) * PNG_CHANNELS.get(head[25], 4)
    rows = height * (1 + (width * bits + 7) // 8)  # each row starts with its filter byte
    return rows + (4 * height + 14 if head[28] else 0)  # (Adam7: < 2h + 7 rows in all, each 2 bytes more at most)


def _png(head: bytes, read: Callable[[int, int], bytes]) -> tuple[int, int, int] | None:
    """(width, height, most bytes of image data) of a PNG: its stored bytes twice (deflate adds 5 bytes in
    65535 at worst, an IDAT chunk 12 bytes); None for an animation (acTL before the image data: its frames'
    number is not declared) or chunks not walked to IDAT."""
    if (stored := png_stored_bytes(head)) is None:
        return None
    at = 8
    for _ in range(_MOST_CHUNKS):
        chunk = read(at, 8)
        if len(chunk) < 8 or chunk[4:8] == b"acTL":
            return None
        if chunk[4:8] in (b"IDAT", b"IEND"):
            return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big"), 2 * stored
        at += 12 + int.from_bytes(chunk[:4], "big")
    return None


def _jpeg(read: Callable[[int, int], bytes]) -> tuple[int, int, int] | None:
    """(width, height, most bytes of image data) of a JPEG, from its frame header (SOFn), found by walking
    its marker segments (an APP segment's embedded thumbnail is skipped whole): 16 bytes a sample (32 above
    8 bits), its sides padded to whole MCUs of 32 (a Huffman-coded 8x8 block of 8-bit samples takes at most
    about 210 bytes, twice that with byte stuffing: 6.6 a sample); None where no frame header comes first."""
    at = 2
    for _ in range(_MOST_CHUNKS):
        segment = read(at, 10)
        if len(segment) < 4 or segment[0] != 0xFF:
            return None
        marker = segment[1]
        if marker == 0xFF:  # a fill byte
            at += 1
        elif marker in _JPEG_FRAMES:
            if len(segment) < 10:
                return None
            height, width = int.from_bytes(segment[5:7], "big"), int.from_bytes(segment[7:9], "big")
            samples = (-(-width // 32) * 32) * (-(-height // 32) * 32) * segment[9]
            return (width, height, samples * (16 if segment[4] <= 8 else 32)) if height else None  # (0: DNL's)
        elif 0xD0 <= marker <= 0xD7 or marker == 0x01:
            at += 2
        elif marker in (0xD9, 0xDA):  # an image's end or scan before its frame header: corrupt (decoding says)
            return None
        else:
            at += 2 + int.from_bytes(segment[2:4], "big")
    return None


def _bmp(head: bytes) -> tuple[int, int, int] | None:
    """(width, height, most bytes of image data) of a BMP from its DIB header: rows padded to 4 bytes, at
    least 8 bits a pixel (RLE4 and RLE8 take 2 bytes a pixel at worst), 64 for JPEG or PNG within; twice that."""
    core = int.from_bytes(head[14:18], "little") == 12  # (OS/2's: 16-bit sides)
    if len(head) < 30:
        return None
    width = int.from_bytes(head[18:20] if core else head[18:22], "little", signed=not core)
    height = abs(int.from_bytes(head[20:22] if core else head[22:26], "little", signed=not core))
    bits = int.from_bytes(head[24:26] if core else head[28:30], "little")
    if width <= 0 or height <= 0:
        return None
    return width, height, 2 * height * ((width * (max(bits, 8) if bits else 64) + 31) // 32 * 4)


def declared_image(head: bytes, read: Callable[[int, int], bytes]) -> tuple[str, int] | None:
    """What an image file that starts with ``head`` (its first 256 bytes) declares, as (what, most bytes it
    may take): ("a 50x40 PNG image", bytes) for a PNG, JPEG or BMP, ("a WebP image of 12 KB", bytes) for a
    WebP (its RIFF header's length); None where the header says no size cheaply or is an animation's
    (:data:`MAX_IMAGE_FILE_BYTES` alone bounds those). ``read(offset, size)`` gives the file's bytes there."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        riff = int.from_bytes(head[4:8], "little") + 8
        return f"a WebP image of {size_text(riff)}", riff + METADATA_ROOM
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        kind, found = "PNG", _png(head, read)
    elif head.startswith(b"\xff\xd8\xff"):
        kind, found = "JPEG", _jpeg(read)
    elif head.startswith(b"BM"):
        kind, found = "BMP", _bmp(head)
    else:
        return None
    if found is None:
        return None
    width, height, most = found
    return f"a {width}x{height} {kind} image", most + METADATA_ROOM


def bytes_at(file: BinaryIO, size: int) -> Callable[[int, int], bytes]:
    """``read(offset, count)``: the open ``file``'s (of ``size`` bytes) ``count`` bytes from ``offset``, fewer
    at its end and none past it (where seeking to an offset such as 2**63 would fail), as slicing bytes gives."""
    def read(offset: int, count: int) -> bytes:
        if offset >= size:
            return b""
        file.seek(offset)
        return file.read(count)

    return read


def oversize_reason(file: BinaryIO, head: bytes, size: int) -> str | None:
    """Why the open image ``file`` of ``size`` bytes, which starts with ``head``, is refused before it is read
    whole: more bytes than :data:`MAX_IMAGE_FILE_BYTES`, or than any image of the size its header declares
    could take (:func:`declared_image`); None when it may be read. Reads a few bytes of its headers."""
    if size > METADATA_ROOM and (declared := declared_image(head, bytes_at(file, size))) is not None \
            and size > declared[1]:
        return f"{size_text(size)}, far more than {declared[0]} holds (data after the image?)"
    if size > MAX_IMAGE_FILE_BYTES:
        return f"{size_text(size)}, larger than any image file semflow reads (2 GiB: OpenCV decodes none larger)"
    return None


def opencv_reason(text: str, size: int) -> str:
    """Why OpenCV could not decode an image file of ``size`` bytes, in plain words, from what its error
    (``text``: OpenCV's own, of its source lines and assertions, never shown) says."""
    if size > MAX_IMAGE_FILE_BYTES:
        return f"{size_text(size)}: OpenCV decodes no image from 2 GiB or more"
    if "CV_IO_MAX_IMAGE_PIXELS" in text:
        return "its header declares more pixels than OpenCV reads (2^30)"
    return "OpenCV's decoder failed on its data: a corrupt file, or a variant of its format OpenCV cannot read"


_MAX_SIDE = {".jpg": 65500, ".jpeg": 65500, ".webp": 16383, ".png": 1_000_000}  # libjpeg's, libwebp's, libpng's


def format_name(suffix: str) -> str:
    """The name of an image format by its file's ``suffix``: "PNG", "JPEG" (.jpg), "TIFF" (.tif)."""
    return {".jpg": "JPEG", ".tif": "TIFF"}.get(suffix, suffix[1:].upper())


def write_limit_reason(suffix: str, shape: tuple[int, ...]) -> str | None:
    """Why an image of ``shape`` ((H, W) or (H, W, 3|4)) cannot be written in the format of ``suffix``
    (".png", ".ppm"...), in plain words; None where the format can hold it. OpenCV's encoders fail on these
    with their own text (source lines, "(-215:Assertion failed)"), never shown to a user."""
    name = format_name(suffix)
    channels = shape[2] if len(shape) == 3 else 1
    if suffix == ".ppm" and channels != 3:
        if channels == 1:
            return "PPM holds RGB images and this one is grey; write .pgm or .png"
        return "PPM holds RGB images and this one is RGBA (PPM keeps no alpha); write .png or .tif"
    if suffix in (".jpg", ".jpeg") and channels == 4:  # (OpenCV's encoder dropped the alpha without a word)
        return "JPEG keeps no alpha and this image is RGBA; write .png, .tif or .webp, or drop the alpha (image[..., :3])"
    if suffix == ".pgm" and channels != 1:
        return "PGM holds grey images and this one has colour; write .ppm or .png"
    side = _MAX_SIDE.get(suffix)
    if side is not None and max(shape[:2]) > side:
        return f"{name} holds images of at most {side} pixels a side and this one is {shape[1]}x{shape[0]}"
    return None


def write_failure_reason(suffix: str, shape: tuple[int, ...]) -> str:
    """What to say where OpenCV's encoder for ``suffix`` failed on an image of ``shape`` for a reason
    :func:`write_limit_reason` does not know (its own text is never shown)."""
    return (f"OpenCV's {format_name(suffix)} encoder failed on this {shape[1]}x{shape[0]} image; try another"
            " format (.png, .tif)")
