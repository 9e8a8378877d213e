"""Cost per frame of the CLIP prior at 480x360 on CPU, ViT-B-32 shapes, random weights.

Random weights cost exactly what trained ones do (same shapes, same operations), so no real checkpoint
is needed: the script builds a random ViT-B-32, saves it as a checkpoint file and loads it through the
same path a user's checkpoint takes. The backbone segmentation stands in as CamVid's ground-truth
labels of val frames (480x360, so the region count is that of real street scenes), with probability 0.8
on the labelled class; without /work/shared/data it uses synthetic scenes.

Timed per frame: region finding, masked crops, the image tower on the crops, the softmax and the
fusion (``ClipPrior.apply``). Not timed: the one-time text embeddings (cached on disk), reported apart.

    python scripts/bench_clip_prior.py                   # writes the clip section of BENCHMARKS.md
    python scripts/bench_clip_prior.py --no-write --frames 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import invoked, machine, today, write_section  # noqa: E402

from semflow.io.images import read_image  # noqa: E402
from semflow.segmentation.clip.loading import load_clip_model  # noqa: E402
from semflow.segmentation.clip.prior import ClipPrior  # noqa: E402
from semflow.segmentation.clip.prompts import DEFAULT_PRIOR_CLASSES, PROMPT_TEMPLATES  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid"
CAMVID = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian",
          "Bicyclist", "Void"]
KINDS = {"Sky": "plane", "Road": "plane", "Pavement": "plane", "Car": "thing", "Pedestrian": "thing",
         "Bicyclist": "thing"}
VOID = 11


def frames(count: int) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """(image 360x480x3, labels 360x480, name) for ``count`` CamVid val frames (or synthetic scenes)."""
    if (DATA / "val").is_dir():
        names = sorted(p.name for p in (DATA / "val").glob("*.png"))[:count]
        return [(read_image(DATA / "val" / n), np.array(read_image_labels(DATA / "valannot" / n)), n) for n in names]
    from semflow.synthetic import make_scene

    out = []
    for i in range(count):
        scene = make_scene(360, 480, seed=i, num_objects=4)
        out.append((scene.img1, scene.labels, f"synthetic{i}"))
    return out


def read_image_labels(path: Path) -> np.ndarray:
    from semflow.segmentation.masks import read_label_map

    labels = read_label_map(path)
    labels[labels > VOID] = VOID
    return labels


def backbone_probs(labels: np.ndarray) -> np.ndarray:
    """(H, W, 12) float32: 0.8 on the label, the rest spread evenly."""
    probs = np.full((*labels.shape, len(CAMVID)), 0.2 / (len(CAMVID) - 1), np.float32)
    np.put_along_axis(probs, labels[..., None].astype(np.int64), 0.8, axis=2)
    return probs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over the frames")
    parser.add_argument("--max-regions", type=int, nargs="+", default=[8, 24])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import open_clip

    data = frames(args.frames)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        model = open_clip.create_model("ViT-B-32", pretrained=None)
        weights = Path(tmp) / "ViT-B-32-random.pt"
        torch.save(model.state_dict(), weights)
        del model
        t0 = time.perf_counter()
        clip = load_clip_model("ViT-B-32", weights)
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ClipPrior(clip=clip, cache_dir=Path(tmp) / "cache")  # fills the text cache
        text_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ClipPrior(clip=clip, cache_dir=Path(tmp) / "cache")
        cached_s = time.perf_counter() - t0
        for max_regions in args.max_regions:
            prior = ClipPrior(clip=clip, cache_dir=Path(tmp) / "cache", max_regions=max_regions)
            times, counts = [], []
            prior.apply(data[0][0], backbone_probs(data[0][1]), data[0][1], CAMVID, KINDS, VOID)  # warm-up
            for _ in range(args.repeats):
                for image, labels, _ in data:
                    probs = backbone_probs(labels)
                    t0 = time.perf_counter()
                    result = prior.apply(image, probs, labels, CAMVID, KINDS, VOID)
                    times.append(time.perf_counter() - t0)
                    counts.append(len(result.regions))
            rows.append((max_regions, statistics.median(counts), statistics.median(times), min(times)))
            print(f"max_regions={max_regions}: {statistics.median(counts):.0f} regions, "
                  f"median {statistics.median(times):.3f} s/frame, best {min(times):.3f}")
    n_prompts = len(DEFAULT_PRIOR_CLASSES) * len(PROMPT_TEMPLATES)
    print(f"load {load_s:.2f} s, text embeddings {text_s:.2f} s ({n_prompts} prompts), cached {cached_s:.3f} s")
    source = "CamVid val frames (ground-truth labels as the backbone's)" if (DATA / "val").is_dir() else "synthetic scenes"
    table = ["| scored regions (max) | regions per frame (median) | s/frame median | s/frame best |",
             "| ---: | ---: | ---: | ---: |"]
    table += [f"| {m} | {c:.0f} | {med:.3f} | {best:.3f} |" for m, c, med, best in rows]
    body = f"""## CLIP prior (ViT-B-32 shapes, random weights, 480x360, CPU)

`{invoked()}` ({today()}; {machine()}; torch threads {args.threads}).

Per frame: regions of the backbone's label map (at least 0.2% of the image, the largest `max_regions`),
one masked 224x224 crop each through the image tower, softmax at CLIP's temperature, fusion
(`ClipPrior.apply`). Input: {len(data)} {source}, {args.repeats} passes, the default class list
({len(DEFAULT_PRIOR_CLASSES)} classes x {len(PROMPT_TEMPLATES)} templates). Random weights cost what trained ones do.
Timings on a shared 2-core machine are noisy (load average {os.getloadavg()[0]:.1f} when the run ended,
from other jobs); medians.

{chr(10).join(table)}

One-time costs, not in the table: loading the checkpoint {load_s:.1f} s (includes its sha256);
text embeddings of the {n_prompts} prompts {text_s:.1f} s, then {cached_s:.3f} s from the disk cache.
The default is `max_regions=24`; each scored region is one image-tower pass."""
    print(body)
    if not args.no_write:
        write_section("clip", body)


if __name__ == "__main__":
    main()
