"""Tracked things in video mode: a gate with memory, and the last motion as a candidate.

A thing keeps its identity across frames (:class:`~semflow.layers.tracking.Tracks` matches it by the
overlap of its carried mask). What it carries to the next pair:

- its decision: the photometric margin its model needs against the baseline moves by
  :data:`THING_MARGIN` in favour of the last decision (hysteresis), so that a thing's model does not
  switch on and off from frame to frame;
- its motion: the object's affine of the last pair (:func:`thing_motion`, kept when the model was
  used) is a candidate for this pair's object motion and, where it explains the object better than
  this pair's fit to the baseline, the start of its photometric refinement
  (:func:`~semflow.layers.things.motion.object_motions`); when the model had several motions (a
  motion split), the split is tried first again, with the last pair's motions among its hypotheses.

Things without history get the plain gate of pair mode.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from semflow.layers.context import PairContext
from semflow.layers.things import ThingFit, ThingParams, fit_thing
from semflow.layers.things.fit import fit_all, region_rng
from semflow.segmentation.regions import Region

if TYPE_CHECKING:
    from semflow.layers.tracking import Track

THING_MARGIN = 0.5
"""Hysteresis margin of the thing gate (grey levels of median photometric error against the baseline)."""


def thing_motion(fit: ThingFit | None) -> np.ndarray | None:
    """The object's motions a thing track carries to the next pair: its affines (2, 3) as (3, 3)
    matrices, stacked (K, 3, 3) (K > 1 after a motion split), when the model was used; else None."""
    if fit is None or not fit.accepted or not fit.fg_affines:
        return None
    return np.stack([np.vstack([np.asarray(a, np.float64), [0.0, 0.0, 1.0]]) for a in fit.fg_affines])


def fit_tracked_things(instances: list[Region], instance_map: np.ndarray, ctx: PairContext, params: ThingParams,
                       tracks: list[Track | None], *, plane_flow: np.ndarray | None = None) -> list[ThingFit]:
    """:func:`~semflow.layers.things.fit_things` with memory (module docstring): a thing whose model
    was used in the last pair keeps it while it is at most :data:`THING_MARGIN` grey levels worse than
    the baseline (median over the pixels it changes), one whose model was not used needs to beat the
    baseline by that margin; new ones get the gate of pair mode. A track's carried motion is a
    candidate for the object's. ``tracks[i]``: instance i's track."""
    def fit_one(job: tuple[Region, Track | None]) -> ThingFit:
        region, track = job
        was_on = None if track is None else track.was_on
        slack = params.error_slack + (0.0 if was_on is None else THING_MARGIN if was_on else -THING_MARGIN)
        carried = None if track is None or track.model is None else track.model[:, :2]
        fit = fit_thing(region, instance_map, ctx, replace(params, error_slack=slack), region_rng(region, params.seed),
                        plane_flow, carried=carried)
        if was_on is not None and fit.accepted != was_on and fit.reason.startswith(("ok", "median")):
            fit = replace(fit, reason=fit.reason + ("; within the margin: on in the last pair" if fit.accepted else
                                                    "; not by the margin: off in the last pair"))
        return fit

    jobs = [(region, track) for region, track in zip(instances, tracks) if region.area >= params.min_area]
    return fit_all(fit_one, jobs, [region.area for region, _ in jobs], params)
