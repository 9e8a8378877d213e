"""Readers for public optical-flow datasets in their official layouts.

Each reader takes the dataset's root folder and returns a list of :class:`FlowSample`; frames and
ground truth are read only when a sample is loaded, so listing a dataset is cheap (it checks only that
each ground-truth file's two frames, and synthetic's masks, exist: a copy missing one fails before any work,
not midway).

- ``middlebury``: ``<Seq>/frame10.png``, ``frame11.png``, ``flow10.flo``
- ``sintel``: ``training/{clean,final}/<scene>/frame_NNNN.png``, ``training/flow/<scene>/frame_NNNN.flo``,
  ``training/occlusions/...`` and ``training/invalid/...`` (0/255 PNGs)
- ``kitti``: ``training/image_2/NNNNNN_10.png``, ``NNNNNN_11.png``, ``training/flow_occ/NNNNNN_10.png``
  (and ``flow_noc`` when present, for the occluded / non-occluded split)
- ``chairs``: ``data/NNNNN_img1.ppm``, ``NNNNN_img2.ppm``, ``NNNNN_flow.flo``
- ``synthetic``: ``<scene>/frame1.png``, ``frame2.png``, ``flow.flo``, ``labels.png`` (CamVid ids),
  ``instances.png``, ``occlusion.png``, as written by :func:`semflow.synthetic.write_dataset`
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semflow.errors import InputError
from semflow.io.flow import read_flow_valid
from semflow.io.images import read_image, read_image_raw


@dataclass
class FlowSample:
    """One frame pair with ground truth, loaded on demand by :meth:`load`."""

    dataset: str
    name: str
    frame1: Path
    frame2: Path
    flow: Path
    occlusion: Path | None = None
    invalid: Path | None = None
    flow_noc: Path | None = None
    labels: Path | None = None
    instances: Path | None = None

    def load(self) -> LoadedSample:
        """Read the frames and ground truth. InputError when a file's size is not the first frame's."""
        img1 = read_image(self.frame1)
        size = img1.shape[:2]
        img2 = _sized(self.frame2, read_image(self.frame2), size, self.frame1)
        flow, valid = read_flow_valid(self.flow)
        _sized(self.flow, flow, size, self.frame1)
        occluded = None
        if self.occlusion is not None:
            occluded = _sized(self.occlusion, _read_mask(self.occlusion), size, self.frame1)
        if self.invalid is not None:
            valid &= ~_sized(self.invalid, _read_mask(self.invalid), size, self.frame1)
        if self.flow_noc is not None:
            _, valid_noc = read_flow_valid(self.flow_noc)
            occluded = valid & ~_sized(self.flow_noc, valid_noc, size, self.frame1)
        labels = instances = None
        if self.labels is not None or self.instances is not None:  # (as --segmenter masks: reads them: a
            from semflow.segmentation.masks import read_label_map  # palette PNG's indices are its ids)
        if self.labels is not None:
            labels = _sized(self.labels, read_label_map(self.labels), size, self.frame1)
        if self.instances is not None:
            instances = _sized(self.instances, read_label_map(self.instances), size, self.frame1).astype(np.int32)
        return LoadedSample(self.dataset, self.name, img1, img2, flow, valid, occluded, labels, instances)


@dataclass
class LoadedSample:
    """Frames (uint8 RGB), GT flow (H, W, 2), valid mask, and where the dataset has them an occlusion
    mask (H, W) bool, a label map (H, W) uint8 in CamVid ids and a thing-instance map (H, W) int32."""

    dataset: str
    name: str
    img1: np.ndarray
    img2: np.ndarray
    flow: np.ndarray
    valid: np.ndarray
    occluded: np.ndarray | None = None
    labels: np.ndarray | None = None
    instances: np.ndarray | None = None


def _sized(path: Path, array: np.ndarray, size: tuple[int, ...], first: Path) -> np.ndarray:
    """``array`` read from ``path``, when its (H, W) is ``size`` (the first frame's, read from ``first``)."""
    if array.shape[:2] != size:
        raise InputError(f"{path}: {array.shape[1]}x{array.shape[0]}, but the frame {first.name} is "
                         f"{size[1]}x{size[0]}")
    return array


def _read_mask(path: Path) -> np.ndarray:
    mask = read_image_raw(path, gray=True)
    return mask > np.iinfo(mask.dtype).max // 2 if mask.dtype.kind in "ui" else mask > 0.5


def _folder(root: str | os.PathLike) -> Path:
    """``root`` as a Path; InputError unless it is a folder."""
    path = Path(root)
    if not path.is_dir():
        raise InputError(f"{root}: {'not a folder' if path.exists() else 'no such folder'}")
    return path


def _require_dir(path: Path, what: str) -> Path:
    """``path``, a folder the dataset ``what`` has: InputError naming the root given when it is missing."""
    if not path.is_dir():
        raise InputError(f"{path.parent}: not a {what} folder (it has no {path.name}/)")
    return path


def _frames(ground_truth: Path, first: Path, second: Path, *also: tuple[str, Path]) -> tuple[Path, Path]:
    """``(first, second)``, the frames of ``ground_truth``: InputError naming the one that does not exist, or
    the first of ``also``'s other files the sample reads (``("occlusion mask", path)``...) that does not."""
    for which, path in (("first frame", first), ("second frame", second), *also):  # (official layouts have all)
        if not path.exists():
            raise InputError(f"{path}: no such file (the {which} of {ground_truth})")
    return first, second


def middlebury(root: str | os.PathLike) -> list[FlowSample]:
    """Middlebury two-frame sequences with ground truth under ``root``."""
    root = _folder(root)
    samples = []
    for seq in sorted(p for p in root.iterdir() if p.is_dir()):
        if (seq / "flow10.flo").exists():
            frames = _frames(seq / "flow10.flo", seq / "frame10.png", seq / "frame11.png")
            samples.append(FlowSample("middlebury", seq.name, *frames, seq / "flow10.flo"))
    return samples


def sintel(root: str | os.PathLike, passes: tuple[str, ...] = ("clean", "final")) -> list[FlowSample]:
    """MPI Sintel training pairs that have ground truth, for each render pass. Files in ``flow/<scene>/``
    not named ``frame_NNNN.flo`` are skipped, like every file a reader does not look for; a flow file whose
    frames a pass's scene lacks is an :class:`InputError` naming the frame (a copy missing files)."""
    training = _require_dir(Path(root) / "training", "Sintel")
    samples = []
    for pass_name in passes:
        pass_dir = training / pass_name
        if not pass_dir.is_dir():
            continue
        for scene in sorted(p for p in pass_dir.iterdir() if p.is_dir()):
            for flo in sorted((training / "flow" / scene.name).glob("frame_*.flo")):
                digits = flo.stem[len("frame_"):]
                if not (digits.isdigit() and digits.isascii() and flo.stem == f"frame_{int(digits):04d}"):
                    continue  # not named as the layout names them (frame_abc.flo, a copy): not a sample
                index = int(digits)
                f1 = scene / f"frame_{index:04d}.png"
                f2 = scene / f"frame_{index + 1:04d}.png"
                _frames(flo, f1, f2)
                occ = training / "occlusions" / scene.name / f"{flo.stem}.png"
                inv = training / "invalid" / scene.name / f"{flo.stem}.png"
                samples.append(FlowSample(
                    "sintel", f"{pass_name}/{scene.name}/{flo.stem}", f1, f2, flo,
                    occlusion=occ if occ.exists() else None, invalid=inv if inv.exists() else None,
                ))
    return samples


def kitti(root: str | os.PathLike) -> list[FlowSample]:
    """KITTI flow training pairs (``_10`` -> ``_11``) with ``flow_occ`` ground truth."""
    training = _require_dir(Path(root) / "training", "KITTI")
    samples = []
    for gt in sorted((training / "flow_occ").glob("*_10.png")):
        stem = gt.stem[:-3]
        noc = training / "flow_noc" / gt.name
        frames = _frames(gt, training / "image_2" / f"{stem}_10.png", training / "image_2" / f"{stem}_11.png")
        samples.append(FlowSample("kitti", stem, *frames, gt, flow_noc=noc if noc.exists() else None))
    return samples


def chairs(root: str | os.PathLike) -> list[FlowSample]:
    """FlyingChairs pairs under ``root/data``."""
    data = _require_dir(Path(root) / "data", "FlyingChairs")
    samples = []
    for flo in sorted(data.glob("*_flow.flo")):
        stem = flo.name[: -len("_flow.flo")]
        samples.append(FlowSample("chairs", stem, *_frames(flo, data / f"{stem}_img1.ppm", data / f"{stem}_img2.ppm"),
                                  flo))
    return samples


def synthetic(root: str | os.PathLike) -> list[FlowSample]:
    """Synthetic layered scenes written by :func:`semflow.synthetic.write_dataset`."""
    root = _folder(root)
    samples = []
    for scene in sorted(p for p in root.iterdir() if (p / "flow.flo").exists()):
        masks = {"occlusion": scene / "occlusion.png", "labels": scene / "labels.png",
                 "instances": scene / "instances.png"}
        frames = _frames(scene / "flow.flo", scene / "frame1.png", scene / "frame2.png",
                         *zip(("occlusion mask", "label map", "instance map"), masks.values(), strict=True))
        samples.append(FlowSample("synthetic", scene.name, *frames, scene / "flow.flo", **masks))
    return samples


# What each reader looks for under the root, said when it finds no sample there.
LAYOUTS: dict[str, str] = {
    "middlebury": "<Seq>/frame10.png, frame11.png, flow10.flo",
    "sintel": "training/{clean,final}/<scene>/frame_NNNN.png, training/flow/<scene>/frame_NNNN.flo",
    "kitti": "training/image_2/NNNNNN_10.png, NNNNNN_11.png, training/flow_occ/NNNNNN_10.png",
    "chairs": "data/NNNNN_img1.ppm, NNNNN_img2.ppm, NNNNN_flow.flo",
    "synthetic": "<scene>/frame1.png, frame2.png, flow.flo, occlusion.png, labels.png, instances.png",
}

DATASETS: dict[str, Callable[..., list[FlowSample]]] = {
    "middlebury": middlebury,
    "sintel": sintel,
    "kitti": kitti,
    "chairs": chairs,
    "synthetic": synthetic,
}


def load_dataset(name: str, root: str | os.PathLike) -> list[FlowSample]:
    """The samples of dataset ``name`` (one of :data:`DATASETS`) under ``root``; error if there are none."""
    if name not in DATASETS:
        raise InputError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    _folder(root)
    samples = DATASETS[name](root)
    if not samples:
        raise InputError(f"{root}: no {name} samples with ground truth found (it should hold {LAYOUTS[name]})")
    return samples
