"""Benchmark things that touch (issue 15); writes the ``things`` section of BENCHMARKS.md.

    OPENBLAS_NUM_THREADS=1 python scripts/bench_things.py /work/shared/data [--hard 8] [--skip-real]

Everything side by side in one process:

1. Hard synthetic scenes (``semflow.synthetic_hard.write_hard_dataset``, seed 5000: not the seeds used
   while developing), given masks: a car passing parked cars, groups of pedestrians, 15-30 px. For
   each baseline B (dis-medium, discrete): B, ``semantic[B]`` (motion instances and the search for
   things the baseline missed, the default), ``semantic[B] no hidden`` (``hidden_behind=False``),
   ``semantic[B] no parts`` (``search_tile=0``), ``semantic[B] no search`` (``search_missed=False``),
   ``semantic[B] no bound`` (``MotionParams(max_stretch=0)``), ``semantic[B] no ties``
   (``MotionParams(explained=None)``), ``semantic[B] no redo`` (``reassign=False``), ``semantic[B]
   smoothed`` (``unsmoothed=False``), ``semantic[B] ties pass`` (``unexplained_error=0``), ``semantic[B] inlier 1.5``
   (``MotionParams(inlier=1.5)``), ``semantic[B] no occl`` (``MotionParams(rematch_hidden_cost=None)``), ``semantic[B] no clearance``
   (``covered_clearance=0``), ``semantic[B] no margin`` (``motion_margin=0``) and ``semantic[B] single`` (``motion_split=False,
   search_missed=False, hidden_behind=False``: sequential RANSAC on the baseline, as before all three). EPE over all pixels, things, the 5 px band inside thing outlines (between touching
   instances too) and the thing pixels inside it. Motion score: the share of visible thing pixels whose
   motion instance's affine map moves them to within 1 px of the true flow (pixels without an
   instance count as wrong).
2. Real data (KITTI, Sintel clean/final, Middlebury, FlyingChairs) with the default segmenter: the
   same methods; the change of the default semantic against the single-motion version and against
   the one without the search; and the default with ``ThingParams.seed`` 0 .. ``--seeds`` - 1 (the fits'
   random draws), to show how much a real-data figure owes to them.
3. Cost: the things stage on every pair (one run each, as part of 1 and 2), and on Sintel's two
   1024x436 pairs ``--cost-rounds`` times more (default 5), the default, the default in one process
   (``processes=1``) and the single-motion variant alternating pair by pair, so that the machine's
   swings (+-20 % on this 2-core machine between runs minutes apart) hit them alike: per pair the
   median, fastest and slowest round.

Each baseline runs once per pair (a memo); the semantic variants reuse its flow.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_semantic import Memo  # noqa: E402
from benchlib import machine, today, write_section  # noqa: E402

from semflow.evaluation import SampleResult, score  # noqa: E402
from semflow.io.datasets import LoadedSample, load_dataset  # noqa: E402
from semflow.layers.things import ThingParams, thing_params_for  # noqa: E402
from semflow.methods import get_method  # noqa: E402
from semflow.semantic import SemanticFlow  # noqa: E402
from semflow.synthetic_hard import write_hard_dataset  # noqa: E402

HARD_SEED = 5000
def _motions(**changes: object) -> Callable[[ThingParams], ThingParams]:
    return lambda p: replace(p, motions=replace(p.motions, **changes))


def _things(**changes: object) -> Callable[[ThingParams], ThingParams]:
    return lambda p: replace(p, **changes)


VARIANTS: dict[str, Callable[[ThingParams], ThingParams]] = {
    "": _things(), "no hidden": _things(hidden_behind=False),
    "no parts": _things(search_tile=0), "no search": _things(search_missed=False),
    "no bound": _motions(max_stretch=0),
    "no ties": _motions(explained=None),
    "no redo": _things(reassign=False),
    "smoothed": _things(unsmoothed=False),
    "ties pass": _things(unexplained_error=0),
    "inlier 1.5": _motions(inlier=1.5),
    "no occl": _motions(rematch_hidden_cost=None),
    "no clearance": _things(covered_clearance=0),
    "no margin": _things(motion_margin=0),
    "single": _things(motion_split=False, search_missed=False, hidden_behind=False)}
"""The semantic variants: the default; without the rule for background hidden behind the object inside
its region; without the search of a missed thing's tiles; without the search for things the baseline
missed (whole or in tiles); with motions of any stretch (``MotionParams.max_stretch=0``); with every
photometric error counting in the split's assignment (``MotionParams.explained=None``: no ties for
pixels that no motion explains or that leave the frame); with the split's labels left as the unpolished
motions had them (``reassign=False``); with the object/background assignment and the judgement
on the smoothed frames (``unsmoothed=False``); with a tie among judged pixels that neither flow explains passing
the judgement (``unexplained_error=0``); with the split's inlier distance at 1.5 px on every baseline
(``MotionParams.inlier``; before 2026-12-02's eighth session it was 1.5 on ``discrete`` too); without
the occlusion-aware rematch of unexplained parts (``MotionParams.rematch_hidden_cost=None``; on
``discrete`` since 2026-12-03's second session); with each motion instance refined up to the occluding
edge (``covered_clearance=0``: before 2026-12-03's third session); with each motion instance refined up to
its seams with the other motions (``motion_margin=0``: on ``discrete`` before 2026-12-03's sixth session); one object layer per thing region, as before motion instances (neither
the search nor the hidden rule either). Each maps the baseline's defaults
(:func:`~semflow.layers.things.thing_params_for`) to the variant's settings."""
REAL = ("kitti", "sintel", "middlebury", "chairs")
FOLDERS = {"chairs": "flyingchairs"}


def motion_score(sample: LoadedSample, extras: dict) -> float:
    """Share of visible thing pixels whose motion instance moves them to within 1 px of the true flow."""
    things = sample.instances > 0
    if sample.occluded is not None:
        things &= ~sample.occluded
    ids = extras["motion_ids"].astype(np.int64)
    report = json.loads(str(extras["report_json"]))
    affines = {m["id"]: np.array(m["affine"]).reshape(2, 3) for t in report["things"]
               for m in t.get("motion_instances", []) if "id" in m}
    h, w = ids.shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    right = np.zeros((h, w), bool)
    for k, a in affines.items():
        sel = ids == k
        u = a[0, 0] * x[sel] + a[0, 1] * y[sel] + a[0, 2] - x[sel]
        v = a[1, 0] * x[sel] + a[1, 1] * y[sel] + a[1, 2] - y[sel]
        right[sel] = np.hypot(u - sample.flow[sel][:, 0], v - sample.flow[sel][:, 1]) < 1.0
    return float(right[things].mean()) if things.any() else float("nan")


def run(dataset: str, root: Path, baselines: list[str], segmenter, *, given: bool,
        timings: list[dict], variants: dict[str, ThingParams] | None = None
        ) -> tuple[list[SampleResult], dict[str, list[float]]]:
    """Each baseline B and ``semantic[B] <name>`` for each of ``variants`` (default :data:`VARIANTS`) on
    every pair of ``dataset``; results, and motion scores with given masks."""
    variants = VARIANTS if variants is None else variants
    memos = {b: Memo(get_method(b)) for b in baselines}
    methods = {f"semantic[{b}] {name}".rstrip(): SemanticFlow(memos[b], segmenter=segmenter,
                                                              things=variant(thing_params_for(b)))
               for b in baselines for name, variant in variants.items()}
    results: list[SampleResult] = []
    scores: dict[str, list[float]] = {}
    for ref in load_dataset(dataset, root):
        sample = ref.load()
        labels = sample.labels if given else None
        line = []
        for b in baselines:
            base = memos[b].estimate(sample.img1, sample.img2)
            e, f, regions = score(base.flow, sample)
            results.append(SampleResult(b, dataset, sample.name, e, f, 0.0, 0.0, regions))
            line.append(f"{b} {e:.3f}")
        for name, method in methods.items():
            sem = method.estimate(sample.img1, sample.img2, labels=labels)
            e, f, regions = score(sem.flow, sample)
            results.append(SampleResult(name, dataset, sample.name, e, f, 0.0, 0.0, regions))
            timings.append({"dataset": dataset, "size": sample.img1.shape[:2], "method": name,
                            "things": method.last_timings.get("things", 0.0)})
            if given and method.thing_params.motion_split:
                scores.setdefault(name, []).append(motion_score(sample, sem.extras))
            line.append(f"{name} {e:.3f}")
        print(dataset, sample.name, "; ".join(line), flush=True)
    return results, scores


def mean(values) -> float:
    vals = [v for v in values if v == v]
    return float(np.mean(vals)) if vals else float("nan")


def hard_table(results: list[SampleResult], scores: dict[str, list[float]], methods: list[str]) -> str:
    lines = ["| method | EPE | things EPE | band EPE (5 px) | inside-band EPE | band / inside | "
             "things vs baseline | motion score |", "|---|---|---|---|---|---|---|---|"]
    for m in methods:
        group = [r for r in results if r.method == m]
        base = m.split("[")[1].split("]")[0] if "[" in m else m.split()[0]
        things = mean(r.regions["things"]["epe"] for r in group)
        base_things = mean(r.regions["things"]["epe"] for r in results if r.method == base)
        band = mean(r.regions["thing-band"]["epe"] for r in group)
        inner = mean(r.regions["thing-inner"]["epe"] for r in group)
        sc = scores.get(m)
        lines.append(f"| {m} | {mean(r.epe for r in group):.3f} | {things:.3f} | {band:.3f} | {inner:.3f} | "
                     f"{band / inner:.2f} | {'' if m == base else f'{things / base_things:.2f}x'} | "
                     f"{'' if not sc else f'{100 * mean(sc):.1f} %'} |")
    return "\n".join(lines)


def real_table(results: list[SampleResult], methods: list[str]) -> str:
    datasets = list(dict.fromkeys(r.dataset for r in results))
    lines = ["| method | " + " | ".join(f"{d} EPE | {d} Fl %" for d in datasets) + " |",
             "|---|" + "---|---|" * len(datasets)]
    for m in methods:
        cells = []
        for d in datasets:
            group = [r for r in results if r.method == m and r.dataset == d]
            cells += [f"{mean(r.epe for r in group):.3f}", f"{100 * mean(r.fl_all for r in group):.2f}"]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    # The change that motion instances and the search make, per dataset (EPE and Fl-all, relative).
    for b in dict.fromkeys(m.split("[")[1].split("]")[0] for m in methods if "[" in m):
        for other in [name for name in VARIANTS if name]:
            cells = []
            for d in datasets:
                on = [r for r in results if r.method == f"semantic[{b}]" and r.dataset == d]
                off = [r for r in results if r.method == f"semantic[{b}] {other}" and r.dataset == d]
                de = mean(r.epe for r in on) / mean(r.epe for r in off) - 1
                fo, ff = mean(r.fl_all for r in on), mean(r.fl_all for r in off)
                df = fo / ff - 1 if ff > 0 else 0.0
                cells += [f"{100 * de:+.1f} %", f"{100 * df:+.1f} %"]
            lines.append(f"| change, semantic[{b}] vs {other} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def seed_table(root: Path, datasets: list[str], baselines: list[str], segmenter, seeds: int) -> str:
    """``semantic[B]`` on the real data with ``ThingParams.seed`` 0 .. ``seeds`` - 1 (the split's and the
    RANSAC fits' random draws): per dataset the mean EPE of each seed, and the spread."""
    lines = ["| method | seed | " + " | ".join(f"{d} EPE" for d in datasets) + " |",
             "|---|---|" + "---|" * len(datasets)]
    for b in baselines:
        memo = Memo(get_method(b))
        samples = {d: [ref.load() for ref in load_dataset(d, root / FOLDERS.get(d, d))] for d in datasets}
        per_seed = []
        for seed in range(seeds):
            method = SemanticFlow(memo, segmenter=segmenter, things=replace(thing_params_for(b), seed=seed))
            per_seed.append([mean(score(method.estimate(x.img1, x.img2).flow, x)[0] for x in samples[d])
                             for d in datasets])
            lines.append(f"| semantic[{b}] | {seed} | " + " | ".join(f"{v:.3f}" for v in per_seed[-1]) + " |")
            print("seed", b, seed, per_seed[-1], flush=True)
        cols = np.array(per_seed)
        lines.append(f"| semantic[{b}] | mean (min-max) | " + " | ".join(
            f"{c.mean():.3f} ({c.min():.3f}-{c.max():.3f})" for c in cols.T) + " |")
    return "\n".join(lines)


def cost_table(timings: list[dict]) -> str:
    lines = ["| method | pairs | size | things stage s (median) |", "|---|---|---|---|"]
    for m in dict.fromkeys(t["method"] for t in timings):
        for size in sorted({t["size"] for t in timings if t["method"] == m}, reverse=True):
            group = [t["things"] for t in timings if t["method"] == m and t["size"] == size]
            lines.append(f"| {m} | {len(group)} | {size[1]}x{size[0]} | {statistics.median(group):.3f} |")
    return "\n".join(lines)


def cost_rounds(root: Path, baselines: list[str], segmenter, rounds: int) -> str:
    """The things stage of ``semantic[B]``, of the same in one process (``processes=1``: the fits not
    shared with a forked second process) and of ``semantic[B] single`` on Sintel's pairs under ``root``,
    ``rounds`` times each, alternating: a table of per-pair median, fastest and slowest round."""
    samples = [ref.load() for ref in load_dataset("sintel", root)]
    times: dict[tuple[str, str], list[float]] = {}
    for b in baselines:
        memo = Memo(get_method(b))
        defaults = thing_params_for(b)
        variants = {f"semantic[{b}]": SemanticFlow(memo, segmenter=segmenter, things=defaults),
                    f"semantic[{b}] one process": SemanticFlow(memo, segmenter=segmenter,
                                                               things=replace(defaults, processes=1)),
                    f"semantic[{b}] single": SemanticFlow(memo, segmenter=segmenter,
                                                          things=VARIANTS["single"](defaults))}
        for sample in samples:
            memo.estimate(sample.img1, sample.img2)  # the baseline once, outside the rounds
        for _ in range(rounds):
            for sample in samples:
                for name, method in variants.items():
                    method.estimate(sample.img1, sample.img2)
                    times.setdefault((name, sample.name), []).append(method.last_timings["things"])
        print("cost rounds", b, {k: round(statistics.median(v), 3) for k, v in times.items() if b in k[0]}, flush=True)
    lines = ["| method | pair | size | rounds | things stage s (median) | fastest | slowest |",
             "|---|---|---|---|---|---|---|"]
    size = "x".join(str(v) for v in samples[0].img1.shape[1::-1]) if samples else ""
    for name in dict.fromkeys(k[0] for k in times):
        medians = []
        for sample in samples:
            t = times[(name, sample.name)]
            medians.append(statistics.median(t))
            lines.append(f"| {name} | {sample.name} | {size} | {len(t)} | {medians[-1]:.3f} | {min(t):.3f} | {max(t):.3f} |")
        lines.append(f"| {name} | mean of the pairs' medians | {size} | | **{statistics.mean(medians):.3f}** | | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the shared data folder")
    parser.add_argument("--baselines", nargs="+", default=["dis-medium", "discrete"])
    parser.add_argument("--hard", type=int, default=8, help="number of hard synthetic scenes")
    parser.add_argument("--datasets", nargs="*", default=list(REAL))
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--edges", type=float, default=10.0,
                        help="also discrete with this motion_edges on the hard scenes (0: not)")
    parser.add_argument("--cost-rounds", type=int, default=5,
                        help="rounds of the things stage on Sintel's 1024x436 pairs (0: not)")
    parser.add_argument("--seeds", type=int, default=4,
                        help="ThingParams.seed values for the real data's seed table (0: no table)")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch BENCHMARKS.md")
    args = parser.parse_args()

    from semflow.segmentation import get_segmenter

    segmenter = get_segmenter("camvid")
    methods = [m for b in args.baselines for m in [b, *(f"semantic[{b}] {name}".rstrip() for name in VARIANTS)]]
    timings: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        write_hard_dataset(tmp, args.hard, seed=HARD_SEED)
        hard, scores = run("synthetic", Path(tmp), args.baselines, segmenter, given=True, timings=timings)
        if args.edges > 0:  # discrete's motion_edges option (off by default), on the hard scenes only
            from semflow.baseline.discrete import DiscreteFlow

            name = f"discrete motion_edges={args.edges:g}"
            edges = DiscreteFlow(motion_edges=args.edges)
            for ref in load_dataset("synthetic", Path(tmp)):
                sample = ref.load()
                e, f, regions = score(edges.estimate(sample.img1, sample.img2).flow, sample)
                hard.append(SampleResult(name, "synthetic", sample.name, e, f, 0.0, 0.0, regions))
            methods_hard = [*methods, name]
        else:
            methods_hard = methods
    real: list[SampleResult] = []
    if not args.skip_real:
        for dataset in args.datasets:
            res, _ = run(dataset, args.data / FOLDERS.get(dataset, dataset), args.baselines, segmenter, given=False, timings=timings)
            real += res

    seeds = seed_table(args.data, args.datasets, args.baselines, segmenter, args.seeds) \
        if args.seeds > 1 and not args.skip_real else ""
    rounds = cost_rounds(args.data / "sintel", args.baselines, segmenter, args.cost_rounds) \
        if args.cost_rounds > 0 and (args.data / "sintel").is_dir() else ""

    command = "OPENBLAS_NUM_THREADS=1 python scripts/bench_things.py " + " ".join(sys.argv[1:])
    body = [f"## Things that touch: motion instances (things)\n\n`{command}` on {today()}; {machine()}.\n",
            "EPE in px. `semantic[B]`: semantic flow on baseline B with motion instances inside thing regions "
            "and the search for things the baseline missed (the default); `semantic[B] no hidden`: the same "
            "with `ThingParams(hidden_behind=False)` (background hidden behind the object inside its own region "
            "is not given the background's motion); `semantic[B] no parts`: with `search_tile=0` (a missed "
            "thing is searched for whole only, not in tiles); `semantic[B] no search`: with `search_missed=False` "
            "(not at all); `semantic[B] no bound`: with `ThingParams(motions=MotionParams(max_stretch=0))` (motion "
            "fits of any stretch: before 2026-12-02's third session); `semantic[B] no ties`: with "
            "`ThingParams(motions=MotionParams(explained=None))` (in the split's assignment every photometric "
            "error counts, and leaving the frame costs half the truncation: before 2026-12-02's fifth session); "
            "`semantic[B] no redo`: with `ThingParams(reassign=False)` (the split's labels stay those of its "
            "unpolished motions; not redone at their seams on the frames as given); `semantic[B] smoothed`: with "
            "`ThingParams(unsmoothed=False)` (the object/background assignment and the judgement on the "
            "smoothed frames); both "
            "before 2026-12-02's sixth session; `semantic[B] ties pass`: with `ThingParams(unexplained_error=0)` "
            "(where the model leaves most judged pixels unexplained, a tie with the baseline's median passes the "
            "judgement: before 2026-12-02's seventh session); `semantic[B] inlier 1.5`: with "
            "`ThingParams(motions=MotionParams(inlier=1.5))` (the split's inlier distance; the default is 1.0 px on "
            "`discrete` since 2026-12-02's eighth session, `thing_params_for`, and 1.5 on the others, so the row "
            "equals the default there); `semantic[B] no occl`: with "
            "`ThingParams(motions=MotionParams(rematch_hidden_cost=None))` (parts that the first motions leave "
            "unexplained are matched again without knowing where the explained pixels land in frame t+1; the "
            "default is on for `discrete` since 2026-12-03's second session, `thing_params_for`, and off for the "
            "others, so the row equals the default there); `semantic[B] no clearance`: with "
            "`ThingParams(covered_clearance=0)` (each motion instance refined on all its pixels that no motion in "
            "front covers, up to the occluding edge: before 2026-12-03's third session); `semantic[B] no margin`: "
            "with `ThingParams(motion_margin=0)` (each motion instance refined up to its seams with the other "
            "motions and the region's edge, where the smoothed frames mix the neighbours' colours; 3 px inside "
            "on `discrete` since 2026-12-03's sixth session, `thing_params_for`, and 0 on the others, so the row "
            "equals the default there); "
            "`semantic[B] single`: with `motion_split=False, search_missed=False, hidden_behind=False` (one "
            "object layer fitted by sequential RANSAC on the baseline alone, as before all three).\n",
            f"### Hard synthetic scenes ({args.hard}, seed {HARD_SEED}), given masks\n",
            "A car passing 2-3 parked cars that touch (one scene in two also a car behind them), or 3-4 "
            "pedestrians walking side by side at their own speeds; things move 15-30 px. Band: thing "
            "pixels less than 5 px inside an outline (between touching things too); inside-band: the "
            "rest of the things. Motion score: share of visible thing pixels whose motion instance's "
            "affine map moves them to within 1 px of the true flow.\n",
            hard_table(hard, scores, methods_hard) + "\n"]
    if real:
        body += ["### Real data, default segmenter (camvid); EPE and Fl-all per dataset\n",
                 real_table(real, methods) + "\n"]
    if seeds:
        body += [f"### Real data over the fits' random draws (`ThingParams.seed` 0-{args.seeds - 1}); EPE per dataset\n",
                 "Seed 0 is the default (the rows above). The split's hypotheses and the RANSAC fits draw "
                 "from a generator seeded with this and each region's box: a region near a threshold (KITTI's "
                 "car region with `dis-medium`, object inlier share 0.43 against 0.40) is taken with some "
                 "draws and not others.\n", seeds + "\n"]
    body += ["### Cost of the things stage (seconds per pair, median)\n", cost_table(timings) + "\n",
             "Timings are on a shared machine: compare rows of one run only.\n"]
    if rounds:
        body += [f"### The things stage at 1024x436, {args.cost_rounds} rounds (Sintel's pairs)\n",
                 "The default, the default in one process (`ThingParams(processes=1)`: the instances' fits "
                 "not shared with a forked second process, as before 2026-12-02's third session) and the "
                 "single-motion variant alternate pair by pair, each round after the other, in the same "
                 "process (the baseline computed once before); the must-show of issue 15 is at most 0.5 s a "
                 "pair.\n", rounds + "\n"]
    text = "\n".join(body)
    print(text)
    if not args.no_write:
        write_section("things", text)


if __name__ == "__main__":
    main()
