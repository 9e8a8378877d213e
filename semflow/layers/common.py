"""Small shared pieces of the layer models: photometric error (from :mod:`semflow.warp`), sampling, feathering, morphology, warp refinement.

Images here are float32 RGB (H, W, 3) in [0, 255] (see :func:`prepare_image`); flows are float32
(H, W, 2), u then v in pixels, frame t -> t+1.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from semflow.fitting.morphology import LARGE_RADIUS, dilate, disk, erode  # noqa: F401 (shared here)
from semflow.segmentation.regions import Box
from semflow.warp import (  # noqa: F401 (shared here)
    ERROR_CAP,
    channel_mean,
    inside_frame,
    magnitude,
    photometric_error,
    prepare_image,
    sample_points,
    to_gray,
)

PHOTOMETRIC_SCALE = 10.0
"""Grey levels of photometric error at which a pixel's photometric confidence falls to 1/e."""


def photometric_error_at(img1: np.ndarray, img2: np.ndarray, ys: np.ndarray, xs: np.ndarray,
                         flow: np.ndarray) -> np.ndarray:
    """:func:`photometric_error` at the pixels (ys, xs) only, for their flow vectors ``flow`` (N, 2).

    Returns (N,) float32, the same values the full-image function gives there.
    """
    x, y = xs.astype(np.float32), ys.astype(np.float32)
    warped = sample_points(img2, x + flow[:, 0], y + flow[:, 1])
    err = channel_mean(np.abs(img1[ys, xs] - warped))
    return np.minimum(err, ERROR_CAP).astype(np.float32)


def feather(mask: np.ndarray, radius: float) -> np.ndarray:
    """A soft version of a bool mask: 1 deep inside, 0 far outside, a smooth ramp of about ``radius`` px."""
    soft = mask.astype(np.float32)
    if radius <= 0:
        return soft
    return cv2.GaussianBlur(soft, (0, 0), radius / 2.0)


def inner_feather(mask: np.ndarray, radius: float) -> np.ndarray:
    """Like :func:`feather` but the ramp lies inside the mask (h, w; nonzero is inside): float32 (h, w), 0
    outside, rising to 1 ``radius`` px in. Any radius gives values in [0, 1] (one of 1e-320 px gave NaN
    outside the mask, one of 1e300 px an overflow warning: the distance is capped at the radius, in float64)."""
    inside = np.asarray(mask) != 0  # (a float mask of 1e300 overflowed its cast to uint8)
    if radius <= 0:
        return inside.astype(np.float32)
    distance = cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, 3).astype(np.float64)
    return (np.minimum(distance, radius) / radius).astype(np.float32)


def subsample_points(mask: np.ndarray, max_points: int, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(ys, xs) int arrays of at most ``max_points`` pixels of ``mask``, drawn without replacement."""
    ys, xs = np.nonzero(mask)
    if ys.size > max_points:
        keep = rng.choice(ys.size, max_points, replace=False)
        ys, xs = ys[keep], xs[keep]
    return ys, xs


def tiles(mask: np.ndarray, side: int) -> list[tuple[slice, slice]]:
    """The squares of ``side`` px tiling the bounding box of ``mask`` (h, w) from its top-left corner
    that hold at least half a square of its pixels, as (rows, columns) slices."""
    ys, xs = np.nonzero(mask)
    if side <= 0 or len(ys) == 0:
        return []
    out = []
    for ty in range(int(ys.min()), int(ys.max()) + 1, side):
        for tx in range(int(xs.min()), int(xs.max()) + 1, side):
            cell = (slice(ty, ty + side), slice(tx, tx + side))
            if mask[cell].sum() >= 0.5 * side * side:
                out.append(cell)
    return out


def warp_target(gray2: np.ndarray) -> np.ndarray:
    """Frame 2 in gray with its x and y gradients, (H, W, 3) float32: what :func:`refine_warp` samples.

    Compute it once per frame pair and pass it to every :func:`refine_warp` call on that pair.
    """
    gx = cv2.Sobel(gray2, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(gray2, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    return np.dstack([gray2.astype(np.float32), gx, gy])


class GrayFrames(NamedTuple):
    """Both frames in float32 gray (H, W) and frame 2's :func:`warp_target` (H, W, 3): what the
    photometric refinements of the layer models (:func:`refine_warp`) sample."""

    gray1: np.ndarray
    gray2: np.ndarray
    target: np.ndarray


def gray_frames(img1: np.ndarray, img2: np.ndarray) -> GrayFrames:
    """:class:`GrayFrames` of two float32 RGB frames. Compute it once per frame pair."""
    gray2 = to_gray(img2)
    return GrayFrames(to_gray(img1), gray2, warp_target(gray2))


COARSE_POINTS = 500
"""refine_warp takes its first steps on a quarter of the points when it has 4x this many or more..."""
COARSE_TOLERANCE = 0.05
"""...until a step moves them by less than this (px)."""


def refine_warp(gray1: np.ndarray, gray2: np.ndarray, warp: np.ndarray, mask: np.ndarray,
                box: Box, *, iterations: int = 15, max_points: int = 20000,
                huber: float = 4.0, rng: np.random.Generator | None = None,
                target: np.ndarray | None = None, tolerance: float = 0.01) -> np.ndarray | None:
    """Refine an affine (2, 3) or homography (3, 3) warp photometrically over ``mask`` (h, w) in ``box``.

    Robust (Huber, ``huber`` grey levels) Gauss-Newton on the brightness constancy of frame 1 inside
    the mask and frame 2 under the warp (Lucas-Kanade, forward additive, in coordinates centred and
    scaled to the box for conditioning), starting from ``warp`` (full-image frame-1 -> frame-2
    coordinates). ``gray1``/``gray2`` are full float32 gray frames; ``target``, optional, is
    :func:`warp_target` of ``gray2`` (computed here when not given). Iterations stop after
    ``iterations`` or once a step changes no parameter by more than ``tolerance`` px (parameters scaled
    to the box). Returns the refined warp, or None when the problem is degenerate.
    """
    points = _warp_points(gray1, mask, box, max_points=max_points, rng=rng)
    if points is None:
        return None
    if target is None:
        target = warp_target(gray2)
    x, y, i1 = points
    problem = _warp_problem(box, target, gray2.shape, affine=warp.shape == (2, 3), huber=huber)
    h = _coarse_to_fine(problem, _to_box_coordinates(warp, problem), x, y, i1,
                        iterations=iterations, tolerance=tolerance)
    if h is None:
        return None
    return _to_full_image(h, problem)


def _warp_points(gray1: np.ndarray, mask: np.ndarray, box: Box, *, max_points: int,
                 rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The pixels of ``mask`` (h, w) in ``box`` that :func:`refine_warp` fits: full-image x, y and
    their frame-1 grey levels, each (N,) float64; at most ``max_points`` of them, drawn without
    replacement (by ``rng``, default a fixed seed). None below 20 pixels."""
    y0, _, x0, _ = box
    ys, xs = np.nonzero(mask)
    if ys.size < 20:
        return None
    if ys.size > max_points:
        keep = (rng or np.random.default_rng(0)).choice(ys.size, max_points, replace=False)
        ys, xs = ys[keep], xs[keep]
    x = (xs + x0).astype(np.float64)
    y = (ys + y0).astype(np.float64)
    return x, y, gray1[ys + y0, xs + x0].astype(np.float64)


class _WarpProblem(NamedTuple):
    """What stays fixed while :func:`refine_warp` iterates: frame 2's :func:`warp_target` (H, W, 3) and
    size (px), the box's normalised coordinates (full-image x = centre + scale * xn, ``centre`` (2,)
    (x, y) px, ``scale`` half the box's longer side in px, ``norm`` (3, 3) from normalised to full-image
    coordinates), whether the warp is affine (6 parameters) rather than a homography (8), and the Huber
    threshold (grey levels)."""

    target: np.ndarray
    height: int
    width: int
    centre: np.ndarray
    scale: float
    norm: np.ndarray
    affine: bool
    huber: float


def _warp_problem(box: Box, target: np.ndarray, shape: tuple[int, int], *, affine: bool, huber: float
                  ) -> _WarpProblem:
    """The :class:`_WarpProblem` of a warp of ``box`` into frame 2 (``shape`` (H, W), ``target`` its
    :func:`warp_target`)."""
    y0, y1, x0, x1 = box
    height, width = shape
    c = np.array([(x0 + x1 - 1) / 2.0, (y0 + y1 - 1) / 2.0])
    s = max(x1 - x0, y1 - y0) / 2.0
    norm = np.array([[s, 0, c[0]], [0, s, c[1]], [0, 0, 1]])
    return _WarpProblem(target, height, width, c, s, norm, affine, huber)


def _to_box_coordinates(warp: np.ndarray, problem: _WarpProblem) -> np.ndarray:
    """``warp`` (2, 3) or (3, 3), full-image, in the box's normalised coordinates: N^-1 W N, (3, 3)
    scaled to h[2, 2] = 1."""
    full = np.vstack([warp, [0, 0, 1]]) if warp.shape == (2, 3) else warp / warp[2, 2]
    h = np.linalg.inv(problem.norm) @ full @ problem.norm
    h /= h[2, 2]
    return h


def _to_full_image(h: np.ndarray, problem: _WarpProblem) -> np.ndarray | None:
    """The normalised warp ``h`` (3, 3) back in full-image coordinates, (2, 3) for an affine warp, else
    (3, 3) scaled to [2, 2] = 1; None when not finite."""
    refined = problem.norm @ h @ np.linalg.inv(problem.norm)
    if not np.isfinite(refined).all():
        return None
    return refined[:2] if problem.affine else refined / refined[2, 2]


def _coarse_to_fine(problem: _WarpProblem, h: np.ndarray, x: np.ndarray, y: np.ndarray, i1: np.ndarray, *,
                    iterations: int, tolerance: float) -> np.ndarray | None:
    """The normalised warp ``h`` (3, 3) after at most ``iterations`` :func:`_gauss_newton` steps on the
    points (x, y) with frame-1 values ``i1``, the first of them on a quarter of the points; None when
    the last steps fail."""
    if iterations < 1:  # (no step at all: the warp as given)
        return h
    remaining = iterations
    if x.size >= 4 * COARSE_POINTS:
        # Most steps happen far from the optimum, where a quarter of the points (spread evenly over
        # the list) steer as well as all of them; the last steps use them all.
        coarse, taken = _gauss_newton(problem, h, x[::4], y[::4], i1[::4], steps=iterations,
                                      tolerance=COARSE_TOLERANCE)
        if coarse is not None:
            h, remaining = coarse, max(iterations - taken, 2)
    h, _ = _gauss_newton(problem, h, x, y, i1, steps=remaining, tolerance=tolerance)
    return h


def _gauss_newton(problem: _WarpProblem, h: np.ndarray, x: np.ndarray, y: np.ndarray, i1: np.ndarray, *,
                  steps: int, tolerance: float) -> tuple[np.ndarray | None, int]:
    """At most ``steps`` Gauss-Newton steps from the normalised warp ``h`` (3, 3) on the points (x, y)
    (full-image px, (N,)) with frame-1 values ``i1`` (N,), stopping once a step moves no parameter by
    ``tolerance`` px: the refined h (or None when degenerate) and the number of steps taken."""
    h, taken = h.copy(), 0
    c, s = problem.centre, problem.scale
    xn, yn = (x - c[0]) / s, (y - c[1]) / s
    ones = np.ones_like(xn)
    # An affine (un, vn) is linear in the parameters: its derivatives never change.
    basis = np.stack([xn, yn, ones], axis=1) if problem.affine else None
    for taken in range(1, steps + 1):
        step = _gauss_newton_step(problem, h, xn, yn, ones, basis, i1)
        if step is None:
            return None, taken
        h[:2, :] += step[:6].reshape(2, 3)
        if not problem.affine:
            h[2, :2] += step[6:]
        if np.abs(step).max() * s < tolerance:
            break
    return h, taken


def _gauss_newton_step(problem: _WarpProblem, h: np.ndarray, xn: np.ndarray, yn: np.ndarray, ones: np.ndarray,
                       basis: np.ndarray | None, i1: np.ndarray) -> np.ndarray | None:
    """One robust Gauss-Newton step (6,) or (8,) for the normalised warp ``h`` on the normalised points
    (xn, yn) (N,) (``basis``: the affine derivatives (N, 3), None for a homography); None when fewer
    than 20 points land inside frame 2 or the system is singular."""
    c, s = problem.centre, problem.scale
    den, un, vn = _project(h, xn, yn)
    px, py = c[0] + s * un, c[1] + s * vn
    inside = inside_frame(px, py, problem.width, problem.height)
    if inside.sum() < 20:
        return None
    sampled = sample_points(problem.target, px.astype(np.float32), py.astype(np.float32)).astype(np.float64)
    r = sampled[:, 0] - i1
    gx, gy = s * sampled[:, 1], s * sampled[:, 2]  # gradients w.r.t. normalised coords
    jac = _warp_jacobian(gx, gy, xn, yn, ones, den, un, vn, basis)
    weight = np.where(np.abs(r) <= problem.huber, 1.0, problem.huber / np.maximum(np.abs(r), 1e-9)) * inside
    return _weighted_step(jac, r, weight)


def _project(h: np.ndarray, xn: np.ndarray, yn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where the normalised warp ``h`` (3, 3) takes the normalised points (xn, yn) (N,): the projective
    denominator and the normalised (un, vn), each (N,)."""
    den = h[2, 0] * xn + h[2, 1] * yn + 1.0
    un = (h[0, 0] * xn + h[0, 1] * yn + h[0, 2]) / den
    vn = (h[1, 0] * xn + h[1, 1] * yn + h[1, 2]) / den
    return den, un, vn


def _warp_jacobian(gx: np.ndarray, gy: np.ndarray, xn: np.ndarray, yn: np.ndarray, ones: np.ndarray,
                   den: np.ndarray, un: np.ndarray, vn: np.ndarray, basis: np.ndarray | None) -> np.ndarray:
    """The derivatives (N, 6) or (N, 8) of frame 2's grey level (gradients gx, gy w.r.t. normalised
    coordinates) under the warp w.r.t. its parameters; ``basis`` (N, 3) for an affine warp, else None."""
    # d(un)/dp and d(vn)/dp for p = (h00, h01, h02, h10, h11, h12[, h20, h21]): un depends on
    # the first three through (xn, yn, 1) / den, vn on the next three the same way.
    if basis is not None:
        return np.concatenate([gx[:, None] * basis, gy[:, None] * basis], axis=1)
    basis = np.stack([xn / den, yn / den, ones / den], axis=1)
    projective = np.stack([gx * (-xn * un / den) + gy * (-xn * vn / den),
                           gx * (-yn * un / den) + gy * (-yn * vn / den)], axis=1)
    return np.concatenate([gx[:, None] * basis, gy[:, None] * basis, projective], axis=1)


def _weighted_step(jac: np.ndarray, r: np.ndarray, weight: np.ndarray) -> np.ndarray | None:
    """The weighted least-squares step -(J^T W J)^-1 J^T W r, lightly regularised (1e-6 of the mean of
    the Hessian's diagonal); None when singular."""
    jw = jac * weight[:, None]
    hess = jw.T @ jac
    hess += 1e-6 * np.trace(hess) / len(hess) * np.eye(len(hess))
    try:
        return -np.linalg.solve(hess, jw.T @ r)
    except np.linalg.LinAlgError:
        return None
