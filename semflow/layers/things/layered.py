"""Steps 3-5 of the thing model for one instance, once its object layer is known (steps 1-2:
:mod:`semflow.layers.things.fit`):

    fit = layered_model(inputs, ObjectLayer(...), rng)   # a ThingFit: accepted, or keeping the baseline

3. the background layer (:func:`background_layer`): its motion fitted without the strip the object
   covers in frame t+1, or the plane flow around the object when that explains the background as well;
4. the assignment of pixels to layers (:func:`assign_pixels`), refined near the mask, less the
   background hidden behind the object, and the occluded background;
5. the judgement: the pixels it is made on (:func:`judged_pixels`), the verdict (:func:`judge`), then
   the pixels where the baseline still stays (:func:`veto_pixels`).

:class:`ThingBox` is the instance over its padded box, :class:`FitInputs` what its fit reads
everywhere; :func:`keep_baseline` is the fit that keeps the baseline, and says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from semflow.layers.common import dilate, erode, magnitude, photometric_error, photometric_error_at
from semflow.layers.context import PairContext
from semflow.layers.motions import MotionSplit
from semflow.layers.things.assignment import (
    GuidedSmoother,
    colour_log_ratio,
    covered_by,
    hidden_behind,
    refine_assignment,
)
from semflow.layers.things.judgement import Judgement, judge_model
from semflow.layers.things.motion import affine_flow, fit_seed_affine, layer_motion
from semflow.layers.things.params import ThingFit, ThingParams
from semflow.layers.veto import baseline_veto
from semflow.segmentation.regions import Box, Region


@dataclass(frozen=True, eq=False)
class ThingBox:
    """One instance (``region``) over its padded ``box`` (h, w): the baseline flow ``base`` (h, w, 2),
    its confidence ``conf_box`` (h, w) and where that is confident ``conf`` (h, w) bool, the
    instance's pixels ``mask`` (h, w) bool, other things' pixels ``others`` (h, w) bool, and the
    baseline's photometric error ``base_err_box`` (h, w, grey levels)."""

    region: Region
    box: Box
    base: np.ndarray
    conf_box: np.ndarray
    conf: np.ndarray
    mask: np.ndarray
    others: np.ndarray
    base_err_box: np.ndarray


@dataclass(frozen=True, eq=False)
class FitInputs(ThingBox):
    """A :class:`ThingBox` with what the fit reads everywhere: the pair ``ctx``, the ``params``, the
    models' ``plane_flow`` (H, W, 2) or None; the object's confident pixels ``fg_seeds`` (h, w) bool
    and the background's ``bg_seeds`` (h, w) bool; ``guide``, frame 1 over the box (h, w, 3); the
    assignment's ``band`` (px); ``win``, the window (slices of the box) where the object layer
    matters, ``wbox`` the same in the frame; ``smooth``, the guided filter over the window."""

    ctx: PairContext
    params: ThingParams
    plane_flow: np.ndarray | None
    fg_seeds: np.ndarray
    bg_seeds: np.ndarray
    guide: np.ndarray
    band: float
    win: tuple[slice, slice]
    wbox: Box
    smooth: GuidedSmoother


@dataclass(frozen=True, eq=False)
class ObjectLayer:
    """The object layer's motion(s): ``affines`` (2, 3) each, the ``share`` of matches they explain,
    their ``flow`` (h, w, 2) over the box, each pixel's motion ``labels`` (h, w), their photometric
    ``error`` and inside maps over the window, and the motion ``split`` that found them (or None)."""

    affines: list[np.ndarray]
    share: float
    flow: np.ndarray
    labels: np.ndarray
    error: tuple[np.ndarray, np.ndarray]
    split: MotionSplit | None


@dataclass(frozen=True, eq=False)
class Background:
    """The background layer: its ``affine`` (2, 3; None where the planes' flow replaced it or no
    motion was found), inlier ``share``, ``flow`` (h, w, 2) over the box, the local affine fit
    ``layer_affine`` even where the planes replaced it, and the ``seeds`` (h, w) bool it was fitted on."""

    affine: np.ndarray | None
    share: float
    flow: np.ndarray
    layer_affine: np.ndarray | None
    seeds: np.ndarray


class LayerErrors(NamedTuple):
    """Each layer's photometric error (h, w, grey levels) over the box, and where its flow lands
    inside frame t+1 (h, w) bool."""

    err_fg: np.ndarray
    in_fg: np.ndarray
    err_bg: np.ndarray
    in_bg: np.ndarray


def keep_baseline(thing: ThingBox, reason: str, *, model_error: float = float("nan"),
                  fg_affine: np.ndarray | None = None, bg_affine: np.ndarray | None = None,
                  fg_share: float = 0.0, bg_share: float = 0.0, excess: float = float("nan")) -> ThingFit:
    """The fit that keeps the baseline over the box, and why (with the layers' motions when known)."""
    empty = np.zeros(thing.mask.shape, bool)
    base = thing.base
    return ThingFit(region=thing.region, box=thing.box, accepted=False, reason=reason, foreground=thing.mask,
                    occluded=empty, others=thing.others, fg_flow=base, bg_flow=base, flow=base,
                    fg_affine=fg_affine, bg_affine=bg_affine, fg_inlier_share=fg_share, bg_inlier_share=bg_share,
                    model_error=model_error, baseline_error=float(thing.base_err_box[thing.mask].mean()),
                    excess_error=excess)


def layered_model(inputs: FitInputs, layer: ObjectLayer, rng: np.random.Generator) -> ThingFit:
    """Steps 3-5 for the object ``layer`` of the instance ``inputs``: the model, accepted, or the
    baseline kept with the reason (:func:`keep_baseline`)."""
    params = inputs.params
    background = background_layer(inputs, layer.flow, rng)
    errors = layer_errors(inputs, layer.error, background.flow)
    foreground, bg_flow, occluded = assign_pixels(inputs, layer, background, errors)
    flow = np.where(foreground[..., None], layer.flow, bg_flow)
    judged = judged_pixels(inputs, layer.flow, bg_flow, flow, foreground, occluded, errors)
    if not judged.any():
        return rejected(inputs, layer, background, "no visible pixels to judge the model")
    model_err, base_err, worse, objection = judge(inputs, flow, foreground, errors, judged)
    if objection:
        return rejected(inputs, layer, background, objection, model_error=model_err, excess=worse)
    error, veto = veto_pixels(inputs, flow, foreground, errors)
    return ThingFit(region=inputs.region, box=inputs.box, accepted=True, reason="ok", foreground=foreground,
                    occluded=occluded, others=inputs.others, fg_flow=layer.flow, bg_flow=bg_flow, flow=flow,
                    fg_affine=layer.affines[0], bg_affine=background.affine, fg_inlier_share=layer.share,
                    bg_inlier_share=background.share, model_error=model_err, baseline_error=base_err,
                    excess_error=worse, error=error, veto=veto & ~occluded,
                    motions=motions_report(inputs, layer, foreground),
                    fg_affines=[np.asarray(a) for a in layer.affines],
                    motion_labels=np.where(foreground, layer.labels, -1) if params.motion_split else None)


def rejected(inputs: FitInputs, layer: ObjectLayer, background: Background, reason: str, *,
             model_error: float = float("nan"), excess: float = float("nan")) -> ThingFit:
    """:func:`keep_baseline` for a layered model that was not accepted, with its layers' motions."""
    return keep_baseline(inputs, reason, model_error=model_error, fg_affine=layer.affines[0],
                         bg_affine=background.affine, fg_share=layer.share, bg_share=background.share,
                         excess=excess)


def background_seeds(inputs: FitInputs, fg_flow: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The background layer's seeds (h, w) bool: ``bg_seeds`` less the strip that the object (its
    flow ``fg_flow`` (h, w, 2)) covers in frame t+1, where enough are left."""
    params, box = inputs.params, inputs.box
    layer_seeds = inputs.bg_seeds
    # Background pixels the object covers in frame t+1 have no true match in the baseline: they are
    # found with a first, plain RANSAC fit of the background's motion and left out of its final fit.
    first, _ = fit_seed_affine(inputs.base, layer_seeds, box, params, rng)
    if first is not None:
        strip = covered_by(inputs.mask, fg_flow, affine_flow(first, box), box, inputs.ctx.shape)
        if strip.any() and (layer_seeds & ~strip).sum() >= params.min_points:
            layer_seeds = layer_seeds & ~strip
    return layer_seeds


def background_layer(inputs: FitInputs, fg_flow: np.ndarray, rng: np.random.Generator) -> Background:
    """Step 3: the background layer's motion behind the object (its flow ``fg_flow`` (h, w, 2)), or
    the planes' flow around it, or else the baseline."""
    params, base = inputs.params, inputs.base
    layer_seeds = background_seeds(inputs, fg_flow, rng)
    bg_affine, bg_share, bg_flow = layer_motion(base, layer_seeds, inputs.box, inputs.ctx.gray, params, rng)
    layer_affine = bg_affine  # (the planes may replace the layer below; the hidden rule wants it)
    if inputs.plane_flow is not None and layer_seeds.any():
        # The background may be better described by the models already fitted around the object
        # (a plane's homography, checked on its own): use them as the background layer unless the
        # local affine model explains clearly more of the background's pixels.
        y0, y1, x0, x1 = inputs.box
        planes = inputs.plane_flow[y0:y1, x0:x1]
        plane_share = float((magnitude(base - planes)[layer_seeds] < 2 * params.ransac_threshold).mean())
        affine_share = float((magnitude(base - bg_flow)[layer_seeds] < 2 * params.ransac_threshold)
                             .mean()) if bg_flow is not None else 0.0
        if plane_share >= affine_share - params.context_preference:
            bg_affine, bg_share, bg_flow = None, plane_share, planes
    if bg_flow is None:
        bg_flow = base  # no usable background: it keeps the baseline
    return Background(bg_affine, bg_share, bg_flow, layer_affine, layer_seeds)


def layer_errors(inputs: FitInputs, fg_error: tuple[np.ndarray, np.ndarray], bg_flow: np.ndarray) -> LayerErrors:
    """The layers' photometric errors over the box: the background's of ``bg_flow`` (h, w, 2), the
    object's ``fg_error`` (error, inside maps over the window) in the window."""
    y0, _, x0, _ = inputs.box
    win = inputs.win
    err_bg, in_bg = photometric_error(inputs.ctx.f1, inputs.ctx.f2, bg_flow, x0, y0)
    # The object layer's error, in the window (outside it the object is never used).
    err_fg, in_fg = err_bg.copy(), in_bg.copy()
    err_fg[win], in_fg[win] = fg_error
    return LayerErrors(err_fg, in_fg, err_bg, in_bg)


def assign_pixels(inputs: FitInputs, layer: ObjectLayer, background: Background, errors: LayerErrors
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 4: (the object's pixels (h, w) bool, the background flow (h, w, 2) with the motion carried
    under the object where it hides background, the occluded pixels (h, w) bool)."""
    box, shape, fg_flow = inputs.box, inputs.ctx.shape, layer.flow
    foreground = refined_foreground(inputs, fg_flow, background, errors)
    bg_flow = background.flow
    if inputs.params.hidden_behind:
        foreground, bg_flow = without_hidden(inputs, layer, background, errors, foreground)
    occluded = covered_by(foreground, fg_flow, bg_flow, box, shape)
    if layer.split is not None:  # object pixels that a motion in front of theirs covers in frame t+1
        occluded |= layer.split.covered & foreground
    return foreground, bg_flow, occluded


def refined_foreground(inputs: FitInputs, fg_flow: np.ndarray, background: Background, errors: LayerErrors
                       ) -> np.ndarray:
    """The object's pixels (h, w) bool: the mask refined by each layer's photometric and colour cost
    in a band around it (:func:`refine_assignment`), less other things' pixels."""
    params, mask, win, ctx = inputs.params, inputs.mask, inputs.win, inputs.ctx
    m = params.boundary_margin
    err_fg, in_fg, err_bg, in_bg = errors
    bg_flow = background.flow
    # Refine the assignment in a band around the mask; occluded background says nothing photometric.
    covered = covered_by(mask[win], fg_flow[win], bg_flow[win], inputs.wbox, ctx.shape)
    # (On the frames as given, with ``unsmoothed``: the smoothed ones mix the colours of the two sides.)
    if params.unsmoothed:
        wy0, _, wx0, _ = inputs.wbox
        seen_bg = photometric_error(ctx.raw1, ctx.raw2, bg_flow[win], wx0, wy0)[0]
        seen_fg = photometric_error(ctx.raw1, ctx.raw2, fg_flow[win], wx0, wy0)[0]
    else:
        seen_bg, seen_fg = err_bg[win], err_fg[win]
    cost_fg = np.where(in_fg[win], seen_fg, seen_bg)
    cost_bg = np.where(in_bg[win] & ~covered, seen_bg, cost_fg)
    colour = colour_log_ratio(inputs.guide, erode(mask, m),
                              background.seeds | (~dilate(mask, m + 1) & ~inputs.others))[win]
    cost_fg = cost_fg - 0.5 * params.colour_weight * colour
    cost_bg = cost_bg + 0.5 * params.colour_weight * colour
    foreground = np.zeros_like(mask)
    foreground[win] = refine_assignment(mask[win], cost_fg, cost_bg, inputs.smooth, inputs.band, params)
    foreground &= ~inputs.others
    return foreground


def without_hidden(inputs: FitInputs, layer: ObjectLayer, background: Background, errors: LayerErrors,
                   foreground: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(``foreground`` (h, w) bool, the background flow (h, w, 2)) without the background the object
    hides in frame t+1 (:func:`hidden_behind`): those pixels take the background's motion carried
    under the object."""
    params, box, shape, others = inputs.params, inputs.box, inputs.ctx.shape, inputs.others
    err_fg, in_fg, err_bg, _ = errors
    fg_flow, bg_flow = layer.flow, background.flow
    # The background's motion carried under the object (where the layer's flow, or the planes',
    # is the baseline's): for background that the object hides in frame t+1.
    under = bg_flow if background.layer_affine is None else affine_flow(background.layer_affine, box)
    lost = hidden_behind(foreground, foreground | inputs.mask, fg_flow, under, err_fg, err_bg, in_fg, box, shape,
                         unexplained=params.hidden_error, reach=params.hidden_reach,
                         min_pixels=params.min_points)
    if layer.split is not None:  # a motion's pixels that another covers are the split's to place
        lost &= ~layer.split.covered
    if others.any() and lost.any():  # the object's own pixels that another thing hides
        lost &= ~covered_by(others, inputs.base, fg_flow, box, shape)
    if lost.any():
        foreground &= ~lost
        bg_flow = np.where(lost[..., None], under, bg_flow)
    return foreground, bg_flow


def judged_pixels(inputs: FitInputs, fg_flow: np.ndarray, bg_flow: np.ndarray, flow: np.ndarray,
                  foreground: np.ndarray, occluded: np.ndarray, errors: LayerErrors) -> np.ndarray:
    """The pixels (h, w) bool the model is judged on (none: nothing visible to judge): visible, away
    from the object's outline and where the model changes the flow, where enough are left."""
    params, box, shape, mask, others = inputs.params, inputs.box, inputs.ctx.shape, inputs.mask, inputs.others
    # Background pixels that another thing covers in frame t+1 (it moves as the baseline says) have no
    # photometric evidence for the background's motion either: a touching thing would reject a right model.
    hidden = covered_by(others, inputs.base, bg_flow, box, shape) & ~foreground if others.any() else others
    # Nor have the background pixels that the object as given (the mask) covers in frame t+1: where
    # the assignment took a strip off the object's leading edge, ``occluded`` (from the refined
    # object) misses the background that strip covers, and a right model was rejected there.
    # (Where it took nothing off, that is ``occluded`` itself.)
    if (mask & ~foreground).any():
        hidden = hidden | covered_by(foreground | mask, fg_flow, bg_flow, box, shape)
    judged = ~occluded & ~others & ~hidden & np.where(foreground, errors.in_fg, errors.in_bg)
    if not judged.any():
        return judged
    # Judge away from the object's outline, where occlusions (as wide as the relative motion) make
    # photometric errors meaningless, and where the model changes the flow: elsewhere both explain
    # the frames equally, and those pixels would only dilute the comparison.
    relative = magnitude(fg_flow - bg_flow)[foreground]
    reach = int(np.ceil(np.percentile(relative, 95))) + 2 if relative.size else 2
    outline = dilate(foreground, reach) & ~erode(foreground, 2)
    if (judged & ~outline).sum() >= params.min_points:
        judged = judged & ~outline
    changed = judged & (magnitude(flow - inputs.base) > params.change_threshold)
    if changed.sum() >= params.min_points:
        judged = changed
    return judged


def judge(inputs: FitInputs, flow: np.ndarray, foreground: np.ndarray, errors: LayerErrors,
          judged: np.ndarray) -> Judgement:
    """The verdict (:func:`judge_model`) on the model's ``flow`` (h, w, 2) at the ``judged`` pixels (h, w)."""
    y0, _, x0, _ = inputs.box
    ctx = inputs.ctx
    # The errors judged (medians, in judge_model), on the frames as given with ``unsmoothed``: the
    # judged pixels gather where the flows differ, often along the seams between motions, and there
    # the smoothed frames mix two things' colours.
    if inputs.params.unsmoothed:
        ys, xs = np.nonzero(judged)
        model_pixels = photometric_error_at(ctx.raw1, ctx.raw2, ys + y0, xs + x0, flow[judged])
        base_pixels = photometric_error_at(ctx.raw1, ctx.raw2, ys + y0, xs + x0, inputs.base[judged])
    else:
        model_pixels = np.where(foreground, errors.err_fg, errors.err_bg)[judged]
        base_pixels = inputs.base_err_box[judged]
    return judge_model(model_pixels, base_pixels, inputs.params)


def veto_pixels(inputs: FitInputs, flow: np.ndarray, foreground: np.ndarray, errors: LayerErrors
                ) -> tuple[np.ndarray, np.ndarray]:
    """(the model's photometric error (h, w), the pixels (h, w) bool where the baseline stays)."""
    params = inputs.params
    # Per pixel, the baseline stays where it explains the frames clearly better than the layered
    # model, or is confident, different and not clearly worse; occluded background pixels have no
    # photometric evidence either way and keep the layer.
    error = np.where(foreground, errors.err_fg, errors.err_bg)
    window = (params.veto.window, params.veto.window)
    veto = baseline_veto(cv2.blur(error, window), cv2.blur(inputs.base_err_box, window),
                         magnitude(flow - inputs.base), inputs.conf_box, params.veto)
    return error, veto


def motions_report(inputs: FitInputs, layer: ObjectLayer, foreground: np.ndarray) -> list[dict]:
    """The object's motion instances for reports (:attr:`ThingFit.motions`), back to front; none
    without ``motion_split``."""
    y0, _, x0, _ = inputs.box
    motions = []
    if inputs.params.motion_split:
        for k in (layer.split.order if layer.split is not None else range(len(layer.affines))):
            a, own = layer.affines[k], foreground & (layer.labels == k)
            where = own if own.any() else foreground if foreground.any() else inputs.mask  # (no pixels: NaN)
            cy, cx = (np.mean(c) for c in np.nonzero(where))
            centre = np.array([cx + x0, cy + y0])  # (its own pixels' centroid: a motion of a parked car
            motions.append({"motion": int(k),    # read at the group's centre was 5 px off)
                            "flow_at_centre": [round(float(v), 2) for v in a[:, :2] @ centre + a[:, 2] - centre],
                            "affine": [round(float(v), 5) for v in a.ravel()],
                            "pixels": int(own.sum())})
    return motions
