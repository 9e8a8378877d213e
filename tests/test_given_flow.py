"""``GivenFlow``: a flow computed elsewhere as a baseline (semantic flow over it, stored results reused)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from semflow.baseline import FlowResult, GivenFlow, GivenFlows
from semflow.errors import InputError
from semflow.io.flow import write_flow
from semflow.metrics import epe
from semflow.semantic import SemanticFlow


def test_returns_a_copy_of_the_given_flow_for_every_pair(small_scene) -> None:
    s = small_scene
    confidence = np.full(s.flow.shape[:2], 0.5, np.float32)
    given = GivenFlow(FlowResult(s.flow, confidence, {"note": np.ones(1)}), name="discrete")
    first = given.estimate(s.img1, s.img2)
    first.flow += 100.0
    first.confidence[:] = 0.0
    second = given.estimate(s.img1, s.img2)
    assert np.array_equal(second.flow, s.flow) and np.array_equal(second.confidence, confidence)
    assert "note" in second.extras and given.name == "discrete"


def test_refuses_a_bad_flow_and_frames_of_another_size(small_scene) -> None:
    s = small_scene
    bad = s.flow.copy()
    bad[3, 4, 0] = np.nan
    with pytest.raises(InputError, match="given flow"):
        GivenFlow(bad)
    with pytest.raises(InputError, match="shape"):
        GivenFlow(s.flow[..., 0])
    with pytest.raises(InputError, match="the given flow is 96x64, the frames 48x64"):
        GivenFlow(s.flow).estimate(s.img1[:, :48], s.img2[:, :48])


def test_semantic_over_a_given_flow_keeps_an_exact_one_and_mends_a_noisy_one() -> None:
    from semflow.synthetic import make_scene

    s = make_scene(seed=3)  # 240x320: a background homography, two objects under affine motion
    things = s.instances > 0

    def semantic(flow: np.ndarray) -> np.ndarray:
        return SemanticFlow(GivenFlow(flow), segmentation=s.labels).estimate(s.img1, s.img2, labels=s.labels).flow

    assert epe(semantic(s.flow), s.flow) < 0.02
    noisy = s.flow + np.random.default_rng(0).normal(0.0, 0.5, s.flow.shape).astype(np.float32)
    mended = semantic(noisy)
    assert epe(mended, s.flow) < 0.3 * epe(noisy, s.flow)
    assert epe(mended, s.flow, None, things) < 0.3 * epe(noisy, s.flow, None, things)


# --- GivenFlows: a folder of flows, one per pair of a video (--baseline-flows) ----------------------


def flows_folder(tmp_path: Path, flows: dict[str, np.ndarray]) -> Path:
    """A folder with each flow written under its file name."""
    folder = tmp_path / "flows"
    folder.mkdir()
    for name, flow in flows.items():
        write_flow(folder / name, flow)
    return folder


def test_given_flows_reads_the_pair_the_run_says_in_each_format(tmp_path: Path, small_scene) -> None:
    s = small_scene
    flows = [s.flow, s.flow + 1.5, s.flow * -2.0]
    given = GivenFlows(flows_folder(tmp_path, {"000000.flo": flows[0], "000001.npy": flows[1], "000002.png": flows[2]}))
    got = [given.estimate(s.img1, s.img2).flow for _ in range(3)]  # without seek: pairs in turn from 0
    assert np.array_equal(got[0], flows[0]) and np.array_equal(got[1], flows[1])
    assert np.abs(got[2] - flows[2]).max() <= 1 / 64  # KITTI PNG: 1/64 px steps
    given.seek(1)
    assert np.array_equal(given.estimate(s.img1, s.img2).flow, flows[1])
    given.seek(3)
    with pytest.raises(InputError, match="no flow for the pair at frame 3 \\(expected 000003.flo"):
        given.estimate(s.img1, s.img2)


def test_given_flows_follow_frames_that_max_side_shrank(tmp_path: Path) -> None:
    from semflow.io.video import max_side_size

    full = np.zeros((64, 96, 2), np.float32)
    full[..., 0], full[..., 1] = 3.0, -2.0
    height, width = max_side_size(64, 96, 48)
    frame = np.zeros((height, width, 3), np.uint8)
    flow = GivenFlows(flows_folder(tmp_path, {"000000.flo": full})).estimate(frame, frame).flow
    assert flow.shape == (32, 48, 2)
    assert np.allclose(flow[..., 0], 1.5) and np.allclose(flow[..., 1], -1.0)  # vectors scaled with the frame


def test_given_flows_refuse_what_does_not_fit(tmp_path: Path, small_scene) -> None:
    s = small_scene
    with pytest.raises(InputError, match="no such folder of flows"):
        GivenFlows(tmp_path / "missing")
    (tmp_path / "one.flo").write_bytes(b"")  # a file was "no such folder of flows"
    with pytest.raises(InputError, match=r"one.flo: a file, not a folder: --baseline-flows takes a folder of flows, one a"
                                         r" pair \(NNNNNN.flo, .png or .npy, as run --save-flo writes them in OUT/flo\);"
                                         r" for one image pair, flow --baseline-flow FILE$"):
        GivenFlows(tmp_path / "one.flo")
    folder = flows_folder(tmp_path, {"000000.flo": s.flow[:, :40]})
    (folder / "000001.flo").write_bytes(b"PIEH not a flow")
    given = GivenFlows(folder)
    with pytest.raises(InputError, match="000000.flo: the flow is 40x64, the frames 96x64"):
        given.estimate(s.img1, s.img2)
    with pytest.raises(InputError, match="000000.flo"):  # a pair that failed is not used up: the same again
        given.estimate(s.img1, s.img2)
    given.seek(1)
    with pytest.raises(InputError, match="000001.flo"):
        given.estimate(s.img1, s.img2)


def test_a_pair_missing_inside_the_folder_is_said_at_the_start(tmp_path: Path, small_scene) -> None:
    """A missing pair was an error only when the run reached it (hours in, for a long video)."""
    from semflow.errors import SemflowWarning

    flows = {f"{k:06d}.flo": small_scene.flow for k in (0, 1, 3, 5)}
    with pytest.warns(SemflowWarning, match=r"no flow for the pair at frame 2 \(2 missing before 000005, the last\)"):
        GivenFlows(flows_folder(tmp_path, flows))


@pytest.mark.parametrize("odd", ["folder", "fifo"])
def test_a_pair_file_that_is_not_a_regular_file_is_named_as_such(tmp_path: Path, small_scene, odd: str) -> None:
    """A folder or FIFO named 000001.flo was 'no flow for the pair at frame 1 (expected 000001.flo, ...)'."""
    import os

    folder = flows_folder(tmp_path, {"000000.flo": small_scene.flow})
    os.mkdir(folder / "000001.flo") if odd == "folder" else os.mkfifo(folder / "000001.flo")
    given = GivenFlows(folder)
    given.seek(1)
    with pytest.raises(InputError, match="000001.flo: not a file$"):
        given.estimate(small_scene.img1, small_scene.img2)


def test_given_flows_refuse_two_files_for_one_pair(tmp_path: Path, small_scene) -> None:
    """000000.flo beside 000000.npy (different flows) was read as the .flo, silently."""
    s = small_scene
    folder = flows_folder(tmp_path, {"000000.flo": s.flow, "000001.flo": s.flow, "000001.npy": s.flow + 1.0})
    with pytest.raises(InputError, match="holds both 000001.flo and 000001.npy for the pair at frame 1; keep one$"):
        GivenFlows(folder)  # at the start: before any pair is computed
    (folder / "000001.flo").unlink()
    given = GivenFlows(folder)
    write_flow(folder / "000000.png", s.flow)  # appears later: refused when its pair comes
    write_flow(folder / "000000.npy", s.flow)
    with pytest.raises(InputError, match="holds 000000.flo, 000000.png and 000000.npy for the pair at frame 0"):
        given.estimate(s.img1, s.img2)


@pytest.mark.parametrize("name", ["000000.flo", "000000.png"])
def test_a_sparse_flow_is_refused_as_a_baseline(tmp_path: Path, small_scene, name: str) -> None:
    # Unknown pixels (.flo values beyond 1e9, KITTI's valid bit 0) read as 0 px: as a baseline they
    # would be taken for motion. Both ways of giving a flow refuse them, saying how many there are.
    s = small_scene
    valid = np.ones(s.flow.shape[:2], bool)
    valid[10:20, 5:15] = False
    folder = tmp_path / "flows"
    folder.mkdir()
    write_flow(folder / name, s.flow, valid)
    expected = f"{name}: 100 of {valid.size} pixels have no flow"
    with pytest.raises(InputError, match=expected):
        GivenFlows(folder).estimate(s.img1, s.img2)
    with pytest.raises(InputError, match=expected):
        GivenFlow.from_file(folder / name, frame_size=s.flow.shape[:2])
    write_flow(folder / name, s.flow)  # dense again: taken as it is
    assert np.allclose(GivenFlows(folder).estimate(s.img1, s.img2).flow, s.flow, atol=1 / 64)


def test_semantic_takes_the_baseline_flow_of_the_pair_it_is_told(tmp_path: Path, small_scene) -> None:
    from semflow.methods import get_method

    s = small_scene
    flows = [s.flow, s.flow + 1.0]
    folder = flows_folder(tmp_path, {"000000.flo": flows[0], "000001.flo": flows[1]})
    semantic = get_method("semantic", baseline_flows=folder, segmentation=s.labels)
    semantic.seek(1)
    assert np.array_equal(semantic.estimate(s.img1, s.img2).extras["baseline_flow"], flows[1])
    semantic.seek(0)
    assert np.array_equal(semantic.estimate(s.img1, s.img2).extras["baseline_flow"], flows[0])
    with pytest.raises(InputError, match="not both"):
        get_method("semantic", baseline=GivenFlow(s.flow), baseline_flows=folder)


def test_a_batch_refuses_one_folder_of_flows_for_every_clip(tmp_path: Path) -> None:
    from semflow.batch.work import BatchOptions

    with pytest.raises(InputError, match="one video's flows"):
        BatchOptions(method="semantic", method_options={"baseline_flows": str(tmp_path)})
    assert BatchOptions(method="semantic", method_options={"baseline_flows": None}).method == "semantic"


def test_given_flow_keeps_its_own_copy_of_the_arrays() -> None:
    """GivenFlow kept the caller's array: NaN written into it afterwards reached every result, past the check
    its docstring promises (a public API probe)."""
    flow, confidence = np.ones((4, 5, 2), np.float32), np.ones((4, 5), np.float32)
    given = GivenFlow(FlowResult(flow, confidence))
    flow[:] = np.nan
    confidence[:] = 0
    result = given.estimate(np.zeros((4, 5, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))
    assert (result.flow == 1).all() and (result.confidence == 1).all()


def test_flow_files_named_in_capitals_are_read(tmp_path: Path, small_scene) -> None:
    """000000.FLO (as some Windows tools write it) was 'no flow for the pair at frame 0'; visualize read it."""
    s = small_scene
    given = GivenFlows(flows_folder(tmp_path, {"000000.FLO": s.flow, "000001.NPY": s.flow + 1.0}))
    assert np.array_equal(given.estimate(s.img1, s.img2).flow, s.flow)
    assert np.array_equal(given.estimate(s.img1, s.img2).flow, s.flow + 1.0)
    if (tmp_path / "flows" / "000000.flo").exists():
        return  # (a folder that ignores case: 000000.flo is 000000.FLO)
    (tmp_path / "flows" / "000001.npy").hardlink_to(tmp_path / "flows" / "000001.NPY")  # one file, two names
    given = GivenFlows(tmp_path / "flows")
    given.seek(1)
    assert np.array_equal(given.estimate(s.img1, s.img2).flow, s.flow + 1.0)
    write_flow(tmp_path / "flows" / "000000.flo", s.flow)  # two files for one pair, told apart by case only
    with pytest.raises(InputError, match="holds both 000000.flo and 000000.FLO for the pair at frame 0"):
        GivenFlows(tmp_path / "flows")


def test_a_flow_of_another_size_is_refused_from_its_header(tmp_path: Path, small_scene, monkeypatch) -> None:
    """A small PNG of 10000x10000 given as a flow was decoded (4.25 GB) before its size was compared with the
    frames': the header says it first now."""
    import os

    import semflow.baseline.base as base
    from semflow.io.flow import FLO_TAG

    s = small_scene
    folder = tmp_path / "flows"
    folder.mkdir()
    with open(folder / "000000.flo", "wb") as fh:  # a .flo of 3000x1000, sparse on disk
        fh.write(np.float32(FLO_TAG).tobytes() + np.array([3000, 1000], "<i4").tobytes())
    os.truncate(folder / "000000.flo", 12 + 8 * 3000 * 1000)

    def decoded(path):
        raise AssertionError(f"{path} was decoded")

    monkeypatch.setattr(base, "read_dense_flow", decoded)
    with pytest.raises(InputError, match="000000.flo: the flow is 3000x1000, the frames 96x64$"):
        GivenFlows(folder).estimate(s.img1, s.img2)
    with pytest.raises(InputError, match="000000.flo: the flow is 3000x1000, the frames 96x64$"):
        GivenFlow.from_file(folder / "000000.flo", frame_size=(64, 96))
    monkeypatch.undo()
    np.save(tmp_path / "chw.npy", np.zeros((2, 64, 96), np.float32))  # channels first: the reader's own words
    with pytest.raises(InputError, match=r"expected a float array of shape \(H, W, 2\), got float32 \(2, 64, 96\)"):
        GivenFlow.from_file(tmp_path / "chw.npy", frame_size=(64, 96))
