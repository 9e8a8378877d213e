"""EXIF orientation: image files are read upright, as viewers show them (PIL's exif_transpose is the reference)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from semflow.io.images import image_size, read_image, read_image_raw


def asymmetric(height: int = 5, width: int = 7) -> np.ndarray:
    """An RGB image that every flip and rotation changes."""
    return np.random.default_rng(3).integers(0, 256, (height, width, 3), dtype=np.uint8)


def save(path: Path, image: np.ndarray, orientation: int | None, **kw: object) -> Path:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    Image.fromarray(image).save(path, exif=exif, **kw)
    return path


def reference(path: Path) -> np.ndarray:
    return np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))


@pytest.mark.parametrize("ext", ["png", "tif", "webp"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_frames_are_turned_upright(tmp_path: Path, orientation: int, ext: str) -> None:
    """The tag was ignored: a phone photo with orientation 6 came out sideways."""
    kw = {"lossless": True} if ext == "webp" else {}
    path = save(tmp_path / f"o{orientation}.{ext}", asymmetric(), orientation, **kw)
    assert Image.open(path).getexif().get(0x0112) == orientation
    expected = reference(path)
    assert (orientation == 1) == np.array_equal(expected, asymmetric())
    np.testing.assert_array_equal(read_image(path), expected)
    np.testing.assert_array_equal(read_image_raw(path)[..., ::-1], expected)  # BGR
    np.testing.assert_array_equal(read_image_raw(path, gray=True).shape, expected.shape[:2])
    assert image_size(path) == expected.shape[:2]  # (from the header)


def test_tagged_and_untagged_jpegs_of_one_scene_have_one_size(tmp_path: Path) -> None:
    """A pair of one tagged and one untagged JPEG gave 'frame sizes differ: 120x160 vs 160x120'."""
    yy, xx = np.mgrid[0:120, 0:160]
    scene = np.dstack([xx * 1.5, yy * 2.0, (xx + yy) * 0.9]).astype(np.uint8)
    upright = save(tmp_path / "upright.jpg", scene, None, quality=95)
    sideways = save(tmp_path / "sideways.jpg", np.ascontiguousarray(np.rot90(scene, 1)), 6, quality=95)
    a, b = read_image(upright), read_image(sideways)
    assert a.shape == b.shape == (120, 160, 3)
    assert np.abs(b.astype(int) - reference(sideways)).max() <= 2
    assert np.abs(a.astype(int) - b).mean() < 2


def test_label_maps_follow_the_tag(tmp_path: Path) -> None:
    """A mask saved by the same camera app lines up with its frame; palette masks too."""
    from semflow.segmentation import get_segmenter
    from semflow.segmentation.masks import read_label_map

    ids = np.zeros((4, 6), np.uint8)
    ids[0, :2], ids[3, 5] = 15, 7
    gray = Image.fromarray(ids)
    exif = Image.Exif()
    exif[0x0112] = 6
    gray.save(tmp_path / "gray.png", exif=exif)
    palette = Image.fromarray(ids, "P")
    palette.putpalette([v for i in range(256) for v in (i, (i * 7) % 256, 255 - i)])
    palette.save(tmp_path / "palette.png", exif=exif)
    upright = np.rot90(ids, -1)  # 6: rotate 90 degrees clockwise
    for name in ("gray.png", "palette.png"):
        np.testing.assert_array_equal(read_label_map(tmp_path / name), upright)
        np.testing.assert_array_equal(np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / name))), upright)
        seg = get_segmenter(f"masks:{tmp_path / name}", label_set="voc").predict(np.zeros((6, 4, 3), np.uint8))
        np.testing.assert_array_equal(seg.labels, upright)


@pytest.mark.parametrize("exif", [b"Exif\x00\x00garbage", b"MM\x00*\x00\x00\x00\x08\xff\xff", b"II*\x00"])
def test_corrupt_exif_means_no_rotation(tmp_path: Path, exif: bytes) -> None:
    img = asymmetric()
    for ext in ("png", "jpg"):
        path = tmp_path / f"bad.{ext}"
        Image.fromarray(img).save(path, exif=exif, **({"quality": 100} if ext == "jpg" else {}))
        assert read_image(path).shape == img.shape
    np.testing.assert_array_equal(read_image(tmp_path / "bad.png"), img)


@pytest.mark.parametrize("exif", [b"Exif\x00\x00garbage", b"MM\x00*\x00\x00\x00\x08\xff\xff", b"II*\x00",
                                  b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\xce\x00\x06\x00\x00\x00\x00\x00\x00"],
                         ids=["garbage", "no-entries", "header-only", "orientation-past-the-end"])
def test_image_size_of_corrupt_exif_is_said_without_pillows_warnings(tmp_path: Path, exif: bytes) -> None:
    """image_size opened the image unsilenced: an orientation tag of 206 values (data past the file) made
    Pillow warn "Tag data larger than file. Skipping tag 274" on `semflow segment`'s stderr, two lines."""
    for ext in ("png", "jpg"):
        path = tmp_path / f"bad.{ext}"
        Image.fromarray(asymmetric()).save(path, exif=exif)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert image_size(path) == (5, 7)


@pytest.mark.parametrize("value", [0, 9, 65535])
def test_orientations_out_of_range_mean_no_rotation(tmp_path: Path, value: int) -> None:
    path = save(tmp_path / "odd.png", asymmetric(), value)
    np.testing.assert_array_equal(read_image(path), asymmetric())


def _chunks(data: bytes) -> list[bytes]:
    """A PNG's chunks, each whole (length, type, data, CRC)."""
    out, i = [], 8
    while i < len(data):
        end = i + 12 + int.from_bytes(data[i:i + 4], "big")
        out.append(data[i:end])
        i = end
    return out


def test_exif_after_the_pixels_is_read_without_decoding_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An eXIf chunk after IDAT counts too; the tag is read from the metadata, never by decoding the pixels."""
    from PIL import ImageFile

    from semflow.io.images import exif_orientation

    path = save(tmp_path / "late.png", asymmetric(), 8)
    data = path.read_bytes()
    chunks = _chunks(data)
    exif = next(c for c in chunks if c[4:8] == b"eXIf")
    rest = [c for c in chunks if c is not exif]
    late = data[:8] + b"".join(rest[:-1]) + exif + rest[-1]  # eXIf between the last IDAT and IEND
    assert late.index(b"eXIf") > late.index(b"IDAT")
    (tmp_path / "moved.png").write_bytes(late)
    expected = np.rot90(asymmetric(), 1)  # 8: rotate 90 degrees counter-clockwise
    np.testing.assert_array_equal(reference(tmp_path / "moved.png"), expected)
    np.testing.assert_array_equal(read_image(tmp_path / "moved.png"), expected)

    def no_decoding(self: object) -> None:
        raise AssertionError("pixels decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    assert exif_orientation(late) == 8 and exif_orientation(data) == 8
    jpeg = tmp_path / "t.jpg"
    save(jpeg, asymmetric(), 5)
    assert exif_orientation(jpeg.read_bytes()) == 5
    assert exif_orientation(save(tmp_path / "none.png", asymmetric(), None).read_bytes()) == 1
