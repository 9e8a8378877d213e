"""What `flow --explain` draws for a method without a writer of its own (each extra map as .npy and .png):
one grey means one value in every map within [0, 1], each grey map has a key, and a grid's unknown points
are drawn as unknown."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from semflow.explain import LEGEND_MIN_SIDE, enlarged_for_legend, write_explain
from semflow.grey_key import grey_levels
from semflow.methods import get_method
from semflow.semantic_explain import write_semantic_explain
from semflow.synthetic import make_scene
from semflow.viz import add_legend, flow_to_color, max_flow_of


def test_generic_explain_draws_confidence_as_it_is_and_grid_flow_unknown_points_black(tmp_path: Path) -> None:
    """confidence.png was stretched from its smallest to its largest value (a confidence of 0.9 to 1 came
    out black to white, and one grey meant another value in `semantic`'s), and grid_flow.png drew the
    grid's unknown points (up to 216 px of garbage) in saturated colours, moving the shared normaliser."""
    scene = make_scene(120, 160, seed=0)
    method = get_method("discrete")
    result = method.estimate(scene.img1, scene.img2)
    write_explain(method, result, tmp_path)
    grey = cv2.imread(str(tmp_path / "confidence.png"), cv2.IMREAD_UNCHANGED)[:120, :160]  # (its key below)
    np.testing.assert_array_equal(grey, grey_levels(result.confidence))
    grid, known = result.extras["grid_flow"], result.extras["grid_valid"].astype(bool)
    assert not known.all()  # (the scene has points the grid could not match)
    drawn = cv2.imread(str(tmp_path / "grid_flow.png"))[..., ::-1]
    flows = [result.flow, grid, result.extras["unsharpened_flow"]]
    max_flow = max_flow_of(flows, valid=[None, known, None])
    np.testing.assert_array_equal(drawn, add_legend(enlarged_for_legend(flow_to_color(grid, max_flow, valid=known)), max_flow))
    assert (flow_to_color(grid, max_flow, valid=known)[~known] == 0).all()


def test_a_small_grid_flow_is_drawn_enlarged_under_its_legend(tmp_path: Path) -> None:
    """discrete's grid_flow.png on a 160x120 frame was its 32x24 grid with the colour wheel (24 px, its whole
    height) and ``max N px`` over most of it. It is now enlarged by a whole factor, each grid point a square
    block, until its shorter side is LEGEND_MIN_SIDE; away from the legend the blocks are the points' colours."""
    scene = make_scene(120, 160, seed=0)
    method = get_method("discrete")
    result = method.estimate(scene.img1, scene.img2)
    write_explain(method, result, tmp_path)
    grid, known = result.extras["grid_flow"], result.extras["grid_valid"].astype(bool)
    h, w = grid.shape[:2]
    k = -(-LEGEND_MIN_SIDE // min(h, w))
    assert k > 1
    drawn = cv2.imread(str(tmp_path / "grid_flow.png"))[..., ::-1]
    assert drawn.shape == (h * k, w * k, 3), drawn.shape
    max_flow = max_flow_of([result.flow, grid, result.extras["unsharpened_flow"]], valid=[None, known, None])
    colours = flow_to_color(grid, max_flow, valid=known)
    top_left = drawn[:h // 2 * k, :w // 2 * k]  # (the legend is in the lower right)
    np.testing.assert_array_equal(top_left, np.repeat(np.repeat(colours[:h // 2, :w // 2], k, axis=0), k, axis=1))
    plain = cv2.imread(str(tmp_path / "flow.png"))  # (the frame's flow: 160x120, large enough as it is)
    assert plain.shape == (*result.flow.shape[:2], 3)


def has_key_ramp(png: np.ndarray, below: int, length: int = 150) -> bool:
    """Whether a row of grey ``png`` under row ``below`` rises step by step from black to white over at least
    ``length`` px (a key's ramp)."""
    for row in png[below:].astype(int):
        blacks = np.flatnonzero(row == 0)
        if blacks.size:
            rest = row[blacks[0]:]
            falls = np.flatnonzero(np.diff(rest) < 0)
            run = rest[:falls[0] + 1] if falls.size else rest
            if run.size >= length and run[-1] == 255:
                return True
    return False


def test_explain_grey_maps_have_a_key_with_their_values_below_the_map_as_it_was(tmp_path: Path) -> None:
    """Grey maps (a confidence, a forward-backward error in px, a mask) were written bare: a user could not
    tell what grey stood for which value. Each now has a ramp from black to white under it (wide enough to
    read beside a 32 px grid map), and the map's own pixels are what they were."""
    scene = make_scene(120, 160, seed=0)
    method = get_method("discrete")
    result = method.estimate(scene.img1, scene.img2)
    write_explain(method, result, tmp_path / "discrete")
    for name in ("confidence", "grid_fb_error", "grid_cost", "grid_valid"):
        values = np.load(tmp_path / "discrete" / f"{name}.npy")
        png = cv2.imread(str(tmp_path / "discrete" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        h, w = values.shape
        assert png.ndim == 2 and png.shape[0] > h + 20 and png.shape[1] >= max(w, 200), (name, png.shape)
        assert has_key_ramp(png, h), name
        if name in ("grid_fb_error", "grid_cost"):  # (stretched: black its smallest value, white its largest;
            # a cost of 0 to 0.07 was drawn on the 0-1 scale of a share, nearly black)
            assert png[:h, :w][values == values.max()].min() == 255 and png[:h, :w][values == values.min()].max() == 0
    scene = make_scene(96, 128, seed=2, num_objects=1, object_shift=6.0)
    semantic = get_method("semantic", baseline="dis-medium").estimate(scene.img1, scene.img2, labels=scene.labels)
    write_semantic_explain(semantic, tmp_path / "semantic")
    confidence = cv2.imread(str(tmp_path / "semantic" / "confidence.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(confidence[:96, :128],
                                  grey_levels(semantic.confidence))
    occlusion = cv2.imread(str(tmp_path / "semantic" / "occlusion.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(occlusion[:96, :128], semantic.extras["occlusion"].astype(np.uint8) * 255)
    for png in (confidence, occlusion):
        assert has_key_ramp(png, 96)


def test_semantic_explains_colour_maps_carry_a_key_of_their_colours_below_the_map_as_it_was(tmp_path: Path) -> None:
    """model_map.png and kinds.png were colour maps with no key: what purple or yellow stood for was only in
    the docs and explain.json. Each now has a strip below naming every colour (the class key the panel's
    segmentation tile uses); the map's own pixels are what they were."""
    from semflow.class_legend import class_key_column_width, class_key_strip
    from semflow.compose import MODEL_COLORS, MODEL_LEGEND, model_map_to_color
    from semflow.semantic_explain import KIND_COLORS, KIND_NAMES

    scene = make_scene(96, 128, seed=1)
    semantic = get_method("semantic", baseline="dis-medium").estimate(scene.img1, scene.img2, labels=scene.labels)
    write_semantic_explain(semantic, tmp_path)
    for name, top, names, colours in [
            ("model_map.png", model_map_to_color(semantic.extras["model_map"]), list(MODEL_LEGEND.values()),
             np.array([MODEL_COLORS[k] for k in MODEL_LEGEND], np.uint8)),
            ("kinds.png", None, list(KIND_NAMES.values()), np.array([KIND_COLORS[k] for k in KIND_NAMES], np.uint8))]:
        drawn = cv2.imread(str(tmp_path / name))[..., ::-1]
        width = max(128, class_key_column_width(names))  # (the key is as wide as its longest name needs)
        if top is not None:
            np.testing.assert_array_equal(drawn[:96, :128], top)
        assert (drawn[:96, 128:] == 255).all()  # (white beside a narrower map)
        key = class_key_strip(width, names, colours)
        assert drawn.shape == (96 + key.shape[0], width, 3), (name, drawn.shape)
        np.testing.assert_array_equal(drawn[96:], key)
        for colour in colours:  # every swatch is there
            assert (drawn[96:] == colour).all(axis=2).sum() >= 4, (name, colour)


def test_kinds_png_draws_a_thing_too_small_to_fit_apart_from_the_things_that_get_a_layer(tmp_path: Path) -> None:
    """kinds.png drew every pixel of a thing class red, "thing: layered motion", but a thing region smaller
    than ``ThingParams.min_area`` (150 px) forms no instance and keeps the baseline (model_map.png showed it
    grey). Such pixels now have a colour and a key entry of their own; the things with a layer stay red."""
    from semflow.layers.things.params import ThingParams
    from semflow.semantic_explain import KIND_COLORS, KIND_NAMES, SMALL_THING

    scene = make_scene(96, 128, seed=1)
    labels = scene.labels.copy()
    thing_id = int(labels[scene.instances == 1][0])
    corner = (slice(0, 10), slice(0, 10)) if (scene.instances[:10, :10] == 0).all() else (slice(86, 96), slice(118, 128))
    assert (scene.instances[corner] == 0).all() and 100 < ThingParams().min_area
    labels[corner] = thing_id  # a 100 px speck of a thing class, apart from the objects
    semantic = get_method("semantic", baseline="dis-medium").estimate(scene.img1, scene.img2, labels=labels)
    assert (semantic.extras["instances"][corner] == 0).all() and (semantic.extras["model_map"][corner] == 0).all()
    write_semantic_explain(semantic, tmp_path)
    drawn = cv2.imread(str(tmp_path / "kinds.png"))[..., ::-1][:96, :128]
    assert (drawn[corner] == KIND_COLORS[SMALL_THING]).all()
    fitted = semantic.extras["instances"] > 0
    assert fitted.any() and (drawn[fitted & (semantic.extras["kinds"] == 2)] == KIND_COLORS[2]).all()
    assert "baseline" in KIND_NAMES[SMALL_THING]


def test_kinds_png_draws_a_plane_too_small_for_a_homography_apart_from_the_fitted_planes(tmp_path: Path) -> None:
    """A plane region smaller than ``PlaneParams.min_area`` (400 px) is given no homography and keeps the
    baseline (model_map.png shows it grey), but kinds.png painted it blue, "plane: homography". Such pixels
    now have a colour and a key entry of their own; the fitted planes stay blue and ``extras["kinds"]``
    (compare's per-kind regions) is unchanged."""
    from semflow.layers.planes import PlaneParams
    from semflow.semantic_explain import KIND_COLORS, KIND_NAMES

    scene = make_scene(96, 128, seed=1)
    labels = scene.labels.copy()
    corner = (slice(0, 10), slice(0, 10))
    assert (scene.instances[corner] == 0).all() and 100 < PlaneParams().min_area
    labels[corner] = 0  # a 100 px patch of Sky (a plane class) apart from the large Road
    semantic = get_method("semantic", baseline="dis-medium").estimate(scene.img1, scene.img2, labels=labels)
    assert (semantic.extras["kinds"][corner] == 1).all() and (semantic.extras["model_map"][corner] == 0).all()
    write_semantic_explain(semantic, tmp_path)
    drawn = cv2.imread(str(tmp_path / "kinds.png"))[..., ::-1][:96, :128]
    assert (drawn[corner] != KIND_COLORS[1]).any(axis=-1).all()  # not "plane: homography"
    from semflow.semantic_explain import SMALL_PLANE

    assert (drawn[corner] == KIND_COLORS[SMALL_PLANE]).all() and "baseline" in KIND_NAMES[SMALL_PLANE]
    road = (semantic.extras["kinds"] == 1) & (semantic.extras["instances"] == 0)
    road[corner] = False
    assert road.sum() > 400 and (drawn[road] == KIND_COLORS[1]).all()
    assert (semantic.extras["plane_regions"][road] == 1).all() and not semantic.extras["plane_regions"][corner].any()


def test_kinds_png_draws_pixels_a_thing_encloses_as_the_thing_whose_layer_they_join(tmp_path: Path) -> None:
    """Pixels of another class enclosed by a thing (a car's window seen as sky, a sticker seen as building)
    join the thing's instance (holes filled) and its layer, but kinds.png drew them in their own class's
    kind colour (blue, grey). They are drawn as the thing now; ``extras["kinds"]`` keeps their class's kind."""
    from semflow.semantic_explain import KIND_COLORS

    scene = make_scene(96, 128, seed=1)
    labels = scene.labels.copy()
    holes = []
    for instance, class_id in ((1, 0), (2, 1)):  # Sky (a plane class) in one car, Building (stuff) in the other
        inside = cv2.erode((scene.instances == instance).astype(np.uint8), np.ones((9, 9), np.uint8))
        y, x = np.argwhere(inside)[0]
        hole = (slice(y - 1, y + 2), slice(x - 1, x + 2))
        labels[hole] = class_id
        holes.append(hole)
    semantic = get_method("semantic", baseline="dis-medium").estimate(scene.img1, scene.img2, labels=labels)
    write_semantic_explain(semantic, tmp_path)
    drawn = cv2.imread(str(tmp_path / "kinds.png"))[..., ::-1][:96, :128]
    for hole, kind in zip(holes, (1, 0)):
        assert (semantic.extras["instances"][hole] > 0).all() and (semantic.extras["kinds"][hole] == kind).all()
        assert (drawn[hole] == KIND_COLORS[2]).all()
