"""Each pixel's choice among the object layer's several motions, for
:func:`~semflow.layers.things.motion.object_motions` when a mask covers objects that touch.

A motion's cost at a pixel is its photometric error plus its (capped) disagreement with the baseline
flow, smoothed by an edge-aware filter; each pixel takes the cheapest motion. The choice is made
over a window of the thing's box (slices of it: the part where the choice matters); outside it the
first motion stays.

Boxes are :class:`~semflow.segmentation.regions.Box` (y0, y1, x0, x1) in full-image pixels; flows
(h, w, 2) are over the box, maps (h', w') over the window.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from semflow.layers.common import dilate, magnitude, photometric_error
from semflow.layers.context import PairContext
from semflow.layers.motions import covered_by_others
from semflow.layers.things.params import ThingParams
from semflow.segmentation.regions import Box

Errors = list[tuple[np.ndarray, np.ndarray]]
"""Each motion's :func:`photometric_error` over the window: (error (h', w') float32, inside (h', w') bool)."""


def motion_errors(flows: list[np.ndarray], ctx: PairContext, box: Box, window: tuple[slice, slice]) -> Errors:
    """:func:`photometric_error` of each flow (h, w, 2) over the ``window`` of ``box``, for the pair ``ctx``."""
    y0, _, x0, _ = box
    sy, sx = window
    return [photometric_error(ctx.f1, ctx.f2, flow[sy, sx], x0 + sx.start, y0 + sy.start) for flow in flows]


def choose_motions(flows: list[np.ndarray], errors: Errors, baseline: np.ndarray,
                   smooth: Callable[[np.ndarray], np.ndarray], ctx: PairContext, box: Box,
                   window: tuple[slice, slice], params: ThingParams, region: np.ndarray | None) -> np.ndarray:
    """Each pixel's motion over ``window``: the index (h', w') int32 into ``flows`` (h, w, 2) of its
    cheapest (:func:`cheapest_motions`); with ``params.occlusion_aware`` and a ``region`` (h, w, the
    object), chosen again where a motion in front covers a pixel in frame t+1."""
    labels = cheapest_motions(flows, errors, baseline, smooth, window, params)
    if params.occlusion_aware and region is not None:
        # Pixels that a motion in front covers in frame t+1 (a parked car's strip that the passing car
        # hides) have no photometric evidence for their own motion: their error under it is neutralised,
        # as in the motion split, and the choice is made again.
        covered = covered_motions(labels, flows, errors, ctx, box, window, region)
        if covered.any():
            labels = cheapest_motions(flows, errors, baseline, smooth, window, params, hidden=covered)
    return labels


def cheapest_motions(flows: list[np.ndarray], errors: Errors, baseline: np.ndarray,
                     smooth: Callable[[np.ndarray], np.ndarray], window: tuple[slice, slice],
                     params: ThingParams, hidden: np.ndarray | None = None) -> np.ndarray:
    """Each pixel's cheapest motion over ``window``, (h', w') int32: per motion, its photometric error
    (``errors``; 0 where the flow leaves frame 2; at most ``params.occluded_cost`` where ``hidden``
    (K, h', w'), optional, marks it covered) plus ``params.agreement_weight`` times its distance to the
    ``baseline`` (h, w, 2) flow (px, capped at ``params.residual_cap``), smoothed by ``smooth``."""
    sy, sx = window
    costs = []
    for k, (flow, (err, inside)) in enumerate(zip(flows, errors)):
        agree = np.minimum(magnitude(baseline[sy, sx] - flow[sy, sx]), params.residual_cap)
        if hidden is not None:
            err = np.where(hidden[k], np.minimum(err, params.occluded_cost), err)
        costs.append(smooth(np.where(inside, err, 0.0) + params.agreement_weight * agree))
    return np.argmin(np.stack(costs), axis=0).astype(np.int32)


def covered_motions(labels: np.ndarray, flows: list[np.ndarray], errors: Errors, ctx: PairContext, box: Box,
                    window: tuple[slice, slice], region: np.ndarray) -> np.ndarray:
    """Where each motion lands, in frame t+1, on a motion in front of it (:func:`covered_by_others`,
    given the choice ``labels`` (h', w')): (K, h', w') bool over ``window``, among the pixels of
    ``region`` (h, w) grown by 3 px."""
    y0, _, x0, _ = box
    sy, sx = window
    guide = ctx.f1[y0 + sy.start:y0 + sy.stop, x0 + sx.start:x0 + sx.stop]
    covered, _ = covered_by_others(labels, [f[sy, sx] for f in flows], [e for e, _ in errors], guide,
                                   dilate(region, 3)[sy, sx])
    return covered


def composed_flow(flows: list[np.ndarray], errors: Errors, labels: np.ndarray, window: tuple[slice, slice]
                  ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The object flow (h, w, 2): over ``window`` each pixel's chosen motion (``labels`` (h', w')),
    elsewhere the first; and its photometric error (error, inside) over the window."""
    sy, sx = window
    flow = flows[0].copy()
    err, inside = (a.copy() for a in errors[0])
    for k in range(1, len(flows)):  # the error of a pixel depends on its own flow only
        chosen = labels == k
        np.copyto(flow[sy, sx], flows[k][sy, sx], where=chosen[..., None])
        np.copyto(err, errors[k][0], where=chosen)
        np.copyto(inside, errors[k][1], where=chosen)
    return flow, (err, inside)
