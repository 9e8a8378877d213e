"""Measure how much memory the flow methods, the segmenters and run's drawing need per frame size;
writes semflow/memory_needs.json.

    python scripts/measure_memory.py                       # all three parts
    python scripts/measure_memory.py --only methods --methods semantic,discrete --sizes 240x320,540x720
    python scripts/measure_memory.py --only segmenters     # the segmenters alone (camvid, torchvision)
    python scripts/measure_memory.py --only drawing        # run's drawing alone

Every measurement runs in a fresh process, one per size, and its peak resident memory (VmHWM: Python,
libraries, model, working memory) is fitted as ``base_mb + bytes_per_pixel * H * W``, the slope times
``--margin`` (default 1.25) so that the estimate errs on the side of "needs more".

- ``methods``: one synthetic pair per flow method (semflow.isolation.IsolatedMethod), at ``--sizes``.
- ``segmenters``: ``semflow segment --overlay`` of a 3-frame video (video mode) and of 3 images, at
  ``--command-sizes``; the command's process plus its FFmpeg encoder's. The shipped ``camvid``, and
  ``torchvision`` with its largest model (randomly initialised: no weights to fetch). Their networks
  run at a size of their own (camvid at most 960 px a side, torchvision 520 px on the short one), so the
  slope comes from the two largest sizes, above that, and the smallest lifts the base where it needs more.
- ``drawing``: ``semflow run --method dis-ultrafast`` of a 6-frame clip at ``--command-sizes`` (its flows
  kept in the intermediate video, as a long clip's: the most costly way to draw), the command's process
  plus its FFmpeg processes', less dis-ultrafast's own peak alone at that size: what drawing adds.

The parts and methods not measured keep their entries; each entry measured records its date, machine
and sizes. The document's own are those of the last run that measured every method (a method entry
without its own was measured then): a run of some, ``--methods semantic``, leaves them as they were.
``semflow flow``, ``run`` and ``segment`` read the file to stop, before starting, work that would not fit in the memory available (semflow.memory).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchlib import machine, today

OUT = Path(__file__).resolve().parents[1] / "semflow" / "memory_needs.json"
PARTS = ("methods", "segmenters", "drawing")
# A method that runs another inside it needs at least what that one needs per pixel (two small sizes
# give a noisy slope: semantic measured 942 B/px, below its own baseline discrete's 1076).
INCLUDES = {"semantic": "discrete"}
DRAWN_WITH = "dis-ultrafast"
"""The method whose run measures the drawing: the fastest, and its own peak is the smallest part."""


def _sizes(text: str) -> list[tuple[int, int]]:
    sizes = [tuple(int(v) for v in s.split("x")) for s in text.split(",")]
    if len({h * w for h, w in sizes}) < 2:  # (one size gives no slope: larger frames would be underestimated)
        raise SystemExit(f"sizes {text!r}: give at least two of different pixel counts, e.g. 240x320,540x720")
    return sizes


def fit(rows: list[tuple[int, float]], margin: float, min_slope: float = 0.0) -> dict:
    """``base_mb`` and ``bytes_per_pixel`` of ``rows`` ((pixels, MB), smallest first), and the rows: the
    slope between the two largest times ``margin`` (at least ``min_slope``), the base the least that puts
    every row on or under the line (a smaller size that needs more than the larger ones' line says, as
    a network run at a fixed size does, lifts it)."""
    (p0, m0), (p1, m1) = rows[-2], rows[-1]
    slope = max(max(m1 - m0, 0.0) * 2**20 / max(p1 - p0, 1) * margin, min_slope)
    base = max(0.0, *(m - slope * p / 2**20 for p, m in rows))
    return {"base_mb": round(base, 1), "bytes_per_pixel": round(slope, 1),
            "measured": {f"{int(p)}px": round(m, 1) for p, m in rows}}


# --- flow methods -------------------------------------------------------------------------------


def method_peak(method: str, h: int, w: int) -> tuple[float, float]:
    """``(peak MB, seconds)`` of ``method`` on one synthetic pair of ``h`` x ``w``, in a fresh process."""
    from semflow.isolation import IsolatedMethod
    from semflow.synthetic import make_scene

    scene = make_scene(h, w, seed=5)
    with IsolatedMethod(method, {}) as isolated:
        _, seconds, peak = isolated.estimate(scene.img1, scene.img2)
    return peak, seconds


def measure_methods(methods: list[str], sizes: list[tuple[int, int]], margin: float, needs: dict) -> None:
    for method in methods:
        rows = []
        for h, w in sizes:
            peak, seconds = method_peak(method, h, w)
            rows.append((h * w, peak))
            print(f"{method:14s} {w}x{h}: {peak:7.0f} MB  {seconds:6.2f} s", flush=True)
        inner = needs.get(INCLUDES.get(method, ""), {})
        needs[method] = fit(rows, margin, inner.get("bytes_per_pixel", 0.0))


# --- commands (segment, run) in a fresh process, with their FFmpeg processes ---------------------


def _vmhwm_mb(pid: int | str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def _exe(pid: int | str) -> str:
    """The program ``pid`` runs ("" where unknown): a child forked to start FFmpeg is this Python until
    it has started it, and its high-water mark is then this process's."""
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def _watch_children(stop: threading.Event, peaks: list[float]) -> None:
    """Every 10 ms, the sum of the high-water marks of the children of this process (FFmpeg) alive
    then, in MB: ``peaks[0]`` keeps the largest (children that never run at once are not added up)."""
    while not stop.wait(0.01):
        alive = []
        for path in glob.glob("/proc/self/task/*/children"):
            with contextlib.suppress(OSError):
                alive += Path(path).read_text().split()
        peaks[0] = max(peaks[0], sum(_vmhwm_mb(pid) for pid in alive if _exe(pid) not in ("", _exe("self"))))


def child_main(args: list[str]) -> None:
    """In the fresh process: run ``semflow ARGS...`` and print its peak MB: this process's high-water
    mark and its FFmpeg children's (those that ran at once, added up)."""
    from semflow.cli import main

    peaks = [0.0]
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_children, args=(stop, peaks), daemon=True)
    watcher.start()
    try:
        failed = main(args, standalone_mode=False)  # (its exit status: it has said why on stderr)
    finally:
        stop.set()
        watcher.join()
    if failed:
        sys.exit(failed)
    print(json.dumps({"self": _vmhwm_mb("self"), "children": peaks[0]}))


def command_peak(args: list[str]) -> float:
    """Peak MB of ``semflow ARGS...`` in a fresh process, its FFmpeg processes included."""
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"semflow {' '.join(args)} failed:\n{done.stderr}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return report["self"] + report["children"]


def _write_clip(folder: Path, h: int, w: int, frames: int, *, pngs: bool = False) -> tuple[Path, Path]:
    """A synthetic ``frames``-frame mp4 of ``h`` x ``w`` and the folder of its frames as PNGs (``pngs``)."""
    from semflow.io.images import write_image
    from semflow.io.video import VideoWriter
    from semflow.synthetic import make_scene

    scene = make_scene(h, w, seed=5)
    video, images = folder / f"clip_{w}x{h}.mp4", folder / f"frames_{w}x{h}"
    with VideoWriter(video, fps=10, quality=9) as writer:
        for i in range(frames):
            writer.write(scene.img1 if i % 2 == 0 else scene.img2)
            if pngs:
                write_image(images / f"{i:06d}.png", scene.img1 if i % 2 == 0 else scene.img2)
    return video, images


def _torchvision_weights(folder: Path) -> Path:
    """A state_dict of torchvision's largest supported segmenter (deeplabv3_resnet101, VOC's 21 classes),
    randomly initialised: what it needs does not depend on the weights."""
    import torch
    import torchvision.models.segmentation as tvseg

    path = folder / "deeplabv3_resnet101.pth"
    model = tvseg.deeplabv3_resnet101(weights=None, weights_backbone=None, num_classes=21, aux_loss=False)
    torch.save(model.state_dict(), path)
    return path


def measure_segmenters(sizes: list[tuple[int, int]], margin: float, scratch: Path) -> dict[str, dict]:
    """Per segmenter (the shipped camvid; torchvision measured with its largest model), what segmenting
    a folder of 3 images and a 3-frame video (video mode) needs, both with ``--overlay``."""
    specs = {"camvid": "camvid", "torchvision": f"torchvision:{_torchvision_weights(scratch)}"}
    entries = {}
    for name, spec in specs.items():
        rows: dict[str, list[tuple[int, float]]] = {"image": [], "video": []}
        for h, w in sizes:
            video, images = _write_clip(scratch, h, w, 3, pngs=True)
            for kind, path in (("image", images), ("video", video)):
                start = time.time()
                peak = command_peak(["segment", str(path), "--out", str(scratch / f"seg_{name}_{kind}_{w}x{h}"),
                                     "--segmenter", spec, "--overlay", "--no-progress"])
                rows[kind].append((h * w, peak))
                print(f"segment {name} {kind} {w}x{h}: {peak:7.0f} MB  {time.time() - start:6.1f} s", flush=True)
        entries[name] = {kind: fit(found, margin) for kind, found in rows.items()}
    entries["torchvision"]["model"] = "deeplabv3_resnet101 (the largest of the torchvision models it takes)"
    return entries


def measure_drawing(sizes: list[tuple[int, int]], margin: float, scratch: Path, frames: int = 6) -> dict:
    """What ``run`` needs beyond its method's flow, per size: a ``frames``-frame clip drawn from the
    intermediate video (a cache budget of 60 % of its flows: as a long clip's, the most costly way)."""
    rows = []
    for h, w in sizes:
        video, _ = _write_clip(scratch, h, w, frames)
        out = scratch / f"run_{w}x{h}"
        budget = max(1, round(0.6 * (frames - 1) * h * w * 19 / 2**20))  # (19 B a pixel: runstore.CACHE_BYTES_PER_PIXEL)
        start = time.time()
        run = command_peak(["run", str(video), "--out", str(out), "--method", DRAWN_WITH, "--cache-mb", str(budget),
                            "--no-progress"])
        drawn_from = json.loads((out / "summary.json").read_text())["render_from"]
        if drawn_from != "intermediate":
            raise SystemExit(f"run {w}x{h} drew its videos from {drawn_from!r}, not the intermediate")
        flow, _ = method_peak(DRAWN_WITH, h, w)
        rows.append((h * w, run - flow))
        print(f"run {DRAWN_WITH} {w}x{h}: {run:7.0f} MB, its flow alone {flow:5.0f} MB:"
              f" drawing {run - flow:6.0f} MB  {time.time() - start:6.1f} s", flush=True)
    return fit(rows, margin)


def main() -> None:
    from semflow.methods import list_methods

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(PARTS), help=f"Parts to measure: {', '.join(PARTS)}.")
    parser.add_argument("--methods", default=",".join(list_methods()))
    parser.add_argument("--sizes", default="240x320,540x720", help="HxW,HxW,... for the methods")
    parser.add_argument("--command-sizes", default="240x320,1080x1920,2160x3840",
                        help="HxW,HxW,... for the segmenters and the drawing, smallest first")
    parser.add_argument("--margin", type=float, default=1.25)
    args = parser.parse_args()
    parts = args.only.split(",")
    if unknown := set(parts) - set(PARTS):
        raise SystemExit(f"--only: unknown part(s) {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")
    document = json.loads(OUT.read_text()) if OUT.exists() else {}
    start = time.time()
    if "methods" in parts:
        methods = args.methods.split(",")
        measure_methods(methods, _sizes(args.sizes), args.margin, document.setdefault("methods", {}))
        measured = {"date": today(), "machine": machine(), "sizes": args.sizes}
        for method in methods:
            document["methods"][method].update(measured)
        if set(list_methods()) <= set(methods):  # (a run of some methods leaves the document's date as it was)
            document.update(measured)
    stamp = {"date": today(), "machine": machine(), "sizes": args.command_sizes}
    with tempfile.TemporaryDirectory(prefix="measure-memory-") as scratch:
        if "segmenters" in parts:
            for name, entry in measure_segmenters(_sizes(args.command_sizes), args.margin, Path(scratch)).items():
                document.setdefault("segmenters", {})[name] = {**entry, **stamp}
        if "drawing" in parts:
            entry = measure_drawing(_sizes(args.command_sizes), args.margin, Path(scratch))
            document.setdefault("drawing", {})["run"] = {**entry, **stamp, "with": DRAWN_WITH}
    document["about"] = (
        "Peak resident memory, MB: base_mb + bytes_per_pixel * H * W / 2**20. Written by"
        " scripts/measure_memory.py, each measurement in a fresh process; the slope is that between the two"
        f" largest sizes times {args.margin} for margin, the base the least that covers every size measured."
        " methods: one flow pair (a method that runs another, semantic: discrete, takes at least that one's"
        " slope); its date, machine and sizes are an entry's own where it has them, else the document's (those of"
        " the last run that measured every method). segmenters: `semflow segment --overlay` of 3"
        " images and of a 3-frame video (video mode), its FFmpeg included. drawing: what `semflow run` adds"
        " to its method's flow (its run with dis-ultrafast, FFmpeg included, less dis-ultrafast alone)."
        " Those two record their own date, machine and sizes.")
    order = ["about", "machine", "date", "sizes", "methods", "segmenters", "drawing"]
    document = {key: document[key] for key in [*order, *document] if key in document}
    OUT.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {OUT} in {time.time() - start:.0f} s")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child_main(sys.argv[2:])
    else:
        main()
