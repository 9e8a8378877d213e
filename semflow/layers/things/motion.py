"""Motion models of a thing's layers: a robust affine motion plus a smooth per-pixel residual.

Per layer (object or background, inside the instance's padded box):

1. :func:`fit_seed_affine`: a robust affine motion (RANSAC) fitted to the baseline flow at the
   layer's seed pixels (confident, away from the mask boundary), then :func:`polish_affine`: robust
   Gauss-Newton on brightness constancy over the layer's pixels, kept when it lowers the error, so
   that the motion does not inherit the baseline's small biases;
2. :func:`layer_flow`: the affine flow plus :func:`smooth_residual`, the minimiser of a quadratic
   energy (data = the baseline's deviation from the affine motion on the layer's own pixels,
   smoothness = squared gradient), solved on a coarse grid (a banded linear system) and upsampled.
   The layer's flow is defined over the whole box, and each layer only ever sees its own pixels.

:func:`layer_motion` does both for one layer; :func:`object_motions` does them for the object layer,
where a mask may hold several touching objects: up to ``max_object_motions`` affine motions found by
sequential RANSAC, each pixel choosing one by an edge-aware smoothed cost (:mod:`.motion_choice`).

Boxes are :class:`~semflow.segmentation.regions.Box` (y0, y1, x0, x1) in full-image pixels; maps
"over the box" are (h, w) = (box.height, box.width); affine maps (2, 3) take full-image frame-1
pixels to frame 2.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from semflow.fitting.motion_fit import plausible
from semflow.layers.common import (
    ERROR_CAP,
    GrayFrames,
    magnitude,
    refine_warp,
    subsample_points,
    tiles,
)
from semflow.layers.context import PairContext
from semflow.layers.things.motion_choice import choose_motions, composed_flow, motion_errors
from semflow.layers.things.params import ThingParams
from semflow.segmentation.regions import Box
from semflow.warp import pixel_grid, sample_points


def affine_flow(affine: np.ndarray, box: Box) -> np.ndarray:
    """Flow (h, w, 2) float32 of a (2, 3) affine map over the box (y0, y1, x0, x1)."""
    y0, y1, x0, x1 = box
    x, y = pixel_grid(y1 - y0, x1 - x0, x0, y0)
    a = affine.astype(np.float32)
    u = a[0, 0] * x + a[0, 1] * y + a[0, 2] - x
    v = a[1, 0] * x + a[1, 1] * y + a[1, 2] - y
    return np.stack([u, v], axis=2)


def fit_affine(src: np.ndarray, dst: np.ndarray, threshold: float, min_points: int
               ) -> tuple[np.ndarray | None, float]:
    """Robust affine map from matches (N, 2): RANSAC, then Levenberg-Marquardt on the inliers.

    Returns (A (2, 3) or None, inlier share).
    """
    if len(src) < min_points:
        return None, 0.0
    a, inliers = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=threshold,
                                      maxIters=2000, confidence=0.995, refineIters=10)
    if a is None:
        return None, 0.0
    return a, float(inliers.mean())


def affine_error(affines: list[np.ndarray], support: np.ndarray, box: Box, gray: GrayFrames) -> list[float]:
    """Mean capped grey-level error over ``support`` (h, w) in ``box`` under each (2, 3) affine map."""
    y0, _, x0, _ = box
    ys, xs = np.nonzero(support)
    x, y = (xs + x0).astype(np.float32), (ys + y0).astype(np.float32)
    g1 = gray.gray1[ys + y0, xs + x0]
    errors = []
    for a in affines:
        a32 = a.astype(np.float32)  # as affine_flow computes it
        mx = x + (a32[0, 0] * x + a32[0, 1] * y + a32[0, 2] - x)
        my = y + (a32[1, 0] * x + a32[1, 1] * y + a32[1, 2] - y)
        warped = sample_points(gray.gray2, mx, my)
        errors.append(float(np.minimum(np.abs(warped - g1), ERROR_CAP).mean()))
    return errors


def polish_affine(affine: np.ndarray, support: np.ndarray, box: Box, gray: GrayFrames, params: ThingParams,
                  rng: np.random.Generator) -> np.ndarray:
    """The affine motion refined photometrically over ``support`` (h, w) when that lowers the error and
    the result is :func:`~semflow.fitting.motion_fit.plausible`."""
    if not params.photometric_refinement or support.sum() < params.min_points:
        return affine
    refined = refine_warp(gray.gray1, gray.gray2, affine, support, box, rng=rng,
                          max_points=params.refine_points, target=gray.target)
    if refined is None or not plausible(refined[None], params.motions.max_stretch)[0]:
        return affine
    refined_error, error = affine_error([refined, affine], support, box, gray)
    return refined if refined_error < error else affine


def fit_seed_affine(baseline: np.ndarray, seeds: np.ndarray, box: Box,
                    params: ThingParams, rng: np.random.Generator) -> tuple[np.ndarray | None, float]:
    """:func:`fit_affine` to the baseline flow (h, w, 2) at (a sample of) the seed pixels (h, w)."""
    y0, _, x0, _ = box
    ys, xs = subsample_points(seeds, params.max_points, rng)
    src = np.stack([xs + x0, ys + y0], axis=1).astype(np.float32)
    return fit_affine(src, src + baseline[ys, xs], params.ransac_threshold, params.min_points)


def smooth_residual(residual: np.ndarray, weight: np.ndarray, smoothness: float, grid: int) -> np.ndarray:
    """Smooth field (h, w, 2) minimising sum w |r - residual|^2 + smoothness * |grad r|^2.

    Solved on a grid ``grid`` times coarser (area-weighted data), then bilinearly upsampled.
    Where there is no data the field relaxes to 0 (a tiny pull toward zero keeps the system regular).
    """
    h, w = weight.shape
    gh, gw = max(1, -(-h // grid)), max(1, -(-w // grid))
    if weight.sum() <= 0:
        return np.zeros((h, w, 2), np.float32)
    # Per cell: the sum of the weights and of the weighted residuals (zero padding to whole cells;
    # an area resize by a whole factor is the block mean).
    data = np.zeros((gh * grid, gw * grid, 3), np.float32)
    data[:h, :w, 0] = weight
    data[:h, :w, 1:] = residual * weight[..., None]
    cells = cv2.resize(data, (gw, gh), interpolation=cv2.INTER_AREA).astype(np.float64) * (grid * grid)
    cell_w, cell_r = cells[..., 0], cells[..., 1:]

    # The system (data weights + a 4-neighbour grid Laplacian) is symmetric positive definite and
    # banded; cells are numbered along the grid's longer side so that the band is the shorter side.
    transpose = gw > gh
    if transpose:
        cell_w, cell_r = cell_w.T, cell_r.transpose(1, 0, 2)
    rows, band = cell_w.shape
    n = rows * band
    # Each coarse edge stands for `grid` fine pixel pairs over a distance of `grid` pixels.
    lam = smoothness / grid
    along = np.where(np.arange(n) % band < band - 1, lam, 0.0)[:-1]  # cell k -- cell k + 1 (same row)
    degree = np.zeros(n)
    degree[:-1] += along
    degree[1:] += along
    degree[:-band] += lam  # cell k -- cell k + band (next row)
    degree[band:] += lam
    upper = np.zeros((band + 1, n))  # scipy's upper banded storage: upper[band + i - j, j] = A[i, j]
    upper[band] = cell_w.ravel() + degree + 1e-3
    upper[band - 1, 1:] = -along
    upper[0, band:] = -lam
    from scipy.linalg import solveh_banded  # here: scipy.linalg takes 0.2 s to import, `semflow --help` none

    coarse = solveh_banded(upper, cell_r.reshape(n, 2).astype(np.float64), check_finite=False)
    coarse = coarse.reshape(rows, band, 2)
    if transpose:
        coarse = coarse.transpose(1, 0, 2)
    # Cell centres sit at (k + 0.5) * grid - 0.5 in fine pixels; resize maps them so.
    fine = cv2.resize(coarse.astype(np.float32), (gw * grid, gh * grid), interpolation=cv2.INTER_LINEAR)
    return fine[:h, :w]


def layer_flow(baseline: np.ndarray, affine: np.ndarray, support: np.ndarray, box: Box,
               params: ThingParams) -> np.ndarray:
    """Flow (h, w, 2) of one layer over the box: the affine motion plus a smooth residual fitted to the
    baseline's deviation from it on ``support`` (h, w) (deviations beyond ``residual_cap`` left out)."""
    flow = affine_flow(affine, box)
    if params.residual_smoothness <= 0:
        return flow
    deviation = baseline - flow
    size = magnitude(deviation)
    weight = (support & (size < params.residual_cap)).astype(np.float32)
    # Soft dead zone: deviations below residual_deadzone are the baseline's noise and bias, not motion.
    shrink = np.maximum(0.0, 1.0 - params.residual_deadzone / np.maximum(size, 1e-6))[..., None]
    if not (shrink[..., 0] * weight).any():
        return flow  # the baseline nowhere deviates beyond the dead zone: the residual is 0
    h, w = support.shape
    grid = max(params.residual_grid, int(np.ceil(np.sqrt(h * w / params.residual_cells))))
    return flow + smooth_residual(deviation * shrink, weight, params.residual_smoothness, grid)


def layer_motion(baseline: np.ndarray, seeds: np.ndarray, box: Box, gray: GrayFrames, params: ThingParams,
                 rng: np.random.Generator) -> tuple[np.ndarray | None, float, np.ndarray | None]:
    """Affine motion + smooth residual of one layer from its seed pixels (h, w) inside the box.

    ``baseline`` (h, w, 2) is the baseline flow over the box; the affine motion is refined
    photometrically on ``gray`` (the pair's :class:`~semflow.layers.common.GrayFrames`).

    Returns (affine or None, inlier share, layer flow (h, w, 2) or None).
    """
    affine, share = fit_seed_affine(baseline, seeds, box, params, rng)
    if affine is None:
        return None, 0.0, None
    affine = polish_affine(affine, seeds, box, gray, params, rng)
    return affine, share, layer_flow(baseline, affine, seeds, box, params)


def _explained(baseline: np.ndarray, affine: np.ndarray, seeds: np.ndarray, box: Box, params: ThingParams
               ) -> np.ndarray:
    """The ``seeds`` (h, w) where the ``baseline`` flow (h, w, 2) is within RANSAC's reach (twice its
    threshold) of the ``affine`` motion's."""
    return seeds & (magnitude(baseline - affine_flow(affine, box)) < 2 * params.ransac_threshold)


def _explains_better(candidate: np.ndarray, affine: np.ndarray, support: np.ndarray, box: Box,
                     gray: GrayFrames) -> bool:
    """Whether the affine map ``candidate`` has a lower photometric error over ``support`` than ``affine``."""
    affine_err, candidate_err = affine_error([affine, candidate], support, box, gray)
    return candidate_err < affine_err


def searched_parts(mask: np.ndarray, box: Box, gray: GrayFrames, around: np.ndarray, baseline: np.ndarray,
                   params: ThingParams) -> np.ndarray:
    """Translations (K, 2, 3) found by :func:`searched_motion` on tiles of ``params.search_tile`` px of
    ``mask`` (h, w, over ``box``), each with at least half its pixels in the mask, searched around
    ``around`` (2,) against the ``baseline`` (h, w, 2) flow's median on the tile; a translation is kept
    when ``params.search_tile_votes`` tiles find it (within 2 px), once. (0, 2, 3) when none is."""
    found: list[np.ndarray] = []
    for cell in tiles(mask, params.search_tile):
        part = np.zeros_like(mask)
        part[cell] = mask[cell]
        motion, _ = searched_motion(part, box, gray, around, np.median(baseline[part], axis=0), params)
        if motion is not None:
            found.append(motion)
    # A translation counts when enough tiles agree on it (within 2 px): one tile alone can match a
    # look-alike (KITTI's car, which moves 136 px, beyond the search, gave one such tile).
    kept: list[np.ndarray] = []
    for motion in found:
        votes = sum(np.abs(motion[:, 2] - f[:, 2]).max() <= 2 for f in found)
        if votes >= params.search_tile_votes and all(np.abs(motion[:, 2] - k[:, 2]).max() > 2 for k in kept):
            kept.append(motion)
    return np.asarray(kept).reshape(-1, 2, 3)


def object_motions(baseline: np.ndarray, seeds: np.ndarray, smooth: Callable[[np.ndarray], np.ndarray],
                   ctx: PairContext, box: Box, params: ThingParams, rng: np.random.Generator,
                   region: np.ndarray | None = None, window: tuple[slice, slice] | None = None,
                   carried: np.ndarray | None = None
                   ) -> tuple[list[np.ndarray], float, np.ndarray | None, np.ndarray,
                              tuple[np.ndarray, np.ndarray] | None, bool]:
    """The object layer's motion: one affine model, or several when the mask covers objects that touch.

    Sequential RANSAC: fit an affine model to the seeds, remove the seeds it explains, and fit another
    to the rest while a sizeable, coherent rest remains (at most ``max_object_motions``). Each model
    gets its own smooth residual; pixels choose a model by photometric + baseline-agreement cost,
    smoothed by ``smooth`` (an edge-aware filter of maps over ``window``, slices of the box: the part
    where the choice matters; default the whole box; outside it the first model stays). Each model is
    refined photometrically over its seeds, closed, within ``region`` (h, w; default: the seeds).
    ``baseline`` (h, w, 2) is the baseline flow over the box, ``ctx`` the pair. ``carried`` (2, 3),
    optional (video mode): the object's motion in the last pair; where one model was found and the
    carried one explains the object (``region``) better, it replaces it, refined over the object.

    Returns (affine models, share of seeds explained, object flow (h, w, 2) or None, per-pixel model
    index (h, w), when several models compete :func:`photometric_error` of the object flow over the
    window, else None, and whether the model is the carried one).
    """
    seeds_region = region if region is not None else seeds
    affines, supports = _sequential_affines(baseline, seeds, box, params, rng)
    share = _explained_share(supports, seeds)
    affines = _polished_motions(affines, supports, seeds_region, box, ctx.gray, params, rng)
    # Video mode: the object's last motion, refined over the whole object, replaces this pair's motion
    # where it explains the object better, and stands in where the baseline's matches gave none (too
    # few confident pixels: its evidence is photometric, which the thing's gate judges, so its share
    # of the baseline's matches counts as full).
    took_carried = _takes_carried(carried, affines, seeds_region, box, ctx.gray, params)
    if took_carried:
        share = share if affines else 1.0
        affines = [polish_affine(carried, seeds_region, box, ctx.gray, params, rng)]
        supports = [_explained(baseline, affines[0], seeds, box, params)]
    index = np.zeros(seeds.shape, np.int32)
    if not affines:
        return [], 0.0, None, index, None, False
    flows = [layer_flow(baseline, a, s, box, params) for a, s in zip(affines, supports)]
    if len(flows) == 1:
        return affines, share, flows[0], index, None, took_carried
    sy, sx = window if window is not None else (slice(0, seeds.shape[0]), slice(0, seeds.shape[1]))
    errors = motion_errors(flows, ctx, box, (sy, sx))
    index[sy, sx] = choose_motions(flows, errors, baseline, smooth, ctx, box, (sy, sx), params, region)
    flow, error = composed_flow(flows, errors, index[sy, sx], (sy, sx))
    return affines, share, flow, index, error, False


def _sequential_affines(baseline: np.ndarray, seeds: np.ndarray, box: Box, params: ThingParams,
                        rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Sequential RANSAC on the ``seeds`` (h, w): up to ``params.max_object_motions`` affine maps
    (2, 3), each fitted (:func:`fit_seed_affine`) to the seeds the ones before left unexplained, and
    the seeds (h, w) each explains (:func:`_explained`). A second or later map must have an inlier share
    of at least ``min_inlier_share`` and explain ``min_motion_share`` of all the seeds; the search stops
    once fewer seeds than that (or than ``min_points``) remain."""
    remaining = seeds.copy()
    total = max(int(seeds.sum()), 1)
    affines, supports = [], []
    for k in range(params.max_object_motions):
        affine, share = fit_seed_affine(baseline, remaining, box, params, rng)
        if affine is None or (k > 0 and share < params.min_inlier_share):
            break
        explained = _explained(baseline, affine, remaining, box, params)
        if k > 0 and explained.sum() < params.min_motion_share * total:
            break
        affines.append(affine)
        supports.append(explained)
        remaining &= ~explained
        if remaining.sum() < max(params.min_points, params.min_motion_share * total):
            break
    return affines, supports


def _explained_share(supports: list[np.ndarray], seeds: np.ndarray) -> float:
    """The share of the ``seeds`` (h, w) that the ``supports`` (h, w) (disjoint) explain together."""
    total = max(int(seeds.sum()), 1)
    return float(sum(int(s.sum()) for s in supports)) / total


def _polished_motions(affines: list[np.ndarray], supports: list[np.ndarray], region: np.ndarray, box: Box,
                      gray: GrayFrames, params: ThingParams, rng: np.random.Generator) -> list[np.ndarray]:
    """Each affine map (2, 3) refined by :func:`polish_affine` over its support (h, w), closed (5x5),
    within ``region`` (h, w)."""
    closed = [cv2.morphologyEx(s.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8)).astype(bool)
              & region for s in supports]
    return [polish_affine(a, c, box, gray, params, rng) for a, c in zip(affines, closed)]


def _takes_carried(carried: np.ndarray | None, affines: list[np.ndarray], region: np.ndarray, box: Box,
                   gray: GrayFrames, params: ThingParams) -> bool:
    """Whether the ``carried`` motion (2, 3), if any, replaces the ``affines`` found: where there is at
    most one, the object (``region`` (h, w)) has ``min_points`` pixels, and the carried motion explains
    it photometrically better than the one found, or none was found."""
    return bool(carried is not None and len(affines) <= 1 and region.sum() >= params.min_points
                and (not affines or _explains_better(carried, affines[0], region, box, gray)))


def _correlations(gray1: np.ndarray, gray2: np.ndarray, mask: np.ndarray, origin: tuple[int, int],
                  centre: tuple[int, int], radius: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Zero-mean normalised correlation of frame 1 under ``mask`` (h, w; its top-left pixel at
    ``origin`` (y, x), full-image) with frame 2 at every whole shift within ``radius`` px of ``centre``
    (dx, dy) that keeps the object inside frame 2. Returns the map (rows: dy, columns: dx; -1 where
    undefined) and the shift (dx, dy) of its element [0, 0]."""
    height, width = gray2.shape
    h, w = mask.shape
    y, x = origin
    sx0, sy0 = max(centre[0] - radius, -x), max(centre[1] - radius, -y)
    sx1, sy1 = min(centre[0] + radius, width - w - x), min(centre[1] + radius, height - h - y)
    if sx1 < sx0 or sy1 < sy0:
        return np.full((1, 1), -1.0, np.float32), (0, 0)
    search = gray2[y + sy0:y + sy1 + h, x + sx0:x + sx1 + w]
    template = gray1[y:y + h, x:x + w]
    scores = cv2.matchTemplate(search, template, cv2.TM_CCOEFF_NORMED, mask=mask.astype(np.float32))
    return np.nan_to_num(scores, nan=-1.0, posinf=-1.0, neginf=-1.0), (sx0, sy0)


def searched_motion(mask: np.ndarray, box: Box, gray: GrayFrames, around: np.ndarray, claimed: np.ndarray,
                    params: ThingParams) -> tuple[np.ndarray | None, float]:
    """The object's translation found by matching the object itself, for a thing the baseline is not
    confident on (it often missed it whole: a thing moving 15-30 px against its surroundings).

    Frame 1's pixels under ``mask`` (h, w, over ``box``) are correlated (zero-mean, normalised:
    OpenCV's masked ``matchTemplate``) with frame 2 at every whole-pixel shift within
    ``params.search_radius`` px of ``around`` (2,) (u, v) px, the surroundings' motion. Returns the
    translation as an affine map (2, 3) and its correlation when that is at least ``params.search_ncc``
    and beats the correlation at ``claimed`` (2,), the baseline's flow on the object, by
    ``params.search_margin`` and every shift more than 3 px from it by ``params.search_unique``, and
    frame 2's pixels there, matched back into frame 1 the same way, match
    best where the object is (within 1 px); else None and the best correlation. Objects whose gray
    levels under the mask vary by less than ``params.search_contrast`` (a standard deviation) are not
    searched.
    """
    ys, xs = np.nonzero(mask)
    if len(ys) < params.min_points:
        return None, float("nan")
    top, left = int(ys.min()), int(xs.min())
    tight = mask[top:ys.max() + 1, left:xs.max() + 1]
    origin = (box[0] + top, box[2] + left)
    if float(gray.gray1[box[0]:box[1], box[2]:box[3]][mask].std()) < params.search_contrast:
        return None, float("nan")
    centre = (int(round(float(around[0]))), int(round(float(around[1]))))
    scores, (dx0, dy0) = _correlations(gray.gray1, gray.gray2, tight, origin, centre, params.search_radius)
    iy, ix = np.unravel_index(int(scores.argmax()), scores.shape)
    best = float(scores[iy, ix])
    claim = (int(round(float(claimed[0]))), int(round(float(claimed[1]))))
    at_claim = float(_correlations(gray.gray1, gray.gray2, tight, origin, claim, 0)[0][0, 0])
    apart = scores.copy()
    apart[max(0, iy - 3):iy + 4, max(0, ix - 3):ix + 4] = -1.0
    if best < params.search_ncc or best < at_claim + params.search_margin \
            or best < float(apart.max()) + params.search_unique:
        return None, best
    shift = (int(ix + dx0), int(iy + dy0))
    # Both ways: what frame 2 shows there, matched back into frame 1, must come from the object (a
    # thing hidden in frame 2 otherwise matches some look-alike, which itself came from elsewhere).
    back, (bx0, by0) = _correlations(gray.gray2, gray.gray1, tight, (origin[0] + shift[1], origin[1] + shift[0]),
                                     (-shift[0], -shift[1]), params.search_radius)
    jy, jx = np.unravel_index(int(back.argmax()), back.shape)
    if abs(jx + bx0 + shift[0]) > 1 or abs(jy + by0 + shift[1]) > 1:
        return None, best
    return np.array([[1.0, 0.0, float(shift[0])], [0.0, 1.0, float(shift[1])]]), best
