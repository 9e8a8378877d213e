"""Benchmark flow methods on the public datasets and the demo videos; writes BENCHMARKS.md sections.

    python scripts/bench_flow.py ../shared/data                      # all OpenCV methods
    python scripts/bench_flow.py ../shared/data --methods dis-medium,deepflow,discrete --section flow-extra

Section ``flow`` (default): `semflow compare` on middlebury, sintel, kitti, chairs and 8 synthetic
layered scenes (``semflow.synthetic.write_dataset``, seed 7, given labels) with every method in one run,
and `semflow run` on both videos in ``DATA/videos``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from benchlib import machine, today, write_section

from semflow.evaluation import compare, format_table, results_json, summarize
from semflow.io.video import FrameSource
from semflow.methods import OPENCV_METHODS
from semflow.pipeline import RunOptions, run_video
from semflow.synthetic import write_dataset

DATASETS = {"middlebury": "middlebury", "sintel": "sintel", "kitti": "kitti", "chairs": "flyingchairs"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the shared data folder (../shared/data)")
    parser.add_argument("--methods", default=",".join(OPENCV_METHODS))
    parser.add_argument("--section", default="flow")
    parser.add_argument("--videos", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--video-methods", default="dis-medium,semantic:40",
                        help="methods for the video runs; NAME:N reads only the first N frames")
    parser.add_argument("--json", type=Path, default=None, help="also write every result here")
    args = parser.parse_args()
    methods = [m for m in args.methods.split(",") if m]

    command = "python scripts/bench_flow.py " + " ".join(sys.argv[1:])
    lines = [f"## Flow accuracy and speed ({args.section})", "",
             f"`{command}` on {today()}; {machine()}.", "",
             "EPE in px (mean over samples), Fl-all = share of valid pixels with EPE > 3 px and > 5% of |gt| "
             "(KITTI's rule, on every dataset; mean over samples), s/pair median, peak MB while the method ran. "
             "Columns marked (pred): the kinds `semantic` predicted on each sample (the dataset has no labels).", ""]
    every = []
    synthetic_root = Path(tempfile.mkdtemp(prefix="semflow-synthetic-"))
    write_dataset(synthetic_root, count=8, seed=7)
    roots = {dataset: args.data / folder for dataset, folder in DATASETS.items()} | {"synthetic": synthetic_root}
    for dataset, root in roots.items():
        results = compare(dataset, root, methods, progress=False, isolate=True)  # peak MB per method, alone
        every += results
        lines += [f"### {dataset}", "", format_table(summarize(results), markdown=True), ""]
        print(format_table(summarize(results)), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results_json(every), indent=2))

    if args.videos:
        lines += ["### `semflow run` on the videos", "",
                  "Every pair is written (checked against the frames of flow.mp4). Wall time includes reading,"
                  " flow, and encoding flow.mp4 and panel.mp4.", "",
                  "| video | method | resolution | frames read | pairs written | s/pair (median) | wall s |",
                  "|---|---|---|---|---|---|---|"]
        for spec in args.video_methods.split(","):
            name, _, cap = spec.partition(":")
            for video in sorted((args.data / "videos").iterdir()):
                with tempfile.TemporaryDirectory() as tmp:
                    start = time.perf_counter()
                    options = RunOptions(method=name, max_frames=int(cap) if cap else None, progress=False)
                    summary = run_video(video, tmp, options)
                    wall = time.perf_counter() - start
                    frames = len(FrameSource(Path(tmp) / "flow.mp4"))
                assert summary["pairs"] == summary["frames"] - 1 == frames, (summary, frames)
                w, h = summary["resolution"]
                lines.append(f"| {video.name} | {name} | {w}x{h} | {summary['frames']}"
                             f"{' (first ' + cap + ')' if cap else ' (all)'} | {summary['pairs']} "
                             f"| {summary['seconds_per_pair']['median']:.3f} | {wall:.0f} |")
                print(lines[-1], flush=True)
    write_section(args.section, "\n".join(lines))


if __name__ == "__main__":
    main()
