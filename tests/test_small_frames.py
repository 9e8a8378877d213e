"""Numeric edges found by probing the API: frames a few pixels across, a pixel exactly at the colour
normaliser, NaN or 1e10 under a mask, arrays of the wrong shape or dtype. Each gets a plausible result
or a one-line InputError, not a wrong number or a numpy/OpenCV error."""

from __future__ import annotations

import cv2
import flow_vis
import numpy as np
import pytest

import semflow
from semflow.errors import InputError
from semflow.io.flow import read_flow_valid, write_flow
from semflow.metrics import endpoint_error
from semflow.viz import flow_to_color, max_flow_of
from semflow.warp import warp_backward


def _texture(seed: int = 0, size: int = 200) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grey = cv2.GaussianBlur((rng.random((size, size)) * 255).astype(np.float32), (0, 0), 1.5)
    grey = cv2.normalize(grey, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return np.dstack([grey] * 3)


def _shifted(h: int, w: int, dx: int, dy: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Frames (h, w) of a texture whose content moves by (dx, dy) px from the first to the second."""
    tex = _texture(seed)
    return tex[20:20 + h, 20:20 + w], tex[20 - dy:20 - dy + h, 20 - dx:20 - dx + w]


@pytest.mark.parametrize("h, w, dx, dy", [(96, 3, 2, 0), (96, 6, 2, 0), (4, 96, 0, 2)])
def test_dis_on_a_frame_a_few_pixels_across_stays_within_the_frame(h: int, w: int, dx: int, dy: int) -> None:
    """Padded with its edge rows (stripes a shift along them leaves unchanged), a 3x96 frame moving 2 px
    read as 17 to 39 px: many times the frame's width. Padded with its mean grey, the flow stays near."""
    errors, largest = [], 0.0
    for seed in range(3):
        a, b = _shifted(h, w, dx, dy, seed)
        flow = semflow.estimate_flow(a, b, method="dis-medium")
        errors.append(float(np.linalg.norm(flow - np.array([dx, dy], np.float32), axis=2).mean()))
        largest = max(largest, float(np.abs(flow).max()))
    # (the short axis holds 3 to 6 px of evidence: not exact, but not absurd)
    assert np.mean(errors) < 2.0 and largest < 10.0, (errors, largest)


def test_segment_filters_a_video_of_frames_under_12_px_without_an_opencv_error() -> None:
    """`semflow segment` on a 10x10 video ended in a traceback: OpenCV's DIS takes no frame under 12 px."""
    from semflow.segmentation.temporal import dis_flow

    a, b = _shifted(10, 10, 1, 0)
    flow = dis_flow(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY))
    assert flow.shape == (10, 10, 2) and np.isfinite(flow).all() and np.abs(flow).max() < 5


@pytest.mark.parametrize("h, w", [(23, 37), (16, 128)])
def test_deepflow_finds_the_motion_of_small_frames(h: int, w: int) -> None:
    """OpenCV's DeepFlow returned almost no flow under ~48 px a side (a 2 px shift read as 0.12 px)."""
    a, b = _shifted(h, w, 2, 0)
    flow = semflow.estimate_flow(a, b, method="deepflow")
    assert abs(float(np.median(flow[..., 0])) - 2.0) < 0.2 and abs(float(np.median(flow[..., 1]))) < 0.2


def test_the_largest_flow_is_drawn_at_full_saturation_as_flow_vis_draws_it() -> None:
    """Float32 rounding put the largest magnitude a hair beyond the default normaliser: drawn 25 % darker."""
    flow = np.array([[[72.08615, -35.267784]]], np.float32)
    assert np.array_equal(flow_to_color(flow), flow_vis.flow_to_color(flow))
    rng = np.random.default_rng(0)
    for _ in range(200):
        flow = (rng.standard_normal((3, 4, 2)) * rng.uniform(0.1, 100)).astype(np.float32)
        assert np.abs(flow_to_color(flow).astype(int) - flow_vis.flow_to_color(flow)).max() <= 1
    # from about 100 px on, flow_vis's 1e-5 px is less than float32 rounding: its largest vector is darkened
    # (this one at 500 px by a quarter); ours stays at full saturation
    flow = np.float32([[[-182.3067626953125, -465.5794677734375]]])
    assert flow_to_color(flow)[0, 0].max() == 255 and flow_vis.flow_to_color(flow)[0, 0].max() == 191
    for _ in range(300):
        flow = (rng.standard_normal((2, 3, 2)) * rng.uniform(100, 5000)).astype(np.float32)
        largest = np.unravel_index(np.argmax(np.linalg.norm(flow, axis=2)), flow.shape[:2])
        assert flow_to_color(flow)[largest].max() == 255, flow


def test_masks_of_the_wrong_size_are_input_errors_in_drawing() -> None:
    flow = np.zeros((3, 4, 2), np.float32)
    with pytest.raises(InputError, match="valid: a mask of shape"):
        flow_to_color(flow, valid=np.ones((5, 5), bool))
    with pytest.raises(InputError, match="valid: a mask of shape"):
        max_flow_of([flow], valid=[np.ones((5, 5), bool)])


@pytest.mark.parametrize("suffix", [".flo", ".npy", ".png"])
@pytest.mark.parametrize("unknown", [np.nan, 1e10, np.inf])
def test_a_flow_is_written_whatever_lies_under_its_invalid_pixels(tmp_path, suffix: str, unknown: float) -> None:
    """write_flow(path, flow, valid) refused NaN or 1e10 at the very pixels valid marks unknown (a flow
    read in the Middlebury convention could not be written back with its own mask)."""
    flow = np.full((4, 5, 2), 1.5, np.float32)
    valid = np.ones((4, 5), bool)
    valid[1, 2] = False
    flow[1, 2] = unknown
    write_flow(tmp_path / f"f{suffix}", flow, valid)
    back, known = read_flow_valid(tmp_path / f"f{suffix}")
    assert np.array_equal(known, valid) and np.allclose(back[valid], 1.5)
    flow[0, 0] = unknown  # where valid says known, it is still an error
    with pytest.raises(InputError, match="flow has"):
        write_flow(tmp_path / f"g{suffix}", flow, valid)


def test_endpoint_error_of_flows_of_different_shapes_is_an_input_error() -> None:
    with pytest.raises(InputError, match="differ in shape"):
        endpoint_error(np.zeros((3, 4, 2), np.float32), np.zeros((3, 4, 3), np.float32))  # a raw KITTI PNG


def test_warp_takes_a_float64_flow() -> None:
    """A float64 flow (np.zeros((h, w, 2))) was an OpenCV assertion about map types."""
    image = _texture()[:20, :30]
    warped, inside = warp_backward(image, np.zeros((20, 30, 2)))
    assert np.array_equal(warped, image) and inside.all()


@pytest.mark.parametrize("label_set", ["camvid", "voc"])
def test_the_class_key_of_a_tiny_overlay_shows_every_name_whole_beside_the_frame_enlarged(label_set: str) -> None:
    """`segment --overlay` of a 48x40 frame drew a 48x204 image: the key below it in one column, four
    times the frame's height, its names cut at the 48th column. Now the frame is enlarged by a whole
    factor (5: 240x200) and the key is drawn as for a frame of that size; an ordinary frame is not."""
    from semflow.render import with_class_key
    from semflow.segmentation import get_label_set

    ls = get_label_set(label_set)
    frame = np.random.default_rng(0).integers(0, 100, (40, 48, 3), dtype=np.uint8)
    out = with_class_key(frame, ls)
    assert out.shape[1] == 240 and out.shape[0] <= 1.5 * out.shape[1]  # (was 204 high, 48 wide)
    assert (out[:30] == np.repeat(np.repeat(frame, 5, 0), 5, 1)[:30]).all()  # (the key in the lower part)
    drawn_rows = out[~(out == 255).all(axis=(1, 2))]  # (not the white gap above a key strip)
    assert not (drawn_rows[:, -1] > 200).all(axis=-1).any()  # no name runs into the right edge (white text)
    big = np.random.default_rng(1).integers(0, 100, (360, 480, 3), dtype=np.uint8)
    drawn = with_class_key(big, ls)
    assert drawn.shape[1] == 480 and (drawn[:100] == big[:100]).all()


@pytest.mark.parametrize(("label_set", "size", "factor"), [
    ("camvid", (40, 50), 5),  # (the smallest whole factor to 240 px wide: 4 would be 200)
    ("voc", (600, 60), 3),  # (4 would make it 2400 px high: the longest side stays within 1920)
    ("camvid", (900, 40), 2),  # (its key cut its names at 40 px: 2x, 1800 px high, shows them whole)
    ("camvid", (300, 400), 1),  # (its key fits in it: not enlarged)
])
def test_a_narrow_frame_is_enlarged_for_its_class_key_by_the_smallest_whole_factor(label_set: str, size, factor) -> None:
    from semflow.render import with_class_key
    from semflow.segmentation import get_label_set

    frame = np.random.default_rng(0).integers(0, 100, (*size, 3), dtype=np.uint8)
    out = with_class_key(frame, get_label_set(label_set))
    assert out.shape[1] == size[1] * factor, out.shape
    assert (out[:10] == np.repeat(np.repeat(frame, factor, 0), factor, 1)[:10]).all()


def test_a_tall_narrow_overlay_gets_its_class_key_beside_it_with_every_name_whole() -> None:
    """`segment --overlay` of a 1000x50 frame could not be enlarged (its long side at most 1920 px) and drew
    the key inside its 50 columns: text at its smallest, "background" cut to "backgrour". The key now
    stands in one column to the right of the frame, the frame itself unchanged."""
    from semflow.class_legend import class_key_column_width
    from semflow.render import with_class_key
    from semflow.segmentation import get_label_set

    ls = get_label_set("voc")
    frame = np.random.default_rng(0).integers(0, 100, (1000, 50, 3), dtype=np.uint8)
    out = with_class_key(frame, ls)
    names = [n for i, n in enumerate(ls.class_names) if i != ls.void_id]
    assert out.shape == (1000, 50 + 4 + class_key_column_width(names), 3), out.shape
    assert (out[:, :50] == frame).all() and (out[:, 50:54] == 255).all()  # (the frame, then a white gap)
    key = out[:, 54:]
    text_rows = np.flatnonzero((key > 200).all(axis=-1).any(axis=1) & ~(key == 255).all(axis=(1, 2)))
    assert text_rows.size and not (key[text_rows, -1] > 200).all(axis=-1).any()  # (no name runs off the edge)
