"""The composer: model map against the masks, blended seams, gated models, confidence."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from semflow.compose import (
    MODEL_BACKGROUND,
    MODEL_BASELINE,
    MODEL_OBJECT,
    MODEL_OCCLUDED,
    MODEL_PLANE,
    box_weight,
    compose,
)
from semflow.layers.common import dilate, erode, magnitude
from semflow.layers.context import PairContext
from semflow.layers.planes import PlaneFit
from semflow.layers.things import ThingFit, ThingParams
from semflow.layers.veto import baseline_veto
from semflow.methods import get_method
from semflow.segmentation.regions import Box, Region
from semflow.synthetic import CAR_ID, make_scene

BUILDING_ID = 1  # CamVid "Building": stuff


@pytest.fixture(scope="module")
def scene_and_result():
    scene = make_scene(240, 320, seed=0, num_objects=2)
    labels = scene.labels.copy()
    strip = np.zeros(labels.shape, bool)
    strip[:, 260:] = True
    labels[strip & (labels != CAR_ID)] = BUILDING_ID  # stuff on the right, away from the cars: keeps the baseline
    result = get_method("semantic", baseline="dis-medium").estimate(scene.img1, scene.img2, labels=labels)
    return scene, labels, result


def test_model_map_matches_the_masks(scene_and_result):
    scene, labels, result = scene_and_result
    model = result.extras["model_map"]
    things = labels == CAR_ID
    stuff = labels == BUILDING_ID
    road = ~things & ~stuff
    layered = np.isin(model, (MODEL_OBJECT, MODEL_BACKGROUND, MODEL_OCCLUDED))
    # Stuff keeps the baseline (apart from a thin feathered seam), unless it lies in a thing's box,
    # where it is that box's background layer.
    assert np.isin(model[erode(stuff, 3)], (MODEL_BASELINE, MODEL_BACKGROUND, MODEL_OCCLUDED)).all()
    plain_stuff = erode(stuff, 8) & ~dilate(layered, 8)
    assert plain_stuff.sum() > 1000
    np.testing.assert_allclose(result.flow[plain_stuff], result.extras["baseline_flow"][plain_stuff], atol=1e-3)
    # Thing pixels (away from the edge of the stuff strip) are the object layer (measured 0.970: 8497 of
    # 8760 px, the rest the background layer on the outline, the baseline or occluded; 8498 with the
    # object/background costs on the smoothed frames).
    inner_things = things & ~dilate(stuff, 2)
    assert (model[inner_things] == MODEL_OBJECT).mean() > 0.965
    # Road pixels are the plane, or a thing box's background layer around an object.
    assert np.isin(model[erode(road, 2)], (MODEL_PLANE, MODEL_BACKGROUND, MODEL_OCCLUDED)).all()
    assert (model == MODEL_PLANE).sum() > 0.5 * road.sum()
    assert layered.sum() > things.sum()
    np.testing.assert_array_equal(result.extras["kinds"][stuff], 0)
    np.testing.assert_array_equal(result.extras["kinds"][things], 2)
    np.testing.assert_array_equal(result.extras["kinds"][road], 1)


def test_confidence_is_a_map_in_unit_range(scene_and_result):
    _, _, result = scene_and_result
    conf = result.confidence
    assert conf.shape == result.flow.shape[:2] and conf.dtype == np.float32
    assert conf.min() >= 0 and conf.max() <= 1 and conf.std() > 0


def _plane_fit(shape, box, mask, flow, accepted=True):
    region = Region(3, Box(*box), mask)
    return PlaneFit(region=region, accepted=accepted, reason="test", homography=np.eye(3), flow=flow,
                    veto=np.zeros(mask.shape, bool), inlier_share=0.9, model_error=1.0, baseline_error=1.0)


def test_seams_between_a_plane_and_the_baseline_are_blended_not_stepped():
    h, w = 40, 60
    baseline = np.zeros((h, w, 2), np.float32)
    mask = np.zeros((h, w), bool)
    mask[:, 30:] = True
    plane_flow = np.full((h, w, 2), 4.0, np.float32)
    fit = _plane_fit((h, w), (0, h, 0, w), mask, plane_flow)
    img = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    ctx = PairContext.build(img, img, baseline, np.ones((h, w), np.float32))
    comp = compose(ctx, [fit], [], feather_radius=4.0)
    row = comp.flow[20, :, 0]
    assert row[0] == 0 and abs(row[-1] - 4.0) < 1e-5
    steps = np.diff(row)
    assert steps.max() < 1.5  # no single step takes the whole 4 px jump
    assert ((row > 0.2) & (row < 3.8)).sum() >= 3  # a ramp several pixels wide
    assert (comp.model_map[:, 34:] == MODEL_PLANE).all() and (comp.model_map[:, :26] == MODEL_BASELINE).all()


def test_rejected_models_leave_the_baseline_untouched():
    h, w = 30, 30
    baseline = np.random.default_rng(1).normal(0, 2, (h, w, 2)).astype(np.float32)
    fit = _plane_fit((h, w), (0, h, 0, w), np.ones((h, w), bool), np.zeros((h, w, 2), np.float32), accepted=False)
    img = np.zeros((h, w, 3), np.uint8)
    comp = compose(PairContext.build(img, img, baseline, np.full((h, w), 0.3, np.float32)), [fit], [])
    np.testing.assert_array_equal(comp.flow, baseline)
    assert (comp.model_map == MODEL_BASELINE).all()
    np.testing.assert_allclose(comp.confidence, 0.3)


def test_box_weight_ramps_only_toward_edges_inside_the_image():
    weight = box_weight((0, 20, 10, 30), (50, 50), 4.0)
    assert weight.shape == (20, 20)
    assert weight[0, 10] == 1.0  # the top edge is the image border: no ramp
    assert weight[10, 0] < 0.2 and weight[10, -1] < 0.2 and weight[-1, 10] < 0.2
    assert weight[8:12, 8:12].min() == 1.0


def test_a_confident_baseline_keeps_thing_pixels_the_layer_cannot_show_better():
    h, w = 40, 60
    baseline = np.zeros((h, w, 2), np.float32)
    confidence = np.zeros((h, w), np.float32)
    confidence[:, :30] = 1.0  # the baseline is confident on the left half only
    mask = np.ones((h, w), bool)
    layer = np.full((h, w, 2), 3.0, np.float32)  # differs from the baseline by 4.2 px everywhere
    empty = np.zeros((h, w), bool)
    flat = np.zeros((h, w), np.float32)  # flat frames: photometry cannot tell the flows apart
    veto = baseline_veto(flat, flat, magnitude(layer - baseline), confidence, ThingParams().veto)
    assert veto[:, :30].all() and not veto[:, 30:].any()
    box = Box(0, h, 0, w)
    fit = ThingFit(region=Region(CAR_ID, box, mask, id=1), box=box, accepted=True, reason="test", foreground=mask,
                   occluded=empty, others=empty, fg_flow=layer, bg_flow=layer, flow=layer, fg_inlier_share=0.9,
                   bg_inlier_share=0.9, model_error=0.0, baseline_error=0.0, veto=veto)
    img = np.full((h, w, 3), 128, np.uint8)
    comp = compose(PairContext.build(img, img, baseline, confidence, thing_pixels=mask), [], [fit],
                   feather_radius=2.0)
    assert (comp.model_map[:, :26] == MODEL_BASELINE).all()
    np.testing.assert_allclose(comp.flow[:, :26], 0.0, atol=1e-6)
    assert (comp.model_map[:, 34:] == MODEL_OBJECT).all()
    np.testing.assert_allclose(comp.flow[:, 34:], 3.0, atol=1e-6)


def test_the_baseline_veto_keeps_the_baseline_where_it_is_clearly_better_or_trusted():
    """One rule for planes and things: each clause, and the plane's extra disagreement condition."""
    from semflow.layers.planes import PlaneParams

    model = np.array([[10.0, 10.0, 10.0, 4.0, 4.0]], np.float32)  # local errors, grey levels
    base = np.array([[5.0, 9.0, 9.0, 5.0, 9.0]], np.float32)
    difference = np.array([[0.5, 0.5, 2.0, 2.0, 2.0]], np.float32)  # px
    confident = np.array([[0.0, 0.0, 1.0, 1.0, 1.0]], np.float32)
    # thing rule: better by > 2 anywhere; or confident, different by > 1 px and the model not better by 3
    things = baseline_veto(model, base, difference, confident, ThingParams().veto)
    assert things.tolist() == [[True, False, True, True, False]]
    # plane rule: the same, but "better" counts only where the flows differ by > 1 px
    planes = baseline_veto(model, base, difference, confident, PlaneParams().veto)
    assert planes.tolist() == [[False, False, True, True, False]]
    # the excess form (model error minus baseline error, baseline 0) gives the same answer
    assert (baseline_veto(model - base, 0.0, difference, confident, PlaneParams().veto) == planes).all()


def test_the_pair_context_is_frozen_and_read_only():
    rng = np.random.default_rng(0)
    img1 = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)
    img2 = np.roll(img1, 1, axis=1)
    flow = np.zeros((20, 30, 2), np.float32)
    ctx = PairContext.build(img1, img2, flow)
    assert ctx.shape == (20, 30) and not ctx.thing_pixels.any()
    assert ctx.confidence.dtype == np.float32 and 0 < ctx.confidence.min() <= ctx.confidence.max() <= 1
    with pytest.raises(ValueError):
        ctx.baseline[0, 0, 0] = 1.0
    with pytest.raises(ValueError):
        ctx.gray.gray1[0, 0] = 1.0
    with pytest.raises(AttributeError):
        ctx.baseline = flow  # type: ignore[misc]
    flow[0, 0, 0] = 2.0  # the caller's array stays the caller's
    assert ctx.baseline[0, 0, 0] == 2.0


def test_thing_regions_without_an_instance_id_are_refused():
    from semflow.layers.things import fit_things

    img = np.zeros((10, 10, 3), np.uint8)
    ctx = PairContext.build(img, img, np.zeros((10, 10, 2), np.float32))
    region = Region(CAR_ID, Box(0, 5, 0, 5), np.ones((5, 5), bool))  # id 0: not numbered
    with pytest.raises(ValueError, match="instance id"):
        fit_things([region], np.zeros((10, 10), np.int32), ctx)


# --- weights, blending and confidence on hand-made fits (known answers) ------------------------------


def _shifted_pair(h: int, w: int, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random texture and the same moved ``shift`` px right: the true flow is (shift, 0)."""
    import cv2

    rng = np.random.default_rng(0)
    wide = cv2.GaussianBlur((rng.random((h, w + 2 * shift, 3)) * 255).astype(np.float32), (0, 0), 1.5).astype(np.uint8)
    return wide[:, :w].copy(), np.roll(wide, shift, axis=1)[:, :w].copy()


def test_box_weight_ramp_is_the_distance_from_pixel_centres_to_the_edge():
    """Rows 10..19 of a 50x50 image, all columns (left and right are the image's border: no ramp): the
    weight of a row is the distance of its centre to the nearer inner edge over the radius, 0.5/4, 1.5/4..."""
    weight = box_weight((10, 20, 0, 50), (50, 50), 4.0)
    expected = np.minimum(np.minimum(np.arange(10) + 0.5, 9.5 - np.arange(10)) / 4.0, 1.0)
    np.testing.assert_allclose(weight[:, 25], expected)
    assert (weight == weight[:, :1]).all()


def test_box_weight_of_radius_0_is_one_and_warns_nothing():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (box_weight((10, 20, 5, 30), (50, 50), 0.0) == 1.0).all()


def test_compose_planes_blends_the_seam_as_compose_does():
    """The planes' flow the thing fitter sees has the same soft seam as the composition."""
    from semflow.compose import compose_planes

    h, w = 40, 60
    mask = np.zeros((h, w), bool)
    mask[:, 30:] = True
    fit = _plane_fit((h, w), (0, h, 0, w), mask, np.full((h, w, 2), 4.0, np.float32))
    img = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    ctx = PairContext.build(img, img, np.zeros((h, w, 2), np.float32), np.ones((h, w), np.float32))
    planes = compose_planes(ctx, [fit], feather_radius=4.0)
    np.testing.assert_array_equal(planes, compose(ctx, [fit], [], feather_radius=4.0).flow)
    assert ((planes[20, :, 0] > 0.2) & (planes[20, :, 0] < 3.8)).sum() >= 3


def test_the_model_map_names_a_plane_where_its_weight_is_at_least_half():
    """Baseline 0, plane 4 px: the composed u is 4 x the plane's weight, so the plane is named exactly where
    u >= 2 (MODEL_LEGEND: the model with weight >= 0.5)."""
    h, w = 40, 60
    mask = np.zeros((h, w), bool)
    mask[:, 30:] = True
    fit = _plane_fit((h, w), (0, h, 0, w), mask, np.full((h, w, 2), 4.0, np.float32))
    img = np.zeros((h, w, 3), np.uint8)
    comp = compose(PairContext.build(img, img, np.zeros((h, w, 2), np.float32)), [fit], [], feather_radius=4.0)
    weight = comp.flow[..., 0] / 4.0
    assert ((weight > 0) & (weight < 0.5)).any()  # (a seam to look at)
    np.testing.assert_array_equal(comp.model_map == MODEL_PLANE, weight >= 0.5)


@pytest.mark.parametrize("given_error", [True, False])
def test_confidence_measures_the_photometric_error_of_the_composed_flow(given_error):
    """Frames moved 4 px right, the baseline 0 (wrong), a plane of 4 px (right) on the right half: the
    confidence is weight x evidence x exp(-error / 10) (the baseline's confidence is 0 here), the error being
    that of the composed flow (5x5 mean), blended seam included, whether the fit brought its own error or not."""
    import cv2

    from semflow.layers.common import PHOTOMETRIC_SCALE
    from semflow.warp import photometric_error

    h, w = 40, 60
    img1, img2 = _shifted_pair(h, w, 4)
    ctx = PairContext.build(img1, img2, np.zeros((h, w, 2), np.float32), np.zeros((h, w), np.float32))
    mask = np.zeros((h, w), bool)
    mask[:, 30:] = True
    plane = np.full((h, w, 2), (4.0, 0.0), np.float32)
    fit = _plane_fit((h, w), (0, h, 0, w), mask, plane)
    if given_error:
        fit = dataclasses.replace(fit, error=photometric_error(ctx.f1, ctx.f2, plane)[0])
    comp = compose(ctx, [fit], [], feather_radius=4.0)
    weight = comp.flow[..., 0] / 4.0
    evidence = np.where(weight >= 0.5, 0.9, 1.0)  # the plane's inlier share where it is the model
    error = photometric_error(ctx.f1, ctx.f2, comp.flow)[0]
    expected = weight * evidence * np.exp(-cv2.blur(error, (5, 5)) / PHOTOMETRIC_SCALE)
    np.testing.assert_allclose(comp.confidence, expected, atol=1e-5)
    assert comp.confidence[:, 45].min() > 0.85 and comp.confidence[:, 31].max() < 0.5


def test_background_evidence_is_its_inlier_share_or_half_when_it_has_no_affine():
    """Matching frames (photometric factor 1), a thing's box over the whole image, its background on the
    right half: confidence there is the background's inlier share (0.7), or 0.5 without a fitted affine."""
    h, w = 20, 30
    img = np.full((h, w, 3), 128, np.uint8)
    ctx = PairContext.build(img, img, np.zeros((h, w, 2), np.float32), np.zeros((h, w), np.float32),
                            thing_pixels=np.ones((h, w), bool))
    fg = np.zeros((h, w), bool)
    fg[:, :15] = True
    empty = np.zeros((h, w), bool)
    layer = np.zeros((h, w, 2), np.float32)
    box = Box(0, h, 0, w)
    for affine, expected in ((np.eye(2, 3), 0.7), (None, 0.5)):
        fit = ThingFit(region=Region(CAR_ID, box, fg, id=1), box=box, accepted=True, reason="test", foreground=fg,
                       occluded=empty, others=empty, fg_flow=layer, bg_flow=layer, flow=layer, bg_affine=affine,
                       fg_inlier_share=0.9, bg_inlier_share=0.7, model_error=0.0, baseline_error=0.0, veto=None)
        comp = compose(ctx, [], [fit], feather_radius=2.0)
        np.testing.assert_allclose(comp.confidence[:, 15:], expected, atol=1e-6)
        np.testing.assert_allclose(comp.confidence[:, :15], 0.9, atol=1e-6)


def test_a_second_plane_adds_to_the_weight_of_the_first():
    """Plane A over the whole image, then plane B on its right half (same flow, matching frames): every
    pixel comes wholly from a model, so the confidence is the planes' inlier share (0.9) everywhere, also
    where B's box holds none of B (the baseline's confidence, 0, has no share)."""
    h, w = 20, 30
    img = np.full((h, w, 3), 128, np.uint8)
    ctx = PairContext.build(img, img, np.zeros((h, w, 2), np.float32), np.zeros((h, w), np.float32))
    half = np.zeros((h, w), bool)
    half[:, 15:] = True
    flow = np.zeros((h, w, 2), np.float32)
    a = _plane_fit((h, w), (0, h, 0, w), np.ones((h, w), bool), flow)
    b = _plane_fit((h, w), (0, h, 0, w), half, flow)
    comp = compose(ctx, [a, b], [], feather_radius=4.0)
    np.testing.assert_allclose(comp.confidence, 0.9, atol=1e-6)


def test_a_planes_strength_is_its_share_of_the_flow():
    """A plane of strength 0.25 (video mode, a candidate being confirmed) over the whole image: the flow is
    a quarter of the way from the baseline (0) to the plane (4 px): 1 px."""
    h, w = 20, 30
    fit = dataclasses.replace(_plane_fit((h, w), (0, h, 0, w), np.ones((h, w), bool),
                                         np.full((h, w, 2), 4.0, np.float32)), strength=0.25)
    img = np.zeros((h, w, 3), np.uint8)
    comp = compose(PairContext.build(img, img, np.zeros((h, w, 2), np.float32)), [fit], [])
    np.testing.assert_allclose(comp.flow, 1.0, atol=1e-6)


def test_a_thing_marks_occluded_pixels_only_where_it_is_painted():
    """A thing whose whole box is background hidden in frame t+1, but whose left half belongs to another
    instance (weight 0 there): only the right half is marked occluded."""
    h, w = 20, 30
    img = np.full((h, w, 3), 128, np.uint8)
    ctx = PairContext.build(img, img, np.zeros((h, w, 2), np.float32), np.zeros((h, w), np.float32),
                            thing_pixels=np.ones((h, w), bool))
    everywhere, nowhere = np.ones((h, w), bool), np.zeros((h, w), bool)
    others = np.zeros((h, w), bool)
    others[:, :15] = True
    layer = np.zeros((h, w, 2), np.float32)
    box = Box(0, h, 0, w)
    fit = ThingFit(region=Region(CAR_ID, box, nowhere, id=1), box=box, accepted=True, reason="test",
                   foreground=nowhere, occluded=everywhere, others=others, fg_flow=layer, bg_flow=layer, flow=layer,
                   bg_affine=np.eye(2, 3), fg_inlier_share=0.9, bg_inlier_share=0.9, model_error=0.0,
                   baseline_error=0.0, veto=None)
    comp = compose(ctx, [], [fit], feather_radius=2.0)
    np.testing.assert_array_equal(comp.occluded, ~others)
    assert (comp.model_map[:, 15:] == MODEL_OCCLUDED).all() and (comp.model_map[:, :15] == MODEL_BASELINE).all()
