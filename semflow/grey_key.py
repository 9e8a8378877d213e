"""A grey map's key: the strip ``--explain`` draws under a grey PNG preview (a confidence, an error in px,
a mask), saying which value black and white stand for, the way a flow picture has its colour wheel.

The map's own pixels are left as they are (one grey, one value); the key goes below it on white: the
map's name and unit, a ramp from black to white, and the values at its two ends.
"""

from __future__ import annotations

import cv2
import numpy as np

from semflow.text import put_text, text_size

KEY_MIN_WIDTH = 200
"""The narrowest key strip (px): a map narrower than this is drawn at the left of a white canvas this wide,
so that its key's text stays readable (a discrete grid map is 32 px wide on a 160 px frame)."""
GAP = 4
"""White rows (px) between the map and its key."""


def _fit(text: str, scale: float, room: int) -> float:
    """``scale`` shrunk (down to 0.3) until ``text`` is at most ``room`` px wide."""
    while scale > 0.3 and text_size(text, scale)[0][0] > room:
        scale *= 0.9
    return max(scale, 0.3)


def value_text(value: float) -> str:
    """A key's end value as short text, to three significant digits, its exponent written short as the flow
    legend's (:func:`~semflow.viz.legend_text_box`: ``1e6``): ``0``, ``1``, ``0.5``, ``143``, ``1.23e6``,
    ``1e-5``; from 999.5 to 9995 the whole number (``1000``, ``1234``: four digits, no wider than ``1.23e3``)."""
    text = f"{value:.3g}"
    if text.endswith("e+03"):  # (Python's ".3g" writes 1000 as "1e+03")
        return f"{value:.0f}"
    return text.replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")


def grey_levels(values: np.ndarray) -> np.ndarray:
    """Values (H, W) meant on the 0-1 scale as uint8 greys, 0 black and 1 white, each to the nearest grey
    (as the key's ramp is drawn; what lies outside [0, 1] clipped): the one rule of every ``--explain`` grey
    map, so that one value is one grey in all of them (0.999 was 254 in some, 255 in others)."""
    return (np.clip(values, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def grey_with_key(grey: np.ndarray, title: str, low_text: str, high_text: str) -> np.ndarray:
    """``grey`` (H, W) uint8, with a key strip below it: ``title`` (the map's name and unit), a ramp from
    black to white and, under its ends, ``low_text`` (what black stands for) and ``high_text`` (white).
    Returns (H + GAP + strip, max(W, :data:`KEY_MIN_WIDTH`)) uint8 grey; rows 0 to H - 1, columns 0 to
    W - 1 are ``grey`` unchanged, what lies beside a narrower map is white."""
    grey = np.asarray(grey, np.uint8)
    if grey.ndim != 2:
        raise ValueError(f"grey_with_key: expected a grey map (H, W), got shape {grey.shape}")
    h, w = grey.shape
    width = max(w, KEY_MIN_WIDTH)
    scale = float(np.clip(width / 600.0, 0.35, 0.7))
    title_scale = _fit(title, scale, width - 8)
    (_, th), base = text_size("Ag", scale)
    line = th + base + 4
    ramp_h = max(8, line // 2)
    strip = np.full((3 * line // 2 + ramp_h + line + 2, width), 255, np.uint8)
    put_text(strip, title, (4, 2 + th), title_scale, 0)
    top, left, right = line + 2, 4, width - 5
    strip[top:top + ramp_h, left:right + 1] = np.linspace(0, 255, right - left + 1).round().astype(np.uint8)
    cv2.rectangle(strip, (left - 1, top - 1), (right + 1, top + ramp_h), 0, 1)
    ends_scale = min(_fit(low_text, scale, width // 2 - 8), _fit(high_text, scale, width // 2 - 8))
    label_y = top + ramp_h + 3 + th
    put_text(strip, low_text, (left, label_y), ends_scale, 0)
    high_w = text_size(high_text, ends_scale)[0][0]
    put_text(strip, high_text, (right - high_w, label_y), ends_scale, 0)
    canvas = np.full((h + GAP + strip.shape[0], width), 255, np.uint8)
    canvas[:h, :w] = grey
    canvas[h + GAP:] = strip
    return canvas
