"""The per-instance driver of the thing model: :func:`fit_things` fits :func:`fit_thing` to each instance.

    fits = fit_things(instances, instance_map, ctx, plane_flow=planes_over_baseline)

For one instance, inside its padded box (:func:`thing_box`):

1. evidence first: the instance keeps the baseline without a fit when the baseline already explains
   the box photometrically (a cheap check), or when the baseline is confident on too little of the
   object (motions are fitted to confident pixels only; unconfident flow is no evidence) and matching
   the object itself finds no motion (whole: one translation; else in tiles: the motion split's
   hypotheses);
2. the object layer's motion(s) (:func:`~semflow.layers.things.motion.object_motions`), or, where
   those leave part of the object unexplained, its motion instances
   (:mod:`semflow.layers.things.instances`: own matches, label-cost fitting, graph cut); where one
   motion is a compromise between motions the baseline's confident flow holds, the motion instances
   are tried as a second model after the first was judged (steps 3-5 for each);
3. the background layer's motion, fitted without the strip the object covers in frame t+1
   (:func:`~semflow.layers.things.motion.layer_motion`), or the plane flow around the object when
   that explains the background as well;
4. the assignment of pixels to layers, refined near the mask, and the occluded background
   (:mod:`semflow.layers.things.assignment`);
5. the judgement (:func:`~semflow.layers.things.judgement.judge_model`): the model is accepted when
   its photometric error over the pixels it changes is no worse than the baseline's in the median
   (and below it, where the model leaves most of them unexplained), and then
   :func:`~semflow.layers.veto.baseline_veto` marks the pixels where the baseline still stays.

The motions are fitted on lightly smoothed frames (``ctx.f1``, ``ctx.f2``); the assignment of step 4
and the judgement read the frames as given (``ctx.raw1``, ``ctx.raw2``; ``ThingParams.unsmoothed``),
where the smoothing would mix the colours of the two sides of an outline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

import cv2
import numpy as np

from semflow.forked import map_forked
from semflow.layers.common import dilate, erode, magnitude, photometric_error, photometric_error_at
from semflow.layers.context import PairContext
from semflow.layers.motions import MotionSplit
from semflow.layers.things.assignment import (
    GuidedSmoother,
    colour_log_ratio,
    covered_by,
    hidden_behind,
    refine_assignment,
    window_around,
)
from semflow.layers.things.instances import (
    compromise,
    needs_split,
    seed_deviation,
    split_is_better,
    split_object_motions,
)
from semflow.layers.things.judgement import judge_model
from semflow.layers.things.motion import (
    affine_flow,
    fit_seed_affine,
    layer_motion,
    object_motions,
    searched_motion,
    searched_parts,
)
from semflow.layers.things.params import ThingFit, ThingParams
from semflow.layers.veto import baseline_veto
from semflow.segmentation.regions import Box, Region

T = TypeVar("T")


def thing_box(region: Region, baseline: np.ndarray, params: ThingParams) -> Box:
    """The padded box around an instance: padding grows with its size and with the motion of the
    baseline flow (H, W, 2) on it."""
    height, width = baseline.shape[:2]
    ys, xs = np.nonzero(region.mask)
    ry0, rx0 = region.box[0], region.box[2]
    y0, y1 = ry0 + ys.min(), ry0 + ys.max() + 1
    x0, x1 = rx0 + xs.min(), rx0 + xs.max() + 1
    motion = magnitude(baseline[y0:y1, x0:x1])
    pad = max(params.pad_fraction * max(y1 - y0, x1 - x0), params.min_pad,
              1.5 * float(np.percentile(motion, 95)))
    pad = int(min(pad, params.max_pad))
    return Box(max(0, y0 - pad), min(height, y1 + pad), max(0, x0 - pad), min(width, x1 + pad))


def region_rng(region: Region, seed: int = 0) -> np.random.Generator:
    """The random generator of one region's fit, seeded with ``seed`` (:attr:`ThingParams.seed`) and the
    region's place and size (its box and area), not with its place in a list: a region's draws, and so
    its fit, do not depend on which other regions the frame holds or in which order they are fitted."""
    y0, y1, x0, x1 = (int(v) for v in region.box)
    return np.random.default_rng([seed, y0, y1, x0, x1, int(region.area)])


def fit_thing(region: Region, instance_map: np.ndarray, ctx: PairContext, params: ThingParams,
              rng: np.random.Generator, plane_flow: np.ndarray | None = None, *,
              carried: np.ndarray | None = None) -> ThingFit:
    """Fit the two-layer model of one instance of the pair ``ctx``.

    ``instance_map`` (H, W) int32 holds instance ids (``region.id`` for this one). ``plane_flow``
    (H, W, 2), optional: the flow of the models fitted so far (the accepted planes over the baseline,
    :func:`~semflow.compose.compose_planes`), a candidate for the background layer. ``carried`` (2, 3)
    or (K, 2, 3), optional (video mode): the object's motion(s) in the last pair. One motion is a
    candidate for the object layer's; several (the last pair's model was a motion split) make the
    split the first model tried, with them among its hypotheses.
    """
    box = thing_box(region, ctx.baseline, params)
    y0, y1, x0, x1 = box
    shape = ctx.shape
    f1, f2 = ctx.f1, ctx.f2
    base = ctx.baseline[y0:y1, x0:x1]
    conf_box = ctx.confidence[y0:y1, x0:x1]
    conf = conf_box >= params.min_confidence
    mask = instance_map[y0:y1, x0:x1] == region.id
    others = ctx.thing_pixels[y0:y1, x0:x1] & ~mask
    size = region.size
    m = params.boundary_margin
    base_err_box = ctx.baseline_error[y0:y1, x0:x1]

    def keep_baseline(reason: str, model_error: float = float("nan"), fg_affine: np.ndarray | None = None,
                      bg_affine: np.ndarray | None = None, fg_share: float = 0.0, bg_share: float = 0.0,
                      excess: float = float("nan")) -> ThingFit:
        """The fit that keeps the baseline over the box, and why (with the layers' motions when known)."""
        empty = np.zeros(mask.shape, bool)
        return ThingFit(region=region, box=box, accepted=False, reason=reason, foreground=mask, occluded=empty,
                        others=others, fg_flow=base, bg_flow=base, flow=base, fg_affine=fg_affine,
                        bg_affine=bg_affine, fg_inlier_share=fg_share, bg_inlier_share=bg_share,
                        model_error=model_error, baseline_error=float(base_err_box[mask].mean()), excess_error=excess)

    # Cheap check first: where the baseline explains the whole box, it stays.
    explained = float(np.percentile(cv2.blur(base_err_box, (7, 7)), 99))
    if explained < params.explained_error:
        return keep_baseline(f"the baseline explains the box (99th percentile error {explained:.2f}"
                             f" < {params.explained_error})")

    core = erode(mask, m)
    fg_seeds = core & conf
    searched = None
    searched_in_parts = 0
    if fg_seeds.sum() < params.min_seed_share * core.sum() and carried is None:
        # The baseline is confident on too little of the object: an affine motion fitted there would
        # be an extrapolation over the rest of it, and the baseline's unconfident flow is no evidence.
        # (The motion split, with its own matches, was tried here too: on KITTI it then fitted wrong
        # motions that looked photometrically right.) In video mode the object's last motion is
        # evidence of its own: it is tried, refined and judged photometrically; so is the motion
        # found by matching the whole object, when that match is clear.
        unconfident = (f"baseline confident on {fg_seeds.sum() / max(core.sum(), 1):.2f} of the object"
                       f" (< {params.min_seed_share})")
        if not params.search_missed:
            return keep_baseline(unconfident)
        ring = ~dilate(mask, m + 1) & ~others  # the surroundings' motion is where the search is centred
        around = np.median(base[ring], axis=0) if ring.any() else np.zeros(2)
        claimed = np.median(base[core], axis=0) if core.any() else around
        searched, correlation = searched_motion(core, box, ctx.gray, around, claimed, params)
        if searched is not None:
            carried = searched
        else:
            # No one translation: the object may be touching things of its class that move otherwise.
            # Its tiles' translations and the surroundings' are the split's hypotheses.
            parts = searched_parts(core, box, ctx.gray, around, base, params)
            if not len(parts):
                return keep_baseline(f"{unconfident}; no clear match of the object itself"
                                     + (f" (correlation {correlation:.2f})" if np.isfinite(correlation) else ""))
            surroundings = np.array([[1.0, 0.0, around[0]], [0.0, 1.0, around[1]]])
            carried = np.concatenate([parts, surroundings[None]])
            searched_in_parts = len(parts)
    bg_seeds = ~dilate(mask, m + 1) & ~dilate(others, 2) & conf
    if bg_seeds.sum() < params.min_points:
        bg_seeds = ~dilate(mask, m + 1) & ~dilate(others, 2)

    guide = f1[y0:y1, x0:x1]
    # The object layer matters only near the mask: the assignment moves the outline by up to `band`
    # px, and each guided filter (radius r) reads 2r px around a pixel; one chooses among the object's
    # motions, one refines the assignment. Both work in this window of the box.
    band = float(np.clip(params.refine_band * size, params.min_band, params.max_band))
    win = window_around(mask, int(np.ceil(band)) + 4 * params.filter_radius + 2)
    wy0, wx0 = y0 + win[0].start, x0 + win[1].start
    wbox = Box(wy0, y0 + win[0].stop, wx0, x0 + win[1].stop)
    smooth = GuidedSmoother(guide[win], params)

    def layered_model(fg_affines: list[np.ndarray], fg_share: float, fg_flow: np.ndarray, motion_index: np.ndarray,
                      fg_error: tuple[np.ndarray, np.ndarray], split: MotionSplit | None,
                      rng: np.random.Generator) -> ThingFit:
        """Steps 3-5 for the object layer's motion(s) ``fg_affines`` (their flow (h, w, 2) over the box,
        each pixel's motion, their photometric error and inside maps over the window, the split or None)."""
        fg_affine, bg_affine, bg_share = fg_affines[0], None, 0.0
        layer_seeds = bg_seeds

        def rejected(reason: str, model_error: float = float("nan"), excess: float = float("nan")) -> ThingFit:
            return keep_baseline(reason, model_error, fg_affine, bg_affine, fg_share, bg_share, excess)

        # Background pixels the object covers in frame t+1 have no true match in the baseline: they are
        # found with a first, plain RANSAC fit of the background's motion and left out of its final fit.
        first, _ = fit_seed_affine(base, layer_seeds, box, params, rng)
        if first is not None:
            strip = covered_by(mask, fg_flow, affine_flow(first, box), box, shape)
            if strip.any() and (layer_seeds & ~strip).sum() >= params.min_points:
                layer_seeds = layer_seeds & ~strip
        bg_affine, bg_share, bg_flow = layer_motion(base, layer_seeds, box, ctx.gray, params, rng)
        layer_affine = bg_affine  # (the planes may replace the layer below; the hidden rule wants it)
        if plane_flow is not None and layer_seeds.any():
            # The background may be better described by the models already fitted around the object
            # (a plane's homography, checked on its own): use them as the background layer unless the
            # local affine model explains clearly more of the background's pixels.
            planes = plane_flow[y0:y1, x0:x1]
            plane_share = float((magnitude(base - planes)[layer_seeds] < 2 * params.ransac_threshold).mean())
            affine_share = float((magnitude(base - bg_flow)[layer_seeds] < 2 * params.ransac_threshold)
                                 .mean()) if bg_flow is not None else 0.0
            if plane_share >= affine_share - params.context_preference:
                bg_affine, bg_share, bg_flow = None, plane_share, planes
        if bg_flow is None:
            bg_flow = base  # no usable background: it keeps the baseline

        err_bg, in_bg = photometric_error(f1, f2, bg_flow, x0, y0)
        # The object layer's error, in the window (outside it the object is never used).
        err_fg, in_fg = err_bg.copy(), in_bg.copy()
        err_fg[win], in_fg[win] = fg_error

        # Refine the assignment in a band around the mask; occluded background says nothing photometric.
        covered = covered_by(mask[win], fg_flow[win], bg_flow[win], wbox, shape)
        # (On the frames as given, with ``unsmoothed``: the smoothed ones mix the colours of the two sides.)
        if params.unsmoothed:
            seen_bg = photometric_error(ctx.raw1, ctx.raw2, bg_flow[win], wx0, wy0)[0]
            seen_fg = photometric_error(ctx.raw1, ctx.raw2, fg_flow[win], wx0, wy0)[0]
        else:
            seen_bg, seen_fg = err_bg[win], err_fg[win]
        cost_fg = np.where(in_fg[win], seen_fg, seen_bg)
        cost_bg = np.where(in_bg[win] & ~covered, seen_bg, cost_fg)
        colour = colour_log_ratio(guide, erode(mask, m), layer_seeds | (~dilate(mask, m + 1) & ~others))[win]
        cost_fg = cost_fg - 0.5 * params.colour_weight * colour
        cost_bg = cost_bg + 0.5 * params.colour_weight * colour
        foreground = np.zeros_like(mask)
        foreground[win] = refine_assignment(mask[win], cost_fg, cost_bg, smooth, band, params)
        foreground &= ~others
        if params.hidden_behind:
            # The background's motion carried under the object (where the layer's flow, or the planes',
            # is the baseline's): for background that the object hides in frame t+1.
            under = bg_flow if layer_affine is None else affine_flow(layer_affine, box)
            lost = hidden_behind(foreground, foreground | mask, fg_flow, under, err_fg, err_bg, in_fg, box, shape,
                                 unexplained=params.hidden_error, reach=params.hidden_reach,
                                 min_pixels=params.min_points)
            if split is not None:  # a motion's pixels that another covers are the split's to place
                lost &= ~split.covered
            if others.any() and lost.any():  # the object's own pixels that another thing hides
                lost &= ~covered_by(others, base, fg_flow, box, shape)
            if lost.any():
                foreground &= ~lost
                bg_flow = np.where(lost[..., None], under, bg_flow)
        occluded = covered_by(foreground, fg_flow, bg_flow, box, shape)
        if split is not None:  # object pixels that a motion in front of theirs covers in frame t+1
            occluded |= split.covered & foreground

        flow = np.where(foreground[..., None], fg_flow, bg_flow)
        # Background pixels that another thing covers in frame t+1 (it moves as the baseline says) have no
        # photometric evidence for the background's motion either: a touching thing would reject a right model.
        hidden = covered_by(others, base, bg_flow, box, shape) & ~foreground if others.any() else others
        # Nor have the background pixels that the object as given (the mask) covers in frame t+1: where
        # the assignment took a strip off the object's leading edge, ``occluded`` (from the refined
        # object) misses the background that strip covers, and a right model was rejected there.
        # (Where it took nothing off, that is ``occluded`` itself.)
        if (mask & ~foreground).any():
            hidden = hidden | covered_by(foreground | mask, fg_flow, bg_flow, box, shape)
        judged = ~occluded & ~others & ~hidden & np.where(foreground, in_fg, in_bg)
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
        # The errors judged (medians, in judge_model), on the frames as given with ``unsmoothed``: the
        # judged pixels gather where the flows differ, often along the seams between motions, and there
        # the smoothed frames mix two things' colours.
        if params.unsmoothed:
            ys, xs = np.nonzero(judged)
            model_pixels = photometric_error_at(ctx.raw1, ctx.raw2, ys + y0, xs + x0, flow[judged])
            base_pixels = photometric_error_at(ctx.raw1, ctx.raw2, ys + y0, xs + x0, base[judged])
        else:
            model_pixels = np.where(foreground, err_fg, err_bg)[judged]
            base_pixels = base_err_box[judged]
        model_err, base_err, worse, objection = judge_model(model_pixels, base_pixels, params)
        if objection:
            return rejected(objection, model_error=model_err, excess=worse)
        # Per pixel, the baseline stays where it explains the frames clearly better than the layered
        # model, or is confident, different and not clearly worse; occluded background pixels have no
        # photometric evidence either way and keep the layer.
        error = np.where(foreground, err_fg, err_bg)
        window = (params.veto.window, params.veto.window)
        veto = baseline_veto(cv2.blur(error, window), cv2.blur(base_err_box, window), magnitude(flow - base),
                             conf_box, params.veto)
        motions = []
        if params.motion_split:  # the instances for reports, back to front
            for k in (split.order if split is not None else range(len(fg_affines))):
                a, own = fg_affines[k], foreground & (motion_index == k)
                cy, cx = (np.mean(c) for c in np.nonzero(own if own.any() else foreground))
                centre = np.array([cx + x0, cy + y0])  # (its own pixels' centroid: a motion of a parked car
                motions.append({"motion": int(k),    # read at the group's centre was 5 px off)
                                "flow_at_centre": [round(float(v), 2) for v in a[:, :2] @ centre + a[:, 2] - centre],
                                "affine": [round(float(v), 5) for v in a.ravel()],
                                "pixels": int(own.sum())})
        return ThingFit(region=region, box=box, accepted=True, reason="ok", foreground=foreground, occluded=occluded,
                        others=others, fg_flow=fg_flow, bg_flow=bg_flow, flow=flow, fg_affine=fg_affine,
                        bg_affine=bg_affine, fg_inlier_share=fg_share, bg_inlier_share=bg_share,
                        model_error=model_err, baseline_error=base_err, excess_error=worse, error=error,
                        veto=veto & ~occluded,
                        motions=motions, fg_affines=[np.asarray(a) for a in fg_affines],
                        motion_labels=np.where(foreground, motion_index, -1) if params.motion_split else None)

    # Video mode: a thing whose last model had several motions is tried as a split again, whether
    # or not this pair's single motion leaves much unexplained: touching objects that moved apart
    # by a few px in the last pair still do, and a single compromise motion would hide it.
    several = carried is not None and np.ndim(carried) == 3 and len(carried) > 1
    one_carried = None if carried is None or several else np.reshape(carried, (2, 3))
    split, split_carried = None, False
    fg_affines, fg_share, fg_flow, motion_index, fg_error, took_carried = object_motions(
        base, fg_seeds, smooth, ctx, box, params, rng, erode(mask, 1), window=win, carried=one_carried)
    if fg_flow is not None and fg_error is None:  # (once: the split's trigger and the layered model read it)
        fg_error = photometric_error(f1, f2, fg_flow[win], wx0, wy0)
    tried_split = params.motion_split and (several or needs_split(mask[win], fg_error, params))
    if tried_split:
        # Where the one motion already fails the inlier-share test below (or there is none), a split
        # that explains too few matches fails it too: it is given up before its assignment, and the
        # thing keeps the baseline either way (KITTI's 57k px car region with dis-medium: 0.5 s).
        hopeless = fg_flow is None or fg_share < params.min_inlier_share
        found = split_object_motions(base, fg_seeds, mask, conf_box, ctx, box, params, rng, win,
                                     hypotheses=carried if several else None,
                                     min_share=params.min_inlier_share if hopeless else 0.0)
        if found[2] is not None and split_is_better(mask[win], fg_error, found[3], params):
            fg_affines, fg_share, fg_flow, fg_error, split = found
            motion_index, took_carried, split_carried = split.labels, False, several and len(found[0]) > 1
    if fg_flow is None:
        return keep_baseline("no object motion (too few object pixels, or the split's motions explain"
                             f" < {params.min_inlier_share} of its matches)" if tried_split
                             else "too few object pixels to fit a motion")
    if fg_share < params.min_inlier_share:
        return keep_baseline(f"object inlier share {fg_share:.2f} < {params.min_inlier_share}",
                             fg_affine=fg_affines[0], fg_share=fg_share)
    fit = layered_model(fg_affines, fg_share, fg_flow, motion_index, fg_error, split, rng)
    if took_carried and searched is not None:  # say so in the explain report
        fit = replace(fit, reason=f"{fit.reason}; its motion from matching the object itself"
                                  f" ({correlation:.2f} correlation)")
    elif took_carried and fit.accepted:  # video mode
        fit = replace(fit, reason="ok; the object's motion carried from the last pair")
    if searched_in_parts and fit.accepted:
        fit = replace(fit, reason=f"ok; motions from matching {searched_in_parts} part(s) of the object")
    elif split_carried and fit.accepted:
        fit = replace(fit, reason="ok; several motions, as in the last pair")
    if tried_split or not params.motion_split or not np.isfinite(fit.excess_error):
        return fit
    # A mask over objects that move a few px apart gets one compromise affine from the sequential
    # RANSAC (within its 2 px of both): its photometric error is small everywhere, so the split's
    # trigger above (a share of clearly unexplained pixels) never sees it, and the judgement, against
    # the baseline's error, rejects it or, against a weaker baseline, takes it. When the baseline's
    # confident flow on the object says the motion is a compromise (the residual's structure, not its
    # size), the split is tried as the alternative model, judged the same way, with its own random
    # stream (its draws do not depend on how many the first model took); it replaces the first model
    # when accepted and no worse than it on the judgement's median.
    retry_rng = rng.spawn(1)[0]
    if not compromise(base, fg_seeds, fg_flow, box, params, retry_rng):
        return fit
    found = split_object_motions(base, fg_seeds, mask, conf_box, ctx, box, params, retry_rng, win,
                                 min_share=params.min_inlier_share, min_motions=2)
    if found[2] is None:  # (one motion, or too few matches explained: given up early)
        return fit
    # The split's motions must explain the baseline's confident flow on the object about as well as the
    # compromise did (the baseline saw the motions it compromises between): on non-rigid things (Sintel's
    # characters) the split's parts instead chase the photometry away from the confident flow, and
    # the median photometric judgement alone let such worse models through.
    if seed_deviation(found[2], base, fg_seeds, params) > seed_deviation(fg_flow, base, fg_seeds, params) \
            + params.retry_tolerance:
        return fit
    retry = layered_model(found[0], found[1], found[2], found[4].labels, found[3], found[4], retry_rng)
    if not retry.accepted or retry.excess_error > fit.excess_error:
        return fit
    return replace(retry, reason=f"ok; motion split (one motion: median error {fit.excess_error:+.2f} against"
                                 " the baseline's)")


def fit_things(regions: list[Region], instance_map: np.ndarray, ctx: PairContext, params: ThingParams | None = None,
               *, plane_flow: np.ndarray | None = None) -> list[ThingFit]:
    """:func:`fit_thing` for each instance at least ``params.min_area`` pixels large, in order.

    ``regions``: the instances, each with its ``id`` in ``instance_map`` (H, W) int32, as
    :func:`~semflow.segmentation.instances.extract_instances` returns them. The random draws come
    from a generator of each region's own (:func:`region_rng`), so that a region's fit is reproducible
    whatever else the list holds, and the same in whichever process it is fitted (:func:`fit_all`).
    """
    params = params or ThingParams()
    unnumbered = [k for k, region in enumerate(regions) if region.id <= 0]
    if unnumbered:  # id 0 would select the pixels outside every instance
        raise ValueError(f"thing regions need their instance id (Region.id > 0); regions {unnumbered} have none")

    def fit_one(region: Region) -> ThingFit:
        return fit_thing(region, instance_map, ctx, params, region_rng(region, params.seed), plane_flow)

    todo = [region for region in regions if region.area >= params.min_area]
    return fit_all(fit_one, todo, [region.area for region in todo], params)


def fit_all(fit_one: Callable[[T], ThingFit], jobs: list[T], areas: list[int], params: ThingParams) -> list[ThingFit]:
    """``[fit_one(job) for job in jobs]``, shared between ``params.processes`` processes when the jobs'
    regions (``areas``, px) hold ``params.parallel_pixels`` pixels together
    (:func:`semflow.forked.map_forked`: the same fits, in the same order)."""
    if sum(areas) >= params.parallel_pixels:  # (map_forked runs one process's loop itself)
        return map_forked(fit_one, jobs, costs=areas, processes=params.processes)
    return [fit_one(job) for job in jobs]
