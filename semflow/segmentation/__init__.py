"""Segmentation: what each region of a frame is, and which kind of motion model it gets.

    from semflow.segmentation import get_segmenter
    seg = get_segmenter("camvid").predict(image)      # image: uint8 RGB (H, W, 3)
    seg.probs (H, W, C) float32, seg.labels (H, W) uint8, seg.label_set.class_names,
    seg.kind_map() (H, W) uint8 (stuff 0, plane 1, thing 2), seg.instances (cleaned things)

Label sets and kind tables live in :mod:`.labels`, regions (one Region type, Box, find_regions,
fill_holes) in :mod:`.regions`, thing instances in :mod:`.instances`, the segmenter interface in
:mod:`.base`, backends (``camvid``, ``torchvision:PATH``, ``masks:PATH``) in :mod:`.torch_backends` and
:mod:`.masks` with their registry :mod:`.backends`, the CLIP prior in :mod:`.clip`
(``get_segmenter(name, prior=ClipPriorSpec(...))``), the ``segment`` command's logic in :mod:`.segment`.
Torch is imported only when a backend is used.
"""

from __future__ import annotations

from typing import Any

from semflow.segmentation.clip.spec import ClipPriorSpec
from semflow.segmentation.instances import extract_instances
from semflow.segmentation.labels import (
    CAMVID,
    KIND_CODES,
    KINDS,
    VOC,
    LabelSet,
    get_label_set,
    list_label_sets,
    parse_kinds,
    register_label_set,
)
from semflow.segmentation.regions import Box, Region, fill_holes, find_regions

_LAZY = {
    "Segmentation": "backends", "Segmenter": "backends", "get_segmenter": "backends",
    "register_backend": "backends", "list_backends": "backends", "CamVidSegmenter": "backends",
    "TorchvisionSegmenter": "backends", "MaskSegmenter": "backends", "load_camvid_model": "backends",
    "default_weights_path": "backends", "PriorSegmenter": "backends", "segment_inputs": "segment",
}

__all__ = ["CAMVID", "KIND_CODES", "KINDS", "VOC", "Box", "ClipPriorSpec", "LabelSet", "Region", "extract_instances",
           "fill_holes", "find_regions", "get_label_set", "list_label_sets", "parse_kinds", "register_label_set",
           *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"semflow.segmentation.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'semflow.segmentation' has no attribute {name!r}")
