"""Tracks of video mode (semflow/layers/tracking.py): matching regions to tracks and what a track
keeps after a pair, on hand-made masks (no flow method runs)."""

from __future__ import annotations

import numpy as np

from semflow.layers.plane_motion import carry_mask
from semflow.layers.planes import PlaneFit
from semflow.layers.tracking import HISTORY, Track, Tracks, advance_tracks
from semflow.segmentation.regions import Box, Region

SHAPE = (20, 40)


def _block(x0: int, x1: int) -> np.ndarray:
    mask = np.zeros(SHAPE, bool)
    mask[:, x0:x1] = True
    return mask


def _region(x0: int, x1: int, class_id: int = 1) -> Region:
    return Region(class_id, Box(0, SHAPE[0], x0, x1), np.ones((SHAPE[0], x1 - x0), bool))


def test_a_region_takes_the_track_of_its_class_it_overlaps_most_best_overlap_first() -> None:
    t1 = Track(1, "plane", 1, _block(0, 10))
    t2 = Track(2, "plane", 2, _block(20, 30))  # another class
    t3 = Track(3, "thing", 1, _block(20, 30))  # another kind
    memory = Tracks([t1, t2, t3], 4)
    # A covers t1 by IoU 0.8, B by 0.4: A, the better overlap, takes it although B comes first.
    b, a = _region(6, 10), _region(0, 8)
    assert memory.match([b, a], "plane", SHAPE) == [None, t1]
    # An overlap under MIN_IOU (0.3): 2 of 10 columns over 8 + 10 - 2 = 16 -> 0.125 / a class that differs.
    assert memory.match([_region(8, 18)], "plane", SHAPE) == [None]
    assert memory.match([_region(20, 30)], "plane", SHAPE) == [None]
    assert memory.match([_region(20, 30, 2)], "plane", SHAPE) == [t2]
    assert memory.match([_region(0, 3)], "plane", SHAPE) == [t1]  # 3 / 10 = 0.3: just enough



def test_matching_many_instances_measures_each_overlap_within_the_region_box(monkeypatch) -> None:
    """Hundreds of instances (a crowd) against hundreds of tracks: each overlap is counted within the
    region's box, not over two whole-frame masks (400 instances of a 720p frame took 15 s a pair). The
    intersections over union are the same: a region at the frame's corner, one that no track reaches."""
    shape = (60, 90)
    tracks, regions = [], []
    for k, (y, x) in enumerate((y, x) for y in range(0, 60, 10) for x in range(0, 90, 10)):
        mask = np.zeros(shape, bool)
        mask[y:y + 10, x + 1:x + 11] = True  # one column to the right (cut at the frame's right edge)
        tracks.append(Track(k + 1, "thing", 5, mask))
        regions.append(Region(5, Box(y, y + 10, x, x + 10), np.ones((10, 10), bool), k + 1))
    regions.append(Region(5, Box(0, 1, 0, 1), np.ones((1, 1), bool), 99))  # one pixel, in the first's corner
    monkeypatch.setattr(Region, "full_mask", lambda *a: (_ for _ in ()).throw(AssertionError("a whole-frame mask")))
    found = Tracks(tracks, len(tracks) + 1).match(regions, "thing", shape)
    assert found == [*tracks, None]  # IoU 90 / 110 (90 / 100 at the right edge); the pixel's track is taken
    alone = Tracks([tracks[0]], 2).match([regions[-1]], "thing", shape)
    assert alone == [None]  # 0 of its 1 pixel on the track (column 0 is not the track's)


def test_a_track_keeps_its_last_decisions_its_models_and_loses_a_things_history_without_a_fit() -> None:
    old, new = np.diag([1.0, 1.0, 1.0]), np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    plane = Track(5, "plane", 1, _block(0, 20), new, [True] * HISTORY, None, old)
    thing = Track(6, "thing", 7, _block(25, 35), None, [True, False])
    still = np.zeros((*SHAPE, 2), np.float32)
    fitted = PlaneFit(region=_region(0, 20), accepted=False, reason="x", homography=old)
    lost = PlaneFit(region=_region(0, 20), accepted=True, reason="x")  # no homography this pair
    thing_region = Region(7, Box(0, 20, 25, 35), np.ones((20, 10), bool), id=1)
    memory, plane_ids, thing_ids = advance_tracks(Tracks([plane, thing], 9), [fitted, lost], [plane, plane],
                                                  [thing_region], [thing], [], still)
    assert plane_ids == [5, 5] and thing_ids == [6] and memory.next_id == 9
    after_fit, after_none, after_thing = memory.tracks
    assert after_fit.history == [True] * (HISTORY - 1) + [False]  # the last HISTORY decisions
    np.testing.assert_array_equal(after_fit.model, old)
    np.testing.assert_array_equal(after_fit.previous, new)  # the model before this pair's
    np.testing.assert_array_equal(after_none.model, new)  # no new fit: the model and the one before stay
    np.testing.assert_array_equal(after_none.previous, old)
    assert after_thing.history == [] and after_thing.model is None  # too small to fit this pair: no history
    np.testing.assert_array_equal(after_thing.mask, _block(25, 35))


def test_advancing_a_crowd_carries_each_region_within_its_box(monkeypatch) -> None:
    """Each plane and thing is carried to the next frame within its box grown by the flow's reach, not as
    a whole-frame mask (a crowd's 400 instances took 1.5-3.5 s a pair at 720p); the masks are the whole
    frame's carry, regions at the frame's borders too."""
    shape = (60, 90)
    rng = np.random.default_rng(5)
    flow = rng.normal(0, 2.0, (*shape, 2)).astype(np.float32)
    things = [Region(5, Box(y, min(60, y + 12), x, min(90, x + 12)), rng.random((min(60, y + 12) - y, min(90, x + 12) - x)) < 0.7,
                     k + 1) for k, (y, x) in enumerate((y, x) for y in range(0, 60, 11) for x in range(0, 90, 11))]
    plane = PlaneFit(region=Region(1, Box(40, 60, 0, 90), rng.random((20, 90)) < 0.9), accepted=False, reason="x")
    expected = [carry_mask(r.full_mask(shape), flow) for r in [plane.region, *things]]
    monkeypatch.setattr(Region, "full_mask", lambda *a: (_ for _ in ()).throw(AssertionError("a whole-frame mask")))
    memory, _, _ = advance_tracks(None, [plane], [None], things, [None] * len(things), [], flow)
    assert len(memory.tracks) == len(expected)
    for track, mask in zip(memory.tracks, expected):
        np.testing.assert_array_equal(track.mask, mask)


def test_a_snapshot_saves_each_tracks_mask_within_its_bounding_box_and_reads_whole_frame_ones() -> None:
    """A track's mask is saved as its bounding box and the bits there, not a whole frame (115 KB a track at
    720p: 44 MB a saved state for a crowd's 380 tracks); masks at the frame's corners and an empty one
    come back as they were, and so do whole-frame masks of a snapshot without boxes."""
    shape = (50, 70)
    rng = np.random.default_rng(7)
    masks = [np.zeros(shape, bool) for _ in range(4)]
    masks[0][0:3, 0:5] = rng.random((3, 5)) < 0.7
    masks[0][0, 0] = masks[0][2, 4] = True  # (its bounding box: rows 0-2, columns 0-4)
    masks[1][45:, 60:] = True
    masks[2][10:30:7, 20:41:5] = True
    tracks = Tracks([Track(k + 1, "thing", 3, mask) for k, mask in enumerate(masks)], 5)
    arrays = tracks.snapshot()
    assert [arrays[f"box{k}"].tolist() for k in range(4)] == [[0, 3, 0, 5], [45, 50, 60, 70], [10, 25, 20, 41], [0, 0, 0, 0]]
    assert [arrays[f"mask{k}"].size for k in range(4)] == [2, 7, 40, 0]  # 15, 50, 15 x 21 bits, packed
    for back in (Tracks.restore(arrays), Tracks.restore({
            **{key: value for key, value in arrays.items() if not key.startswith("box")},
            **{f"mask{k}": np.packbits(mask, axis=None) for k, mask in enumerate(masks)}})):
        assert [t.track_id for t in back.tracks] == [1, 2, 3, 4] and back.next_id == 5
        for track, mask in zip(back.tracks, masks):
            np.testing.assert_array_equal(track.mask, mask)


def test_the_plane_gate_has_hysteresis_by_its_margins() -> None:
    from semflow.layers.planes import PlaneParams
    from semflow.layers.tracking import _hysteresis

    params = PlaneParams()  # inlier share 0.5, error gate 10 * 1.05 + 0.5 = 11 for a baseline at 10

    def decided(accepted: bool, share: float, error: float, was_on: bool) -> bool:
        fit = PlaneFit(region=_region(0, 20), accepted=accepted, reason="x", homography=np.eye(3), inlier_share=share,
                       model_error=error, baseline_error=10.0)
        return _hysteresis(fit, was_on, params).accepted

    # Off in the last pairs: taken only by 0.15 of share and 1 grey level of error to spare.
    assert decided(True, 0.66, 9.9, False)
    assert not decided(True, 0.66, 10.5, False)
    assert not decided(True, 0.6, 9.0, False)
    # On: kept unless it fails by those margins.
    assert decided(False, 0.36, 11.9, True)
    assert not decided(False, 0.34, 9.0, True)
    assert not decided(False, 0.6, 12.1, True)


def test_things_under_min_area_are_not_fitted_in_video_mode_either() -> None:
    from semflow.layers.context import PairContext
    from semflow.layers.thing_tracks import fit_tracked_things
    from semflow.layers.things import ThingParams

    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (*SHAPE, 3)).astype(np.uint8)
    ctx = PairContext.build(img, img, np.zeros((*SHAPE, 2), np.float32))
    instance_map = np.zeros(SHAPE, np.int32)
    instance_map[5:15, 5:15] = 1  # 100 px < min_area (150)
    tiny = Region(3, Box(5, 15, 5, 15), np.ones((10, 10), bool), id=1)
    tracked = Track(1, "thing", 3, instance_map > 0, None, [True])
    assert fit_tracked_things([tiny], instance_map, ctx, ThingParams(), [tracked]) == []


def test_a_track_holds_its_mask_within_its_box_not_a_whole_frame() -> None:
    """A crowd's tracks each held a whole-frame mask (0.9 MB a track at 720p: 350 MB for 380 tracks); a
    track holds its mask's bounding box and the mask there. 20 small instances of a 720p frame carried to
    the next one: well under one frame's mask held in all."""
    import tracemalloc

    shape = (720, 1280)
    regions = [Region(4, Box(30 * k, 30 * k + 12, 50 * k, 50 * k + 8), np.ones((12, 8), bool), k + 1) for k in range(20)]
    flow = np.full((*shape, 2), 1.5, np.float32)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        memory, _, _ = advance_tracks(None, [], [], regions, [None] * 20, [], flow)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(memory.tracks) == 20 and held < shape[0] * shape[1] // 4
    for track, region in zip(memory.tracks, regions):  # (the carried mask: 1.5 px right and down, rounded)
        np.testing.assert_array_equal(track.mask, carry_mask(region.full_mask(shape), flow))


def test_boxed_tracks_match_carry_and_save_as_whole_frame_masks_did() -> None:
    """Random masks and boxes (at the frame's borders, empty ones): the overlaps, matches, carried masks
    and saved states are those of whole-frame masks."""
    from semflow.layers.footprint import Footprint, carried
    from semflow.layers.plane_motion import carry_reach
    from semflow.layers.tracking import MIN_IOU

    rng = np.random.default_rng(3)
    for _ in range(60):
        shape = (int(rng.integers(1, 30)), int(rng.integers(1, 30)))

        def random_region(k: int, shape: tuple[int, int] = shape) -> Region:
            y0, x0 = int(rng.integers(0, shape[0])), int(rng.integers(0, shape[1]))
            y1, x1 = int(rng.integers(y0 + 1, shape[0] + 1)), int(rng.integers(x0 + 1, shape[1] + 1))
            if rng.random() < 0.3:  # a box at the frame's corner
                y0, x1 = 0, shape[1]
            return Region(1, Box(y0, y1, x0, x1), rng.random((y1 - y0, x1 - x0)) < rng.choice([0.0, 0.1, 0.8]), k)

        regions = [random_region(k + 1) for k in range(6)]
        fulls = [random_region(0).full_mask(shape) for _ in range(5)] + [np.zeros(shape, bool)]
        tracks = Tracks([Track(k + 1, "thing", 1, mask) for k, mask in enumerate(fulls)], 7)
        for track, mask in zip(tracks.tracks, fulls):
            np.testing.assert_array_equal(track.mask, mask)
            ys, xs = np.nonzero(mask)  # (the tight box; none for an empty mask)
            assert track.where.box == ((ys.min(), ys.max() + 1, xs.min(), xs.max() + 1) if ys.size else (0, 0, 0, 0))
            for region in regions:
                assert track.where.overlap(region) == np.count_nonzero(region.full_mask(shape) & mask)
        # The whole-frame computation of the matches: greedy, best intersection over union first.
        scores = sorted(((np.count_nonzero(r.full_mask(shape) & m) / np.count_nonzero(r.full_mask(shape) | m), i, j)
                         for i, r in enumerate(regions) for j, m in enumerate(fulls)
                         if np.count_nonzero(r.full_mask(shape) & m)), reverse=True)
        expected, used = [None] * len(regions), set()
        for iou, i, j in scores:
            if iou >= MIN_IOU and expected[i] is None and j not in used:
                expected[i], used = tracks.tracks[j], used | {j}
        assert tracks.match(regions, "thing", shape) == expected
        flow = rng.normal(0, rng.choice([0.7, 3.0, 40.0]), (*shape, 2)).astype(np.float32)
        for region in regions:
            np.testing.assert_array_equal(carried(region, flow, carry_reach(flow)).full(),
                                          carry_mask(region.full_mask(shape), flow))
        back = Tracks.restore(tracks.snapshot())
        for track, mask in zip(back.tracks, fulls):
            np.testing.assert_array_equal(track.mask, mask)
            assert track.where.box == Footprint.of(mask).box and track.where.area == mask.sum()
