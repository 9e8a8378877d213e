"""discrete with and without its optional last stage, missed_motions; writes BENCHMARKS.md section missed-motions.

    OPENBLAS_NUM_THREADS=1 python scripts/bench_missed_motions.py ../shared/data [--hard 8] [--photo 16] [--write]

``discrete`` (the stage off) and ``discrete missed_motions=True`` (the default since 2026-12-02), both
without ``--sharpen`` (on by default too: see ``bench_sharpen.py`` for both stages), side by side in one run,
each in a child process of its own (:class:`semflow.isolation.IsolatedMethod`: seconds per pair and that
process's peak memory), on:

- the hard synthetic scenes of ``bench_things.py`` (``--hard`` of them, seed 5000) and as many held-out
  ones (seed 40000);
- the photo scenes of ``bench_photo_scenes.py`` (``--photo`` per group: photo, held-out, fresh);
- KITTI, Sintel, Middlebury and Chairs.

``stage s``: the stage alone (:func:`semflow.baseline.discrete.missed.follow_missed_motions`, median),
timed here on the flow without it; that this gives the flow with it is checked on every pair. ``blobs``:
blobs that took a missed motion, in all. On the scenes with masks also ``semantic`` with given masks on
each of the two baseline flows (in this process, on the same flows, with the thing settings ``semantic``
takes on each: :data:`THINGS`). Band: thing pixels less than 5 px
inside an outline; inside-band: the rest of the things.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_photo_scenes import GROUPS, write_photo_scenes  # noqa: E402
from benchlib import hard_scenes, machine, today, write_section  # noqa: E402

from semflow.baseline.base import GivenFlow  # noqa: E402
from semflow.baseline.discrete.missed import follow_missed_motions  # noqa: E402
from semflow.evaluation import score  # noqa: E402
from semflow.io.datasets import load_dataset  # noqa: E402
from semflow.isolation import IsolatedMethod  # noqa: E402
from semflow.layers.things import thing_params_for  # noqa: E402
from semflow.methods import get_method  # noqa: E402
from semflow.metrics import endpoint_error, inner_band  # noqa: E402
from semflow.semantic import SemanticFlow  # noqa: E402

WITH, WITHOUT = "discrete missed_motions=True", "discrete"
LABELS = {WITHOUT: {"missed_motions": False, "sharpen": False}, WITH: {"missed_motions": True, "sharpen": False}}
"""Both without ``--sharpen`` (on by default for discrete since 2026-12-02): the stage alone."""
SEMANTIC = {f"semantic[{label}]": label for label in LABELS}
THINGS = {label: thing_params_for(get_method("discrete", **options)) for label, options in LABELS.items()}
"""The thing settings ``semantic`` takes on each baseline (since 2026-12-03's second session; before, the
generic defaults of a baseline named ``given``)."""


REAL = {"kitti": "kitti", "sintel": "sintel", "middlebury": "middlebury", "chairs": "flyingchairs"}
HARD_SEEDS = {"hard": 5000, "hard held-out": 40000}


class Runs:
    """Per (group, label): rows of figures, seconds, peak MB; per group: the stage's seconds and blobs."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], list[tuple[float, ...]]] = {}
        self.seconds: dict[tuple[str, str], list[float]] = {}
        self.peak: dict[tuple[str, str], float] = {}
        self.stage: dict[str, list[float]] = {}
        self.blobs: dict[str, int] = {}

    def pair(self, methods: dict[str, IsolatedMethod], group: str, img1: np.ndarray, img2: np.ndarray,
             figures, labels: np.ndarray | None = None) -> None:
        """Run both methods on one pair; ``figures(flow)`` gives the row; time and check the stage. With
        ``labels`` (given masks) also semantic on each method's result."""
        flows = {}
        for label, method in methods.items():
            result, seconds, peak = method.estimate(img1, img2)
            flows[label] = result.flow
            if labels is not None:
                semantic = SemanticFlow(GivenFlow(result), segmentation=labels, things=THINGS[label]).estimate(
                    img1, img2, labels=labels)
                self.rows.setdefault((group, f"semantic[{label}]"), []).append(figures(semantic.flow))
            self.rows.setdefault((group, label), []).append(figures(result.flow))
            self.seconds.setdefault((group, label), []).append(seconds)
            self.peak[group, label] = max(self.peak.get((group, label), 0.0), peak)
        start = time.perf_counter()
        flow, reports = follow_missed_motions(img1, img2, flows[WITHOUT])
        self.stage.setdefault(group, []).append(time.perf_counter() - start)
        self.blobs[group] = self.blobs.get(group, 0) + len(reports)
        if not np.array_equal(flow, flows[WITH]):
            raise SystemExit(f"{group}: the stage on the flow without it differs from discrete's flow")


def thing_figures(sample):
    """EPE, things, band and inside-band EPE of a flow on a sample with instances."""
    things = sample.instances > 0
    band = inner_band(things, 5, sample.instances)

    def figures(flow: np.ndarray) -> tuple[float, ...]:
        err = endpoint_error(flow, sample.flow)
        valid = getattr(sample, "valid", None)
        whole = err[valid].mean() if valid is not None else err.mean()
        return whole, err[things].mean(), err[band].mean(), err[things & ~band].mean()
    return figures


def thing_table(runs: Runs, group: str) -> str:
    lines = ["| method | EPE | things EPE | band EPE (5 px) | inside-band EPE | band / inside | s/pair | stage s | "
             "blobs | peak MB |", "|---|---|---|---|---|---|---|---|---|---|"]
    for label in [*LABELS, *SEMANTIC]:
        if (group, label) not in runs.rows:
            continue
        e, t, b, n = np.mean(runs.rows[group, label], axis=0)
        stage = f"{np.median(runs.stage[group]):.3f} | {runs.blobs[group]}" if label == WITH else " | "
        cost = (f"{np.median(runs.seconds[group, label]):.2f}", f"{runs.peak[group, label]:.0f}") \
            if label in LABELS else ("", "")
        lines.append(f"| {label} | {e:.3f} | {t:.3f} | {b:.3f} | {n:.3f} | {b / n:.2f} | {cost[0]} | {stage} | "
                     f"{cost[1]} |")
    return "\n".join(lines)


def real_table(runs: Runs) -> str:
    lines = ["| method | " + " | ".join(f"{d} EPE | {d} Fl % | {d} s/pair" for d in REAL) + " | peak MB (max) |",
             "|---|" + "---|---|---|" * len(REAL) + "---|"]
    means = {(d, label): np.mean(runs.rows[d, label], axis=0) for d in REAL for label in LABELS}
    for label in LABELS:
        lines.append(f"| {label} | " + " | ".join(
            f"{means[d, label][0]:.3f} | {100 * means[d, label][1]:.2f} | {np.median(runs.seconds[d, label]):.2f}"
            for d in REAL) + f" | {max(runs.peak[d, label] for d in REAL):.0f} |")
    lines.append("| change | " + " | ".join(
        f"{100 * (means[d, WITH][0] / means[d, WITHOUT][0] - 1):+.1f} % | "
        f"{100 * (means[d, WITH][1] / max(means[d, WITHOUT][1], 1e-9) - 1):+.1f} % | " for d in REAL) + " |")
    lines.append("| stage s (median), blobs | " + " | ".join(
        f"{np.median(runs.stage[d]):.3f} | {runs.blobs[d]} | " for d in REAL) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the shared data folder (../shared/data)")
    parser.add_argument("--hard", type=int, default=8, help="hard synthetic scenes per seed group")
    parser.add_argument("--photo", type=int, default=16, help="photo scenes per group")
    parser.add_argument("--write", action="store_true", help="write the missed-motions section of BENCHMARKS.md")
    args = parser.parse_args()
    runs = Runs()
    methods = {label: IsolatedMethod("discrete", options) for label, options in LABELS.items()}
    photo_groups = [f"photo {g}" for g in GROUPS]
    try:
        for group, i, scene, *_ in hard_scenes(HARD_SEEDS, args.hard):
            runs.pair(methods, group, scene.img1, scene.img2, thing_figures(scene), scene.labels)
            print(group, i, flush=True)
        for group, (first, seed) in GROUPS.items():
            with tempfile.TemporaryDirectory() as tmp:
                write_photo_scenes(args.data / "camvid", Path(tmp), args.photo, first, seed)
                for ref in load_dataset("synthetic", Path(tmp)):
                    sample = ref.load()
                    runs.pair(methods, f"photo {group}", sample.img1, sample.img2, thing_figures(sample),
                              sample.labels)
                    print(group, sample.name, flush=True)
        for dataset, folder in REAL.items():
            for ref in load_dataset(dataset, args.data / folder):
                sample = ref.load()
                runs.pair(methods, dataset, sample.img1, sample.img2, lambda f, s=sample: score(f, s)[:2])
                print(dataset, sample.name, flush=True)
    finally:
        for method in methods.values():
            method.close()
    command = "OPENBLAS_NUM_THREADS=1 python scripts/bench_missed_motions.py " + " ".join(sys.argv[1:])
    parts = [
        f"## Motions the flow missed: discrete's last stage (missed-motions)\n\n`{command}` on {today()}; {machine()}.\n",
        "`discrete` (the stage off) and `discrete missed_motions=True` (the default since 2026-12-02), both without `--sharpen` (the stage alone; both are on by default now: section sharpen), side by side in one run, "
        "each in a child process of its own (s/pair: median seconds of the whole method; peak MB: that process's "
        "peak). `stage s`: the stage alone (median), timed on the flow without it, whose result equals the "
        "flow with it on every pair; `blobs`: blobs that took a missed motion, in all. `semantic[B]`: semantic "
        "with given masks on B's flow (the same flows, in this process), with the thing settings semantic takes on B "
        "(`thing_params_for`; before 2026-12-03's second session the generic ones). EPE in px.\n",
    ]
    for group, title in [("hard", f"Hard synthetic scenes ({args.hard}, seed 5000, as in section things)"),
                         ("hard held-out", f"Held-out hard scenes ({args.hard}, seed 40000)")]:
        parts += [f"### {title}\n", thing_table(runs, group) + "\n"]
    for group in photo_groups:
        parts += [f"### Photo scenes, group {group.split(' ', 1)[1]} ({args.photo}, as in section photo-scenes)\n",
                  thing_table(runs, group) + "\n"]
    parts += ["### Real data; EPE, Fl-all and seconds per dataset\n", real_table(runs) + "\n"]
    text = "\n".join(parts)
    print(text)
    if args.write:
        write_section("missed-motions", text)


if __name__ == "__main__":
    main()
