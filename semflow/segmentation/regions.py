"""Regions of a label map: the one region type, box convention and connected-component finder.

A :class:`Box` is (y0, y1, x0, x1): rows then columns, end-exclusive, in full-image pixels, so that
``image[box.slices]`` is the crop; JSON outputs write it as ``[x0, y0, x1, y1]`` (:meth:`Box.xyxy`).
A :class:`Region` is a class id, a box and a bool mask inside the box; thing instances, plane regions
and the regions the CLIP prior labels are all Regions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np


class Box(NamedTuple):
    """An axis-aligned box: rows ``y0:y1``, columns ``x0:x1`` (end-exclusive), full-image pixels."""

    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def slices(self) -> tuple[slice, slice]:
        """``(rows, columns)`` slices: ``image[box.slices]`` is the crop."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    def xyxy(self) -> list[int]:
        """The box as semflow's JSON outputs write it (explain.json, sharpen.json, prior.json):
        ``[x0, y0, x1, y1]`` in px, ``x1`` and ``y1`` end-exclusive (the crop is ``image[y0:y1, x0:x1]``)."""
        return [int(self.x0), int(self.y0), int(self.x1), int(self.y1)]

    def grow(self, margin: int, shape: tuple[int, int]) -> Box:
        """This box grown by ``margin`` px on every side, clipped to an image of ``shape`` (H, W)."""
        return Box(max(0, self.y0 - margin), min(shape[0], self.y1 + margin),
                   max(0, self.x0 - margin), min(shape[1], self.x1 + margin))


@dataclass
class Region:
    """One connected region of a label map.

    ``class_id``: its class; ``box``: a :class:`Box` (it may include a margin outside the region);
    ``mask``: bool (box.height, box.width), True on the region's pixels; ``id``: the instance number
    (1-based) where the region is one of a list of thing instances, else 0.
    """

    class_id: int
    box: Box
    mask: np.ndarray
    id: int = 0

    @property
    def slices(self) -> tuple[slice, slice]:
        return Box(*self.box).slices

    @property
    def area(self) -> int:
        """Pixels in the region."""
        return int(self.mask.sum())

    @property
    def size(self) -> int:
        """The larger side of the region's tight bounding box, in pixels."""
        ys, xs = np.nonzero(self.mask)
        return int(max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)) if ys.size else 0

    def full_mask(self, shape: tuple[int, int]) -> np.ndarray:
        """The region as a bool mask (H, W) of the whole image."""
        out = np.zeros(shape, bool)
        out[self.slices] = self.mask
        return out


def find_regions(labels: np.ndarray, class_ids: Iterable[int] | None = None, *, min_area: int = 1,
                 margin: int = 0, connectivity: int = 8) -> list[Region]:
    """Connected components of each class of ``labels`` (H, W) with at least ``min_area`` pixels.

    ``class_ids``: the classes to look at, in this order (None: every value present, ascending).
    Within a class, components come in raster order of their first pixel. Each box is the component's
    bounding box grown by ``margin`` px (clipped to the image).
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be (H, W), got shape {labels.shape}")
    ids = np.unique(labels) if class_ids is None else class_ids
    regions = []
    for class_id in ids:
        members = (labels == class_id).astype(np.uint8)
        if not members.any():
            continue
        count, comp, stats, _ = cv2.connectedComponentsWithStats(members, connectivity=connectivity)
        for k in range(1, count):
            x, y, w, h, area = (int(v) for v in stats[k])
            if area < max(min_area, 1):
                continue
            box = Box(y, y + h, x, x + w).grow(margin, labels.shape)
            regions.append(Region(int(class_id), box, comp[box.slices] == k))
    return regions


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` (h, w) bool with its holes filled: False pixels not 4-connected to the border become True."""
    count, labelled = cv2.connectedComponents((~mask.astype(bool)).astype(np.uint8), connectivity=4)
    outside = np.zeros(count, bool)  # per background component: does it touch the border?
    outside[np.concatenate([labelled[0], labelled[-1], labelled[:, 0], labelled[:, -1]])] = True
    outside[0] = False  # label 0 is the mask itself
    return ~outside[labelled]
