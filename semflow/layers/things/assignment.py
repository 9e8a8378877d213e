"""Which pixels of a thing's box belong to the object, and which background pixels it covers.

The pixel-to-layer assignment starts from the instance mask and is refined in a band around its
boundary by cost-volume filtering (:func:`refine_assignment`: an edge-aware smoothed
winner-take-all, a fast stand-in for a graph cut): per-pixel cost of each layer = photometric error
under the layer's motion + colour likelihood (:func:`colour_log_ratio`, histograms of the layers'
colours) + a prior pulling toward the given mask.

Occlusion (:func:`covered_by`): the object's pixels are mapped forward with the object's motion;
background pixels whose own (background) motion lands on the object in frame t+1 are covered there.

Maps are over a box (h, w); boxes are :class:`~semflow.segmentation.regions.Box` in full-image pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

from semflow.layers.common import erode
from semflow.layers.things.params import ThingParams
from semflow.segmentation.regions import Box, fill_holes
from semflow.warp import pixel_grid


class GuidedSmoother:
    """Edge-aware smoothing of maps (h, w): a guided filter (``filter_radius``, ``filter_eps`` of the
    params) on ``guide`` (frame 1 over a box, RGB (h, w, 3) in [0, 255]), its statistics computed once."""

    def __init__(self, guide: np.ndarray, params: ThingParams) -> None:
        self._filter = cv2.ximgproc.createGuidedFilter((guide / 255.0).astype(np.float32), params.filter_radius,
                                                       params.filter_eps)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """``values`` (h, w) smoothed, float32."""
        return self._filter.filter(values.astype(np.float32))


def covered_by(fg: np.ndarray, fg_flow: np.ndarray, bg_flow: np.ndarray, box: Box,
               shape: tuple[int, int]) -> np.ndarray:
    """Background pixels (h, w) whose background motion lands on the object in frame t+1.

    The object in frame t+1 is found by splatting its pixels forward (to the 4 nearest pixels, so
    that a slightly expanding object leaves no holes) and closing the result.
    """
    y0, _, x0, _ = box
    height, width = shape
    x, y = pixel_grid(*fg.shape, x0, y0)
    covered = np.zeros(fg.shape, bool)
    fx = (x + fg_flow[..., 0])[fg]
    fy = (y + fg_flow[..., 1])[fg]
    xs, ys = [], []  # the 4 pixels around each landing point, inside the frame
    for ox in (np.floor(fx), np.ceil(fx)):
        for oy in (np.floor(fy), np.ceil(fy)):
            ok = (ox >= 0) & (ox < width) & (oy >= 0) & (oy < height)
            xs.append(ox[ok].astype(int))
            ys.append(oy[ok].astype(int))
    px, py = np.concatenate(xs), np.concatenate(ys)
    if px.size == 0:
        return covered
    # The splat lives in a window 2 px wider than the landing points on each side, so that closing
    # it gives what closing it in a whole-frame canvas would.
    wx0, wx1 = max(0, int(px.min()) - 2), min(width, int(px.max()) + 3)
    wy0, wy1 = max(0, int(py.min()) - 2), min(height, int(py.max()) + 3)
    target = np.zeros((wy1 - wy0, wx1 - wx0), np.uint8)
    target[py - wy0, px - wx0] = 1
    target = cv2.morphologyEx(target, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    bx = np.round(x + bg_flow[..., 0]).astype(int)
    by = np.round(y + bg_flow[..., 1]).astype(int)
    ok = (bx >= wx0) & (bx < wx1) & (by >= wy0) & (by < wy1) & ~fg
    covered[ok] = target[by[ok] - wy0, bx[ok] - wx0] > 0
    return covered


def colour_log_ratio(image: np.ndarray, fg_seeds: np.ndarray, bg_seeds: np.ndarray, bins: int = 8
                     ) -> np.ndarray:
    """log p(colour | object) - log p(colour | background) per pixel (h, w), from RGB histograms."""
    q = np.clip(image / (256.0 / bins), 0, bins - 1).astype(np.int32)
    code = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    n = bins ** 3
    h_fg = np.bincount(code[fg_seeds], minlength=n).astype(np.float64) + 1.0
    h_bg = np.bincount(code[bg_seeds], minlength=n).astype(np.float64) + 1.0
    ratio = np.log(h_fg / h_fg.sum()) - np.log(h_bg / h_bg.sum())
    return np.clip(ratio[code], -4.0, 4.0).astype(np.float32)


CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


def open_cross(mask: np.ndarray) -> np.ndarray:
    """Binary opening (h, w) bool by the 3x3 cross, pixels outside the image counting as background
    (as ``scipy.ndimage.binary_opening`` does)."""
    m = mask.astype(np.uint8)
    m = cv2.erode(m, CROSS, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return cv2.dilate(m, CROSS, borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)


def refine_assignment(mask: np.ndarray, cost_fg: np.ndarray, cost_bg: np.ndarray, smooth: GuidedSmoother,
                      band: float, params: ThingParams) -> np.ndarray:
    """Refine the object mask inside a band around its boundary by cost-volume filtering.

    ``cost_fg``/``cost_bg`` (h, w) are per-pixel costs of each layer; a prior pulling toward ``mask``
    grows linearly with the distance from its boundary. The cost difference is smoothed by ``smooth``
    (a guided filter on frame 1 over the box) and the cheaper layer wins.
    """
    inside = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    outside = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 3)
    signed = inside - outside  # > 0 inside the mask
    prior = params.prior_weight * np.clip(signed / band, -1.0, 1.0)
    smoothed = smooth(cost_fg - cost_bg - prior)
    in_band = np.abs(signed) <= band
    refined = np.where(in_band, smoothed < 0, mask)
    refined = fill_holes(open_cross(refined))
    # Keep only the parts connected to the mask's core.
    count, labelled = cv2.connectedComponents(refined.astype(np.uint8), connectivity=4)
    core = erode(mask, 1) & refined
    if count > 2 and core.any():
        keep = np.zeros(count, bool)
        keep[labelled[core]] = True
        keep[0] = False
        refined = keep[labelled]
    return refined if refined.any() else mask


def window_around(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
    """Slices of the bounding box of ``mask`` (h, w) grown by ``margin`` px, clipped to the mask's array."""
    ys, xs = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    h, w = mask.shape
    if ys.size == 0:
        return slice(0, h), slice(0, w)
    return (slice(max(0, ys[0] - margin), min(h, ys[-1] + 1 + margin)),
            slice(max(0, xs[0] - margin), min(w, xs[-1] + 1 + margin)))
