"""semflow.forked: a list shared between this process and forked children, the serial loop's results."""

from __future__ import annotations

import os
import sys
import time

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


@linux_only
def test_the_results_are_the_serial_loops_in_order_and_every_process_computed_some() -> None:
    items = list(range(18))
    out = forked.map_forked(square_and_pid, items, costs=[float(x % 5) for x in items], processes=3)
    assert [value for value, _ in out] == [x * x for x in items]
    pids = {pid for _, pid in out}
    assert os.getpid() in pids and len(pids) == 3


def big_result(x: int) -> tuple[np.ndarray, int]:
    time.sleep(0.02)
    return np.full((400, 400, 2), x, np.float32), os.getpid()  # 1.25 MB each: 20 times a pipe's buffer


@linux_only
def test_results_larger_than_a_pipe_come_back_whole_and_every_child_is_reaped() -> None:
    children = set()
    for _ in range(2):  # (the second call reaps the first call's children, which ended meanwhile)
        out = forked.map_forked(big_result, list(range(8)), costs=[1] * 8, processes=3)
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
def test_results_come_back_through_a_temporary_file_where_memfd_is_refused(monkeypatch) -> None:
    def refuse(*args: object) -> int:
        raise PermissionError(1, "Operation not permitted")  # what a sandbox's seccomp filter says

    monkeypatch.setattr(os, "memfd_create", refuse)
    out = forked.map_forked(big_result, list(range(6)), costs=[1] * 6, processes=2)
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
