"""The hard synthetic scenes: touching things of one class with different motions, exact ground truth."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from semflow.io.datasets import load_dataset
from semflow.synthetic import CAR_ID, PEDESTRIAN_ID, ROAD_ID
from semflow.synthetic_hard import HARD_KINDS, local_affine, make_hard_scene, write_hard_dataset
from semflow.synthetic_video import make_street_sequence
from semflow.warp import warp_backward


def object_shift(obj) -> float:
    """How far (px) the object's centre moves."""
    c = np.array(obj.center)
    return float(np.hypot(*(obj.affine[:, :2] @ c + obj.affine[:, 2] - c)))


@pytest.mark.parametrize("kind,seed", [("street", 0), ("street", 3), ("group", 1), ("group", 4)])
def test_hard_scene_ground_truth_is_exact(kind: str, seed: int) -> None:
    scene = make_hard_scene(180, 240, seed=seed, kind=kind)
    warped = warp_backward(scene.img2.astype(np.float32), scene.flow)[0]
    err = np.abs(warped - scene.img1.astype(np.float32)).mean(axis=2)
    visible = ~scene.occluded
    assert err[visible].mean() < 3.0
    assert err[scene.occluded].mean() > 3 * err[visible].mean()
    # The flow of each object pixel is its own affine motion; labels follow the objects' classes.
    y, x = np.mgrid[0:180, 0:240].astype(np.float64)
    for k, obj in enumerate(scene.objects, start=1):
        inside = scene.instances == k
        a = obj.affine
        u = a[0, 0] * x + a[0, 1] * y + a[0, 2] - x
        np.testing.assert_allclose(scene.flow[..., 0][inside], u[inside], atol=1e-3)
        assert (scene.labels[inside] == obj.class_id).all()
    assert (scene.labels[scene.instances == 0] == ROAD_ID).all()


@pytest.mark.parametrize("seed", range(6))
def test_touching_things_of_one_class_hold_several_motions(seed: int) -> None:
    kind = HARD_KINDS[seed % 2]
    scene = make_hard_scene(seed=1000 * seed, kind=kind)
    things = scene.labels == (CAR_ID if kind == "street" else PEDESTRIAN_ID)
    count, comp = cv2.connectedComponents(things.astype(np.uint8), connectivity=8)
    sizes = np.bincount(comp[things])
    biggest = comp == np.argmax(sizes)
    # The largest connected thing region holds at least two objects whose motions differ (> 10 px for
    # cars, > 4 px for people walking the same way)...
    inside = np.unique(scene.instances[biggest])
    assert len(inside) >= 2
    flows = [scene.flow[scene.instances == k].mean(0) for k in inside]
    assert max(np.hypot(*(f - g)) for f in flows for g in flows) > (10.0 if kind == "street" else 4.0)
    # ...and some thing moves 15-30 px.
    shifts = [object_shift(o) for o in scene.objects]
    assert any(14.0 <= s <= 31.0 for s in shifts)


def test_parked_cars_move_with_the_background() -> None:
    scene = make_hard_scene(seed=2, kind="street", far_car=False)
    h = scene.homography
    for obj in scene.objects[:-1]:  # the parked row; the last car passes
        cx, cy = obj.center
        p = h @ np.array([cx, cy, 1.0])
        np.testing.assert_allclose(obj.affine[:, :2] @ obj.center + obj.affine[:, 2], p[:2] / p[2], atol=0.2)
    assert object_shift(scene.objects[-1]) >= 12.0
    np.testing.assert_allclose(local_affine(np.eye(3), (50.0, 60.0)), np.eye(3)[:2], atol=1e-6)


def test_write_hard_dataset_is_a_synthetic_dataset(tmp_path: Path) -> None:
    folders = write_hard_dataset(tmp_path, 2, height=90, width=120, seed=5)
    samples = [s.load() for s in load_dataset("synthetic", tmp_path)]
    assert [f.name for f in folders] == ["scene_000", "scene_001"]
    for sample, kind in zip(samples, HARD_KINDS):
        scene = make_hard_scene(90, 120, seed=5 + 1000 * HARD_KINDS.index(kind), kind=kind)
        np.testing.assert_array_equal(sample.img1, scene.img1)
        np.testing.assert_array_equal(sample.instances, scene.instances)
        np.testing.assert_allclose(sample.flow, scene.flow, atol=1e-6)


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown hard scene kind"):
        make_hard_scene(kind="crowd")


# --- the street over time (semflow.synthetic_video.make_street_sequence) -----------------------------


@pytest.mark.parametrize("seed,far", [(0, True), (1, False)])
def test_street_sequence_ground_truth_is_exact_on_every_pair(seed: int, far: bool) -> None:
    seq = make_street_sequence(4, 150, 200, seed=seed, far_car=far)
    assert len(seq.frames) == 4 and len(seq.flows) == 3
    for k, flow in enumerate(seq.flows):
        warped = warp_backward(seq.frames[k + 1].astype(np.float32), flow)[0]
        err = np.abs(warped - seq.frames[k].astype(np.float32)).mean(axis=2)
        visible = ~seq.occluded[k]
        assert err[visible].mean() < 3.0
        assert err[seq.occluded[k]].mean() > 3 * err[visible].mean()
        assert set(np.unique(seq.labels[k])) <= {CAR_ID, ROAD_ID}
        assert ((seq.labels[k] == CAR_ID) == (seq.instances[k] > 0)).all()


@pytest.mark.parametrize("seed", range(4))
def test_street_sequence_has_touching_parked_cars_and_a_fast_one(seed: int) -> None:
    seq = make_street_sequence(6, seed=seed, far_car=True)
    h, w = seq.frames[0].shape[:2]
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    step = seq.camera[1] @ np.linalg.inv(seq.camera[0])  # the background's motion, frame 0 -> 1
    p = np.stack([x, y, np.ones_like(x)], -1) @ step.T
    background = np.stack([p[..., 0] / p[..., 2] - x, p[..., 1] / p[..., 2] - y], -1)
    inst, flow = seq.instances[0], seq.flows[0]
    ids = [k for k in np.unique(inst) if k > 0]
    moves = {k: np.abs(flow[inst == k] - background[inst == k]).max() for k in ids}
    parked = [k for k in ids if moves[k] < 1e-3]  # the row moves exactly as the background
    assert len(parked) >= 2
    # Neighbours in the row touch: some pixel of one parked car has a 4-neighbour of another.
    pairs = {(a, b) for a, b in zip(inst[:, :-1].ravel(), inst[:, 1:].ravel()) if a != b and a and b}
    pairs |= {(a, b) for a, b in zip(inst[:-1].ravel(), inst[1:].ravel()) if a != b and a and b}
    assert any(a in parked and b in parked for a, b in pairs)
    # The passing car (in front, the last instance) and the far one move 15-30 px a frame against it.
    for k in (ids[0], ids[-1]):
        relative = np.hypot(*(flow[inst == k] - background[inst == k]).mean(0))
        assert 13.0 <= relative <= 32.0, (k, relative)
    # The far car drives the other way: its motion and the passing car's point in opposite directions.
    far_u = (flow[inst == ids[0]] - background[inst == ids[0]]).mean(0)[0]
    near_u = (flow[inst == ids[-1]] - background[inst == ids[-1]]).mean(0)[0]
    assert far_u * near_u < 0
