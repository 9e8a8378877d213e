"""A segmentation's class key: one colour swatch and class name per class, drawn in the lower part of a
segmentation tile (:func:`add_class_legend`) or, where it would hide too much of it, as a strip of its own
below or beside it (:func:`class_key_strip`); :mod:`semflow.render` chooses which.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from semflow.text import put_text, text_size

KEY_SHARE = 0.4
"""The most of a segmentation tile's height its class key may cover; a key that needs more goes below the
panel (:func:`class_key_strip`)."""


def _key_line(scale: float, names: Sequence[str]) -> tuple[int, int, int]:
    """(text height above the baseline, line height, column width) of a class key's names at ``scale``."""
    (_, th), base = text_size("Ag", scale)
    line = th + base + 4
    return th, line, line + 4 + max(text_size(n, scale)[0][0] for n in names) + 8


def _class_key_layout(h: int, w: int, names: Sequence[str]) -> tuple[float, int, int, int, int]:
    """(text scale, rows, columns, column width, line height) of a class key that fits a (h, w) tile: the
    largest scale (down to 0.25) at which every name fits in the lower :data:`KEY_SHARE` of the tile; else, at
    0.25, in the lower 60 % or 90 %; else as many columns as fit at 0.25 in 90 % (the caller shows those)."""
    scale, shares = max(0.3, min(h, w) / 900.0), (KEY_SHARE,)
    while True:
        _, line, col_w = _key_line(scale, names)
        for share in shares:
            rows = max(1, min(len(names), int(h * share) // line))
            cols = -(-len(names) // rows)
            if cols * col_w + 6 <= w:
                return scale, rows, cols, col_w, line
        if scale <= 0.25 and len(shares) > 1:
            return scale, rows, max(1, (w - 6) // col_w), col_w, line
        scale, shares = (max(0.25, scale * 0.85), shares) if scale > 0.25 else (scale, (0.6, 0.9))


def class_key_fits(h: int, w: int, names: Sequence[str]) -> bool:
    """Whether a class key of ``names`` fits whole in the lower :data:`KEY_SHARE` of a (h, w) tile."""
    if not names:
        return True
    _, rows, cols, col_w, line = _class_key_layout(h, w, names)  # (a tile too narrow for one column: names cut)
    return rows * cols >= len(names) and rows * line <= int(h * KEY_SHARE) and cols * col_w + 6 <= w


def _draw_key(out: np.ndarray, y0: int, names: Sequence[str], colors: np.ndarray, scale: float, rows: int,
              cols: int, col_w: int, line: int) -> None:
    """Draw the key's swatches and names in ``out`` (in place) from row ``y0``, column-major, ``cols`` columns."""
    th, _, _ = _key_line(scale, names)
    for i, (name, color) in enumerate(zip(names, colors)):
        c, r = divmod(i, rows)
        if c >= cols:
            break
        x, y = 4 + c * col_w, y0 + 3 + r * line
        cv2.rectangle(out, (x, y + 1), (x + line - 4, y + line - 3), tuple(int(v) for v in color), -1)
        cv2.rectangle(out, (x, y + 1), (x + line - 4, y + line - 3), (255, 255, 255), 1)
        put_text(out, name, (x + line, y + th + 1), scale, (255, 255, 255))


def add_class_legend(image: np.ndarray, names: Sequence[str], colors: np.ndarray) -> np.ndarray:
    """Return a copy of ``image`` (a segmentation tile) with a colour -> class name key in its lower
    left corner: one swatch and name per class, on a dark box, in as many columns as the height needs,
    the text made smaller until every name fits (a tile too small for all of them shows the first ones;
    :func:`class_key_fits` tells, and :func:`class_key_strip` draws the key beside the tile instead)."""
    out = np.array(image, np.uint8, copy=True)
    h, w = out.shape[:2]
    if not names:
        return out
    scale, rows, cols, col_w, line = _class_key_layout(h, w, names)
    box_w, box_h = min(w, cols * col_w + 6), min(h, rows * line + 6)
    y0 = h - box_h
    out[y0:, :box_w] = (out[y0:, :box_w].astype(np.float32) * 0.3).astype(np.uint8)
    _draw_key(out, y0, names, colors, scale, rows, cols, col_w, line)
    return out


def class_key_strip(width: int, names: Sequence[str], colors: np.ndarray) -> np.ndarray:
    """A class key on its own: a dark uint8 RGB strip ``width`` px wide (at least 1), as tall as the key of
    ``names`` (each in its colour of ``colors`` (K, 3)) needs in as many columns as fit, every name shown
    (text scaled with the width, 0.3 to 0.5; one column when even one does not fit)."""
    if width < 1:
        raise ValueError(f"class_key_strip: width must be at least 1 px, got {width}")
    if not names:
        return np.zeros((0, width, 3), np.uint8)
    scale, rows, cols, col_w, line = _strip_layout(width, names)
    strip = np.full((rows * line + 6, width, 3), 40, np.uint8)
    _draw_key(strip, 0, names, colors, scale, rows, cols, col_w, line)
    return strip


def _strip_layout(width: int, names: Sequence[str]) -> tuple[float, int, int, int, int]:
    """(text scale, rows, columns, column width, line height) of :func:`class_key_strip`'s key."""
    scale = float(np.clip(width / 2000.0, 0.3, 0.5))
    _, line, col_w = _key_line(scale, names)
    cols = max(1, min(len(names), (width - 6) // col_w))
    return scale, -(-len(names) // cols), cols, col_w, line


def class_key_column_width(names: Sequence[str]) -> int:
    """The narrowest :func:`class_key_strip` of ``names`` (one column, smallest text) that shows them all whole."""
    return _key_line(0.3, names)[2] + 6


def class_key_strip_height(width: int, names: Sequence[str]) -> int:
    """The rows :func:`class_key_strip` of ``names``, ``width`` px wide, takes (0 without names)."""
    if not names:
        return 0
    _, rows, _, _, line = _strip_layout(width, names)
    return rows * line + 6
