"""Motion helpers of video mode's tracks (:mod:`semflow.layers.tracking`): carrying a mask along a
flow, blending two homographies, comparing candidate homographies photometrically on the same pixels,
and mean flows over a region."""

from __future__ import annotations

import cv2
import numpy as np

from semflow.layers.common import magnitude, photometric_error_at
from semflow.layers.context import PairContext
from semflow.layers.planes import PlaneFit, PlaneParams, homography_flow
from semflow.segmentation.regions import Box, Region
from semflow.warp import pixel_grid


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
    return carry_region(Region(0, Box(0, mask.shape[0], 0, mask.shape[1]), mask), flow, carry_reach(flow))


def carry_reach(flow: np.ndarray) -> tuple[int, int]:
    """How far (rows, columns) px from a region :func:`carry_region` can carry it under ``flow``: the
    largest finite |v| and |u| rounded up, plus 1 (a NaN or infinite flow carries a pixel out of the frame)."""
    reach = []
    for c in (1, 0):
        size = np.abs(flow[..., c])
        reach.append(int(min(np.ceil(size.max(where=np.isfinite(size), initial=0.0)), flow.shape[1 - c])) + 1)
    return reach[0], reach[1]


def carry_region(region: Region, flow: np.ndarray, reach: tuple[int, int]) -> np.ndarray:
    """:func:`carry_mask` of ``region`` (H, W) bool, bit for bit (:func:`carried_crop` in the whole frame)."""
    out = np.zeros(flow.shape[:2], bool)
    box, crop = carried_crop(region, flow, reach)
    out[box.slices] = crop
    return out


def carried_crop(region: Region, flow: np.ndarray, reach: tuple[int, int]) -> tuple[Box, np.ndarray]:
    """:func:`carry_mask` of ``region`` as a box of the frame and the carried mask there (bool; all False
    outside it), computed within the region's box grown by ``reach`` (:func:`carry_reach` of ``flow``):
    a pixel farther from the box reads outside it (the flow is read where the pixel lands, a backward
    warp). Of a crowd's hundreds of instances each whole frame took 2-10 ms at 720p. The mask is sampled
    from its box's corner rounded down to even coordinates: OpenCV rounds halves to even, and an odd
    shift would move ties (``2.5 - 1`` rounds to 2, not 1)."""
    h, w = flow.shape[:2]
    y0, y1, x0, x1 = region.box
    oy0, oy1 = max(0, y0 - reach[0]), min(h, y1 + reach[0])
    ox0, ox1 = max(0, x0 - reach[1]), min(w, x1 + reach[1])
    if oy0 >= oy1 or ox0 >= ox1 or not region.mask.any():
        return Box(0, 0, 0, 0), np.zeros((0, 0), bool)
    sy, sx = y0 - y0 % 2, x0 - x0 % 2
    source = np.zeros((y1 - sy, x1 - sx), np.uint8)
    source[y0 - sy:, x0 - sx:] = region.mask
    xs, ys = pixel_grid(oy1 - oy0, ox1 - ox0, ox0, oy0)
    crop = flow[oy0:oy1, ox0:ox1]
    map_x, map_y = xs - crop[..., 0], ys - crop[..., 1]  # (full-frame coordinates, as the whole frame's)
    map_x -= np.float32(sx)  # (exact for a coordinate that lands at -0.5 or beyond: sx <= it + 0.5)
    map_y -= np.float32(sy)
    return Box(oy0, oy1, ox0, ox1), cv2.remap(source, map_x, map_y, cv2.INTER_NEAREST,
                                              borderMode=cv2.BORDER_CONSTANT, borderValue=0) != 0
