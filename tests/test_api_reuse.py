"""The Python API used again and again: a call that fails takes no pair of a folder read in call order,
options given with a built method are refused, and numpy scalars are taken as option values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import semflow
from semflow.baseline import GivenFlows
from semflow.errors import InputError
from semflow.io.flow import write_flow
from semflow.io.images import write_image
from semflow.methods import get_method, resolve_options
from semflow.options import options_dict
from semflow.video_state import VideoState

# --- a call that fails consumes nothing (a folder of flows, a folder of masks) -------------------------


def flows_folder(tmp_path: Path, shape: tuple[int, int], count: int = 3) -> Path:
    """``count`` flows, the one of the pair at frame i being i + 1 px everywhere."""
    folder = tmp_path / "flows"
    folder.mkdir()
    for i in range(count):
        write_flow(folder / f"{i:06d}.flo", np.full((*shape, 2), float(i + 1), np.float32))
    return folder


def baseline_value(result: semflow.FlowResult) -> float:
    flow = result.extras["baseline_flow"]
    assert np.all(flow == flow[0, 0, 0])
    return float(flow[0, 0, 0])


@pytest.mark.parametrize("video", [False, True], ids=["pairs", "video"])
def test_bad_labels_take_no_flow_of_the_folder(tmp_path: Path, small_scene, video: bool) -> None:
    s = small_scene
    method = get_method("semantic", baseline_flows=flows_folder(tmp_path, s.flow.shape[:2]), sharpen=False)
    state = VideoState() if video else None
    with pytest.raises(InputError, match="unknown class ids 200"):
        method.estimate(s.img1, s.img2, labels=np.full(s.labels.shape, 200, np.uint8), state=state)
    first = method.estimate(s.img1, s.img2, labels=s.labels, state=state)  # the same pair again
    assert baseline_value(first) == 1.0
    second = method.estimate(s.img1, s.img2, labels=s.labels, state=first.state if video else None)
    assert baseline_value(second) == 2.0


@pytest.mark.parametrize("sharpen", [False, True], ids=["plain", "sharpened"])
def test_a_failure_after_the_baseline_rewinds_flows_and_masks(tmp_path: Path, small_scene, monkeypatch,
                                                              sharpen: bool) -> None:
    import semflow.semantic

    s = small_scene
    masks = tmp_path / "masks"
    masks.mkdir()
    stuff_only = np.full_like(s.labels, 1)  # Building everywhere
    write_image(masks / "000000.png", s.labels)
    write_image(masks / "000001.png", stuff_only)
    method = get_method("semantic", baseline_flows=flows_folder(tmp_path, s.flow.shape[:2]), segmentation=masks,
                        sharpen=sharpen)
    extract = semflow.semantic.extract_instances

    def crash(*args, **kwargs):  # after the baseline has read its flow, as a crash in a layer would
        raise RuntimeError("crash")

    monkeypatch.setattr(semflow.semantic, "extract_instances", crash)
    with pytest.raises(RuntimeError, match="crash"):
        method.estimate(s.img1, s.img2)
    monkeypatch.setattr(semflow.semantic, "extract_instances", extract)
    first = method.estimate(s.img1, s.img2)  # pair 0 again: its flow and its mask, still in step
    assert baseline_value(first) == 1.0
    np.testing.assert_array_equal(first.extras["labels"], s.labels)
    second = method.estimate(s.img1, s.img2)
    assert baseline_value(second) == 2.0
    np.testing.assert_array_equal(second.extras["labels"], stuff_only)
    method.seek(0)  # a second pass (or video) with the same instance starts there
    assert baseline_value(method.estimate(s.img1, s.img2)) == 1.0


def test_given_flows_takes_no_pair_when_its_file_fails(tmp_path: Path, small_scene) -> None:
    s = small_scene
    folder = flows_folder(tmp_path, s.flow.shape[:2])
    good = (folder / "000000.flo").read_bytes()
    (folder / "000000.flo").write_bytes(good[:100])  # cut short
    given = GivenFlows(folder)
    with pytest.raises(InputError, match="000000.flo"):
        given.estimate(s.img1, s.img2)
    (folder / "000000.flo").write_bytes(good)
    assert given.estimate(s.img1, s.img2).flow[0, 0, 0] == 1.0  # pair 0 again
    assert given.tell() == 1 and given.estimate(s.img1, s.img2).flow[0, 0, 0] == 2.0


# --- options go with a method name, not with a built method --------------------------------------------


def test_options_with_a_built_method_are_refused(small_scene) -> None:
    s = small_scene
    built = get_method("dis-fast")
    with pytest.raises(InputError, match=r"options \(sharpen\) go with a method name.*get_method\('dis-fast'"):
        get_method(built, sharpen=True)
    with pytest.raises(InputError, match="go with a method name"):
        semflow.estimate_flow(s.img1, s.img2, method=built, sharpen=True)
    with pytest.raises(InputError, match="go with a method name"):
        get_method(built, device="cpu")
    assert get_method(built) is built and get_method(built, sharpen=None) is built  # None: not given
    assert semflow.estimate_flow(s.img1, s.img2, method=built).shape == s.flow.shape
    # semantic over a built baseline still builds (its own options are not the baseline's)
    semantic = get_method("semantic", baseline=built, segmentation=s.labels, sharpen=False)
    assert semantic.baseline is built


# --- numpy scalars as option values --------------------------------------------------------------------


def test_numpy_scalars_are_taken_as_plain_values() -> None:
    discrete = resolve_options("discrete", median_radius=np.int64(5), sharpen=np.bool_(False),
                               shrink=np.float32(0.5), lam=np.int32(2))
    assert type(discrete.median_radius) is int and discrete.median_radius == 5
    assert type(discrete.sharpen) is bool and discrete.sharpen is False
    assert type(discrete.shrink) is float and discrete.shrink == 0.5
    assert type(discrete.lam) is int and discrete.lam == 2  # an int for a float option, as a Python int is
    json.dumps(options_dict(discrete))
    semantic = resolve_options("semantic", prior_weight=np.float64(0.25), sharpen=np.bool_(True))
    assert type(semantic.prior_weight) is float and semantic.sharpen is True


def test_a_numpy_bool_builds_a_sharpened_method() -> None:
    from semflow.sharpen import SharpenedFlow

    method = get_method("dis-fast", sharpen=np.bool_(True))
    assert isinstance(method, SharpenedFlow) and method.options.sharpen is True
    assert not isinstance(get_method("dis-fast", sharpen=np.bool_(False)), SharpenedFlow)


def test_numpy_scalars_of_the_wrong_kind_are_still_refused() -> None:
    with pytest.raises(InputError, match=r"'median_radius' takes int, not np.float64\(5.0\)"):
        resolve_options("discrete", median_radius=np.float64(5.0))
    with pytest.raises(InputError, match=r"'median_radius' takes int, not 5.0"):
        resolve_options("discrete", median_radius=5.0)
    with pytest.raises(InputError, match="'sharpen' takes bool"):
        resolve_options("dis-fast", sharpen=np.int64(1))
    with pytest.raises(InputError, match="takes a finite number"):
        resolve_options("discrete", shrink=np.float32("nan"))
    # a bool for an int option is treated as it always was, numpy's as Python's
    assert resolve_options("discrete", median_radius=np.True_).median_radius == \
        resolve_options("discrete", median_radius=True).median_radius
