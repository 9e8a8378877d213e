"""The registry of segmentation backends: :func:`get_segmenter` builds one by name.

Backends (names for :func:`get_segmenter` and ``semflow segment --backend``):

- ``camvid`` (default): the shipped EfficientNet-Lite0 + FPN model, ``models/camvid_lite0_fpn.pt``,
  CamVid's 11 classes. ``camvid:PATH`` loads another weights file of the same format.
- ``torchvision:PATH``: a torchvision DeepLabV3 / LRASPP / FCN ``state_dict`` file that the user names
  (the architecture is read from the file); 21 outputs are PASCAL VOC's classes.
- ``masks:PATH``: user-given label PNGs, a folder (``<image stem>.png`` or ``NNNNNN.png`` per video
  frame) or one PNG for every frame, in the label set named by ``label_set`` (default ``camvid``).

Any of them can be put behind the CLIP prior (``prior=ClipPriorSpec(...)``). The segmenters live in
:mod:`.base` (the interface), :mod:`.torch_backends`, :mod:`.masks` and :mod:`.clip.segmenter`; their
names are re-exported here. Nothing is ever downloaded: every weights file is a local file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from semflow.errors import InputError
from semflow.segmentation.base import Segmentation, Segmenter
from semflow.segmentation.clip.prior import ClipPrior
from semflow.segmentation.clip.segmenter import PriorSegmenter
from semflow.segmentation.clip.spec import ClipPriorSpec
from semflow.segmentation.labels import LabelSet
from semflow.segmentation.masks import MaskSegmenter, read_label_map
from semflow.segmentation.spec_check import check_camvid_label_set
from semflow.segmentation.torch_backends import (
    CamVidSegmenter,
    TorchSegmenter,
    TorchvisionSegmenter,
    default_weights_path,
    detect_torchvision_arch,
    fold_batchnorm,
    load_camvid_model,
)

__all__ = ["CamVidSegmenter", "MaskSegmenter", "PriorSegmenter", "Segmentation", "Segmenter", "TorchSegmenter",
           "TorchvisionSegmenter", "backend_factory", "default_weights_path", "detect_torchvision_arch", "fold_batchnorm",
           "get_segmenter", "list_backends", "load_camvid_model", "read_label_map", "register_backend"]

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
                  label_set: str | LabelSet | None = None, prior: ClipPriorSpec | None = None) -> Segmenter:
    """A segmenter by backend spec: ``camvid``, ``camvid:PATH``, ``torchvision:PATH``, ``masks:PATH``.

    ``kinds_override`` changes the class -> kind table ("Tree:plane,Car:thing"); ``label_set`` is the
    set user-given masks use (name or JSON file; default camvid). With a ``prior``, the backend is
    wrapped in that CLIP prior (a :class:`PriorSegmenter`, its CLIP model on ``device``).
    """
    spec = str(name)
    backend, _, arg = spec.partition(":")
    arg = os.path.expanduser(arg)  # (the shell leaves "~" after "camvid:" as it is; --clip-weights expands it)
    factory = backend_factory(spec)
    if prior is not None and not isinstance(prior, ClipPriorSpec):
        raise InputError(f"prior must be a ClipPriorSpec, not {type(prior).__name__}")
    clip = None if prior is None else ClipPrior.from_spec(prior, device=device)  # its errors come first
    segmenter = factory(arg, device=device, kinds_override=kinds_override, label_set=label_set)
    return segmenter if clip is None else PriorSegmenter(segmenter, clip)


def backend_factory(spec: str) -> Callable[..., Segmenter]:
    """The factory registered for ``spec``'s backend (``backend`` or ``backend:arg``); InputError naming the
    known ones for another."""
    factory = _BACKENDS.get(spec.partition(":")[0].lower())
    if factory is None:
        raise InputError(f"unknown segmentation backend {spec!r}; known: "
                         f"{', '.join(list_backends())} (torchvision and masks take :PATH)")
    return factory


def _camvid(arg: str, *, device: str, kinds_override: Any, label_set: Any) -> Segmenter:
    check_camvid_label_set(label_set)
    return CamVidSegmenter(arg or None, device=device, kinds_override=kinds_override)


def _torchvision(arg: str, *, device: str, kinds_override: Any, label_set: Any) -> Segmenter:
    return TorchvisionSegmenter(arg, device=device, kinds_override=kinds_override, label_set=label_set)


def _masks(arg: str, *, device: str, kinds_override: Any, label_set: Any) -> Segmenter:
    return MaskSegmenter(arg, label_set=label_set, kinds_override=kinds_override, device=device)


register_backend("camvid", _camvid)
register_backend("torchvision", _torchvision)
register_backend("masks", _masks)
