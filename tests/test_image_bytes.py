"""io.image_bytes on hand-made streams: where a JPEG's walk from marker to marker ends, when a PNG's chunks
are whole, and which bytes png_chunk gives (the readers' tests see these only through OpenCV)."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from semflow.io.image_bytes import jpeg_is_complete, png_chunk, png_is_complete

SOI, EOI = b"\xff\xd8", b"\xff\xd9"
SOS = b"\xff\xda\x00\x02"  # a start of scan with an empty header (2 bytes: the length itself)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


PNG = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", bytes(13)) + _chunk(b"IDAT", b"pixels")


@pytest.mark.parametrize(("stream", "whole"), [
    (SOI + EOI, True),
    (SOI + b"\xff" + EOI, True),  # a fill byte before a marker
    (SOI + b"\xff\x01" + EOI, True),  # TEM: a marker without a length
    (SOI + SOS + b"\x12\x34\xff\xd0\x56\xff\x00\x78" + EOI, True),  # restart marker and stuffed 0xFF in scan data
    (SOI + SOS + b"\x12\xff\xff\xd9", True),  # fill bytes after scan data
    (SOI + b"\x00\x00" + EOI, False),  # bytes where a marker must be
    (SOI + b"\xff", False),
    (SOI + b"\xff\xe0\x00", False),  # a segment's length cut short
    (SOI + SOS + b"\x12\xff", False),  # scan data cut short after a 0xFF
    (SOI + SOS + b"\x12\x34", False),
])
def test_a_jpeg_stream_is_whole_only_when_its_walk_reaches_end_of_image(stream: bytes, whole: bool) -> None:
    assert jpeg_is_complete(stream) is whole


def test_a_real_jpeg_is_whole_and_any_cut_of_it_is_not() -> None:
    image = np.random.default_rng(0).integers(0, 256, (24, 32, 3), np.uint8)
    data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_RST_INTERVAL, 1])[1].tobytes()
    assert b"\xff\xd0" in data and jpeg_is_complete(data)
    assert not any(jpeg_is_complete(data[:cut]) for cut in range(2, len(data) - 1, 7))


def test_a_png_is_whole_where_its_chunks_fit_and_end_in_iend() -> None:
    assert png_is_complete(PNG + _chunk(b"IEND", b""))
    assert not png_is_complete(PNG)  # cut after its last IDAT: no IEND
    assert not png_is_complete(PNG + _chunk(b"IEND", b"")[:-1])
    iend_cut = struct.pack(">I", 4) + b"IEND" + b"data"  # (an IEND whose data's CRC is cut off)
    assert not png_is_complete(PNG + iend_cut)


def test_png_chunk_gives_a_chunks_data_only_and_nothing_after_iend() -> None:
    data = PNG + _chunk(b"eXIf", b"exif data") + _chunk(b"IEND", b"") + _chunk(b"tEXt", b"late")
    assert png_chunk(data, b"eXIf") == b"exif data"
    assert png_chunk(data, b"IDAT") == b"pixels"
    assert png_chunk(data, b"tEXt") is None and png_chunk(data, b"zTXt") is None
