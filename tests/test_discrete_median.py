"""discrete's weighted median option (``median_radius``, ``densify.weighted_median``)."""

from __future__ import annotations

import cv2
import numpy as np

from semflow.baseline.discrete import DiscreteFlow
from semflow.baseline.discrete.densify import weighted_median
from semflow.flow_jumps import near_jumps
from semflow.metrics import endpoint_error, inner_band
from semflow.synthetic import random_texture
from semflow.synthetic_hard import make_hard_scene


def _two_colours(seed: int = 0):
    """A reddish textured box on a bluish textured background (120x160 px), its true flow (box (9, 4)
    px, background (-2, 1)), and that flow smeared across the box's outline over 8 px, as the
    interpolation and refinement leave it."""
    rng = np.random.default_rng(seed)
    h, w = 120, 160
    noise = cv2.GaussianBlur(rng.uniform(0, 60, (h, w)).astype(np.float32), (0, 0), 1.5)
    box = np.zeros((h, w), bool)
    box[40:80, 50:100] = True
    image = np.where(box[..., None], np.stack([160 + noise, 60 + noise, 40 + noise], -1),
                     np.stack([40 + noise, 70 + noise, 160 + noise], -1)).clip(0, 255).astype(np.uint8)
    flow = np.where(box[..., None], np.float32([9, 4]), np.float32([-2, 1])).astype(np.float32)
    return image, flow, box, cv2.blur(flow, (9, 9))


def test_weighted_median_puts_a_smeared_motion_boundary_back_on_the_colour_edge():
    image, flow, box, smeared = _two_colours()
    band = inner_band(box, 5) | inner_band(~box, 5)  # 5 px on either side of the outline
    before = endpoint_error(smeared, flow)
    after = endpoint_error(weighted_median(image, smeared, radius=15), flow)
    assert before[band].mean() > 2.0  # the premise: smeared
    assert after[band].mean() < 0.1 * before[band].mean()


def test_weighted_median_keeps_a_smooth_flow_exactly():
    # OpenCV's filter sorts floats into 256 levels over their range, so on its own it moves a smooth
    # flow by a fraction of its level step; only changes above min_change are taken.
    image, _, _, _ = _two_colours()
    ys, xs = np.mgrid[0:120, 0:160].astype(np.float32)
    ramp = np.stack([0.05 * xs - 3.0, 0.02 * ys + 1.0], -1).astype(np.float32)
    raw = cv2.ximgproc.weightedMedianFilter(image, np.ascontiguousarray(ramp[..., 0]), 7)
    assert np.abs(raw - ramp[..., 0]).max() > 1e-3  # the premise: the filter alone quantises
    np.testing.assert_array_equal(weighted_median(image, ramp, radius=7), ramp)


def test_discrete_with_median_radius_sharpens_a_hard_street_scene():
    # A hard street scene not used to choose the radius (seed 62000): a car passing parked ones.
    scene = make_hard_scene(seed=62000, kind="street")
    band = inner_band(scene.instances > 0, 5, scene.instances)
    plain = endpoint_error(DiscreteFlow().estimate(scene.img1, scene.img2).flow, scene.flow)
    median = endpoint_error(DiscreteFlow(median_radius=15).estimate(scene.img1, scene.img2).flow, scene.flow)
    # Measured: band EPE 2.16 -> 1.35 px, whole image 0.200 -> 0.152.
    assert median[band].mean() < 0.8 * plain[band].mean()
    assert median.mean() < plain.mean()


def test_weighted_median_gives_the_same_flow_every_call():
    # OpenCV's filter clusters the guide's colours from its global random stream: unseeded, two calls
    # on a many-coloured frame differ (by about 0.8 px on this one).
    rng = np.random.default_rng(0)
    image = np.clip(random_texture(120, 160, rng), 0, 255).astype(np.uint8)
    flow = np.stack([cv2.GaussianBlur(rng.normal(0, 5, (120, 160)).astype(np.float32), (0, 0), 3)
                     for _ in range(2)], -1)
    raw = [cv2.ximgproc.weightedMedianFilter(image, np.ascontiguousarray(flow[..., 0]), 15) for _ in range(2)]
    assert np.abs(raw[0] - raw[1]).max() > 0.5  # the premise: the filter alone varies
    np.testing.assert_array_equal(weighted_median(image, flow, radius=15), weighted_median(image, flow, radius=15))


def test_discrete_takes_the_median_only_near_the_flows_jumps():
    # A steep but smooth flow (a road in perspective, 0.25 px per px down the frame): the median of a
    # window whose colours weigh one side more is biased by up to radius x gradient, so discrete takes
    # it only near jumps (near_jumps: none here).
    rng = np.random.default_rng(0)
    image = np.clip(random_texture(120, 160, rng), 0, 255).astype(np.uint8)
    ys, xs = np.mgrid[0:120, 0:160].astype(np.float32)
    road = np.stack([0.1 * xs, 0.25 * ys], -1).astype(np.float32)
    assert np.abs(weighted_median(image, road, radius=15) - road).max() > 1.0  # the premise: biased
    assert not near_jumps(road).any()
    np.testing.assert_array_equal(weighted_median(image, road, radius=15, where=near_jumps(road)), road)
    image, flow, box, smeared = _two_colours()
    assert near_jumps(smeared)[inner_band(box, 3)].all()  # a smeared jump is near one
