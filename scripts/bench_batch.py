"""Benchmark ``semflow batch`` and the temporary disk of ``semflow run``; writes BENCHMARKS.md's "batch" section.

    python scripts/bench_batch.py ../shared/data [--frames 150] [--long-frames 0] [--repeats 2] [--old-code DIR]

1. Throughput: the same clips (``videos/vtest.avi`` and ``videos/solidWhiteRight.mp4``, first ``--frames``
   frames each, dis-medium) run one after the other with ``semflow run`` and as one batch with 1 and 2
   Ray workers (chunks of ``--chunk-pairs`` pairs): pairs/s and wall seconds, Ray's start-up apart.
2. Temporary disk: ``semflow run`` on the whole of ``vtest.avi`` (795 frames, 768x576), by this code and,
   with ``--old-code DIR`` (a checkout of the code before the change), by that code, side by side in
   subprocesses, alternating ``--repeats`` times; a thread samples the bytes the work folder takes on
   disk (allocated blocks) every 0.1 s. Then a run with ``cache_budget=0`` measures what a pair beyond the
   cache keeps (its record), to extrapolate to an hour of 1080p.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import machine, today, write_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
WORK_DIR = ".semflow-work"
RUN_CODE = """
import json, sys, time
from semflow.pipeline import RunOptions, run_video
opts = dict(method=sys.argv[3])
if sys.argv[4] != "0":
    opts["max_frames"] = int(sys.argv[4])
if sys.argv[5] != "-":
    opts["cache_budget"] = int(sys.argv[5])
start = time.perf_counter()
summary = run_video(sys.argv[1], sys.argv[2], RunOptions(**opts))
print(json.dumps({"wall": time.perf_counter() - start, "pairs": summary["pairs"],
                  "max_flow": summary["max_flow_px"], "stages": summary.get("stage_seconds"),
                  "compute": summary["seconds_per_pair"]["total"], "render_from": summary.get("render_from")}))
"""


class DiskPeak:
    """Samples the allocated bytes of every ``.semflow-work`` folder under ``root`` every 0.1 s."""

    def __init__(self, root: Path) -> None:
        self.root, self.peak, self._stop = root, 0, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _size(self) -> int:
        total = 0
        for work in self.root.rglob(WORK_DIR):
            for dirpath, _, files in os.walk(work):
                for name in files:
                    try:
                        total += os.stat(os.path.join(dirpath, name)).st_blocks * 512
                    except OSError:
                        pass
        return total

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._size())
            self._stop.wait(0.1)

    def __enter__(self) -> DiskPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_subprocess(code_dir: Path, video: Path, out: Path, method: str, frames: int,
                   cache_budget: int | None = None) -> tuple[dict, int]:
    env = {**os.environ, "PYTHONPATH": str(code_dir)}
    budget = "-" if cache_budget is None else str(cache_budget)
    with DiskPeak(out) as disk:
        proc = subprocess.run([sys.executable, "-c", RUN_CODE, str(video), str(out), method, str(frames), budget],
                              env=env, capture_output=True, text=True, cwd=tempfile.gettempdir())
    if proc.returncode:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1]), disk.peak


def throughput(clips: list[Path], frames: int, method: str, chunk_pairs: int, tmp: Path) -> list[str]:
    from semflow.batch import Batch, BatchOptions
    from semflow.pipeline import RunOptions, run_video

    rows = []
    start = time.perf_counter()
    pairs = 0
    for clip in clips:
        pairs += run_video(clip, tmp / "run" / clip.stem, RunOptions(method=method, max_frames=frames))["pairs"]
    wall = time.perf_counter() - start
    rows.append(f"| `semflow run`, one clip after the other | 1 process | {pairs} | {wall:.1f} | {pairs / wall:.2f} | - |")
    for workers in (1, 2):
        options = BatchOptions(method=method, max_frames=frames, workers=workers, chunk_pairs=chunk_pairs)
        with Batch(tmp / f"batch{workers}", options) as batch:
            batch.submit(clips)
            for result in batch.results():
                if result.status != "ok":
                    raise SystemExit(f"{result.name}: {result.error}")
        s = batch.summary
        rows.append(f"| `semflow batch --workers {workers} --chunk-pairs {chunk_pairs}` | {workers} Ray actor(s) |"
                    f" {s['computed_pairs']} | {s['wall_seconds']:.1f} | {s['pairs_per_second']:.2f} |"
                    f" {s['startup_seconds']:.1f} |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("--frames", type=int, default=150, help="frames per clip in the throughput test")
    parser.add_argument("--chunk-pairs", type=int, default=50)
    parser.add_argument("--method", default="dis-medium")
    parser.add_argument("--long-frames", type=int, default=0, help="frames of the long run (0: all 795)")
    parser.add_argument("--old-code", type=Path, default=None, help="a checkout of the code before the change")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each code in the long-run test")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--section", default="batch", help="the BENCHMARKS.md section to write")
    args = parser.parse_args()
    videos = args.data / "videos"
    clips = [videos / "vtest.avi", videos / "solidWhiteRight.mp4"]
    title = "## `semflow batch` and the temporary disk of `semflow run`" if args.section == "batch" else \
        "### `semflow run` on a short clip, this code beside the code before"
    lines = [f"{title} ({args.section})", "",
             f"`python scripts/bench_batch.py ../shared/data --frames {args.frames} --chunk-pairs {args.chunk_pairs}"
             f" --long-frames {args.long_frames} --repeats {args.repeats}{' --old-code DIR' if args.old_code else ''}"
             f"{' --skip-throughput' if args.skip_throughput else ''}{'' if args.section == 'batch' else ' --section ' + args.section}`, {today()}, {machine()}. The machine is shared"
             " with other jobs: read ratios within a table, not absolute figures.", ""]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if not args.skip_throughput:
            lines += [f"### Throughput: {len(clips)} clips ({', '.join(c.name for c in clips)}, first {args.frames}"
                      f" frames each, {args.method})", "",
                      "| how | workers | pairs | wall s | pairs/s | Ray start-up s |", "|---|---|---|---|---|---|"]
            lines += throughput(clips, args.frames, args.method, args.chunk_pairs, tmp)
            lines += ["", "Wall seconds of a batch run from the first task to the last result; Ray's start-up"
                      " (a local Ray, workers building their method) is apart.", ""]
        lines += [f"### Peak temporary disk of `semflow run` on vtest.avi ({args.long_frames or 795} frames,"
                  f" 768x576, {args.method})", "",
                  "| code | render from | peak work-folder disk MB | per pair KB | wall s | flow s (compute) |",
                  "|---|---|---|---|---|---|"]
        runs = [("this branch", REPO)] + ([("before the change", args.old_code)] if args.old_code else [])
        results: dict[str, tuple[dict, int]] = {}
        walls: dict[str, list[float]] = {label: [] for label, _ in runs}
        for repeat in range(args.repeats):  # alternate the two codes, so that a change of load hits both
            for label, code in runs:
                info, peak = run_subprocess(code, videos / "vtest.avi", tmp / f"long-{label[:4]}-{repeat}",
                                            args.method, args.long_frames)
                results[label] = (info, peak)
                walls[label].append(info["wall"])
                row = (f"| {label} (run {repeat + 1}) | {info.get('render_from') or 'float16 copies'} |"
                       f" {peak / 1e6:.1f} | {peak / info['pairs'] / 1e3:.1f} | {info['wall']:.1f} |"
                       f" {info['compute']:.1f} |")
                lines.append(row)
                print(row, flush=True)

        info, peak = results["this branch"]
        records, records_peak = run_subprocess(REPO, videos / "vtest.avi", tmp / "records", args.method, 100, 0)
        per_pair = records_peak / records["pairs"]
        lines.append(f"| this branch, `--cache-mb 0`, first 100 frames | {records['render_from']} |"
                     f" {records_peak / 1e6:.1f} | {per_pair / 1e3:.1f} | {records['wall']:.1f} |"
                     f" {records['compute']:.1f} |")
        if args.old_code:
            ratio = [new / old for new, old in zip(walls["this branch"], walls["before the change"])]
            lines += ["", "Wall time of this branch over the code before, run by run: "
                      + ", ".join(f"{r:.2f}" for r in ratio) + "."]
        hour = 30 * 3600
        lines += ["", f"An hour of 1080p at 30 fps is {hour} pairs. Beyond the cache a pair keeps only its record on"
                  f" disk: {per_pair / 1e3:.1f} KB measured (`--cache-mb 0`: one small JSON file, one file system"
                  f" block; it does not grow with the frame size), {per_pair * hour / 1e9:.2f} GB for the hour, plus"
                  f" the cache, at most 512 MiB (0.54 GB): {per_pair * hour / 1e9 + 0.537:.2f} GB at most."]
        if "before the change" in results:
            old_info, old_peak = results["before the change"]
            old_px = old_peak / old_info["pairs"] / (768 * 576)
            lines += [f"Before, every pair's flow was kept as float16 ({old_px:.2f} bytes per pixel measured), i.e."
                      f" {old_px * 1920 * 1080 * hour / 1e9:.0f} GB for an hour of 1080p."
                      f" Same normaliser: {info['max_flow']:.4f} vs {old_info['max_flow']:.4f} px."]
    write_section(args.section, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
