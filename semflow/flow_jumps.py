"""Where a flow jumps: the motion-discontinuity mask that ``discrete``'s weighted median and
``--sharpen`` both start from.

A pixel p is at a jump when, along some direction d (right, down and both diagonals), the flows
``radius`` px away on either side differ by more than max(``jump``, ``relative`` * |f(p)|) px.
Positions beyond the image are clamped to its edge.

Flows are float32 (H, W, 2), u then v in pixels, frame t -> t+1; masks (H, W) bool.
"""

from __future__ import annotations

import cv2
import numpy as np

from semflow.warp import magnitude

DIRECTIONS = ((1, 0), (0, 1), (1, 1), (1, -1))
"""Unit steps (dx, dy) along which the two sides of a pixel are compared."""


def flow_jumps(flow: np.ndarray, *, radius: int, jump: float, relative: float) -> np.ndarray:
    """(H, W) bool: the pixels of ``flow`` (H, W, 2) at a jump (see the module docstring)."""
    h, w = flow.shape[:2]
    r = radius
    padded = np.pad(flow, ((r, r), (r, r), (0, 0)), mode="edge")
    limit = np.maximum(jump, relative * magnitude(flow))
    found = np.zeros((h, w), bool)
    for dx, dy in DIRECTIONS:
        ahead = padded[r + dy * r:r + dy * r + h, r + dx * r:r + dx * r + w]
        behind = padded[r - dy * r:r - dy * r + h, r - dx * r:r - dx * r + w]
        found |= magnitude(ahead - behind) > limit
    return found


def near_jumps(flow: np.ndarray, *, radius: int = 8, jump: float = 6.0, relative: float = 0.3,
               widen: int = 3) -> np.ndarray:
    """(H, W) bool: the pixels within ``widen`` px (a disk) of a :func:`flow_jumps` pixel of ``flow``
    (H, W, 2). The defaults are ``--sharpen``'s (``BoundaryLayerParams``): its uncertain pixels."""
    found = flow_jumps(flow, radius=radius, jump=jump, relative=relative)
    if widen <= 0:
        return found
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * widen + 1, 2 * widen + 1))
    return cv2.dilate(found.astype(np.uint8), disk).astype(bool)
