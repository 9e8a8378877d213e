"""Benchmark the shipped segmenter: CamVid val mIoU and CPU speed; writes its section of BENCHMARKS.md.

    python scripts/bench_segmenter.py --data ../shared/data/camvid [--weights models/camvid_lite0_fpn.pt]

Speed: images per second at 480x360 through ``Segmenter.predict`` (uint8 RGB in, probabilities and
labels out) and through the network alone, with torch's default thread count, after a warm-up; the
best of ``--repeats`` timed runs of ``--frames`` frames (a shared machine's other load only slows runs down).
Accuracy: val mIoU over CamVid's 11 classes, void ignored, at full resolution (480x360).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchlib import invoked, today  # noqa: E402

from semflow.segmentation import CAMVID, get_segmenter  # noqa: E402
from semflow.segmentation.backends import CamVidSegmenter  # noqa: E402
from semflow.segmentation.masks import read_label_map  # noqa: E402

START, END = "<!-- segmenter:start -->", "<!-- segmenter:end -->"


def val_pairs(root: Path) -> list[tuple[Path, Path]]:
    lines = [ln.split() for ln in (root / "val.txt").read_text().splitlines() if ln.strip()]
    return [(root / "val" / Path(a).name, root / "valannot" / Path(b).name) for a, b in lines]


def evaluate(seg: CamVidSegmenter, root: Path) -> tuple[float, float, np.ndarray]:
    """(mIoU, pixel accuracy, per-class IoU) on CamVid val."""
    conf = np.zeros((11, 11), np.int64)
    for img_path, lbl_path in val_pairs(root):
        img = cv2.imread(str(img_path), cv2.IMREAD_COLOR)[..., ::-1].copy()
        gt = read_label_map(lbl_path).astype(np.int64)
        pred = seg.predict(img).labels.astype(np.int64)
        keep = gt < 11
        conf += np.bincount(gt[keep] * 11 + pred[keep], minlength=121).reshape(11, 11)
    tp = np.diag(conf).astype(np.float64)
    iou = tp / np.maximum(conf.sum(0) + conf.sum(1) - tp, 1)
    return float(iou.mean()), float(tp.sum() / conf.sum()), iou


def speed(fn, frames: list[np.ndarray], repeats: int) -> tuple[float, float]:
    """(best images/s, least process CPU seconds per image) over ``repeats`` runs of ``fn`` on every frame."""
    for f in frames[:3]:
        fn(f)
    best, cpu = 0.0, float("inf")
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        for f in frames:
            fn(f)
        best = max(best, len(frames) / (time.perf_counter() - t))
        cpu = min(cpu, (time.process_time() - c) / len(frames))
    return best, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/camvid"))
    ap.add_argument("--weights", default=None)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-accuracy", action="store_true")
    ap.add_argument("--note", default="", help="a paragraph to add to the section (e.g. another machine's figures)")
    ap.add_argument("--write", default="BENCHMARKS.md", help="file whose segmenter section to (re)write; '' = none")
    args = ap.parse_args()
    root = Path(args.data)
    seg = get_segmenter(f"camvid:{args.weights}" if args.weights else "camvid")
    assert isinstance(seg, CamVidSegmenter)
    pairs = val_pairs(root)[: args.frames]
    frames = [cv2.imread(str(p), cv2.IMREAD_COLOR)[..., ::-1].copy() for p, _ in pairs]
    if any(f.shape != (360, 480, 3) for f in frames):
        raise SystemExit("expected 480x360 CamVid frames")
    threads = torch.get_num_threads()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    ips_predict, cpu_predict = speed(seg.predict, frames, args.repeats)
    net = seg.model

    @torch.inference_mode()
    def net_only(img: np.ndarray) -> None:
        net(seg._input(img))

    ips_net, cpu_net = speed(net_only, frames, args.repeats)
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"predict: {ips_predict:.1f} img/s ({cpu_predict:.3f} CPU s/img), network alone: {ips_net:.1f} img/s "
          f"({cpu_net:.3f} CPU s/img) ({threads} threads, load {load:.1f} -> {load_end:.1f})")
    rows = []
    if not args.no_accuracy:
        t = time.perf_counter()
        miou, acc, iou = evaluate(seg, root)
        print(f"val mIoU {miou:.4f}, pixel acc {acc:.4f} ({time.perf_counter() - t:.0f}s)")
        rows = [f"| {n} | {v * 100:.1f} |" for n, v in zip(CAMVID.class_names, iou, strict=True)]
    cpu = platform.processor() or platform.machine()
    try:
        cpu = re.sub(r"\s+", " ", next(ln.split(":", 1)[1] for ln in open("/proc/cpuinfo") if "model name" in ln)).strip()
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    section = [START, "## Segmenter (`camvid`: EfficientNet-Lite0 + FPN, `models/camvid_lite0_fpn.pt`)", "",
               f"Made by `{invoked()}` on {today()}, {cores} CPU cores ({cpu}), torch "
               f"{torch.__version__}, {threads} threads, fp32 on CPU with batch-norm folded, channels-last. "
               f"Best of {args.repeats} runs over {len(frames)} CamVid val frames (480x360) after a warm-up; "
               f"load average {load:.1f} at the start and {load_end:.1f} at the end of the timing (the machine "
               f"is shared: other processes only slow these runs down). CPU s/image is the process's CPU time "
               f"(both threads) per image: what one image costs whatever else runs.", "",
               "| measure | value |", "|---|---|",
               f"| `Segmenter.predict` (uint8 RGB in; probabilities, labels out) | {ips_predict:.1f} images/s "
               f"({cpu_predict:.3f} CPU s/image) |",
               f"| network alone (forward pass) | {ips_net:.1f} images/s ({cpu_net:.3f} CPU s/image) |"]
    if rows:
        section += [f"| CamVid val mIoU, 11 classes, void ignored | {miou * 100:.1f}% |",
                    f"| CamVid val pixel accuracy | {acc * 100:.1f}% |", "",
                    "| class | val IoU (%) |", "|---|---|", *rows]
    if args.note:
        section += ["", args.note]
    section.append(END)
    if args.write:
        path = Path(args.write)
        text = path.read_text() if path.exists() else "# Benchmarks\n"
        block = "\n".join(section)
        if START in text and END in text:
            text = text[: text.index(START)] + block + text[text.index(END) + len(END):]
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
        path.write_text(text)
        print(f"wrote the segmenter section of {path}")


if __name__ == "__main__":
    main()
