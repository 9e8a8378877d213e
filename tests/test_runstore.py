"""What a run keeps between its passes (records, bounded cache) and chunked pass 1 without Ray."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from semflow.batch.work import ClipWorker, plan_chunks, prepare_clip
from semflow.errors import InputError
from semflow.metrics import flow_stats
from semflow.pipeline import RunOptions, run_video
from semflow.runstore import CACHE_BUDGET_BYTES, PairRecord, RunStore, cache_pairs, normaliser, open_store
from semflow.viz import max_flow_of


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
    assert store.has(4) and not store.has(3) and store.load(again) is None  # not kept: computed again


def test_cache_budget() -> None:
    assert CACHE_BUDGET_BYTES == 512 * 2 ** 20
    assert cache_pairs((240, 320, 3)) == 367  # 19 bytes per pixel worst case: flow, baseline, segmentation
    assert cache_pairs((1080, 1920, 3)) == 13  # an hour of 1080p: 13 pairs cached, the rest recomputed
    assert cache_pairs((576, 768, 3), budget=0) == 0


def test_resume_keeps_the_render_source_and_refuses_other_settings(tmp_path: Path) -> None:
    settings = {"video": "a", "method": "dis-fast"}
    store = open_store(tmp_path, settings, resume=False, save_flo=False, frame_shape=(8, 8, 3), cache_budget=10 ** 5)
    assert store.cache_pairs == 82
    again = open_store(tmp_path, settings, resume=True, save_flo=False, frame_shape=(8, 8, 3))
    assert again.cache_pairs == 82  # what the first run chose, whatever the budget is now
    with pytest.raises(InputError, match="cannot resume.*method"):
        open_store(tmp_path, {**settings, "method": "dis-medium"}, resume=True, save_flo=False, frame_shape=(8, 8, 3))


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
