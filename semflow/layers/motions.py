"""Several rigid-ish motions inside one thing region: a car passing parked cars, a group of people.

Plain arrays in, plain arrays out; the things layer calls it for each region. Three steps:

1. **Matches** (:func:`~semflow.fitting.motion_fit.patch_matches`): the baseline's confident flow is one source, but on thin or
   fast objects it is often wrong or missing, so the region also gets its own sparse matches: small
   patches of frame 1 on a grid inside the region, each searched for in frame 2 by normalised
   cross-correlation in a window that covers the baseline's motion and zero motion; a match is kept
   when its peak is high and clearly above the next one.
2. **Models** (:func:`~semflow.fitting.motion_fit.fit_motions`): multi-model fitting with a label cost (a greedy facility-location
   solution of ``sum_i min_k rho(r_ik) + label_cost * #models``, as in PEARL / "energy with a label
   cost"): affine hypotheses from minimal samples of spatially close matches and translations from
   single ones; the best set is grown one model at a time while a model pays for itself, then each
   model is refitted to its matches by least squares (a few alternations).
3. **Assignment** (:func:`motion_costs`, solved by :mod:`semflow.fitting.graph_cut`): each pixel takes
   one motion; unary = photometric error of the motion (truncated) plus its disagreement with a
   confident baseline, pairwise = a contrast-sensitive Potts term; solved by alpha-expansion. Pixels
   that a motion in front covers in frame t+1 (:func:`covered_by_others`, depth order from which motion
   is seen where their frame-2 footprints overlap) keep no photometric evidence for their own motion,
   so a second pass neutralises it; nor do pixels that no motion explains (blended colours on an
   outline) or that a motion carries out of the frame (:func:`photometric_costs`).
4. **Reassignment** (:func:`reassign_motions`), once the caller has refined the motions: the labels are
   redone near their boundaries with the refined flows, on frames as given (the caller's).

Coordinates: boxes are (y0, y1, x0, x1) in full-image pixels; affines (2, 3) map full-image frame-1
pixels to frame 2; flows (h, w, 2) float32 u, v in px; grey levels 0-255.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from semflow.fitting.graph_cut import assign_motions, label_changes, pairwise_weights, solve_assignment
from semflow.fitting.motion_fit import MotionParams, affine_field, fit_motions, patch_matches
from semflow.layers.common import dilate, erode, magnitude, photometric_error, subsample_points
from semflow.layers.part_match import rematch_unexplained
from semflow.warp import footprint, landings

__all__ = ["MotionParams", "MotionSplit", "affine_field", "assign_motions", "covered_by_others", "depth_order", "fit_motions",
           "motion_costs", "pairwise_weights", "patch_matches", "photometric_costs", "reassign_motions",
           "rematch_unexplained", "solve_assignment",
           "split_motions", "translations"]


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


def colour_codes(image: np.ndarray, bins: int = 8) -> np.ndarray:
    """Each pixel's RGB histogram bin (h, w) int32, ``bins`` per channel."""
    q = np.clip(image / (256.0 / bins), 0, bins - 1).astype(np.int32)
    return (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]


def photometric_costs(errors: list[np.ndarray], inside: list[np.ndarray], params: MotionParams) -> list[np.ndarray]:
    """Each motion's photometric cost (h, w) float32 in an assignment: its error (``errors``, grey
    levels) capped at ``params.truncation``, but the same for every motion where the colours say nothing.

    ``inside`` (h, w) bool: where each motion keeps the pixel in frame t+1. A motion that carries a
    pixel out of the frame costs what the best motion that keeps it in costs; where none of those
    explains the pixel (error at least ``params.explained``), all cost the best one's. Half the
    truncation where no motion keeps the pixel in frame. (``params.explained`` None: the errors as
    they are, half the truncation for leaving the frame.)
    """
    capped = [np.minimum(err, params.truncation).astype(np.float32) for err in errors]
    half = np.float32(0.5 * params.truncation)
    if params.explained is None:
        return [np.where(ins, c, half) for c, ins in zip(capped, inside)]
    best = np.min([np.where(ins, c, np.inf) for c, ins in zip(capped, inside)], axis=0)
    best = np.where(np.isfinite(best), best, half).astype(np.float32)
    silent = best >= params.explained
    return [np.where(ins & ~silent, c, best) for c, ins in zip(capped, inside)]


def depth_order(votes: list[tuple[int, int, int]], k: int) -> tuple[np.ndarray, list[int]]:
    """``front`` (k, k) bool (``front[a, b]``: motion a is in front of b) and the motions back to front,
    from ``votes`` (margin, a, b) that a is in front of b. Depth is an order, so a vote that contradicts
    stronger ones (a cycle: a over b over c over a) gives way: the votes are taken strongest first, each
    kept unless it closes a cycle. ``front`` holds the kept votes alone (a pair nobody voted on hides
    nothing of the other)."""
    above = np.zeros((k, k), bool)  # above[a, b]: a is in front of b, transitively
    front = np.zeros((k, k), bool)
    for _, a, b in sorted(votes, reverse=True):
        if above[b, a]:  # b is already in front of a (through others): this vote closes a cycle
            continue
        front[a, b] = True
        over_a = above[:, a] | (np.arange(k) == a)  # a and everything in front of it
        under_b = above[b] | (np.arange(k) == b)  # b and everything behind it
        above |= over_a[:, None] & under_b[None]
    return front, sorted(range(k), key=lambda m: int(above[m].sum()))


def _lands_on(landing: tuple[np.ndarray, np.ndarray, np.ndarray], cells: np.ndarray,
              where: np.ndarray) -> np.ndarray:
    """Pixels of ``where`` (h, w) bool whose target (``landing``: a motion's :func:`~semflow.warp.landings`)
    is on ``cells`` (h, w) bool, a footprint in frame t+1: (h, w) bool."""
    tx, ty, inside = landing
    ok = where & inside
    hit = np.zeros(where.shape, bool)
    hit[ok] = cells[ty[ok], tx[ok]]
    return hit


def _colour_log_histogram(codes: np.ndarray) -> np.ndarray:
    """The log of the normalised histogram (512,) float64 of colour ``codes`` (:func:`colour_codes`, 8
    bins a channel), one count added to every bin."""
    hist = np.bincount(codes, minlength=512).astype(np.float64) + 1.0
    return np.log(hist / hist.sum())


def _depth_votes(targets: list[tuple[np.ndarray, np.ndarray, np.ndarray]], prints: list[np.ndarray],
                 hidden: np.ndarray, likeliest: np.ndarray) -> list[tuple[int, int, int]]:
    """Votes (margin, nearer, farther) on each pair of motions: a is in front of b when more of the
    ``hidden`` (h, w) bool pixels that look most like b (``likeliest`` (h, w): each pixel's motion by
    colour) land, under b's motion (``targets``: :func:`~semflow.warp.landings`), on a's footprint
    (``prints``) than the reverse; at least 10 on one side, by the difference."""
    k = len(targets)
    votes = []
    for a in range(k):
        for b in range(a + 1, k):
            a_over_b = int(_lands_on(targets[b], prints[a], hidden & (likeliest == b)).sum())
            b_over_a = int(_lands_on(targets[a], prints[b], hidden & (likeliest == a)).sum())
            if max(a_over_b, b_over_a) >= 10 and a_over_b != b_over_a:
                nearer, farther = (a, b) if a_over_b > b_over_a else (b, a)
                votes.append((abs(a_over_b - b_over_a), nearer, farther))
    return votes


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
    the motion they look most like; motion a is in front of b when more of b's land, under b's motion,
    on a's footprint than the reverse (geometry alone cannot tell: a strip next to both could be either
    one's, hidden by the other). A pixel that looks most like a third motion does not vote between a
    and b (the background hidden by a car that passes behind another used to decide their order).
    """
    h, w = labels.shape
    k = len(flows)
    region = np.ones((h, w), bool) if region is None else region
    unexplained_px = region & (np.min(np.stack(errors), axis=0) >= unexplained)
    good = [region & (labels == m) & (errors[m] < explained) for m in range(k)]  # well explained, per motion
    targets = [landings(flows[m]) for m in range(k)]
    prints = [footprint(tx, ty, good[m] & inside) for m, (tx, ty, inside) in enumerate(targets)]
    codes = colour_codes(image)
    hists = [_colour_log_histogram(codes[good[m]]) for m in range(k)]
    likeliest = np.argmax(np.stack(hists)[:, codes], axis=0)  # each pixel's motion by colour, of all k
    front, order = depth_order(_depth_votes(targets, prints, unexplained_px, likeliest), k)
    covered = np.zeros((k, h, w), bool)
    for b in range(k):
        for a in np.nonzero(front[:, b])[0]:  # pixels that look like b and land on a under b's motion
            covered[b] |= _lands_on(targets[b], prints[a], region & ((hists[b] - hists[a])[codes] > 0))
    return covered, order


def translations(shifts: np.ndarray, cell: float = 2.0) -> np.ndarray:
    """Translation motions (K, 2, 3): the median of each group of ``shifts`` (N, 2) px that fall in one
    cell of a ``cell`` px grid."""
    keys = np.round(shifts / cell).astype(np.int64)
    _, group = np.unique(keys, axis=0, return_inverse=True)
    out = []
    for g in range(int(group.max()) + 1):
        dx, dy = np.median(shifts[group.ravel() == g], axis=0)
        out.append([[1.0, 0.0, dx], [0.0, 1.0, dy]])
    return np.asarray(out, np.float64).reshape(-1, 2, 3)


def motion_costs(photos: list[np.ndarray], flows: list[np.ndarray], baseline: np.ndarray, confidence: np.ndarray,
                 params: MotionParams, covered: np.ndarray | None = None) -> np.ndarray:
    """The assignment's unary costs (K, h, w): each motion's photometric cost (``photos``, from
    :func:`photometric_costs`) plus ``params.agreement_weight`` x ``confidence`` (h, w) x its distance
    from the ``baseline`` flow (h, w, 2; capped at 3 px). ``covered`` (K, h, w) bool, optional: where a
    motion lands on one in front of it, its photometric cost is at most ``params.occluded_cost``."""
    agree_w = params.agreement_weight * np.clip(confidence, 0, 1)
    out = []
    for m, (f, photo) in enumerate(zip(flows, photos)):
        if covered is not None:
            photo = np.where(covered[m], np.minimum(photo, params.occluded_cost), photo)
        out.append(photo + agree_w * np.minimum(magnitude(baseline - f), 3.0))
    return np.stack(out)


def reassign_motions(img1: np.ndarray, img2: np.ndarray, split: MotionSplit, flows: list[np.ndarray],
                     mask: np.ndarray, box: tuple[int, int, int, int], baseline: np.ndarray,
                     confidence: np.ndarray, params: MotionParams, window: tuple[slice, slice]) -> MotionSplit:
    """``split`` with its labels redone, within ``params.refine_band`` px of a label change, for the
    motions' new ``flows`` (each (h, w, 2) over the box: after a refinement); its ``covered`` and
    ``order`` follow. The labels are not redone elsewhere, nor are its flow, error and inside maps.

    ``img1``, ``img2``: full frames float32 RGB, as given rather than smoothed: the smoothing of
    :func:`~semflow.layers.common.prepare_image` mixes two touching things' colours across their
    outline, and there a thing's own motion can look worse than its neighbour's (a passing car's edge
    row took the parked car's motion, 20 px off, on hard scene 0 of section things). ``mask``,
    ``baseline``, ``confidence`` are over ``box``; ``window`` the slices of the box the split assigned.
    """
    y0, _, x0, _ = box
    sy, sx = window
    wy0, wx0 = y0 + sy.start, x0 + sx.start
    errors, insides = map(list, zip(*(photometric_error(img1, img2, f[sy, sx], wx0, wy0) for f in flows)))
    guide = img1[wy0:wy0 + (sy.stop - sy.start), wx0:wx0 + (sx.stop - sx.start)]
    labels = split.labels[sy, sx]
    windowed = [f[sy, sx] for f in flows]
    covered, order = covered_by_others(labels, windowed, errors, guide, dilate(mask, 2)[sy, sx])
    costs = motion_costs(photometric_costs(errors, insides, params), windowed, baseline[sy, sx], confidence[sy, sx],
                         params, covered)
    new = assign_motions(costs, pairwise_weights(guide, params.smoothness), cycles=params.cycles, labels=labels,
                         free=dilate(label_changes(labels), params.refine_band))
    out_labels, out_covered = split.labels.copy(), np.zeros_like(split.covered)
    out_labels[sy, sx] = new
    out_covered[sy, sx] = np.take_along_axis(covered, new[None], 0)[0]
    return replace(split, labels=out_labels, covered=out_covered, order=order)


def _region_matches(gray1: np.ndarray, gray2: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int],
                    baseline: np.ndarray, seeds: np.ndarray, params: MotionParams, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The region's matches ``src`` -> ``dst`` (N, 2) float32, full-image px (x, y): at most
    ``params.max_baseline_points`` of the ``seeds`` (h, w) pixels, carried by the ``baseline`` (h, w, 2),
    then the region's own patch matches (:func:`patch_matches`)."""
    y0, _, x0, _ = box
    ys, xs = subsample_points(seeds, params.max_baseline_points, rng)
    b_src = np.stack([xs + x0, ys + y0], 1).astype(np.float32)
    b_dst = b_src + baseline[ys, xs]
    p_src, p_dst = patch_matches(gray1, gray2, mask, box, baseline, params)
    return np.vstack([b_src, p_src]), np.vstack([b_dst, p_dst])


def _fit_with_rematches(img1: np.ndarray, img2: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int],
                        baseline: np.ndarray, src: np.ndarray, dst: np.ndarray, params: MotionParams,
                        rng: np.random.Generator, *, hypotheses: np.ndarray | None
                        ) -> tuple[list[np.ndarray], float, int]:
    """The region's motions (list of (2, 3)) fitted to the matches ``src`` -> ``dst`` (N, 2), the share
    of the matches they explain and the number of matches. The parts that the first fit leaves
    unexplained are matched again (:func:`rematch_unexplained`); when any are, the motions are fitted
    again to all the matches, the rematched ones with a wider inlier distance."""
    affines, owner = fit_motions(src, dst, params, rng, extra=hypotheses)
    r_src, r_dst = rematch_unexplained(img1, img2, mask, box, baseline, affines, params)
    if len(r_src):
        tolerance = np.concatenate([np.full(len(src), params.inlier),
                                    np.full(len(r_src), max(params.inlier, params.rematch_inlier))])
        src, dst = np.vstack([src, r_src]), np.vstack([dst, r_dst])
        # The rematched parts' translations are hypotheses too: a half-hidden part gives few matches,
        # which random samples of the whole region's matches would rarely draw together.
        found = translations(r_dst - r_src)
        extra = found if hypotheses is None else np.concatenate([np.reshape(hypotheses, (-1, 2, 3)), found])
        affines, owner = fit_motions(src, dst, params, rng, extra=extra, inlier=tolerance)
    share = float((owner >= 0).mean()) if affines else 0.0
    return affines, share, len(src)


def _one_motion_split(img1: np.ndarray, img2: np.ndarray, affines: list[np.ndarray], box: tuple[int, int, int, int],
                      shape: tuple[int, int], *, share: float, matches: int) -> MotionSplit:
    """The split of a region (``shape`` (h, w)) with a single motion: nothing to assign or order."""
    y0, _, x0, _ = box
    h, w = shape
    flow = affine_field(affines[0], box)
    error, inside = photometric_error(img1, img2, flow, x0, y0)
    return MotionSplit(list(affines), np.zeros((h, w), np.int32), flow, error, inside, np.zeros((h, w), bool),
                       share, matches, [0])


def _window_errors(img1: np.ndarray, img2: np.ndarray, flows: list[np.ndarray], box: tuple[int, int, int, int],
                   window: tuple[slice, slice]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each motion's photometric error (h', w') grey levels and inside map (h', w') bool over ``window``
    (slices of ``box``), for its flow (h, w, 2) over the box."""
    y0, _, x0, _ = box
    sy, sx = window
    wy0, wx0 = y0 + sy.start, x0 + sx.start
    errors, insides = [], []
    for f in flows:
        err, inside = photometric_error(img1, img2, f[sy, sx], wx0, wy0)
        errors.append(err)
        insides.append(inside)
    return errors, insides


def _window_image(image: np.ndarray, box: tuple[int, int, int, int], window: tuple[slice, slice]) -> np.ndarray:
    """The part of the full ``image`` under ``window`` (slices of ``box``)."""
    y0, _, x0, _ = box
    sy, sx = window
    wy0, wx0 = y0 + sy.start, x0 + sx.start
    return image[wy0:wy0 + (sy.stop - sy.start), wx0:wx0 + (sx.stop - sx.start)]


def _assign_window(flows: list[np.ndarray], errors: list[np.ndarray], insides: list[np.ndarray], guide: np.ndarray,
                   region: np.ndarray, baseline: np.ndarray, confidence: np.ndarray, params: MotionParams
                   ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Each pixel's motion (h', w') int32, where each motion lands on one in front of it (K, h', w')
    bool, and the motions' order back to front; all maps over the window, ``guide`` its frame-t colours.

    A first graph cut on the motions' costs (:func:`motion_costs`) gives the depth order
    (:func:`covered_by_others`, among the pixels of ``region``); where a motion lands on one in front
    of it, a second cut, started from the first, no longer counts its photometric evidence.
    """
    photos = photometric_costs(errors, insides, params)
    labels = solve_assignment(motion_costs(photos, flows, baseline, confidence, params, None), guide, params)
    covered, order = covered_by_others(labels, flows, errors, guide, region)
    if covered.any():
        labels = solve_assignment(motion_costs(photos, flows, baseline, confidence, params, covered), guide, params,
                                  labels=labels)
    return labels, covered, order


def _chosen_maps(flows: list[np.ndarray], errors: list[np.ndarray], insides: list[np.ndarray], labels: np.ndarray,
                 window: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The flow (h, w, 2) of each box pixel's motion in ``labels`` (h', w', over ``window``; the first
    motion's outside it), and the error and inside maps (h', w') of each window pixel's motion."""
    sy, sx = window
    flow = flows[0].copy()
    err = errors[0].copy()
    inside = insides[0].copy()
    for m in range(1, len(flows)):
        chosen = labels == m
        np.copyto(flow[sy, sx], flows[m][sy, sx], where=chosen[..., None])
        np.copyto(err, errors[m], where=chosen)
        np.copyto(inside, insides[m], where=chosen)
    return flow, err, inside


def _in_box(values: np.ndarray, window: tuple[slice, slice], shape: tuple[int, int], dtype: type) -> np.ndarray:
    """A (h, w) = ``shape`` map of the box: ``values`` over ``window``, zero (False) elsewhere."""
    sy, sx = window
    out = np.zeros(shape, dtype)
    out[sy, sx] = values
    return out


def split_motions(img1: np.ndarray, img2: np.ndarray, gray1: np.ndarray, gray2: np.ndarray, mask: np.ndarray,
                  box: tuple[int, int, int, int], baseline: np.ndarray, confidence: np.ndarray,
                  params: MotionParams, rng: np.random.Generator, *, seeds: np.ndarray | None = None,
                  window: tuple[slice, slice] | None = None, hypotheses: np.ndarray | None = None,
                  min_share: float = 0.0, min_motions: int = 1) -> MotionSplit | None:
    """The motions of the thing region ``mask`` (h, w) inside ``box``, and their assignment over ``window``.

    ``img1``, ``img2``: full frames float32 RGB; ``gray1``, ``gray2`` float32 grey; ``baseline`` (h, w, 2)
    and ``confidence`` (h, w) in [0, 1] over the box; ``seeds`` (h, w): the baseline pixels trusted as
    matches (default: confidence >= 0.5 inside the eroded mask). Pixels outside ``window`` (slices of the
    box; default all of it) keep the first motion. ``hypotheses`` (M, 2, 3), optional: motions the
    fit considers beside its own samples (:func:`fit_motions`'s ``extra``). None when no motion is
    supported, or when the motions are fewer than ``min_motions`` or explain less than ``min_share`` of
    the matches: a caller that would throw such a split away is spared its assignment (the graph cuts,
    most of the cost on a large region).
    """
    seeds = (erode(mask, 3) & (confidence >= 0.5)) if seeds is None else seeds
    src, dst = _region_matches(gray1, gray2, mask, box, baseline, seeds, params, rng)
    affines, share, matches = _fit_with_rematches(img1, img2, mask, box, baseline, src, dst, params, rng,
                                                  hypotheses=hypotheses)
    if not affines or len(affines) < min_motions or share < min_share:
        return None
    h, w = shape = mask.shape
    if len(affines) == 1:
        return _one_motion_split(img1, img2, affines, box, shape, share=share, matches=matches)
    window = window if window is not None else (slice(0, h), slice(0, w))
    sy, sx = window
    flows = [affine_field(a, box) for a in affines]
    errors, insides = _window_errors(img1, img2, flows, box, window)
    guide = _window_image(img1, box, window)
    labels, covered, order = _assign_window([f[sy, sx] for f in flows], errors, insides, guide,
                                            dilate(mask, 2)[sy, sx], baseline[sy, sx], confidence[sy, sx], params)
    flow, error, inside = _chosen_maps(flows, errors, insides, labels, window)
    own_covered = np.take_along_axis(covered, labels[None], 0)[0]  # where each pixel's own motion is covered
    return MotionSplit(list(affines), _in_box(labels, window, shape, np.int32), flow,
                       _in_box(error, window, shape, np.float32), _in_box(inside, window, shape, bool),
                       _in_box(own_covered, window, shape, bool), share, matches, order)
