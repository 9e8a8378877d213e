"""Sharper motion boundaries in any dense flow: local motion layers where the flow jumps (issue 15).

Interpolating flows (EpicFlow's, DIS's) carry a background's motion a few pixels into the object in
front of it, or the object's into the background: "fattening". This step redoes the flow where it
jumps, as a small layered problem per place:

1. **Where.** Pixels whose flow, ``radius`` px away on two opposite sides (across, down or along a
   diagonal), differs by more than max(``jump``, ``jump_relative`` * |flow|) (:func:`flow_jumps`),
   widened by ``widen`` px: the *uncertain* pixels. Each connected group of them is one region, solved in
   its box padded by ``margin`` px; the box's other pixels are *trusted*.
2. **Motions.** Affine motions of the trusted pixels' flow, fitted with a label cost
   (:func:`~semflow.fitting.motion_fit.fit_motions`, as the things layer does for touching things); then
   the motion of the uncertain pixels' flow that most of those none of these explains move with
   (:func:`missed_motions`: a thing too narrow to have trusted pixels of its own). A region with fewer than two motions is left alone,
   and so is one whose trusted pixels its motions do not explain (``min_explained``).
3. **Assignment.** Each box pixel within ``cut_reach`` px of an uncertain one takes one motion by a
   graph cut (:func:`~semflow.fitting.graph_cut.solve_assignment`; the others keep the motion nearest
   their flow): uncertain pixels by the photometric error of
   each motion (smoothed over about 1 px) plus a small cost for leaving their flow's motion, trusted
   pixels by how far their flow is from the motion (a larger cost), with
   a contrast-sensitive Potts term; pixels that a motion in front covers in frame t+1
   (:func:`~semflow.layers.motions.covered_by_others`) have no photometric evidence and cost little.
   **Polish.** Each motion is then refined photometrically
   (:func:`~semflow.layers.common.refine_warp`: Lucas-Kanade on the affine) over the pixels it was
   given that stay visible, and kept when that lowers their mean colour error (``polish``); with any
   motion refined, the assignment is solved again. The fit above sees only the flow, and a narrow
   thing's few trusted pixels plus a few fattened ones beside it can tilt its affine by a pixel over
   its width (a pedestrian of the hard scenes, with seed 0); the colours over all its pixels do not.
4. **Flow.** An uncertain pixel takes its motion's affine flow plus the residual (flow minus affine) of
   the nearest trusted pixel of that motion, so flows that are not exactly affine keep their detail.
5. **Check.** The region's new flow is kept only when, over its changed pixels that stay visible,
   clearly more pixels match better in frame t+1 than worse (by ``win_margin`` grey levels; at least
   ``win_ratio`` times as many, ``min_wins``, and ``min_share`` of the region). Pixels hidden in frame
   t+1 are left out of the count: those the new flow's motions in front cover, and those the old flow
   shows as hidden (:func:`~semflow.warp.hidden_by_collision`: they land where pixels that match land)
   when under the new flow they land where another motion lands too
   (:func:`~semflow.warp.landing_conflicts`): no flow explains them, and a wrong flow often matches
   them best. (The old flow alone cannot tell a hidden pixel from one whose flow is wrong: a background
   pixel carried with the object beside it also lands among pixels that match; under the new flow it
   lands on its own.)

Flows are float32 (H, W, 2) (u, v) px, frame t -> t+1; images uint8 RGB (H, W, 3); boxes are
(y0, y1, x0, x1) in pixels. Measured by ``scripts/bench_sharpen.py`` (BENCHMARKS.md, section sharpen).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from semflow.fitting.graph_cut import solve_assignment
from semflow.fitting.motion_fit import MotionParams, affine_field, affine_residuals, fit_motions, plausible
from semflow.flow_jumps import flow_jumps, near_jumps
from semflow.io.flow import check_flow
from semflow.layers.common import (
    GrayFrames,
    dilate,
    gray_frames,
    magnitude,
    photometric_error,
    prepare_image,
    refine_warp,
    subsample_points,
)
from semflow.layers.motions import covered_by_others, photometric_costs
from semflow.warp import hidden_by_collision, landing_conflicts, smoothed_error, smoothed_photometric_error

Box = tuple[int, int, int, int]


BOUNDARY_MOTIONS = MotionParams(cycles=2)
"""The boundary layers' motion settings: two alpha-expansion cycles, as ``--sharpen`` was measured with
(one, the things layer's, was not measured there). Pixels that no motion explains, or that a motion
carries out of the frame, tie as in the things layer (``explained``). Side by side with every error
counting (BENCHMARKS.md section sharpen, seed table, rows ``no ties``; change of whole-image EPE
against the unsharpened flow, mean of 4 seeds): `discrete` hard scenes -48.6 -> -49.4 %, held-out
-51.8 -> -54.7 %, photo groups -12.9 -> -13.8, -16.5 -> -16.9, but fresh -15.1 -> -14.4 %, Middlebury
-2.4 -> -2.6 %, Chairs -4.7 -> -4.0 %, KITTI and Sintel the same; `dis-medium` alike (fresh -13.2 ->
-12.5 %, Chairs -4.0 -> -3.9 %, the rest gains)."""


@dataclass(frozen=True)
class BoundaryLayerParams:
    """Settings of :func:`sharpen_boundaries` (distances in px, errors in grey levels)."""

    radius: int = 8
    """Distance to the two sides compared when looking for a jump of the flow."""
    jump: float = 6.0
    """Smallest difference of the two sides' flows that counts as a jump..."""
    jump_relative: float = 0.3
    """...and at least this times the pixel's flow magnitude."""
    widen: int = 3
    """The jumps' pixels widened by this much are the uncertain pixels."""
    margin: int = 10
    """Padding of a region's box: its trusted pixels come from here."""
    min_pixels: int = 30
    """Smaller regions are left alone."""
    samples: int = 600
    """Trusted pixels sampled per region for fitting its motions."""
    min_explained: float = 0.7
    """A region is left alone, before its graph cut, when its motions explain less than this share of
    its sampled trusted pixels: its flow is not a few affine layers (a road in perspective, a non-rigid
    surface). On the benchmark data only KITTI has such regions (42-46 % unexplained; elsewhere at most
    16 %); two of its three were rejected by step 5 after their graph cut anyway, and skipping them
    takes the step from 1.4 to 0.8 s there (side by side, one process each, 3 runs)."""
    uncertain_samples: int = 150
    """Uncertain pixels that no motion fitted to the trusted ones explains, sampled per region to look for
    a motion those miss: a thing narrower than about twice ``radius`` (a pedestrian) has hardly any
    trusted pixels. The motion most of them move with..."""
    min_support: int = 20
    """...joins when at least this many do."""
    blend_radius: int = 3
    """Uncertain pixels whose flow changes by more than 1 px across this distance (blends of two
    motions, where an interpolation crosses a boundary) are not sampled."""
    cut_reach: int = 6
    """Only pixels within this many px of an uncertain pixel take part in the graph cut; the box's other
    (trusted) pixels keep the motion nearest their flow. (With the whole box in the cut, the Potts term
    moved whole stretches of trusted pixels: a far car behind a parked one took its motion.)"""
    anchor: float = 10.0
    """Cost per px (up to 3 px) of giving a trusted pixel a motion its flow does not have."""
    prior: float = 1.0
    """Cost per px (up to 3 px) of giving an uncertain pixel a motion its flow does not have, added to
    its photometric error: where the colours cannot tell the motions apart (a weakly textured inside),
    the flow's own motion wins."""
    blur: float = 1.0
    """Sigma (px) of the smoothing of the photometric errors."""
    residual_reach: float = 3.0
    """An uncertain pixel takes the residual of a trusted pixel at most this times ``radius`` away."""
    win_margin: float = 2.0
    """A pixel matches better or worse when its error differs by more than this."""
    win_ratio: float = 2.5
    """A region's new flow is kept when this times as many pixels match better as worse... (Rigid
    things against their background score 4.5-11 on the hard scenes; a region of Sintel's hair, whose
    affine layers are wrong, scored 1.6-1.8 over the seeds and passed the 1.5 used before.)"""
    min_wins: int = 20
    """...and at least this many match better..."""
    min_share: float = 0.01
    """...and at least this share of the region's pixels. (0.05 before the old flow's hidden pixels were
    left out of the count, step 5: an exact flow's hidden pixels, which the motion in front matches
    better, passed 0.01. At 0.05 a far car passing behind parked ones, 201 better of a 13.5k px region,
    failed; section sharpen, rows ``min_share 0.05``.)"""
    matched: float = 8.0
    """A pixel matches under a flow when its colour error there is below this (step 5's hidden pixels)..."""
    apart: float = 2.0
    """...and two flows are two motions when they differ by more than this (px, in u or v)."""
    polish: bool = True
    """Refine each motion photometrically over the pixels it was given, and assign again (step 3)..."""
    polish_pixels: int = 50
    """...a motion given fewer visible pixels than this is not refined..."""
    polish_points: int = 3000
    """...and the refinement samples at most this many of them."""
    seed: int = 0
    """Seed of the motion fitting's random samples; each region draws from its own stream (seeded by this
    and its box), so the result is deterministic and a region's does not depend on the others'."""
    motions: MotionParams = BOUNDARY_MOTIONS
    """Settings of the motion fitting and the assignment (those of the things layer, but for the cycles)."""


@dataclass(frozen=True)
class RegionReport:
    """What happened in one uncertain region: its ``box``, ``pixels`` (uncertain), ``motions`` fitted,
    ``kept`` (its new flow), the changed visible pixels that match ``better`` and ``worse``, and the
    share of its sampled trusted pixels that the motions fitted to them ``explained``."""

    box: Box
    pixels: int
    motions: int
    kept: bool
    better: int = 0
    worse: int = 0
    changed: int = 0
    explained: float = 0.0


def uncertain_pixels(flow: np.ndarray, params: BoundaryLayerParams) -> np.ndarray:
    """(H, W) bool: pixels near a jump of ``flow`` (H, W, 2), widened (step 1 of the module docstring)."""
    return near_jumps(flow, radius=params.radius, jump=params.jump, relative=params.jump_relative,
                      widen=params.widen)


def missed_motions(flow: np.ndarray, uncertain: np.ndarray, box: Box, affines: list[np.ndarray],
                   params: BoundaryLayerParams, rng: np.random.Generator) -> list[np.ndarray]:
    """The affine motion (2, 3) of ``flow`` (h, w, 2, over ``box``) at the ``uncertain`` (h, w) pixels
    that no motion in ``affines`` explains (within ``params.motions.inlier`` px): a list of at most one,
    the motion most of ``params.uncertain_samples`` of those pixels move with, when at least
    ``params.min_support`` do. Pixels where the flow itself blends two motions (it changes by more than
    1 px across ``params.blend_radius`` px) are left out. (The samples are drawn from the unexplained
    pixels, not from all uncertain ones: a far car, a tenth of a street's region, drew too few.)"""
    m = params.motions
    if params.uncertain_samples <= 0 or not affines:
        return []
    smooth = uncertain & ~dilate(flow_jumps(flow, radius=params.blend_radius, jump=1.0, relative=0.1), 1)
    ys, xs = np.nonzero(smooth)
    src = np.stack([xs + box[2], ys + box[0]], 1).astype(np.float64)
    left = affine_residuals(np.asarray(affines), src, src + flow[ys, xs]).min(axis=0) > m.inlier
    unexplained = np.zeros_like(smooth)
    unexplained[ys[left], xs[left]] = True
    ys, xs = subsample_points(unexplained, params.uncertain_samples, rng)
    if len(ys) < params.min_support:
        return []
    src = np.stack([xs + box[2], ys + box[0]], 1).astype(np.float64)
    found, owner = fit_motions(src, src + flow[ys, xs], m, rng)
    if not found:
        return []
    support = np.bincount(owner[owner >= 0], minlength=len(found))
    best = int(np.argmax(support))
    return [found[best]] if support[best] >= params.min_support else []


def _padded_box(rows: slice, cols: slice, shape: tuple[int, int], margin: int) -> Box:
    h, w = shape
    return (max(0, rows.start - margin), min(h, rows.stop + margin),
            max(0, cols.start - margin), min(w, cols.stop + margin))


def _costs(flows: list[np.ndarray], errors: list[np.ndarray], inside: list[np.ndarray], flow: np.ndarray,
           uncertain: np.ndarray, params: BoundaryLayerParams) -> np.ndarray:
    """Unary costs (K, h, w) of the motions (step 3): photometric where uncertain, anchored where trusted."""
    out = []
    for f, photo in zip(flows, photometric_costs(errors, inside, params.motions)):
        if params.blur > 0:
            photo = cv2.GaussianBlur(photo, (0, 0), params.blur)
        away = np.minimum(magnitude(flow - f), 3.0)
        out.append(np.where(uncertain, photo + params.prior * away, params.anchor * away))
    return np.stack(out).astype(np.float32)


def _layer_flow(flows: list[np.ndarray], labels: np.ndarray, flow: np.ndarray, uncertain: np.ndarray,
                params: BoundaryLayerParams) -> np.ndarray:
    """The box's flow with uncertain pixels given their motion plus a nearby trusted residual (step 4)."""
    out = flow.copy()
    reach = params.residual_reach * params.radius
    for m, f in enumerate(flows):
        chosen = uncertain & (labels == m)
        if not chosen.any():
            continue
        anchors = ~uncertain & (labels == m)
        value = f.copy()
        if anchors.any():
            dist, (iy, ix) = ndimage.distance_transform_edt(~anchors, return_indices=True)
            near = (dist <= reach)[..., None]
            value += np.where(near, flow[iy, ix] - f[iy, ix], 0.0)
        out[chosen] = value[chosen]
    return out


def _assign(img1: np.ndarray, img2: np.ndarray, guide: np.ndarray, sub: np.ndarray, uncertain: np.ndarray,
            affines: list[np.ndarray], box: Box, params: BoundaryLayerParams
            ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
    """Step 3's graph cut over the box: each motion's flow and photometric error, the labels (h, w), and
    where each motion lands on one in front of it (K, h, w) bool."""
    y0, _, x0, _ = box
    flows = [affine_field(a, box) for a in affines]
    errors, inside = map(list, zip(*(photometric_error(img1, img2, f, x0, y0) for f in flows)))
    costs = _costs(flows, errors, inside, sub, uncertain, params)
    free = dilate(uncertain, params.cut_reach)
    labels = solve_assignment(costs, guide, params.motions, free=free)
    covered, _ = covered_by_others(labels, flows, errors, guide)
    if covered.any():
        hidden_cost = np.minimum(costs, params.motions.occluded_cost)
        labels = solve_assignment(np.where(covered & uncertain[None], hidden_cost, costs), guide, params.motions,
                                  labels=labels, free=free)
        covered, _ = covered_by_others(labels, flows, errors, guide)
    return flows, errors, labels, covered


def _polish(img1: np.ndarray, img2: np.ndarray, gray: GrayFrames, affines: list[np.ndarray],
            errors: list[np.ndarray], labels: np.ndarray, covered: np.ndarray, box: Box,
            params: BoundaryLayerParams, rng: np.random.Generator) -> list[np.ndarray] | None:
    """The motions refined photometrically over their visible pixels (step 3's polish), or None when
    none of them gets better."""
    out, changed = list(affines), False
    for m, affine in enumerate(affines):
        support = (labels == m) & ~covered[m]
        if support.sum() < params.polish_pixels:
            continue
        refined = refine_warp(gray.gray1, gray.gray2, affine, support, box, rng=rng,
                              max_points=params.polish_points, target=gray.target)
        if refined is None or not plausible(refined[None], params.motions.max_stretch)[0]:
            continue
        error, _ = photometric_error(img1, img2, affine_field(refined, box), box[2], box[0])
        if error[support].mean() < errors[m][support].mean():
            out[m], changed = refined, True
    return out if changed else None


def sharpen_region(img1: np.ndarray, img2: np.ndarray, guide: np.ndarray, flow: np.ndarray, region: np.ndarray,
                   uncertain: np.ndarray, box: Box, params: BoundaryLayerParams, rng: np.random.Generator,
                   gray: GrayFrames | None = None) -> tuple[np.ndarray | None, RegionReport]:
    """New flow (h, w, 2) for one region's box, or None where it is left alone, and its report.

    ``img1``, ``img2``: full frames as :func:`~semflow.layers.common.prepare_image` makes them;
    ``guide``: frame t (h, w, 3) float32 over the box, unsmoothed (the assignment's colour edges);
    ``flow``: the full flow; ``region``, ``uncertain`` (h, w) bool over the box: this region's pixels
    and every uncertain pixel (none of them is a trusted anchor); ``gray``: :func:`gray_frames` of the
    full frames, for the polish (None: no polish).
    """
    y0, y1, x0, x1 = box
    sub = flow[y0:y1, x0:x1]
    report = RegionReport(box, int(region.sum()), 0, False)
    ys, xs = subsample_points(~uncertain, params.samples, rng)
    if len(ys) < params.motions.min_matches:
        return None, report
    src = np.stack([xs + x0, ys + y0], 1).astype(np.float64)
    affines, owner = fit_motions(src, src + sub[ys, xs], params.motions, rng)
    explained = float((owner >= 0).mean())
    if explained < params.min_explained:  # not a few affine layers: the model has nothing to offer
        return None, RegionReport(box, report.pixels, len(affines), False, explained=explained)
    affines += missed_motions(sub, uncertain, box, affines, params, rng)
    report = RegionReport(box, report.pixels, len(affines), False, explained=explained)
    if len(affines) < 2:
        return None, report
    flows, errors, labels, covered = _assign(img1, img2, guide, sub, uncertain, affines, box, params)
    if params.polish and gray is not None:
        polished = _polish(img1, img2, gray, affines, errors, labels, covered, box, params, rng)
        if polished is not None:
            affines = polished
            flows, errors, labels, covered = _assign(img1, img2, guide, sub, uncertain, affines, box, params)
    new = _layer_flow(flows, labels, sub, uncertain, params)
    hidden = np.take_along_axis(covered, labels[None], 0)[0]  # under the new flow
    old_error, _ = photometric_error(img1, img2, sub, x0, y0)
    hidden |= (hidden_by_collision(sub, old_error, matched=params.matched)  # under the old flow...
               & landing_conflicts(new, apart=params.apart))  # ...and under the new one
    changed = region & (magnitude(new - sub) > 0.5) & ~hidden
    before = smoothed_error(old_error, blur=params.blur, cap=params.motions.truncation)
    after, _ = smoothed_photometric_error(img1, img2, new, x0, y0, blur=params.blur, cap=params.motions.truncation)
    better = int((changed & (after + params.win_margin < before)).sum())
    worse = int((changed & (before + params.win_margin < after)).sum())
    kept = bool(better >= max(params.min_wins, params.win_ratio * worse, params.min_share * region.sum()))
    return (new if kept else None), RegionReport(box, report.pixels, len(affines), kept, better, worse,
                                                 int(changed.sum()), explained)


def sharpen_boundaries(img1: np.ndarray, img2: np.ndarray, flow: np.ndarray,
                       params: BoundaryLayerParams | None = None) -> tuple[np.ndarray, list[RegionReport]]:
    """``flow`` (H, W, 2) with its motion boundaries redone by local motion layers (module docstring),
    and a report per uncertain region. Pixels outside the kept regions are returned unchanged.
    InputError for a flow with NaN, inf or unknown values; ValueError when the shapes do not agree."""
    params = params or BoundaryLayerParams()
    flow = check_flow(flow, name="sharpen_boundaries")  # InputError on NaN, inf or the unknown marker
    if flow.shape[:2] != img1.shape[:2] or img1.shape != img2.shape or img1.ndim != 3:
        raise ValueError(f"sharpen_boundaries: flow {flow.shape} and frames {img1.shape}, {img2.shape} "
                         "must be (H, W, 2) and (H, W, 3)")
    uncertain = uncertain_pixels(flow, params)
    out = flow.copy()
    if not uncertain.any():
        return out, []
    f1, f2 = prepare_image(img1), prepare_image(img2)
    gray = gray_frames(f1, f2) if params.polish else None
    groups, _ = ndimage.label(uncertain)
    reports = []
    for index, (rows, cols) in enumerate(ndimage.find_objects(groups), 1):
        region_full = groups[rows, cols] == index
        if region_full.sum() < params.min_pixels:
            continue
        box = _padded_box(rows, cols, flow.shape[:2], params.margin)
        y0, y1, x0, x1 = box
        region = groups[y0:y1, x0:x1] == index
        guide = img1[y0:y1, x0:x1].astype(np.float32)
        rng = np.random.default_rng([params.seed, y0, x0])  # each region its own stream: independent of the others
        new, report = sharpen_region(f1, f2, guide, flow, region, uncertain[y0:y1, x0:x1], box, params, rng,
                                     gray)
        reports.append(report)
        if new is not None:
            np.copyto(out[y0:y1, x0:x1], new, where=region[..., None])
    return out, reports
