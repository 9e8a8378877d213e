"""Drawing flow on the Middlebury color wheel (Baker et al.): hue = direction, saturation = magnitude.

Colors are only comparable under one normaliser: ``max_flow`` (pixels) maps to full saturation. Pass
the same ``max_flow`` for every frame of a video and every method in a comparison; the legend drawn
with the image says which value was used. The wheel and its arithmetic are ``flow_vis``'s.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Sequence

import cv2
import flow_vis
import numpy as np

from semflow.errors import InputError
from semflow.io.flow import check_flow_to_write, check_mask
from semflow.text import put_text, text_size

MAX_FLOW_LIMITS = (1e-3, 1e6)
"""The normalisers (px) a user may give (``--max-flow``): below a thousandth of a pixel every flow is
dark, and float32 flows divided by less overflow; beyond a million pixels every flow is white."""
DEFAULT_PERCENTILE = 99.0
"""Every picture semflow draws is normalised by this percentile of the magnitudes it shows, unless told
a ``max_flow``: a few outliers do not wash out the colours (docs/conventions.md states it)."""
MIN_MAX_FLOW = 1.0
"""The smallest normaliser (px) :func:`max_flow_of` gives: a still or nearly still flow stays dark instead
of its sub-pixel noise being drawn at full saturation."""


def max_flow_of(flows: Sequence[np.ndarray] | np.ndarray, *, percentile: float = DEFAULT_PERCENTILE,
                valid: Sequence[np.ndarray | None] | None = None) -> float:
    """A shared normaliser for ``flows`` (px): the given percentile (0 to 100) of their valid magnitudes, >= 1 px
    (what lies under pixels ``valid`` marks unknown is not looked at: NaN or 1e10 there is fine)."""
    if isinstance(flows, np.ndarray):
        flows = [flows]
    if valid is not None and len(valid) != len(flows):  # (fewer was an IndexError)
        raise InputError(f"max_flow_of: {len(flows)} flows but {len(valid)} valid masks (give None for a flow without)")
    if not isinstance(percentile, numbers.Real) or not 0 <= percentile <= 100:
        raise InputError(f"percentile must be a number from 0 to 100, got {percentile!r}")
    mags = []
    for i, flow in enumerate(flows):
        flow, mask = check_flow_to_write(flow, None if valid is None else valid[i])
        mag = np.linalg.norm(flow, axis=2)
        mags.append((mag if mask is None else mag[mask]).ravel())
    values = np.concatenate(mags) if mags else np.zeros(1)
    return max(float(np.percentile(values, percentile)) if values.size else MIN_MAX_FLOW, MIN_MAX_FLOW)


WHEEL = flow_vis.make_colorwheel() / 255.0
"""(55, 3) float64: flow_vis's colour wheel (Middlebury's), in [0, 1]."""
WHEEL_CHANNELS = tuple(np.ascontiguousarray(WHEEL[:, c]) for c in range(3))
""":data:`WHEEL`'s columns (R, G and B each (55,)), for :func:`wheel_colors`' channel-at-a-time arithmetic."""
BAND_ROWS = 32
"""Rows :func:`wheel_colors` colours at a time."""


def wheel_colors(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Normalised flow components ``u``, ``v`` (H, W) -> uint8 RGB (H, W, 3): exactly
    ``flow_vis.flow_uv_to_colors(u, v)``, the same float64 arithmetic element for element, a band of
    ``BAND_ROWS`` rows and one channel at a time (its full-image temporaries leave the CPU cache: twice the
    time at 960x540; three-channel temporaries of a band took twice as long again)."""
    out = np.empty((*u.shape, 3), np.uint8)
    ncols = len(WHEEL)
    for y in range(0, u.shape[0], BAND_ROWS):
        bu, bv = u[y:y + BAND_ROWS], v[y:y + BAND_ROWS]
        rad = np.sqrt(np.square(bu) + np.square(bv))
        fk = (np.arctan2(-bv, -bu) / np.pi + 1) / 2 * (ncols - 1)  # position on the wheel
        k0 = np.floor(fk).astype(np.int32)
        k1 = k0 + 1
        k1[k1 == ncols] = 0
        f = fk - k0
        inside = rad <= 1
        for c, wheel in enumerate(WHEEL_CHANNELS):
            col = (1 - f) * wheel[k0] + f * wheel[k1]
            col = np.where(inside, 1 - rad * (1 - col), col * 0.75)  # towards white at 0; darker beyond 1
            out[y:y + BAND_ROWS, :, c] = np.floor(255 * col)
    return out


def check_max_flow(max_flow: float) -> float:
    """``max_flow`` as a float if it is a number within :data:`MAX_FLOW_LIMITS`, else an InputError (one line)."""
    if isinstance(max_flow, bool) or not isinstance(max_flow, numbers.Real):
        raise InputError(f"max_flow must be a number of px, got {repr(max_flow)[:60]}")
    low, high = MAX_FLOW_LIMITS
    if not low <= max_flow <= high:  # (NaN fails too)
        raise InputError(f"max flow (--max-flow) must be between {low:g} and {high:g} px, got {max_flow:g}")
    return float(max_flow)


def flow_to_color(flow: np.ndarray, max_flow: float | None = None, *,
                  valid: np.ndarray | None = None) -> np.ndarray:
    """Flow (H, W, 2) -> uint8 RGB (H, W, 3) on the Middlebury wheel.

    ``max_flow`` (pixels) maps to full saturation; beyond it colors are darkened. By default it is the
    largest magnitude in this flow plus 1e-5 px (as ``flow_vis.flow_to_color``) or plus a millionth of it
    when that is more (float32 rounding put the largest one a hair beyond it, darkened: 1e-5 px is too
    little from about 100 px on); a given one must lie within :data:`MAX_FLOW_LIMITS`
    (InputError). Pixels where ``valid`` (H, W) is False are drawn black (what lies there is not looked at,
    nor counted in the default normaliser).
    """
    flow, valid = check_flow_to_write(flow, valid)  # (invalid pixels zeroed)
    if max_flow is None:
        largest = float(np.linalg.norm(flow, axis=2).max())
        max_flow = max(largest + max(1e-5, 1e-6 * largest), 1e-6)
    else:  # (the bounds run's max_flow and --max-flow take; 0 was a ValueError, not an InputError)
        max_flow = check_max_flow(max_flow)
    color = wheel_colors(flow[..., 0] / max_flow, flow[..., 1] / max_flow)
    if valid is not None:
        color[~valid] = 0
    return color


def color_wheel(size: int = 96) -> np.ndarray:
    """A legend disc (size, size, 3) uint8 RGB: the color of each flow direction at full scale."""
    if size < 2:
        raise ValueError(f"color_wheel: size must be at least 2 px, got {size}")
    r = (size - 1) / 2.0
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    flow = np.stack([(x - r) / r, (y - r) / r], axis=2)
    img = flow_to_color(flow, 1.0)
    img[np.linalg.norm(flow, axis=2) > 1.0] = 255
    return img


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float) -> None:
    """White text with a 1 px dark outline at ``org`` (left, baseline): readable on white and on black.
    (The outline is the text drawn dark at the 8 neighbouring offsets: a thicker stroke would drift,
    since OpenCV advances each glyph by the stroke width.)"""
    thick = max(1, int(round(scale * 2)))
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            if dx or dy:
                put_text(img, text, (org[0] + dx, org[1] + dy), scale, (0, 0, 0), thick)
    put_text(img, text, org, scale, (255, 255, 255), thick)


def _text_size(text: str, scale: float) -> tuple[int, int, int]:
    """(width, height above the baseline, baseline depth) of :func:`_text`'s output, outline included."""
    (tw, th), base = text_size(text, scale, max(1, int(round(scale * 2))))
    return tw + 2, th + 1, base + 1


def _fit_scale(text: str, scale: float, max_width: int) -> float:
    """``scale`` shrunk (down to 0.25) until ``text`` is at most ``max_width`` px wide."""
    while scale > 0.25 and _text_size(text, scale)[0] > max_width:
        scale *= 0.85
    return max(scale, 0.25)


@functools.lru_cache(maxsize=8)
def _wheel_disc(size: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`color_wheel` of ``size`` and its disc (bool), made once: every frame of a video has the same."""
    r = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size]
    wheel, disc = color_wheel(size), (xx - r) ** 2 + (yy - r) ** 2 <= r * r
    wheel.flags.writeable = disc.flags.writeable = False
    return wheel, disc


def max_flow_text(max_flow: float) -> str:
    """A normaliser (px) as the legend writes it and ``flow`` and ``visualize`` print it: two decimals
    (``1.04``, ``12.00``), or two significant digits under 0.01 (``0.004``, which two decimals made ``0.00``)."""
    return f"{max_flow:.2f}" if max_flow >= 0.0095 else f"{max_flow:.2g}"


def legend_text_box(height: int, width: int, max_flow: float) -> tuple[str, float, int, int, int, int]:
    """Where :func:`add_legend` writes its scale label on a (height, width) image: (text, font scale,
    box left, box top, box width, box height); the box lies inside the image (for images at least
    40 px wide): above the colour wheel, beside it when the image is too low, or at the bottom when
    there is no wheel. The text is ``max N px``, shortened to ``N px`` or ``N`` when even the
    smallest font does not fit, and to ``N`` to two digits (``1.2e5``, ``1e6``) when ``N`` is wider than the image,
    or than the room the wheel leaves beside it where the two digits fit there."""
    return _legend_text_box(int(height), int(width), float(max_flow))


@functools.lru_cache(maxsize=64)
def _legend_text_box(height: int, width: int, max_flow: float) -> tuple[str, float, int, int, int, int]:
    """:func:`legend_text_box`, made once per size and normaliser (every frame of a video has the same)."""
    size = int(np.clip(min(height, width) // 5, 24, 128))
    wheel_fits = width - size - 4 >= 0 and height - size - 4 >= 0
    value = max_flow_text(max_flow)  # (as flow and visualize print it: "1.04" was drawn "1.0")
    bare = f"{max_flow:.0f}" if max_flow >= 0.95 else value  # (then, wider than its room, 1e6: "1000000" ran off it)
    two_digits = f"{max_flow:.2g}".replace("e+0", "e").replace("e+", "e")

    def fit(room: int) -> tuple[str, float, int, int]:
        bare_width, two_width = _text_size(bare, 0.25)[0], _text_size(two_digits, 0.25)[0]
        wider_than_image = bare_width + 8 > width  # (1000000 ran off a 40 px image)
        only_short_fits = bare_width + 2 > room >= two_width + 2  # (beside the wheel: its box would cover it)
        short = two_digits if wider_than_image or only_short_fits else bare
        for text in (f"max {value} px", f"{value} px", bare, short):
            scale = _fit_scale(text, max(0.35, size / 160.0), room - 4)
            tw, th, base = _text_size(text, scale)
            if tw + 4 <= room:
                break
        return text, scale, tw + 4, th + base + 4

    text, scale, bw, bh = fit(width - 4)
    x, y = width - bw - 2, height - bh - 2  # bottom right (no wheel)
    if wheel_fits:
        y = height - size - 6 - bh  # above the wheel
        if y < title_bar_height(height, width):  # too low (the tile's title would cover it): beside the wheel
            text, scale, bw, bh = fit(width - size - 8)
            x, y = width - size - 6 - bw, height - bh - 2
    return text, scale, max(0, x), max(0, y), bw, bh


def add_legend(image: np.ndarray, max_flow: float, *, label: str | None = None) -> np.ndarray:
    """Return a copy of ``image`` with the color wheel and ``max N px`` (on a dark box, shrunk to fit
    narrow images, never leaving the image) in its lower right corner. ``image``: uint8 RGB (H, W, 3)."""
    out = np.array(image, np.uint8, copy=True)
    if out.ndim != 3 or out.shape[2] != 3:
        raise ValueError(f"add_legend: expected an RGB image (H, W, 3), got shape {out.shape}")
    h, w = out.shape[:2]
    size = int(np.clip(min(h, w) // 5, 24, 128))
    x0, y0 = w - size - 4, h - size - 4
    if x0 >= 0 and y0 >= 0:
        wheel, inside = _wheel_disc(size)
        region = out[y0:y0 + size, x0:x0 + size]
        region[inside] = wheel[inside]
    text, scale, x, y, bw, bh = legend_text_box(h, w, max_flow)
    box = out[y:y + bh, x:x + bw]
    box[:] = (box.astype(np.float32) * 0.35).astype(np.uint8)
    _, th, _ = _text_size(text, scale)
    _text(out, text, (x + 2, y + 2 + th), scale)
    if label:
        _text(out, label, (6, 6 + th), scale)
    return out


def title_bar_height(height: int, width: int) -> int:
    """The most rows :func:`label_image`'s title bar takes on a (height, width) image (a long title's text
    shrinks, and its bar with it)."""
    _, th, base = _text_size("Ag", max(0.35, min(height, width) / 400.0))
    return min(height, th + base + 8)


def label_image(image: np.ndarray, label: str) -> np.ndarray:
    """Return a copy of ``image`` with ``label`` on a dark bar across its top: readable on any content
    (white flow included); the text shrinks to fit the width."""
    out = np.array(image, np.uint8, copy=True)
    h, w = out.shape[:2]
    scale = _fit_scale(label, max(0.35, min(h, w) / 400.0), w - 10)
    _, th, base = _text_size(label, scale)
    bar = min(h, th + base + 8)
    out[:bar] = (out[:bar].astype(np.float32) * 0.35).astype(np.uint8)  # darken, keep a hint of the content
    _text(out, label, (5, min(h - 1, 4 + th)), scale)
    return out


def title_fits(width: int, label: str) -> bool:
    """Whether :func:`label_image` shows ``label`` whole on an image ``width`` px wide (at its smallest text)."""
    return _text_size(label, 0.25)[0] <= width - 10


def error_to_color(error: np.ndarray, max_error: float = 5.0, *, valid: np.ndarray | None = None) -> np.ndarray:
    """Endpoint error (H, W) in pixels -> uint8 RGB heat map, saturating at ``max_error`` (> 0);
    pixels not ``valid`` and errors that are not finite are black."""
    if not (np.isfinite(max_error) and max_error > 0):
        raise ValueError(f"error_to_color: max_error must be a positive number of pixels, got {max_error}")
    error, big = np.asarray(error), float(np.finfo(np.float32).max)
    if error.dtype.kind == "f" and error.dtype.itemsize > 4:  # (1e300 became inf in float32: black, and a warning)
        error = np.where(np.isfinite(error), np.clip(error, -big, big), error)
    error = error.astype(np.float32, copy=False)
    if error.ndim != 2:  # (a flow (H, W, 2) was cv2's "ColorMap only supports...")
        raise InputError(f"error_to_color takes an error map (H, W) in px, got shape {error.shape}")
    known = np.isfinite(error)
    limit = np.float32(min(max(max_error, float(np.finfo(np.float32).tiny)), big))  # (1e-300 was 0 in float32)
    with np.errstate(over="ignore"):  # (an error past float32's range over a tiny max_error: inf, saturated)
        scaled = np.clip(np.where(known, error, 0.0) / limit, 0.0, 1.0)
    img = cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)[..., ::-1].copy()
    if valid is not None:
        known &= check_mask(valid, error.shape)
    img[~known] = 0
    return img


def add_error_scale(image: np.ndarray, max_error: float) -> np.ndarray:
    """Return a copy of ``image`` (an :func:`error_to_color` map) with its scale in the lower right corner:
    the colour ramp from 0 to ``max_error`` px under the text ``EPE 0-N px`` (N and above: the ramp's end),
    on a dark box shrunk to fit narrow images."""
    out = np.array(image, np.uint8, copy=True)
    h, w = out.shape[:2]
    text = f"EPE 0-{max_error:g} px"
    scale = _fit_scale(text, max(0.35, min(h, w) / 800.0), max(1, w - 12))
    tw, th, base = _text_size(text, scale)
    bar_w, bar_h = max(tw, min(w - 12, w // 3)), max(4, th)
    bw, bh = bar_w + 8, th + base + bar_h + 10
    x, y = max(0, w - bw - 2), max(0, h - bh - 2)
    box = out[y:y + bh, x:x + bw]
    box[:] = (box.astype(np.float32) * 0.35).astype(np.uint8)
    _text(out, text, (x + 4, y + 3 + th), scale)
    ramp = error_to_color(np.linspace(0.0, max_error, max(1, bar_w), dtype=np.float32)[None], max_error)
    top = y + th + base + 6
    region = out[top:top + bar_h, x + 4:x + 4 + bar_w]
    region[:] = ramp[:, :region.shape[1]]  # (every row of the bar; clipped at the image's edges)
    return out


TILE_GAP = 4
"""The white gap (px) between a panel's tiles."""


def enlarged_in_blocks(image: np.ndarray, side: int, at_least: int, max_side: int) -> np.ndarray:
    """``image`` (H, W[, C]) enlarged by the smallest whole factor that makes ``side`` (the measure of it that
    must grow, px: its width, its shorter side) at least ``at_least``, each pixel a square block, its longer
    side kept at most ``max_side``; ``image`` itself where that factor is 1."""
    h, w = image.shape[:2]
    k = max(1, min(-(-at_least // max(1, side)), max_side // max(h, w, 1)))
    return np.repeat(np.repeat(image, k, axis=0), k, axis=1) if k > 1 else image


def tile(images: Sequence[np.ndarray], *, columns: int | None = None, gap: int = TILE_GAP) -> np.ndarray:
    """Arrange uint8 RGB images of equal size on a grid (row-major), white gaps between them; ``columns``
    (default: all in one row) is at most the number of images."""
    if not images:
        raise ValueError("nothing to tile")
    h, w = images[0].shape[:2]
    for img in images:
        if img.ndim != 3 or img.shape[2] < 3:  # (a grey one was numpy's "could not broadcast")
            raise ValueError(f"tile takes RGB images (H, W, 3), got shape {img.shape}")
        if img.shape[:2] != (h, w):
            raise ValueError(f"cannot tile images of different sizes: {img.shape[:2]} vs {(h, w)}")
    if columns is not None and columns < 1:
        raise ValueError(f"tile: columns must be at least 1, got {columns}")
    columns = min(columns or len(images), len(images))
    rows = -(-len(images) // columns)
    canvas = np.full((rows * h + (rows - 1) * gap, columns * w + (columns - 1) * gap, 3), 255, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        canvas[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = img[..., :3]
    return canvas
