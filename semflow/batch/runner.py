"""A batch on Ray: actors that each hold one built method, fed chunks and drawings by the driver.

The driver (this process) expands the inputs, checks each clip and opens its output folder, then hands
tasks to idle workers: the chunks of the clips in order, and a clip's drawing as soon as its chunks are
done (drawings go first, so finished clips free their work folders early). No more workers are started
than there are tasks to run at once (each worker holds a built method: memory). A task that fails marks its
clip failed with a one-line error and the batch goes on; a worker process that dies is restarted by Ray
and the clip whose task it held is reported as failed. Finished pairs stay on disk: ``resume`` does
only what is missing. Inputs and the output folder must be on a path every worker sees.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError

from semflow.batch.cluster import check_address, ray_starting, token_notice_hidden, workers_to_start
from semflow.batch.inputs import BatchInput, expand_inputs
from semflow.batch.progress import BatchProgress
from semflow.batch.work import BatchOptions, Chunk, ClipWorker, Prepared, prepare_clip
from semflow.errors import SemflowError
from semflow.io.atomic import write_text_atomic
from semflow.io.outputs import OutputFolder, check_output_folder, refuse_inputs_as_outputs, refuse_link
from semflow.pipeline import STAGES, check_video
from semflow.runstore import RUN_OUTPUTS, WORK_DIR, finished_summary

PROBES = 300
"""How many times (0.2 s apart) the driver asks a worker that died whether Ray has restarted it."""


@dataclass
class InputResult:
    """How one clip of a batch went: ``status`` is ``ok`` or ``failed`` (with a one-line ``error``);
    ``summary`` is its ``summary.json`` when ok. ``wall_seconds``: worker seconds spent on it in this
    batch; ``computed_pairs``: pairs computed in this batch (the rest were finished before)."""

    name: str
    input: str
    out_dir: str
    status: str = "pending"
    error: str | None = None
    pairs: int = 0
    computed_pairs: int = 0
    wall_seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=lambda: {s: 0.0 for s in STAGES})
    summary: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        """The entry of this clip in ``batch.json`` (without its full summary)."""
        return {"name": self.name, "input": self.input, "out_dir": self.out_dir, "status": self.status,
                "error": self.error, "pairs": self.pairs, "computed_pairs": self.computed_pairs,
                "wall_seconds": self.wall_seconds, "stage_seconds": self.stage_seconds,
                "wall_seconds_per_pair": self.wall_seconds / self.computed_pairs if self.computed_pairs else None,
                "max_flow_px": self.summary["max_flow_px"] if self.summary else None}


def one_line(exc: BaseException) -> str:
    """The one-line message of an error raised in a task (a SemflowError's own text, else type: text)."""
    if isinstance(exc, RayTaskError) and exc.cause is not None:
        exc = exc.cause
    text = str(exc) if isinstance(exc, SemflowError) else f"{type(exc).__name__}: {exc}"
    return (text.strip().splitlines() or [type(exc).__name__])[0]


@dataclass
class _Clip:
    item: BatchInput
    result: InputResult
    chunks: collections.deque = field(default_factory=collections.deque)
    running: int = 0
    single_pass: bool = False
    drawing: bool = False
    folder: OutputFolder | None = None
    """The clip's output folder, locked by the driver from its preparation until its result is known."""

    def release(self) -> None:
        """Unlock the clip's output folder (its result is known, or the batch stopped)."""
        if self.folder is not None:
            self.folder.__exit__(None, None, None)
            self.folder = None


class Batch:
    """Run many clips on Ray workers. Use as a context manager::

        with Batch("out", BatchOptions(method="dis-medium", workers=4)) as batch:
            batch.submit(["clips/*.mp4", "frames/"])
            for result in batch.results():   # each clip as it finishes (ok or failed)
                print(result.name, result.status, result.error)
        batch.summary   # also written to out/batch.json

    Outputs go to ``out/<name>/``: the files ``semflow run`` writes for that clip.
    """

    def __init__(self, out_dir: str | os.PathLike, options: BatchOptions | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.options = options or BatchOptions()
        self.run_options = self.options.run_options()
        self.clips: list[_Clip] = []
        self.summary: dict[str, Any] | None = None
        self._started_ray = False
        self._workers: list[Any] = []
        self._wanted = 0
        self.startup_seconds = 0.0

    # --- Ray ------------------------------------------------------------------------------------

    def __enter__(self) -> Batch:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def start(self) -> None:
        """Join the cluster (``address``) or start a local Ray, and start one worker (a method the workers
        cannot build fails here); :meth:`results` starts the rest, as many as the clips' tasks can use."""
        started = time.perf_counter()
        check_output_folder(self.out_dir)  # an --out that cannot be a folder fails before Ray starts
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
            if self.options.address:
                check_address(self.options.address)  # ray.init would retry an address nobody answers at for good
                with ray_starting():
                    ray.init(address=self.options.address, **kwargs)
            else:
                with token_notice_hidden(), ray_starting():
                    ray.init(num_cpus=self.options.workers or os.cpu_count() or 1, include_dashboard=False,
                             object_store_memory=100 * 1024 ** 2, **kwargs)
            self._started_ray = True
        cpus = int(ray.cluster_resources().get("CPU", 0))
        self._wanted = self.options.workers or max(1, cpus)
        if self._wanted > cpus:
            self.close()
            raise SemflowError(f"{self._wanted} workers asked for, but the Ray cluster has {cpus} CPUs")
        self._add_workers(1)
        self.startup_seconds = time.perf_counter() - started

    def _add_workers(self, count: int) -> None:
        """Start workers until there are ``count``, and wait until each has built its method."""
        actor = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=0)(ClipWorker)
        self._workers += [actor.remote(self.options.method, self.options.method_options, 1)
                          for _ in range(count - len(self._workers))]
        try:
            self.worker_pids()
        except RayActorError as exc:
            self.close()
            last = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]  # the creation error's own line
            if last.startswith("semflow.errors."):
                last = last.split(": ", 1)[-1]
            raise SemflowError(f"the workers could not build method {self.run_options.method!r}: {last}") from None

    def worker_pids(self) -> list[int]:
        """The process ids of the workers (for monitoring, or for tests that kill one)."""
        return ray.get([w.pid.remote() for w in self._workers])

    def close(self) -> None:
        """Stop the workers, and Ray when this batch started it; unlock the clips' output folders."""
        for clip in self.clips:
            clip.release()
        for worker in self._workers:
            ray.kill(worker)
        self._workers = []
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False

    # --- inputs ---------------------------------------------------------------------------------

    def submit(self, inputs: Iterable[str | os.PathLike | BatchInput]) -> list[BatchInput]:
        """Add clips (paths, globs, manifests, see :func:`expand_inputs`); returns them as expanded."""
        taken = {c.item.name for c in self.clips}
        added = []
        for item in expand_inputs(inputs):
            name, k = item.name, 2
            while name in taken:
                name, k = f"{item.name}-{k}", k + 1
            taken.add(name)
            item = BatchInput(item.path, name)
            out = self.out_dir / name
            self.clips.append(_Clip(item, InputResult(name, str(item.path), str(out))))
            added.append(item)
        return added

    # --- scheduling -----------------------------------------------------------------------------

    def results(self) -> Iterator[InputResult]:
        """Run everything submitted; yield each clip's result as soon as it is known."""
        if not self._workers:
            self.start()
        started = time.perf_counter()
        progress = BatchProgress(len(self.clips), enabled=self.options.progress)
        with progress:
            for clip in self.clips:
                yield from self._prepare(clip, progress)
            grown = time.perf_counter()
            self._add_workers(workers_to_start(self._wanted, [len(c.chunks) for c in self.clips
                                                              if c.result.status == "pending"]))
            self.startup_seconds += time.perf_counter() - grown
            idle = list(self._workers)
            inflight: dict[Any, tuple[Any, _Clip | None, str, Chunk | None]] = {}
            probes: dict[int, int] = {}
            while True:
                while idle:
                    task = self._next_task()
                    if task is None:
                        break
                    worker = idle.pop()
                    clip, kind, chunk = task
                    inflight[self._send(worker, clip, kind, chunk)] = (worker, clip, kind, chunk)
                if not inflight:
                    break
                ready, _ = ray.wait(list(inflight), num_returns=1)
                worker, clip, kind, chunk = inflight.pop(ready[0])
                if clip is None:  # a probe of a worker that died: back to work once Ray restarted it
                    try:
                        ray.get(ready[0])
                        idle.append(worker)
                        probes.pop(id(worker), None)
                    except RayActorError:
                        probes[id(worker)] = probes.get(id(worker), 0) + 1
                        if probes[id(worker)] < PROBES:
                            time.sleep(0.2)
                            inflight[worker.pid.remote()] = (worker, None, "probe", None)
                        elif not idle and not inflight:  # no worker is coming back
                            for left in self.clips:
                                if left.result.status == "pending":
                                    yield self._fail(left, "no worker left to run it", progress)
                    continue
                try:
                    value = ray.get(ready[0])
                except RayActorError as exc:
                    inflight[worker.pid.remote()] = (worker, None, "probe", None)
                    if "restarting" in str(exc):  # sent while Ray restarted the worker: it never ran
                        clip.running -= 1
                        self._requeue(clip, kind, chunk)
                        continue
                    value = exc
                except RayTaskError as exc:
                    idle.append(worker)
                    value = exc
                else:
                    idle.append(worker)
                yield from self._receive(value, clip, kind, chunk, progress)
        self._write_summary(time.perf_counter() - started)

    def _prepare(self, clip: _Clip, progress: BatchProgress) -> Iterator[InputResult]:
        out = Path(clip.result.out_dir)
        try:
            # Locked and link-checked as `semflow run` does: a fresh batch first deletes only what the
            # previous run or batch there listed; another run into the folder is refused meanwhile.
            done = finished_summary(out, self.run_options.fingerprint(clip.item.path)) if self.run_options.resume else None
            if done is not None:  # nothing to do (checked before the lock, which starts a work folder)
                prepared = Prepared([], done["pairs"], done)
            else:
                refuse_link(out, self.out_dir)  # DIR/NAME is the batch's to make: never a link someone left there
                refuse_inputs_as_outputs([clip.item.path], [out])  # a clip's folder named as its own output
                checked = check_video(clip.item.path, self.run_options)  # a bad clip leaves no folder behind
                clip.folder = OutputFolder(out, fresh=not self.run_options.resume, work=WORK_DIR,
                                           reserved=RUN_OUTPUTS)
                clip.folder.__enter__()
                prepared = prepare_clip(clip.item.path, out, self.run_options, self.options.chunk_pairs, clip.folder,
                                        checked)
        except (SemflowError, OSError) as exc:
            yield self._fail(clip, one_line(exc), progress)
            return
        progress.add_pairs(prepared.pairs_estimate)
        if prepared.done is not None:
            clip.release()
            clip.result.status, clip.result.summary = "ok", prepared.done
            clip.result.pairs = prepared.done["pairs"]
            progress.advance_pairs(prepared.pairs_estimate)
            progress.clip_done()
            yield clip.result
            return
        clip.single_pass = prepared.single_pass
        clip.chunks.extend(prepared.chunks)
        progress.advance_pairs(prepared.pairs_estimate - sum(
            ((c.stop if c.stop is not None else prepared.pairs_estimate) - c.start) for c in prepared.chunks))

    def _next_task(self) -> tuple[_Clip, str, Chunk | None] | None:
        for clip in self.clips:  # a clip whose chunks are all done is drawn first
            if clip.result.status == "pending" and not clip.chunks and not clip.running and not clip.drawing \
                    and not clip.single_pass:
                clip.drawing = True
                return clip, "finish", None
        for clip in self.clips:
            if clip.result.status == "pending" and clip.chunks:
                return clip, ("single" if clip.single_pass else "compute"), clip.chunks.popleft()
        return None

    def _send(self, worker: Any, clip: _Clip, kind: str, chunk: Chunk | None) -> Any:
        path, out = clip.item.path, Path(clip.result.out_dir)
        clip.running += 1
        if kind == "compute":
            return worker.compute.remote(path, out, self.run_options, chunk, self.options.warmup_pairs)
        if kind == "single":
            return worker.single.remote(path, out, self.run_options)
        r = clip.result
        return worker.finish.remote(path, out, self.run_options, r.wall_seconds, dict(r.stage_seconds),
                                    r.computed_pairs)

    def _requeue(self, clip: _Clip, kind: str, chunk: Chunk | None) -> None:
        if kind == "finish":
            clip.drawing = False
        elif chunk is not None:
            clip.chunks.appendleft(chunk)

    def _receive(self, value: Any, clip: _Clip, kind: str, chunk: Chunk | None,
                 progress: BatchProgress) -> Iterator[InputResult]:
        clip.running -= 1
        if clip.result.status != "pending":
            return  # the clip already failed; its finished pairs are kept for --resume
        if isinstance(value, RayActorError):
            what = f"pairs {chunk.start}-{'end' if chunk.stop is None else chunk.stop - 1}" if chunk else "the drawing"
            detail = (str(value).strip().splitlines() or [""])[0]
            yield self._fail(clip, f"a worker died while computing {what} ({type(value).__name__}: {detail})", progress)
            return
        if isinstance(value, RayTaskError):
            yield self._fail(clip, one_line(value), progress)
            return
        result = clip.result
        if kind == "compute":
            result.computed_pairs += value["computed"]
            result.wall_seconds += value["wall"]
            for name, seconds in value["stages"].items():
                result.stage_seconds[name] = result.stage_seconds.get(name, 0.0) + seconds
            progress.advance_pairs(value["computed"] + value["resumed"])
            return
        summary = value
        clip.release()
        result.status, result.summary, result.pairs = "ok", summary, summary["pairs"]
        result.wall_seconds = summary["wall_seconds"]["total"]
        result.stage_seconds = dict(summary["stage_seconds"])
        if kind == "single":
            result.computed_pairs = summary["pairs"] - summary["resumed_pairs"]
            progress.advance_pairs(summary["pairs"])
        progress.clip_done()
        yield result

    def _fail(self, clip: _Clip, error: str, progress: BatchProgress) -> InputResult:
        clip.result.status, clip.result.error = "failed", error
        clip.chunks.clear()
        clip.release()
        progress.clip_done(failed=True)
        return clip.result

    def _write_summary(self, wall: float) -> None:
        results = [c.result for c in self.clips]
        computed = sum(r.computed_pairs for r in results)
        self.summary = {
            "method": self.run_options.method,
            "workers": len(self._workers),
            "address": self.options.address,
            "startup_seconds": self.startup_seconds,
            "wall_seconds": wall,
            "pairs": sum(r.pairs for r in results),
            "computed_pairs": computed,
            "pairs_per_second": computed / wall if wall > 0 else None,
            "ok": sum(r.status == "ok" for r in results),
            "failed": sum(r.status == "failed" for r in results),
            "inputs": [r.as_json() for r in results],
        }
        write_text_atomic(self.out_dir / "batch.json", json.dumps(self.summary, indent=2))


def run_batch(inputs: Iterable[str | os.PathLike | BatchInput], out_dir: str | os.PathLike,
              options: BatchOptions | None = None) -> dict[str, Any]:
    """Run a whole batch and return its summary (also written to ``out_dir/batch.json``)."""
    with Batch(out_dir, options) as batch:
        batch.submit(inputs)
        for _ in batch.results():
            pass
    return batch.summary
