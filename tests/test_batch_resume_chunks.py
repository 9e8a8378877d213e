"""A resumed chunk of a batch in video mode: the same flows as the chunk computed without a stop.

A batch's chunk starts its video state afresh at its first pair and saves none. A chunk resumed after some
of its pairs were finished restarted the state there, and the run's warm-up then replayed the clip from
frame 0: slower, and other flows than the uninterrupted chunk's (0.016 px on this clip). Ray-free: what a
worker does with a chunk (:func:`semflow.pipeline.compute_pairs` as :class:`semflow.batch.work.ClipWorker`
calls it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from conftest import moving_frames

from semflow.io.images import write_image
from semflow.methods import get_method
from semflow.pipeline import RunOptions, compute_pairs, open_video


def test_a_resumed_video_mode_chunk_gives_the_uninterrupted_chunks_flows(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    for k, frame in enumerate(moving_frames(10, 48, 64, shift=(2, 1))):
        write_image(frames / f"{k:04d}.png", frame)
    method = get_method("discrete")
    calls = []
    estimate = method.estimate
    method.estimate = lambda a, b, **kw: calls.append(1) or estimate(a, b, **kw)

    def chunk(out: Path, stop: int, resume: bool):
        source, store = open_video(frames, out, RunOptions(method="discrete", progress=False, resume=resume))
        report = compute_pairs(source, method, store, start=4, stop=stop, resume=True, progress=False, video=True)
        return store, report

    whole, _ = chunk(tmp_path / "whole", 8, False)
    chunk(tmp_path / "cut", 6, False)  # stopped after pairs 4 and 5
    calls.clear()
    store, report = chunk(tmp_path / "cut", 8, True)
    assert (report.resumed, report.computed) == (2, 2)
    assert len(calls) == 4  # pairs 4 and 5 again for the state they leave (not 0..5), then 6 and 7
    for index in range(4, 8):
        np.testing.assert_array_equal(store.load(store.record(index))[0], whole.load(whole.record(index))[0])


def test_a_workers_chunk_is_computed_in_the_batchs_mode(monkeypatch, tmp_path: Path) -> None:
    """A batch's worker computes its chunks in video mode, carrying the state from pair to pair, unless the
    batch is ``pairwise`` (the batch tests' method ignores the state: a worker with the modes swapped passed
    them all)."""
    from semflow.batch import work
    from semflow.pipeline import PassReport

    frames = tmp_path / "frames"
    for k, frame in enumerate(moving_frames(3, 48, 64)):
        write_image(frames / f"{k:04d}.png", frame)
    modes = []
    monkeypatch.setattr(work, "compute_pairs", lambda *args, **kwargs: modes.append(kwargs["video"]) or PassReport())
    worker = work.ClipWorker.__new__(work.ClipWorker)  # (in this process: no Ray)
    worker.method = get_method("dis-ultrafast")
    for pairwise in (False, True):
        options = RunOptions(method="dis-ultrafast", progress=False, pairwise=pairwise)
        open_video(frames, tmp_path / f"out{pairwise}", options)
        worker.compute(frames, tmp_path / f"out{pairwise}", options, work.Chunk(0, None), 0)
    assert modes == [True, False]
