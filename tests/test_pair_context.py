"""The pair context (semflow/layers/context.py): brightness matching at its limits, the default
confidence, read-only arrays. (The dim pair that motivated the matching: test_video_events.py.)"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from semflow.layers.common import PHOTOMETRIC_SCALE
from semflow.layers.context import PairContext, match_brightness


def _frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(40, 200, (48, 64, 3)).astype(np.uint8)


STILL = np.zeros((48, 64, 2), np.float32)


def test_the_gain_is_measured_on_pixels_exposed_in_both_frames_only() -> None:
    # Frame 2 at half the brightness, with 55 % of it black (a shadow over most of it): the gain
    # comes from the 45 % still exposed, 2, and the exposed pixels are matched to frame 1.
    img1 = _frame()
    img2 = (img1 // 2).astype(np.uint8)
    dark = np.zeros((48, 64), bool)
    dark.ravel()[: int(0.55 * dark.size)] = True
    img2[dark] = 0
    matched = match_brightness(img1, img2, STILL)
    assert np.abs(matched[~dark].astype(int) - img1[~dark].astype(int)).max() <= 2
    assert (matched[dark] == 0).all()


def test_gains_beyond_max_gain_and_within_the_tolerance_are_not_applied() -> None:
    img1 = _frame()
    tenth = (img1 // 10).astype(np.uint8)  # a gain of 10 (> MAX_GAIN, 8)
    assert match_brightness(img1, tenth, STILL) is tenth
    # The means differ by more than the tolerance (a white object over 40 % of the frame), the
    # matched pixels by 5 % (within it): left as it is.
    brighter = np.clip(img1 * 1.05, 0, 255).astype(np.uint8)
    brighter[:, :26] = 255
    assert match_brightness(img1, brighter, STILL) is brighter


def test_the_confidence_given_is_clipped_and_the_default_one_is_the_smoothed_photometric_one() -> None:
    img1, img2 = _frame(1), _frame(2)
    given = np.linspace(-1, 2, 48 * 64, dtype=np.float32).reshape(48, 64)
    ctx = PairContext.build(img1, img2, STILL, given)
    np.testing.assert_array_equal(ctx.confidence, np.clip(given, 0, 1))
    ctx = PairContext.build(img1, img2, STILL)
    expected = np.exp(-cv2.blur(np.asarray(ctx.baseline_error), (5, 5)) / PHOTOMETRIC_SCALE)
    np.testing.assert_allclose(ctx.confidence, expected, rtol=1e-6)
    for array in (ctx.f1, ctx.f2, ctx.raw1, ctx.baseline, ctx.confidence, ctx.baseline_error, ctx.thing_pixels):
        with pytest.raises(ValueError, match="read-only"):
            array[0, 0] = 0
