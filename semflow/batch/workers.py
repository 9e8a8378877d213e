"""The Ray actors of a batch: each is a :class:`~semflow.batch.work.ClipWorker`, holding one built method.

A worker process that dies (the OOM killer, a node lost) is restarted by Ray :data:`WORKER_RESTARTS` times;
one that dies again is dead for good, and the batch puts a new worker in its place as long as the dead one
had built its method (a worker that dies while building it would die again: it is not replaced, and at the
start of a batch it stops the batch with a one-line error instead of being restarted for good).
"""

from __future__ import annotations

from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError

from semflow.batch.signals import interruptible
from semflow.batch.work import ClipWorker
from semflow.errors import SemflowError

WORKER_RESTARTS = 1
"""How many times Ray restarts a worker process that died before it is dead for good."""
PROBES = 300
"""How many times (0.2 s apart) the driver asks a worker that died whether Ray has restarted it."""


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
