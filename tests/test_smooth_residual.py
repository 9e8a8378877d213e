"""layers.things.motion.smooth_residual solved on a coarse grid stands for the same energy as on the
full grid: away from a step in the data, both give nearly the data."""

from __future__ import annotations

import numpy as np

from semflow.layers.things.motion import smooth_residual


def test_a_coarse_solution_matches_the_fine_one_away_from_a_step() -> None:
    h, w = 64, 96
    residual = np.zeros((h, w, 2), np.float32)
    residual[:, :48, 0], residual[:, 48:, 0] = 1.0, -1.0
    residual[:32, :, 1] = 0.5
    weight = np.ones((h, w), np.float32)
    fine = smooth_residual(residual, weight, 30.0, 1)
    coarse = smooth_residual(residual, weight, 30.0, 4)
    assert coarse.shape == (h, w, 2)
    far = np.r_[0:24, 72:96]  # columns at least 24 px from the step in u
    np.testing.assert_allclose(coarse[:, far, 0], fine[:, far, 0], atol=0.08)
    assert np.abs(coarse - fine).max() < 0.35
    # Both are smooth versions of the data: the sign of the step in u and the halves of v are kept.
    assert (coarse[:, :40, 0] > 0.5).all() and (coarse[:, 56:, 0] < -0.5).all()
    assert coarse[:24, :, 1].min() > 0.4 and coarse[40:, :, 1].max() < 0.1
