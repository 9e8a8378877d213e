"""The finished segments of a run's intermediate (semflow/flow_segments.py) on files named as segments."""

from __future__ import annotations

import os
from pathlib import Path

from semflow.flow_segments import Segments


def _segment(folder: Path, first: int, pairs: int, size: int) -> Path:
    path = folder / f"{first:06d}-{pairs:04d}-f-64x48-64x48.mkv"
    path.write_bytes(bytes(size))
    return path


def test_covered_counts_each_pair_once_within_the_range(tmp_path: Path) -> None:
    _segment(tmp_path, 0, 50, 10)
    _segment(tmp_path, 100, 50, 10)
    _segment(tmp_path, 120, 10, 10)  # (inside the one before: a chunk computed twice)
    segments = Segments(tmp_path)
    assert segments.covered(0, 200) == 100
    assert segments.covered(40, 120) == 30
    assert segments.covered(50, 100) == 0


def test_a_segment_gone_before_it_was_sized_counts_no_bytes(tmp_path: Path) -> None:
    _segment(tmp_path, 0, 50, 100)
    gone = _segment(tmp_path, 50, 50, 200)
    segments = Segments(tmp_path)
    assert segments.covered(0, 100) == 100  # listed, not sized yet
    stamp = tmp_path.stat().st_mtime_ns
    gone.unlink()
    os.utime(tmp_path, ns=(stamp, stamp))  # (as if removed at the very moment of the listing)
    assert segments.bytes() == 100


def test_a_damaged_segment_is_not_listed_again(tmp_path: Path) -> None:
    _segment(tmp_path, 0, 5, 64)  # not a video
    segments = Segments(tmp_path)
    assert segments.find(2) is not None
    assert segments.read(2) is None  # its pairs are computed again
    assert segments.find(2) is None  # (a search for a pair not found lists the folder again)
