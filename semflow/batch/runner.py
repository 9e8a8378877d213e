"""A batch on Ray: actors that each hold one built method, fed chunks and drawings by the driver.

The driver (this process) expands the inputs and checks each clip (:mod:`semflow.batch.checks`: the next one
between tasks), and hands the tasks of the clips checked to idle workers (:mod:`semflow.batch.tasks`): the
chunks of the clips in order, and a clip's drawing as soon as its chunks are done (drawings go first, so
finished clips free their work folders early). A clip's folder is opened and locked when its first task is due
(:mod:`semflow.batch.clips`): the driver keeps files open for the clips being worked on only. No more workers
are started than there are tasks to run at once (each worker holds a built method: memory). A task that fails
marks its clip failed with a one-line error and the batch goes on (:mod:`semflow.batch.answers`: what each
task's answer does to its clip); a worker process that dies is restarted by Ray, then replaced
(:mod:`semflow.batch.workers`), and the chunk it held is computed again once. Finished pairs
stay on disk: ``resume`` does only what is missing. Inputs and the output folder must be on a path every
worker sees.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import ray

try:  # (Ray's private module; where another Ray moves it, its connect is simply not guarded)
    from ray._private import worker as ray_worker
except ImportError:  # pragma: no cover
    ray_worker = None
from ray.exceptions import RayActorError, RayTaskError

from semflow.batch.answers import count_pairs, fail_clip, receive, task_back
from semflow.batch.checks import CheckRound
from semflow.batch.clips import (
    BATCH_JSON,
    INTERRUPTED,
    SUMMARY_SECONDS,
    BatchFolder,
    ClipState,
    InputResult,
    batch_summary,
    check_clip,
    earlier_names,
    open_clip,
)
from semflow.batch.cluster import start_ray, worker_gpus, workers_to_start
from semflow.batch.inputs import BatchInput, expand_inputs, folder_names
from semflow.batch.progress import BatchProgress
from semflow.batch.signals import calls_deferred, interruptible, signals_deferred
from semflow.batch.tasks import TaskQueue
from semflow.batch.work import BatchOptions, Chunk
from semflow.batch.workers import Revival, new_workers, one_line, send, why_not_built, worker_pids
from semflow.errors import SemflowError
from semflow.io.atomic import write_text_atomic


class Batch:
    """Run many clips on Ray workers. Use as a context manager::

        with Batch("out", BatchOptions(method="dis-medium", workers=4)) as batch:
            batch.submit(["clips/*.mp4", "frames/"])
            for result in batch.results():   # each clip as it finishes (ok or failed)
                print(result.name, result.status, result.error)
        batch.summary   # also written to out/batch.json

    Outputs go to ``out/<name>/``: the files ``semflow run`` writes for that clip. ``out`` is locked while
    the batch is open: a second batch or a ``semflow run`` into it is refused. Each clip is run once per
    Batch: clips submitted later (also while :meth:`results` runs) are run by it or by the next call.
    """

    def __init__(self, out_dir: str | os.PathLike, options: BatchOptions | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.options = options or BatchOptions()
        self.run_options = self.options.run_options()
        self.clips: list[ClipState] = []
        self.summary: dict[str, Any] | None = None
        self._started_ray = False
        self._workers: list[Any] = []
        self._wanted = 0
        self._gpus = 0.0  # the share of a GPU each worker reserves
        self._folder = BatchFolder(self.out_dir)
        self._tasks = TaskQueue()
        self._checks = CheckRound()  # the clips being checked between tasks
        self._checked = 0  # the clips checked so far are self.clips[:_checked]
        self._run_started: float | None = None  # when the results() in progress began
        self._wall = 0.0  # wall seconds of all results() calls so far
        self._written = 0.0  # when batch.json was last written
        self.startup_seconds = 0.0

    # --- Ray ------------------------------------------------------------------------------------

    def __enter__(self) -> Batch:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def start(self) -> None:
        """Lock the output folder, join the cluster (``address``) or start a local Ray, and start one worker
        (a method the workers cannot build fails here); :meth:`results` starts the rest, as many as the clips'
        tasks can use."""
        started = time.perf_counter()
        self._folder.check()  # before Ray starts, as every command checks its outputs before any work
        self._folder.lock()
        try:
            self._start_ray()
        except BaseException:
            self.close()
            raise
        self.startup_seconds += time.perf_counter() - started

    def _start_ray(self) -> None:
        if not ray.is_initialized():
            self._started_ray = True  # (before: a start cut short is shut down too)
            with calls_deferred(ray_worker, "connect"):  # (a core worker half made crashes the process at exit)
                start_ray(ray.init, self.options.address, self.options.workers)
        cpus = int(ray.cluster_resources().get("CPU", 0))
        self._wanted = self.options.workers or max(1, cpus)
        if self._wanted > cpus:
            raise SemflowError(f"{self._wanted} workers asked for, but the Ray cluster has {cpus} CPUs")
        self._gpus = worker_gpus(self.options.device(), ray.cluster_resources().get("GPU", 0), self._wanted)
        self._add_workers(1)

    def _add_workers(self, count: int) -> None:
        """Start workers until there are ``count``, and wait until each new one has built its method (not for
        one that died meanwhile: the schedule's Revival has it)."""
        started = len(self._workers)
        self._workers += new_workers(count - started, self.options.method, self.options.method_options, self._gpus)
        try:
            worker_pids(self._workers[started:])
        except RayActorError as exc:
            self.close()
            raise SemflowError(f"the workers could not build method {self.run_options.method!r}: "
                               f"{why_not_built(exc, local=not self.options.address)}") from None

    def _new_worker(self) -> Any:
        """One more worker (in place of one dead for good), in :attr:`_workers`."""
        self._workers += new_workers(1, self.options.method, self.options.method_options, self._gpus)
        return self._workers[-1]

    def worker_pids(self) -> list[int]:
        """The process ids of the workers (for monitoring, or for tests that kill one), once each has built
        its method."""
        return worker_pids(self._workers)

    def close(self) -> None:
        """Stop the workers, and Ray when this batch started it; unlock the clips' output folders and the
        batch's. A :meth:`results` left unfinished writes its batch.json first. Ctrl-C or SIGTERM meanwhile
        is raised once all this is done."""
        with signals_deferred():
            self._end_run(complete=False)
            for clip in self.clips:
                clip.release()
            for worker in self._workers:
                ray.kill(worker)
            self._workers = []
            if self._started_ray:
                self._started_ray = False
                ray.shutdown()
            self._folder.unlock()

    # --- inputs ---------------------------------------------------------------------------------

    def submit(self, inputs: str | os.PathLike | BatchInput | Iterable[str | os.PathLike | BatchInput]
               ) -> list[BatchInput]:
        """Add clips (paths, globs, manifests, see :func:`expand_inputs`); returns them as expanded. Clips
        submitted while :meth:`results` runs join it. The batch's own output folder is never an input: a
        glob or folder leaves it out, and an output folder inside an input folder is refused."""
        items = expand_inputs(inputs, out=self.out_dir)
        # Resumed, a clip takes the folder it had (names of clips that share one follow their order).
        earlier = earlier_names(self.out_dir) if self.run_options.resume else {}
        added = []
        for item, name in zip(items, folder_names(items, {c.item.name for c in self.clips}, earlier)):
            item = BatchInput(item.path, name)
            out = self.out_dir / name
            self.clips.append(ClipState(item, InputResult(name, str(item.path), str(out)), order=len(self.clips)))
            added.append(item)
        return added

    # --- scheduling -----------------------------------------------------------------------------

    def results(self) -> Iterator[InputResult]:
        """Run every clip submitted and not run yet, with those submitted while this runs; yield each
        clip's result as soon as it is known. A clip is run once per Batch: a second call runs only clips
        submitted since (finished clips' outputs are left alone, nor yielded again). Left early (``break``,
        an exception, Ctrl-C) it still writes batch.json and :attr:`summary`, the clips not done
        ``interrupted``."""
        if self._run_started is not None:
            raise SemflowError("results() is already running for this batch: submit() more clips to it instead")
        if self.summary is not None and all(clip.prepared for clip in self.clips):
            return  # nothing new since the last call
        if not self._workers:
            self.start()
        self._run_started, self._written = time.perf_counter(), float("-inf")  # (written at the first chance)
        complete = False
        try:
            with BatchProgress(0, enabled=self.options.progress) as progress:
                for result in self._schedule(progress):
                    with progress.paused():  # (what the caller prints of it is not drawn over by the bars)
                        yield result
            complete = True
        finally:
            with signals_deferred():  # (a second Ctrl-C must not cut batch.json's last write short: close() does
                self._end_run(complete)  # not write it again, and it kept the clips "pending")

    def _schedule(self, progress: BatchProgress) -> Iterator[InputResult]:
        """Hand tasks to idle workers until every clip's result is known; yield each result."""
        idle = list(self._workers)
        inflight: dict[Any, tuple[Any, ClipState, str, Chunk | None]] = {}
        revival = Revival(self._new_worker)
        while True:
            yield from self._prepare_new(progress, idle)  # (also the clips submitted while a result was out)
            while idle:
                task = self._tasks.next()
                if task is None:
                    break
                kind, clip, chunk = task
                if kind == "open":
                    yield from self._prepare(clip, progress, opening=True)
                    continue
                worker = idle.pop()
                ref = send(worker, clip, kind, chunk, self.run_options, self.options.warmup_pairs,
                           self.options.chunk_pairs)
                inflight[ref] = (worker, clip, kind, chunk)
            if not inflight:
                if all(clip.prepared and clip.result.status != "pending" for clip in self.clips):
                    return  # (workers that died and are not back yet are not waited for)
                if not revival.probes:
                    if self._checks.left:
                        continue  # (the clips still to check bring tasks)
                    for left in self.clips:  # every worker is gone for good
                        if left.prepared and left.result.status == "pending":
                            yield fail_clip(left, "no worker left to run it", progress)
                    if all(clip.prepared for clip in self.clips):
                        return
                    continue
            waiting = list(inflight) + list(revival.probes)
            timeout = 0.0 if self._checks.left else 5.0 if revival.probes else None  # (0: back to the checks)
            ready, _ = interruptible(
                lambda waiting=waiting, timeout=timeout: ray.wait(waiting, num_returns=1, timeout=timeout))
            if not ready or ready[0] in revival.probes:  # a worker that died back at work, replaced or gone
                back, gone = revival.answer(ready[0]) if ready else (None, None)
                idle += [back] if back is not None else []
                for dead in ([gone] if gone is not None else []) + revival.overdue():
                    self._workers.remove(dead)
                continue
            worker, clip, kind, chunk = inflight.pop(ready[0])
            try:
                value = ray.get(ready[0])
            except RayActorError as exc:
                revival.ask(worker)
                if "restarting" in str(exc):  # sent while Ray restarted the worker: it never ran
                    task_back(clip, self._tasks)
                    self._tasks.requeue(clip, kind, chunk)
                    continue
                value = exc
            except RayTaskError as exc:
                idle.append(worker)
                value = exc
            else:
                idle.append(worker)
            known = list(receive(value, clip, kind, chunk, self._tasks, progress))
            self._write_summary(partial=True, if_due=True)  # (after any task: chunks too)
            yield from known

    def _prepare_new(self, progress: BatchProgress, idle: list[Any]) -> Iterator[InputResult]:
        """Check the next clip not checked yet (:mod:`semflow.batch.checks`: those the tasks wait for, all at
        once), then start the workers the tasks can use (into ``idle``) once enough are known."""
        checks = self._checks
        if not checks.left:
            new = [clip for clip in self.clips[self._checked:] if not clip.prepared]
            self._checked = len(self.clips)
            if not new:
                return
            progress.add_clips(len(new))
            checks.begin(new, self.clips, whole=self.run_options.max_frames is None,
                         fresh=not self.run_options.resume)
        growing = len(self._workers) < self._wanted
        while (clip := checks.next()) is not None:  # (batch.json is kept as it stands meanwhile)
            yield from self._prepare(clip, progress)
            checks.checked(clip)
            self._write_summary(partial=True, if_due=True)
            if not checks.holding(self._wanted if growing else None):
                break
        if not growing or (checks.left and checks.tasks < self._wanted):
            return
        grown, count = time.perf_counter(), len(self._workers)
        self._add_workers(workers_to_start(self._wanted, [checks.tasks]))
        idle += self._workers[count:]
        self.startup_seconds += time.perf_counter() - grown

    def _end_run(self, complete: bool) -> None:
        """The end of a results() call: the clips it left undone are ``interrupted`` (never prepared again
        by this Batch), and batch.json is written. Once per call: the generator's clean-up or close()."""
        started, self._run_started = self._run_started, None
        self._checks.close()  # (the clips not checked yet are interrupted below)
        if started is None:
            return
        self._wall += time.perf_counter() - started
        if complete:
            self._write_summary()
            return
        for clip in self.clips:
            if clip.result.status == "pending":
                clip.prepared = True
                clip.result.status, clip.result.error = "interrupted", INTERRUPTED
        with contextlib.suppress(OSError):  # (on the way out of an error: that error is the one to see)
            self._write_summary()

    def _prepare(self, clip: ClipState, progress: BatchProgress, opening: bool = False) -> Iterator[InputResult]:
        """Check the clip (once, when a run first sees it) or, ``opening``, open and lock its folder and queue its
        chunks (once, when its first task is due)."""
        clip.prepared, clip.opened = True, opening
        try:
            if opening:
                prepared = open_clip(clip, self.out_dir, self.run_options, self.options.chunk_pairs,
                                     self.options.warmup_pairs)
            else:
                prepared = check_clip(clip, self.out_dir, self.run_options, self.options.chunk_pairs)
        except (SemflowError, OSError) as exc:
            yield fail_clip(clip, one_line(exc), progress)
            return
        progress.add_pairs(prepared.pairs_estimate - clip.estimate)  # (opening: the video may have changed)
        clip.estimate = prepared.pairs_estimate
        if prepared.done is not None:
            clip.release()
            clip.result.status, clip.result.summary, clip.result.pairs = "ok", prepared.done, prepared.done["pairs"]
            count_pairs(clip, prepared.pairs_estimate, progress)
            progress.clip_done()
            yield clip.result
        elif not opening:
            clip.planned = len(prepared.chunks)
            self._tasks.add(clip, draw_only=not prepared.chunks)
        else:
            clip.single_pass = prepared.single_pass
            clip.chunks.extend(prepared.chunks)
            count_pairs(clip, prepared.pairs_estimate - sum(
                ((c.stop if c.stop is not None else prepared.pairs_estimate) - c.start) for c in prepared.chunks),
                progress)
            self._tasks.update(clip)

    def _write_summary(self, partial: bool = False, *, if_due: bool = False) -> None:
        """batch.json; ``partial``: as it stands while results() runs (the clips not done yet ``pending``: what a
        batch stopped without a word leaves), not :attr:`summary`; ``if_due``: once in :data:`SUMMARY_SECONDS`."""
        if if_due and time.perf_counter() - self._written <= SUMMARY_SECONDS:
            return
        self._written = time.perf_counter()
        wall = self._wall + (self._written - self._run_started if partial and self._run_started else 0.0)
        summary = batch_summary([c.result for c in self.clips], method=self.run_options.method,
                                workers=len(self._workers), address=self.options.address,
                                startup_seconds=self.startup_seconds, wall_seconds=wall)
        with contextlib.suppress(OSError) if partial else contextlib.nullcontext():  # (the last write says)
            write_text_atomic(self.out_dir / BATCH_JSON, json.dumps(summary, indent=2))
        if not partial:
            self.summary = summary


def run_batch(inputs: str | os.PathLike | BatchInput | Iterable[str | os.PathLike | BatchInput],
              out_dir: str | os.PathLike, options: BatchOptions | None = None) -> dict[str, Any]:
    """Run a whole batch and return its summary (also written to ``out_dir/batch.json``)."""
    with Batch(out_dir, options) as batch:
        batch.submit(inputs)
        for _ in batch.results():
            pass
    return batch.summary
