"""Torch segmenters: the shipped CamVid model and torchvision models whose weights the user names.

- ``camvid``: the shipped EfficientNet-Lite0 + FPN model, ``models/camvid_lite0_fpn.pt``, CamVid's 11
  classes (:class:`CamVidSegmenter`; another weights file of the same format may be named).
- ``torchvision``: a torchvision DeepLabV3 / LRASPP / FCN ``state_dict`` file (the architecture is read
  from the file); 21 outputs are PASCAL VOC's classes (:class:`TorchvisionSegmenter`).

Weights files are read with ``torch.load(weights_only=True)`` (:func:`semflow.io.weights.load_torch_file`):
tensors only, never pickled code. Nothing is ever downloaded.
"""

from __future__ import annotations

import contextlib
import os
import sys
import sysconfig
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from semflow.device import resolve_device
from semflow.errors import InputError, WeightsError, reason
from semflow.io.weights import load_torch_file
from semflow.segmentation.base import Segmentation, Segmenter, check_image
from semflow.segmentation.labels import CAMVID, VOC, LabelSet, get_label_set
from semflow.segmentation.model import SegNetLite0

DEFAULT_WEIGHTS_NAME = "camvid_lite0_fpn.pt"
WEIGHTS_FORMAT = "semflow-segmenter"
WEIGHTS_VERSION = 1  # the layout of the header and state_dict this semflow reads


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



# --- camvid: the shipped model ------------------------------------------------------------------------


def weights_candidates() -> list[Path]:
    """Where the shipped weights may be, in the order they are looked for: the project's ``models/`` folder
    (a source checkout or editable install), then ``<data>/share/semflow/models`` where a wheel puts them:
    ``<data>`` is the folder that holds ``lib/pythonX.Y/site-packages`` for a plain install and for ``pip
    install --user`` or ``--prefix``, the folder itself for ``--target``; then ``sys.prefix`` and every
    install scheme's data folder."""
    package = Path(__file__).resolve().parents[1]  # .../semflow
    shipped = Path("share") / "semflow" / "models" / DEFAULT_WEIGHTS_NAME
    found = [package.parent / "models" / DEFAULT_WEIGHTS_NAME]
    # Beside the package first: --target DIR puts them in DIR/share; --prefix and --user (and a plain install)
    # in the folder above lib/pythonX.Y/site-packages.
    found += [package.parents[k] / shipped for k in (0, 3) if k < len(package.parents)]
    found.append(Path(sys.prefix) / shipped)
    for scheme in sysconfig.get_scheme_names():  # (the user scheme: ~/.local/share)
        with contextlib.suppress(KeyError, ValueError):
            found.append(Path(sysconfig.get_path("data", scheme)) / shipped)
    return list(dict.fromkeys(found))


def default_weights_path() -> Path:
    """Where the shipped weights are: in $SEMFLOW_MODELS when it is set (only there: a folder without them
    is an error, not passed over), else the first of :func:`weights_candidates` that holds them (the first
    one when none does)."""
    env = os.environ.get("SEMFLOW_MODELS")
    if env:
        return Path(env) / DEFAULT_WEIGHTS_NAME
    candidates = weights_candidates()
    for c in candidates:
        if c.exists():
            return c
    return candidates[0]


def load_camvid_model(path: str | os.PathLike | None = None) -> tuple[SegNetLite0, dict]:
    """The shipped model (eval mode, fp32) from a ``semflow-segmenter`` weights file, and its header."""
    given, path = path, Path(path) if path else default_weights_path()
    if not given and os.environ.get("SEMFLOW_MODELS") and not path.exists():
        raise WeightsError(f"{path}: no such segmenter weights file (SEMFLOW_MODELS names the folder that holds"
                           f" {DEFAULT_WEIGHTS_NAME}; unset it to use the shipped weights)")
    if not given and not path.exists():
        looked = ", ".join(str(c.parent) for c in weights_candidates())
        raise WeightsError(f"the shipped segmenter weights {DEFAULT_WEIGHTS_NAME} are not installed where semflow"
                           f" looks ({looked}): set SEMFLOW_MODELS to the folder that holds them, or give"
                           " --segmenter camvid:PATH")
    payload = load_torch_file(path, "segmenter weights")
    if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT or "state_dict" not in payload:
        raise WeightsError(f"{path}: not a semflow segmenter weights file (expected format {WEIGHTS_FORMAT!r})")
    if payload.get("version", WEIGHTS_VERSION) != WEIGHTS_VERSION:
        raise WeightsError(f"{path}: weights file version {payload.get('version')!r}; this semflow reads version "
                           f"{WEIGHTS_VERSION} (a newer semflow wrote it?)")
    if payload.get("arch") != "lite0-fpn":
        raise WeightsError(f"{path}: architecture {payload.get('arch')!r} is not supported (expected 'lite0-fpn')")
    num_classes, state = payload.get("num_classes", 11), payload["state_dict"]
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or not 1 <= num_classes <= 256:
        raise WeightsError(f"{path}: num_classes {num_classes!r} is not a class count (1 to 256)")  # checked before
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):  # it is built
        raise WeightsError(f"{path}: its state_dict is not a mapping of names to tensors")
    with torch.random.fork_rng(devices=[]):  # (its random initialisation, overwritten below, drew from the
        model = SegNetLite0(num_classes)     # caller's torch stream: a host seeding torch got other numbers)
    sd = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
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


def bf16_native(device: torch.device) -> bool:
    """Whether ``device`` is a CPU that computes bfloat16 convolutions natively (oneDNN with AVX512-BF16
    or AMX): there the network runs about 2.3x faster in bfloat16 than in float32; elsewhere slower."""
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class TorchSegmenter(Segmenter):
    """Shared inference for torch models that map a normalised (1, 3, h, w) batch to logits.

    ``video_bf16``: :meth:`predict_small_probs` (the per-frame evidence of video mode, filtered over
    time) runs the network in bfloat16 where the CPU does so natively (:func:`bf16_native`); every
    other prediction stays float32.
    """

    video_bf16 = True

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
        if self.max_side and max(h, w) * scale > self.max_side:  # (after min_side too: a strip's longer side)
            scale = self.max_side / max(h, w)
        img = image
        if scale != 1.0:
            size = (max(8, round(w * scale)), max(8, round(h * scale)))
            img = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        x = torch.from_numpy(np.ascontiguousarray(img)).to(self.torch_device).permute(2, 0, 1)[None].float() / 255.0
        return x.contiguous(memory_format=torch.channels_last)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _image_logits(self, image: np.ndarray) -> torch.Tensor:
        """The network's logits (1, C, H, W) for ``image`` (checked first), at the image's size."""
        image = check_image(image)
        return _at_size(self._logits(self._input(image)), image.shape[:2])

    @torch.inference_mode()
    def _run(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits = self._image_logits(image)
        # softmax over the contiguous class axis, then (H, W, C): far faster on CPU than the other order
        probs = logits[0].float().softmax(0).permute(1, 2, 0).contiguous()
        labels = probs.argmax(-1).to(torch.uint8)
        return probs.cpu().numpy(), labels.cpu().numpy()

    def predict(self, image: np.ndarray, key: str | int | None = None) -> Segmentation:
        probs, labels = self._run(image)
        return Segmentation(probs, labels, self.label_set)

    @torch.inference_mode()
    def predict_labels(self, image: np.ndarray, key: str | int | None = None) -> tuple[np.ndarray, LabelSet]:
        """The labels of :meth:`predict` without the probabilities (no softmax: it keeps the argmax)."""
        if type(self).predict is not TorchSegmenter.predict:  # a subclass changes predictions: use them
            return super().predict_labels(image, key)
        logits = self._image_logits(image)
        return logits[0].float().argmax(0).to(torch.uint8).cpu().numpy(), self.label_set

    @torch.inference_mode()
    def predict_small_probs(self, image: np.ndarray, size: tuple[int, int]
                            ) -> tuple[np.ndarray, np.ndarray, LabelSet]:
        """The labels (H, W) uint8 of the network's logits, and their softmax resized to ``size`` (h, w).

        With ``video_bf16`` on a CPU with native bfloat16 the network runs in bfloat16 (the shipped
        model at 960x540 on one AVX512-BF16 core: 0.22 -> 0.10 CPU s; 99.6 % of the labels equal
        :meth:`predict_labels`'s); the softmax and argmax stay float32. Else the labels are
        :meth:`predict_labels`'s."""
        if type(self).predict is not TorchSegmenter.predict:
            return super().predict_small_probs(image, size)
        image = check_image(image)
        x = self._input(image)
        if self.video_bf16 and bf16_native(self.torch_device):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                raw = self._logits(x)
            raw = raw.float()
        else:
            raw = self._logits(x)
        labels = _at_size(raw, image.shape[:2])[0].float().argmax(0).to(torch.uint8).cpu().numpy()
        small = _at_size(raw, tuple(size))
        probs = small[0].float().softmax(0).permute(1, 2, 0).contiguous().cpu().numpy()
        return labels, probs, self.label_set


def _at_size(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``logits`` (1, C, h, w) resized bilinearly to ``size`` (H, W); as they are when already that size."""
    if logits.shape[-2:] == size:
        return logits
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


class CamVidSegmenter(TorchSegmenter):
    """The shipped CamVid model. Images are used at their own size up to ``max_side`` px (larger ones shrink)."""

    name = "camvid"

    def __init__(self, weights: str | os.PathLike | None = None, *, device: str = "cpu",
                 kinds_override: str | Mapping[str, str] | None = None, max_side: int | None = 960) -> None:
        model, self.header = load_camvid_model(weights)
        made_for = (self.header.get("label_set", "camvid"), self.header.get("num_classes", CAMVID.num_classes))
        if made_for != ("camvid", CAMVID.num_classes):  # its labels would not be CamVid's ids
            raise WeightsError(f"{weights or default_weights_path()}: weights for label set {made_for[0]!r} with "
                               f"{made_for[1]} classes; the camvid segmenter needs weights for CamVid's "
                               f"{CAMVID.num_classes} classes")
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


class TorchvisionWrapper(nn.Module):
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

    Images are resized so the shorter side is ``size`` px (520, as torchvision's weights were made) and the
    longer at most twice that (torchvision's ``Resize(max_size=)``: a 2x600 strip was a 520x156000 network input,
    out of memory; a frame up to 2:1 keeps its 520 px, the network input at most 520x1040 as the memory check's
    measurements, made at 16:9, nearly are). A model with another number of classes needs ``label_set`` (a name
    or JSON file) that fits it.
    """

    name = "torchvision"

    def __init__(self, weights: str | os.PathLike, *, device: str = "cpu",
                 kinds_override: str | Mapping[str, str] | None = None,
                 label_set: str | LabelSet | None = None, size: int = 520) -> None:
        if not str(weights):
            raise InputError("torchvision backend needs a weights file: --backend torchvision:PATH")
        path = Path(weights)
        sd = load_torch_file(path, "torchvision weights")
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
                               f"{', '.join(_TV_ARCHES)}; semflow's own weights go with camvid:PATH)") from None
        import torchvision.models.segmentation as tvseg

        with torch.random.fork_rng(devices=[]):  # (random initialisation, replaced by the weights)
            model = getattr(tvseg, arch)(weights=None, weights_backbone=None, num_classes=n, aux_loss=aux)
        try:
            model.load_state_dict(sd, strict=True)
        except RuntimeError as exc:
            raise WeightsError(f"{path}: weights do not fit {arch}: {reason(exc)}") from None
        if label_set is None:
            if n != VOC.num_classes:
                raise InputError(f"{path}: {arch} has {n} classes; name their label set (--label-set, a .json file)")
            ls = VOC
        else:
            ls = get_label_set(label_set)
            if ls.num_classes != n:
                raise InputError(f"label set {ls.name!r} has {ls.num_classes} classes, the model {n}")
        self.arch = arch
        super().__init__(TorchvisionWrapper(model), ls.with_kinds(kinds_override), device, max_side=2 * size,
                         min_side=size)
