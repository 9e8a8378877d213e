"""Hard synthetic scenes: things of one class that touch or overlap with different motions.

Two kinds, both rendered by :func:`semflow.synthetic.render_scene` (so flow, labels, instances and
occlusion are exact):

- ``street``: a row of 2-3 parked cars (rounded boxes, touching or overlapping) that move with the
  background (each one by the background homography's local affine approximation), a car passing in
  front of them at 15-30 px, and, in every other scene, a second one behind them going the other way.
  All cars touch, so their ``Car`` pixels form one connected region holding several motions.
- ``group``: 3-4 pedestrians (``Pedestrian``) side by side, overlapping, walking the same way (left
  or right, +-25 degrees) at their own speeds of 15-30 px (a pair sometimes walks together, with one
  motion). Groups that cross each other hide most of one another in frame t+1: not made here.

Frames default to 480x360 (CamVid's size). Scene ``i`` of :func:`write_hard_dataset` is of kind
``HARD_KINDS[i % 2]`` with seed ``seed + 1000 * i``.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from semflow.synthetic import (
    CAR_ID,
    PEDESTRIAN_ID,
    SceneObject,
    SyntheticScene,
    random_affine,
    random_homography,
    render_scene,
    write_scene,
)

HARD_KINDS = ("street", "group")


def local_affine(homography: np.ndarray, center: tuple[float, float], radius: float = 20.0) -> np.ndarray:
    """The affine map (2, 3) that agrees with ``homography`` at three points ``radius`` px around ``center``."""
    cx, cy = center
    src = np.float32([[cx - radius, cy - radius], [cx + radius, cy - radius], [cx, cy + radius]])
    pts = np.hstack([src, np.ones((3, 1), np.float32)]) @ homography.T
    dst = (pts[:, :2] / pts[:, 2:]).astype(np.float32)
    return cv2.getAffineTransform(src, dst).astype(np.float64)


def moving(center: tuple[float, float], rng: np.random.Generator, speed: tuple[float, float],
           heading: float) -> np.ndarray:
    """An affine motion about ``center``: a small rotation and scale change, then a translation of
    ``speed`` px (drawn uniformly from the range) in the direction ``heading`` (degrees, 0 = right)."""
    a = random_affine(center, rng, max_shift=0.0, max_rotation=2.0, max_scale=0.03)
    length = rng.uniform(*speed)
    t = np.deg2rad(heading)
    a[:, 2] += length * np.array([np.cos(t), np.sin(t)])
    return a


class StreetRow(NamedTuple):
    """The parked row of a street: its height ``y`` (px), the cars' semi-axes ``a`` x ``b``, how many are
    ``parked``, the distance ``gap`` between neighbours' centres and the first one's ``x_first``."""

    y: float
    a: float
    b: float
    parked: int
    gap: float
    x_first: float

    def cars(self, rng: np.random.Generator) -> list[SceneObject]:
        """The parked cars, left to right, each a rounded box at rest (identity ``affine``)."""
        cars = []
        for i in range(self.parked):
            center = (float(self.x_first + i * self.gap), float(self.y + rng.uniform(-0.1, 0.1) * self.b))
            axes = (self.a * rng.uniform(0.9, 1.05), self.b * rng.uniform(0.9, 1.05))
            cars.append(SceneObject(center, axes, np.eye(2, 3), angle=float(rng.uniform(-3, 3)), class_id=CAR_ID,
                                    power=4.0))
        return cars


def street_row(height: int, width: int, rng: np.random.Generator, *, lowest: float = 0.65) -> StreetRow:
    """A random parked row: 2-3 cars at between half and ``lowest`` of the frame's height, neighbours
    overlapping (their centres less than 2a apart)."""
    y = rng.uniform(0.5, lowest) * height
    a = rng.uniform(0.11, 0.14) * width
    b = a * rng.uniform(0.42, 0.5)
    parked = int(rng.integers(2, 4))
    gap = rng.uniform(1.75, 1.95) * a  # less than 2a: neighbours overlap
    x_first = rng.uniform(a + 4, max(a + 4, width - a - 4 - gap * (parked - 1)))
    return StreetRow(y, a, b, parked, gap, x_first)


def street_objects(height: int, width: int, homography: np.ndarray, rng: np.random.Generator,
                   speed: tuple[float, float], far_car: bool) -> list[SceneObject]:
    """Cars of a street scene, back to front: an optional far moving car, the parked row, a passing car."""
    row = street_row(height, width, rng)
    row_y, a, b, parked, gap, x_first = row
    direction = 0.0 if rng.uniform() < 0.5 else 180.0
    objects = []
    if far_car:
        center = (float(rng.uniform(0.3, 0.7) * width), float(row_y - rng.uniform(0.85, 1.1) * b))
        axes = (a * rng.uniform(0.85, 1.0), b * rng.uniform(0.85, 1.0))
        objects.append(SceneObject(center, axes, moving(center, rng, speed, 180.0 - direction + rng.uniform(-8, 8)),
                                   angle=float(rng.uniform(-3, 3)), class_id=CAR_ID, power=4.0))
    objects += [replace(car, affine=local_affine(homography, car.center)) for car in row.cars(rng)]
    # The passing car overlaps the row from in front (lower in the image), beside one of the parked cars.
    k = int(rng.integers(0, parked))
    center = (float(np.clip(x_first + k * gap + rng.uniform(-0.5, 0.5) * a, 1.1 * a, width - 1.1 * a)),
              float(row_y + rng.uniform(0.9, 1.3) * b))
    objects.append(SceneObject(center, (a * rng.uniform(0.95, 1.1), b * rng.uniform(0.95, 1.1)),
                               moving(center, rng, speed, direction + rng.uniform(-10, 10)),
                               angle=float(rng.uniform(-4, 4)), class_id=CAR_ID, power=4.0))
    return objects


def group_objects(height: int, width: int, rng: np.random.Generator, speed: tuple[float, float]
                  ) -> list[SceneObject]:
    """3-4 overlapping pedestrians side by side, back to front (the lower one is in front), walking the
    same way (within +-25 degrees) at their own speeds."""
    count = int(rng.integers(3, 5))
    a = rng.uniform(0.03, 0.04) * width
    b = rng.uniform(0.12, 0.16) * height
    spacing = rng.uniform(1.4, 1.8) * a
    x0 = rng.uniform(0.25, 0.75) * width - 0.5 * spacing * (count - 1)
    y0 = rng.uniform(0.4, 0.6) * height
    people = []
    motion = None
    way = 0.0 if rng.uniform() < 0.5 else 180.0
    for i in range(count):
        center = (float(x0 + i * spacing), float(y0 + rng.uniform(-0.12, 0.12) * b))
        if motion is None or rng.uniform() > 0.3:  # else this one walks with the previous one
            motion = moving(center, rng, speed, way + rng.uniform(-25, 25))
        people.append(SceneObject(center, (a * rng.uniform(0.9, 1.1), b * rng.uniform(0.9, 1.1)), motion.copy(),
                                  angle=float(rng.uniform(-6, 6)), class_id=PEDESTRIAN_ID, power=2.5))
    people.sort(key=lambda o: o.center[1])
    return people


def make_hard_scene(height: int = 360, width: int = 480, *, seed: int = 0, kind: str = "street",
                    speed: tuple[float, float] = (15.0, 30.0), background_shift: float = 6.0,
                    far_car: bool | None = None) -> SyntheticScene:
    """A hard scene of ``kind`` (``"street"`` or ``"group"``, see the module docstring).

    ``speed``: range of the moving things' translation (px); ``background_shift`` bounds the background
    homography's corner motion (px); ``far_car`` (street only): add the car behind the parked row
    (default: drawn at random, one scene in two).
    """
    if kind not in HARD_KINDS:
        raise ValueError(f"unknown hard scene kind {kind!r}; use one of {', '.join(HARD_KINDS)}")
    rng = np.random.default_rng(seed)
    homography = random_homography(width, height, rng, shift=background_shift)
    if kind == "street":
        far = bool(rng.uniform() < 0.5) if far_car is None else far_car
        objects = street_objects(height, width, homography, rng, speed, far)
    else:
        objects = group_objects(height, width, rng, speed)
    return render_scene(height, width, homography, objects, seed=seed + 1)


def write_hard_dataset(root: str | os.PathLike, count: int = 8, *, height: int = 360, width: int = 480,
                       seed: int = 0) -> list[Path]:
    """Write ``count`` hard scenes (kinds alternating) in :func:`semflow.synthetic.write_dataset`'s
    layout, readable as ``--dataset synthetic``. Returns the scene folders."""
    return [write_scene(Path(root) / f"scene_{i:03d}",
                        make_hard_scene(height, width, seed=seed + 1000 * i, kind=HARD_KINDS[i % 2]))
            for i in range(count)]
