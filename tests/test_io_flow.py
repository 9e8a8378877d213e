"""Flow file formats: .flo, KITTI 16-bit PNG and .npy; round trips, unknown pixels, real files, bad files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import semflow
from semflow.errors import FlowRangeWarning, InputError
from semflow.io.flow import (
    FLO_TAG,
    UNKNOWN_FLOW_VALUE,
    check_flow,
    read_flo,
    read_flow,
    read_flow_valid,
    read_kitti_flow,
    read_npy_flow,
    write_flo,
    write_flow,
    write_kitti_flow,
)


def random_flow(height: int = 7, width: int = 11, scale: float = 30.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((height, width, 2)) * scale).astype(np.float32)


def unknown_mask(height: int = 7, width: int = 11, seed: int = 1) -> np.ndarray:
    valid = np.random.default_rng(seed).random((height, width)) > 0.3
    valid[0, 0], valid[-1, -1] = False, True
    return valid


def flo_bytes(width: int, height: int, body: bytes | None = None, tag: float = FLO_TAG) -> bytes:
    header = np.array([tag], "<f4").tobytes() + np.array([width, height], "<i4").tobytes()
    if body is None:
        body = np.zeros((height, width, 2), "<f4").tobytes() if 0 < width * height < 10**6 else b""
    return header + body


# --- .flo ---------------------------------------------------------------------------------------


def test_flo_round_trip_is_exact(tmp_path: Path) -> None:
    flow = random_flow()
    write_flow(tmp_path / "f.flo", flow)
    back, valid = read_flow_valid(tmp_path / "f.flo")
    assert back.dtype == np.float32 and back.shape == (7, 11, 2)
    np.testing.assert_array_equal(back, flow)
    assert valid.all()


def test_flo_layout_follows_middlebury(tmp_path: Path) -> None:
    """Tag, width then height, then u and v interleaved row by row, little-endian."""
    flow = np.zeros((2, 3, 2), np.float32)
    flow[1, 2] = (5.5, -7.25)  # row 1, column 2
    write_flo(tmp_path / "f.flo", flow)
    data = (tmp_path / "f.flo").read_bytes()
    assert len(data) == 12 + 2 * 3 * 2 * 4
    assert np.frombuffer(data, "<f4", 1)[0] == np.float32(202021.25)
    assert data[:4] == b"PIEH"
    assert tuple(np.frombuffer(data, "<i4", 2, 4)) == (3, 2)
    body = np.frombuffer(data, "<f4", offset=12)
    assert (body[2 * (1 * 3 + 2)], body[2 * (1 * 3 + 2) + 1]) == (5.5, -7.25)


def test_flo_unknown_pixels_round_trip_with_sentinel(tmp_path: Path) -> None:
    flow, valid = random_flow(), unknown_mask()
    write_flow(tmp_path / "f.flo", flow, valid)
    raw = np.frombuffer((tmp_path / "f.flo").read_bytes(), "<f4", offset=12).reshape(7, 11, 2)
    assert (raw[~valid] == np.float32(UNKNOWN_FLOW_VALUE)).all()
    np.testing.assert_array_equal(raw[valid], flow[valid])
    back, back_valid = read_flow_valid(tmp_path / "f.flo")
    np.testing.assert_array_equal(back_valid, valid)
    np.testing.assert_array_equal(back[valid], flow[valid])
    assert (back[~valid] == 0).all()
    np.testing.assert_array_equal(read_flow(tmp_path / "f.flo"), back)


def test_flo_one_component_over_threshold_makes_pixel_unknown(tmp_path: Path) -> None:
    flow = np.ones((3, 4, 2), np.float32)
    flow[1, 1, 1] = 2e9   # only v is huge
    flow[2, 3, 0] = -3e38
    (tmp_path / "f.flo").write_bytes(flo_bytes(4, 3, flow.astype("<f4").tobytes()))
    back, valid = read_flo(tmp_path / "f.flo")
    assert not valid[1, 1] and not valid[2, 3] and valid.sum() == 10
    assert (back[~valid] == 0).all() and np.isfinite(back).all()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_is_an_error_in_every_flow_format(tmp_path: Path, bad: float) -> None:
    """One rule (issue 14): NaN/inf in .flo was drawn black while in .npy it was an error."""
    flow = np.ones((3, 4, 2), np.float32)
    flow[2, 3, 0] = bad
    (tmp_path / "f.flo").write_bytes(flo_bytes(4, 3, flow.astype("<f4").tobytes()))
    np.save(tmp_path / "f.npy", flow)
    for name in ("f.flo", "f.npy"):
        with pytest.raises(InputError, match="NaN or inf values at 1 pixel"):
            read_flow_valid(tmp_path / name)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "only 0 bytes"),
        (b"PIEH\x01\x00", "not a .flo"),
        (flo_bytes(4, 3, tag=1.0), r"it starts with b'\\x00\\x00\\x80\?', not the tag b'PIEH'"),  # (was "wrong tag 1.0")
        (b"TAGS" + flo_bytes(4, 3)[4:], "it starts with b'TAGS', not the tag b'PIEH'"),
        (flo_bytes(4, 3)[:-8], "corrupt .flo file"),
        (flo_bytes(4, 3) + b"\0" * 8, "corrupt .flo file"),
        (flo_bytes(10**8, 10**8, b"\0" * 64), "corrupt .flo header"),
        (flo_bytes(0, 3, b""), "corrupt .flo header"),
        (flo_bytes(-4, 3, b"\0" * 96), "corrupt .flo header"),
    ],
    ids=["empty", "short", "wrong-tag", "text-tag", "truncated", "trailing", "absurd", "zero", "negative"],
)
def test_bad_flo_raises_input_error(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "bad.flo"
    path.write_bytes(content)
    with pytest.raises(InputError, match=match) as info:
        read_flow(path)
    assert "\n" not in str(info.value)


def test_missing_flow_file_and_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_flow(tmp_path / "missing.flo")
    (tmp_path / "folder.flo").mkdir()
    with pytest.raises(InputError, match="folder.flo: a folder, not a flow file"):
        read_flow(tmp_path / "folder.flo")
    with pytest.raises(InputError, match="unknown flow format"):
        read_flow(tmp_path / "f.txt")
    with pytest.raises(InputError, match="unknown flow format"):
        write_flow(tmp_path / "f.jpg", random_flow())
    assert [p.name for p in tmp_path.iterdir()] == ["folder.flo"]


@pytest.mark.parametrize("bad", [np.zeros((4, 5)), np.zeros((4, 5, 3), np.float32), np.zeros((4, 5, 2), np.int32)])
def test_write_rejects_bad_shapes_and_types_without_leaving_files(tmp_path: Path, bad: np.ndarray) -> None:
    for ext in (".flo", ".png", ".npy"):
        with pytest.raises(InputError):
            write_flow(tmp_path / f"f{ext}", bad)
    assert not list(tmp_path.iterdir())


def test_write_rejects_nan_and_inf(tmp_path: Path) -> None:
    flow = random_flow()
    flow[2, 3, 0] = np.nan
    flow[4, 5, 1] = np.inf
    with pytest.raises(InputError, match="NaN or inf values at 2 pixels"):
        write_flow(tmp_path / "f.flo", flow)
    with pytest.raises(InputError, match="NaN or inf"):
        check_flow(flow)
    assert not list(tmp_path.iterdir())


def test_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "f.flo"
    write_flow(target, random_flow())
    before = target.read_bytes()
    with pytest.raises(InputError):
        write_flow(target, np.full((7, 11, 2), np.nan, np.float32))
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["f.flo"]


# --- KITTI PNG ----------------------------------------------------------------------------------


def test_kitti_round_trip_quantised_to_one_64th(tmp_path: Path) -> None:
    flow = random_flow(scale=60.0)
    valid = unknown_mask()
    write_flow(tmp_path / "f.png", flow, valid)
    back, back_valid = read_flow_valid(tmp_path / "f.png")
    np.testing.assert_array_equal(back_valid, valid)
    err = np.abs(back[valid] - flow[valid])
    assert err.max() <= 0.5 / 64 + 1e-6
    np.testing.assert_array_equal(back[valid] * 64, np.round(back[valid] * 64))  # on the 1/64 grid
    assert (back[~valid] == 0).all()
    # 2.0234075 px is 129.498 steps of 1/64: 129 (2.015625); float32 arithmetic near 2**15 made it 130
    write_flow(tmp_path / "g.png", np.full((2, 2, 2), 2.0234075, np.float32))
    assert (read_flow(tmp_path / "g.png") == 2.015625).all()


def test_kitti_png_is_16bit_rgb_u_v_valid(tmp_path: Path) -> None:
    """The file itself: 16 bit, 3 channels; in RGB order u, v, valid; value = (raw - 2**15) / 64."""
    flow = np.zeros((2, 3, 2), np.float32)
    flow[0, 1] = (1.5, -2.0)
    valid = np.ones((2, 3), bool)
    valid[1, 2] = False
    write_kitti_flow(tmp_path / "f.png", flow, valid)
    raw = cv2.imread(str(tmp_path / "f.png"), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw.shape == (2, 3, 3)
    rgb = raw[..., ::-1]
    assert tuple(rgb[0, 1]) == (2**15 + 96, 2**15 - 128, 1)
    assert rgb[1, 2, 2] == 0 and rgb[0, 0, 2] == 1


def test_kitti_reader_decodes_bgr_order(tmp_path: Path) -> None:
    """A hand-made KITTI PNG (written as OpenCV BGR) decodes to the u and v it encodes."""
    rgb = np.zeros((2, 2, 3), np.uint16)
    rgb[..., 0] = 2**15 + 64 * 3   # u = 3
    rgb[..., 1] = 2**15 - 64 * 5   # v = -5
    rgb[..., 2] = 1
    rgb[1, 1, 2] = 0
    cv2.imwrite(str(tmp_path / "k.png"), rgb[..., ::-1])
    flow, valid = read_kitti_flow(tmp_path / "k.png")
    np.testing.assert_array_equal(flow[valid], np.tile([[3.0, -5.0]], (3, 1)))
    assert valid.sum() == 3 and not valid[1, 1]


def test_kitti_writer_marks_flow_beyond_the_format_range_invalid(tmp_path: Path) -> None:
    """u=1000, v=-700 was clipped to 511.98 / -512 and still marked valid; the format holds -512..511.98 px."""
    flow = np.array([[[1000.0, -700.0], [511.99, -512.0], [0.0, 512.0], [3.0, -512.01]]], np.float32)
    valid = np.array([[True, True, True, False]])
    with pytest.warns(FlowRangeWarning, match="2 pixel"):
        assert write_flow(tmp_path / "f.png", flow, valid) == 2  # the fourth was invalid already
    back, back_valid = read_flow_valid(tmp_path / "f.png")
    np.testing.assert_array_equal(back_valid, [[False, True, False, False]])
    np.testing.assert_array_equal(back[0, 1], [(2**16 - 1 - 2**15) / 64, -512.0])  # the edges still fit
    assert (back[~back_valid] == 0).all()
    with pytest.warns(FlowRangeWarning, match="3 pixel"):
        assert write_kitti_flow(tmp_path / "g.png", flow) == 3
    assert write_flow(tmp_path / "f.flo", flow) == 0


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.zeros((4, 4, 3), np.uint8), "8-bit, 3 channel"),
        (np.zeros((4, 4), np.uint16), "16-bit, 1 channel"),
        (np.zeros((4, 4, 4), np.uint16), "16-bit, 4 channel"),
        # a 16-bit photo (was read as a flow of up to +-512 px, every pixel valid)
        (np.full((4, 4, 3), 40000, np.uint16), "valid channel, blue, holds values up to 40000"),
    ],
    ids=["8bit-rgb", "16bit-gray", "16bit-rgba", "16bit-photo"],
)
def test_kitti_rejects_wrong_png_kind(tmp_path: Path, image: np.ndarray, match: str) -> None:
    cv2.imwrite(str(tmp_path / "k.png"), image)
    with pytest.raises(InputError, match=match):
        read_flow(tmp_path / "k.png")


def test_kitti_rejects_a_png_that_is_not_an_image(tmp_path: Path) -> None:
    (tmp_path / "k.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(InputError, match="cannot decode"):
        read_flow(tmp_path / "k.png")


# --- .npy ---------------------------------------------------------------------------------------


def test_npy_round_trip_is_exact(tmp_path: Path) -> None:
    flow = random_flow()
    write_flow(tmp_path / "f.npy", flow)
    assert np.load(tmp_path / "f.npy").dtype == np.float32
    np.testing.assert_array_equal(read_flow(tmp_path / "f.npy"), flow)


def test_npy_unknown_pixels_use_the_flo_marker_and_read_back(tmp_path: Path) -> None:
    flow, valid = random_flow(), unknown_mask()
    write_flow(tmp_path / "f.npy", flow, valid)
    raw = np.load(tmp_path / "f.npy")
    np.testing.assert_array_equal((np.abs(raw) > 1e9).any(axis=2), ~valid)
    back, back_valid = read_flow_valid(tmp_path / "f.npy")
    np.testing.assert_array_equal(back_valid, valid)
    np.testing.assert_array_equal(back[valid], flow[valid])
    assert (back[~valid] == 0).all()


def test_npy_nan_of_semflow_0_1_is_unknown_only_when_allowed(tmp_path: Path) -> None:
    flow, valid = random_flow(), unknown_mask()
    old = flow.copy()
    old[~valid] = np.nan
    np.save(tmp_path / "f.npy", old)
    with pytest.raises(InputError, match="NaN or inf"):
        read_flow_valid(tmp_path / "f.npy")  # NaN is an error unless asked for
    back, back_valid = read_flow_valid(tmp_path / "f.npy", allow_unknown=True)
    np.testing.assert_array_equal(back_valid, valid)
    assert (back[~valid] == 0).all()


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.zeros((4, 5, 3), np.float32), "shape"),
        (np.zeros((4, 5, 2), np.int16), "float array"),
        (np.full((4, 5, 2), np.inf, np.float32), "NaN or inf values at 20 pixels"),
    ],
    ids=["channels", "dtype", "inf"],
)
def test_bad_npy_raises(tmp_path: Path, array: np.ndarray, match: str) -> None:
    np.save(tmp_path / "f.npy", array)
    with pytest.raises(InputError, match=match):
        read_flow(tmp_path / "f.npy")


def _npy_with_header(shape: str, descr: str = "'<f4'", body: int = 100) -> bytes:
    header = f"{{'descr': {descr}, 'fortran_order': False, 'shape': {shape}, }}"
    header = header.ljust(117) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + b"\0" * body


@pytest.mark.parametrize(
    ("shape", "descr", "match"),
    [
        ("(-1, 48, 2)", "'<f4'", "corrupt .npy header \\(negative size"),
        ("(-4, -3, 2)", "'<f4'", "corrupt .npy header \\(negative size"),
        ("(0, 4611686018427387904, 2)", "'<f4'", "corrupt .npy header"),
        (str((1,) * 70), "'<f4'", "corrupt .npy header \\(70 dimensions"),
        ("(2, 3)", "('<f4', (2,))", "not a readable .npy file"),
        ("(True, 3, 2)", "'<f4'", None),
    ],
    ids=["negative", "two-negative", "zero-and-huge", "many-dims", "subarray", "bool-side"],
)
def test_npy_header_with_odd_sizes_is_one_line_error(tmp_path: Path, shape: str, descr: str, match: str | None) -> None:
    """Shapes numpy's header parser lets through gave ValueError/TypeError tracebacks."""
    (tmp_path / "f.npy").write_bytes(_npy_with_header(shape, descr))
    if match is None:  # True is a side of 1
        assert read_flow(tmp_path / "f.npy").shape == (1, 3, 2)
        return
    with pytest.raises(InputError, match=match):
        read_flow(tmp_path / "f.npy")


def test_npy_that_is_not_npy_or_pickled(tmp_path: Path) -> None:
    (tmp_path / "f.npy").write_bytes(b"not numpy")
    with pytest.raises(InputError, match="not a readable .npy"):
        read_npy_flow(tmp_path / "f.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="not a readable .npy"):
        read_npy_flow(tmp_path / "obj.npy")


# --- real files from the public datasets --------------------------------------------------------


@pytest.mark.parametrize(("seq", "size"), [("Dimetrodon", (388, 584)), ("Urban2", (480, 640)), ("Venus", (380, 420))])
def test_reads_real_middlebury_flo(shared_file, seq: str, size: tuple[int, int]) -> None:
    flow, valid = read_flow_valid(shared_file(f"middlebury/{seq}/flow10.flo"))
    assert flow.shape == (*size, 2) and flow.dtype == np.float32
    assert valid.mean() > 0.9  # Middlebury GT is dense but for a few unknown pixels
    mag = np.linalg.norm(flow[valid], axis=1)
    assert 0.1 < np.median(mag) < 20 and mag.max() < 100
    assert (flow[~valid] == 0).all()


def test_reads_real_kitti_png(shared_file) -> None:
    flow, valid = read_flow_valid(shared_file("kitti/training/flow_occ/000000_10.png"))
    assert flow.shape == (375, 1242, 2)
    assert 0.10 < valid.mean() < 0.25  # sparse LiDAR-based GT, about 16 % of pixels
    mag = np.linalg.norm(flow[valid], axis=1)
    assert 0.5 < np.median(mag) < 100 and mag.max() < 512
    # Forward driving: the road in front of the car (bottom rows) moves down in the image.
    bottom = valid.copy()
    bottom[: int(375 * 0.8)] = False
    assert np.median(flow[bottom][:, 1]) > 0.5
    # Decoding in RGB order (not BGR): v mostly stays small compared to the range a swapped channel gives.
    assert np.abs(flow[valid]).max() < 300


def test_real_flo_rewrite_is_lossless(shared_file, tmp_path: Path) -> None:
    flow, valid = read_flow_valid(shared_file("middlebury/RubberWhale/flow10.flo"))
    write_flow(tmp_path / "rw.flo", flow, valid)
    back, back_valid = read_flow_valid(tmp_path / "rw.flo")
    np.testing.assert_array_equal(back, flow)
    np.testing.assert_array_equal(back_valid, valid)


def test_public_api_reexports() -> None:
    assert semflow.read_flow is read_flow and semflow.write_flow is write_flow
    assert semflow.read_flow_valid is read_flow_valid


def test_resize_flow_scales_vectors_with_the_frame() -> None:
    from semflow.io.flow import resize_flow

    ys, xs = np.mgrid[0:60, 0:80].astype(np.float32)
    zoom = np.stack([0.1 * xs, -0.05 * ys], axis=2)  # a zoom about the origin: flow = A x
    half = resize_flow(zoom + np.float32([4.0, -2.0]), 30, 40)
    assert half.shape == (30, 40, 2) and half.dtype == np.float32
    hy, hx = np.mgrid[0:30, 0:40].astype(np.float32)
    # In the half-size frame the same motion is A x' + t / 2 (area averaging puts x' at 2 x' + 0.5).
    expected = np.stack([0.1 * (hx + 0.25), -0.05 * (hy + 0.25)], axis=2) + np.float32([2.0, -1.0])
    assert np.abs(half - expected).max() < 1e-3
    assert resize_flow(zoom, 60, 80) is zoom


def test_a_mask_of_another_size_is_one_line(tmp_path) -> None:
    """write_flow(..., valid of 3x3) and metrics.epe(..., valid of 3x3) were numpy IndexErrors."""
    from semflow import metrics

    flow = np.ones((4, 5, 2), np.float32)
    for name in ("w.flo", "w.png", "w.npy"):
        with pytest.raises(InputError, match=r"valid: a mask of shape \(3, 3\) for a flow of 5x4 pixels"):
            write_flow(tmp_path / name, flow, np.ones((3, 3), bool))
        assert not (tmp_path / name).exists()
    with pytest.raises(InputError, match="valid: a mask of shape"):
        metrics.epe(flow, flow, np.ones((3, 3), bool))
    with pytest.raises(InputError, match="region: a mask of shape"):
        metrics.fl_all(flow, flow, None, np.ones((4, 4), bool))
    assert metrics.epe(flow, flow * 2, np.ones((4, 5), np.uint8)) == pytest.approx(np.sqrt(2))


def test_a_float16_flow_is_checked_without_numpy_warnings() -> None:
    """check_flow compared a float16 flow's extremes with 1e9 in float16: 'overflow encountered in cast'."""
    import warnings

    from semflow.io.flow import check_flow

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_flow(np.ones((4, 4, 2), np.float16)).dtype == np.float32


# --- edges of the format rules ------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".flo", ".npy"])
def test_a_component_of_exactly_1e9_is_known_flow(tmp_path: Path, ext: str) -> None:
    """Unknown is a component *over* 1e9 px (the module's rule, as in metrics); 1e9 itself (exact in
    float32) is a known value, read back as it was written."""
    flow = np.zeros((2, 3, 2), np.float32)
    flow[0, 1] = (1e9, 0.0)
    flow[1, 2] = (0.0, -1e9)
    write_flow(tmp_path / f"f{ext}", flow)
    back, valid = read_flow_valid(tmp_path / f"f{ext}")
    assert valid.all()
    np.testing.assert_array_equal(back, flow)


def test_a_negative_component_beyond_1e9_is_refused_like_a_positive_one(tmp_path: Path) -> None:
    for bad in (2e9, -2e9):
        flow = np.zeros((2, 2, 2), np.float32)
        flow[1, 0, 1] = bad
        with pytest.raises(InputError, match="beyond 1e9 px"):
            check_flow(flow)
        with pytest.raises(InputError, match="beyond 1e9 px"):
            write_flow(tmp_path / "f.flo", flow)
        assert not (tmp_path / "f.flo").exists()


def test_an_empty_flow_is_an_input_error() -> None:
    for shape in ((0, 4, 2), (3, 0, 2)):
        with pytest.raises(InputError, match="empty"):
            check_flow(np.zeros(shape, np.float32))


def test_kitti_writer_zeroes_u_and_v_of_invalid_pixels(tmp_path: Path) -> None:
    """An invalid pixel's u and v channels hold 0 in the file, not its (clipped) flow: a pixel beyond the
    format's range and one the caller marked unknown alike."""
    flow = np.full((1, 3, 2), 5.0, np.float32)
    flow[0, 0] = (900.0, 0.0)  # beyond +-512 px: written invalid
    valid = np.array([[True, False, True]])
    with pytest.warns(FlowRangeWarning, match="1 pixel"):
        write_kitti_flow(tmp_path / "f.png", flow, valid)
    rgb = cv2.imread(str(tmp_path / "f.png"), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert rgb[0, :2].tolist() == [[0, 0, 0], [0, 0, 0]]
    assert rgb[0, 2].tolist() == [2**15 + 5 * 64, 2**15 + 5 * 64, 1]


def test_kitti_reader_refuses_a_valid_channel_holding_2(tmp_path: Path) -> None:
    """KITTI's valid channel holds 0 and 1 only: any other value means the file is no KITTI flow."""
    rgb = np.full((2, 2, 3), 2**15, np.uint16)
    rgb[..., 2] = 1
    rgb[0, 0, 2] = 2
    cv2.imwrite(str(tmp_path / "k.png"), rgb[..., ::-1])
    with pytest.raises(InputError, match="holds values up to 2"):
        read_flow(tmp_path / "k.png")


def test_a_fortran_ordered_npy_reads_as_the_array_saved(tmp_path: Path) -> None:
    """numpy.save keeps a Fortran-ordered array's layout (fortran_order True in the header)."""
    flow = np.asfortranarray(random_flow(5, 6))
    np.save(tmp_path / "f.npy", flow)
    assert np.load(tmp_path / "f.npy").flags.f_contiguous  # (the header says so)
    np.testing.assert_array_equal(read_flow(tmp_path / "f.npy"), flow)


def test_an_npy_one_value_short_is_refused_before_reading(tmp_path: Path) -> None:
    data = tmp_path / "f.npy"
    np.save(data, random_flow(3, 4))
    data.write_bytes(data.read_bytes()[:-4])  # the last float32 missing
    with pytest.raises(InputError, match=r"header declares shape \(3, 4, 2\), 96 bytes, but the file holds 92"):
        read_flow(data)


def test_flow_file_extensions_are_matched_whatever_their_case(tmp_path: Path) -> None:
    flow = random_flow(3, 4, scale=5.0)
    for name in ("f.FLO", "f.Npy", "f.PNG"):
        write_flow(tmp_path / name, flow)
        assert np.abs(read_flow(tmp_path / name) - flow).max() <= 0.5 / 64 + 1e-6


def test_resize_flow_scales_u_by_the_width_and_v_by_the_height() -> None:
    """A constant flow (3, 2) px on a 4x8 frame resized to 8x4 (twice the height, half the width):
    u is halved and v doubled: (1.5, 4)."""
    from semflow.io.flow import resize_flow

    flow = np.empty((4, 8, 2), np.float32)
    flow[...] = (3.0, 2.0)
    resized = resize_flow(flow, 8, 4)
    assert resized.shape == (8, 4, 2)
    np.testing.assert_allclose(resized[..., 0], 1.5, rtol=1e-6)
    np.testing.assert_allclose(resized[..., 1], 4.0, rtol=1e-6)
