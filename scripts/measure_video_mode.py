"""Video mode against pair mode on a clip: seconds per pair, per stage, flicker and magnitude jumps.

    python scripts/measure_video_mode.py ../shared/data/videos/solidWhiteRight.mp4 --pairs 60 --out video_mode.json

The methods run side by side, pair by pair, in one process (so a busy machine slows them alike):
``deepflow``, ``semantic`` in video mode, ``semantic`` in pair mode (``--methods`` to choose among
:data:`SETUPS`, ``discrete``'s and ``--sharpen``'s too). For
each: wall seconds per pair (``estimate`` only, frames already decoded), seconds per stage (the
method's ``last_timings``; semantic's baseline stages prefixed ``baseline.``), flicker = mean over t
of mean_x |F_t(x) - F_{t-1}(x)| (px, the length of the change: summary.json's flicker), the mean flow magnitude per pair, and the magnitude jumps:
pairs whose mean magnitude changes by more than 2x from the pair before while the images do not
change as much (mean |I_{t+1} - I_t| over mean |I_t - I_{t-1}| within [1/1.5, 1.5]). After the timed
run each method runs again, alone, in a fresh process of its own (``spawn``) over the first
``--memory-pairs`` pairs in its mode: ``peak MB`` is that process's peak resident memory (Python, torch,
OpenCV, the method's model and its video state; nothing of another method), as section flow measures it.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import time
from pathlib import Path

import numpy as np

from semflow.io.video import FrameSource
from semflow.methods import get_method
from semflow.temporal import flicker
from semflow.video_state import VideoState

SETUPS = {
    "dis-medium": ("dis-medium", False),
    "deepflow": ("deepflow", False),
    "semantic-video": ("semantic", True),
    "semantic-pair": ("semantic", False),
    "discrete-video": ("discrete", True),
    "discrete-pair": ("discrete", False),
    "discrete-video-sharpen": ("discrete", True, {"sharpen": True}),
    "discrete-video-no-keypoints": ("discrete", True, {"video_keypoints": False}),
    # (Its baseline is discrete with its defaults but the keypoints; before 2026-12-05 it was unsharpened too.)
    "semantic-video-no-keypoints": ("semantic", True, {"baseline": ("discrete", {"video_keypoints": False})}),
    "semantic-video-sharpen": ("semantic", True, {"sharpen": True}),
    # Since 2026-12-02 discrete searches for missed motions and sharpens by default: these are without both.
    "discrete-video-plain": ("discrete", True, {"sharpen": False, "missed_motions": False}),
    "semantic-video-plain": ("semantic", True, {"sharpen": False, "baseline": ("discrete", {"missed_motions": False, "sharpen": False})}),
}
"""name -> (method, video mode, options); an option ``("method", {options})`` is that method, built. (Nothing
heavy is imported here: a child process that measures one method's memory imports this module.)"""


def build(name: str):
    """The method of setup ``name``, built."""
    method, _, *rest = SETUPS[name]
    options = {k: get_method(v[0], **v[1]) if isinstance(v, tuple) else v for k, v in (rest[0] if rest else {}).items()}
    return get_method(method, **options)


def stages(method) -> dict[str, float]:
    out = dict(getattr(method, "last_timings", {}) or {})
    inner = getattr(method, "baseline", None)
    if inner is not None:
        out.update({f"baseline.{k}": v for k, v in (getattr(inner, "last_timings", {}) or {}).items()})
    return out


def peak_alone(name: str, video: str, pairs: int) -> float:
    """Peak resident MB of this process (a fresh one: call it in a child) over building setup ``name`` and
    running it on the first ``pairs`` pairs of ``video`` in its mode."""
    from semflow.memory import PeakMemory

    frames = list(FrameSource(Path(video), max_frames=pairs + 1))
    with PeakMemory() as memory:
        method = build(name)
        state = VideoState() if SETUPS[name][1] else None
        for t in range(len(frames) - 1):
            state = method.estimate(frames[t], frames[t + 1], state=state).state
    return memory.peak_mb


def peaks_alone(names: list[str], video: Path, pairs: int) -> dict[str, float]:
    """:func:`peak_alone` of each setup, each in a child process of its own, one after the other."""
    import concurrent.futures
    import multiprocessing

    peaks = {}
    for n in names:
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            peaks[n] = pool.submit(peak_alone, n, str(video), pairs).result()
        print(f"{n}: peak {peaks[n]:.0f} MB alone", flush=True)
    return peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--pairs", type=int, default=60)
    parser.add_argument("--methods", default="deepflow,semantic-video,semantic-pair")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--section", default=None, help="also write a table to this BENCHMARKS.md section")
    parser.add_argument("--title", default="Video mode beside pair mode (quick)", help="that section's heading")
    parser.add_argument("--memory-pairs", type=int, default=10,
                        help="pairs each method runs alone in a process of its own for its peak memory (0: none)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    frames = list(FrameSource(args.video, max_frames=args.pairs + 1))
    names = args.methods.split(",")
    built = {n: build(n) for n in names}
    states = {n: VideoState() if SETUPS[n][1] else None for n in names}
    rec = {n: {"seconds": [], "stages": [], "magnitude": [], "flicker": []} for n in names}
    last = {n: None for n in names}
    for t in range(len(frames) - 1):
        for n in names:
            start = time.perf_counter()
            result = built[n].estimate(frames[t], frames[t + 1], state=states[n])
            rec[n]["seconds"].append(time.perf_counter() - start)
            states[n] = result.state
            rec[n]["stages"].append(stages(built[n]))
            rec[n]["magnitude"].append(float(np.hypot(result.flow[..., 0], result.flow[..., 1]).mean()))
            if last[n] is not None:
                rec[n]["flicker"].append(flicker(result.flow, last[n]))  # (the length of the change, as summary.json's;
                #  before 2026-12-06 the mean of |du| and |dv|: 1.6x lower on solidWhiteRight.mp4)
            last[n] = result.flow
        print(t, {n: (round(rec[n]["seconds"][-1], 2), round(rec[n]["magnitude"][-1], 2)) for n in names}, flush=True)
        if args.out and t % 10 == 9:  # partial results, in case the run is cut short
            write(summarize(rec, names, frames[:t + 2]), args.out)
    summary = summarize(rec, names, frames)
    summary["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    if args.memory_pairs > 0:
        del frames, built, states, last  # (the children's memory is theirs; this process's is not counted)
        for n, peak in peaks_alone(names, args.video, args.memory_pairs).items():
            summary[n]["peak_mb_alone"] = round(peak, 1)
        summary["memory_pairs"] = args.memory_pairs
    text = write(summary, args.out)
    print(text)
    if args.section:
        write_table(args.section, summary, names, args)


def write_table(section: str, summary: dict, names: list[str], args: argparse.Namespace) -> None:
    """A BENCHMARKS.md section: one row per method, stages of the slowest, the command and machine."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from benchlib import machine, today, write_section

    h, w = next(iter(FrameSource(args.video, max_frames=1))).shape[:2]
    lines = [f"## {args.title}", "",
             f"`python scripts/measure_video_mode.py {shlex.join(sys.argv[1:])}` on {today()}; {machine()}; "
             f"load average {summary['load_average'][0]} before, {summary['load_average'][1]} after. {args.video.name}, {w}x{h}, first {summary['pairs']} pairs; frames decoded first, "
             "seconds are `estimate` alone, the methods pair by pair side by side in one process"
             + (f"; peak MB: each method again, alone in a fresh process of its own, over the first "
                f"{summary['memory_pairs']} pairs in its mode (that process's peak resident memory: Python, "
                "torch, the model, its video state)." if "memory_pairs" in summary else "; no peak memory measured."),
             "",
             "| method | s/pair | vs deepflow | flicker px | mean magnitude per pair, px | unexplained 2x jumps "
             "| peak MB |",
             "|---|---|---|---|---|---|---|"]
    for n in names:
        r = summary[n]
        lo, hi = r["magnitude_px"]
        jumps = r["unexplained_jumps"]
        versus = f"{r['seconds_vs_deepflow']:.2f}x" if "seconds_vs_deepflow" in r else "-"  # (deepflow not run)
        peak = f"{r['peak_mb_alone']:.0f}" if "peak_mb_alone" in r else "-"
        lines.append(f"| {n} | {r['seconds_per_pair']:.3f} | {versus} | {r['flicker_px']:.2f} "
                     f"| {lo:.2f} .. {hi:.2f} | {len(jumps) if isinstance(jumps, list) else jumps} | {peak} |")
    for n in names:
        if summary[n]["stage_seconds"]:
            parts = ", ".join(f"{k} {v:.3f}" for k, v in summary[n]["stage_seconds"].items())
            lines += ["", f"Seconds per stage of {n} (mean per pair): {parts}."]
    write_section(section, "\n".join(lines))


def write(summary: dict, out: Path | None) -> str:
    text = json.dumps(summary, indent=1)
    if out:
        out.write_text(text)
    return text


def summarize(rec: dict, names: list[str], frames: list[np.ndarray]) -> dict:
    """Per setup: the figures of the module docstring over the pairs computed so far."""
    change = [float(np.abs(frames[t + 1].astype(np.int16) - frames[t]).mean()) for t in range(len(frames) - 1)]
    summary = {}
    for n in names:
        r = rec[n]
        mags = r["magnitude"]
        jumps = []
        for t in range(1, len(mags)):
            ratio = max(mags[t], 1e-3) / max(mags[t - 1], 1e-3)
            image_ratio = change[t] / max(change[t - 1], 1e-3)
            if max(ratio, 1 / ratio) > 2 and 1 / 1.5 <= image_ratio <= 1.5:
                jumps.append({"pair": t, "magnitude": [round(mags[t - 1], 2), round(mags[t], 2)],
                              "image_change": [round(change[t - 1], 2), round(change[t], 2)]})
        keys = sorted({k for s in r["stages"] for k in s})
        summary[n] = {
            "seconds_per_pair": statistics.fmean(r["seconds"][1:]) if len(r["seconds"]) > 1 else r["seconds"][0],
            "first_pair_seconds": r["seconds"][0],
            "stage_seconds": {k: round(statistics.fmean(s.get(k, 0.0) for s in r["stages"][1:] or r["stages"]), 4)
                              for k in keys},
            "flicker_px": statistics.fmean(r["flicker"]) if r["flicker"] else None,
            "magnitude_px": [round(min(mags), 2), round(max(mags), 2)],
            "unexplained_jumps": jumps,
            "magnitudes": [round(m, 3) for m in mags],
        }
    if "deepflow" in summary:
        for n in names:
            summary[n]["seconds_vs_deepflow"] = summary[n]["seconds_per_pair"] / summary["deepflow"]["seconds_per_pair"]
    summary["pairs"] = len(frames) - 1
    return summary


if __name__ == "__main__":
    main()
