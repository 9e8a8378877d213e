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

Steps 1-2 are this module's (:func:`check_evidence`, :func:`first_object_layer`), with the retry of
step 2's motion split (:func:`retried_split`); steps 3-5 are
:func:`~semflow.layers.things.layered.layered_model`'s.

The motions are fitted on lightly smoothed frames (``ctx.f1``, ``ctx.f2``); the assignment of step 4
and the judgement read the frames as given (``ctx.raw1``, ``ctx.raw2``; ``ThingParams.unsmoothed``),
where the smoothing would mix the colours of the two sides of an outline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

import cv2
import numpy as np

from semflow.forked import map_forked
from semflow.layers.common import dilate, erode, magnitude, photometric_error
from semflow.layers.context import PairContext
from semflow.layers.things.assignment import GuidedSmoother, window_around
from semflow.layers.things.instances import (
    compromise,
    needs_split,
    seed_deviation,
    split_is_better,
    split_object_motions,
)
from semflow.layers.things.layered import FitInputs, ObjectLayer, ThingBox, keep_baseline, layered_model
from semflow.layers.things.motion import object_motions, searched_motion, searched_parts
from semflow.layers.things.params import ThingFit, ThingParams
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
    thing = cut_thing(region, instance_map, ctx, params)
    evidence = check_evidence(thing, ctx, params, carried)  # 1. evidence first
    if isinstance(evidence, ThingFit):
        return evidence
    inputs = fit_inputs(thing, evidence.fg_seeds, ctx, params, plane_flow)
    first = first_object_layer(inputs, evidence.carried, rng)  # 2. the object layer
    layer = first.layer
    if layer is None:
        return keep_baseline(thing, "no object motion (too few object pixels, or the split's motions explain"
                             f" < {params.min_inlier_share} of its matches)" if first.tried_split
                             else "too few object pixels to fit a motion")
    if layer.share < params.min_inlier_share:
        return keep_baseline(thing, f"object inlier share {layer.share:.2f} < {params.min_inlier_share}",
                             fg_affine=layer.affines[0], fg_share=layer.share)
    fit = with_origin(layered_model(inputs, layer, rng), evidence, first)  # 3.-5. the layered model
    if first.tried_split or not params.motion_split or not np.isfinite(fit.excess_error):
        return fit
    return retried_split(inputs, layer, fit, rng)


@dataclass(frozen=True, eq=False)
class Evidence:
    """What step 1 leaves for the fit: the object's confident pixels ``fg_seeds`` (h, w) bool, and the
    motion(s) ``carried`` ((2, 3), (K, 2, 3) or None) the object layer starts from: video mode's, or
    found by matching the object where the baseline is confident on too little of it: ``searched``
    (2, 3), the whole object's translation (``correlation`` its match's), or else the translations of
    ``parts`` of its tiles and the surroundings'."""

    fg_seeds: np.ndarray
    carried: np.ndarray | None
    searched: np.ndarray | None = None
    correlation: float = float("nan")
    parts: int = 0


@dataclass(frozen=True, eq=False)
class FirstModel:
    """Step 2's object ``layer`` (None: no motion found), whether the motion split was tried, whether
    the layer's motion is the one carried in, and whether its several motions are the last pair's."""

    layer: ObjectLayer | None
    tried_split: bool
    took_carried: bool
    split_carried: bool


def cut_thing(region: Region, instance_map: np.ndarray, ctx: PairContext, params: ThingParams) -> ThingBox:
    """The instance ``region`` (its pixels: ``region.id`` in ``instance_map`` (H, W)) over its padded
    box (:func:`thing_box`)."""
    box = thing_box(region, ctx.baseline, params)
    y0, y1, x0, x1 = box
    conf_box = ctx.confidence[y0:y1, x0:x1]
    mask = instance_map[y0:y1, x0:x1] == region.id
    return ThingBox(region=region, box=box, base=ctx.baseline[y0:y1, x0:x1], conf_box=conf_box,
                    conf=conf_box >= params.min_confidence, mask=mask,
                    others=ctx.thing_pixels[y0:y1, x0:x1] & ~mask, base_err_box=ctx.baseline_error[y0:y1, x0:x1])


def check_evidence(thing: ThingBox, ctx: PairContext, params: ThingParams,
                   carried: np.ndarray | None) -> ThingFit | Evidence:
    """Step 1: the fit that keeps the baseline without a model where the evidence says so, else the
    :class:`Evidence` the model starts from (``carried``: video mode's motion(s) or None)."""
    # Cheap check first: where the baseline explains the whole box, it stays.
    explained = float(np.percentile(cv2.blur(thing.base_err_box, (7, 7)), 99))
    if explained < params.explained_error:
        return keep_baseline(thing, f"the baseline explains the box (99th percentile error {explained:.2f}"
                                    f" < {params.explained_error})")
    core = erode(thing.mask, params.boundary_margin)
    fg_seeds = core & thing.conf
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
            return keep_baseline(thing, unconfident)
        return searched_evidence(thing, core, fg_seeds, ctx, params, unconfident)
    return Evidence(fg_seeds, carried)


def searched_evidence(thing: ThingBox, core: np.ndarray, fg_seeds: np.ndarray, ctx: PairContext,
                      params: ThingParams, unconfident: str) -> ThingFit | Evidence:
    """The object's motion(s) found by matching the object (its eroded mask ``core`` (h, w) bool)
    itself, or the fit that keeps the baseline (``unconfident``: why) where no match is clear."""
    mask, base, box = thing.mask, thing.base, thing.box
    # The surroundings' motion is where the search is centred.
    ring = ~dilate(mask, params.boundary_margin + 1) & ~thing.others
    around = np.median(base[ring], axis=0) if ring.any() else np.zeros(2)
    claimed = np.median(base[core], axis=0) if core.any() else around
    searched, correlation = searched_motion(core, box, ctx.gray, around, claimed, params)
    if searched is not None:
        return Evidence(fg_seeds, searched, searched, correlation)
    # No one translation: the object may be touching things of its class that move otherwise.
    # Its tiles' translations and the surroundings' are the split's hypotheses.
    parts = searched_parts(core, box, ctx.gray, around, base, params)
    if not len(parts):
        return keep_baseline(thing, f"{unconfident}; no clear match of the object itself"
                             + (f" (correlation {correlation:.2f})" if np.isfinite(correlation) else ""))
    surroundings = np.array([[1.0, 0.0, around[0]], [0.0, 1.0, around[1]]])
    return Evidence(fg_seeds, np.concatenate([parts, surroundings[None]]), parts=len(parts))


def fit_inputs(thing: ThingBox, fg_seeds: np.ndarray, ctx: PairContext, params: ThingParams,
               plane_flow: np.ndarray | None) -> FitInputs:
    """The instance ``thing`` with what its fit reads everywhere (:class:`FitInputs`)."""
    y0, y1, x0, x1 = thing.box
    m = params.boundary_margin
    bg_seeds = ~dilate(thing.mask, m + 1) & ~dilate(thing.others, 2) & thing.conf
    if bg_seeds.sum() < params.min_points:
        bg_seeds = ~dilate(thing.mask, m + 1) & ~dilate(thing.others, 2)
    guide = ctx.f1[y0:y1, x0:x1]
    # The object layer matters only near the mask: the assignment moves the outline by up to `band`
    # px, and each guided filter (radius r) reads 2r px around a pixel; one chooses among the object's
    # motions, one refines the assignment. Both work in this window of the box.
    band = float(np.clip(params.refine_band * thing.region.size, params.min_band, params.max_band))
    win = window_around(thing.mask, int(np.ceil(band)) + 4 * params.filter_radius + 2)
    wy0, wx0 = y0 + win[0].start, x0 + win[1].start
    wbox = Box(wy0, y0 + win[0].stop, wx0, x0 + win[1].stop)
    return FitInputs(**vars(thing), ctx=ctx, params=params, plane_flow=plane_flow, fg_seeds=fg_seeds,
                     bg_seeds=bg_seeds, guide=guide, band=band, win=win, wbox=wbox,
                     smooth=GuidedSmoother(guide[win], params))


def first_object_layer(inputs: FitInputs, carried: np.ndarray | None, rng: np.random.Generator) -> FirstModel:
    """Step 2: the object layer's motion(s) (:func:`object_motions`), or the motion split's where they
    leave part of the object unexplained or ``carried`` (K, 2, 3) holds several motions."""
    params, mask, win = inputs.params, inputs.mask, inputs.win
    # Video mode: a thing whose last model had several motions is tried as a split again, whether
    # or not this pair's single motion leaves much unexplained: touching objects that moved apart
    # by a few px in the last pair still do, and a single compromise motion would hide it.
    several = carried is not None and np.ndim(carried) == 3 and len(carried) > 1
    one_carried = None if carried is None or several else np.reshape(carried, (2, 3))
    split, split_carried = None, False
    fg_affines, fg_share, fg_flow, motion_index, fg_error, took_carried = object_motions(
        inputs.base, inputs.fg_seeds, inputs.smooth, inputs.ctx, inputs.box, params, rng, erode(mask, 1),
        window=win, carried=one_carried)
    if fg_flow is not None and fg_error is None:  # (once: the split's trigger and the layered model read it)
        wy0, _, wx0, _ = inputs.wbox
        fg_error = photometric_error(inputs.ctx.f1, inputs.ctx.f2, fg_flow[win], wx0, wy0)
    tried_split = params.motion_split and (several or needs_split(mask[win], fg_error, params))
    if tried_split:
        # Where the one motion already fails the inlier-share test below (or there is none), a split
        # that explains too few matches fails it too: it is given up before its assignment, and the
        # thing keeps the baseline either way (KITTI's 57k px car region with dis-medium: 0.5 s).
        hopeless = fg_flow is None or fg_share < params.min_inlier_share
        found = split_object_motions(inputs.base, inputs.fg_seeds, mask, inputs.conf_box, inputs.ctx, inputs.box,
                                     params, rng, win, hypotheses=carried if several else None,
                                     min_share=params.min_inlier_share if hopeless else 0.0)
        if found[2] is not None and split_is_better(mask[win], fg_error, found[3], params):
            fg_affines, fg_share, fg_flow, fg_error, split = found
            motion_index, took_carried, split_carried = split.labels, False, several and len(found[0]) > 1
    layer = None if fg_flow is None else ObjectLayer(fg_affines, fg_share, fg_flow, motion_index, fg_error, split)
    return FirstModel(layer, tried_split, took_carried, split_carried)


def with_origin(fit: ThingFit, evidence: Evidence, first: FirstModel) -> ThingFit:
    """``fit`` whose reason says where its object motion(s) came from (for the explain report)."""
    if first.took_carried and evidence.searched is not None:
        fit = replace(fit, reason=f"{fit.reason}; its motion from matching the object itself"
                                  f" ({evidence.correlation:.2f} correlation)")
    elif first.took_carried and fit.accepted:  # video mode
        fit = replace(fit, reason="ok; the object's motion carried from the last pair")
    if evidence.parts and fit.accepted:
        fit = replace(fit, reason=f"ok; motions from matching {evidence.parts} part(s) of the object")
    elif first.split_carried and fit.accepted:
        fit = replace(fit, reason="ok; several motions, as in the last pair")
    return fit


def retried_split(inputs: FitInputs, layer: ObjectLayer, fit: ThingFit, rng: np.random.Generator) -> ThingFit:
    """``fit`` (of the one-motion object ``layer``), or the motion split's model where that motion is
    a compromise between several and the split's model is accepted and no worse."""
    params, base, seeds = inputs.params, inputs.base, inputs.fg_seeds
    # A mask over objects that move a few px apart gets one compromise affine from the sequential
    # RANSAC (within its 2 px of both): its photometric error is small everywhere, so the split's
    # trigger above (a share of clearly unexplained pixels) never sees it, and the judgement, against
    # the baseline's error, rejects it or, against a weaker baseline, takes it. When the baseline's
    # confident flow on the object says the motion is a compromise (the residual's structure, not its
    # size), the split is tried as the alternative model, judged the same way, with its own random
    # stream (its draws do not depend on how many the first model took); it replaces the first model
    # when accepted and no worse than it on the judgement's median.
    retry_rng = rng.spawn(1)[0]
    if not compromise(base, seeds, layer.flow, inputs.box, params, retry_rng):
        return fit
    found = split_object_motions(base, seeds, inputs.mask, inputs.conf_box, inputs.ctx, inputs.box, params,
                                 retry_rng, inputs.win, min_share=params.min_inlier_share, min_motions=2)
    if found[2] is None:  # (one motion, or too few matches explained: given up early)
        return fit
    # The split's motions must explain the baseline's confident flow on the object about as well as the
    # compromise did (the baseline saw the motions it compromises between): on non-rigid things (Sintel's
    # characters) the split's parts instead chase the photometry away from the confident flow, and
    # the median photometric judgement alone let such worse models through.
    if seed_deviation(found[2], base, seeds, params) > seed_deviation(layer.flow, base, seeds, params) \
            + params.retry_tolerance:
        return fit
    affines, share, flow, error, split = found
    retry = layered_model(inputs, ObjectLayer(affines, share, flow, split.labels, error, split), retry_rng)
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
