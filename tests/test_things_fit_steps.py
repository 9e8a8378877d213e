"""layers.things.fit's first steps on a small hand-made scene: the object layer's search is centred on
the surroundings' motion (other things' excluded), the background layer's seeds where the baseline
is confident on too little of the background, a motion split taken only where it is better (and the
retried one only where it explains the object no worse), and instances below ``min_area`` left alone."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np

import semflow.layers.things.fit as thing_fit
from semflow.layers.context import PairContext
from semflow.layers.things import ThingParams, fit_things
from semflow.layers.things.layered import keep_baseline
from semflow.segmentation.regions import Box, Region

H, W = 80, 100
BACKGROUND, OTHER = (2.0, 1.0), (-30.0, 0.0)


def _scene(confident_background: bool, band: int = 10, confident_object: bool = False):
    """Random frames (nothing matches: the baseline's flow decides), a 20 x 20 px object (id 1) the
    baseline is not confident on, inside a ``band`` px wide band of another thing (id 2) moving OTHER px.
    Returns the context, the instance map and the object's region."""
    rng = np.random.default_rng(5)
    img1 = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    img2 = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    instance_map = np.zeros((H, W), np.int32)
    instance_map[30 - band:50 + band, 40 - band:60 + band] = 2
    instance_map[30:50, 40:60] = 1
    flow = np.empty((H, W, 2), np.float32)
    flow[:] = BACKGROUND
    flow[instance_map == 2] = OTHER
    confidence = np.ones((H, W), np.float32) if confident_background else np.zeros((H, W), np.float32)
    confidence[instance_map == 1] = float(confident_object)
    ctx = PairContext.build(img1, img2, flow, confidence, thing_pixels=instance_map > 0)
    region = Region(1, Box(0, H, 0, W), instance_map == 1, id=1)
    return ctx, instance_map, region


def test_the_search_for_a_missed_object_is_centred_on_the_background_not_on_other_things(monkeypatch) -> None:
    # The other thing covers most of the ring around the object inside its box: centred on its motion,
    # the search (+-40 px) would not even reach the background's.
    ctx, instance_map, region = _scene(confident_background=True)
    params = ThingParams()
    thing = thing_fit.cut_thing(region, instance_map, ctx, params)
    ring = ~thing_fit.dilate(thing.mask, params.boundary_margin + 1)
    assert (ring & thing.others).sum() > (ring & ~thing.others).sum() > 0
    centres = []
    search = thing_fit.searched_motion
    monkeypatch.setattr(thing_fit, "searched_motion",
                        lambda core, box, gray, around, *a: centres.append(around) or search(core, box, gray, around, *a))
    thing_fit.fit_thing(region, instance_map, ctx, params, np.random.default_rng(0))
    (around,) = centres
    np.testing.assert_allclose(around, BACKGROUND)


def test_the_background_layer_takes_every_background_pixel_where_too_few_are_confident() -> None:
    params = ThingParams()
    for confident in (True, False):
        ctx, instance_map, region = _scene(confident_background=confident, band=2)
        thing = thing_fit.cut_thing(region, instance_map, ctx, params)
        inputs = thing_fit.fit_inputs(thing, np.zeros_like(thing.mask), ctx, params, None)
        outside = ~thing_fit.dilate(thing.mask, params.boundary_margin + 1) & ~thing_fit.dilate(thing.others, 2)
        assert outside.sum() >= params.min_points
        # confident or not, the seeds are the background pixels away from the object and other things
        np.testing.assert_array_equal(inputs.bg_seeds, outside)
        assert not (inputs.bg_seeds & (thing.mask | thing.others)).any()


def test_a_split_found_but_no_better_than_the_one_motion_is_not_taken(monkeypatch) -> None:
    # The split's motions replace the one motion only where split_is_better says they explain the
    # object better; the split itself stands in here for one found (it is tried, it finds motions).
    ctx, instance_map, region = _scene(confident_background=True, band=2, confident_object=True)
    params = ThingParams()
    thing = thing_fit.cut_thing(region, instance_map, ctx, params)
    evidence = thing_fit.check_evidence(thing, ctx, params, None)
    inputs = thing_fit.fit_inputs(thing, evidence.fg_seeds, ctx, params, None)
    split = SimpleNamespace(labels=np.zeros(thing.mask.shape, np.int32))
    found = ([np.eye(2, 3), np.eye(2, 3)], 0.9, np.zeros((*thing.mask.shape, 2), np.float32), None, split)
    monkeypatch.setattr(thing_fit, "needs_split", lambda *a: True)
    monkeypatch.setattr(thing_fit, "split_object_motions", lambda *a, **k: found)
    for better in (False, True):
        monkeypatch.setattr(thing_fit, "split_is_better", lambda *a, verdict=better: verdict)
        first = thing_fit.first_object_layer(inputs, None, np.random.default_rng(0))
        assert first.tried_split and first.layer is not None
        assert (first.layer.split is split) == better
        assert (len(first.layer.affines) == 2) == better


def test_a_retried_split_replaces_the_one_motion_only_where_its_judged_error_is_no_worse(monkeypatch) -> None:
    # retried_split's last test: the split's model is accepted, and its median excess error over the
    # judged pixels is compared with the one motion's (the compromise, the split's search and its
    # layered model stand in here for ones that say so).
    ctx, instance_map, region = _scene(confident_background=True, band=2, confident_object=True)
    params = ThingParams()
    thing = thing_fit.cut_thing(region, instance_map, ctx, params)
    inputs = thing_fit.fit_inputs(thing, thing.mask, ctx, params, None)
    layer = SimpleNamespace(flow=np.zeros((*thing.mask.shape, 2), np.float32))
    split = SimpleNamespace(labels=np.zeros(thing.mask.shape, np.int32))
    found = ([np.eye(2, 3), np.eye(2, 3)], 0.9, layer.flow, None, split)
    first = replace(keep_baseline(thing, "ok"), accepted=True, excess_error=-1.0)
    monkeypatch.setattr(thing_fit, "compromise", lambda *a: True)
    monkeypatch.setattr(thing_fit, "split_object_motions", lambda *a, **k: found)
    monkeypatch.setattr(thing_fit, "seed_deviation", lambda *a: 0.5)
    for excess, taken in ((-0.5, False), (-1.0, True), (-2.0, True)):
        retry = replace(first, excess_error=excess)
        monkeypatch.setattr(thing_fit, "layered_model", lambda *a, retry=retry: retry)
        fit = thing_fit.retried_split(inputs, layer, first, np.random.default_rng(0))
        assert (fit is first) != taken
        assert fit.excess_error == (excess if taken else first.excess_error)
        assert fit.reason.startswith("ok; motion split") == taken


def test_instances_below_min_area_are_not_fitted() -> None:
    ctx, instance_map, region = _scene(confident_background=True, band=2, confident_object=True)
    assert region.area == 400
    assert fit_things([region], instance_map, ctx, ThingParams(min_area=401, processes=1)) == []
    (fit,) = fit_things([region], instance_map, ctx, ThingParams(min_area=400, processes=1))
    assert fit.region is region
