"""The plane gate and veto (semflow/layers/planes.py) on hand-made error maps: each rule at its edge.

A context is built by hand (its baseline error, confidence, thing pixels chosen), and ``_judge`` is
given the homography's flow, error map and inlier share, so every figure the gate compares is known."""

from __future__ import annotations

import numpy as np

from semflow.layers.common import GrayFrames
from semflow.layers.context import PairContext
from semflow.layers.planes import PlaneParams, _judge, fit_plane
from semflow.segmentation.regions import Box, Region

H, W = 40, 60


def _context(baseline: np.ndarray, baseline_error: np.ndarray, confidence: np.ndarray,
             things: np.ndarray | None = None, frames: tuple[np.ndarray, np.ndarray] | None = None) -> PairContext:
    f1, f2 = frames or (np.zeros((H, W, 3), np.float32),) * 2
    gray = np.zeros((H, W), np.float32)
    return PairContext(f1, f2, f1, f2, GrayFrames(gray, gray, np.zeros((H, W, 3), np.float32)),
                       baseline.astype(np.float32), confidence.astype(np.float32), baseline_error.astype(np.float32),
                       np.zeros((H, W), bool) if things is None else things)


def _region() -> Region:
    return Region(1, Box(0, H, 0, W), np.ones((H, W), bool))


def _judged(model_error: float, baseline_error: np.ndarray | float, *, share: float = 1.0,
            confidence: np.ndarray | float = 1.0, judged: np.ndarray | None = None):
    flow = np.full((H, W, 2), 2.0, np.float32)  # the homography's flow; the baseline's is the same
    ctx = _context(flow, np.broadcast_to(np.float32(baseline_error), (H, W)),
                   np.broadcast_to(np.float32(confidence), (H, W)))
    err = np.full((H, W), model_error, np.float32)
    judged = np.ones((H, W), bool) if judged is None else judged
    return _judge(_region(), ctx, PlaneParams(), np.eye(3), flow, err, judged, share)


def test_the_inlier_share_gate() -> None:
    assert _judged(1.0, 1.0, share=0.5).accepted
    fit = _judged(1.0, 1.0, share=0.49)
    assert not fit.accepted and fit.reason.startswith("inlier share 0.49")


def test_the_photometric_gate_allows_5_percent_plus_half_a_grey_level() -> None:
    # 9 * 1.05 + 0.5 = 9.95
    assert _judged(9.9, 9.0).accepted
    fit = _judged(10.0, 9.0)
    assert not fit.accepted and fit.reason.startswith("photometric error 10.00 > baseline 9.00")


def test_the_photometric_gate_compares_on_the_judged_pixels_only() -> None:
    # Pixels not judged (the homography carries them out of frame 2) do not count for the baseline either.
    base = np.full((H, W), 9.0, np.float32)
    base[:, :10] = 100.0
    judged = np.ones((H, W), bool)
    judged[:, :10] = False
    fit = _judged(10.0, base, judged=judged)
    assert not fit.accepted and fit.baseline_error == 9.0


def test_a_failed_homography_is_used_where_the_baseline_is_unconfident_on_most_of_the_region() -> None:
    confidence = np.ones((H, W), np.float32)
    confidence[:, :36] = 0.0  # 60 % unconfident
    fit = _judged(10.0, 9.0, confidence=confidence)
    assert fit.accepted and fit.reason.endswith("used only where the baseline is unconfident")
    np.testing.assert_array_equal(fit.veto, confidence >= 0.5)  # the baseline stays on its confident pixels
    confidence[:, 24:36] = 1.0  # 40 % unconfident: not enough
    assert not _judged(10.0, 9.0, confidence=confidence).accepted


def _veto_case(things: np.ndarray | None = None):
    # The baseline (0 px) differs from the homography (4 px, the baseline 12 px) and is better by 11 grey
    # levels on a block of 12 x 12 px: vetoed there (11 x 11 means: where the window is a third in it);
    # the homography passes the gate (mean error 9.66 against 9.95).
    flow = np.full((H, W, 2), 4.0, np.float32)
    base = np.zeros((H, W, 2), np.float32)
    base[..., 0] = 12.0
    ctx = _context(base, np.full((H, W), 9.0, np.float32), np.zeros((H, W), np.float32), things)
    err = np.full((H, W), 9.0, np.float32)
    err[14:26, 24:36] = 20.0
    return _judge(_region(), ctx, PlaneParams(), np.eye(3), flow, err, np.ones((H, W), bool), 1.0)


def test_the_veto_where_the_baseline_is_locally_much_better_but_not_next_to_things() -> None:
    fit = _veto_case()
    assert fit.accepted and fit.reason == "ok"
    assert fit.veto[17:23, 27:34].all() and fit.veto.sum() < 300
    # A thing 50 px right: within 1.5 x the baseline's motion (12 px: 18 px) of it, no veto.
    things = np.zeros((H, W), bool)
    things[20, 50] = True
    near = _veto_case(things).veto
    yy, xx = np.mgrid[0:H, 0:W]
    within = np.hypot(yy - 20, xx - 50) <= 18.5
    assert fit.veto[within].sum() > 20 and not near[within].any()
    np.testing.assert_array_equal(near[~within], fit.veto[~within])


def test_a_region_the_baseline_is_confident_on_too_little_of_is_left_alone() -> None:
    rng = np.random.default_rng(0)
    frames = tuple(rng.uniform(0, 255, (H, W, 3)).astype(np.float32) for _ in range(2))
    confidence = np.zeros((H, W), np.float32)
    confidence[10:16, 10:18] = 1.0  # 48 px < min_matches (50)
    flow = np.full((H, W, 2), 1.0, np.float32)
    ctx = _context(flow, np.zeros((H, W), np.float32), confidence, frames=frames)
    fit = fit_plane(_region(), ctx, PlaneParams(), np.random.default_rng(0))
    assert not fit.accepted and fit.reason == "baseline confident on 48 px (< 50)"


def test_a_carried_homographys_inlier_share_is_the_share_of_confident_matches_within_the_threshold() -> None:
    from semflow.layers.planes import judge_homography

    baseline = np.zeros((H, W, 2), np.float32)
    baseline[:, :42, 0] = 0.9  # within 1 px of the identity's zero flow
    baseline[:, 42:, 0] = 2.5  # not
    ctx = _context(baseline, np.zeros((H, W), np.float32), np.ones((H, W), np.float32))
    fit = judge_homography(_region(), ctx, PlaneParams(), np.eye(3))
    assert abs(fit.inlier_share - 0.7) < 1e-9
