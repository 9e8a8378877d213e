"""The CLIP prior for one frame: regions of the backbone's labels, CLIP's opinion of each, fused.

1. Regions: connected components of the backbone's label map (8-connected, one label each,
   :func:`semflow.segmentation.regions.find_regions`), at least ``min_area`` pixels; the
   ``max_regions`` largest are scored, the others keep the backbone's label.
2. CLIP probabilities per region: the region's pixels are cut out on a square canvas filled with
   CLIP's mean colour (:func:`masked_crops`), encoded by the image tower, compared by cosine with one
   text embedding per class (:mod:`.cache`) and turned into probabilities by a softmax at CLIP's
   learned temperature (``logit_scale``).
3. Fusion per region by the rule of :mod:`.fusion`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np
import torch

from semflow.errors import InputError
from semflow.segmentation.clip.cache import class_text_embeddings
from semflow.segmentation.clip.fusion import JointClasses, PriorResult, RegionDecision, fuse_region
from semflow.segmentation.clip.loading import ClipModel, load_clip_model
from semflow.segmentation.clip.prompts import (
    DEFAULT_PRIOR_CLASSES,
    PROMPT_TEMPLATES,
    PriorClass,
    parse_prior_classes,
)
from semflow.segmentation.clip.spec import ClipPriorSpec
from semflow.segmentation.regions import Box, Region, find_regions


def masked_crops(image: np.ndarray, regions: Sequence[Region], *, size: tuple[int, int],
                 mean: Sequence[float], std: Sequence[float], margin: float = 0.1) -> torch.Tensor:
    """CLIP inputs (R, 3, H, W) float32, normalised: each region on a square canvas of CLIP's mean colour.

    The canvas is the region's box grown by ``margin`` on each side and made square; pixels outside
    the region (and outside the image) take the mean colour, which normalises to zero.
    """
    fill = np.asarray(mean, np.float32) * 255.0
    crops = np.empty((len(regions), size[0], size[1], 3), np.float32)
    for i, region in enumerate(regions):
        box = Box(*region.box)
        side = int(np.ceil(max(box.width, box.height) * (1.0 + 2.0 * margin))) + 1
        ox, oy = (side - box.width) // 2, (side - box.height) // 2
        canvas = np.empty((side, side, 3), np.float32)
        canvas[:] = fill
        patch = canvas[oy:oy + box.height, ox:ox + box.width]
        patch[region.mask] = image[box.slices][region.mask]
        interp = cv2.INTER_AREA if side > max(size) else cv2.INTER_CUBIC
        crops[i] = cv2.resize(canvas, (size[1], size[0]), interpolation=interp)
    batch = torch.from_numpy(crops).permute(0, 3, 1, 2).div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (batch - m) / s


class ClipPrior:
    """Zero-shot CLIP labels per region, fused with a backbone's probabilities.

    model_name: an open_clip architecture (``ViT-B-32``) or config JSON path; weights: the user's
    checkpoint file. classes: :class:`PriorClass` list, spec string or file (default: common things,
    planes and stuff). weight: ``w`` of the fusion rule; backbone_confidence: ``tau``. min_area,
    max_regions: which regions are scored (min_area None: 0.2% of the image). cache_dir: where text
    embeddings are cached (default :func:`~semflow.segmentation.clip.cache.default_cache_dir`).
    """

    def __init__(self, model_name: str = "ViT-B-32", weights: str | os.PathLike | None = None, *,
                 classes: str | os.PathLike | Sequence[PriorClass] | None = None,
                 templates: Sequence[str] = PROMPT_TEMPLATES, weight: float = 0.5,
                 backbone_confidence: float = 0.5, min_area: int | None = None, max_regions: int = 24,
                 margin: float = 0.1, device: str | torch.device = "cpu",
                 cache_dir: str | os.PathLike | None = None, clip: ClipModel | None = None):
        if not 0.0 <= weight <= 1.0:
            raise InputError(f"prior weight must be in [0, 1], got {weight}")
        self.classes = DEFAULT_PRIOR_CLASSES if classes is None else parse_prior_classes(classes)
        self.templates = tuple(templates)
        self.weight = float(weight)
        self.backbone_confidence = float(backbone_confidence)
        self.min_area = min_area
        self.max_regions = int(max_regions)
        self.margin = float(margin)
        self.clip = clip if clip is not None else load_clip_model(model_name, weights, device=device)
        self.text = torch.from_numpy(class_text_embeddings(
            self.clip, [c.name for c in self.classes], templates=self.templates, cache_dir=cache_dir))

    @classmethod
    def from_spec(cls, spec: ClipPriorSpec, *, device: str | torch.device = "cpu",
                  cache_dir: str | os.PathLike | None = None) -> ClipPrior:
        """The prior ``spec`` describes, its model loaded on ``device``."""
        return cls(spec.model, spec.weights, classes=spec.classes, weight=spec.weight,
                   backbone_confidence=spec.backbone_confidence, min_area=spec.min_area,
                   max_regions=spec.max_regions, device=device, cache_dir=cache_dir)

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    def classify(self, image: np.ndarray, regions: Sequence[Region]) -> np.ndarray:
        """CLIP's probabilities (R, K) float32 over the prior classes for each region of ``image``."""
        if not regions:
            return np.zeros((0, len(self.classes)), np.float32)
        batch = masked_crops(image, regions, size=self.clip.image_size, mean=self.clip.mean, std=self.clip.std,
                             margin=self.margin)
        features = self.clip.encode_images(batch)
        logits = self.clip.logit_scale * features @ self.text.T
        return torch.softmax(logits, dim=-1).numpy().astype(np.float32)

    def apply(self, image: np.ndarray, probs: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
              kinds: dict[str, str], void_id: int | None = None) -> PriorResult:
        """Fuse CLIP's opinion into a backbone's segmentation of ``image`` (uint8 RGB (H, W, 3)).

        probs: (H, W, C) float32 backbone probabilities; labels: (H, W) backbone ids; class_names,
        kinds, void_id: the backbone's label set. Returns labels and probs over the joint classes.
        """
        h, w = labels.shape
        if image.shape[:2] != (h, w) or probs.shape[:2] != (h, w):
            raise InputError(f"image {image.shape[:2]}, probs {probs.shape[:2]} and labels {labels.shape} differ in size")
        if probs.shape[2] < len(class_names) - (1 if void_id == len(class_names) - 1 else 0):
            raise InputError(f"probs have {probs.shape[2]} channels for {len(class_names)} classes")
        joint = JointClasses.build(class_names, kinds, void_id, self.classes)
        min_area = self.min_area if self.min_area is not None else max(1, int(0.002 * h * w))
        regions = find_regions(labels, min_area=min_area)
        regions.sort(key=lambda r: -r.area)  # stable: ties keep class, then raster order
        regions = regions[:self.max_regions]
        p_clip = self.classify(image, regions)
        out_labels = labels.astype(np.uint8, copy=True)
        out_probs = np.zeros((h, w, len(joint.names)), np.float32)
        out_probs[..., :probs.shape[2]] = probs
        decisions = []
        for region, pc in zip(regions, p_clip, strict=True):
            rows_cols, backbone_id = region.slices, region.class_id
            pb = probs[rows_cols][region.mask].mean(axis=0)
            label, kind, _, kind_probs = fuse_region(pb, pc, joint, backbone_id, weight=self.weight,
                                                         backbone_confidence=self.backbone_confidence)
            clip_joint = np.zeros(len(joint.names), np.float32)
            np.add.at(clip_joint, joint.clip_to_joint, pc)
            view = out_probs[rows_cols]
            pixels = view[region.mask]
            void_mass = np.zeros(len(pixels), np.float32)
            if joint.void_id is not None and joint.void_id < len(pb):  # the rule per pixel: void's mass goes to CLIP
                void_mass = pixels[:, joint.void_id].copy()
                pixels[:, joint.void_id] = 0.0
            w_px = self.weight + (1.0 - self.weight) * void_mass
            view[region.mask] = (1.0 - self.weight) * pixels + w_px[:, None] * clip_joint
            out_labels[rows_cols][region.mask] = label
            top = int(np.argmax(pc))
            is_void = joint.void_id is not None and backbone_id == joint.void_id
            backbone_name = "void" if is_void or backbone_id >= len(joint.names) else joint.names[backbone_id]
            decisions.append(RegionDecision(
                box=Box(*region.box), area=region.area, backbone_label=backbone_name,
                backbone_score=float(pb[backbone_id]) if backbone_id < len(pb) else 0.0,
                clip_label=self.classes[top].name, clip_score=float(pc[top]), label=joint.names[label], kind=kind,
                kind_probs=kind_probs, changed=label != backbone_id, label_id=label, backbone_id=backbone_id,
            ))
        return PriorResult(out_labels, out_probs, joint, decisions)
