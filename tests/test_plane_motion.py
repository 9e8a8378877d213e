"""Video mode's plane-motion helpers (semflow/layers/plane_motion.py) on boxes away from the origin."""

from __future__ import annotations

import numpy as np

from semflow.layers.common import GrayFrames, photometric_error
from semflow.layers.context import PairContext
from semflow.layers.plane_motion import confident_mean_flows, region_mean_flow, sampled_error
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
