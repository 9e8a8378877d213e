"""Instances of things: connected components of each thing class, cleaned.

Cleaning: components smaller than ``min_area`` pixels are dropped, and each kept component's holes
(enclosed pixels of non-thing classes: a car's windows seen as sky, say) are filled. Holes that hold
another thing (a pedestrian in front of a bus) are left to that thing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class Instance:
    """One thing instance. ``box`` = (y0, y1, x0, x1) end-exclusive; ``mask`` bool (y1-y0, x1-x0) in the box."""

    id: int
    class_id: int
    box: tuple[int, int, int, int]
    mask: np.ndarray

    @property
    def area(self) -> int:
        """Pixels in the instance."""
        return int(self.mask.sum())

    @property
    def slices(self) -> tuple[slice, slice]:
        y0, y1, x0, x1 = self.box
        return slice(y0, y1), slice(x0, x1)

    def full_mask(self, shape: tuple[int, int]) -> np.ndarray:
        """The instance as a bool mask of the whole image (H, W)."""
        out = np.zeros(shape, bool)
        out[self.slices] = self.mask
        return out


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` (bool, H x W) with every region of False pixels not connected to the border set True."""
    m = np.pad(mask.astype(np.uint8), 1)
    flood = m.copy()
    ff = np.zeros((m.shape[0] + 2, m.shape[1] + 2), np.uint8)
    cv2.floodFill(flood, ff, (0, 0), 1)  # the outside (4-connected) becomes 1; holes stay 0
    return (mask | (flood[1:-1, 1:-1] == 0))


def extract_instances(labels: np.ndarray, thing_ids: Iterable[int], *, min_area: int = 64,
                      fill: bool = True, connectivity: int = 8) -> tuple[np.ndarray, list[Instance]]:
    """Cleaned connected components of the classes ``thing_ids`` in ``labels`` (H, W).

    Returns the instance map (H, W) int32 (0 = no instance, k = ``instances[k - 1]``) and the list of
    instances, ordered by class then by first pixel in raster order.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be (H, W), got shape {labels.shape}")
    thing_ids = [int(i) for i in thing_ids]
    is_thing = np.isin(labels, thing_ids)
    inst_map = np.zeros(labels.shape, np.int32)
    instances: list[Instance] = []
    for cid in thing_ids:
        cls = (labels == cid).astype(np.uint8)
        if not cls.any():
            continue
        n, comp, stats, _ = cv2.connectedComponentsWithStats(cls, connectivity=connectivity)
        for k in range(1, n):
            x, y, w, h, area = (int(v) for v in stats[k])
            if area < min_area:
                continue
            mask = comp[y:y + h, x:x + w] == k
            if fill:
                filled = fill_holes(mask)
                mask = mask | (filled & ~is_thing[y:y + h, x:x + w])
            mask &= inst_map[y:y + h, x:x + w] == 0
            inst = Instance(len(instances) + 1, cid, (y, y + h, x, x + w), mask)
            inst_map[y:y + h, x:x + w][mask] = inst.id
            instances.append(inst)
    return inst_map, instances
