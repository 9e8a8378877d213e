"""``semflow run`` on a long clip of small frames, this code beside an older checkout; writes the
``long-run`` section of BENCHMARKS.md.

    python scripts/bench_long_run.py --old-code DIR [--frames 6000] [--rounds 2]

A long clip of small frames is where per-pair bookkeeping shows: the run lists its finished intermediate
segments, claims each ``--save-flo`` file, draws each frame's legend and captures each decoder's stderr.
The clip is synthetic (a texture panning 1 px a frame, 96x72, H.264); both codes run ``semflow run CLIP
--method dis-ultrafast --cache-mb 1`` (a budget that holds no exact cache, as for an hour of video: the
flows go to the intermediate, or are computed again to be drawn when even that gets too few bytes a pair;
the table's "render from" says which) and the same with ``--save-flo`` (drawn from the .flo files), alternating, in fresh processes; the
table gives each run's wall seconds, its ``summary.json`` stages (read, flow, stats, draw, write) and the
child's peak memory (its own ``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchlib import invoked, machine, today, write_section  # noqa: E402

from semflow.io.video import VideoWriter  # noqa: E402
from semflow.synthetic import random_texture  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def make_clip(path: Path, frames: int, height: int = 72, width: int = 96) -> Path:
    """A texture panning 1 px a frame (wrapping round), ``frames`` frames of ``width`` x ``height``."""
    texture = random_texture(height, width + 256, np.random.default_rng(0)).clip(0, 255).astype(np.uint8)
    with VideoWriter(path, 25) as writer:
        for k in range(frames):
            x = k % 256
            writer.write(np.ascontiguousarray(texture[:, x:x + width]))
    return path


CHILD = """import resource, runpy, sys
peak = sys.argv.pop()
sys.argv = ["semflow", *sys.argv[1:]]
try:
    runpy.run_module("semflow", run_name="__main__")
finally:
    open(peak, "w").write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
"""
"""``python -m semflow ARGS...``, writing its peak resident kB into the file named last."""


def run(code: Path, clip: Path, out: Path, save_flo: bool) -> dict:
    """One ``semflow run`` of ``clip`` by the checkout ``code``: wall seconds, stages, peak MB."""
    env = {**os.environ, "PYTHONPATH": str(code), "OPENBLAS_NUM_THREADS": "1"}
    peak_file = out.with_suffix(".peak")
    command = [sys.executable, "-c", CHILD, "run", str(clip), "--out", str(out), "--method",
               "dis-ultrafast", "--cache-mb", "1", "--no-progress", *(["--save-flo"] if save_flo else []),
               str(peak_file)]
    start = time.perf_counter()
    subprocess.run(command, env=env, cwd=code, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    summary = json.loads((out / "summary.json").read_text())
    return {"wall": wall, "stages": summary["stage_seconds"], "pairs": summary["pairs"],
            "render_from": summary["render_from"], "peak_mb": int(peak_file.read_text()) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-code", type=Path, required=True, help="a checkout of the code to compare with")
    parser.add_argument("--frames", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--section", default="long-run")
    args = parser.parse_args()
    codes = {"this code": REPO, "old code": args.old_code.resolve()}
    setups = {"without --save-flo": False, "--save-flo": True}
    rows: dict[tuple[str, str], list[dict]] = {(setup, name): [] for setup in setups for name in codes}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        clip = make_clip(tmp / "long.mp4", args.frames)
        load = os.getloadavg()[0]
        for k in range(args.rounds):  # alternating: this, old; old, this; ...
            order = list(codes) if k % 2 == 0 else list(codes)[::-1]
            for setup, save_flo in setups.items():
                for name in order:
                    out = tmp / f"{name}-{setup}-{k}".replace(" ", "-")
                    rows[setup, name].append(run(codes[name], clip, out, save_flo))
                    print(setup, name, k, rows[setup, name][-1], flush=True)
    stages = ("read", "flow", "stats", "draw", "write")
    lines = [f"## `semflow run` on a long clip of small frames, this code beside older code ({args.section})", "",
             f"`{invoked()}` on {today()}; {machine()}; load average {load:.1f} at the start. "
             f"{args.frames} frames of 96x72 (a texture panning 1 px a frame), `semflow run CLIP --method dis-ultrafast "
             "--cache-mb 1` (no exact cache: the flows go to the intermediate, or are computed again to be drawn when "
             "even that gets too few bytes a pair: see render from) and the same with `--save-flo` (drawn from the "
             ".flo files); each run a fresh process, the codes alternating; median over rounds. The machine is shared: "
             "read the ratio, not the seconds.", "",
             "| run | code | pairs | render from | wall s | " + " | ".join(f"{s} s" for s in stages) + " | peak MB |",
             "|---|---|---|---|---|" + "---|" * len(stages) + "---|"]
    for (setup, name), runs in rows.items():
        med = {key: float(np.median([r["stages"].get(key, 0.0) for r in runs])) for key in stages}
        lines.append(f"| {setup} | {name} | {runs[0]['pairs']} | {runs[0]['render_from']} | "
                     f"{np.median([r['wall'] for r in runs]):.1f} | " + " | ".join(f"{med[s]:.1f}" for s in stages)
                     + f" | {max(r['peak_mb'] for r in runs):.0f} |")
    lines.append("")
    for setup in setups:
        ratio = (np.median([r["wall"] for r in rows[setup, "old code"]])
                 / np.median([r["wall"] for r in rows[setup, "this code"]]))
        lines.append(f"{setup}: old code / this code, wall seconds: {ratio:.2f}x.")
    write_section(args.section, "\n".join(lines))
    print("\n".join(lines))

if __name__ == "__main__":
    main()
