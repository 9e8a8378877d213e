"""The intermediate of a long run (semflow.flowvideo): round trip, disk bound, drawing without recompute, resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semflow import flowvideo
from semflow.methods import get_method
from semflow.pipeline import WORK_DIR, RunOptions, run_video
from semflow.runstore import RunStore, reopen_store
from semflow.viz import flow_to_color


def synthetic_flow(h: int, w: int, k: int = 0) -> np.ndarray:
    """A vortex around a moving centre plus a translation: magnitudes 0 .. ~25 px, every direction."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = w / 2 + 3 * k, h / 2
    flow = np.stack([-(y - cy), x - cx], axis=2) * np.float32(0.3)
    return (flow + np.float32([1.5, -0.5])).astype(np.float32)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 10 * np.log10(255 ** 2 / max(mse, 1e-12))


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(seed=st.integers(0, 2**31), colours=st.integers(1, 24), twins=st.booleans())
def test_snapping_by_cubes_is_exactly_the_nearest_palette_colour(seed: int, colours: int, twins: bool) -> None:
    """The table look-up gives what comparing every pixel with every palette colour gives, ties (a colour
    twice in the palette, pixels half-way between two) included."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (colours, 3)).astype(np.uint8)
    if twins:
        palette[-1] = palette[0]
    near = palette[rng.integers(0, colours, (40, 50))].astype(np.int32) + rng.integers(-6, 7, (40, 50, 3))
    anywhere = rng.integers(0, 256, (40, 50, 3))
    for rgb in (np.clip(near, 0, 255).astype(np.uint8), anywhere.astype(np.uint8)):
        exact = palette[flowvideo.nearest_colour_index(rgb, palette)].reshape(rgb.shape)
        assert np.array_equal(flowvideo.snap_colours(rgb, palette), exact)


def test_snapping_midway_between_two_colours_takes_the_first() -> None:
    palette = np.array([[0, 0, 0], [0, 0, 10], [0, 0, 10]], np.uint8)
    rgb = np.array([[[0, 0, 5], [0, 0, 6], [0, 0, 4]]], np.uint8)
    assert flowvideo.snap_colours(rgb, palette)[0, :, 2].tolist() == [0, 10, 0]
    assert flowvideo.nearest_colour_index(rgb, palette).tolist() == [0, 1, 0]


def test_codes_without_the_codec_keep_the_flow_within_a_code_step() -> None:
    flow = synthetic_flow(60, 80)
    flow[:5, :5] = 0  # zero motion: continuous, decodes to zero
    back = flowvideo.decode_flow(flowvideo.encode_flow(flow))
    mag = np.linalg.norm(flow, axis=2)
    err = np.linalg.norm(back - flow, axis=2)
    # half a 10-bit step of the log magnitude (0.34 % of |F| + 1 px) and of the direction's codes
    assert np.all(err <= 0.008 * (mag + 1.0))
    assert np.all(back[:5, :5] == 0)


def test_round_trip_colours_within_tolerance_of_exact_drawing(tmp_path: Path) -> None:
    """Pairs through a segment video (H.264, 10-bit 4:4:4), then drawn under a normaliser chosen after:
    the colour-wheel images stay within a few grey levels of drawing the exact flows."""
    h, w = 96, 128
    palette = np.array([[128, 64, 128], [70, 70, 70], [0, 0, 142], [0, 0, 0]], np.uint8)
    pairs = []
    for k in range(6):
        seg = palette[(np.arange(w)[None, :] // 32 + np.arange(h)[:, None] // 48 + k) % 4]
        pairs.append((synthetic_flow(h, w, k), seg, synthetic_flow(h, w, k) * np.float32(0.5)))
    writer = flowvideo.SegmentWriter(tmp_path, 0, (h, w), "fbs", per_pair=20_000)
    for flows in pairs:
        writer.add(flows)
    path = writer.close()
    span = flowvideo.parse_segment(path)
    assert span[:5] == (0, 6, "fbs", (h, w), (h, w))
    decoded = list(flowvideo.read_segment(path, (h, w), "fbs", palette))
    assert len(decoded) == 6
    max_flow = 12.0  # the clip's normaliser, known only after all pairs: flows beyond it too
    for (flow, seg, base), (flow2, seg2, base2) in zip(pairs, decoded, strict=True):
        for exact, back in ((flow, flow2), (base, base2)):
            a, b = flow_to_color(exact, max_flow), flow_to_color(back, max_flow)
            diff = np.abs(a.astype(int) - b.astype(int)).max(axis=2)
            # the wheel itself jumps at |F| = max_flow (darker beyond): away from that rim, a few grey levels
            rim = np.abs(np.linalg.norm(exact, axis=2) / max_flow - 1) < 0.03
            assert psnr(a[~rim], b[~rim]) > 40.0 and np.percentile(diff[~rim], 99) <= 8 and diff[~rim].mean() < 2.5
        assert (seg2 == seg).mean() > 0.97  # snapped to the palette: exact but for a few edge pixels


def test_disk_stays_under_the_budget_by_construction(tmp_path: Path, monkeypatch) -> None:
    """Noisy flows (hard to compress) for more pairs than the budget was planned for: the finished
    segments never take more than the budget; pairs they cannot hold are left to be computed again."""
    monkeypatch.setattr(flowvideo, "SEGMENT_PAIRS", 8)
    pairs, budget = 40, 12_000  # 400 bytes a pair planned
    store = RunStore(tmp_path, save_flo=False, cache_pairs=0, per_pair=budget / 30, budget=budget)
    folder = tmp_path / WORK_DIR / "intermediate"
    rng = np.random.default_rng(1)
    for index in range(pairs):
        store.save_flows(index, rng.normal(0, 8, (64, 96, 2)).astype(np.float32), {})
        if store.segment_full():
            store.close_segment()
            assert sum(p.stat().st_size for p in folder.glob("*-*.mkv")) <= budget
    store.close_segment()
    spans = [flowvideo.parse_segment(p) for p in folder.iterdir()]
    assert sum(span[5].stat().st_size for span in spans) <= budget
    held = sum(span[1] for span in spans)
    assert 8 <= held < 30  # this content needs more than planned: the segments that did not fit are gone


def test_closing_a_segment_counts_it_once_and_forgets_one_it_drops(tmp_path: Path) -> None:
    """A segment is checked against the budget beside the OTHER segments: one over half the budget was
    counted twice and dropped (a 10-pair clip of 1024x436 frames with --cache-mb 1 lost its only segment),
    and a dropped segment is forgotten, so its pairs are computed again (they were read from the deleted
    file: an FFmpeg error ended the run)."""
    from semflow.pair_records import PairRecord

    flows = [np.random.default_rng(k).normal(0, 6, (64, 96, 2)).astype(np.float32) for k in range(4)]

    def closed(name: str, budget: float) -> tuple[RunStore, bool]:
        store = RunStore(tmp_path / name, save_flo=False, cache_pairs=0, per_pair=8_000, budget=10**6)
        for index, flow in enumerate(flows):
            assert store.save_flows(index, flow, {}) == "intermediate"
        store.budget = budget  # the budget left when the segment closes
        return store, store.close_segment()

    _, kept = closed("measure", 10**6)
    size = next((tmp_path / "measure" / WORK_DIR / "intermediate").glob("*.mkv")).stat().st_size
    store, kept = closed("fits", 1.5 * size)
    record = PairRecord.of(2, flows[2], {}, 0.0)
    assert kept
    assert np.abs(store.load(record, flows[2].shape)[0] - flows[2]).mean() < 3.0  # decoded (lossy, at a thin rate)
    store, kept = closed("over", 0.5 * size)
    assert not kept and not list((tmp_path / "over" / WORK_DIR / "intermediate").glob("*.mkv"))
    assert store.load(record, flows[2].shape) is None  # computed again to be drawn


@pytest.mark.parametrize("damage", ["garbage", "empty"])
def test_a_finished_segment_that_is_not_a_video_counts_as_missing(tmp_path: Path, damage: str) -> None:
    """A resumed run over a work folder whose segment was overwritten: its pairs are computed again to
    be drawn (the run ended with FFmpeg's "Could not load meta information" and its banner)."""
    from semflow.pair_records import PairRecord

    flows = [synthetic_flow(48, 64, k) for k in range(3)]
    store = RunStore(tmp_path, save_flo=False, cache_pairs=0, per_pair=8_000, budget=10**6)
    for index, flow in enumerate(flows):
        store.save_flows(index, flow, {})
    assert store.close_segment()
    segment = next((tmp_path / WORK_DIR / "intermediate").glob("*.mkv"))
    segment.write_bytes(b"not a video" * 100 if damage == "garbage" else b"")
    resumed = RunStore(tmp_path, save_flo=False, cache_pairs=0, per_pair=8_000, budget=10**6)
    assert [resumed.load(PairRecord.of(i, f, {}, 0.0), f.shape) for i, f in enumerate(flows)] == [None] * 3


def test_a_smooth_clip_fits_its_budget_with_room_to_spare(tmp_path: Path) -> None:
    pairs, budget = 30, 120_000
    store = RunStore(tmp_path, save_flo=False, cache_pairs=0, per_pair=budget / pairs, budget=budget)
    for index in range(pairs):
        assert store.save_flows(index, synthetic_flow(96, 128, index), {}) == "intermediate"
        if store.segment_full():
            store.close_segment()
    store.close_segment()
    assert all(store.has(i) is False for i in range(pairs))  # no records yet: not finished
    spans = [flowvideo.parse_segment(p) for p in (tmp_path / WORK_DIR / "intermediate").iterdir()]
    assert sum(span[1] for span in spans) == pairs
    assert sum(span[5].stat().st_size for span in spans) <= budget


def test_coded_size_halves_when_the_budget_is_thin() -> None:
    assert flowvideo.coded_shape((1080, 1920), 1, 4970) == (1080, 1920)  # an hour of 1080p in 512 MiB
    assert flowvideo.coded_shape((1080, 1920), 3, 4970) == (540, 960)  # with baseline and segmentation
    # However thin the budget, a side is halved no further once it is under 128 px (from 135 to 68, not 34).
    assert flowvideo.coded_shape((1080, 1920), 1, 1.0) == (68, 120)
    assert flowvideo.coded_shape((96, 128), 3, 1.0) == (96, 128)


def test_tiles_taller_than_x264_takes_are_coded_smaller(tmp_path: Path) -> None:
    """A semantic run on 32x5600 frames computed its pairs, then x264 refused the intermediate's 32x16800
    frames (three tiles stacked): the tiles are coded smaller, and decoded at the frame's size."""
    for shape, tiles in (((5600, 32), 3), ((5461, 31), 3), ((9000, 17001), 1), ((16384, 16), 2)):
        h, w = flowvideo.coded_shape(shape, tiles, per_pair=1e9)
        assert (h + h % 2) * tiles <= 16384 and w + w % 2 <= 16384 and abs(h / w - shape[0] / shape[1]) < 0.1 * h / w
    assert flowvideo.coded_shape((5460, 32), 3, per_pair=1e9) == (5460, 32)  # fits: as it is
    h, w = 5600, 16
    flows = (synthetic_flow(h, w, 1), np.zeros((h, w, 3), np.uint8), synthetic_flow(h, w, 2))
    writer = flowvideo.SegmentWriter(tmp_path, 0, (h, w), "fbs", per_pair=1e6)
    writer.add(flows)
    path = writer.close()
    span = flowvideo.parse_segment(path)
    assert span[3] == (h, w) and span[4][0] * 3 <= 16384  # (the coded size, read back as the run does)
    (flow, seg, base), = flowvideo.read_segment(path, (h, w), "fbs", np.zeros((1, 3), np.uint8), span[4])
    assert flow.shape == base.shape == (h, w, 2) and seg.shape == (h, w, 3)
    assert np.abs(flow - flows[0]).mean() < 0.05 * (np.abs(flows[0]).mean() + 1)


def counting(name: str):
    method = get_method(name)
    method.calls = 0
    estimate = method.estimate

    def counted(*args, **kwargs):
        method.calls += 1
        return estimate(*args, **kwargs)

    method.estimate = counted
    return method


def test_long_run_draws_from_the_intermediate_without_recomputing(make_frames, tmp_path: Path) -> None:
    """A clip longer than the exact cache holds: every pair is computed once, drawn from the
    intermediate, under the very normaliser of the cached run, with frames close to its frames."""
    import imageio.v3 as iio

    frames = make_frames(9, 48, 64)
    cached = run_video(frames, tmp_path / "cached", RunOptions(method="dis-fast", pairwise=True))
    method = counting("dis-fast")
    long = run_video(frames, tmp_path / "long", RunOptions(method="dis-fast", pairwise=True, cache_budget=60_000),
                     method=method)
    assert method.calls == 8  # pass 2 computed nothing again
    assert long["render_from"] == "intermediate" and cached["render_from"] == "cache"
    assert long["max_flow_px"] == cached["max_flow_px"]
    assert not (tmp_path / "long" / WORK_DIR).exists()
    a, b = iio.imread(tmp_path / "cached" / "flow.mp4"), iio.imread(tmp_path / "long" / "flow.mp4")
    assert a.shape == b.shape and psnr(a, b) > 35.0


def test_resume_keeps_completed_segments_and_recomputes_only_the_lost_one(make_frames, tmp_path: Path,
                                                                          monkeypatch) -> None:
    monkeypatch.setattr(flowvideo, "SEGMENT_PAIRS", 4)
    frames = make_frames(12, 48, 64)
    out = tmp_path / "out"
    options = RunOptions(method="dis-fast", pairwise=True, cache_budget=200_000)
    crashing = counting("dis-fast")
    estimate = crashing.estimate

    def fail_on_pair_6(img1, img2, **kwargs):
        if crashing.calls == 6:
            raise RuntimeError("killed on pair 6")
        return estimate(img1, img2, **kwargs)

    crashing.estimate = fail_on_pair_6
    with pytest.raises(RuntimeError, match="pair 6"):
        run_video(frames, out, options, method=crashing)
    segments = sorted(p.name for p in (out / WORK_DIR / "intermediate").iterdir())
    assert segments == ["000000-000004-f-64x48-64x48.mkv"]  # pairs 4, 5 were in the unfinished segment: dropped
    assert reopen_store(out, False).recorded() == list(range(6))  # records of pairs 4, 5 too: not finished
    resumed = counting("dis-fast")
    summary = run_video(frames, out, RunOptions(**{**options.__dict__, "resume": True}), method=resumed)
    assert resumed.calls == 7  # pairs 4 .. 10: nothing of pairs 0 .. 3 again, in pass 1 or 2
    assert summary["render_from"] == "intermediate" and summary["pairs"] == 11 and summary["resumed_pairs"] == 4
    whole = run_video(frames, tmp_path / "whole", RunOptions(method="dis-fast", pairwise=True))
    assert summary["max_flow_px"] == whole["max_flow_px"]


def test_chunks_of_a_batch_write_their_own_segments_and_the_drawing_computes_nothing(make_frames,
                                                                                    tmp_path: Path) -> None:
    from semflow.batch.work import ClipWorker, prepare_clip

    frames = make_frames(10, 48, 64)
    options = RunOptions(method="dis-fast", pairwise=True, cache_budget=80_000)
    out = tmp_path / "chunked"
    prepared = prepare_clip(frames, out, options, 4)
    worker = ClipWorker("dis-fast", {})
    for chunk in reversed(prepared.chunks):  # any order, as parallel workers would
        worker.compute(frames, out, options, chunk, 0)
    names = sorted(p.name.split("-")[0] for p in (out / WORK_DIR / "intermediate").iterdir())
    assert names == ["000000", "000004", "000008"]  # one segment a chunk
    worker.method = counting("dis-fast")
    summary = worker.finish(frames, out, options, 0.0, {}, 9)
    assert worker.method.calls == 0 and summary["render_from"] == "intermediate" and summary["pairs"] == 9
    whole = run_video(frames, tmp_path / "whole", RunOptions(method="dis-fast", pairwise=True))
    assert summary["max_flow_px"] == whole["max_flow_px"]


def test_room_is_counted_at_the_capped_rate(tmp_path: Path) -> None:
    """A budget far above what small frames are coded at (the rate cap) holds every pair: segments are
    planned at the capped rate, not at the budget's share."""
    pairs = 6
    store = RunStore(tmp_path, save_flo=False, cache_pairs=0, per_pair=60_000, budget=360_000)
    assert flowvideo.pair_bytes((96, 128), "f", 60_000) == flowvideo.MIN_CAP_BYTES  # 96x128 at 1 bit a pixel: less
    kept = [store.save_flows(i, synthetic_flow(96, 128, i), {}) for i in range(pairs)]
    store.close_segment()
    assert kept == ["intermediate"] * pairs
    spans = [flowvideo.parse_segment(p) for p in (tmp_path / WORK_DIR / "intermediate").iterdir()]
    assert [span[:2] for span in spans] == [(0, pairs)]


def test_an_error_coding_a_pair_in_the_writer_thread_reaches_the_caller(tmp_path: Path) -> None:
    flow = np.zeros((48, 64, 2), np.float32)
    writer = flowvideo.SegmentWriter(tmp_path, 0, (48, 64), "f", 1e5)
    writer.add((flow, None, None))
    writer.add((None, None, None))  # coded in the second thread: the error comes with the next call
    with pytest.raises(AttributeError):
        writer.close()
    assert list(tmp_path.iterdir()) == []  # the unfinished video is dropped
    second = flowvideo.SegmentWriter(tmp_path, 0, (48, 64), "f", 1e5)
    second.add((None, None, None))
    with pytest.raises(AttributeError):
        second.add((flow, None, None))
    second.abandon()
    assert list(tmp_path.iterdir()) == []


def test_finished_segments_are_listed_again_only_when_the_folder_changed(tmp_path: Path, monkeypatch) -> None:
    """Each segment opened and closed re-listed the folder and stat'ed every segment: an hour of a small
    video (1800 segments) spent 77 s on it. Another process's segment is still found."""
    import os

    from semflow.flow_segments import Segments

    folder = tmp_path / "intermediate"
    folder.mkdir()

    def segment(first: int, size: int) -> Path:
        path = folder / f"{first:06d}-0050-f-64x48-64x48.mkv"
        path.write_bytes(bytes(size))
        return path

    for k in range(3):
        segment(50 * k, 100 + k)
    segments = Segments(folder)
    listings = []
    original = Segments._list
    monkeypatch.setattr(Segments, "_list", lambda self: (listings.append(1), original(self))[1])
    assert segments.bytes() == 303 and len(listings) == 1
    for _ in range(5):
        assert segments.bytes() == 303
    mine = segment(150, 7)
    segments.add(mine)  # this process's own: no listing
    assert segments.bytes() == 310 and segments.find(160)[0] == 150 and len(listings) == 1
    theirs = segment(200, 9)  # another worker's
    os.utime(folder, ns=(1, 1))  # (the folder's time moves, whatever the file system's clock resolution)
    assert segments.bytes() == 319 and len(listings) == 2
    assert segments.find(210)[5] == theirs


def test_decoding_gives_the_same_flow_every_time() -> None:
    """The crash probe's case: a clip drawn from its intermediate got other temporal metrics (last bits) from
    one run to the next, the same video decoded. cv2.magnitude's result depends on its buffers' alignment;
    of 300 decodings of one smooth field two results were found, every time."""
    y, x = np.mgrid[0:120, 0:160].astype(np.float32)
    flow = np.stack([(x - 80) * 0.2, (y - 60) * -0.15], axis=2)
    codes = flowvideo.encode_flow(flow)
    assert len({flowvideo.decode_flow(codes).tobytes() for _ in range(300)}) == 1
    assert len({flowvideo.encode_flow(flow).tobytes() for _ in range(100)}) == 1


def test_a_segment_is_given_only_the_pairs_whose_worst_case_fits_the_room() -> None:
    """segment_pairs and segment_worst_bytes agree: the worst case of the pairs a segment is given fits the
    room left; one pair more would not (below the cap of SEGMENT_PAIRS pairs)."""
    per_pair = 1000.0
    for room in (6_000.0, 20_000.0, 45_500.0, 60_000.0):
        pairs = flowvideo.segment_pairs(room, per_pair)
        assert flowvideo.MIN_SEGMENT_PAIRS <= pairs < flowvideo.SEGMENT_PAIRS
        assert flowvideo.segment_worst_bytes(pairs, per_pair) <= room < flowvideo.segment_worst_bytes(pairs + 1, per_pair)


def test_tiles_of_an_odd_height_decode_each_to_its_own_flow() -> None:
    """A pair's tiles are stacked at even heights: with an odd frame height the baseline tile below the flow
    decodes to the baseline, not to rows shifted across the tiles."""
    flow = synthetic_flow(15, 22)
    base = -0.5 * flow[::-1].copy()
    decoded, _, decoded_base = flowvideo.decode_pair(flowvideo.encode_pair((flow, None, base)), (15, 22), "fb")
    for back, truth in ((decoded, flow), (decoded_base, base)):
        assert np.all(np.linalg.norm(back - truth, axis=2) <= 0.008 * (np.linalg.norm(truth, axis=2) + 1.0))


def test_segmentation_codes_a_step_off_decode_to_their_labels() -> None:
    """Labels are coded as 4x their value: a code one step off (the codec's rounding) still decodes to its
    label, rounded to the nearest multiple of 4, not down."""
    flow = synthetic_flow(16, 24)
    seg = np.zeros((16, 24, 3), np.uint8)
    seg[:, 8:] = (11, 23, 7)
    planes = flowvideo.encode_pair((flow, seg, None))
    tile = planes[:, 16:32]
    tile[tile > 0] -= 1  # (planes[:, 16:32]: the segmentation tile, below the flow's)
    _, back, _ = flowvideo.decode_pair(planes, (16, 24), "fs")
    np.testing.assert_array_equal(back, seg)


def test_only_a_finished_segments_name_is_parsed() -> None:
    span = flowvideo.parse_segment(Path("000000-000004-f-24x16-24x16.mkv"))
    assert span is not None and span[:5] == (0, 4, "f", (16, 24), (16, 24))
    for name in ("000000-000004-f-24x16-24x16", "000000.part.mkv", "000000-000004-f-24x16-24x16.mkv.tmp"):
        assert flowvideo.parse_segment(Path(name)) is None, name
