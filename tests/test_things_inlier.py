"""The motion split's inlier distance follows the baseline (``thing_params_for``); its motions are
polished away from their seams (``motion_margin``); an object motion explains the seeds within twice
RANSAC's threshold."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from semflow.baseline.base import FlowResult, GivenFlow
from semflow.fitting.motion_fit import MotionParams
from semflow.layers.things import ThingParams, thing_params_for
from semflow.layers.things.motion import _explained_share, _sequential_affines
from semflow.methods import get_method
from semflow.metrics import epe
from semflow.semantic import SemanticFlow
from semflow.synthetic import SyntheticScene
from semflow.synthetic_hard import make_hard_scene


def test_discrete_gets_the_tighter_split_and_others_the_default() -> None:
    assert thing_params_for("discrete").motions.inlier == 1.0
    assert thing_params_for("dis-medium") == ThingParams()
    assert thing_params_for("no-such-method") == ThingParams()
    # The rest of the discrete settings are the defaults.
    tight = thing_params_for("discrete")
    assert dataclasses.replace(tight, motions=MotionParams(), motion_margin=0) == ThingParams()
    assert tight.motion_margin == 3 and ThingParams().motion_margin == 0
    assert get_method("semantic", baseline="discrete", segmenter=None).thing_params == tight
    assert get_method("semantic", baseline="dis-medium", segmenter=None).thing_params == ThingParams()
    given = ThingParams(seed=3)  # settings a user gives are taken as they are
    assert get_method("semantic", baseline="discrete", segmenter=None, things=given).thing_params is given


@pytest.fixture(scope="module")
def group_scene() -> tuple[SyntheticScene, FlowResult]:
    """Hard scene 5 of section things (a group of pedestrians) and discrete's flow on it, without its ring step
    (``ring_width=0``): these tests are about the things layer separating two pedestrians in a flow that mixes
    their motions; on the step's flow inlier distances of 1.0 and 1.5 px do equally well here (0.068, 0.067 px)."""
    scene = make_hard_scene(seed=10000, kind="group")
    return scene, get_method("discrete", ring_width=0).estimate(scene.img1, scene.img2)


def test_pedestrians_a_pixel_apart_get_their_own_motions_on_discrete(group_scene) -> None:
    # Two of the pedestrians, side by side, move 1.5 px apart; at an inlier distance of 1.5 px one
    # affine with a small rotation takes both, 0.6 px off on one of them. discrete's flow inside them
    # is exact enough for 1.0 px to tell them apart.
    scene, flow = group_scene
    things = scene.instances > 0
    given = GivenFlow(flow, name="discrete")
    results = {}
    for inlier in (1.0, 1.5):
        params = dataclasses.replace(thing_params_for("discrete"), motions=MotionParams(inlier=inlier))
        out = SemanticFlow(given, things=params).estimate(scene.img1, scene.img2, labels=scene.labels)
        results[inlier] = epe(out.flow, scene.flow, None, things)
    assert results[1.0] < 0.85 * results[1.5]
    assert results[1.0] < epe(flow.flow, scene.flow, None, things)


def test_motions_polished_away_from_their_seams_fit_a_narrow_pedestrian(group_scene) -> None:
    # The narrow pedestrian beside another one moving 1.5 px apart: its split motion, refined
    # photometrically up to the seam between them, is pulled by the seam's pixels (on the smoothed
    # frames they mix both pedestrians' colours) to about 0.5 px off; 3 px inside its own pixels the
    # refinement finds its motion.
    scene, flow = group_scene
    narrow = (scene.instances == 1) & ~scene.occluded
    results = {}
    for margin in (0, 3):
        params = dataclasses.replace(thing_params_for("discrete"), motion_margin=margin)
        out = SemanticFlow(GivenFlow(flow, name="discrete"), things=params).estimate(scene.img1, scene.img2, labels=scene.labels)
        results[margin] = epe(out.flow, scene.flow, None, narrow)
    assert results[3] < 0.5 * results[0]
    assert results[3] < 0.5 * epe(flow.flow, scene.flow, None, narrow)
    with pytest.raises(ValueError, match="motion_margin"):
        ThingParams(motion_margin=-1)


def test_each_match_can_have_its_own_inlier_distance() -> None:
    # A tight cluster (the baseline's and the patches' matches) and a loose one (a rematched part whose
    # points scatter by up to 1.4 px): with the loose matches' own, wider distance they make one motion
    # and all join it; at the tight distance for all they break up (a third motion, or outliers).
    from semflow.fitting.motion_fit import fit_motions

    rng = np.random.default_rng(0)
    tight = rng.uniform(0, 100, (150, 2))
    loose = rng.uniform(150, 200, (40, 2))
    src = np.vstack([tight, loose]).astype(np.float32)
    dst = np.vstack([tight + (5.0, 0.0) + rng.normal(0, 0.05, tight.shape),
                     loose + (-10.0, 3.0) + rng.uniform(-1, 1, loose.shape)]).astype(np.float32)
    params = MotionParams(inlier=1.0)
    per_match = np.r_[np.full(len(tight), 1.0), np.full(len(loose), 1.5)]
    affines, owner = fit_motions(src, dst, params, np.random.default_rng(1), inlier=per_match)
    assert len(affines) == 2 and (owner >= 0).mean() > 0.97
    assert len(set(owner[len(tight):])) == 1 and owner[0] != owner[-1]
    affines, owner = fit_motions(src, dst, params, np.random.default_rng(1))
    assert len(affines) > 2 or (owner[len(tight):] >= 0).mean() < 0.9


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_object_motion_explains_the_seeds_within_twice_the_ransac_threshold(seed: int) -> None:
    # A rigid object's baseline flow with smooth noise (1 px standard deviation per component), as a
    # baseline's flow is: one motion, explaining 84-89 % of the seeds (those within 2 px of it). Counted
    # within RANSAC's own threshold (1 px), under half were, near min_inlier_share (0.4), under which an
    # object is given up.
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.normal(0, 1, (60, 80, 2)).astype(np.float32), (0, 0), 4)
    baseline = np.float32([10, -3]) + noise / noise.std()
    seeds = np.ones((60, 80), bool)
    affines, supports = _sequential_affines(baseline, seeds, (0, 60, 0, 80), ThingParams(), rng)
    assert len(affines) == 1 and _explained_share(supports, seeds) > 0.8
