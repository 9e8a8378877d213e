"""layers.things.assignment's pieces on tiny hand-made arrays: the strip an expanding object covers,
the window around a mask."""

from __future__ import annotations

import numpy as np

from semflow.layers.things.assignment import covered_by, window_around
from semflow.segmentation.regions import Box


def test_an_expanding_object_covers_a_solid_square_not_a_sieve() -> None:
    # A 4 x 4 object grows 2.5 times about its centre: its pixels land 2.5 px apart, and the splat
    # (4 nearest pixels each) leaves one-pixel gaps that the closing fills. Still background (zero
    # flow) anywhere in the grown square is covered; the object's own pixels never are.
    fg = np.zeros((40, 40), bool)
    fg[16:20, 16:20] = True
    yy, xx = np.mgrid[0:40, 0:40].astype(np.float32)
    flow = np.stack([(xx - 17.5) * 1.5, (yy - 17.5) * 1.5], 2)
    covered = covered_by(fg, flow, np.zeros_like(flow), Box(0, 40, 0, 40), (40, 40))
    square = np.zeros_like(fg)
    square[13:23, 13:23] = True
    assert np.array_equal(covered, square & ~fg)


def test_window_around_is_the_masks_bounding_box_grown_and_clipped() -> None:
    mask = np.zeros((20, 30), bool)
    mask[5:9, 10:12] = True
    assert window_around(mask, 2) == (slice(3, 11), slice(8, 14))
    assert window_around(mask, 10) == (slice(0, 19), slice(0, 22))
    assert window_around(np.zeros((4, 6), bool), 3) == (slice(0, 4), slice(0, 6))


def test_refine_assignment_drops_a_part_not_connected_to_the_masks_core() -> None:
    # The costs favour the object on the mask and on a blob 2 px beside it, inside the band: the blob
    # is cut off (it does not touch the mask's eroded core), the mask stays.
    from semflow.layers.things.assignment import GuidedSmoother, refine_assignment
    from semflow.layers.things.params import ThingParams

    params = ThingParams()
    mask = np.zeros((40, 40), bool)
    mask[10:26, 10:26] = True
    blob = np.zeros_like(mask)
    blob[12:20, 28:32] = True
    guide = np.full((40, 40, 3), 60.0, np.float32)
    guide[mask | blob] = 180.0
    diff = np.where(mask | blob, -40.0, 40.0).astype(np.float32)
    refined = refine_assignment(mask, diff, np.zeros_like(diff), GuidedSmoother(guide, params), 6.0, params)
    assert not refined[blob].any()
    assert (refined == mask).mean() > 0.99
