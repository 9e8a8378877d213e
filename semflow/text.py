"""Text drawn into pictures (titles, legends, keys): OpenCV's ``putText``, whose built-in font has Latin and
Cyrillic letters but draws a character it lacks (Greek, CJK...) as ``?``; text holding such a character is
drawn with Pillow instead, in the font plot.png would use for it (:func:`~semflow.plots.font_file_with`:
matplotlib's DejaVu Sans, a CJK font where one is installed). Characters no installed font has are written as
plot.png writes them, as their codes (``\\u6771``), not as ``?`` (two CJK file names both read ``??.flo``). Text
OpenCV draws whole is drawn by OpenCV, pixel for pixel as before.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
EM_PER_SCALE = 27.4
"""The Pillow font size (px) per unit of OpenCV font scale: DejaVu Sans's capitals (0.73 em) as tall as OpenCV's
(20 px at scale 1)."""


@functools.lru_cache(maxsize=1)
def _question_mark() -> bytes:
    return _alone("?")


def _alone(char: str) -> bytes:
    img = np.zeros((40, 60), np.uint8)
    cv2.putText(img, char, (4, 30), FONT, 1.0, 255, 1, cv2.LINE_AA)
    return img.tobytes()


@functools.lru_cache(maxsize=4096)
def opencv_lacks(char: str) -> bool:
    """Whether OpenCV's font draws ``char`` (one character) as its ``?``."""
    return char != "?" and _alone(char) == _question_mark()


@functools.lru_cache(maxsize=256)
def _drawn(text: str) -> tuple[str, str | None]:
    """(the text drawn for ``text``, the font file Pillow draws it in: None where OpenCV draws it whole). Where no
    one font has the characters OpenCV lacks, those no font has are written as their codes (``\\u6771``); where
    the rest still have no font together, every character OpenCV lacks is."""
    lacking = frozenset(c for c in text if ord(c) > 127 and opencv_lacks(c))
    if not lacking:
        return text, None
    from semflow.plots import font_file_with

    file = font_file_with(frozenset(text) | lacking)
    if file is not None:
        return text, file
    rest = frozenset(text) - lacking
    unknown = {c for c in lacking if font_file_with(rest | {c}) is None}
    if unknown != lacking:
        coded = _coded(text, unknown)
        file = font_file_with(frozenset(coded))
        if file is not None:
            return coded, file
    return _coded(text, lacking), None


def _coded(text: str, chars: set[str] | frozenset[str]) -> str:
    """``text`` with ``chars`` written as their ASCII escapes (``\\u6771``), as plot.png writes them."""
    return "".join(c.encode("ascii", "backslashreplace").decode("ascii") if c in chars else c for c in text)


@functools.lru_cache(maxsize=256)
def _mask(text: str, file: str, scale: float, thickness: int) -> tuple[np.ndarray, int, int, int]:
    """``text`` drawn by Pillow in ``file`` at OpenCV's ``scale``: (coverage (h, w) float32 0..1, left and top
    of it from the text's origin (its baseline's left end), advance width)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(file, max(6, round(EM_PER_SCALE * scale)))
    stroke = max(0, thickness - 2) // 2
    x0, y0, x1, y1 = font.getbbox(text, anchor="ls", stroke_width=stroke)
    canvas = Image.new("L", (max(1, x1 - x0), max(1, y1 - y0)), 0)
    ImageDraw.Draw(canvas).text((-x0, -y0), text, fill=255, font=font, anchor="ls", stroke_width=stroke)
    coverage = np.asarray(canvas, np.float32) / 255.0
    coverage.flags.writeable = False
    return coverage, x0, y0, max(x1, round(font.getlength(text)))


def text_size(text: str, scale: float, thickness: int = 1) -> tuple[tuple[int, int], int]:
    """``cv2.getTextSize`` of ``text`` in :data:`FONT` as :func:`put_text` draws it: ((width, height above the
    baseline), depth below it); text Pillow draws has its own width, and OpenCV's height and depth or more."""
    text, file = _drawn(text)
    (width, height), base = cv2.getTextSize(text, FONT, scale, thickness)
    if file is None:
        return (width, height), base
    coverage, _, top, advance = _mask(text, file, float(scale), int(thickness))
    return (advance, max(height, -top)), max(base, coverage.shape[0] + top)


def put_text(img: np.ndarray, text: str, org: tuple[int, int], scale: float, color, thickness: int = 1) -> None:
    """``cv2.putText(img, text, org, FONT, scale, color, thickness, cv2.LINE_AA)`` in place (``org``: the
    baseline's left end), text OpenCV's font lacks characters of drawn by Pillow, or in codes (the module's note)."""
    text, file = _drawn(text)
    if file is None:
        cv2.putText(img, text, org, FONT, scale, color, thickness, cv2.LINE_AA)
        return
    coverage, left, top, _ = _mask(text, file, float(scale), int(thickness))
    x, y = int(org[0]) + left, int(org[1]) + top
    h, w = img.shape[:2]
    cx0, cy0 = max(0, -x), max(0, -y)
    cx1, cy1 = min(coverage.shape[1], w - x), min(coverage.shape[0], h - y)
    if cx1 <= cx0 or cy1 <= cy0:
        return
    alpha = coverage[cy0:cy1, cx0:cx1]
    region = img[y + cy0:y + cy1, x + cx0:x + cx1]
    ink = np.asarray(color, np.float32).reshape(-1)[:region.shape[2] if region.ndim == 3 else 1]
    if region.ndim == 3:
        alpha = alpha[..., None]
    else:
        ink = ink[0]
    region[:] = np.rint(region * (1.0 - alpha) + ink * alpha).astype(img.dtype)
