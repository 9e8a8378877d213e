"""Measure how much memory each flow method needs per frame size; writes semflow/memory_needs.json.

    python scripts/measure_memory.py                       # every method, two sizes
    python scripts/measure_memory.py --methods semantic,discrete --sizes 240x320,540x720

Each method runs in a fresh child process of its own (semflow.isolation.IsolatedMethod) on one
synthetic pair per size; its peak resident memory (Python, libraries, model and working memory) is
fitted as ``base_mb + bytes_per_pixel * H * W``. ``semflow flow`` and ``semflow run`` read the file to
stop, before starting, a pair that would not fit in the memory available (semflow.memory.check_memory).
The fit is made with the slope rounded up by ``--margin`` (default 1.25) so that the estimate errs on
the side of "needs more".
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchlib import machine, today

from semflow.isolation import IsolatedMethod
from semflow.methods import list_methods
from semflow.synthetic import make_scene

OUT = Path(__file__).resolve().parents[1] / "semflow" / "memory_needs.json"
# A method that runs another inside it needs at least what that one needs per pixel (two small sizes
# give a noisy slope: semantic measured 942 B/px, below its own baseline discrete's 1076).
INCLUDES = {"semantic": "discrete"}


def measure(method: str, sizes: list[tuple[int, int]]) -> list[tuple[int, float, float]]:
    """``(pixels, peak MB, seconds)`` for one pair of each size, each size in a fresh process."""
    rows = []
    for h, w in sizes:
        scene = make_scene(h, w, seed=5)
        with IsolatedMethod(method, {}) as isolated:
            _, seconds, peak = isolated.estimate(scene.img1, scene.img2)
        rows.append((h * w, peak, seconds))
        print(f"{method:14s} {w}x{h}: {peak:7.0f} MB  {seconds:6.2f} s", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=",".join(list_methods()))
    parser.add_argument("--sizes", default="240x320,540x720", help="HxW,HxW,...")
    parser.add_argument("--margin", type=float, default=1.25)
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    if len({h * w for h, w in sizes}) < 2:  # (one size gives no slope: larger frames would be underestimated)
        raise SystemExit("--sizes needs at least two sizes of different pixel counts, e.g. 240x320,540x720")
    needs = json.loads(OUT.read_text())["methods"] if OUT.exists() else {}
    start = time.time()
    for method in args.methods.split(","):
        rows = measure(method, sizes)
        (p0, m0, _), (p1, m1, _) = rows[0], rows[-1]
        slope = max(m1 - m0, 0.0) * 2**20 / max(p1 - p0, 1) * args.margin
        inner = needs.get(INCLUDES.get(method, ""), {})
        slope = max(slope, inner.get("bytes_per_pixel", 0.0))
        base = max(m0 - slope * p0 / 2**20, 0.0)
        needs[method] = {"base_mb": round(base, 1), "bytes_per_pixel": round(slope, 1),
                         "measured": {f"{int(p)}px": round(m, 1) for p, m, _ in rows}}
    document = {
        "about": "Peak resident memory of one flow pair, per method: base_mb + bytes_per_pixel * H * W / 2**20"
                 " (MB). Written by scripts/measure_memory.py; each method alone in a fresh process;"
                 f" slope times {args.margin} for margin; a method that runs another (semantic: discrete) takes at"
                 " least that one's slope.",
        "machine": machine(), "date": today(), "sizes": args.sizes, "methods": needs,
    }
    OUT.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {OUT} in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
