"""How much do the benchmark figures move with rounding alone? Writes BENCHMARKS.md section rounding.

    python scripts/bench_rounding.py ../shared/data [--methods dis-medium,discrete,semantic] [--write]

The same code, packages and data, run three times in fresh processes: as installed, and with OpenCV's
wider vector kernels switched off (``OPENCV_CPU_DISABLE``): first AVX, AVX2 and AVX-512 (OpenCV runs its
SSE4 code), then SSE4 too (its SSE2/3 code). These kernels' results differ in the last bits, as they
do between two machines whose CPUs pick different kernels. Every method sees the same images; only the
rounding of OpenCV's image operations (colour conversion, smoothing, resizing) changes. The table gives
each dataset's EPE under each setting and the spread, largest over smallest: a change of a benchmark
figure smaller than its spread here is not a change of the method.

Found by chance: the tables of BENCHMARKS.md were made on an AMD EPYC; on an Intel Xeon with the same
packages ``discrete`` read KITTI 10.01 (8.95 there) and Chairs 2.44 (2.25), the other datasets within 1 %.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import invoked, machine, today, write_section  # noqa: E402

DATASETS = {"kitti": "kitti", "sintel": "sintel", "middlebury": "middlebury", "chairs": "flyingchairs"}
SETTINGS = {
    "as installed": {},
    "OpenCV SSE4 kernels": {"OPENCV_CPU_DISABLE": "AVX512-SKX,AVX2,FP16,AVX"},
    "OpenCV SSE2/3 kernels": {"OPENCV_CPU_DISABLE": "AVX512-SKX,AVX2,FP16,AVX,SSE4.2,SSE4.1,POPCNT,SSSE3"},
}


def child(data: Path, methods: list[str]) -> None:
    """Print {method: {dataset: mean EPE}} as JSON (runs in a fresh process per setting)."""
    from semflow.evaluation import compare

    out: dict[str, dict[str, float]] = {m: {} for m in methods}
    for dataset, folder in DATASETS.items():
        results = compare(dataset, data / folder, methods, progress=False)
        for m in methods:
            epes = [r.epe for r in results if r.method == m]
            out[m][dataset] = sum(epes) / len(epes)
    print(json.dumps(out))


def run_setting(data: Path, methods: list[str], env: dict[str, str]) -> dict[str, dict[str, float]]:
    command = [sys.executable, __file__, str(data), "--methods", ",".join(methods), "--child"]
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(runs: dict[str, dict[str, dict[str, float]]], methods: list[str]) -> str:
    """Rows: methods; columns: datasets; cells: EPE per setting (in ``SETTINGS``' order) and the spread."""
    lines = ["| method | " + " | ".join(DATASETS) + " |", "|" + "---|" * (1 + len(DATASETS))]
    for m in methods:
        cells = []
        for d in DATASETS:
            epes = [run[m][d] for run in runs.values()]
            cells.append(", ".join(f"{e:.3f}" for e in epes) + f" ({(max(epes) / min(epes) - 1) * 100:.1f} %)")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--methods", default="dis-medium,discrete,semantic")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--write", action="store_true", help="write BENCHMARKS.md section rounding")
    args = parser.parse_args()
    methods = args.methods.split(",")
    if args.child:
        child(args.data, methods)
        return
    runs = {name: run_setting(args.data, methods, env) for name, env in SETTINGS.items()}
    body = "\n\n".join([
        "## Rounding alone: the same run with other OpenCV kernels (rounding)",
        f"`{invoked()}` on {today()}; "
        f"{machine()}.",
        "EPE in px, mean over each dataset's pairs (KITTI: 1, Sintel: 2, Middlebury: 8, Chairs: 3), "
        "under each setting, each in a fresh process: " + ", ".join(
            f"{name}" + (f" (`OPENCV_CPU_DISABLE={env['OPENCV_CPU_DISABLE']}`)" if env else "")
            for name, env in SETTINGS.items())
        + "; in brackets the spread (largest over smallest). Only the rounding of OpenCV's image "
        "operations differs between them, as it does between CPUs that pick other kernels: a change of "
        "a figure in the other sections smaller than its spread here is noise, not the method.",
        table(runs, methods),
    ])
    print(body)
    if args.write:
        write_section("rounding", body)


if __name__ == "__main__":
    main()
