"""Video mode's plane-motion helpers (semflow/layers/plane_motion.py) on boxes away from the origin."""

from __future__ import annotations

import cv2
import numpy as np

from semflow.layers import plane_motion
from semflow.layers.common import GrayFrames, photometric_error
from semflow.layers.context import PairContext
from semflow.layers.plane_motion import (
    carry_reach,
    carry_region,
    confident_mean_flows,
    region_mean_flow,
    sampled_error,
)
from semflow.layers.planes import PlaneFit, PlaneParams, homography_flow
from semflow.segmentation.regions import Box, Region


def test_sampled_error_is_the_regions_mean_photometric_error_when_it_has_few_pixels() -> None:
    # A box whose x0 and y0 differ: (y0, y1, x0, x1) = (5, 25, 30, 70).
    rng = np.random.default_rng(1)
    h, w = 40, 80
    f1, f2 = (rng.uniform(0, 255, (h, w, 3)).astype(np.float32) for _ in range(2))
    g = np.zeros((h, w), np.float32)
    ctx = PairContext(f1, f2, f1, f2, GrayFrames(g, g, np.zeros((h, w, 3), np.float32)), np.zeros((h, w, 2), np.float32),
                      np.ones((h, w), np.float32), np.zeros((h, w), np.float32), np.zeros((h, w), bool))
    mask = np.zeros((20, 40), bool)
    mask[2:18, 3:30] = True
    region = Region(1, Box(5, 25, 30, 70), mask)
    homography = np.array([[1.0, 0.02, 1.5], [0.01, 1.0, -2.0], [0.0, 0.0, 1.0]])
    err, _ = photometric_error(f1, f2, homography_flow(homography, region.box), 30, 5)
    assert abs(sampled_error(region, ctx, homography) - float(err[mask].mean())) < 1e-3
    flow = homography_flow(homography, region.box)
    assert abs(region_mean_flow(region, homography) - float(np.hypot(flow[..., 0], flow[..., 1])[mask].mean())) < 1e-5


def test_confident_mean_flows_read_the_baseline_inside_the_regions_box() -> None:
    h, w = 40, 80
    baseline = np.zeros((h, w, 2), np.float32)
    baseline[5:25, 30:70] = (3.0, 4.0)  # 5 px in the box, 0 outside
    confidence = np.zeros((h, w), np.float32)
    confidence[5:25, 30:50] = 1.0  # the box's left half
    g = np.zeros((h, w), np.float32)
    f = np.zeros((h, w, 3), np.float32)
    ctx = PairContext(f, f, f, f, GrayFrames(g, g, f), baseline, confidence, np.zeros((h, w), np.float32),
                      np.zeros((h, w), bool))
    flow = np.zeros((20, 40, 2), np.float32)
    flow[:, :20] = (0.0, 2.0)  # the fit: 2 px on the confident half, 0 elsewhere
    fit = PlaneFit(region=Region(1, Box(5, 25, 30, 70), np.ones((20, 40), bool)), accepted=True, reason="ok", flow=flow)
    assert confident_mean_flows(fit, ctx, PlaneParams()) == (2.0, 5.0)


def _whole_frame_carry(mask: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """carry_mask as it was: the whole frame remapped (each pixel y takes the mask at y - flow(y))."""
    h, w = mask.shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(mask.astype(np.uint8), xs - flow[..., 0], ys - flow[..., 1], cv2.INTER_NEAREST,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)


def test_a_region_is_carried_within_its_box_grown_by_the_reach_bit_for_bit_the_whole_frames_carry(monkeypatch) -> None:
    """A crowd's hundreds of instances each remapped a whole frame (2-10 ms at 720p): a region is carried
    within its box grown by the flow's reach, the same bits, on random boxes (at the frame's borders too)
    and flows with exact halves (ties: OpenCV rounds them to even, so the box's corner is taken at even
    coordinates), NaN, infinite and huge values."""
    rng = np.random.default_rng(3)
    for case in range(400):
        h, w = (int(v) for v in rng.integers(1, 30, 2))
        flow = rng.normal(0, (0.7, 3.0, 12.0)[case % 3], (h, w, 2)).astype(np.float32)
        if case % 4 == 0:
            flow = np.round(flow * 2) / 2
        if case % 4 == 1:
            flow[rng.random((h, w, 2)) < 0.1] = (np.nan, np.inf, -np.inf, 1e9, -0.0)[case % 5]
        flow = flow.astype(np.float32)
        y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        y1, x1 = int(rng.integers(y0 + 1, h + 1)), int(rng.integers(x0 + 1, w + 1))
        region = Region(1, Box(y0, y1, x0, x1), rng.random((y1 - y0, x1 - x0)) < 0.6)
        expected = _whole_frame_carry(region.full_mask((h, w)), flow)
        np.testing.assert_array_equal(carry_region(region, flow, carry_reach(flow)), expected, err_msg=str(case))
    sizes = []
    real_remap = cv2.remap
    monkeypatch.setattr(plane_motion.cv2, "remap", lambda src, mx, *a, **k: sizes.append(mx.shape) or real_remap(src, mx, *a, **k))
    flow = np.full((200, 300, 2), 2.5, np.float32)
    flow[0, 0] = (-3.2, 7.0)  # the reach: 4 columns, 8 rows
    assert carry_reach(flow) == (8, 5)
    region = Region(1, Box(100, 110, 0, 20), np.ones((10, 20), bool))
    carried = carry_region(region, flow, carry_reach(flow))
    assert sizes == [(10 + 2 * 8, 20 + 5)]  # the box grown by the reach (cut at the frame's left edge), not 200 x 300
    assert carried[102:112, 2:22].all() and carried.sum() == 200  # moved by (2, 2): x - 2.5 rounds to even
    np.testing.assert_array_equal(carried, _whole_frame_carry(region.full_mask((200, 300)), flow))
