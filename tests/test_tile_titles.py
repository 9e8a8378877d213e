"""visualize's tile titles (semflow.tile_titles, viz.title_fits): a name is kept whole or numbered, never cut."""

from __future__ import annotations

import numpy as np

from semflow.tile_titles import name_key, titled_tiles
from semflow.viz import label_image, title_fits


def test_a_title_said_to_fit_is_drawn_whole_inside_its_tile() -> None:
    """title_fits says whether label_image shows the name whole: where it says so, the title's last pixel
    stays clear of the tile's right edge; over the widths tried it says both yes and no."""
    name = "sintel_alley_1_frame_0010_pwcnet.flo"
    said = []
    for width in range(60, 200):
        fits = title_fits(width, name)
        said.append(fits)
        if fits:
            bar = label_image(np.zeros((40, width, 3), np.uint8), name)[:12]
            assert not (bar[:, -3:] > 0).any(), width  # (text white on the black bar)
    assert any(said) and not all(said)


def test_a_name_key_narrower_than_one_character_puts_each_on_its_own_line() -> None:
    """A key of tiles a few px wide (1-px flows) has no room for even one character: each line holds one,
    and the key is still made (a line of none would never end)."""
    one_line = name_key(400, ["1: ab"])
    tiny = name_key(6, ["1: ab"])
    assert tiny.shape[1] == 6 and tiny.shape[0] > 3 * one_line.shape[0]  # (five lines of one character)


def test_a_name_with_a_newline_is_titled_on_one_line() -> None:
    """A file name may hold a newline: its title and key line show it escaped (``\\n``), as the command's
    messages do, instead of a second line of text running over the bar's edge and the key's next name."""
    tile = np.full((60, 400, 3), 128, np.uint8)
    titled = titled_tiles([tile, tile], ["a\nb.flo", "c.flo"])
    escaped = titled_tiles([tile, tile], ["a\\nb.flo", "c.flo"])
    assert titled.shape == escaped.shape and np.array_equal(titled, escaped)
    assert name_key(400, ["1: a\nb.flo", "2: c.flo"]).shape == name_key(400, ["1: a\\nb.flo", "2: c.flo"]).shape
