"""Independent pieces of work on more than one core: :func:`map_forked` shares a list between this
process and forked children (Linux).

    fits = map_forked(fit_one, regions, costs=[r.area for r in regions], processes=2)

For work that is many small numpy and OpenCV calls (the things layer's fits), threads do not help:
the GIL serialises them. A child is a fork of this process at the call: it sees everything as it is
(frames, flows, models) without copying it, computes its share of the items and sends the results back
pickled through a pipe. So the results are those of the serial loop ``[fn(x) for x in items]``, in the
same order, as long as ``fn`` depends only on its item and on what does not change during the call.

Whatever goes wrong in a child is made good here, by computing its items in this process: an exception
(it then surfaces here, with its own traceback), a crash or a kill, a result that cannot be read, or no
answer within ``patience`` times the time this process took for its own share (at least ``min_wait``
seconds). A child that did not answer in time is killed, and forking is off for the rest of the process:
a hang is the sign of a library that does not survive a fork (OpenCV's thread pool does not, when a
child changes its number of threads; the children here change no settings).

Only on Linux (elsewhere, and inside a child, the loop runs in this process). :func:`set_process_limit`
caps the processes for the whole process (``semflow batch``'s workers own one CPU each).
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_limit: int | None = None
_off = False  # set after a child did not answer in time
_in_child = False


def set_process_limit(processes: int | None) -> None:
    """Cap the processes any :func:`map_forked` call of this process uses (None: no cap; 1: no forks)."""
    global _limit
    if processes is not None and processes < 1:
        raise ValueError(f"set_process_limit: processes must be at least 1, not {processes}")
    _limit = processes


def fork_available() -> bool:
    """Whether :func:`map_forked` may fork here: Linux, not inside one of its children, not turned off."""
    return sys.platform.startswith("linux") and hasattr(os, "fork") and not _off and not _in_child


def share_by_cost(costs: Sequence[float], parts: int) -> list[list[int]]:
    """Indices of ``costs`` in ``parts`` lists of about equal total cost (largest first, each to the
    lightest list so far); each list in increasing index order."""
    shares: list[list[int]] = [[] for _ in range(parts)]
    load = [0.0] * parts
    for i in sorted(range(len(costs)), key=lambda i: -costs[i]):
        k = load.index(min(load))
        shares[k].append(i)
        load[k] += float(costs[i])
    return [sorted(s) for s in shares]


def map_forked(fn: Callable[[T], R], items: Sequence[T], *, costs: Sequence[float], processes: int = 2,
               patience: float = 4.0, min_wait: float = 5.0) -> list[R]:
    """``[fn(x) for x in items]``, the items shared by ``costs`` between this process and ``processes - 1``
    forked children (module docstring: when it forks, and what it does when a child fails)."""
    if len(costs) != len(items):
        raise ValueError(f"map_forked: {len(items)} items but {len(costs)} costs")
    processes = min(processes, len(items), _limit or processes)
    if processes <= 1 or not fork_available():
        return [fn(x) for x in items]
    shares = share_by_cost(costs, processes)
    children: list[tuple[int, int, list[int]]] = []  # (pid, read end of its pipe, its items)
    results: dict[int, Any] = {}
    try:
        for share in shares[1:]:
            children.append(_fork(fn, items, share, [fd for _, fd, _ in children]))
        started = time.monotonic()
        for i in shares[0]:
            results[i] = fn(items[i])
        deadline = time.monotonic() + max(min_wait, patience * (time.monotonic() - started))
        for pid, fd, share in children:
            got = _collect(pid, fd, deadline)
            if got is None or len(got) != len(share):
                got = [fn(items[i]) for i in share]
            results.update(zip(share, got))
    finally:
        for pid, fd, _ in children:
            _close(fd)
            _reap(pid)
    return [results[i] for i in range(len(items))]


def _fork(fn: Callable, items: Sequence, share: list[int], other_fds: list[int]) -> tuple[int, int, list[int]]:
    """Fork a child that computes ``fn`` on ``items[i]`` for i in ``share`` and writes the results,
    pickled, to a pipe; returns (its pid, the pipe's read end, ``share``)."""
    global _in_child
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():  # Python 3.12+ warns of forking a process that has threads
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid:
        os.close(write_fd)
        return pid, read_fd, share
    # The child: never returns into the caller's frames; leaves by os._exit (no atexit, no buffers flushed).
    status = 1
    try:
        _in_child = True
        os.close(read_fd)
        for fd in other_fds:  # the read ends of the earlier children's pipes
            _close(fd)
        payload = pickle.dumps([fn(items[i]) for i in share], protocol=pickle.HIGHEST_PROTOCOL)
        view = memoryview(payload)
        while view:
            view = view[os.write(write_fd, view):]
        status = 0
    except BaseException:  # noqa: BLE001 - the parent redoes this share, and raises there
        pass
    finally:
        os._exit(status)


def _collect(pid: int, fd: int, deadline: float) -> list | None:
    """The child's results, or None when it failed or did not answer by ``deadline`` (then it is killed
    and forking turned off)."""
    global _off
    chunks = []
    while True:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(0.0, left))
        if not ready:
            _off = True
            _kill(pid)
            return None
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        return None
    try:
        return pickle.loads(b"".join(chunks))  # our own child's bytes, written above
    except Exception:  # noqa: BLE001 - a truncated result: the share is redone
        return None


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    """Wait for the child unless it was waited for already (killing it first if it still runs)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == 0:
            _kill(pid)
            os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
