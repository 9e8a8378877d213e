"""summary.json as ``semflow run`` writes it (run_summary.write_summary): the same text as ``dumps_strict(summary,
indent=2)``, written without holding that text, or a string for each listed output, whole."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from semflow.io.jsonfile import dumps_strict
from semflow.run_summary import write_summary


class _Store:
    """What write_summary asks of a RunStore: the summary's path, what the run wrote, the cleanup."""

    def __init__(self, folder: Path, written: list[str]) -> None:
        self.folder, self.listed, self.cleaned = folder, written, False

    def claim(self, relative: str) -> Path:
        return self.folder / relative

    def written(self, pairs: int) -> list[str]:
        return self.listed

    def cleanup(self) -> None:
        self.cleaned = True


def _summary(pairs: int) -> dict[str, Any]:
    return {"pairs": pairs, "method": "dis-ultrafast, ünïcode ✓", "max_flow_px": np.float32(2.5),
            "wall_seconds": {"total": 1.25, "per_pair": float("nan")}, "temporal": {"flicker": float("inf"), "jump": None},
            "resolution": [96, 72], "outputs": {"flow_video": "flow.mp4", "flo_dir": "flo"}}


def test_the_summary_is_the_strict_json_text_of_the_run(tmp_path: Path) -> None:
    """NaN and infinities as null, numpy numbers as Python's, UTF-8, indented by 2, no newline at the end."""
    written = ["flo/", *(f"flo/{k:06d}.flo" for k in range(5)), "flow.mp4", "summary.json"]
    store = _Store(tmp_path, written)
    summary = write_summary(store, _summary(5))
    assert (tmp_path / "summary.json").read_bytes() == dumps_strict(summary, indent=2).encode("utf-8")
    assert summary["outputs"]["written"] == written and store.cleaned


def test_a_summary_that_cannot_be_written_leaves_the_work_folder(monkeypatch, tmp_path: Path) -> None:
    """The work folder (the run's records, what a resume reads) is dropped only once summary.json stands."""
    import semflow.run_summary as run_summary

    def fail(path, data, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(run_summary, "write_json_atomic", fail)
    store = _Store(tmp_path, ["summary.json"])
    with pytest.raises(OSError, match="No space"):
        write_summary(store, _summary(5))
    assert not store.cleaned


def test_writing_a_long_runs_summary_holds_no_string_for_each_listed_file(tmp_path: Path) -> None:
    """summary.json's text was made whole first, and indented JSON is encoded as a string for each list
    item (about 115 bytes a listed .flo file at the end of the run, where its memory peaks): it is written as
    it is encoded now."""
    pairs = 20000
    store = _Store(tmp_path, ["flo/", *(f"flo/{k:06d}.flo" for k in range(pairs))])
    summary = _summary(pairs)
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        write_summary(store, summary)
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    assert (tmp_path / "summary.json").stat().st_size > 20 * pairs
    assert peak < 24 * pairs, f"{peak / pairs:.0f} bytes a listed file"



def test_the_per_pair_figures_of_a_run_divide_its_totals_by_its_pairs(make_frames, tmp_path: Path) -> None:
    import math

    from semflow.pipeline import RunOptions, run_video

    summary = run_video(make_frames(5), tmp_path / "out", RunOptions(method="dis-fast"))
    pairs, seconds, wall = summary["pairs"], summary["seconds_per_pair"], summary["wall_seconds"]
    assert pairs == 4 and summary["frames"] == 5
    assert math.isclose(seconds["mean"] * pairs, seconds["total"], rel_tol=1e-9)  # (the mean, not the median)
    assert math.isclose(wall["per_pair"] * pairs, wall["total"], rel_tol=1e-9)
    stages = summary["stage_seconds"]
    assert stages["flow"] > 0 and summary["stage_seconds_per_pair"].keys() == stages.keys()
    for name, total in stages.items():
        assert math.isclose(summary["stage_seconds_per_pair"][name] * pairs, total, rel_tol=1e-9), name


def test_the_flow_magnitudes_of_a_run_are_the_mean_and_max_of_its_pairs(make_frames, tmp_path: Path) -> None:
    """flow_magnitude_px: the mean of the pairs' mean and 95th-percentile magnitudes, and the largest of their
    maxima (metrics.flow_stats of each pair's saved .flo, float32 bit for bit)."""
    import statistics

    from semflow.io.flow import read_flow
    from semflow.metrics import flow_stats
    from semflow.pipeline import RunOptions, run_video

    out = tmp_path / "out"
    summary = run_video(make_frames(5), out, RunOptions(method="dis-fast", save_flo=True))
    stats = [flow_stats(read_flow(path)) for path in sorted((out / "flo").glob("*.flo"))]
    assert len(stats) == summary["pairs"] == 4
    p95 = [s["p95"] for s in stats]
    assert max(p95) > min(p95)  # (else a maximum of them would pass as their mean)
    magnitude = summary["flow_magnitude_px"]
    assert magnitude["mean"] == pytest.approx(statistics.fmean(s["mean"] for s in stats), rel=1e-9)
    assert magnitude["p95_mean"] == pytest.approx(statistics.fmean(p95), rel=1e-9)
    assert magnitude["max"] == max(s["max"] for s in stats)
