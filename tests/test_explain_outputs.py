"""What `flow --explain` draws for a method without a writer of its own (each extra map as .npy and .png):
one grey means one value in every map within [0, 1], and a grid's unknown points are drawn as unknown."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from semflow.explain import write_explain
from semflow.methods import get_method
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
    grey = cv2.imread(str(tmp_path / "confidence.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(grey, (np.clip(result.confidence, 0, 1) * 255).astype(np.uint8))
    grid, known = result.extras["grid_flow"], result.extras["grid_valid"].astype(bool)
    assert not known.all()  # (the scene has points the grid could not match)
    drawn = cv2.imread(str(tmp_path / "grid_flow.png"))[..., ::-1]
    flows = [result.flow, grid, result.extras["unsharpened_flow"]]
    max_flow = max_flow_of(flows, valid=[None, known, None])
    np.testing.assert_array_equal(drawn, add_legend(flow_to_color(grid, max_flow, valid=known), max_flow))
    assert (flow_to_color(grid, max_flow, valid=known)[~known] == 0).all()
