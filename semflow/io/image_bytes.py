"""Checks on the bytes of an image file, before any decoder sees them: whether a JPEG or PNG stream is
whole, and where a PNG's chunk is. Pure Python on ``bytes``; nothing is decoded."""

from __future__ import annotations


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


def png_chunk(data: bytes, kind: bytes) -> bytes | None:
    """The data of the first chunk of type ``kind`` in a PNG's bytes, or None."""
    n, i = len(data), 8
    while i + 12 <= n:
        length = int.from_bytes(data[i:i + 4], "big")
        if data[i + 4:i + 8] == kind:
            return data[i + 8:i + 8 + length]
        if data[i + 4:i + 8] == b"IEND":
            return None
        i += 12 + length
    return None
