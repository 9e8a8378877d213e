"""The pieces of --sharpen's local motion layers (semflow/layers/boundary_layers.py) on hand-made
arrays: the padded box, the assignment's unary costs, the layer flow with its residuals."""

from __future__ import annotations

import numpy as np

from semflow.layers.boundary_layers import (
    BoundaryLayerParams,
    _costs,
    _layer_flow,
    _padded_box,
    missed_motions,
    sharpen_boundaries,
)


def test_a_regions_box_is_padded_by_the_margin_on_every_side_within_the_image() -> None:
    assert _padded_box(slice(15, 30), slice(20, 45), (100, 120), 10) == (5, 40, 10, 55)
    assert _padded_box(slice(3, 95), slice(0, 118), (100, 120), 10) == (0, 100, 0, 120)


def test_the_costs_photometric_plus_a_small_prior_where_uncertain_the_anchor_where_trusted() -> None:
    params = BoundaryLayerParams()  # prior 1 px, anchor 10 px, both capped at 3 px away
    h, w = 6, 8
    flows = [np.zeros((h, w, 2), np.float32), np.full((h, w, 2), (2.0, 0.0), np.float32),
             np.full((h, w, 2), (0.0, 5.0), np.float32)]
    errors = [np.full((h, w), 5.0, np.float32)] * 3  # the colours cannot tell the motions apart
    inside = [np.ones((h, w), bool)] * 3
    uncertain = np.zeros((h, w), bool)
    uncertain[:, :4] = True
    costs = _costs(flows, errors, inside, np.zeros((h, w, 2), np.float32), uncertain, params)
    np.testing.assert_allclose(costs[:, 0, 0], [5.0, 7.0, 8.0], atol=1e-5)  # the flow's own motion wins
    np.testing.assert_allclose(costs[:, 0, 7], [0.0, 20.0, 30.0], atol=1e-5)


def test_uncertain_pixels_take_their_motion_plus_the_residual_of_a_trusted_pixel_within_reach() -> None:
    params = BoundaryLayerParams()  # residual reach 3 x radius 8 = 24 px
    h, w = 4, 40
    flow = np.zeros((h, w, 2), np.float32)
    flow[:, 0] = (1.0, -0.5)  # the only trusted pixels: 1 px off the motion (zero flow) in u, -0.5 in v
    flow[:, 1:] = (7.0, 7.0)  # the uncertain pixels' flow, replaced
    uncertain = np.zeros((h, w), bool)
    uncertain[:, 1:] = True
    out = _layer_flow([np.zeros((h, w, 2), np.float32)], np.zeros((h, w), np.int32), flow, uncertain, params)
    np.testing.assert_array_equal(out[:, 0], flow[:, 0])
    np.testing.assert_allclose(out[:, 1:25], np.broadcast_to([1.0, -0.5], (h, 24, 2)))
    np.testing.assert_array_equal(out[:, 25:], 0.0)


def test_regions_under_min_pixels_are_not_looked_at() -> None:
    # A one-pixel spike of the flow: the 8 pixels 8 px from it see a jump; widened by 1 px, 8 regions of
    # 5 px each, all under min_pixels (30).
    image = np.random.default_rng(0).integers(0, 255, (60, 60, 3)).astype(np.uint8)
    flow = np.zeros((60, 60, 2), np.float32)
    flow[30, 30] = (20.0, 0.0)
    out, reports = sharpen_boundaries(image, image, flow, BoundaryLayerParams(widen=1))
    assert reports == [] and (out == flow).all()


def test_a_missed_motion_needs_min_support_pixels_of_its_own() -> None:
    # 30 unexplained uncertain pixels (over min_support, 20), in three groups of 10 that move three ways:
    # no one motion has 20 of them.
    h, w = 30, 30
    flow = np.zeros((h, w, 2), np.float32)
    uncertain = np.zeros((h, w), bool)
    for row, shift in ((3, (6.0, 0.0)), (13, (0.0, 6.0)), (23, (-6.0, -6.0))):
        uncertain[row, 5:15] = True
        flow[row, 5:15] = shift
    still = [np.float64([[1, 0, 0], [0, 1, 0]])]
    params = BoundaryLayerParams(blend_radius=0)  # (rows of one pixel: no blend check)
    assert missed_motions(flow, uncertain, (0, h, 0, w), still, params, np.random.default_rng(0)) == []
    flow[13, 5:15] = flow[23, 5:15] = (6.0, 0.0)  # now 30 move alike: found
    (found,) = missed_motions(flow, uncertain, (0, h, 0, w), still, params, np.random.default_rng(0))
    np.testing.assert_allclose(found, [[1, 0, 6], [0, 1, 0]], atol=1e-6)
