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
from semflow.segmentation.temporal import fusion_size

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


def _ints(value: object, count: int, what: str) -> list[int]:
    array = np.asarray(value)
    if array.dtype.kind not in "iu" or array.shape != (count,):
        raise ValueError(f"{what}: {count} integers expected")
    return [int(v) for v in array]


def unpacked(bits: object, box: object | None, shape: object) -> Footprint:
    """The footprint :meth:`Footprint.packed` saved (``box`` None: a whole-frame mask, as older states
    saved them); ValueError unless the arrays are what it writes: a frame shape of positive sides, a box
    within it, and exactly the box's bits (so nothing is allocated beyond the file's own size, 8 times)."""
    h, w = _ints(shape, 2, "mask shape")
    if h <= 0 or w <= 0:
        raise ValueError("mask shape: positive sides expected")
    y0, y1, x0, x1 = (0, h, 0, w) if box is None else _ints(box, 4, "mask box")
    if not (0 <= y0 <= y1 <= h and 0 <= x0 <= x1 <= w):
        raise ValueError("mask box: outside the mask's shape")
    bits = np.asarray(bits)
    count = (y1 - y0) * (x1 - x0)
    if bits.dtype != np.uint8 or bits.ndim != 1 or bits.size != (count + 7) // 8:
        raise ValueError("mask bits: as many as the box holds expected")
    crop = np.unpackbits(bits, count=count).reshape(y1 - y0, x1 - x0).astype(bool)
    return Footprint.trimmed(Box(y0, y1, x0, x1), crop, (h, w))


def checked_meta(meta: object, history: int) -> dict:
    """The saved tracks' list (``{"next_id", "tracks"}``) if it is what :meth:`Tracks.snapshot` writes,
    else ValueError: ids, classes and ``next_id`` integers, kinds ``"plane"`` / ``"thing"``, at most
    ``history`` bools, models of 9 finite numbers (a thing's: 9 per motion)."""
    def integer(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    def matrices(value: object, each: bool) -> bool:
        return value is None or (isinstance(value, list) and len(value) > 0 and (len(value) % 9 == 0 if each else len(value) == 9)
                                 and all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in value))
    tracks = meta.get("tracks") if isinstance(meta, dict) else None
    if not isinstance(tracks, list) or not integer(meta.get("next_id")):
        raise ValueError("saved tracks: malformed list")
    for t in tracks:
        if not (isinstance(t, dict) and integer(t.get("id")) and t.get("kind") in ("plane", "thing")
                and integer(t.get("class")) and isinstance(t.get("history"), list) and len(t["history"]) <= history
                and all(isinstance(v, bool) for v in t["history"]) and matrices(t.get("model"), t["kind"] == "thing")
                and matrices(t.get("pending"), False) and matrices(t.get("previous"), False)):
            raise ValueError("saved tracks: malformed track")
    return meta


def checked_prior(prior: object) -> np.ndarray | None:
    """The saved segmentation prior, (h, w, C) finite floats, or None; else ValueError."""
    if prior is not None and not (isinstance(prior, np.ndarray) and prior.dtype.kind == "f" and prior.ndim == 3
                                  and np.isfinite(prior).all()):
        raise ValueError("saved tracks: malformed prior")
    return prior


def of_frame(wheres: list[Footprint], prior: np.ndarray | None, height: int, width: int) -> bool:
    """Whether saved tracks (their footprints ``wheres`` and segmentation ``prior``, read back from a file)
    are of a ``height`` x ``width`` frame: each mask of that shape, the prior at its fusion size
    (:func:`~semflow.segmentation.temporal.fusion_size`)."""
    return all(where.shape == (height, width) for where in wheres) and (
        prior is None or prior.shape[:2] == fusion_size(height, width))


def carried(region: Region, flow: np.ndarray, reach: tuple[int, int]) -> Footprint:
    """The footprint of ``region`` carried to the next frame by ``flow`` (:func:`~semflow.layers.plane_motion.carried_crop`)."""
    return Footprint.trimmed(*carried_crop(region, flow, reach), flow.shape[:2])
