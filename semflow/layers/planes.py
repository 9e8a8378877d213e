"""Planes: one homography per plane region (road, pavement, sky...), kept only where it explains the region.

For each region the baseline flow's confident pixels give point matches ``x -> x + flow(x)``; RANSAC
finds a homography, a least-squares fit on its inliers refines it, and a robust photometric
Gauss-Newton refinement on the region's pixels polishes it (kept only if it lowers the photometric
error), so the result does not inherit the baseline's small biases. The homography is used only when

- its inlier share among the region's confident pixels is high enough, and
- its photometric error over the region (frame 2 warped back onto frame 1) is no worse than the
  baseline's, within a small tolerance (a textureless road is explained equally well by both, and
  there the homography is the better guess of the true motion); or else the baseline is
  unconfident on most of the region: then the homography is used on those unconfident pixels only.

The photometric refinement is kept only if the homography still agrees with the baseline's matches
(a textureless region lets brightness constancy drift). Inside an accepted region, pixels where the
baseline disagrees with the homography and is either clearly better photometrically (a mislabelled
object, say) or confident and not clearly worse are vetoed (:mod:`semflow.layers.veto`): the composer
keeps the baseline there.

    fits = fit_planes(regions, ctx)    # regions: segmentation.regions.Region; ctx: layers.context.PairContext
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from semflow.layers.common import dilate, erode, magnitude, photometric_error, refine_warp, subsample_points
from semflow.layers.context import PairContext
from semflow.layers.veto import VetoParams, baseline_veto
from semflow.segmentation.regions import Box, Region
from semflow.warp import pixel_grid

PLANE_VETO = VetoParams(window=11, margin=3.0, disagreement=1.0, trust_confidence=0.5, trust_disagreement=1.0,
                        trust_margin=3.0)
"""The plane's veto: the baseline must be better by 3 grey levels (11x11 mean) where the flows differ
by more than 1 px, or confident (0.5), different by 1 px and not worse by 3."""


@dataclass
class PlaneParams:
    """Settings of the plane model. Distances in pixels, errors in grey levels (0-255)."""

    min_area: int = 400
    """Regions smaller than this keep the baseline."""
    min_confidence: float = 0.5
    """Baseline confidence a pixel needs to serve as a match."""
    max_points: int = 3000
    min_matches: int = 50
    """A region with fewer confident pixels than this keeps the baseline."""
    ransac_threshold: float = 1.0
    """RANSAC reprojection threshold (px)."""
    min_inlier_share: float = 0.5
    error_tolerance: float = 0.05
    """The homography may be this much worse (relative) than the baseline photometrically..."""
    error_slack: float = 0.5
    """...plus this (grey levels), and still be used."""
    unconfident_share: float = 0.5
    """A homography that fails that test is still used on the region's pixels where the baseline is
    unconfident (and not clearly better locally, ``veto.margin``) when those are at least this share
    of the region."""
    veto: VetoParams = PLANE_VETO
    """Where inside an accepted region the baseline stays (:func:`~semflow.layers.veto.baseline_veto`)."""
    photometric_refinement: bool = True
    """Refine the RANSAC homography by robust Gauss-Newton on brightness constancy over the region."""
    veto_thing_margin: int = 6
    """No veto this close to thing pixels (px; more where motion is larger)."""


@dataclass(frozen=True, kw_only=True)
class PlaneFit:
    """The homography fitted to one plane region and the evidence for it.

    ``homography`` (3, 3) maps full-image frame-1 pixels to frame 2 (None when the fit failed).
    ``flow`` (h, w, 2) is its flow over the region's box; ``veto`` (h, w) bool marks pixels where the
    baseline stays. Errors are mean photometric errors over the region (grey levels).
    """

    region: Region
    accepted: bool
    reason: str
    """Why the homography is used or not (for reports)."""
    homography: np.ndarray | None = None
    flow: np.ndarray | None = None
    veto: np.ndarray | None = None
    inlier_share: float = 0.0
    model_error: float = float("nan")
    baseline_error: float = float("nan")
    error: np.ndarray | None = None
    """(h, w) photometric error of ``flow`` over the box (grey levels, see :func:`photometric_error`)."""
    candidate: bool = False
    """Video mode: a fit of a plane without a track history that passed the gate but is no clear evidence
    (:func:`semflow.layers.tracking.carry_plane`): not used; its track keeps it for the next pair to confirm."""
    strength: float = 1.0
    """Share of the plane's flow in the composite where it is used (1; video mode: less on the pair a
    candidate is confirmed, so that the region changes from the baseline's motion to the plane's gradually)."""


def homography_flow(homography: np.ndarray, box: Box) -> np.ndarray:
    """Flow (h, w, 2) float32 of ``homography`` over the box (y0, y1, x0, x1) of the full image."""
    y0, y1, x0, x1 = box
    x, y = pixel_grid(y1 - y0, x1 - x0, x0, y0)
    h = homography.astype(np.float64)
    den = h[2, 0] * x + h[2, 1] * y + h[2, 2]
    den = np.where(np.abs(den) < 1e-9, 1e-9, den)
    u = (h[0, 0] * x + h[0, 1] * y + h[0, 2]) / den - x
    v = (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / den - y
    return np.stack([u, v], axis=2).astype(np.float32)


MIN_SPREAD = 0.25
"""Points whose spread across their main line (px, standard deviation) is less do not fix a homography."""


def _spread_across(points: np.ndarray) -> float:
    """Standard deviation (px) of ``points`` (N, 2) across their least-squares line (0 for N < 2)."""
    if len(points) < 2:
        return 0.0
    centred = points.astype(np.float64) - points.mean(axis=0, dtype=np.float64)
    return float(np.linalg.svd(centred, compute_uv=False)[-1] / np.sqrt(len(points)))


def fit_homography(src: np.ndarray, dst: np.ndarray, threshold: float
                   ) -> tuple[np.ndarray | None, np.ndarray]:
    """RANSAC homography from point matches (N, 2), refined by least squares on the inliers.

    Returns (H (3, 3) or None, inlier mask (N,) bool). None also when the inliers lie on one line
    (spread across it under ``MIN_SPREAD`` px): they do not determine a homography off that line.
    """
    if len(src) < 8:
        return None, np.zeros(len(src), bool)
    h, inliers = cv2.findHomography(src, dst, cv2.RANSAC, threshold, maxIters=2000, confidence=0.995)
    if h is None:
        return None, np.zeros(len(src), bool)
    inliers = inliers.ravel().astype(bool)
    if _spread_across(src[inliers]) < MIN_SPREAD:
        return None, np.zeros(len(src), bool)
    if inliers.sum() >= 8:
        refined, _ = cv2.findHomography(src[inliers], dst[inliers], 0)
        if refined is not None:
            h = refined
    return h, inliers


def fit_plane(region: Region, ctx: PairContext, params: PlaneParams, rng: np.random.Generator) -> PlaneFit:
    """Fit and judge a homography for one region of the pair ``ctx``.

    Plane pixels near ``ctx.thing_pixels`` are never vetoed (see ``PlaneParams.veto_thing_margin``).
    """
    sy, sx = region.slices
    y0, _, x0, _ = region.box
    mask = region.mask
    base = ctx.baseline[sy, sx]
    base_err_box = ctx.baseline_error[sy, sx]
    usable = erode(mask, 2) & (ctx.confidence[sy, sx] >= params.min_confidence)
    base_err = float(base_err_box[mask].mean())
    if usable.sum() < params.min_matches:
        # The baseline's unconfident flow is no evidence for a homography.
        return PlaneFit(region=region, accepted=False, baseline_error=base_err,
                        reason=f"baseline confident on {int(usable.sum())} px (< {params.min_matches})")
    ys, xs = subsample_points(usable, params.max_points, rng)
    src = np.stack([xs + x0, ys + y0], axis=1).astype(np.float32)
    dst = src + base[ys, xs]
    homography, inliers = fit_homography(src, dst, params.ransac_threshold)
    if homography is None:
        return PlaneFit(region=region, accepted=False, baseline_error=base_err, reason="no homography found")

    f1, f2 = ctx.f1, ctx.f2
    flow = homography_flow(homography, region.box)
    err, inside = photometric_error(f1, f2, flow, x0, y0)
    judged = mask & inside
    if not judged.any():
        judged = mask
    model_err = float(err[judged].mean())
    if params.photometric_refinement:
        refined = refine_warp(ctx.gray.gray1, ctx.gray.gray2, homography, erode(mask, 2), region.box, rng=rng,
                              target=ctx.gray.target)
        if refined is not None:
            flow_r = homography_flow(refined, region.box)
            err_r, inside_r = photometric_error(f1, f2, flow_r, x0, y0)
            # Kept only if it still agrees with the matches: on a textureless region brightness
            # constancy alone lets the warp drift away from what the baseline found.
            agree_r = magnitude(flow_r[ys, xs] - base[ys, xs]) < params.ransac_threshold
            if float(err_r[judged].mean()) < model_err and agree_r.mean() >= inliers.mean() - 0.02:
                homography, flow, err, inside = refined, flow_r, err_r, inside_r
                model_err = float(err[judged].mean())
    return _judge(region, ctx, params, homography, flow, err, judged, float(inliers.mean()))


def _judge(region: Region, ctx: PairContext, params: PlaneParams, homography: np.ndarray, flow: np.ndarray,
           err: np.ndarray, judged: np.ndarray, share: float) -> PlaneFit:
    """The gate and the veto of a homography over ``region`` (its flow and photometric error over the
    box, the judged pixels and the inlier share already computed)."""
    sy, sx = region.slices
    mask = region.mask
    base = ctx.baseline[sy, sx]
    base_err_box = ctx.baseline_error[sy, sx]
    model_err = float(err[judged].mean())
    base_err = float(base_err_box[judged].mean())

    # Per-pixel veto: where the baseline is locally much better and disagrees with the homography, or
    # where a confident baseline is an outlier of the homography that photometry cannot overrule.
    window = (params.veto.window, params.veto.window)
    local_gain = cv2.blur(err - base_err_box, window)  # the homography's local excess error
    difference = magnitude(flow - base)
    veto = mask & baseline_veto(local_gain, 0.0, difference, ctx.confidence[sy, sx], params.veto)
    if veto.any():
        # Next to things the baseline may look better only because the plane is occluded there in
        # frame t+1; that is where the homography is most needed, so no veto within reach of motion.
        reach = max(params.veto_thing_margin, int(1.5 * np.percentile(magnitude(base[mask]), 95)))
        veto &= ~dilate(ctx.thing_pixels[sy, sx], reach)

    if share < params.min_inlier_share:
        accepted, reason = False, f"inlier share {share:.2f} < {params.min_inlier_share}"
    elif model_err > base_err * (1 + params.error_tolerance) + params.error_slack:
        accepted, reason = False, f"photometric error {model_err:.2f} > baseline {base_err:.2f}"
        # Where the baseline is unconfident on most of the region, the photometric test speaks mostly
        # for pixels the baseline has no support on either: there the homography, supported by the
        # confident pixels (inlier share above), is the better guess unless photometry contradicts it
        # locally. It is used on those pixels only.
        unconfident = mask & (ctx.confidence[sy, sx] < params.min_confidence) & (local_gain < params.veto.margin)
        if unconfident.sum() >= params.unconfident_share * mask.sum():
            veto = veto | (mask & ~unconfident)
            accepted, reason = True, reason + "; used only where the baseline is unconfident"
    else:
        accepted, reason = True, "ok"
    return PlaneFit(region=region, accepted=accepted, reason=reason, homography=homography, flow=flow,
                    veto=veto, inlier_share=share, model_error=model_err, baseline_error=base_err, error=err)


def judge_homography(region: Region, ctx: PairContext, params: PlaneParams, homography: np.ndarray) -> PlaneFit:
    """``region`` judged with a given ``homography`` (one carried from another pair, say) by the gate of
    :func:`fit_plane`; its inlier share is the share of the region's confident baseline matches within
    ``params.ransac_threshold`` of the homography's flow."""
    sy, sx = region.slices
    y0, _, x0, _ = region.box
    flow = homography_flow(homography, region.box)
    err, inside = photometric_error(ctx.f1, ctx.f2, flow, x0, y0)
    judged = region.mask & inside
    if not judged.any():
        judged = region.mask
    usable = erode(region.mask, 2) & (ctx.confidence[sy, sx] >= params.min_confidence)
    share = float((magnitude(flow - ctx.baseline[sy, sx])[usable] < params.ransac_threshold).mean()) \
        if usable.any() else 0.0
    return _judge(region, ctx, params, homography, flow, err, judged, share)


def fit_planes(regions: list[Region], ctx: PairContext, params: PlaneParams | None = None, *, seed: int = 0
               ) -> list[PlaneFit]:
    """:func:`fit_plane` for each region at least ``params.min_area`` pixels large, in order.

    The random draws (point subsets) come from one generator seeded with ``seed``, so the fits are
    reproducible for a given list of regions.
    """
    params = params or PlaneParams()
    rng = np.random.default_rng(seed)
    return [fit_plane(r, ctx, params, rng) for r in regions if r.area >= params.min_area]
