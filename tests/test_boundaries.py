"""Boundary cases the rest of the suite left open (a mutation probe: each test here fails when the code it
names is changed by one operator, a swapped index or a dropped term): warp and occlusion edges, the
temporal meter, compose's painter's order and occluded confidence, the panel's tiles,
discrete's consistency and proposal bounds, 16-bit rounding, the small-sample refit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semflow import temporal
from semflow.baseline.discrete import consistency
from semflow.baseline.discrete.proposals import neighbour_flows
from semflow.compose import compose
from semflow.fitting.motion_fit import _refit
from semflow.io.images import to_rgb_uint8
from semflow.layers.context import PairContext
from semflow.layers.things import ThingFit
from semflow.render import draw_pair, render_clip
from semflow.segmentation.regions import Box, Region
from semflow.synthetic import CAR_ID
from semflow.warp import (
    hidden_by_collision,
    landing_conflicts,
    landings,
    photometric_error,
    sample_points,
    smoothed_error,
    warp_backward,
)


def test_landing_exactly_on_the_last_column_is_inside():
    img = np.zeros((6, 10), np.float32)
    flow = np.zeros((6, 10, 2), np.float32)
    flow[..., 0] = 1.0
    _, inside = warp_backward(img, flow)
    assert inside[:, :9].all() and not inside[:, 9].any()


def test_landing_half_a_pixel_past_the_last_column_is_outside():
    """Bilinear sampling needs x <= W - 1: a point at W - 0.5 is outside the frame, one at W - 1.5 inside."""
    img = np.zeros((6, 10), np.float32)
    flow = np.zeros((6, 10, 2), np.float32)
    flow[..., 0] = 0.5
    _, inside = warp_backward(img, flow)
    assert inside[:, :9].all() and not inside[:, 9].any()


def test_sample_points_interpolates_bilinearly():
    """Between pixels of 0 and 10 (x) and 0 and 40 (y): a quarter of the way along x, half along y."""
    img = np.float32([[0, 10], [40, 50]])
    values = sample_points(img, np.float32([0.25, 0.5, 1.0]), np.float32([0.0, 0.5, 1.0]))
    np.testing.assert_allclose(values, [2.5, 25.0, 50.0], atol=1e-3)


def test_landings_round_to_the_nearest_pixel_in_both_directions():
    """x + 0.6 lands on x + 1 and x - 0.6 on x - 1 (rounding, not truncation toward zero): from column 0,
    -0.6 lands at -1, outside the crop."""
    flow = np.zeros((1, 3, 2), np.float32)
    flow[0, :, 0] = (-0.6, 0.6, 0.4)
    flow[0, :, 1] = (0.0, 0.0, -0.6)
    tx, ty, inside = landings(flow)
    assert tx.tolist() == [[-1, 2, 2]] and ty.tolist() == [[0, 0, -1]]
    assert inside.tolist() == [[False, True, False]]


def test_an_error_of_exactly_matched_is_no_match():
    """Two pixels land on one: the one that matches (error 0) is in view; the other, whose error is exactly
    ``matched`` (the rule is error >= matched: no match), is hidden."""
    flow = np.zeros((1, 6, 2), np.float32)
    flow[0, 2, 0] = 1.0  # column 2 lands on column 3, where column 3 lands too
    error = np.zeros((1, 6), np.float32)
    error[0, 2] = 8.0
    assert hidden_by_collision(flow, error, matched=8.0).tolist() == [[False, False, True, False, False, False]]


def test_smoothed_error_is_capped_before_it_is_smoothed():
    error = np.zeros((21, 21), np.float32)
    error[10, 10] = 100.0
    assert smoothed_error(error, blur=0, cap=40.0).max() == 40.0
    assert smoothed_error(error, blur=1.0, cap=40.0).sum() == pytest.approx(40.0, rel=1e-3)  # (the blur keeps the sum)


def test_photometric_error_is_capped_at_40():
    a = np.zeros((8, 8, 3), np.float32)
    b = np.full((8, 8, 3), 255, np.float32)
    err, _ = photometric_error(a, b, np.zeros((8, 8, 2), np.float32))
    assert np.all(err == 40.0)


def test_a_pixel_landing_outside_the_crop_is_never_hidden():
    flow = np.zeros((20, 20, 2), np.float32)
    flow[10, 18, 0] = 5.0  # lands at x = 23
    error = np.zeros((20, 20), np.float32)
    error[10, 18] = 100.0
    assert not hidden_by_collision(flow, error).any()


def test_landing_on_a_neighbouring_cell_is_a_conflict():
    flow = np.zeros((5, 20, 2), np.float32)
    flow[2, 5, 0] = 3.0   # lands on cell x = 8 ...
    flow[2, 8, 1] = 10.0  # ... which its own pixel leaves (out of the crop): still pixels land on 7 and 9 beside it
    c = landing_conflicts(flow)
    assert c[2, 5] and c[2, 7] and c[2, 9]


def test_sampled_photometric_error_leaves_out_points_below_the_last_row():
    img1 = np.zeros((64, 64), np.float32)
    img2 = np.zeros((64, 64), np.float32)
    img2[-1] = 255
    flow = np.zeros((64, 64, 2), np.float32)
    flow[..., 1] = 1.5  # row 62 lands at 63.5: outside
    assert temporal.mean_photometric_error(img1, img2, flow, stride=2) == 0.0


def test_meter_compares_labels_with_the_previous_pair():
    m = temporal.TemporalMeter()
    img = np.zeros((8, 8, 3), np.uint8)
    flow = np.zeros((8, 8, 2), np.float32)
    a = np.zeros((8, 8), np.int32)
    b = a.copy()
    b[:, 4:] = 1
    m.add(img, img, flow, labels=a)
    assert m.add(img, img, flow, labels=b)["label_flip_rate"] == 0.5


def test_magnitudes_under_half_a_pixel_are_floored():
    jump = temporal.largest_jump([{"magnitude": 0.01, "image_change": 1.0}, {"magnitude": 0.4, "image_change": 1.0}])
    assert jump["largest_magnitude_jump"] == 1.0


def test_ties_keep_the_first_jump():
    rows = [{"magnitude": m, "image_change": 1.0} for m in (1.0, 2.0, 1.0)]
    assert temporal.largest_jump(rows)["jump_pair"] == 1


def test_vertical_landing_below_the_frame_is_inconsistent():
    fwd = np.full((10, 12, 2), (0.0, 4.0), np.float32)
    err = consistency.forward_backward_error(fwd, -fwd, 4, (40, 48))
    assert np.isinf(err[-1]).all() and np.isfinite(err[:-1]).all()


def test_a_segment_of_exactly_min_size_is_kept():
    flow = np.zeros((20, 20, 2), np.float32)
    flow[5:7, 5:7] = (10.0, 0.0)
    valid = consistency.remove_small_segments(flow, np.ones((20, 20), bool), max_diff=1.0, min_size=4)
    assert valid[5:7, 5:7].all()


def test_neighbour_flows_are_the_eight_neighbours():
    gh, gw = 4, 5
    idx = torch.arange(gh * gw).reshape(gh, gw)
    flows = torch.stack([idx, -idx], -1)[:, :, None]  # (gh, gw, 1, 2)
    out = neighbour_flows(flows)
    assert out.shape == (gh, gw, 8, 2)
    assert sorted(out[1, 1, :, 0].tolist()) == [0, 1, 2, 5, 7, 10, 11, 12]


def test_sixteen_bit_values_are_rounded():
    assert (to_rgb_uint8(np.full((2, 2), 32768, np.uint16)) == 128).all()


def test_fewer_than_six_matches_refit_a_translation():
    src = np.float64([[0, 0], [10, 0], [0, 10], [10, 10], [5, 5]])
    dst = src @ np.float64([[0.9, 0.1], [-0.1, 0.9]]).T + (3.0, -1.0)
    a = _refit(src, dst)
    np.testing.assert_allclose(a[:, :2], np.eye(2))
    np.testing.assert_allclose(a[:, 2], (dst - src).mean(0))




def _fit(box, h, w, value, *, occluded=None, rid=1):
    y0, y1, x0, x1 = box
    bh, bw = y1 - y0, x1 - x0
    empty = np.zeros((bh, bw), bool)
    occ = empty if occluded is None else occluded
    fg = ~occ
    layer = np.full((bh, bw, 2), value, np.float32)
    return ThingFit(region=Region(CAR_ID, Box(*box), fg, id=rid), box=Box(*box), accepted=True, reason="test",
                    foreground=fg, occluded=occ, others=empty, fg_flow=layer, bg_flow=layer, flow=layer,
                    bg_affine=np.eye(2, 3), fg_inlier_share=0.9, bg_inlier_share=0.9, model_error=0.0,
                    baseline_error=0.0, veto=None)


def test_the_nearest_thing_lowest_bottom_edge_is_painted_last():
    h, w = 40, 60
    img = np.full((h, w, 3), 128, np.uint8)
    ctx = PairContext.build(img, img, np.zeros((h, w, 2), np.float32), np.zeros((h, w), np.float32),
                            thing_pixels=np.ones((h, w), bool))
    near = _fit((0, 40, 0, 60), h, w, 3.0, rid=1)   # bottom edge 40: nearest
    far = _fit((0, 20, 0, 60), h, w, -3.0, rid=2)   # bottom edge 20
    for order in ([near, far], [far, near]):
        comp = compose(ctx, [], order, feather_radius=2.0)
        np.testing.assert_allclose(comp.flow[:15], 3.0)


def test_occluded_pixels_take_half_the_layer_evidence_and_no_photometric_penalty():
    h, w = 40, 60
    img1 = np.zeros((h, w, 3), np.uint8)
    img2 = np.full((h, w, 3), 255, np.uint8)  # nothing matches
    ctx = PairContext.build(img1, img2, np.zeros((h, w, 2), np.float32), np.zeros((h, w), np.float32),
                            thing_pixels=np.ones((h, w), bool))
    occ = np.zeros((h, w), bool)
    occ[:, 30:] = True
    comp = compose(ctx, [], [_fit((0, 40, 0, 60), h, w, 1.0, occluded=occ)], feather_radius=2.0)
    assert comp.occluded[:, 30:].all()
    np.testing.assert_allclose(comp.confidence[:, 30:], 0.45, atol=1e-6)  # 0.9 bg inlier share, halved




def test_the_panel_shows_the_baseline_flow_not_the_methods():
    frame = np.zeros((48, 64, 3), np.uint8)
    flow = np.tile(np.float32([3.0, 0.0]), (48, 64, 1))
    _, left = draw_pair(frame, 0, (flow, None, -flow), 5.0, "m")
    _, right = draw_pair(frame, 0, (flow, None, flow.copy()), 5.0, "m")
    assert not np.array_equal(left, right)


def test_render_clip_draws_only_the_pairs_asked_for(tmp_path):
    frames = [np.full((48, 64, 3), 10 * k, np.uint8) for k in range(6)]
    asked = []

    def flows_for(index, a, b):
        asked.append(index)
        return np.zeros((48, 64, 2), np.float32), None, None

    assert render_clip(iter(frames), 2, tmp_path, 5.0, 1.0, "m", flows_for, progress=False) == 2
    assert asked == [0, 1]


def test_a_match_landing_one_past_the_last_column_costs_outside_cost():
    from semflow.baseline.discrete.proposals import OUTSIDE_COST, score
    g = torch.Generator().manual_seed(0)
    desc = torch.nn.functional.normalize(torch.rand(8, 10, 4, generator=g), dim=-1)
    flows = torch.tensor([[[[1, 0], [2, 0], [0, 8]]]], dtype=torch.int64)  # from (x 8, y 0): x 9, x 10, y 8
    cost = score(desc, desc, torch.tensor([0]), torch.tensor([8]), flows)
    assert cost[0, 0, 0] < OUTSIDE_COST and cost[0, 0, 1] == OUTSIDE_COST and cost[0, 0, 2] == OUTSIDE_COST
