"""discrete's optional last stage: motions the flow missed (semflow.baseline.discrete.missed)."""

from __future__ import annotations

import cv2
import numpy as np

from semflow.baseline.discrete import DiscreteFlow
from semflow.baseline.discrete.missed import MissedParams, follow_missed_motions
from semflow.metrics import endpoint_error
from semflow.synthetic import moving_patch_scene, random_texture
from semflow.synthetic_hard import make_hard_scene

H, W = 160, 224
BACKGROUND, STRIP = (1.0, 0.5), (22.0, 2.0)


def _strip_scene():
    """A textured strip 14 px tall moving STRIP px over a textured background moving BACKGROUND px:
    frames, the true flow, the strip's mask and the background pixels it covers in frame t+1."""
    strip = np.zeros((H, W), bool)
    strip[70:84, 40:160] = True
    img1, img2, flow, moved = moving_patch_scene(strip, BACKGROUND, STRIP, seed=11)
    ys, xs = np.mgrid[0:H, 0:W]
    covered = ~strip & moved[np.clip(np.round(ys + BACKGROUND[1]).astype(int), 0, H - 1),
                             np.clip(np.round(xs + BACKGROUND[0]).astype(int), 0, W - 1)]
    return img1, img2, flow, strip, covered


def test_a_strip_that_took_its_surroundings_motion_gets_its_own_back() -> None:
    img1, img2, truth, strip, _ = _strip_scene()
    smeared = truth.copy()
    smeared[strip] = BACKGROUND  # what an interpolation does to a thing no grid match saw
    out, reports = follow_missed_motions(img1, img2, smeared)
    assert len(reports) == 1, reports
    assert np.hypot(*(np.array(reports[0].motion) - STRIP)) < 0.5, reports[0]
    assert endpoint_error(smeared, truth)[strip].mean() > 20
    after = endpoint_error(out, truth)[strip]
    assert after.mean() < 2.5 and (after < 1.0).mean() > 0.9, (after.mean(), (after < 1.0).mean())
    # Away from the strip nothing changes (the blob widened by `grow`, and a bit of slack).
    near = cv2.dilate(strip.astype(np.uint8), np.ones((2 * 5 + 1, 2 * 5 + 1), np.uint8)).astype(bool)
    assert np.array_equal(out[~near], smeared[~near])


def test_pixels_hidden_in_the_next_frame_are_not_given_a_motion_they_seem_to_match() -> None:
    # Under the true flow the background that the strip covers in frame t+1 fits badly: a blob of 300+
    # unexplained pixels with no motion of its own. Its patches scatter, so the true flow stays.
    img1, img2, truth, strip, covered = _strip_scene()
    assert covered.sum() >= MissedParams().min_pixels
    out, reports = follow_missed_motions(img1, img2, truth)
    assert reports == [] and np.array_equal(out, truth)


def test_a_motion_the_flow_already_has_nearby_is_not_a_missed_one() -> None:
    # Off by 2 px only (less than `jump`): a correction, left to the refinement; the flow stays.
    img1, img2, truth, strip, _ = _strip_scene()
    off = truth.copy()
    off[strip] += np.float32([2.0, 0.0])
    out, reports = follow_missed_motions(img1, img2, off, MissedParams(error=2.0))
    assert reports == [] and np.array_equal(out, off)


def test_discrete_finds_the_far_car_behind_the_parked_row() -> None:
    # The hard street scene whose far car shows as a strip above the parked car in front of it (scene 2
    # of BENCHMARKS.md's things section): without the stage discrete gives it the front car's motion.
    scene = make_hard_scene(seed=7000, kind="street")
    far = scene.instances == 1
    visible = far & ~scene.occluded
    assert 1000 < visible.sum() < 3000
    without = DiscreteFlow(missed_motions=False).estimate(scene.img1, scene.img2).flow
    with_stage = DiscreteFlow(missed_motions=True).estimate(scene.img1, scene.img2).flow
    assert endpoint_error(without, scene.flow)[visible].mean() > 10
    assert endpoint_error(with_stage, scene.flow)[visible].mean() < 3
    # Its end that drives behind the parked car on the right (hidden in frame t+1) goes with it too.
    hidden = far & scene.occluded
    assert hidden.sum() > 300
    assert endpoint_error(without, scene.flow)[hidden].mean() > 15
    assert endpoint_error(with_stage, scene.flow)[hidden].mean() < 6
    elsewhere = ~cv2.dilate(far.astype(np.uint8), np.ones((21, 21), np.uint8)).astype(bool)
    assert np.array_equal(with_stage[elsewhere], without[elsewhere])


def test_the_hidden_end_of_a_missed_strip_takes_its_motion() -> None:
    # A static block in front hides the strip's right end in frame t+1 (the strip drives behind it):
    # those pixels fit frame t+1 under no motion, and go with the strip by colour and contiguity.
    img1, img2, truth, strip, _ = _strip_scene()
    block = np.zeros((H, W), bool)
    block[60:95, 150:200] = True
    texture = random_texture(H, W, np.random.default_rng(5)).astype(np.uint8)
    img1[block], img2[block] = texture[block], texture[block]
    truth[block] = 0.0
    strip &= ~block
    hidden = strip & (np.arange(W) + STRIP[0] >= 150)[None, :]
    assert hidden.sum() > 250
    smeared = truth.copy()
    smeared[strip] = BACKGROUND
    out, reports = follow_missed_motions(img1, img2, smeared)
    assert len(reports) == 1, reports
    after = endpoint_error(out, truth)
    assert after[strip & ~hidden].mean() < 2.5
    assert after[hidden].mean() < 3.0 and (after[hidden] < 1.0).mean() > 0.7, \
        (after[hidden].mean(), (after[hidden] < 1.0).mean())
    assert after[block].max() < 1e-6  # the block in front keeps its flow
