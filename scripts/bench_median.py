"""``discrete`` with and without its weighted median option (``median_radius``); writes the ``median``
section of BENCHMARKS.md. ``discrete`` runs without its two last stages (the search for missed motions,
the sharpening: on by default since 2026-12-02, and after the median), as the section first measured it.

    OPENBLAS_NUM_THREADS=1 python scripts/bench_median.py ../shared/data [--versions 16] [--hard 8] [--no-write]

The option ends ``discrete`` with a colour-weighted median of the flow
(``semflow.baseline.discrete.densify.weighted_median``), which puts motion boundaries back on colour
edges. ``discrete`` runs once per pair in a child process (seconds and peak MB of the method); the
median step runs here on that flow and is timed alone. On the first copy of every pair the script
also runs ``discrete`` with ``median_radius`` set and checks that it gives the same flow, so the
rows are the option's. Each flow is also sharpened (``--sharpen``'s step), to show how the two combine.

- the hard synthetic scenes of section things (``--hard`` of them, seed 5000) and as many held-out
  ones (seed 40000): EPE, things EPE, the 5 px band inside thing outlines and the rest of the things;
- the real data on ``--versions`` altered copies of every pair (as section keypoints: mirrored or
  not, cropped by 0-3 px; single pairs are chaotic), and the pairs as they are.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_keypoints import CROPS, versions  # noqa: E402
from benchlib import hard_scenes, machine, today, write_section  # noqa: E402

from semflow.baseline.discrete.densify import weighted_median  # noqa: E402
from semflow.baseline.discrete.presets import PRESETS  # noqa: E402
from semflow.flow_jumps import near_jumps  # noqa: E402
from semflow.io.datasets import load_dataset  # noqa: E402
from semflow.isolation import IsolatedMethod  # noqa: E402
from semflow.metrics import endpoint_error, epe, fl_all  # noqa: E402
from semflow.sharpen import sharpen_boundaries  # noqa: E402

RADIUS = 15
DATASETS = {"middlebury": "middlebury", "sintel": "sintel", "kitti": "kitti", "chairs": "flyingchairs"}
HARD_SEEDS = {"hard": 5000, "held-out": 40000}
PLAIN, MEDIAN = "discrete", f"discrete median_radius={RADIUS}"
LABELS = [PLAIN, MEDIAN, f"{PLAIN} --sharpen", f"{MEDIAN} --sharpen"]


class Runs:
    """Figures per (group, label); the method's seconds and peak MB, and the median step's seconds, per group."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], list[tuple[float, ...]]] = {}
        self.first: dict[tuple[str, str], list[tuple[float, ...]]] = {}
        self.seconds: dict[str, list[float]] = {}
        self.step: dict[str, list[float]] = {}
        self.peak = 0.0


def four_flows(runs: Runs, group: str, method: IsolatedMethod, check: IsolatedMethod | None,
               img1: np.ndarray, img2: np.ndarray) -> dict[str, np.ndarray]:
    """The flows of :data:`LABELS` for one pair; with ``check``, the option's own flow must equal the step's."""
    result, seconds, peak = method.estimate(img1, img2)
    runs.seconds.setdefault(group, []).append(seconds)
    runs.peak = max(runs.peak, peak)
    start = time.perf_counter()
    median = weighted_median(img1, result.flow, radius=RADIUS, where=near_jumps(result.flow))
    runs.step.setdefault(group, []).append(time.perf_counter() - start)
    if check is not None and not np.array_equal(check.estimate(img1, img2)[0].flow, median):
        raise SystemExit(f"{group}: the median step differs from discrete median_radius={RADIUS}'s flow")
    flows = {PLAIN: result.flow, MEDIAN: median}
    for label in (PLAIN, MEDIAN):
        flows[f"{label} --sharpen"] = sharpen_boundaries(img1, img2, flows[label])[0]
    return flows


def hard_rows(runs: Runs, count: int, method: IsolatedMethod, check: IsolatedMethod) -> None:
    for group, i, s, things, band, inner in hard_scenes(HARD_SEEDS, count):
        flows = four_flows(runs, group, method, check if i == 0 else None, s.img1, s.img2)
        for label, flow in flows.items():
            err = endpoint_error(flow, s.flow)
            runs.rows.setdefault((group, label), []).append(
                (err.mean(), err[things].mean(), err[band].mean(), err[inner].mean()))
        print(group, i, "; ".join(f"{k} {runs.rows[group, k][-1][0]:.3f}" for k in LABELS), flush=True)


def real_rows(runs: Runs, data: Path, count: int, method: IsolatedMethod, check: IsolatedMethod) -> None:
    for dataset, folder in DATASETS.items():
        for ref in load_dataset(dataset, data / folder):
            sample = ref.load()
            for v, (img1, img2, flow, valid) in enumerate(versions(sample, count)):
                flows = four_flows(runs, dataset, method, check if v == 0 else None, img1, img2)
                for label, f in flows.items():
                    score = (epe(f, flow, valid), fl_all(f, flow, valid))
                    runs.rows.setdefault((dataset, label), []).append(score)
                    if v == 0:
                        runs.first.setdefault((dataset, label), []).append(score)
            print(dataset, sample.name, "; ".join(
                f"{k} {np.mean([e for e, _ in runs.rows[dataset, k][-count:]]):.3f}" for k in LABELS), flush=True)


def hard_table(runs: Runs, group: str) -> str:
    lines = ["| flow | EPE | things EPE | band EPE (5 px) | inside-band EPE | band / inside |", "|---|---|---|---|---|---|"]
    for label in LABELS:
        e, t, b, n = np.mean(runs.rows[group, label], axis=0)
        lines.append(f"| {label} | {e:.3f} | {t:.3f} | {b:.3f} | {n:.3f} | {b / n:.2f} |")
    return "\n".join(lines)


def real_table(source: dict) -> str:
    lines = ["| flow | " + " | ".join(f"{d} EPE | {d} Fl %" for d in DATASETS) + " |", "|---|" + "---|---|" * len(DATASETS)]
    for label in LABELS:
        lines.append(f"| {label} | " + " | ".join(
            f"{np.mean([e for e, _ in source[d, label]]):.3f} | {100 * np.mean([f for _, f in source[d, label]]):.2f}"
            for d in DATASETS) + " |")
    for with_median, without in ((MEDIAN, PLAIN), (f"{MEDIAN} --sharpen", f"{PLAIN} --sharpen")):
        cells = []
        for d in DATASETS:
            (e1, f1), (e0, f0) = (np.mean(source[d, k], axis=0) for k in (with_median, without))
            cells.append(f"{100 * (e1 / e0 - 1):+.1f} % | {100 * (f1 - f0):+.2f} pts")
        lines.append(f"| change, {with_median} vs {without} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the shared data folder (../shared/data)")
    parser.add_argument("--versions", type=int, default=16, help=f"copies per pair, even, at most {2 * len(CROPS)}")
    parser.add_argument("--hard", type=int, default=8, help="hard synthetic scenes per seed group")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch BENCHMARKS.md")
    args = parser.parse_args()
    if args.versions < 2 or args.versions % 2 or args.versions > 2 * len(CROPS):
        raise SystemExit(f"--versions must be even, from 2 to {2 * len(CROPS)}")
    runs = Runs()
    plain = {"sharpen": False, "missed_motions": False}  # (discrete's last two stages run after its median)
    with IsolatedMethod("discrete", plain) as method, \
            IsolatedMethod("discrete", {**plain, "median_radius": RADIUS}) as check:
        hard_rows(runs, args.hard, method, check)
        real_rows(runs, args.data, args.versions, method, check)
    lower = {d: sum(a[0] < b[0] for a, b in zip(runs.rows[d, MEDIAN], runs.rows[d, PLAIN])) for d in DATASETS}
    cost = ["| | " + " | ".join([*HARD_SEEDS, *DATASETS]) + " |", "|---|" + "---|" * (len(HARD_SEEDS) + len(DATASETS)),
            "| discrete s/pair (median) | " + " | ".join(f"{np.median(runs.seconds[g]):.2f}" for g in [*HARD_SEEDS, *DATASETS]) + " |",
            "| median step s (median) | " + " | ".join(f"{np.median(runs.step[g]):.3f}" for g in [*HARD_SEEDS, *DATASETS]) + " |"]
    command = " ".join(["OPENBLAS_NUM_THREADS=1 python scripts/bench_median.py", *sys.argv[1:]])
    preset = PRESETS["balanced"]
    text = "\n".join([
        "## A weighted median after `discrete`'s refinement (median)\n",
        f"`{command}` on {today()}; {machine()}.\n",
        f"`discrete` (preset balanced, median_radius {preset.median_radius} by default) against the same with"
        f" `median_radius={RADIUS}`: a colour-weighted median of each flow component over 31x31 windows"
        " (OpenCV's `ximgproc.weightedMedianFilter`, sigma 25.5 grey levels), taken only within 3 px of the"
        " flow's jumps (`--sharpen`'s uncertain pixels: sides 8 px away differ by more than max(6 px, 0.3 |flow|))"
        " and where it moves a pixel by more than 0.5 px (the filter sorts floats into 256 levels). The option's flow was"
        " checked equal to the step's on the first pair of every group. `--sharpen`: its step on each flow."
        f" Peak of the discrete process: {runs.peak:.0f} MB. EPE in px.\n",
        f"### Hard synthetic scenes ({args.hard}, seed 5000, as in section things)\n",
        hard_table(runs, "hard") + "\n",
        f"### Held-out hard scenes ({args.hard}, seed 40000)\n",
        hard_table(runs, "held-out") + "\n",
        f"### Real data: mean over {args.versions} altered copies of every pair (mirrored or not, cropped by 0-3 px)\n",
        real_table(runs.rows),
        "| copies where the median gives the lower EPE | " + " | ".join(
            f"{lower[d]} of {len(runs.rows[d, PLAIN])} | " for d in DATASETS) + " |\n",
        "### Real data: the pairs as they are\n",
        real_table(runs.first) + "\n",
        "### Cost (seconds per pair, median)\n",
        "\n".join(cost) + "\n",
        "Timings are on a shared 2-core machine: compare rows of one run only.",
    ])
    print(text)
    if not args.no_write:
        write_section("median", text)


if __name__ == "__main__":
    main()
