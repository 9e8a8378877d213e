"""Disk morphology of bool masks (semflow/fitting/morphology.py): exact shapes on small masks."""

from __future__ import annotations

import numpy as np

from semflow.fitting.morphology import LARGE_RADIUS, dilate, disk, erode


def _point(size: int = 41) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[size // 2, size // 2] = True
    return mask


def test_a_point_dilates_to_the_disk_kernel_up_to_the_large_radius_and_to_a_euclidean_disk_beyond() -> None:
    c = 20
    yy, xx = np.mgrid[-c:c + 1, -c:c + 1]
    distance = np.hypot(xx, yy)
    assert LARGE_RADIUS == 10  # radii up to 10 px use the disk kernel, larger ones a distance transform
    for radius in range(1, 11):
        stamped = np.zeros((2 * c + 1, 2 * c + 1), bool)
        stamped[c - radius:c + radius + 1, c - radius:c + radius + 1] = disk(radius).astype(bool)
        np.testing.assert_array_equal(dilate(_point(), radius), stamped, err_msg=f"radius {radius}")
    for radius in range(11, 16):
        # Every pixel within radius + 0.5 px: (12, 2) is 12.17 px from the centre, in at radius 12.
        np.testing.assert_array_equal(dilate(_point(), radius), distance <= radius + 0.5, err_msg=f"radius {radius}")
    assert dilate(_point(), 12)[c + 2, c + 12]
    assert not dilate(np.zeros((9, 9), bool), 13).any()


def test_radius_zero_is_the_mask_as_bool_and_erosion_keeps_what_the_image_edge_touches() -> None:
    mask = np.zeros((12, 16), np.uint8)
    mask[:, :9] = 1  # touches the top, bottom and left edges
    for op in (dilate, erode):
        out = op(mask, 0)
        assert out.dtype == bool and (out == mask.astype(bool)).all()
    eroded = erode(mask, 2)
    # Only the inner side is eaten (2 px): the image's edge is not a boundary of the mask.
    np.testing.assert_array_equal(eroded, np.pad(np.ones((12, 7), bool), ((0, 0), (0, 9))))
    assert erode(np.ones((5, 5), bool), 3).all()
    # Erosion by r removes every pixel whose disk reaches outside the mask: a 9 x 9 square by 1 px.
    square = np.zeros((15, 15), bool)
    square[3:12, 3:12] = True
    expected = np.zeros((15, 15), bool)
    expected[4:11, 4:11] = True
    np.testing.assert_array_equal(erode(square, 1), expected)
