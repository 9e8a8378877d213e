"""Things: a local two-layer model in a padded box around each object instance (Sevilla-Lara et al. 2016).

Inside the box there are two layers, the object in front of its background (the depth order comes
from semantics: a thing occludes what is behind it). Per layer:

1. a robust affine motion, fitted with RANSAC to the baseline flow's confident pixels of that layer
   (pixels near the mask boundary, where baselines smear motion, are left out), then refined by
   robust Gauss-Newton on brightness constancy over the layer's pixels, so that it does not inherit
   the baseline's small biases (a mask may also hold several touching objects: then several affine
   motions are found by sequential RANSAC, see :func:`object_motions`);
2. a smooth per-pixel residual on top of the affine motion: the minimiser of a quadratic energy,
   data term = the baseline's deviation from the affine motion on the layer's own pixels, smoothness
   term = squared gradient, solved on a coarse grid (sparse linear system) and upsampled. The layer's
   flow is therefore defined over the whole box, and each layer only ever sees its own pixels.

The pixel-to-layer assignment starts from the mask and is refined in a band around its boundary by
cost-volume filtering (an edge-aware smoothed winner-take-all, a fast stand-in for a graph cut):
per-pixel cost of each layer = photometric error under the layer's motion + colour likelihood
(histograms of the layers' colours) + a prior pulling toward the given mask.

Evidence first: an instance keeps the baseline without a fit when the baseline already explains its
padded box photometrically (a cheap check), or when the baseline is confident on too little of the
object (the motions are fitted to confident pixels only; unconfident flow is no evidence).

Occlusion: the object's pixels are mapped forward with the object's motion; background pixels whose
own (background) motion lands on the object in frame t+1 are covered there. They are marked occluded
and keep the background layer's motion (their photometric error says nothing, so it is ignored).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import scipy.linalg as sla

from semflow.layers.common import (
    Region,
    dilate,
    erode,
    gray_frames,
    magnitude,
    photometric_error,
    refine_warp,
    sample_at,
    subsample_points,
)
from semflow.warp import pixel_grid


@dataclass
class ThingParams:
    """Settings of the thing model. Distances in pixels, errors in grey levels (0-255)."""

    min_area: int = 150
    """Instances smaller than this keep the baseline."""
    pad_fraction: float = 0.35
    """Box padding as a fraction of the instance's larger side..."""
    min_pad: int = 12
    max_pad: int = 80
    min_confidence: float = 0.5
    max_points: int = 2000
    ransac_threshold: float = 1.0
    min_points: int = 30
    min_inlier_share: float = 0.4
    min_seed_share: float = 0.2
    """The object's motion is fitted to the baseline's confident pixels; an instance where they cover
    less than this share of the (eroded) mask keeps the baseline."""
    max_object_motions: int = 3
    """A thing mask may cover touching objects: up to this many affine motions are fitted inside it..."""
    min_motion_share: float = 0.1
    """...each explaining at least this share of the mask's usable pixels."""
    agreement_weight: float = 3.0
    """Cost (grey levels per px, up to residual_cap) of a motion's disagreement with the baseline."""
    boundary_margin: int = 3
    """Pixels this close to the mask boundary are not used to fit either layer's motion."""
    residual_cap: float = 3.0
    """Baseline deviations from the affine motion larger than this (px) are outliers, not residual."""
    residual_deadzone: float = 0.25
    """Baseline deviations are shrunk by this much (px) before they feed the residual."""
    photometric_refinement: bool = True
    """Refine each RANSAC affine motion by robust Gauss-Newton on brightness constancy over its pixels."""
    refine_points: int = 4000
    """The photometric refinement uses at most this many pixels (an affine motion has 6 parameters)."""
    explained_error: float = 4.0
    """An instance whose padded box the baseline already explains, i.e. whose 99th percentile of the
    baseline's 7x7-mean photometric error is below this (grey levels), keeps the baseline without a
    fit: no model could be shown clearly better there."""
    residual_smoothness: float = 30.0
    """Weight of the residual's smoothness term relative to one pixel of data."""
    residual_grid: int = 4
    """The residual is solved on a grid this many times coarser than the image..."""
    residual_cells: int = 2500
    """...or coarser still in large boxes, so that the grid has at most about this many cells."""
    context_preference: float = 0.05
    """The surrounding models are the background layer unless the local affine explains this much more."""
    refine_band: float = 0.12
    """Half-width of the band where the assignment may change, as a fraction of the instance size..."""
    min_band: int = 3
    max_band: int = 12
    colour_weight: float = 4.0
    """Cost (grey levels) per nat of colour log-likelihood ratio."""
    prior_weight: float = 12.0
    """Cost (grey levels) of assigning a pixel against the mask at the band's edge."""
    filter_radius: int = 4
    filter_eps: float = 0.01
    change_threshold: float = 0.5
    """The model is judged on the visible pixels where it moves the flow by more than this (px)."""
    error_slack: float = 0.0
    """The model is used when its per-pixel photometric error, minus the baseline's, has a median no
    higher than this (grey levels) over the pixels it is judged on."""


@dataclass
class ThingFit:
    """The two-layer model of one thing instance, over its padded box (h, w).

    ``fg_affine``/``bg_affine`` (2, 3) map full-image frame-1 pixels to frame 2 (None when a layer
    had too few usable pixels: the background layer then falls back to the baseline, and the model
    is not accepted without an object layer; ``bg_affine`` is also None when the background layer
    is the context flow, i.e. the surrounding plane models). ``foreground`` (h, w) bool is the refined object mask;
    ``occluded`` (h, w) bool marks background pixels covered by the object in frame t+1.
    ``fg_flow``/``bg_flow``/``flow`` (h, w, 2) are the layer flows and their composition (with several
    object motions, ``fg_flow`` follows the first one away from the mask, beyond the assignment's reach).
    ``others`` (h, w) bool: pixels of other things inside the box (the model leaves them alone).
    """

    region: Region
    instance_id: int
    box: tuple[int, int, int, int]
    fg_affine: np.ndarray | None
    bg_affine: np.ndarray | None
    fg_inlier_share: float
    bg_inlier_share: float
    foreground: np.ndarray
    occluded: np.ndarray
    others: np.ndarray
    fg_flow: np.ndarray
    bg_flow: np.ndarray
    flow: np.ndarray
    model_error: float
    baseline_error: float
    accepted: bool
    reason: str
    error: np.ndarray | None = None
    """(h, w) photometric error of ``flow`` (grey levels, see :func:`photometric_error`), when computed."""


class GuidedSmoother:
    """Edge-aware smoothing of maps (h, w): a guided filter (``filter_radius``, ``filter_eps`` of the
    params) on ``guide`` (frame 1 over a box, RGB (h, w, 3) in [0, 255]), its statistics computed once."""

    def __init__(self, guide: np.ndarray, params: ThingParams) -> None:
        self._filter = cv2.ximgproc.createGuidedFilter((guide / 255.0).astype(np.float32), params.filter_radius,
                                                       params.filter_eps)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """``values`` (h, w) smoothed, float32."""
        return self._filter.filter(values.astype(np.float32))


def affine_flow(affine: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
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


def polish_affine(affine: np.ndarray, support: np.ndarray, box: tuple[int, int, int, int],
                  gray: tuple[np.ndarray, ...] | None, params: ThingParams,
                  rng: np.random.Generator) -> np.ndarray:
    """The affine motion refined photometrically over ``support`` (h, w) when that lowers the error."""
    if gray is None or not params.photometric_refinement or support.sum() < params.min_points:
        return affine
    refined = refine_warp(gray[0], gray[1], affine, support, box, rng=rng,
                          max_points=params.refine_points, target=gray[2] if len(gray) > 2 else None)
    if refined is None:
        return affine
    y0, _, x0, _ = box
    ys, xs = np.nonzero(support)
    x, y = (xs + x0).astype(np.float32), (ys + y0).astype(np.float32)
    g1 = gray[0][ys + y0, xs + x0]

    def error(a: np.ndarray) -> float:
        """Mean capped grey-level error over the support under the affine map ``a``."""
        a32 = a.astype(np.float32)  # as affine_flow computes it
        mx = x + (a32[0, 0] * x + a32[0, 1] * y + a32[0, 2] - x)
        my = y + (a32[1, 0] * x + a32[1, 1] * y + a32[1, 2] - y)
        warped = sample_at(gray[1], mx, my)
        return float(np.minimum(np.abs(warped - g1), 40.0).mean())

    return refined if error(refined) < error(affine) else affine


def fit_seed_affine(baseline: np.ndarray, seeds: np.ndarray, box: tuple[int, int, int, int],
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
    coarse = sla.solveh_banded(upper, cell_r.reshape(n, 2).astype(np.float64), check_finite=False)
    coarse = coarse.reshape(rows, band, 2)
    if transpose:
        coarse = coarse.transpose(1, 0, 2)
    # Cell centres sit at (k + 0.5) * grid - 0.5 in fine pixels; resize maps them so.
    fine = cv2.resize(coarse.astype(np.float32), (gw * grid, gh * grid), interpolation=cv2.INTER_LINEAR)
    return fine[:h, :w]


def layer_flow(baseline: np.ndarray, affine: np.ndarray, support: np.ndarray, box: tuple[int, int, int, int],
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


def layer_motion(baseline: np.ndarray, seeds: np.ndarray, box: tuple[int, int, int, int],
                 params: ThingParams, rng: np.random.Generator,
                 gray: tuple[np.ndarray, ...] | None = None
                 ) -> tuple[np.ndarray | None, float, np.ndarray | None]:
    """Affine motion + smooth residual of one layer from its seed pixels (h, w) inside the box.

    Returns (affine or None, inlier share, layer flow (h, w, 2) or None).
    """
    affine, share = fit_seed_affine(baseline, seeds, box, params, rng)
    if affine is None:
        return None, 0.0, None
    affine = polish_affine(affine, seeds, box, gray, params, rng)
    return affine, share, layer_flow(baseline, affine, seeds, box, params)


def object_motions(baseline: np.ndarray, seeds: np.ndarray, smooth: GuidedSmoother, img1: np.ndarray,
                   img2: np.ndarray, box: tuple[int, int, int, int], params: ThingParams,
                   rng: np.random.Generator, gray: tuple[np.ndarray, ...] | None = None,
                   region: np.ndarray | None = None, window: tuple[slice, slice] | None = None
                   ) -> tuple[list[np.ndarray], float, np.ndarray | None, np.ndarray,
                              tuple[np.ndarray, np.ndarray] | None]:
    """The object layer's motion: one affine model, or several when the mask covers objects that touch.

    Sequential RANSAC: fit an affine model to the seeds, remove the seeds it explains, and fit another
    to the rest while a sizeable, coherent rest remains (at most ``max_object_motions``). Each model
    gets its own smooth residual; pixels choose a model by photometric + baseline-agreement cost,
    smoothed by ``smooth`` (a guided filter on frame 1 over ``window``, slices of the box: the part
    where the choice matters; default the whole box; outside it the first model stays). Each model is
    refined photometrically (``gray``) over its seeds, closed, within ``region`` (h, w; default: the
    seeds). Returns (affine models, share of seeds explained, object flow (h, w, 2) or None, per-pixel
    model index (h, w), and, when several models compete, :func:`photometric_error` of the object flow
    over the window, else None).
    """
    y0, _, x0, _ = box
    remaining = seeds.copy()
    seeds_region = region if region is not None else seeds
    total = max(int(seeds.sum()), 1)
    affines, supports = [], []
    for k in range(params.max_object_motions):
        affine, share = fit_seed_affine(baseline, remaining, box, params, rng)
        if affine is None or (k > 0 and share < params.min_inlier_share):
            break
        deviation = magnitude(baseline - affine_flow(affine, box))
        explained = remaining & (deviation < 2 * params.ransac_threshold)
        if k > 0 and explained.sum() < params.min_motion_share * total:
            break
        affines.append(affine)
        supports.append(explained)
        remaining &= ~explained
        if remaining.sum() < max(params.min_points, params.min_motion_share * total):
            break
    index = np.zeros(seeds.shape, np.int32)
    if not affines:
        return [], 0.0, None, index, None
    share = float(sum(int(s.sum()) for s in supports)) / total
    closed = [cv2.morphologyEx(s.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8)).astype(bool)
              & seeds_region for s in supports]
    affines = [polish_affine(a, c, box, gray, params, rng) for a, c in zip(affines, closed)]
    flows = [layer_flow(baseline, a, s, box, params) for a, s in zip(affines, supports)]
    if len(flows) == 1:
        return affines, share, flows[0], index, None
    sy, sx = window if window is not None else (slice(0, seeds.shape[0]), slice(0, seeds.shape[1]))
    costs, errors = [], []
    for flow in flows:
        err, inside = photometric_error(img1, img2, flow[sy, sx], x0 + sx.start, y0 + sy.start)
        agree = np.minimum(magnitude(baseline[sy, sx] - flow[sy, sx]), params.residual_cap)
        cost = np.where(inside, err, 0.0) + params.agreement_weight * agree
        costs.append(smooth(cost))
        errors.append((err, inside))
    index[sy, sx] = np.argmin(np.stack(costs), axis=0)
    flow = flows[0].copy()
    err, inside = (a.copy() for a in errors[0])
    for k in range(1, len(flows)):  # the error of a pixel depends on its own flow only
        chosen = index[sy, sx] == k
        np.copyto(flow[sy, sx], flows[k][sy, sx], where=chosen[..., None])
        np.copyto(err, errors[k][0], where=chosen)
        np.copyto(inside, errors[k][1], where=chosen)
    return affines, share, flow, index, (err, inside)


def covered_by(fg: np.ndarray, fg_flow: np.ndarray, bg_flow: np.ndarray, box: tuple[int, int, int, int],
               shape: tuple[int, int]) -> np.ndarray:
    """Background pixels (h, w) whose background motion lands on the object in frame t+1.

    The object in frame t+1 is found by splatting its pixels forward (to the 4 nearest pixels, so
    that a slightly expanding object leaves no holes) and closing the result.
    """
    y0, _, x0, _ = box
    height, width = shape
    x, y = pixel_grid(*fg.shape, x0, y0)
    covered = np.zeros(fg.shape, bool)
    fx = (x + fg_flow[..., 0])[fg]
    fy = (y + fg_flow[..., 1])[fg]
    xs, ys = [], []  # the 4 pixels around each landing point, inside the frame
    for ox in (np.floor(fx), np.ceil(fx)):
        for oy in (np.floor(fy), np.ceil(fy)):
            ok = (ox >= 0) & (ox < width) & (oy >= 0) & (oy < height)
            xs.append(ox[ok].astype(int))
            ys.append(oy[ok].astype(int))
    px, py = np.concatenate(xs), np.concatenate(ys)
    if px.size == 0:
        return covered
    # The splat lives in a window 2 px wider than the landing points on each side, so that closing
    # it gives what closing it in a whole-frame canvas would.
    wx0, wx1 = max(0, int(px.min()) - 2), min(width, int(px.max()) + 3)
    wy0, wy1 = max(0, int(py.min()) - 2), min(height, int(py.max()) + 3)
    target = np.zeros((wy1 - wy0, wx1 - wx0), np.uint8)
    target[py - wy0, px - wx0] = 1
    target = cv2.morphologyEx(target, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    bx = np.round(x + bg_flow[..., 0]).astype(int)
    by = np.round(y + bg_flow[..., 1]).astype(int)
    ok = (bx >= wx0) & (bx < wx1) & (by >= wy0) & (by < wy1) & ~fg
    covered[ok] = target[by[ok] - wy0, bx[ok] - wx0] > 0
    return covered


def colour_log_ratio(image: np.ndarray, fg_seeds: np.ndarray, bg_seeds: np.ndarray, bins: int = 8
                     ) -> np.ndarray:
    """log p(colour | object) - log p(colour | background) per pixel (h, w), from RGB histograms."""
    q = np.clip(image / (256.0 / bins), 0, bins - 1).astype(np.int32)
    code = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    n = bins ** 3
    h_fg = np.bincount(code[fg_seeds], minlength=n).astype(np.float64) + 1.0
    h_bg = np.bincount(code[bg_seeds], minlength=n).astype(np.float64) + 1.0
    ratio = np.log(h_fg / h_fg.sum()) - np.log(h_bg / h_bg.sum())
    return np.clip(ratio[code], -4.0, 4.0).astype(np.float32)


CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


def open_cross(mask: np.ndarray) -> np.ndarray:
    """Binary opening (h, w) bool by the 3x3 cross, pixels outside the image counting as background
    (as ``scipy.ndimage.binary_opening`` does)."""
    m = mask.astype(np.uint8)
    m = cv2.erode(m, CROSS, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return cv2.dilate(m, CROSS, borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` (h, w) bool with its holes filled: background not 4-connected to the image border."""
    count, labelled = cv2.connectedComponents((~mask).astype(np.uint8), connectivity=4)
    outside = np.zeros(count, bool)  # per background component: does it touch the border?
    outside[np.concatenate([labelled[0], labelled[-1], labelled[:, 0], labelled[:, -1]])] = True
    outside[0] = False  # label 0 is the mask itself
    return ~outside[labelled]


def refine_assignment(mask: np.ndarray, cost_fg: np.ndarray, cost_bg: np.ndarray, smooth: GuidedSmoother,
                      band: float, params: ThingParams) -> np.ndarray:
    """Refine the object mask inside a band around its boundary by cost-volume filtering.

    ``cost_fg``/``cost_bg`` (h, w) are per-pixel costs of each layer; a prior pulling toward ``mask``
    grows linearly with the distance from its boundary. The cost difference is smoothed by ``smooth``
    (a guided filter on frame 1 over the box) and the cheaper layer wins.
    """
    inside = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    outside = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 3)
    signed = inside - outside  # > 0 inside the mask
    prior = params.prior_weight * np.clip(signed / band, -1.0, 1.0)
    smoothed = smooth(cost_fg - cost_bg - prior)
    in_band = np.abs(signed) <= band
    refined = np.where(in_band, smoothed < 0, mask)
    refined = fill_holes(open_cross(refined))
    # Keep only the parts connected to the mask's core.
    count, labelled = cv2.connectedComponents(refined.astype(np.uint8), connectivity=4)
    core = erode(mask, 1) & refined
    if count > 2 and core.any():
        keep = np.zeros(count, bool)
        keep[labelled[core]] = True
        keep[0] = False
        refined = keep[labelled]
    return refined if refined.any() else mask


def window_around(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
    """Slices of the bounding box of ``mask`` (h, w) grown by ``margin`` px, clipped to the mask's array."""
    ys, xs = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    h, w = mask.shape
    if ys.size == 0:
        return slice(0, h), slice(0, w)
    return (slice(max(0, ys[0] - margin), min(h, ys[-1] + 1 + margin)),
            slice(max(0, xs[0] - margin), min(w, xs[-1] + 1 + margin)))


def thing_box(region: Region, baseline: np.ndarray, params: ThingParams) -> tuple[int, int, int, int]:
    """The padded box (y0, y1, x0, x1) around an instance: padding grows with its size and motion."""
    height, width = baseline.shape[:2]
    ys, xs = np.nonzero(region.mask)
    ry0, rx0 = region.box[0], region.box[2]
    y0, y1 = ry0 + ys.min(), ry0 + ys.max() + 1
    x0, x1 = rx0 + xs.min(), rx0 + xs.max() + 1
    motion = magnitude(baseline[y0:y1, x0:x1])
    pad = max(params.pad_fraction * max(y1 - y0, x1 - x0), params.min_pad,
              1.5 * float(np.percentile(motion, 95)))
    pad = int(min(pad, params.max_pad))
    return max(0, y0 - pad), min(height, y1 + pad), max(0, x0 - pad), min(width, x1 + pad)


def fit_thing(region: Region, instance_id: int, instances: np.ndarray, thing_pixels: np.ndarray,
              img1: np.ndarray, img2: np.ndarray, baseline: np.ndarray, confidence: np.ndarray,
              baseline_error: np.ndarray, params: ThingParams, rng: np.random.Generator,
              context: np.ndarray | None = None, gray: tuple[np.ndarray, ...] | None = None
              ) -> ThingFit:
    """Fit the two-layer model of one instance.

    ``instances`` (H, W) int32 holds instance ids (``instance_id`` for this one); ``thing_pixels``
    (H, W) bool marks all pixels of any thing class. Images are float32 RGB full frames; ``baseline``,
    ``confidence`` and ``baseline_error`` are full-image maps. ``context`` (H, W, 2), optional: the flow
    of the models fitted so far (planes over the baseline), a candidate for the background layer.
    ``gray``, optional: both frames as float32 gray (and, third, :func:`~semflow.layers.common.warp_target`
    of frame 2), for the photometric refinement of the motions.
    """
    box = thing_box(region, baseline, params)
    y0, y1, x0, x1 = box
    shape = baseline.shape[:2]
    base = baseline[y0:y1, x0:x1]
    conf = confidence[y0:y1, x0:x1] >= params.min_confidence
    mask = instances[y0:y1, x0:x1] == instance_id
    others = thing_pixels[y0:y1, x0:x1] & ~mask
    size = region.size
    m = params.boundary_margin
    base_err_box = baseline_error[y0:y1, x0:x1]
    fg_affine = bg_affine = None
    fg_share = bg_share = 0.0

    def rejected(reason: str) -> ThingFit:
        empty = np.zeros(mask.shape, bool)
        return ThingFit(region, instance_id, box, fg_affine, bg_affine, fg_share, bg_share, mask, empty,
                        others, base, base, base, float("nan"), float(base_err_box[mask].mean()),
                        False, reason)

    # Cheap check first: where the baseline explains the whole box, it stays.
    explained = float(np.percentile(cv2.blur(base_err_box, (7, 7)), 99))
    if explained < params.explained_error:
        return rejected(f"the baseline explains the box (99th percentile error {explained:.2f}"
                        f" < {params.explained_error})")

    core = erode(mask, m)
    fg_seeds = core & conf
    if fg_seeds.sum() < params.min_seed_share * core.sum():
        # The baseline is confident on too little of the object: an affine motion fitted there would
        # be an extrapolation over the rest of it, and the baseline's unconfident flow is no evidence.
        return rejected(f"baseline confident on {fg_seeds.sum() / max(core.sum(), 1):.2f} of the object"
                        f" (< {params.min_seed_share})")
    bg_seeds = ~dilate(mask, m + 1) & ~dilate(others, 2) & conf
    if bg_seeds.sum() < params.min_points:
        bg_seeds = ~dilate(mask, m + 1) & ~dilate(others, 2)

    guide = img1[y0:y1, x0:x1]
    # The object layer matters only near the mask: the assignment moves the outline by up to `band`
    # px, and each guided filter (radius r) reads 2r px around a pixel; one chooses among the object's
    # motions, one refines the assignment. Both work in this window of the box.
    band = float(np.clip(params.refine_band * size, params.min_band, params.max_band))
    win = window_around(mask, int(np.ceil(band)) + 4 * params.filter_radius + 2)
    wy0, wx0 = y0 + win[0].start, x0 + win[1].start
    wbox = (wy0, y0 + win[0].stop, wx0, x0 + win[1].stop)
    smooth = GuidedSmoother(guide[win], params)
    fg_affines, fg_share, fg_flow, _, fg_error = object_motions(base, fg_seeds, smooth, img1, img2, box, params,
                                                                rng, gray, erode(mask, 1), window=win)
    fg_affine = fg_affines[0] if fg_affines else None
    if fg_flow is None:
        return rejected("too few object pixels to fit a motion")
    if fg_share < params.min_inlier_share:
        return rejected(f"object inlier share {fg_share:.2f} < {params.min_inlier_share}")
    # Background pixels the object covers in frame t+1 have no true match in the baseline: they are
    # found with a first, plain RANSAC fit of the background's motion and left out of its final fit.
    first, _ = fit_seed_affine(base, bg_seeds, box, params, rng)
    if first is not None:
        strip = covered_by(mask, fg_flow, affine_flow(first, box), box, shape)
        if strip.any() and (bg_seeds & ~strip).sum() >= params.min_points:
            bg_seeds = bg_seeds & ~strip
    bg_affine, bg_share, bg_flow = layer_motion(base, bg_seeds, box, params, rng, gray)
    if context is not None and bg_seeds.any():
        # The background may be better described by the models already fitted around the object
        # (a plane's homography, checked on its own): use them as the background layer unless the
        # local affine model explains clearly more of the background's pixels.
        ctx = context[y0:y1, x0:x1]
        ctx_share = float((magnitude(base - ctx)[bg_seeds] < 2 * params.ransac_threshold).mean())
        affine_share = float((magnitude(base - bg_flow)[bg_seeds] < 2 * params.ransac_threshold)
                             .mean()) if bg_flow is not None else 0.0
        if ctx_share >= affine_share - params.context_preference:
            bg_affine, bg_share, bg_flow = None, ctx_share, ctx
    if bg_flow is None:
        bg_flow = base  # no usable background: it keeps the baseline

    err_bg, in_bg = photometric_error(img1, img2, bg_flow, x0, y0)
    # The object layer's error, in the window (outside it the object is never used).
    if fg_error is None:
        fg_error = photometric_error(img1, img2, fg_flow[win], wx0, wy0)
    err_fg, in_fg = err_bg.copy(), in_bg.copy()
    err_fg[win], in_fg[win] = fg_error

    # Refine the assignment in a band around the mask; occluded background says nothing photometric.
    covered = covered_by(mask[win], fg_flow[win], bg_flow[win], wbox, shape)
    cost_fg = np.where(in_fg[win], err_fg[win], err_bg[win])
    cost_bg = np.where(in_bg[win] & ~covered, err_bg[win], cost_fg)
    colour = colour_log_ratio(guide, erode(mask, m), bg_seeds | (~dilate(mask, m + 1) & ~others))[win]
    cost_fg = cost_fg - 0.5 * params.colour_weight * colour
    cost_bg = cost_bg + 0.5 * params.colour_weight * colour
    foreground = np.zeros_like(mask)
    foreground[win] = refine_assignment(mask[win], cost_fg, cost_bg, smooth, band, params)
    foreground &= ~others
    occluded = covered_by(foreground, fg_flow, bg_flow, box, shape)

    flow = np.where(foreground[..., None], fg_flow, bg_flow)
    judged = ~occluded & ~others & np.where(foreground, in_fg, in_bg)
    if not judged.any():
        return rejected("no visible pixels to judge the model")
    # Judge away from the object's outline, where occlusions (as wide as the relative motion) make
    # photometric errors meaningless, and where the model changes the flow: elsewhere both explain
    # the frames equally, and those pixels would only dilute the comparison.
    relative = magnitude(fg_flow - bg_flow)[foreground]
    reach = int(np.ceil(np.percentile(relative, 95))) + 2 if relative.size else 2
    outline = dilate(foreground, reach) & ~erode(foreground, 2)
    if (judged & ~outline).sum() >= params.min_points:
        judged = judged & ~outline
    changed = judged & (magnitude(flow - base) > params.change_threshold)
    if changed.sum() >= params.min_points:
        judged = changed
    # A median, not a mean: occlusions by other objects that no model here knows about leave a
    # minority of pixels with meaningless, large errors.
    model_pixels = np.where(foreground, err_fg, err_bg)[judged]
    base_pixels = base_err_box[judged]
    model_err, base_err = float(np.median(model_pixels)), float(np.median(base_pixels))
    worse = float(np.median(model_pixels - base_pixels))
    if worse > params.error_slack:
        fit = rejected(f"median photometric error {worse:.2f} above the baseline's")
        fit.model_error = model_err
        return fit
    return ThingFit(region, instance_id, box, fg_affine, bg_affine, fg_share, bg_share, foreground,
                    occluded, others, fg_flow, bg_flow, flow, model_err, base_err, True, "ok",
                    error=np.where(foreground, err_fg, err_bg))


def fit_things(regions: list[Region], instances: np.ndarray, thing_pixels: np.ndarray, img1: np.ndarray,
               img2: np.ndarray, baseline: np.ndarray, confidence: np.ndarray, baseline_error: np.ndarray,
               params: ThingParams | None = None, *, context: np.ndarray | None = None,
               seed: int = 0, gray: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> list[ThingFit]:
    """:func:`fit_thing` for each instance region; ``regions[k]`` has instance id ``k + 1``.

    Instances smaller than ``params.min_area`` are skipped. ``gray``: :func:`~semflow.layers.common.gray_frames`
    of the frames, if the caller has it already.
    """
    params = params or ThingParams()
    rng = np.random.default_rng(seed)
    gray = gray if gray is not None else gray_frames(img1, img2)
    fits = []
    for k, region in enumerate(regions, start=1):
        if region.area >= params.min_area:
            fits.append(fit_thing(region, k, instances, thing_pixels, img1, img2, baseline, confidence,
                                  baseline_error, params, rng, context, gray))
    return fits
