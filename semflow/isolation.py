"""Run a flow method in a child process of its own, so that the memory it needs is measured alone.

``semflow compare`` runs several methods on the same samples. Measured in one process, a method's
peak memory included whatever the methods before it left behind (dis-medium: 892 MB after discrete,
85 MB alone). :class:`IsolatedMethod` builds the method in a fresh child process (``spawn``: nothing
inherited from the parent) and runs each pair there; the peak it reports is that child's resident
memory: Python, the libraries the method imports, its model and its working memory, and nothing of
any other method.

The child ignores Ctrl-C (it is born with SIGINT blocked, and ignores it once it runs): the terminal
sends SIGINT to the whole process group, and the parent, which handles it, stops its children itself.
Leaving a :class:`IsolatedMethod` because of an exception (Ctrl-C, SIGTERM turned into an exception,
an error) ends the child at once, even in the middle of a pair; a child whose parent died exits within
:data:`PARENT_CHECK_SECONDS`.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import signal
import threading
import time
from typing import Any

import numpy as np

from semflow.baseline.base import FlowResult
from semflow.errors import ResourceError, SemflowError
from semflow.io.native import own_native_output
from semflow.limits import limits_in_force, thread_refusal
from semflow.memory import PeakMemory

_METHOD: Any = None  # the method, in the child process
PARENT_CHECK_SECONDS = 1.0
"""How often the child looks whether its parent is still there."""


def _leave_with_parent(parent: int) -> None:
    """In the child: ignore Ctrl-C (the parent stops this process) and exit once the parent process
    ``parent`` is gone. A parent killed by SIGTERM (or SIGKILL) never closes its pool, and the child,
    holding a method and its memory, would live on."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])  # (ignored now; blocked since its start)
    own_native_output()  # (this process is semflow's: decoders' lines are captured, as in the CLI)
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(1)

    try:
        threading.Thread(target=watch, name="semflow-parent-watch", daemon=True).start()
    except RuntimeError:  # "can't start new thread" (ulimit -u, -v): the pool broke, said "killed, perhaps for
        pass  # memory"; the method runs unwatched (a parent that dies by SIGKILL leaves it to finish its pair)


def _estimate(name: str, options: dict[str, Any], img1: np.ndarray, img2: np.ndarray,
              labels: np.ndarray | None, index: int | None = None) -> tuple[FlowResult, float, float]:
    global _METHOD
    with PeakMemory() as memory:
        if _METHOD is None:  # built on the first call, so that its errors come back like any other
            from semflow.methods import get_method

            _METHOD = get_method(name, **options)
        if index is not None and hasattr(_METHOD, "seek"):  # (a method reading a file per pair: which pair)
            _METHOD.seek(index)
        start = time.perf_counter()
        result = _METHOD.estimate(img1, img2, labels=labels)
        seconds = time.perf_counter() - start
    return result, seconds, memory.peak_mb


class IsolatedMethod:
    """The flow method ``name`` built with ``options`` in a child process; close it when done (or use
    it as a context manager). Errors the method raises (:class:`SemflowError`) reach the caller as they
    are; a child that dies (killed for memory) becomes a one-line :class:`SemflowError`."""

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        self.name = name
        self.options = options
        self._pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                                            initializer=_leave_with_parent, initargs=(os.getpid(),))

    def estimate(self, img1: np.ndarray, img2: np.ndarray, labels: np.ndarray | None = None,
                 index: int | None = None) -> tuple[FlowResult, float, float]:
        """``(result, seconds, peak MB of the child process)`` for one pair; ``index``: which pair it is, for a
        method that reads given files per pair (``seek``: given flows or masks; without it, pairs in turn)."""
        if refused := thread_refusal(3):  # (ulimit -u: the pool's feeder thread died unstarted, and the
            raise ResourceError(f"method {self.name}: {refused}")  # command waited for good)
        try:
            return self._submit(img1, img2, labels, index).result()
        except concurrent.futures.process.BrokenProcessPool:
            limits = limits_in_force("RLIMIT_NPROC", "RLIMIT_AS")  # (OpenMP's threads: libgomp exits the child)
            why = f"killed, perhaps for memory, or by a limit in force: {limits}" if limits else \
                "killed, perhaps for memory"
            raise SemflowError(f"method {self.name} stopped in its process ({why});"
                               " try fewer or smaller samples") from None

    def _submit(self, *args: Any) -> concurrent.futures.Future:
        """Submit a pair; the pool starts its child on the first. The child is started with SIGINT
        blocked (a signal mask outlives exec): a Ctrl-C while it starts up, before it can ignore the
        signal, would end it with a traceback. In this process a SIGINT then waits, and is not lost."""
        if threading.current_thread() is not threading.main_thread():
            return self._pool.submit(_estimate, self.name, self.options, *args)
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT])
        try:
            return self._pool.submit(_estimate, self.name, self.options, *args)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def close(self, *, stop: bool = False) -> None:
        """Shut the child down; with ``stop`` end it at once, in the middle of a pair if need be."""
        if stop:
            for process in list((self._pool._processes or {}).values()):
                process.terminate()  # SIGTERM: the child has no handler for it, and ends without a word
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> IsolatedMethod:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.close(stop=exc_type is not None)
