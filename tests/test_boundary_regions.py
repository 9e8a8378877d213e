"""--sharpen's regions on small synthetic scenes (semflow/layers/boundary_layers.py): what a region writes,
which of its pixels its check counts, and which regions are skipped before their graph cut."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from semflow.layers.boundary_layers import BoundaryLayerParams, sharpen_boundaries, uncertain_pixels
from semflow.synthetic import random_texture

H, W = 200, 240


def block(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def layered_scene(objects: list[tuple[np.ndarray, tuple[int, int], int]], seed: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Textured objects (mask, whole-pixel motion (u, v), px of fattening) over a still textured
    background, later ones in front: frames, true flow, and the flow with each object's motion carried
    its fattening out into what lies around it."""
    rng = np.random.default_rng(seed)
    img1 = random_texture(H, W, rng)
    img2 = img1.copy()
    truth = np.zeros((H, W, 2), np.float32)
    for mask, (u, v), _ in objects:
        texture = random_texture(H, W, rng)
        img1[mask] = texture[mask]
        moved = np.roll(mask, (v, u), (0, 1))
        img2[moved] = np.roll(texture, (v, u), (0, 1))[moved]
        truth[mask] = (u, v)
    flow = truth.copy()
    for mask, _, width in objects:
        dist, (iy, ix) = ndimage.distance_transform_edt(~mask, return_indices=True)
        ring = (dist > 0) & (dist <= width)
        flow[ring] = truth[iy[ring], ix[ring]]
    return img1.astype(np.uint8), img2.astype(np.uint8), truth, flow


def test_a_kept_region_writes_only_its_own_pixels_though_its_box_holds_other_regions() -> None:
    # An L-shaped thing with its flow fattened 6 px: its region's box is the whole frame, and holds the
    # regions of two small things in the L's empty corner, whose flow is exact. The L's region is kept;
    # its graph cut also redid the small things' uncertain pixels (the box's motions lack the smaller
    # one's: 10 px wrong there), but only the L's own pixels are written.
    ell = block(16, 184, 16, 52) | block(148, 184, 16, 224)
    small = [block(40, 70, 100, 130), block(45, 65, 170, 190)]
    img1, img2, truth, flow = layered_scene([(ell, (10, 0), 6), (small[0], (0, 8), 0), (small[1], (-8, -6), 0)], 1)
    groups, count = ndimage.label(uncertain_pixels(flow, BoundaryLayerParams()))
    out, reports = sharpen_boundaries(img1, img2, flow)
    assert count == len(reports) == 3
    assert reports[0].box == (0, H, 0, W) and reports[0].kept
    assert not reports[1].kept and not reports[2].kept
    np.testing.assert_array_equal(out[groups != 1], flow[groups != 1])
    assert (out[groups == 1] != flow[groups == 1]).any()
