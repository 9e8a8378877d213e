"""Images: every kind of file is read as uint8 RGB (H, W, 3); OpenCV's BGR never leaks; bad files fail cleanly."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from semflow.errors import InputError, SemflowWarning
from semflow.io import images
from semflow.io.files import starts_as_video
from semflow.io.images import decode_image, read_image, read_image_raw, to_rgb_uint8, write_image


def colour_image(height: int = 6, width: int = 8) -> np.ndarray:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    img[0, 0] = (255, 0, 0)  # pure red in RGB
    return img


def test_png_round_trip_keeps_rgb_order(tmp_path: Path) -> None:
    img = colour_image()
    write_image(tmp_path / "a.png", img)
    back = read_image(tmp_path / "a.png")
    assert back.dtype == np.uint8 and back.shape == (6, 8, 3)
    np.testing.assert_array_equal(back, img)
    # On disk it is an ordinary PNG: OpenCV (BGR) sees red in its last channel.
    assert tuple(cv2.imread(str(tmp_path / "a.png"))[0, 0]) == (0, 0, 255)


def test_gray_png_is_replicated_to_three_channels(tmp_path: Path) -> None:
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    back = read_image(tmp_path / "g.png")
    assert back.shape == (6, 8, 3)
    for c in range(3):
        np.testing.assert_array_equal(back[..., c], gray)


def test_rgba_png_drops_alpha_and_keeps_colour(tmp_path: Path) -> None:
    img = colour_image()
    bgra = np.dstack([img[..., ::-1], np.full((6, 8), 7, np.uint8)])
    cv2.imwrite(str(tmp_path / "rgba.png"), bgra)
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), img)


@pytest.mark.parametrize("orientation", [1, 6])
def test_rgba_tiff_with_straight_alpha_keeps_its_colour_as_a_png_does(tmp_path: Path, orientation: int) -> None:
    """OpenCV's TIFF decoder multiplies the colour of an 8-bit RGBA TIFF whose alpha is unassociated (straight,
    as Pillow, GIMP and Photoshop write it) by its alpha: a grey of 100 at alpha 128 read 50, at alpha 0 black,
    where the same pixels in a PNG read 100 (alpha is dropped). A folder of such frames, or a PNG then TIFFs,
    read other colours than the files hold."""
    grey = np.array([[200, 100, 30], [50, 255, 7]], np.uint8).repeat(3, 0).repeat(3, 1)
    alpha = np.array([[255, 128, 1], [0, 64, 200]], np.uint8).repeat(3, 0).repeat(3, 1)
    rgba = np.dstack([grey, grey // 2, 255 - grey, alpha])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.tif", tiffinfo={274: orientation})
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    expected = rgba[..., :3] if orientation == 1 else np.rot90(rgba[..., :3], -1)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), rgba[..., :3])
    np.testing.assert_array_equal(read_image(tmp_path / "a.tif"), expected)
    assert read_image_raw(tmp_path / "a.tif").shape == (*expected.shape[:2], 4)


def test_16bit_png_is_scaled_to_8bit(tmp_path: Path) -> None:
    rgb16 = np.zeros((4, 4, 3), np.uint16)
    rgb16[0, 0] = (65535, 0, 257 * 128)
    rgb16[1, 1] = (257, 257 * 2, 65535 // 2)
    cv2.imwrite(str(tmp_path / "d.png"), rgb16[..., ::-1])
    back = read_image(tmp_path / "d.png")
    assert back.dtype == np.uint8
    assert tuple(back[0, 0]) == (255, 0, 128)
    assert tuple(back[1, 1]) == (1, 2, 127)  # 32767 * 255 / 65535 = 127.498


def test_12bit_data_stored_unscaled_in_a_16bit_png_is_warned_once(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(images, "_warned_unscaled", False, raising=False)
    twelve_bit = (colour_image().astype(np.uint16) * 16)  # 0..4080: 12-bit camera values, not scaled up
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(tmp_path / name), twelve_bit[..., ::-1])
    with pytest.warns(SemflowWarning, match="12-bit data stored unscaled") as caught:
        dark = read_image(tmp_path / "a.png")
        read_image(tmp_path / "b.png")  # a second frame of the run: not said again
    assert len(caught) == 1 and "a.png" in str(caught[0].message)
    assert dark.max() <= 16  # what it warns of: values read as 255/65535 of themselves


def test_16bit_png_with_values_above_12_bits_reads_without_a_warning(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(images, "_warned_unscaled", False, raising=False)
    twelve_bit = np.random.default_rng(1).integers(0, 4096, (6, 8, 3), dtype=np.uint16)
    twelve_bit[0, 0] = 4095
    scaled = (twelve_bit << 4) | (twelve_bit >> 8)  # scaled up as the PNG spec says: left bit replication
    cv2.imwrite(str(tmp_path / "s.png"), scaled[..., ::-1])
    back = read_image(tmp_path / "s.png")  # (a warning would fail the test: they are errors in tests)
    assert np.abs(back.astype(int) - np.round(twelve_bit / 4095 * 255)).max() <= 1
    black = np.zeros((4, 4), np.uint16)  # all zero: the same black either way, nothing to say
    assert (to_rgb_uint8(black) == 0).all()


def test_16bit_gray_png(tmp_path: Path) -> None:
    gray = np.full((3, 5), 65535, np.uint16)
    gray[0, 0] = 0
    cv2.imwrite(str(tmp_path / "g16.png"), gray)
    back = read_image(tmp_path / "g16.png")
    assert back.shape == (3, 5, 3) and back[0, 0].tolist() == [0, 0, 0] and (back[1:] == 255).all()


def test_ppm_and_jpeg_are_read(tmp_path: Path) -> None:
    img = colour_image(16, 16)
    write_image(tmp_path / "a.ppm", img)
    np.testing.assert_array_equal(read_image(tmp_path / "a.ppm"), img)
    flat = np.full((16, 16, 3), (200, 40, 10), np.uint8)
    write_image(tmp_path / "a.jpg", flat)
    assert np.abs(read_image(tmp_path / "a.jpg").astype(int) - flat).max() <= 3


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.full((2, 3), 9, np.uint8), [9, 9, 9]),
        (np.full((2, 3, 1), 9, np.uint8), [9, 9, 9]),
        (np.full((2, 3), 1.0, np.float32), [255, 255, 255]),
        (np.full((2, 3, 3), 0.5, np.float64), [128, 128, 128]),
        (np.full((2, 3, 3), 1.005, np.float32), [255, 255, 255]),  # a resampling's overshoot is clipped
        (np.ones((2, 3), bool), [255, 255, 255]),
        (np.full((2, 3, 4), 65535, np.uint16), [255, 255, 255]),
    ],
    ids=["gray", "gray1", "float-gray", "float-rgb", "float-over", "bool", "rgba16"],
)
def test_to_rgb_uint8_converts_arrays(array: np.ndarray, expected: list[int]) -> None:
    out = to_rgb_uint8(array)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 3)
    assert out[1, 2].tolist() == expected


def test_to_rgb_uint8_bgr_flag_swaps_channels() -> None:
    bgr = np.zeros((2, 2, 3), np.uint8)
    bgr[..., 0] = 200
    assert to_rgb_uint8(bgr, bgr=True)[0, 0].tolist() == [0, 0, 200]
    assert to_rgb_uint8(bgr)[0, 0].tolist() == [200, 0, 0]


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.zeros((4, 4, 2), np.uint8), "expected an image"),
        (np.zeros((4,), np.uint8), "expected an image"),
        (np.zeros((1, 4, 3), np.uint8), r"too small \(4x1; at least 2x2 px\)"),
        (np.zeros((4, 4, 3), np.int32), "unsupported image dtype"),
        (np.full((4, 4, 3), np.nan, np.float32), "NaN or inf"),
        # 0..255 floats (frame.astype(np.float32)) all clipped to white: the flow came out zero, no word
        (np.arange(48, dtype=np.float32).reshape(4, 4, 3) * 5, r"values in \[0, 1\], this one holds 0 to 235"),
        (np.full((4, 4, 3), -0.5, np.float64), "holds -0.5 to -0.5"),
    ],
    ids=["2-channels", "1d", "one-row", "int32", "nan", "float-0-255", "float-negative"],
)
def test_to_rgb_uint8_rejects(array: np.ndarray, match: str) -> None:
    with pytest.raises(InputError, match=match):
        to_rgb_uint8(array)


def test_read_image_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(InputError, match="not a file"):
        read_image(tmp_path)
    (tmp_path / "fake.png").write_bytes(b"definitely not a png")
    with pytest.raises(InputError, match="cannot decode"):
        read_image(tmp_path / "fake.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(InputError, match="cannot decode"):
        read_image(tmp_path / "empty.jpg")


def test_write_image_unknown_extension_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown image format"):
        write_image(tmp_path / "a.xyz", colour_image())
    assert not list(tmp_path.iterdir())


def test_write_image_label_map_and_16bit(tmp_path: Path) -> None:
    labels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    write_image(tmp_path / "l.png", labels)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "l.png"), cv2.IMREAD_UNCHANGED), labels)
    deep = (np.arange(12, dtype=np.uint16) * 5000).reshape(3, 4)
    write_image(tmp_path / "d.png", deep)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "d.png"), cv2.IMREAD_UNCHANGED), deep)


def _png_header(width: int, height: int, depth: int, colour: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` and holds 64 bytes of pixel data (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _deflate_tiff(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "TIFF", compression="tiff_adobe_deflate")
    return buf.getvalue()


def _encode(ext: str, image: np.ndarray, *params: int) -> bytes:
    return cv2.imencode(ext, image, list(params))[1].tobytes()


@pytest.mark.parametrize(
    ("make", "shape"),
    [
        (lambda: _encode(".png", np.zeros((512, 512), np.uint8), cv2.IMWRITE_PNG_COMPRESSION, 9), (512, 512)),
        (lambda: _encode(".png", np.zeros((512, 512), np.uint16), cv2.IMWRITE_PNG_COMPRESSION, 9), (512, 512)),
        (lambda: _deflate_tiff(np.zeros((1024, 1024), np.uint8)), (1024, 1024)),
        (lambda: _encode(".webp", np.zeros((256, 256, 3), np.uint8)), (256, 256, 3)),
    ],
    ids=["gray-png", "16bit-png", "deflate-tiff", "webp"],
)
def test_flat_images_that_compress_well_are_not_called_corrupt(monkeypatch: pytest.MonkeyPatch, make, shape) -> None:
    """A flat 7680x4320 gray PNG (836:1) was refused as corrupt: the bound took 4 bytes a pixel. It now takes
    the stored bits per pixel (PNG: from IHDR) and no bound for WebP, whose flat frames cost a few bits."""
    monkeypatch.setattr(images, "ALWAYS_ALLOWED_BYTES", 0)  # the compression bound alone, on small files
    assert decode_image(make(), "flat").shape == shape
    for width, depth, colour in ((12_000, 1, 0), (12_000, 8, 3), (12_000, 8, 2), (100_000, 16, 6)):
        with pytest.raises(InputError, match="more than its|too large"):  # bombs: still refused
            decode_image(_png_header(width, 12_000, depth, colour), "bomb")


def test_write_image_refuses_shapes_it_cannot_write(tmp_path: Path) -> None:
    """An empty image put OpenCV's assertion text in the error."""
    for shape in ((0, 0, 3), (4, 0), (4, 4, 2), (4,)):
        with pytest.raises(InputError, match=r"cannot write an image of shape"):
            write_image(tmp_path / "x.png", np.zeros(shape, np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_write_image_says_in_plain_words_what_a_format_cannot_hold(tmp_path: Path) -> None:
    """A grey image to .ppm, colour to .pgm, a JPEG or WebP wider than its format allows: the error said only
    "could not write image" (OpenCV's log, of its sources and error codes, said why). RGBA to JPEG was written
    with its alpha dropped without a word (16-bit to JPEG refused, RGBA to PPM too): now refused alike."""
    cases = (("x.ppm", (4, 4), "PPM holds RGB images and this one is grey"),
             ("x.ppm", (4, 4, 4), "this one is RGBA"),
             ("x.jpg", (4, 4, 4), r"JPEG keeps no alpha and this image is RGBA; write \.png, \.tif or \.webp, or"
                                  r" drop the alpha \(image\[\.\.\., :3\]\)$"),
             ("x.JPEG", (4, 4, 4), "JPEG keeps no alpha"),
             ("x.pgm", (4, 4, 3), "PGM holds grey images"),
             ("x.jpg", (1, 65501, 3), "JPEG holds images of at most 65500 pixels a side and this one is 65501x1"),
             ("x.webp", (16384, 1), "WEBP holds images of at most 16383 pixels a side"))
    for name, shape, reason in cases:
        with pytest.raises(InputError, match=reason) as info:
            write_image(tmp_path / name, np.zeros(shape, np.uint8))
        assert "OpenCV(" not in str(info.value)
    assert list(tmp_path.iterdir()) == []
    write_image(tmp_path / "x.jpg", np.zeros((1, 65500, 3), np.uint8))  # the largest it holds is written


def test_write_image_never_shows_opencvs_error_text(tmp_path: Path, monkeypatch) -> None:
    """An encoder's exception put its last line in the error: "OpenCV(5.1.0) .../loadsave.cpp:1722: error:
    (-215:Assertion failed) code in function 'imencodeWithMetadata'"."""
    def failing(*_args, **_kwargs):
        raise cv2.error("OpenCV(5.1.0) /io/opencv/modules/imgcodecs/src/loadsave.cpp:1722: error: "
                        "(-215:Assertion failed) code in function 'imencodeWithMetadata'")
    monkeypatch.setattr(images.cv2, "imencode", failing)
    with pytest.raises(InputError, match=r"x\.tif: could not write image: OpenCV's TIFF encoder failed on this "
                                         r"8x6 image") as info:
        write_image(tmp_path / "x.tif", colour_image())
    assert "OpenCV(" not in str(info.value) and "-215" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_write_image_keeps_rgba_channels_in_order(tmp_path: Path) -> None:
    """An RGBA array was written reversed (ABGR into OpenCV's BGRA: alpha as blue)."""
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 90  # red, semi-transparent
    write_image(tmp_path / "x.png", rgba)
    bgra = cv2.imread(str(tmp_path / "x.png"), cv2.IMREAD_UNCHANGED)
    assert bgra[0, 0].tolist() == [0, 0, 200, 90]
    assert read_image(tmp_path / "x.png")[0, 0].tolist() == [200, 0, 0]


def _voc_colour_map() -> list[int]:
    """PASCAL VOC's bit-interleaved colour map: 256 entries, flattened r, g, b."""
    cmap = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap += [r, g, b]
    return cmap


def test_voc_palette_mask_is_read_as_class_ids(tmp_path: Path) -> None:
    """Official VOC masks are palette PNGs whose pixels are the class ids: they were refused as colour images."""
    from semflow.segmentation import get_segmenter
    from semflow.segmentation.masks import read_label_map

    ids = np.zeros((6, 8), np.uint8)
    ids[1:4, 2:6] = 15  # person
    ids[2, 3] = 7  # car: its display colour is the grey (128, 128, 128)
    ids[0] = 255  # void border
    im = Image.fromarray(ids, "P")
    im.putpalette(_voc_colour_map())
    im.save(tmp_path / "voc.png")
    assert Image.open(tmp_path / "voc.png").mode == "P"
    labels = read_label_map(tmp_path / "voc.png")
    assert labels.shape == (6, 8)
    np.testing.assert_array_equal(labels, ids)
    seg = get_segmenter(f"masks:{tmp_path / 'voc.png'}", label_set="voc").predict(colour_image())
    np.testing.assert_array_equal(seg.labels, ids)


def test_grey_palette_label_maps_keep_their_ids(tmp_path: Path) -> None:
    """A grey identity palette gives its indices, as before; an all-grey palette that is not the identity (a gray
    label map that a PNG optimiser stored as a palette) keeps giving its grey levels, as before."""
    from semflow.segmentation.masks import read_label_map

    ids = (np.arange(48, dtype=np.uint8).reshape(6, 8) % 5) * 3
    im = Image.fromarray(ids, "P")
    im.putpalette([v for i in range(256) for v in (i, i, i)])
    im.save(tmp_path / "identity.png")
    np.testing.assert_array_equal(read_label_map(tmp_path / "identity.png"), ids)
    levels = np.array([0, 3, 6, 9, 12], np.uint8)
    packed = Image.fromarray((ids // 3).astype(np.uint8), "P")
    packed.putpalette([int(v) for level in levels for v in (level, level, level)])
    packed.save(tmp_path / "packed.png")
    np.testing.assert_array_equal(read_label_map(tmp_path / "packed.png"), ids)


@pytest.mark.parametrize("suffix", [".tga", ".pcx"])
def test_palette_label_maps_pillow_reads_but_opencv_does_not_are_read(tmp_path: Path, suffix: str) -> None:
    """A palette label map in a format whose start no OpenCV decoder reads (TGA, PCX: Pillow's) gives its
    class ids, and image_size its size, as before the sniffing of first bytes: Pillow's identification closed
    the file it was handed, and reading it whole then failed ("seek of closed file")."""
    from semflow.io.images import image_size
    from semflow.segmentation.masks import read_label_map

    ids = (np.arange(48, dtype=np.uint8).reshape(6, 8) % 5)
    im = Image.fromarray(ids, "P")
    im.putpalette(_voc_colour_map())
    im.save(tmp_path / f"mask{suffix}")
    np.testing.assert_array_equal(read_label_map(tmp_path / f"mask{suffix}"), ids)
    np.testing.assert_array_equal(read_image_raw(tmp_path / f"mask{suffix}", labels=True), ids)
    assert image_size(tmp_path / f"mask{suffix}") == (6, 8)
    with pytest.raises(InputError, match=r"cannot decode as an image \(it does not start as any image format"):
        read_image(tmp_path / f"mask{suffix}")  # (as an image, not labels: no OpenCV decoder reads it)


def test_a_tga_label_map_whose_header_declares_too_many_pixels_says_so(tmp_path: Path) -> None:
    """A label map Pillow knows (TGA) whose header declares more pixels than Pillow opens is refused as too large,
    as before the sniffing of first bytes: not as a file that starts as no image format."""
    from semflow.segmentation.masks import read_label_map

    Image.fromarray(np.zeros((6, 8), np.uint8), "P").save(tmp_path / "mask.tga")
    data = bytearray((tmp_path / "mask.tga").read_bytes())
    struct.pack_into("<HH", data, 12, 60000, 60000)  # (the TGA header's width and height)
    (tmp_path / "mask.tga").write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"mask\.tga: image of more than \d+ pixels; too large to read$"):
        read_label_map(tmp_path / "mask.tga")


def test_write_image_scales_float_and_bool_images(tmp_path: Path) -> None:
    """Floats in [0, 1] (which the readers take) were written as 0 and 1 (black); bool as 0 and 1."""
    img = colour_image()
    write_image(tmp_path / "f.png", img / 255.0)
    np.testing.assert_array_equal(read_image(tmp_path / "f.png"), img)
    write_image(tmp_path / "f.tif", img.astype(np.float32) / 255.0)
    np.testing.assert_array_equal(read_image(tmp_path / "f.tif"), img)
    mask = img[..., 0] > 128
    write_image(tmp_path / "b.png", mask)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "b.png"), cv2.IMREAD_UNCHANGED), mask * np.uint8(255))
    with pytest.raises(InputError, match=r"f2\.png: a float image must hold values in \[0, 1\]"):
        write_image(tmp_path / "f2.png", img.astype(np.float32))
    with pytest.raises(InputError, match="NaN or inf"):
        write_image(tmp_path / "f3.png", np.full((4, 4), np.nan))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.png", "f.png", "f.tif"]


def test_write_image_16bit_is_kept_or_refused(tmp_path: Path) -> None:
    """16-bit arrays were written to JPEG saturated (all white); where the format keeps 16 bits they are kept."""
    deep = colour_image().astype(np.uint16) * 257
    for name in ("d.png", "d.tif", "d.tiff", "d.ppm"):
        write_image(tmp_path / name, deep)
        back = cv2.imread(str(tmp_path / name), cv2.IMREAD_UNCHANGED)
        assert back.dtype == np.uint16
        np.testing.assert_array_equal(back[..., ::-1], deep)
    for name in ("w16.jpg", "w16.webp", "w16.bmp"):
        with pytest.raises(InputError, match=rf"w16\.{name[4:]}: .* keeps 8 bits"):
            write_image(tmp_path / name, deep)
    assert not list(tmp_path.glob("w16*"))
    wide = np.arange(12, dtype=np.int64).reshape(3, 4) * 20  # other integers: as uint8 when they fit
    write_image(tmp_path / "i.png", wide)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "i.png"), cv2.IMREAD_UNCHANGED), wide)
    with pytest.raises(InputError, match=r"neg\.png: cannot write int64 values -1 to 219"):
        write_image(tmp_path / "neg.png", wide - 1)


def test_to_rgb_uint8_detaches_torch_tensors() -> None:
    """A tensor that requires grad raised torch's bare RuntimeError (numpy() on a tensor that requires grad)."""
    torch = pytest.importorskip("torch")
    t = torch.rand(4, 5, 3, requires_grad=True)
    expected = (t.detach().numpy() * 255.0 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(to_rgb_uint8(t * 1.0), expected)
    np.testing.assert_array_equal(to_rgb_uint8(torch.full((4, 5, 3), 9, dtype=torch.uint8))[0, 0], [9, 9, 9])


def test_three_channel_float_tiffs_that_pillow_cannot_open_are_read_and_checked(tmp_path: Path) -> None:
    """OpenCV's three-channel float32 TIFF (Pillow has no mode for it) was 'cannot decode as an image':
    its size is now read from its TIFF directory, checked as any other header, and the pixels decoded."""
    rgb = np.random.default_rng(0).random((24, 32, 3)).astype(np.float32)
    cv2.imwrite(str(tmp_path / "unit.tif"), rgb[..., ::-1])
    assert np.array_equal(read_image(tmp_path / "unit.tif"), np.round(rgb * 255).astype(np.uint8))
    cv2.imwrite(str(tmp_path / "grey_levels.tif"), rgb * 255)
    with pytest.raises(InputError, match=r"grey_levels\.tif: a float image must hold values in \[0, 1\]"):
        read_image(tmp_path / "grey_levels.tif")
    data = bytearray(_encode(".tiff", rgb))  # now declare 40000 x 40000 float pixels in its 1.2 kB
    directory = int.from_bytes(data[4:8], "little")
    for entry in range(int.from_bytes(data[directory:directory + 2], "little")):
        at = directory + 2 + 12 * entry
        if int.from_bytes(data[at:at + 2], "little") in (256, 257):  # ImageWidth, ImageLength
            kind = int.from_bytes(data[at + 2:at + 4], "little")
            data[at + 8:at + 8 + (2 if kind == 3 else 4)] = (40_000).to_bytes(2 if kind == 3 else 4, "little")
    with pytest.raises(InputError, match="declares 40000x40000 pixels, more than its"):
        decode_image(bytes(data), "bomb")
    with pytest.raises(InputError, match="bad: cannot decode as an image"):
        decode_image(b"II*\0" + b"\xff" * 40, "bad")


@pytest.mark.parametrize("kind", ["GIF", "PNG", "WEBP"])
def test_an_animation_given_as_an_image_is_refused(tmp_path: Path, kind: str) -> None:
    """`flow a.gif b.gif` took each animation's first frame without a word (a format zoo probe)."""
    frames = [Image.fromarray(np.full((12, 16, 3), 60 * k, np.uint8)) for k in range(3)]
    frames[0].save(tmp_path / "moving.img", kind, save_all=True, append_images=frames[1:])
    with pytest.raises(InputError, match=r"moving\.img: an animation, not one image \(`semflow run` reads"):
        read_image(tmp_path / "moving.img")
    frames[1].save(tmp_path / "still.img", kind)
    assert read_image(tmp_path / "still.img").shape == (12, 16, 3)


def tiff_of_pages(path: Path, *, second: tuple[int, int] = (12, 16), subfile_type: int = 0,
                  more: tuple[tuple[tuple[int, int], int], ...] = ()) -> np.ndarray:
    """Write a TIFF of pages: the first, then one ``second`` (H, W) with NewSubfileType ``subfile_type``, then
    those of ``more`` ((H, W), NewSubfileType) in order; its first page."""
    first = colour_image(12, 16)
    later = ((second, subfile_type), *more)
    pages = [Image.fromarray(first), *(Image.fromarray(np.full((*shape, 3), 200, np.uint8)) for shape, _ in later)]
    pages[0].save(path, "TIFF", save_all=True, append_images=pages[1:], tiffinfo={254: 0})
    data = bytearray(path.read_bytes())
    directory = int.from_bytes(data[4:8], "little")
    for _, kind in later:  # each directory's next offset follows its entries
        directory = int.from_bytes(data[directory + 2 + 12 * int.from_bytes(data[directory:directory + 2], "little"):]
                                   [:4], "little")
        for entry in range(int.from_bytes(data[directory:directory + 2], "little")):
            at = directory + 2 + 12 * entry
            if int.from_bytes(data[at:at + 2], "little") == 254:  # NewSubfileType, a LONG held in the entry
                data[at + 8:at + 12] = kind.to_bytes(4, "little")
    path.write_bytes(bytes(data))
    return first


def test_a_tiff_of_several_pages_given_as_an_image_is_refused(tmp_path: Path) -> None:
    """`flow a.tif b.tif` took each stack's first page without a word (OpenCV reads no other); a thumbnail or an
    overview (a reduced-resolution second directory) is no page: its TIFF is read as before."""
    tiff_of_pages(tmp_path / "stack.tif")
    with pytest.raises(InputError, match=r"stack\.tif: a TIFF of several pages, not one image \(OpenCV reads its"):
        read_image(tmp_path / "stack.tif")
    first = tiff_of_pages(tmp_path / "thumbnail.tif", second=(6, 8), subfile_type=1)
    np.testing.assert_array_equal(read_image(tmp_path / "thumbnail.tif"), first)
    tiff_of_pages(tmp_path / "thumb-page.tif", second=(6, 8), subfile_type=1, more=(((12, 16), 0),))
    with pytest.raises(InputError, match=r"thumb-page\.tif: a TIFF of several pages"):  # (a thumbnail, then a page)
        read_image(tmp_path / "thumb-page.tif")
    tiff_of_pages(tmp_path / "overviews.tif", second=(6, 8), subfile_type=1, more=(((3, 4), 1),))
    np.testing.assert_array_equal(read_image(tmp_path / "overviews.tif"), first)
    write_image(tmp_path / "one.tif", first)
    np.testing.assert_array_equal(read_image(tmp_path / "one.tif"), first)
    assert not images.tiff_pages(tmp_path / "one.tif") and images.tiff_pages(tmp_path / "stack.tif")
    data = bytearray((tmp_path / "one.tif").read_bytes())  # a next directory past the end: no page
    directory = int.from_bytes(data[4:8], "little")
    at = directory + 2 + 12 * int.from_bytes(data[directory:directory + 2], "little")
    data[at:at + 4] = (len(data) + 100).to_bytes(4, "little")
    (tmp_path / "broken.tif").write_bytes(bytes(data))
    np.testing.assert_array_equal(read_image(tmp_path / "broken.tif"), first)


def test_a_tiff_of_several_pages_given_as_a_video_is_refused(tmp_path: Path) -> None:
    """`semflow run stack.tif` read it as a clip of one frame (OpenCV's FFmpeg reads the first page) and said to
    use `semflow flow` for one image; it now says what the file is, as `flow` does."""
    from semflow.io.video import FrameSource

    tiff_of_pages(tmp_path / "stack.tif")
    with pytest.raises(InputError, match=r"stack\.tif: a TIFF of several pages, not one image"):
        FrameSource(tmp_path / "stack.tif")
    tiff_of_pages(tmp_path / "thumbnail.tif", second=(6, 8), subfile_type=1)
    assert len(FrameSource(tmp_path / "thumbnail.tif")) == 1  # (then "need at least 2 frames", as before)


@pytest.mark.parametrize(("colour_max", "alpha", "warned"), [(4095, None, True), (4096, None, False),
                                                               (4095, 65535, True)])
def test_the_12bit_warning_reads_the_colour_values_up_to_4095_only(colour_max: int, alpha: int | None, warned: bool,
                                                                   monkeypatch) -> None:
    """Colour values of at most 4095 are warned of, 4096 not; an alpha channel (opaque: 65535) is not
    colour, and a blue channel above 4095 is (red and green below it say nothing alone)."""
    monkeypatch.setattr(images, "_warned_unscaled", False)
    image = np.zeros((4, 4, 3 if alpha is None else 4), np.uint16)
    image[..., :2] = 100
    image[0, 0, 2] = colour_max
    if alpha is not None:
        image[..., 3] = alpha
    if warned:
        with pytest.warns(SemflowWarning, match="12-bit data stored unscaled"):
            to_rgb_uint8(image)
    else:
        to_rgb_uint8(image)  # (a warning would fail the test: they are errors in tests)


def test_a_video_given_as_an_image_is_refused_from_its_first_bytes_before_it_is_read_whole(
        monkeypatch, tmp_path: Path) -> None:
    """A video (here an MP4 header, renamed .png) is refused with the hint to use `semflow run` before the file
    is read into memory (a video may be gigabytes); an AVIF or HEIC still image, an ISO media file too, is not
    taken for a video: it goes on to be decoded (and, being junk here, fails without the hint)."""
    def never(*args, **kwargs):
        raise AssertionError("the whole file was read")

    video = tmp_path / "clip.png"
    video.write_bytes(b"\x00\x00\x00\x20ftypisom" + bytes(100))
    monkeypatch.setattr(images, "_read_upright", never)
    with pytest.raises(InputError, match=r"clip\.png: cannot decode as an image \(it is a video: `semflow run"):
        read_image(video)
    monkeypatch.undo()
    for brand in (b"avif", b"heic", b"mif1"):
        still = tmp_path / f"still_{brand.decode()}.png"
        still.write_bytes(b"\x00\x00\x00\x20ftyp" + brand + bytes(100))
        with pytest.raises(InputError, match=r"cannot decode as an image") as caught:
            read_image(still)
        assert "it is a video" not in str(caught.value)



@pytest.mark.parametrize("reader", ["read_image", "read_image_raw", "labels", "image_size", "kitti"])
def test_a_huge_file_that_starts_as_no_image_is_refused_before_it_is_read_whole(tmp_path: Path, reader: str) -> None:
    """`flow A B` given a file of gigabytes that is neither an image nor a video read it whole into memory before
    decoding failed: its first bytes, which start no image format (here a SQLite database's, 3 GB sparse: no
    disk used), are refused in one line, and what Python allocates meanwhile stays small."""
    import tracemalloc

    from semflow.io.flow import read_kitti_flow
    from semflow.io.images import image_size

    big = tmp_path / "data.png"
    with open(big, "wb") as file:
        file.write(b"SQLite format 3\0" + bytes(100))
        file.truncate(3 * 2**30)
    read = {"read_image": read_image, "read_image_raw": read_image_raw, "kitti": read_kitti_flow,
            "labels": lambda path: read_image_raw(path, labels=True), "image_size": image_size}[reader]
    tracemalloc.start()
    try:
        with pytest.raises(OSError if reader == "image_size" else InputError,  # (image_size: as Pillow's)
                           match=r"data\.png: cannot decode as an image \(it does not start as any image format"):
            read(big)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**24, f"{peak} bytes allocated: the file was read"


def canon_head(version: bytes) -> bytes:
    """The first bytes of a Canon CR3 photo or CRM movie (as Canon writes both): an ftyp box of brand "crx ",
    then moov, whose first box is Canon's uuid box, whose first is CNCV, the compressor version ``version``."""
    cncv = (8 + len(version)).to_bytes(4, "big") + b"CNCV" + version
    uuid = (24 + len(cncv)).to_bytes(4, "big") + b"uuid" + bytes.fromhex("85c0b687820f11e08111f4ce462b6a48") + cncv
    return (b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01crx isom" + (8 + len(uuid)).to_bytes(4, "big") + b"moov" + uuid
            + bytes(200))


def test_a_canon_cr3_photo_is_named_a_camera_raw_image_not_a_video(tmp_path: Path) -> None:
    """A Canon CR3 photo (an ISO media file of brand "crx ", as Canon's CRM movies are) was called a video: "it
    is a video: `semflow run VIDEO`". It is named a camera raw image semflow cannot read, to convert; a CRM
    movie (its compressor version says CanonCRM) is still a video; other raws that are no TIFF are named too."""
    photo, movie = tmp_path / "IMG_0001.CR3", tmp_path / "A001C001.CRM"
    photo.write_bytes(canon_head(b"CanonCR3_001/00.09.00/00.00.00"))
    movie.write_bytes(canon_head(b"CanonCRM0001/02.09.00/00.00.00"))
    with pytest.raises(InputError, match=r"IMG_0001\.CR3: a camera raw image \(Canon CR3\), which semflow cannot"
                                         r" read; convert it with a raw converter \(darktable, RawTherapee,"
                                         r" dcraw\.\.\.\) to an RGB PNG or TIFF$"):
        read_image(photo)
    assert not starts_as_video(photo) and starts_as_video(movie)
    with pytest.raises(InputError, match=r"A001C001\.CRM: cannot decode as an image \(it is a video"):
        read_image(movie)
    for head, name in ((b"FUJIFILMCCD-RAW 0201", "Fujifilm RAF"), (b"IIRO\x08\x00\x00\x00", "Olympus ORF"),
                       (b"IIU\x00\x18\x00\x00\x00", "Panasonic RW2"), (b"II\x1a\x00\x00\x00HEAPCCDR", "Canon CRW")):
        (tmp_path / "raw").write_bytes(head + bytes(300))
        with pytest.raises(InputError, match=rf"raw: a camera raw image \({name}\), which semflow cannot read"):
            read_image_raw(tmp_path / "raw", labels=True)


def test_a_heif_still_of_another_major_brand_is_not_called_a_video(tmp_path: Path) -> None:
    """A HEIF still lists ``mif1`` among its compatible brands whatever its major one (``avci``, ``jpeg``,
    ``mif2``...): one semflow cannot decode fails as an image, without the hint that it is a video; an MP4
    whose brands are a video's still gets the hint."""
    box = b"\x00\x00\x00\x1cftyp%s\x00\x00\x00\x00%smiafavci"
    for major, compatible, is_video in ((b"avci", b"mif1", False), (b"jpeg", b"msf1", False), (b"mp42", b"isom", True)):
        path = tmp_path / f"{major.decode()}.heic"
        path.write_bytes(box % (major, compatible) + bytes(100))
        with pytest.raises(InputError, match=r"cannot decode as an image") as caught:
            read_image(path)
        assert ("it is a video" in str(caught.value)) == is_video, major


def _ascii_pnm(path: Path, magic: str, values: np.ndarray, top: int | None) -> None:
    """A plain (ASCII) PBM, PGM or PPM of ``values`` (H, W[, 3]), ``top`` its maximum value (none for P1)."""
    header = f"{magic}\n# written by hand\n{values.shape[1]} {values.shape[0]}\n" + (f"{top}\n" if top else "")
    path.write_text(header + "\n".join(" ".join(str(int(v)) for v in row.ravel()) for row in values) + "\n")


ENCODED = ["BMP", "TIFF big-endian", "BigTIFF", "JPEG 2000", "JPEG 2000 codestream", "Sun raster", "PFM grey",
           "PBM plain", "PGM plain", "PPM plain", "PBM", "PGM", "PPM"]


@pytest.mark.parametrize("kind", ENCODED)
def test_every_format_read_before_the_first_bytes_were_sniffed_is_still_read(tmp_path: Path, kind: str) -> None:
    """Files of each format that read_image, read_image_raw and image_size read before they looked at a file's
    first bytes (OpenCV decodes it, Pillow reads its header), written by OpenCV, Pillow or by hand, are read as
    before: dropping any of their starts from io.files.IMAGE_SIGNATURES refused them."""
    from semflow.io.images import image_size

    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, (6, 8), dtype=np.uint8)
    colour = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    path, raw = tmp_path / "image", None  # (raw: what read_image_raw gives, where the format is lossless)
    if kind == "BMP":
        path, raw = tmp_path / "a.bmp", colour
        cv2.imwrite(str(path), raw)
    elif kind == "TIFF big-endian":  # ("MM": Pillow writes 16-bit grey big-endian as it is given)
        path, raw = tmp_path / "a.tif", grey.astype(np.uint16) * 257
        Image.frombytes("I;16B", (8, 6), raw.astype(">u2").tobytes()).save(path)
    elif kind == "BigTIFF":
        path = tmp_path / "a.tif"
        Image.fromarray(colour).save(path, big_tiff=True)
        raw = colour[..., ::-1]
    elif kind.startswith("JPEG 2000"):
        path = tmp_path / ("a.j2k" if "codestream" in kind else "a.jp2")
        Image.fromarray(colour).save(path)
    elif kind == "Sun raster":
        path, raw = tmp_path / "a.ras", colour
        cv2.imwrite(str(path), raw)
    elif kind == "PFM grey":
        if ".pfm" not in Image.registered_extensions():  # (Pillow reads and writes PFM from 10.3 on)
            pytest.skip("this Pillow knows no PFM: semflow refuses a PFM's header with it, as it did before")
        path, raw = tmp_path / "a.pfm", grey.astype(np.float32) / 255
        Image.fromarray(raw, "F").save(path)
    elif kind.endswith("plain"):
        values, magic, top = {"PBM": (grey > 127, "P1", None), "PGM": (grey, "P2", 255),
                              "PPM": (colour, "P3", 255)}[kind.split()[0]]
        path = tmp_path / f"a.{kind.split()[0].lower()}"
        _ascii_pnm(path, magic, values.astype(np.uint8), top)
        raw = (values == 0).astype(np.uint8) * 255 if magic == "P1" else values[..., ::-1] if values.ndim == 3 else values
    else:  # binary PBM (P4), PGM (P5), PPM (P6)
        path = tmp_path / f"a.{kind.lower()}"
        raw = {"PBM": np.where(grey > 127, 255, 0).astype(np.uint8), "PGM": grey, "PPM": colour}[kind]
        cv2.imwrite(str(path), raw)
    assert read_image(path).shape == (6, 8, 3) and image_size(path) == (6, 8)
    if raw is not None:
        np.testing.assert_array_equal(read_image_raw(path), raw)


def test_each_image_start_is_named_and_other_bytes_after_an_ftyp_box_are_no_brands(tmp_path: Path) -> None:
    """io.files names every start its tables hold, of files OpenCV's encoders wrote where it writes the
    format (PAM, Radiance HDR, colour PFM) and by their specifications otherwise (OpenEXR, JPEG XL, big-endian
    BigTIFF, the Olympus ORF variants): what a file given for weights is, and an input's one-line refusal,
    say it. An MP4 whose next box holds an image brand's bytes is still a video: brands are the ftyp box's."""
    from semflow.io.files import camera_raw, image_format, media_kind, video_container

    for name, image in (("a.pam", colour_image()), ("a.hdr", np.zeros((6, 8, 3), np.float32)),
                        ("a.pfm", np.zeros((6, 8, 3), np.float32))):
        cv2.imwrite(str(tmp_path / name), image)
    head = {name: (tmp_path / name).read_bytes()[:256] for name in ("a.pam", "a.hdr", "a.pfm")}
    assert [image_format(head[name]) for name in ("a.pam", "a.hdr", "a.pfm")] == ["PNM", "Radiance HDR", "PFM"]
    assert media_kind(head["a.hdr"]) == "a Radiance HDR image" and media_kind(b"#?RGBE\n") == "a Radiance HDR image"
    assert media_kind(b"v/1\x01\x02\x00\x00\x00") == "an OpenEXR image"
    assert media_kind(b"MM\x00+\x00\x08\x00\x00") == "a BigTIFF image"
    assert media_kind(b"\x00\x00\x00\x0cJXL \r\n\x87\n") == "a JPEG XL image"
    assert image_format(b"\xff\n\x07\x08") == "JPEG XL" and media_kind(b"\xff\n\x07\x08") is None  # (two bytes)
    assert camera_raw(b"IIRS\x08\x00\x00\x00") == camera_raw(b"MMOR\x00\x00\x00\x08") == "Olympus ORF"
    mp4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00\x00\x00\x10free" + b"heicmif1" + bytes(200)
    assert video_container(mp4) == "MP4 or MOV" and image_format(mp4) is None


def test_a_heif_whose_only_image_brand_is_its_last_is_an_image_and_raw_starts_are_starts() -> None:
    """The last brand of an ftyp box counts (a HEIF still of major brand avci whose one compatible brand is
    mif1 is no video), and a camera raw's signature names a file that starts with it, not one holding it."""
    from semflow.io.files import camera_raw, image_format, video_container

    heif = b"\x00\x00\x00\x14ftypavci\x00\x00\x00\x00mif1" + bytes(100)
    assert image_format(heif) == "AVIF or HEIF" and video_container(heif) is None
    assert camera_raw(b"SQLite format 3\x00" + b"IIU\x00IIRO" + bytes(100)) is None


@pytest.mark.parametrize(("name", "start"), [("old.mov", b"\x00\x00\x00\x08wide\x00\x00\x10\x00mdat"),
                                             ("clip.mpg", b"\x00\x00\x01\xba\x44\x00\x04\x00\x04\x01")])
def test_a_video_named_so_that_starts_as_no_image_gets_the_hint_alone(tmp_path: Path, name: str, start: bytes) -> None:
    """A video read_image does not know by its first bytes (a QuickTime MOV that starts with a wide box, an MPEG
    program stream) but by its name said "cannot decode as an image (it is a video: ...)"; since the sniffing of
    first bytes it said two reasons in a row, "(it does not start as any image format semflow reads) (it is a
    video: ...)". It says the video hint alone again."""
    (tmp_path / name).write_bytes(start + bytes(300))
    with pytest.raises(InputError) as caught:
        read_image(tmp_path / name)
    assert str(caught.value) == (f"{tmp_path / name}: cannot decode as an image (it is a video: `semflow run VIDEO`"
                                 " computes a video's flows)")
