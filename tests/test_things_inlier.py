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
