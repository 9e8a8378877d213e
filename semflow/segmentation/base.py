"""What a segmenter is: the :class:`Segmentation` of one image and the :class:`Segmenter` interface.

Backends implement :class:`Segmenter`: the shipped CamVid model and torchvision models in
:mod:`.torch_backends`, user-given masks in :mod:`.masks`, the CLIP prior's wrapper in
:mod:`.clip.segmenter`; :mod:`.backends` is the registry that builds them by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from semflow.io.images import to_rgb_uint8
from semflow.segmentation.instances import extract_instances
from semflow.segmentation.labels import LabelSet
from semflow.segmentation.regions import Region


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

    def predict_small_probs(self, image: np.ndarray, size: tuple[int, int]
                            ) -> tuple[np.ndarray, np.ndarray, LabelSet]:
        """The labels (H, W) uint8 of :meth:`predict`, its class probabilities at ``size`` (h, w)
        as (h, w, C) float32, and the label set (for filtering the labels over time at a small size)."""
        seg = self.predict(image)
        probs = np.asarray(seg.probs, np.float32)
        if probs.shape[:2] != tuple(size):  # (OpenCV takes at most 128 channels at a time: a longer class list
            probs = np.concatenate([cv2.resize(np.ascontiguousarray(probs[..., i:i + 128]), (size[1], size[0]),
                                               interpolation=cv2.INTER_AREA).reshape(*size, -1)
                                    for i in range(0, probs.shape[2], 128)], axis=2)  # was a cv2.error)
        return seg.labels, probs, seg.label_set


def check_image(image: np.ndarray) -> np.ndarray:
    """``image`` as uint8 RGB (H, W, 3): grey, RGBA, 16-bit and float [0, 1] images are converted as the
    flow methods convert them (:func:`semflow.io.images.to_rgb_uint8`)."""
    return to_rgb_uint8(image, name="segmenter input")
