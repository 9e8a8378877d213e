"""Motion instances inside one thing region: the bridge between :mod:`semflow.layers.motions` (plain
arrays: own patch matches, multi-model fitting with a label cost, graph-cut assignment, occlusion
between the motions) and the thing model's object layer.

:func:`needs_split` says when the split is worth its cost (the sequential-RANSAC motions of
:func:`~semflow.layers.things.motion.object_motions` leave part of the object unexplained, or found
none), :func:`compromise` when it is worth a second try (one motion between several that the
baseline's confident flow holds, a few px apart); :func:`split_object_motions` runs it and gives each
motion the thing model's photometric polish and, where it helps, smooth residual.
"""

from __future__ import annotations

import numpy as np

from semflow.fitting.motion_fit import affine_residuals
from semflow.layers.common import dilate, erode, magnitude, photometric_error, subsample_points
from semflow.layers.context import PairContext
from semflow.layers.motions import MotionSplit, fit_motions, reassign_motions, split_motions
from semflow.layers.things.motion import affine_flow, layer_flow, polish_affine
from semflow.layers.things.params import ThingParams
from semflow.segmentation.regions import Box


def unexplained(mask: np.ndarray, error: np.ndarray, params: ThingParams) -> tuple[int, float]:
    """(pixels of the eroded ``mask`` (h, w) whose photometric ``error`` (h, w) is above
    ``split_error``, the mean capped error over the eroded mask)."""
    core = erode(mask, 2)
    if not core.any():
        return 0, 0.0
    return int((core & (error > params.split_error)).sum()), float(error[core].mean())


def needs_split(mask: np.ndarray, fg_error: tuple[np.ndarray, np.ndarray] | None, params: ThingParams) -> bool:
    """Whether the object (``mask`` (h, w) over the window) is worth the motion split: when no object
    motion was found (``fg_error`` None), or when that motion's photometric error over the window (the
    (error, inside) pair) leaves more than ``split_share`` of the eroded mask unexplained (error above
    ``split_error``)."""
    if fg_error is None:
        return True
    bad, _ = unexplained(mask, fg_error[0], params)
    return bool(bad > max(params.min_points, params.split_share * erode(mask, 2).sum()))


def compromise(baseline: np.ndarray, seeds: np.ndarray, flow: np.ndarray, box: Box, params: ThingParams,
               rng: np.random.Generator) -> bool:
    """Whether the object ``flow`` (h, w, 2, over the box) looks like a compromise between several
    motions that the baseline's confident flow (h, w, 2) at the ``seeds`` (h, w) holds: the split's
    own multi-model fit (:func:`fit_motions`, label cost) on at most ``max_baseline_points`` seeds finds
    several motions, and they explain the seeds' flow clearly better than ``flow`` does (mean capped
    deviation at most ``compromise_ratio`` of its). A cheap test of the residual's structure, blind to
    its size: two objects a few px apart leave one affine within 1-2 px of both."""
    ys, xs = subsample_points(seeds, params.motions.max_baseline_points, rng)
    src = np.stack([xs + box[2], ys + box[0]], 1).astype(np.float32)
    dst = src + baseline[ys, xs]
    affines, _ = fit_motions(src, dst, params.motions, rng)
    if len(affines) < 2:
        return False
    several = np.minimum(affine_residuals(np.asarray(affines), src, dst).min(axis=0), params.residual_cap).mean()
    one = np.minimum(magnitude(flow[ys, xs] - baseline[ys, xs]), params.residual_cap).mean()
    return bool(several <= params.compromise_ratio * one)


def seed_deviation(flow: np.ndarray, baseline: np.ndarray, seeds: np.ndarray, params: ThingParams) -> float:
    """Mean distance (px, each capped at ``residual_cap``) between an object ``flow`` (h, w, 2) and the
    ``baseline`` (h, w, 2) over the ``seeds`` (h, w): how well the flow explains the confident matches."""
    return float(np.minimum(magnitude(flow - baseline)[seeds], params.residual_cap).mean())


def split_is_better(mask: np.ndarray, single: tuple[np.ndarray, np.ndarray] | None,
                    split: tuple[np.ndarray, np.ndarray], params: ThingParams) -> bool:
    """Whether the split's object flow explains the object (``mask`` (h, w) over the window) better
    than the sequential RANSAC's: a mean photometric error no higher over its eroded mask (errors:
    the (error, inside) pairs over the window; ``single`` None: there was none)."""
    if single is None:
        return True
    return unexplained(mask, split[0], params)[1] <= unexplained(mask, single[0], params)[1]


def split_object_motions(baseline: np.ndarray, seeds: np.ndarray, mask: np.ndarray, confidence: np.ndarray,
                         ctx: PairContext, box: Box, params: ThingParams, rng: np.random.Generator,
                         window: tuple[slice, slice], hypotheses: np.ndarray | None = None, *,
                         min_share: float = 0.0, min_motions: int = 1
                         ) -> tuple[list[np.ndarray], float, np.ndarray | None,
                                    tuple[np.ndarray, np.ndarray] | None, MotionSplit | None]:
    """The object layer's motion instances by :func:`~semflow.layers.motions.split_motions`.

    ``baseline`` (h, w, 2), ``seeds`` (h, w) (confident object pixels), ``mask`` (h, w) and
    ``confidence`` (h, w) are over ``box``. Each affine is refined photometrically over its own pixels
    (those that no motion in front covers, ``params.covered_clearance`` px or more from those it does,
    and ``params.motion_margin`` px inside its own part where that leaves enough) with a smooth
    residual on top, as :func:`~semflow.layers.things.motion.object_motions` does; then
    the pixels near the motions' boundaries choose again among the refined flows (``params.reassign``).
    Returns (affines, share of matches explained, object flow (h, w, 2) or None, its photometric error
    and inside maps over ``window``, the split or None). ``hypotheses`` (M, 2, 3), optional: motions
    the fit considers beside its own samples (video mode: the object's motions in the last pair). A
    split with fewer than ``min_motions`` motions, or whose motions explain less than ``min_share`` of
    its matches, is given up before its assignment and polish, as when it finds none.
    """
    y0, _, x0, _ = box
    split = split_motions(ctx.f1, ctx.f2, ctx.gray.gray1, ctx.gray.gray2, mask, tuple(box), baseline, confidence,
                          params.motions, rng, seeds=seeds, window=window, hypotheses=hypotheses,
                          min_share=min_share, min_motions=min_motions)
    if split is None:
        return [], 0.0, None, None, None
    core = erode(mask, 1)
    affines, flows = [], []
    for m, affine in enumerate(split.affines):
        area = core & (split.labels == m)
        own = area & ~split.covered
        clear = own & ~dilate(split.covered, params.covered_clearance)  # radius 0: ``own`` itself
        inner = clear & erode(area, params.motion_margin)
        affine = polish_affine(affine, inner if inner.sum() >= params.min_points else clear, box, ctx.gray,
                               params, rng)
        affines.append(affine)
        flow = layer_flow(baseline, affine, own & seeds, box, params)
        if own.sum() >= params.min_points:
            # The residual follows the baseline's deviation from the motion; where the baseline is wrong
            # on this motion's pixels (it mixed it with its neighbour's), the residual imports that error:
            # kept only when it explains the motion's own pixels better than the plain affine motion.
            plain = affine_flow(affine, box)
            err_res, in_res = photometric_error(ctx.f1, ctx.f2, flow, x0, y0)
            err_aff, in_aff = photometric_error(ctx.f1, ctx.f2, plain, x0, y0)
            both = own & in_res & in_aff
            if both.any() and err_aff[both].mean() < err_res[both].mean():
                flow = plain
        flows.append(flow)
    if params.reassign and len(flows) > 1:  # the labels were the unrefined motions': redone at their edges
        split = reassign_motions(ctx.raw1, ctx.raw2, split, flows, mask, tuple(box), baseline, confidence,
                                 params.motions, window)
    sy, sx = window
    flow = flows[0].copy()
    for m in range(1, len(flows)):
        np.copyto(flow, flows[m], where=(split.labels == m)[..., None])
    error = photometric_error(ctx.f1, ctx.f2, flow[sy, sx], x0 + sx.start, y0 + sy.start)
    return affines, split.share, flow, error, split
