"""Whole things missed on more hard scenes; writes the ``missed-things`` section of BENCHMARKS.md.

    OPENBLAS_NUM_THREADS=1 python scripts/bench_missed_things.py [--scenes 32] [--no-write]

The hard synthetic scenes of ``bench_things.py`` (seeds 5000, 6000, ...; a car passing parked cars
and groups of pedestrians, things moving 15-30 px), more of them than the 8 the other sections use:
the first 8 are those, the rest show how typical they are. Seeds stay below 40000, the held-out
scenes of ``bench_sharpen.py``. Side by side, pair by pair, each method in a child process of its own
(:class:`semflow.isolation.IsolatedMethod`: seconds per pair and that process's peak memory);
``semantic`` with the given masks.

A thing is *missed* when its mean error is above 0.6 times its mean motion (things that move at least
10 px): its flow is then mostly another motion's, typically the background's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import machine, today, write_section  # noqa: E402

from semflow.isolation import IsolatedMethod  # noqa: E402
from semflow.metrics import endpoint_error  # noqa: E402
from semflow.synthetic_hard import HARD_KINDS, make_hard_scene  # noqa: E402

FIRST_SEED = 5000
HELD_OUT_SEED = 40000
BENCH_SCENES = 8
MIN_MOTION = 10.0
MISSED = 0.6
METHODS = {
    "dis-medium": ("dis-medium", {}),
    "discrete": ("discrete", {}),
    "discrete keypoint_radius=0": ("discrete", {"keypoint_radius": 0}),
    "semantic[dis-medium]": ("semantic", {"baseline": "dis-medium"}),
    "semantic[discrete]": ("semantic", {}),
}


def missed_things(flow: np.ndarray, truth: np.ndarray, instances: np.ndarray) -> tuple[int, int]:
    """(things missed, things moving at least MIN_MOTION px) of one scene."""
    error = endpoint_error(flow, truth)
    missed = moving = 0
    for k in np.unique(instances[instances > 0]):
        inside = instances == k
        motion = float(np.hypot(*truth[inside].mean(0)))
        if motion >= MIN_MOTION:
            moving += 1
            missed += int(error[inside].mean() > MISSED * motion)
    return missed, moving


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=32, help="hard scenes (seeds 5000, 6000, ...)")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch BENCHMARKS.md")
    args = parser.parse_args()
    if not BENCH_SCENES < args.scenes <= (HELD_OUT_SEED - FIRST_SEED) // 1000:
        raise SystemExit(f"--scenes must be above {BENCH_SCENES} and keep the seeds below {HELD_OUT_SEED}")
    methods = {label: IsolatedMethod(name, options) for label, (name, options) in METHODS.items()}
    things = {label: [] for label in methods}
    missed = {label: [] for label in methods}
    seconds = {label: [] for label in methods}
    peak = dict.fromkeys(methods, 0.0)
    try:
        for i in range(args.scenes):
            s = make_hard_scene(seed=FIRST_SEED + 1000 * i, kind=HARD_KINDS[i % 2])
            for label, method in methods.items():
                result, took, mb = method.estimate(s.img1, s.img2, labels=s.labels)
                seconds[label].append(took)
                peak[label] = max(peak[label], mb)
                things[label].append(float(endpoint_error(result.flow, s.flow)[s.instances > 0].mean()))
                missed[label].append(missed_things(result.flow, s.flow, s.instances))
            print(i, "; ".join(f"{k} {v[-1]:.3f}" for k, v in things.items()), flush=True)
    finally:
        for method in methods.values():
            method.close()

    n, b = args.scenes, BENCH_SCENES
    lines = [f"| method | things EPE, scenes 1-{b} | things EPE, scenes {b + 1}-{n} | things EPE, all {n} | "
             "scenes with a thing missed | things missed | s/pair | peak MB |", "|---|---|---|---|---|---|---|---|"]
    for label in methods:
        t = np.array(things[label])
        counts = np.array(missed[label])
        lines.append(f"| {label} | {t[:b].mean():.3f} | {t[b:].mean():.3f} | {t.mean():.3f} | "
                     f"{int((counts[:, 0] > 0).sum())} of {n} | {counts[:, 0].sum()} of {counts[:, 1].sum()} | "
                     f"{np.median(seconds[label]):.2f} | {peak[label]:.0f} |")
    command = " ".join(["OPENBLAS_NUM_THREADS=1 python scripts/bench_missed_things.py", *sys.argv[1:]])
    text = "\n".join([
        f"## Whole things missed, on {n} hard scenes (missed-things)\n",
        f"`{command}` on {today()}; {machine()}.\n",
        f"The hard scenes of section things (seeds {FIRST_SEED}, {FIRST_SEED + 1000}, ...; scenes 1-{b} are"
        f" that section's), {n} of them, side by side pair by pair, each method in a child process of its own"
        " (s/pair: median; peak MB: that process's); `semantic` with the given masks. EPE"
        f" in px. A thing that moves at least {MIN_MOTION:g} px is missed when its mean error is above"
        f" {MISSED:g} times its motion.\n",
        "\n".join(lines) + "\n",
        "Timings are on a shared 2-core machine: compare rows of one run only.",
    ])
    print(text)
    if not args.no_write:
        write_section("missed-things", text)


if __name__ == "__main__":
    main()
