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
import pytest
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
        np.testing.assert_array_equal(store.load(store.record(index), (48, 64))[0], whole.load(whole.record(index), (48, 64))[0])


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


def test_a_pair_computed_again_to_draw_a_chunked_clip_is_the_one_its_chunk_computed(monkeypatch, tmp_path: Path) -> None:
    """A clip whose flows are not kept (``--cache-mb 0``) computes each pair again to draw it. In video mode
    that pair must be computed from its chunk's state (afresh at the chunk's first pair, after the warm-up), as
    its chunk computed it (its record, its .flo): the drawing carried one state from frame 0 through every chunk,
    and drew other flows than those kept and measured (up to 2.4 px here from the second chunk on)."""
    import semflow.pipeline as pipeline
    from semflow.batch import work
    from semflow.io.flow import read_flow_valid

    frames = tmp_path / "frames"
    for k, frame in enumerate(moving_frames(8, 48, 64, shift=(2, 1))):
        write_image(frames / f"{k:04d}.png", frame)
    worker = work.ClipWorker.__new__(work.ClipWorker)  # (in this process: no Ray)
    worker.method = method = get_method("discrete", preset="fast")
    calls = []
    estimate = method.estimate
    method.estimate = lambda a, b, **kw: calls.append(1) or estimate(a, b, **kw)
    drawn: dict[int, np.ndarray] = {}
    render = pipeline.render_clip

    def spy(source, pairs, out_dir, fps, max_flow, name, flows_for, **kwargs):
        def kept(index, img1, img2):
            flows = flows_for(index, img1, img2)
            drawn[index] = flows[0]
            return flows
        return render(source, pairs, out_dir, fps, max_flow, name, kept, **kwargs)

    monkeypatch.setattr(pipeline, "render_clip", spy)
    for warmup in (0, 1):
        out = tmp_path / f"out{warmup}"
        options = RunOptions(method="discrete", progress=False, save_flo=True, cache_budget=0)
        open_video(frames, out, options)
        for chunk in work.plan_chunks(7, 3):  # pairs 0-2, 3-5, 6
            worker.compute(frames, out, options, chunk, warmup)
        computed = [read_flow_valid(out / "flo" / f"{index:06d}.flo")[0] for index in range(7)]
        drawn.clear()
        calls.clear()
        worker.finish(frames, out, options, 0.0, {}, 7, 3, warmup)
        assert sorted(drawn) == list(range(7)) and len(calls) >= 7  # each computed again (its warm-up too)
        for index in range(7):
            np.testing.assert_array_equal(drawn[index], computed[index], err_msg=f"pair {index}, warm-up {warmup}")


def test_a_clip_resumed_in_other_chunks_is_refused_naming_the_earlier_ones(tmp_path: Path) -> None:
    """A batch resumed with another ``--chunk-pairs`` or ``--warmup-pairs`` computed the rest of an interrupted
    clip in the new chunks, and its drawing computed a pair again from the new chunk's state: pair 2, computed
    in chunk 0-2 of ``--chunk-pairs 3``, was drawn from a state started at pair 2 (``--chunk-pairs 2``), 0.085
    px from its kept .flo (``discrete``, ``--cache-mb 0``). The chunks are recorded and a resume in others
    refused, in one line naming both; chunks that start every pair's state where the earlier ones did resume."""
    from semflow.batch import work
    from semflow.errors import InputError

    frames = tmp_path / "frames"
    for k, frame in enumerate(moving_frames(8, 32, 48)):
        write_image(frames / f"{k:04d}.png", frame)
    worker = work.ClipWorker.__new__(work.ClipWorker)  # (in this process: no Ray)
    worker.method = get_method("dis-ultrafast")
    fresh = RunOptions(method="dis-ultrafast", progress=False)
    resumed = RunOptions(method="dis-ultrafast", progress=False, resume=True)
    out = tmp_path / "out"
    worker.compute(frames, out, fresh, work.prepare_clip(frames, out, fresh, 3).chunks[0], 0)  # then stopped
    for chunk_pairs, warmup in ((2, 0), (4, 0), (3, 1)):
        with pytest.raises(InputError, match="cannot resume, the earlier batch computed its pairs with --chunk-pairs 3"
                           f" --warmup-pairs 0, not --chunk-pairs {chunk_pairs} --warmup-pairs {warmup}, "):
            work.prepare_clip(frames, out, resumed, chunk_pairs, **({"warmup": warmup} if warmup else {}))
    assert work.prepare_clip(frames, out, resumed, 3).chunks == [work.Chunk(3, 6), work.Chunk(6, None)]
    # `semflow run --resume` computes in one pass from frame 0: not the batch's chunks
    with pytest.raises(InputError, match="a batch computed its pairs in chunks .--chunk-pairs 3 --warmup-pairs 0."):
        open_video(frames, out, resumed)
    # Chunks that start each pair's state where the earlier ones did (one chunk for the whole clip) resume.
    whole = tmp_path / "whole"
    work.prepare_clip(frames, whole, fresh, 50)
    assert work.prepare_clip(frames, whole, resumed, 7, warmup=3).chunks == [work.Chunk(0, None)]
    open_video(frames, whole, resumed)  # (as `semflow run` computes it)
    run = tmp_path / "run"
    open_video(frames, run, fresh)  # an interrupted `semflow run`
    with pytest.raises(InputError, match="computed in one pass, as `semflow run` computes them, and this batch's"):
        work.prepare_clip(frames, run, resumed, 3)
    work.prepare_clip(frames, run, resumed, 7)
    # Pair mode, or one pass under --max-flow: the chunks change no flow.
    for options in ({"pairwise": True}, {"max_flow": 5.0}):
        work.prepare_clip(frames, tmp_path / str(options), RunOptions(method="dis-ultrafast", progress=False, **options), 3)
        resumed_other = RunOptions(method="dis-ultrafast", progress=False, resume=True, **options)
        work.prepare_clip(frames, tmp_path / str(options), resumed_other, 2, warmup=1)
        open_video(frames, tmp_path / str(options), resumed_other)


def test_a_pairwise_chunk_computes_no_warm_up(tmp_path: Path) -> None:
    """A warm-up brings a chunk's video state to its first pair; in pair mode (``--pairwise``) there is none,
    and the ``--warmup-pairs`` a chunk computed and threw away were seconds for nothing (two more pairs a
    chunk here), its flows the same."""
    from semflow.batch import work

    frames = tmp_path / "frames"
    for k, frame in enumerate(moving_frames(7, 32, 48)):
        write_image(frames / f"{k:04d}.png", frame)
    worker = work.ClipWorker.__new__(work.ClipWorker)  # (in this process: no Ray)
    worker.method = method = get_method("dis-ultrafast")
    calls = []
    estimate = method.estimate
    method.estimate = lambda a, b, **kw: calls.append(1) or estimate(a, b, **kw)
    options = RunOptions(method="dis-ultrafast", progress=False, pairwise=True, save_flo=True)
    stores = []
    for warmup in (0, 2):
        open_video(frames, tmp_path / f"out{warmup}", options)
        calls.clear()
        worker.compute(frames, tmp_path / f"out{warmup}", options, work.Chunk(3, 5), warmup)
        assert len(calls) == 2, warmup
        stores.append(open_video(frames, tmp_path / f"out{warmup}", RunOptions(**{**vars(options), "resume": True}))[1])
    for index in (3, 4):
        np.testing.assert_array_equal(*(store.load(store.record(index), (32, 48))[0] for store in stores))


def test_a_chunk_whose_flo_file_is_of_another_size_computes_that_pair_again(tmp_path: Path) -> None:
    """A batch worker reopens the clip's store from its folder: a whole .flo file of 16x24 frames (the
    clip's are 32x48) counted as a finished pair, and stayed so in the outputs."""
    from semflow.batch import work
    from semflow.io.flow import read_flo, write_flo

    frames = tmp_path / "frames"
    for k, frame in enumerate(moving_frames(5, 32, 48)):
        write_image(frames / f"{k:04d}.png", frame)
    worker = work.ClipWorker.__new__(work.ClipWorker)  # (in this process: no Ray)
    worker.method = get_method("dis-ultrafast")
    options = RunOptions(method="dis-ultrafast", progress=False, pairwise=True, save_flo=True)
    out = tmp_path / "out"
    open_video(frames, out, options)
    assert worker.compute(frames, out, options, work.Chunk(0, 4), 0)["computed"] == 4
    path = out / "flo" / "000002.flo"
    kept = path.read_bytes()
    write_flo(path, read_flo(path)[0][:16, :24].copy())
    assert worker.compute(frames, out, options, work.Chunk(0, 4), 0)["computed"] == 1
    assert path.read_bytes() == kept
