"""Flow for a whole video, streamed: ``semflow run``.

Every frame of the output videos is drawn under one shared colour normaliser, so a run has two passes:

1. :func:`compute_pairs`: read frames one at a time; for each consecutive pair compute the flow and keep
   a small record (its 99th magnitude percentile, statistics, timings; see :mod:`semflow.runstore`) and,
   with ``save_flo``, ``DIR/flo/NNNNNN.flo``, as soon as it is made. A finished pair is skipped when
   resuming, so an interrupted run loses at most the pair in flight. A batch runs this loop on chunks
   of pairs (``start``, ``stop``, with a ``warmup`` of pairs computed before ``start`` and not kept).
2. :func:`finish_video`: the normaliser from the records, then :func:`semflow.render.render_clip` draws
   ``flow.mp4`` and ``panel.mp4`` from the kept flows: exact ones for a short clip, decoded from the
   compact intermediate for a long one (:mod:`semflow.runstore`), computed again only as a fallback;
   then ``summary.json`` (:mod:`semflow.run_summary`).

With ``max_flow`` given the normaliser is known up front: one pass computes and draws, keeping nothing.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from semflow.baseline.base import FlowMethod, FlowResult
from semflow.errors import InputError, counted, warn
from semflow.io.files import too_few_frames
from semflow.io.outputs import OutputFolder, refuse_inputs_as_outputs
from semflow.io.video import FrameSource
from semflow.memory import check_memory
from semflow.methods import get_method
from semflow.pair_records import PairRecord
from semflow.progress import progress_bar
from semflow.render import PairFlows, render_clip, tile_colours
from semflow.run_options import RunOptions
from semflow.run_summary import STAGES, make_summary, write_summary
from semflow.runstore import (
    RUN_OUTPUTS,
    WORK_DIR,
    RunStore,
    finished_summary,
    normaliser,
    open_store,
)
from semflow.state_chain import StateChain
from semflow.temporal import TemporalMeter
from semflow.timing import StageTimer, moved_out_of_flow, sum_stages
from semflow.video_state import VideoState

if TYPE_CHECKING:
    from semflow.segmentation.labels import LabelSet

__all__ = ["WORK_DIR", "RunOptions", "run_video", "open_video", "compute_pairs", "finish_video", "PassReport"]


@dataclass
class PassReport:
    """What one :func:`compute_pairs` call did: pairs computed and skipped (already finished), the
    number of pairs of the video when its end was reached (else None), and its wall seconds per stage."""

    computed: int = 0
    resumed: int = 0
    end: int | None = None
    stages: dict[str, float] = field(default_factory=dict)


def check_video(video: Path, options: RunOptions) -> tuple[FrameSource, np.ndarray]:
    """The frame source of ``video`` and its first frame; InputError unless at least 2 frames decode (the
    count a container declares is not trusted: one that says 1 may hold more)."""
    source = FrameSource(video, max_side=options.max_side, max_frames=options.max_frames)
    frames = list(itertools.islice(iter(source), 2))
    if len(frames) < 2:
        raise too_few_frames(video, len(frames))
    return source, frames[0]


def open_video(video: str | os.PathLike, out_dir: str | os.PathLike, options: RunOptions,
               method: FlowMethod | None = None, *, folder: OutputFolder | None = None,
               checked: tuple[FrameSource, np.ndarray] | None = None,
               chunks: list[int] | None = None) -> tuple[FrameSource, RunStore]:
    """Check ``video`` (readable, at least 2 frames; ``checked``: what :func:`check_video` already gave) and
    open the store of ``out_dir`` for ``options`` (and the built ``method``: see :meth:`RunOptions.fingerprint`);
    ``chunks``: a batch's ``[chunk_pairs, warmup_pairs]`` in video mode (None: one pass, as a run)."""
    video, out_dir = Path(video), Path(out_dir)
    source, first = checked or check_video(video, options)
    out_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(out_dir, options.fingerprint(video, method), resume=options.resume, save_flo=options.save_flo,
                       frame_shape=first.shape, single_pass=options.max_flow is not None,
                       cache_budget=options.cache_budget, folder=folder, pairs_estimate=max(len(source) - 1, 0),
                       chunks=chunks)
    return source, store


def _estimate(method: FlowMethod, index: int, img1: np.ndarray, img2: np.ndarray,
              chain: StateChain | None = None) -> tuple[FlowResult, float]:
    if hasattr(method, "seek"):  # methods that read given per-frame masks
        method.seek(index)
    state = chain.before(index) if chain is not None else None
    start = time.perf_counter()
    result = method.estimate(img1, img2, state=state) if state is not None else method.estimate(img1, img2)
    seconds = time.perf_counter() - start
    if chain is not None:
        chain.after(index, result)
    return result, seconds


def _compute_and_keep(method: FlowMethod, store: RunStore, index: int, img1: np.ndarray, img2: np.ndarray,
                      timer: StageTimer, chain: StateChain | None = None) -> FlowResult:
    """Compute pair ``index`` and keep it (cache entries, record, .flo)."""
    if chain is not None and index == store.cache_pairs:  # kept nowhere: drawn from a recomputation
        chain.checkpoint_before(index)
    result, seconds = _estimate(method, index, img1, img2, chain)
    timer.lap("flow")
    record = PairRecord.of(index, result.flow, result.extras, seconds)
    timer.lap("stats")
    record.kept = store.save_flows(index, result.flow, result.extras)
    store.save_record(record, result.flow)
    if chain is not None and record.kept != "intermediate":  # finished now (else with its segment: see below)
        chain.keep(index)
    if store.segment_full():
        store.close_segment()
        if chain is not None:
            chain.checkpoint(index)
    timer.lap("write")
    return result


def _check_size(video: Path, index: int, img1: np.ndarray, img2: np.ndarray) -> None:
    if img1.shape != img2.shape:
        raise InputError(f"{video}: frame {index + 1} is {img2.shape[1]}x{img2.shape[0]}, the frames before it"
                         f" {img1.shape[1]}x{img1.shape[0]}")


def _skip_finished(store: RunStore, report: PassReport, bar: Any, on_pair: Callable[[int], None] | None,
                   first: int, stop: int | None) -> int:
    """Count the finished pairs from ``first`` on (before ``stop``) as resumed; returns the first unfinished."""
    while (stop is None or first < stop) and store.has(first):
        report.resumed += 1
        bar.advance()
        if on_pair is not None:
            on_pair(first)
        first += 1
    return first


def _handle_pair(method: FlowMethod, store: RunStore, index: int, img1: np.ndarray, img2: np.ndarray,
                 timer: StageTimer, chain: StateChain, report: PassReport, *, warm: bool, resume: bool,
                 replay: bool) -> None:
    """Pair ``index`` of a pass: estimated for the chain only (``warm``), skipped as finished, or computed
    and kept."""
    if warm:  # warm-up or replay: the method sees the pair, nothing is kept
        _estimate(method, index, img1, img2, chain)
        timer.lap("flow")
    elif resume and store.has(index):
        report.resumed += 1
        if replay:
            _estimate(method, index, img1, img2, chain)
            timer.lap("flow")
        else:
            chain.start_over()
    else:
        _compute_and_keep(method, store, index, img1, img2, timer, chain)
        report.computed += 1


def compute_pairs(source: FrameSource, method: FlowMethod, store: RunStore, *, start: int = 0,
                  stop: int | None = None, warmup: int = 0, resume: bool = False,
                  progress: bool | None = None, on_pair: Callable[[int], None] | None = None,
                  video: bool = False, save_state: bool = False) -> PassReport:
    """Pass 1 over pairs ``start .. stop - 1`` (to the end of the video when ``stop`` is None).

    The ``warmup`` pairs before ``start`` are computed and thrown away, so that a method that carries
    state from pair to pair reaches ``start`` as an uninterrupted run would. With ``resume``, finished
    pairs are skipped. ``on_pair(index)`` is called after each pair. ``video``: carry the video state from
    pair to pair (video mode); ``save_state``: keep it in the work folder after each pair, so that a
    resumed run continues from it. A resumed pass (without warm-up) starts reading at its first unfinished
    pair (:meth:`~semflow.io.video.FrameSource.frames` seeks there when it can prove where it lands).
    """
    timer = StageTimer()
    report = PassReport()
    chain = StateChain(method, source, store, video=video, save=save_state)
    # A warm-up, or a chunk of a batch (which keeps no state), starts the chain afresh at its first pair;
    # a run continues it from the state saved after its last finished pair (or a warm-up from frame 0).
    chain.state = VideoState() if video and (warmup or not save_state) else None
    # A batch's chunk in video mode saves no state: the state at a pair is the one its pairs from ``start``
    # leave, so finished pairs before an unfinished one are computed again (kept nowhere) for it. (Restarting
    # the chain there warmed up from frame 0: other flows than the uninterrupted chunk's.)
    replay = video and not save_state
    first = max(0, start - warmup)
    replayed = first  # pairs before it were counted as resumed before the loop (computed again when replaying)
    previous: np.ndarray | None = None
    total = stop - start if stop is not None else max(len(source) - 1 - start, 0) or None
    with progress_bar(total, "flow", enabled=progress) as bar, store.pass_scope(chain.checkpoint):
        if resume and not warmup:  # the finished pairs it starts with: their frames are not read again
            first = replayed = _skip_finished(store, report, bar, on_pair, first, stop)
            if first > start and replay and (stop is None or first < stop):
                first = start  # read from the chunk's start: the finished pairs give the state
            elif first > start:
                chain.start_over()
        number = first - 1
        for number, frame in enumerate(source.frames(first), first):
            timer.lap("read")
            if previous is not None:
                index = number - 1
                _check_size(source.path, index, previous, frame)
                _handle_pair(method, store, index, previous, frame, timer, chain, report,
                             warm=index < start or index < replayed, resume=resume, replay=replay)
                if index >= max(start, replayed):
                    bar.advance()
                    if on_pair is not None:
                        on_pair(index)
            previous = frame
            if stop is not None and number >= stop:  # frame ``stop`` ends pair ``stop - 1``
                break
        else:  # the video ended: its last frame was ``number``
            if number >= first:
                report.end = number
                store.mark_end(number, source.end_seconds)
    report.stages = timer.seconds
    return report


def finish_video(source: FrameSource, method: FlowMethod, store: RunStore, pairs: int, options: RunOptions,
                 *, wall_seconds: float = 0.0, stages: dict[str, float] | None = None, computed: int | None = None,
                 extra: dict[str, Any] | None = None, origin: Callable[[int], int] | None = None) -> dict[str, Any]:
    """Pass 2: draw the clip's ``pairs`` pairs under one normaliser, write ``summary.json``, drop the work
    folder. ``wall_seconds`` and ``stages`` are the wall time and stage seconds this invocation spent on
    the clip before this call (pass 1), ``computed`` the pairs it computed (the rest count as resumed).
    ``origin``: in video mode, the pair at which the chain that computed pair i started afresh (a batch's
    chunks: :attr:`StateChain.origin`), so that a pair computed again to be drawn is the one pass 1 kept.
    Returns the summary."""
    start = time.perf_counter()
    timer = StageTimer()
    records = store.records(pairs)
    timer.lap("read")
    max_flow = options.max_flow or normaliser(records)
    chain = StateChain(method, source, store, video=not options.pairwise, origin=origin)
    label_set = tile_label_set(method)  # the panel's key and the colours a decoded tile snaps to: one set
    store.palette = None if label_set is None else tile_colours(label_set)

    def flows_for(index: int, img1: np.ndarray, img2: np.ndarray) -> PairFlows:  # runs in render's thread
        kept = store.load(records[index], img1.shape)
        if kept is not None:
            chain.start_over()
            return kept
        result, _ = _estimate(method, index, img1, img2, chain)
        return result.flow, result.extras.get("segmentation_rgb"), result.extras.get("baseline_flow")

    store.claim("flow.mp4")
    store.claim("panel.mp4")
    meter = TemporalMeter()  # flicker, photometric error, label flips: pair by pair, in order
    render_clip(source, pairs, store.out_dir, source.fps, max_flow, method.name, flows_for, timer=timer,
                progress=options.progress, label_set=label_set, on_pair=meter.on_pair)
    meter.write_plot(store.claim("plot.png"), f"{method.name}, {source.path.name}", records.column("seconds"))
    timer.lap("write")  # (the plot: half a second, most of a short clip's wall time)
    stages = sum_stages([stages or {}, timer.seconds], STAGES)
    summary = make_summary(source, method, records, max_flow, options,
                           wall_seconds=wall_seconds + time.perf_counter() - start,
                           computed=pairs if computed is None else computed,
                           stages=stages, render_from=store.render_from, extra=meter.summary_in(extra))
    return write_summary(store, summary)


def tile_label_set(method: FlowMethod) -> LabelSet | None:
    """The label set ``method``'s segmentation tiles are coloured in (the panel's colour key): its
    ``tile_label_set()`` (``semantic``: the segmenter's set, a CLIP prior's classes included), else its
    ``label_set``, else None (no segmentation)."""
    own = getattr(method, "tile_label_set", None)
    return own() if callable(own) else getattr(method, "label_set", None)


def run_single_pass(source: FrameSource, method: FlowMethod, store: RunStore, options: RunOptions,
                    *, wall_seconds: float = 0.0, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Compute and draw in one pass under the given ``options.max_flow``; nothing but the pair records is
    kept (a resumed run computes the kept pairs again to draw them, or reads their .flo files)."""
    start = time.perf_counter()
    timer = StageTimer()
    inside = {"stats": 0.0, "write": 0.0}  # of the flows_for calls, which render charges whole to "flow"
    computed = 0
    chain = StateChain(method, source, store, video=not options.pairwise, save=True)

    def flows_for(index: int, img1: np.ndarray, img2: np.ndarray) -> PairFlows:  # runs in render's thread
        nonlocal computed
        _check_size(source.path, index, img1, img2)
        kept = store.load(store.record(index), img1.shape) if options.resume and store.has(index) else None
        if kept is not None:
            chain.start_over()
            return kept
        if options.resume and store.has(index):
            result, _ = _estimate(method, index, img1, img2, chain)
        else:
            pair_timer = StageTimer()
            result = _compute_and_keep(method, store, index, img1, img2, pair_timer, chain)
            for name in inside:
                inside[name] += pair_timer.seconds.get(name, 0.0)
            computed += 1
        return result.flow, result.extras.get("segmentation_rgb"), result.extras.get("baseline_flow")

    store.claim("flow.mp4")
    store.claim("panel.mp4")
    meter = TemporalMeter()
    pairs = render_clip(source, None, store.out_dir, source.fps, options.max_flow, method.name, flows_for,
                        timer=timer, progress=options.progress, total=max(len(source) - 1, 1),
                        label_set=tile_label_set(method), on_pair=meter.on_pair)
    if pairs == 0:
        raise too_few_frames(source.path, 1)
    store.mark_end(pairs)
    records = store.records(pairs)
    meter.write_plot(store.claim("plot.png"), f"{method.name}, {source.path.name}", records.column("seconds"))
    timer.lap("write")
    summary = make_summary(source, method, records, options.max_flow, options,
                           wall_seconds=wall_seconds + time.perf_counter() - start, computed=computed,
                           stages=sum_stages([timer.seconds, moved_out_of_flow(timer.seconds, inside)], STAGES),
                           render_from="single-pass", extra=meter.summary_in(extra))
    return write_summary(store, summary)


def run_video(video: str | os.PathLike, out_dir: str | os.PathLike, options: RunOptions | None = None,
              *, method: FlowMethod | None = None, log: Callable[[str], None] | None = None,
              checked: tuple[FrameSource, np.ndarray] | None = None) -> dict[str, Any]:
    """Compute flow for every consecutive frame pair of ``video`` and write the outputs to ``out_dir``.

    ``video`` is a video file or a folder of images; ``checked``: what :func:`check_video` gave for it with
    these ``options``, when the caller checked it already. Returns the summary written to ``out_dir/summary.json``.
    """
    options = options or RunOptions()
    if not isinstance(options, RunOptions):
        raise InputError(f"options must be a RunOptions, not {type(options).__name__} (RunOptions(method=...))")
    started = time.perf_counter()
    method = method or get_method(options.method, **options.method_options)
    done = finished_summary(out_dir, options.fingerprint(Path(video), method)) if options.resume else None
    if done is not None:  # nothing left to do
        return {**done, "resumed_pairs": done["pairs"]}
    checked = checked or check_video(Path(video), options)
    # The flow and drawing the videos (colours, panel, the encoders): drawing costs more than a fast flow.
    check_memory(method, *checked[1].shape[:2], hint="use --max-side {side} (or smaller)", drawing=True)
    # The output folder is locked for the whole run; what the run writes is listed in its manifest,
    # and a fresh run first deletes only what the previous run there listed (see io/outputs.py).
    refuse_inputs_as_outputs([video], [out_dir])  # its outputs would join its frames
    created = not Path(out_dir).exists()
    store = None
    with OutputFolder(out_dir, fresh=not options.resume, work=WORK_DIR, reserved=RUN_OUTPUTS) as folder:
        try:
            source, store = open_video(video, out_dir, options, method, folder=folder, checked=checked)
            if options.max_flow is not None:
                summary = run_single_pass(source, method, store, options, wall_seconds=time.perf_counter() - started)
            else:
                report = compute_pairs(source, method, store, resume=options.resume, progress=options.progress,
                                       video=not options.pairwise, save_state=True)
                if not report.end:
                    raise too_few_frames(video, 1)
                summary = finish_video(source, method, store, report.end, options,
                                       wall_seconds=time.perf_counter() - started, stages=report.stages,
                                       computed=report.computed)
        except BaseException:
            if created and not folder.written() and (store is None or not store.recorded()):
                folder.discard()  # it failed before finishing a pair: nothing to resume, no folder left
            raise
    shortfall = source.shortfall()
    if shortfall:
        warn(shortfall)
    if log:
        log(f"{counted(summary['pairs'], 'pair')} -> {out_dir}")
    return summary
