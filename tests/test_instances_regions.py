"""segmentation.instances and segmentation.regions pinned on tiny hand-made label maps: nested things,
diagonal contacts, the default minimum area, boxes and their JSON order."""

from __future__ import annotations

import numpy as np

from semflow.segmentation import CAMVID, Box, extract_instances, fill_holes, find_regions

CAR, PED, ROAD, SKY = 8, 9, 3, 0


def test_nested_things_give_disjoint_instances_that_match_the_map() -> None:
    # A car ring around a pedestrian ring around sky: the car's filled holes and the pedestrian's
    # overlap (the sky inside both); each pixel must still be one instance's, as the map says.
    labels = np.full((30, 30), ROAD, np.uint8)
    labels[2:28, 2:28] = CAR
    labels[5:25, 5:25] = SKY
    labels[8:22, 8:22] = PED
    labels[11:19, 11:19] = SKY
    inst_map, inst = extract_instances(labels, CAMVID.ids_of("thing"), min_area=10)
    assert [i.class_id for i in inst] == [CAR, PED]
    masks = [i.full_mask(labels.shape) for i in inst]
    assert not (masks[0] & masks[1]).any()
    for i, m in zip(inst, masks):
        assert np.array_equal(inst_map == i.id, m)
    assert masks[1][8:22, 8:22][labels[8:22, 8:22] == PED].all()  # the pedestrian keeps its own pixels


def test_instances_default_to_64_px_and_8_connected_components() -> None:
    labels = np.full((40, 40), ROAD, np.uint8)
    labels[2:9, 2:11] = CAR    # 63 px: under the default min_area
    labels[20:28, 2:10] = CAR  # 64 px: kept
    labels[20:28, 20:28] = PED
    labels[28:36, 28:36] = PED  # touches the one above at a corner only: one instance (8-connected)
    _, inst = extract_instances(labels, CAMVID.ids_of("thing"))
    assert [(i.class_id, i.area) for i in inst] == [(CAR, 64), (PED, 128)]
    _, four = extract_instances(labels, CAMVID.ids_of("thing"), connectivity=4)
    assert [(i.class_id, i.area) for i in four] == [(CAR, 64), (PED, 64), (PED, 64)]


def test_a_box_grows_within_the_image_and_writes_x_first() -> None:
    box = Box(2, 5, 3, 9)
    assert (box.height, box.width) == (3, 6)
    assert box.xyxy() == [3, 2, 9, 5]
    assert box.grow(2, (6, 10)) == Box(0, 6, 1, 10)  # clipped at every side: rows by H, columns by W
    assert box.grow(1, (20, 30)) == Box(1, 6, 2, 10)


def test_find_regions_keeps_min_area_and_boxes_each_component_tightly() -> None:
    labels = np.zeros((12, 20), np.uint8)
    labels[1:4, 2:7] = 5   # 15 px, 3 rows x 5 columns
    labels[8:10, 12:19] = 5  # 14 px
    regions = find_regions(labels, [5], min_area=15)
    assert len(regions) == 1 and regions[0].box == Box(1, 4, 2, 7) and regions[0].area == 15
    assert regions[0].size == 5  # the larger side of the tight box
    tall = find_regions(labels.T.copy(), [5], min_area=15)[0]
    assert tall.box == Box(2, 7, 1, 4) and tall.size == 5
    grown = find_regions(labels, [5], min_area=15, margin=3)[0]
    assert grown.box == Box(0, 7, 0, 10) and grown.mask.sum() == 15


def test_fill_holes_fills_4_enclosed_pixels_and_keeps_a_mask_on_the_border() -> None:
    mask = np.ones((5, 5), bool)
    mask[0, 0] = mask[1, 1] = mask[2, 2] = False  # a diagonal chain to the corner: enclosed, 4-connected
    filled = fill_holes(mask)
    assert filled[1, 1] and filled[2, 2] and not filled[0, 0]
    assert filled[mask].all()  # the mask itself stays, though it touches the border
