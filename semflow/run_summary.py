"""The ``summary.json`` of a clip that ``semflow run`` (or a batch's drawing task) finished.

:func:`make_summary` gathers it from the clip's pair records and what the run measured (wall seconds per
:data:`STAGES`); :func:`write_summary` writes it, the last file of a run, and drops the work folder.
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

from semflow.io.jsonfile import write_json_atomic

if TYPE_CHECKING:
    from semflow.baseline.base import FlowMethod
    from semflow.io.video import FrameSource
    from semflow.pair_records import RecordTable
    from semflow.run_options import RunOptions
    from semflow.runstore import RunStore

__all__ = ["STAGES", "make_summary", "write_summary"]

STAGES = ("read", "flow", "stats", "draw", "write")
"""The stages whose wall seconds a summary reports: reading frames, computing flow (while drawing: waiting
for the pair's flow, computed or loaded one pair ahead in a second thread), the per-pair statistics for
the normaliser, drawing the colour frames, and writing files, videos and the plot."""


def make_summary(source: FrameSource, method: FlowMethod, records: RecordTable, max_flow: float,
                 options: RunOptions, *, wall_seconds: float, computed: int, stages: dict[str, float],
                 render_from: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``summary.json`` of a clip: compute seconds per pair beside wall seconds per pair and stage.

    ``wall_seconds``: the wall time this invocation spent on the clip (in a batch: summed over its
    tasks); ``stages``: its wall seconds per stage (:data:`STAGES`). Per-pair figures divide by all pairs,
    so they understate a resumed run's cost per computed pair."""
    seconds = records.column("seconds").tolist()  # (Python floats: the sum below adds them as they were)
    pairs = len(records)
    h, w = source.frame_size()  # (of the first frame, after max_side: known without decoding it again)
    return {
        "method": method.name,
        "mode": "pairwise" if options.pairwise else "video",
        "video": str(source.path),
        "frames": pairs + 1,
        "pairs": pairs,
        "resolution": [w, h],
        "fps": source.fps,
        "seconds_per_pair": {  # compute seconds of the method alone
            "mean": statistics.fmean(seconds), "median": statistics.median(seconds), "total": float(sum(seconds)),
        },
        "wall_seconds": {"total": wall_seconds, "per_pair": wall_seconds / pairs},
        "stage_seconds": dict(stages),
        "stage_seconds_per_pair": {name: value / pairs for name, value in stages.items()},
        "render_from": render_from,
        "resumed_pairs": pairs - computed,
        "max_flow_px": max_flow,
        "flow_magnitude_px": {
            "mean": statistics.fmean(records.column("mean")),
            "p95_mean": statistics.fmean(records.column("p95")),
            "max": float(records.column("max").max()),
        },
        "outputs": {
            "flow_video": "flow.mp4", "panel_video": "panel.mp4", "plot": "plot.png",
            "flo_dir": "flo" if options.save_flo else None,
        },
        "settings": options.fingerprint(source.path, method),
        # a cut clip: what its container declares or (Matroska...) estimates, as its warning says; else its frames,
        # those read where a header counted fewer (an AVI's that says 1 of its 12: every pair is run, not one)
        "frames_expected": max(len(source), pairs + 1) if (short := source.shortfall()) is None
        else source.frames_declared,
        "truncated": short is not None,
        "frame_gaps": source.numbering_note,  # a frames folder whose numbers skip (None: none skip)
        "damaged_keyframes": source.damage_note,  # a video file's keyframes FFmpeg decoded damaged (None: none)
        **(extra or {}),
    }


def write_summary(store: RunStore, summary: dict[str, Any]) -> dict[str, Any]:
    """Write ``summary.json`` (strict JSON; with the list of what the run wrote when it holds a locked
    output folder), then drop the work folder. Returns the summary."""
    path = store.claim("summary.json")
    summary["outputs"]["written"] = store.written(summary["pairs"])
    write_json_atomic(path, summary, indent=2)
    store.cleanup()
    return summary
