"""The Ray actors of a batch: each is a :class:`~semflow.batch.work.ClipWorker`, holding one built method.

A worker process that dies (the OOM killer, a node lost) is restarted by Ray :data:`WORKER_RESTARTS` times;
one that dies again is dead for good, and the batch puts a new worker in its place as long as the dead one
had built its method (a worker that dies while building it would die again: it is not replaced, and at the
start of a batch it stops the batch with a one-line error instead of being restarted for good).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import ray
from ray.exceptions import ActorDiedError, RayActorError, RayTaskError

from semflow.batch.signals import interruptible
from semflow.batch.work import ClipWorker
from semflow.errors import SemflowError

WORKER_RESTARTS = 1
"""How many times Ray restarts a worker process that died before it is dead for good."""
PROBES = 300
"""How many times (0.2 s apart) the driver asks a worker that died whether Ray has restarted it."""
REVIVAL_SECONDS = 300.0
"""How long the driver waits for a worker that died to come back (Ray restarts it where a CPU is free: on a
cluster that lost a node, maybe never) before it gives it up."""


def one_line(exc: BaseException) -> str:
    """The one-line message of an error raised in a task (a SemflowError's own text, else type: text)."""
    if isinstance(exc, RayTaskError) and exc.cause is not None:
        exc = exc.cause
    text = str(exc) if isinstance(exc, SemflowError) else f"{type(exc).__name__}: {exc}"
    return (text.strip().splitlines() or [type(exc).__name__])[0]


def new_workers(count: int, method: Any, method_options: dict[str, Any], gpus: float) -> list[Any]:
    """Start ``count`` workers, each reserving one CPU and ``gpus`` of a GPU; they build the method meanwhile."""
    actor = ray.remote(num_cpus=1, num_gpus=gpus, max_restarts=WORKER_RESTARTS, max_task_retries=0)(ClipWorker)
    return [actor.remote(method, method_options, 1) for _ in range(count)]


def worker_pids(workers: list[Any]) -> list[int]:
    """The workers' process ids, once each has built its method (a RayActorError where one cannot)."""
    refs = [w.pid.remote() for w in workers]
    return interruptible(lambda: ray.get(refs))


def why_not_built(exc: RayActorError) -> str:
    """One line on why a worker could not build its method: the error its building raised, or that its process
    died while building it (every time Ray started it)."""
    cause = getattr(exc, "_actor_init_failed", False) or "__init__" in str(exc)
    last = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]  # the creation error's own line
    if not cause:
        return (f"a worker process died while building it ({1 + WORKER_RESTARTS} times: killed for memory, or a"
                " crash in the method's own code)")
    return last.split(": ", 1)[-1] if last.startswith("semflow.errors.") else last


class Revival:
    """The workers that died, each asked (a ``pid`` task: a probe) whether Ray has restarted it. One dead for
    good is replaced by a new worker (``new_worker()``) if it had built the method; a new one that dies
    before it answers is not (it would die again). One not back after :data:`REVIVAL_SECONDS` is given up."""

    def __init__(self, new_worker: Callable[[], Any]) -> None:
        self.new_worker = new_worker
        self.probes: dict[Any, tuple[Any, float]] = {}  # probe -> (worker, when it was first asked after)
        self._tries: dict[int, int] = {}
        self._unproven: set[int] = set()  # new workers in place of dead ones that have not answered yet

    def ask(self, worker: Any, since: float | None = None) -> None:
        """Ask ``worker`` (which died) whether it is back."""
        self.probes[worker.pid.remote()] = (worker, time.monotonic() if since is None else since)

    def answer(self, probe: Any) -> tuple[Any | None, Any | None]:
        """The answer to ``probe``, which is ready: (the worker back at work, or None; the worker gone for
        good, or None: a new worker is then started in its place and asked, where it had built the method)."""
        worker, since = self.probes.pop(probe)
        try:
            ray.get(probe)
        except ActorDiedError as exc:  # dead for good
            replace = id(worker) not in self._unproven and not getattr(exc, "_actor_init_failed", True)
            self._forget(worker)
            if replace:
                new = self.new_worker()
                self._unproven.add(id(new))
                self.ask(new)
            return None, worker
        except RayActorError:  # restarting
            self._tries[id(worker)] = self._tries.get(id(worker), 0) + 1
            if self._tries[id(worker)] >= PROBES:
                self._forget(worker)
                ray.kill(worker)
                return None, worker
            time.sleep(0.2)
            self.ask(worker, since)
            return None, None
        self._forget(worker)
        return worker, None

    def overdue(self) -> list[Any]:
        """The workers not back after :data:`REVIVAL_SECONDS`: given up (killed, so Ray stops restarting them)."""
        now = time.monotonic()
        late = [probe for probe, (_, since) in self.probes.items() if now - since > REVIVAL_SECONDS]
        gone = []
        for probe in late:
            worker, _ = self.probes.pop(probe)
            self._forget(worker)
            ray.kill(worker)
            gone.append(worker)
        return gone

    def _forget(self, worker: Any) -> None:
        self._tries.pop(id(worker), None)
        self._unproven.discard(id(worker))
