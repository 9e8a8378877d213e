"""The Ray actors of a batch: each is a :class:`~semflow.batch.work.ClipWorker`, holding one built method.

A worker process that dies (the OOM killer, a node lost) is restarted by Ray :data:`WORKER_RESTARTS` times;
one that dies again is dead for good, and the batch puts a new worker in its place as long as the dead one
had built its method (a worker that dies while building it would die again: it is not replaced, and at the
start of a batch it stops the batch with a one-line error instead of being restarted for good).
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import ActorDiedError, RayActorError, RayTaskError

from semflow.batch.clips import ClipState
from semflow.batch.signals import interruptible
from semflow.batch.work import Chunk, ClipWorker
from semflow.build_identity import build_identity
from semflow.errors import SemflowError, file_error
from semflow.limits import limits_in_force, says_out_of_memory
from semflow.pipeline import RunOptions

WORKER_RESTARTS = 1
"""How many times Ray restarts a worker process that died before it is dead for good."""
REVIVAL_SECONDS = 300.0
"""How long the driver waits for a worker that died to come back (Ray restarts it where a CPU is free: on a
cluster that lost a node, maybe never) before it gives it up."""


def one_line(exc: BaseException) -> str:
    """The one-line message of an error raised in a task (a SemflowError's own text; an OSError's file and
    reason, as `semflow run` says them; else type: text)."""
    if isinstance(exc, RayTaskError) and exc.cause is not None:
        exc = exc.cause
    if isinstance(exc, SemflowError):
        text = str(exc)
    elif isinstance(exc, OSError) and exc.filename and exc.strerror:  # (was "PermissionError: [Errno 13] ...")
        text = file_error(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return (text.strip().splitlines() or [type(exc).__name__])[0]


def new_workers(count: int, method: Any, method_options: dict[str, Any], gpus: float) -> list[Any]:
    """Start ``count`` workers, each reserving one CPU and ``gpus`` of a GPU, in this process's folder where
    their machine has it (workers joined with ``ray start`` run where it ran); they build the method meanwhile."""
    actor = worker_class(ray, ClipWorker, gpus)
    return [actor.remote(method, method_options, 1, os.getcwd(), build_identity()) for _ in range(count)]


@functools.lru_cache(maxsize=8)
def worker_class(ray_api: Any, worker: type, gpus: float) -> Any:
    """The Ray actor class of ``worker`` reserving ``gpus`` of a GPU, made once a process (``ray_api``: Ray, or
    a test's stand-in; Ray exports the class again to each new Ray it is used in): Ray keeps every actor class
    made for good, and one made per batch had a long-lived process that runs batch after batch hold ever more."""
    return ray_api.remote(num_cpus=1, num_gpus=gpus, max_restarts=WORKER_RESTARTS, max_task_retries=0)(worker)


def send(worker: Any, clip: ClipState, kind: str, chunk: Chunk | None, options: RunOptions, warmup: int,
         chunk_pairs: int | None = None) -> Any:
    """Send ``worker`` the clip's task (``compute``, ``single`` or ``finish``, :mod:`semflow.batch.tasks`); its
    object ref. ``warmup``: pairs computed before a chunk's first and thrown away; ``chunk_pairs``: the
    pairs a chunk holds (the drawing computes a pair again from its chunk's state)."""
    # (Absolute: the workers of a cluster joined with `ray start` run in the folder it ran in.)
    path, out = Path(os.path.abspath(clip.item.path)), Path(os.path.abspath(clip.result.out_dir))
    clip.running += 1
    if kind == "compute":
        return worker.compute.remote(path, out, options, chunk, warmup)
    if kind == "single":
        return worker.single.remote(path, out, options)
    r = clip.result
    return worker.finish.remote(path, out, options, r.wall_seconds, dict(r.stage_seconds), r.computed_pairs,
                                chunk_pairs, warmup)


def worker_pids(workers: list[Any]) -> list[int]:
    """The workers' process ids, once each has built its method (a RayActorError where one cannot)."""
    refs = [w.pid.remote() for w in workers]
    return interruptible(lambda: ray.get(refs))


def why_not_built(exc: RayActorError, local: bool = False) -> str:
    """One line on why a worker could not build its method: the error its building raised, or that its process
    died while building it (every time Ray started it). ``local``: the workers run under this process's limits
    (a Ray started here), named where a process died (a thread it could not start under ``ulimit -u`` aborts it)."""
    build_raised = getattr(exc, "_actor_init_failed", False) or "__init__" in str(exc)
    last = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]  # the creation error's own line
    if not build_raised:
        limits = limits_in_force("RLIMIT_NPROC", "RLIMIT_AS") if local else ""
        bound = f", or a limit the workers inherit from here: {limits}; raise it" if limits else ""
        return (f"a worker process died while building it ({1 + WORKER_RESTARTS} times: killed for memory, or a"
                f" crash in the method's own code{bound})")
    said = last.split(": ", 1)[-1] if last.startswith("semflow.errors.") else last
    if says_out_of_memory(said) and (limit := limits_in_force("RLIMIT_AS")):  # (workers started here inherit it)
        said += f" (out of memory: the address-space limit is {limit}; raise it)"
    return said


class Revival:
    """The workers that died, each asked (a ``pid`` task: a probe) whether Ray has restarted it. One dead for
    good, or not back after :data:`REVIVAL_SECONDS` (given up: killed, so Ray stops restarting it), is
    replaced by a new worker (``new_worker()``) if it had built the method; a new one that dies before it
    answers is not (it would die again)."""

    def __init__(self, new_worker: Callable[[], Any]) -> None:
        self.new_worker = new_worker
        self.probes: dict[Any, tuple[Any, float]] = {}  # probe -> (worker, when it was first asked after)
        self._unproven: set[int] = set()  # new workers in place of dead ones that have not answered yet

    def ask(self, worker: Any, since: float | None = None) -> None:
        """Ask ``worker`` (which died) whether it is back."""
        self.probes[worker.pid.remote()] = (worker, time.monotonic() if since is None else since)

    def answer(self, probe: Any) -> tuple[Any | None, Any | None]:
        """The answer to ``probe``, which is ready: (the worker back at work, or None; the worker gone for
        good, or None)."""
        worker, since = self.probes.pop(probe)
        try:
            ray.get(probe)
        except ActorDiedError as exc:  # dead for good
            self._gone(worker, replace=not getattr(exc, "_actor_init_failed", True))
            return None, worker
        except RayActorError:  # restarting: asked again (given up by overdue() once too long)
            time.sleep(0.2)  # (Ray answers at once while it restarts the worker)
            self.ask(worker, since)
            return None, None
        self._unproven.discard(id(worker))
        return worker, None

    def overdue(self) -> list[Any]:
        """The workers asked for :data:`REVIVAL_SECONDS` without coming back (Ray still restarting them; a
        restart that waits for a CPU the other workers hold: maybe for good; a worker still busy with a task
        thought lost): given up."""
        now = time.monotonic()
        gone = []
        for probe in [p for p, (_, since) in self.probes.items() if now - since > REVIVAL_SECONDS]:
            worker, _ = self.probes.pop(probe)
            ray.kill(worker)
            self._gone(worker, replace=True)
            gone.append(worker)
        return gone

    def _gone(self, worker: Any, *, replace: bool) -> None:
        """``worker`` is gone: a new one takes its place if ``replace`` and it had answered since it started."""
        if replace and id(worker) not in self._unproven:
            new = self.new_worker()
            self._unproven.add(id(new))
            self.ask(new)
        self._unproven.discard(id(worker))
