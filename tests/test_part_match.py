"""The occlusion-aware rematch of unexplained parts (``semflow.layers.part_match``)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from semflow.fitting.motion_fit import MotionParams
from semflow.layers import part_match
from semflow.layers.common import photometric_error, warp_target
from semflow.layers.part_match import (
    VISIBLE_CLEARANCE,
    _unexplained,
    correlate_valid,
    hidden_aware_ssd,
    refine_visible,
    rematch_unexplained,
    taken_pixels,
)
from semflow.layers.things import thing_params_for
from semflow.methods import get_method
from semflow.synthetic import random_texture

STRIP_MOTION = (8.0, 3.0)
OCCLUDER_MOTION = (0.0, -2.0)
BOX = (20, 130, 20, 200)


def strip_scene(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A car seen as a strip (rows 45-64, cols 60-139) above a parked car (rows 65-104, cols 40-159)
    that rises 2 px into it as the strip moves 3 px down: the strip's bottom 5 rows are hidden in
    frame t+1. The strip's colours vary along x (three smooth random profiles) and a little down its
    rows; the background is a flat grey, the parked car a purple texture. Returns both frames
    (H, W, 3) float32, instance ids (1 strip, 2 parked) and the true flow (H, W, 2) of frame t."""
    rng = np.random.default_rng(seed)
    h, w = 140, 220
    background = np.full((h, w, 3), 120.0) + rng.normal(0, 2, (h, w, 3))
    profiles = cv2.GaussianBlur(rng.normal(0, 30, (3, w + 40)).astype(np.float32), (0, 0), 1.5)
    profiles *= 45 / profiles.std(axis=1, keepdims=True)
    parked = cv2.GaussianBlur(rng.normal(0, 40, (h, w, 3)).astype(np.float32), (0, 0), 1.0) + np.float32([170, 60, 170])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)

    def render(t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        img = background.copy()
        x, y = xx - STRIP_MOTION[0] * t, yy - STRIP_MOTION[1] * t
        strip = (x >= 60) & (x < 140) & (y >= 45) & (y < 65)
        x0 = np.floor(x[strip]).astype(int)
        fx = x[strip] - x0
        p = profiles[:, x0] * (1 - fx) + profiles[:, x0 + 1] * fx
        img[strip] = np.stack([120 + p[0] + 5 * (y[strip] - 45), 110 + p[1], 130 + p[2]], -1)
        x, y = xx - OCCLUDER_MOTION[0] * t, yy - OCCLUDER_MOTION[1] * t
        front = (x >= 40) & (x < 160) & (y >= 65) & (y < 105)
        img[front] = cv2.remap(parked, x.astype(np.float32), y.astype(np.float32), cv2.INTER_LINEAR)[front]
        return np.clip(img, 0, 255).astype(np.float32), strip, front

    img1, strip, front = render(0)
    img2, _, _ = render(1)
    ids = np.zeros((h, w), np.int32)
    ids[strip], ids[front] = 1, 2
    flow = np.zeros((h, w, 2), np.float32)
    flow[strip], flow[front] = STRIP_MOTION, OCCLUDER_MOTION
    return img1, img2, ids, flow


def _occluder_affine() -> np.ndarray:
    return np.float64([[1, 0, OCCLUDER_MOTION[0]], [0, 1, OCCLUDER_MOTION[1]]])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_strip_half_hidden_by_the_car_below_it_matches_only_when_hidden_pixels_cost_a_fixed_amount(seed: int) -> None:
    img1, img2, ids, flow = strip_scene(seed)
    y0, y1, x0, x1 = BOX
    mask, baseline = ids[y0:y1, x0:x1] > 0, flow[y0:y1, x0:x1]  # the baseline: only its agreement matters here
    found = MotionParams(rematch_hidden_cost=100.0)
    src, dst = rematch_unexplained(img1, img2, mask, BOX, baseline, [_occluder_affine()], found)
    assert len(src) >= 20
    assert np.all(ids[src[:, 1].astype(int), src[:, 0].astype(int)] == 1)
    np.testing.assert_allclose(np.median(dst - src, axis=0), STRIP_MOTION, atol=0.1)
    # Charged their colour difference, the hidden rows pull the match upwards: no translation
    # explains the strip then (or a wrong one does).
    src, dst = rematch_unexplained(img1, img2, mask, BOX, baseline, [_occluder_affine()], MotionParams())
    assert len(src) == 0 or np.abs(np.median(dst - src, axis=0) - STRIP_MOTION).max() > 1.0


def test_taken_pixels_are_where_the_explained_pixels_land_and_only_under_a_motion_the_baseline_agrees_with() -> None:
    img1, img2, ids, flow = strip_scene(0)
    y0, y1, x0, x1 = BOX
    mask = ids[y0:y1, x0:x1] > 0
    field = np.broadcast_to(np.float32(OCCLUDER_MOTION), (*mask.shape, 2)).copy()
    err, inside = photometric_error(img1, img2, field, x0, y0)
    taken = taken_pixels(img1, mask, BOX, flow[y0:y1, x0:x1], [(field, err, inside)], MotionParams())
    truth = np.zeros_like(taken)
    truth[63:103, 40:160] = True  # the parked car in frame t+1
    assert taken.sum() > 0.95 * truth.sum()
    assert not (taken & ~truth).any()  # the strip's pixels are not explained by the parked car's motion
    off = flow[y0:y1, x0:x1] + np.float32([2.0, 0.0])  # a baseline 2 px away from every motion
    assert not taken_pixels(img1, mask, BOX, off, [(field, err, inside)], MotionParams()).any()


def _brute_ssd(search: np.ndarray, template: np.ndarray, part: np.ndarray, taken: np.ndarray,
               cost: float) -> np.ndarray:
    bh, bw = part.shape
    out = np.zeros((search.shape[0] - bh + 1, search.shape[1] - bw + 1))
    for y in range(out.shape[0]):
        for x in range(out.shape[1]):
            window, hidden = search[y:y + bh, x:x + bw], taken[y:y + bh, x:x + bw] & part
            seen = part & ~hidden
            out[y, x] = ((window - template) ** 2)[seen].sum() + 3 * cost * hidden.sum()
            if hidden.sum() > 0.5 * part.sum():
                out[y, x] = np.inf
    return out


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), taken_share=st.sampled_from([0.0, 0.1, 0.4]))
@example(seed=5228, taken_share=0.4)  # exactly half hidden somewhere: the count must not be FFT-noisy
def test_hidden_aware_ssd_is_the_masked_ssd_with_a_fixed_cost_on_taken_pixels(seed: int, taken_share: float) -> None:
    rng = np.random.default_rng(seed)
    search = rng.uniform(0, 255, (14, 17, 3)).astype(np.float32)
    template = rng.uniform(0, 255, (5, 6, 3)).astype(np.float32)
    part = rng.random((5, 6)) < 0.7
    part[2, 3] = True
    taken = rng.random((14, 17)) < taken_share
    score = hidden_aware_ssd(search, template, part, taken, 100.0)
    brute = _brute_ssd(search, template, part, taken, 100.0)
    assert np.array_equal(np.isinf(score), np.isinf(brute))
    finite = np.isfinite(brute)
    np.testing.assert_allclose(score[finite], brute[finite], rtol=1e-6, atol=1e-3)
    if taken_share == 0.0:  # nothing taken: OpenCV's masked SSD
        weight = np.repeat(part[..., None], 3, axis=2).astype(np.float32)
        plain = cv2.matchTemplate(search, template, cv2.TM_SQDIFF, mask=weight)
        np.testing.assert_allclose(score, plain, rtol=1e-4, atol=1.0)


def test_only_discrete_with_its_search_for_missed_motions_gets_the_occlusion_aware_rematch_by_default() -> None:
    assert thing_params_for("discrete").motions.rematch_hidden_cost == 100.0
    assert thing_params_for(get_method("discrete")).motions.rematch_hidden_cost == 100.0
    assert thing_params_for(get_method("discrete", sharpen=False)).motions.rematch_hidden_cost == 100.0
    plain = get_method("discrete", missed_motions=False)
    assert thing_params_for(plain).motions.rematch_hidden_cost is None
    assert thing_params_for(plain).motions.inlier == 1.0  # the split's inlier distance stays
    assert get_method("semantic", baseline=plain, segmenter=None).thing_params == thing_params_for(plain)
    assert thing_params_for("dis-medium").motions.rematch_hidden_cost is None
    assert MotionParams().rematch_hidden_cost is None


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.data())
def test_correlate_valid_is_scipys_valid_fft_correlation_bit_for_bit(height: int, width: int, data) -> None:
    from scipy.signal import correlate  # the reference; semflow itself does without scipy.signal

    kh, kw = data.draw(st.integers(1, height)), data.draw(st.integers(1, width))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    image = (rng.random((height, width)) * 255).astype(np.float32)
    kernel = (rng.random((kh, kw)) > 0.4).astype(np.float32) * rng.random((kh, kw)).astype(np.float32)
    expected = correlate(image.astype(np.float64), kernel.astype(np.float64), mode="valid", method="fft")
    got = correlate_valid(image, kernel)
    assert got.dtype == np.float64 and got.shape == (height - kh + 1, width - kw + 1)
    np.testing.assert_array_equal(got, expected)


def test_the_refinement_leaves_out_the_parts_pixels_next_to_its_hidden_ones() -> None:
    # A 20 x 30 px part moving (5, 3) px whose bottom 4 rows land on taken pixels: it refines on the rows
    # that land away from them, less the 2 rows (VISIBLE_CLEARANCE) beside the hidden ones, where the
    # occluding edge mixes the two things' colours in frame t+1.
    gray1 = random_texture(80, 120, np.random.default_rng(0))[..., 0].copy()
    gray2 = np.zeros_like(gray1)
    gray2[3:, 5:] = gray1[:-3, :-5]
    near_taken = np.zeros(gray1.shape, bool)
    near_taken[30 + 16 + 3:, :] = True  # where rows 16-19 of the part (at y = 30) land
    part = np.ones((20, 30), bool)
    warp, visible = refine_visible((gray1, gray2, warp_target(gray2)), part, 40, 30, np.float32([5, 3]), near_taken)
    assert VISIBLE_CLEARANCE == 2
    assert visible[:14].all() and not visible[14:].any()
    np.testing.assert_allclose(warp, [[1, 0, 5], [0, 1, 3]], atol=0.05)


def test_pixels_every_motion_carries_out_of_the_frame_are_not_left_to_rematch() -> None:
    # An object at the right edge moving 20 px right: its pixels that leave frame t+1 have no colour
    # there to be explained by, nor anything to be matched with; only those that stay in view and do not
    # match are a part to search for (none here: the motion explains them).
    rng = np.random.default_rng(0)
    img1, img2 = random_texture(80, 120, rng), random_texture(80, 120, rng)
    img2[20:60, 110:120] = img1[20:60, 90:100]
    box, mask = (20, 60, 80, 120), np.zeros((40, 40), bool)
    mask[:, 10:] = True
    leaving = np.float64([[1, 0, 20], [0, 1, 0]])
    todo, ((_, _, inside),) = _unexplained(img1, img2, mask, box, [leaving], MotionParams())
    assert not inside[:, 20:].any() and inside[:, :20].all()
    assert not todo.any()


def test_tiles_without_contrast_are_not_searched(monkeypatch) -> None:
    # A 32 x 32 px part of four 16 px tiles, two of them flat grey (standard deviation 0 < rematch_contrast,
    # 4): a flat tile matches anywhere flat, so only the two textured ones are searched.
    img1 = random_texture(80, 100, np.random.default_rng(0))
    img1[20:36, 30:62] = 120.0  # the part's top row of tiles
    part = np.ones((32, 32), bool)
    searched = []

    def search(img1, img2, part, ax, ay, *args, **kwargs):
        searched.append((ay, ax))

    monkeypatch.setattr(part_match, "_match_part", search)
    assert part_match._match_tiles(img1, img1, part, 30, 20, np.zeros(2), MotionParams(), {}) is None
    assert sorted(searched) == [(36, 30), (36, 46)]
