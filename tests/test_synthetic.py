"""The synthetic scene generator: its ground truth must be exact, since other tests measure against it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from semflow.io.datasets import load_dataset
from semflow.synthetic import (
    CAR_ID,
    ROAD_ID,
    make_scene,
    translation_scene,
    write_dataset,
)
from semflow.warp import warp_backward


def photometric_error(scene, flow: np.ndarray) -> np.ndarray:
    """|frame 2 sampled at x + flow(x) - frame 1| per pixel, mean over RGB."""
    warped = warp_backward(scene.img2.astype(np.float32), flow)[0]
    return np.abs(warped - scene.img1.astype(np.float32)).mean(axis=2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_warping_frame2_by_gt_reproduces_frame1_where_visible(seed: int) -> None:
    scene = make_scene(72, 96, seed=seed)
    err = photometric_error(scene, scene.flow)
    visible, hidden = ~scene.occluded, scene.occluded
    assert 0.02 < hidden.mean() < 0.5
    assert err[visible].mean() < 3.0           # bilinear resampling noise only (0..255 scale)
    assert np.percentile(err[visible], 99) < 12.0
    # Occluded pixels show another layer (or leave the image) in frame 2: the warp cannot match there.
    assert err[hidden].mean() > 3 * err[visible].mean()
    # And the GT is not trivially right: a zero flow or a slightly wrong one matches far worse.
    assert photometric_error(scene, np.zeros_like(scene.flow))[visible].mean() > 3 * err[visible].mean()
    assert photometric_error(scene, scene.flow + np.float32([1.5, 0.0]))[visible].mean() > 2 * err[visible].mean()


def test_translation_scene_flow_and_occlusion_are_exact() -> None:
    scene = translation_scene(40, 60, shift=(7.0, -3.0))
    np.testing.assert_allclose(scene.flow[..., 0], 7.0, atol=1e-5)
    np.testing.assert_allclose(scene.flow[..., 1], -3.0, atol=1e-5)
    # A pixel is occluded exactly when it moves out of the image.
    y, x = np.mgrid[0:40, 0:60]
    leaves = (x + 7 > 59) | (y - 3 < 0)
    np.testing.assert_array_equal(scene.occluded, leaves)
    # Integer shift: frame 2 is frame 1 moved, up to rounding of the stored images.
    # frame 2 at (x + 7, y - 3) shows frame 1 at (x, y)
    np.testing.assert_allclose(scene.img2[:37, 7:].astype(int), scene.img1[3:, :53].astype(int), atol=1)
    assert (scene.labels == ROAD_ID).all() and (scene.instances == 0).all()


def test_layers_labels_instances_and_object_motion_agree(small_scene) -> None:
    s = small_scene
    h, w = s.img1.shape[:2]
    assert s.img1.shape == s.img2.shape == (h, w, 3) and s.img1.dtype == np.uint8
    assert s.flow.shape == (h, w, 2) and s.flow.dtype == np.float32
    assert s.labels.dtype == np.uint8 and s.instances.dtype == np.int32 and s.occluded.dtype == bool
    np.testing.assert_array_equal(s.labels == CAR_ID, s.instances > 0)
    assert set(np.unique(s.labels)) == {ROAD_ID, CAR_ID}
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    for k, obj in enumerate(s.objects, start=1):
        mine = s.instances == k
        assert mine.sum() > 20, "each object is visible in frame 1"
        # The flow inside the object is its affine motion.
        ax = obj.affine[0, 0] * x + obj.affine[0, 1] * y + obj.affine[0, 2]
        ay = obj.affine[1, 0] * x + obj.affine[1, 1] * y + obj.affine[1, 2]
        np.testing.assert_allclose(s.flow[mine][:, 0], (ax - x)[mine], atol=1e-3)
        np.testing.assert_allclose(s.flow[mine][:, 1], (ay - y)[mine], atol=1e-3)
    # Background flow is the homography.
    hx = s.homography
    den = hx[2, 0] * x + hx[2, 1] * y + hx[2, 2]
    bx = (hx[0, 0] * x + hx[0, 1] * y + hx[0, 2]) / den - x
    bg = s.instances == 0
    np.testing.assert_allclose(s.flow[bg][:, 0], bx[bg], atol=1e-3)


def test_scenes_are_deterministic_per_seed() -> None:
    a, b, c = make_scene(32, 48, seed=5), make_scene(32, 48, seed=5), make_scene(32, 48, seed=6)
    np.testing.assert_array_equal(a.img1, b.img1)
    np.testing.assert_array_equal(a.flow, b.flow)
    assert not np.array_equal(a.img1, c.img1)


def test_motion_bounds_are_respected() -> None:
    scene = make_scene(60, 80, seed=4, num_objects=0, background_shift=2.0)
    # Corners move by at most shift (per corner) + shift (global) + keystone.
    assert np.abs(scene.flow).max() < 2.0 * 2 + 0.08 * 80 + 1


def test_write_dataset_round_trips_through_the_reader(tmp_path: Path) -> None:
    folders = write_dataset(tmp_path / "syn", count=2, height=40, width=56, seed=3)
    assert [f.name for f in folders] == ["scene_000", "scene_001"]
    samples = load_dataset("synthetic", tmp_path / "syn")
    assert [s.name for s in samples] == ["scene_000", "scene_001"]
    loaded = samples[1].load()
    scene = make_scene(40, 56, seed=3 + 1000, num_objects=2)
    np.testing.assert_array_equal(loaded.img1, scene.img1)
    np.testing.assert_array_equal(loaded.img2, scene.img2)
    np.testing.assert_array_equal(loaded.flow, scene.flow)
    assert loaded.valid.all()
    np.testing.assert_array_equal(loaded.occluded, scene.occluded)
    np.testing.assert_array_equal(loaded.labels, scene.labels)
    np.testing.assert_array_equal(loaded.instances, scene.instances)
