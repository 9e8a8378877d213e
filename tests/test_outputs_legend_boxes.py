"""What semflow writes about its segmentation: the panel's class key names the set the tile is coloured in,
every JSON box is [x0, y0, x1, y1], the CLIP prior's decisions name the ids of the classes it adds, and a
file that is no CLIP checkpoint gets a reason a user can act on.

Stand-ins only: a segmenter that labels in VOC, a CLIP prior that relabels half the frame as a class it
adds (no CLIP model), a 64x128 scene with a car on a road.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from semflow import render
from semflow.errors import WeightsError
from semflow.methods import get_method
from semflow.pipeline import run_video
from semflow.run_options import RunOptions
from semflow.segmentation import CAMVID, VOC, Box, Segmentation, Segmenter, get_label_set
from semflow.segmentation.clip.fusion import JointClasses, PriorResult, RegionDecision
from semflow.segmentation.clip.prompts import parse_prior_classes
from semflow.segmentation.clip.segmenter import PriorSegmenter, write_prior_decisions
from semflow.semantic import write_semantic_explain


def _one_hot(labels: np.ndarray, count: int) -> np.ndarray:
    return np.eye(count, dtype=np.float32)[labels]


class _Stub(Segmenter):
    """Labels the left half ``left`` and the right half ``right`` of any image, in ``label_set``."""

    def __init__(self, label_set, left: int, right: int):
        self.label_set, self.left, self.right, self.name = label_set, left, right, "stub"

    def predict(self, image, key=None):
        h, w = image.shape[:2]
        labels = np.full((h, w), self.left, np.uint8)
        labels[:, w // 2:] = self.right
        return Segmentation(_one_hot(labels, self.label_set.num_classes), labels, self.label_set)


class _FakePrior:
    """A CLIP prior without CLIP: it adds ``dog`` and ``water`` and calls the frame's left half water."""

    def __init__(self):
        self.classes = parse_prior_classes("dog:thing,water:plane,road:plane")

    def apply(self, image, probs, labels, class_names, kinds, void_id):
        joint = JointClasses.build(class_names, kinds, void_id, self.classes)
        water = joint.names.index("water")
        out = labels.copy()
        out[:, : labels.shape[1] // 2] = water
        decision = RegionDecision(box=Box(0, labels.shape[0], 0, labels.shape[1] // 2), area=int((out == water).sum()),
                                  backbone_label=class_names[labels[0, 0]], backbone_score=0.9, clip_label="water",
                                  clip_score=0.95, label="water", kind="plane",
                                  kind_probs={"thing": 0.0, "plane": 1.0, "stuff": 0.0}, changed=True,
                                  label_id=water, backbone_id=int(labels[0, 0]))
        return PriorResult(out, _one_hot(out, len(joint.names)), joint, [decision])


def _record_keys(monkeypatch) -> list[tuple[np.ndarray, list[str], np.ndarray]]:
    """Each (tile, names, colours) the panel's class key is drawn with."""
    seen = []
    original = render.add_class_legend

    def recording(image, names, colors):
        seen.append((np.array(image), list(names), np.asarray(colors, np.uint8)))
        return original(image, names, colors)

    monkeypatch.setattr(render, "add_class_legend", recording)
    return seen


# --- item 3: the panel's key -------------------------------------------------------------------


def test_panel_key_names_a_torchvision_like_segmenters_voc_classes(make_frames, tmp_path, monkeypatch):
    method = get_method("semantic", baseline="dis-ultrafast", segmenter=_Stub(VOC, 0, VOC.class_id("person")))
    seen = _record_keys(monkeypatch)
    frames = make_frames(count=3, height=240, width=320)  # (a tile the key fits in)
    run_video(frames, tmp_path / "out", RunOptions(method="semantic", progress=False), method=method)
    assert len(seen) == 2
    for tile, names, colors in seen:
        assert names == VOC.class_names  # it was CamVid's Sky ... Bicyclist
        person = colors[names.index("person")]
        assert (tile[:, -1] == person).all() and (tile[:, 0] == colors[names.index("background")]).all()
    assert method.tile_label_set().name == "voc"


def test_panel_key_holds_the_classes_a_clip_prior_adds_in_the_tiles_colours(make_frames, tmp_path, monkeypatch):
    backbone = _Stub(CAMVID, CAMVID.class_id("Road"), CAMVID.class_id("Building"))
    method = get_method("semantic", baseline="dis-ultrafast", segmenter=PriorSegmenter(backbone, _FakePrior()))
    seen = _record_keys(monkeypatch)
    frames = make_frames(count=3, height=240, width=320)  # (a tile the key fits in)
    run_video(frames, tmp_path / "out", RunOptions(method="semantic", progress=False), method=method)
    assert seen
    for tile, names, colors in seen:
        assert names[:11] == CAMVID.class_names and names[11:] == ["dog", "water"]  # void (black) left out
        assert (tile[:, 0] == colors[names.index("water")]).all()  # the key's colour is the tile's
        assert (tile[:, -1] == colors[names.index("Building")]).all()
    assert method.tile_label_set().name == "camvid+clip"


@pytest.mark.parametrize("label_set", [CAMVID, VOC])
def test_a_key_that_would_hide_a_small_tile_goes_below_the_panel(label_set) -> None:
    """At 160x120 CamVid's key covered most of the segmentation tile (VOC's showed some of its names only):
    now the tile is left whole and the key, every name, is a strip under the panel; a tile it fits in keeps it."""
    from semflow.viz import label_image

    names, colors = render.class_key(label_set)
    for h, w, inside in ((120, 160, False), (240, 320, True)):
        labels = (np.arange(w)[None] * len(names) // w).repeat(h, 0).astype(np.uint8) + (label_set is VOC)
        seg = label_set.colorize(labels)
        flow = np.zeros((h, w, 2), np.float32)
        frame = np.full((h, w, 3), 128, np.uint8)
        _, panel = render.draw_pair(frame, 0, (flow, seg, flow), 5.0, "semantic", label_set)
        tile = panel[:h, w + 4:2 * w + 4]
        if inside:
            assert panel.shape[0] == 2 * h + 4
            assert not np.array_equal(tile, label_image(seg, "segmentation"))  # the key is drawn on it
            continue
        assert np.array_equal(tile, label_image(seg, "segmentation"))  # the tile whole, under its title only
        strip = panel[2 * h + 8:]
        assert panel.shape[1] == 2 * w + 4 and strip.shape[0] > 0 and (panel[2 * h + 4:2 * h + 8] == 255).all()
        for colour in colors:
            if colour.any():  # (a black swatch shows only by its white frame on the dark strip)
                assert (strip == colour).all(axis=2).sum() >= 4, colour


def test_key_and_snapping_colours_come_from_the_tiles_label_set():
    fused = PriorSegmenter(_Stub(CAMVID, 3, 1), _FakePrior()).label_set
    names, colors = render.class_key(fused)
    labels = np.array([[fused.class_names.index(n) for n in names]], np.uint8)
    assert np.array_equal(colors, fused.colorize(labels)[0])
    snapped = render.tile_colours(fused)
    assert [0, 0, 0] in snapped.tolist()  # void pixels are black in the tile: a decoded one stays black
    assert {tuple(c) for c in colors} <= {tuple(c) for c in snapped}


# --- item 5: every box [x0, y0, x1, y1] ----------------------------------------------------------


def test_explain_json_boxes_are_x0_y0_x1_y1(tmp_path):
    h, w = 64, 128
    rng = np.random.default_rng(0)
    img1 = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img2 = np.roll(img1, 2, axis=1)
    labels = np.full((h, w), CAMVID.class_id("Road"), np.uint8)
    labels[10:30, 70:110] = CAMVID.class_id("Car")
    method = get_method("semantic", baseline="dis-ultrafast", segmentation=labels)
    write_semantic_explain(method.estimate(img1, img2), tmp_path)
    report = json.loads((tmp_path / "explain.json").read_text())
    (thing,) = report["things"]
    x0, y0, x1, y1 = thing["box"]
    assert x0 <= 70 and 110 <= x1 <= w and y0 <= 10 and 30 <= y1 <= h  # it was [y0, y1, x0, x1]
    assert x1 - x0 < w and y1 - y0 < h
    assert [p["box"] for p in report["planes"]] == [[0, 0, w, h]]  # the road: the whole frame, x1, y1 exclusive


def test_sharpen_and_prior_boxes_are_x0_y0_x1_y1():
    from semflow.layers.boundary_layers import RegionReport
    from semflow.sharpen import report_entries

    assert Box(1, 5, 10, 30).xyxy() == [10, 1, 30, 5]
    (entry,) = report_entries([RegionReport(box=Box(1, 5, 10, 30), pixels=3, motions=2, kept=True)])
    assert entry["box"] == [10, 1, 30, 5]
    result = _FakePrior().apply(None, _one_hot(np.zeros((6, 8), np.uint8), 12), np.zeros((6, 8), np.uint8),
                                CAMVID.class_names, CAMVID.kinds, CAMVID.void_id)
    assert result.to_json()[0]["box"] == [0, 0, 4, 6]


# --- item 6: the ids of the classes the prior adds ---------------------------------------------


def test_prior_decisions_name_every_class_id(tmp_path):
    backbone = _Stub(CAMVID, CAMVID.class_id("Road"), CAMVID.class_id("Building"))
    segmenter = PriorSegmenter(backbone, _FakePrior(), explain_dir=tmp_path / "prior")
    image = np.zeros((24, 32, 3), np.uint8)
    seg = segmenter.predict(image, key=0)
    written = json.loads((tmp_path / "prior" / "000000.json").read_text())
    assert written["label_set"] == "camvid+clip"
    names = written["class_names"]
    assert names[:11] == CAMVID.class_names and names[11:] == ["void", "dog", "water"]
    assert written["void_id"] == 11 and len(written["palette"]) == len(names)
    (region,) = written["regions"]
    assert names[region["label_id"]] == region["label"] == "water"
    assert names[int(seg.labels[0, 0])] == "water"  # an id in the label map, read by name
    assert written["palette"][region["label_id"]] == seg.label_set.palette[region["label_id"]].tolist()
    # the file is a label-set file: --label-set OUT/prior/NAME.json reads the label maps
    again = get_label_set(tmp_path / "prior" / "000000.json")
    assert again.class_names == names and again.kinds["water"] == "plane" and again.void_id == 11
    write_prior_decisions(segmenter, tmp_path / "ex")  # flow --explain's prior.json: the same
    assert json.loads((tmp_path / "ex" / "prior.json").read_text()) == written


# --- item 8: a file that is no CLIP checkpoint ------------------------------------------------


@pytest.mark.parametrize(("content", "expected"), [
    (b"RIFF\x10\x00\x00\x00AVI LIST" + bytes(200), "it is an AVI video, not a checkpoint"),
    (b"\x00\x00\x00\x18ftypmp42" + bytes(200), "it is an MP4 or MOV video"),
    (b"\x00\x00\x00\x1cftypavci\x00\x00\x00\x00mif1miafavci" + bytes(200), "it is an AVIF or HEIF image"),
    (b"hello world\n" * 20, "neither a torch weights file nor a safetensors file; --clip-weights takes"),
    (b"", "the file is empty"),
])
def test_not_a_clip_checkpoint_says_why_in_words(tmp_path: Path, content: bytes, expected: str) -> None:
    from semflow.segmentation.clip.loading import read_state_dict

    path = tmp_path / "weights.pt"
    path.write_bytes(content)
    with pytest.raises(WeightsError) as raised:
        read_state_dict(path, openai_format=False)
    message = str(raised.value)
    assert message.startswith(f"{path} is not a readable CLIP checkpoint (") and expected in message
    assert "pop from empty list" not in message and "(101)" not in message and "EOFError" not in message
