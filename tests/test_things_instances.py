"""layers.things.instances' triggers on hand-made errors and flows: when the motion split is tried,
when a split replaces the one motion, when one motion is a compromise."""

from __future__ import annotations

import numpy as np

from semflow.layers.things.instances import compromise, needs_split, split_is_better
from semflow.layers.things.params import ThingParams
from semflow.segmentation.regions import Box


def test_the_split_needs_min_points_unexplained_pixels_on_a_small_object() -> None:
    params = ThingParams()  # split_share 5 %, min_points 30, split_error 12
    mask = np.zeros((24, 24), bool)
    mask[2:22, 2:22] = True  # eroded by 2: 256 px, 5 % of which is 12.8
    error = np.zeros((24, 24), np.float32)
    error[5:9, 5:10] = 20.0  # 20 unexplained pixels: over 5 %, under min_points
    assert not needs_split(mask, (error, mask), params)
    error[10:12, 5:10] = 20.0  # 30: not more than min_points either
    assert not needs_split(mask, (error, mask), params)
    error[12, 5] = 20.0
    assert needs_split(mask, (error, mask), params)
    assert needs_split(mask, None, params)  # no motion found


def test_a_split_as_good_as_the_one_motion_replaces_it() -> None:
    params = ThingParams()
    mask = np.ones((12, 12), bool)
    error = np.full((12, 12), 5.0, np.float32)
    assert split_is_better(mask, (error, mask), (error.copy(), mask), params)
    assert not split_is_better(mask, (error, mask), (error + 0.1, mask), params)
    assert split_is_better(mask, None, (error, mask), params)


def test_a_flow_that_already_follows_the_baselines_two_motions_is_no_compromise() -> None:
    # The baseline holds two translations 4 px apart (with 0.3 px noise). One affine between them is a
    # compromise; the two translations themselves, though the split's fit matches the noise a bit
    # better, are not (the split must explain the seeds clearly better: compromise_ratio).
    params = ThingParams()
    rng = np.random.default_rng(0)
    h, w = 40, 60
    exact = np.zeros((h, w, 2), np.float32)
    exact[:, :30, 0], exact[:, 30:, 0] = 2.0, -2.0
    baseline = exact + rng.normal(0, 0.3, (h, w, 2)).astype(np.float32)
    seeds = np.ones((h, w), bool)
    box = Box(10, 10 + h, 20, 20 + w)
    assert compromise(baseline, seeds, np.zeros_like(exact), box, params, np.random.default_rng(1))
    assert not compromise(baseline, seeds, exact, box, params, np.random.default_rng(1))
