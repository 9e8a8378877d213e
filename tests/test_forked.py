"""semflow.forked: a list shared between this process and forked children, the serial loop's results."""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
import time
import warnings
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pytest

from semflow import forked
from semflow.layers.context import PairContext
from semflow.layers.things import ThingParams, fit_things
from semflow.methods import get_method
from semflow.segmentation.regions import Box, Region
from semflow.synthetic_hard import make_hard_scene

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="map_forked forks on Linux only")


@pytest.fixture(autouse=True)
def fresh_module_state(monkeypatch):
    # A test that makes a child hang turns forking off for the process; each test starts with it on.
    monkeypatch.setattr(forked, "_off", False)
    monkeypatch.setattr(forked, "_limit", None)


def square_and_pid(x: int) -> tuple[int, int]:
    time.sleep(0.02)  # (long enough that every process takes some of the items)
    return x * x, os.getpid()


def meet(marks: Path, processes: int) -> None:
    """Each process's first item waits (30 s at most) until ``processes`` processes have each taken one, so
    that every process computes some whatever the machine's load (a child forked late on a busy machine found
    the items all taken)."""
    mark = marks / str(os.getpid())
    if mark.exists():
        return
    mark.touch()
    deadline = time.monotonic() + 30
    while len(os.listdir(marks)) < processes and time.monotonic() < deadline:
        time.sleep(0.002)


def square_and_pid_met(marks: Path, processes: int, x: int) -> tuple[int, int]:
    meet(marks, processes)
    return square_and_pid(x)


@linux_only
def test_the_results_are_the_serial_loops_in_order_and_every_process_computed_some(tmp_path: Path) -> None:
    items = list(range(18))
    out = forked.map_forked(partial(square_and_pid_met, tmp_path, 3), items, costs=[float(x % 5) for x in items], processes=3)
    assert [value for value, _ in out] == [x * x for x in items]
    pids = {pid for _, pid in out}
    assert os.getpid() in pids and len(pids) == 3


def big_result(x: int) -> tuple[np.ndarray, int]:
    time.sleep(0.02)
    return np.full((400, 400, 2), x, np.float32), os.getpid()  # 1.25 MB each: 20 times a pipe's buffer


def big_result_met(marks: Path, processes: int, x: int) -> tuple[np.ndarray, int]:
    meet(marks, processes)
    return big_result(x)


@linux_only
def test_results_larger_than_a_pipe_come_back_whole_and_every_child_is_reaped(tmp_path: Path) -> None:
    children = set()
    for call in range(2):  # (the second call reaps the first call's children, which ended meanwhile)
        marks = tmp_path / str(call)
        marks.mkdir()
        out = forked.map_forked(partial(big_result_met, marks, 3), list(range(8)), costs=[1] * 8, processes=3)
        assert len({pid for _, pid in out}) == 3
        for x, (array, _) in enumerate(out):
            assert array.shape == (400, 400, 2) and (array == x).all()
        children |= {pid for _, pid in out} - {os.getpid()}
    time.sleep(0.5)
    forked._reap_exited()
    assert forked._exiting == [] and len(children) == 4
    for pid in children:  # each was waited for: none is left, not even as a zombie
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def opencv_threads(x: int) -> tuple[int, int]:
    time.sleep(0.02)
    return cv2.getNumThreads(), os.getpid()


@linux_only
def test_opencv_threads_are_the_cpus_share_of_each_process_while_they_run_and_restored_after(monkeypatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))  # a 16-CPU machine
    before = cv2.getNumThreads()
    cv2.setNumThreads(12)
    try:
        out = forked.map_forked(opencv_threads, list(range(6)), costs=[1] * 6, processes=2)
        assert {threads for threads, _ in out} == {8} and len({pid for _, pid in out}) == 2
        assert cv2.getNumThreads() == 12
        forked.set_process_limit(2)  # a batch worker that owns 2 of them: one thread for each of its 2 processes
        out = forked.map_forked(opencv_threads, list(range(6)), costs=[1] * 6, processes=2)
        assert {threads for threads, _ in out} == {1} and len({pid for _, pid in out}) == 2
        assert cv2.getNumThreads() == 12
    finally:
        cv2.setNumThreads(before)
        forked.set_process_limit(None)


@linux_only
def test_a_refused_fork_leaves_the_items_to_this_process(monkeypatch) -> None:
    def refuse() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")  # what fork says at a process limit

    monkeypatch.setattr(os, "fork", refuse)
    out = forked.map_forked(square_and_pid, [1, 2, 3], costs=[1, 1, 1], processes=2)
    assert out == [(1, os.getpid()), (4, os.getpid()), (9, os.getpid())]


@linux_only
def test_results_come_back_through_a_temporary_file_where_memfd_is_refused(monkeypatch, tmp_path: Path) -> None:
    def refuse(*args: object) -> int:
        raise PermissionError(1, "Operation not permitted")  # what a sandbox's seccomp filter says

    monkeypatch.setattr(os, "memfd_create", refuse)
    out = forked.map_forked(partial(big_result_met, tmp_path, 2), list(range(6)), costs=[1] * 6, processes=2)
    assert len({pid for _, pid in out}) == 2
    for x, (array, _) in enumerate(out):
        assert (array == x).all()


@linux_only
def test_one_process_a_limit_of_one_or_too_many_items_fork_nothing(monkeypatch) -> None:
    assert {pid for _, pid in forked.map_forked(square_and_pid, [1, 2, 3], costs=[1, 1, 1], processes=1)} \
        == {os.getpid()}
    forked.set_process_limit(1)
    assert {pid for _, pid in forked.map_forked(square_and_pid, [1, 2, 3], costs=[1, 1, 1], processes=4)} \
        == {os.getpid()}
    with pytest.raises(ValueError, match="at least 1"):
        forked.set_process_limit(0)
    forked.set_process_limit(None)
    monkeypatch.setattr(forked, "MAX_ITEMS", 2)  # a deal that would not fit in the pipe: no fork either
    assert {pid for _, pid in forked.map_forked(square_and_pid, [1, 2, 3], costs=[1, 1, 1])} == {os.getpid()}
    with pytest.raises(ValueError, match="3 items but 2 costs"):
        forked.map_forked(square_and_pid, [1, 2, 3], costs=[1, 1])


@linux_only
def test_an_exception_is_raised_here_whichever_process_met_it() -> None:
    parent = os.getpid()

    def fails_on_zero(x: int) -> int:
        if os.getpid() == parent:
            time.sleep(0.05)  # the child takes most items, the one that fails among them, most often
        if x == 0:
            raise KeyError(f"item zero (in {'the parent' if os.getpid() == parent else 'a child'})")
        return x

    with pytest.raises(KeyError, match="in the parent"):
        forked.map_forked(fails_on_zero, [3, 2, 1, 0], costs=[4, 3, 2, 1], processes=2)


@linux_only
def test_what_a_dead_child_took_is_redone_here() -> None:
    parent = os.getpid()

    def dies_in_a_child(x: int) -> tuple[int, int]:
        if os.getpid() != parent:
            os._exit(3)
        time.sleep(0.02)
        return x + 1, os.getpid()

    out = forked.map_forked(dies_in_a_child, [1, 2, 3, 4], costs=[1, 1, 1, 1], processes=2)
    assert out == [(2, parent), (3, parent), (4, parent), (5, parent)]
    assert forked.fork_available()  # a crash is not a hang: forking stays on


@linux_only
def test_a_child_that_hangs_is_killed_its_item_redone_and_forking_turned_off() -> None:
    parent = os.getpid()

    def hangs_in_a_child(x: int) -> int:
        if os.getpid() != parent:
            time.sleep(60)
        time.sleep(0.05)  # (the child takes an item before the parent has taken them all)
        return -x

    started = time.monotonic()
    out = forked.map_forked(hangs_in_a_child, [1, 2, 3, 4], costs=[1, 1, 1, 1], processes=2, patience=1.0,
                            min_wait=0.5)
    assert out == [-1, -2, -3, -4]
    assert time.monotonic() - started < 10
    assert not forked.fork_available()
    assert {pid for _, pid in forked.map_forked(square_and_pid, [1, 2], costs=[1, 1])} == {parent}


def in_a_thread(fn, *args) -> tuple[threading.Thread, list[BaseException]]:
    """``fn(*args)`` started in a thread of its own; what it raised is in the list once it is joined."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn(*args)
        except BaseException as error:  # noqa: BLE001 - the test asserts there is none
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


@linux_only
def test_calls_that_overlap_in_two_threads_leave_the_hosts_opencv_threads_as_they_were(monkeypatch) -> None:
    # The first call lowers the threads, the second starts while it runs, the first ends first: the
    # second must not take the first's lowered setting for the host's (it used to, and restored it last).
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))  # a 16-CPU machine: 8 each
    monkeypatch.setattr(forked, "_fork", lambda *args: None)  # no children: each call's items run in its thread
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, int] = {}

    def first(x: int) -> int:
        first_in.set()
        assert second_in.wait(5)
        return x

    def second(x: int) -> int:
        second_in.set()
        assert first_out.wait(5)
        seen["second, after the first ended"] = cv2.getNumThreads()
        return x

    def first_call() -> None:
        try:
            assert forked.map_forked(first, [1, 2], costs=[1, 1], processes=2) == [1, 2]
        finally:
            first_out.set()

    before = cv2.getNumThreads()
    cv2.setNumThreads(12)
    try:
        a, a_errors = in_a_thread(first_call)
        assert first_in.wait(5)
        b, b_errors = in_a_thread(lambda: forked.map_forked(second, [1, 2], costs=[1, 1], processes=2))
        a.join(10)
        b.join(10)
        assert not a_errors and not b_errors
        assert seen == {"second, after the first ended": 8}  # still the second's share while it runs
        assert cv2.getNumThreads() == 12
    finally:
        cv2.setNumThreads(before)


@linux_only
@pytest.mark.parametrize("from_a_thread", [False, True], ids=["main thread", "worker thread"])
def test_the_hosts_signal_handlers_do_not_run_in_a_child_and_what_a_signal_ends_is_redone_here(
        tmp_path, from_a_thread: bool) -> None:
    parent = os.getpid()
    log = tmp_path / "handled"
    log.touch()

    def host_handler(signum: int, frame: object) -> None:
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")

    started_read, started_write = os.pipe()  # a child says through it that it took an item
    waited: list[int] = []

    def terminated_in_a_child(x: int) -> tuple[int, int]:
        if os.getpid() != parent:
            os.write(started_write, b"c")
            os.kill(os.getpid(), signal.SIGTERM)  # what a signal to the process group does to a child
            time.sleep(0.5)  # (the host's handler, had it run, would return here and the child go on)
        elif not waited:  # the parent takes no more items until a child has taken one
            waited.append(len(select.select([started_read], [], [], 10)[0]))
        return x * 10, os.getpid()

    out: dict[str, object] = {}

    def call() -> None:
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        out["results"] = forked.map_forked(terminated_in_a_child, [1, 2, 3], costs=[3, 2, 1], processes=2)
        assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == mask  # (this thread's signals unblocked)

    previous = signal.signal(signal.SIGTERM, host_handler)
    try:
        if from_a_thread:
            thread, errors = in_a_thread(call)
            thread.join(20)
            assert not errors
        else:
            call()
        assert waited == [1] and os.read(started_read, 16) == b"c"  # a child computed (from a worker thread too)
        assert log.read_text() == ""  # the host's handler did not run in the child
        assert out["results"] == [(10, parent), (20, parent), (30, parent)]  # the child's item was redone here
        assert signal.getsignal(signal.SIGTERM) is host_handler  # and is still this process's
        os.kill(parent, signal.SIGTERM)
        for _ in range(500):
            if log.read_text():
                break
            time.sleep(0.01)
        assert log.read_text() == f"{parent}\n"
        assert forked.fork_available()  # a child ended by a signal is not a hang: forking stays on
    finally:
        signal.signal(signal.SIGTERM, previous)
        os.close(started_read)
        os.close(started_write)


@linux_only
def test_two_threads_that_reap_at_once_wait_for_each_child_once_and_raise_nothing(monkeypatch) -> None:
    with warnings.catch_warnings():  # Python 3.12+ warns of forking a process that has threads
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # it has ended (and is still there to be waited for)
    monkeypatch.setattr(forked, "_exiting", [pid])
    both = threading.Barrier(2)
    real_waitpid = os.waitpid

    def waitpid_together(*args: int) -> tuple[int, int]:
        try:
            both.wait(timeout=1.0)  # both threads wait for the child at once, where they can
        except threading.BrokenBarrierError:
            pass
        return real_waitpid(*args)

    monkeypatch.setattr(os, "waitpid", waitpid_together)
    threads = [in_a_thread(forked._reap_exited) for _ in range(2)]
    for thread, _ in threads:
        thread.join(5)
    assert [error for _, errors in threads for error in errors] == []
    assert forked._exiting == []
    with pytest.raises(ChildProcessError):
        real_waitpid(pid, os.WNOHANG)


def plus_one(x: int) -> int:
    return x + 1


@linux_only
def test_calls_from_several_threads_at_once_give_their_results_raise_nothing_and_leave_nothing_behind() -> None:
    threads_before = cv2.getNumThreads()
    children = set()

    def calls() -> None:
        for _ in range(15):
            out = forked.map_forked(square_and_pid, list(range(4)), costs=[1] * 4, processes=3, min_wait=10)
            assert [value for value, _ in out] == [0, 1, 4, 9]
            children.update(pid for _, pid in out)

    threads = [in_a_thread(calls) for _ in range(3)]
    for thread, _ in threads:
        thread.join(60)
    assert [error for _, errors in threads for error in errors] == []
    assert cv2.getNumThreads() == threads_before and forked.fork_available()
    time.sleep(0.3)
    forked._reap_exited()
    assert forked._exiting == [] and len(children) > 1
    for pid in children - {os.getpid()}:  # each was waited for once: none is left, not even as a zombie
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def test_a_bad_process_count_is_refused_when_the_params_are_made() -> None:
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="ThingParams.processes must be an integer of at least 1"):
            ThingParams(processes=bad)


@linux_only
def test_things_fitted_in_two_processes_are_the_things_fitted_in_one(monkeypatch) -> None:
    forks = []
    real_fork = forked._fork
    monkeypatch.setattr(forked, "_fork", lambda *a: forks.append(1) or real_fork(*a))
    scene = make_hard_scene(180, 240, seed=2, kind="street")
    h, w = scene.instances.shape
    instance_map = scene.instances.astype(np.int32)
    ids = [int(k) for k in np.unique(instance_map) if k > 0]
    regions = [Region(int(scene.labels[instance_map == k][0]), Box(0, h, 0, w), instance_map == k, id=k)
               for k in ids]
    baseline = get_method("dis-medium").estimate(scene.img1, scene.img2)
    ctx = PairContext.build(scene.img1, scene.img2, baseline.flow, baseline.confidence,
                            thing_pixels=instance_map > 0)
    one = fit_things(regions, instance_map, ctx, ThingParams(processes=1))
    assert not forks
    two = fit_things(regions, instance_map, ctx, ThingParams(processes=2, parallel_pixels=0))
    assert len(forks) == 1
    assert len(one) == len(two) >= 3 and sum(fit.accepted for fit in one) >= 2
    for a, b in zip(one, two):
        assert a.region.id == b.region.id and a.reason == b.reason and a.accepted == b.accepted
        np.testing.assert_array_equal(a.flow, b.flow)
        np.testing.assert_array_equal(a.foreground, b.foreground)
