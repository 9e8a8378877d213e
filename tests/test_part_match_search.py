"""One part's search in frame t+1 (semflow/layers/part_match.py ``_match_part``) on random frames."""

from __future__ import annotations

import numpy as np

from semflow.fitting.motion_fit import MotionParams
from semflow.layers.part_match import _match_part


def _frame() -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (80, 140, 3)).astype(np.float32)


def test_the_search_covers_zero_motion_however_far_the_guess() -> None:
    # A part that does not move, with a guess (the baseline's median there) 50 px away: more than
    # `search` (40) px, so only a window spanning both finds it.
    img = _frame()
    found = _match_part(img, img.copy(), np.ones((12, 12), bool), 30, 30, np.float32([50.0, 0.0]), MotionParams())
    assert found is not None
    src, dst = found
    assert len(src) == 9 and np.abs(dst - src).max() < 0.05


def test_a_translation_must_explain_the_part_to_half_rematch_error() -> None:
    # Frame 2: frame 1 moved 5 px right, plus noise: the match's median colour error is about 8 grey
    # levels, under rematch_error (12) but not under half of it: no matches.
    img1 = _frame()
    noise = np.random.default_rng(1).normal(0, 10, img1.shape).astype(np.float32)
    img2 = np.roll(img1, 5, axis=1) + noise
    assert _match_part(img1, img2, np.ones((12, 12), bool), 30, 30, np.float32([5.0, 0.0]), MotionParams()) is None
    clean = np.roll(img1, 5, axis=1)
    src, dst = _match_part(img1, clean, np.ones((12, 12), bool), 30, 30, np.float32([5.0, 0.0]), MotionParams())
    np.testing.assert_allclose(dst - src, np.broadcast_to([5.0, 0.0], src.shape), atol=0.05)
