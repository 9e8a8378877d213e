"""Bool mask morphology by disks (erosion, dilation), for the motion fitting and the layer models.

Masks are bool (H, W); radii in px.
"""

from __future__ import annotations

import cv2
import numpy as np


def disk(radius: int) -> np.ndarray:
    """A uint8 disk structuring element of the given radius (pixels)."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Bool mask eroded by a disk of ``radius`` px (unchanged for radius 0)."""
    if radius <= 0:
        return mask.astype(bool)
    return cv2.erode(mask.astype(np.uint8), disk(radius), borderType=cv2.BORDER_REPLICATE).astype(bool)


LARGE_RADIUS = 10
"""Dilations by more than this many px use a distance transform (a kernel that large is slow)."""


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Bool mask dilated by a disk of ``radius`` px (unchanged for radius 0).

    Radii above LARGE_RADIUS: the pixels within ``radius + 0.5`` px (Euclidean) of the mask, which
    differs from the disk kernel by a few pixels along the rim.
    """
    if radius <= 0:
        return mask.astype(bool)
    if radius > LARGE_RADIUS:
        if not mask.any():
            return np.zeros(mask.shape, bool)
        distance = cv2.distanceTransform((~mask.astype(bool)).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        return distance <= radius + 0.5
    return cv2.dilate(mask.astype(np.uint8), disk(radius)).astype(bool)
