"""The CLIP prior: class lists, the fusion rule, loading a user's checkpoint offline, the text cache.

The CLIP tests build a tiny OpenCLIP model (2-layer towers, 32-d embeddings) with random weights,
save it as a checkpoint file and load it through the same path a real checkpoint takes. They skip
when the optional extra (open_clip_torch) is not installed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import socket
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import semflow.segmentation.clip.cache as clip_cache
from semflow.errors import InputError, SemflowError, WeightsError
from semflow.io.weights import is_torchscript_archive
from semflow.methods import get_method
from semflow.segmentation.clip import (
    DEFAULT_PRIOR_CLASSES,
    KINDS,
    ClipPriorSpec,
    PriorClass,
    parse_prior_classes,
    prior_from_options,
)
from semflow.segmentation.clip.cache import CACHE_ENV, class_text_embeddings, default_cache_dir
from semflow.segmentation.clip.fusion import JointClasses, fuse_region
from semflow.segmentation.clip.loading import ClipModel, file_sha256, load_clip_model
from semflow.segmentation.clip.prior import ClipPrior, masked_crops
from semflow.segmentation.clip.segmenter import PriorSegmenter
from semflow.segmentation.regions import Box, find_regions

BACKBONE = ["Sky", "Building", "Road", "Tree", "Car", "Pedestrian", "Void"]
BACKBONE_KINDS = {"Sky": "plane", "Building": "stuff", "Road": "plane", "Tree": "stuff", "Car": "thing",
                  "Pedestrian": "thing", "Void": "stuff"}
VOID = 6
PRIOR = "dog:thing,car:thing,person|pedestrian:thing,road:plane,sky:plane,building:stuff,tree:stuff"
TINY_CONFIG = {"embed_dim": 32, "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
               "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}


# --- class lists --------------------------------------------------------------------------------


def test_parse_prior_classes_spec_file_and_errors(tmp_path):
    classes = parse_prior_classes("car:thing, person|pedestrian:thing,\nroad:plane")
    assert [c.name for c in classes] == ["car", "person", "road"]
    assert classes[1] == PriorClass("person", "thing", ("pedestrian",)) and classes[1].matches("Pedestrian")
    file = tmp_path / "classes.txt"
    file.write_text("# mine\nboat:thing  # on water\nwater:plane\n")
    assert [(c.name, c.kind) for c in parse_prior_classes(file)] == [("boat", "thing"), ("water", "plane")]
    assert parse_prior_classes(str(file)) == parse_prior_classes(file)
    for bad, message in [("car", "neither a file"), ("car:vehicle", "kind must be"), ("car:thing,dog", "no kind"),
                         ("car:thing,Car:thing", "twice"), (" , ", "neither a file"), (tmp_path / "no.txt", "neither"),
                         # one class scored 1.0 in every region and took all; 1000 were encoded for minutes first
                         ("dog:thing", "at least 2 classes to choose from, got only 'dog'"),
                         (",".join(f"c{i}:thing" for i in range(256)), "256 prior classes: a label map holds")]:
        with pytest.raises(InputError, match=message):
            parse_prior_classes(bad)
    long = ",".join(f"class number {i}:stuff" for i in range(40))  # over 255 bytes: no file name can be that
    assert len(parse_prior_classes(long)) == 40  # (it was OSError "File name too long", a traceback)
    kinds = {c.kind for c in DEFAULT_PRIOR_CLASSES}
    assert kinds == set(KINDS) and len(DEFAULT_PRIOR_CLASSES) >= 30


# --- the fusion rule, on numbers ----------------------------------------------------------------


def _joint(prior: str = PRIOR) -> JointClasses:
    return JointClasses.build(BACKBONE, BACKBONE_KINDS, VOID, parse_prior_classes(prior))


def _clip_probs(joint_names: dict[str, float], prior: str = PRIOR) -> np.ndarray:
    classes = parse_prior_classes(prior)
    rest = (1.0 - sum(joint_names.values())) / (len(classes) - len(joint_names))
    return np.array([joint_names.get(c.name, rest) for c in classes])


def _backbone(**probs: float) -> np.ndarray:
    out = np.zeros(len(BACKBONE))
    for name, p in probs.items():
        out[BACKBONE.index(name)] = p
    return out


def test_joint_classes_share_matched_names_and_append_new_ones():
    joint = _joint()
    assert joint.names[:len(BACKBONE)] == tuple(BACKBONE)
    assert joint.names[len(BACKBONE):] == ("dog",)  # car, person (alias pedestrian), road, sky... are the backbone's
    names = [joint.names[i] for i in joint.clip_to_joint]
    assert names == ["dog", "Car", "Pedestrian", "Road", "Sky", "Building", "Tree"]
    assert joint.kinds[joint.names.index("dog")] == "thing"
    # a void id just past the class list is kept free
    j2 = JointClasses.build(BACKBONE[:-1], BACKBONE_KINDS, VOID, parse_prior_classes("dog:thing,Car:thing"))
    assert j2.names[VOID] == "void" and j2.names[VOID + 1] == "dog"


def test_fuse_region_rule():
    joint = _joint()
    uniform = np.full(7, 1 / 7)
    dog_id = joint.names.index("dog")
    # a confident backbone keeps its label against an indifferent CLIP
    label, kind, fused, kp = fuse_region(_backbone(Building=0.9, Tree=0.1), uniform, joint, 1)
    assert (label, kind) == (1, "stuff") and math.isclose(sum(kp.values()), 1.0)
    assert math.isclose(fused.sum(), 1.0)
    # stuff -> thing: the backbone leans to stuff (0.6), CLIP is sure of a dog
    label, kind, _, kp = fuse_region(_backbone(Building=0.6, Car=0.4), _clip_probs({"dog": 0.95}), joint, 1)
    assert (label, kind) == (dog_id, "thing")
    assert math.isclose(kp["thing"], 0.5 * 0.4 + 0.5 * (0.95 + 2 * 0.05 / 6), rel_tol=1e-9)
    # ... but not against a backbone sure of stuff: it flips only where CLIP's thing-minus-stuff margin
    # (0.967 - 0.017 = 0.95) exceeds the backbone's stuff-minus-thing margin
    assert fuse_region(_backbone(Building=0.98, Car=0.02), _clip_probs({"dog": 0.95}), joint, 1)[1] == "stuff"
    assert fuse_region(_backbone(Building=0.94, Car=0.06), _clip_probs({"dog": 0.95}), joint, 1)[1] == "thing"
    # thing -> stuff, the reverse
    label, kind, _, _ = fuse_region(_backbone(Car=0.55, Tree=0.45), _clip_probs({"tree": 0.97}), joint, 4)
    assert (label, kind) == (BACKBONE.index("Tree"), "stuff")
    # same kind, unsure backbone (0.45 < tau): the fused best of that kind wins (Pedestrian via alias person)
    label, kind, _, _ = fuse_region(_backbone(Car=0.45, Pedestrian=0.3, Road=0.25), _clip_probs({"person": 0.9}),
                                       joint, 4)
    assert (label, kind) == (BACKBONE.index("Pedestrian"), "thing")
    # same kind, confident backbone: label kept
    assert fuse_region(_backbone(Car=0.7, Pedestrian=0.3), _clip_probs({"person": 0.9}), joint, 4)[0] == 4
    # void: what the backbone does not know, CLIP decides (its weight grows to w + (1 - w) * void)
    label, kind, fused, _ = fuse_region(_backbone(Void=1.0), _clip_probs({"dog": 0.6}), joint, VOID)
    assert (label, kind) == (dog_id, "thing") and math.isclose(fused[dog_id], 0.6)
    # ... when CLIP is not sure either (best class below tau), the region stays void
    assert fuse_region(_backbone(Void=1.0), uniform, joint, VOID)[:2] == (VOID, "stuff")
    # w = 0: the backbone alone; w = 1: CLIP alone
    assert fuse_region(_backbone(Building=0.6, Car=0.4), _clip_probs({"dog": 0.95}), joint, 1, weight=0.0)[0] == 1
    assert fuse_region(_backbone(Building=1.0), _clip_probs({"dog": 0.95}), joint, 1, weight=1.0)[0] == dog_id
    with pytest.raises(InputError, match="weight"):
        fuse_region(_backbone(Building=1.0), uniform, joint, 1, weight=1.5)


def test_regions_and_masked_crops():
    labels = np.zeros((40, 60), np.uint8)
    labels[5:15, 5:25] = 1
    labels[25:35, 40:50] = 1
    labels[30:32, 2:4] = 2
    regions = find_regions(labels, [1, 2], min_area=10)  # the prior's regions are the shared Region type
    assert [(r.class_id, r.box, r.area) for r in regions] == [(1, Box(5, 15, 5, 25), 200), (1, Box(25, 35, 40, 50), 100)]
    assert regions[1].full_mask(labels.shape).sum() == 100 and (labels[regions[1].full_mask(labels.shape)] == 1).all()
    image = np.zeros((40, 60, 3), np.uint8)
    image[labels == 1] = (255, 0, 0)
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    crops = masked_crops(image, regions, size=(32, 32), mean=mean, std=std, margin=0.1)
    assert crops.shape == (2, 3, 32, 32)
    # the centre is the region's colour, the corners (outside the region) the mean colour, i.e. 0
    assert torch.allclose(crops[:, :, 16, 16], torch.tensor([(1 - 0.5) / 0.25, -0.5 / 0.25, -0.5 / 0.25]))
    assert crops[:, :, 0, 0].abs().max() < 0.05  # (bicubic upsampling rings a little)


# --- the real thing, on a tiny OpenCLIP model with random weights -------------------------------


@pytest.fixture(scope="module")
def open_clip():
    return pytest.importorskip("open_clip", reason="the CLIP prior's extra is not installed: pip install 'semflow[clip]'")


@pytest.fixture(scope="module")
def tiny(open_clip, tmp_path_factory):
    """(config path, checkpoint path, state dict): a tiny OpenCLIP model saved like a real checkpoint."""
    root = tmp_path_factory.mktemp("clip")
    config = root / "semflow-tiny-clip.json"
    config.write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    model = open_clip.create_model("semflow-tiny-clip", pretrained=None)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(100.0))  # a trained CLIP's temperature
    weights = root / "tiny_openclip.pt"
    torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, weights)
    return config, weights, model.state_dict()


@pytest.fixture
def no_network(monkeypatch, open_clip):
    """Any attempt to open a connection or to call open_clip's / huggingface's downloaders fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:2]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    import open_clip.pretrained as pretrained

    for name in ("download_pretrained", "download_pretrained_from_url", "download_pretrained_from_hf"):
        monkeypatch.setattr(pretrained, name, refuse)
    import open_clip.factory as factory

    for name in ("download_pretrained", "download_pretrained_from_hf"):
        monkeypatch.setattr(factory, name, refuse)


def _prior(tiny, tmp_path, **kwargs) -> ClipPrior:
    config, weights, _ = tiny
    return ClipPrior(str(config), weights, classes=kwargs.pop("classes", PRIOR), cache_dir=tmp_path / "cache",
                     **kwargs)


def test_checkpoint_loads_offline_and_classifies(tiny, tmp_path, no_network):
    _, weights, state = tiny
    prior = _prior(tiny, tmp_path)
    loaded = prior.clip.model.state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in state)  # 'module.' prefix and 'state_dict' unwrapped
    assert prior.clip.logit_scale == pytest.approx(100.0) and prior.clip.image_size == (64, 64)
    assert prior.clip.weights_sha256 == file_sha256(weights) and not prior.clip.openai_format
    assert prior.text.shape == (7, 32) and torch.allclose(prior.text.norm(dim=1), torch.ones(7))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    labels = np.zeros((48, 64), np.uint8)
    labels[10:30, 10:30] = 1
    probs = prior.classify(image, find_regions(labels))
    assert probs.shape == (2, 7) and np.allclose(probs.sum(1), 1.0, atol=1e-5) and (probs >= 0).all()


def test_openai_torchscript_archive_is_detected(open_clip, tiny, tmp_path, no_network):
    config, _, state = tiny
    model = open_clip.create_model("semflow-tiny-clip", pretrained=None)
    model.load_state_dict(state)
    archive = tmp_path / "ViT-tiny.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and TorchScript deprecation warnings
        images, tokens = torch.ones(1, 3, 64, 64), torch.zeros(1, 77, dtype=torch.int)
        inputs = {"encode_image": (images,), "encode_text": (tokens,)}
        torch.jit.trace_module(model.eval(), inputs).save(str(archive))
    assert is_torchscript_archive(archive) and not is_torchscript_archive(tiny[1])
    clip = load_clip_model(str(config), archive)
    assert clip.openai_format  # OpenAI models use QuickGELU
    assert all(torch.equal(clip.model.state_dict()[k], state[k]) for k in state)


def _count_text_encodes(monkeypatch) -> list[int]:
    """A list that gets the number of texts of every ClipModel.encode_texts call from now on."""
    calls: list[int] = []
    original = ClipModel.encode_texts

    def counting(self, texts, **kwargs):
        calls.append(len(texts))
        return original(self, texts, **kwargs)

    monkeypatch.setattr(ClipModel, "encode_texts", counting)
    return calls


def test_text_embeddings_are_cached_on_disk(tiny, tmp_path, monkeypatch):
    calls = _count_text_encodes(monkeypatch)
    first = _prior(tiny, tmp_path)
    assert calls == [7 * len(first.templates)] and len(list((tmp_path / "cache").glob("*.npz"))) == 1
    second = _prior(tiny, tmp_path)
    assert calls == [7 * len(first.templates)]  # hit: no text encoding the second time
    assert torch.equal(first.text, second.text)
    _prior(tiny, tmp_path, classes="dog:thing,boat:thing")  # another class list: another key
    assert len(calls) == 2 and len(list((tmp_path / "cache").glob("*.npz"))) == 2
    # the key holds the weights' hash: the same model under another file content misses
    other = tmp_path / "other.pt"
    state = {k: v.clone() for k, v in tiny[2].items()}
    state["logit_scale"] += 0.01
    torch.save(state, other)
    ClipPrior(str(tiny[0]), other, classes=PRIOR, cache_dir=tmp_path / "cache")
    assert len(calls) == 3
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env-cache"))
    assert default_cache_dir() == tmp_path / "env-cache"


def test_a_cached_entry_that_is_not_unit_vectors_of_the_model_is_computed_again(tiny, tmp_path):
    """A cache file with the right class names but NaN embeddings was trusted (every region scored NaN,
    labelled the first class, the prior's JSON invalid; exit 0); one of another width was a traceback."""
    first = _prior(tiny, tmp_path)
    (file,) = (tmp_path / "cache").glob("*.npz")
    good = np.load(file)["embeddings"]
    classes = np.load(file)["classes"]
    for bad in (np.full_like(good, np.nan), good[:, :16], good[:5], 2 * good):
        with open(file, "wb") as f:
            np.savez(f, embeddings=bad, classes=classes)
        again = _prior(tiny, tmp_path)
        assert torch.allclose(again.text, first.text), bad.shape
        np.testing.assert_allclose(np.load(file)["embeddings"], good, atol=1e-6)  # written anew


def test_a_deflated_cache_entry_is_a_miss_and_never_inflated(tiny, tmp_path, monkeypatch):
    """The cache (a user's folder) was read with np.load, which inflates a deflated entry before any check:
    a 64 KB file became a 64 MB array. Only what np.savez writes is read now: such a file is a miss (the
    text encoded again, the entry written anew) with a small peak, and a good entry still hits."""
    import tracemalloc

    first = _prior(tiny, tmp_path)
    (file,) = (tmp_path / "cache").glob("*.npz")
    classes = np.load(file)["classes"]
    with open(file, "wb") as f:
        np.savez_compressed(f, embeddings=np.zeros((7, 2_400_000), np.float32), classes=classes)
    assert file.stat().st_size < 200_000
    calls = _count_text_encodes(monkeypatch)
    config, weights, _ = tiny
    clip = load_clip_model(str(config), weights)
    tracemalloc.start()
    try:
        embeddings = class_text_embeddings(clip, [c.name for c in first.classes], templates=first.templates,
                                           cache_dir=tmp_path / "cache")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16_000_000, peak  # (np.load: 134 MB)
    assert len(calls) == 1 and np.allclose(embeddings, first.text.numpy(), atol=1e-6)
    assert _prior(tiny, tmp_path).text.shape == (7, 32) and len(calls) == 1  # written anew, then a hit


def test_no_home_folder_or_an_unreadable_cache_only_costs_time(tiny, tmp_path, monkeypatch):
    """With HOME unset and no passwd entry (a container run as a bare uid) Path.home() raised and `segment
    --prior clip` ended in a traceback; a cache folder it may not read was "Permission denied" (exit 1).
    Both only cost the text encoding, as the docstring promised."""
    config, weights, _ = tiny
    first = _prior(tiny, tmp_path)
    for name in (CACHE_ENV, "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    assert default_cache_dir() is None
    prior = ClipPrior(str(config), weights, classes=PRIOR)
    assert torch.allclose(prior.text, first.text)
    unreadable = tmp_path / "cache"
    (file,) = unreadable.glob("*.npz")
    real_load = np.load

    real_is_file = Path.is_file

    def refused(path, *args, **kwargs):  # (root reads any folder: its EACCES made by hand, for stat and open)
        if Path(path).parent == unreadable:
            raise PermissionError(13, "Permission denied", str(path))
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(np, "load", refused)
    monkeypatch.setattr(clip_cache, "read_npz", refused)
    monkeypatch.setattr(Path, "is_file", lambda self: refused(self) if self.parent == unreadable else real_is_file(self))
    again = _prior(tiny, tmp_path)
    assert torch.allclose(again.text, first.text)


def _scene():
    """An image and a backbone segmentation: road (left, sure), building (right, sure) holding two
    tree blobs the backbone is less sure of, A painted magenta and B cyan."""
    h, w = 96, 128
    rng = np.random.default_rng(3)
    image = rng.integers(60, 200, (h, w, 3), dtype=np.uint8)
    labels = np.full((h, w), BACKBONE.index("Building"), np.uint8)
    labels[:, :48] = BACKBONE.index("Road")
    probs = np.zeros((h, w, len(BACKBONE)), np.float32)
    probs[..., BACKBONE.index("Road")] = np.where(labels == 2, 0.9, 0.05)
    probs[..., BACKBONE.index("Building")] = np.where(labels == 1, 0.9, 0.05)
    probs[..., BACKBONE.index("Sky")] = 0.05
    blob_a = np.zeros((h, w), bool)
    blob_a[15:45, 60:90] = True
    blob_b = np.zeros((h, w), bool)
    blob_b[55:85, 90:120] = True
    for blob, colour in ((blob_a, (255, 0, 255)), (blob_b, (0, 255, 255))):
        labels[blob] = BACKBONE.index("Tree")
        probs[blob] = _backbone(Tree=0.55, Building=0.2, Car=0.25)
        image[blob] = colour
    return image, labels, probs, blob_a, blob_b


def _indifferent(prior: ClipPrior) -> torch.Tensor:
    """A unit direction orthogonal to every class embedding: CLIP's probabilities there are uniform."""
    q, _ = torch.linalg.qr(torch.cat([prior.text.T, torch.randn(32, 1, generator=torch.Generator().manual_seed(0))], 1))
    return q[:, -1]


def test_matching_features_in_one_region_change_its_label_and_nothing_else(tiny, tmp_path, monkeypatch):
    prior = _prior(tiny, tmp_path)
    dog = prior.text[prior.class_names.index("dog")]
    indifferent = _indifferent(prior)
    mean = torch.tensor(prior.clip.mean).view(3, 1, 1)
    std = torch.tensor(prior.clip.std).view(3, 1, 1)

    def encode(batch, **kwargs):
        """Image features: the dog's text embedding for crops that show the magenta blob, else indifferent."""
        rgb = batch * std + mean
        magenta = ((rgb[:, 0] > 0.9) & (rgb[:, 1] < 0.1) & (rgb[:, 2] > 0.9)).float().mean(dim=(1, 2))
        return torch.stack([dog if m > 0.2 else indifferent for m in magenta])

    monkeypatch.setattr(prior.clip, "encode_images", encode)
    image, labels, probs, blob_a, blob_b = _scene()
    result = prior.apply(image, probs, labels, BACKBONE, BACKBONE_KINDS, VOID)
    dog_id = result.joint.names.index("dog")
    changed = result.labels != labels
    assert np.array_equal(changed, blob_a)
    assert (result.labels[blob_a] == dog_id).all() and result.kinds["dog"] == "thing"
    by_box = {d.box: d for d in result.regions}
    a = by_box[Box(15, 45, 60, 90)]
    assert (a.clip_label, a.label, a.kind, a.changed) == ("dog", "dog", "thing", True) and a.clip_score > 0.99
    b = by_box[Box(55, 85, 90, 120)]
    assert (b.label, b.kind, b.changed) == ("Tree", "stuff", False)
    assert b.clip_score == pytest.approx(1 / 7, abs=1e-4)
    assert len(result.regions) == 4 and len(result.explain()) == 4 and "CLIP dog 1.00 -> dog (thing" in a.explain()
    # fused probabilities: (1 - w) * backbone + w * CLIP in scored regions; still distributions
    assert np.allclose(result.probs.sum(-1), 1.0, atol=1e-5)
    assert result.probs[30, 75, dog_id] == pytest.approx(0.5 * a.clip_score, rel=1e-5)


def test_fused_probabilities_move_the_backbones_void_mass_to_clip_and_stay_distributions(tiny, tmp_path,
                                                                                         monkeypatch):
    # A backbone with a void channel (VOID is among BACKBONE's classes): the rule gives the void mass v
    # to CLIP's classes; the fused probabilities kept (1 - w) * v on void too, and summed to 1 + (1 - w) * v.
    prior = _prior(tiny, tmp_path)
    h, w = 40, 60
    labels = np.full((h, w), BACKBONE.index("Building"), np.uint8)
    labels[:, :30] = VOID
    probs = np.zeros((h, w, len(BACKBONE)), np.float32)
    probs[..., BACKBONE.index("Building")] = np.where(labels == VOID, 0.0, 1.0)
    v = np.where(np.arange(w) % 2 == 0, 0.8, 0.6).astype(np.float32)[None, :].repeat(h, 0)  # void mass per pixel
    probs[..., VOID] = np.where(labels == VOID, v, 0.0)
    probs[..., BACKBONE.index("Road")] = np.where(labels == VOID, 1.0 - v, 0.0)
    p_clip = np.full(len(prior.classes), 0.02, np.float32)
    p_clip[prior.class_names.index("dog")] = 1.0 - 0.02 * (len(prior.classes) - 1)
    monkeypatch.setattr(prior, "classify", lambda image, regions: np.tile(p_clip, (len(regions), 1)))
    image = np.full((h, w, 3), 128, np.uint8)
    result = prior.apply(image, probs, labels, BACKBONE, BACKBONE_KINDS, VOID)
    assert np.allclose(result.probs.sum(-1), 1.0, atol=1e-5)
    assert np.allclose(result.probs[:, :30, VOID], 0.0)  # the void mass went to CLIP's classes
    region = labels == VOID
    _, _, fused, _ = fuse_region(probs[region].mean(axis=0), p_clip, result.joint, VOID, weight=prior.weight)
    assert np.allclose(result.probs[region].mean(axis=0), fused, atol=1e-5)  # the rule, on average over the region


class _Backbone:
    """A stand-in segmenter that returns the scene's backbone segmentation, as semflow's backends do."""

    def __init__(self, labels: np.ndarray, probs: np.ndarray):
        from semflow.segmentation import LabelSet

        self.labels, self.probs = labels, probs
        self.label_set = LabelSet("toy", BACKBONE, BACKBONE_KINDS, VOID,
                                  np.arange(len(BACKBONE) * 3, dtype=np.uint8).reshape(-1, 3))
        self.name, self.device, self.keys = "toy", "cpu", []

    def predict(self, image, key=None):
        from semflow.segmentation import Segmentation

        self.keys.append(key)
        return Segmentation(self.probs, self.labels, self.label_set)


def test_prior_segmenter_wraps_a_segmenter(tiny, tmp_path):
    from semflow.segmentation import Segmentation, Segmenter

    image, labels, probs, blob_a, _ = _scene()
    backbone = _Backbone(labels, probs)
    prior = _prior(tiny, tmp_path, classes=PRIOR + ",boat:thing")
    wrapped = PriorSegmenter(backbone, prior, explain_dir=tmp_path / "explain")
    assert isinstance(wrapped, Segmenter) and wrapped.name == "toy+clip" and wrapped.device == "cpu"
    assert wrapped.label_set.class_names[-2:] == ["dog", "boat"]
    fused = wrapped.predict(image, key=3)
    assert isinstance(fused, Segmentation) and backbone.keys == [3]
    assert fused.label_set is wrapped.label_set and fused.label_set.name == "toy+clip"
    assert fused.label_set.kinds["boat"] == "thing" and fused.label_set.palette.shape == (9, 3)
    assert np.array_equal(fused.label_set.palette[:7], backbone.label_set.palette)
    assert fused.probs.shape == (*labels.shape, 9) and fused.prior is wrapped.last_result
    assert len(fused.prior.regions) == 4
    written = json.loads((tmp_path / "explain" / "000003.json").read_text())
    assert len(written["regions"]) == 4 and {"clip", "clip_score", "label", "kind"} <= set(written["regions"][0])
    # instances follow the fused labels: a region relabelled as a thing becomes an instance
    dog = prior.text[prior.class_names.index("dog")]
    fused_dog = PriorSegmenter(backbone, _prior(tiny, tmp_path))
    fused_dog.prior.clip.encode_images = lambda batch, **kw: torch.stack(
        [dog if (b[1] < -1.5).float().mean() > 0.2 else _indifferent(fused_dog.prior) for b in batch])
    seg = fused_dog.predict(image)
    assert len(seg.instances) == 1 and np.array_equal(seg.instance_map > 0, blob_a)
    assert len(backbone.predict(image).instances) == 0


# --- errors a user can cause --------------------------------------------------------------------


def test_missing_extra_says_what_to_install(monkeypatch, tmp_path):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "open_clip", None)
    with pytest.raises(SemflowError, match=r"pip install 'semflow\[clip\]'"):
        load_clip_model("ViT-B-32", weights)


def test_missing_and_wrong_files_give_clear_errors(open_clip, tiny, tmp_path):
    config, weights, _ = tiny
    with pytest.raises(InputError, match="--clip-weights PATH"):
        load_clip_model("ViT-B-32", None)
    with pytest.raises(WeightsError, match="nope.pt: no such CLIP weights file"):
        load_clip_model("ViT-B-32", tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(WeightsError, match="not a readable CLIP checkpoint"):
        load_clip_model(str(config), junk)
    zip_like = tmp_path / "zip_like.pt"
    zip_like.write_bytes(b"PK\x03\x04" + b"garbage" * 10)
    with pytest.raises(WeightsError, match="not a readable CLIP checkpoint") as raised:
        load_clip_model(str(config), zip_like)
    # torch's text for such a file runs on for several sentences (it was cut mid-word at 160
    # characters): the message quotes its first sentence only.
    quoted = str(raised.value).split("checkpoint (", 1)[1]
    assert quoted.endswith(")") and ". " not in quoted, str(raised.value)
    not_clip = tmp_path / "linear.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), not_clip)
    with pytest.raises(WeightsError, match="does not fit CLIP model 'semflow-tiny-clip'"):
        load_clip_model(str(config), not_clip)
    other = tmp_path / "semflow-tiny-clip-wide.json"
    other.write_text(json.dumps({**TINY_CONFIG, "embed_dim": 48}))
    with pytest.raises(WeightsError, match="of another shape"):
        load_clip_model(str(other), weights)
    with pytest.raises(InputError, match="unknown CLIP model") as raised:
        load_clip_model("ViT-Q-99", weights)
    # the architectures it suggests are ones it would load: none of them refused below as Hub-bound
    suggested = str(raised.value).split("include ", 1)[1].split(", ")
    assert "ViT-B-32" in suggested and not [n for n in suggested if "SigLIP" in n], suggested
    with pytest.raises(InputError, match="by schema"):
        load_clip_model("hf-hub:laion/whatever", weights)
    with pytest.raises(InputError, match="HuggingFace"):
        load_clip_model("ViT-B-16-SigLIP", weights)


# --- options and wiring -------------------------------------------------------------------------


def test_prior_options_make_a_spec(tiny):
    import click
    from click.testing import CliRunner

    from semflow.cli_options import prior_options

    seen = {}

    @click.command()
    @prior_options
    def cmd(**kwargs):
        seen.update(kwargs)

    config, weights, _ = tiny
    result = CliRunner().invoke(cmd, ["--prior", "clip", "--clip-model", str(config), "--clip-weights", str(weights),
                                      "--prior-classes", "dog:thing,road:plane", "--prior-weight", "0.7"])
    assert result.exit_code == 0, result.output
    spec = prior_from_options(**seen)
    assert spec == ClipPriorSpec(str(config), str(weights), "dog:thing,road:plane", 0.7)
    assert CliRunner().invoke(cmd, ["--prior-weight", "x"]).exit_code != 0
    assert CliRunner().invoke(cmd, ["--prior", "clip", "--prior-weight", "1.5"]).exit_code == 0
    with pytest.raises(InputError, match="weight must be in"):
        prior_from_options(**seen)
    assert CliRunner().invoke(cmd, []).exit_code == 0 and prior_from_options(**seen) is None  # --prior none
    assert prior_from_options("none") is None and prior_from_options(None) is None
    with pytest.raises(InputError, match="unknown prior"):
        prior_from_options("dino")


def test_clip_prior_spec_is_frozen_and_checked(tmp_path):
    spec = ClipPriorSpec(weights=tmp_path / "w.pt", classes=[PriorClass("dog", "thing")])
    assert spec.weights == str(tmp_path / "w.pt") and spec.classes == (PriorClass("dog", "thing"),)
    assert hash(spec) == hash(ClipPriorSpec(weights=str(tmp_path / "w.pt"), classes=(PriorClass("dog", "thing"),)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.weight = 0.7
    assert spec.describe()["prior_classes"] == ["dog:thing"] and spec.describe()["clip_model"] == "ViT-B-32"
    for bad, message in [(dict(weight=1.5), "weight must be in"), (dict(backbone_confidence=-0.1), "confidence"),
                         (dict(max_regions=0), "max_regions"), (dict(min_area=0), "min_area"), (dict(model=" "), "model")]:
        with pytest.raises(InputError, match=message):
            ClipPriorSpec(**bad)


def test_get_segmenter_wraps_the_backend_in_the_prior_a_spec_names(tiny, tmp_path, monkeypatch):
    from semflow.segmentation import MaskSegmenter, get_segmenter
    from semflow.segmentation.clip.segmenter import PriorSegmenter as Wrapper

    config, weights, _ = tiny
    mask = tmp_path / "mask.png"
    cv2.imwrite(str(mask), np.full((48, 64), 3, np.uint8))  # CamVid's Road everywhere
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    spec = ClipPriorSpec(str(config), str(weights), classes="dog:thing,road:plane", weight=0.7, max_regions=3)
    wrapped = get_segmenter(f"masks:{mask}", kinds_override="Road:stuff", prior=spec)
    assert isinstance(wrapped, Wrapper) and isinstance(wrapped.segmenter, MaskSegmenter)
    assert wrapped.prior.class_names == ["dog", "road"] and wrapped.prior.weight == 0.7
    assert wrapped.prior.max_regions == 3 and wrapped.name == "masks+clip"
    assert wrapped.segmenter.label_set.kinds["Road"] == "stuff"  # the options reach the backbone
    assert wrapped.label_set.class_names[-1] == "dog"
    seg = wrapped.predict(np.zeros((48, 64, 3), np.uint8), key="x")
    assert seg.prior.regions and seg.label_set.name == "camvid+clip"
    assert isinstance(get_segmenter(f"masks:{mask}"), MaskSegmenter)  # no prior: the backend itself
    with pytest.raises(InputError, match="ClipPriorSpec"):
        get_segmenter(f"masks:{mask}", prior="clip")
    with pytest.raises(InputError, match="--clip-weights PATH"):  # the prior's errors come before the backend's
        get_segmenter("masks:/nonexistent", prior=ClipPriorSpec(str(config)))


def test_semantic_flow_gives_the_relabelled_region_its_own_kind(tiny, tmp_path, monkeypatch):
    """End to end through the semantic method: the blob CLIP calls a dog is a thing in the method's
    kind map; without the prior it is stuff; nothing else changes."""
    from semflow import semantic

    image, labels, probs, blob_a, _ = _scene()
    prior = _prior(tiny, tmp_path)
    dog = prior.text[prior.class_names.index("dog")]
    indifferent = _indifferent(prior)
    # magenta normalises to a green channel below -1.5; the texture and CLIP's mean colour do not
    monkeypatch.setattr(prior.clip, "encode_images",
                        lambda batch, **kw: torch.stack([dog if (b[1] < -1.5).float().mean() > 0.2 else indifferent
                                                         for b in batch]))
    with_clip = semantic.SemanticFlow(get_method("dis-fast"), segmenter=PriorSegmenter(_Backbone(labels, probs), prior))
    without = semantic.SemanticFlow(get_method("dis-fast"), segmenter=_Backbone(labels, probs))
    kinds_with = with_clip.kind_map(image)
    kinds_without = without.kind_map(image)
    assert (kinds_without[blob_a] == semantic.KIND_CODES["stuff"]).all()
    assert (kinds_with[blob_a] == semantic.KIND_CODES["thing"]).all()
    assert np.array_equal(kinds_with[~blob_a], kinds_without[~blob_a])
    assert with_clip.estimate(image, np.roll(image, 2, axis=1)).flow.shape == (*labels.shape, 2)


# --- command line -------------------------------------------------------------------------------


def _cli(args, monkeypatch, tmp_path):
    from click.testing import CliRunner

    from semflow.cli import main

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cli-cache"))
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_segment_and_run_with_the_prior(tiny, tmp_path, monkeypatch, make_frames):
    from semflow.io.images import read_image

    config, weights, _ = tiny
    frames = make_frames(count=3, height=48, width=64)
    clip = ["--prior", "clip", "--clip-model", config, "--clip-weights", weights, "--prior-classes", PRIOR]
    result = _cli(["segment", frames / "0000.png", "--out", tmp_path / "seg", *clip], monkeypatch, tmp_path)
    assert result.exit_code == 0, result.output
    decisions = json.loads((tmp_path / "seg" / "prior" / "0000.json").read_text())
    assert decisions["label_set"] == "camvid+clip" and decisions["regions"]
    assert all(0.0 <= r["clip_score"] <= 1.0 and r["clip"] in PRIOR for r in decisions["regions"])
    assert read_image(tmp_path / "seg" / "0000.png").shape[:2] == (48, 64)
    result = _cli(["run", frames, "--out", tmp_path / "run", "--method", "semantic", "--no-progress", *clip],
                  monkeypatch, tmp_path)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["pairs"] == 2
    # flow --explain wrote none of the prior's decisions the README promises (segment wrote them)
    result = _cli(["flow", frames / "0000.png", frames / "0001.png", "-o", tmp_path / "f.flo", "--method", "semantic",
                   "--explain", tmp_path / "ex", *clip], monkeypatch, tmp_path)
    assert result.exit_code == 0, result.output
    explained = json.loads((tmp_path / "ex" / "prior.json").read_text())
    assert explained == decisions  # frame 1's decisions, as segment gave them for that frame
    lines = (tmp_path / "ex" / "prior.txt").read_text().splitlines()
    assert len(lines) == len(decisions["regions"]) and all(line.startswith("region [") for line in lines)


def test_cli_prior_errors(tiny, tmp_path, monkeypatch, make_frames):
    frames = make_frames(count=2, height=32, width=48)
    result = _cli(["segment", frames / "0000.png", "--out", tmp_path / "seg", "--prior", "clip"], monkeypatch, tmp_path)
    assert result.exit_code == 1 and "--clip-weights PATH" in result.output
    result = _cli(["run", frames, "--out", tmp_path / "run", "--method", "dis-medium", "--prior", "clip",
                   "--clip-weights", tiny[1]], monkeypatch, tmp_path)
    assert result.exit_code == 1 and "--prior does not go with --method dis-medium" in result.output
    # the default model name (ViT-B-32) does not fit the tiny checkpoint: a one-line weights error
    result = _cli(["run", frames, "--out", tmp_path / "run", "--prior", "clip", "--clip-weights", tiny[1]],
                  monkeypatch, tmp_path)
    assert result.exit_code == 1 and "does not fit CLIP model 'ViT-B-32'" in result.output
    result = _cli(["segment", frames / "0000.png", "--out", tmp_path / "seg", "--prior", "clip",
                   "--clip-weights", tmp_path / "missing.pt"], monkeypatch, tmp_path)
    assert result.exit_code == 1 and "missing.pt: no such CLIP weights file" in result.output
    # a prior option without --prior clip would do nothing: refused, from the CLI and from Python
    result = _cli(["segment", frames / "0000.png", "--out", tmp_path / "seg", "--prior-weight", "0.7",
                   "--clip-weights", tiny[1]], monkeypatch, tmp_path)
    assert result.exit_code == 1 and "--clip-weights, --prior-weight act only with --prior clip" in result.output
    assert not (tmp_path / "seg").exists()
    with pytest.raises(InputError, match="--prior-classes acts only with --prior clip"):
        get_method("semantic", prior_classes="dog:thing")


def test_semantic_with_the_clip_prior_from_python_and_through_compare(tiny, tmp_path, monkeypatch):
    """The prior is an option of ``semantic`` like any other: the same spelling in get_method and compare."""
    from semflow import evaluation
    from semflow.synthetic import make_scene, write_dataset

    config, weights, _ = tiny
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    options = {"baseline": "dis-fast", "segmenter": "camvid", "prior": "clip", "clip_model": "semflow-tiny-clip",
               "clip_weights": str(weights), "prior_weight": 0.5}
    method = get_method("semantic", **options)
    assert method.baseline.name == "dis-fast" and isinstance(method.segmenter(), PriorSegmenter)
    scene = make_scene(96, 128, seed=4, num_objects=1)
    report = json.loads(str(method.estimate(scene.img1, scene.img2).extras["report_json"]))
    assert report["label_set"] == "camvid+clip"  # the labels came through the prior

    write_dataset(tmp_path / "synthetic", count=1, height=96, width=128, seed=4)
    results = evaluation.compare("synthetic", tmp_path / "synthetic", ["dis-fast", "semantic"], use_labels=False,
                                 method_options={f"semantic.{k}": v for k, v in options.items()})
    assert [r.method for r in results] == ["dis-fast", "semantic"] and np.isfinite(results[1].epe)
    missing = {**options, "clip_weights": str(tmp_path / "absent.pt")}
    with pytest.raises(WeightsError, match="absent.pt: no such CLIP weights file"):
        evaluation.compare("synthetic", tmp_path / "synthetic", ["semantic"], method_options=missing)
    folder = {**options, "clip_weights": str(tmp_path)}  # a folder was "not found" too
    with pytest.raises(WeightsError, match="not a file \\(--clip-weights names a CLIP checkpoint file\\)"):
        evaluation.compare("synthetic", tmp_path / "synthetic", ["semantic"], method_options=folder)


def test_segment_gives_each_video_its_own_prior_decisions(tiny, tmp_path):
    """Several videos: each one's decisions go to OUT/<video>/prior/NNNNNN.json (they were all written to
    OUT/prior/NNNNNN.json, each video's frame N over the one before); images keep OUT/prior/x.json."""
    from semflow.io.images import write_image
    from semflow.io.video import VideoWriter
    from semflow.segmentation.segment import segment_inputs

    image, labels, probs, _, _ = _scene()
    for name in ("a", "b"):
        with VideoWriter(tmp_path / f"{name}.mp4", 5.0) as writer:
            for k in range(2):
                writer.write(np.roll(image, k, axis=1))
    write_image(tmp_path / "still.png", image)
    wrapped = PriorSegmenter(_Backbone(labels, probs), _prior(tiny, tmp_path), explain_dir=tmp_path / "out" / "prior")
    segment_inputs([tmp_path / "a.mp4", tmp_path / "b.mp4", tmp_path / "still.png"], tmp_path / "out",
                   backend=wrapped, temporal=False, progress=False)
    out = tmp_path / "out"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.json")) == [
        "a/prior/000000.json", "a/prior/000001.json", "b/prior/000000.json", "b/prior/000001.json",
        "prior/still.json"]
    assert wrapped.explain_dir == out / "prior"  # given back as it was


def test_given_masks_behind_the_prior_are_not_filtered_over_time(tiny, tmp_path):
    """masks:DIR wrapped by the CLIP prior were filtered along the flow in video mode (1.8-3.7 % of the
    labels changed), where given masks alone stay as given: the video filter looked at the wrapper only."""
    from semflow.io.images import read_image_raw, write_image
    from semflow.io.video import VideoWriter
    from semflow.segmentation.masks import MaskSegmenter
    from semflow.segmentation.segment import segment_inputs

    image, labels, _, _, _ = _scene()
    (tmp_path / "masks").mkdir()
    with VideoWriter(tmp_path / "a.mp4", 5.0) as writer:
        for k in range(4):
            writer.write(np.roll(image, 3 * k, axis=1))
            write_image(tmp_path / "masks" / f"{k:06d}.png", np.roll(labels, 3 * k, axis=1).astype(np.uint8))
    outs = {}
    for temporal in (True, False):
        wrapped = PriorSegmenter(MaskSegmenter(tmp_path / "masks", label_set="camvid"), _prior(tiny, tmp_path))
        out = tmp_path / f"out-{temporal}"
        segment_inputs([tmp_path / "a.mp4"], out, backend=wrapped, temporal=temporal, progress=False)
        outs[temporal] = [read_image_raw(out / f"{k:06d}.png") for k in range(4)]
    for video, pairwise in zip(outs[True], outs[False], strict=True):
        np.testing.assert_array_equal(video, pairwise)


def test_clip_prior_spec_takes_name_kind_strings_in_a_list_and_says_what_else_it_wants():
    # A list of strings beside PriorClass objects is what a Python user writes first; it was an
    # AttributeError from describe() ('str' object has no attribute 'name') long after the spec was made.
    spec = ClipPriorSpec(classes=["dog:thing", PriorClass("road", "plane"), "sky|heaven:stuff"])
    assert spec.classes == (PriorClass("dog", "thing"), PriorClass("road", "plane"),
                            PriorClass("sky", "stuff", ("heaven",)))
    assert spec.describe()["prior_classes"] == ["dog:thing", "road:plane", "sky|heaven:stuff"]
    with pytest.raises(InputError, match="'dog' has no kind"):
        ClipPriorSpec(classes=["dog", "road"])
    with pytest.raises(InputError, match="PriorClass objects or 'name:kind' strings, not int"):
        ClipPriorSpec(classes=[PriorClass("dog", "thing"), 3])


def test_semantic_reads_a_folder_of_masks_behind_the_prior_by_frame_index(tiny, tmp_path):
    """semantic with masks:DIR behind the CLIP prior failed at its first pair ("given masks need the image's
    name or frame index"): the segmenter was called without the frame's index."""
    from semflow.io.images import write_image
    from semflow.methods import get_method
    from semflow.segmentation.masks import MaskSegmenter
    from semflow.video_state import VideoState

    image, labels, _, _, _ = _scene()
    (tmp_path / "masks").mkdir()
    road = np.full_like(labels, 3)
    write_image(tmp_path / "masks" / "000000.png", labels)
    write_image(tmp_path / "masks" / "000001.png", road)
    wrapped = PriorSegmenter(MaskSegmenter(tmp_path / "masks", label_set="camvid"), _prior(tiny, tmp_path))
    method = get_method("semantic", baseline="dis-fast", segmenter=wrapped)
    first = method.estimate(image, np.roll(image, 2, axis=1), state=VideoState())
    second = method.estimate(np.roll(image, 2, axis=1), np.roll(image, 4, axis=1), state=first.state)
    assert (second.extras["labels"] == 3).all() and not (first.extras["labels"] == 3).all()


def test_the_prior_sees_a_float_or_grey_image_as_the_segmenter_does(tiny, tmp_path):
    # Segmenters take grey, RGBA, 16-bit and float [0, 1] images (converted to uint8 RGB); CLIP's crops were
    # cut from the image as given: a float image's crops came out near black (0-1 on a 0-255 canvas) and a
    # grey one was a numpy broadcasting traceback.
    image, labels, probs, _, _ = _scene()
    wrapped = PriorSegmenter(_Backbone(labels, probs), _prior(tiny, tmp_path))
    want = [(d.clip_label, round(d.clip_score, 4)) for d in wrapped.predict(image).prior.regions]
    got = [(d.clip_label, round(d.clip_score, 4)) for d in wrapped.predict(image / np.float32(255)).prior.regions]
    assert got == want
    grey = image[..., 1]
    rgb = [(d.clip_label, round(d.clip_score, 4)) for d in wrapped.predict(np.repeat(grey[..., None], 3, 2)).prior.regions]
    assert [(d.clip_label, round(d.clip_score, 4)) for d in wrapped.predict(grey).prior.regions] == rgb


def test_an_architecture_whose_published_weights_all_take_another_normalisation_gets_it(open_clip, tiny, tmp_path,
                                                                                         monkeypatch):
    # open_clip keeps the input normalisation with each published checkpoint, not with the architecture, and a
    # model built without one gets OpenAI's: every MobileCLIP checkpoint takes RGB in [0, 1] as it is (mean 0,
    # std 1), every PE-Core one mean and std 0.5, and CLIP was fed them normalised as OpenAI's models are.
    published = {"semflow-tiny-clip": {"a": {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)},
                                       "b": {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}}}
    monkeypatch.setattr(open_clip, "list_pretrained_tags_by_model", lambda name: list(published.get(name, {})))
    monkeypatch.setattr(open_clip, "get_pretrained_cfg", lambda name, tag: published.get(name, {}).get(tag, {}))
    clip = _prior(tiny, tmp_path).clip
    assert (clip.mean, clip.std) == ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    # checkpoints of the architecture that disagree (ViT-L-14's LAION-2B one takes 0.5): OpenAI's, as before
    published["semflow-tiny-clip"]["b"] = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
    clip = _prior(tiny, tmp_path).clip
    assert clip.mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))
