"""x264's threads for the intermediate's segments: repeatability, colour error and encoding time, with two
frame threads (the code before) and one (now), side by side in one run; writes BENCHMARKS.md's
"batch-x264" section.

    python scripts/bench_x264_threads.py ../shared/data [--repeats 3]

The pairs: DIS medium flows of the first 30 frames of ``videos/vtest.avi``, at 768x576 and resized to
1920x1080, coded as one segment at an hour of 1080p's budget per pair (as bench_batch's 1080p table)
``--repeats`` times per setting, the settings taking turns. Repeatable: how many different segments the
repeats decode to (1: the same every time). Colour error: the colour-wheel drawing of the decoded flows
against that of the exact ones (PSNR, mean over pairs and repeats).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from bench_batch import HOUR_PER_PAIR_1080P  # noqa: E402
from benchlib import invoked, machine, today, write_section  # noqa: E402

from semflow import flowvideo  # noqa: E402
from semflow.io.video import FrameSource  # noqa: E402
from semflow.viz import flow_to_color  # noqa: E402

SETTINGS = {"2 frame threads (before)": 2, "1 thread (now)": 1}


def flows_of(video: Path, size: tuple[int, int], frames: int = 30) -> list[np.ndarray]:
    grey = [cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), size) for f in FrameSource(video, max_frames=frames)]
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return [dis.calc(a, b, None) for a, b in zip(grey, grey[1:])]


def code_once(flows: list[np.ndarray], per_pair: float, max_flow: float) -> tuple[str, float, float]:
    """(digest of the decoded segment, mean colour PSNR dB, encode seconds a pair)."""
    shape = flows[0].shape[:2]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        writer = flowvideo.SegmentWriter(Path(tmp), 0, shape, "f", per_pair)
        for flow in flows:
            writer.add((flow, None, None))
        path = writer.close()
        seconds = (time.perf_counter() - start) / len(flows)
        decoded = [back for back, _, _ in flowvideo.read_segment(path, shape, "f", None, writer.coded)]
    psnr = []
    for flow, back in zip(flows, decoded):
        a, b = flow_to_color(flow, max_flow).astype(np.float32), flow_to_color(back, max_flow).astype(np.float32)
        psnr.append(10 * np.log10(255 ** 2 / max(float(((a - b) ** 2).mean()), 1e-9)))
    return hashlib.sha1(b"".join(b.tobytes() for b in decoded)).hexdigest(), float(np.mean(psnr)), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    video = args.data.resolve() / "videos" / "vtest.avi"
    lines = ["### The intermediate's x264 threads (batch-x264)", "",
             f"`{invoked()}`, {today()}, {machine()}."
             " The settings take turns, in one process; the machine is shared with other jobs: read ratios"
             " within a size, not absolute times.", "",
             "| frames | budget per pair KB | x264 threads | distinct outputs (of repeats) | colour-wheel PSNR dB |"
             " encode ms/pair |", "|---|---|---|---|---|---|"]
    for size in ((768, 576), (1920, 1080)):
        flows = flows_of(video, size)
        max_flow = max(max(float(np.percentile(np.linalg.norm(f, axis=2), 99)), 1.0) for f in flows)
        per_pair = HOUR_PER_PAIR_1080P * size[0] * size[1] / (1920 * 1080)  # an hour of 1080p's bits per pixel
        results: dict[str, list[tuple[str, float, float]]] = {name: [] for name in SETTINGS}
        for _ in range(args.repeats):
            for name, threads in SETTINGS.items():
                flowvideo.X264_THREADS = threads
                results[name].append(code_once(flows, per_pair, max_flow))
        for name, runs in results.items():
            lines.append(f"| {size[0]}x{size[1]} | {per_pair / 1e3:.2f} | {name} | {len({d for d, _, _ in runs})} (of"
                         f" {len(runs)}) | {np.mean([p for _, p, _ in runs]):.2f} |"
                         f" {np.median([s for _, _, s in runs]) * 1e3:.0f} |")
            print(lines[-1], flush=True)
    lines += ["", "Why one thread: with frame threads x264's rate control (the segment's bit-rate cap) codes the same"
              " pairs differently run to run, so a run drawn from the intermediate, or resumed, did not give the"
              " same videos twice (docs/command-line.md promises a resumed run's videos byte for byte)."]
    write_section("batch-x264", "\n".join(lines))


if __name__ == "__main__":
    main()
