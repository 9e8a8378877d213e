"""The motion split's inlier distance follows the baseline (``thing_params_for``)."""

from __future__ import annotations

import dataclasses

import numpy as np

from semflow.baseline.base import FlowMethod, FlowResult
from semflow.layers.motion_fit import MotionParams
from semflow.layers.things import ThingParams, thing_params_for
from semflow.methods import get_method
from semflow.metrics import epe
from semflow.semantic import SemanticFlow
from semflow.synthetic_hard import make_hard_scene


def test_discrete_gets_the_tighter_split_and_others_the_default() -> None:
    assert thing_params_for("discrete").motions.inlier == 1.0
    assert thing_params_for("dis-medium") == ThingParams()
    assert thing_params_for("no-such-method") == ThingParams()
    # The rest of the discrete settings are the defaults.
    tight = thing_params_for("discrete")
    assert dataclasses.replace(tight, motions=MotionParams()) == ThingParams()
    assert get_method("semantic", baseline="discrete", segmenter=None).thing_params == tight
    assert get_method("semantic", baseline="dis-medium", segmenter=None).thing_params == ThingParams()
    given = ThingParams(seed=3)  # settings a user gives are taken as they are
    assert get_method("semantic", baseline="discrete", segmenter=None, things=given).thing_params is given


def test_pedestrians_a_pixel_apart_get_their_own_motions_on_discrete() -> None:
    # Hard scene 5 of section things (a group of pedestrians): two of them, side by side, move 1.5 px
    # apart; at an inlier distance of 1.5 px one affine with a small rotation takes both, 0.6 px off on
    # one of them. discrete's flow inside them is exact enough for 1.0 px to tell them apart.
    scene = make_hard_scene(seed=10000, kind="group")
    things = scene.instances > 0
    base = get_method("discrete")
    flow = base.estimate(scene.img1, scene.img2)

    class Given(FlowMethod):  # the same baseline result for both runs
        name = "discrete"

        def _estimate(self, img1: np.ndarray, img2: np.ndarray, **_: object) -> FlowResult:
            return FlowResult(flow.flow.copy(), flow.confidence.copy(), dict(flow.extras))

    given = Given()
    results = {}
    for inlier in (1.0, 1.5):
        params = dataclasses.replace(thing_params_for("discrete"), motions=MotionParams(inlier=inlier))
        out = SemanticFlow(given, things=params).estimate(scene.img1, scene.img2, labels=scene.labels)
        results[inlier] = epe(out.flow, scene.flow, None, things)
    assert results[1.0] < 0.85 * results[1.5]
    assert results[1.0] < epe(flow.flow, scene.flow, None, things)


def test_each_match_can_have_its_own_inlier_distance() -> None:
    # A tight cluster (the baseline's and the patches' matches) and a loose one (a rematched part whose
    # points scatter by up to 1.4 px): with the loose matches' own, wider distance they make one motion
    # and all join it; at the tight distance for all they break up (a third motion, or outliers).
    from semflow.layers.motion_fit import fit_motions

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
