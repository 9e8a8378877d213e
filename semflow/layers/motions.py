"""Several rigid-ish motions inside one thing region: a car passing parked cars, a group of people.

Plain arrays in, plain arrays out; the things layer calls it for each region. Three steps:

1. **Matches** (:func:`patch_matches`): the baseline's confident flow is one source, but on thin or
   fast objects it is often wrong or missing, so the region also gets its own sparse matches: small
   patches of frame 1 on a grid inside the region, each searched for in frame 2 by normalised
   cross-correlation in a window that covers the baseline's motion and zero motion; a match is kept
   when its peak is high and clearly above the next one.
2. **Models** (:func:`fit_motions`): multi-model fitting with a label cost (a greedy facility-location
   solution of ``sum_i min_k rho(r_ik) + label_cost * #models``, as in PEARL / "energy with a label
   cost"): affine hypotheses from minimal samples of spatially close matches and translations from
   single ones; the best set is grown one model at a time while a model pays for itself, then each
   model is refitted to its matches by least squares (a few alternations).
3. **Assignment** (:func:`assign_motions`): each pixel takes one motion; unary = photometric error of
   the motion (truncated) plus its disagreement with a confident baseline, pairwise = a contrast-
   sensitive Potts term; solved by alpha-expansion (repeated binary graph cuts with PyMaxflow, exact
   for each move since Potts is a metric). Pixels that a motion in front covers in frame t+1
   (:func:`covered_by_others`, depth order from which motion is seen where their frame-2 footprints
   overlap) keep no photometric evidence for their own motion, so a second pass neutralises it.

Coordinates: boxes are (y0, y1, x0, x1) in full-image pixels; affines (2, 3) map full-image frame-1
pixels to frame 2; flows (h, w, 2) float32 u, v in px; grey levels 0-255.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import maxflow
import numpy as np

from semflow.layers.common import dilate, erode, magnitude, photometric_error, pixel_grid


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
    truncation: float = 30.0
    """Photometric errors are truncated here."""
    agreement_weight: float = 1.0
    """Cost per px (up to 3 px) of a motion's disagreement with the baseline, times its confidence."""
    smoothness: float = 12.0
    """Potts weight between 4-neighbours of equal colour (lower across colour edges)."""
    occluded_cost: float = 6.0
    """Photometric cost of a pixel that a motion in front covers in frame t+1, under its own motion."""
    cycles: int = 2
    full_pixels: int = 20000
    """Assignments over more pixels are solved at half resolution first (see :func:`solve_assignment`)."""


@dataclass
class MotionSplit:
    """The motions of one region: ``affines`` (list of (2, 3)), ``labels`` (h, w) int32 index of each
    box pixel's motion, ``flow`` (h, w, 2) float32, ``error`` (h, w) photometric error of ``flow`` and
    ``inside`` (h, w) bool where its target is in frame t+1, ``covered`` (h, w) bool pixels whose motion
    lands on a motion in front of it in frame t+1, ``share`` the share of matches the motions explain, ``matches`` the
    number of matches (baseline samples + patch matches), ``order`` motion indices back to front."""

    affines: list[np.ndarray]
    labels: np.ndarray
    flow: np.ndarray
    error: np.ndarray
    inside: np.ndarray
    covered: np.ndarray
    share: float
    matches: int
    order: list[int]


def affine_field(affine: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Flow (h, w, 2) float32 of a (2, 3) affine map over the box (y0, y1, x0, x1)."""
    y0, y1, x0, x1 = box
    x, y = pixel_grid(y1 - y0, x1 - x0, x0, y0)
    a = affine.astype(np.float32)
    return np.stack([a[0, 0] * x + a[0, 1] * y + a[0, 2] - x, a[1, 0] * x + a[1, 1] * y + a[1, 2] - y], axis=2)


def patch_matches(gray1: np.ndarray, gray2: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int],
                  guess: np.ndarray, params: MotionParams) -> tuple[np.ndarray, np.ndarray]:
    """Sparse matches of patches inside ``mask`` (h, w, over ``box``) by normalised cross-correlation.

    ``gray1``/``gray2``: full frames float32; ``guess`` (h, w, 2): the baseline flow over the box (the
    search window covers it and zero motion). Returns frame-1 points and frame-2 points (N, 2) float32,
    full-image px.
    """
    r = params.patch // 2
    inner = erode(mask, max(1, r // 2))
    ys, xs = np.nonzero(inner)
    empty = np.zeros((0, 2), np.float32)
    if ys.size == 0:
        return empty, empty
    step = max(params.patch_step, int(np.ceil(np.sqrt(ys.size / params.max_patches))))
    keep = (ys % step == 0) & (xs % step == 0)
    ys, xs = ys[keep], xs[keep]
    height, width = gray1.shape
    y0, _, x0, _ = box
    src, dst = [], []
    g1 = gray1.astype(np.float32)
    g2 = gray2.astype(np.float32)
    for py, px in zip(ys, xs):
        cx, cy = px + x0, py + y0
        if cx - r < 0 or cy - r < 0 or cx + r >= width or cy + r >= height:
            continue
        gu, gv = guess[py, px]
        lo_x = int(np.floor(min(0.0, gu))) - params.search
        hi_x = int(np.ceil(max(0.0, gu))) + params.search
        lo_y = int(np.floor(min(0.0, gv))) - params.search
        hi_y = int(np.ceil(max(0.0, gv))) + params.search
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


def _residuals(models: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """|A src - dst| for models (M, 2, 3) and matches (N, 2): (M, N)."""
    pred = np.einsum("mij,nj->mni", models[:, :, :2], src) + models[:, None, :, 2]
    return np.linalg.norm(pred - dst[None], axis=2)


def _hypotheses(src: np.ndarray, dst: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Affine hypotheses (M, 2, 3): translations of single matches and affines of 3 close matches."""
    n = len(src)
    singles = rng.choice(n, size=min(n, count // 3), replace=False)
    models = np.zeros((len(singles), 2, 3))
    models[:, 0, 0] = models[:, 1, 1] = 1.0
    models[:, :, 2] = dst[singles] - src[singles]
    if n < 3:
        return models
    d = ((src[:, None] - src[None]) ** 2).sum(-1)
    near = np.argpartition(d, min(n - 1, 11), axis=1)[:, :min(n, 12)]  # each point's 12 nearest (itself too)
    i = rng.integers(0, n, count - len(singles))
    pick = rng.integers(0, near.shape[1], (len(i), 2))
    j, k = near[i, pick[:, 0]], near[i, pick[:, 1]]
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


def fit_motions(src: np.ndarray, dst: np.ndarray, params: MotionParams, rng: np.random.Generator
                ) -> tuple[list[np.ndarray], np.ndarray]:
    """Affine motions (list of (2, 3)) of matches ``src`` -> ``dst`` (N, 2), and each match's motion
    index (N,) (-1: an outlier), by greedy minimisation of an energy with a label cost."""
    n = len(src)
    if n < params.min_matches:
        return [], np.full(n, -1)
    src64, dst64 = src.astype(np.float64), dst.astype(np.float64)
    cands = _hypotheses(src64, dst64, params.hypotheses, rng)
    rho = np.minimum(_residuals(cands, src64, dst64) / params.inlier, 1.0) ** 2  # (M, N); outliers cost 1
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
        res = _residuals(models, src64, dst64)
        owner = np.argmin(res, axis=0)
        inlier = res[owner, np.arange(n)] < params.inlier
        models = np.array([_refit(src64[inlier & (owner == m)], dst64[inlier & (owner == m)])
                           if (inlier & (owner == m)).sum() >= 3 else models[m] for m in range(len(models))])
        rho = np.minimum(_residuals(models, src64, dst64) / params.inlier, 1.0) ** 2
        total = rho.min(0).sum()
        gains = [np.minimum(np.delete(rho, m, 0).min(0), 1.0).sum() - total if len(models) > 1
                 else n - total for m in range(len(models))]
        worst = int(np.argmin(gains))
        if gains[worst] >= cost_of_label:
            continue
        if len(models) == 1:
            return [], np.full(n, -1)
        models = np.delete(models, worst, 0)
    res = _residuals(models, src64, dst64)
    owner = np.argmin(res, axis=0)
    owner = np.where(res[owner, np.arange(n)] < params.inlier, owner, -1)
    return list(models), owner


def pairwise_weights(image: np.ndarray, smoothness: float) -> tuple[np.ndarray, np.ndarray]:
    """Contrast-sensitive Potts weights to the right (h, w-1) and down (h-1, w) neighbours of ``image``
    (h, w, 3): ``smoothness * exp(-|dI|^2 / (2 mean |dI|^2))``."""
    img = image.astype(np.float32)
    dx = ((img[:, 1:] - img[:, :-1]) ** 2).sum(-1)
    dy = ((img[1:] - img[:-1]) ** 2).sum(-1)
    beta = 1.0 / (2.0 * max(float(np.concatenate([dx.ravel(), dy.ravel()]).mean()), 1e-6))
    return smoothness * np.exp(-beta * dx), smoothness * np.exp(-beta * dy)


def assign_motions(costs: np.ndarray, weights: tuple[np.ndarray, np.ndarray], *, cycles: int = 2,
                   labels: np.ndarray | None = None) -> np.ndarray:
    """Labels (h, w) int32 minimising ``sum_p costs[l_p, p] + sum_pq w_pq [l_p != l_q]`` by alpha-expansion.

    ``costs`` (K, h, w) float; ``weights``: Potts weights to the right and down neighbours (see
    :func:`pairwise_weights`); ``labels``: a start (default: the per-pixel cheapest).
    """
    k, h, w = costs.shape
    labels = np.argmin(costs, axis=0).astype(np.int32) if labels is None else labels.astype(np.int32).copy()
    if k == 1:
        return labels
    wr, wd = weights
    flat = costs.reshape(k, -1)

    def energy(lab: np.ndarray) -> float:
        unary = flat[lab.ravel(), np.arange(h * w)].sum()
        return float(unary + (wr * (lab[:, 1:] != lab[:, :-1])).sum() + (wd * (lab[1:] != lab[:-1])).sum())

    current = energy(labels)
    nodes = np.arange(h * w).reshape(h, w)
    for _ in range(cycles):
        improved = False
        for alpha in range(k):
            keep_cost = np.take_along_axis(costs, labels[None], 0)[0].astype(np.float64)
            src_cap = np.where(labels == alpha, keep_cost, costs[alpha])  # cost of x = 1 (take alpha)
            sink_cap = keep_cost.copy()  # cost of x = 0 (keep)
            g = maxflow.Graph[float]()
            g.add_nodes(h * w)
            for wgt, p, q in ((wr, np.s_[:, :-1], np.s_[:, 1:]), (wd, np.s_[:-1], np.s_[1:])):
                lp, lq = labels[p], labels[q]
                e00 = wgt * (lp != lq)
                e01 = wgt * (lp != alpha)  # p keeps, q takes alpha
                e10 = wgt * (lq != alpha)
                # E = e00 + (e10 - e00) x_p - e10 x_q + (e01 + e10 - e00) (1 - x_p) x_q   (e11 = 0)
                src_cap[p] += np.maximum(e10 - e00, 0)
                sink_cap[p] += np.maximum(e00 - e10, 0)
                sink_cap[q] += e10
                g.add_edges(nodes[p].ravel(), nodes[q].ravel(), (e01 + e10 - e00).ravel(),
                            np.zeros(e00.size))
            base = np.minimum(src_cap, sink_cap)
            g.add_grid_tedges(nodes, src_cap - base, sink_cap - base)
            g.maxflow()
            proposal = np.where(g.get_grid_segments(nodes), alpha, labels).astype(np.int32)
            e = energy(proposal)
            if e < current - 1e-6:
                labels, current, improved = proposal, e, True
        if not improved:
            break
    return labels


def colour_codes(image: np.ndarray, bins: int = 8) -> np.ndarray:
    """Each pixel's RGB histogram bin (h, w) int32, ``bins`` per channel."""
    q = np.clip(image / (256.0 / bins), 0, bins - 1).astype(np.int32)
    return (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]


def solve_assignment(costs: np.ndarray, guide: np.ndarray, params: MotionParams,
                     labels: np.ndarray | None = None) -> np.ndarray:
    """:func:`assign_motions` of ``costs`` (K, h, w) with contrast-sensitive weights from ``guide``
    (h, w, 3); a start ``labels`` (h, w) optional.

    Over more than ``params.full_pixels`` pixels the graph cut runs at half resolution (costs summed
    over 2x2 blocks, weights doubled: each coarse edge stands for two fine ones), and the labels are
    brought back to full resolution by two sweeps of iterated conditional modes on the pixels next to
    a label change (the energy at full resolution, each pixel given its neighbours).
    """
    k, h, w = costs.shape
    if k == 1:
        return np.zeros((h, w), np.int32)
    if h * w <= params.full_pixels or min(h, w) < 8:
        return assign_motions(costs, pairwise_weights(guide, params.smoothness), cycles=params.cycles, labels=labels)
    size = (max(1, w // 2), max(1, h // 2))
    small = np.stack([cv2.resize(c.astype(np.float32), size, interpolation=cv2.INTER_AREA) * 4.0 for c in costs])
    small_guide = cv2.resize(guide.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    start = None if labels is None else cv2.resize(labels.astype(np.int32), size, interpolation=cv2.INTER_NEAREST)
    coarse = assign_motions(small, pairwise_weights(small_guide, 2.0 * params.smoothness), cycles=params.cycles,
                            labels=start)
    fine = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_NEAREST).astype(np.int32)
    wr, wd = pairwise_weights(guide, params.smoothness)
    for _ in range(2):
        change = np.zeros((h, w), bool)
        change[:, 1:] |= fine[:, 1:] != fine[:, :-1]
        change[:, :-1] |= fine[:, 1:] != fine[:, :-1]
        change[1:] |= fine[1:] != fine[:-1]
        change[:-1] |= fine[1:] != fine[:-1]
        if not change.any():
            break
        total = costs.astype(np.float32).copy()
        for m in range(k):  # + the Potts cost of label m against each neighbour's current label
            total[m, :, 1:] += wr * (fine[:, :-1] != m)
            total[m, :, :-1] += wr * (fine[:, 1:] != m)
            total[m, 1:] += wd * (fine[:-1] != m)
            total[m, :-1] += wd * (fine[1:] != m)
        fine = np.where(change, np.argmin(total, axis=0), fine).astype(np.int32)
    return fine


def covered_by_others(labels: np.ndarray, flows: list[np.ndarray], errors: list[np.ndarray], image: np.ndarray,
                      region: np.ndarray | None = None, *, explained: float = 8.0, unexplained: float = 15.0
                      ) -> tuple[np.ndarray, list[int]]:
    """Where each motion would land, in frame t+1, on a motion in front of it, for pixels that look like
    it (by colour, as below): (K, h, w) bool; and the motions' order back to front.

    ``labels`` (h, w): each pixel's motion (a first assignment); ``flows``/``errors``: each motion's
    flow (h, w, 2) and photometric error (h, w) over the same pixels; ``region`` (h, w): the pixels
    that belong to the motions at all (default all). A motion's footprint in frame t+1 is where its
    well explained pixels (error < ``explained``) land (splatted to the nearest pixel, closed 3x3).
    The region's unexplained pixels (error >= ``unexplained`` under every motion: hidden in frame t+1)
    belong, by colour (``image`` (h, w, 3), frame t: histograms of each motion's explained pixels), to
    one motion or the other; motion a is in front of b when more of them look like b and land, under
    b's motion, on a's footprint than the reverse (geometry alone cannot tell: a strip next to both
    could be either one's, hidden by the other).
    """
    h, w = labels.shape
    x, y = pixel_grid(h, w, 0, 0)
    k = len(flows)
    region = np.ones((h, w), bool) if region is None else region
    unexplained_px = region & (np.min(np.stack(errors), axis=0) >= unexplained)
    targets, prints = [], []
    for m in range(k):
        tx = np.round(x + flows[m][..., 0]).astype(int)
        ty = np.round(y + flows[m][..., 1]).astype(int)
        inside = (tx >= 0) & (tx < w) & (ty >= 0) & (ty < h)
        good = region & (labels == m) & (errors[m] < explained) & inside
        fp = np.zeros((h, w), np.uint8)
        fp[ty[good], tx[good]] = 1
        prints.append(cv2.morphologyEx(fp, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)).astype(bool))
        targets.append((tx, ty, inside))

    def lands_on(b: int, a: int, where: np.ndarray) -> np.ndarray:
        """Pixels of ``where`` whose motion-b target is on motion a's footprint."""
        tx, ty, inside = targets[b]
        ok = where & inside
        hit = np.zeros((h, w), bool)
        hit[ok] = prints[a][ty[ok], tx[ok]]
        return hit

    codes = colour_codes(image)
    hists = []
    for m in range(k):
        good = region & (labels == m) & (errors[m] < explained)
        hist = np.bincount(codes[good], minlength=512).astype(np.float64) + 1.0
        hists.append(np.log(hist / hist.sum()))
    front = np.zeros((k, k), bool)  # front[a, b]: a is in front of b
    for a in range(k):
        for b in range(a + 1, k):
            looks_b = (hists[b] - hists[a])[codes] > 0
            a_over_b = int(lands_on(b, a, unexplained_px & looks_b).sum())
            b_over_a = int(lands_on(a, b, unexplained_px & ~looks_b).sum())
            if max(a_over_b, b_over_a) >= 10:
                front[a, b], front[b, a] = a_over_b > b_over_a, b_over_a > a_over_b
    covered = np.zeros((k, h, w), bool)
    for b in range(k):
        for a in np.nonzero(front[:, b])[0]:  # pixels that look like b and land on a under b's motion
            covered[b] |= lands_on(b, a, region & ((hists[b] - hists[a])[codes] > 0))
    order = sorted(range(k), key=lambda m: int(front[m].sum()))
    return covered, order


def split_motions(img1: np.ndarray, img2: np.ndarray, gray1: np.ndarray, gray2: np.ndarray, mask: np.ndarray,
                  box: tuple[int, int, int, int], baseline: np.ndarray, confidence: np.ndarray,
                  params: MotionParams, rng: np.random.Generator, *, seeds: np.ndarray | None = None,
                  window: tuple[slice, slice] | None = None) -> MotionSplit | None:
    """The motions of the thing region ``mask`` (h, w) inside ``box``, and their assignment over ``window``.

    ``img1``, ``img2``: full frames float32 RGB; ``gray1``, ``gray2`` float32 grey; ``baseline`` (h, w, 2)
    and ``confidence`` (h, w) in [0, 1] over the box; ``seeds`` (h, w): the baseline pixels trusted as
    matches (default: confidence >= 0.5 inside the eroded mask). Pixels outside ``window`` (slices of the
    box; default all of it) keep the first motion. None when no motion is supported.
    """
    y0, _, x0, _ = box
    seeds = (erode(mask, 3) & (confidence >= 0.5)) if seeds is None else seeds
    ys, xs = np.nonzero(seeds)
    if ys.size > params.max_baseline_points:
        pick = rng.choice(ys.size, params.max_baseline_points, replace=False)
        ys, xs = ys[pick], xs[pick]
    b_src = np.stack([xs + x0, ys + y0], 1).astype(np.float32)
    b_dst = b_src + baseline[ys, xs]
    p_src, p_dst = patch_matches(gray1, gray2, mask, box, baseline, params)
    src, dst = np.vstack([b_src, p_src]), np.vstack([b_dst, p_dst])
    affines, owner = fit_motions(src, dst, params, rng)
    if not affines:
        return None
    h, w = mask.shape
    if len(affines) == 1:  # one motion: nothing to assign or order
        flow = affine_field(affines[0], box)
        error, inside = photometric_error(img1, img2, flow, x0, y0)
        return MotionSplit(list(affines), np.zeros((h, w), np.int32), flow, error, inside, np.zeros((h, w), bool),
                           float((owner >= 0).mean()), len(src), [0])
    sy, sx = window if window is not None else (slice(0, h), slice(0, w))
    wy0, wx0 = y0 + sy.start, x0 + sx.start
    flows = [affine_field(a, box) for a in affines]
    errors, insides = [], []
    for f in flows:
        err, inside = photometric_error(img1, img2, f[sy, sx], wx0, wy0)
        errors.append(err)
        insides.append(inside)
    agree_w = params.agreement_weight * np.clip(confidence[sy, sx], 0, 1)

    def unary(covered: np.ndarray | None) -> np.ndarray:
        out = []
        for m, (f, err, inside) in enumerate(zip(flows, errors, insides)):
            photo = np.where(inside, np.minimum(err, params.truncation), 0.5 * params.truncation)
            if covered is not None:
                photo = np.where(covered[m], np.minimum(photo, params.occluded_cost), photo)
            agree = np.minimum(magnitude(baseline[sy, sx] - f[sy, sx]), 3.0)
            out.append(photo + agree_w * agree)
        return np.stack(out)

    guide = img1[wy0:wy0 + (sy.stop - sy.start), wx0:wx0 + (sx.stop - sx.start)]
    labels_w = solve_assignment(unary(None), guide, params)
    covered_w = np.zeros((len(affines), *labels_w.shape), bool)
    order = [0]
    if len(affines) > 1:
        covered_w, order = covered_by_others(labels_w, [f[sy, sx] for f in flows], errors, guide,
                                             dilate(mask, 2)[sy, sx])
        if covered_w.any():
            labels_w = solve_assignment(unary(covered_w), guide, params, labels=labels_w)
    labels = np.zeros((h, w), np.int32)
    labels[sy, sx] = labels_w
    flow = flows[0].copy()
    err = errors[0].copy()
    inside = insides[0].copy()
    for m in range(1, len(flows)):
        chosen = labels_w == m
        np.copyto(flow[sy, sx], flows[m][sy, sx], where=chosen[..., None])
        np.copyto(err, errors[m], where=chosen)
        np.copyto(inside, insides[m], where=chosen)
    error = np.zeros((h, w), np.float32)
    inside_box = np.zeros((h, w), bool)
    error[sy, sx], inside_box[sy, sx] = err, inside
    covered = np.zeros((h, w), bool)
    covered[sy, sx] = np.take_along_axis(covered_w, labels_w[None], 0)[0]
    share = float((owner >= 0).mean())
    return MotionSplit(list(affines), labels, flow, error, inside_box, covered, share, len(src), order)
