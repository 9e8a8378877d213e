"""The key strip under `flow --explain`'s grey maps (semflow.grey_key) and the values explain.grey_preview
gives it: what black and white stand for, written where they can be read."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from semflow.explain import grey_preview
from semflow.grey_key import grey_levels, grey_with_key, value_text


def _ink(image: np.ndarray) -> np.ndarray:
    """Where text is drawn (black on the key's white)."""
    return image < 128


def _ramp_rows(strip: np.ndarray) -> list[int]:
    """The rows of ``strip`` that hold a ramp: a run of columns, most of its width, rising from black to white
    through a hundred greys or more (a row of text rises from black to white in a step or two)."""
    rows = []
    for r, row in enumerate(strip.astype(int)):
        starts = np.flatnonzero(row <= 5)
        for start in starts[:1]:
            run = row[start:]
            falls = np.flatnonzero(np.diff(run) < 0)
            run = run[:falls[0] + 1] if falls.size else run
            if run.size >= 0.8 * strip.shape[1] and run[-1] >= 250 and (np.diff(run) > 0).sum() >= 100:
                rows.append(r)
    return rows


def _parts(canvas: np.ndarray, map_height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The key strip's rows above its ramp (the title), the ramp's rows and the rows below it (the end values),
    the ramp's frame (a row above it, a row below) left out."""
    strip = canvas[map_height:]
    ramp = _ramp_rows(strip)
    assert ramp and ramp == list(range(ramp[0], ramp[-1] + 1)), ramp  # (one band of ramp rows)
    return strip[:ramp[0] - 1], strip[ramp[0]:ramp[-1] + 1], strip[ramp[-1] + 2:]


def test_the_key_rises_black_to_white_under_the_map_with_its_title_above_and_end_values_below() -> None:
    """A 32 px map sits unchanged at the left of a canvas wide enough for its key, white beside it; under it
    the ramp runs black (left) to white (right) in a dark frame (its white end reads on the white strip),
    the title above it, the low value under its left end and the high one under its right end, nothing cut
    at the canvas's right or bottom edge."""
    grey = np.random.default_rng(0).integers(0, 256, (20, 32), dtype=np.uint8)
    canvas = grey_with_key(grey, "grid_fb_error, px", "0.5", "1.2e+06")
    width = canvas.shape[1]
    np.testing.assert_array_equal(canvas[:20, :32], grey)
    assert (canvas[:20, 32:] == 255).all()  # (beside the narrow map: white)
    title, ramp, ends = _parts(canvas, 20)
    assert _ink(title).any()
    row = ramp[ramp.shape[0] // 2].astype(int)
    black = np.flatnonzero(row <= 5)[0]
    white_end = black + np.flatnonzero(np.diff(row[black:]) < 0)[0]  # (where the rise from black ends)
    assert row[white_end] == 255 and row[white_end + 1] < 128  # (the frame right of its white end)
    ink_columns = np.flatnonzero(_ink(ends).any(axis=0))
    assert ink_columns.size and ink_columns[0] < width // 4 and ink_columns[-1] > width - 20  # both ends written
    assert not _ink(canvas[:, -2:]).any() and not _ink(canvas[-1]).any()  # nothing runs off the canvas


def test_the_key_texts_shrink_to_fit_and_each_end_value_stays_under_its_half() -> None:
    """A title wider than the canvas shrinks to fit it; a low value too wide for half the canvas shrinks
    until it leaves the middle free, so that it cannot run into the high value."""
    canvas = grey_with_key(np.zeros((10, 10), np.uint8), "grid_cost, matching cost (black also: no value)",
                           "-123456.78 (lowest)", "1.2e+06")
    width = canvas.shape[1]
    title, _, ends = _parts(canvas, 10)
    assert _ink(title).any() and not _ink(title[:, -3:]).any()
    ink_columns = np.flatnonzero(_ink(ends).any(axis=0))
    assert ink_columns[0] < width // 4 and ink_columns[-1] > width * 3 // 4
    assert not _ink(ends[:, width // 2 - 2:width // 2 + 2]).any()  # (the low value's and the high's apart)


def _title_height(canvas: np.ndarray, map_height: int) -> int:
    title, _, _ = _parts(canvas, map_height)
    rows = np.flatnonzero(_ink(title).any(axis=1))
    return int(rows[-1] - rows[0] + 1)


def test_the_key_text_grows_on_a_wide_map_and_a_long_title_shrinks_only_so_far() -> None:
    """The text grows with a wide map's key (read at the map's own scale), and a title too long for the key
    shrinks no smaller than a readable size (it is then cut, not drawn as dots)."""
    narrow = _title_height(grey_with_key(np.zeros((10, 32), np.uint8), "Ag confidence", "0", "1"), 10)
    wide = _title_height(grey_with_key(np.zeros((10, 600), np.uint8), "Ag confidence", "0", "1"), 10)
    assert wide > narrow
    long_title = "Ag " + "a very long map name " * 6
    shrunk = _title_height(grey_with_key(np.zeros((10, 32), np.uint8), long_title, "0", "1"), 10)
    assert shrunk >= 0.75 * narrow


def test_a_key_is_drawn_only_under_a_grey_map() -> None:
    with pytest.raises(ValueError, match="expected a grey map"):
        grey_with_key(np.zeros((4, 4, 3), np.uint8), "confidence", "0", "1")


def test_the_key_values_read_as_the_map_values_they_stand_for() -> None:
    """grey_preview: a map in px is stretched from its smallest to its largest value, which the key's ends
    name (with its unit in the title); a map within [0, 1] is drawn as it is, its ends 0 and 1; a mask's
    ends read no and yes; points with no value are black, which the title then says."""
    error = np.array([[2.0, 3.5], [5.0, 4.0]], np.float32)
    grey, title, low, high = grey_preview("grid_fb_error", error)
    assert (title, low, high) == ("grid_fb_error, px", value_text(2.0), value_text(5.0))
    assert grey[error == 2.0].max() == 0 and grey[error == 5.0].min() == 255
    share = np.array([[0.2, 0.6]], np.float32)
    grey, title, low, high = grey_preview("confidence", share)
    assert (title, low, high) == ("confidence", "0", "1")
    np.testing.assert_array_equal(grey, grey_levels(share))
    grey, title, low, high = grey_preview("grid_valid", np.array([[True, False]]))
    assert (low, high) == ("0 no", "1 yes") and grey.tolist() == [[255, 0]]
    grey, title, _, _ = grey_preview("confidence", np.array([[0.5, np.nan]], np.float32))
    assert title == "confidence (black also: no value)" and grey[0, 1] == 0


def test_a_key_value_is_three_digits_at_most() -> None:
    assert [value_text(v) for v in (0.0, 1.0, 0.5, 143.27, 1234567.0)] == ["0", "1", "0.5", "143", "1.23e6"]


def test_a_key_value_reads_as_the_legends_numbers_do() -> None:
    """A key wrote 1000 as "1e+03" (Python's ".3g"), where the flow legend writes 1000, and 1e6 short: a key's
    thousands are whole numbers, larger and smaller values have a short exponent."""
    values = (1000.0, 999.7, 1234.4, -1000.0, 9994.0, 9996.0, 1e4, 12345.0, 2e39, 1e-5, -2.5e-7, 0.0001)
    assert [value_text(v) for v in values] == ["1000", "1000", "1234", "-1000", "9994", "1e4", "1e4", "1.23e4", "2e39",
                                               "1e-5", "-2.5e-7", "0.0001"]


def test_a_float64_map_beyond_float32s_range_keeps_its_values() -> None:
    """A float64 map (a method's own, saved as .npy) whose values float32 cannot hold is stretched from its
    own ends, not read as infinite: no 'no value' in the title, its largest value white and named."""
    huge = np.array([[0.0, 1e39], [5e38, 2e39]])
    grey, title, low, high = grey_preview("grid_cost", huge)
    assert title == "grid_cost, matching cost" and (low, high) == (value_text(0.0), value_text(2e39))
    assert grey[1, 1] == 255 and grey[0, 0] == 0 and 0 < grey[0, 1] < 255


def test_a_value_is_drawn_the_same_grey_in_every_explain_grey_map(tmp_path: Path) -> None:
    """The grey maps of the methods without a writer of their own rounded down (0.999 drawn 254) while
    semantic's confidence.png rounded to the nearest grey (255): one value, two greys a level apart. Both now
    use one rule, the key's ramp's (to the nearest grey)."""
    from semflow.baseline.base import FlowResult
    from semflow.semantic_explain import write_semantic_explain

    values = np.array([[0.0, 0.3, 0.5, 0.999], [1 / 255 * 0.6, 0.75, 0.9, 1.0]], np.float32)
    expected = np.array([[0, 77, 128, 255], [1, 191, 230, 255]], np.uint8)
    np.testing.assert_array_equal(grey_levels(values), expected)
    np.testing.assert_array_equal(grey_preview("confidence", values)[0], expected)
    extras = {"model_map": np.zeros((2, 4), np.uint8), "baseline_flow": np.zeros((2, 4, 2), np.float32),
              "segmentation_rgb": np.zeros((2, 4, 3), np.uint8), "labels": np.zeros((2, 4), np.uint8),
              "kinds": np.zeros((2, 4), np.uint8), "occlusion": np.zeros((2, 4), np.uint8)}
    write_semantic_explain(FlowResult(np.zeros((2, 4, 2), np.float32), values, extras), tmp_path)
    drawn = cv2.imread(str(tmp_path / "confidence.png"), cv2.IMREAD_UNCHANGED)[:2, :4]
    np.testing.assert_array_equal(drawn, expected)


def test_a_map_with_a_unit_is_drawn_on_its_own_range_even_within_0_to_1() -> None:
    """discrete's grid_cost (matching costs of about 0 to 0.07) was drawn on the 0-1 scale shares are drawn on,
    nearly black, because its values lie within [0, 1]; a cost (or an error in px) is not a share. A map
    with a unit is stretched from its smallest to its largest value, which the key's ends name."""
    cost = np.array([[0.01, 0.04], [0.07, 0.02]], np.float32)
    for name in ("grid_cost", "grid_fb_error"):
        grey, title, low, high = grey_preview(name, cost)
        assert grey[1, 0] == 255 and grey[0, 0] == 0 and 0 < grey[0, 1] < 255, name
        assert (low, high) == (value_text(0.01), value_text(0.07)) and "," in title, (name, title)
    share = grey_preview("grid_crf_agrees", cost)  # (a map without a unit, within [0, 1], stays as it is)
    np.testing.assert_array_equal(share[0], grey_levels(cost))
    assert (share[2], share[3]) == ("0", "1")
