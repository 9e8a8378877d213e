"""Text drawn into pictures (semflow.text): characters OpenCV's font lacks (Greek, CJK) drawn with a TrueType font
that has them, not as '?'; text OpenCV draws whole (ASCII, Latin, Cyrillic) drawn as before, pixel for pixel."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from semflow import text as text_mod
from semflow.class_legend import add_class_legend, class_key_column_width, class_key_strip
from semflow.grey_key import grey_with_key
from semflow.plots import font_file_with
from semflow.tile_titles import name_key, titled_tiles
from semflow.viz import label_image, title_fits

GREEK = "Πεζός"  # (pedestrian: OpenCV draws '?????'; matplotlib's DejaVu Sans has it)
CJK = "東京.flo"


def _grey(h: int = 90, w: int = 240) -> np.ndarray:
    return np.full((h, w, 3), 128, np.uint8)


OPENCV_DRAWS_CJK = not text_mod.opencv_lacks("東")
"""OpenCV 5.0's built-in font draws Greek and CJK itself; 5.1's draws them as '?' (what the Pillow path is for)."""
needs_opencv_lacking = pytest.mark.skipif(OPENCV_DRAWS_CJK, reason=f"OpenCV {cv2.__version__} draws Greek and CJK itself")


def test_opencv_lacks_nothing_of_latin_or_cyrillic():
    assert not any(text_mod.opencv_lacks(c) for c in "Aß?éЖ")


@needs_opencv_lacking
def test_opencv_lacks_greek_and_cjk():
    assert all(text_mod.opencv_lacks(c) for c in "Πζό東")


def test_greek_title_is_not_drawn_as_question_marks():
    drawn, marks = label_image(_grey(), GREEK), label_image(_grey(), "?" * len(GREEK))
    assert not np.array_equal(drawn, marks)
    bar = drawn[:30].astype(int)  # (the text is white on a darkened bar: it is there)
    assert (bar > 200).sum() > 20


def test_greek_in_every_drawing_differs_from_its_question_marks():
    colors = np.array([[200, 0, 0], [0, 200, 0]], np.uint8)
    names, marks = ["car", GREEK], ["car", "?" * len(GREEK)]
    assert not np.array_equal(add_class_legend(_grey(200, 300), names, colors),
                              add_class_legend(_grey(200, 300), marks, colors))
    assert not np.array_equal(class_key_strip(300, names, colors), class_key_strip(300, marks, colors))
    assert not np.array_equal(name_key(300, [GREEK]), name_key(300, ["?" * len(GREEK)]))
    grey = np.zeros((40, 300), np.uint8)
    assert not np.array_equal(grey_with_key(grey, GREEK, "0", "1"), grey_with_key(grey, "?????", "0", "1"))
    assert not np.array_equal(titled_tiles([_grey()], [GREEK + ".flo"]), titled_tiles([_grey()], ["?????.flo"]))


def test_pillow_text_is_measured_as_drawn():
    """The width a Greek name is measured at is where its ink ends: keys and wrapping keep it inside."""
    (width, height), base = text_mod.text_size(GREEK, 1.0)
    img = np.zeros((60, 300), np.uint8)
    text_mod.put_text(img, GREEK, (10, 40), 1.0, 255)
    cols, rows = np.where(img.max(0) > 60)[0], np.where(img.max(1) > 60)[0]
    assert cols.min() >= 10 and cols.max() <= 10 + width
    assert rows.min() >= 40 - height and rows.max() <= 40 + base
    assert class_key_column_width(["car", GREEK]) > class_key_column_width(["car", "x"])
    key = name_key(60, [GREEK * 3])  # (wrapped: every piece inside the strip)
    assert key.shape[0] > name_key(60, ["x"]).shape[0]
    assert (key[:, -3:] == 255).all()


@pytest.mark.parametrize("label", ["frame 3", "Straße", "voiture électrique", "Жёлтый", "a?b"])
def test_text_opencv_draws_whole_is_unchanged(label):
    """ASCII, Latin and Cyrillic text: OpenCV's own drawing, byte for byte (the docs' figures compare pictures)."""
    ours, theirs = _grey(), _grey()
    text_mod.put_text(ours, label, (5, 40), 0.7, (255, 255, 255), 2)
    cv2.putText(theirs, label, (5, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
    np.testing.assert_array_equal(ours, theirs)
    assert text_mod.text_size(label, 0.7, 2) == cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.7, 2)


@pytest.fixture
def fonts(monkeypatch):
    """``fonts(lacking)``: from then on no installed font has a character of ``lacking`` (caches cleared)."""
    import semflow.plots

    real = semflow.plots.font_file_with

    def without(lacking: str) -> None:
        monkeypatch.setattr(semflow.plots, "font_file_with",
                            lambda chars: None if chars & set(lacking) else real(chars))
        text_mod._drawn.cache_clear()

    yield without
    text_mod._drawn.cache_clear()


@needs_opencv_lacking
def test_characters_no_font_has_are_written_as_their_codes_not_question_marks(fonts):
    """Where no installed font had them, OpenCV drew them as '?': two CJK file names both read '??.flo' and
    their tiles could not be told apart. Now they are written as plot.png writes them, ``\\u6771``, by OpenCV."""
    fonts(CJK + "大阪")
    codes = "\\u6771\\u4eac.flo"
    ours, theirs = _grey(), _grey()
    text_mod.put_text(ours, CJK, (5, 40), 0.5, (255, 255, 255))
    cv2.putText(theirs, codes, (5, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    np.testing.assert_array_equal(ours, theirs)
    assert text_mod.text_size(CJK, 0.5) == cv2.getTextSize(codes, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    assert not np.array_equal(label_image(_grey(), CJK), label_image(_grey(), "大阪.flo"))
    assert not np.array_equal(titled_tiles([_grey()] * 2, [CJK, "大阪.flo"])[:, :240],
                              titled_tiles([_grey()] * 2, [CJK, "大阪.flo"])[:, 240:])


@needs_opencv_lacking
def test_only_the_characters_no_font_has_are_written_as_codes(fonts):
    """Greek (DejaVu Sans has it) beside CJK no font has: the Greek drawn with Pillow, the CJK as its codes."""
    fonts(CJK)
    ours, theirs = _grey(), _grey()
    text_mod.put_text(ours, GREEK + "東", (5, 40), 0.7, (255, 255, 255))
    text_mod.put_text(theirs, GREEK + "\\u6771", (5, 40), 0.7, (255, 255, 255))
    np.testing.assert_array_equal(ours, theirs)
    marks = _grey()
    text_mod.put_text(marks, GREEK + "?", (5, 40), 0.7, (255, 255, 255))
    assert not np.array_equal(ours, marks)


def test_cjk_title_drawn_where_a_font_has_it():
    if font_file_with(frozenset(CJK)) is None:
        pytest.skip("no installed font has CJK characters")
    assert not np.array_equal(label_image(_grey(), CJK), label_image(_grey(), "??.flo"))
    assert title_fits(240, CJK)
