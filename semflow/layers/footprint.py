"""Where a track of video mode is (:mod:`semflow.layers.tracking`): its mask within its bounding box, and
the saved form of that mask read back from an untrusted file.

A whole-frame mask per track held 0.9 MB at 720p (350 MB for a crowd's 380 tracks), and matching
counted each track's area over the whole frame; a :class:`Footprint` holds the mask's bounding box and
the mask there only, and counts overlaps within boxes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from semflow.layers.plane_motion import carried_crop
from semflow.segmentation.regions import Box, Region

EMPTY = Box(0, 0, 0, 0)
"""The box of an empty mask."""


@dataclass(frozen=True, eq=False)
class Footprint:
    """A bool mask of an (H, W) frame held as its bounding box (tight; :data:`EMPTY` for no pixels) and
    the mask within it, (box.height, box.width) bool."""

    box: Box
    mask: np.ndarray
    shape: tuple[int, int]
    area: int = field(default=-1, compare=False)

    def __post_init__(self) -> None:
        if self.area < 0:
            object.__setattr__(self, "area", int(np.count_nonzero(self.mask)))

    @classmethod
    def of(cls, mask: np.ndarray) -> Footprint:
        """The footprint of a whole-frame (H, W) mask."""
        mask = np.asarray(mask, bool)
        return cls.trimmed(Box(0, mask.shape[0], 0, mask.shape[1]), mask, mask.shape)

    @classmethod
    def trimmed(cls, box: Box, crop: np.ndarray, shape: tuple[int, int]) -> Footprint:
        """The footprint of the (H, W) = ``shape`` mask that is ``crop`` within ``box`` and empty elsewhere."""
        rows = np.flatnonzero(crop.any(axis=1))
        if not rows.size:
            return cls(EMPTY, np.zeros((0, 0), bool), (int(shape[0]), int(shape[1])), 0)
        cols = np.flatnonzero(crop[rows[0]:rows[-1] + 1].any(axis=0))
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        tight = Box(box[0] + r0, box[0] + r1, box[2] + c0, box[2] + c1)
        return cls(tight, np.ascontiguousarray(crop[r0:r1, c0:c1], bool), (int(shape[0]), int(shape[1])))

    def full(self) -> np.ndarray:
        """The mask as an (H, W) bool array of the whole frame."""
        out = np.zeros(self.shape, bool)
        out[Box(*self.box).slices] = self.mask
        return out

    def overlap(self, region: Region) -> int:
        """Pixels of ``region`` (its mask within its box, in this frame) in this footprint."""
        y0, y1, x0, x1 = self.box
        ry0, ry1, rx0, rx1 = region.box
        iy0, iy1, ix0, ix1 = max(y0, ry0), min(y1, ry1), max(x0, rx0), min(x1, rx1)
        if iy0 >= iy1 or ix0 >= ix1:
            return 0
        return int(np.count_nonzero(region.mask[iy0 - ry0:iy1 - ry0, ix0 - rx0:ix1 - rx0]
                                    & self.mask[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0]))

    def packed(self) -> dict[str, np.ndarray]:
        """The saved form: the bits within the box, the box (y0, y1, x0, x1) and the frame's shape."""
        return {"mask": np.packbits(self.mask, axis=None), "box": np.array([int(v) for v in self.box]),
                "shape": np.array(self.shape)}


def unpacked(bits: np.ndarray, box: np.ndarray | None, shape: np.ndarray) -> Footprint:
    """The footprint :meth:`Footprint.packed` saved (``box`` None: a whole-frame mask, as older states
    saved them)."""
    h, w = (int(v) for v in shape)
    y0, y1, x0, x1 = (0, h, 0, w) if box is None else (int(v) for v in box)
    crop = np.unpackbits(bits, count=(y1 - y0) * (x1 - x0)).reshape(y1 - y0, x1 - x0).astype(bool)
    return Footprint.trimmed(Box(y0, y1, x0, x1), crop, (h, w))


def carried(region: Region, flow: np.ndarray, reach: tuple[int, int]) -> Footprint:
    """The footprint of ``region`` carried to the next frame by ``flow`` (:func:`~semflow.layers.plane_motion.carried_crop`)."""
    return Footprint.trimmed(*carried_crop(region, flow, reach), flow.shape[:2])
