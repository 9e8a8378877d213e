"""TIFF-based camera raws (DNG, Canon CR2, Nikon NEF...) are refused, not read as their first directory's preview.

OpenCV's TIFF decoder reads a TIFF's first directory only; a camera raw keeps a thumbnail there (or a JPEG
preview, or the sensor's undemosaiced data) and its full image in a SubIFD, so `semflow flow a.dng b.dng`
computed flow on two 40x30 thumbnails without a word. The files here are written by tifffile (scikit-image's
dependency), with the tags such cameras write.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile

from semflow.errors import InputError
from semflow.io.images import image_size, read_image, write_image
from semflow.io.raw_tiff import camera_raw_file_reason, first_directory, tiff_raw_reason

DNG_VERSION = (50706, "B", 4, (1, 4, 0, 0), True)
PREVIEW = np.full((30, 40, 3), 50, np.uint8)  # (IFD0's thumbnail; the full image is 300x400)
FULL = np.full((300, 400, 3), 100, np.uint8)


def raw_with_preview(path: Path, *, extratags: tuple = (), sub_ifd: bool = True, **options: object) -> Path:
    """A camera raw's layout: IFD0 a reduced-resolution RGB preview (NewSubfileType 1), the full image in its
    SubIFD (or, without ``sub_ifd``, in the next directory); ``options`` for tifffile's TiffWriter."""
    with tifffile.TiffWriter(path, **options) as tif:
        tif.write(PREVIEW, subfiletype=1, photometric="rgb", subifds=1 if sub_ifd else None, extratags=extratags)
        tif.write(FULL, photometric="rgb")
    return path


def cr2(path: Path) -> Path:
    """A Canon CR2's start: a little-endian TIFF with "CR", version 2.0 and the raw directory's offset at byte 8,
    its IFD0 an image OpenCV reads (here an 8-bit grey strip; a CR2's is a full-size JPEG preview)."""
    height, width, pixels = 6, 8, bytes(range(48))
    tags = [(256, 3, width), (257, 3, height), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 16), (277, 3, 1),
            (278, 3, height), (279, 4, len(pixels))]
    ifd = struct.pack("<H", len(tags)) + b"".join(struct.pack("<HHII", tag, kind, 1, value) for tag, kind, value in tags)
    path.write_bytes(b"II*\0" + struct.pack("<I", 16 + len(pixels)) + b"CR\x02\0\0\0\0\0" + pixels + ifd + bytes(4))
    return path


def cfa(path: Path, photometric: int) -> Path:
    """A TIFF whose IFD0 is a sensor's data: PhotometricInterpretation CFA (32803, one 16-bit sample a pixel,
    as a Pentax PEF or a Samsung SRW) or LinearRaw (34892, three)."""
    samples = 1 if photometric == 32803 else 3
    data = np.full((30, 40, samples)[:2 + (samples > 1)], 1000, np.uint16)
    tifffile.imwrite(path, data, photometric=photometric, extratags=[(33421, "H", 2, (2, 2), True)])
    return path


RAWS: dict[str, tuple[Callable[[Path], Path], str, str]] = {
    "dng": (lambda p: raw_with_preview(p, extratags=(DNG_VERSION,)), "x.dng", r"a camera raw image \(DNG\)"),
    "dng-named-tif": (lambda p: raw_with_preview(p, extratags=(DNG_VERSION,)), "x.tif", r"a camera raw image \(DNG\)"),
    "dng-bigtiff-big-endian": (lambda p: raw_with_preview(p, extratags=(DNG_VERSION,), bigtiff=True, byteorder=">"),
                               "x.tif", r"a camera raw image \(DNG\)"),
    "cr2": (cr2, "x.cr2", r"a camera raw image \(Canon CR2\)"),
    "nef": (raw_with_preview, "x.nef", r"a camera raw image \(Nikon NEF\)"),
    "arw": (raw_with_preview, "x.ARW", r"a camera raw image \(Sony ARW\)"),
    "preview-tif": (raw_with_preview, "x.tif", r"its first image is a reduced-resolution preview \(as a camera raw's"),
    "preview-then-page": (lambda p: raw_with_preview(p, sub_ifd=False), "x.tif", r"its first image is a reduced-res"),
    "cfa": (lambda p: cfa(p, 32803), "x.tif", r"a camera raw image \(a TIFF of a camera sensor's colour filter array"),
    "linear-raw": (lambda p: cfa(p, 34892), "x.tif", r"a camera raw image \(a TIFF of a camera sensor's linear raw"),
    "pef": (lambda p: cfa(p, 32803), "x.pef", r"a camera raw image \(Pentax PEF\)"),
}


@pytest.mark.parametrize("kind", list(RAWS))
def test_a_tiff_based_camera_raw_is_refused_by_read_image_and_image_size(tmp_path: Path, kind: str) -> None:
    """read_image gave the 30x40 preview (the CFA ones: "cannot decode" or grey sensor data), image_size (which
    plans folders and segment's memory) its size; both now refuse the file, alike, in one line naming it."""
    make, name, said = RAWS[kind]
    path = make(tmp_path / name)
    for read in (read_image, image_size):
        with pytest.raises(InputError, match=rf"^{re.escape(str(tmp_path / name))}: {said}") as caught:
            read(path)
        assert "\n" not in str(caught.value)


def test_dngs_are_refused_on_the_command_line(tmp_path: Path, cli_fails: Callable[..., str]) -> None:
    """`semflow flow a.dng b.dng` wrote a 40x30 flow of the thumbnails, exit 0; `semflow run` on a folder of
    DNGs named .tif read their thumbnails as the clip. One line, non-zero exit, nothing written."""
    for name in ("a.dng", "b.dng"):
        raw_with_preview(tmp_path / name, extratags=(DNG_VERSION,))
    (tmp_path / "frames").mkdir()
    for k in range(3):
        raw_with_preview(tmp_path / "frames" / f"{k:04d}.tif", extratags=(DNG_VERSION,))
    cli_fails("flow", "a.dng", "b.dng", "-o", "f.flo", match="a.dng: a camera raw image (DNG), which semflow cannot read")
    cli_fails("run", "frames", "--method", "farneback", "--out", "out", match="0000.tif: a camera raw image (DNG)")


def test_a_tiff_of_a_sensors_data_is_told_to_use_a_raw_converter(tmp_path: Path,
                                                                 cli_fails: Callable[..., str]) -> None:
    """A TIFF of a sensor's colour filter array data (undemosaiced) was told "convert it to PNG or TIFF", though
    it is a TIFF: what to do is a raw converter (which demosaics) writing an RGB PNG or TIFF. So for every raw."""
    advice = "which semflow cannot read; convert it with a raw converter (darktable, RawTherapee, dcraw...) to an RGB"
    for name in ("a.tif", "b.tif"):
        cfa(tmp_path / name, 32803)
    said = rf"a camera raw image \(a TIFF of a camera sensor's colour filter array data\), {re.escape(advice)} PNG or TIFF$"
    with pytest.raises(InputError, match=rf"a\.tif: {said}"):
        read_image(tmp_path / "a.tif")
    cli_fails("flow", "a.tif", "b.tif", "-o", "f.flo", match=f"a.tif: a camera raw image (a TIFF of a camera sensor's"
              f" colour filter array data), {advice} PNG or TIFF")
    cli_fails("run", "a.tif", "--out", "out", match=f"{advice} PNG or TIFF")


def ordinary_tiffs(folder: Path) -> dict[str, np.ndarray]:
    """TIFFs OpenCV reads whole, each written with what read_image should give (uint8 RGB)."""
    rgb = np.arange(24 * 32 * 3, dtype=np.uint8).reshape(24, 32, 3)
    grey16 = (np.arange(24 * 32, dtype=np.uint16).reshape(24, 32) * 80)
    cases = {"rgb.tif": ({}, rgb, rgb), "grey.tif": ({}, rgb[..., 0], np.repeat(rgb[..., :1], 3, axis=2)),
             "big-endian.tif": ({"byteorder": ">"}, rgb, rgb), "bigtiff.tif": ({"bigtiff": True}, rgb, rgb),
             "tiled.tif": ({"tile": (16, 16), "compression": "zlib"}, rgb, rgb),
             "grey16.tif": ({}, grey16, np.repeat((grey16 * (255 / 65535) + 0.5).astype(np.uint8)[..., None], 3, 2)),
             "lone-thumbnail.tif": ({"subfiletype": 1}, rgb, rgb)}  # (marked reduced, but the only image)
    expected = {}
    for name, (options, data, want) in cases.items():
        tifffile.imwrite(folder / name, data, photometric="rgb" if data.ndim == 3 else "minisblack", **options)
        expected[name] = want
    with tifffile.TiffWriter(folder / "overview-subifds.tif") as tif:  # (full image first, its overview in a SubIFD)
        tif.write(rgb, photometric="rgb", subifds=1)
        tif.write(rgb[::2, ::2], photometric="rgb", subfiletype=1)
    expected["overview-subifds.tif"] = rgb
    tifffile.imwrite(folder / "turned.tif", rgb, photometric="rgb", extratags=[(274, "H", 1, 6, True)])
    expected["turned.tif"] = np.ascontiguousarray(rgb[::-1].swapaxes(0, 1))  # (Orientation 6: a quarter turn)
    write_image(folder / "written.tif", rgb)
    expected["written.tif"] = rgb
    return expected


def test_ordinary_tiffs_still_read_as_before(tmp_path: Path) -> None:
    """The check reads a TIFF's first directory only: single-page RGB, grey, 16-bit, big-endian, BigTIFF, tiled,
    turned by its Orientation tag, a lone image marked reduced-resolution and a full image with its overview in
    a SubIFD read as before (a guard, passing before the check too), image_size agreeing."""
    for name, want in ordinary_tiffs(tmp_path).items():
        np.testing.assert_array_equal(read_image(tmp_path / name), want, err_msg=name)
        assert image_size(tmp_path / name) == want.shape[:2], name


def test_a_camera_raw_given_to_run_and_a_folder_of_them_are_named(tmp_path: Path,
                                                                  cli_fails: Callable[..., str]) -> None:
    """`semflow run x.nef` said "not a readable video (no frame could be decoded)"; `semflow run shots` and
    `semflow segment shots` on a folder of NEFs said "folder holds no images" (raws are no frame semflow
    reads: skipped, as any other file) without saying what the folder holds."""
    raw_with_preview(tmp_path / "x.nef")
    (tmp_path / "shots").mkdir()
    for k in (1, 2, 10):
        raw_with_preview(tmp_path / "shots" / f"DSC_{k}.NEF")
    cli_fails("run", "x.nef", "--out", "out", match="x.nef: a camera raw image (Nikon NEF), which semflow cannot read")
    note = ("shots: folder holds no images (it holds 3 camera raw images, such as DSC_1.NEF, which semflow cannot"
            " read; convert them with a raw converter to RGB PNGs or TIFFs)")
    cli_fails("run", "shots", "--out", "out", match=note)
    cli_fails("segment", "shots", "--out", "out", match=note)


@pytest.mark.parametrize(("name", "head", "said"), [
    ("x.orf", b"IIRO\x08\0\0\0", "Olympus ORF"), ("x.raf", b"FUJIFILMCCD-RAW 0201FF383501", "Fujifilm RAF"),
    ("x.cr3", b"\0\0\0\x18ftypcrx \0\0\0\x01crx isom", "Canon CR3")])
def test_a_camera_raw_that_is_no_tiff_given_to_run_is_named(tmp_path: Path, cli_fails: Callable[..., str],
                                                            name: str, head: bytes, said: str) -> None:
    """`semflow run x.orf` said "need at least 2 frames to compute flow, got 1" (FFmpeg read one frame of it), a
    RAF or CR3 "not a readable video"; read_image already named them by their first bytes."""
    (tmp_path / name).write_bytes(head + bytes(300))
    cli_fails("run", name, "--out", "out", match=f"{name}: a camera raw image ({said}), which semflow cannot read")



def mutated(data: bytes, rng: np.random.Generator) -> bytes:
    """``data`` with 1 to 4 random changes in its first 400 bytes (overwritten by random bytes or by 0xff, 0 or
    0x7f, bytes inserted, deleted) or cut short."""
    out = bytearray(data)
    for _ in range(rng.integers(1, 5)):
        at, size, change = int(rng.integers(0, min(len(out), 400) + 1)), int(rng.integers(1, 9)), rng.integers(0, 6)
        if change == 0:
            out[at:at + size] = rng.bytes(size)
        elif change < 3:
            out[at:at + size] = (b"\xff", b"\0", b"\x7f")[at % 3] * size
        elif change == 3:
            out[at:at] = rng.bytes(size)
        elif change == 4:
            del out[at:at + size]
        else:
            del out[at:]
    return bytes(out)


def test_mutated_raw_headers_give_a_reason_or_none_and_read_little(tmp_path: Path) -> None:
    """10,000 random mutations of the raws above, in their header and first directory: the check says why a file is
    refused or None, never raises, and reads at most the header and one directory of 4096 entries (tifffile and
    Pillow read the gigabytes a tag claims)."""
    rng = np.random.default_rng(7)
    seeds = [(make(tmp_path / name).read_bytes()[:4096], name) for make, name, _ in RAWS.values()]
    assert all(tiff_raw_reason(data, name) for data, name in seeds)  # (their first 4 KB tell them)
    for k in range(10_000):
        data, name = seeds[k % len(seeds)]
        data = mutated(data, rng)
        asked: list[int] = []

        def read(offset: int, size: int, data: bytes = data, asked: list[int] = asked) -> bytes:
            asked.append(size)
            return data[offset:offset + size]

        assert isinstance(first_directory(read), dict | None)
        assert sum(asked) <= 16 + 8 + 4096 * 20 + 8 + 2 * 8, k
        reason = tiff_raw_reason(data, name)
        assert reason is None or "\n" not in reason and reason.endswith(("to an RGB PNG or TIFF",
                                                                        "as a TIFF of one image")), reason


def test_a_dng_whose_tag_value_lies_past_any_file_is_named_as_a_video_too(tmp_path: Path) -> None:
    """A BigTIFF DNG whose PhotometricInterpretation values lie at offset 2**63 (seeking there fails): read_image
    named it, but the check of a file given as a video (`semflow run x.dng`) lost the whole directory and said
    None."""
    entries = [(254, 4, 1, struct.pack("<Q", 1)), (262, 3, 5, struct.pack("<Q", 2**63)),
               (50706, 1, 4, bytes((1, 4, 0, 0, 0, 0, 0, 0)))]
    ifd = struct.pack("<Q", len(entries)) + b"".join(struct.pack("<HHQ8s", *entry) for entry in entries)
    path = tmp_path / "x.dng"
    path.write_bytes(b"II+\0" + struct.pack("<HHQ", 8, 0, 16) + ifd + bytes(8))
    said = ("a camera raw image (DNG), which semflow cannot read; convert it with a raw converter (darktable,"
            " RawTherapee, dcraw...) to an RGB PNG or TIFF")
    assert tiff_raw_reason(path.read_bytes(), path) == said
    assert camera_raw_file_reason(path) == said
