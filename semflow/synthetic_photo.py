"""Layered street scenes from real photographs: the hard case of issue 15 with real texture.

The noise-textured hard scenes (:mod:`semflow.synthetic_hard`) have exact layers but no real texture;
weak texture, shadows, glass and repeated structure are what make real street frames hard. Here the
texture is a real labelled street frame (CamVid), and the flow is still exact, because every layer
is moved by a known map:

- the background, the whole frame with its own parked cars and pedestrians, by a mild homography
  (frame 2 is frame 1 warped by it; what comes in at the borders is mirrored);
- each cut-out (a connected Car or Pedestrian region of another labelled frame, holes filled,
  rescaled to the height of the thing it is pasted beside, but at least ``min_height`` of the frame's
  height and at most twice its own) by an affine motion about its centre: a
  translation of ``speed`` px along the street (within 10 degrees of left or right), a rotation
  within 3 degrees and a scale within 3 %.

A cut-out is pasted overlapping a thing of its class already in the frame, in front of it (its
bottom lower in the image), so that the two touch and move differently: a car passing parked
cars, a pedestrian passing standing ones. Where the frame has no such thing it goes on the road.
The least height is there because a distant car (300-1100 px) moving 15-30 px moves more than its
own width: in a first draft without it every method here missed such cars whole (EPE 23-28 px), a
case the issue does not ask about (its cars are 8-11 thousand px, moving 10-25 px).
Labels are the frame's own with the cut-outs drawn over; instances number the frame's thing
regions (each connected region one instance, moving with the background) and then the cut-outs,
in front; occluded is as in :func:`semflow.synthetic.render_scene`.

The caller gives the frames (:func:`read_camvid` reads CamVid's layout, e.g. ``../shared/data/camvid``);
nothing here downloads. Images are uint8 RGB (H, W, 3), labels uint8 (H, W) CamVid ids.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage

from semflow.errors import InputError
from semflow.segmentation.labels import CAMVID
from semflow.synthetic import (
    CAR_ID,
    PEDESTRIAN_ID,
    ROAD_ID,
    SyntheticScene,
    apply_affine,
    apply_homography,
    hidden_in_frame2,
    random_homography,
    to_uint8,
)

THING_IDS = tuple(i for i, name in enumerate(CAMVID.class_names) if CAMVID.kinds.get(name) == "thing")
"""CamVid ids whose regions are things (Car, Pedestrian, Bicyclist)."""


@dataclass(frozen=True)
class CutOut:
    """One thing cut out of a labelled frame: ``image`` uint8 RGB (h, w, 3) and ``mask`` bool (h, w)
    over its bounding box, its CamVid ``class_id``, and where it came from (``source``)."""

    image: np.ndarray
    mask: np.ndarray
    class_id: int
    source: str = ""


def read_camvid(root: str | os.PathLike, split: str = "val") -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(name, image, labels) of every frame of a CamVid split (``train`` or ``val``), sorted by name;
    ``root`` holds ``<split>/`` and ``<split>annot/``. A frame without a readable label file of its name is an
    :class:`~semflow.errors.InputError` naming that file (CamVid labels every frame of its splits). Label files
    are read as ``--segmenter masks:`` reads them: a palette PNG's indices are its ids (OpenCV read its colours'
    grey levels), a colour image (CamVid's colour-coded labels) is refused."""
    from semflow.io.images import read_image
    from semflow.segmentation.masks import read_label_map

    root = Path(root)
    for path in sorted((root / split).glob("*.png")):
        annot = root / f"{split}annot" / path.name
        if not annot.is_file():
            raise InputError(f"{annot}: no such file (the labels of {path})")
        try:
            labels = read_label_map(annot)
        except InputError as error:  # (it names annot)
            raise InputError(f"{error} (the labels of {path})") from None
        yield path.stem, read_image(path), labels


def cut_outs(image: np.ndarray, labels: np.ndarray, *, class_ids: tuple[int, ...] = (CAR_ID, PEDESTRIAN_ID),
             min_area: int = 500, max_share: float = 0.08, source: str = "") -> list[CutOut]:
    """The connected regions (8-neighbour) of ``class_ids`` in ``labels`` (H, W) that can be pasted
    whole: at least ``min_area`` px, at most ``max_share`` of the frame, not touching its border
    (a thing cut by the border would paste with a straight edge)."""
    h, w = labels.shape
    found = []
    for class_id in class_ids:
        regions, count = ndimage.label(labels == class_id, structure=np.ones((3, 3)))
        for k, box in enumerate(ndimage.find_objects(regions), start=1):
            if box is None:
                continue
            rows, cols = box
            if rows.start == 0 or cols.start == 0 or rows.stop == h or cols.stop == w:
                continue
            mask = ndimage.binary_fill_holes(regions[box] == k)
            if not min_area <= mask.sum() <= max_share * h * w:
                continue
            found.append(CutOut(image[box].copy(), mask, class_id, source))
    return found


def _regions(labels: np.ndarray, class_ids: tuple[int, ...]) -> np.ndarray:
    """int32 (H, W): each connected region (8-neighbour) of ``class_ids`` numbered from 1, 0 elsewhere."""
    out = np.zeros(labels.shape, np.int32)
    count = 0
    for class_id in class_ids:
        regions, n = ndimage.label(labels == class_id, structure=np.ones((3, 3)))
        out[regions > 0] = regions[regions > 0] + count
        count += n
    return out


def _placement(labels: np.ndarray, cut: CutOut, rng: np.random.Generator, min_height: float
                ) -> tuple[float, float, float]:
    """Where a cut-out goes, as (x, y, scale): its centre and the factor its size is multiplied by.

    Beside a thing of its class (one of the largest three regions): as tall as that thing (but at least
    ``min_height`` px, at most twice the cut-out's own size), overlapping it by a third to two thirds of
    its width, its bottom a little lower (in front); else on the road."""
    h, w = labels.shape
    ch, cw = cut.mask.shape
    regions, count = ndimage.label(labels == cut.class_id, structure=np.ones((3, 3)))
    boxes = [b for b in ndimage.find_objects(regions) if b is not None]
    boxes = [b for b in boxes if (b[0].stop - b[0].start) >= 12]
    if boxes:
        boxes.sort(key=lambda b: -(b[0].stop - b[0].start) * (b[1].stop - b[1].start))
        rows, cols = boxes[int(rng.integers(0, min(3, len(boxes))))]
        scale = float(np.clip((rows.stop - rows.start) / ch * rng.uniform(0.9, 1.15), min_height / ch, 2.0))
        width = cw * scale
        side = 1.0 if rng.uniform() < 0.5 else -1.0
        overlap = rng.uniform(1 / 3, 2 / 3) * min(width, cols.stop - cols.start)
        x = (cols.stop - overlap + width / 2) if side > 0 else (cols.start + overlap - width / 2)
        y = rows.stop + rng.uniform(0.05, 0.25) * ch * scale - ch * scale / 2
    else:
        road = np.argwhere(labels == ROAD_ID)
        scale = float(np.clip(rng.uniform(0.8, 1.2), min_height / ch, 2.0))
        if len(road):
            y, x = road[int(rng.integers(0, len(road)))].astype(float)
        else:
            y, x = rng.uniform(0.5, 0.8) * h, rng.uniform(0.2, 0.8) * w
        y -= ch * scale / 2
    x = float(np.clip(x, 0.1 * w, 0.9 * w))
    y = float(np.clip(y, 0.1 * h, 0.9 * h))
    return x, y, scale


def _motion(center: tuple[float, float], rng: np.random.Generator, speed: tuple[float, float]) -> np.ndarray:
    """An affine map (2, 3) about ``center``: a translation of ``speed`` px within 10 degrees of left or
    right, a rotation within 3 degrees, a scale within 3 %."""
    angle = np.deg2rad((0.0 if rng.uniform() < 0.5 else 180.0) + rng.uniform(-10, 10))
    a = cv2.getRotationMatrix2D(center, float(rng.uniform(-3, 3)), float(1 + rng.uniform(-0.03, 0.03)))
    a = a.astype(np.float64)
    a[:, 2] += rng.uniform(*speed) * np.array([np.cos(angle), np.sin(angle)])
    return a


def _paste_map(cut: CutOut, x: float, y: float, scale: float) -> np.ndarray:
    """The affine map (2, 3) from the cut-out's own pixels to frame 1: scaled by ``scale``, centred on (x, y)."""
    ch, cw = cut.mask.shape
    return np.array([[scale, 0.0, x - scale * (cw - 1) / 2], [0.0, scale, y - scale * (ch - 1) / 2]])


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The affine map a after b, both (2, 3)."""
    return (np.vstack([a, [0, 0, 1]]) @ np.vstack([b, [0, 0, 1]]))[:2]


def _render(cut: CutOut, to_frame: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The cut-out mapped into a frame by ``to_frame`` (2, 3): float32 RGB (H, W, 3) and its mask (H, W)."""
    inverse = cv2.invertAffineTransform(to_frame)
    image = cv2.warpAffine(cut.image.astype(np.float32), inverse, (width, height),
                           flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    mask = cv2.warpAffine(cut.mask.astype(np.float32), inverse, (width, height),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT)
    return image, mask >= 0.5


def make_photo_scene(image: np.ndarray, labels: np.ndarray, pool: list[CutOut], *, seed: int = 0,
                     count: int = 2, speed: tuple[float, float] = (15.0, 30.0), min_height: float = 0.15,
                     background_shift: float = 6.0) -> SyntheticScene:
    """A frame pair from the labelled street frame ``image`` / ``labels`` with ``count`` cut-outs drawn
    from ``pool`` (see the module docstring). ``speed``: range of the cut-outs' translation (px);
    ``min_height``: the least height of a pasted cut-out, a share of the frame's (cut-outs that would
    need more than doubling are not drawn); ``background_shift`` bounds the background homography's
    corner motion (px)."""
    h, w = labels.shape
    pool = [c for c in pool if 2.0 * c.mask.shape[0] >= min_height * h]
    if not pool:
        raise ValueError(f"no cut-outs to paste at least {min_height:g} of the frame's height tall")
    rng = np.random.default_rng(seed)
    homography = random_homography(w, h, rng, shift=background_shift)
    y1, x1 = np.mgrid[0:h, 0:w].astype(np.float64)
    hx, hy = apply_homography(homography, x1, y1)
    flow = np.stack([hx - x1, hy - y1], axis=2)
    img1 = image.astype(np.float32)
    img2 = cv2.warpPerspective(img1, homography, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    labels = labels.copy()
    instances = _regions(labels, THING_IDS)
    layer1 = np.zeros((h, w), np.int32)  # 0: the background, k: cut-out k (in front of those before)
    layer2 = np.zeros((h, w), np.int32)
    next_instance = int(instances.max()) + 1
    for k in range(1, count + 1):
        cut = pool[int(rng.integers(0, len(pool)))]
        x, y, scale = _placement(labels, cut, rng, min_height * h)
        to_frame1 = _paste_map(cut, x, y, scale)
        motion = _motion((x, y), rng, speed)
        look1, inside1 = _render(cut, to_frame1, h, w)
        look2, inside2 = _render(cut, _compose(motion, to_frame1), h, w)
        img1[inside1], img2[inside2] = look1[inside1], look2[inside2]
        moved_x, moved_y = apply_affine(motion, x1, y1)
        flow[inside1] = np.stack([moved_x - x1, moved_y - y1], axis=2)[inside1]
        labels[inside1] = cut.class_id
        instances[inside1] = next_instance
        next_instance += 1
        layer1[inside1], layer2[inside2] = k, k

    return SyntheticScene(
        img1=to_uint8(img1),
        img2=to_uint8(img2),
        flow=flow.astype(np.float32),
        labels=labels,
        instances=instances,
        occluded=hidden_in_frame2(flow, layer1, layer2),
        homography=homography,
    )
