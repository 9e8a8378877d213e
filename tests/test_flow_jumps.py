"""The motion-discontinuity mask shared by discrete's weighted median and --sharpen (flow_jumps.py)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from semflow.baseline.discrete.boundary import discontinuities
from semflow.flow_jumps import flow_jumps, near_jumps


def _step(height: int = 40, width: int = 60, at: int = 30, left=(0.0, 0.0), right=(10.0, 0.0)) -> np.ndarray:
    flow = np.zeros((height, width, 2), np.float32)
    flow[:, :at] = left
    flow[:, at:] = right
    return flow


def test_a_vertical_step_marks_the_columns_whose_two_sides_straddle_it() -> None:
    # Pixel x compares x - r with x + r (and the diagonals, which see the same columns): a step at
    # column 30 is straddled by the columns 30 - r .. 30 + r - 1 and by no others.
    for radius in (1, 3, 8):
        found = flow_jumps(_step(), radius=radius, jump=6.0, relative=0.0)
        columns = np.flatnonzero(found.any(0))
        np.testing.assert_array_equal(columns, np.arange(30 - radius, 30 + radius))
        assert found[:, columns].all()


def test_the_threshold_is_the_larger_of_jump_and_a_share_of_the_flow() -> None:
    step = _step(left=(20.0, 0.0), right=(28.0, 0.0))  # an 8 px jump on a 20-28 px flow
    assert flow_jumps(step, radius=3, jump=6.0, relative=0.0).any()
    assert not flow_jumps(step, radius=3, jump=9.0, relative=0.0).any()  # jump above 8
    assert not flow_jumps(step, radius=3, jump=6.0, relative=0.4).any()  # 0.4 * |f| >= 8 on both sides
    # 0.3 * |f|: 6 on the slow side (8 > 6: a jump), 8.4 on the fast side (not one).
    columns = np.flatnonzero(flow_jumps(step, radius=3, jump=6.0, relative=0.3).any(0))
    np.testing.assert_array_equal(columns, [27, 28, 29])


def test_near_jumps_widens_the_mask_by_a_disk() -> None:
    step = _step()
    assert (near_jumps(step, radius=3, widen=0) == flow_jumps(step, radius=3, jump=6.0, relative=0.3)).all()
    for widen in (1, 2):  # (1: the smallest widening, a 3 x 3 disk)
        columns = np.flatnonzero(near_jumps(step, radius=3, widen=widen).any(0))
        np.testing.assert_array_equal(columns, np.arange(30 - 3 - widen, 30 + 3 + widen))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), radius=st.integers(1, 6), relative=st.sampled_from([0.0, 0.15, 0.3]))
def test_the_whole_image_mask_is_the_point_wise_one_of_the_boundary_step(seed: int, radius: int,
                                                                          relative: float) -> None:
    # discrete's boundary step tests the same thing point by point (with the candidates it needs);
    # on integer flows of a few pieces the two must agree pixel for pixel.
    rng = np.random.default_rng(seed)
    pieces = rng.integers(-12, 13, (3, 4, 2)).astype(np.float32)
    flow = np.kron(pieces, np.ones((7, 9, 1), np.float32))  # 21 x 36 px, blocks of 7 x 9
    mask, _ = discontinuities(flow, radius, 3.0, relative)
    np.testing.assert_array_equal(flow_jumps(flow, radius=radius, jump=3.0, relative=relative), mask)


def _jumps_by_the_definition(flow: np.ndarray, radius: int, jump: float, relative: float) -> np.ndarray:
    # The module docstring, pixel by pixel, with its four directions written out (not DIRECTIONS, which
    # discrete's boundary step shares): right, down and both diagonals, positions clamped to the image.
    h, w = flow.shape[:2]
    out = np.zeros((h, w), bool)
    for y in range(h):
        for x in range(w):
            limit = max(jump, relative * float(np.hypot(*flow[y, x])))
            for dx, dy in ((1, 0), (0, 1), (1, 1), (1, -1)):
                ax, ay = min(max(x + dx * radius, 0), w - 1), min(max(y + dy * radius, 0), h - 1)
                bx, by = min(max(x - dx * radius, 0), w - 1), min(max(y - dy * radius, 0), h - 1)
                out[y, x] |= float(np.hypot(*(flow[ay, ax] - flow[by, bx]))) > limit
    return out


def test_a_corner_seen_along_one_diagonal_only_is_a_jump() -> None:
    # A moving quadrant: next to its corner some pixels see it only along one diagonal (the pixel left
    # of the bottom-left corner sees it up-right, nothing else does). Each quadrant, so each diagonal
    # direction counts; the mask is the definition's, pixel for pixel, edges clamped.
    for rows, cols in ((slice(None, 10), slice(10, None)), (slice(10, None), slice(10, None)),
                       (slice(None, 10), slice(None, 10)), (slice(10, None), slice(None, 10))):
        flow = np.zeros((20, 22, 2), np.float32)
        flow[rows, cols] = (10.0, -4.0)
        found = flow_jumps(flow, radius=3, jump=6.0, relative=0.3)
        np.testing.assert_array_equal(found, _jumps_by_the_definition(flow, 3, 6.0, 0.3))
    flow = np.zeros((20, 22, 2), np.float32)
    flow[:10, 10:] = (10.0, -4.0)
    assert flow_jumps(flow, radius=3, jump=6.0, relative=0.0)[10, 9]  # seen up-right alone


def test_near_jumps_defaults_are_the_sharpen_steps_uncertain_pixels() -> None:
    # discrete's weighted median calls near_jumps(flow) with its defaults, documented as --sharpen's.
    from semflow.layers.boundary_layers import BoundaryLayerParams, uncertain_pixels

    step = _step(left=(0.0, 0.0), right=(9.0, 3.0))
    expected = uncertain_pixels(step, BoundaryLayerParams())
    np.testing.assert_array_equal(near_jumps(step), expected)
    columns = np.flatnonzero(expected.any(0))  # radius 8, widened by 3
    np.testing.assert_array_equal(columns, np.arange(30 - 8 - 3, 30 + 8 + 3))
