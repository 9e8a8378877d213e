"""Motion instances inside one thing region: the bridge between :mod:`semflow.layers.motions` (plain
arrays: own patch matches, multi-model fitting with a label cost, graph-cut assignment, occlusion
between the motions) and the thing model's object layer.

:func:`needs_split` says when the split is worth its cost (the sequential-RANSAC motions of
:func:`~semflow.layers.things.motion.object_motions` leave part of the object unexplained, or found
none); :func:`split_object_motions` runs it and gives each motion the thing model's photometric
polish and smooth residual.
"""

from __future__ import annotations

import numpy as np

from semflow.layers.common import erode, photometric_error
from semflow.layers.context import PairContext
from semflow.layers.motions import MotionSplit, split_motions
from semflow.layers.things.motion import layer_flow, polish_affine
from semflow.layers.things.params import ThingParams
from semflow.segmentation.regions import Box


def unexplained(mask: np.ndarray, error: np.ndarray, params: ThingParams) -> tuple[int, float]:
    """(pixels of the eroded ``mask`` (h, w) whose photometric ``error`` (h, w) is above
    ``split_error``, the mean capped error over the eroded mask)."""
    core = erode(mask, 2)
    if not core.any():
        return 0, 0.0
    return int((core & (error > params.split_error)).sum()), float(error[core].mean())


def needs_split(mask: np.ndarray, fg_flow: np.ndarray | None, fg_error: tuple[np.ndarray, np.ndarray] | None,
                ctx: PairContext, wbox: Box, window: tuple[slice, slice], params: ThingParams) -> bool:
    """Whether the object (``mask`` (h, w) over the window ``wbox``) is worth the motion split: when
    no object motion was found (``fg_flow`` None), or when that motion (its flow over the box and its
    photometric error over the window, when known) leaves more than ``split_share`` of the eroded mask
    unexplained (photometric error above ``split_error``)."""
    if fg_flow is None:
        return True
    if fg_error is None:
        fg_error = photometric_error(ctx.f1, ctx.f2, fg_flow[window], wbox[2], wbox[0])
    bad, _ = unexplained(mask, fg_error[0], params)
    return bool(bad > max(params.min_points, params.split_share * erode(mask, 2).sum()))


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
                         window: tuple[slice, slice]
                         ) -> tuple[list[np.ndarray], float, np.ndarray | None,
                                    tuple[np.ndarray, np.ndarray] | None, MotionSplit | None]:
    """The object layer's motion instances by :func:`~semflow.layers.motions.split_motions`.

    ``baseline`` (h, w, 2), ``seeds`` (h, w) (confident object pixels), ``mask`` (h, w) and
    ``confidence`` (h, w) are over ``box``. Each affine is refined photometrically over its own pixels
    (those that no motion in front covers) with a smooth residual on top, as
    :func:`~semflow.layers.things.motion.object_motions` does. Returns (affines, share of matches
    explained, object flow (h, w, 2) or None, its photometric error and inside maps over ``window``,
    the split or None).
    """
    y0, _, x0, _ = box
    split = split_motions(ctx.f1, ctx.f2, ctx.gray.gray1, ctx.gray.gray2, mask, tuple(box), baseline, confidence,
                          params.motions, rng, seeds=seeds, window=window)
    if split is None:
        return [], 0.0, None, None, None
    core = erode(mask, 1)
    affines, flows = [], []
    for m, affine in enumerate(split.affines):
        own = core & (split.labels == m) & ~split.covered
        affine = polish_affine(affine, own, box, ctx.gray, params, rng)
        affines.append(affine)
        flows.append(layer_flow(baseline, affine, own & seeds, box, params))
    sy, sx = window
    flow = flows[0].copy()
    for m in range(1, len(flows)):
        np.copyto(flow, flows[m], where=(split.labels == m)[..., None])
    error = photometric_error(ctx.f1, ctx.f2, flow[sy, sx], x0 + sx.start, y0 + sy.start)
    return affines, split.share, flow, error, split
