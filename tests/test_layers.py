"""The layer models on synthetic scenes with exact ground truth: planes, things, the pieces they use."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semflow.layers.common import erode, inner_feather, prepare_image, refine_warp
from semflow.layers.context import PairContext
from semflow.layers.planes import PlaneParams, fit_homography, fit_planes, homography_flow
from semflow.layers.things.motion import affine_flow, smooth_residual
from semflow.methods import get_method
from semflow.metrics import epe
from semflow.segmentation.regions import Box, Region
from semflow.synthetic import CAR_ID, ROAD_ID, SceneObject, random_affine, random_homography, render_scene
from semflow.warp import sample_points, to_gray


def _scene(seed: int, objects: int):
    rng = np.random.default_rng(seed)
    h, w = 200, 280
    homography = random_homography(w, h, rng, shift=5.0)
    objs = []
    for _ in range(objects):
        center = (w * 0.5, h * 0.5)
        objs.append(SceneObject(center, (40.0, 30.0), random_affine(center, rng, max_shift=10.0), angle=20.0))
    return render_scene(h, w, homography, objs, seed=seed)


@pytest.fixture(scope="module")
def plane_scene():
    return _scene(3, 0)


@pytest.fixture(scope="module")
def object_scene():
    scene = _scene(5, 1)
    # The test is only meaningful if the object moves differently from its background.
    assert epe(affine_flow(scene.objects[0].affine, (0, 200, 0, 280)), scene.flow, region=scene.instances == 0) > 3
    return scene


def test_plane_under_known_homography_is_recovered_to_subpixel(plane_scene):
    scene = plane_scene
    from semflow.methods import get_method

    baseline = get_method("dis-medium")(scene.img1, scene.img2)
    region = Region(ROAD_ID, Box(0, 200, 0, 280), np.ones((200, 280), bool))
    ctx = PairContext.build(scene.img1, scene.img2, baseline, np.ones((200, 280), np.float32))
    (fit,) = fit_planes([region], ctx, PlaneParams())
    assert fit.accepted, fit.reason
    visible = ~scene.occluded
    assert epe(fit.flow, scene.flow, region=visible) < 0.1
    assert epe(fit.flow, scene.flow) < 0.5  # sub-pixel everywhere, also where frame 2 does not see it
    np.testing.assert_allclose(homography_flow(scene.homography, region.box), scene.flow, atol=1e-3)


@pytest.mark.parametrize("seed", range(3))
def test_fit_homography_gives_none_for_points_on_one_line_and_a_true_fit_otherwise(seed):
    rng = np.random.default_rng(seed)
    truth = np.array([[1.01, 0.02, 3.0], [0.01, 0.99, -2.0], [1e-5, 0.0, 1.0]])

    def warp(points):
        mapped = np.c_[points, np.ones(len(points))] @ truth.T
        return (mapped[:, :2] / mapped[:, 2:]).astype(np.float32)

    t = rng.uniform(0, 100, 50)
    on_line = np.stack([t, 0.5 * t + 3], axis=1).astype(np.float32)  # collinear up to float32 rounding
    homography, inliers = fit_homography(on_line, warp(on_line), 1.0)
    assert homography is None and not inliers.any()
    spread = np.stack([t, rng.uniform(0, 100, 50)], axis=1).astype(np.float32)
    homography, inliers = fit_homography(spread, warp(spread), 1.0)
    off_line = np.array([[0.0, 100.0, 1.0]])
    found = off_line @ homography.T
    assert inliers.all() and np.allclose(found[0, :2] / found[0, 2], warp(off_line[:, :2])[0], atol=0.01)


def test_photometric_refinement_recovers_a_known_affine_from_a_shifted_start(object_scene):
    scene = object_scene
    true = scene.objects[0].affine
    start = true.copy()
    start[:, 2] += (1.2, -0.8)
    mask = erode(scene.instances == 1, 1)
    g1, g2 = to_gray(prepare_image(scene.img1)), to_gray(prepare_image(scene.img2))
    refined = refine_warp(g1, g2, start, mask, (0, 200, 0, 280))
    assert refined is not None
    box = (0, 200, 0, 280)
    assert epe(affine_flow(refined, box), scene.flow, region=mask) < 0.1
    assert epe(affine_flow(start, box), scene.flow, region=mask) > 1.0
    # No step at all gives the warp as given (it was an UnboundLocalError; noticed in its refactor)
    np.testing.assert_allclose(refine_warp(g1, g2, start, mask, box, iterations=0), start, atol=1e-9)


def test_smooth_residual_fills_in_a_smooth_field_from_sparse_noisy_data():
    rng = np.random.default_rng(0)
    h, w = 60, 80
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    truth = np.stack([0.02 * x, -0.015 * y + 0.5], axis=2)
    weight = (rng.random((h, w)) < 0.3).astype(np.float32)
    noisy = truth + rng.normal(0, 0.5, truth.shape).astype(np.float32)
    field = smooth_residual(noisy, weight, smoothness=30.0, grid=4)
    assert field.shape == (h, w, 2)
    inner = (slice(8, -8), slice(8, -8))
    assert np.abs(field[inner] - truth[inner]).mean() < 0.15
    assert np.abs(noisy[inner] - truth[inner]).mean() > 0.3
    assert np.abs(smooth_residual(noisy, np.zeros((h, w), np.float32), 30.0, 4)).max() == 0


def test_object_under_affine_motion_is_recovered_with_its_boundary_and_occluded_strip(object_scene):
    scene = object_scene
    result = get_method("semantic", baseline="dis-medium").estimate(scene.img1, scene.img2, labels=scene.labels)
    base = result.extras["baseline_flow"]
    obj = scene.instances == 1
    model = result.extras["model_map"]
    # The object: sub-pixel, and much better than the baseline.
    assert epe(result.flow, scene.flow, region=obj) < 0.4
    assert epe(result.flow, scene.flow, region=obj) < 0.5 * epe(base, scene.flow, region=obj)
    # Its boundary: the object layer covers the true object (IoU).
    fg = model == 2
    assert (fg & obj).sum() / (fg | obj).sum() > 0.95
    # The occluded strip: background pixels covered by the object in frame 2 (inside the image).
    h, w = obj.shape
    y, x = np.mgrid[0:h, 0:w]
    tx, ty = x + scene.flow[..., 0], y + scene.flow[..., 1]
    inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    covered = scene.occluded & ~obj & inside
    assert covered.sum() > 100
    marked = model == 4
    assert (marked & covered).sum() > 0.6 * covered.sum()
    assert (marked & ~scene.occluded).sum() < 0.3 * marked.sum()
    assert epe(result.flow, scene.flow, region=covered) < 0.5
    assert epe(base, scene.flow, region=covered) > 1.5
    assert result.extras["occlusion"][covered].mean() > 0.6


def test_a_plane_label_over_a_moving_object_does_not_spoil_it(object_scene):
    """Labels that call everything road: the object is vetoed back to the baseline, nothing gets worse."""
    scene = object_scene
    labels = np.full_like(scene.labels, ROAD_ID)
    result = get_method("semantic", baseline="dis-medium").estimate(scene.img1, scene.img2, labels=labels)
    base = result.extras["baseline_flow"]
    obj = erode(scene.instances == 1, 4)
    assert epe(result.flow, scene.flow, region=obj) <= 1.02 * epe(base, scene.flow, region=obj) + 0.05
    assert epe(result.flow, scene.flow) <= epe(base, scene.flow)
    assert CAR_ID not in np.unique(result.extras["labels"])


def test_fast_pieces_match_their_reference_implementations():
    """The hand-rolled pieces give what scipy / a plain remap / the disk kernel give."""
    import cv2
    import scipy.ndimage as ndi

    from semflow.layers.common import dilate, disk, magnitude
    from semflow.layers.things.assignment import open_cross
    from semflow.segmentation.regions import fill_holes

    rng = np.random.default_rng(3)
    for _ in range(50):
        h, w = rng.integers(5, 60, 2)
        blur = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), float(rng.uniform(0.5, 3)))
        mask = blur > rng.uniform(0.4, 0.6)
        assert (fill_holes(open_cross(mask)) == ndi.binary_fill_holes(ndi.binary_opening(mask))).all()
    image = rng.random((40, 70, 3)).astype(np.float32)
    for rows, cols in ((1, 1), (1, 500), (200, 200)):  # one partial row of 1024 points, and 40 rows
        px = rng.uniform(-3, 73, (rows, cols)).astype(np.float32)
        py = rng.uniform(-3, 43, (rows, cols)).astype(np.float32)
        grid = cv2.remap(image, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).reshape(-1, 3)
        assert np.array_equal(sample_points(image, px.ravel(), py.ravel()), grid)
    vectors = rng.normal(size=(30, 20, 2)).astype(np.float32)
    assert np.array_equal(magnitude(vectors), np.linalg.norm(vectors, axis=2))
    point = np.zeros((101, 101), bool)
    point[50, 50] = True
    for radius in (3, 30):  # a kernel up to 10 px, a distance transform beyond: the same disk within a rim
        kernel = cv2.dilate(point.astype(np.uint8), disk(radius)).astype(bool)
        assert (dilate(point, radius) ^ kernel).sum() <= 0.03 * kernel.sum()


def _blob(seed: int) -> np.ndarray:
    """A random bool mask (24, 32) of a few rectangles."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((24, 32), bool)
    for _ in range(3):
        y, x = rng.integers(0, 20), rng.integers(0, 28)
        mask[y:y + rng.integers(2, 16), x:x + rng.integers(2, 20)] = True
    return mask


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.01, 1000.0))
def test_inner_feather_is_the_distance_in_radii_capped_at_one(seed: int, radius: float) -> None:
    mask = _blob(seed)
    distance = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    ramp = inner_feather(mask, radius)
    assert ramp.dtype == np.float32 and ramp.shape == mask.shape
    np.testing.assert_allclose(ramp, np.clip(distance / np.float32(radius), 0.0, 1.0), rtol=1e-6, atol=1e-7)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.one_of(st.floats(5e-324, 1e-30), st.floats(1e30, 1.7e308)))
def test_inner_feather_of_any_radius_stays_in_0_to_1_without_a_numpy_warning(seed: int, radius: float) -> None:
    # (A radius beyond float32's range overflowed its cast with a RuntimeWarning; one below float32's
    # smallest value divided 0 by 0: NaN outside the mask.)
    mask = _blob(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ramp = inner_feather(mask, radius)
    assert np.isfinite(ramp).all() and ramp.min() >= 0.0 and ramp.max() <= 1.0
    assert not ramp[~mask].any()
    if radius < 1.0:  # thinner than a pixel: the mask itself
        np.testing.assert_array_equal(ramp, mask)


@pytest.mark.parametrize("radius", [0.0, -1.0, 2.0])
def test_inner_feather_takes_any_nonzero_value_as_inside(radius: float) -> None:
    """Nonzero is inside, negative values too; a radius of 0 or less gives the mask itself as 0 and 1 (a mask
    of 255 is 1, not 255), with no division by zero."""
    mask = np.zeros((9, 9), np.float32)
    mask[2:7, 2:7] = 255.0
    mask[4, 4] = -3.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ramp = inner_feather(mask, radius)
    assert ramp.dtype == np.float32 and ramp.max() == 1.0 and (ramp[mask != 0] > 0).all()
    assert not ramp[mask == 0].any()
    if radius <= 0:
        np.testing.assert_array_equal(ramp, mask != 0)


def test_photometric_error_at_is_the_full_images_error_capped_the_same() -> None:
    # Random frames: most errors exceed ERROR_CAP (40), where the point-wise function must cap them too.
    from semflow.layers.common import ERROR_CAP, photometric_error, photometric_error_at

    rng = np.random.default_rng(4)
    img1, img2 = (rng.uniform(0, 255, (30, 40, 3)).astype(np.float32) for _ in range(2))
    flow = rng.uniform(-3, 3, (30, 40, 2)).astype(np.float32)
    full, _ = photometric_error(img1, img2, flow)
    ys, xs = np.nonzero(np.ones((30, 40), bool))
    at = photometric_error_at(img1, img2, ys, xs, flow[ys, xs])
    assert (full == ERROR_CAP).mean() > 0.3
    np.testing.assert_allclose(at, full[ys, xs], atol=1e-3)


def test_subsample_points_draws_distinct_pixels_of_the_mask() -> None:
    from semflow.layers.common import subsample_points

    mask = np.zeros((20, 30), bool)
    mask[3:15, 5:25] = True  # 240 px
    ys, xs = subsample_points(mask, 200, np.random.default_rng(0))
    assert len(ys) == 200 and mask[ys, xs].all()
    assert len(set(zip(ys.tolist(), xs.tolist()))) == 200  # without replacement
    ys, xs = subsample_points(mask, 500, np.random.default_rng(0))
    assert len(ys) == 240  # all of them when there are fewer


def test_tiles_hold_at_least_half_a_square_of_the_mask() -> None:
    from semflow.layers.common import tiles

    mask = np.zeros((8, 12), bool)
    mask[0:4, 0:4] = True  # full
    mask[0:4, 4:6] = True  # half of the tile at (0, 4): in
    mask[4:8, 0:1] = True
    mask[4:7, 1:2] = True  # 7 of 16 px at (4, 0): out
    starts = [(rows.start, cols.start) for rows, cols in tiles(mask, 4)]
    assert starts == [(0, 0), (0, 4)]
    # Side 1: every pixel of the mask, the last row and column included.
    one = [(rows.start, cols.start) for rows, cols in tiles(mask, 1)]
    assert sorted(one) == sorted(zip(*np.nonzero(mask)))


def test_warp_target_is_frame_two_with_its_gradients_in_grey_levels_per_pixel() -> None:
    from semflow.layers.common import warp_target

    yy, xx = np.mgrid[0:12, 0:16].astype(np.float32)
    target = warp_target(3.0 * xx + 2.0 * yy)
    np.testing.assert_allclose(target[..., 0], 3.0 * xx + 2.0 * yy)
    np.testing.assert_allclose(target[1:-1, 1:-1, 1], 3.0, atol=1e-5)
    np.testing.assert_allclose(target[1:-1, 1:-1, 2], 2.0, atol=1e-5)


def test_the_homography_jacobian_is_the_derivative_of_the_projection() -> None:
    # refine_warp's Gauss-Newton steps use d(un, vn)/dp; compared with central differences of the
    # projection itself (gradients (1, 0) give d(un)/dp, (0, 1) give d(vn)/dp).
    from semflow.layers.common import _project, _warp_jacobian

    rng = np.random.default_rng(2)
    h = np.eye(3) + rng.normal(0, 0.05, (3, 3))
    h[2, 2] = 1.0
    xn, yn = rng.uniform(-1, 1, 50), rng.uniform(-1, 1, 50)
    ones = np.ones_like(xn)
    den, un, vn = _project(h, xn, yn)
    zeros = np.zeros_like(xn)
    along_u = _warp_jacobian(ones, zeros, xn, yn, ones, den, un, vn, None)
    along_v = _warp_jacobian(zeros, ones, xn, yn, ones, den, un, vn, None)
    entries = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1)]
    eps = 1e-6
    for k, (i, j) in enumerate(entries):
        plus, minus = h.copy(), h.copy()
        plus[i, j] += eps
        minus[i, j] -= eps
        _, up, vp = _project(plus, xn, yn)
        _, um, vm = _project(minus, xn, yn)
        np.testing.assert_allclose(along_u[:, k], (up - um) / (2 * eps), atol=1e-6, err_msg=f"d un / d h{i}{j}")
        np.testing.assert_allclose(along_v[:, k], (vp - vm) / (2 * eps), atol=1e-6, err_msg=f"d vn / d h{i}{j}")
