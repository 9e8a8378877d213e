"""The composer: model map against the masks, blended seams, gated models, confidence."""

from __future__ import annotations

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
