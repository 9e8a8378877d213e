"""The method registry, the FlowMethod interface and its input checks, and the OpenCV methods on exact scenes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import semflow
from semflow.baseline.base import FlowMethod, FlowResult, check_pair
from semflow.device import check_device_name, resolve_device
from semflow.errors import InputError
from semflow.methods import (
    OPENCV_METHODS,
    cli_options,
    describe_methods,
    get_method,
    list_methods,
    method_options,
    names_of,
    route_options,
)
from semflow.metrics import epe
from semflow.options import options_dict
from semflow.synthetic import translation_scene


@pytest.fixture(scope="module")
def shifted():
    return translation_scene(64, 96, shift=(3.0, -2.0), seed=2)


class Recorder(FlowMethod):
    """Returns zero flow and remembers what it was given."""

    name = "recorder"
    uses_labels = True

    def _estimate(self, img1, img2, labels=None):
        self.seen = (img1, img2, labels)
        return FlowResult(np.zeros((*img1.shape[:2], 2), np.float64))


class WrongShape(FlowMethod):
    name = "wrong"

    def _estimate(self, img1, img2):
        return FlowResult(np.zeros((2, 2, 2), np.float32))


def test_registry_lists_and_describes_all_methods() -> None:
    names = list_methods()
    assert names[:6] == list(OPENCV_METHODS)
    assert {"discrete", "semantic"} <= set(names)
    descriptions = describe_methods()
    assert list(descriptions) == names and all(descriptions[n] for n in names)


def test_unknown_method_lists_the_known_ones() -> None:
    with pytest.raises(InputError) as info:
        get_method("raft")
    message = str(info.value)
    assert message.startswith("unknown method 'raft'; known methods: ")
    assert all(name in message for name in list_methods())


@pytest.mark.parametrize(("typed", "meant"), [("dis_medium", "dis-medium"), ("DIS-Medium", "dis-medium"),
                                              ("dis-medum", "dis-medium"), ("discreet", "discrete"), ("tvl-1", "tvl1")])
def test_a_misspelt_method_names_the_likeliest_one(typed: str, meant: str) -> None:
    """`--method dis_medium` (or a case or typing slip) listed the known methods only."""
    with pytest.raises(InputError, match=f"^unknown method '{typed}' \\(did you mean {meant}\\?\\); known methods: "):
        get_method(typed)
    with pytest.raises(InputError, match=f"^unknown method '{typed}' \\(did you mean {meant}\\?\\)"):
        names_of(["dis-fast", typed])


def test_an_unknown_baseline_of_semantic_names_the_option() -> None:
    """`--method semantic --baseline dis-medim` said "unknown method 'dis-medim'": the user looked at
    --method semantic, which is right."""
    with pytest.raises(InputError, match=r"^semantic's baseline \(--baseline\): unknown method 'dis-medim' "
                                         r"\(did you mean dis-medium\?\)"):
        get_method("semantic", baseline="dis-medim")


@pytest.mark.parametrize("name", ["dis-medium", "farneback", "discrete", "semantic"])
def test_a_misspelt_device_is_an_error_for_every_method(name) -> None:
    # Methods with no torch part ignore the device, but a name that is no device at all is refused by
    # each of them, before anything is built.
    for device in ("banana", "cuda:", "cuda:x", "gpu", "cuda 0", "meta"):
        with pytest.raises(InputError, match=f"unknown device '{device}'; use cpu, cuda, cuda:N or auto"):
            get_method(name, device=device)


@pytest.mark.parametrize("name", ["dis-fast", "farneback", "tvl1"])
def test_a_gpu_this_machine_lacks_is_an_error_for_methods_without_torch(name, monkeypatch) -> None:
    """`--method dis-fast --device cuda` ran on the CPU without a word where there is no GPU (discrete said
    "no CUDA GPU is available"); with one, the OpenCV methods are built and simply run on the CPU."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="'cuda' asked for, but no CUDA GPU is available here"):
        get_method(name, device="cuda")
    assert get_method(name, device="auto").name == name
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert get_method(name, device="cuda:0").name == name


def test_device_names_are_parsed_in_one_place(monkeypatch) -> None:
    import torch

    assert [check_device_name(d) for d in (None, " CPU ", "auto", "cuda", "Cuda:12")] == \
        ["cpu", "cpu", "auto", "cuda", "cuda:12"]
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="'cuda:1' asked for, but no CUDA GPU is available here"):
        resolve_device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(InputError, match=r"'cuda:1' asked for, but this machine has 1 CUDA GPU \(cuda:0\)$"):
        resolve_device("cuda:1")


def test_a_device_index_torch_cannot_parse_is_refused_in_one_line(monkeypatch) -> None:
    """`--device cuda:01` (a leading zero), `cuda:\u0661` (a non-ASCII digit, which the pattern's \\d took) and
    `cuda:99999999999999999999` passed the name check and then reached torch.device, whose RuntimeError was a
    traceback; cuda:128 became cuda:-128 (torch's index is 8 bits)."""
    import torch

    assert check_device_name("cuda:01") == "cuda:1"  # a leading zero is the same GPU
    for device in ("cuda:\u0661", "cuda:\uff11"):
        with pytest.raises(InputError, match="unknown device"):
            check_device_name(device)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda:01", "cuda:99999999999999999999", "cuda:128"):
        with pytest.raises(InputError, match="no CUDA GPU is available here"):
            resolve_device(device)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:01") == torch.device("cuda:1")
    for device in ("cuda:99999999999999999999", "cuda:128"):
        with pytest.raises(InputError, match=r"this machine has 2 CUDA GPUs \(cuda:0 to cuda:1\)$"):
            resolve_device(device)


def test_options_are_checked() -> None:
    with pytest.raises(InputError, match="takes no option 'levels'; its options: device, sharpen$"):
        get_method("farneback", levels=3)
    assert get_method("farneback", device="auto").name == "farneback"  # no torch inside: device unused
    assert get_method("dis-fast", preset=None).name == "dis-fast"       # None means "not given"
    with pytest.raises(InputError, match="'dis-fast' takes no option 'preset'"):
        get_method("dis-fast", preset="medium")
    with pytest.raises(InputError, match="option 'preset' must be one of fast, balanced, accurate"):
        get_method("discrete", preset="turbo")
    with pytest.raises(InputError, match="option 'prior_weight' takes float"):
        get_method("semantic", prior_weight="heavy")
    # a label map given as a list was written out whole into the line (58k characters for 160x120)
    with pytest.raises(InputError, match=r"takes str or PathLike or ndarray, not a list \(\[\[0, 0, .{20,60}\.\.\.\)$"):
        get_method("semantic", baseline="dis-fast", segmentation=np.zeros((120, 160), np.uint8).tolist())
    method = get_method("dis-medium")
    assert get_method(method) is method


def test_every_method_declares_typed_options_and_keeps_them() -> None:
    for name in list_methods():
        infos = method_options(name)
        assert infos[0].name == "device" and all(i.help for i in infos), name
    method = get_method("discrete", preset="fast", k="4")  # text from the command line is converted
    assert method.options.k == 4 and method.params.k == 4 and method.options.preset == "fast"
    assert options_dict(get_method("dis-medium").options) == {"device": "cpu", "sharpen": False}


def test_compare_routes_each_option_to_the_methods_that_declare_it() -> None:
    routed = route_options(["dis-medium", "discrete", "semantic"],
                           {"device": "cpu", "preset": "fast", "semantic.baseline": "dis-fast", "kinds": None})
    assert routed == {"dis-medium": {"device": "cpu"}, "discrete": {"device": "cpu", "preset": "fast"},
                      "semantic": {"device": "cpu", "baseline": "dis-fast"}}
    with pytest.raises(InputError, match="no method among dis-medium, deepflow takes option 'preset'"):
        route_options(["dis-medium", "deepflow"], {"preset": "fast"})
    with pytest.raises(InputError, match="names method 'discrete', which is not compared"):
        route_options(["dis-medium"], {"discrete.k": 4})


def test_cli_offers_each_declared_command_line_option_once() -> None:
    offered = {info.name: takers for info, takers in cli_options()}
    assert offered["device"] == list_methods()
    assert offered["preset"] == ["discrete"]
    assert {"baseline", "segmenter", "prior", "clip_weights"} <= set(offered)
    assert "k" not in offered and "planes" not in offered  # Python-only options


@pytest.mark.parametrize("name", OPENCV_METHODS)
def test_opencv_methods_recover_a_translation(shifted, name: str) -> None:
    method = get_method(name)
    assert method.name == name
    result = method.estimate(shifted.img1, shifted.img2)
    assert isinstance(result, FlowResult)
    assert result.flow.dtype == np.float32 and result.flow.shape == (64, 96, 2)
    inner = np.zeros((64, 96), bool)
    inner[8:-8, 8:-8] = True
    assert epe(result.flow, shifted.flow, ~shifted.occluded, inner) < 0.3


def test_estimate_flow_api(shifted) -> None:
    flow = semflow.estimate_flow(shifted.img1, shifted.img2, method="dis-fast")
    assert flow.shape == (64, 96, 2) and flow.dtype == np.float32
    np.testing.assert_allclose(np.median(flow[8:-8, 8:-8].reshape(-1, 2), axis=0), (3.0, -2.0), atol=0.2)
    with pytest.raises(InputError, match="unknown method"):
        semflow.estimate_flow(shifted.img1, shifted.img2, method="nope")


def test_frames_of_different_sizes_are_rejected() -> None:
    with pytest.raises(InputError, match="frame sizes differ: 96x64 vs 95x64"):
        get_method("dis-ultrafast")(np.zeros((64, 96, 3), np.uint8), np.zeros((64, 95, 3), np.uint8))


def test_gray_rgba_and_16bit_frames_are_converted(shifted) -> None:
    method = get_method("dis-medium")
    reference = method(shifted.img1, shifted.img2)
    rgba = np.dstack([shifted.img2, np.full(shifted.img2.shape[:2], 255, np.uint8)])
    np.testing.assert_array_equal(method(shifted.img1.astype(np.uint16) * 257, rgba), reference)
    gray1, gray2 = shifted.img1.mean(axis=2).astype(np.uint8), shifted.img2.mean(axis=2).astype(np.uint8)
    flow = method(gray1, gray2)
    assert flow.shape == (64, 96, 2)
    np.testing.assert_allclose(np.median(flow[8:-8, 8:-8].reshape(-1, 2), axis=0), (3.0, -2.0), atol=0.2)
    a, b = check_pair(gray1, rgba)
    assert a.shape == b.shape == (64, 96, 3) and a.dtype == np.uint8


def test_labels_reach_methods_that_use_them_and_are_checked() -> None:
    img = np.zeros((8, 10, 3), np.uint8)
    method = Recorder()
    labels = np.full((8, 10), 3, np.uint8)
    result = method.estimate(img, img, labels=labels)
    assert result.flow.dtype == np.float32  # cast by the interface
    assert method.seen[2] is not None and (method.seen[2] == 3).all()
    with pytest.raises(InputError, match="segmentation size 9x8 differs"):
        method.estimate(img, img, labels=np.zeros((8, 9), np.uint8))
    # labels with a channel axis read "segmentation size 10x8 differs from the frames' 10x8"
    with pytest.raises(InputError, match=r"a label map \(H, W\) of class ids, got shape \(8, 10, 3\)"):
        method.estimate(img, img, labels=np.zeros((8, 10, 3), np.uint8))
    # Methods that take no labels simply ignore them.
    assert get_method("dis-ultrafast").estimate(img, img, labels=np.zeros((1, 1))).flow.shape == (8, 10, 2)


def test_a_method_returning_the_wrong_shape_is_a_bug_not_a_user_error() -> None:
    img = np.zeros((8, 10, 3), np.uint8)
    with pytest.raises(RuntimeError, match="wrong: returned flow of shape"):
        WrongShape()(img, img)


@pytest.mark.parametrize("name", OPENCV_METHODS)
def test_tiny_and_thin_frames(name: str) -> None:
    """OpenCV's DIS raised on frames under 12 px and segfaulted on short wide ones; every method copes."""
    rng = np.random.default_rng(0)
    method = get_method(name)
    for h, w in ((2, 2), (8, 10), (16, 100), (100, 12)):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        flow = method(img, img)
        assert flow.shape == (h, w, 2) and np.isfinite(flow).all()


def test_dis_on_a_thin_strip_still_measures_motion() -> None:
    scene = translation_scene(20, 200, shift=(2.0, 1.0))
    flow = get_method("dis-medium")(scene.img1, scene.img2)
    np.testing.assert_allclose(np.median(flow[4:-4, 8:-8].reshape(-1, 2), axis=0), (2.0, 1.0), atol=0.3)


def test_a_new_method_is_one_class_one_options_dataclass_and_one_registration(shifted) -> None:
    """docs/adding-a-method.md ("How to add a flow method"), followed to the letter."""
    from dataclasses import dataclass

    import cv2

    from semflow.methods import register_method, unregister_method
    from semflow.options import MethodOptions, option

    @dataclass(frozen=True)
    class BlurOptions(MethodOptions):
        sigma: float = option(1.0, "Gaussian blur before matching, px.")

    class BlurDIS(FlowMethod):
        name = "blur-dis"

        def __init__(self, sigma: float) -> None:
            self.sigma = sigma

        def _estimate(self, img1, img2):
            blur = [cv2.GaussianBlur(i, (0, 0), self.sigma) for i in (img1, img2)]
            return FlowResult(get_method("dis-medium")(*blur))

    register_method("blur-dis", "DIS on blurred frames", build=lambda o: BlurDIS(o.sigma), options=BlurOptions)
    try:
        method = get_method("blur-dis", sigma="2")
        assert method.sigma == 2.0 and "blur-dis" in list_methods()
        assert epe(method(shifted.img1, shifted.img2), shifted.flow) < 0.5
        assert route_options(["blur-dis", "dis-fast"], {"sigma": 3.0}) == {"blur-dis": {"sigma": 3.0}, "dis-fast": {}}
        with pytest.raises(InputError, match="takes no option 'sigmaa'; its options: device, sigma"):
            get_method("blur-dis", sigmaa=2)
    finally:
        unregister_method("blur-dis")
    assert "blur-dis" not in list_methods()


def test_a_float_option_must_be_finite() -> None:
    for value in (float("nan"), float("inf"), "nan", "-inf"):
        with pytest.raises(InputError, match="option 'prior_weight' takes a finite number"):
            get_method("semantic", prior_weight=value)


def test_a_state_that_is_not_a_video_state_is_one_clear_error() -> None:
    """`estimate(a, b, state={})` was AttributeError "'dict' object has no attribute 'pairs'"."""
    img = np.zeros((8, 10, 3), np.uint8)
    with pytest.raises(InputError, match="state must be a VideoState \\(or None for pair mode\\), not dict"):
        get_method("dis-fast").estimate(img, img, state={})


@pytest.mark.parametrize("name", list_methods())
def test_every_method_pickles_and_gives_the_same_flow_after(name: str) -> None:
    """A threads-and-processes probe: a built `semantic` could not be sent to a process pool ("Can't pickle
    local object '_segmenter_builder.<locals>.build'"), with given labels too. Every registered method now
    pickles with its options and computes the same flow after."""
    import pickle

    scene = translation_scene(48, 64, shift=(2.0, 1.0), seed=3)
    options = {"segmentation": scene.labels} if name == "semantic" else {}
    method = get_method(name, **options)
    again = pickle.loads(pickle.dumps(method))
    assert options_dict(again.options) == options_dict(method.options)
    if name in ("discrete", "semantic"):  # (slow enough: the pickling is what is checked)
        return
    np.testing.assert_array_equal(again(scene.img1, scene.img2), method(scene.img1, scene.img2))


def test_semantic_is_not_offered_as_its_own_baseline() -> None:
    """A review: `--baseline semantc` listed semantic among the known methods, which a baseline cannot be."""
    with pytest.raises(InputError, match=r"unknown method 'semantc'; known methods: [a-z0-9, -]+, discrete$"):
        get_method("semantic", baseline="semantc")


@pytest.mark.parametrize("radius", [-1.0, 1e300])
def test_a_feather_radius_out_of_range_is_one_error_before_any_work(radius: float) -> None:
    """A radius of 1e300 px got a process killed in OpenCV's Gaussian blur (its kernel sized to the radius),
    after the segmenter and the baseline had run; -1 px was taken as no seam at all."""
    with pytest.raises(InputError, match=r"option 'feather_radius' takes 0 to 256\.0 px, not "):
        get_method("semantic", baseline="dis-fast", feather_radius=radius)
    assert get_method("semantic", baseline="dis-fast", feather_radius=0.0).feather_radius == 0.0


def test_a_feather_radius_of_256_px_is_taken() -> None:
    """The range 0 to MAX_FEATHER_RADIUS px includes its upper end as well as 0."""
    from semflow.methods import MAX_FEATHER_RADIUS

    assert get_method("semantic", baseline="dis-fast", feather_radius=MAX_FEATHER_RADIUS).feather_radius == 256.0


def test_an_option_without_a_default_is_one_clear_error_at_registration() -> None:
    """A plugin's options field with no default (allowed by ``kw_only``) was TypeError "'_MISSING_TYPE' object
    is not callable" from method_options / get_method; it is refused where the method is registered."""
    from dataclasses import dataclass

    from semflow.methods import register_method
    from semflow.options import MethodOptions, option_infos

    @dataclass(frozen=True, kw_only=True)
    class LevelOptions(MethodOptions):
        level: int

    with pytest.raises(TypeError, match=r"^option 'level' of LevelOptions has no default; declare it with option"):
        register_method("level-dis", "DIS with a level", build=lambda o: get_method("dis-fast"), options=LevelOptions)
    assert "level-dis" not in list_methods()
    with pytest.raises(TypeError, match="option 'level' of LevelOptions has no default"):
        option_infos(LevelOptions)


def test_semantic_refuses_a_segmenter_it_could_not_build_when_built_not_at_its_first_pair(tmp_path: Path) -> None:
    """semantic builds its segmenter on first use; what the spec alone tells (an unknown backend, a missing
    PATH) is refused when the method is built, so that a batch says it once, before Ray starts."""
    missing = tmp_path / "missing"
    for spec, said in (("nonsense", "unknown segmentation backend 'nonsense'"),
                       (f"camvid:{missing}.pt", "no such segmenter weights file"),
                       (f"torchvision:{missing}.pt", "no such torchvision weights file"),
                       (f"masks:{missing}", "no such mask folder or file")):
        with pytest.raises(InputError, match=said):
            get_method("semantic", baseline="dis-medium", segmenter=spec)
    method = get_method("semantic", baseline="dis-medium", segmenter=f"masks:{tmp_path}")  # (an existing folder)
    assert method.name == "semantic"
    # A label set with the camvid segmenter is left to its first use: labels given to each call may be in it.
    assert get_method("semantic", baseline="dis-medium", label_set="voc").name == "semantic"
