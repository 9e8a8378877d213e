"""The CRF's grid matches to a dense flow: which are kept, their sub-pixel refinement, the interpolation.

Small keyword-only steps that ``DiscreteFlow._run`` (``method.py``) calls in turn between the CRF and the
refinement of the dense flow, and the confidence map made at the end. A grid is the lattice of frame
points ``stride`` px apart from (0, 0) (as in ``consistency``); grid arrays are (Gh, Gw[, 2]); ``points``
(N, 2) are frame positions (x, y) px and ``matches`` (N, 2) their flows (u, v) px.
"""

from __future__ import annotations

import cv2
import numpy as np

from semflow.baseline.discrete import boundary, consistency, densify
from semflow.baseline.discrete.presets import Preset


def grid_positions(shape: tuple[int, int], stride: int) -> tuple[np.ndarray, np.ndarray]:
    """The frame positions xs, ys (Gh, Gw) float32 px of the points of a grid of ``shape`` (Gh, Gw)."""
    gh, gw = shape
    ys, xs = np.mgrid[0:gh, 0:gw].astype(np.float32) * stride
    return xs, ys


def kept_matches(fwd: np.ndarray, bwd: np.ndarray, agrees: np.ndarray, *, stride: int, size: tuple[int, int],
                 params: Preset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which forward grid matches ``fwd`` (Gh, Gw, 2) px are kept: the backward ones ``bwd`` bring them
    back (within ``fb_threshold`` px, or ``fb_relative`` of their length), the CRF backs them
    (``agrees``), and they are not in a small segment. ``size``: the frames' (H, W).

    Returns valid (Gh, Gw) bool, the forward-backward error (Gh, Gw) px and its limit (Gh, Gw) px.
    """
    fb_err = consistency.forward_backward_error(fwd, bwd, stride, size)
    fb_limit = np.maximum(params.fb_threshold, params.fb_relative * np.hypot(fwd[..., 0], fwd[..., 1]))
    valid = (fb_err <= fb_limit) & agrees
    valid = consistency.remove_small_segments(fwd, valid, max_diff=max(1.0, stride / 2),
                                              min_size=params.min_segment)
    return valid, fb_err, fb_limit


def refined_matches(gray1: np.ndarray, gray2: np.ndarray, fwd: np.ndarray, valid: np.ndarray, *,
                    grid: tuple[np.ndarray, np.ndarray], subpixel: bool, params: Preset
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The kept grid matches refined to sub-pixel (with ``subpixel``), then checked at pixel level.

    ``grid``: the points' positions (:func:`grid_positions`). Returns points (N, 2) px, matches (N, 2)
    px, ``valid`` (the same array, the dropped matches cleared) and each kept point's fit (Gh, Gw)
    float32: its patch correlation clipped to [0, 1], 0 where no match was kept.
    """
    xs, ys = grid
    points = np.stack([xs[valid], ys[valid]], 1)
    matches = fwd[valid]
    # Sub-pixel refinement, then a pixel-level check: drop matches whose small patches disagree.
    matches, ncc, _ = densify.refine_matches(gray1, gray2, points, matches, iterations=6 if subpixel else 0,
                                             check_patch=params.check_patch)
    fits = ncc >= params.ncc_min
    points, matches = points[fits], matches[fits]
    fit = np.zeros(valid.shape, np.float32)
    fit[valid] = np.clip(ncc, 0.0, 1.0)
    valid[valid] = fits
    return points, matches, valid, fit


def interpolate_matches(img1: np.ndarray, img2: np.ndarray, gray1: np.ndarray, gray2: np.ndarray,
                        points: np.ndarray, matches: np.ndarray, *, valid: np.ndarray,
                        grid: tuple[np.ndarray, np.ndarray], stride: int, params: Preset) -> np.ndarray:
    """The dense flow (H, W, 2) float32 px interpolated from the kept matches (``params.interpolator``).

    With ``boundary_matches``, first more matches near the motion boundaries
    (:func:`with_boundary_matches`); else (options) a second pass that stops at the motion's edges and
    the outvoted matches of small things. With fewer than 3 matches, OpenCV's DIS flow instead.
    """
    if len(points) >= 3 and params.boundary_matches > 0:
        points, matches = with_boundary_matches(img1, img2, points, matches, valid=valid, grid=grid,
                                                stride=stride, params=params)
        return densify.interpolate(img1, img2, points, matches, method=params.interpolator)
    if len(points) >= 3:
        return _interpolate_passes(img1, img2, points, matches, params=params)
    # Nothing trustworthy was matched: fall back to the coarse DIS flow.
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(gray1, gray2, None)


def with_boundary_matches(img1: np.ndarray, img2: np.ndarray, points: np.ndarray, matches: np.ndarray, *,
                          valid: np.ndarray, grid: tuple[np.ndarray, np.ndarray], stride: int,
                          params: Preset) -> tuple[np.ndarray, np.ndarray]:
    """``points`` and ``matches`` with a match for each rejected grid point near a motion boundary, from
    the side it fits (within ``boundary_matches`` px; :func:`boundary.boundary_matches`)."""
    # A first, half-size interpolation finds the motion boundaries.
    coarse = densify.interpolate_coarse(img1, img2, points, matches, method=params.interpolator)
    new, new_flows = boundary.boundary_matches(img1, img2, coarse, valid, stride,
                                               boundary.BoundaryParams(radius=params.boundary_matches))
    xs, ys = grid
    points = np.concatenate([points, np.stack([xs[new], ys[new]], 1)])
    matches = np.concatenate([matches, new_flows[new]])
    return points, matches


def _interpolate_passes(img1: np.ndarray, img2: np.ndarray, points: np.ndarray, matches: np.ndarray, *,
                       params: Preset) -> np.ndarray:
    """The interpolated flow; with ``motion_edges`` interpolated again, and with ``local_k`` (EpicFlow
    only) following the matches of small things that the wide fits outvoted."""
    flow = densify.interpolate(img1, img2, points, matches, method=params.interpolator)
    cost = None
    if params.motion_edges > 0:  # again, stopping at image edges where the first pass's motion jumps
        cost = densify.motion_edge_map(img1, flow, boost=params.motion_edges)
        flow = densify.interpolate(img1, img2, points, matches, method=params.interpolator, cost_map=cost)
    if params.local_k > 0 and params.interpolator == "epic":
        # Matches of a small thing that the wide fits outvoted: a local interpolation, where they choose it.
        local = densify.interpolate(img1, img2, points, matches, cost_map=cost, k=params.local_k)
        flow, _ = densify.follow_outvoted_matches(img1, img2, points, matches, flow, local)
    return flow


def confidence_map(flow: np.ndarray, gray1: np.ndarray, gray2: np.ndarray, *, size: tuple[int, int],
                   valid: np.ndarray, fb_err: np.ndarray, fb_limit: np.ndarray, fit: np.ndarray) -> np.ndarray:
    """The dense confidence (H, W) = ``size`` in [0, 1] of the final ``flow``
    (:func:`densify.dense_confidence`) from the grid points' (Gh, Gw) forward-backward errors and limits
    (px) and patch fits."""
    # A grid point's confidence: kept, forward-backward consistent, and its patches correlate.
    consistent = np.exp(-0.5 * (np.minimum(fb_err, 1e3) / np.maximum(fb_limit, 1e-3)) ** 2)
    grid_conf = np.where(valid, consistent * fit, 0.0)
    return densify.dense_confidence(grid_conf, size, gray1, gray2, flow)


def grid_extras(fwd: np.ndarray, *, valid: np.ndarray, fb_err: np.ndarray, cost: np.ndarray,
                agrees: np.ndarray) -> dict[str, np.ndarray]:
    """The grid matches as a result's ``extras``: flow, kept, forward-backward error (capped at 1000 px),
    the chosen candidates' matching cost and whether the CRF backs them."""
    return {
        "grid_flow": fwd,
        "grid_valid": valid,
        "grid_fb_error": np.minimum(fb_err, 1e3).astype(np.float32),
        "grid_cost": cost.astype(np.float32),
        "grid_crf_agrees": agrees,
    }
