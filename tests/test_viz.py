"""Colour wheel (Middlebury convention), shared normaliser, legend, tiling and error maps."""

from __future__ import annotations

import colorsys
import warnings

import flow_vis
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import semflow
from semflow.class_legend import add_class_legend
from semflow.errors import InputError
from semflow.viz import (
    BAND_ROWS,
    add_legend,
    color_wheel,
    error_to_color,
    flow_to_color,
    max_flow_of,
    tile,
    wheel_colors,
)


def hsv_of(rgb: np.ndarray) -> tuple[float, float, float]:
    """Hue in degrees [0, 360), saturation and value in [0, 1] of one uint8 RGB colour."""
    h, s, v = colorsys.rgb_to_hsv(*(np.asarray(rgb, float) / 255.0))
    return h * 360.0, s, v


def one_vector(u: float, v: float, max_flow: float = 1.0) -> np.ndarray:
    """Colour of a single flow vector under ``max_flow`` (drawn in a 2x2 field)."""
    flow = np.zeros((2, 2, 2), np.float32)
    flow[0, 0] = (u, v)
    return flow_to_color(flow, max_flow)[0, 0]


def hue_distance(a: float, b: float) -> float:
    d = abs(a - b) % 360
    return min(d, 360 - d)


# Middlebury wheel: right -> red, down -> yellow-orange, left -> cyan, up -> blue-violet.
DIRECTIONS = {
    "right": ((1.0, 0.0), 0.0, 15.0),
    "down": ((0.0, 1.0), 50.0, 15.0),
    "left": ((-1.0, 0.0), 190.0, 20.0),
    "up": ((0.0, -1.0), 262.0, 22.0),
}


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("magnitude", [0.3, 1.0, 7.0])
def test_direction_hues(direction: str, magnitude: float) -> None:
    (u, v), hue, tolerance = DIRECTIONS[direction]
    h, s, _ = hsv_of(one_vector(u * magnitude, v * magnitude, max_flow=magnitude / 0.9))
    assert s > 0.5
    assert hue_distance(h, hue) <= tolerance, f"{direction}: hue {h:.1f}, expected about {hue}"


def test_hue_turns_monotonically_clockwise_in_the_image() -> None:
    """Going right -> down -> left -> up (clockwise on screen) the hue increases through red, yellow, cyan, blue."""
    angles = np.deg2rad(np.arange(0, 360, 30))
    hues = [hsv_of(one_vector(np.cos(a), np.sin(a)))[0] for a in angles]
    unwrapped = np.unwrap(np.deg2rad(hues))
    assert (np.diff(unwrapped) > 0).all(), hues


def test_saturation_grows_with_magnitude_and_zero_is_white() -> None:
    assert one_vector(0.0, 0.0).tolist() == [255, 255, 255]
    for u, v in ((1, 0), (0, 1), (-1, 0), (0, -1), (0.7, -0.7)):
        sats = [hsv_of(one_vector(u * m, v * m, max_flow=1.0))[1] for m in (0.1, 0.3, 0.6, 0.95)]
        assert all(b > a for a, b in zip(sats, sats[1:])), sats
        assert all(hsv_of(one_vector(u * m, v * m))[2] == pytest.approx(1.0, abs=0.01) for m in (0.1, 0.9))


def test_beyond_max_flow_is_darkened_not_wrapped() -> None:
    inside, beyond = one_vector(0.9, 0.0, 1.0), one_vector(3.0, 0.0, 1.0)
    assert hsv_of(beyond)[2] < hsv_of(inside)[2]
    assert hue_distance(hsv_of(beyond)[0], 0.0) < 15


def test_default_normaliser_is_this_flows_maximum_and_shared_one_compares() -> None:
    small = np.zeros((4, 4, 2), np.float32)
    small[..., 0] = np.linspace(0, 2, 16).reshape(4, 4)
    big = small * 5
    # Each under its own maximum: identical pictures although the motions differ by 5x.
    assert np.abs(flow_to_color(small).astype(int) - flow_to_color(big)).max() <= 1  # up to rounding
    # Under one shared normaliser the small motion is paler.
    shared = max_flow_of([small, big], percentile=100)
    assert shared == pytest.approx(10.0)
    s_small = hsv_of(flow_to_color(small, shared)[3, 3])[1]
    s_big = hsv_of(flow_to_color(big, shared)[3, 3])[1]
    assert s_small < s_big


def test_max_flow_of_percentile_valid_mask_and_floor() -> None:
    flow = np.zeros((10, 10, 2), np.float32)
    flow[..., 0] = np.arange(100).reshape(10, 10)
    assert max_flow_of(flow, percentile=100) == pytest.approx(99.0)
    assert max_flow_of(flow, percentile=50) == pytest.approx(49.5)
    valid = flow[..., 0] < 20
    assert max_flow_of([flow], percentile=100, valid=[valid]) == pytest.approx(19.0)
    assert max_flow_of(np.zeros((3, 3, 2), np.float32)) == 1.0  # never below 1 px
    assert max_flow_of([flow], percentile=100, valid=[np.zeros((10, 10), bool)]) == 1.0


def test_invalid_pixels_are_black_and_bad_input_is_rejected() -> None:
    flow = np.ones((3, 3, 2), np.float32)
    valid = np.ones((3, 3), bool)
    valid[1, 1] = False
    img = flow_to_color(flow, 2.0, valid=valid)
    assert img[1, 1].tolist() == [0, 0, 0] and img[0, 0].any()
    bad = flow.copy()
    bad[0, 0, 1] = np.inf
    with pytest.raises(InputError, match="NaN or inf"):
        flow_to_color(bad)
    bad[0, 0, 1] = np.nan
    with pytest.raises(InputError, match="NaN or inf"):
        flow_to_color(bad, 1.0)
    for bad in (0.0, 1e-4, 2e6, float("nan")):  # (0 was a ValueError: the one check that was no InputError)
        with pytest.raises(InputError, match=r"must be between 0.001 and 1e\+06 px"):
            flow_to_color(flow, bad)
    with pytest.raises(InputError, match="max_flow must be a number of px, got '5'"):
        flow_to_color(flow, "5")
    with pytest.raises(InputError, match="shape"):
        flow_to_color(np.zeros((3, 3, 3), np.float32))


def test_color_wheel_legend_disc() -> None:
    wheel = color_wheel(65)
    c = 32
    assert wheel[c, c].tolist() == [255, 255, 255]      # zero motion at the centre
    assert wheel[0, 0].tolist() == [255, 255, 255]      # outside the disc
    assert hue_distance(hsv_of(wheel[c, 62])[0], 0) < 15      # right edge: red
    assert hue_distance(hsv_of(wheel[62, c])[0], 50) < 15     # bottom: yellow-orange
    assert hue_distance(hsv_of(wheel[c, 2])[0], 190) < 20     # left: cyan
    assert hue_distance(hsv_of(wheel[2, c])[0], 262) < 22     # top: blue-violet


def test_add_legend_draws_in_a_copy_at_the_lower_right() -> None:
    base = np.full((120, 160, 3), 128, np.uint8)
    out = add_legend(base, 12.5)
    assert out.shape == base.shape and (base == 128).all()
    changed = (out != base).any(axis=2)
    assert changed[60:, 80:].sum() > 100                     # wheel and scale text
    assert changed[:40, :80].sum() == 0                      # nothing in the upper left without a label
    assert add_legend(base, 12.5, label="dis")[:40, :80].any(axis=2).sum() > 0
    np.testing.assert_array_equal(add_legend(base, 12.5), out)  # deterministic
    assert (add_legend(base, 3.0) != out).any()               # the number is drawn


def test_tile_layout_and_size_check() -> None:
    a = np.zeros((10, 20, 3), np.uint8)
    b = np.full((10, 20, 3), 50, np.uint8)
    row = tile([a, b, a], gap=4)
    assert row.shape == (10, 3 * 20 + 2 * 4, 3)
    assert (row[:, 24:44] == 50).all() and (row[:, 20:24] == 255).all()
    grid = tile([a, b, a], columns=2, gap=2)
    assert grid.shape == (22, 42, 3)
    assert (grid[12:, 22:] == 255).all()  # the empty fourth cell stays white
    # more columns than images: one row (`visualize --columns 1000` drew 999 empty tiles; 10**21 a traceback)
    assert tile([a, b], columns=1000).shape == tile([a, b]).shape == tile([a, b], columns=10**21).shape
    with pytest.raises(ValueError, match="different sizes"):
        tile([a, np.zeros((10, 21, 3), np.uint8)])
    with pytest.raises(ValueError):
        tile([])


def test_error_to_color_is_monotone_and_saturates() -> None:
    err = np.array([[0.0, 1.0, 2.5, 5.0, 50.0]], np.float32)
    img = error_to_color(err, 5.0)
    brightness = img.astype(int).sum(axis=2)[0]
    assert (np.diff(brightness[:4]) > 0).all()
    assert img[0, 3].tolist() == img[0, 4].tolist()
    valid = np.array([[True, True, False, True, True]])
    assert error_to_color(err, 5.0, valid=valid)[0, 2].tolist() == [0, 0, 0]


def test_error_to_color_draws_unknown_errors_black_and_refuses_a_scale_it_cannot_use() -> None:
    """NaN errors were a numpy cast warning and an arbitrary colour; max_error=0 a division warning."""
    err = np.array([[np.nan, np.inf, 1.0]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        img = error_to_color(err, 5.0)
    assert img[0, 0].tolist() == img[0, 1].tolist() == [0, 0, 0]
    assert img[0, 2].tolist() == error_to_color(np.float32([[1.0]]), 5.0)[0, 0].tolist() != [0, 0, 0]
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="max_error must be a positive number of pixels"):
            error_to_color(err, bad)
    with pytest.raises(InputError, match="mask of shape"):
        error_to_color(err, 5.0, valid=np.ones((2, 2), bool))


def test_public_flow_to_color() -> None:
    assert semflow.flow_to_color is flow_to_color


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(seed=st.integers(0, 2**31), rows=st.integers(1, 3 * BAND_ROWS + 1), spread=st.sampled_from([0.01, 1.0, 30.0]))
def test_wheel_colors_are_exactly_flow_vis(seed: int, rows: int, spread: float) -> None:
    """Band by band, the same colours as flow_vis over the whole image: inside and beyond the wheel's
    rim, at zero, on the axes (where the wheel wraps around), for any number of rows."""
    rng = np.random.default_rng(seed)
    u, v = (rng.normal(0, spread, (2, rows, 7)) * rng.random((2, rows, 7)) ** 3).astype(np.float32)
    u[0, :3], v[0, :3] = (0, -1, 1), (0, 0, 0)
    np.testing.assert_array_equal(wheel_colors(u, v), flow_vis.flow_uv_to_colors(u, v))


def test_drawing_helpers_refuse_arguments_they_cannot_draw() -> None:
    """tile(columns=-1) and color_wheel(-5) were numpy "negative dimensions", add_legend on a grey image a
    numpy TypeError."""
    with pytest.raises(ValueError, match="tile: columns must be at least 1, got -1"):
        tile([np.zeros((4, 4, 3), np.uint8)], columns=-1)
    with pytest.raises(ValueError, match="color_wheel: size must be at least 2 px, got -5"):
        color_wheel(-5)
    with pytest.raises(ValueError, match=r"add_legend: expected an RGB image \(H, W, 3\), got shape \(40, 40\)"):
        add_legend(np.zeros((40, 40), np.uint8), 3.0)


@pytest.mark.parametrize("h, w", [(180, 240), (240, 320), (480, 640)])
def test_a_class_key_shows_every_class_whole_where_the_tile_allows(h: int, w: int) -> None:
    """VOC's 21 names on a 240 px tile: the key ran past the tile's right edge, its last columns' swatches
    and names cut off or left out."""
    from semflow.segmentation import get_label_set

    voc = get_label_set("voc")
    seg = np.full((h, w, 3), 255, np.uint8)
    keyed = add_class_legend(seg, voc.class_names, voc.palette)
    for colour in voc.palette[1:21]:  # (0, background, is black: the key's box is dark too)
        assert (keyed == colour).all(axis=2).sum() >= 4, colour  # a whole swatch of each
    assert (keyed[:, -2:] == 255).all()  # nothing drawn up to the right edge: every column fits
    assert (keyed[: h // 10] == 255).all()  # the tile's top stays visible


def test_a_videos_legend_is_drawn_from_one_wheel(monkeypatch) -> None:
    """Every frame of a video rebuilt the colour wheel and fitted the legend's text again: 0.67 ms a frame,
    as much as colouring a 96x72 flow. The drawing itself is unchanged."""
    import semflow.viz as viz

    image = np.full((150, 200, 3), 90, np.uint8)
    first = add_legend(image, 7.5)
    built = []
    monkeypatch.setattr(viz, "color_wheel", lambda size=96: built.append(size) or color_wheel(size))
    for _ in range(3):
        assert np.array_equal(add_legend(image, 7.5), first)
    assert built == []
    assert np.array_equal(add_legend(image, np.array(7.5)), first)  # (a 0-d array is no cache key: as before)


@pytest.mark.parametrize("h, w", [(48, 64), (60, 80), (66, 88), (73, 97), (120, 160)])
def test_the_legend_text_stays_below_the_tiles_title(h: int, w: int) -> None:
    """On tiles 16-66 px high the "max N px" box went "above the wheel", into the title bar, and the title
    drawn over it read "baseline?px"."""
    from semflow.viz import legend_text_box, title_bar_height

    _, _, x, y, bw, bh = legend_text_box(h, w, 5.0)
    assert y >= title_bar_height(h, w) and x >= 0 and x + bw <= w and y + bh <= h


@pytest.mark.parametrize("h, w", [(40, 40), (41, 40), (40, 41), (41, 41), (100, 36)])
@pytest.mark.parametrize("max_flow", [1e6, 999999.9, 123456.7])
def test_the_legend_text_of_a_huge_normaliser_fits_a_40_px_image(h: int, w: int, max_flow: float) -> None:
    """At 40-41 px with --max-flow 1e6 the box of "1000000" was 42 px wide: its last digit ran off the image.
    The shortest text is now the value to two digits (1e6, 1.2e5), which still reads as the number."""
    from semflow.viz import legend_text_box

    text, _, x, y, bw, bh = legend_text_box(h, w, max_flow)
    assert x >= 0 and x + bw <= w and y >= 0 and y + bh <= h, (text, x, bw)
    assert float(text.removeprefix("max ").removesuffix(" px")) == pytest.approx(max_flow, rel=0.05)


@pytest.mark.parametrize(("h", "w"), [(28, 52), (28, 60), (30, 64)])
def test_a_huge_normaliser_beside_the_wheel_is_shortened_to_the_room_the_wheel_leaves(h: int, w: int) -> None:
    """On a low image the scale text goes beside the wheel; "1000000" was shortened only when wider than the
    whole image, so at 28x52 its 42 px box covered the wheel. It is shortened against the room it goes in."""
    from semflow.viz import legend_text_box

    size = 24  # the wheel's side on images this small
    text, _, x, y, bw, bh = legend_text_box(h, w, 1e6)
    assert text == "1e6"
    assert x + bw <= w - size - 4, (text, x, bw)  # left of the wheel
    assert legend_text_box(h, w, 12.3)[0] in ("12", "12.30 px")  # (a value that fits keeps its digits)


def test_a_small_normaliser_is_not_written_as_zero() -> None:
    """--max-flow 0.04 was labelled "max 0.0 px" (one decimal)."""
    from semflow.viz import legend_text_box

    assert legend_text_box(240, 320, 0.04)[0] == "max 0.04 px"
    assert legend_text_box(240, 320, 0.5)[0] == "max 0.50 px" and legend_text_box(240, 320, 12.0)[0] == "max 12.00 px"


def test_what_lies_under_invalid_pixels_is_neither_checked_nor_counted() -> None:
    """flow_to_color and max_flow_of refused NaN under pixels marked invalid (write_flow takes it), and the
    default normaliser counted what lay there: 500 px of garbage under an invalid pixel washed out the rest."""
    rng = np.random.default_rng(0)
    flow = rng.uniform(-5, 5, (12, 16, 2)).astype(np.float32)
    valid = np.ones((12, 16), bool)
    valid[2:4, 3:6] = False
    clean = np.where(valid[..., None], flow, 0).astype(np.float32)
    for garbage in (np.nan, 1e10, 500.0):
        dirty = flow.copy()
        dirty[~valid] = garbage
        assert np.array_equal(flow_to_color(dirty, valid=valid), flow_to_color(clean, valid=valid))
        assert max_flow_of([dirty], valid=[valid]) == max_flow_of([clean], valid=[valid])
    assert not flow_to_color(clean, valid=valid)[~valid].any()


@pytest.mark.parametrize("percentile", [150, -1, float("nan"), "99"])
def test_a_percentile_out_of_0_to_100_is_an_input_error(percentile) -> None:
    with pytest.raises(InputError, match="percentile must be a number from 0 to 100"):
        max_flow_of([np.zeros((4, 4, 2), np.float32)], percentile=percentile)


def test_helpers_name_a_wrong_shape_in_one_line() -> None:
    """A public API probe: error_to_color of a flow was cv2's ColorMap error, tile of grey images numpy's
    "could not broadcast", max_flow_of with fewer masks than flows an IndexError."""
    from semflow.viz import error_to_color, tile

    with pytest.raises(InputError, match=r"error_to_color takes an error map \(H, W\) in px, got shape \(4, 5, 2\)"):
        error_to_color(np.zeros((4, 5, 2), np.float32))
    with pytest.raises(ValueError, match=r"tile takes RGB images \(H, W, 3\), got shape \(4, 5\)"):
        tile([np.zeros((4, 5), np.uint8)])
    flow = np.ones((4, 5, 2), np.float32)
    with pytest.raises(InputError, match="2 flows but 1 valid masks"):
        max_flow_of([flow, flow], valid=[None])


def test_titles_and_class_names_that_are_not_ascii_are_drawn_as_they_are_spelt() -> None:
    """OpenCV 4's Hershey fonts had ASCII glyphs only: a file "Straße.flo" was titled "Stra??e.flo" (one "?"
    a byte) and a class "Gebäude" keyed "Geb??ude". OpenCV 5, which the project requires, draws them."""
    from semflow.class_legend import add_class_legend
    from semflow.viz import label_image

    img = np.full((120, 360, 3), 90, np.uint8)
    for text, lookalikes in (("Straße.flo", ("Stra?e.flo", "Stra??e.flo", "Strae.flo")),
                             ("Дорога", ("??????", "?" * 12, "")), ("é", ("e", "?", "??"))):
        drawn = label_image(img, text)
        assert drawn[:10].max() > 150  # white letters on the title bar (a lone "é" reaches 200-206)...
        for other in lookalikes:  # ...that are not a question mark's, nor the letter without its accent
            assert not np.array_equal(drawn, label_image(img, other)), (text, other)
    tile = np.full((200, 300, 3), 60, np.uint8)
    colors = np.array([[200, 0, 0], [0, 200, 0]])
    keyed = add_class_legend(tile, ["Gebäude", "car"], colors)
    for other in ("Geb??ude", "Geb?ude", "Gebaude"):
        assert not np.array_equal(keyed, add_class_legend(tile, [other, "car"], colors))



def test_the_largest_vector_is_drawn_at_full_saturation_not_darkened() -> None:
    """Under the default normaliser the largest vector lies on the wheel's rim: at full saturation, with one
    channel at (or a rounding below) 255, never darkened as beyond the normaliser (x 0.75: 191 at most).
    Float32 rounding put some vectors of over ~100 px a hair beyond a margin of 1e-5 px, e.g. (2174.7129,
    219.25134); 300 random ones of 100 to 3000 px, each the largest of its flow."""
    rng = np.random.default_rng(0)
    vectors = [(2174.712890625, 219.2513427734375)]
    for _ in range(300):
        m, a = rng.uniform(100, 3000), rng.uniform(0, 2 * np.pi)
        vectors.append((m * np.cos(a), m * np.sin(a)))
    for u, v in vectors:
        flow = np.zeros((1, 2, 2), np.float32)
        flow[0, 0] = (u, v)
        assert flow_to_color(flow)[0, 0].max() >= 254, (u, v)


def test_the_default_percentile_is_the_99th() -> None:
    """Magnitudes 0, 1, ..., 99 px: the 99th percentile (linear between ranks) is at rank 0.99 * 99 = 98.01."""
    flow = np.zeros((10, 10, 2), np.float32)
    flow[..., 0] = np.arange(100).reshape(10, 10)
    assert max_flow_of(flow) == pytest.approx(98.01, abs=1e-4)
    assert max_flow_of([flow[:5], flow[5:]]) == pytest.approx(98.01, abs=1e-4)  # pooled over the flows


def test_max_flow_of_leaves_invalid_pixels_out_of_the_percentile() -> None:
    """Valid magnitudes 0..19 px among 80 invalid pixels: the median is that of the valid ones, 9.5 px
    (not 0, were the invalid pixels counted as zero motion)."""
    flow = np.zeros((10, 10, 2), np.float32)
    flow[..., 0] = np.arange(100).reshape(10, 10)
    valid = flow[..., 0] < 20
    assert max_flow_of([flow], percentile=50, valid=[valid]) == pytest.approx(9.5)


def test_max_flow_limits_are_inclusive() -> None:
    flow = np.ones((2, 2, 2), np.float32)
    for edge in (1e-3, 1e6):
        assert flow_to_color(flow, edge).shape == (2, 2, 3)


def test_error_colours_are_matplotlibs_inferno_in_rgb() -> None:
    """0 to max_error runs through inferno (black, purple, red, yellow), as matplotlib draws it, in RGB
    order (OpenCV's colour maps are BGR)."""
    import matplotlib

    levels = np.linspace(0.0, 1.0, 11)
    img = error_to_color(np.float32(levels * 5.0)[None], 5.0)[0].astype(int)
    expected = np.round(np.asarray(matplotlib.colormaps["inferno"](levels))[:, :3] * 255).astype(int)
    assert np.abs(img - expected).max() <= 4


def test_the_legend_wheel_is_a_disc_over_the_image() -> None:
    """Only the disc is drawn: the corners of the wheel's square keep the image (black here); its centre,
    zero motion, is white."""
    out = add_legend(np.zeros((200, 300, 3), np.uint8), 5.0)
    size = 200 // 5  # the wheel's side: a fifth of the shorter side (24 to 128 px)
    y0, x0 = 200 - size - 4, 300 - size - 4
    for y, x in ((y0, x0), (y0, x0 + size - 1), (y0 + size - 1, x0), (y0 + size - 1, x0 + size - 1)):
        assert out[y, x].tolist() == [0, 0, 0]
    assert out[y0 + size // 2, x0 + size // 2].min() >= 240


def test_the_error_scale_ramp_ends_at_max_error() -> None:
    """The scale's ramp runs from 0 to max_error over its width: the hottest colour (max_error and above)
    is only at its right end, not over the half of it that a ramp to twice max_error would saturate."""
    from semflow.viz import add_error_scale

    out = add_error_scale(np.zeros((120, 200, 3), np.uint8), 5.0)
    hottest = error_to_color(np.float32([[5.0]]), 5.0)[0, 0]
    columns = np.unique(np.nonzero((out == hottest).all(axis=2))[1])
    assert 1 <= columns.size <= 2


def test_error_to_color_beyond_float32_saturates_without_a_warning() -> None:
    """A fuzzing probe: a finite error of 1e300 (float64) overflowed the float32 cast (a RuntimeWarning) and
    was drawn black, as unknown; max_error 1e-300 was 0 in float32 (0 / 0); 1e39 overflowed too."""
    import warnings

    from semflow.viz import error_to_color

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        drawn = error_to_color(np.array([[1e300, 5.0, np.inf, 0.0]]), 5.0)
        tiny = error_to_color(np.array([[0.0, 1.0]]), 1e-300)
        huge = error_to_color(np.array([[0.0, 1.0]], np.float32), 1e39)
    np.testing.assert_array_equal(drawn[0, 0], drawn[0, 1])  # saturated, as any error over max_error
    assert drawn[0, 0].any() and not drawn[0, 2].any()  # (inf stays black: not finite)
    np.testing.assert_array_equal(tiny[0], error_to_color(np.array([[0.0, 1.0]]), 1e-30)[0])
    np.testing.assert_array_equal(huge[0, 0], huge[0, 1])  # both at the scale's dark end


def test_error_to_color_over_a_tiny_max_error_saturates_without_a_warning() -> None:
    """max_error 1e-300 (raised to float32's smallest normal) over an error of 5 px overflowed the division
    (a RuntimeWarning, "overflow encountered in divide"); the error is drawn saturated, as any over max_error."""
    import warnings

    from semflow.viz import error_to_color

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        drawn = error_to_color(np.array([[5.0, 1e30, 0.0]]), 1e-300)
    np.testing.assert_array_equal(drawn[0, 0], drawn[0, 1])
    np.testing.assert_array_equal(drawn[0, 0], error_to_color(np.float32([[5.0]]), 1.0)[0, 0])


@pytest.mark.parametrize("max_flow", [1.04, 12.0, 0.004])
def test_the_legend_writes_the_normaliser_as_the_printed_line_does(run_cli, tmp_path, max_flow: float) -> None:
    """`visualize --max-flow 1.04` printed "max flow 1.04 px" and drew "max 1.0 px" (one decimal against two):
    the picture and the line said two numbers. The legend now writes it as the line does (and 0.004 printed
    "0.00" where the legend wrote "0.004": both write that)."""
    from semflow.io.flow import write_flow
    from semflow.viz import legend_text_box

    write_flow(tmp_path / "f.flo", np.zeros((240, 320, 2), np.float32))
    result = run_cli("visualize", "f.flo", "-o", "v.png", "--max-flow", str(max_flow))
    assert result.rc == 0, result.stderr
    said = result.stdout.split("(max flow ")[1].split(" px")[0]
    assert legend_text_box(240, 320, max_flow)[0] == f"max {said} px"
    assert float(said) == pytest.approx(max_flow, rel=0.01)
