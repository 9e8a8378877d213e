"""Tiles titled with names (``semflow visualize``'s flow files) that stay whole: where a name would be cut
at a tile's width, every tile is titled by its number and the full names are listed in a key below.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from semflow.errors import one_line
from semflow.text import put_text, text_size
from semflow.viz import TILE_GAP, label_image, tile, title_fits


def titled_tiles(images: Sequence[np.ndarray], titles: Sequence[str], *, columns: int | None = None) -> np.ndarray:
    """``images`` (uint8 RGB, one size) tiled as :func:`~semflow.viz.tile` does, each with its title of
    ``titles`` on a bar across its top; when one of them would be cut at the tiles' width, the titles read
    ``1: name``, ``2: name``... and a white key strip under the tiles lists each number with its whole name
    (wrapped over lines where it is wider than the picture). A character that is not printable (a newline
    in a file name) is shown escaped (``\\n``), as the command's messages show it."""
    titles = [one_line(title) for title in titles]  # (OpenCV draws a newline as a second line: over the bar's edge)
    width = images[0].shape[1]
    if all(title_fits(width, title) for title in titles):
        return tile([label_image(img, title) for img, title in zip(images, titles)], columns=columns)
    numbered = [f"{i}: {title}" for i, title in enumerate(titles, 1)]
    tiles = tile([label_image(img, title) for img, title in zip(images, numbered)], columns=columns)
    key = name_key(tiles.shape[1], numbered)
    return np.concatenate([tiles, np.full((TILE_GAP, tiles.shape[1], 3), 255, np.uint8), key])


def name_key(width: int, lines: Sequence[str]) -> np.ndarray:
    """A white uint8 RGB strip ``width`` px wide with each of ``lines`` in black, one under the other, a line
    wider than the strip broken where it reaches the edge (a name has no spaces to break at); characters
    that are not printable escaped (:func:`~semflow.errors.one_line`)."""
    scale = float(np.clip(width / 1200.0, 0.35, 0.6))
    (_, th), base = text_size("Ag", scale)
    step = th + base + 4
    rows = [row for line in lines for row in _wrapped(one_line(line), scale, width - 8)]
    strip = np.full((len(rows) * step + 6, width, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        put_text(strip, row, (4, 3 + i * step + th), scale, (0, 0, 0))
    return strip


def _wrapped(line: str, scale: float, room: int) -> list[str]:
    """``line`` in pieces each at most ``room`` px wide at ``scale`` (at least one character each)."""
    pieces: list[str] = []
    while line:
        end = len(line)
        while end > 1 and text_size(line[:end], scale)[0][0] > room:
            end -= 1
        pieces.append(line[:end])
        line = line[end:]
    return pieces
