"""The driver's round of clip checks (:class:`semflow.batch.checks.CheckRound`), on stand-ins for the clips:
the tasks it counts, when the tasks must wait for the next check, and the keyframe probes it starts ahead."""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from semflow.batch import checks
from semflow.batch.checks import CheckRound


def clip(path: Path, *, planned: int = 0, chunks: int | None = None, prepared: bool = True,
         status: str = "pending") -> Any:
    """A stand-in for a batch's ClipState: ``chunks`` left once its folder is opened (None: not opened)."""
    return SimpleNamespace(item=SimpleNamespace(path=str(path)), planned=planned, opened=chunks is not None,
                           chunks=[None] * (chunks or 0), prepared=prepared,
                           result=SimpleNamespace(status=status, out_dir=str(path.with_suffix(""))))


@pytest.fixture
def probes(monkeypatch) -> list[tuple]:
    """What the round asks of keyframes_ahead: ("begin", paths, whole), ("ahead", k), ("end",)."""
    said: list[tuple] = []

    @contextlib.contextmanager
    def ahead(paths: list[Path], *, whole: bool = True):
        said.append(("begin", [p.name for p in paths], whole))
        try:
            yield lambda k: said.append(("ahead", k))
        finally:
            said.append(("end",))

    monkeypatch.setattr(checks, "keyframes_ahead", ahead)
    return said


def test_the_tasks_of_the_clips_checked_before_are_counted_at_the_start(tmp_path: Path, probes) -> None:
    """A clip opened counts the chunks it has left; one not opened its plan (at least 1: its drawing); clips
    finished, failed or not checked yet count none."""
    earlier = [clip(tmp_path / "a.mp4", planned=5, chunks=3), clip(tmp_path / "b.mp4", planned=0),
               clip(tmp_path / "c.mp4", planned=4, status="ok")]
    new = [clip(tmp_path / "d.mp4", planned=2, prepared=False)]
    round_ = CheckRound()
    round_.begin(new, earlier + new, whole=True, fresh=False)
    assert round_.tasks == 3 + 1


def test_a_clip_checked_adds_its_tasks_when_it_is_pending(tmp_path: Path, probes) -> None:
    clips = [clip(tmp_path / f"{name}.mp4", planned=planned, prepared=False) for name, planned in
             (("a", 3), ("b", 0), ("c", 2))]
    round_ = CheckRound()
    round_.begin(clips, clips, whole=True, fresh=False)
    counted = []
    while (checked := round_.next()) is not None:
        if checked is clips[2]:
            checked.result.status = "failed"  # (its check failed)
        round_.checked(checked)
        counted.append(round_.tasks)
    assert counted == [3, 4, 4]


def test_the_tasks_wait_for_the_last_clip_whose_folder_a_fresh_batch_clears(tmp_path: Path, probes) -> None:
    clips = [clip(tmp_path / f"c{k}.mp4", prepared=False) for k in range(4)]
    for k in (0, 2):  # (folders of an earlier run)
        (tmp_path / f"c{k}").mkdir()
    for fresh, held in ((True, [True, True, True, False, False]), (False, [False] * 5)):
        round_ = CheckRound()
        round_.begin(clips, clips, whole=True, fresh=fresh)
        holding = [round_.holding(None)]
        while round_.next() is not None:
            holding.append(round_.holding(None))
        assert holding == held, fresh


def test_the_tasks_wait_until_there_are_as_many_as_workers_wanted(tmp_path: Path, probes) -> None:
    clips = [clip(tmp_path / f"c{k}.mp4", planned=1, prepared=False) for k in range(3)]
    round_ = CheckRound()
    round_.begin(clips, clips, whole=True, fresh=False)
    holding = []
    while (checked := round_.next()) is not None:
        round_.checked(checked)
        holding.append((round_.tasks, round_.holding(2), round_.holding(None)))
    assert holding == [(1, True, False), (2, False, False), (3, False, False)]
    assert not round_.holding(5)  # (every clip checked: nothing to wait for, however few the tasks)


def test_each_check_starts_the_probes_of_the_clips_after_it(tmp_path: Path, probes) -> None:
    """The clips come in order, each after ``ahead`` of its own index; the next round (clips submitted since)
    ends the last one's probes first, and a round whose clips are all given ends them at the next call."""
    clips = [clip(tmp_path / f"c{k}.mp4", prepared=False) for k in range(2)]
    round_ = CheckRound()
    round_.begin(clips, clips, whole=False, fresh=False)
    assert [round_.next(), round_.next()] == clips and round_.left is False
    later = [clip(tmp_path / "c2.mp4", prepared=False)]
    round_.begin(later, clips + later, whole=True, fresh=False)
    assert [round_.next(), round_.next()] == [*later, None]
    assert probes == [("begin", ["c0.mp4", "c1.mp4"], False), ("ahead", 0), ("ahead", 1), ("end",),
                      ("begin", ["c2.mp4"], True), ("ahead", 0), ("end",)]
