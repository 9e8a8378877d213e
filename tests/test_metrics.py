"""Metrics on hand-made flows: EPE, the KITTI Fl-all outlier rule at its thresholds, masks, statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from semflow.errors import InputError
from semflow.metrics import endpoint_error, epe, fl_all, flow_stats, outliers


def const(u: float, v: float, height: int = 4, width: int = 5) -> np.ndarray:
    flow = np.empty((height, width, 2), np.float32)
    flow[..., 0], flow[..., 1] = u, v
    return flow


def test_epe_of_a_constant_offset_is_its_length() -> None:
    gt = np.random.default_rng(0).standard_normal((4, 5, 2)).astype(np.float32) * 10
    flow = gt + np.float32([3.0, 4.0])
    np.testing.assert_allclose(endpoint_error(flow, gt), 5.0, rtol=1e-5)
    assert epe(flow, gt) == pytest.approx(5.0, rel=1e-5)
    assert epe(gt, gt) == 0.0


def test_epe_averages_only_valid_pixels_inside_the_region() -> None:
    gt = const(0, 0)
    flow = const(0, 0)
    flow[0, :, 0] = 2.0   # row 0: error 2
    flow[1, :, 1] = -6.0  # row 1: error 6
    valid = np.ones((4, 5), bool)
    valid[1] = False
    assert epe(flow, gt) == pytest.approx((5 * 2 + 5 * 6) / 20)
    assert epe(flow, gt, valid) == pytest.approx(10 / 15)
    region = np.zeros((4, 5), bool)
    region[:2] = True
    assert epe(flow, gt, valid, region) == pytest.approx(2.0)   # row 1 is in the region but invalid
    assert epe(flow, gt, region=region) == pytest.approx(4.0)


def test_no_valid_pixel_gives_nan() -> None:
    none = np.zeros((4, 5), bool)
    assert math.isnan(epe(const(1, 1), const(0, 0), none))
    assert math.isnan(fl_all(const(9, 9), const(0, 0), none))


def test_ground_truth_that_is_not_finite_is_invalid() -> None:
    gt = const(0, 0)
    gt[0, 0] = np.nan
    gt[0, 1, 1] = np.inf
    flow = const(9, 0)  # an outlier everywhere
    assert epe(flow, gt) == pytest.approx(9.0)     # NaN before: the unknown pixels joined the mean
    assert fl_all(flow, gt) == pytest.approx(1.0)  # 18/20 before: NaN is never an outlier
    unknown = np.full((4, 5, 2), np.nan, np.float32)
    assert math.isnan(epe(flow, unknown))
    assert math.isnan(fl_all(flow, unknown))       # 0.0 before: no outliers among no pixels


def test_ground_truth_marked_unknown_as_in_flo_files_is_invalid() -> None:
    """A component over 1e9 px is the .flo convention for unknown (io.flow's readers hold to it); raw
    ground truth passed without its mask scored those pixels (one 1e10 pixel: EPE ~ 5e8 px)."""
    gt = const(0, 0)
    gt[0, 0] = (1e10, 0)
    gt[1, 2, 1] = -2e9
    gt[2, 3] = (1e9, 0)  # at the threshold: known (the readers' rule is "over")
    flow = const(1, 0)
    assert epe(flow, gt) == pytest.approx((17 * 1.0 + (1e9 - 1)) / 18)
    assert fl_all(flow, gt) == pytest.approx(1 / 18)  # 3 / 20 before
    assert epe(flow, gt, region=np.ones((4, 5), bool)) == epe(flow, gt)


def test_fl_all_absolute_threshold_is_strictly_above_3px() -> None:
    gt = const(0, 0)  # |gt| = 0: the 5 % rule always holds, so the 3 px rule decides
    assert fl_all(const(3.0, 0.0), gt) == 0.0
    assert fl_all(const(3.01, 0.0), gt) == 1.0
    assert fl_all(const(0.0, -3.01), gt) == 1.0


def test_fl_all_relative_threshold_is_strictly_above_5_percent() -> None:
    gt = const(100.0, 0.0)  # 5 % of |gt| is 5 px, above the 3 px rule
    assert fl_all(gt + np.float32([5.0, 0.0]), gt) == 0.0      # exactly 5 % is not an outlier
    assert fl_all(gt + np.float32([0.0, 5.02]), gt) == 1.0
    assert fl_all(gt + np.float32([4.0, 0.0]), gt) == 0.0      # > 3 px but < 5 %: not an outlier


def test_fl_all_counts_the_outlier_share() -> None:
    gt = const(10.0, 0.0)
    flow = gt.copy()
    flow[0, :2] += np.float32([0.0, 8.0])  # 2 of 20 pixels far off
    flow[1, 0] += np.float32([2.0, 0.0])   # small error: fine
    assert outliers(flow, gt).sum() == 2
    assert fl_all(flow, gt) == pytest.approx(0.1)
    valid = np.ones((4, 5), bool)
    valid[0, 0] = False
    assert fl_all(flow, gt, valid) == pytest.approx(1 / 19)


def test_flow_stats_are_magnitudes() -> None:
    flow = const(0.0, 0.0, 10, 10)
    flow[0, 0] = (6.0, 8.0)
    stats = flow_stats(flow)
    assert stats["max"] == pytest.approx(10.0)
    assert stats["mean"] == pytest.approx(0.1)
    assert stats["median"] == 0.0
    assert 0.0 <= stats["p95"] <= stats["max"]


def test_metrics_reject_bad_estimates() -> None:
    with pytest.raises(InputError, match="differ in shape"):
        epe(const(0, 0, 4, 5), const(0, 0, 5, 4))
    bad = const(0, 0)
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN or inf"):
        epe(bad, const(0, 0))


def test_inner_band_is_the_ring_inside_the_outline() -> None:
    from semflow.metrics import inner_band

    mask = np.zeros((40, 60), bool)
    mask[10:30, 10:50] = True
    band = inner_band(mask, 5)
    assert not band[~mask].any()
    inner = mask & ~band
    # A 20x40 box loses 5 px on each side: its interior is 10x30.
    assert inner.sum() == 10 * 30 and inner[15:25, 15:45].all()
    # Two touching objects: their common outline gets a band on both sides.
    instances = np.where(mask, np.where(np.arange(60) < 30, 1, 2)[None, :], 0)
    split = inner_band(mask, 5, instances)
    assert split[20, 25:35].all() and not band[20, 25:35].any()
    # An object filling the image has no outline there.
    assert not inner_band(np.ones((8, 8), bool), 3).any()


def test_a_valid_mask_does_not_readmit_unknown_ground_truth() -> None:
    """A caller's ``valid`` narrows the scored pixels; it never brings back ground truth that is unknown
    (NaN, or the .flo marker 1e10): with both, EPE is the mean over the pixels that are valid and known."""
    gt = const(0, 0)
    gt[0, 0] = np.nan
    gt[0, 1] = (1e10, 0)
    flow = const(2.0, 0)
    flow[3, 4] = (0.0, 0.0)  # one known, valid pixel without error
    valid = np.ones((4, 5), bool)
    valid[2] = False  # 5 pixels left out by the caller
    known_and_valid = 20 - 2 - 5
    assert epe(flow, gt, valid) == pytest.approx(2.0 * (known_and_valid - 1) / known_and_valid)
    assert fl_all(const(9, 0), gt, valid) == pytest.approx(1.0)
    assert epe(flow, gt, valid, region=np.ones((4, 5), bool)) == epe(flow, gt, valid)


def test_fl_all_relative_threshold_is_5_percent_of_the_ground_truth_not_the_estimate() -> None:
    """KITTI's rule is EPE > 5 % of |gt|: an estimate 5.1 px too long on a 100 px motion is an outlier
    (5.1 > 5), although 5.1 < 5 % of the estimate's own 105.1 px; one 4.9 px too short is not (4.9 < 5),
    although 4.9 > 5 % of 95.1 px."""
    gt = const(100.0, 0.0)
    assert fl_all(gt + np.float32([5.1, 0.0]), gt) == 1.0
    assert fl_all(gt - np.float32([4.9, 0.0]), gt) == 0.0
    assert outliers(const(0.0, 105.1), const(0.0, 100.0)).all()


def test_flow_stats_p95_is_the_95th_percentile_of_the_magnitudes() -> None:
    """Magnitudes 0, 1, ..., 99 px: the 95th percentile (linear between ranks) lies at rank 0.95 * 99 = 94.05,
    so it is 94.05 px; the median is 49.5 and the mean 49.5."""
    flow = np.zeros((10, 10, 2), np.float32)
    flow[..., 1] = -np.arange(100, dtype=np.float32).reshape(10, 10)  # upward: the magnitude is |v|
    stats = flow_stats(flow)
    assert stats["p95"] == pytest.approx(94.05, abs=1e-4)
    assert stats["median"] == pytest.approx(49.5) and stats["mean"] == pytest.approx(49.5)
    assert stats["max"] == pytest.approx(99.0)


def test_inner_band_measures_euclidean_distance_to_the_outline() -> None:
    """A one-pixel hole in a full mask: its outline is the hole's four 4-neighbours. The pixel 2 px right
    and 2 px down of the hole is sqrt(1 + 4) = 2.24 px from the nearest of them (Euclidean), 3 px as a
    city-block distance: within a band of width 3 only under the Euclidean distance. The pixel 3 px right
    is 2 px from the nearest, inside; 4 px right, 3 px away, outside."""
    from semflow.metrics import inner_band

    mask = np.ones((21, 21), bool)
    mask[10, 10] = False
    band = inner_band(mask, 3)
    assert band[12, 12] and band[8, 8] and band[10, 13]
    assert not band[10, 14] and not band[13, 13]  # 3 px; sqrt(4 + 9) = 3.6 px
    assert not band[10, 10]


def test_inner_band_default_width_is_5_px() -> None:
    """``BAND_WIDTH`` (the width compare's ``thing-band`` uses) is 5 px, as its docs say: a 20x40 box keeps
    an interior of 10x30 outside its band."""
    from semflow.metrics import BAND_WIDTH, inner_band

    mask = np.zeros((40, 60), bool)
    mask[10:30, 10:50] = True
    assert BAND_WIDTH == 5
    assert (mask & ~inner_band(mask)).sum() == 10 * 30
