"""Time the checks ``semflow batch``'s driver makes of its clips before and as it hands out their tasks.

    python scripts/bench_batch_checks.py ../shared/data [--clips 200] [--rounds 3]

Makes ``--clips`` small clips (3-10 frames at 192x144, mp4v) from ``videos/vtest.avi``, then, in a fresh
subprocess each (empty caches), checks every clip one after the other as the driver does
(:func:`semflow.pipeline.check_video`) and then again as each opens: with the keyframe probes of the next
clips started ahead in threads (:func:`semflow.io.ffmpeg.keyframes_ahead`, the driver's way) and without
(``threads 0``), the ways alternating over ``--rounds``. Writes BENCHMARKS.md's "batch-checks" section.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import invoked, machine, today, write_section  # noqa: E402

CHECKS = """
import json, sys, time
from pathlib import Path
from semflow.io.ffmpeg import keyframes_ahead
from semflow.pipeline import check_video
from semflow.run_options import RunOptions
clips, threads = sorted(Path(sys.argv[1]).glob("*.mp4")), int(sys.argv[2])
options = RunOptions(method="dis-medium", max_side=160)
start = time.perf_counter()
with keyframes_ahead(clips, whole=threads > 0, threads=max(threads, 1)) as ahead:
    for k, clip in enumerate(clips):
        ahead(k)
        check_video(clip, options)
checked = time.perf_counter()
for clip in clips:
    check_video(clip, options)
print(json.dumps({"check": (checked - start) / len(clips), "open": (time.perf_counter() - checked) / len(clips)}))
"""
WAYS = {0: "one after the other", 2: "probes ahead, 2 threads", 4: "probes ahead, 4 threads (the default)"}


def make_clips(video: Path, folder: Path, count: int) -> None:
    """``count`` clips of 3-10 frames (192x144) cut one after the other from ``video`` (looped)."""
    capture = cv2.VideoCapture(str(video))
    for k in range(count):
        writer = cv2.VideoWriter(str(folder / f"clip{k:04d}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (192, 144))
        for _ in range(3 + k % 8):
            ok, frame = capture.read()
            if not ok:
                capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, frame = capture.read()
            writer.write(cv2.resize(frame, (192, 144)))
        writer.release()
    capture.release()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    times: dict[int, list[dict[str, float]]] = {way: [] for way in WAYS}
    with tempfile.TemporaryDirectory(prefix="semflow-checks-") as tmp:
        make_clips(args.data / "videos" / "vtest.avi", Path(tmp), args.clips)
        for _ in range(args.rounds):
            for way in WAYS:
                done = subprocess.run([sys.executable, "-c", CHECKS, tmp, str(way)], check=True, capture_output=True,
                                      text=True, cwd=Path(__file__).resolve().parents[1])
                times[way].append(json.loads(done.stdout.strip().splitlines()[-1]))
    rows = [f"| {WAYS[way]} | {1000 * statistics.median(t['check'] for t in times[way]):.1f} |"
            f" {1000 * statistics.median(t['open'] for t in times[way]):.1f} |" for way in WAYS]
    body = "\n".join([
        "### The driver's checks of small clips (batch-checks)",
        "",
        f"`{invoked()}`, {today()}, {machine()}. The ways alternate in fresh processes, {args.rounds} rounds;"
        " medians. The machine is shared with other jobs: read ratios, not absolute times.",
        "",
        f"{args.clips} clips of 3-10 frames (192x144, mp4v) from vtest.avi; ms a clip to check it (two frames"
        " decoded, the keyframe probe: FFmpeg started on the file) and to check it again as it opens (the probe"
        " cached):",
        "",
        "| checks | check ms / clip | open ms / clip |",
        "|---|---|---|",
        *rows,
    ])
    print(body)
    write_section("batch-checks", body)


if __name__ == "__main__":
    main()
