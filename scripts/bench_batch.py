"""Benchmark ``semflow batch`` and the temporary disk of ``semflow run``; writes BENCHMARKS.md's "batch" section.

    python scripts/bench_batch.py ../shared/data [--frames 150] [--long-frames 0] [--repeats 2] [--old-code DIR]

1. Throughput: the same clips (``videos/vtest.avi`` and ``videos/solidWhiteRight.mp4``, first ``--frames``
   frames each, dis-medium) run one after the other with ``semflow run`` and as one batch with 1 and 2
   Ray workers (chunks of ``--chunk-pairs`` pairs): pairs/s and wall seconds, Ray's start-up apart.
2. Temporary disk and wall time: ``semflow run`` on ``vtest.avi`` (``--long-frames``, 768x576) by this code
   (default budget; and the budget with an hour of 1080p's bits per pixel, which forces the intermediate
   as thin as the hour would get it) and, with ``--old-code DIR`` (a checkout of the code before issue 13),
   by that code, side by side in subprocesses, alternating ``--repeats`` times; a thread samples the bytes
   the work folder takes on disk (allocated blocks) every 0.1 s. The colour error of this code's
   flow.mp4 against the old code's (float16 copies: as good as exact). Then the intermediate at 1080p
   (a resized clip): bytes per pair and colour error at an hour's budget, to extrapolate to the hour;
   and the temporary disk of an hour of 1080p for dis-medium, discrete and semantic, from the record
   and video state sizes that pass 1 of each leaves at 1080p (measured; ``--disk-only``: only this
   table, printed, no section written).
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
if len(sys.argv) > 6:
    opts["max_flow"] = float(sys.argv[6])
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
                   cache_budget: int | None = None, max_flow: float | None = None) -> tuple[dict, int]:
    env = {**os.environ, "PYTHONPATH": str(code_dir)}
    budget = "-" if cache_budget is None else str(cache_budget)
    extra = [] if max_flow is None else [repr(max_flow)]
    with DiskPeak(out) as disk:
        proc = subprocess.run([sys.executable, "-c", RUN_CODE, str(video), str(out), method, str(frames), budget,
                               *extra],
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
    parser.add_argument("--main-code", type=Path, default=None,
                        help="a checkout of main (cache, then recompute beyond it) to compare with too")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each code in the long-run test")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--steps-only", action="store_true", help="only the table of where a pair's time goes")
    parser.add_argument("--section", default="batch", help="the BENCHMARKS.md section to write")
    parser.add_argument("--disk-only", action="store_true", help="only print the hour-of-1080p disk table")
    args = parser.parse_args()
    if args.disk_only:
        print("\n".join(hour_disk(args.data.resolve() / "videos" / "vtest.avi")))
        return
    videos = args.data.resolve() / "videos"
    clips = [videos / "vtest.avi", videos / "solidWhiteRight.mp4"]
    title = {"batch": "## `semflow batch` and the temporary disk of `semflow run`",
             "batch-disk": "## `semflow run` on a long clip: temporary disk, wall time, the intermediate",
             "batch-disk-steps": "### A long run's steps, this code beside the code before"}.get(
        args.section, "### `semflow run` on a short clip, this code beside the code before")
    lines = [f"{title} ({args.section})", "",
             f"`python scripts/bench_batch.py ../shared/data --frames {args.frames} --chunk-pairs {args.chunk_pairs}"
             f" --long-frames {args.long_frames} --repeats {args.repeats}{' --old-code DIR' if args.old_code else ''}"
             f"{' --main-code DIR' if args.main_code else ''}"
             f"{' --skip-throughput' if args.skip_throughput else ''}{' --steps-only' if args.steps_only else ''}"
             f"{'' if args.section == 'batch' else ' --section ' + args.section}`, {today()}, {machine()}. The machine is shared"
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
        if not args.steps_only:
            lines += long_run(args, videos / "vtest.avi", tmp)
        else:
            lines += hour_1080p(videos / "vtest.avi")
        lines += steps(videos / "vtest.avi")
    write_section(args.section, "\n".join(lines))
    print("\n".join(lines))


HOUR = 30 * 3600
"""Pairs of an hour of video at 30 fps."""
HOUR_PER_PAIR_1080P = 0.9 * 512 * 2 ** 20 / HOUR
"""Intermediate bytes per pair of an hour of 1080p in the default 512 MiB (its share: 90 %)."""
DISK_METHODS = ("dis-medium", "discrete", "semantic")
"""The methods whose temporary disk for an hour of 1080p is worked out from measured record and state sizes."""
STATE_COPIES = 3
"""Video state files a run may hold at once: the latest, the last segment's checkpoint, and the temporary
copy of one of them while it is replaced (written beside it, then renamed)."""
BLOCK = 4096


def long_run(args: argparse.Namespace, video: Path, tmp: Path) -> list[str]:
    """The long-run table: this code by default and with the per-pixel budget of an hour of 1080p,
    beside the code before; colour error of the drawn videos; the 1080p extrapolation."""
    frames = args.long_frames or 795
    pairs = frames - 1
    hour_like = int(HOUR_PER_PAIR_1080P / 0.9 * 768 * 576 / (1920 * 1080) * pairs)  # same bits per pixel
    lines = [f"### Peak temporary disk and wall time of `semflow run` on vtest.avi ({frames} frames, 768x576,"
             f" {args.method})", "",
             "| code | budget (`--cache-mb`) | render from | peak work-folder disk MB | per pair KB | wall s |"
             " flow s (compute) | draw s | flow.mp4 vs exact: PSNR dB (min) | max abs |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    runs = [("this branch", REPO, None, "512 MiB (default)"),
            ("this branch", REPO, hour_like, f"{hour_like / 2 ** 20:.2f} MiB (an hour of 1080p's bits per pixel)")]
    if args.main_code:
        runs.insert(0, ("main (cache, then recompute)", args.main_code, None, "main"))
    if args.old_code:
        runs.insert(0, ("before the change", args.old_code, None, "-"))
    walls: dict[str, list[float]] = {}
    reference: Path | None = None
    for repeat in range(args.repeats):  # alternate the codes, so that a change of load hits all
        for k, (label, code, budget, budget_text) in enumerate(runs):
            out = tmp / f"long-{k}-{repeat}"
            info, peak = run_subprocess(code, video, out, args.method, args.long_frames, budget)
            walls.setdefault(budget_text, []).append(info["wall"])
            if reference is None and code == REPO:  # exact drawing under the same normaliser: one pass, --max-flow
                reference = tmp / "exact"
                run_subprocess(REPO, video, reference, args.method, args.long_frames, None, info["max_flow"])
            quality = "- | -" if code != REPO else mp4_error(reference, out)
            row = (f"| {label} (run {repeat + 1}) | {budget_text} | {info.get('render_from') or 'float16 copies'} |"
                   f" {peak / 1e6:.1f} | {peak / info['pairs'] / 1e3:.1f} | {info['wall']:.1f} |"
                   f" {info['compute']:.1f} | {(info.get('stages') or {}).get('draw', float('nan')):.1f} | {quality} |")
            lines.append(row)
            print(row, flush=True)
    if args.old_code:
        old = walls["-"]
        lines += ["", "Wall time over the code before, run by run: " + "; ".join(
            f"{text}: " + ", ".join(f"{new / before:.2f}" for new, before in zip(times, old))
            for text, times in walls.items() if text != "-") + "."]
    lines += ["", "flow.mp4 vs exact: the frames of flow.mp4 against those of a single-pass run of this code"
              " (`--max-flow` set to the clip's normaliser: every pair drawn from its exact float32 flow; the"
              " code before drew other legends, so its frames are not a reference), both decoded from their"
              " H.264 files. The colour error of the intermediate's flows themselves is in the 1080p table."]
    return lines + hour_1080p(video)


def steps(video: Path, pairs: int = 20) -> list[str]:
    """Milliseconds a pair of each step of a long run, side by side in this one process (so that the
    machine's load hits all alike): what the code before kept (float16 copies) beside the intermediate."""
    import numpy as np

    from semflow import flowvideo
    from semflow.io.video import FrameSource, VideoWriter
    from semflow.methods import get_method
    from semflow.render import draw_pair
    from semflow.runstore import PairRecord
    from semflow.temporal import TemporalMeter

    frames = list(FrameSource(video, max_frames=pairs + 1))
    method = get_method("dis-medium")
    spent: dict[str, float] = {}

    def timed(name: str, start: float) -> None:
        spent[name] = spent.get(name, 0.0) + time.perf_counter() - start

    flows = []
    for a, b in zip(frames, frames[1:]):
        start = time.perf_counter()
        flows.append(method.estimate(a, b).flow)
        timed("compute (dis-medium)", start)
        start = time.perf_counter()
        PairRecord.of(0, flows[-1], {}, 0.0)
        timed("pair record (statistics, percentiles)", start)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        start = time.perf_counter()
        for i, flow in enumerate(flows):
            np.save(tmp / f"{i}.npy", flow.astype(np.float16))
        for i in range(len(flows)):
            np.load(tmp / f"{i}.npy").astype(np.float32)
        timed("before: float16 copy saved and loaded", start)
        start = time.perf_counter()
        writer = flowvideo.SegmentWriter(tmp / "seg", 0, flows[0].shape[:2], "f", 1e9)
        for flow in flows:
            writer.add((flow, None, None))
        path = writer.close()
        timed("intermediate: coded and written (x264 at the rate cap)", start)
        start = time.perf_counter()
        decoded = [f for f, _, _ in flowvideo.read_segment(path, flows[0].shape[:2], "f")]
        timed("intermediate: read and decoded", start)
        meter = TemporalMeter()
        with VideoWriter(tmp / "a.mp4", 10) as flow_video, VideoWriter(tmp / "b.mp4", 10) as panel_video:
            for i, (a, b, flow) in enumerate(zip(frames, frames[1:], decoded)):
                start = time.perf_counter()
                meter.on_pair(i, a, b, (flow, None, None))
                timed("temporal metrics (TemporalMeter.on_pair)", start)
                start = time.perf_counter()
                color, panel = draw_pair(a, i, (flow, None, None), 14.4, "dis-medium")
                timed("draw (colours, legend, panel)", start)
                start = time.perf_counter()
                flow_video.write(color)
                panel_video.write(panel)
                timed("encode flow.mp4 and panel.mp4", start)
    rows = ["", f"### Where a pair's time goes (vtest.avi 768x576, {pairs} pairs, one process, ms a pair)", "",
            "| step | ms a pair |", "|---|---|"]
    rows += [f"| {name} | {seconds / pairs * 1e3:.0f} |" for name, seconds in spent.items()]
    return rows


def mp4_error(reference: Path, out: Path) -> str:
    """PSNR (mean, min over frames) and max abs difference of ``out``'s flow.mp4 against ``reference``'s."""
    import imageio.v3 as iio
    import numpy as np

    a = iio.imread(reference / "flow.mp4").astype(np.float32)
    b = iio.imread(out / "flow.mp4").astype(np.float32)
    if a.shape != b.shape:
        return f"shapes differ {a.shape} {b.shape} | -"
    mse = ((a - b) ** 2).reshape(len(a), -1).mean(axis=1)
    psnr = 10 * np.log10(255 ** 2 / np.maximum(mse, 1e-9))
    return f"{psnr.mean():.1f} ({psnr.min():.1f}) | {np.abs(a - b).max():.0f}"


def hour_1080p(video: Path, frames: int = 30) -> list[str]:
    """Bytes per pair and colour error of the intermediate at 1080p: DIS medium flows of ``frames``
    frames of ``video`` resized to 1920x1080, coded at an hour's budget per pair."""
    import cv2
    import numpy as np

    from semflow import flowvideo
    from semflow.io.video import FrameSource
    from semflow.viz import flow_to_color

    grey = [cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), (1920, 1080)) for f in FrameSource(video, max_frames=frames)]
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    flows = [dis.calc(a, b, None) for a, b in zip(grey, grey[1:])]
    max_flow = max(max(float(np.percentile(np.linalg.norm(f, axis=2), 99)), 1.0) for f in flows)
    seg = np.zeros((1080, 1920, 3), np.uint8)
    seg[:, 960:] = (128, 64, 128)
    rows = ["", f"### The intermediate at 1080p ({frames - 1} pairs of vtest.avi resized to 1920x1080, DIS medium flows)", "",
            "| tiles | budget per pair KB | coded at | bytes per pair KB (of budget) | colour-wheel PSNR dB mean (min) |"
            " 99th pct abs | encode ms/pair | decode ms/pair |", "|---|---|---|---|---|---|---|---|"]
    for tiles in ("f", "fbs"):
        with tempfile.TemporaryDirectory() as tmp:
            pairs = [(f, seg if "s" in tiles else None, f * np.float32(0.8) if "b" in tiles else None) for f in flows]
            start = time.perf_counter()
            writer = flowvideo.SegmentWriter(Path(tmp), 0, (1080, 1920), tiles, HOUR_PER_PAIR_1080P)
            for p in pairs:
                writer.add(p)
            path = writer.close()
            encode = time.perf_counter() - start
            start = time.perf_counter()
            decoded = list(flowvideo.read_segment(path, (1080, 1920), tiles, None, writer.coded))
            decode = time.perf_counter() - start
            size = path.stat().st_size / len(pairs)
            psnr, p99 = [], []
            for (flow, _, _), (back, _, _) in zip(pairs, decoded):
                a, b = flow_to_color(flow, max_flow).astype(np.float32), flow_to_color(back, max_flow).astype(np.float32)
                psnr.append(10 * np.log10(255 ** 2 / max(float(((a - b) ** 2).mean()), 1e-9)))
                p99.append(np.percentile(np.abs(a - b), 99))
        name = {"f": "flow", "fbs": "flow, baseline, segmentation"}[tiles]
        rows.append(f"| {name} | {HOUR_PER_PAIR_1080P / 1e3:.2f} | {writer.coded[1]}x{writer.coded[0]} |"
                    f" {size / 1e3:.2f} ({size / HOUR_PER_PAIR_1080P:.2f}) | {np.mean(psnr):.1f} ({np.min(psnr):.1f}) |"
                    f" {max(p99):.0f} | {encode / len(pairs) * 1e3:.0f} | {decode / len(pairs) * 1e3:.0f} |")
        print(rows[-1], flush=True)
    return rows + hour_disk(video)


def pass1_files(video: Path, method_name: str, frames: int = 3) -> tuple[float, int, int]:
    """(record bytes a pair, bytes of the saved video state, record files) of pass 1 of ``method_name`` in
    video mode on the first ``frames`` frames of ``video`` resized to 1920x1080, measured in its work folder."""
    import cv2

    from semflow.io.images import write_image
    from semflow.io.video import FrameSource
    from semflow.methods import get_method
    from semflow.pipeline import RunOptions, compute_pairs, open_video

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for k, frame in enumerate(FrameSource(video, max_frames=frames)):
            write_image(tmp / "frames" / f"{k:04d}.png", cv2.resize(frame, (1920, 1080), interpolation=cv2.INTER_LINEAR))
        method = get_method(method_name)
        source, store = open_video(tmp / "frames", tmp / "out", RunOptions(method=method_name, progress=False), method)
        report = compute_pairs(source, method, store, video=True, save_state=True)
        records = list((store.work / "pairs").iterdir())
        state = store.work / "video_state.npz"
        return (sum(p.stat().st_size for p in records) / report.computed, state.stat().st_size if state.exists() else 0,
                len(records))


def hour_disk(video: Path) -> list[str]:
    """The temporary disk of an hour of 1080p (108000 pairs) for each of :data:`DISK_METHODS`: the
    intermediate's bound, plus the pair records and the video state files as measured at 1080p."""
    intermediate = HOUR_PER_PAIR_1080P * HOUR
    rows = ["", "### Temporary disk of `semflow run` on an hour of 1080p (108000 pairs), worked out from measured sizes", "",
            "| method | record bytes a pair (measured) | video state file MB at 1920x1080 (measured) | intermediate GB (bound)"
            " | records GB | video state GB (3 files) | total GB |", "|---|---|---|---|---|---|---|"]
    for name in DISK_METHODS:
        per_record, state, files = pass1_files(video, name)
        records = per_record * HOUR + files * BLOCK  # a run's one file (a batch: one a chunk) ends in a part block
        states = STATE_COPIES * state
        rows.append(f"| {name} | {per_record:.0f} | {state / 1e6:.1f} | {intermediate / 1e9:.3f} | {records / 1e9:.3f} |"
                    f" {states / 1e9:.3f} | {(intermediate + records + states) / 1e9:.2f} |")
        print(rows[-1], flush=True)
    rows += ["", f"Record and state sizes: pass 1 of each method in video mode on 2 pairs of vtest.avi resized to"
             f" 1920x1080 (the pair records of `.semflow-work/pairs/*.jsonl`, one JSON line a pair, and"
             f" `.semflow-work/video_state.npz`). An hour of 1080p at 30 fps is {HOUR} pairs; too long for the exact"
             f" cache, it keeps every pair in the intermediate at 90 % of `--cache-mb` / pairs ="
             f" {HOUR_PER_PAIR_1080P / 1e3:.2f} KB a pair: at most {intermediate / 1e9:.2f} GB by construction"
             " (segments that would outgrow it are dropped and their pairs recomputed to draw them; the open segment"
             " counts). The records are lines of one append-only file a writer (a batch writes one file a chunk:"
             f" 2160 chunks of 50 pairs add at most {2160 * BLOCK / 1e9:.3f} GB of part blocks). The video state: at"
             f" most {STATE_COPIES} files at once (the latest, saved after each pair finished on its own; the checkpoint"
             " of the last complete segment; a temporary copy while one is replaced); a batch's chunks save none."
             " Before the change every pair's flow was kept as float16: 4 bytes a pixel, 896 GB for the hour."]
    return rows


if __name__ == "__main__":
    main()
