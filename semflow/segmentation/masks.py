"""User-given segmentations: label PNGs in a folder (one per image or video frame) or one PNG for all.
Palette PNGs (PASCAL VOC masks) give their palette indices as class ids.

Label maps of the frames as given fit frames that ``--max-side`` shrank: they are shrunk with them
(the class at each shrunk pixel's centre, as the frames' area shrink centres it)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from semflow.errors import InputError
from semflow.io.images import IMAGE_EXTENSIONS, read_image_raw
from semflow.io.video import shrunk_to
from semflow.segmentation.base import Segmentation, Segmenter, check_image
from semflow.segmentation.labels import LabelSet, get_label_set


def read_label_map(path: Path) -> np.ndarray:
    """A label PNG (one channel, three equal channels, or a palette PNG such as a PASCAL VOC mask, whose
    palette indices are the ids) as an integer array (H, W), upright as its EXIF orientation says."""
    if not path.is_file():
        raise InputError(f"{path}: no such label file")
    raw = read_image_raw(path, labels=True)
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
            raise InputError("the masks segmenter needs a label PNG or a folder of them: --segmenter masks:PATH")
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
        if isinstance(key, int):
            names = [f"{key:06d}.png"]
        else:  # an image's stem ("cam.left": its own map, never cam.png's), or a file name ("a.jpg": a.png)
            named = Path(str(key))
            names = [f"{key}.png", *([f"{named.stem}.png"] if named.suffix.lower() in IMAGE_EXTENSIONS else [])]
        for n in names:
            if (self.source / n).is_file():
                return self.source / n
        where = " (frames are named by their 0-based position in the video)" if isinstance(key, int) else ""
        raise InputError(f"{self.source}: no label map for {key!r} (expected {names[0]}){where}")

    def predict(self, image: np.ndarray, key: str | int | None = None) -> Segmentation:
        image = check_image(image)
        path = self.path_for(key)
        raw = read_label_map(path)
        ls = self.label_set
        if raw.shape != image.shape[:2] and shrunk_to(raw.shape, image.shape[:2]):
            # (INTER_NEAREST_EXACT samples each shrunk pixel's centre; INTER_NEAREST its top-left full pixel,
            # which moved every class boundary down and right by up to half a shrunk pixel)
            raw = cv2.resize(raw, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST_EXACT)
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
