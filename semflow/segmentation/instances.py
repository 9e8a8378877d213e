"""Instances of things: connected components of each thing class, cleaned, as :class:`Region` s.

Cleaning: components smaller than ``min_area`` pixels are dropped, and each kept component's holes
(enclosed pixels of non-thing classes: a car's windows seen as sky, say) are filled. Holes that hold
another thing (a pedestrian in front of a bus) are left to that thing.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from semflow.segmentation.regions import Region, fill_holes, find_regions


def extract_instances(labels: np.ndarray, thing_ids: Iterable[int], *, min_area: int = 64,
                      fill: bool = True, connectivity: int = 8) -> tuple[np.ndarray, list[Region]]:
    """Cleaned connected components of the classes ``thing_ids`` in ``labels`` (H, W).

    Returns the instance map (H, W) int32 (0 = no instance, k = ``instances[k - 1]``) and the list of
    instances, ordered by class then by first pixel in raster order: Regions whose ``id`` is k and
    whose box is the component's bounding box (the mask may be smaller after cleaning, never larger).
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be (H, W), got shape {labels.shape}")
    thing_ids = [int(i) for i in thing_ids]
    is_thing = np.isin(labels, thing_ids)
    inst_map = np.zeros(labels.shape, np.int32)
    instances: list[Region] = []
    for component in find_regions(labels, thing_ids, min_area=min_area, connectivity=connectivity):
        sy, sx = component.slices
        mask = component.mask
        if fill:
            mask = mask | (fill_holes(mask) & ~is_thing[sy, sx])
        mask &= inst_map[sy, sx] == 0
        inst = Region(component.class_id, component.box, mask, id=len(instances) + 1)
        inst_map[sy, sx][mask] = inst.id
        instances.append(inst)
    return inst_map, instances
