"""The things layer with motion instances, on hard synthetic scenes (touching things, 15-30 px)."""

from __future__ import annotations

import copy
import dataclasses
import json

import cv2
import numpy as np
import pytest

import semflow.layers.motions as motions
import semflow.layers.things.fit as thing_fit
from semflow.baseline.base import GivenFlow
from semflow.fitting.motion_fit import MotionParams
from semflow.layers.context import PairContext
from semflow.layers.things import ThingParams, fit_things, thing_params_for
from semflow.layers.things.instances import compromise
from semflow.layers.things.motion import object_motions
from semflow.methods import get_method
from semflow.metrics import epe
from semflow.segmentation.regions import Box, Region
from semflow.semantic import SemanticFlow
from semflow.semantic_report import number_motion_instances
from semflow.synthetic_hard import make_hard_scene
from semflow.synthetic_video import make_sequence


@pytest.mark.parametrize("kind,seed", [("street", 4), ("group", 1)])
def test_semantic_halves_the_things_error_on_touching_things(kind: str, seed: int) -> None:
    scene = make_hard_scene(seed=seed, kind=kind)
    things = scene.instances > 0
    base = get_method("dis-medium")
    base_epe = epe(base.estimate(scene.img1, scene.img2).flow, scene.flow, None, things)
    sem = SemanticFlow(base, segmentation=scene.labels)
    result = sem.estimate(scene.img1, scene.img2, labels=scene.labels)
    assert epe(result.flow, scene.flow, None, things) <= 0.6 * base_epe  # the benchmark: <= 0.5 on the mean
    # The touching things were split into motion instances, reported with ids that motion_ids uses.
    report = json.loads(str(result.extras["report_json"]))
    instances = [m for t in report["things"] if t["accepted"] for m in t["motion_instances"]]
    assert len(instances) >= 2
    ids = result.extras["motion_ids"]
    assert {m["id"] for m in instances} == set(np.unique(ids[ids > 0]).tolist())
    assert (ids[things] > 0).mean() > 0.8
    for m in instances:  # read at the instance's own centroid (it was the whole thing's: 5 px off a parked car)
        ys, xs = np.nonzero(ids == m["id"])
        centre = np.array([xs.mean(), ys.mean()])
        affine = np.array(m["affine"]).reshape(2, 3)
        np.testing.assert_allclose(m["flow_at_centre"], affine[:, :2] @ centre + affine[:, 2] - centre, atol=0.01)


def test_single_motion_option_reports_no_instances() -> None:
    scene = make_hard_scene(180, 240, seed=2, kind="street")
    sem = SemanticFlow(get_method("dis-medium"), segmentation=scene.labels, things=ThingParams(motion_split=False))
    result = sem.estimate(scene.img1, scene.img2, labels=scene.labels)
    report = json.loads(str(result.extras["report_json"]))
    assert all(t["motion_instances"] == [] for t in report["things"])
    assert not result.extras["motion_ids"].any()


def test_semantic_on_discrete_finds_the_car_behind_the_parked_row() -> None:
    # A weakly textured car behind parked ones, moving the other way: discrete misses it (its
    # descriptors prefer the background's motion); the motion split finds it by matching the part of
    # the Car region that no motion explains as a whole (MotionParams.rematch_pixels). (On this scene
    # it does with each of 4 seeds of the things' random draws; on seed=4's, with one of them.)
    scene = make_hard_scene(240, 320, seed=5, kind="street", far_car=True)
    things = scene.instances > 0
    flow = get_method("discrete").estimate(scene.img1, scene.img2)

    memo = GivenFlow(flow, name="discrete-memo")  # discrete runs once; both semantic runs reuse its flow
    base_epe = epe(flow.flow, scene.flow, None, things)
    with_rematch = SemanticFlow(memo, segmentation=scene.labels).estimate(scene.img1, scene.img2, labels=scene.labels)
    without = SemanticFlow(memo, segmentation=scene.labels,
                           things=ThingParams(motions=MotionParams(rematch_pixels=0))
                           ).estimate(scene.img1, scene.img2, labels=scene.labels)
    far = scene.instances == 1
    assert epe(with_rematch.flow, scene.flow, None, things) <= 0.5 * base_epe
    assert epe(with_rematch.flow, scene.flow, None, far) < 0.5 * epe(without.flow, scene.flow, None, far)


def test_occluded_parts_of_touching_things_keep_their_own_motion() -> None:
    # Pixels of a parked car that the passing car hides in frame t+1 have no photometric evidence for
    # their motion: with ThingParams.occlusion_aware they are not given the passing car's.
    scene = make_hard_scene(240, 320, seed=6, kind="street")
    hidden = (scene.instances > 0) & scene.occluded
    base = get_method("dis-medium")
    errors = []
    for aware in (True, False):
        sem = SemanticFlow(base, segmentation=scene.labels, things=ThingParams(occlusion_aware=aware))
        errors.append(epe(sem.estimate(scene.img1, scene.img2, labels=scene.labels).flow, scene.flow, None, hidden))
    assert errors[0] < 0.7 * errors[1]


def test_a_thing_is_judged_without_the_background_another_thing_covers() -> None:
    # Two ellipses of a synthetic sequence, the one in front moving onto the other's background: those
    # background pixels have no match in frame t+1, and the baseline (discrete) finds some look-alike
    # there that the right model cannot. Judged on them, the right model lost (median 2.5 grey levels
    # "worse"); they are left out now, and the thing takes its model.
    seq = make_sequence(8, 240, 320, seed=7000)
    img1, img2, labels, truth = seq.frames[1], seq.frames[2], seq.labels[1], seq.flows[1]
    base = get_method("discrete")
    result = SemanticFlow(base, segmentation=labels).estimate(img1, img2, labels=labels)
    report = json.loads(str(result.extras["report_json"]))
    assert len(report["things"]) == 2 and all(t["accepted"] for t in report["things"]), report["things"]
    things = seq.instances[1] > 0
    assert epe(result.flow, truth, None, things) < 0.5 * epe(result.extras["baseline_flow"], truth, None, things)


def test_a_thing_over_two_objects_a_few_px_apart_is_split_and_accepted() -> None:
    # One "Car" mask over two overlapping ellipses whose motions differ by only ~2.4 px: the sequential
    # RANSAC fits one compromise affine (within its 2 px of both), few pixels are clearly unexplained, so
    # the split never ran, and the judgement rejected the compromise on every pair of the sequence (the
    # things kept the baseline). The compromise is now recognised from the baseline's confident flow
    # (two motions fit it far better than the one) and the split is tried as the alternative model.
    # Which pairs get there depends on discrete's flow, and that on rounding (BENCHMARKS.md, section
    # rounding): 5 of the 7 pairs with each of OpenCV's kernels measured, not always the same 5.
    seq = make_sequence(8, 240, 320, seed=7000 + 31 * 2)
    baseline = get_method("discrete")
    accepted, pure, ratios, shares = 0, 0, [], []
    for k in range(len(seq.frames) - 1):
        img1, img2, labels, truth = seq.frames[k], seq.frames[k + 1], seq.labels[k], seq.flows[k]
        result = SemanticFlow(baseline, segmentation=labels).estimate(img1, img2, labels=labels)
        things = json.loads(str(result.extras["report_json"]))["things"]
        assert len(things) == 1, things
        if not (things[0]["accepted"] and len(things[0]["motion_instances"]) == 2):
            continue
        accepted += 1
        # The motion instances are the two objects: each true object's pixels mostly take one instance
        # (id 0: not in the object layer, e.g. where the veto keeps the baseline), and the two take
        # different ones. (With discrete's split inlier distance of 1.0 px every pair is accepted; on the
        # last, where the objects overlap most, one object's pixels are shared 62/38 by the two
        # instances, its EPE still 0.81x the baseline's.)
        ids = result.extras["motion_ids"]
        owners, pair_shares = [], []
        for obj in (1, 2):
            pixels = ids[seq.instances[k] == obj]
            values, counts = np.unique(pixels[pixels > 0], return_counts=True)
            owners.append(values[np.argmax(counts)])
            pair_shares.append(counts.max() / counts.sum() if counts.sum() > 0.8 * pixels.size else 0.0)
        shares += pair_shares
        pure += min(pair_shares) > 0.85 and owners[0] != owners[1]
        mask = seq.instances[k] > 0
        ratios.append(epe(result.flow, truth, None, mask) / epe(result.extras["baseline_flow"], truth, None, mask))
    assert accepted >= 4 and pure >= 4 and pure >= accepted - 1 and np.mean(shares) > 0.9, (accepted, pure, shares)
    # Old code: the baseline exactly (ratio 1.0) on every pair; now about 0.55 where accepted.
    assert np.mean(ratios) < 0.8, ratios


def test_compromise_is_told_from_its_residual_structure_not_its_size() -> None:
    h, w = 60, 80
    seeds = np.ones((h, w), bool)
    box = Box(10, 10 + h, 20, 20 + w)
    two = np.zeros((h, w, 2), np.float32)
    two[:, : w // 2] = (2.0, -0.5)
    two[:, w // 2:] = (2.5, 1.9)  # 2.45 px from the left half's motion
    middle = np.broadcast_to(two.reshape(-1, 2).mean(0), (h, w, 2)).astype(np.float32)
    params = ThingParams()
    assert compromise(two, seeds, middle, box, params, np.random.default_rng(0))
    # One motion and a flow 1.2 px off it everywhere: a large residual, but no structure.
    one = np.broadcast_to(np.float32([2.0, -0.5]), (h, w, 2))
    assert not compromise(one, seeds, one + np.float32([1.2, 0.0]), box, params, np.random.default_rng(0))


def test_background_the_given_mask_covers_is_not_judged():
    # Two touching discs moving apart (one thing region), pair 2 of a synthetic sequence: the split's
    # motions are right (thing EPE below the baseline's), but the assignment takes a strip off the back
    # disc's leading edge, and the background that strip covers in frame t+1 (no photometric evidence)
    # used to be judged: the right model was rejected, "median photometric error 4.49 above the baseline's".
    # Whether the split is found depends on its random draws: it is asked of at least half of 8 seeds.
    seq = make_sequence(4, 240, 320, seed=7062)
    split = 0
    # (The same pair each time: its baseline flow is computed once.)
    baseline_result = get_method("semantic").baseline.estimate(seq.frames[2], seq.frames[3])
    for seed in range(8):
        method = get_method("semantic", things=ThingParams(seed=seed))
        method.baseline.estimate = lambda *args, **kwargs: copy.deepcopy(baseline_result)
        result = method.estimate(seq.frames[2], seq.frames[3], labels=seq.labels[2])
        thing = json.loads(str(result.extras["report_json"]))["things"][0]
        if thing["accepted"] and thing["reason"].startswith("ok; motion split"):
            split += 1
            region = result.extras["instances"] == thing["instance"]
            assert epe(result.flow, seq.flows[2], None, region) < epe(result.extras["baseline_flow"], seq.flows[2],
                                                                        None, region)
    assert split >= 4


def test_a_things_fit_does_not_depend_on_the_other_things() -> None:
    # Each thing draws from a random generator of its own (seeded with its box and area), so its fit
    # is the same alone, first or last: another thing entering the frame changes nothing of it.
    scene = make_hard_scene(180, 240, seed=2, kind="street")
    h, w = scene.instances.shape
    instance_map = scene.instances.astype(np.int32)
    ids = [int(k) for k in np.unique(instance_map) if k > 0]
    assert len(ids) >= 3
    regions = [Region(int(scene.labels[instance_map == k][0]), Box(0, h, 0, w), instance_map == k, id=k)
               for k in ids]
    baseline = get_method("dis-medium").estimate(scene.img1, scene.img2)
    ctx = PairContext.build(scene.img1, scene.img2, baseline.flow, baseline.confidence,
                            thing_pixels=instance_map > 0)
    forward = fit_things(regions, instance_map, ctx)
    backward = fit_things(regions[::-1], instance_map, ctx)[::-1]
    alone = [fit_things([region], instance_map, ctx)[0] for region in regions]
    assert sum(fit.accepted for fit in forward) >= 2
    for first, last, single in zip(forward, backward, alone):
        assert first.reason == last.reason == single.reason
        np.testing.assert_array_equal(first.flow, last.flow)
        np.testing.assert_array_equal(first.flow, single.flow)


def test_a_split_that_would_fail_the_inlier_share_is_given_up_before_its_assignment(monkeypatch) -> None:
    # A thing whose confident baseline flow is two small groups of consistent vectors (15 % each) among
    # random ones: the one motion explains too few of them, and so would the split's two. The split is
    # given up before its graph cuts, and the thing keeps the baseline as it did with the whole split.
    rng = np.random.default_rng(3)
    h, w = 120, 160
    img1 = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img2 = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)  # nothing matches: the baseline's flow decides
    mask = np.zeros((h, w), bool)
    mask[30:90, 40:120] = True
    flow = rng.uniform(-12, 12, (h, w, 2)).astype(np.float32)
    group = rng.random((h, w))
    flow[group < 0.15] = (6.0, 1.0)
    flow[(group >= 0.15) & (group < 0.3)] = (-5.0, 2.0)
    ctx = PairContext.build(img1, img2, flow, np.ones((h, w), np.float32), thing_pixels=mask)
    instance_map = mask.astype(np.int32)
    region = Region(1, Box(0, h, 0, w), mask, id=1)

    cuts = []
    solve = motions.solve_assignment
    monkeypatch.setattr(motions, "solve_assignment", lambda *a, **k: cuts.append(1) or solve(*a, **k))
    early = fit_things([region], instance_map, ctx)[0]
    assert not cuts
    whole = thing_fit.split_object_motions
    monkeypatch.setattr(thing_fit, "split_object_motions", lambda *a, **k: whole(*a, **{**k, "min_share": 0.0}))
    late = fit_things([region], instance_map, ctx)[0]
    assert cuts  # the whole split ran its assignment...
    assert not early.accepted and not late.accepted  # ...and was thrown away for its share
    assert "inlier share" in late.reason and late.fg_inlier_share < ThingParams().min_inlier_share
    np.testing.assert_array_equal(early.flow, late.flow)


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0"])
def test_a_bad_things_seed_is_refused_when_the_params_are_made(seed) -> None:
    with pytest.raises(ValueError, match="ThingParams.seed must be a non-negative integer"):
        ThingParams(seed=seed)
    assert ThingParams(seed=np.int64(7)).seed == 7


@pytest.mark.parametrize("clearance", [-1, 1.5, True, "2"])
def test_a_bad_covered_clearance_is_refused_when_the_params_are_made(clearance) -> None:
    with pytest.raises(ValueError, match="ThingParams.covered_clearance must be a non-negative integer"):
        ThingParams(covered_clearance=clearance)
    assert ThingParams(covered_clearance=np.int64(0)).covered_clearance == 0


def test_motion_settings_made_by_hand_keep_the_things_defaults_they_do_not_name() -> None:
    # (The things' split once ran one expansion cycle by a default of its own, and MotionParams(...)
    # made by hand silently brought back two.)
    made = ThingParams(motions=MotionParams(rematch_pixels=0)).motions
    assert made == dataclasses.replace(ThingParams().motions, rematch_pixels=0)


def test_a_thin_strip_of_a_far_car_gets_no_motion_that_squashes_it() -> None:
    # The far car of hard scene 2 shows as a 10 px strip above the parked row: an affine fitted to it
    # can squash the frame (a motion instance with vertical scale 0.49 was accepted, the car 4.0 px off).
    # Motions are now bounded (MotionParams.max_stretch): every instance is one a rigid thing makes.
    # (On discrete without its boundary stages, which leave the strip as the car in front moves. The
    # strip's matches, rematched on its weak texture, scatter by 2-4 px: with discrete's split inlier
    # distance of 1.0 px for them too they found no motion; MotionParams.rematch_inlier keeps 1.25.)
    scene = make_hard_scene(seed=7000, kind="street")
    baseline = get_method("discrete", missed_motions=False, sharpen=False)
    result = SemanticFlow(baseline, segmentation=scene.labels).estimate(
        scene.img1, scene.img2, labels=scene.labels)
    things = json.loads(str(result.extras["report_json"]))["things"]
    instances = [m for t in things if t["accepted"] for m in t["motion_instances"]]
    assert len(instances) >= 4
    linear = np.array([np.reshape(m["affine"], (2, 3))[:, :2] for m in instances])
    stretch = np.linalg.svd(linear, compute_uv=False)
    limit = MotionParams().max_stretch
    assert (stretch[:, 0] <= limit + 1e-3).all() and (stretch[:, 1] >= 1 / limit - 1e-3).all(), stretch
    far = scene.instances == 1
    assert epe(result.flow, scene.flow, None, far) < 3.5


def test_a_far_car_half_hidden_in_the_next_frame_is_refined_away_from_the_occluding_edge() -> None:
    # Hard scene 2's far car slides behind the parked row: the refinement of its motion instance on every
    # pixel left uncovered squashed it vertically by a fifth (its visible rows next to the occluding
    # edge, where the two cars' colours meet in frame t+1, pulled it) and the thing was rejected.
    # The baseline is discrete without its sharpen step, which since 2026-12-03's fourth session gives
    # the far car its motion itself (the things layer then has nothing left to gain there).
    scene = make_hard_scene(seed=7000, kind="street")
    base = get_method("discrete", sharpen=False).estimate(scene.img1, scene.img2)

    far = scene.instances == 1
    ys, xs = np.nonzero(far)
    centre, truth = np.array([xs.mean(), ys.mean(), 1.0]), np.median(scene.flow[far], axis=0)

    def far_car(clearance: int) -> tuple[float, np.ndarray | None]:
        """The far car's EPE, and the singular values of the motion instance nearest its true motion."""
        things = dataclasses.replace(thing_params_for("discrete"), processes=1, covered_clearance=clearance)
        result = SemanticFlow(GivenFlow(base, name="discrete"), things=things).estimate(scene.img1, scene.img2, labels=scene.labels)
        report = json.loads(str(result.extras["report_json"]))["things"]
        affines = [np.reshape(m["affine"], (2, 3)) for t in report if t["accepted"] for m in t["motion_instances"]]
        if not affines:
            return epe(result.flow, scene.flow, None, far), None
        nearest = min(affines, key=lambda a: np.linalg.norm(a @ centre - centre[:2] - truth))
        return epe(result.flow, scene.flow, None, far), np.linalg.svd(nearest[:, :2], compute_uv=False)

    before = epe(base.flow, scene.flow, None, far)
    error, stretch = far_car(ThingParams().covered_clearance)
    assert stretch is not None and stretch.min() > 0.9
    assert error < 0.6 * before
    error0, stretch0 = far_car(0)
    assert stretch0 is None or stretch0.min() < 0.85
    assert error0 > 0.9 * before


def test_the_motions_report_of_a_model_without_object_pixels_has_finite_centres() -> None:
    """An accepted model whose assignment left the object no pixel gave NaN centres and numpy's "mean of
    empty slice" warning (noticed in the fit_thing refactor); the report reads the given mask then."""
    import warnings
    from types import SimpleNamespace

    from semflow.layers.things.layered import motions_report
    from semflow.layers.things.params import ThingParams
    from semflow.segmentation.regions import Box

    mask = np.zeros((10, 12), bool)
    mask[2:6, 3:9] = True
    inputs = SimpleNamespace(box=Box(5, 15, 20, 32), params=ThingParams(), mask=mask)
    affine = np.array([[1.1, 0.0, 2.0], [0.0, 0.9, -1.0]])  # (scaled: the flow depends on where it is read)
    layer = SimpleNamespace(affines=[affine], labels=np.zeros((10, 12), int), split=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (motion,) = motions_report(inputs, layer, np.zeros((10, 12), bool))
    centre = np.array([20 + 5.5, 5 + 3.5])  # the mask's centroid (x, y) in the frame
    expected = affine[:, :2] @ centre + affine[:, 2] - centre
    assert motion["flow_at_centre"] == [round(float(v), 2) for v in expected] and motion["pixels"] == 0


@pytest.mark.parametrize("region_side", [20, 5], ids=["object", "object-below-min-points"])
@pytest.mark.parametrize("carried_dx", [3.0, 9.0], ids=["carried-right", "carried-wrong"])
def test_whether_the_carried_motion_was_taken_is_a_python_bool(carried_dx: float, region_side: int) -> None:
    # (It was numpy's np.False_ where the object had fewer than min_points pixels: FirstModel declares a bool.)
    rng = np.random.default_rng(0)
    img1 = (cv2.GaussianBlur(rng.random((40, 48)), (0, 0), 1.5) * 255).astype(np.uint8)
    img1 = np.dstack([img1] * 3)
    img2 = np.roll(img1, 3, axis=1)  # everything moves 3 px to the right
    baseline = np.zeros((40, 48, 2), np.float32)  # a baseline that missed the motion
    ctx = PairContext.build(img1, img2, baseline)
    box = Box(10, 30, 10, 34)
    seeds = np.ones((box.height, box.width), bool)
    region = np.zeros_like(seeds)
    region[:region_side, :region_side] = True
    assert (region.sum() >= ThingParams().min_points) == (region_side == 20)
    carried = np.array([[1.0, 0.0, carried_dx], [0.0, 1.0, 0.0]])
    affines, *_, took_carried = object_motions(baseline[box.slices], seeds, lambda maps: maps, ctx, box,
                                               ThingParams(), np.random.default_rng(0), region=region,
                                               carried=carried)
    assert len(affines) == 1  # (with none, the function returns a literal False before)
    assert type(took_carried) is bool
    # the carried motion replaces the baseline's where it is the true one and the object has min_points pixels
    assert took_carried == (carried_dx == 3.0 and region_side == 20)


def test_a_things_layers_leave_the_touching_things_pixels_to_them() -> None:
    # The object mask is refined in a band around the instance; where that band reaches a touching thing,
    # those pixels stay the other thing's: not in the refined foreground, without a motion label, and
    # without this thing's motion id in the motion-instance map of the report (in that map's painting
    # order, a later thing's ids landed on the earlier one's pixels).
    scene = make_hard_scene(180, 240, seed=1, kind="group")
    h, w = scene.instances.shape
    instance_map = scene.instances.astype(np.int32)
    regions = [Region(int(scene.labels[instance_map == k][0]), Box(0, h, 0, w), instance_map == k, id=int(k))
               for k in np.unique(instance_map) if k > 0]
    baseline = get_method("dis-medium").estimate(scene.img1, scene.img2)
    ctx = PairContext.build(scene.img1, scene.img2, baseline.flow, baseline.confidence,
                            thing_pixels=instance_map > 0)
    fits = fit_things(regions, instance_map, ctx)
    accepted = [fit for fit in fits if fit.accepted]
    assert len(accepted) >= 3
    motion_ids = number_motion_instances(fits, (h, w))
    for fit in accepted:
        assert fit.others.any() and not (fit.foreground & fit.others).any()
        assert (fit.motion_labels[fit.others] == -1).all()
        others = (instance_map > 0) & (instance_map != fit.instance_id)
        assert not (np.isin(motion_ids, [m["id"] for m in fit.motions]) & others).any()
