"""The composer: one flow field from the baseline and the accepted region models.

Models are painted over the baseline back to front with soft weights, so seams are blended, not
stepped:

1. the baseline everywhere (stuff, void, and every region whose model was rejected);
2. each accepted plane region: weight = the region mask with a ramp over a few pixels inside its
   edge (so the homography never leaks onto the neighbouring stuff, which keeps the baseline; zero on
   thing pixels, whose boundary is a true motion boundary), times one minus the feathered veto map;
3. each accepted thing box, nearest last (lowest bottom edge = nearest in a road scene): weight = 1
   inside the box, ramping to 0 over the last few pixels toward box edges inside the image, and 0 on
   other instances' pixels, times one minus the feathered veto map. Inside the box, object and
   background layers meet with a sharp edge.

Each fit's ``veto`` map (pixels where the baseline is clearly better, or confident, different and
not clearly worse: :mod:`semflow.layers.veto`) is decided by the fitter; the composer only paints.
The model map says which model each pixel came from (the one with weight >= 0.5), see MODEL_LEGEND.

    planes_flow = compose_planes(ctx, plane_fits)       # what the thing fitter sees around objects
    composition = compose(ctx, plane_fits, thing_fits)  # ctx: semflow.layers.context.PairContext
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from semflow.layers.common import PHOTOMETRIC_SCALE, feather, inner_feather, photometric_error_at
from semflow.layers.context import PairContext
from semflow.layers.planes import PlaneFit
from semflow.layers.things import ThingFit
from semflow.segmentation.regions import Box

MODEL_BASELINE = 0
MODEL_PLANE = 1
MODEL_OBJECT = 2
MODEL_BACKGROUND = 3
MODEL_OCCLUDED = 4
MODEL_LEGEND: dict[int, str] = {
    MODEL_BASELINE: "baseline (stuff, void, or a rejected model)",
    MODEL_PLANE: "plane: homography",
    MODEL_OBJECT: "thing: object layer",
    MODEL_BACKGROUND: "thing: background layer",
    MODEL_OCCLUDED: "thing: background layer, occluded in frame t+1",
}
MODEL_COLORS: dict[int, tuple[int, int, int]] = {
    MODEL_BASELINE: (128, 128, 128),
    MODEL_PLANE: (64, 96, 224),
    MODEL_OBJECT: (230, 60, 40),
    MODEL_BACKGROUND: (250, 200, 60),
    MODEL_OCCLUDED: (120, 40, 160),
}
UNFITTED_BACKGROUND_EVIDENCE = 0.5
"""Evidence of a thing's background layer without an affine of its own (the planes' flow around the
object, or the baseline): no inlier share of this fit speaks for or against it, so it sits half way."""
OCCLUDED_EVIDENCE_FACTOR = 0.5
"""Factor on the evidence of background pixels covered in frame t+1: their flow is the layer's motion
carried where nothing can be matched (their photometric factor is 1), so they are trusted half as much."""
__all__ = [
    "MODEL_BACKGROUND", "MODEL_BASELINE", "MODEL_COLORS", "MODEL_LEGEND", "MODEL_OBJECT", "MODEL_OCCLUDED",
    "MODEL_PLANE", "PHOTOMETRIC_SCALE", "Composition", "box_weight", "compose", "compose_planes",
    "model_map_to_color", "plane_weight", "weigh_planes",
]


@dataclass
class Composition:
    """The composed result, all (H, W) maps.

    flow (H, W, 2) float32; model_map uint8 codes of MODEL_LEGEND; confidence float32 in [0, 1];
    occluded bool (background pixels covered by a thing in frame t+1); layer_flows: name ->
    (H, W, 2) float32 with NaN outside the layer's support ("plane", "object", "background").
    """

    flow: np.ndarray
    model_map: np.ndarray
    confidence: np.ndarray
    occluded: np.ndarray
    layer_flows: dict[str, np.ndarray] = field(default_factory=dict)


def box_weight(box: Box, shape: tuple[int, int], radius: float) -> np.ndarray:
    """Weight (h, w) over a box: 1 inside, ramping to ~0 over ``radius`` px toward edges inside the image."""
    y0, y1, x0, x1 = box
    height, width = shape
    ys = np.arange(y0, y1, dtype=np.float32)[:, None]
    xs = np.arange(x0, x1, dtype=np.float32)[None, :]
    inf = np.float32(np.inf)
    d = np.full((y1 - y0, x1 - x0), inf, np.float32)
    if y0 > 0:
        d = np.minimum(d, ys - y0 + 0.5)
    if y1 < height:
        d = np.minimum(d, y1 - 0.5 - ys)
    if x0 > 0:
        d = np.minimum(d, xs - x0 + 0.5)
    if x1 < width:
        d = np.minimum(d, x1 - 0.5 - xs)
    if radius <= 0:
        return np.ones_like(d)
    return np.clip(d / radius, 0.0, 1.0)


def plane_weight(plane: PlaneFit, things: np.ndarray, radius: float) -> np.ndarray:
    """Weight (h, w) of a plane's homography over its box: the region, ramping up over ``radius`` px
    inside its edge, times one minus the feathered veto, and 0 on thing pixels ``things`` (h, w). Region edges along things are not feathered: an
    object's outline is a true motion boundary, not a seam."""
    alpha = inner_feather(plane.region.mask | things, radius) * (1.0 - feather(plane.veto, radius))
    return alpha * ~things


def weigh_planes(planes: list[PlaneFit], thing_pixels: np.ndarray, feather_radius: float
                  ) -> list[np.ndarray | None]:
    """:func:`plane_weight` of each plane over its box (None for a rejected one); ``thing_pixels`` (H, W)."""
    return [plane_weight(p, thing_pixels[p.region.slices], feather_radius) * p.strength if p.accepted else None
            for p in planes]


def compose_planes(ctx: PairContext, planes: list[PlaneFit], *, feather_radius: float = 4.0,
                   weights: list[np.ndarray | None] | None = None) -> np.ndarray:
    """The baseline (H, W, 2) with the accepted planes painted over it (the first stage of :func:`compose`).

    ``weights``: :func:`weigh_planes` of the planes, if the caller has them already.
    """
    if weights is None:
        weights = weigh_planes(planes, ctx.thing_pixels, feather_radius)
    flow = ctx.baseline.astype(np.float32).copy()
    for plane, alpha in zip(planes, weights):
        if plane.accepted:
            sy, sx = plane.region.slices
            _blend_over(flow, sy, sx, alpha, plane.flow)
    return flow


def _blend_over(flow: np.ndarray, sy: slice, sx: slice, alpha: np.ndarray, model_flow: np.ndarray) -> None:
    """Paint ``model_flow`` (h, w, 2) over ``flow`` (H, W, 2) in the box (sy, sx) with weight ``alpha`` (h, w),
    in place: ``alpha * model + (1 - alpha) * flow``."""
    a = alpha[..., None]
    flow[sy, sx] = a * model_flow + (1 - a) * flow[sy, sx]


def model_map_to_color(model_map: np.ndarray) -> np.ndarray:
    """Model map (H, W) codes -> uint8 RGB (H, W, 3) using MODEL_COLORS."""
    out = np.zeros((*model_map.shape, 3), np.uint8)
    for code, color in MODEL_COLORS.items():
        out[model_map == code] = color
    return out


@dataclass
class _Canvas:
    """The composition being painted, over the whole frame (H, W).

    flow, model_map, occluded and layers as in :class:`Composition`.
    """

    flow: np.ndarray
    model_map: np.ndarray
    evidence: np.ndarray  # float32: per-pixel share of inliers of the model in use
    occluded: np.ndarray
    layers: dict[str, np.ndarray]
    model_weight: np.ndarray  # float32: how much of each pixel comes from a model
    # float32: the photometric error of `flow`: a model's own where its weight is 1, recomputed at the end
    # where flows were blended (`blended`, bool).
    err: np.ndarray
    blended: np.ndarray


def _baseline_canvas(ctx: PairContext) -> _Canvas:
    """A canvas holding the baseline of ``ctx`` everywhere (no model painted yet)."""
    shape = ctx.shape
    flow = ctx.baseline.astype(np.float32).copy()
    model_map = np.zeros(shape, np.uint8)
    evidence = np.ones(shape, np.float32)
    occluded = np.zeros(shape, bool)
    nan_flow = np.full((*shape, 2), np.nan, np.float32)
    layers = {"plane": nan_flow.copy(), "object": nan_flow.copy(), "background": nan_flow}
    model_weight = np.zeros(shape, np.float32)
    err = ctx.baseline_error.copy()
    blended = np.zeros(shape, bool)
    return _Canvas(flow, model_map, evidence, occluded, layers, model_weight, err, blended)


def _paint(canvas: _Canvas, sy: slice, sx: slice, alpha: np.ndarray, model_flow: np.ndarray,
           model_err: np.ndarray | None) -> None:
    """Blend ``model_flow`` (h, w, 2) over the canvas's flow in the box with weight ``alpha`` (h, w), and
    ``alpha`` over its model weight; take the model's photometric error ``model_err`` (h, w) where its weight is 1."""
    err, blended = canvas.err, canvas.blended
    _blend_over(canvas.flow, sy, sx, alpha, model_flow)
    canvas.model_weight[sy, sx] = alpha + (1 - alpha) * canvas.model_weight[sy, sx]
    if model_err is None:
        blended[sy, sx] |= alpha > 0
        return
    whole = alpha == 1
    np.copyto(err[sy, sx], model_err, where=whole)
    blended[sy, sx] = ~whole & (blended[sy, sx] | (alpha > 0))


def _paint_plane(canvas: _Canvas, plane: PlaneFit, alpha: np.ndarray) -> None:
    """Paint an accepted plane's homography flow over its box with weight ``alpha`` (h, w)."""
    sy, sx = plane.region.slices
    _paint(canvas, sy, sx, alpha, plane.flow, plane.error)
    use = alpha >= 0.5
    canvas.model_map[sy, sx][use] = MODEL_PLANE
    canvas.evidence[sy, sx][use] = plane.inlier_share
    np.copyto(canvas.layers["plane"][sy, sx], plane.flow, where=plane.region.mask[..., None])


def _nearest_last(things: list[ThingFit]) -> list[ThingFit]:
    """The accepted things in painting order: lowest bottom edge (nearest in a road scene) last."""
    return sorted((t for t in things if t.accepted), key=lambda t: t.box[1])


def _thing_weight(thing: ThingFit, shape: tuple[int, int], radius: float) -> np.ndarray:
    """Weight (h, w) of a thing's layers over its box: :func:`box_weight`, 0 on other instances'
    pixels, times one minus the feathered veto (if the fit has one)."""
    alpha = box_weight(thing.box, shape, radius) * ~thing.others
    if thing.veto is not None:
        alpha = alpha * (1.0 - feather(thing.veto, radius))
    return alpha


def _paint_thing(canvas: _Canvas, thing: ThingFit, alpha: np.ndarray) -> None:
    """Paint an accepted thing's object and background layers over its box with weight ``alpha`` (h, w)."""
    y0, y1, x0, x1 = thing.box
    sy, sx = slice(y0, y1), slice(x0, x1)
    _paint(canvas, sy, sx, alpha, thing.flow, thing.error)
    use = alpha >= 0.5
    fg, bg = use & thing.foreground, use & ~thing.foreground
    codes = np.where(thing.foreground, MODEL_OBJECT,
                     np.where(thing.occluded, MODEL_OCCLUDED, MODEL_BACKGROUND)).astype(np.uint8)
    canvas.model_map[sy, sx][use] = codes[use]
    evidence = canvas.evidence[sy, sx]
    evidence[fg] = thing.fg_inlier_share
    evidence[bg] = thing.bg_inlier_share if thing.bg_affine is not None else UNFITTED_BACKGROUND_EVIDENCE
    evidence[use & thing.occluded] *= OCCLUDED_EVIDENCE_FACTOR
    canvas.occluded[sy, sx] = np.where(use, thing.occluded, canvas.occluded[sy, sx])
    np.copyto(canvas.layers["object"][sy, sx], thing.fg_flow, where=fg[..., None])
    np.copyto(canvas.layers["background"][sy, sx], thing.bg_flow, where=bg[..., None])


def _measure_blended_error(canvas: _Canvas, img1: np.ndarray, img2: np.ndarray) -> None:
    """Recompute the photometric error of the canvas's flow between ``img1`` and ``img2`` where flows
    were blended (no single model's error holds there)."""
    ys, xs = np.nonzero(canvas.blended)
    canvas.err[ys, xs] = photometric_error_at(img1, img2, ys, xs, canvas.flow[ys, xs])


def _confidence(canvas: _Canvas, baseline_confidence: np.ndarray) -> np.ndarray:
    """Confidence (H, W) float32 in [0, 1]: each model's evidence times its photometric factor, blended
    with ``baseline_confidence`` (H, W) by how much of each pixel comes from a model."""
    photometric = np.exp(-cv2.blur(canvas.err, (5, 5)) / PHOTOMETRIC_SCALE)
    photometric[canvas.occluded] = 1.0  # nothing to compare against: the layer's evidence alone speaks
    model_conf = canvas.evidence * photometric
    confidence = canvas.model_weight * model_conf + (1 - canvas.model_weight) * baseline_confidence
    return np.clip(confidence, 0, 1).astype(np.float32)


def compose(ctx: PairContext, planes: list[PlaneFit], things: list[ThingFit], *, feather_radius: float = 4.0,
            plane_weights: list[np.ndarray | None] | None = None) -> Composition:
    """Fuse the baseline of ``ctx`` with the accepted plane and thing models (see the module docstring).

    ``plane_weights``: :func:`weigh_planes` of the planes, if the caller has them already. A model's
    photometric error comes from its fit (``PlaneFit.error``, ``ThingFit.error``) when the fit recorded
    it (on the frames of ``ctx``); the confidence's photometric part uses ``ctx.f1``/``ctx.f2``.
    """
    canvas = _baseline_canvas(ctx)
    if plane_weights is None:
        plane_weights = weigh_planes(planes, ctx.thing_pixels, feather_radius)
    for plane, alpha in zip(planes, plane_weights):
        if plane.accepted:
            _paint_plane(canvas, plane, alpha)
    for thing in _nearest_last(things):
        _paint_thing(canvas, thing, _thing_weight(thing, ctx.shape, feather_radius))
    _measure_blended_error(canvas, ctx.f1, ctx.f2)
    confidence = _confidence(canvas, ctx.confidence)
    return Composition(canvas.flow, canvas.model_map, confidence, canvas.occluded, canvas.layers)
