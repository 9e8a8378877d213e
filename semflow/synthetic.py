"""Synthetic layered scenes with exact ground truth, for tests and benchmarks.

A scene is a textured background plane moved by a homography, with textured objects in front of it,
each moved by an affine map. Frame 1 and frame 2 are rendered by inverse mapping from smooth random
textures, so the ground-truth flow is exact, and so are the region labels, the instance map, the
depth order and the occlusion mask (pixels of frame 1 that are hidden or leave the frame in frame 2).

Labels use CamVid ids so the scene can stand in for a segmentation: the background is ``Road`` (3,
a plane) and every object is a thing: ``Car`` (8) unless it says otherwise (``Pedestrian``, 9).

Hard cases (:func:`make_hard_scene`, :func:`write_hard_dataset`): things of one class that touch or
overlap with different motions (a car passing a row of parked cars, a group of pedestrians), objects
moving 15-30 px; their connected thing region then holds several motions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

ROAD_ID = 3
CAR_ID = 8
PEDESTRIAN_ID = 9


@dataclass
class SceneObject:
    """An elliptic object: centre and semi-axes (pixels, frame 1), rotation (degrees), motion.

    ``affine`` (2, 3) maps a frame-1 point ``x`` to its frame-2 position ``A[:, :2] @ x + A[:, 2]``.
    ``class_id``: its CamVid label. ``power``: the exponent of the superellipse ``|x/a|^p + |y/b|^p <= 1``
    (2: an ellipse; 4 or more: a rounded box, car-like).
    """

    center: tuple[float, float]
    axes: tuple[float, float]
    affine: np.ndarray
    angle: float = 0.0
    class_id: int = CAR_ID
    power: float = 2.0

    def mask(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Inside test for frame-1 coordinates (arrays of the same shape)."""
        t = np.deg2rad(self.angle)
        dx, dy = x - self.center[0], y - self.center[1]
        xr = np.cos(t) * dx + np.sin(t) * dy
        yr = -np.sin(t) * dx + np.cos(t) * dy
        if self.power == 2.0:
            return (xr / self.axes[0]) ** 2 + (yr / self.axes[1]) ** 2 <= 1.0
        return np.abs(xr / self.axes[0]) ** self.power + np.abs(yr / self.axes[1]) ** self.power <= 1.0


@dataclass
class SyntheticScene:
    """A rendered frame pair and its ground truth (all arrays have height H and width W).

    img1, img2: uint8 RGB (H, W, 3). flow: float32 (H, W, 2), frame 1 -> frame 2.
    labels: uint8 (H, W) CamVid ids. instances: int32 (H, W), 0 background, k for object k (1-based,
    later objects are in front). occluded: bool (H, W), True where the frame-1 pixel is not visible in
    frame 2 (covered, or moved out of the image). homography: (3, 3) background motion.
    """

    img1: np.ndarray
    img2: np.ndarray
    flow: np.ndarray
    labels: np.ndarray
    instances: np.ndarray
    occluded: np.ndarray
    homography: np.ndarray
    objects: list[SceneObject] = field(default_factory=list)


def random_texture(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth multi-scale colour noise with sharp-ish detail, float32 (H, W, 3) in [0, 255]."""
    tex = np.zeros((height, width, 3), np.float32)
    for sigma, weight in ((16.0, 1.0), (6.0, 0.8), (2.0, 0.6), (1.0, 0.4)):
        noise = rng.standard_normal((height, width, 3)).astype(np.float32)
        noise = cv2.GaussianBlur(noise, (0, 0), sigma)
        tex += weight * noise / (noise.std() + 1e-6)
    tex -= tex.min()
    tex *= 255.0 / max(float(tex.max()), 1e-6)
    return tex


def sample_texture(texture: np.ndarray, x: np.ndarray, y: np.ndarray, offset: int) -> np.ndarray:
    """``texture`` (H, W[, C]) sampled bilinearly at the points (x + offset, y + offset) px (arrays of one
    shape S), mirrored past its border (BORDER_REFLECT101): (S[, C]) of its dtype."""
    return cv2.remap(texture, (x + offset).astype(np.float32), (y + offset).astype(np.float32),
                     cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)


def apply_homography(h: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    den = h[2, 0] * x + h[2, 1] * y + h[2, 2]
    return (h[0, 0] * x + h[0, 1] * y + h[0, 2]) / den, (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / den


def apply_affine(a: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return a[0, 0] * x + a[0, 1] * y + a[0, 2], a[1, 0] * x + a[1, 1] * y + a[1, 2]


def to_uint8(image: np.ndarray) -> np.ndarray:
    """A rendered float image (values in [0, 255]) as uint8, rounded half up and clipped to [0, 255]."""
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def random_homography(width: int, height: int, rng: np.random.Generator, *, shift: float = 6.0,
                      perspective: float = 0.08) -> np.ndarray:
    """A mild random homography: corners moved by up to ``shift`` px plus a vertical keystone."""
    src = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    keystone = perspective * width * np.float32([[1, 0], [-1, 0], [0, 0], [0, 0]])
    dst = src + keystone * rng.uniform(-1, 1) + rng.uniform(-shift, shift, (4, 2)).astype(np.float32)
    dst += rng.uniform(-shift, shift, 2).astype(np.float32)
    return cv2.getPerspectiveTransform(src, dst.astype(np.float32)).astype(np.float64)


def random_affine(center: tuple[float, float], rng: np.random.Generator, *, max_shift: float = 12.0,
                  max_rotation: float = 6.0, max_scale: float = 0.06) -> np.ndarray:
    """A random similarity-plus-shear about ``center``, translated by up to ``max_shift`` px."""
    angle = rng.uniform(-max_rotation, max_rotation)
    scale = 1.0 + rng.uniform(-max_scale, max_scale)
    a = cv2.getRotationMatrix2D(center, angle, scale).astype(np.float64)
    a[:, 2] += rng.uniform(-max_shift, max_shift, 2)
    return a


def hidden_in_frame2(flow: np.ndarray, layer1: np.ndarray, layer2: np.ndarray) -> np.ndarray:
    """(H, W) bool: frame-1 pixels whose frame-2 position (``flow`` (H, W, 2), rounded) is outside the
    frame or shows another layer; ``layer1``, ``layer2`` (H, W) int: the layer on top in each frame."""
    height, width = layer1.shape
    y1, x1 = np.mgrid[0:height, 0:width]
    xi = np.round(x1 + flow[..., 0]).astype(int)
    yi = np.round(y1 + flow[..., 1]).astype(int)
    outside = (xi < 0) | (xi >= width) | (yi < 0) | (yi >= height)
    covered = np.zeros_like(outside)
    covered[~outside] = layer2[yi[~outside], xi[~outside]] != layer1[~outside]
    return outside | covered


def render_scene(height: int, width: int, homography: np.ndarray, objects: list[SceneObject], *,
                 seed: int = 0) -> SyntheticScene:
    """Render a scene with the given background homography and objects (back to front)."""
    rng = np.random.default_rng(seed)
    margin = int(max(height, width) * 0.5)
    bg_tex = random_texture(height + 2 * margin, width + 2 * margin, rng)
    obj_tex = []
    for _ in objects:  # each object gets its own tint so it stands out from the background
        tint = rng.uniform(0, 255, 3).astype(np.float32)
        obj_tex.append(0.6 * random_texture(height + 2 * margin, width + 2 * margin, rng) + 0.4 * tint)

    y1, x1 = np.mgrid[0:height, 0:width].astype(np.float64)

    # Frame 1: background at identity, each object over it in order.
    img1 = sample_texture(bg_tex, x1, y1, margin)
    instances = np.zeros((height, width), np.int32)
    flow_x, flow_y = apply_homography(homography, x1, y1)
    flow = np.stack([flow_x - x1, flow_y - y1], axis=2)
    for k, obj in enumerate(objects, start=1):
        inside = obj.mask(x1, y1)
        img1[inside] = sample_texture(obj_tex[k - 1], x1, y1, margin)[inside]
        instances[inside] = k
        ax, ay = apply_affine(obj.affine, x1, y1)
        flow[inside] = np.stack([ax - x1, ay - y1], axis=2)[inside]

    # Frame 2: inverse-map each pixel into the layer on top there.
    hinv = np.linalg.inv(homography)
    bx, by = apply_homography(hinv, x1, y1)
    img2 = sample_texture(bg_tex, bx, by, margin)
    top2 = np.zeros((height, width), np.int32)
    for k, obj in enumerate(objects, start=1):
        ainv = cv2.invertAffineTransform(obj.affine)
        ox, oy = apply_affine(ainv, x1, y1)
        inside = obj.mask(ox, oy)
        img2[inside] = sample_texture(obj_tex[k - 1], ox, oy, margin)[inside]
        top2[inside] = k

    classes = np.array([ROAD_ID] + [obj.class_id for obj in objects], np.uint8)
    labels = classes[instances]

    return SyntheticScene(
        img1=to_uint8(img1),
        img2=to_uint8(img2),
        flow=flow.astype(np.float32),
        labels=labels,
        instances=instances,
        occluded=hidden_in_frame2(flow, instances, top2),
        homography=homography,
        objects=list(objects),
    )


def make_scene(height: int = 240, width: int = 320, *, seed: int = 0, num_objects: int = 2,
               background_shift: float = 6.0, object_shift: float = 12.0) -> SyntheticScene:
    """A random layered scene: a background homography and ``num_objects`` affine-moving ellipses.

    ``background_shift`` and ``object_shift`` bound the motions in pixels.
    """
    rng = np.random.default_rng(seed)
    homography = random_homography(width, height, rng, shift=background_shift)
    objects = []
    for _ in range(num_objects):
        center = (rng.uniform(0.2, 0.8) * width, rng.uniform(0.25, 0.75) * height)
        axes = (rng.uniform(0.08, 0.16) * width, rng.uniform(0.1, 0.2) * height)
        affine = random_affine(center, rng, max_shift=object_shift)
        objects.append(SceneObject(center, axes, affine, angle=float(rng.uniform(0, 180))))
    return render_scene(height, width, homography, objects, seed=seed + 1)


def translation_scene(height: int = 240, width: int = 320, *, shift: tuple[float, float] = (40.0, 0.0),
                      seed: int = 0) -> SyntheticScene:
    """A single textured plane translated by ``shift`` (pixels): the simplest large-motion case."""
    homography = np.array([[1, 0, shift[0]], [0, 1, shift[1]], [0, 0, 1]], np.float64)
    return render_scene(height, width, homography, [], seed=seed)


def moving_patch_scene(mask: np.ndarray, background: tuple[float, float], motion: tuple[float, float], *,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A textured patch (``mask`` (H, W) bool in frame t) moving ``motion`` px over a textured background
    moving ``background`` px, both translations: frames uint8 (H, W, 3), the true flow (H, W, 2) float32
    and the patch's pixels in frame t+1 (H, W) bool."""
    height, width = mask.shape
    rng = np.random.default_rng(seed)
    back, texture = random_texture(height + 60, width + 60, rng), random_texture(height, width, rng)
    img1 = back[30:30 + height, 30:30 + width].copy()
    img2 = cv2.warpAffine(back, np.float32([[1, 0, -30 + background[0]], [0, 1, -30 + background[1]]]),
                          (width, height))
    img1[mask] = texture[mask]
    move = np.float32([[1, 0, motion[0]], [0, 1, motion[1]]])
    moved = cv2.warpAffine(mask.astype(np.uint8), move, (width, height)).astype(bool)
    img2[moved] = cv2.warpAffine(texture, move, (width, height))[moved]
    flow = np.empty((height, width, 2), np.float32)
    flow[:] = background
    flow[mask] = motion
    return img1.astype(np.uint8), img2.astype(np.uint8), flow, moved


def write_dataset(root: str | os.PathLike, count: int = 8, *, height: int = 240, width: int = 320,
                  seed: int = 0, num_objects: int = 2) -> list[Path]:
    """Write ``count`` random scenes as ``root/scene_NNN/{frame1,frame2}.png, flow.flo, labels.png,
    instances.png, occlusion.png`` (the layout ``semflow compare --dataset synthetic`` reads)."""
    folders = []
    for i in range(count):
        scene = make_scene(height, width, seed=seed + 1000 * i, num_objects=num_objects)
        folders.append(write_scene(Path(root) / f"scene_{i:03d}", scene))
    return folders


def write_scene(folder: str | os.PathLike, scene: SyntheticScene) -> Path:
    """Write one scene in the layout of :func:`write_dataset`; returns the folder."""
    from semflow.io.flow import write_flo
    from semflow.io.images import write_image

    folder = Path(folder)
    write_image(folder / "frame1.png", scene.img1)
    write_image(folder / "frame2.png", scene.img2)
    write_flo(folder / "flow.flo", scene.flow)
    write_image(folder / "labels.png", scene.labels)
    write_image(folder / "instances.png", scene.instances.astype(np.uint8))
    write_image(folder / "occlusion.png", scene.occluded.astype(np.uint8) * 255)
    return folder


def render_sequence(background: np.ndarray, homography: np.ndarray,
                    objects: list[tuple[SceneObject, np.ndarray]], *, frames: int, height: int,
                    width: int, origin: tuple[float, float] = (0.0, 0.0)) -> list[np.ndarray]:
    """Frames of a moving scene made from real images, each uint8 RGB (height, width, 3).

    Frame k shows ``background`` (RGB, larger than the frame; frame 0 shows it from ``origin``) moved
    by ``homography`` applied k times, and in front of it each object (a shape in frame-0 coordinates,
    its per-frame ``affine`` motion, and an RGB texture aligned with frame 0) moved by its affine k times.
    """
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    bg = background.astype(np.float32)
    out = []
    h_k = np.eye(3)
    a_k = [np.eye(3) for _ in objects]
    for _ in range(frames):
        bx, by = apply_homography(np.linalg.inv(h_k), x, y)
        img = cv2.remap(bg, (bx + origin[0]).astype(np.float32), (by + origin[1]).astype(np.float32),
                        cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        for (obj, texture), a in zip(objects, a_k):
            ox, oy = apply_homography(np.linalg.inv(a), x, y)
            inside = obj.mask(ox, oy)
            tex = cv2.remap(texture.astype(np.float32), ox.astype(np.float32), oy.astype(np.float32),
                            cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
            img[inside] = tex[inside]
        out.append(to_uint8(img))
        h_k = homography @ h_k
        a_k = [np.vstack([obj.affine, [0, 0, 1]]) @ a for (obj, _), a in zip(objects, a_k)]
    return out
