"""What a run keeps between its passes (records, bounded cache) and chunked pass 1 without Ray."""

from __future__ import annotations

import json
from dataclasses import asdict as dataclass_dict
from pathlib import Path

import numpy as np
import pytest
from conftest import failing_at_pair

from semflow.batch.work import ClipWorker, plan_chunks, prepare_clip
from semflow.errors import InputError, SemflowWarning
from semflow.metrics import flow_stats
from semflow.pair_records import magnitude_stats
from semflow.pipeline import RunOptions, run_video
from semflow.runstore import (
    CACHE_BUDGET_BYTES,
    WORK_DIR,
    PairRecord,
    RunStore,
    cache_pairs,
    normaliser,
    open_store,
)
from semflow.viz import max_flow_of
from semflow.warp import magnitude


def test_records_keep_the_float32_percentiles_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    flow = rng.normal(0, 3.3, (30, 40, 2)).astype(np.float32)
    base = flow * np.float32(1.7)
    store = RunStore(tmp_path, save_flo=False, cache_pairs=0)
    record = PairRecord.of(4, flow, {"baseline_flow": base}, 0.25)
    store.save_record(record, flow)
    again = store.record(4)
    assert again == record and again.max_flow == max_flow_of(flow)  # exact: JSON keeps every bit of a float
    assert again.stats == flow_stats(flow)
    assert normaliser([again]) == max_flow_of(base) > max_flow_of(flow)
    assert store.has(4) and not store.has(3) and store.load(again, flow.shape) is None  # not kept: computed again


def test_cached_segmentation_is_kept_raw_and_an_older_png_cache_still_reads(tmp_path: Path) -> None:
    from semflow.io.images import write_image

    rng = np.random.default_rng(1)
    flow = rng.normal(0, 2, (30, 40, 2)).astype(np.float32)
    seg = rng.integers(0, 255, (30, 40, 3)).astype(np.uint8)
    store = RunStore(tmp_path, save_flo=False, cache_pairs=2)
    for index in (0, 1):
        assert store.save_flows(index, flow, {"segmentation_rgb": seg, "baseline_flow": flow}) == "cache"
        store.save_record(PairRecord.of(index, flow, {"baseline_flow": flow}, 0.1), flow)
    seg_dir = tmp_path / WORK_DIR / "cache" / "segmentation"
    assert sorted(p.suffix for p in seg_dir.iterdir()) == [".npy", ".npy"]  # raw, not PNG (10 ms a pair)
    # Pair 1 as a run made before the change left it: a PNG.
    npy = next(p for p in sorted(seg_dir.iterdir()) if p.stem.endswith("1"))
    npy.unlink()
    write_image(npy.with_suffix(".png"), seg)
    for index in (0, 1):
        got_flow, got_seg, got_base = store.load(store.record(index), flow.shape)
        np.testing.assert_array_equal(got_seg, seg)
        np.testing.assert_array_equal(got_flow, flow)


def test_cache_budget() -> None:
    assert CACHE_BUDGET_BYTES == 512 * 2 ** 20
    assert cache_pairs((240, 320, 3)) == 367  # 19 bytes per pixel worst case: flow, baseline, segmentation
    assert cache_pairs((1080, 1920, 3)) == 13  # an hour of 1080p: 13 pairs cached, the rest recomputed
    assert cache_pairs((576, 768, 3), budget=0) == 0


def test_resume_keeps_the_render_source_and_refuses_other_settings(tmp_path: Path) -> None:
    settings = {"video": "a", "method": "dis-fast"}
    store = open_store(tmp_path, settings, resume=False, save_flo=False, frame_shape=(8, 8, 3), cache_budget=10 ** 5)
    assert store.cache_pairs == 82
    with pytest.warns(SemflowWarning, match="--cache-mb differs"):  # (the default budget, not 10 ** 5)
        again = open_store(tmp_path, settings, resume=True, save_flo=False, frame_shape=(8, 8, 3))
    assert again.cache_pairs == 82  # what the first run chose, whatever the budget is now
    with pytest.raises(InputError, match="cannot resume.*method"):
        open_store(tmp_path, {**settings, "method": "dis-medium"}, resume=True, save_flo=False, frame_shape=(8, 8, 3))
    with pytest.raises(InputError, match=r"made by an older semflow \(it did not record video_identity\); run it afresh"):
        open_store(tmp_path, {**settings, "video_identity": [1, 2]}, resume=True, save_flo=False, frame_shape=(8, 8, 3))


def test_a_clip_too_long_for_the_intermediate_keeps_no_flows(tmp_path: Path) -> None:
    # 10**5 bytes over 100 pairs is a workable intermediate; over 10**6 pairs (a container's claim) it was
    # 0.09 bytes a pair, an FFmpeg rate of 18 bits a second: now nothing is kept and pass 2 recomputes.
    kept = open_store(tmp_path / "a", {}, resume=False, save_flo=False, frame_shape=(64, 64, 3), cache_budget=10 ** 5,
                      pairs_estimate=100)
    assert kept.cache_pairs == 0 and kept.per_pair == pytest.approx(900.0)
    with pytest.warns(SemflowWarning, match=r"0\.09537 MiB \(--cache-mb\) over 1000000 pairs is 0 bytes a pair, too few"
                      r" to keep the flows: drawing computes every pair again \(--cache-mb 272 keeps them"):
        none = open_store(tmp_path / "b", {}, resume=False, save_flo=False, frame_shape=(64, 64, 3),
                          cache_budget=10 ** 5, pairs_estimate=10 ** 6)  # (a long-clip probe: it was not said)
    assert none.cache_pairs == 0 and none.per_pair == 0


@pytest.mark.parametrize("frames,chunk_pairs,warmup", [(8, 3, 0), (7, 3, 2), (9, 4, 1)])
def test_chunks_give_the_outputs_of_one_run(make_frames, tmp_path: Path, frames: int, chunk_pairs: int,
                                            warmup: int) -> None:
    """Pass 1 in chunks (any order, with a warm-up overlap), then the drawing: the bytes of one run."""
    folder = make_frames(frames, 40, 56)
    options = RunOptions(method="dis-fast", save_flo=True)
    full = run_video(folder, tmp_path / "run", options)
    out = tmp_path / "chunked"
    prepared = prepare_clip(folder, out, options, chunk_pairs)
    assert prepared.chunks == plan_chunks(frames - 1, chunk_pairs)
    worker = ClipWorker("dis-fast", {})
    reports = [worker.compute(folder, out, options, chunk, warmup) for chunk in reversed(prepared.chunks)]
    assert sum(r["computed"] for r in reports) == frames - 1
    assert [r["end"] for r in reports] == [frames - 1] + [None] * (len(reports) - 1)
    summary = worker.finish(folder, out, options, 0.0, {}, frames - 1)
    assert summary["max_flow_px"] == full["max_flow_px"] and summary["pairs"] == full["pairs"]
    for name in ["flow.mp4", "panel.mp4"] + [f"flo/{i:06d}.flo" for i in range(frames - 1)]:
        assert (out / name).read_bytes() == (tmp_path / "run" / name).read_bytes(), name
    assert json.loads((out / "summary.json").read_text())["settings"] == full["settings"]


def test_batch_options_are_run_options_plus_the_batch_settings() -> None:
    from dataclasses import fields

    from semflow.batch import BatchOptions

    options = BatchOptions(method="dis-fast", pairwise=True, max_side=64, cache_budget=123, workers=2, chunk_pairs=7)
    run = options.run_options()
    assert type(run) is RunOptions and run.progress is False
    assert {f.name for f in fields(RunOptions)} <= {f.name for f in fields(BatchOptions)}
    assert (run.method, run.pairwise, run.max_side, run.cache_budget) == ("dis-fast", True, 64, 123)


def test_pairwise_chunks_give_the_outputs_of_a_pairwise_run(make_frames, tmp_path: Path) -> None:
    """``semflow batch --pairwise``: chunks in pair mode, drawn as ``semflow run --pairwise`` draws."""
    from semflow.batch import BatchOptions

    folder = make_frames(7, 40, 56)
    options = BatchOptions(method="dis-fast", save_flo=True, pairwise=True).run_options()
    full = run_video(folder, tmp_path / "run", RunOptions(method="dis-fast", save_flo=True, pairwise=True))
    out = tmp_path / "chunked"
    prepared = prepare_clip(folder, out, options, 2)
    worker = ClipWorker("dis-fast", {})
    for chunk in prepared.chunks:
        worker.compute(folder, out, options, chunk, 0)
    summary = worker.finish(folder, out, options, 0.0, {}, 6)
    assert summary["mode"] == full["mode"] == "pairwise"
    for name in ["flow.mp4", "panel.mp4"] + [f"flo/{i:06d}.flo" for i in range(6)]:
        assert (out / name).read_bytes() == (tmp_path / "run" / name).read_bytes(), name


@pytest.mark.parametrize("shape", [(1, 1), (1, 2), (3, 5), (7, 8), (30, 41), (48, 64), (97, 131)])
@pytest.mark.parametrize("kind", ["normal", "ties", "still", "uneven"])
def test_record_statistics_are_those_of_flow_stats_and_max_flow_of_bit_for_bit(shape, kind) -> None:
    """One magnitude map and one partition give exactly ``flow_stats`` and ``max_flow_of``'s numbers."""
    rng = np.random.default_rng(sum(shape) + len(kind))
    flow = rng.normal(0, 3.3, (*shape, 2)).astype(np.float32)
    if kind == "ties":  # whole pixels: many equal magnitudes
        flow = np.rint(flow)
    elif kind == "still":  # no motion: the percentile is floored at 1 px
        flow = np.zeros_like(flow) + np.float32(0.01)
    elif kind == "uneven":  # a heavy tail across several decades
        flow = (flow ** 3 * np.float32(17.0)).astype(np.float32)
    stats, max_flow = magnitude_stats(flow)
    assert stats == flow_stats(flow)  # == on floats: bit for bit
    assert max_flow == max_flow_of(flow)
    np.testing.assert_array_equal(magnitude(flow), np.linalg.norm(flow, axis=2))
    record = PairRecord.of(0, flow, {"baseline_flow": flow[::-1] * np.float32(0.7)}, 0.1)
    assert record.baseline_max_flow == max_flow_of(flow[::-1] * np.float32(0.7))


def test_record_statistics_refuse_what_check_flow_refuses() -> None:
    flow = np.zeros((4, 5, 2), np.float32)
    flow[1, 2, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        PairRecord.of(0, flow, {}, 0.0)
    flow[1, 2, 0] = 1e20  # beyond float32 squared: the magnitude overflows, check_flow names it
    with pytest.raises(InputError, match="1e9"):
        PairRecord.of(0, flow, {}, 0.0)
    stats, max_flow = magnitude_stats(np.ones((4, 5, 2)))  # float64: as check_flow gives it, float32
    assert max_flow == max_flow_of(np.ones((4, 5, 2))) and stats == flow_stats(np.ones((4, 5, 2)))


def test_records_are_lines_of_a_few_hundred_bytes_in_one_file_a_writer(tmp_path: Path) -> None:
    flow = np.random.default_rng(1).normal(0, 2, (20, 30, 2)).astype(np.float32)
    store = RunStore(tmp_path, save_flo=False, cache_pairs=0)
    for i in range(40):
        store.save_record(PairRecord.of(i, flow, {}, 0.01 * i), flow)
    store.end_pass()
    files = list((tmp_path / WORK_DIR / "pairs").iterdir())
    assert len(files) == 1 and files[0].suffix == ".jsonl"
    assert 100 < files[0].stat().st_size / 40 < 400  # a record costs its size, not a file-system block
    second = RunStore(tmp_path, save_flo=False, cache_pairs=0)  # a later writer (a resumed run, a chunk)
    second.save_record(PairRecord.of(40, flow, {}, 0.5), flow)
    second.save_record(PairRecord.of(3, flow * 2, {}, 0.5), flow)  # pair 3 computed again: the latest counts
    second.end_pass()
    assert len(list((tmp_path / WORK_DIR / "pairs").iterdir())) == 2
    again = RunStore(tmp_path, save_flo=False, cache_pairs=0)
    assert again.recorded() == list(range(41))
    assert again.record(3).max_flow == max_flow_of(flow * 2) and again.record(39).seconds == pytest.approx(0.39)


def test_an_unfinished_or_damaged_record_line_is_dropped_and_its_pair_computed_again(tmp_path: Path) -> None:
    flow = np.random.default_rng(2).normal(0, 2, (20, 30, 2)).astype(np.float32)
    store = RunStore(tmp_path, save_flo=False, cache_pairs=0)
    for i in range(5):
        store.save_record(PairRecord.of(i, flow, {}, 0.0), flow)
    store.end_pass()
    path = next((tmp_path / WORK_DIR / "pairs").iterdir())
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1][:40] + b"\x00" * 9 + lines[1][49:]  # damaged in place (a bad block)
    path.write_bytes(b"".join(lines[:4]) + lines[4][:-30])  # the last write was cut short
    again = RunStore(tmp_path, save_flo=False, cache_pairs=0)
    assert again.recorded() == [0, 2, 3]
    assert [again.has(i) for i in range(5)] == [True, False, True, True, False]
    with pytest.raises(InputError, match="record of pair 4 is missing or damaged"):
        again.record(4)
    again.save_record(PairRecord.of(4, flow, {}, 0.0), flow)  # resumed: appended to a file of its own
    assert again.has(4) and again.record(4).max_flow == max_flow_of(flow)


def test_a_run_resumes_after_its_last_record_was_cut_short(make_frames, tmp_path: Path) -> None:
    folder = make_frames(7, 40, 56)
    options = RunOptions(method="dis-fast", save_flo=True)
    full = run_video(folder, tmp_path / "run", options)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="pair 4"):
        run_video(folder, out, options, method=failing_at_pair(4))
    path = next((out / WORK_DIR / "pairs").iterdir())
    path.write_bytes(path.read_bytes()[:-20])  # pair 3's record torn: pair 3 is not finished
    (out / "flo" / "000003.flo").unlink()  # (its .flo file comes after its record)
    summary = run_video(folder, out, RunOptions(method="dis-fast", save_flo=True, resume=True))
    assert summary["resumed_pairs"] == 3 and summary["max_flow_px"] == full["max_flow_px"]
    for name in ["flow.mp4", "panel.mp4"] + [f"flo/{i:06d}.flo" for i in range(6)]:
        assert (out / name).read_bytes() == (tmp_path / "run" / name).read_bytes(), name


@pytest.mark.parametrize("source", ["video", "folder"])
def test_a_run_whose_video_was_replaced_does_not_resume(make_video, make_frames, tmp_path: Path,
                                                        source: str) -> None:
    # The fingerprint held the video's path only: a clip re-exported under the same name resumed with the
    # old clip's pairs. Now its size and time (a folder's: its first frame's) must match too.
    import os

    from semflow.io.images import read_image, write_image

    video = make_video(5, 40, 56) if source == "video" else make_frames(5, 40, 56)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="pair 2"):
        run_video(video, out, RunOptions(method="dis-fast"), method=failing_at_pair(2))
    first = video if source == "video" else video / "0000.png"
    if source == "video":
        make_video(5, 40, 56, shift=(3, 0))  # another clip under the same name
    else:
        write_image(first, 255 - read_image(first))
    stat = first.stat()
    os.utime(first, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a second later, whatever the clock
    with pytest.raises(InputError, match=f"cannot resume, {video} changed since the earlier run"):
        run_video(video, out, RunOptions(method="dis-fast", resume=True))
    assert run_video(video, out, RunOptions(method="dis-fast"))["pairs"] == 4  # afresh: fine


@pytest.mark.parametrize("numpy_version, arithmetic", [("2.2.6", "own type"), ("2.4.0", "numpy's"),
                                                        (np.__version__, "lower")])
def test_record_statistics_follow_the_percentile_arithmetic_of_the_numpy_installed(numpy_version, arithmetic,
                                                                                   monkeypatch) -> None:
    """numpy 2.4 changed np.percentile's arithmetic (q / 100 and the virtual index in float64, not in the
    values' float32): with numpy 2.2 (the newest for Python 3.10) the records' percentiles were 1-2 float32
    steps from flow_stats' and max_flow_of's. They now follow the numpy installed; here np.percentile is
    made to compute as numpy 2.0-2.3 do, or in a way no known numpy does (then it is called itself)."""
    from semflow.pair_records import percentile_arithmetic

    true_percentile = np.percentile

    def own_type(a, q, **kwargs):  # numpy 2.0-2.3 on float32 values: everything in float32
        values = np.sort(np.asarray(a).ravel())
        t, n = values.dtype.type, values.size
        virtual = t(n - 1) * (t(q) / t(100))
        below = min(int(np.floor(virtual)), n - 1)
        above = min(below + 1, n - 1)
        gamma = virtual - t(below)
        lo, hi = values[below], values[above]
        diff = hi - lo
        return hi - diff * (t(1) - gamma) if gamma >= 0.5 else lo + diff * gamma

    fake = {"own type": own_type, "numpy's": true_percentile,
            "lower": lambda a, q, **kw: true_percentile(a, q, method="lower")}[arithmetic]
    monkeypatch.setattr(np, "__version__", numpy_version)
    monkeypatch.setattr(np, "percentile", fake)
    percentile_arithmetic.cache_clear()
    try:
        for seed in range(40):
            rng = np.random.default_rng(seed)
            flow = (rng.normal(0, 3.3, (int(rng.integers(5, 60)), int(rng.integers(5, 60)), 2)) ** 3).astype(np.float32)
            stats, max_flow = magnitude_stats(flow)
            assert stats == flow_stats(flow) and max_flow == max_flow_of(flow), seed
    finally:
        percentile_arithmetic.cache_clear()


def test_records_are_read_a_line_at_a_time_and_held_small(tmp_path: Path) -> None:
    """Reading the records back held the whole file and a list of its lines at once (17 MB for 30000 pairs,
    on top of the records), and each record its own copies of the statistics' and extras' names."""
    import sys
    import tracemalloc

    from semflow.pair_records import PairRecord, RecordLog

    flow = np.random.default_rng(4).normal(0, 2, (8, 8, 2)).astype(np.float32)
    log = RecordLog(tmp_path / "pairs")
    for i in range(20000):
        log.append(PairRecord.of(i, flow, {"baseline_flow": flow, "segmentation_rgb": flow}, i / 1000))
    log.close()
    size = sum(p.stat().st_size for p in (tmp_path / "pairs").iterdir())
    again = RecordLog(tmp_path / "pairs")
    tracemalloc.start()
    try:
        again.refresh()
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert again.indices() == list(range(20000)) and again.get(19999).seconds == pytest.approx(19.999)
    assert again.get(7).extras == ["baseline_flow", "segmentation_rgb"] and again.get(7).stats["p95"] > 0
    assert peak - held < size / 10  # (it was more than the file's size)
    assert held / 20000 < 700  # (it was about 1,000 bytes a pair)
    first, last = again.get(0), again.get(19999)
    assert first.extras[0] is last.extras[0] and next(iter(first.stats)) is next(iter(last.stats))
    assert sys.getsizeof(first) < 120  # (slots: no dict of its own)


def test_the_records_of_a_long_run_are_held_in_columns_of_about_72_bytes_a_pair(tmp_path: Path) -> None:
    """A run held each pair's record as a PairRecord with a dict of its statistics, about 590 bytes a pair
    (60 MB for an hour of 1080p) from its reading until the summary; rows of numbers take 72."""
    import tracemalloc

    from semflow.pair_records import RecordLog

    flow = np.random.default_rng(5).normal(0, 2, (8, 8, 2)).astype(np.float32)
    template = PairRecord.of(0, flow, {"baseline_flow": flow, "segmentation_rgb": flow}, 0.0)
    records = [PairRecord(i, template.max_flow * (1 + i % 7), template.baseline_max_flow,
                          {key: value + i for key, value in template.stats.items()}, 1 / (i + 3),
                          template.extras, "intermediate" if i % 2 else "flo") for i in range(5000)]
    records[123].baseline_max_flow = None
    log = RecordLog(tmp_path / "pairs")
    for record in records:
        log.append(record)
    log.close()
    again = RecordLog(tmp_path / "pairs")
    tracemalloc.start()
    try:
        again.refresh()
        held = tracemalloc.get_traced_memory()[0]
        assert held / 5000 < 100  # (it was about 590 bytes a pair)
        table = again.table(5000)
        assert (tracemalloc.get_traced_memory()[0] - held) / 5000 < 80  # the summary's table: a copy of the rows
    finally:
        tracemalloc.stop()
    assert len(table) == 5000 and list(table) == records and again.get(4999) == records[4999]  # the same floats
    assert normaliser(table) == normaliser(records) == max(r.max_flow for r in records)
    assert table.column("seconds").tolist() == [r.seconds for r in records]
    assert again.table(5001) == 5000  # (the first pair without a record)


def test_a_record_line_of_another_shape_is_not_a_record_and_a_stray_index_costs_one_page(tmp_path: Path) -> None:
    """A record is held as numbers: a line whose numbers are not floats, or whose statistics are not the
    four a record has, is not one (its pair is computed again, as for a damaged line)."""
    import tracemalloc

    from semflow.pair_records import RecordLog

    flow = np.random.default_rng(6).normal(0, 2, (8, 8, 2)).astype(np.float32)
    good = json.loads(json.dumps(dataclass_dict(PairRecord.of(0, flow, {}, 0.5))))
    lines = [good, {**good, "index": 1, "max_flow": 3}, {**good, "index": 2, "stats": {"mean": 1.0}},
             {**good, "index": 3, "seconds": None}, {**good, "index": 4, "baseline_max_flow": float("nan")},
             {**good, "index": 2**63}, {**good, "index": 10**15}]
    folder = tmp_path / "pairs"
    folder.mkdir()
    (folder / "0-1-a.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    log = RecordLog(folder)
    tracemalloc.start()
    try:
        log.refresh()
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert log.indices() == [0, 10**15] and log.get(10**15).stats == log.get(0).stats
    assert log.get(1) is None and log.get(2) is None and log.get(3) is None and log.get(4) is None
    assert held < 250_000  # two pages of 1024 pairs, 72 KB each (pairs 0 and 10**15), not rows up to 10**15


# --- what a run keeps, and what a fresh one forgets (hand-made stores) ----------------------------------


def _flow(seed: int, shape: tuple[int, int] = (64, 96)) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 6, (*shape, 2)).astype(np.float32)


def _save(store: RunStore, index: int, flow: np.ndarray, extras: dict) -> PairRecord:
    """What pass 1 does with a computed pair (pipeline): keep its flows, then write its record."""
    record = PairRecord.of(index, flow, extras, 0.1)
    record.kept = store.save_flows(index, flow, extras)
    store.save_record(record, flow)
    return record


def test_a_pair_in_an_open_segment_is_not_finished_until_the_segment_is(tmp_path: Path) -> None:
    """Pair 0 of a clip kept in the intermediate (no cache): its record is written, but its segment is
    not complete yet; a run killed now must compute it again, so it is not finished until the segment is."""
    store = RunStore(tmp_path, save_flo=False, cache_pairs=0, per_pair=8_000, budget=10**6)
    record = _save(store, 0, _flow(0), {})
    assert record.kept == "intermediate"
    assert not store.has(0)
    assert store.close_segment() and store.has(0)


def test_a_pair_with_extras_is_kept_in_the_intermediate_even_with_flo_files(tmp_path: Path) -> None:
    """``--save-flo`` holds the flow only: a pair whose method reports extras (a baseline flow) keeps them
    in the intermediate, and drawing reads both back from there."""
    flow = _flow(0)
    base = flow * np.float32(0.5)
    store = RunStore(tmp_path, save_flo=True, cache_pairs=0, per_pair=8_000, budget=10**6)
    record = _save(store, 0, flow, {"baseline_flow": base})
    assert record.kept == "intermediate" and (tmp_path / "flo" / "000000.flo").is_file()
    assert store.close_segment() and store.has(0)
    got_flow, _, got_base = store.load(store.record(0), flow.shape)
    assert np.abs(got_flow - flow).mean() < 3.0 and np.abs(got_base - base).mean() < 3.0  # (lossy, thin rate)


def test_a_segment_that_would_take_the_segments_over_the_budget_is_dropped(tmp_path: Path) -> None:
    """Two segments, each under the budget but not both: the second is dropped (its pairs are computed
    again to be drawn), the first kept."""
    flows = [_flow(k) for k in range(4)]

    def sizes(store: RunStore) -> list[int]:
        return [p.stat().st_size for p in sorted((store.work / "intermediate").glob("*.mkv"))]

    measure = RunStore(tmp_path / "measure", save_flo=False, cache_pairs=0, per_pair=8_000, budget=10**6)
    for pairs in ((0, 1), (2, 3)):
        for index in pairs:
            measure.save_flows(index, flows[index], {})
        assert measure.close_segment()
    first, second = sizes(measure)
    store = RunStore(tmp_path / "run", save_flo=False, cache_pairs=0, per_pair=8_000, budget=10**6)
    for index in (0, 1):
        _save(store, index, flows[index], {})
    assert store.close_segment()
    for index in (2, 3):
        _save(store, index, flows[index], {})
    store.budget = first + second - 1  # the budget when the second closes: it alone fits, not beside the first
    assert second < store.budget
    assert not store.close_segment()
    assert sizes(store) == [first]
    assert store.load(store.record(2), flows[2].shape) is None and store.load(store.record(0), flows[0].shape) is not None


def test_a_clip_of_no_pairs_has_its_end_recorded(tmp_path: Path) -> None:
    store = RunStore(tmp_path, save_flo=False, cache_pairs=0)
    assert store.end() == (None, None)
    store.mark_end(0)
    assert store.end() == (0, None)
    store.mark_end(3, 4.2)  # (and the timestamp of the clip's last frame: FrameSource.shortfall)
    assert store.end() == (3, 4.2)


def test_a_cached_baseline_of_another_size_is_not_used(tmp_path: Path) -> None:
    """A cache entry that does not fit its pair (damaged, or another run's) makes the pair computed again."""
    from semflow.io.flow import save_npy

    flow = _flow(0, (30, 40))
    store = RunStore(tmp_path, save_flo=False, cache_pairs=1)
    record = _save(store, 0, flow, {"baseline_flow": flow})
    assert record.kept == "cache" and store.load(record, flow.shape) is not None
    save_npy(tmp_path / WORK_DIR / "cache" / "baseline" / "000000.npy", np.zeros((3, 3, 2), np.float32))
    assert store.load(record, flow.shape) is None


def test_a_fresh_run_forgets_the_earlier_runs_pairs_but_not_the_users_files(tmp_path: Path) -> None:
    """Without --resume: the earlier run's work folder and NNNNNN.flo files go; a .flo of another name, or
    another file, that the user keeps in flo/ stays."""
    settings = {"video": "a"}
    earlier = open_store(tmp_path, settings, resume=False, save_flo=True, frame_shape=(30, 40, 3))
    _save(earlier, 0, _flow(0, (30, 40)), {})
    earlier.end_pass()
    flo = tmp_path / "flo"
    (flo / "mine.flo").write_bytes((flo / "000000.flo").read_bytes())
    (flo / "notes.txt").write_text("mine")
    assert earlier.has(0)
    fresh = open_store(tmp_path, settings, resume=False, save_flo=True, frame_shape=(30, 40, 3))
    assert fresh.recorded() == [] and not fresh.has(0)
    assert sorted(p.name for p in flo.iterdir()) == ["mine.flo", "notes.txt"]


def test_a_clip_of_exactly_the_cached_pairs_is_cached_whole(tmp_path: Path) -> None:
    shape, budget = (64, 64, 3), 10**5
    pairs = cache_pairs(shape, budget)
    whole = open_store(tmp_path / "a", {}, resume=False, save_flo=False, frame_shape=shape, cache_budget=budget,
                       pairs_estimate=pairs)
    assert whole.cache_pairs == pairs and whole.per_pair == 0
    longer = open_store(tmp_path / "b", {}, resume=False, save_flo=False, frame_shape=shape, cache_budget=budget,
                        pairs_estimate=pairs + 1)
    assert longer.cache_pairs == 0 and longer.per_pair == pytest.approx(0.9 * budget / (pairs + 1))


def test_a_run_that_left_its_work_folder_is_not_finished(tmp_path: Path) -> None:
    """A summary and every output it lists are there, but so is the work folder (a run killed while it
    wrote its outputs again): it is not taken as finished."""
    from semflow.runstore import finished_summary

    settings = {"video": "a"}
    summary = {"outputs": {"written": ["flow.mp4", "panel.mp4", "summary.json"]}, "settings": settings}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    for name in ("flow.mp4", "panel.mp4"):
        (tmp_path / name).write_bytes(b"video")
    assert finished_summary(tmp_path, settings) == summary
    (tmp_path / WORK_DIR).mkdir()
    assert finished_summary(tmp_path, settings) is None


def test_record_lines_as_the_previous_release_wrote_them_are_still_records(tmp_path: Path) -> None:
    """Lines copied from a work folder semflow 60d03ed left (a semantic pair; a pair of an OpenCV method whose
    99th percentile was raised to 1 px): read into rows of numbers, each comes back as written."""
    from semflow.pair_records import RecordLog

    lines = [
        '{"index":0,"max_flow":2.452453136444092,"baseline_max_flow":2.327530860900879,"stats":{"mean":0.6422591805458069,'
        '"median":0.4124321937561035,"p95":2.1053035259246826,"max":2.8095269203186035},"seconds":0.49698237700067693,'
        '"extras":["baseline_flow","labels","report_json","segmentation_rgb"],"kept":"cache"}',
        '{"index":1,"max_flow":1.0,"baseline_max_flow":null,"stats":{"mean":0.0,"median":0.0,"p95":0.0,"max":0.0},'
        '"seconds":0.003,"extras":[],"kept":"intermediate"}',
    ]
    folder = tmp_path / "pairs"
    folder.mkdir()
    (folder / "01796509925120267294-18416-cd062564.jsonl").write_text("".join(line + "\n" for line in lines))
    table = RecordLog(folder).table(2)
    assert not isinstance(table, int), f"pair {table} was not read as a record"
    assert [dataclass_dict(record) for record in table] == [json.loads(line) for line in lines]
    assert normaliser(table) == 2.452453136444092


def _record_lines(*records: PairRecord) -> str:
    return "".join(json.dumps(dataclass_dict(record)) + "\n" for record in records)


def test_a_record_log_reads_its_files_in_the_order_opened_and_lists_pairs_in_order(tmp_path: Path) -> None:
    """Record files are read in the order of their names (the time they were opened), so the latest record
    of a pair counts whatever order the folder lists them in; pairs come back in order across pages; files of
    another suffix, a folder named like a record file and a negative pair index are no records."""
    from semflow.pair_records import PAGE_PAIRS, RecordLog

    flow = np.random.default_rng(7).normal(0, 2, (6, 6, 2)).astype(np.float32)
    folder = tmp_path / "pairs"
    folder.mkdir()
    far = 5 * PAGE_PAIRS + 3
    for k in (3, 0, 4, 2, 1):  # (made out of order: the folder's own order is not the order opened)
        records = ([PairRecord.of(far, flow, {}, 0.0)] if k == 0 else []) + [PairRecord.of(3, flow * (k + 1), {}, float(k))]
        (folder / f"{k:020d}-1-{k}.jsonl").write_text(_record_lines(*records))
    (folder / "00000000000000000009-1-x.jsonl.tmp").write_text(_record_lines(PairRecord.of(7, flow, {}, 0.0)))
    (folder / "00000000000000000008-1-y.jsonl").mkdir()
    (folder / "00000000000000000005-1-z.jsonl").write_text(_record_lines(PairRecord.of(5, flow, {}, 0.0)).replace(
        '"index": 5', '"index": -5'))
    log = RecordLog(folder)
    assert log.indices() == [3, far]
    assert log.get(3).seconds == 4.0 and log.get(3).max_flow == max_flow_of(flow * 5)
    assert log.get(far).seconds == 0.0 and log.get(far - PAGE_PAIRS) is None and log.get(7) is None


def test_a_record_table_is_read_again_for_pairs_another_writer_finished(tmp_path: Path) -> None:
    """table(pairs) names the first pair without a record, after reading what other writers appended since;
    get(refresh=True) reads them too. A table of no pairs is empty; slices of a table are its records."""
    from semflow.pair_records import RecordLog

    flow = np.random.default_rng(8).normal(0, 2, (6, 6, 2)).astype(np.float32)
    records = [PairRecord.of(i, flow * (i + 1), {"baseline_flow": flow} if i % 2 else {}, i / 10) for i in range(5)]
    writer = RecordLog(tmp_path / "pairs")
    for i in (0, 3):
        writer.append(records[i])
    log = RecordLog(tmp_path / "pairs")
    assert log.table(4) == 1 and log.table(1)[0] == records[0] and len(log.table(0)) == 0
    writer.append(records[1])
    writer.append(records[2])
    assert log.get(2) is None and log.get(2, refresh=True) == records[2]
    writer.append(records[4])
    table = log.table(5)
    assert not isinstance(table, int) and list(table) == records
    assert table[1:4] == records[1:4] and table[::-2] == records[::-2] and table[-1] == records[4]


def test_a_record_line_whose_names_or_numbers_are_of_another_type_is_not_a_record(tmp_path: Path) -> None:
    """Extras that are not a list of names, a kept that is no name, statistics that are no dict, a number too
    large for a float, or infinite, a field a record has not: none of these lines is a record (and none stops the others being read)."""
    from semflow.pair_records import RecordLog

    flow = np.random.default_rng(9).normal(0, 2, (6, 6, 2)).astype(np.float32)
    good = json.loads(json.dumps(dataclass_dict(PairRecord.of(0, flow, {"baseline_flow": flow}, 0.5))))
    odd = [{"extras": [{}]}, {"extras": [3]}, {"extras": "baseline_flow"}, {"kept": {}}, {"kept": 5},
           {"stats": list(good["stats"])}, {"max_flow": 10**400}, {"seconds": float("inf")}, {"max_flow": 2},
           {"colour": "red"}]
    folder = tmp_path / "pairs"
    folder.mkdir()
    lines = [good] + [{**good, **change, "index": i} for i, change in enumerate(odd, 1)]
    (folder / "0-1-a.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    log = RecordLog(folder)
    assert log.indices() == [0] and log.get(0).extras == ["baseline_flow"]


def test_a_record_line_read_while_unfinished_is_read_whole_once_finished(tmp_path: Path) -> None:
    """A line another writer has not finished yet waits: once its end is written, the record is read whole;
    a writer's own records are seen at once, without reading the files again."""
    from semflow.pair_records import RecordLog

    flow = np.random.default_rng(10).normal(0, 2, (6, 6, 2)).astype(np.float32)
    first, second = PairRecord.of(0, flow, {}, 0.1), PairRecord.of(1, flow * 2, {}, 0.2)
    folder = tmp_path / "pairs"
    folder.mkdir()
    line = _record_lines(second)
    path = folder / "00000000000000000001-1-a.jsonl"
    path.write_text(_record_lines(first) + line[:30])
    log = RecordLog(folder)
    assert log.indices() == [0]
    with open(path, "a") as file:
        file.write(line[30:])
    assert log.get(1, refresh=True) == second
    log.append(PairRecord.of(2, flow, {}, 0.3))
    assert log.get(2).seconds == 0.3


def test_the_records_of_a_run_with_a_pair_missing_are_one_error_naming_it(tmp_path: Path) -> None:
    flow = np.random.default_rng(11).normal(0, 2, (6, 6, 2)).astype(np.float32)
    store = RunStore(tmp_path, save_flo=False, cache_pairs=0)
    for i in (0, 1, 3):
        store.save_record(PairRecord.of(i, flow, {}, 0.0), flow)
    assert len(store.records(2)) == 2
    with pytest.raises(InputError, match="the record of pair 2 is missing or damaged"):
        store.records(4)


def test_pairs_the_intermediate_had_no_room_for_do_not_list_its_folder_again_each(tmp_path: Path, monkeypatch) -> None:
    """A pair kept nowhere (the budget spent: a clip longer than its frame count said) was looked for in the
    intermediate's folder, listed again on each miss, when resuming (has) and drawing (load): 14 ms a pair
    with 1800 segments, minutes over a long clip's last pairs."""
    from semflow.flow_segments import Segments

    store = RunStore(tmp_path, save_flo=False, cache_pairs=0, per_pair=8_000, budget=1_000)  # no room for a segment
    for index in range(12):
        assert _save(store, index, _flow(0, (16, 24)), {}).kept == "none"
    store.end_pass()
    listings = []
    listed = Segments._list
    monkeypatch.setattr(Segments, "_list", lambda self: (listings.append(1), listed(self))[1])
    assert all(store.has(index) for index in range(12))
    assert all(store.load(store.record(index), (16, 24)) is None for index in range(12))
    assert len(listings) <= 1
