"""The work of a batch, free of Ray: options, the chunks of a clip, and what a worker does with them.

A clip is split into chunks of consecutive pairs; each chunk is :func:`semflow.pipeline.compute_pairs`
on its pair range (after ``warmup`` pairs that are computed and thrown away, for methods that carry state
from pair to pair). When all chunks of a clip are done, :func:`finish_clip` draws it under one
normaliser from the pair records, exactly as ``semflow run`` does. With ``max_flow`` given a clip is one
task that computes and draws in a single pass.
"""

from __future__ import annotations

import numbers
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from semflow.baseline.base import FlowMethod
from semflow.batch.cluster import check_batch_device
from semflow.build_identity import build_difference, build_identity
from semflow.errors import InputError, SemflowError, counted
from semflow.forked import set_process_limit
from semflow.io.files import too_few_frames
from semflow.io.native import own_native_output
from semflow.io.outputs import OutputFolder
from semflow.io.video import FrameSource
from semflow.methods import DEFAULT_RUN_METHOD, get_method, list_methods, method_entry
from semflow.options import option_infos, options_dict
from semflow.pipeline import RunOptions, compute_pairs, finish_video, open_video, run_single_pass
from semflow.run_options import named_path
from semflow.run_outputs_check import chunk_starts
from semflow.runstore import WORK_DIR, RunStore, finished_summary, reopen_store

MAX_WORKERS = 1024
"""The most workers a batch may ask for (``semflow batch --workers`` has the same bound)."""


@dataclass
class BatchOptions(RunOptions):
    """What a batch does: the settings of ``semflow run`` (:class:`RunOptions`: each clip is run with
    them; ``progress`` is the batch's display), with ``method`` also a built :class:`FlowMethod` (pickled
    to the workers). ``workers``: Ray actors, 1 to :data:`MAX_WORKERS` (default: the CPUs Ray sees; no
    more are started than the clips' chunks can use at once); ``address``: an existing Ray cluster to
    join (default: start one on this machine); ``chunk_pairs``: pairs per task; ``warmup_pairs``: pairs
    computed before a chunk's first one."""

    method: str | FlowMethod = DEFAULT_RUN_METHOD
    workers: int | None = None
    address: str | None = None
    chunk_pairs: int = 50
    warmup_pairs: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.workers is not None and (not isinstance(self.workers, numbers.Integral) or isinstance(self.workers, bool)
                                         or not 1 <= self.workers <= MAX_WORKERS):
            raise InputError(f"workers must be a whole number from 1 to {MAX_WORKERS}, got {self.workers!r}")
        if self.method_options.get("baseline_flows") is not None:  # one folder for every clip: not what is meant
            raise InputError("--baseline-flows holds one video's flows: give it to `semflow run`, one video at a time")
        masks, segmenter = self.method_options.get("segmentation"), self.method_options.get("segmenter")
        backend, _, given = segmenter.partition(":") if isinstance(segmenter, str) else ("", "", "")
        for option, value, folder in (
                ("--segmentation", masks, masks if isinstance(masks, (str, os.PathLike)) else None),
                ("--segmenter", segmenter, os.path.expanduser(given) if backend.lower() == "masks" and given else None)):
            if folder is not None and Path(folder).is_dir():  # its NNNNNN.png: every clip's frame N
                raise InputError(f"{option} {value}: a folder of NNNNNN.png holds one video's masks; give it to "
                                 "`semflow run`, one video at a time (batch takes one label PNG for every frame)")
        # Checked here, in one line, not as a TypeError from plan_chunks (or a misleading "pairs are missing")
        # after Ray has started.
        for name, least in (("chunk_pairs", 1), ("warmup_pairs", 0)):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < least:
                raise InputError(f"{name} must be a whole number of at least {least}, got {value!r}")
        if self.address is not None and not isinstance(self.address, str):
            raise InputError(f"address must be a Ray address (HOST:PORT, ray://HOST:PORT or auto) or None,"
                             f" got {self.address!r}")
        if isinstance(self.method, FlowMethod):  # options go with a name: refused here, not in every worker
            get_method(self.method, **self.method_options)
        elif self.method in list_methods():
            self.method_options = with_real_paths(self.method, self.method_options)
        check_batch_device(self.method_options.get("device"))  # before Ray starts

    def device(self) -> str | None:
        """The device the workers' method runs on (a built method's own when it was given built); ``cpu``
        for a registered method that runs no torch code (OpenCV's: no GPU to reserve for it)."""
        name = self.method if isinstance(self.method, str) else self.method.name
        if name in list_methods() and not method_entry(name).torch:
            return "cpu"
        built = None if isinstance(self.method, str) or self.method.options is None else self.method.options.device
        return self.method_options.get("device", built)

    def run_options(self) -> RunOptions:
        """The :class:`RunOptions` each clip is run with (what ``semflow run`` would be given)."""
        settings = {f.name: getattr(self, f.name) for f in fields(RunOptions)}
        name, given = self.method, dict(self.method_options)
        if isinstance(self.method, FlowMethod):  # named, with the options it was built with (a resume compares them)
            name = self.method.name
            given = options_dict(self.method.options) if self.method.options is not None else given
        return RunOptions(**{**settings, "method": name, "method_options": given, "progress": False})


def with_real_paths(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` of method ``method`` with the files and folders they name by their real paths: the workers of a
    cluster joined with ``ray start`` run in the folder it ran in, and would read a relative path from there."""
    infos = {info.name: info for info in option_infos(method_entry(method).options_type())}
    real = {}
    for key, value in options.items():
        found = named_path(value, infos[key].path) if key in infos else None
        real[key] = value if found is None else found[0]
    return real


@dataclass(frozen=True)
class Chunk:
    """Pairs ``start .. stop - 1`` of a clip (to its end when ``stop`` is None)."""

    start: int
    stop: int | None


@dataclass
class Prepared:
    """A clip checked and its output folder opened: the chunks still to compute, or its finished
    summary when a resumed batch has nothing left to do for it."""

    chunks: list[Chunk]
    pairs_estimate: int
    done: dict[str, Any] | None = None
    single_pass: bool = False


def plan_chunks(pairs: int, chunk_pairs: int) -> list[Chunk]:
    """Chunks of ``chunk_pairs`` pairs covering an estimated ``pairs`` pairs; the last one runs to the end."""
    chunk_pairs = max(1, chunk_pairs)
    starts = list(range(0, max(pairs, 1), chunk_pairs))
    return [Chunk(s, None if k == len(starts) - 1 else s + chunk_pairs) for k, s in enumerate(starts)]


def prepare_clip(path: Path, out_dir: Path, options: RunOptions, chunk_pairs: int,
                 folder: OutputFolder | None = None,
                 checked: tuple[FrameSource, np.ndarray] | None = None, warmup: int = 0) -> Prepared:
    """Check the clip, open its output folder (a fresh batch clears it, a resumed one keeps what is
    finished) and plan the chunks still to compute. Raises :class:`InputError` for a clip that cannot be
    used (missing, unreadable, fewer than 2 frames). ``folder``: the output folder, locked by the caller
    (it has already cleared what a previous run listed): what a run of the clip writes is claimed in it;
    ``checked``: what :func:`~semflow.pipeline.check_video` gave for the clip, when the caller checked it;
    ``warmup``: the pairs each chunk computes before its first. In video mode the chunks are recorded: a resume
    in other chunks, whose video states would start elsewhere, is refused (``semflow run`` computes in one).
    Single-pass (``max_flow``) or ``pairwise``, they change no flow."""
    if options.resume:
        done = finished_summary(out_dir, options.fingerprint(path))
        if done is not None:
            return Prepared([], done["pairs"], done)
    chunks = None if options.pairwise or options.max_flow is not None else [chunk_pairs, warmup]
    source, store = open_video(path, out_dir, options, folder=folder, checked=checked, chunks=chunks)
    if folder is not None:  # listed before the workers write them, so that a fresh run removes them
        for name in store.outputs(max(len(source) - 1, 1)):
            folder.claim(name)
    estimate = max(len(source) - 1, 1)
    if options.max_flow is not None:
        return Prepared([Chunk(0, None)], estimate, single_pass=True)
    return Prepared(_unfinished(store, plan_chunks(estimate, chunk_pairs)), estimate)


def chunk_origins(pairs: int, chunk_pairs: int, warmup: int) -> Callable[[int], int]:
    """For a clip of an estimated ``pairs`` pairs in chunks of ``chunk_pairs`` (:func:`plan_chunks`), each computed
    after ``warmup`` pairs: pair i -> the pair at which the video state that computed it started afresh
    (:func:`~semflow.run_outputs_check.chunk_starts`, which a resume checks; a pair past the estimate is in the
    last chunk, which runs to the end)."""
    starts = chunk_starts(pairs, [chunk_pairs, warmup])
    return lambda index: int(starts[min(index, len(starts) - 1)])


def _unfinished(store: RunStore, chunks: list[Chunk]) -> list[Chunk]:
    """The chunks with a pair ``store`` has not finished."""
    end = store.end()[0]
    left = []
    for chunk in chunks:
        stop = chunk.stop if chunk.stop is not None else end
        if stop is not None and all(store.has(i) for i in range(chunk.start, stop)):
            continue  # finished by an earlier run
        left.append(chunk)
    return left


def chunks_left(out_dir: Path, options: RunOptions, estimate: int, chunk_pairs: int) -> list[Chunk]:
    """The chunks of a clip of ``estimate`` pairs that :func:`prepare_clip` would plan, told without
    opening ``out_dir``: all of them for a fresh batch; with ``resume`` those its work folder has not
    finished (read unlocked, an estimate: all of them when it cannot be read)."""
    planned = plan_chunks(estimate, chunk_pairs)
    if not options.resume or not (out_dir / WORK_DIR / "state.json").is_file():
        return planned
    try:
        return _unfinished(reopen_store(out_dir, options.save_flo), planned)
    except (SemflowError, OSError, ValueError):
        return planned


def _open(path: Path, out_dir: Path, options: RunOptions) -> tuple[FrameSource, RunStore]:
    source = FrameSource(path, max_side=options.max_side, max_frames=options.max_frames)
    return source, reopen_store(out_dir, options.save_flo, frame_shape=source.frame_size())  # (.flo files of it)


class ClipWorker:
    """What one worker holds: the method, built once, and the tasks it serves (Ray-free; the Ray actor
    in :mod:`semflow.batch.runner` wraps it)."""

    def __init__(self, method: str | FlowMethod, method_options: dict[str, Any], threads: int | None = None,
                 cwd: str | None = None, build: dict[str, str] | None = None) -> None:
        own_native_output()  # (a worker process is semflow's: decoders' lines stay out of the driver's terminal)
        if build is not None and build != build_identity():  # (the driver's: a clip's pairs from two builds)
            raise SemflowError("a worker runs another build than the driver (" + build_difference(build_identity(), build)
                               + "); install the same semflow and libraries on every node")
        if cwd is not None and os.path.isdir(cwd):  # the driver's folder, where it has the same path: a built
            os.chdir(cwd)  # method's relative paths (read when first needed) mean there what they meant to it
        if threads:  # a worker owns ``threads`` CPUs: OpenCV and torch would otherwise use every core each
            cv2.setNumThreads(threads)
            set_process_limit(threads)  # nor fork more processes than that (the things' fits)
            # torch is not imported for it (seconds of each worker's start, for OpenCV's methods): one that a
            # method imports later starts with this many threads.
            os.environ["OMP_NUM_THREADS"] = str(threads)
        self.method = get_method(method, **method_options)
        if threads and "torch" in sys.modules:  # (imported before: by a built method's unpickling, or the build)
            sys.modules["torch"].set_num_threads(threads)

    def pid(self) -> int:
        """The worker's process id."""
        return os.getpid()

    def compute(self, path: Path, out_dir: Path, options: RunOptions, chunk: Chunk, warmup: int) -> dict[str, Any]:
        """Compute the chunk's unfinished pairs (after ``warmup`` pairs, in video mode: pair mode carries no
        state to warm up); returns counts, the clip's pair count when the chunk reached its end, and wall
        seconds (total and per stage)."""
        started = time.perf_counter()
        source, store = _open(path, out_dir, options)
        warmup = 0 if options.pairwise else warmup
        report = compute_pairs(source, self.method, store, start=chunk.start, stop=chunk.stop, warmup=warmup,
                               resume=True, progress=False, video=not options.pairwise)
        return {"computed": report.computed, "resumed": report.resumed, "end": report.end,
                "stages": report.stages, "wall": time.perf_counter() - started}

    def finish(self, path: Path, out_dir: Path, options: RunOptions, wall: float, stages: dict[str, float],
               computed: int, chunk_pairs: int | None = None, warmup: int = 0) -> dict[str, Any]:
        """Draw the clip once all its pairs are finished; returns its summary. ``chunk_pairs``, ``warmup``: how
        its chunks were computed (None: as one), so that in video mode a pair computed again to be drawn
        starts from its chunk's state, as it was computed (:func:`chunk_origins`)."""
        started = time.perf_counter()
        source, store = _open(path, out_dir, options)
        pairs, seconds = store.end()
        if not pairs:
            raise too_few_frames(path, 1) if pairs == 0 else InputError(f"{path}: the end of the clip was never reached")
        missing = [i for i in range(pairs) if not store.has(i)]
        if missing:
            raise InputError(f"{path}: {counted(len(missing), 'pair')} missing (first: {missing[0]})")
        # summary.json's "truncated" compares the frames read with the container's count. This task may never
        # decode the whole clip (it draws from the kept flows), but the chunk that reached the end read pairs + 1,
        # the last at the timestamp it noted (FrameSource.shortfall: a count that is an estimate).
        if source.frames_read is None:
            source.frames_read, source.end_seconds = pairs + 1, seconds
        origin = None if chunk_pairs is None else chunk_origins(max(len(source) - 1, 1), chunk_pairs, warmup)
        return finish_video(source, self.method, store, pairs, options, stages=stages, computed=computed,
                            wall_seconds=wall + time.perf_counter() - started, origin=origin)

    def single(self, path: Path, out_dir: Path, options: RunOptions) -> dict[str, Any]:
        """Compute and draw a clip in one pass (``max_flow`` given); returns its summary."""
        started = time.perf_counter()
        source, store = _open(path, out_dir, options)
        return run_single_pass(source, self.method, store, options, wall_seconds=time.perf_counter() - started)
