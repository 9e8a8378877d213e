"""Synthetic sequences with exact ground truth for every consecutive pair: the multi-frame version of
:mod:`semflow.synthetic`, so accuracy can be measured over a video, not only stability.

:func:`make_sequence`: a textured background plane seen by a smoothly moving camera (a homography that
is a smooth function of time: pan with acceleration, zoom, roll, a growing keystone) and elliptic
objects moving smoothly in front of it (similarities about their centres, with acceleration). Every
frame is rendered by inverse mapping from the same textures, so the flow of each pair, the labels, the
instance maps and the occlusion masks are exact.

:func:`make_street_sequence`: the hard street scene of :mod:`semflow.synthetic_hard` over time: a row of
parked cars that touch (moving with the background), a car passing in front of them at 15-30 px a frame
and, in one sequence of two, a car driving the other way behind the row, partly hidden by it.

:func:`camera_sequence`: a real image (and its label map) seen by a camera that pans and zooms over it:
a video whose labels are known in every frame (for segmentation stability and accuracy).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from semflow.synthetic import (
    CAR_ID,
    ROAD_ID,
    SceneObject,
    apply_homography,
    hidden_in_frame2,
    random_texture,
    sample_texture,
    to_uint8,
)
from semflow.synthetic_hard import street_row


@dataclass
class SyntheticSequence:
    """Frames and per-pair ground truth. ``frames[k]`` uint8 RGB (H, W, 3); ``flows[k]`` float32
    (H, W, 2) frame k -> k+1; ``labels[k]`` uint8 CamVid ids and ``instances[k]`` int32 (0 background,
    j for object j) of frame k; ``occluded[k]`` bool (H, W): frame-k pixels not visible in frame k+1.
    ``camera[k]`` (3, 3): background position of frame k relative to frame 0."""

    frames: list[np.ndarray]
    flows: list[np.ndarray]
    labels: list[np.ndarray]
    instances: list[np.ndarray]
    occluded: list[np.ndarray]
    camera: list[np.ndarray] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frames)


@dataclass
class Motion:
    """A smooth 2-D motion about ``center`` as a function of the frame index k (all per frame):
    translation ``velocity * k + acceleration * k^2 / 2`` (px), rotation ``spin * k`` (degrees), scale
    ``exp(zoom * k)``, and a keystone ``keystone * k`` (projective term, per px)."""

    center: tuple[float, float]
    velocity: tuple[float, float] = (0.0, 0.0)
    acceleration: tuple[float, float] = (0.0, 0.0)
    spin: float = 0.0
    zoom: float = 0.0
    keystone: float = 0.0

    def at(self, k: float) -> np.ndarray:
        """(3, 3) homography taking frame-0 coordinates to frame-k coordinates."""
        cx, cy = self.center
        t = np.asarray(self.velocity) * k + 0.5 * np.asarray(self.acceleration) * k * k
        a = np.deg2rad(self.spin * k)
        s = np.exp(self.zoom * k)
        to_origin = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]], np.float64)
        back = np.array([[1, 0, cx + t[0]], [0, 1, cy + t[1]], [0, 0, 1]], np.float64)
        rot = np.array([[s * np.cos(a), -s * np.sin(a), 0], [s * np.sin(a), s * np.cos(a), 0],
                        [0, self.keystone * k, 1]], np.float64)
        return back @ rot @ to_origin


def render_motion_sequence(height: int, width: int, camera: Motion, objects: list[tuple[SceneObject, Motion]],
                           *, frames: int, seed: int = 0) -> SyntheticSequence:
    """Render ``frames`` frames: the background moved by ``camera``, each object (its shape in frame-0
    coordinates; its ``affine`` is ignored) moved by its own :class:`Motion`, later objects in front."""
    rng = np.random.default_rng(seed)
    margin = int(max(height, width) * 0.75)
    size = (height + 2 * margin, width + 2 * margin)
    bg_tex = random_texture(*size, rng)
    obj_tex = [0.6 * random_texture(*size, rng) + 0.4 * rng.uniform(0, 255, 3).astype(np.float32) for _ in objects]
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)

    def layers(k: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame k's image (float) and its top layer per pixel (0 background, j object j)."""
        bx, by = apply_homography(np.linalg.inv(camera.at(k)), x, y)
        img = sample_texture(bg_tex, bx, by, margin)
        top = np.zeros((height, width), np.int32)
        for j, (obj, motion) in enumerate(objects, start=1):
            ox, oy = apply_homography(np.linalg.inv(motion.at(k)), x, y)
            inside = obj.mask(ox, oy)
            img[inside] = sample_texture(obj_tex[j - 1], ox, oy, margin)[inside]
            top[inside] = j
        return img, top

    motions = [camera] + [m for _, m in objects]
    rendered = [layers(k) for k in range(frames)]
    seq = SyntheticSequence([], [], [], [], [], [camera.at(k) for k in range(frames)])
    for k, (img, top) in enumerate(rendered):
        seq.frames.append(to_uint8(img))
        seq.instances.append(top)
        seq.labels.append(np.where(top > 0, CAR_ID, ROAD_ID).astype(np.uint8))
        if k + 1 == frames:
            break
        flow = np.zeros((height, width, 2), np.float64)
        for j, motion in enumerate(motions):
            step = motion.at(k + 1) @ np.linalg.inv(motion.at(k))
            nx, ny = apply_homography(step, x, y)
            mine = top == j
            flow[mine, 0] = (nx - x)[mine]
            flow[mine, 1] = (ny - y)[mine]
        seq.flows.append(flow.astype(np.float32))
        seq.occluded.append(hidden_in_frame2(flow, top, rendered[k + 1][1]))
    return seq


def random_camera(center: tuple[float, float], speed: float, rng: np.random.Generator) -> Motion:
    """A smooth camera motion about ``center``: a pan of up to ``speed`` px/frame with a gentle
    acceleration, a little zoom, roll and keystone."""
    return Motion(center, velocity=tuple(rng.uniform(-speed, speed, 2)),
                  acceleration=tuple(rng.uniform(-0.1, 0.1, 2) * speed),
                  spin=float(rng.uniform(-0.3, 0.3)), zoom=float(rng.uniform(-0.008, 0.008)),
                  keystone=float(rng.uniform(-2e-5, 2e-5)))


def make_sequence(frames: int = 8, height: int = 240, width: int = 320, *, seed: int = 0, num_objects: int = 2,
                  camera_speed: float = 3.0, object_speed: float = 4.0) -> SyntheticSequence:
    """A random smooth sequence: the camera pans at up to ``camera_speed`` px/frame (with a gentle
    acceleration, zoom, roll and keystone) and ``num_objects`` ellipses move at up to ``object_speed``
    px/frame relative to the image, turning and scaling slowly."""
    rng = np.random.default_rng(seed)
    camera = random_camera((width / 2.0, height / 2.0), camera_speed, rng)
    objects = []
    for _ in range(num_objects):
        c = (rng.uniform(0.25, 0.75) * width, rng.uniform(0.3, 0.7) * height)
        axes = (rng.uniform(0.08, 0.15) * width, rng.uniform(0.1, 0.18) * height)
        shape = SceneObject(c, axes, np.eye(2, 3), angle=float(rng.uniform(0, 180)))
        motion = Motion(c, velocity=tuple(rng.uniform(-object_speed, object_speed, 2)),
                        acceleration=tuple(rng.uniform(-0.1, 0.1, 2) * object_speed),
                        spin=float(rng.uniform(-1.5, 1.5)), zoom=float(rng.uniform(-0.01, 0.01)))
        objects.append((shape, motion))
    return render_motion_sequence(height, width, camera, objects, frames=frames, seed=seed + 1)


def _car(center: tuple[float, float], axes: tuple[float, float], rng: np.random.Generator) -> SceneObject:
    return SceneObject(center, axes, np.eye(2, 3), angle=float(rng.uniform(-3, 3)), class_id=CAR_ID, power=4.0)


def make_street_sequence(frames: int = 8, height: int = 360, width: int = 480, *, seed: int = 0,
                         speed: tuple[float, float] = (15.0, 30.0), camera_speed: float = 3.0,
                         far_car: bool | None = None) -> SyntheticSequence:
    """A street over ``frames`` frames, the hard case of issue 15 as a video: the camera moves smoothly
    (pan up to ``camera_speed`` px/frame with acceleration, zoom, roll, keystone); 2-3 parked cars in a
    row overlap their neighbours and move with the background; a car in front of the row passes at
    ``speed`` px/frame (drawn from the range) along it; with ``far_car`` (default: one sequence in two)
    a car behind the row drives the other way at its own such speed, partly hidden by the row. The
    moving cars start where they stay in view for most of the sequence. Instances: 1.. back to front."""
    rng = np.random.default_rng(seed)
    camera = random_camera((width / 2.0, height / 2.0), camera_speed, rng)
    row = street_row(height, width, rng, lowest=0.62)
    a, b = row.a, row.b
    way = 1.0 if rng.uniform() < 0.5 else -1.0

    def driving(y: float, direction: float) -> tuple[tuple[float, float], Motion]:
        """A car's frame-0 centre (at height y) and its motion: the middle of its path near the frame's."""
        v = direction * rng.uniform(*speed)
        c = (float(width / 2 - v * (frames - 1) / 2 + rng.uniform(-0.1, 0.1) * width), float(y))
        return c, Motion(c, velocity=(v, float(rng.uniform(-1, 1))), spin=float(rng.uniform(-0.5, 0.5)),
                         zoom=float(rng.uniform(-0.01, 0.01)))

    objects: list[tuple[SceneObject, Motion]] = []
    if bool(rng.uniform() < 0.5) if far_car is None else far_car:
        c, motion = driving(row.y - rng.uniform(0.85, 1.1) * b, -way)
        objects.append((_car(c, (a * rng.uniform(0.85, 1.0), b * rng.uniform(0.85, 1.0)), rng), motion))
    objects += [(car, camera) for car in row.cars(rng)]  # parked: they move with the background
    c, motion = driving(row.y + rng.uniform(0.9, 1.3) * b, way)
    objects.append((_car(c, (a * rng.uniform(0.95, 1.1), b * rng.uniform(0.95, 1.1)), rng), motion))
    return render_motion_sequence(height, width, camera, objects, frames=frames, seed=seed + 1)


def camera_sequence(image: np.ndarray, labels: np.ndarray, *, frames: int = 8, zoom: float = 0.01,
                    pan: tuple[float, float] = (2.0, 0.5), void: int = 255
                    ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """A camera zooming (``zoom`` per frame, about the centre) and panning (px per frame) over ``image``
    (uint8 RGB (H, W, 3)) with its label map (uint8 (H, W)): frames, labels (``void`` where the frame
    sees outside the image) and the ``frames - 1`` exact flows (frame k -> k+1, k = 0..frames-2)."""
    h, w = labels.shape
    motion = Motion((w / 2.0, h / 2.0), velocity=pan, zoom=zoom)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    out_frames, out_labels, flows = [], [], []
    for k in range(frames):
        hk = motion.at(k)
        out_frames.append(cv2.warpPerspective(image, hk, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101))
        out_labels.append(cv2.warpPerspective(labels, hk, (w, h), flags=cv2.INTER_NEAREST,
                                              borderMode=cv2.BORDER_CONSTANT, borderValue=void))
        if k + 1 < frames:
            nx, ny = apply_homography(motion.at(k + 1) @ np.linalg.inv(hk), x, y)
            flows.append(np.stack([nx - x, ny - y], axis=2).astype(np.float32))
    return out_frames, out_labels, flows
