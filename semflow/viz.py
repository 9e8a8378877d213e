"""Drawing flow on the Middlebury color wheel (Baker et al.): hue = direction, saturation = magnitude.

Colors are only comparable under one normaliser: ``max_flow`` (pixels) maps to full saturation. Pass
the same ``max_flow`` for every frame of a video and every method in a comparison; the legend drawn
with the image says which value was used. The wheel itself comes from ``flow_vis``.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import flow_vis
import numpy as np

from semflow.io.flow import check_flow

DEFAULT_PERCENTILE = 99.0
"""Every picture semflow draws is normalised by this percentile of the magnitudes it shows, unless told
a ``max_flow``: a few outliers do not wash out the colours (the README states it)."""


def max_flow_of(flows: Sequence[np.ndarray] | np.ndarray, *, percentile: float = DEFAULT_PERCENTILE,
                valid: Sequence[np.ndarray | None] | None = None) -> float:
    """A shared normaliser for ``flows`` (px): the given percentile of their (valid) magnitudes, >= 1 px."""
    if isinstance(flows, np.ndarray):
        flows = [flows]
    mags = []
    for i, flow in enumerate(flows):
        mag = np.linalg.norm(check_flow(flow), axis=2)
        if valid is not None and valid[i] is not None:
            mag = mag[np.asarray(valid[i], bool)]
        mags.append(mag.ravel())
    values = np.concatenate(mags) if mags else np.zeros(1)
    return max(float(np.percentile(values, percentile)) if values.size else 1.0, 1.0)


def flow_to_color(flow: np.ndarray, max_flow: float | None = None, *,
                  valid: np.ndarray | None = None) -> np.ndarray:
    """Flow (H, W, 2) -> uint8 RGB (H, W, 3) on the Middlebury wheel.

    ``max_flow`` (pixels) maps to full saturation; beyond it colors are darkened. By default it is the
    largest magnitude in this flow. Pixels where ``valid`` is False are drawn black.
    """
    flow = check_flow(flow)
    if max_flow is None:
        max_flow = max(float(np.linalg.norm(flow, axis=2).max()), 1e-6)
    if not max_flow > 0:
        raise ValueError(f"max_flow must be positive, got {max_flow}")
    color = flow_vis.flow_uv_to_colors(flow[..., 0] / max_flow, flow[..., 1] / max_flow)
    if valid is not None:
        color[~np.asarray(valid, bool)] = 0
    return color


def color_wheel(size: int = 96) -> np.ndarray:
    """A legend disc (size, size, 3) uint8 RGB: the color of each flow direction at full scale."""
    r = (size - 1) / 2.0
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    flow = np.stack([(x - r) / r, (y - r) / r], axis=2)
    img = flow_to_color(flow, 1.0)
    img[np.linalg.norm(flow, axis=2) > 1.0] = 255
    return img


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float) -> None:
    thick = max(1, int(round(scale * 2)))
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)


def add_legend(image: np.ndarray, max_flow: float, *, label: str | None = None) -> np.ndarray:
    """Return a copy of ``image`` with the color wheel and ``max = N px`` in its lower right corner."""
    out = np.array(image, np.uint8, copy=True)
    h, w = out.shape[:2]
    size = int(np.clip(min(h, w) // 5, 24, 128))
    wheel = color_wheel(size)
    x0, y0 = w - size - 4, h - size - 4
    if x0 >= 0 and y0 >= 0:
        region = out[y0:y0 + size, x0:x0 + size]
        r = (size - 1) / 2.0
        yy, xx = np.mgrid[0:size, 0:size]
        inside = (xx - r) ** 2 + (yy - r) ** 2 <= r * r
        region[inside] = wheel[inside]
    scale = max(0.35, size / 160.0)
    text = f"max {max_flow:.1f} px"
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    _text(out, text, (max(2, w - tw - 6), max(th + 2, y0 - 6)), scale)
    if label:
        _text(out, label, (6, 6 + th), scale)
    return out


def label_image(image: np.ndarray, label: str) -> np.ndarray:
    """Return a copy of ``image`` with ``label`` written in its upper left corner."""
    out = np.array(image, np.uint8, copy=True)
    scale = max(0.35, min(out.shape[:2]) / 400.0)
    (_, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    _text(out, label, (6, 6 + th), scale)
    return out


def error_to_color(error: np.ndarray, max_error: float = 5.0, *, valid: np.ndarray | None = None) -> np.ndarray:
    """Endpoint error (H, W) in pixels -> uint8 RGB heat map, saturating at ``max_error``."""
    scaled = np.clip(np.asarray(error, np.float32) / max_error, 0.0, 1.0)
    img = cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)[..., ::-1].copy()
    if valid is not None:
        img[~np.asarray(valid, bool)] = 0
    return img


def tile(images: Sequence[np.ndarray], *, columns: int | None = None, gap: int = 4) -> np.ndarray:
    """Arrange uint8 RGB images of equal size on a grid (row-major), white gaps between them."""
    if not images:
        raise ValueError("nothing to tile")
    h, w = images[0].shape[:2]
    for img in images:
        if img.shape[:2] != (h, w):
            raise ValueError(f"cannot tile images of different sizes: {img.shape[:2]} vs {(h, w)}")
    columns = columns or len(images)
    rows = -(-len(images) // columns)
    canvas = np.full((rows * h + (rows - 1) * gap, columns * w + (columns - 1) * gap, 3), 255, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        canvas[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = img[..., :3]
    return canvas
