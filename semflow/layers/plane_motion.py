"""Motion helpers of video mode's tracks (:mod:`semflow.layers.tracking`): carrying a mask along a
flow, blending two homographies, comparing candidate homographies photometrically on the same pixels,
and mean flows over a region."""

from __future__ import annotations

import cv2
import numpy as np

from semflow.layers.common import magnitude, photometric_error_at
from semflow.layers.context import PairContext
from semflow.layers.planes import PlaneFit, PlaneParams, homography_flow
from semflow.segmentation.regions import Region


def blend_homographies(previous: np.ndarray, new: np.ndarray, weight: float, box: tuple[int, int, int, int]
                       ) -> np.ndarray:
    """The homography whose motion over ``box`` (y0, y1, x0, x1) is ``(1 - weight)`` times ``previous``'s
    plus ``weight`` times ``new``'s (fitted exactly to a 5 x 5 grid of points over the box)."""
    y0, y1, x0, x1 = box
    gx, gy = np.meshgrid(np.linspace(x0, x1 - 1, 5), np.linspace(y0, y1 - 1, 5))
    src = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float64)

    def apply(h: np.ndarray) -> np.ndarray:
        p = np.c_[src, np.ones(len(src))] @ np.asarray(h, np.float64).T
        return p[:, :2] / np.where(np.abs(p[:, 2:]) < 1e-9, 1e-9, p[:, 2:])

    dst = (1.0 - weight) * apply(previous) + weight * apply(new)
    blended, _ = cv2.findHomography(src.astype(np.float32), dst.astype(np.float32), 0)
    return new if blended is None else blended


def sampled_error(region: Region, ctx: PairContext, homography: np.ndarray, points: int = 4000) -> float:
    """Mean photometric error (grey levels) of ``homography`` over at most ``points`` pixels of ``region``
    spread evenly over it: a cheap comparison of two candidate models on the same pixels."""
    ys, xs = np.nonzero(region.mask)
    step = max(1, len(ys) // points)
    ys, xs = ys[::step] + region.box[0], xs[::step] + region.box[2]
    if not len(ys):
        return float("inf")
    p = np.stack([xs, ys, np.ones(len(xs))], axis=1) @ np.asarray(homography, np.float64).T
    den = np.where(np.abs(p[:, 2]) < 1e-9, 1e-9, p[:, 2])
    flow = np.stack([p[:, 0] / den - xs, p[:, 1] / den - ys], axis=1).astype(np.float32)
    return float(photometric_error_at(ctx.f1, ctx.f2, ys, xs, flow).mean())


def confident_mean_flows(fit: PlaneFit, ctx: PairContext, params: PlaneParams) -> tuple[float, float]:
    """Mean flow magnitude (px) of the fit and of the baseline over the region's confident pixels
    (nan where there are none)."""
    region = fit.region
    sy, sx = region.slices
    confident = region.mask & (ctx.confidence[sy, sx] >= params.min_confidence)
    if fit.flow is None or not confident.any():
        return float("nan"), float("nan")
    return (float(magnitude(fit.flow[confident]).mean()),
            float(magnitude(ctx.baseline[sy, sx][confident]).mean()))


def region_mean_flow(region: Region, homography: np.ndarray) -> float:
    """Mean flow magnitude (px) of ``homography`` over ``region``."""
    return float(magnitude(homography_flow(homography, region.box)[region.mask]).mean())


def carry_mask(mask: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Where the pixels of ``mask`` (H, W) bool of frame t are in frame t+1 under ``flow`` (H, W, 2):
    each pixel y of frame t+1 takes the mask at y - flow(y) (the flow read at y, fine for smooth flow)."""
    h, w = mask.shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    carried = cv2.remap(mask.astype(np.uint8), xs - flow[..., 0], ys - flow[..., 1], cv2.INTER_NEAREST,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return carried.astype(bool)
