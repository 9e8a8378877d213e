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


def test_a_segment_shorter_than_its_name_is_decoded_once(tmp_path: Path, monkeypatch) -> None:
    """A segment that ends before the pairs its name gives (cut short by a copy, say) is damaged: its
    missing pairs are computed again without each one decoding it again from the start."""
    import numpy as np

    import semflow.flow_segments as flow_segments
    from semflow.flowvideo import SegmentWriter

    flows = [np.full((8, 10, 2), k + 1, np.float32) for k in range(6)]
    writer = SegmentWriter(tmp_path, 0, (8, 10), "f", 4000, limit=6)
    for flow in flows:
        writer.add((flow, None, None))
    path = writer.close()
    short = tmp_path / path.name.replace("-000006-", "-000009-")  # three pairs more than it holds
    path.rename(short)
    opened = []
    real = flow_segments.read_segment
    monkeypatch.setattr(flow_segments, "read_segment", lambda *a, **k: opened.append(a[0]) or real(*a, **k))
    segments = Segments(tmp_path)
    assert np.allclose(segments.read(5)[0], flows[5], atol=0.1)
    assert [segments.read(k) for k in (6, 7, 8)] == [None, None, None]  # computed again
    assert len(opened) == 1
    assert segments.find(7) is None
