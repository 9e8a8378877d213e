"""Graph-cut labelling (semflow/fitting/graph_cut.py): the contract of its options on small problems."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from semflow.fitting.graph_cut import assign_motions, solve_assignment
from semflow.fitting.motion_fit import MotionParams


def test_the_cycles_run_until_no_move_lowers_the_energy() -> None:
    # On this random problem one round of moves is not enough (a second one changes labels); with
    # cycles to spare the result is a fixed point: another round from it changes nothing.
    rng = np.random.default_rng(55)
    costs = rng.uniform(0, 10, (4, 10, 10)).astype(np.float32)
    weights = (np.full((10, 9), 6.0), np.full((9, 10), 6.0))
    once = assign_motions(costs, weights, cycles=1)
    converged = assign_motions(costs, weights, cycles=10)
    assert (once != converged).any()
    np.testing.assert_array_equal(assign_motions(costs, weights, cycles=1, labels=converged), converged)


def test_pixels_outside_free_keep_their_start_on_the_coarse_to_fine_path_too() -> None:
    # Label 1 is cheaper on the right half, label 0 on the left; everything starts at 0 and only the
    # columns left of 24 are free. The free pixels of the right half take 1; the fixed ones stay 0,
    # even those next to the new label change, where the full-resolution pass redoes a band.
    h, w = 32, 32
    costs = np.zeros((2, h, w), np.float32)
    costs[0, :, 16:] = 5.0
    costs[1, :, :16] = 5.0
    start = np.zeros((h, w), np.int32)
    free = np.zeros((h, w), bool)
    free[:, :24] = True
    guide = np.full((h, w, 3), 128.0, np.float32)
    for params in (MotionParams(), replace(MotionParams(), full_pixels=100, refine_band=3)):  # direct, coarse first
        labels = solve_assignment(costs, guide, params, labels=start, free=free)
        assert (labels[:, 24:] == 0).all()
        assert (labels[:, :16] == 0).all() and (labels[:, 17:23] == 1).all()
