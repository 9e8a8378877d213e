"""What the driver makes of a task's answer (:mod:`semflow.batch.runner` waits for them on Ray).

A chunk's answer adds its pairs and seconds to the clip's result; a drawing's answer is the clip's
``summary.json``, which makes it ``ok``; a task that raised fails its clip with a one-line error; a worker
that died while computing a chunk has the chunk sent again, once. A clip's folder is released when its
result is known and none of its tasks is still running.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ray.exceptions import RayActorError, RayTaskError

from semflow.batch.clips import ClipState, InputResult, clip_notes
from semflow.batch.progress import BatchProgress
from semflow.batch.tasks import TaskQueue
from semflow.batch.work import Chunk
from semflow.batch.workers import one_line
from semflow.errors import warn


def task_back(clip: ClipState, tasks: TaskQueue) -> None:
    """A task of the clip is over: the last of a clip whose result is known unlocks its folder (a failed
    clip's other tasks may still have been writing it); a pending clip is filed for its next task."""
    clip.running -= 1
    if clip.result.status != "pending":
        if not clip.running:
            clip.release()
        return
    tasks.update(clip)


def count_pairs(clip: ClipState, count: int, progress: BatchProgress) -> None:
    """``count`` more of the clip's pairs are done (computed, or found finished): the pairs bar moves on."""
    clip.counted += count
    progress.advance_pairs(count)


def settle_pairs(clip: ClipState, progress: BatchProgress) -> None:
    """The clip's result is known: its share of the pairs bar's total becomes the pairs counted done for
    it (a failed clip's undone pairs, or pairs its container promised but did not hold, leave the total:
    else the bar never reaches its end and its time left reads high)."""
    progress.add_pairs(clip.counted - clip.estimate)
    clip.estimate = clip.counted


def fail_clip(clip: ClipState, error: str, progress: BatchProgress) -> InputResult:
    """Mark the clip failed with the one-line ``error``, its chunks left undone; returns its result."""
    clip.result.status, clip.result.error = "failed", error
    clip.chunks.clear()
    if not clip.running:  # (else when its last task comes back: they write its folder)
        clip.release()
    settle_pairs(clip, progress)
    progress.clip_done(failed=True)
    return clip.result


def lost_worker(error: RayActorError, chunk: Chunk | None) -> str:
    """The one-line note on a worker that died while computing ``chunk`` (None: the clip's drawing)."""
    if chunk is None:
        what = "the drawing"
    else:
        last = "end" if chunk.stop is None else chunk.stop - 1
        what = f"pairs {chunk.start}-{last}"
    said = (str(error).strip().splitlines() or [""])[0]
    return f"a worker died while computing {what} ({type(error).__name__}: {said})"


def receive(value: Any, clip: ClipState, kind: str, chunk: Chunk | None, tasks: TaskQueue,
            progress: BatchProgress) -> Iterator[InputResult]:
    """Take the answer ``value`` of the clip's task into the clip's result; yield the result when it is
    known now. ``kind`` and ``chunk`` are the task as sent (:func:`semflow.batch.workers.send`):
    ``compute`` (the chunk's pairs; the answer: a dict of pairs computed and resumed, wall and stage
    seconds), ``single`` (the whole clip computed and drawn in one pass) or ``finish`` (the clip's drawing),
    both answered with the clip's ``summary.json``; ``value`` is a RayTaskError when the task raised, a
    RayActorError when its worker died."""
    task_back(clip, tasks)
    if clip.result.status != "pending":
        return  # the clip already failed; its finished pairs are kept for --resume
    if isinstance(value, RayActorError):
        lost = lost_worker(value, chunk)
        if kind == "compute" and chunk not in clip.retried:  # once: its finished pairs are kept, not redone
            clip.retried.add(chunk)
            clip.result.warnings.append(f"{lost}; computed them again")  # (batch.json's record of it)
            warn(f"{clip.item.name}: {lost}; computing them again")
            tasks.requeue(clip, kind, chunk)
            return
        yield fail_clip(clip, lost, progress)
        return
    if isinstance(value, RayTaskError):
        yield fail_clip(clip, one_line(value), progress)
        return
    result = clip.result
    if kind == "compute":
        result.computed_pairs += value["computed"]
        result.wall_seconds += value["wall"]
        for name, seconds in value["stages"].items():
            result.stage_seconds[name] = result.stage_seconds.get(name, 0.0) + seconds
        count_pairs(clip, value["computed"] + value["resumed"], progress)
        return
    summary = value
    clip.release()
    result.status, result.summary, result.pairs = "ok", summary, summary["pairs"]
    result.wall_seconds = summary["wall_seconds"]["total"]
    result.stage_seconds = dict(summary["stage_seconds"])
    notes = clip_notes(summary)
    result.warnings += notes
    if summary.get("truncated"):  # as `semflow run` warns (gaps and damaged keyframes: said by check_video)
        warn(notes[0])
    if kind == "single":
        result.computed_pairs = summary["pairs"] - summary["resumed_pairs"]
        count_pairs(clip, summary["pairs"], progress)
    settle_pairs(clip, progress)
    progress.clip_done()
    yield result
