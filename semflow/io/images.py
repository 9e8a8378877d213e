"""Reading and writing images as uint8 RGB (H, W, 3). OpenCV's BGR order never leaves this module."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from semflow.errors import InputError
from semflow.io.atomic import atomic_path
from semflow.io.files import require_file

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp")


def to_rgb_uint8(image: np.ndarray, *, name: str = "image", bgr: bool = False) -> np.ndarray:
    """Convert gray (H, W) / (H, W, 1), RGB, RGBA, 16-bit or float [0, 1] images to uint8 RGB (H, W, 3).

    ``bgr`` says the colour channels are in OpenCV order (as ``cv2.imread`` gives them).
    Alpha is dropped. 16-bit values are scaled by 255/65535; floats are taken as [0, 1].
    """
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
        raise InputError(f"{name}: expected an image (H, W), (H, W, 3) or (H, W, 4), got shape {img.shape}")
    if img.shape[0] < 2 or img.shape[1] < 2:
        raise InputError(f"{name}: image is too small ({img.shape[1]}x{img.shape[0]})")
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) * (255.0 / 65535.0) + 0.5).astype(np.uint8)
    elif np.issubdtype(img.dtype, np.floating):
        if not np.isfinite(img).all():
            raise InputError(f"{name}: image has NaN or inf values")
        img = (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif img.dtype == np.bool_:
        img = img.astype(np.uint8) * 255
    elif img.dtype != np.uint8:
        raise InputError(f"{name}: unsupported image dtype {img.dtype}")
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[..., None], 3, axis=2))
    img = img[..., :3]
    if bgr:
        img = img[..., ::-1]
    return np.ascontiguousarray(img)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as uint8 RGB (H, W, 3); gray, alpha and 16-bit files are converted."""
    path = require_file(path)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise InputError(f"{path}: cannot decode as an image")
    return to_rgb_uint8(raw, name=str(path), bgr=True)


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an RGB (H, W, 3) or label (H, W) uint8/uint16 image atomically; format from the extension."""
    if not is_image_path(path):
        raise InputError(f"{path}: unknown image format; use one of {', '.join(IMAGE_EXTENSIONS)}")
    img = np.asarray(image)
    if img.ndim == 3:
        img = img[..., ::-1]
    with atomic_path(path) as tmp:
        try:
            written = cv2.imwrite(str(tmp), np.ascontiguousarray(img))
        except cv2.error as exc:
            raise InputError(f"{path}: could not write image ({str(exc).strip().splitlines()[-1]})") from None
        if not written:
            raise InputError(f"{path}: could not write image")


def is_image_path(path: str | os.PathLike) -> bool:
    """True when ``path`` has an image file extension."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS
