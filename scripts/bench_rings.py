"""``discrete`` with and without its ring refit step (``ring_width``, 6 by default since 2026-12-06); writes
the ``rings`` section of BENCHMARKS.md.

    OPENBLAS_NUM_THREADS=1 python scripts/bench_rings.py ../shared/data [--versions 8] [--hard 8] [--no-write]

``discrete`` runs with the step off (``ring_width=0``; its missed-motions and sharpen stages on) once per pair
in a child process (seconds and peak MB of the method); the ring step
(``semflow.baseline.discrete.rings.refit_rings``, the option's last step) runs here on that flow and is
timed alone. On the first pair of every group the script also runs ``discrete`` as shipped and checks that
it gives the same flow, so the rows are the default's.

- the hard synthetic scenes of section things (``--hard`` of them, seed 5000: the scenes issue 15's band
  ratio is read on) and as many held-out ones (seed 40000, never looked at while the step was made);
- the photo scenes of section photo-scenes (16 per group: photo, held-out, fresh);
- the real data on ``--versions`` altered copies of every pair (as section keypoints: mirrored or not,
  cropped by 0-3 px), and the pairs as they are.

Synthetic rows: EPE, things EPE, the 5 px band inside thing outlines, the rest of the things, and the
ratio band / inside.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_keypoints import CROPS, versions  # noqa: E402
from bench_photo_scenes import EVERY, GROUPS  # noqa: E402
from benchlib import hard_scenes, machine, today, write_section  # noqa: E402

from semflow.baseline.discrete.rings import refit_rings  # noqa: E402
from semflow.io.datasets import load_dataset  # noqa: E402
from semflow.isolation import IsolatedMethod  # noqa: E402
from semflow.metrics import endpoint_error, epe, fl_all, inner_band  # noqa: E402
from semflow.synthetic_photo import cut_outs, make_photo_scene, read_camvid  # noqa: E402

WIDTH = 6
DATASETS = {"middlebury": "middlebury", "sintel": "sintel", "kitti": "kitti", "chairs": "flyingchairs"}
HARD_SEEDS = {"hard": 5000, "held-out": 40000}
PHOTO = [f"photo {g}" for g in GROUPS]
PLAIN, RINGS = "discrete ring_width=0", f"discrete (default, ring_width={WIDTH})"
LABELS = [PLAIN, RINGS]


class Runs:
    """Figures per (group, label); the method's seconds and the ring step's seconds per group; the peak MB."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], list[tuple[float, ...]]] = {}
        self.first: dict[tuple[str, str], list[tuple[float, ...]]] = {}
        self.seconds: dict[str, list[float]] = {}
        self.step: dict[str, list[float]] = {}
        self.peak = 0.0


def two_flows(runs: Runs, group: str, method: IsolatedMethod, check: IsolatedMethod | None,
              img1: np.ndarray, img2: np.ndarray) -> dict[str, np.ndarray]:
    """The flows of :data:`LABELS` for one pair; with ``check``, the default's own flow must equal the step's."""
    result, seconds, peak = method.estimate(img1, img2)
    runs.seconds.setdefault(group, []).append(seconds)
    runs.peak = max(runs.peak, peak)
    start = time.perf_counter()
    ringed = refit_rings(img1, img2, result.flow, width=WIDTH)
    runs.step.setdefault(group, []).append(time.perf_counter() - start)
    if check is not None:
        checked, _, check_peak = check.estimate(img1, img2)
        runs.peak = max(runs.peak, check_peak)
        if not np.array_equal(checked.flow, ringed):
            raise SystemExit(f"{group}: the ring step differs from {RINGS}'s flow")
    return {PLAIN: result.flow, RINGS: ringed}


def scene_rows(runs: Runs, group: str, i: int, scene, things, band, inner, method, check) -> None:
    flows = two_flows(runs, group, method, check if i == 0 else None, scene.img1, scene.img2)
    for label, flow in flows.items():
        err = endpoint_error(flow, scene.flow)
        runs.rows.setdefault((group, label), []).append(
            (err.mean(), err[things].mean(), err[band].mean(), err[inner].mean()))
    print(group, i, "; ".join(f"{k} {runs.rows[group, k][-1][0]:.3f}" for k in LABELS), flush=True)


def hard_rows(runs: Runs, count: int, method: IsolatedMethod, check: IsolatedMethod) -> None:
    for group, i, scene, things, band, inner in hard_scenes(HARD_SEEDS, count):
        scene_rows(runs, group, i, scene, things, band, inner, method, check)


def photo_rows(runs: Runs, data: Path, count: int, method: IsolatedMethod, check: IsolatedMethod) -> None:
    camvid = data / "camvid"
    pool = [c for name, image, labels in read_camvid(camvid, "train") for c in cut_outs(image, labels, source=name)]
    val = list(read_camvid(camvid, "val"))
    for group, (first, seed) in GROUPS.items():
        for i, (_, image, labels) in enumerate(val[first::EVERY][:count]):
            scene = make_photo_scene(image, labels, pool, seed=seed + i)
            things = scene.instances > 0
            band = inner_band(things, 5, scene.instances)
            scene_rows(runs, f"photo {group}", i, scene, things, band, things & ~band, method, check)


def real_rows(runs: Runs, data: Path, count: int, method: IsolatedMethod, check: IsolatedMethod) -> None:
    for dataset, folder in DATASETS.items():
        for ref in load_dataset(dataset, data / folder):
            sample = ref.load()
            for v, (img1, img2, flow, valid) in enumerate(versions(sample, count)):
                flows = two_flows(runs, dataset, method, check if v == 0 and not runs.rows.get((dataset, PLAIN))
                                  else None, img1, img2)
                for label, f in flows.items():
                    score = (epe(f, flow, valid), fl_all(f, flow, valid))
                    runs.rows.setdefault((dataset, label), []).append(score)
                    if v == 0:
                        runs.first.setdefault((dataset, label), []).append(score)
            print(dataset, sample.name, "; ".join(
                f"{k} {np.mean([e for e, _ in runs.rows[dataset, k][-count:]]):.3f}" for k in LABELS), flush=True)


def scene_table(runs: Runs, groups: list[str]) -> str:
    lines = ["| scenes | flow | EPE | things EPE | band EPE (5 px) | inside-band EPE | band / inside |",
             "|---|---|---|---|---|---|---|"]
    for group in groups:
        for label in LABELS:
            e, t, b, n = np.mean(runs.rows[group, label], axis=0)
            lines.append(f"| {group} ({len(runs.rows[group, label])}) | {label} | {e:.3f} | {t:.3f} | {b:.3f} |"
                         f" {n:.3f} | {b / n:.2f} |")
    return "\n".join(lines)


def real_table(source: dict) -> str:
    lines = ["| flow | " + " | ".join(f"{d} EPE | {d} Fl %" for d in DATASETS) + " |",
             "|---|" + "---|---|" * len(DATASETS)]
    for label in LABELS:
        lines.append(f"| {label} | " + " | ".join(
            f"{np.mean([e for e, _ in source[d, label]]):.3f} | {100 * np.mean([f for _, f in source[d, label]]):.2f}"
            for d in DATASETS) + " |")
    cells = []
    for d in DATASETS:
        (e1, f1), (e0, f0) = (np.mean(source[d, k], axis=0) for k in (RINGS, PLAIN))
        cells.append(f"{100 * (e1 / e0 - 1):+.1f} % | {100 * (f1 - f0):+.2f} pts")
    lines.append(f"| change, {RINGS} vs {PLAIN} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the shared data folder (../shared/data)")
    parser.add_argument("--versions", type=int, default=8, help=f"copies per pair, even, at most {2 * len(CROPS)}")
    parser.add_argument("--hard", type=int, default=8, help="hard synthetic scenes per seed group")
    parser.add_argument("--photo", type=int, default=16, help="photo scenes per group")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch BENCHMARKS.md")
    args = parser.parse_args()
    if args.versions < 2 or args.versions % 2 or args.versions > 2 * len(CROPS):
        raise SystemExit(f"--versions must be even, from 2 to {2 * len(CROPS)}")
    runs = Runs()
    with IsolatedMethod("discrete", {"ring_width": 0}) as method, IsolatedMethod("discrete", {}) as check:
        hard_rows(runs, args.hard, method, check)
        photo_rows(runs, args.data, args.photo, method, check)
        real_rows(runs, args.data, args.versions, method, check)
    groups = [*HARD_SEEDS, *PHOTO, *DATASETS]
    cost = ["| | " + " | ".join(groups) + " |", "|---|" + "---|" * len(groups),
            "| discrete ring_width=0 s/pair (median) | " + " | ".join(f"{np.median(runs.seconds[g]):.2f}" for g in groups) + " |",
            "| ring step s (median) | " + " | ".join(f"{np.median(runs.step[g]):.3f}" for g in groups) + " |"]
    command = " ".join(["OPENBLAS_NUM_THREADS=1 python scripts/bench_rings.py", *sys.argv[1:]])
    text = "\n".join([
        "## Rigid outlines refitted after `discrete` (rings)\n",
        f"`{command}` on {today()}; {machine()}.\n",
        f"`discrete` with the step off (`ring_width=0`, the default before 2026-12-06) against `discrete` as shipped"
        f" (preset balanced, `ring_width={WIDTH}`):"
        " superpixels of frame t (SLIC) each fitted an affine motion, neighbours that agree joined into rigid pieces,"
        " a guarded vote giving stray superpixels near a piece its motion where it matches the colours better, then"
        f" each piece's affine (fitted on its core, 10 px inside, less for thin pieces) on its outer {WIDTH} px where it moves"
        " the flow by at most 1 px (docs/methods.md, section rings). The default's flow was checked equal to the"
        f" step's on the first pair of every group. Peak of the discrete processes: {runs.peak:.0f} MB. EPE in px.\n",
        f"### Hard synthetic scenes ({args.hard} a seed group; seed 5000 as in section things) and photo scenes"
        f" ({args.photo} a group, as in section photo-scenes)\n",
        scene_table(runs, [*HARD_SEEDS, *PHOTO]) + "\n",
        f"### Real data: mean over {args.versions} altered copies of every pair (mirrored or not, cropped by 0-3 px)\n",
        real_table(runs.rows) + "\n",
        "### Real data: the pairs as they are\n",
        real_table(runs.first) + "\n",
        "### Cost (seconds per pair, median)\n",
        "\n".join(cost) + "\n",
        "Timings are on a shared 2-core machine: compare rows of one run only.",
    ])
    print(text)
    if not args.no_write:
        write_section("rings", text)


if __name__ == "__main__":
    main()
