"""``GivenFlow``: a flow computed elsewhere as a baseline (semantic flow over it, stored results reused)."""

from __future__ import annotations

import numpy as np
import pytest

from semflow.baseline import FlowResult, GivenFlow
from semflow.errors import InputError
from semflow.metrics import epe
from semflow.semantic import SemanticFlow


def test_returns_a_copy_of_the_given_flow_for_every_pair(small_scene) -> None:
    s = small_scene
    confidence = np.full(s.flow.shape[:2], 0.5, np.float32)
    given = GivenFlow(FlowResult(s.flow, confidence, {"note": np.ones(1)}), name="discrete")
    first = given.estimate(s.img1, s.img2)
    first.flow += 100.0
    first.confidence[:] = 0.0
    second = given.estimate(s.img1, s.img2)
    assert np.array_equal(second.flow, s.flow) and np.array_equal(second.confidence, confidence)
    assert "note" in second.extras and given.name == "discrete"


def test_refuses_a_bad_flow_and_frames_of_another_size(small_scene) -> None:
    s = small_scene
    bad = s.flow.copy()
    bad[3, 4, 0] = np.nan
    with pytest.raises(InputError, match="given flow"):
        GivenFlow(bad)
    with pytest.raises(InputError, match="shape"):
        GivenFlow(s.flow[..., 0])
    with pytest.raises(InputError, match="the given flow is 96x64, the frames 48x64"):
        GivenFlow(s.flow).estimate(s.img1[:, :48], s.img2[:, :48])


def test_semantic_over_a_given_flow_keeps_an_exact_one_and_mends_a_noisy_one() -> None:
    from semflow.synthetic import make_scene

    s = make_scene(seed=3)  # 240x320: a background homography, two objects under affine motion
    things = s.instances > 0

    def semantic(flow: np.ndarray) -> np.ndarray:
        return SemanticFlow(GivenFlow(flow), segmentation=s.labels).estimate(s.img1, s.img2, labels=s.labels).flow

    assert epe(semantic(s.flow), s.flow) < 0.02
    noisy = s.flow + np.random.default_rng(0).normal(0.0, 0.5, s.flow.shape).astype(np.float32)
    mended = semantic(noisy)
    assert epe(mended, s.flow) < 0.3 * epe(noisy, s.flow)
    assert epe(mended, s.flow, None, things) < 0.3 * epe(noisy, s.flow, None, things)
