"""The semantic method's API: registry, given masks and their errors, kind tables, caching, --explain."""

from __future__ import annotations

import json

import numpy as np
import pytest

from semflow.errors import InputError
from semflow.io.flow import read_flo
from semflow.io.images import write_image
from semflow.methods import get_method
from semflow.segmentation import get_label_set
from semflow.segmentation.backends import Segmentation
from semflow.semantic import SemanticFlow, write_semantic_explain
from semflow.synthetic import CAR_ID, ROAD_ID, make_scene


@pytest.fixture(scope="module")
def scene():
    return make_scene(96, 128, seed=2, num_objects=1, object_shift=6.0)


def test_registry_builds_semantic_with_a_given_baseline():
    method = get_method("semantic", baseline="dis-medium")
    assert isinstance(method, SemanticFlow) and method.name == "semantic"
    assert method.baseline.name == "dis-medium"
    with pytest.raises(InputError, match="cannot be 'semantic'"):
        get_method("semantic", baseline="semantic")


def test_given_labels_of_the_wrong_size_are_a_clear_error(scene):
    method = get_method("semantic", baseline="dis-medium")
    with pytest.raises(InputError, match="differs from the frames"):
        method.estimate(scene.img1, scene.img2, labels=scene.labels[:50])
    with pytest.raises(InputError, match="differs from the frames"):
        get_method("semantic", baseline="dis-medium", segmentation=scene.labels[:, :60]).estimate(scene.img1, scene.img2)


def test_unknown_class_ids_are_a_clear_error(scene):
    labels = scene.labels.copy()
    labels[0, :3] = (40, 41, 200)
    with pytest.raises(InputError, match=r"unknown class ids 40, 41, 200 .*camvid"):
        get_method("semantic", baseline="dis-medium").estimate(scene.img1, scene.img2, labels=labels)


def test_colour_or_missing_mask_files_are_clear_errors(scene, tmp_path):
    colour = np.zeros((*scene.labels.shape, 3), np.uint8)
    colour[..., 0] = 200
    write_image(tmp_path / "colour.png", colour)
    method = get_method("semantic", baseline="dis-medium", segmentation=tmp_path / "colour.png")
    with pytest.raises(InputError, match="colour image"):
        method.estimate(scene.img1, scene.img2)
    with pytest.raises(InputError, match="no such"):
        get_method("semantic", baseline="dis-medium", segmentation=tmp_path / "absent.png")


def test_a_folder_of_masks_is_read_by_frame_index(scene, tmp_path):
    folder = tmp_path / "masks"
    folder.mkdir()
    write_image(folder / "000000.png", scene.labels)
    stuff_only = np.full_like(scene.labels, 1)  # Building everywhere
    write_image(folder / "000001.png", stuff_only)
    method = get_method("semantic", baseline="dis-medium", segmentation=folder)
    first = method.estimate(scene.img1, scene.img2)
    second = method.estimate(scene.img1, scene.img2)
    np.testing.assert_array_equal(first.extras["labels"], scene.labels)
    np.testing.assert_array_equal(second.extras["labels"], stuff_only)
    assert (second.extras["model_map"] == 0).all()
    np.testing.assert_array_equal(second.flow, second.extras["baseline_flow"])
    with pytest.raises(InputError, match="000002.png"):
        method.estimate(scene.img1, scene.img2)
    method.seek(0)
    np.testing.assert_array_equal(method.estimate(scene.img1, scene.img2).extras["labels"], scene.labels)


def test_kind_table_override_changes_the_models(scene):
    plain = get_method("semantic", baseline="dis-medium").estimate(scene.img1, scene.img2, labels=scene.labels)
    assert (plain.extras["model_map"] == 2).any()
    as_stuff = get_method("semantic", baseline="dis-medium", kinds="Car:stuff,Road:stuff")
    result = as_stuff.estimate(scene.img1, scene.img2, labels=scene.labels)
    assert (result.extras["model_map"] == 0).all() and (result.extras["kinds"] == 0).all()
    np.testing.assert_array_equal(result.flow, result.extras["baseline_flow"])
    with pytest.raises(InputError, match="unknown class"):
        get_method("semantic", baseline="dis-medium", kinds={"Spaceship": "thing"})
    kinds = get_label_set("camvid").kind_map(scene.labels)
    assert set(np.unique(kinds[scene.labels == CAR_ID])) == {2}
    assert set(np.unique(kinds[scene.labels == ROAD_ID])) == {1}


class CountingSegmenter:
    """A stand-in segmenter that returns given labels and counts its calls."""

    def __init__(self, labels: np.ndarray) -> None:
        self.labels = labels
        self.calls = 0
        self.label_set = get_label_set("camvid")

    def predict(self, image: np.ndarray, key=None) -> Segmentation:
        self.calls += 1
        probs = np.zeros((*self.labels.shape, 11), np.float32)
        return Segmentation(probs, self.labels, self.label_set)


def test_video_pairs_reuse_the_segmentation_of_the_shared_frame(scene):
    segmenter = CountingSegmenter(scene.labels)
    method = get_method("semantic", baseline="dis-medium", segmenter=segmenter)
    frames = [scene.img1, scene.img2, scene.img1[:, ::-1].copy()]
    method.estimate(frames[0], frames[1])
    method.estimate(frames[1], frames[2])
    method.estimate(frames[0], frames[1])
    assert segmenter.calls == 2  # frames 0 and 1 once each; frame 2 is never frame 1 of a pair
    np.testing.assert_array_equal(method.kind_map(frames[0]), get_label_set("camvid").kind_map(scene.labels))
    assert segmenter.calls == 2


def strict_json(text: str):
    """json.loads that refuses NaN / Infinity, as strict JSON parsers do."""
    def refuse(name: str):
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def test_explain_json_is_strict_json_when_a_number_is_undefined(scene, tmp_path):
    """explain.json held a bare NaN (a thing model's error over no valid pixels; issue 14)."""
    result = get_method("semantic", baseline="dis-medium").estimate(scene.img1, scene.img2, labels=scene.labels)
    report = json.loads(str(result.extras["report_json"]))
    report["things"][0]["model_error"] = float("nan")
    report["seconds"]["compose"] = float("inf")
    result.extras["report_json"] = np.array(json.dumps(report))
    write_semantic_explain(result, tmp_path)
    written = strict_json((tmp_path / "explain.json").read_text())
    assert written["things"][0]["model_error"] is None and written["seconds"]["compose"] is None
    assert written["things"][0]["class"] == "Car"


def test_write_explain_writes_maps_layers_and_decisions(scene, tmp_path):
    method = get_method("semantic", baseline="dis-medium")
    result = method.estimate(scene.img1, scene.img2, labels=scene.labels)
    write_semantic_explain(result, tmp_path)
    from semflow.io.images import read_image

    model_ids = read_image(tmp_path / "model_map_ids.png")[..., 0]
    np.testing.assert_array_equal(model_ids, result.extras["model_map"])
    flow, valid = read_flo(tmp_path / "flow.flo")
    np.testing.assert_allclose(flow, result.flow)
    obj, obj_valid = read_flo(tmp_path / "layer_object.flo")
    np.testing.assert_array_equal(obj_valid, np.isfinite(result.extras["layer_object"]).all(axis=2))
    assert obj_valid.any() and not obj_valid.all()
    for name in ("segmentation.png", "labels.png", "kinds.png", "model_map.png", "baseline.png",
                 "occlusion.png", "confidence.png", "layer_plane.png", "layer_background.png"):
        assert (tmp_path / name).is_file(), name
    report = strict_json((tmp_path / "explain.json").read_text())
    assert report["things"] and report["things"][0]["class"] == "Car"
    assert set(report["seconds"]) >= {"baseline", "segmentation", "planes", "things", "compose"}
    with pytest.raises(InputError, match="no semantic layers"):
        from semflow.baseline.base import FlowResult

        write_semantic_explain(FlowResult(result.flow), tmp_path / "other")


def test_a_masks_segmenter_reads_its_folder_by_frame_index_and_its_masks_stay_as_given(scene, tmp_path):
    """semantic with --segmenter masks:DIR failed at its first pair ("given masks need the image's name or
    frame index", which no user can give), and a masks:PNG was filtered over time in video mode: it now
    reads as --segmentation does (by frame index, never filtered)."""
    from semflow.video_state import VideoState

    folder = tmp_path / "masks"
    folder.mkdir()
    void = np.full_like(scene.labels, 11)  # CamVid's void everywhere: a filter over time would fill it
    write_image(folder / "000000.png", scene.labels)
    write_image(folder / "000001.png", void)
    method = get_method("semantic", baseline="dis-fast", segmenter=f"masks:{folder}")
    np.testing.assert_array_equal(method.estimate(scene.img1, scene.img2).extras["labels"], scene.labels)
    np.testing.assert_array_equal(method.estimate(scene.img1, scene.img2).extras["labels"], void)
    method.seek(0)
    first = method.estimate(scene.img1, scene.img2, state=VideoState())
    np.testing.assert_array_equal(first.extras["labels"], scene.labels)
    second = method.estimate(scene.img2, scene.img1, state=first.state)
    np.testing.assert_array_equal(second.extras["labels"], void)
    one = get_method("semantic", baseline="dis-fast", segmenter=f"masks:{folder / '000000.png'}")
    state = VideoState()
    for a, b in ((scene.img1, scene.img2), (scene.img2, scene.img1), (scene.img1, scene.img2)):
        result = one.estimate(a, b, state=state)
        np.testing.assert_array_equal(result.extras["labels"], scene.labels)
        state = result.state


class VocSegmenter:
    """A stand-in segmenter in PASCAL VOC's classes: a person (15) on background."""

    label_set = get_label_set("voc")

    def predict(self, image: np.ndarray, key=None) -> Segmentation:
        labels = np.zeros(image.shape[:2], np.uint8)
        labels[8:40, 8:40] = 15
        return Segmentation(np.zeros((*labels.shape, 21), np.float32), labels, self.label_set)


def test_kinds_name_the_classes_of_the_segmenters_label_set(scene, tmp_path):
    """--kinds naming a class of a segmenter in another label set than the given masks' (a VOC model:
    'person:stuff') was refused at once, "unknown class 'person' for label set 'camvid'": the table was
    checked against --label-set's classes, which only given masks and labels are in."""
    method = get_method("semantic", baseline="dis-fast", segmenter=VocSegmenter(), kinds="person:stuff")
    result = method.estimate(scene.img1, scene.img2)
    assert (result.extras["labels"] == 15).any() and (result.extras["kinds"] == 0).all()
    assert json.loads(str(result.extras["report_json"]))["things"] == []
    with pytest.raises(InputError, match="unknown class 'person' for label set 'camvid'"):
        method.estimate(scene.img1, scene.img2, labels=scene.labels)  # given labels are in --label-set's ids
    with pytest.raises(InputError, match="unknown class 'Road' for label set 'voc'"):
        get_method("semantic", baseline="dis-fast", segmenter=VocSegmenter(), kinds="Road:stuff")
    weights = tmp_path / "deeplab.pth"  # (never read: the segmenter is built on first use; only its being there
    weights.write_bytes(b"")  # is checked when the method is built)
    assert get_method("semantic", baseline="dis-fast", segmenter=f"torchvision:{weights}", kinds="person:stuff")
    with pytest.raises(InputError, match="unknown class 'Road' for label set 'voc'"):
        get_method("semantic", baseline="dis-fast", segmenter=f"torchvision:{weights}", kinds="Road:stuff")
