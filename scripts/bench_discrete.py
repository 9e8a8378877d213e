"""Benchmark the DiscreteFlow-style baseline; writes the ``discrete`` section of BENCHMARKS.md.

    python scripts/bench_discrete.py ../shared/data [--json out/bench_discrete.json] [--repeats 5]

1. Accuracy: `semflow compare`'s API (semflow.evaluation.compare) on middlebury, sintel, kitti and
   chairs with ``discrete`` (default preset) beside every OpenCV method, in one run per dataset.
2. Presets: every preset on every dataset, plus its speed on a 1024x436 Sintel pair (median of
   ``--repeats`` runs, stage by stage) and peak memory.
3. Ablation: the default preset with one stage switched off at a time (propagation, scale-tolerant
   costs, windowed search on finer levels, CRF, sub-pixel refinement, variational refinement, the search
   for missed motions, the sharpening), and with DAISY instead of the SIFT-like descriptor.
4. Steadiness: the default preset and the CRF variants on each pair and on three altered copies of
   it (mirrored left-right, cropped by a few pixels, both), since one KITTI pair or three Chairs
   pairs move by whole points with small numerical changes.
5. Descriptor cost: seconds per 1024x436 frame for the SIFT-like descriptor, DAISY and kornia's SIFT.

Every row is ``discrete`` in pair mode as ``get_method`` builds it (as `semflow flow --method discrete` and
`semflow run --method discrete --pairwise` run it): with its two boundary stages, the search for missed
motions and the sharpening (on by default since 2026-12-02; the ablation has a row without each), and its
ring step (on by default since 2026-12-06; section rings has it off and on side by side). The section's
tables before 2026-12-05 measured it without the boundary stages, before 2026-12-06 without the ring step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
from benchlib import machine, today, write_section

from semflow.baseline.discrete import DEFAULT_PRESET, PRESETS
from semflow.baseline.discrete.descriptors import DESCRIPTORS
from semflow.evaluation import compare, results_json, summarize
from semflow.io.datasets import load_dataset
from semflow.io.images import read_image
from semflow.memory import PeakMemory
from semflow.methods import OPENCV_METHODS, get_method
from semflow.metrics import epe, fl_all

DATASETS = {"middlebury": "middlebury", "sintel": "sintel", "kitti": "kitti", "chairs": "flyingchairs"}
SPEED_PAIR = ("sintel/training/clean/alley_1/frame_0002.png", "sintel/training/clean/alley_1/frame_0003.png")
ABLATIONS = {
    "full (default preset)": {},
    "no propagation (no neighbour / DIS candidates)": {"propagation": False},
    "no scale-tolerant costs (shrink off)": {"shrink": 1.0},
    "no windowed search on finer levels": {"search_pixels": 0},
    "no keypoint matches (keypoint_radius 0)": {"keypoint_radius": 0},
    "plain 2 px forward-backward test (fb_relative 0)": {"fb_relative": 0.0},
    "CRF's choice as the flow (crf_check 0, as in DiscreteFlow)": {"crf_check": 0.0},
    "no CRF (best match per point, unchecked)": {"crf": False},
    "no sub-pixel refinement of matches": {"subpixel": False},
    "no variational refinement": {"refine": False},
    "DAISY instead of SIFT-like descriptor": {"descriptor": "daisy"},
    "no search for missed motions (missed_motions off)": {"missed_motions": False},
    "no sharpening (--no-sharpen)": {"sharpen": False},
}


def accuracy_row(results) -> dict[str, tuple[float, float]]:
    """dataset -> (mean EPE, mean Fl-all) over its samples."""
    return {row["dataset"]: (row["epe"], row["fl_all"]) for row in summarize(results)}


def run_discrete(data: Path, options: dict) -> tuple[dict, list]:
    every = []
    for dataset, folder in DATASETS.items():
        opts = {f"discrete.{k}": v for k, v in options.items()}
        every += compare(dataset, data / folder, ["discrete"], method_options=opts, progress=False)
    return accuracy_row(every), every


STEADINESS = ["full (default preset)", "no keypoint matches (keypoint_radius 0)",
              "CRF's choice as the flow (crf_check 0, as in DiscreteFlow)",
              "no CRF (best match per point, unchecked)"]


def altered_copies(sample):
    """The pair itself, mirrored left-right, cropped by (3, 2) px, and mirrored then cropped by (1, 3):
    yields (img1, img2, flow, valid)."""
    a, b, flow, valid = sample.img1, sample.img2, sample.flow, sample.valid
    mirrored = (a[:, ::-1], b[:, ::-1], flow[:, ::-1] * np.float32([-1, 1]), valid[:, ::-1])
    for (a_, b_, f_, v_), (dy, dx) in (((a, b, flow, valid), (0, 0)), (mirrored, (0, 0)),
                                      ((a, b, flow, valid), (3, 2)), (mirrored, (1, 3))):
        yield (np.ascontiguousarray(x[dy:, dx:]) for x in (a_, b_, f_, v_))


def steadiness(data: Path, options: dict) -> dict[str, tuple[float, float]]:
    """dataset -> (mean EPE, mean Fl-all) over every pair's :func:`altered_copies`."""
    method = get_method("discrete", **options)
    out = {}
    for dataset, folder in DATASETS.items():
        epes, fls = [], []
        for ref in load_dataset(dataset, data / folder):
            for img1, img2, flow, valid in altered_copies(ref.load()):
                estimate = method(img1, img2)
                epes.append(epe(estimate, flow, valid))
                fls.append(fl_all(estimate, flow, valid))
        out[dataset] = (float(np.mean(epes)), float(np.mean(fls)))
    return out


def speed(data: Path, options: dict, repeats: int) -> dict:
    img1, img2 = (read_image(data / p) for p in SPEED_PAIR)
    method = get_method("discrete", **options)
    method(img1, img2)  # warm up
    seconds, stages = [], []
    with PeakMemory() as memory:
        for _ in range(repeats):
            start = time.perf_counter()
            method(img1, img2)
            seconds.append(time.perf_counter() - start)
            stages.append(dict(method.last_timings))
    median_stages = {k: statistics.median(s[k] for s in stages) for k in stages[0]}
    return {"seconds": statistics.median(seconds), "min": min(seconds), "peak_mb": memory.peak_mb,
            "stages": median_stages}


def fmt(acc: dict[str, tuple[float, float]]) -> str:
    mb, si, ki, ch = (acc.get(d, (float("nan"),) * 2) for d in DATASETS)
    return f"{mb[0]:.3f} | {si[0]:.3f} | {ki[1] * 100:.1f}% | {ki[0]:.2f} | {ch[0]:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the shared data folder (../shared/data)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    report: dict = {}
    command = "python scripts/bench_discrete.py " + " ".join(sys.argv[1:])
    lines = ["## DiscreteFlow-style baseline (`discrete`)", "",
             f"`{command}` on {today()}; {machine()}; torch threads and OpenCV threads at their defaults.",
             "A re-implementation after Menze, Heipke and Geiger (GCPR 2015); these are its own numbers, "
             "not the paper's. Every row is `discrete` in pair mode as `semflow flow --method discrete` and "
             "`semflow run --method discrete --pairwise` run it, with its two boundary stages (the search for "
             "missed motions and the sharpening; the ablation has a row without each) and its ring step (section "
             "rings has it off and on side by side); the tables before 2026-12-05 measured it without the boundary "
             "stages, before 2026-12-06 without the ring step.", "",
             "EPE in px, mean over a dataset's pairs (Middlebury 8, Sintel alley_1 frame 2->3 clean + final, "
             "KITTI 1, FlyingChairs 3); Fl-all = share of valid pixels with EPE > 3 px and > 5% of |gt|. "
             "s/pair (Sintel) in the first and the ablation tables: the median of the two Sintel pairs' seconds, "
             "each timed once as it ran for its accuracy; such cells swing by 10-30 % from run to run. The "
             "presets table times one pair again and again: its medians are the speed figures to quote.", ""]

    # 1. discrete beside the OpenCV methods, one compare run per dataset.
    methods = ["discrete", *OPENCV_METHODS]
    lines += ["### Beside the OpenCV methods (same run, default preset)", "",
              "| method | Middlebury EPE | Sintel EPE | KITTI Fl-all | KITTI EPE | Chairs EPE | s/pair (Sintel) |",
              "|---|---|---|---|---|---|---|"]
    every = []
    for dataset, folder in DATASETS.items():
        every += compare(dataset, args.data / folder, methods, progress=False)
    report["compare"] = results_json(every)
    rows = summarize(every)
    for name in methods:
        acc = {r["dataset"]: (r["epe"], r["fl_all"]) for r in rows if r["method"] == name}
        sec = next(r["seconds"] for r in rows if r["method"] == name and r["dataset"] == "sintel")
        lines.append(f"| {name} | {fmt(acc)} | {sec:.2f} |")
        print(name, fmt(acc), f"{sec:.2f}", flush=True)
    lines.append("")

    # 2. Presets: accuracy, speed, memory.
    lines += ["### Presets", "",
              f"Speed: median of {args.repeats} runs on one 1024x436 Sintel pair after a warm-up; peak MB = "
              "resident memory of the whole process while those runs ran.", "",
              "| preset | Middlebury EPE | Sintel EPE | KITTI Fl-all | KITTI EPE | Chairs EPE | s/pair median (min) "
              "| peak MB | stages (s) |",
              "|---|---|---|---|---|---|---|---|---|"]
    report["presets"] = {}
    for preset in PRESETS:
        acc, _ = run_discrete(args.data, {"preset": preset})
        sp = speed(args.data, {"preset": preset}, args.repeats)
        stages = ", ".join(f"{k} {v:.2f}" for k, v in sp["stages"].items())
        label = f"{preset} (default)" if preset == DEFAULT_PRESET else preset
        lines.append(f"| {label} | {fmt(acc)} | {sp['seconds']:.2f} ({sp['min']:.2f}) | {sp['peak_mb']:.0f} "
                     f"| {stages} |")
        report["presets"][preset] = {"accuracy": acc, "speed": sp, "params": asdict(PRESETS[preset])}
        print(preset, fmt(acc), sp, flush=True)
    lines.append("")

    # 3. Ablation on the default preset.
    lines += ["### Ablation (default preset, one stage off at a time)", "",
              "| variant | Middlebury EPE | Sintel EPE | KITTI Fl-all | KITTI EPE | Chairs EPE | s/pair (Sintel) |",
              "|---|---|---|---|---|---|---|"]
    report["ablation"] = {}
    for label, options in ABLATIONS.items():
        acc, results = run_discrete(args.data, options)
        sec = statistics.median(r.seconds for r in results if r.dataset == "sintel")
        lines.append(f"| {label} | {fmt(acc)} | {sec:.2f} |")
        report["ablation"][label] = {"options": options, "accuracy": acc, "sintel_seconds": sec}
        print(label, fmt(acc), f"{sec:.2f}", flush=True)
    lines.append("")

    # 4. Steadiness over mirrored and cropped copies of every pair.
    lines += ["### Steadiness: each pair and three altered copies (mirrored, cropped by 2-3 px, both)", "",
              "Mean over 4 versions of every pair, so that a variant is not judged on one grid alignment.", "",
              "| variant | Middlebury EPE | Sintel EPE | KITTI Fl-all | KITTI EPE | Chairs EPE |",
              "|---|---|---|---|---|---|"]
    report["steadiness"] = {}
    for label in STEADINESS:
        acc = steadiness(args.data, ABLATIONS[label])
        lines.append(f"| {label} | {fmt(acc)} |")
        report["steadiness"][label] = acc
        print("steadiness", label, fmt(acc), flush=True)
    lines.append("")

    # 5. Descriptor cost.
    gray = cv2.cvtColor(read_image(args.data / SPEED_PAIR[0]), cv2.COLOR_RGB2GRAY)
    lines += ["### Dense descriptors: seconds per 1024x436 frame (full 128/104-d, every pixel)", "",
              "| descriptor | seconds |", "|---|---|"]
    report["descriptors"] = {}
    for name, fn in DESCRIPTORS.items():
        fn(gray[:64, :64])
        start = time.perf_counter()
        fn(gray)
        sec = time.perf_counter() - start
        lines.append(f"| {name} | {sec:.2f} |")
        report["descriptors"][name] = sec
        print(name, f"{sec:.2f}", flush=True)
    lines.append("")

    # 6. The minimum targets, default preset (speed of the fast preset too).
    default = report["presets"][DEFAULT_PRESET]
    acc, sp = default["accuracy"], default["speed"]
    checks = [
        ("Middlebury mean EPE <= 0.30 px", acc["middlebury"][0], 0.30, "{:.3f}"),
        ("Sintel alley_1 mean EPE <= 0.20 px", acc["sintel"][0], 0.20, "{:.3f}"),
        ("KITTI Fl-all <= 35%", acc["kitti"][1] * 100, 35.0, "{:.1f}%"),
        ("FlyingChairs mean EPE <= 2.5 px", acc["chairs"][0], 2.5, "{:.3f}"),
        ("default preset <= 3 s per 1024x436 pair", sp["seconds"], 3.0, "{:.2f} s"),
        ("default preset peak memory <= 2 GB", sp["peak_mb"] / 1024, 2.0, "{:.2f} GB"),
        ("fast preset <= 1 s per 1024x436 pair", report["presets"]["fast"]["speed"]["seconds"], 1.0, "{:.2f} s"),
    ]
    lines += ["### Issue targets (default preset)", "", "| target | measured | met |", "|---|---|---|"]
    for label, value, limit, form in checks:
        lines.append(f"| {label} | {form.format(value)} | {'yes' if value <= limit else '**no**'} |")
    lines.append("")

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str))
    if not args.no_write:
        write_section("discrete", "\n".join(lines))


if __name__ == "__main__":
    main()
