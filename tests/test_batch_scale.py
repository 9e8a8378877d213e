"""``semflow batch`` at scale (probe64, items 4 and 5): the driver keeps files open only for the clips being
worked on (it held each clip's folder locked, one descriptor a clip, from the start to the clip's end: past
the process's limit good clips failed as "not a readable video"), running out of descriptors is said as
such, and choosing the next task does not scan every clip (quadratic: 18.6 s of driver time for 10,000
clips), in the same order as before.

Most tests run the driver on a stand-in for Ray (:class:`FakeRay`: a task runs when it is sent, and tasks
come back in the order sent), so that they are quick and deterministic; the last runs a real local Ray."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import resource
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from semflow.batch import Batch, BatchOptions, Chunk, plan_chunks
from semflow.batch.clips import ClipState, open_clip
from semflow.batch.progress import BatchProgress
from semflow.batch.work import ClipWorker, Prepared
from semflow.errors import InputError, OutputError, SemflowError
from semflow.io.outputs import lock_folder
from semflow.methods import get_method
from semflow.pipeline import RunOptions, run_video
from semflow.runstore import WORK_DIR

ray = pytest.importorskip("ray")
from semflow.batch import runner, workers  # noqa: E402  (import Ray)

METHOD = "dis-ultrafast"


def options(**kwargs: Any) -> BatchOptions:
    return BatchOptions(**{"method": METHOD, "workers": 2, "progress": False, "chunk_pairs": 3, **kwargs})


def open_fds(into: Path | None = None) -> int:
    """The process's open files (``into``: those of files and folders below that folder)."""
    if into is None:
        return len(os.listdir("/proc/self/fd"))
    names = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            names.append(os.readlink(f"/proc/self/fd/{fd}"))
    return sum(name == str(into) or name.startswith(f"{into}/") for name in names)


# --- a stand-in for Ray ------------------------------------------------------------------------------


class Ref:
    def __init__(self, value: Any) -> None:
        self.value = value


class Remote:
    """A method of an actor: ``.remote(...)`` runs it at once."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def remote(self, *args: Any) -> Ref:
        return Ref(self.fn(*args))


class FakeWorker:
    """A worker whose tasks return what the driver expects of them, after ``on_task(kind, out, chunk)``."""

    def __init__(self, on_task: Any) -> None:
        def summary(out: Path) -> dict[str, Any]:
            return {"pairs": 2, "resumed_pairs": 0, "wall_seconds": {"total": 0.0}, "stage_seconds": {},
                    "max_flow_px": 1.0}

        def compute(path: Path, out: Path, options: Any, chunk: Chunk, warmup: int) -> dict[str, Any]:
            on_task("compute", Path(out), chunk)
            return {"computed": 1, "resumed": 0, "end": None, "stages": {}, "wall": 0.0}

        def finish(path: Path, out: Path, *args: Any) -> dict[str, Any]:
            on_task("finish", Path(out), None)
            return summary(out)

        def single(path: Path, out: Path, options: Any) -> dict[str, Any]:
            on_task("single", Path(out), None)
            return summary(out)

        self.pid, self.compute, self.finish, self.single = Remote(os.getpid), Remote(compute), Remote(finish), Remote(single)


class FakeActor:
    """``ray.remote(...)(ClipWorker)``: ``.remote(...)`` starts a worker."""

    def __init__(self, on_task: Any) -> None:
        self.on_task = on_task

    def remote(self, *args: Any) -> FakeWorker:
        return FakeWorker(self.on_task)


class FakeRay:
    """What the driver asks of Ray, answered in this process: each task runs when sent, ``wait`` gives the
    oldest task in flight back (the order a real cluster might finish them in, made deterministic)."""

    def __init__(self, on_task: Any, cpus: int = 2) -> None:
        self.on_task, self.cpus = on_task, cpus

    def is_initialized(self) -> bool:
        return True

    def cluster_resources(self) -> dict[str, float]:
        return {"CPU": self.cpus}

    def remote(self, **_: Any) -> Any:
        return lambda cls: FakeActor(self.on_task)

    def get(self, refs: Any) -> Any:
        return [r.value for r in refs] if isinstance(refs, list) else refs.value

    def wait(self, refs: list[Ref], num_returns: int = 1, timeout: float | None = None) -> tuple[list[Ref], list[Ref]]:
        return refs[:num_returns], refs[num_returns:]

    def kill(self, worker: Any) -> None:
        pass

    def shutdown(self) -> None:
        pass


@dataclass
class FakeClip:
    """A clip as the fake preparation sees it: its pairs and whether a resumed batch finds only its
    drawing left (every pair finished before)."""

    pairs: int
    drawn_only: bool = False


def fake_preparation(monkeypatch, clips: dict[str, FakeClip], chunk_pairs: int) -> None:
    """Check and open clips without files: each has the chunks its FakeClip says."""
    def prepared(clip: ClipState, *_: Any) -> Prepared:
        clip.prepared = True
        fake = clips[clip.item.name]
        return Prepared([] if fake.drawn_only else plan_chunks(fake.pairs, chunk_pairs), fake.pairs)

    monkeypatch.setattr(runner, "open_clip", prepared)
    monkeypatch.setattr(runner, "check_clip", prepared, raising=False)  # (the driver before these fixes had no check)


def run_fake_batch(monkeypatch, out: Path, inputs: list[Path], on_task: Any, **kwargs: Any) -> dict[str, str]:
    fake = FakeRay(on_task)
    monkeypatch.setattr(runner, "ray", fake)
    monkeypatch.setattr(workers, "ray", fake)
    with Batch(out, options(**kwargs)) as batch:
        batch.submit(inputs)
        results = {r.name: r.status if r.error is None else r.error for r in batch.results()}
    return results


def reference_order(clips: list[FakeClip], chunk_pairs: int, workers: int) -> list[tuple[str, int, int | None]]:
    """The tasks in the order the driver hands them out (its rules, as it had them: every clip scanned
    for each task), with ``workers`` workers and tasks that come back in the order sent. The clips are
    checked in order: before the first task as many as have a task for each worker, then one a step
    (``checks_ahead``: every clip before the first task, as the driver did before)."""
    chunks = [collections.deque([] if c.drawn_only else plan_chunks(c.pairs, chunk_pairs)) for c in clips]
    running, drawing, done = [0] * len(clips), [False] * len(clips), [False] * len(clips)
    inflight: collections.deque = collections.deque()
    order, seen, tasks = [], 0, 0

    def next_task() -> tuple[str, int, Chunk | None] | None:
        for k in range(seen):
            if not done[k] and not chunks[k] and not running[k] and not drawing[k]:
                drawing[k] = True
                return "finish", k, None
        for k in range(seen):
            if not done[k] and chunks[k]:
                return "compute", k, chunks[k].popleft()
        return None

    def check() -> None:
        nonlocal seen, tasks
        tasks, seen = tasks + max(len(chunks[seen]), 1), seen + 1

    check()
    while seen < len(clips) and tasks < workers:
        check()
    idle = min(workers, tasks)
    while True:
        while idle and (task := next_task()) is not None:
            idle -= 1
            running[task[1]] += 1
            inflight.append(task)
            order.append((task[0], task[1], task[2].start if task[2] else None))
        if inflight:
            kind, k, _ = inflight.popleft()
            idle, running[k] = idle + 1, running[k] - 1
            done[k] = done[k] or kind == "finish"
        elif seen == len(clips):
            return order
        if seen < len(clips):
            check()


# --- item 5: the next task in O(log n) -------------------------------------------------------------


def scale_clips(count: int) -> dict[str, FakeClip]:
    """Clips of 1 to 11 pairs (1 to 4 chunks of 3), every 37th one found with only its drawing left."""
    return {f"c{k:04d}": FakeClip(1 + k * 7 % 11, drawn_only=k % 37 == 5) for k in range(count)}


def test_tasks_are_handed_out_in_the_same_order(monkeypatch, tmp_path: Path) -> None:
    """Drawings first (a resumed clip with only its drawing left as soon as it is checked), then the chunks of
    the clips checked, in order: as the driver always did, for 300 clips and 2 workers."""
    clips = scale_clips(300)
    fake_preparation(monkeypatch, clips, 3)
    names = list(clips)
    sent = []
    results = run_fake_batch(monkeypatch, tmp_path / "out", [tmp_path / n for n in names],
                             lambda kind, out, chunk: sent.append((kind, names.index(out.name),
                                                                   chunk.start if chunk else None)))
    assert set(results.values()) == {"ok"} and len(results) == 300
    assert sent == reference_order(list(clips.values()), 3, 2)


def test_a_task_sent_back_is_the_next_of_its_clip(tmp_path: Path) -> None:
    """A chunk whose worker was restarting comes back first of its clip's chunks, not after them; a drawing
    sent back is due again."""
    from semflow.batch.clips import InputResult
    from semflow.batch.inputs import BatchInput
    from semflow.batch.tasks import TaskQueue

    clip = ClipState(BatchInput(tmp_path / "clip.mp4", "clip"), InputResult("clip", "clip.mp4", str(tmp_path / "clip")),
                     opened=True, chunks=collections.deque([Chunk(0, 3), Chunk(3, 6), Chunk(6, None)]))
    queue = TaskQueue()
    queue.update(clip)
    assert queue.next() == ("compute", clip, Chunk(0, 3))
    queue.requeue(clip, "compute", Chunk(0, 3))
    assert [queue.next()[2] for _ in range(3)] == [Chunk(0, 3), Chunk(3, 6), Chunk(6, None)]
    assert queue.next() is None
    queue.update(clip)  # (every chunk done: the drawing is due)
    assert queue.next() == ("finish", clip, None) and clip.drawing
    queue.requeue(clip, "finish", None)
    assert queue.next() == ("finish", clip, None)


def test_a_clip_that_failed_has_no_more_tasks(tmp_path: Path) -> None:
    """Once a clip failed (a chunk of it failed twice, say), the chunks it has left are not handed out."""
    from semflow.batch.clips import InputResult
    from semflow.batch.inputs import BatchInput
    from semflow.batch.tasks import TaskQueue

    clip = ClipState(BatchInput(tmp_path / "clip.mp4", "clip"), InputResult("clip", "clip.mp4", str(tmp_path / "clip")),
                     opened=True, chunks=collections.deque([Chunk(0, 3), Chunk(3, 6), Chunk(6, None)]))
    queue = TaskQueue()
    queue.update(clip)
    assert queue.next() == ("compute", clip, Chunk(0, 3))
    clip.result.status = "failed"
    queue.update(clip)
    assert queue.next() is None


def test_a_clip_with_only_its_drawing_left_is_opened_once(tmp_path: Path) -> None:
    """A resumed clip with only its drawing left is opened when its drawing is due, drawn, and never opened
    again (a second opening would clear what it finished)."""
    from semflow.batch.clips import InputResult
    from semflow.batch.inputs import BatchInput
    from semflow.batch.tasks import TaskQueue

    clip = ClipState(BatchInput(tmp_path / "clip.mp4", "clip"), InputResult("clip", "clip.mp4", str(tmp_path / "clip")))
    queue = TaskQueue()
    queue.add(clip, draw_only=True)
    assert queue.next() == ("open", clip, None)
    clip.opened = True
    queue.update(clip)
    assert queue.next() == ("finish", clip, None)
    assert queue.next() is None


class CountedClip(ClipState):
    """A ClipState that notes each time the driver looks at it."""

    seen: set[int] = set()

    def __getattribute__(self, name: str) -> Any:
        CountedClip.seen.add(id(self))
        return object.__getattribute__(self, name)


def test_choosing_a_task_does_not_look_at_every_clip(monkeypatch, tmp_path: Path) -> None:
    """Probe64 item 5: the driver scanned every clip for every task (twice: for a drawing, then for a
    chunk), O(n) a task: 1,000 clips 0.19 s, 10,000 clips 18.6 s. Now a task looks at a few clips
    whatever their number (counted, not timed)."""
    clips = scale_clips(400)
    fake_preparation(monkeypatch, clips, 3)
    monkeypatch.setattr(runner, "ClipState", CountedClip)
    looked: list[int] = []

    def on_task(kind: str, out: Path, chunk: Chunk | None) -> None:
        looked.append(len(CountedClip.seen))  # the clips looked at since the task before
        CountedClip.seen.clear()

    CountedClip.seen.clear()
    results = run_fake_batch(monkeypatch, tmp_path / "out", [tmp_path / n for n in clips], on_task)
    assert set(results.values()) == {"ok"}
    tasks = looked[1:]  # (the first task comes after the first clips' checks)
    assert len(tasks) > 800
    assert sum(tasks) <= 4 * len(tasks), f"{sum(tasks) / len(tasks):.1f} clips looked at a task"
    assert max(tasks) <= 12


# --- item 4: files held for the clips being worked on only ----------------------------------------


def tiny_clips(tmp_path: Path, make_video, count: int) -> list[Path]:
    first = make_video(4, 24, 32, name="c0000.mp4")
    clips = [first]
    for k in range(1, count):
        clips.append(shutil.copy(first, tmp_path / f"c{k:04d}.mp4"))
    return [Path(c) for c in clips]


@contextlib.contextmanager
def open_file_limit(limit: int):
    """The process may open only ``limit`` files in the block (its soft RLIMIT_NOFILE)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_driver_holds_files_for_the_clips_being_worked_on_only(monkeypatch, make_video, tmp_path: Path) -> None:
    """Probe64 item 4: each clip's folder stayed locked (an open descriptor) from the batch's start to the
    clip's end; with `ulimit -n 256`, 80 of 300 good clips failed ("not a readable video"). Now a folder is
    locked while its clip is worked on: still locked whenever one of its tasks runs (a `semflow run` into
    it is refused), unlocked once the clip is done."""
    count = 80
    clips = tiny_clips(tmp_path, make_video, count)
    held: list[int] = []

    def on_task(kind: str, out: Path, chunk: Chunk | None) -> None:
        held.append(open_fds(tmp_path / "out"))  # (not the keyframe probes' pipes: the clips' checks go on)
        with pytest.raises(OutputError, match="another semflow command"):
            os.close(lock_folder(out))  # the batch holds it while it may write it

    baseline = open_fds()
    with open_file_limit(baseline + 40):  # (the driver took one more a clip: 80)
        results = run_fake_batch(monkeypatch, tmp_path / "out", clips, on_task)
    assert results == {c.stem: "ok" for c in clips}
    assert len(held) == 2 * count and max(held) <= 10, max(held)
    for clip in clips:  # each unlocked once done
        os.close(lock_folder(tmp_path / "out" / clip.stem))


def test_a_fresh_batch_still_clears_every_clip_folder_at_its_start(monkeypatch, make_video, tmp_path: Path) -> None:
    """Locking a clip's folder only when its first task is due must not leave an earlier run's outputs in the
    folders a fresh batch stopped before reaching: resumed, the batch took them for a run of other settings
    and failed those clips. As before, a fresh batch clears them at its start; resumed, it finishes them."""
    clips = tiny_clips(tmp_path, make_video, 3)
    out = tmp_path / "out"
    run_video(clips[2], out / "c0002", RunOptions(method="dis-fast", progress=False))  # an earlier run there
    fake = FakeRay(lambda *_: None)
    monkeypatch.setattr(runner, "ray", fake)
    monkeypatch.setattr(workers, "ray", fake)
    with Batch(out, options(workers=1)) as batch:
        batch.submit(clips)
        results = batch.results()
        first = next(results)
        results.close()  # (c0002 was never reached)
    assert first.name == "c0000" and not getattr(batch.clips[2], "opened", False)
    assert not (out / "c0002" / "summary.json").exists() and not (out / "c0002" / "flow.mp4").exists()
    with Batch(out, options(resume=True)) as batch:
        batch.submit(clips)
        assert {r.name: r.status if r.error is None else r.error for r in batch.results()} == \
            {c.stem: "ok" for c in clips}


def test_a_resumed_clip_is_checked_with_the_chunks_it_has_left(make_video, tmp_path: Path) -> None:
    """What a clip's check reads of its work folder (unlocked) is what opening it plans: the chunks not
    finished; none when only its drawing is left (that clip is drawn first, as before)."""
    from semflow.batch.clips import check_clip  # (new with these fixes)

    clip = make_video(7, 24, 32, name="c.mp4")
    out = tmp_path / "out"
    batch = Batch(out, options(chunk_pairs=2))
    batch.submit([clip])
    worker = ClipWorker.__new__(ClipWorker)  # (in this process: no Ray, nor a worker's own stderr)
    worker.method = get_method(METHOD)
    fresh, resumed = batch.run_options, options(chunk_pairs=2, resume=True).run_options()
    state = ClipState(batch.clips[0].item, batch.clips[0].result)
    assert check_clip(state, out, fresh, 2).chunks == [Chunk(0, 2), Chunk(2, 4), Chunk(4, None)]
    open_clip(state, out, fresh, 2)
    for chunk in (Chunk(0, 2), Chunk(4, None)):
        worker.compute(clip, out / "c", fresh, chunk, 0)
    state.release()
    for left in ([Chunk(2, 4)], []):
        assert check_clip(state, out, resumed, 2).chunks == left
        assert open_clip(state, out, resumed, 2).chunks == left
        state.release()
        worker.compute(clip, out / "c", resumed, Chunk(2, 4), 0)


def test_opening_a_clip_says_what_run_says_of_its_cache_budget(make_video, tmp_path: Path) -> None:
    """Opening a clip ignored every SemflowWarning (its check had said the video's): a batch resumed with
    another --cache-mb kept the earlier budget without a word, and a --cache-mb too small to keep a flow (each
    pair computed again to be drawn) went unsaid; `semflow run` says both."""
    from semflow.batch.clips import check_clip
    from semflow.errors import SemflowWarning

    clip = make_video(7, 24, 32, name="c.mp4")
    out = tmp_path / "out"
    for kwargs, said in (({"cache_budget": 2 ** 20}, None),
                         ({"cache_budget": 2 ** 21, "resume": True}, "--cache-mb differs from the run this continues"),
                         ({"cache_budget": 10}, "too few to keep the flows")):
        batch = Batch(out, options(**kwargs))
        batch.submit([clip])
        state = ClipState(batch.clips[0].item, batch.clips[0].result)
        check_clip(state, out, batch.run_options, 3)
        with pytest.warns(SemflowWarning, match=said) if said else contextlib.nullcontext():
            open_clip(state, out, batch.run_options, 3)
        state.release()


@pytest.mark.parametrize("case", ["whole", "lost", "one more declared", "one frame read"])
def test_a_clip_is_drawn_whole_and_not_with_its_last_pair_lost(monkeypatch, make_video, tmp_path: Path,
                                                              case: str) -> None:
    """The drawing task checks that every pair up to the clip's end is finished, the last one included; a
    clip drawn whole is not truncated (the drawing decodes no frame: the chunk that reached the end read
    them all, pairs + 1), nor is one whose container declares a frame more (rounded: tolerated, as by run).
    A clip whose chunk read one frame only (the file cut since its check) has too few frames, as run says."""
    from semflow.batch import work
    from semflow.batch.clips import check_clip

    clip = make_video(5, 24, 32, name="c.mp4")
    out = tmp_path / "out"
    batch = Batch(out, options(chunk_pairs=2, save_flo=True))
    batch.submit([clip])
    worker = ClipWorker.__new__(ClipWorker)  # (in this process: no Ray)
    worker.method = get_method(METHOD)
    state = ClipState(batch.clips[0].item, batch.clips[0].result)
    check_clip(state, out, batch.run_options, 2)
    open_clip(state, out, batch.run_options, 2)
    for chunk in (Chunk(0, 2), Chunk(2, None)):
        worker.compute(clip, out / "c", batch.run_options, chunk, 0)
    if case == "one frame read":
        (out / "c" / WORK_DIR / "end.json").write_text(json.dumps({"pairs": 0}))
        with pytest.raises(InputError, match=r"c.mp4: need at least 2 frames to compute flow, got 1$"):
            worker.finish(clip, out / "c", batch.run_options, 0.0, {}, 0)
    elif case == "lost":
        (out / "c" / "flo" / "000003.flo").unlink()  # (a finished pair's .flo: without it the pair is not finished)
        with pytest.raises(InputError, match=r"c.mp4: 1 pair missing \(first: 3\)"):
            worker.finish(clip, out / "c", batch.run_options, 0.0, {}, 0)
    else:
        declared = 5
        if case == "one more declared":
            declared = 6

            class OneMoreDeclared(work.FrameSource):
                def __init__(self, *args: Any, **kwargs: Any) -> None:
                    super().__init__(*args, **kwargs)
                    self.count, self.declared = self.count + 1, self.declared + 1

            monkeypatch.setattr(work, "FrameSource", OneMoreDeclared)
        summary = worker.finish(clip, out / "c", batch.run_options, 0.0, {}, 4)
        assert (summary["frames"], summary["frames_expected"], summary["truncated"]) == (5, declared, False)
    state.release()


def test_a_variable_frame_rate_clip_drawn_in_chunks_is_not_called_truncated(tmp_path: Path) -> None:
    """The drawing task decodes no frame: it took the frames read from the end marker (pairs + 1) and judged them
    against the count OpenCV estimates for a Matroska clip (its duration times its fastest frame rate), so a whole
    clip of variable frame rate was recorded truncated, where run (which sees its last frame reach the end of its
    duration) does not say so. The end marker keeps the last frame's timestamp too."""
    from conftest import variable_rate_mkv

    from semflow.batch.clips import check_clip

    clip = variable_rate_mkv(tmp_path / "v.mkv")
    out = tmp_path / "out"
    batch = Batch(out, options(chunk_pairs=20))
    batch.submit([clip])
    worker = ClipWorker.__new__(ClipWorker)  # (in this process: no Ray)
    worker.method = get_method(METHOD)
    state = ClipState(batch.clips[0].item, batch.clips[0].result)
    check_clip(state, out, batch.run_options, 20)
    # OpenCV's count, 106 (its duration times 25 fps), planned chunks up to pair 105, all but two of them empty;
    # the keyframe probe counts its 30 frames (FrameSource.packets): the plan ends with the clip, and so does the summary
    assert open_clip(state, out, batch.run_options, 20).chunks == [Chunk(0, 20), Chunk(20, None)]
    for chunk in (Chunk(0, 20), Chunk(20, None)):
        worker.compute(clip, out / "v", batch.run_options, chunk, 0)
    summary = worker.finish(clip, out / "v", batch.run_options, 0.0, {}, 0)
    assert (summary["frames"], summary["frames_expected"], summary["truncated"]) == (30, 30, False)
    state.release()


@contextlib.contextmanager
def no_descriptors_left():
    """In the block the process has no file descriptor to spare (a low limit, filled up)."""
    fillers: list[int] = []
    with open_file_limit(open_fds() + 16):
        try:
            with contextlib.suppress(OSError):
                while True:
                    fillers.append(os.open(os.devnull, os.O_RDONLY))
            yield
        finally:
            for fd in fillers:
                os.close(fd)


def test_running_out_of_descriptors_is_said_as_such(make_video, tmp_path: Path) -> None:
    """Probe64 item 4: a clip OpenCV could not open for want of a descriptor was "not a readable video
    (no frame could be decoded)", blaming a good input."""
    clip = make_video(4, 24, 32, name="good.mp4")
    batch = Batch(tmp_path / "out", options())
    batch.submit([clip])
    state = batch.clips[0]
    with no_descriptors_left():
        (result,) = list(batch._prepare(state, BatchProgress(0, enabled=False)))
        with pytest.raises(SemflowError) as opening:
            open_clip(ClipState(state.item, batch.clips[0].result), tmp_path / "out", batch.run_options, 3)
    assert result.status == "failed"
    for said in (result.error, str(opening.value)):
        assert "too many open files" in said and "EMFILE" in said and "not a readable video" not in said, said
        assert said.startswith(f"{clip}: ")
    assert not (tmp_path / "out" / "good").exists()


# --- on a real local Ray ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray with 2 CPUs for this module's real batches."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 1024 ** 2)
    yield
    ray.shutdown()


def test_a_real_batch_of_many_clips_keeps_few_files_open(local_ray, make_video, tmp_path: Path) -> None:
    """The same on Ray: 16 clips, the driver's open descriptors stay about the same from clip to clip (each
    clip's folder held from its check on: about 15 more at the first result than at the last), and each clip's
    folder is unlocked as its result comes."""
    clips = tiny_clips(tmp_path, make_video, 16)
    out = tmp_path / "out"
    held = []
    with Batch(out, options(chunk_pairs=50)) as batch:
        batch.submit(clips)
        for result in batch.results():
            assert result.status == "ok", result.error
            os.close(lock_folder(out / result.name))
            held.append(open_fds())
    assert len(held) == 16 and (out / "c0015" / "flow.mp4").is_file()
    assert max(held) - min(held) <= 10, held  # (it grew by one a clip... and shrank as they finished)


def test_a_video_opened_without_a_descriptor_to_spare_says_so(make_video, tmp_path: Path) -> None:
    """`semflow run` (FrameSource) said "not a readable video" of a good clip when the process was out of
    descriptors; the batch said what it was, the run did not."""
    from semflow.errors import ResourceError
    from semflow.io.video import FrameSource

    clip = make_video(4, 24, 32, name="good.mp4")
    with no_descriptors_left(), \
            pytest.raises(ResourceError, match=r"good.mp4: cannot be opened: too many open files \(EMFILE"):
        FrameSource(clip)
    assert len(FrameSource(clip)) == 4


def test_a_running_batch_keeps_batch_json_as_it_stands(monkeypatch, tmp_path: Path) -> None:
    """A cluster probe: a batch whose Ray head was stopped was ended by Ray's own C++ error and left no
    batch.json. A running batch now writes it as it stands (at most every SUMMARY_SECONDS; 0 here), the
    clips not done ``pending``; the last write is the summary as before."""
    clips = scale_clips(4)
    fake_preparation(monkeypatch, clips, 3)
    out = tmp_path / "out"
    at_first_drawing = []  # (a review: it was written only as clips finished, not after their chunks)
    fake = FakeRay(lambda kind, *_: kind == "finish" and not at_first_drawing and at_first_drawing.append(
        (out / "batch.json").exists()))
    monkeypatch.setattr(runner, "ray", fake)
    monkeypatch.setattr(workers, "ray", fake)
    monkeypatch.setattr(runner, "SUMMARY_SECONDS", 0.0)
    seen, walls = [], []
    with Batch(out, options(workers=1)) as batch:
        batch.submit([tmp_path / n for n in clips])
        for _ in batch.results():
            if (out / "batch.json").exists():
                written = json.loads((out / "batch.json").read_text())
                seen.append((written["ok"], written["pending"]))
                walls.append((written["wall_seconds"], written["pairs_per_second"]))
    assert at_first_drawing == [True]
    assert seen[:3] == [(1, 3), (2, 2), (3, 1)] and batch.summary is not None
    final = json.loads((out / "batch.json").read_text())
    assert (final["ok"], final["pending"]) == (4, 0) and final == batch.summary
    # Its wall seconds are those of the run so far (not 0 until the run ends: pairs_per_second was None).
    assert all(wall > 0 and rate is not None for wall, rate in walls), walls
    assert [wall for wall, _ in walls] == sorted(wall for wall, _ in walls) and final["wall_seconds"] >= walls[-1][0]


def test_batch_json_stands_while_the_clips_are_checked(monkeypatch, tmp_path: Path) -> None:
    """A probe: 3000 clips took the driver 86 s to check before any task, and batch.json (which the README
    says is kept as it stands) did not exist meanwhile."""
    clips = scale_clips(4)
    fake_preparation(monkeypatch, clips, 3)
    out = tmp_path / "out"
    checking, seen = runner.check_clip, []
    monkeypatch.setattr(runner, "check_clip", lambda *args: seen.append((out / "batch.json").exists()) or checking(*args))
    monkeypatch.setattr(runner, "SUMMARY_SECONDS", 0.0)
    run_fake_batch(monkeypatch, out, [tmp_path / n for n in clips], lambda *_: None, workers=1)
    assert seen == [False, True, True, True]


# --- tasks handed out while the driver still checks clips -----------------------------------------


def record_events(monkeypatch, clips: dict[str, FakeClip]) -> list[tuple[str, ...]]:
    """The fake preparation, noting each check (``check NAME``) and each start of workers (``workers N``)."""
    fake_preparation(monkeypatch, clips, 3)
    events: list[tuple[str, ...]] = []
    checking, starting = runner.check_clip, runner.new_workers
    monkeypatch.setattr(runner, "check_clip", lambda clip, *a: events.append(("check", clip.item.name))
                        or checking(clip, *a))
    monkeypatch.setattr(runner, "new_workers", lambda count, *a: events.append(("workers", str(count)))
                        or starting(count, *a))
    return events


def test_the_first_tasks_go_out_while_the_driver_still_checks_clips(monkeypatch, tmp_path: Path) -> None:
    """The driver checked every clip (about 10 ms a small clip: 30 s for 3000) before its first task, the
    workers idle meanwhile. Now the first clips' tasks go out as soon as those clips pass, the others checked
    between tasks; the workers are started before any task, as many as before (two clips' tasks for 2)."""
    clips = {f"c{k:04d}": FakeClip(1) for k in range(40)}
    events = record_events(monkeypatch, clips)
    out = tmp_path / "out"
    results = run_fake_batch(monkeypatch, out, [tmp_path / n for n in clips],
                             lambda kind, o, chunk: events.append((kind, o.name)))
    assert results == {n: "ok" for n in clips}
    first = next(k for k, e in enumerate(events) if e[0] in ("compute", "finish"))
    assert events[:first] == [("workers", "1"), ("check", "c0000"), ("check", "c0001"), ("workers", "1")]
    assert first < events.index(("check", "c0039"))
    summary = json.loads((out / "batch.json").read_text())
    assert (summary["workers"], summary["ok"], [c["name"] for c in summary["inputs"]]) == (2, 40, list(clips))


def test_a_fresh_batch_clears_the_clip_folders_there_before_its_first_task(monkeypatch, tmp_path: Path) -> None:
    """A fresh batch clears each clip's folder at its check: the tasks wait for the last clip whose folder
    is there (a batch stopped after its first results leaves no earlier outputs), not for the clips after
    it; resumed (nothing cleared), they wait for none."""
    clips = {f"c{k:04d}": FakeClip(4) for k in range(10)}
    for resume in (False, True):
        events = record_events(monkeypatch, clips)
        out = tmp_path / f"out{resume}"
        (out / "c0006").mkdir(parents=True)
        results = run_fake_batch(monkeypatch, out, [tmp_path / n for n in clips],
                                 lambda kind, o, chunk, events=events: events.append((kind, o.name)), resume=resume)
        assert results == {n: "ok" for n in clips}
        first = next(k for k, e in enumerate(events) if e[0] in ("compute", "finish"))
        assert (first > events.index(("check", "c0006"))) == (not resume)
        assert first < events.index(("check", "c0009"))


def test_workers_of_batch_after_batch_share_one_actor_class(monkeypatch) -> None:
    """Ray keeps every actor class made for good: one made per batch (and per worker put in a dead one's
    place) had a long-lived process that runs batch after batch hold ever more classes."""
    made = []

    class Actor:
        def remote(self, *args):
            return "worker"

    class CountingRay:
        def remote(self, **options):
            made.append(options)
            return lambda cls: Actor()

    monkeypatch.setattr(workers, "ray", CountingRay())
    for _ in range(5):  # five batches in one process, each with two workers, one replaced
        assert workers.new_workers(2, "dis-fast", {}, 0.0) == ["worker", "worker"]
        assert workers.new_workers(1, "dis-fast", {}, 0.0) == ["worker"]
    assert len(made) == 1 and made[0]["num_gpus"] == 0.0
    workers.worker_class.cache_clear()  # (the fake's class is not kept)


def test_a_batch_killed_in_its_first_seconds_leaves_batch_json(monkeypatch, tmp_path: Path) -> None:
    """Crash trials: a batch SIGKILLed while its first tasks ran (its first SUMMARY_SECONDS, 10 s) left no
    batch.json, or an earlier run's, though the README says one stopped without a word leaves one. The
    first is now written at once (the clips ``pending``), then at most every SUMMARY_SECONDS."""
    clips = scale_clips(3)
    fake_preparation(monkeypatch, clips, 3)
    out = tmp_path / "out"
    at_first_task: list[dict[str, Any]] = []

    def first(kind: str, *_: Any) -> None:
        if not at_first_task:
            written = out / "batch.json"
            at_first_task.append(json.loads(written.read_text()) if written.exists() else {})

    run_fake_batch(monkeypatch, out, [tmp_path / n for n in clips], first, workers=1)
    assert at_first_task[0].get("pending") == 3, at_first_task[:1]


class CountingProgress(BatchProgress):
    """A silent BatchProgress that keeps the pairs bar's total and what was done of it."""

    made: list[CountingProgress] = []

    def __init__(self, clips: int, *, enabled: bool | None = None) -> None:
        super().__init__(clips, enabled=False)
        self.total = self.done = self.added = 0
        CountingProgress.made.append(self)

    def add_pairs(self, count: int) -> None:
        self.total += count
        self.added += max(count, 0)  # (what joined the total, before any pairs a clip turned out not to have)

    def advance_pairs(self, count: int) -> None:
        self.done += count


def test_the_pairs_bar_counts_each_clips_pairs_once(monkeypatch, tmp_path: Path) -> None:
    """A clip's pairs join the bar's total when it is checked; opening it adds only what changed since (an
    opening that added its whole estimate again would double the total, the bar stopping at half)."""
    clips = {"a": FakeClip(7), "b": FakeClip(2), "c": FakeClip(5, drawn_only=True)}
    fake_preparation(monkeypatch, clips, 3)
    monkeypatch.setattr(runner, "BatchProgress", CountingProgress)
    CountingProgress.made.clear()
    results = run_fake_batch(monkeypatch, tmp_path / "out", [tmp_path / n for n in clips], lambda *_: None)
    assert results == {n: "ok" for n in clips}
    (progress,) = CountingProgress.made
    assert progress.added == 7 + 2 + 5
    assert progress.done == 3 + 1 + 5  # (a fake chunk computes one pair; c's pairs were finished before)


def test_the_pairs_bar_ends_full_when_a_clip_fails_or_has_fewer_pairs_than_estimated(monkeypatch, tmp_path: Path) -> None:
    """A clip's estimated pairs stayed in the bar's total when it failed, or when it held fewer than its
    container said (a fake chunk computes one pair): the bar never reached its end and its time left read
    high. A clip's result now settles the total to the pairs the bar counted done for it."""
    clips = {"a": FakeClip(7), "b": FakeClip(4), "c": FakeClip(5, drawn_only=True)}
    fake_preparation(monkeypatch, clips, 3)
    opening = runner.open_clip

    def open_or_fail(clip: ClipState, *args: Any) -> Prepared:
        if clip.item.name == "b":
            raise InputError("b: not a readable video")
        return opening(clip, *args)

    monkeypatch.setattr(runner, "open_clip", open_or_fail)
    monkeypatch.setattr(runner, "BatchProgress", CountingProgress)
    CountingProgress.made.clear()
    results = run_fake_batch(monkeypatch, tmp_path / "out", [tmp_path / n for n in clips], lambda *_: None)
    assert results == {"a": "ok", "b": "b: not a readable video", "c": "ok"}
    (progress,) = CountingProgress.made
    assert progress.added == 7 + 4 + 5 and progress.done == 3 + 0 + 5
    assert progress.total == progress.done


def test_results_again_with_nothing_new_starts_nothing_and_keeps_batch_json(monkeypatch, tmp_path: Path) -> None:
    """A second results() with no clip submitted since yields nothing, and neither writes batch.json again
    (its wall seconds grew) nor, after the with block, starts workers (on Ray: Ray itself) to do so."""
    clips = scale_clips(2)
    fake_preparation(monkeypatch, clips, 3)
    fake = FakeRay(lambda *_: None)
    monkeypatch.setattr(runner, "ray", fake)
    monkeypatch.setattr(workers, "ray", fake)
    starting, started = runner.new_workers, []
    monkeypatch.setattr(runner, "new_workers", lambda count, *a: started.append(count) or starting(count, *a))
    out = tmp_path / "out"
    with Batch(out, options()) as batch:
        batch.submit([tmp_path / n for n in clips])
        assert [r.status for r in batch.results()] == ["ok", "ok"]
        written = (out / "batch.json").read_text()
        assert list(batch.results()) == [] and (out / "batch.json").read_text() == written
    started.clear()
    assert list(batch.results()) == [] and (out / "batch.json").read_text() == written and not started


def test_no_more_workers_than_the_cluster_has_cpus(monkeypatch, tmp_path: Path) -> None:
    """Each worker takes a CPU of the cluster: a batch asking for more is refused in one line at its start
    (Ray would hold the extra workers pending for good), one asking for as many starts."""
    fake = FakeRay(lambda *_: None, cpus=2)
    monkeypatch.setattr(runner, "ray", fake)
    monkeypatch.setattr(workers, "ray", fake)
    with pytest.raises(SemflowError, match=r"^3 workers asked for, but the Ray cluster has 2 CPUs$"):
        Batch(tmp_path / "out", options(workers=3)).start()
    with Batch(tmp_path / "out", options(workers=2)) as batch:
        assert batch._wanted == 2


def test_a_batch_left_while_it_still_checks_clips_is_done_with_them(monkeypatch, tmp_path: Path) -> None:
    """Left early (``break``) with clips not checked yet, those are ``interrupted`` and done with like the
    others: a second results() has nothing to run and returns (a clip never checked kept it looping)."""
    clips = {f"c{k:04d}": FakeClip(1) for k in range(12)}
    events = record_events(monkeypatch, clips)
    fake = FakeRay(lambda *_: None)
    monkeypatch.setattr(runner, "ray", fake)
    monkeypatch.setattr(workers, "ray", fake)
    with Batch(tmp_path / "out", options()) as batch:
        batch.submit([tmp_path / n for n in clips])
        for _ in batch.results():
            break
        assert ("check", "c0011") not in events
        assert [c.result.status for c in batch.clips] == ["ok"] + ["interrupted"] * 11
        assert all(c.prepared for c in batch.clips)
        assert list(batch.results()) == []


def test_a_clip_finished_before_counts_its_pairs(monkeypatch, tmp_path: Path) -> None:
    """A resumed batch that finds a clip finished (its summary.json) reports it ok with its pairs, none
    computed; batch.json's pairs count it, and the pairs bar has its pairs done."""
    def finished(clip: ClipState, *_: Any) -> Prepared:
        return Prepared([], 4, {"pairs": 4, "max_flow_px": 1.0, "truncated": False})

    monkeypatch.setattr(runner, "check_clip", finished)
    monkeypatch.setattr(runner, "BatchProgress", CountingProgress)
    CountingProgress.made.clear()
    results = run_fake_batch(monkeypatch, tmp_path / "out", [tmp_path / "a"], lambda *_: None, resume=True)
    assert results == {"a": "ok"}
    summary = json.loads((tmp_path / "out" / "batch.json").read_text())
    assert (summary["pairs"], summary["computed_pairs"], summary["inputs"][0]["pairs"]) == (4, 0, 4)
    (progress,) = CountingProgress.made
    assert progress.total == progress.done == 4


def test_a_second_ctrl_c_while_batch_json_is_written_leaves_it_said(monkeypatch, tmp_path: Path) -> None:
    """A second Ctrl-C (or a SIGTERM) while results() wrote its last batch.json on the way out of the first cut
    that write short, and close() did not write it again (the run was over): batch.json kept its clips
    ``pending``, as a batch killed without a word leaves it. The last write now holds the signal until it is
    done, as close() does, and the signal is raised then."""
    import signal

    clips = {f"c{k:04d}": FakeClip(1) for k in range(3)}
    fake_preparation(monkeypatch, clips, 3)
    fake = FakeRay(lambda *_: None)
    monkeypatch.setattr(runner, "ray", fake)
    monkeypatch.setattr(workers, "ray", fake)
    monkeypatch.setattr(runner, "SUMMARY_SECONDS", 0.0)
    writing, signalled = runner.write_text_atomic, []

    def second_signal(path: Path, text: str) -> None:
        if '"status": "interrupted"' in text and not signalled:  # (the last write)
            signalled.append(True)
            signal.raise_signal(signal.SIGINT)
        writing(path, text)

    monkeypatch.setattr(runner, "write_text_atomic", second_signal)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt), Batch(out, options(workers=1)) as batch:
        batch.submit([tmp_path / n for n in clips])
        results = batch.results()
        next(results)
        results.close()  # (the first Ctrl-C, or a break)
    assert signalled == [True]
    assert [e["status"] for e in json.loads((out / "batch.json").read_text())["inputs"]] == \
        ["ok", "interrupted", "interrupted"]
