"""Motion models of one thing region from sparse matches: NCC patch matches of its own
(:func:`patch_matches`) and multi-model affine fitting with a label cost (:func:`fit_motions`). The
matches of what the first motions leave unexplained are :mod:`semflow.layers.part_match`.
The assignment of pixels to these motions is :mod:`semflow.layers.motions`.

Coordinates: boxes are (y0, y1, x0, x1) in full-image pixels; affines (2, 3) map full-image frame-1
pixels to frame 2; points (N, 2) float32 (x, y) in px.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from semflow.fitting.morphology import erode
from semflow.warp import channel_sum, pixel_grid


@dataclass(frozen=True)
class MotionParams:
    """Settings of the motion split. Distances in px, costs in grey levels unless said otherwise."""

    patch: int = 13
    """Side of the square patches matched by normalised cross-correlation."""
    max_patches: int = 200
    """At most this many patch matches per region (on a regular grid inside it)..."""
    patch_step: int = 8
    """...spaced at least this far apart."""
    search: int = 40
    """Search radius around zero motion and around the baseline's motion."""
    min_ncc: float = 0.85
    """A patch match needs this correlation at its peak..."""
    min_peak_margin: float = 0.02
    """...and this much more than its best rival more than 2 px away."""
    max_baseline_points: int = 150
    """Confident baseline pixels sampled as matches."""
    inlier: float = 1.5
    """A match fits a motion when its residual is below this (the truncation of rho)."""
    label_cost: float = 0.025
    """A motion must explain this share of the matches (at least ``min_matches``) better than the others."""
    min_matches: int = 6
    max_motions: int = 5
    hypotheses: int = 200
    max_stretch: float = 1.5
    """An affine motion may stretch no direction by more than this factor, nor shrink one below its
    inverse (singular values of its linear part within [1 / max_stretch, max_stretch]): a rigid thing
    does not grow or shrink that much between two frames, but an affine fitted to a thin support (a car
    seen as a 10 px strip) can, and fit its few matches as well as the right one. Side by side
    (BENCHMARKS.md sections things and photo-scenes, rows ``no bound``): semantic's things EPE on the
    photo scenes -0.6 to -3.6 % with either baseline, on the hard scenes -4 % with discrete but +6 %
    with dis-medium (one scene: the bounded motion of the strip is 3 px off vertically, where the
    squashing one happened to fit it), KITTI, Sintel, Middlebury and Chairs within 0.4 % (0: no bound)."""
    truncation: float = 30.0
    """Photometric errors are truncated here."""
    agreement_weight: float = 1.0
    """Cost per px (up to 3 px) of a motion's disagreement with the baseline, times its confidence."""
    smoothness: float = 12.0
    """Potts weight between 4-neighbours of equal colour (lower across colour edges)."""
    occluded_cost: float = 6.0
    """Photometric cost of a pixel that a motion in front covers in frame t+1, under its own motion."""
    explained: float | None = 12.0
    """No motion explains a pixel when its error is at least this under every motion that keeps it in
    frame t+1 (as ``rematch_error``: a blend of colours on an outline, a pixel hidden in frame t+1).
    There, and for a motion that carries a pixel out of the frame, every motion costs the best one's
    (:func:`~semflow.layers.motions.photometric_costs`); None: every error counts, leaving costs half
    the truncation. Side by side, rows ``no ties`` of BENCHMARKS.md sections things, photo-scenes and
    sharpen (seed table): semantic's things EPE on the hard scenes 0.169 -> 0.149 with `discrete`. At
    8 a split of two discs 2.4 px apart was accepted on 6 of 24 seeds instead of 14; at 12, on 14."""
    rematch_error: float = 12.0
    """After a first fit, region pixels whose photometric error is above this under every motion found..."""
    rematch_pixels: int = 300
    """...get denser patch matches of their own when there are at least this many (a small object the
    first grid of patches and the baseline missed, e.g. a car behind parked ones), then the motions are
    fitted again (0: never)."""
    rematch_step: int = 4
    rematch_inlier: float = 1.25
    """The rematched matches' inlier distance (px; ``inlier`` if larger): a part is weakly textured or half
    hidden (a car seen as a strip behind parked ones: offsets scattered by 2-4 px). At 1.0, on ``discrete``
    without its boundary stages that car lost its motion (things EPE of the hard scenes 0.26 -> 0.47 px)."""
    rematch_tile: int = 16
    """A part that no one translation explains (a car half hidden by the one it passes) is searched for
    again in tiles of this side (px), each with at least half its pixels in the part and some texture
    (``rematch_contrast``); tiles that a translation explains, and whose match the reverse search
    confirms, give the matches (0: whole parts only). On the photo scenes it takes semantic[discrete]'s
    things EPE -17 % (development), -1.8 % (fresh), 0 (held-out), semantic[dis-medium]'s -6 %, -6 %, 0.
    (It was off while all things shared one random stream: it moved the draws of the regions fitted
    after it, which decided whether KITTI's car, moving 136 px, was fitted at all.)"""
    rematch_contrast: float = 4.0
    """A tile's grey levels (0-255) must vary by at least this (standard deviation)."""
    rematch_hidden_cost: float | None = None
    """Occlusion-aware rematch (:mod:`semflow.layers.part_match`): a part's template pixel that lands
    where the region's explained pixels land in frame t+1 costs this per colour channel (squared grey
    levels) instead of its squared difference, and the part's motion is refined on its pixels that land
    more than ``rematch_hidden_margin`` px from those (None: off; ``thing_params_for("discrete")``: 100)."""
    rematch_hidden_margin: int = 3
    cycles: int = 1
    """Alpha-expansion cycles of the graph cut (each tries every motion once; stops early when a cycle
    changes nothing). One is enough for the things' split: the half-resolution cut is redone at full
    resolution near its boundaries anyway, and a second cycle left the things EPE of the hard, the photo
    and the real data within 0.2 % for about a tenth of the things stage's time. ``--sharpen``'s
    boundary layers use two (:data:`~semflow.layers.boundary_layers.BOUNDARY_MOTIONS`)."""
    full_pixels: int = 20000
    """Assignments over more pixels are solved at half resolution first (see :func:`~semflow.fitting.graph_cut.solve_assignment`)."""
    refine_band: int = 2
    """...then redone at full resolution within this many px of the half-resolution labels' changes."""


def affine_field(affine: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Flow (h, w, 2) float32 of a (2, 3) affine map over the box (y0, y1, x0, x1)."""
    y0, y1, x0, x1 = box
    x, y = pixel_grid(y1 - y0, x1 - x0, x0, y0)
    a = affine.astype(np.float32)
    return np.stack([a[0, 0] * x + a[0, 1] * y + a[0, 2] - x, a[1, 0] * x + a[1, 1] * y + a[1, 2] - y], axis=2)


def patch_centres(mask: np.ndarray, params: MotionParams, *, erode_by: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns (N,) of the patch centres :func:`patch_matches` tries in ``mask`` (h, w): a
    regular grid every ``patch_step`` px (coarser where that would give more than ``max_patches``) over
    the mask eroded by ``erode_by`` px (default: a quarter of the patch side, at least 1)."""
    inner = erode(mask, max(1, params.patch // 4) if erode_by is None else erode_by)
    ys, xs = np.nonzero(inner)
    if ys.size == 0:
        return ys, xs
    step = max(params.patch_step, int(np.ceil(np.sqrt(ys.size / params.max_patches))))
    keep = (ys % step == 0) & (xs % step == 0)
    return ys[keep], xs[keep]


def patch_matches(gray1: np.ndarray, gray2: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int],
                  guess: np.ndarray, params: MotionParams, *,
                  centres: tuple[np.ndarray, np.ndarray] | None = None, around_zero: bool = True
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Sparse matches of patches inside ``mask`` (h, w, over ``box``) by normalised cross-correlation.

    ``gray1``/``gray2``: full frames float32, grey (H, W) or colour (H, W, 3); ``guess`` (h, w, 2): the
    baseline flow over the box (the search window covers it, and zero motion unless ``around_zero`` is
    off). ``centres``: the patch centres (rows, columns over the box) to try; default
    :func:`patch_centres`. Returns frame-1 points and frame-2 points (N, 2) float32, full-image px.
    """
    r = params.patch // 2
    ys, xs = patch_centres(mask, params) if centres is None else centres
    empty = np.zeros((0, 2), np.float32)
    if ys.size == 0:
        return empty, empty
    height, width = gray1.shape[:2]
    y0, _, x0, _ = box
    src, dst = [], []
    g1 = np.asarray(gray1, np.float32)  # (no copy of a float32 frame)
    g2 = np.asarray(gray2, np.float32)
    for py, px in zip(ys, xs):
        cx, cy = px + x0, py + y0
        if cx - r < 0 or cy - r < 0 or cx + r >= width or cy + r >= height:
            continue
        gu, gv = guess[py, px]
        zero_u, zero_v = (0.0, 0.0) if around_zero else (gu, gv)
        lo_x = int(np.floor(min(zero_u, gu))) - params.search
        hi_x = int(np.ceil(max(zero_u, gu))) + params.search
        lo_y = int(np.floor(min(zero_v, gv))) - params.search
        hi_y = int(np.ceil(max(zero_v, gv))) + params.search
        wx0, wx1 = max(0, cx + lo_x - r), min(width, cx + hi_x + r + 1)
        wy0, wy1 = max(0, cy + lo_y - r), min(height, cy + hi_y + r + 1)
        if wx1 - wx0 <= 2 * r + 2 or wy1 - wy0 <= 2 * r + 2:
            continue
        template = g1[cy - r:cy + r + 1, cx - r:cx + r + 1]
        if template.std() < 2.0:
            continue  # no texture to match
        score = cv2.matchTemplate(g2[wy0:wy1, wx0:wx1], template, cv2.TM_CCOEFF_NORMED)
        _, best, _, (bx, by) = cv2.minMaxLoc(score)
        if best < params.min_ncc:
            continue
        rival = score.copy()
        rival[max(0, by - 2):by + 3, max(0, bx - 2):bx + 3] = -1.0
        if best - rival.max() < params.min_peak_margin:
            continue
        fx, fy = float(bx), float(by)
        if 0 < bx < score.shape[1] - 1:  # sub-pixel peak: a parabola through 3 values per axis
            a, b, c = score[by, bx - 1], score[by, bx], score[by, bx + 1]
            fx += float(np.clip(0.5 * (a - c) / (a - 2 * b + c - 1e-9), -0.5, 0.5))
        if 0 < by < score.shape[0] - 1:
            a, b, c = score[by - 1, bx], score[by, bx], score[by + 1, bx]
            fy += float(np.clip(0.5 * (a - c) / (a - 2 * b + c - 1e-9), -0.5, 0.5))
        src.append((cx, cy))
        dst.append((wx0 + fx + r, wy0 + fy + r))
    if not src:
        return empty, empty
    return np.float32(src), np.float32(dst)


def affine_residuals(models: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """|A src - dst| for models (M, 2, 3) and matches (N, 2): (M, N)."""
    x, y = src[None, :, 0], src[None, :, 1]
    a = models[:, :, :, None]  # (M, 2, 3, 1): each coefficient against all matches
    dx = a[:, 0, 0] * x + a[:, 0, 1] * y + a[:, 0, 2] - dst[None, :, 0]
    dy = a[:, 1, 0] * x + a[:, 1, 1] * y + a[:, 1, 2] - dst[None, :, 1]
    return np.sqrt(dx * dx + dy * dy)


def _hypotheses(src: np.ndarray, dst: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Affine hypotheses (M, 2, 3): translations of single matches and affines of 3 close matches."""
    n = len(src)
    singles = rng.choice(n, size=min(n, count // 3), replace=False)
    models = np.zeros((len(singles), 2, 3))
    models[:, 0, 0] = models[:, 1, 1] = 1.0
    models[:, :, 2] = dst[singles] - src[singles]
    if n < 3:
        return models
    i = rng.integers(0, n, count - len(singles))
    pick = rng.integers(0, min(n, 12), (len(i), 2))
    d = channel_sum((src[i][:, None] - src[None]) ** 2)  # from each drawn point to all
    near = np.argpartition(d, min(n - 1, 11), axis=1)[:, :min(n, 12)]  # its 12 nearest (itself too)
    rows = np.arange(len(i))
    j, k = near[rows, pick[:, 0]], near[rows, pick[:, 1]]
    s = np.stack([src[i], src[j], src[k]], 1)
    t = np.stack([dst[i], dst[j], dst[k]], 1)
    lhs = np.concatenate([s, np.ones((len(i), 3, 1))], 2)  # (M, 3, 3): rows [x, y, 1]
    ok = np.abs(np.linalg.det(lhs)) >= 20.0  # nearly collinear (or repeated) points: an unstable affine
    if ok.any():
        sol = np.linalg.solve(lhs[ok], t[ok])  # (M, 3, 2): [x, y, 1] @ sol = target
        models = np.concatenate([models, sol.transpose(0, 2, 1)], 0)
    return models


def _refit(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares affine (2, 3) of matches (N >= 3); a translation for fewer than 6."""
    if len(src) < 6:
        return np.hstack([np.eye(2), (dst - src).mean(0)[:, None]])
    a = np.hstack([src, np.ones((len(src), 1))])
    sol, *_ = np.linalg.lstsq(a, dst, rcond=None)
    return sol.T


def plausible(affines: np.ndarray, max_stretch: float) -> np.ndarray:
    """(M,) bool: which affines (M, 2, 3) stretch no direction by more than ``max_stretch`` nor shrink
    one below its inverse (all, for ``max_stretch`` 0)."""
    if max_stretch <= 0:
        return np.ones(len(affines), bool)
    stretch = np.linalg.svd(np.asarray(affines)[:, :, :2], compute_uv=False)  # (M, 2), largest first
    return (stretch[:, 0] <= max_stretch) & (stretch[:, 1] >= 1.0 / max_stretch)


def fit_motions(src: np.ndarray, dst: np.ndarray, params: MotionParams, rng: np.random.Generator, *,
                extra: np.ndarray | None = None, inlier: np.ndarray | None = None
                ) -> tuple[list[np.ndarray], np.ndarray]:
    """Affine motions (list of (2, 3)) of matches ``src`` -> ``dst`` (N, 2), and each match's motion
    index (N,) (-1: an outlier), by greedy minimisation of an energy with a label cost, among affines
    that :func:`plausible` allows (``params.max_stretch``). ``extra`` (M, 2, 3), optional: hypotheses
    to consider beside the sampled ones (video mode: the region's motions in the last pair); ``inlier``
    (N,), optional: each match's own inlier distance (px; default ``params.inlier`` for all)."""
    n = len(src)
    if n < params.min_matches:
        return [], np.full(n, -1)
    src64, dst64 = src.astype(np.float64), dst.astype(np.float64)
    cands = _hypotheses(src64, dst64, params.hypotheses, rng)
    if extra is not None and len(extra):
        cands = np.concatenate([cands, np.asarray(extra, np.float64).reshape(-1, 2, 3)], 0)
    cands = cands[plausible(cands, params.max_stretch)]
    if not len(cands):
        return [], np.full(n, -1)
    tol = np.full(n, params.inlier) if inlier is None else np.asarray(inlier, np.float64)
    rho = np.minimum(affine_residuals(cands, src64, dst64) / tol, 1.0) ** 2  # (M, N); outliers cost 1
    cost_of_label = max(params.min_matches, params.label_cost * n)
    best = np.ones(n)
    chosen: list[int] = []
    while len(chosen) < params.max_motions:
        gain = np.maximum(best[None] - rho, 0.0).sum(1)
        k = int(np.argmax(gain))
        if gain[k] < cost_of_label:
            break
        chosen.append(k)
        best = np.minimum(best, rho[k])
    if not chosen:
        return [], np.full(n, -1)
    models = cands[chosen]
    for _ in range(4):  # alternate: refit each model to its matches, drop one that no longer pays
        res = affine_residuals(models, src64, dst64)
        owner = np.argmin(res, axis=0)
        fits = res[owner, np.arange(n)] < tol
        refits = np.array([_refit(src64[fits & (owner == m)], dst64[fits & (owner == m)])
                           if (fits & (owner == m)).sum() >= 3 else models[m] for m in range(len(models))])
        models = np.where(plausible(refits, params.max_stretch)[:, None, None], refits, models)
        rho = np.minimum(affine_residuals(models, src64, dst64) / tol, 1.0) ** 2
        total = rho.min(0).sum()
        gains = [np.minimum(np.delete(rho, m, 0).min(0), 1.0).sum() - total if len(models) > 1
                 else n - total for m in range(len(models))]
        worst = int(np.argmin(gains))
        if gains[worst] >= cost_of_label:
            continue
        if len(models) == 1:
            return [], np.full(n, -1)
        models = np.delete(models, worst, 0)
    res = affine_residuals(models, src64, dst64)
    owner = np.argmin(res, axis=0)
    owner = np.where(res[owner, np.arange(n)] < tol, owner, -1)
    return list(models), owner
