"""Sharper motion boundaries by local motion layers (semflow.layers.boundary_layers, semflow.sharpen)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from semflow.errors import InputError
from semflow.io.flow import read_flow
from semflow.io.images import write_image
from semflow.layers.boundary_layers import (
    BoundaryLayerParams,
    missed_motions,
    sharpen_boundaries,
    uncertain_pixels,
)
from semflow.methods import get_method
from semflow.metrics import endpoint_error
from semflow.semantic import write_semantic_explain
from semflow.sharpen import SharpenedFlow, report_entries
from semflow.synthetic import make_scene, moving_patch_scene, translation_scene
from semflow.video_state import VideoState
from semflow.warp import hidden_by_collision, landing_conflicts, photometric_error


def fattened(scene, width: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """The scene's true flow with each object's motion carried ``width`` px out into the background
    (what edge-aware interpolation does), and that ring (H, W) bool."""
    objects = scene.instances > 0
    dist, (iy, ix) = ndimage.distance_transform_edt(~objects, return_indices=True)
    ring = (dist > 0) & (dist <= width)
    flow = scene.flow.copy()
    flow[ring] = scene.flow[iy[ring], ix[ring]]
    return flow, ring


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_a_fattened_boundary_is_redone_and_nothing_else_changes(seed: int) -> None:
    scene = make_scene(seed=seed, num_objects=2, object_shift=20.0)
    flow, ring = fattened(scene)
    out, reports = sharpen_boundaries(scene.img1, scene.img2, flow)
    before, after = endpoint_error(flow, scene.flow), endpoint_error(out, scene.flow)
    assert after[ring].mean() < 0.15 * before[ring].mean()  # 9.6-21 px before, 0.4-1.6 after
    assert after.mean() < 0.25 * before.mean()
    assert any(r.kept and r.motions >= 2 for r in reports)
    uncertain = uncertain_pixels(flow, BoundaryLayerParams())
    np.testing.assert_array_equal(out[~uncertain], flow[~uncertain])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_exact_flow_is_left_alone(seed: int) -> None:
    """The true flow has sharp boundaries already: no region's new flow matches clearly better."""
    scene = make_scene(seed=seed, num_objects=2, object_shift=20.0)
    out, reports = sharpen_boundaries(scene.img1, scene.img2, scene.flow)
    assert reports and not any(r.kept for r in reports)
    np.testing.assert_array_equal(out, scene.flow)


def test_pixels_a_thing_moves_over_are_hidden_under_the_true_flow() -> None:
    # A textured square moves 10 px right over a still, textured background: the background strip it
    # moves onto is hidden in frame t+1. Under the true flow those pixels land where the square's land
    # and do not match; every other pixel matches. (The sharpen step leaves such pixels out of its
    # count: under an exact flow they matched better with the square's motion.)
    rng = np.random.default_rng(1)
    h, w, y0, x0, size, u = 120, 160, 30, 40, 50, 10
    background = ndimage.gaussian_filter(rng.uniform(0, 255, (h, w, 3)), (1.5, 1.5, 0))
    background = (255 * (background - background.min()) / np.ptp(background)).astype(np.uint8)
    square = rng.uniform(0, 255, (size, size, 3)).astype(np.uint8)
    img1, img2 = background.copy(), background.copy()
    img1[y0:y0 + size, x0:x0 + size] = square
    img2[y0:y0 + size, x0 + u:x0 + u + size] = square
    flow = np.zeros((h, w, 2), np.float32)
    flow[y0:y0 + size, x0:x0 + size, 0] = u
    hidden_truth = np.zeros((h, w), bool)
    hidden_truth[y0:y0 + size, x0 + size:x0 + size + u] = True
    error, _ = photometric_error(img1.astype(np.float32), img2.astype(np.float32), flow)
    hidden = hidden_by_collision(flow, error)
    assert not (hidden & ~hidden_truth).any()
    assert hidden.sum() >= 0.95 * hidden_truth.sum()
    assert not hidden_by_collision(flow, np.zeros((h, w), np.float32)).any()  # every pixel matches


def test_landing_conflicts_mark_a_hidden_strip_and_not_a_background_pixel_given_its_own_motion() -> None:
    # A square moves 10 px right over a still background. Under the true flow the background strip it
    # moves onto lands where the square's pixels land (another motion): marked. A ring of background
    # that a wrong flow carried along with the square lands, once given its own motion back, where
    # nothing else lands: not marked, though under the wrong flow it looked hidden (it does not match
    # and lands among pixels that do).
    h, w, y0, x0, size, u = 120, 160, 30, 40, 50, 10
    flow = np.zeros((h, w, 2), np.float32)
    flow[y0:y0 + size, x0:x0 + size, 0] = u
    strip = np.zeros((h, w), bool)
    strip[y0:y0 + size, x0 + size:x0 + size + u] = True
    conflicts = landing_conflicts(flow)
    assert conflicts[strip].all()
    square = np.zeros((h, w), bool)
    square[y0:y0 + size, x0:x0 + size] = True
    near = ndimage.binary_dilation(square | strip, iterations=2)
    assert not conflicts[~near].any()  # the rest of the background, the trailing side included
    trailing = np.zeros((h, w), bool)
    trailing[y0 + 2:y0 + size - 2, x0 - 6:x0 - 2]  = True  # background left of the square
    assert not conflicts[trailing].any()
    assert not landing_conflicts(flow, apart=float(u)).any()  # motions 10 px apart are one motion at 10


def test_a_textureless_object_keeps_its_inside_and_gets_its_ring_back() -> None:
    # A flat-coloured square moving 12 px over a still, textured background: inside it, both motions
    # match equally well (the square lands on itself), so only the small cost of leaving the flow's
    # motion decides there; the fattened ring outside it is redone exactly (0.07 px without that cost).
    rng = np.random.default_rng(0)
    h, w, y0, x0, size, u = 160, 200, 50, 60, 60, 12
    texture = ndimage.gaussian_filter(rng.uniform(0, 255, (h, w, 3)), (2, 2, 0))
    texture = (255 * (texture - texture.min()) / np.ptp(texture)).astype(np.uint8)
    img1, img2 = texture.copy(), texture.copy()
    img1[y0:y0 + size, x0:x0 + size] = (90, 140, 200)
    img2[y0:y0 + size, x0 + u:x0 + u + size] = (90, 140, 200)
    square = np.zeros((h, w), bool)
    square[y0:y0 + size, x0:x0 + size] = True
    truth = np.where(square[..., None], np.float32([u, 0]), np.float32(0)).astype(np.float32)
    dist, (iy, ix) = ndimage.distance_transform_edt(~square, return_indices=True)
    ring = (dist > 0) & (dist <= 6)
    flow = truth.copy()
    flow[ring] = truth[iy[ring], ix[ring]]
    out, reports = sharpen_boundaries(img1, img2, flow)
    inside = ndimage.binary_erosion(square, iterations=3)
    np.testing.assert_array_equal(out[inside], flow[inside])
    assert endpoint_error(out, truth)[ring].mean() < 0.05
    assert any(r.kept for r in reports)


def thin_bar_scene(seed: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A textured bar ``width`` px wide moving 15 px right over a textured background moving 3 px left:
    frames, true flow and the bar (H, W) bool."""
    rng = np.random.default_rng(seed)
    h, w, y0, y1, x0, u, bg_u = 160, 200, 40, 120, 80, 15, -3

    def texture(shape: tuple[int, int, int]) -> np.ndarray:
        t = ndimage.gaussian_filter(rng.uniform(0, 255, shape), (1.5, 1.5, 0))
        return (255 * (t - t.min()) / np.ptp(t)).astype(np.uint8)

    back, front = texture((h, w + 10, 3)), texture((y1 - y0, width, 3))
    img1, img2 = back[:, 5:5 + w].copy(), back[:, 5 - bg_u:5 - bg_u + w].copy()
    img1[y0:y1, x0:x0 + width] = front
    img2[y0:y1, x0 + u:x0 + u + width] = front
    bar = np.zeros((h, w), bool)
    bar[y0:y1, x0:x0 + width] = True
    truth = np.where(bar[..., None], np.float32([u, 0]), np.float32([bg_u, 0])).astype(np.float32)
    return img1, img2, truth, bar


@pytest.mark.parametrize(("seed", "width"), [(0, 8), (1, 10)])
def test_a_thing_too_thin_for_trusted_pixels_gets_its_motion_from_the_uncertain_ones(seed: int, width: int) -> None:
    # The bar's motion carried 6 px out on both sides: every pixel of the bar and its ring is within
    # reach of a jump, so no trusted pixel moves with the bar; its motion is found among the uncertain
    # pixels (missed_motions) and the ring is redone (it stayed 18 px wrong without that).
    img1, img2, truth, bar = thin_bar_scene(seed, width)
    dist, (iy, ix) = ndimage.distance_transform_edt(~bar, return_indices=True)
    ring = (dist > 0) & (dist <= 6)
    flow = truth.copy()
    flow[ring] = truth[iy[ring], ix[ring]]
    assert uncertain_pixels(flow, BoundaryLayerParams())[bar].all()
    out, reports = sharpen_boundaries(img1, img2, flow)
    assert endpoint_error(out, truth)[ring].mean() < 0.1
    assert endpoint_error(out, truth)[bar].mean() < 0.1
    assert any(r.kept and r.motions == 2 for r in reports)
    unaided, _ = sharpen_boundaries(img1, img2, flow, BoundaryLayerParams(uncertain_samples=0))
    assert endpoint_error(unaided, truth)[ring].mean() > 10.0  # the step without the search: left alone


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_thing_a_tenth_of_the_uncertain_pixels_still_gets_its_motion(seed: int) -> None:
    # A region of 100 x 100 uncertain pixels: 88 % move as the motion already found, a 20 x 40 block
    # (8 %) with another and a 20 x 20 one (4 %) with a third. Drawn from all uncertain pixels, 150
    # samples held about 12 of the block's (fewer than min_support = 20); drawn from the unexplained
    # ones they hold about 100, and its motion is the one returned (at most one: the larger block's).
    h = w = 100
    box = (50, 150, 60, 160)
    flow = np.zeros((h, w, 2), np.float32)
    flow[...] = (-1.5, -1.0)
    flow[10:30, 20:60] = (19.0, 3.0)
    flow[60:80, 60:80] = (-22.0, 1.0)
    uncertain = np.ones((h, w), bool)
    found = np.float64([[1, 0, -1.5], [0, 1, -1.0]])
    out = missed_motions(flow, uncertain, box, [found], BoundaryLayerParams(), np.random.default_rng(seed))
    assert len(out) == 1
    np.testing.assert_allclose(out[0], [[1, 0, 19.0], [0, 1, 3.0]], atol=1e-3)
    assert missed_motions(flow, uncertain, box, [found], BoundaryLayerParams(uncertain_samples=0),
                          np.random.default_rng(seed)) == []


def test_a_region_its_affine_motions_do_not_explain_is_left_alone_before_its_graph_cut() -> None:
    # A fattened object over a background whose flow is a wave (2.5 px, about 31 px long): no few
    # affine motions describe the background, as on a road in perspective. The region is skipped
    # before its graph cut (no pixels compared); without the gate it is solved, and rejected.
    scene = make_scene(seed=0, num_objects=2, object_shift=20.0)
    flow, _ = fattened(scene)
    y, x = np.mgrid[0:flow.shape[0], 0:flow.shape[1]].astype(np.float32)
    wave = np.stack([2.5 * np.sin(x / 5.0), 2.5 * np.cos(y / 5.0)], axis=2)
    flow = np.where(scene.instances[..., None] > 0, flow, flow + wave).astype(np.float32)
    out, reports = sharpen_boundaries(scene.img1, scene.img2, flow)
    big = max(reports, key=lambda r: r.pixels)
    assert big.explained < BoundaryLayerParams().min_explained and not big.kept
    assert big.better == big.worse == big.changed == 0
    _, ungated = sharpen_boundaries(scene.img1, scene.img2, flow, BoundaryLayerParams(min_explained=0.0))
    solved = max(ungated, key=lambda r: r.pixels)
    assert solved.explained == big.explained and solved.better + solved.worse > 1000 and not solved.kept
    uncertain = uncertain_pixels(flow, BoundaryLayerParams())
    np.testing.assert_array_equal(out[~uncertain], flow[~uncertain])


def test_a_flow_without_jumps_is_returned_as_it_is() -> None:
    scene = translation_scene(96, 128, shift=(12.0, -5.0), seed=2)
    out, reports = sharpen_boundaries(scene.img1, scene.img2, scene.flow)
    assert reports == []
    np.testing.assert_array_equal(out, scene.flow)
    assert out is not scene.flow


def test_shapes_are_checked() -> None:
    scene = translation_scene(48, 64, seed=1)
    with pytest.raises(ValueError, match="must be"):
        sharpen_boundaries(scene.img1, scene.img2, scene.flow[:, :-1])
    with pytest.raises(ValueError, match="must be"):
        sharpen_boundaries(scene.img1, scene.img2[:-1], scene.flow)
    broken = scene.flow.copy()
    broken[3, 4] = np.nan
    with pytest.raises(InputError, match="NaN or inf values at 1 pixel"):
        sharpen_boundaries(scene.img1, scene.img2, broken)


def test_the_sharpen_option_wraps_a_baseline_and_keeps_its_name() -> None:
    scene = make_scene(seed=1, num_objects=2, object_shift=20.0)
    plain = get_method("dis-medium")
    sharp = get_method("dis-medium", sharpen=True)
    assert isinstance(sharp, SharpenedFlow) and sharp.name == "dis-medium" and sharp.options.sharpen
    assert not isinstance(get_method("discrete", sharpen=False), SharpenedFlow)
    base = plain.estimate(scene.img1, scene.img2).flow
    flow = sharp.estimate(scene.img1, scene.img2).flow
    expected, reports = sharpen_boundaries(scene.img1, scene.img2, base)
    np.testing.assert_array_equal(flow, expected)
    assert sharp.last_reports == reports and "sharpen" in sharp.last_timings
    assert endpoint_error(flow, scene.flow).mean() < endpoint_error(base, scene.flow).mean()


def test_video_mode_carries_the_base_state_and_sharpens_each_pair() -> None:
    scene = make_scene(seed=3, num_objects=2, object_shift=20.0)
    frames = [scene.img1, scene.img2, scene.img1]
    sharp = get_method("dis-medium", sharpen=True)
    state = VideoState()
    for a, b in zip(frames, frames[1:]):
        result = sharp.estimate(a, b, state=state)
        expected, _ = sharpen_boundaries(a, b, get_method("dis-medium").estimate(a, b).flow)
        np.testing.assert_array_equal(result.flow, expected)
        assert result.state is not None and result.state.pairs == state.pairs + 1
        state = result.state
    assert sharp.state_parts() == get_method("dis-medium").state_parts()


def test_semantic_sharpens_its_baseline() -> None:
    method = get_method("semantic", baseline="dis-fast", sharpen=True)
    assert isinstance(method.baseline, SharpenedFlow) and method.baseline.name == "dis-fast"
    assert not isinstance(get_method("semantic", baseline="dis-fast").baseline, SharpenedFlow)
    given = get_method("dis-fast", sharpen=True)
    assert get_method("semantic", baseline=given, sharpen=True).baseline is given  # not wrapped twice


def test_discrete_and_semantic_on_it_sharpen_by_default_and_no_sharpen_turns_it_off() -> None:
    from semflow.baseline.discrete import DiscreteFlow

    default = get_method("semantic").baseline  # semantic's sharpen None: as discrete does by default
    assert isinstance(default, SharpenedFlow) and isinstance(default.base, DiscreteFlow)
    assert default.params.missed_motions  # the search for missed motions too (Preset default)
    plain = get_method("semantic", sharpen=False).baseline  # passed to the baseline named by string
    assert isinstance(plain, DiscreteFlow) and not isinstance(plain, SharpenedFlow)
    assert not isinstance(get_method("dis-medium"), SharpenedFlow)  # the OpenCV methods stay plain


def test_cli_sharpen_switch(run_cli, tmp_path: Path) -> None:
    scene = make_scene(seed=0, num_objects=2, object_shift=20.0)
    write_image(tmp_path / "a.png", scene.img1)
    write_image(tmp_path / "b.png", scene.img2)
    flows = {}
    for switch in ("--sharpen", "--no-sharpen"):
        out = tmp_path / f"{switch[2:]}.flo"
        result = run_cli("flow", "a.png", "b.png", "-o", out, "--method", "dis-medium", switch)
        assert result.rc == 0, result.stderr
        flows[switch] = read_flow(out)
    errors = {k: endpoint_error(f, scene.flow).mean() for k, f in flows.items()}
    assert errors["--sharpen"] < errors["--no-sharpen"]


def test_explain_shows_what_sharpen_did(run_cli, tmp_path: Path) -> None:
    scene = make_scene(seed=0, num_objects=2, object_shift=20.0)
    write_image(tmp_path / "a.png", scene.img1)
    write_image(tmp_path / "b.png", scene.img2)
    result = run_cli("flow", "a.png", "b.png", "-o", "f.flo", "--method", "dis-medium", "--sharpen",
                     "--explain", "why")
    assert result.rc == 0, result.stderr
    regions = json.loads((tmp_path / "why" / "sharpen.json").read_text())["regions"]
    before = np.load(tmp_path / "why" / "unsharpened_flow.npy")
    np.testing.assert_array_equal(before, get_method("dis-medium").estimate(scene.img1, scene.img2).flow)
    changed = np.abs(read_flow(tmp_path / "f.flo") - before).max(axis=2) > 0
    kept = np.zeros_like(changed)
    for region in regions:
        x0, y0, x1, y1 = region["box"]
        if region["kept"]:
            kept[y0:y1, x0:x1] = True
    assert changed.any() and not (changed & ~kept).any()  # the flow changed inside kept regions only
    assert all(r["better"] >= 2.5 * r["worse"] for r in regions if r["kept"])


def test_semantic_explain_lists_its_baselines_sharpen_regions(tmp_path: Path) -> None:
    scene = make_scene(seed=0, num_objects=2, object_shift=20.0)
    method = get_method("semantic", baseline="dis-medium", segmentation=scene.labels, sharpen=True)
    result = method.estimate(scene.img1, scene.img2)
    write_semantic_explain(result, tmp_path)
    report = json.loads((tmp_path / "explain.json").read_text())
    assert report["sharpen"] == report_entries(method.baseline.last_reports) and report["sharpen"]
    unsharpened = read_flow(tmp_path / "baseline_unsharpened.flo")
    np.testing.assert_allclose(unsharpened, get_method("dis-medium").estimate(scene.img1, scene.img2).flow, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_tilted_motion_of_a_narrow_thing_is_polished_by_its_colours(seed: int) -> None:
    # A 24 px wide thing whose flow is fattened at its sides and also tilted (u off by up to 1.2 px at
    # its ends, as a fit from a few of its own samples and a few fattened ones gives): the fit of step 2
    # sees the tilt; the photometric polish over the pixels the motion was given takes it out.
    mask = np.zeros((140, 200), bool)
    mask[30:110, 90:114] = True
    img1, img2, truth, _ = moving_patch_scene(mask, (1.0, 0.5), (20.0, 2.0), seed=seed)
    flow = truth.copy()
    ys, xs = np.nonzero(mask)
    flow[ys, xs, 0] += 0.03 * (ys - 70)
    sides = mask & ~(np.roll(mask, 3, 1) & np.roll(mask, -3, 1))
    flow[sides] = (1.0, 0.5)
    plain, _ = sharpen_boundaries(img1, img2, flow, BoundaryLayerParams(polish=False))
    polished, reports = sharpen_boundaries(img1, img2, flow)
    assert any(r.kept for r in reports)
    before, after = endpoint_error(plain, truth)[mask].mean(), endpoint_error(polished, truth)[mask].mean()
    assert before > 0.5 and after < 0.3 and after < 0.5 * before, (before, after)
    assert endpoint_error(polished, truth)[~mask].mean() < 0.05  # the background keeps its motion (a few px aside)
