"""A file of gigabytes that starts as a small image (a 50x40 PNG's bytes, then zeros: data after the image) is
refused in one line from its size and header, before it is read whole: it was read (6.3 GB of memory, 11 s for
3 GB), then OpenCV's own assertion text reached the user. Ordinary images, with large metadata too, still read."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from semflow.errors import InputError
from semflow.io import images
from semflow.io.flow import read_kitti_flow
from semflow.io.image_limits import MAX_IMAGE_FILE_BYTES, METADATA_ROOM, declared_image, oversize_reason
from semflow.io.images import decode_image, image_size, read_image, read_image_raw

READERS = {"read_image": read_image, "read_image_raw": read_image_raw, "kitti": read_kitti_flow,
           "labels": lambda path: read_image_raw(path, labels=True), "image_size": image_size}


def noise(height: int = 40, width: int = 50) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), np.uint8)


def encoded(ext: str, image: np.ndarray, *params: int) -> bytes:
    ok, buf = cv2.imencode(ext, image, list(params))
    assert ok
    return buf.tobytes()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def sparse(path: Path, head: bytes, size: int) -> Path:
    """``path``: ``head``, then zeros up to ``size`` bytes (sparse: no disk used)."""
    with open(path, "wb") as file:
        file.write(head)
        file.truncate(size)
    return path


def refused_reading_little(read, path: Path, match: str) -> str:
    """The message ``read(path)`` refuses ``path`` with (InputError, or OSError from image_size as Pillow's),
    checked to hold ``match`` and no OpenCV text, while Python allocated under 16 MB meanwhile."""
    tracemalloc.start()
    try:
        with pytest.raises(OSError if read is image_size else InputError, match=match) as caught:
            read(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**24, f"{peak} bytes allocated: the file was read"
    assert "OpenCV(" not in str(caught.value) and "Assertion" not in str(caught.value)
    return str(caught.value)


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("kind", ["PNG", "JPEG", "BMP"])
def test_a_multi_gb_file_that_starts_as_a_small_image_is_refused_before_it_is_read(
        tmp_path: Path, kind: str, reader: str) -> None:
    """3 GB: a 50x40 image's bytes then zeros; was read whole, then "cannot decode as an image (OpenCV(5.1.0)
    .../loadsave.cpp:1315: error: (-215:Assertion failed) buf.checkVector(1, CV_8U) > 0 ...)"."""
    head = encoded({"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp"}[kind], noise())
    big = sparse(tmp_path / "big.png", head, 3 * 2**30)
    message = refused_reading_little(READERS[reader], big, rf"big\.png: 3\.0 GB, far more than a 50x40 {kind} image"
                                     r" holds \(data after the image\?\)")
    assert message.count("\n") == 0


@pytest.mark.parametrize("head", [b"II*\0" + bytes(200), b"GIF89a2\0(\0" + bytes(200)], ids=["TIFF", "GIF"])
def test_a_file_over_2_gib_whose_header_says_no_size_is_refused_before_it_is_read(tmp_path: Path, head: bytes) -> None:
    """No size told cheaply (a TIFF's directory may lie anywhere, a GIF may be an animation): OpenCV decodes no
    buffer of 2 GiB or more (an assertion), so such a file is refused unread."""
    big = sparse(tmp_path / "big.tif", head, MAX_IMAGE_FILE_BYTES + 1)
    refused_reading_little(read_image, big, r"big\.tif: 2\.0 GB, larger than any image file semflow reads"
                                            r" \(2 GiB: OpenCV decodes none larger\)")


def test_the_repro_through_the_cli_is_one_plain_line(cli_fails, pair, tmp_path: Path) -> None:
    """`semflow flow big.png small.png`: was 11 s, 6.3 GB of memory, then OpenCV's assertion text."""
    sparse(tmp_path / "big.png", encoded(".png", noise()), 3 * 2**30)
    line = cli_fails("flow", "big.png", pair[1], "-o", "o.flo", match="far more than a 50x40 PNG image holds")
    assert "OpenCV(" not in line


def test_opencv_errors_are_said_in_plain_words(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever cv2.imdecode raises, its text (source file, line, assertion) is not what the user reads."""
    def failing(*args, **kwargs):
        raise cv2.error("OpenCV(5.1.0) /io/opencv/modules/imgcodecs/src/loadsave.cpp:1315: error: (-215:Assertion"
                        " failed) buf.checkVector(1, CV_8U) > 0 in function 'imdecode_'")

    monkeypatch.setattr(images.cv2, "imdecode", failing)
    with pytest.raises(InputError, match=r"x\.png: cannot decode as an image \(OpenCV's decoder failed") as caught:
        decode_image(encoded(".png", noise()), "x.png")
    assert "OpenCV(" not in str(caught.value) and "checkVector" not in str(caught.value)


def test_the_size_bound_is_the_image_data_at_worst_plus_metadata_room() -> None:
    """Just over the bound is refused, at it read: a 50x40 RGB PNG's 2 x 40 x 151 stored bytes + the room."""
    head = encoded(".png", noise())
    bound = 2 * 40 * (1 + 150) + METADATA_ROOM
    assert declared_image(head[:256], lambda at, n: head[at:at + n]) == ("a 50x40 PNG image", bound)
    assert oversize_reason(io.BytesIO(head), head[:256], bound) is None
    assert "far more than a 50x40 PNG image holds" in oversize_reason(io.BytesIO(head), head[:256], bound + 1)


@pytest.mark.parametrize("kind", ["png0", "png9", "jpeg100", "jpeg-progressive", "bmp", "webp-lossless"])
def test_worst_case_encodings_fit_in_the_image_data_the_bound_allows(kind: str) -> None:
    """Noise at the encoders' least compression takes less than the bound's image data (the room for metadata
    set aside): the bound refuses only what lies beyond any image of that size."""
    image = noise(97, 131)
    data = {"png0": lambda: encoded(".png", image, cv2.IMWRITE_PNG_COMPRESSION, 0),
            "png9": lambda: encoded(".png", image, cv2.IMWRITE_PNG_COMPRESSION, 9),
            "jpeg100": lambda: encoded(".jpg", image, cv2.IMWRITE_JPEG_QUALITY, 100,
                                       cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444),
            "jpeg-progressive": lambda: encoded(".jpg", image, cv2.IMWRITE_JPEG_QUALITY, 100,
                                                cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
            "bmp": lambda: encoded(".bmp", image),
            "webp-lossless": lambda: encoded(".webp", image, cv2.IMWRITE_WEBP_QUALITY, 101)}[kind]()
    what, most = declared_image(data[:256], lambda at, n: data[at:at + n])
    assert what.startswith("a WebP image of") if kind.startswith("webp") else what.startswith("a 131x97 ")
    assert len(data) <= most - METADATA_ROOM


def test_an_animated_png_is_bound_by_the_2_gib_limit_only() -> None:
    """An APNG (acTL before its image data) holds frames its header does not count: no size bound from one."""
    head = encoded(".png", noise())
    apng = head[:33] + png_chunk(b"acTL", struct.pack(">II", 1000, 0)) + head[33:]
    assert declared_image(apng[:256], lambda at, n: apng[at:at + n]) is None


def test_images_with_megabytes_of_metadata_still_read(tmp_path: Path) -> None:
    """A PNG with a 5 MB text chunk and a JPEG with 5 MB of APP segments (ICC profiles, XMP, camera makers'
    data) before its image: small images, read as before."""
    image = noise()
    text = np.random.default_rng(1).integers(97, 123, 5 * 2**20, np.uint8).tobytes()
    head = encoded(".png", image)
    (tmp_path / "text.png").write_bytes(head[:33] + png_chunk(b"tEXt", b"Comment\0" + text) + head[33:])
    jpeg = encoded(".jpg", image, cv2.IMWRITE_JPEG_QUALITY, 100)
    app = b"".join(b"\xff\xe2" + struct.pack(">H", 65535) + text[k:k + 65533] for k in range(0, 80 * 65533, 65533))
    (tmp_path / "app.jpg").write_bytes(jpeg[:2] + app + jpeg[2:])
    with_app = (tmp_path / "app.jpg").read_bytes()  # (its frame header found past the 80 segments: bounded)
    assert declared_image(with_app[:256], lambda at, n: with_app[at:at + n])[0] == "a 50x40 JPEG image"
    for name in ("text.png", "app.jpg"):
        expected = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg if name == "app.jpg" else head, np.uint8), 1),
                                cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(read_image(tmp_path / name), expected)
        assert image_size(tmp_path / name) == (40, 50)
    with Image.open(tmp_path / "text.png") as im:
        assert len(im.text["Comment"]) == len(text)


def test_image_size_of_a_tiff_holds_its_bytes_once(tmp_path: Path) -> None:
    """A TIFF's size is read_image's (Pillow's, turned or not by version): image_size read the file whole and
    kept those bytes while read_image read and decoded it again, three times the file's size at its peak
    (`segment` sizes every input first); now what read_image alone takes, the bytes and the decoded image."""
    import tracemalloc

    path = tmp_path / "a.tif"
    cv2.imwrite(str(path), noise(1000, 1500))
    size = path.stat().st_size
    tracemalloc.start()
    try:
        assert image_size(path) == (1000, 1500)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2.5 * size, f"{peak / size:.2f} times the file's {size} bytes"
