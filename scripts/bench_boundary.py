"""discrete's boundary step (``boundary_radius``, issue 15) against discrete as it is, side by side.

    OPENBLAS_NUM_THREADS=1 python scripts/bench_boundary.py /work/shared/data [--hard 8] [--skip-real]

The step runs after refinement, so each pair's discrete flow is computed once and the step is applied
to it (``boundary.reassign_boundaries`` with the default ``BoundaryParams``, radius 10): exactly
``DiscreteFlow(boundary_radius=10)``'s output. Hard synthetic scenes (seed 5000, as bench_things.py):
EPE, things EPE, the 5 px band inside thing outlines and the rest of the things. Real data (KITTI,
Sintel, Middlebury, Chairs): EPE per dataset and the relative change. Prints; writes nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from semflow.baseline.discrete import DiscreteFlow
from semflow.baseline.discrete.boundary import reassign_boundaries
from semflow.evaluation import score
from semflow.io.datasets import load_dataset
from semflow.metrics import endpoint_error, inner_band
from semflow.synthetic_hard import HARD_KINDS, make_hard_scene

HARD_SEED = 5000
REAL = {"kitti": "kitti", "sintel": "sintel", "middlebury": "middlebury", "chairs": "flyingchairs"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the shared data folder")
    parser.add_argument("--hard", type=int, default=8)
    parser.add_argument("--skip-real", action="store_true")
    args = parser.parse_args()
    method = DiscreteFlow()
    rows = {"discrete": [], "discrete boundary_radius=10": []}
    seconds = []
    for i in range(args.hard):
        s = make_hard_scene(seed=HARD_SEED + 1000 * i, kind=HARD_KINDS[i % 2])
        things = s.instances > 0
        band = inner_band(things, 5, s.instances)
        flow = method.estimate(s.img1, s.img2).flow
        start = time.perf_counter()
        sharp = reassign_boundaries(s.img1, s.img2, flow)
        seconds.append(time.perf_counter() - start)
        for name, f in zip(rows, (flow, sharp)):
            e = endpoint_error(f, s.flow)
            rows[name].append((e.mean(), e[things].mean(), e[band].mean(), e[things & ~band].mean()))
        print(f"hard {i}: " + "; ".join(f"{k} band {v[-1][2]:.3f}" for k, v in rows.items()), flush=True)
    print(f"\nHard synthetic scenes ({args.hard}, seed {HARD_SEED}); step {np.mean(seconds):.2f} s per pair\n")
    print("| flow | EPE | things EPE | band EPE (5 px) | inside-band EPE | band / inside |\n|---|---|---|---|---|---|")
    for name, v in rows.items():
        a = np.mean(v, 0)
        print(f"| {name} | {a[0]:.3f} | {a[1]:.3f} | {a[2]:.3f} | {a[3]:.3f} | {a[2] / a[3]:.2f} |")
    if args.skip_real:
        return
    print("\n| dataset | pairs | discrete EPE | boundary_radius=10 EPE | change | step s per pair |\n|---|---|---|---|---|---|")
    for dataset, folder in REAL.items():
        pairs = []
        for ref in load_dataset(dataset, args.data / folder):
            sample = ref.load()
            flow = method.estimate(sample.img1, sample.img2).flow
            start = time.perf_counter()
            sharp = reassign_boundaries(sample.img1, sample.img2, flow)
            pairs.append((score(flow, sample)[0], score(sharp, sample)[0], time.perf_counter() - start))
        a = np.mean(pairs, 0)
        print(f"| {dataset} | {len(pairs)} | {a[0]:.4f} | {a[1]:.4f} | {100 * (a[1] / a[0] - 1):+.2f} % | {a[2]:.1f} |",
              flush=True)


if __name__ == "__main__":
    sys.exit(main())
