"""Photo scenes (synthetic_photo.py): real-texture street frames with pasted things, exact flow."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from semflow.synthetic import CAR_ID, ROAD_ID, random_texture
from semflow.synthetic_photo import CutOut, cut_outs, make_photo_scene, read_camvid

H, W = 240, 320


def _frame(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured frame whose lower half is road with a parked car (rows 100-150, columns 100-200)."""
    image = random_texture(H, W, np.random.default_rng(seed)).astype(np.uint8)
    labels = np.full((H, W), 1, np.uint8)  # Building
    labels[H // 2:] = ROAD_ID
    labels[100:150, 100:200] = CAR_ID
    return image, labels


def _donor() -> list[CutOut]:
    image, labels = _frame(5)
    labels[:] = ROAD_ID
    labels[60:110, 40:130] = CAR_ID  # whole, with a hole that must be filled
    labels[80:85, 70:75] = ROAD_ID
    labels[200:240, 250:300] = CAR_ID  # touches the border: not a whole car
    return cut_outs(image, labels)


def _warp_error(scene, flow: np.ndarray | None = None) -> np.ndarray:
    """Per pixel, |frame 1 - frame 2 sampled along ``flow`` (default the true one)| (mean over colours)."""
    flow = scene.flow if flow is None else flow
    h, w = flow.shape[:2]
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    back = cv2.remap(scene.img2.astype(np.float32), x + flow[..., 0], y + flow[..., 1], cv2.INTER_LINEAR)
    return np.abs(back - scene.img1.astype(np.float32)).mean(2)


def test_cut_outs_are_whole_regions_with_holes_filled() -> None:
    found = _donor()
    assert len(found) == 1  # the car on the border is left out
    assert found[0].mask.shape == (50, 90) and found[0].mask.all() and found[0].class_id == CAR_ID


def test_a_pasted_car_touches_the_parked_one_and_the_flow_is_exact() -> None:
    image, labels = _frame(1)
    scene = make_photo_scene(image, labels, _donor(), seed=3, count=1)
    parked, pasted = scene.instances == 1, scene.instances == 2
    assert parked.any() and pasted.any() and scene.instances.max() == 2
    assert (scene.labels[pasted] == CAR_ID).all()
    # In front of the parked car, overlapping it: part of its region in frame t is now the pasted car.
    assert (pasted & (labels == CAR_ID)).any()
    touching = cv2.dilate(pasted.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & parked
    assert touching.sum() > 10
    # The parked car moves with the background (the homography, exactly); the pasted one 15-30 px apart.
    ys, xs = np.nonzero(pasted)
    centre = (int(round(ys.mean())), int(round(xs.mean())))
    assert pasted[centre]
    relative = scene.flow[centre] - scene.flow[touching].mean(0)
    assert 12.0 < np.linalg.norm(relative) < 34.0
    # Exact flow: frame 2 sampled along it gives frame 1 back where the pixel stays visible (up to the
    # two bilinear samplings of a fine texture), better than along the flow moved by half a pixel; the
    # background's motion does not explain the pasted car.
    error = _warp_error(scene)
    visible = ~scene.occluded
    assert error[visible].mean() < 2.5
    assert error[visible].mean() * 1.5 < _warp_error(scene, scene.flow + np.float32([0.5, 0.0]))[visible].mean()
    wrong = scene.flow.copy()
    wrong[pasted] = scene.flow[touching].mean(0)
    assert error[visible & pasted].mean() * 5 < _warp_error(scene, wrong)[visible & pasted].mean()
    # What the pasted car covers in frame t+1 is hidden; the pasted car, in front, only where it leaves
    # (and on a few rim pixels, where its mask is resampled after the motion's rotation and scale).
    ys, xs = np.mgrid[0:H, 0:W]
    x2, y2 = np.round(xs + scene.flow[..., 0]), np.round(ys + scene.flow[..., 1])
    leaves = (x2 < 0) | (x2 >= W) | (y2 < 0) | (y2 >= H)
    assert scene.occluded[parked & ~leaves].any()
    assert (scene.occluded & ~leaves)[pasted].mean() < 0.02


def test_photo_scenes_are_deterministic_and_checked() -> None:
    image, labels = _frame(2)
    a = make_photo_scene(image, labels, _donor(), seed=4)
    b = make_photo_scene(image, labels, _donor(), seed=4)
    c = make_photo_scene(image, labels, _donor(), seed=5)
    assert np.array_equal(a.img2, b.img2) and np.array_equal(a.flow, b.flow)
    assert not np.array_equal(a.flow, c.flow)
    with pytest.raises(ValueError, match="no cut-outs"):
        make_photo_scene(image, labels, [], seed=0)
    with pytest.raises(ValueError, match="no cut-outs"):  # 50 px cars cannot reach 0.5 of 240 px
        make_photo_scene(image, labels, _donor(), seed=0, min_height=0.5)


def test_camvid_photo_scene(shared_data) -> None:
    camvid = shared_data / "camvid"
    if not (camvid / "val").is_dir() or not (camvid / "train").is_dir():
        pytest.skip(f"CamVid train/val not found under {camvid}")
    _, image, labels = next(read_camvid(camvid, "val"))
    pool = []
    for name, donor, donor_labels in read_camvid(camvid, "train"):
        pool += cut_outs(donor, donor_labels, source=name)
        if len(pool) >= 5:
            break
    assert all(c.mask.any() and c.class_id in (CAR_ID, 9) and c.source for c in pool)
    scene = make_photo_scene(image, labels, pool, seed=0)
    h = image.shape[0]
    for k in (scene.instances.max() - 1, scene.instances.max()):  # the two cut-outs are the last ids
        rows = np.nonzero((scene.instances == k).any(1))[0]
        assert rows.max() - rows.min() + 1 >= 0.15 * h - 2  # pasted whole (nothing in front), tall enough
    error, still = _warp_error(scene), _warp_error(scene, np.zeros_like(scene.flow))
    visible = ~scene.occluded
    assert error[visible].mean() < 5.0 and error[visible].mean() * 2 < still[visible].mean()


def test_a_camvid_frame_without_its_labels_is_named_not_skipped(tmp_path) -> None:
    """A frame of ``val/`` with no ``valannot/`` file of its name (or one that is no image) was skipped without
    a word: a bench on a broken copy used fewer frames than it said (scripts/train_segmenter.py refuses)."""
    from semflow.errors import InputError
    from semflow.io.images import write_image

    image, labels = _frame(1)
    for name in ("a.png", "b.png"):
        write_image(tmp_path / "val" / name, image)
    write_image(tmp_path / "valannot" / "a.png", labels)
    with pytest.raises(InputError, match=r"^\S+/valannot/b\.png: no such file \(the labels of \S+/val/b\.png\)$"):
        list(read_camvid(tmp_path, "val"))
    (tmp_path / "valannot" / "b.png").write_bytes(b"not a PNG")
    with pytest.raises(InputError, match=r"^\S+/valannot/b\.png: cannot decode as an image .*\(the labels of \S+/val/b"):
        list(read_camvid(tmp_path, "val"))
    write_image(tmp_path / "valannot" / "b.png", labels)
    assert [(name, got.shape) for name, _, got in read_camvid(tmp_path, "val")] == [("a", (H, W)), ("b", (H, W))]


def test_a_camvid_palette_label_png_gives_its_indices_as_ids(tmp_path) -> None:
    """A palette PNG label map (mode "P", as PASCAL VOC and many tools write them) was read by OpenCV as the
    grey levels of its palette's colours, not as class ids: a car (id 8, coloured (64, 0, 128)) came out as
    id 29, and no car was found. A colour-coded label image (CamVid's original labels) was read as grey
    levels too; it is refused, naming the file."""
    from PIL import Image

    from semflow.errors import InputError
    from semflow.io.images import write_image

    image, labels = _frame(1)
    write_image(tmp_path / "val" / "a.png", image)
    (tmp_path / "valannot").mkdir()
    palette = Image.fromarray(labels, mode="P")
    colours = np.zeros((256, 3), np.uint8)
    colours[CAR_ID], colours[ROAD_ID], colours[1] = (64, 0, 128), (128, 64, 128), (128, 0, 0)
    palette.putpalette(colours.tobytes())
    palette.save(tmp_path / "valannot" / "a.png")
    (_, _, got), = read_camvid(tmp_path, "val")
    assert np.array_equal(got, labels)
    write_image(tmp_path / "valannot" / "a.png", colours[labels])  # colour-coded
    with pytest.raises(InputError, match=r"^\S+/valannot/a\.png: a colour image, not a label map .*\(the labels of"):
        list(read_camvid(tmp_path, "val"))
