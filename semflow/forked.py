"""Independent pieces of work on more than one core: :func:`map_forked` shares a list between this
process and forked children (Linux).

    fits = map_forked(fit_one, regions, costs=[r.area for r in regions], processes=2)

For work that is many small numpy and OpenCV calls (the things layer's fits), threads do not help:
the GIL serialises them. A child is a fork of this process at the call: it sees everything as it is
(frames, flows, models) without copying it, takes items one at a time from a deal that all the
processes share (the most costly first) and writes each result, pickled, to a file in memory as soon as
it has it; when the deal is empty it says through a pipe how many it wrote. So the results are those
of the serial loop ``[fn(x) for x in items]``, in the same order, as long as ``fn`` depends only on its
item and on what does not change during the call. (This process reads them without waiting for the
child to end: a forked child's exit, the release of its copy of this process's memory, takes 10-20 ms.)

Whatever goes wrong in a child is made good here, by computing the items it took and did not bring
back in this process: an exception (it then surfaces here, with its own traceback), a crash or a kill,
a result that cannot be read, or no answer within ``patience`` times the time this process took for
its own share (at least ``min_wait`` seconds). A child that did not answer in time is killed, and
forking is off for the rest of the process: a hang is the sign of a library that does not survive a
fork (OpenCV's thread pool does not, when a child changes its number of threads; the children here
change none of OpenCV's settings; torch's thread count is set to one in every forked child, by the hook
``import semflow`` registers, and the children run no torch). While the processes run, OpenCV uses the CPUs' share of each (one thread each
for two processes on two cores: each call is small, and two pools of two threads on two cores only
took turns, 4-7 % of the things stage at 1024x436); the children start with that setting.

Calls may overlap, in a host's threads: the last to end restores OpenCV's threads, and the children
each call left behind are waited for once. A child does not run the host's Python signal handlers: a
signal that the host handles takes its default action there (a SIGTERM to the process group ends the
child, and its items are redone here).

Only on Linux (elsewhere, and inside a child, the loop runs in this process). :func:`set_process_limit`
caps the processes for the whole process (``semflow batch``'s workers own one CPU each).
"""

from __future__ import annotations

import mmap
import os
import pickle
import select
import signal
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

MAX_ITEMS = 16_000
"""More items than this run in this process: the deal (4 bytes an item) must fit in a pipe's 64 KiB."""

_limit: int | None = None
_off = False  # set after a child did not answer in time
_in_child = False
_exiting: list[int] = []  # children that sent their results and may still be ending: reaped later
# map_forked may run in several threads at once (a host's threads, each with its own semflow call):
_exiting_lock = threading.Lock()  # one thread at a time waits for the children in _exiting
_threads_lock = threading.Lock()  # guards OpenCV's thread count and the two below
_threads_users = 0  # calls between _lower_threads and _restore_threads
_threads_saved = 0  # OpenCV's thread count before the first of them: the last restores it
_fork_lock = threading.Lock()  # one fork at a time


def set_process_limit(processes: int | None) -> None:
    """Cap the processes any :func:`map_forked` call of this process uses (None: no cap; 1: no forks)."""
    global _limit
    if processes is not None and processes < 1:
        raise ValueError(f"set_process_limit: processes must be at least 1, not {processes}")
    _limit = processes


def fork_available() -> bool:
    """Whether :func:`map_forked` may fork here: Linux, not inside one of its children, not turned off."""
    return sys.platform.startswith("linux") and hasattr(os, "fork") and not _off and not _in_child


def map_forked(fn: Callable[[T], R], items: Sequence[T], *, costs: Sequence[float], processes: int = 2,
               patience: float = 4.0, min_wait: float = 30.0) -> list[R]:
    """``[fn(x) for x in items]``, shared between this process and ``processes - 1`` forked children
    (module docstring: when it forks, and what it does when a child fails).

    The items are dealt one at a time, most costly first (``costs``: any estimate), to whichever
    process is free: a poor estimate costs balance only at the end.
    """
    if len(costs) != len(items):
        raise ValueError(f"map_forked: {len(items)} items but {len(costs)} costs")
    processes = min(processes, len(items), _limit or processes)
    if processes <= 1 or not fork_available() or len(items) > MAX_ITEMS:
        return [fn(x) for x in items]
    order = sorted(range(len(items)), key=lambda i: -float(costs[i]))
    # The deal: every index, 4 bytes each, in a pipe that every process reads from (a read of 4 bytes
    # takes one whole index: the kernel serialises reads of a pipe). Nothing to unlock if a child dies.
    deal_read, deal_write = os.pipe()
    os.write(deal_write, b"".join(i.to_bytes(4, "little") for i in order))
    os.close(deal_write)
    _reap_exited()
    # Per child: (pid, read end of the pipe its count comes through, the file its results are written to).
    children: list[tuple[int, int, int]] = []
    answered: set[int] = set()  # children that sent their count: they are ending, reaped later
    results: dict[int, Any] = {}
    lowered = False
    try:
        _lower_threads(processes)
        lowered = True  # (only then is there something to restore: an interrupt before leaves the count right)
        for _ in range(processes - 1):
            child = _fork(fn, items, deal_read, [fd for _, *fds in children for fd in fds])
            if child is None:  # no fork to be had (a process limit, memory): fewer processes share the items
                break
            children.append(child)
        started = time.monotonic()
        for i in _dealt(deal_read):
            results[i] = fn(items[i])
        deadline = time.monotonic() + max(min_wait, patience * (time.monotonic() - started))
        for pid, fd, results_fd in children:
            got = _collect(pid, fd, results_fd, deadline)
            if got is not None:
                answered.add(pid)
                results.update(got)
        for i in range(len(items)):  # what a child took and did not bring back
            if i not in results:
                results[i] = fn(items[i])
    finally:
        if lowered:
            _restore_threads()
        _close(deal_read)
        for pid, fd, results_fd in children:
            _close(fd)
            _close(results_fd)
            if pid not in answered:
                _reap(pid)
        with _exiting_lock:
            _exiting.extend(answered)
    return [results[i] for i in range(len(items))]


def _lower_threads(processes: int) -> None:
    """Set OpenCV's threads to the CPUs' share of each process. Calls that overlap (in several threads)
    count themselves in: only the first saves the host's setting, so the last can restore it."""
    global _threads_users, _threads_saved
    import cv2  # (here: `semflow --help` imports this module, not OpenCV)

    with _threads_lock:
        if _threads_users == 0:
            _threads_saved = cv2.getNumThreads()
        cv2.setNumThreads(max(1, min(_threads_saved, _cpus() // processes)))
        _threads_users += 1  # (last: a call that raised above has nothing to restore)


def _restore_threads() -> None:
    """The other half of :func:`_lower_threads`: the last call to leave restores the host's setting."""
    global _threads_users
    import cv2

    with _threads_lock:
        _threads_users -= 1
        if _threads_users == 0:
            cv2.setNumThreads(_threads_saved)


def _cpus() -> int:
    """The CPUs this process may run on: those it is bound to, or as many as :func:`set_process_limit`
    allows when fewer (a ``semflow batch`` worker owns that many of a machine's CPUs, unbound)."""
    bound = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(bound, _limit) if _limit else bound


def _dealt(deal_fd: int):
    """The indices this process takes from the deal, one at a time, until none is left."""
    while True:
        token = os.read(deal_fd, 4)
        if len(token) < 4:
            return
        yield int.from_bytes(token, "little")


def _fork(fn: Callable, items: Sequence, deal_fd: int, other_fds: list[int]) -> tuple[int, int, int] | None:
    """Fork a child that takes items from the deal and computes ``fn`` on them until none is left,
    appending each (index, result), pickled, to a file in memory, then writes how many it appended to
    a pipe (those it finished, when ``fn`` raises); returns (its pid, the pipe's read end, the file), or
    None when the system refuses the fork."""
    global _in_child
    results_fd = _memory_file()
    read_fd, write_fd = os.pipe()
    # The host's Python signal handlers (a SIGTERM handler, say) are not for the child: it takes the
    # default action instead (a signal to the process group ends it, and its items are redone here).
    # They are blocked across the fork, so that none reaches the child before its handlers are reset.
    handled = [sig for sig in signal.valid_signals() if callable(_handler(sig))]
    pid = -1
    with _fork_lock:  # (catch_warnings swaps the process's filters: one thread at a time)
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, handled)  # (this thread's mask: any thread may)
        try:
            with warnings.catch_warnings():  # Python 3.12+ warns of forking a process that has threads
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
        except OSError:
            pass
        finally:
            if pid:  # this process, forked or not: its signals as they were
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    if pid < 0:
        for fd in (results_fd, read_fd, write_fd):
            _close(fd)
        return None
    if pid:
        os.close(write_fd)
        return pid, read_fd, results_fd
    # The child: never returns into the caller's frames; leaves by os._exit (no atexit, no buffers flushed).
    status = 1
    try:
        _in_child = True
        for sig in handled:  # (the forking thread is the child's main thread: signal.signal works here)
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(read_fd)
        for fd in other_fds:  # the earlier children's pipes and files
            _close(fd)
        count = 0
        try:
            for i in _dealt(deal_fd):
                record = pickle.dumps((i, fn(items[i])), protocol=pickle.HIGHEST_PROTOCOL)
                _write_all(results_fd, len(record).to_bytes(8, "little"))
                _write_all(results_fd, record)
                count += 1
        except Exception:  # noqa: BLE001 - the parent redoes the item, and raises there
            pass
        _write_all(write_fd, count.to_bytes(8, "little"))
        os.close(write_fd)  # (the parent reads on now, while this process ends)
        status = 0
    except BaseException:  # noqa: BLE001 - whatever it was, the parent redoes this child's items
        pass
    finally:
        os._exit(status)


def _handler(sig: int) -> Any:
    """The signal's Python handler (a callable), SIG_DFL or SIG_IGN, or None (not set from Python)."""
    try:
        return signal.getsignal(sig)
    except (OSError, ValueError):
        return None


def _memory_file() -> int:
    """A file descriptor of an anonymous file in memory (a memfd; elsewhere a temporary file that has
    no name, or loses it at once: no other process can open it)."""
    if hasattr(os, "memfd_create"):
        try:
            return os.memfd_create("semflow-forked", os.MFD_CLOEXEC)
        except OSError:  # (a sandbox may refuse it)
            pass
    with tempfile.TemporaryFile() as unnamed:
        return os.dup(unnamed.fileno())


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _collect(pid: int, fd: int, results_fd: int, deadline: float) -> dict[int, Any] | None:
    """The child's results by index ({} when they cannot be read), or None when it did not send its
    count: it died, or did not answer by ``deadline`` (then it is killed and forking turned off)."""
    global _off
    count = b""
    poller = select.poll()  # (not select.select: it fails on descriptors above 1023)
    poller.register(fd, select.POLLIN | select.POLLHUP)
    while len(count) < 8:
        ready = poller.poll(max(0.0, deadline - time.monotonic()) * 1000.0)
        if not ready:
            _off = True
            _kill(pid)
            return None
        chunk = os.read(fd, 8 - len(count))
        if not chunk:  # it ended without saying how many: it crashed, or a signal ended it
            return None
        count += chunk
    results: dict[int, Any] = {}
    records = int.from_bytes(count, "little")
    if records == 0:
        return results
    try:
        with mmap.mmap(results_fd, os.fstat(results_fd).st_size, access=mmap.ACCESS_READ) as data:
            at = 0
            for _ in range(records):
                size = int.from_bytes(data[at:at + 8], "little")
                # Bytes our own child pickled into a file only it and this process hold: not a user's file.
                i, result = pickle.loads(data[at + 8:at + 8 + size])
                results[i] = result
                at += 8 + size
    except Exception:  # noqa: BLE001 - a truncated result: its items are redone
        return {}
    return results


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    """Wait for a child that did not send its results (one that did is ending: :func:`_reap_exited`
    waits for it later). One that still runs is killed first."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == 0:
            _kill(pid)
            os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _reap_exited() -> None:
    """Wait for the children that sent their results, as far as they have ended. Under a lock: two
    threads must not wait for one child (the second would find no such child)."""
    with _exiting_lock:
        _exiting[:] = [pid for pid in _exiting if not _ended(pid)]


def _ended(pid: int) -> bool:
    """Whether the child has ended and was waited for (now, or by someone else: the host, say)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    except OSError:  # (EINTR and the like: try again next time)
        return False
    return done != 0


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
