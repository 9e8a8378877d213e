"""The temporal prior of ``discrete``'s video mode (``semflow.baseline.discrete.temporal_prior``).

Synthetic frames with exact motion: a translating texture (the blend itself), a noisy zoom over a
surface whose lower part has almost no texture (where matches fail and the flow flickers), and two
unrelated clips back to back (a cut the prior must not leak the old motion across).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import texture

from semflow.baseline.discrete import DiscreteFlow
from semflow.baseline.discrete.temporal_prior import PriorParams, blend_toward_carried
from semflow.synthetic import render_sequence
from semflow.video_state import VideoState

INNER = (slice(16, -16), slice(16, -16))  # away from the frame's edges, where flows leave the frame


def shift_sequence(frames: int, height: int, width: int, *, seed: int = 0,
                   shift: tuple[float, float] = (3.0, 1.0)) -> list[np.ndarray]:
    """A texture translating by ``shift`` px a frame."""
    move = np.array([[1, 0, shift[0]], [0, 1, shift[1]], [0, 0, 1]], float)
    return render_sequence(texture(2 * height, 2 * width, seed), move, [], frames=frames, height=height,
                           width=width, origin=(width / 2, height / 2))


def run_pairs(method: DiscreteFlow, frames: list[np.ndarray], *, video: bool) -> list:
    state = VideoState() if video else None
    results = []
    for a, b in zip(frames, frames[1:]):
        results.append(method.estimate(a, b, state=state))
        state = results[-1].state
    return results


def epe(flow: np.ndarray, truth: np.ndarray) -> float:
    return float(np.hypot(*(flow - truth).transpose(2, 0, 1)).mean())


def uniform(shape: tuple[int, ...], motion: tuple[float, float]) -> np.ndarray:
    flow = np.zeros((*shape[:2], 2), np.float32)
    flow[...] = motion
    return flow


@pytest.fixture(scope="module")
def shifted() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two gray frames of a texture moving by (-12, 5) px, and that exact flow."""
    frames = shift_sequence(2, 120, 160, seed=2, shift=(-12.0, 5.0))
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    return gray[0], gray[1], uniform(gray[0].shape, (-12.0, 5.0))


def test_without_matches_the_flow_leans_on_a_carried_flow_that_fits(shifted) -> None:
    gray1, gray2, truth = shifted
    wrong = uniform(truth.shape, (3.0, 1.0))
    no_matches = np.zeros((15, 20), bool)
    blended, weight = blend_toward_carried(wrong, truth, no_matches, gray1, gray2)
    weight_max = PriorParams().weight
    np.testing.assert_allclose(weight[INNER], weight_max, atol=1e-4)
    assert epe(blended[INNER], truth[INNER]) == pytest.approx((1 - weight_max) * epe(wrong, truth), rel=1e-3)


def test_a_carried_flow_that_does_not_fit_is_not_taken(shifted) -> None:
    """After a cut (here: the last motion was (3, 1), the new one (-12, 5)) the carried flow explains
    nothing: even without any match the new flow stays as it is."""
    gray1, gray2, truth = shifted
    old = uniform(truth.shape, (3.0, 1.0))
    blended, weight = blend_toward_carried(truth, old, np.zeros((15, 20), bool), gray1, gray2)
    assert weight[INNER].max() == 0.0
    np.testing.assert_array_equal(blended[INNER], truth[INNER])


def test_matches_keep_the_new_flow_unless_the_carried_one_fits_clearly_better(shifted) -> None:
    gray1, gray2, truth = shifted
    matched = np.ones((15, 20), bool)
    near = truth + np.float32([0.5, 0.0])  # a carried flow about as good: the matches decide
    blended, weight = blend_toward_carried(truth, near, matched, gray1, gray2)
    assert weight[INNER].max() == 0.0
    np.testing.assert_array_equal(blended[INNER], truth[INNER])
    # A new flow 4 px off, where the carried flow fits the frames: taken even against matches.
    off = truth + np.float32([4.0, 0.0])
    blended, weight = blend_toward_carried(off, truth, matched, gray1, gray2)
    assert weight[INNER].min() == pytest.approx(PriorParams().weight, abs=1e-4)
    assert epe(blended[INNER], truth[INNER]) < 0.2 * epe(off[INNER], truth[INNER])


def test_prior_off_returns_the_flow_unchanged(shifted) -> None:
    gray1, gray2, truth = shifted
    wrong = uniform(truth.shape, (3.0, 1.0))
    blended, weight = blend_toward_carried(wrong, truth, np.zeros((15, 20), bool), gray1, gray2,
                                           PriorParams(weight=0.0))
    assert blended is wrong and not weight.any()


def noisy_zoom_over_flat_ground(frames: int, height: int = 120, width: int = 160, *, scale: float = 1.03
                                ) -> tuple[list[np.ndarray], np.ndarray]:
    """A camera moving towards a surface (a zoom by ``scale`` a frame about the frame's centre) whose
    lower part has almost no texture, with sensor noise (sigma 3 grey levels) in every frame: the
    matches there come and go from pair to pair. Returns the frames and the exact flow (the same for
    every pair)."""
    tex = texture(2 * height, 2 * width, 0).astype(np.float32)
    flat = cv2.GaussianBlur(tex, (0, 0), 8)
    flat = 128 + 0.3 * (flat - flat.mean())
    tex[int(1.2 * height):] = flat[int(1.2 * height):]
    cx, cy = width / 2, height / 2
    zoom = np.array([[scale, 0, cx * (1 - scale)], [0, scale, cy * (1 - scale)], [0, 0, 1]])
    clean = render_sequence(np.clip(tex, 0, 255).astype(np.uint8), zoom, [], frames=frames, height=height,
                            width=width, origin=(cx, cy))
    rng = np.random.default_rng(1)
    noisy = [np.clip(f + rng.normal(0, 3, f.shape), 0, 255).astype(np.uint8) for f in clean]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    truth = np.stack([(xs - cx) * (scale - 1), (ys - cy) * (scale - 1)], -1).astype(np.float32)
    return noisy, truth


def test_prior_lowers_flicker_over_weak_texture_without_raising_the_error() -> None:
    frames, truth = noisy_zoom_over_flat_ground(7)
    figures = {}
    for prior in (0.0, PriorParams().weight):
        results = run_pairs(DiscreteFlow(video_prior=prior), frames, video=True)
        flicker = np.mean([np.abs(b.flow - a.flow).mean() for a, b in zip(results, results[1:])])
        figures[prior] = flicker, np.mean([epe(r.flow, truth) for r in results])
    (flicker_off, epe_off), (flicker_on, epe_on) = figures.values()
    assert flicker_on < 0.85 * flicker_off, figures
    assert epe_on <= 1.05 * epe_off, figures


def test_an_unnoticed_cut_does_not_leak_the_old_motion(monkeypatch) -> None:
    """With the cut detector blinded, the pair after the cut gets the old clip's flow as its carried
    flow: the photometric gate must keep it out."""
    monkeypatch.setattr("semflow.baseline.base.scene_cut", lambda a, b: False)
    first = shift_sequence(3, 120, 160, seed=1, shift=(3.0, 1.0))
    second = shift_sequence(3, 120, 160, seed=2, shift=(-12.0, 5.0))
    frames = first + second
    truth = uniform(frames[0].shape, (-12.0, 5.0))
    method = DiscreteFlow()
    video = run_pairs(method, frames, video=True)
    cut = len(first) - 1
    assert not video[cut].state.cut
    for k in (cut + 1, cut + 2):
        after = epe(video[k].flow[INNER], truth[INNER])
        pair = epe(method.estimate(frames[k], frames[k + 1]).flow[INNER], truth[INNER])
        assert after <= max(0.25, 1.5 * pair), (k, after, pair)


def test_pair_mode_ignores_the_prior() -> None:
    frames = shift_sequence(2, 64, 96)
    a = DiscreteFlow().estimate(frames[0], frames[1]).flow
    b = DiscreteFlow(video_prior=0.0).estimate(frames[0], frames[1]).flow
    np.testing.assert_array_equal(a, b)
