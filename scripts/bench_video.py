"""Benchmark flow and segmentation over videos (issue 12); writes the ``video`` section of BENCHMARKS.md.

    python scripts/bench_video.py ../shared/data            # full: about an hour on 2 quiet cores
    python scripts/bench_video.py ../shared/data --quick    # every path, tiny sizes: a few minutes
    python scripts/bench_video.py ../shared/data --parts segment,synthetic   # some tables only

Each part writes its own BENCHMARKS.md section (``video-run``, ``video-segment``, ``video-synthetic``,
``video-hard``, ``video-speed``).

1. ``semflow run`` on solidWhiteRight.mp4 (first 60 pairs) and vtest.avi (first 40 frames), per method:
   s/pair (the method's compute, median) and wall s/pair of the whole run (reading, flow, metrics,
   drawing), flicker, warped flicker, photometric error, magnitude range, the largest frame-to-frame
   jump in mean magnitude beside the images' own change at that step, the segmentation's label flip
   rate (semantic). All numbers come from ``summary.json`` ("temporal"), as any run writes them.
   Where ``run`` has a video mode (``RunOptions.pairwise``), discrete and semantic run in both modes.
2. ``semflow segment`` on vtest.avi (first 40 frames), per frame (``--pairwise``) and video mode: label
   flip rate raw and motion-compensated (along DIS flow), and how often video mode keeps the per-frame
   label where the per-frame labels are themselves stable. Then CamVid val frames as short pseudo-videos
   (a camera zooming and panning over each frame, labels moved exactly with it): pixel accuracy and mIoU
   per frame vs video mode, the honest check that filtering does not make the labels worse.
3. Synthetic sequences (``semflow.synthetic_video.make_sequence``, seeds not used in development,
   given masks for semantic): EPE over every pair of the sequence, per method and mode.
4. Hard street sequences (``make_street_sequence``: touching parked cars, a car passing at 15-30 px a
   frame, in one of two a car behind the row driving the other way): EPE, things EPE and s/pair of
   discrete and semantic (given masks) in video and pair mode, and in video mode with as many keypoints
   as pair mode (``video_keypoint_max=8000``) and without the keypoint matches (``video_keypoints``
   off), through the API, side by side per sequence.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import machine, today, write_section  # noqa: E402

from semflow.baseline.discrete import DiscreteFlow  # noqa: E402
from semflow.io.flow import read_flo  # noqa: E402
from semflow.io.images import read_image, write_image  # noqa: E402
from semflow.io.video import FrameSource  # noqa: E402
from semflow.methods import get_method  # noqa: E402
from semflow.metrics import epe  # noqa: E402
from semflow.pipeline import RunOptions, run_video  # noqa: E402
from semflow.segmentation import get_segmenter  # noqa: E402
from semflow.segmentation.masks import read_label_map  # noqa: E402
from semflow.segmentation.segment import segment_inputs  # noqa: E402
from semflow.segmentation.temporal import TemporalSegmentation, dis_flow  # noqa: E402
from semflow.synthetic_video import camera_sequence, make_sequence, make_street_sequence  # noqa: E402
from semflow.temporal import label_flip_rate  # noqa: E402
from semflow.video_state import VideoState  # noqa: E402

STATEFUL = ("discrete", "semantic")  # methods with a video mode (once run has one)


def has_video_mode() -> bool:
    return "pairwise" in {f.name for f in fields(RunOptions)}


def modes(method: str) -> list[tuple[str, dict]]:
    if method in STATEFUL and has_video_mode():
        return [("video", {"pairwise": False}), ("pair", {"pairwise": True})]
    return [("pair", {"pairwise": True} if has_video_mode() else {})]


def fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def run_table(data: Path, methods: list[str], clips: list[tuple[str, int]], max_side: int | None,
              done: Callable[[list[str]], None] = lambda lines: None) -> list[str]:
    """One row per clip, method and mode; ``done(lines)`` after each row (the section grows as it runs)."""
    lines = ["| video | method | mode | pairs | s/pair | wall s/pair | flicker px | warped flicker px "
             "| photometric error | magnitude min..max px | largest jump (pair; image change ratio) | label flips |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for clip, frames in clips:
        for method in methods:
            for mode, extra in modes(method):
                with tempfile.TemporaryDirectory() as tmp:
                    start = time.perf_counter()
                    summary = run_video(data / "videos" / clip, tmp, RunOptions(
                        method=method, max_frames=frames, max_side=max_side, progress=False, **extra))
                    wall = (time.perf_counter() - start) / summary["pairs"]
                t = summary["temporal"]
                jump = (f"{t['largest_magnitude_jump']:.2f}x ({t['jump_pair']}; {t['jump_image_change_ratio']:.2f}x)"
                        if t["largest_magnitude_jump"] is not None else "-")
                flips = fmt(t["label_flip_rate"] * 100, ".2f") + "%" if t["label_flip_rate"] is not None else "-"
                lines.append(f"| {clip} | {method} | {mode} | {summary['pairs']} | {summary['seconds_per_pair']['median']:.3f} "
                             f"| {wall:.3f} | {fmt(t['flicker'])} | {fmt(t['warped_flicker'])} | {fmt(t['photometric_error'], '.2f')} "
                             f"| {t['magnitude_min']:.2f}..{t['magnitude_max']:.2f} | {jump} | {flips} |")
                print(lines[-1], flush=True)
                done(lines)
    return lines


def segment_table(data: Path, frames: int) -> list[str]:
    """Flip rates of ``segment`` per frame vs video mode on vtest.avi's first ``frames`` frames."""
    video = data / "videos" / "vtest.avi"
    labels: dict[str, list[np.ndarray]] = {}
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode, temporal in (("per frame (--pairwise)", False), ("video (default)", True)):
            out = Path(tmp) / str(temporal)
            start = time.perf_counter()
            written = segment_inputs([video], out, max_frames=frames, progress=False, temporal=temporal)
            seconds[mode] = (time.perf_counter() - start) / len(written)
            labels[mode] = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in written]
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in FrameSource(video, max_frames=frames)]
    flows = [dis_flow(a, b) for a, b in zip(grey, grey[1:])]
    single = labels["per frame (--pairwise)"]
    stable = [a == b for a, b in zip(single, single[1:])]  # per-frame labels unchanged from t-1 to t
    lines = [f"vtest.avi, first {frames} frames ({single[0].shape[1]}x{single[0].shape[0]}); flips: share of "
             "pixels whose label changes from frame t-1 to t, raw and along the DIS (medium) flow; 'keeps' = "
             "video mode's label equals the per-frame label on pixels where the per-frame labels did not change.", "",
             "| mode | label flips (mean) | max over pairs | flips along the flow | keeps per-frame label on stable pixels | s/frame |",
             "|---|---|---|---|---|---|"]
    for mode, labs in labels.items():
        raw = [label_flip_rate(a, b) for a, b in zip(labs, labs[1:])]
        mc = [label_flip_rate(a, b, f) for a, b, f in zip(labs, labs[1:], flows)]
        keep = np.mean([(labs[k + 1] == single[k + 1])[s].mean() for k, s in enumerate(stable)])
        lines.append(f"| {mode} | {np.mean(raw) * 100:.2f}% | {np.max(raw) * 100:.2f}% | {np.mean(mc) * 100:.2f}% "
                     f"| {keep * 100:.2f}% | {seconds[mode]:.2f} |")
        print(lines[-1], flush=True)
    return lines


def camvid_table(data: Path, every: int, frames: int) -> list[str]:
    """Accuracy of per-frame vs video-mode labels on CamVid val pseudo-videos."""
    root = data / "camvid"
    names = sorted(p.name for p in (root / "val").iterdir())[::every]
    seg = get_segmenter("camvid")
    conf = {"per frame": np.zeros((11, 11)), "video": np.zeros((11, 11))}
    flips: dict[str, list[float]] = {k: [] for k in conf}
    for name in names:
        image = read_image(root / "val" / name)
        truth = read_label_map(root / "valannot" / name)
        clip, truths, gt_flows = camera_sequence(image, truth, frames=frames, zoom=0.01, pan=(2.0, 0.5))
        fusion, previous = TemporalSegmentation(), {}
        for k, (frame, gt) in enumerate(zip(clip, truths)):
            single = seg.predict(frame)
            for key, pred in (("per frame", single.labels), ("video", fusion.update(frame, single).labels)):
                if k > 0:  # frame 0 is the same for both
                    valid = gt < 11
                    conf[key] += np.bincount(gt[valid].astype(int) * 11 + pred[valid], minlength=121).reshape(11, 11)
                    flips[key].append(label_flip_rate(previous[key], pred, gt_flows[k - 1]))
                previous[key] = pred
    lines = [f"CamVid val, {len(names)} frames (every {every}th), each as a {frames}-frame pseudo-video (camera zooming"
             " 1%/frame and panning 2 px/frame over it; labels moved exactly); accuracy over frames 2..N"
             " against the moved ground truth; flips along the exact flow.", "",
             "| mode | pixel accuracy | mIoU | label flips along the flow |", "|---|---|---|---|"]
    for key, c in conf.items():
        iou = np.diag(c) / np.maximum(c.sum(0) + c.sum(1) - np.diag(c), 1)
        lines.append(f"| {key} | {np.diag(c).sum() / c.sum() * 100:.2f}% | {iou.mean() * 100:.2f}% "
                     f"| {np.mean(flips[key]) * 100:.2f}% |")
        print(lines[-1], flush=True)
    return lines


def synthetic_table(methods: list[str], count: int, frames: int, size: tuple[int, int]) -> list[str]:
    """EPE over synthetic sequences, per method and mode (semantic with the given masks)."""
    results: dict[tuple[str, str], list[float]] = {}
    for i in range(count):
        seq = make_sequence(frames, *size, seed=7000 + 31 * i)
        with tempfile.TemporaryDirectory() as tmp:
            folder, masks = Path(tmp) / "frames", Path(tmp) / "masks"
            for k, frame in enumerate(seq.frames):
                write_image(folder / f"{k:06d}.png", frame)
                write_image(masks / f"{k:06d}.png", seq.labels[k])
            for method in methods:
                options = {"segmentation": str(masks)} if method == "semantic" else {}
                for mode, extra in modes(method):
                    out = Path(tmp) / f"{method}-{mode}"
                    run_video(folder, out, RunOptions(method=method, method_options=options, save_flo=True,
                                                      progress=False, **extra))
                    errors = [epe(read_flo(out / "flo" / f"{k:06d}.flo")[0], gt) for k, gt in enumerate(seq.flows)]
                    results.setdefault((method, mode), []).append(statistics.fmean(errors))
    lines = [f"{count} sequences of {frames} frames ({size[1]}x{size[0]}; camera pan/zoom/roll/keystone with"
             " acceleration, 2 objects), seeds 7000 + 31 i; EPE over all pairs, mean over sequences;"
             " semantic with the given masks.", "",
             "| method | mode | EPE px | per sequence |", "|---|---|---|---|"]
    for (method, mode), values in results.items():
        lines.append(f"| {method} | {mode} | {statistics.fmean(values):.4f} | {' '.join(f'{v:.4f}' for v in values)} |")
        print(lines[-1], flush=True)
    for method in methods:  # the paired difference, with its spread over the sequences
        if (method, "video") in results and (method, "pair") in results:
            diff = [v - p for v, p in zip(results[method, "video"], results[method, "pair"])]
            spread = statistics.stdev(diff) / len(diff) ** 0.5 if len(diff) > 1 else float("nan")
            lines.append(f"| {method} | video - pair | {statistics.fmean(diff):+.4f} (standard error {spread:.4f}) |"
                         f" {' '.join(f'{d:+.4f}' for d in diff)} |")
            print(lines[-1], flush=True)
    return lines


HARD_SETUPS = {
    "discrete, video": ("discrete", {}, True),
    "discrete, video, video_keypoint_max=8000": ("discrete", {"video_keypoint_max": 8000}, True),
    "discrete, video, video_keypoints off": ("discrete", {"video_keypoints": False}, True),
    "discrete, pair": ("discrete", {}, False),
    "semantic, video": ("semantic", {}, True),
    "semantic, video, baseline's video_keypoint_max=8000": ("semantic", {"baseline": DiscreteFlow(video_keypoint_max=8000)},
                                                            True),
    "semantic, video, baseline's video_keypoints off": ("semantic", {"baseline": DiscreteFlow(video_keypoints=False)},
                                                        True),
    "semantic, pair": ("semantic", {}, False),
}


def hard_table(count: int, frames: int, size: tuple[int, int], seed0: int = 11000) -> list[str]:
    """EPE, things EPE and s/pair over hard street sequences, each setup of HARD_SETUPS side by side
    on each sequence (semantic with the given masks)."""
    errors: dict[str, list[tuple[float, float]]] = {name: [] for name in HARD_SETUPS}
    seconds: dict[str, list[float]] = {name: [] for name in HARD_SETUPS}
    for i in range(count):
        seq = make_street_sequence(frames, *size, seed=seed0 + 37 * i)
        for name, (method, options, video) in HARD_SETUPS.items():
            flow_method, state, pairs = get_method(method, **options), VideoState() if video else None, []
            for k, gt in enumerate(seq.flows):
                start = time.perf_counter()
                result = flow_method.estimate(seq.frames[k], seq.frames[k + 1], state=state, labels=seq.labels[k])
                seconds[name].append(time.perf_counter() - start)
                state = result.state if video else None
                things = seq.instances[k] > 0
                pairs.append((epe(result.flow, gt), epe(result.flow, gt, region=things)))
            errors[name].append(tuple(np.mean(pairs, axis=0)))
            print(i, name, f"EPE {errors[name][-1][0]:.3f} things {errors[name][-1][1]:.3f}", flush=True)
    lines = [f"{count} sequences of {frames} frames ({size[1]}x{size[0]}), seeds {seed0} + 37 i (not used in"
             " development); EPE over all pairs, mean over sequences; things: the cars' pixels; s/pair: median"
             " seconds of `estimate`; semantic with the given masks.", "",
             "| method | EPE px | things EPE px | things EPE per sequence | s/pair |", "|---|---|---|---|---|"]
    for name in HARD_SETUPS:
        e = np.asarray(errors[name])
        lines.append(f"| {name} | {e[:, 0].mean():.3f} | {e[:, 1].mean():.3f} | {' '.join(f'{v:.2f}' for v in e[:, 1])}"
                     f" | {statistics.median(seconds[name]):.2f} |")
    return lines


PARTS = ("run", "segment", "synthetic", "hard", "speed")
DEFAULT_METHODS = "dis-medium,deepflow,discrete,semantic"


def speed_table(data: Path, clip: str, frames: int, methods: list[str], rounds: int) -> list[str]:
    """Whole-run wall seconds per pair of ``methods`` (each in its default mode) on ``clip``, in ``rounds``
    rounds that alternate the methods (A B, B A, A B, ...), so that a drift of the machine's load touches
    both; each round's ratio to the first method, and the median ratio."""
    walls: dict[str, list[float]] = {m: [] for m in methods}
    for r in range(rounds):
        for method in (methods if r % 2 == 0 else methods[::-1]):
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                summary = run_video(data / "videos" / clip, tmp, RunOptions(method=method, max_frames=frames,
                                                                            progress=False))
                walls[method].append((time.perf_counter() - start) / summary["pairs"])
            print(method, r, f"{walls[method][-1]:.3f}", flush=True)
    ref = methods[0]
    lines = [f"| method | wall s/pair per round | vs {ref} per round | median vs {ref} |", "|---|---|---|---|"]
    for m in methods:
        ratios = [w / v for w, v in zip(walls[m], walls[ref])]
        lines.append(f"| {m} | {' '.join(f'{w:.3f}' for w in walls[m])} | {' '.join(f'{x:.2f}x' for x in ratios)} "
                     f"| {statistics.median(ratios):.2f}x |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the shared data folder (../shared/data)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few frames: checks every path")
    parser.add_argument("--methods", default=DEFAULT_METHODS)
    parser.add_argument("--parts", default=",".join(PARTS),
                        help="which tables to make (each writes its own section, video-PART): " + ",".join(PARTS))
    parser.add_argument("--section", default="video")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the speed part")
    args = parser.parse_args()
    methods = args.methods.split(",")
    parts = args.parts.split(",")
    if args.quick:
        clips, side, seg_frames, camvid, synth = [("solidWhiteRight.mp4", 4), ("vtest.avi", 4)], 240, 6, (50, 3), [(1, 3, (96, 128))]
    else:
        # The table (3 short sequences), then a longer check of the same comparison (more and
        # longer sequences: video mode's state has time to matter, and the noise of one sequence less).
        clips, side, seg_frames, camvid, synth = ([("solidWhiteRight.mp4", 61), ("vtest.avi", 40)], None, 40, (10, 8),
                                                  [(3, 8, (240, 320)), (6, 16, (240, 320))])
    command = (f"python scripts/bench_video.py {args.data}{' --quick' if args.quick else ''}"
               f"{'' if args.section == 'video' else ' --section ' + args.section}")
    chosen = "" if args.methods == DEFAULT_METHODS else f" --methods {args.methods}"  # (the synthetic part's)
    note = (f"{today()}, {machine()}. {'QUICK RUN (tiny sizes): not for reading. ' if args.quick else ''}"
            f"`run` {'has' if has_video_mode() else 'has no'} video mode in this build"
            f"{'' if has_video_mode() else ': every row is pair mode'}. Rows of one table ran one after another in"
            " one process; the machine's 2 cores are shared, so read speed as ratios within a table"
            f" (load average at the start: {os.getloadavg()[0]:.1f}).")
    write_section(args.section, f"## Video: flow and segmentation over time (`{command}`)\n\n"
                  "Each table below is its own section, made by `--parts run|segment|synthetic|hard|speed`.")
    if "segment" in parts:
        lines = [f"### `semflow segment`: per frame vs video mode (`{command} --parts segment`)", "", note, ""]
        lines += segment_table(args.data, seg_frames)
        lines += ["", *camvid_table(args.data, *camvid)]
        write_section(f"{args.section}-segment", "\n".join(lines))
    if "synthetic" in parts:
        lines = [f"### Synthetic sequences: EPE over the sequence (`{command} --parts synthetic{chosen}`)", "", note, ""]
        for k, design in enumerate(synth):
            lines += ([""] if k else []) + synthetic_table([m for m in methods if m in STATEFUL] or methods[:1], *design)
        write_section(f"{args.section}-synthetic", "\n".join(lines))
    if "hard" in parts:
        count, frames, size = (1, 3, (120, 160)) if args.quick else (6, 8, (360, 480))
        lines = [f"### Hard street sequences (`{command} --parts hard`)", "", note, ""]
        lines += hard_table(count, frames, size)
        write_section(f"{args.section}-hard", "\n".join(lines))
    if "run" in parts:
        lines = [f"### `semflow run` (`{command} --parts run --methods {args.methods}`)", "", note, "",
                 "flicker = mean over t of mean_x |F_t(x) - F_{t-1}(x)|; warped: F_{t-1} carried along itself first;"
                 " photometric error = mean |I_t(x) - I_{t+1}(x + F_t(x))| (grey levels); largest jump = largest"
                 " ratio of consecutive mean magnitudes (under 0.5 px floored), with the ratio of the images' own"
                 " change mean |I_t+1 - I_t| at that step: a flow jump the images do not share is the method's."
                 " s/pair: the method's compute (median); wall s/pair: the whole run (reading, flow, metrics,"
                 " drawing) over the pairs.", ""]
        head = list(lines)
        lines += run_table(args.data, methods, clips, side,
                           lambda rows: write_section(f"{args.section}-run", "\n".join(head + rows)))
    if "speed" in parts:
        clip, frames = clips[0]
        compared = ["deepflow", "semantic"]
        lines = [f"### Whole-run speed, alternating (`{command} --parts speed --rounds {args.rounds}`)", "", note, "",
                 f"`semflow run` on {clip} (first {frames - 1} pairs, the default mode: semantic in video mode),"
                 f" {', '.join(compared)} alternating over {args.rounds} rounds (A B, B A, ...): wall s/pair of the"
                 " whole run (reading, flow, metrics, drawing, writing). One run of each, one after the other,"
                 " swings by about +-0.05 in the ratio on this shared machine; the median over rounds is the figure.",
                 ""]
        lines += speed_table(args.data, clip, frames, compared, args.rounds)
        write_section(f"{args.section}-speed", "\n".join(lines))


if __name__ == "__main__":
    main()
