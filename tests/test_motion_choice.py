"""layers.things.motion_choice.cheapest_motions term by term, on hand-made errors and flows (no smoothing)."""

from __future__ import annotations

import numpy as np

from semflow.layers.things.motion_choice import cheapest_motions
from semflow.layers.things.params import ThingParams

WINDOW = (slice(0, 4), slice(0, 5))


def flows_off(*offsets: float) -> list[np.ndarray]:
    """Flows (4, 5, 2) that differ from a zero baseline by ``offsets`` px in x."""
    out = []
    for dx in offsets:
        f = np.zeros((4, 5, 2), np.float32)
        f[..., 0] = dx
        out.append(f)
    return out


def choose(flows: list[np.ndarray], errors: list[float], inside: list[bool]) -> np.ndarray:
    errs = [(np.full((4, 5), e, np.float32), np.full((4, 5), i)) for e, i in zip(errors, inside)]
    return cheapest_motions(flows, errs, np.zeros((4, 5, 2), np.float32), lambda a: a, WINDOW, ThingParams())


def test_a_motion_that_leaves_frame_two_costs_no_photometric_error() -> None:
    assert (choose(flows_off(0, 0), [10.0, 40.0], [True, False]) == 1).all()


def test_with_equal_errors_the_motion_that_agrees_with_the_baseline_wins() -> None:
    assert (choose(flows_off(2, 0), [5.0, 5.0], [True, True]) == 1).all()
    assert (choose(flows_off(0, 2), [5.0, 5.0], [True, True]) == 0).all()


def test_the_disagreement_is_capped_at_residual_cap() -> None:
    # 10 px off the baseline costs agreement_weight x 3 px = 9, less than 10 grey levels more error.
    assert (choose(flows_off(10, 0), [0.0, 10.0], [True, True]) == 0).all()
    assert (choose(flows_off(10, 0), [0.0, 8.0], [True, True]) == 1).all()
