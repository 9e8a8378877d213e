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

from semflow.layers.common import dilate, erode
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


def hidden_behind(foreground: np.ndarray, region: np.ndarray, fg_flow: np.ndarray, bg_flow: np.ndarray,
                  err_fg: np.ndarray, err_bg: np.ndarray, landed: np.ndarray, box: Box, shape: tuple[int, int], *,
                  unexplained: float, reach: float, window: int = 5, min_pixels: int = 30) -> np.ndarray:
    """Pixels (h, w) of a thing's region that are background hidden behind the object in frame t+1.

    ``foreground`` (h, w): the object's pixels; ``region`` (h, w): the thing's region (its mask, and
    the object); ``err_fg``/``err_bg`` (h, w): photometric errors under the object's and the
    background's flow (each (h, w, 2)); ``landed`` (h, w): where the object's flow stays inside frame
    t+1 (a pixel that leaves the frame is not hidden). A pixel of ``region`` is hidden background when
    neither layer explains it (``window`` x ``window`` mean error at least ``unexplained`` under
    both), the background's motion carries it onto the object as it is in frame t+1 (where the
    object's explained pixels land, :func:`covered_by`) and the object's own motion does not (a pixel
    of the object that something in front hides, or that its motion misfits, lands among the
    object's other pixels; hidden background beside the object's leading edge lands beyond them),
    outside the holes of the explained pixels (a misfit patch inside the object), where the two
    motions differ by at most ``reach`` px (the width of the strip the object covers; much wider, the
    object's motion is itself in doubt). A parked car that a passing one covers in frame t+1 shares
    its thing region: its hidden strip matches nothing, and without this rule it took the passing
    car's motion. Fewer than ``min_pixels`` unexplained pixels: none.
    """
    blur = (window, window)
    lost = region & (cv2.blur(err_fg, blur) >= unexplained) & (cv2.blur(err_bg, blur) >= unexplained)
    lost &= np.hypot(*(fg_flow - bg_flow).transpose(2, 0, 1)) <= reach
    if lost.sum() < min_pixels:  # (fewer: nothing a strip 5 px thick could come from)
        return np.zeros_like(lost)
    explained = foreground & ~lost
    hidden = lost & landed & ~fill_holes(explained)
    # A strip of hidden background is as wide as the motions differ; thinner runs are the object's own
    # outline (a 5 x 5 mean error there mixes in the background that the object uncovers).
    if not erode(hidden, 2).any():
        return np.zeros_like(lost)
    hidden &= covered_by(explained, fg_flow, bg_flow, box, shape) & ~covered_by(explained, fg_flow, fg_flow,
                                                                                box, shape)
    return dilate(erode(hidden, 2), 2) & hidden


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
