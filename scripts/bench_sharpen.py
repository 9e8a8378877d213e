"""Sharper motion boundaries (``--sharpen``) beside each method without it; writes BENCHMARKS.md section sharpen.

    OPENBLAS_NUM_THREADS=1 python scripts/bench_sharpen.py ../shared/data [--hard 8] [--write]

Each method runs with and without ``sharpen=True``, side by side in one run, each in a child process
of its own (:class:`semflow.isolation.IsolatedMethod`: seconds per pair and that process's peak memory):

- the hard synthetic scenes of ``bench_things.py`` (``--hard`` of them, seed 5000: a car passing parked
  cars, people walking side by side; things move 15-30 px) and as many held-out ones (seed 40000, a check
  only, used nowhere else); ``semantic`` gets the given masks. Band: thing pixels less than 5 px inside an outline
  (between touching things too); inside-band: the rest of the things (issue 15);
- the photo scenes of ``bench_photo_scenes.py`` (``--photo`` per group: photo, held-out, fresh; real
  street frames with real car and pedestrian cut-outs pasted in under affine motion), given masks;
- KITTI, Sintel, Middlebury and Chairs (``semantic`` with its default segmenter).

``discrete`` here is discrete without its two boundary stages (``sharpen=False, missed_motions=False``),
and ``semantic`` is on that baseline; ``discrete missed_motions=True --sharpen`` (both stages: the search
for motions no match saw, then the sharpening) and ``semantic`` on it are the defaults since 2026-12-02.

The step's own seconds (``sharpen s``) are timed here, in this process, on the unsharpened flow of the
same method; that the result equals the sharpened method's flow is checked on every pair. The step
samples its matches at random (seeded): the seed table runs it again with seeds 1-3 on the same flows,
and each seed again without the photometric polish of the motions (``BoundaryLayerParams.polish``) and
with every photometric error counting in its cut (``MotionParams.explained=None``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import hard_scenes, machine, today, write_section  # noqa: E402

from semflow.evaluation import score  # noqa: E402
from semflow.io.datasets import load_dataset  # noqa: E402
from semflow.isolation import IsolatedMethod  # noqa: E402
from semflow.layers.boundary_layers import BOUNDARY_MOTIONS, BoundaryLayerParams, sharpen_boundaries  # noqa: E402
from semflow.metrics import endpoint_error, inner_band  # noqa: E402

METHODS = ("dis-medium", "discrete", "semantic")
REAL = {"kitti": "kitti", "sintel": "sintel", "middlebury": "middlebury", "chairs": "flyingchairs"}
HARD_SEEDS = {"hard": 5000, "held-out": 40000}
GROUPS = {"photo": (0, 7000), "held-out": (3, 9000), "fresh": (2, 8100)}
"""The photo scene groups of ``bench_photo_scenes.GROUPS`` (checked equal in :func:`photo_rows`)."""
STEP_SEEDS = (0, 1, 2, 3)
BOTH = "discrete missed_motions=True --sharpen"
SEMANTIC_BOTH = "semantic[discrete missed_motions=True] --sharpen"
STEP_VARIANTS = {"": {}, "no polish": {"polish": False},
                 "no ties": {"motions": replace(BOUNDARY_MOTIONS, explained=None)},
                 "min_share 0.05": {"min_share": 0.05}}
"""The step's variants in the seed table: as shipped; without the photometric polish of the motions;
with every photometric error counting in the cut (``MotionParams.explained=None``, before 2026-12-02's
fifth session); with a region's new flow kept only when 5 % of its pixels match better (before
2026-12-03's fourth session, which also left the old flow's hidden pixels out of the count)."""
CHANGES = [(f"{m} --sharpen", m) for m in METHODS] + [(BOTH, "discrete"), (SEMANTIC_BOTH, "semantic")]
"""(row, the row it is compared with) of the tables' change lines."""


def variants() -> list[tuple[str, str, dict]]:
    """(label, method, options) of every run: each method without, then with, sharpen (discrete without its
    search for missed motions); then discrete with both boundary stages and semantic on it (the defaults)."""
    from semflow.baseline.discrete import DiscreteFlow

    plain = {"dis-medium": {}, "discrete": {"missed_motions": False},
             "semantic": {"baseline": DiscreteFlow(missed_motions=False)}}
    runs = [(f"{m}{' --sharpen' if s else ''}", m, {**plain[m], "sharpen": s}) for m in METHODS for s in (False, True)]
    both = {"missed_motions": True, "sharpen": True}
    return [*runs, (BOTH, "discrete", both),
            (SEMANTIC_BOTH, "semantic", {"baseline": DiscreteFlow(missed_motions=True), "sharpen": True})]


class Runs:
    """Per variant: rows of figures, seconds per pair, peak MB; and the step's own seconds per method."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], list[tuple[float, ...]]] = {}
        self.seconds: dict[tuple[str, str], list[float]] = {}
        self.peak: dict[tuple[str, str], float] = {}
        self.step: dict[tuple[str, str], list[float]] = {}
        self.by_seed: dict[tuple[str, str, int, str], list[tuple[float, float]]] = {}

    def add(self, group: str, label: str, row: tuple[float, ...], seconds: float, peak: float) -> None:
        self.rows.setdefault((group, label), []).append(row)
        self.seconds.setdefault((group, label), []).append(seconds)
        self.peak[group, label] = max(self.peak.get((group, label), 0.0), peak)


def check_step(runs: Runs, group: str, label: str, img1: np.ndarray, img2: np.ndarray, base: np.ndarray,
               sharpened: np.ndarray) -> None:
    """Time the step on ``base`` here, and check it gives the sharpened method's flow."""
    start = time.perf_counter()
    flow, _ = sharpen_boundaries(img1, img2, base)
    runs.step.setdefault((group, label), []).append(time.perf_counter() - start)
    if not np.array_equal(flow, sharpened):
        raise SystemExit(f"{label}: the step on the unsharpened flow differs from the sharpened method's flow")


def seed_rows(runs: Runs, group: str, label: str, img1: np.ndarray, img2: np.ndarray, base: np.ndarray,
              error: Callable[[np.ndarray], float]) -> None:
    """EPE of ``base`` and of the step's result with each of STEP_SEEDS (``error``: a flow's EPE)."""
    before = error(base)
    for seed in STEP_SEEDS:
        for variant, options in STEP_VARIANTS.items():
            flow, _ = sharpen_boundaries(img1, img2, base, BoundaryLayerParams(seed=seed, **options))
            runs.by_seed.setdefault((group, label, seed, variant), []).append((before, error(flow)))


def thing_rows(methods: dict, runs: Runs, group: str, img1: np.ndarray, img2: np.ndarray, truth: np.ndarray,
               labels: np.ndarray, instances: np.ndarray) -> None:
    """One scene with given masks: every method's EPE, things, band and inside-band EPE; the step checked."""
    things = instances > 0
    band = inner_band(things, 5, instances)
    inner = things & ~band
    flows = {}
    for label, method in methods.items():
        result, seconds, peak = method.estimate(img1, img2, labels=labels)
        flows[label] = result.flow
        err = endpoint_error(result.flow, truth)
        runs.add(group, label, (err.mean(), err[things].mean(), err[band].mean(), err[inner].mean()), seconds, peak)
    for m in ("dis-medium", "discrete"):
        check_step(runs, group, m, img1, img2, flows[m], flows[f"{m} --sharpen"])
        seed_rows(runs, group, m, img1, img2, flows[m], lambda f: float(endpoint_error(f, truth).mean()))


def hard_rows(methods: dict, count: int, runs: Runs) -> None:
    for group, i, s, *_ in hard_scenes(HARD_SEEDS, count):
        thing_rows(methods, runs, group, s.img1, s.img2, s.flow, s.labels, s.instances)
        print(group, i, "; ".join(f"{k} {np.mean(runs.rows[group, k][-1][0]):.3f}" for k in methods), flush=True)


def photo_rows(methods: dict, data: Path, count: int, runs: Runs) -> None:
    import bench_photo_scenes  # here: the spawned method processes need not import it

    if bench_photo_scenes.GROUPS != GROUPS:
        raise SystemExit("bench_sharpen.GROUPS differs from bench_photo_scenes.GROUPS")

    for group, (first, seed) in GROUPS.items():
        with tempfile.TemporaryDirectory() as tmp:
            bench_photo_scenes.write_photo_scenes(data / "camvid", Path(tmp), count, first, seed)
            for ref in load_dataset("synthetic", Path(tmp)):
                s = ref.load()
                thing_rows(methods, runs, f"photo {group}", s.img1, s.img2, s.flow, s.labels, s.instances)
                print(group, s.name, "; ".join(f"{k} {runs.rows[f'photo {group}', k][-1][1]:.3f}" for k in methods),
                      flush=True)


def real_rows(methods: dict, data: Path, runs: Runs) -> None:
    for dataset, folder in REAL.items():
        for ref in load_dataset(dataset, data / folder):
            sample = ref.load()
            flows = {}
            for label, method in methods.items():
                result, seconds, peak = method.estimate(sample.img1, sample.img2)
                flows[label] = result.flow
                e, f, _ = score(result.flow, sample)
                runs.add(dataset, label, (e, f), seconds, peak)
            for m in ("dis-medium", "discrete"):
                check_step(runs, dataset, m, sample.img1, sample.img2, flows[m], flows[f"{m} --sharpen"])
                seed_rows(runs, dataset, m, sample.img1, sample.img2, flows[m], lambda f, sample=sample: score(f, sample)[0])
            print(dataset, sample.name, "; ".join(f"{k} {runs.rows[dataset, k][-1][0]:.3f}" for k in methods), flush=True)


def hard_table(runs: Runs, group: str, labels: list[str]) -> str:
    lines = ["| method | EPE | things EPE | band EPE (5 px) | inside-band EPE | band / inside | s/pair | sharpen s | peak MB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label in labels:
        e, t, b, n = np.mean(runs.rows[group, label], axis=0)
        step = runs.step.get((group, label.removesuffix(" --sharpen")))
        step_s = f"{np.median(step):.3f}" if step and label.endswith("--sharpen") else ""
        lines.append(f"| {label} | {e:.3f} | {t:.3f} | {b:.3f} | {n:.3f} | {b / n:.2f} | "
                     f"{np.median(runs.seconds[group, label]):.2f} | {step_s} | {runs.peak[group, label]:.0f} |")
    return "\n".join(lines)


def real_table(runs: Runs, labels: list[str]) -> str:
    head = "| method | " + " | ".join(f"{d} EPE | {d} Fl %" for d in REAL) + " |"
    lines = [head, "|---|" + "---|---|" * len(REAL)]
    means = {(d, lab): np.mean(runs.rows[d, lab], axis=0) for d in REAL for lab in labels}
    for label in labels:
        lines.append(f"| {label} | " + " | ".join(f"{means[d, label][0]:.3f} | {100 * means[d, label][1]:.2f}"
                                                for d in REAL) + " |")
    for b, m in CHANGES:
        a = means
        lines.append(f"| change, {b} | " + " | ".join(
            f"{100 * (a[d, b][0] / a[d, m][0] - 1):+.1f} % | {100 * (a[d, b][1] / max(a[d, m][1], 1e-9) - 1):+.1f} %"
            for d in REAL) + " |")
    return "\n".join(lines)


def photo_table(runs: Runs, labels: list[str]) -> str:
    """Things EPE and band / inside per photo group, and the changes of things EPE."""
    groups = [f"photo {g}" for g in GROUPS]
    lines = ["| method | " + " | ".join(f"{g.removeprefix('photo ')} things EPE | band / inside" for g in groups)
             + " | s/pair |", "|---|" + "---|---|" * len(groups) + "---|"]
    means = {(g, lab): np.mean(runs.rows[g, lab], axis=0) for g in groups for lab in labels}
    for label in labels:
        cells = [f"{means[g, label][1]:.3f} | {means[g, label][2] / means[g, label][3]:.2f}" for g in groups]
        seconds = np.median([t for g in groups for t in runs.seconds[g, label]])
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {seconds:.2f} |")
    for b, m in CHANGES:
        lines.append(f"| change, {b} | " + " | ".join(
            f"{100 * (means[g, b][1] / means[g, m][1] - 1):+.1f} % | " for g in groups) + " |")
    return "\n".join(lines)


def cost_table(runs: Runs, labels: list[str]) -> str:
    lines = ["| method | " + " | ".join(f"{d} s/pair" for d in REAL) + " | " + " | ".join(f"{d} sharpen s" for d in REAL)
             + " | peak MB (max) |", "|---|" + "---|" * (2 * len(REAL) + 1)]
    for label in labels:
        step = [runs.step.get((d, label.removesuffix(" --sharpen"))) if label.endswith("--sharpen") else None
                for d in REAL]
        lines.append(f"| {label} | " + " | ".join(f"{np.median(runs.seconds[d, label]):.2f}" for d in REAL) + " | "
                     + " | ".join(f"{np.median(s):.3f}" if s else "" for s in step)
                     + f" | {max(runs.peak[d, label] for d in REAL):.0f} |")
    return "\n".join(lines)


def seed_table(runs: Runs) -> str:
    groups = [*HARD_SEEDS, *(f"photo {g}" for g in GROUPS), *REAL]
    lines = ["| method | " + " | ".join(groups) + " |", "|---|" + "---|" * len(groups)]
    for m in ("dis-medium", "discrete"):
        for variant in STEP_VARIANTS:
            cells = []
            for g in groups:
                change = [100 * (np.mean([a for _, a in rows]) / np.mean([b for b, _ in rows]) - 1)
                          for rows in (runs.by_seed[g, m, seed, variant] for seed in STEP_SEEDS)]
                cells.append(" ".join(f"{c:+.1f}" for c in change) + f" (mean {np.mean(change):+.1f} %)")
            lines.append(f"| {m} --sharpen{', ' + variant if variant else ''} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the shared data folder (../shared/data)")
    parser.add_argument("--hard", type=int, default=8, help="hard synthetic scenes per seed group")
    parser.add_argument("--photo", type=int, default=16, help="photo scenes per group")
    parser.add_argument("--write", action="store_true", help="write the sharpen section of BENCHMARKS.md")
    args = parser.parse_args()
    runs = Runs()
    specs = variants()
    labels = [label for label, _, _ in specs]
    methods = {label: IsolatedMethod(name, options) for label, name, options in specs}
    try:
        hard_rows(methods, args.hard, runs)
        photo_rows(methods, args.data, args.photo, runs)
        real_rows(methods, args.data, runs)
    finally:
        for method in methods.values():
            method.close()
    command = "OPENBLAS_NUM_THREADS=1 python scripts/bench_sharpen.py " + " ".join(sys.argv[1:])
    text = "\n".join([
        f"## Sharper motion boundaries: `--sharpen` (sharpen)\n\n`{command}` on {today()}; {machine()}.\n",
        "Each method without and with `--sharpen`, side by side in one run, each in a child process of its own"
        " (s/pair: median seconds of the whole method; peak MB: that process's peak). `sharpen s`: the step"
        " alone (median), timed on the same unsharpened flow; its result equals the sharpened method's on every"
        " pair. `discrete` here is discrete without its two boundary stages (`--no-sharpen`, `missed_motions=False`)"
        " and `semantic` is on it; `semantic --sharpen` sharpens semantic's baseline. `discrete missed_motions=True"
        " --sharpen`: discrete with both stages (the search for motions no match saw, then the sharpening), and"
        " `semantic[...]` on it: the defaults since 2026-12-02. EPE in px.\n",
        f"### Hard synthetic scenes ({args.hard}, seed 5000, as in section things); semantic with given masks\n",
        hard_table(runs, "hard", labels) + "\n",
        f"### Held-out hard scenes ({args.hard}, seed 40000, a check only: not used to choose any setting)\n",
        hard_table(runs, "held-out", labels) + "\n",
        f"### Photo scenes ({args.photo} per group, as in section photo-scenes), given masks; things EPE in px\n",
        photo_table(runs, labels) + "\n",
        "### Real data (semantic: default segmenter camvid); EPE and Fl-all per dataset\n",
        real_table(runs, labels) + "\n",
        f"### The step's seeds: change of EPE against the unsharpened flow with seeds {', '.join(map(str, STEP_SEEDS))}"
        " (0 is the default, the rows above), with and without the polish of the motions (`no polish`), and with"
        " every photometric error counting in the cut (`no ties`: `MotionParams(explained=None)`, as before"
        " 2026-12-02's fifth session), and with the check's `min_share` at 0.05 (as before 2026-12-03's fourth session;"
        " the old flow's hidden pixels are left out of the count in every row)\n",
        "Which regions are kept can flip with the random samples of the motion fitting (with the gate at 1.5, as"
        " first shipped, a region of hair in front of a wall on Sintel's final pass did).\n",
        seed_table(runs) + "\n",
        "### Cost on real data (seconds per pair, median)\n",
        cost_table(runs, labels) + "\n",
        "Timings are on a shared 2-core machine: compare rows of one run only.",
    ])
    print(text)
    if args.write:
        write_section("sharpen", text)


if __name__ == "__main__":
    main()
