"""Where with_class_key puts a segmentation overlay's class key: beside a frame only while it is narrow
and at least as tall as the key in one column."""

from __future__ import annotations

import numpy as np

from semflow.class_legend import class_key_column_width, class_key_fits, class_key_strip_height
from semflow.render import class_key, with_class_key
from semflow.segmentation.labels import LabelSet


def _label_set(names: list[str]) -> LabelSet:
    return LabelSet("many", names, {}, palette=np.random.default_rng(0).integers(0, 256, (len(names), 3), np.uint8))


def test_a_narrow_frame_gets_its_key_beside_it_from_exactly_the_key_columns_height() -> None:
    """A 50 px wide frame too tall to be enlarged (its long side at the cap) gets the one-column key beside it
    when it is at least as tall as that column, from exactly that height; one row lower, the key goes below."""
    label_set = _label_set([f"class_{i:03d}" for i in range(120)])
    names, _ = class_key(label_set)
    width = class_key_column_width(names)
    height = class_key_strip_height(width, names)
    assert height > 1000  # (then the frame is not enlarged)
    beside = with_class_key(np.zeros((height, 50, 3), np.uint8), label_set)
    assert beside.shape == (height, 50 + 4 + width, 3)
    below = with_class_key(np.zeros((height - 1, 50, 3), np.uint8), label_set)
    assert below.shape[1] == 50 and below.shape[0] > height


def test_a_frame_wide_enough_gets_a_key_too_tall_for_it_below_not_beside() -> None:
    """A 250 px wide frame whose key does not fit in its lower part gets the key in a strip below, as
    before, however tall it is: the column beside is only for frames narrower than a key strip."""
    label_set = _label_set([f"a_rather_long_class_name_{i:03d}" for i in range(60)])
    names, _ = class_key(label_set)
    frame = np.zeros((1000, 250, 3), np.uint8)
    assert not class_key_fits(1000, 250, names) and 1000 >= class_key_strip_height(class_key_column_width(names), names)
    out = with_class_key(frame, label_set)
    assert out.shape[1] == 250 and out.shape[0] > 1000
