"""``discrete`` with and without its keypoint matches, on altered copies of every real pair; writes the
``keypoints`` section of BENCHMARKS.md. ``discrete`` runs without its two last stages (the search for
missed motions, the sharpening: on by default since 2026-12-02), as the section first measured it.

    python scripts/bench_keypoints.py ../shared/data [--versions 16] [--no-write]

The datasets are small (KITTI is one pair, FlyingChairs three), and some pairs are chaotic: cropping a
FlyingChairs pair by a pixel moves its EPE by more than a pixel. So each pair is measured on
``--versions`` copies: itself and mirrored left-right, each cropped by (dy, dx) px from the top-left
for the first few (dy, dx) in 0..3 (flow and validity cropped alike), and a setting is judged on
the mean over them. Both settings run side by side, pair by pair, each in a child process of its own
(seconds: median per pair; peak MB: that process's); each flow is also sharpened (``--sharpen``'s step,
:func:`semflow.sharpen.sharpen_boundaries`, in this process), so that the two settings are compared
with the step as well.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import machine, today, write_section  # noqa: E402

from semflow.io.datasets import load_dataset  # noqa: E402
from semflow.isolation import IsolatedMethod  # noqa: E402
from semflow.metrics import epe, fl_all  # noqa: E402
from semflow.sharpen import sharpen_boundaries  # noqa: E402

DATASETS = {"middlebury": "middlebury", "sintel": "sintel", "kitti": "kitti", "chairs": "flyingchairs"}
PLAIN = {"sharpen": False, "missed_motions": False}
"""discrete without its two last stages (on by default since 2026-12-02): the rows ``--sharpen`` add the step."""
SETTINGS = {
    "discrete (keypoint matches, the default)": PLAIN,
    "discrete keypoint_radius=0 (none)": {**PLAIN, "keypoint_radius": 0},
}
CROPS = [(0, 0), (1, 2), (2, 1), (3, 3), (0, 3), (3, 0), (1, 1), (2, 2)]


def versions(sample, count: int):
    """``count`` altered copies (img1, img2, flow, valid) of a sample: the first ``count // 2`` crops of
    :data:`CROPS` of the pair and of its mirror image."""
    a, b, flow, valid = sample.img1, sample.img2, sample.flow, sample.valid
    mirrored = (a[:, ::-1], b[:, ::-1], flow[:, ::-1] * np.float32([-1, 1]), valid[:, ::-1])
    for pair, (dy, dx) in itertools.product(((a, b, flow, valid), mirrored), CROPS[:count // 2]):
        yield tuple(np.ascontiguousarray(x[dy:, dx:]) for x in pair)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the shared data folder (../shared/data)")
    parser.add_argument("--versions", type=int, default=16, help=f"copies per pair, even, at most {2 * len(CROPS)}")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch BENCHMARKS.md")
    args = parser.parse_args()
    if args.versions < 2 or args.versions % 2 or args.versions > 2 * len(CROPS):
        raise SystemExit(f"--versions must be even, from 2 to {2 * len(CROPS)}")
    methods = {label: IsolatedMethod("discrete", options) for label, options in SETTINGS.items()}
    labels = [x for label in methods for x in (label, f"{label} --sharpen")]
    rows = {(d, label): [] for d in DATASETS for label in labels}  # (EPE, Fl-all) per version
    first = {(d, label): [] for d in DATASETS for label in labels}  # the unaltered pair's
    seconds = {label: {d: [] for d in DATASETS} for label in methods}
    peak = dict.fromkeys(methods, 0.0)
    better = dict.fromkeys(DATASETS, 0)
    try:
        for dataset, folder in DATASETS.items():
            for ref in load_dataset(dataset, args.data / folder):
                sample = ref.load()
                for v, (img1, img2, flow, valid) in enumerate(versions(sample, args.versions)):
                    errors = []
                    for label, method in methods.items():
                        result, took, mb = method.estimate(img1, img2)
                        seconds[label][dataset].append(took)
                        peak[label] = max(peak[label], mb)
                        sharpened, _ = sharpen_boundaries(img1, img2, result.flow)
                        for name, f in ((label, result.flow), (f"{label} --sharpen", sharpened)):
                            score = (epe(f, flow, valid), fl_all(f, flow, valid))
                            rows[dataset, name].append(score)
                            if v == 0:
                                first[dataset, name].append(score)
                        errors.append(rows[dataset, label][-1][0])
                    better[dataset] += int(errors[0] < errors[1])
                print(dataset, sample.name, "; ".join(
                    f"{label} {np.mean([e for e, _ in rows[dataset, label][-args.versions:]]):.3f}"
                    for label in labels), flush=True)
    finally:
        for method in methods.values():
            method.close()

    header = "| setting | " + " | ".join(f"{d} EPE | {d} Fl %" for d in DATASETS) + " |"
    rule = "|---|" + "---|---|" * len(DATASETS)
    base, other = list(methods)

    def table(source: dict) -> list[str]:
        lines = [header, rule]
        for label in labels:
            cells = [f"{np.mean([e for e, _ in source[d, label]]):.3f} | {100 * np.mean([f for _, f in source[d, label]]):.2f}"
                     for d in DATASETS]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        change = []
        for d in DATASETS:
            e0, e1 = (np.mean([e for e, _ in source[d, k]]) for k in (base, other))
            f0, f1 = (np.mean([f for _, f in source[d, k]]) for k in (base, other))
            change.append(f"{100 * (e0 / e1 - 1):+.1f} % | {100 * (f0 - f1):+.2f} pts")
        lines.append("| change, keypoints on vs off | " + " | ".join(change) + " |")
        change = []
        for d in DATASETS:
            e0, e1 = (np.mean([e for e, _ in source[d, f"{k} --sharpen"]]) for k in (base, other))
            f0, f1 = (np.mean([f for _, f in source[d, f"{k} --sharpen"]]) for k in (base, other))
            change.append(f"{100 * (e0 / e1 - 1):+.1f} % | {100 * (f0 - f1):+.2f} pts")
        lines.append("| change, keypoints on vs off, both --sharpen | " + " | ".join(change) + " |")
        return lines

    pairs = {d: len(first[d, base]) for d in DATASETS}
    count_line = "| versions where keypoints give the lower EPE | " + " | ".join(
        f"{better[d]} of {pairs[d] * args.versions} | " for d in DATASETS) + " |"
    cost = ["| setting (without --sharpen) | " + " | ".join(f"{d} s/pair" for d in DATASETS) + " | peak MB |",
            "|---|" + "---|" * (len(DATASETS) + 1)]
    for label in methods:
        cost.append(f"| {label} | " + " | ".join(f"{np.median(seconds[label][d]):.2f}" for d in DATASETS)
                    + f" | {peak[label]:.0f} |")
    command = " ".join(["python scripts/bench_keypoints.py", *sys.argv[1:]])
    text = "\n".join([
        "## Keypoint matches in `discrete` (keypoints)\n",
        f"`{command}` on {today()}; {machine()}.\n",
        "`discrete` offers each grid point of its finest level the flows of the nearest SIFT keypoint"
        " matches (within 12 px; `semflow/baseline/discrete/keypoints.py`), for things too small for"
        " the coarse levels (section missed-things). Here: with and without them, side by side, each in"
        " a child process of its own. EPE in px; Fl in %.\n",
        f"### Mean over {args.versions} altered copies of every pair (mirrored or not, cropped by 0-3 px)\n",
        "\n".join(table(rows)), count_line, "",
        "### The pairs as they are (as in the other sections)\n",
        "\n".join(table(first)) + "\n",
        "### Cost (seconds per pair, median over every version)\n",
        "\n".join(cost) + "\n",
        "Timings are on a shared 2-core machine: compare rows of one run only.",
    ])
    print(text)
    if not args.no_write:
        write_section("keypoints", text)


if __name__ == "__main__":
    main()
