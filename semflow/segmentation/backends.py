"""Segmenters: image in, per-pixel class probabilities and labels out. A registry of backends.

Backends (names for :func:`get_segmenter` and ``semflow segment --backend``):

- ``camvid`` (default): the shipped EfficientNet-Lite0 + FPN model, ``models/camvid_lite0_fpn.pt``,
  CamVid's 11 classes. ``camvid:PATH`` loads another weights file of the same format.
- ``torchvision:PATH``: a torchvision DeepLabV3 / LRASPP / FCN ``state_dict`` file that the user names
  (the architecture is read from the file); 21 outputs are PASCAL VOC's classes.
- ``masks:PATH``: user-given label PNGs, a folder (``<image stem>.png`` or ``NNNNNN.png`` per video
  frame) or one PNG for every frame, in the label set named by ``label_set`` (default ``camvid``).

Nothing is ever downloaded: every weights file is a local file.
"""

from __future__ import annotations

import os
import pickle
import sys
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from semflow.device import resolve_device
from semflow.errors import InputError, WeightsError
from semflow.segmentation.instances import extract_instances
from semflow.segmentation.labels import CAMVID, VOC, LabelSet, get_label_set
from semflow.segmentation.model import SegNetLite0
from semflow.segmentation.regions import Region

DEFAULT_WEIGHTS_NAME = "camvid_lite0_fpn.pt"
WEIGHTS_FORMAT = "semflow-segmenter"


# --- results --------------------------------------------------------------------------------------


@dataclass(eq=False)
class Segmentation:
    """A segmentation of one image.

    ``probs``: (H, W, C) float32 class probabilities (C = ``label_set.num_classes``), ``labels``:
    (H, W) uint8 class ids, ``label_set``: what the ids mean. Thing instances are computed on first
    use (``min_instance_area`` px and larger, holes filled).
    """

    probs: np.ndarray
    labels: np.ndarray
    label_set: LabelSet
    min_instance_area: int = 64
    _instances: tuple[np.ndarray, list[Region]] | None = field(default=None, repr=False)

    def kind_map(self) -> np.ndarray:
        """Region kind code per pixel (H, W) uint8 (``labels.KIND_CODES``: stuff 0, plane 1, thing 2)."""
        return self.label_set.kind_map(self.labels)

    @property
    def instances(self) -> list[Region]:
        """Thing instances (connected components of thing classes, cleaned)."""
        return self._instance_data()[1]

    @property
    def instance_map(self) -> np.ndarray:
        """(H, W) int32: 0 outside things, k inside ``instances[k - 1]``."""
        return self._instance_data()[0]

    def _instance_data(self) -> tuple[np.ndarray, list[Region]]:
        if self._instances is None:
            self._instances = extract_instances(self.labels, self.label_set.ids_of("thing"),
                                                min_area=self.min_instance_area)
        return self._instances

    def refresh_instances(self) -> None:
        """Forget cached instances (after labels or kinds changed)."""
        self._instances = None

    def colorize(self) -> np.ndarray:
        """Labels in the label set's colours, uint8 RGB (H, W, 3)."""
        return self.label_set.colorize(self.labels)

    def overlay(self, image: np.ndarray, alpha: float = 0.5) -> np.ndarray:
        """``image`` (uint8 RGB) blended with the label colours, instance outlines drawn in white."""
        out = cv2.addWeighted(np.asarray(image, np.uint8), 1.0 - alpha, self.colorize(), alpha, 0.0)
        inst = self.instance_map
        if inst.any():
            edge = (cv2.morphologyEx(inst.astype(np.float32), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0)
            out[edge & (inst > 0)] = 255
        return out


# --- base class and registry ------------------------------------------------------------------------


class Segmenter:
    """Base class: ``predict(image, key=None) -> Segmentation`` for uint8 RGB images (H, W, 3).

    ``key`` names the image (file stem) or video frame (index): backends that read given masks need it;
    models ignore it.
    """

    name: str = "segmenter"
    label_set: LabelSet
    device: str = "cpu"

    def predict(self, image: np.ndarray, key: str | int | None = None) -> Segmentation:
        raise NotImplementedError

    def predict_labels(self, image: np.ndarray, key: str | int | None = None) -> tuple[np.ndarray, LabelSet]:
        """Only the labels (H, W) uint8 and their label set: what :meth:`predict` gives, maybe faster."""
        seg = self.predict(image) if key is None else self.predict(image, key=key)
        return seg.labels, seg.label_set


def _check_image(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise InputError(f"segmenter input must be uint8 RGB (H, W, 3), got {img.dtype} {img.shape}")
    return img


def _torch_load(path: Path, what: str) -> Any:
    """torch.load(weights_only) with one-line WeightsErrors for missing, truncated or foreign files."""
    if not path.exists():
        raise WeightsError(f"{path}: no such {what} file")
    if not path.is_file():
        raise WeightsError(f"{path}: not a file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, OSError,
            AttributeError, IndexError, KeyError) as exc:
        text = str(exc).strip()
        if "central directory" in text or isinstance(exc, (EOFError, zipfile.BadZipFile)):
            why = "the file is truncated or corrupt"
        elif "Weights only load failed" in text or isinstance(exc, pickle.UnpicklingError):
            why = "not a torch weights file (semflow loads tensors only, never pickled code)"
        else:
            why = text.split("\n")[0].split(". ")[0][:120]
        raise WeightsError(f"{path}: cannot read {what}: {why}") from None


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """Fold every BatchNorm2d that directly follows a Conv2d in an nn.Sequential into the conv (eval only)."""
    for child in module.children():
        fold_batchnorm(child)
    if isinstance(module, nn.Sequential):
        mods = list(module)
        for i in range(len(mods) - 1):
            conv, bn = mods[i], mods[i + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
                with torch.no_grad():
                    conv.weight.mul_(scale.view(-1, 1, 1, 1))
                    conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)
                module[i + 1] = nn.Identity()
    return module


_BACKENDS: dict[str, Callable[..., Segmenter]] = {}


def register_backend(name: str, factory: Callable[..., Segmenter]) -> None:
    """Register ``factory(arg, *, device, kinds_override, label_set) -> Segmenter`` under ``name``.

    ``get_segmenter("name:arg")`` calls it with ``arg`` ("" when no ``:arg`` is given).
    """
    _BACKENDS[name.lower()] = factory


def list_backends() -> list[str]:
    return sorted(_BACKENDS)


def get_segmenter(name: str = "camvid", *, device: str = "cpu",
                  kinds_override: str | Mapping[str, str] | None = None,
                  label_set: str | LabelSet | None = None) -> Segmenter:
    """A segmenter by backend spec: ``camvid``, ``camvid:PATH``, ``torchvision:PATH``, ``masks:PATH``.

    ``kinds_override`` changes the class -> kind table ("Tree:plane,Car:thing"); ``label_set`` is the
    set user-given masks use (name or JSON file; default camvid).
    """
    spec = str(name)
    backend, _, arg = spec.partition(":")
    factory = _BACKENDS.get(backend.lower())
    if factory is None:
        raise InputError(f"unknown segmentation backend {spec!r}; known: "
                         f"{', '.join(list_backends())} (torchvision and masks take :PATH)")
    return factory(arg, device=device, kinds_override=kinds_override, label_set=label_set)


# --- camvid: the shipped model ------------------------------------------------------------------------


def default_weights_path() -> Path:
    """Where the shipped weights are: $SEMFLOW_MODELS, else the project's ``models/`` folder (a source
    checkout or editable install), else ``<prefix>/share/semflow/models`` (a wheel install)."""
    env = os.environ.get("SEMFLOW_MODELS")
    candidates = [Path(env) / DEFAULT_WEIGHTS_NAME] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / "models" / DEFAULT_WEIGHTS_NAME)
    candidates.append(Path(sys.prefix) / "share" / "semflow" / "models" / DEFAULT_WEIGHTS_NAME)
    for c in candidates:
        if c.exists():
            return c
    return candidates[0]


def load_camvid_model(path: str | os.PathLike | None = None) -> tuple[SegNetLite0, dict]:
    """The shipped model (eval mode, fp32) from a ``semflow-segmenter`` weights file, and its header."""
    path = Path(path) if path else default_weights_path()
    payload = _torch_load(path, "segmenter weights")
    if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT or "state_dict" not in payload:
        raise WeightsError(f"{path}: not a semflow segmenter weights file (expected format {WEIGHTS_FORMAT!r})")
    if payload.get("arch") != "lite0-fpn":
        raise WeightsError(f"{path}: architecture {payload.get('arch')!r} is not supported (expected 'lite0-fpn')")
    num_classes = int(payload.get("num_classes", 11))
    model = SegNetLite0(num_classes)
    sd = {k: (v.float() if v.is_floating_point() else v) for k, v in payload["state_dict"].items()}
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    wrong = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        parts = [f"{len(missing)} missing" if missing else "", f"{len(unexpected)} unexpected" if unexpected else "",
                 f"{len(wrong)} of the wrong shape (e.g. {wrong[0]})" if wrong else ""]
        raise WeightsError(f"{path}: weights do not fit the lite0-fpn model: "
                           + ", ".join(p for p in parts if p) + " tensors")
    model.load_state_dict(sd)
    return model.eval(), {k: v for k, v in payload.items() if k != "state_dict"}


class TorchSegmenter(Segmenter):
    """Shared inference for torch models that map a normalised (1, 3, h, w) batch to logits."""

    def __init__(self, model: nn.Module, label_set: LabelSet, device: str, *, max_side: int | None,
                 min_side: int | None = None) -> None:
        self.torch_device = resolve_device(device)
        self.device = self.torch_device.type
        self.model = model.to(self.torch_device).eval()
        if self.torch_device.type == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.label_set = label_set
        self.max_side, self.min_side = max_side, min_side

    def _input(self, image: np.ndarray) -> torch.Tensor:
        h, w = image.shape[:2]
        scale = 1.0
        if self.min_side:
            scale = self.min_side / min(h, w)
        elif self.max_side and max(h, w) > self.max_side:
            scale = self.max_side / max(h, w)
        img = image
        if scale != 1.0:
            size = (max(8, round(w * scale)), max(8, round(h * scale)))
            img = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        x = torch.from_numpy(np.ascontiguousarray(img)).to(self.torch_device).permute(2, 0, 1)[None].float() / 255.0
        return x.contiguous(memory_format=torch.channels_last)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    @torch.inference_mode()
    def _run(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        image = _check_image(image)
        logits = self._logits(self._input(image))
        if logits.shape[-2:] != image.shape[:2]:
            logits = F.interpolate(logits, size=image.shape[:2], mode="bilinear", align_corners=False)
        # softmax over the contiguous class axis, then (H, W, C): far faster on CPU than the other order
        probs = logits[0].float().softmax(0).permute(1, 2, 0).contiguous()
        labels = probs.argmax(-1).to(torch.uint8)
        return probs.cpu().numpy(), labels.cpu().numpy()

    def predict_probs(self, image: np.ndarray) -> np.ndarray:
        """(H, W, C) float32 class probabilities of ``image`` (uint8 RGB (H, W, 3))."""
        return self._run(image)[0]

    def predict(self, image: np.ndarray, key: str | int | None = None) -> Segmentation:
        probs, labels = self._run(image)
        return Segmentation(probs, labels, self.label_set)

    @torch.inference_mode()
    def predict_labels(self, image: np.ndarray, key: str | int | None = None) -> tuple[np.ndarray, LabelSet]:
        """The labels of :meth:`predict` without the probabilities (no softmax: it keeps the argmax)."""
        if type(self).predict is not TorchSegmenter.predict:  # a subclass changes predictions: use them
            return super().predict_labels(image, key)
        image = _check_image(image)
        logits = self._logits(self._input(image))
        if logits.shape[-2:] != image.shape[:2]:
            logits = F.interpolate(logits, size=image.shape[:2], mode="bilinear", align_corners=False)
        return logits[0].float().argmax(0).to(torch.uint8).cpu().numpy(), self.label_set


class CamVidSegmenter(TorchSegmenter):
    """The shipped CamVid model. Images are used at their own size up to ``max_side`` px (larger ones shrink)."""

    name = "camvid"

    def __init__(self, weights: str | os.PathLike | None = None, *, device: str = "cpu",
                 kinds_override: str | Mapping[str, str] | None = None, max_side: int | None = 960) -> None:
        model, self.header = load_camvid_model(weights)
        fold_batchnorm(model)
        super().__init__(model, CAMVID.with_kinds(kinds_override), device, max_side=max_side)


# --- torchvision weights the user names ---------------------------------------------------------------

_TV_ARCHES = ("deeplabv3_resnet50", "deeplabv3_resnet101", "deeplabv3_mobilenet_v3_large", "fcn_resnet50",
              "fcn_resnet101", "lraspp_mobilenet_v3_large")


def detect_torchvision_arch(state_dict: Mapping[str, torch.Tensor]) -> tuple[str, int, bool]:
    """(architecture, number of classes, has aux classifier) of a torchvision segmentation state_dict."""
    keys = set(state_dict)
    aux = any(k.startswith("aux_classifier.") for k in keys)
    if "classifier.low_classifier.weight" in keys and "classifier.high_classifier.weight" in keys:
        return "lraspp_mobilenet_v3_large", int(state_dict["classifier.high_classifier.weight"].shape[0]), aux
    mobilenet = "backbone.0.0.weight" in keys
    deep = any(k.startswith("backbone.layer3.22.") for k in keys)  # resnet101 has 23 blocks in layer3
    if "classifier.0.convs.0.0.weight" in keys and "classifier.4.weight" in keys:
        n = int(state_dict["classifier.4.weight"].shape[0])
        if mobilenet:
            return "deeplabv3_mobilenet_v3_large", n, aux
        return ("deeplabv3_resnet101" if deep else "deeplabv3_resnet50"), n, aux
    if "classifier.0.weight" in keys and "classifier.4.weight" in keys and "backbone.conv1.weight" in keys:
        return ("fcn_resnet101" if deep else "fcn_resnet50"), int(state_dict["classifier.4.weight"].shape[0]), aux
    raise KeyError("no known torchvision segmentation head")


class _TVWrapper(nn.Module):
    """ImageNet normalisation + a torchvision segmentation model's 'out' logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)["out"]


class TorchvisionSegmenter(TorchSegmenter):
    """A torchvision DeepLabV3 / LRASPP / FCN with a weights file the user names (21 classes -> VOC).

    Images are resized so the shorter side is ``size`` px (520, as torchvision's weights were made).
    A model with another number of classes needs ``label_set`` (a name or JSON file) that fits it.
    """

    name = "torchvision"

    def __init__(self, weights: str | os.PathLike, *, device: str = "cpu",
                 kinds_override: str | Mapping[str, str] | None = None,
                 label_set: str | LabelSet | None = None, size: int = 520) -> None:
        if not str(weights):
            raise InputError("torchvision backend needs a weights file: --backend torchvision:PATH")
        path = Path(weights)
        sd = _torch_load(path, "torchvision weights")
        if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
            sd = sd["state_dict"]
        if isinstance(sd, dict) and "model" in sd and isinstance(sd["model"], dict):
            sd = sd["model"]
        if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
            raise WeightsError(f"{path}: not a state_dict of tensors")
        try:
            arch, n, aux = detect_torchvision_arch(sd)
        except KeyError:
            raise WeightsError(f"{path}: not a torchvision segmentation state_dict (supported: "
                               f"{', '.join(_TV_ARCHES)})") from None
        import torchvision.models.segmentation as tvseg

        model = getattr(tvseg, arch)(weights=None, weights_backbone=None, num_classes=n, aux_loss=aux)
        try:
            model.load_state_dict(sd, strict=True)
        except RuntimeError as exc:
            raise WeightsError(f"{path}: weights do not fit {arch}: {str(exc).splitlines()[0][:160]}") from None
        if label_set is None:
            if n != VOC.num_classes:
                raise InputError(f"{path}: {arch} has {n} classes; name their label set (a .json file)")
            ls = VOC
        else:
            ls = get_label_set(label_set)
            if ls.num_classes != n:
                raise InputError(f"label set {ls.name!r} has {ls.num_classes} classes, the model {n}")
        self.arch = arch
        super().__init__(_TVWrapper(model), ls.with_kinds(kinds_override), device, max_side=None, min_side=size)


# --- user-given masks ------------------------------------------------------------------------------


def read_label_map(path: Path) -> np.ndarray:
    """A label PNG (one channel, or three equal channels) as an integer array (H, W)."""
    if not path.is_file():
        raise InputError(f"{path}: no such label file")
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise InputError(f"{path}: cannot decode as an image")
    if raw.ndim == 3:
        if not (raw[..., :1] == raw[..., :3]).all():
            raise InputError(f"{path}: a colour image, not a label map of class ids (one channel)")
        raw = raw[..., 0]
    return raw


class MaskSegmenter(Segmenter):
    """User-given label maps: a folder with ``<image stem>.png`` or ``NNNNNN.png`` (frame index) files,
    or one PNG used for every image. Probabilities are one-hot (uniform on void pixels)."""

    name = "masks"

    def __init__(self, source: str | os.PathLike, *, label_set: str | LabelSet | None = None,
                 kinds_override: str | Mapping[str, str] | None = None, device: str = "cpu") -> None:
        if not str(source):
            raise InputError("masks backend needs a folder or PNG: --backend masks:PATH")
        self.source = Path(source)
        if not self.source.exists():
            raise InputError(f"{self.source}: no such mask folder or file")
        self.label_set = get_label_set(label_set or "camvid", kinds_override)
        self.device = "cpu"

    def path_for(self, key: str | int | None) -> Path:
        """The label PNG for an image stem or frame index."""
        if self.source.is_file():
            return self.source
        if key is None:
            raise InputError(f"{self.source}: given masks need the image's name or frame index")
        names = [f"{key:06d}.png"] if isinstance(key, int) else [f"{key}.png", f"{Path(str(key)).stem}.png"]
        for n in names:
            if (self.source / n).is_file():
                return self.source / n
        raise InputError(f"{self.source}: no label map for {key!r} (expected {names[0]})")

    def predict(self, image: np.ndarray, key: str | int | None = None) -> Segmentation:
        image = _check_image(image)
        path = self.path_for(key)
        raw = read_label_map(path)
        ls = self.label_set
        if raw.shape != image.shape[:2]:
            raise InputError(f"{path}: size {raw.shape[1]}x{raw.shape[0]} differs from the image's "
                             f"{image.shape[1]}x{image.shape[0]}")
        ids = np.unique(raw)
        known = set(range(ls.num_classes)) | ({ls.void_id} if ls.void_id is not None else set())
        unknown = [int(i) for i in ids if int(i) not in known]
        if unknown:
            raise InputError(f"{path}: unknown class ids {', '.join(map(str, unknown[:8]))} for label set "
                             f"{ls.name!r} (ids 0-{ls.num_classes - 1}"
                             + ("" if ls.void_id is None else f", void {ls.void_id}") + ")")
        labels = raw.astype(np.uint8)
        probs = np.zeros((*labels.shape, ls.num_classes), np.float32)
        valid = labels < ls.num_classes
        yy, xx = np.nonzero(valid)
        probs[yy, xx, labels[valid]] = 1.0
        probs[~valid] = 1.0 / ls.num_classes
        return Segmentation(probs, labels, ls)


# --- registry ------------------------------------------------------------------------------------------


def _camvid(arg: str, *, device: str, kinds_override: Any, label_set: Any) -> Segmenter:
    return CamVidSegmenter(arg or None, device=device, kinds_override=kinds_override)


def _torchvision(arg: str, *, device: str, kinds_override: Any, label_set: Any) -> Segmenter:
    return TorchvisionSegmenter(arg, device=device, kinds_override=kinds_override, label_set=label_set)


def _masks(arg: str, *, device: str, kinds_override: Any, label_set: Any) -> Segmenter:
    return MaskSegmenter(arg, label_set=label_set, kinds_override=kinds_override, device=device)


register_backend("camvid", _camvid)
register_backend("torchvision", _torchvision)
register_backend("masks", _masks)
