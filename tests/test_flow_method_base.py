"""FlowMethod.estimate's contract (semflow/baseline/base.py) with a scripted method: when the memory
check runs, a cut's fresh state; GivenFlows' warning about a gap. No flow method runs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import semflow.baseline.base as base
from semflow.baseline.base import FlowMethod, FlowResult, GivenFlows
from semflow.errors import SemflowWarning
from semflow.io.flow import write_flow
from semflow.video_state import VideoState


class Recorder(FlowMethod):
    name = "recorder"

    def __init__(self) -> None:
        self.states: list[int] = []

    def _estimate(self, img1: np.ndarray, img2: np.ndarray, **_: Any) -> FlowResult:
        return FlowResult(np.zeros((*img1.shape[:2], 2), np.float32))

    def _estimate_video(self, img1: np.ndarray, img2: np.ndarray, state: VideoState, **kwargs: Any) -> FlowResult:
        self.states.append(state.pairs)
        return super()._estimate_video(img1, img2, state, **kwargs)


def _frame(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (32, 48, 3)).astype(np.uint8)


def test_the_memory_check_runs_before_a_pair_and_before_a_videos_first_pair_only(monkeypatch) -> None:
    checked: list[tuple[int, int]] = []
    monkeypatch.setattr(base, "check_memory", lambda name, h, w, **_: checked.append((h, w)))
    method, frame = Recorder(), _frame(0)
    method.estimate(frame, frame)
    state = method.estimate(frame, frame, state=VideoState()).state
    assert checked == [(32, 48), (32, 48)]
    method.estimate(frame, frame, state=state)  # a later pair of the video: not checked again
    assert len(checked) == 2


def test_a_cut_starts_the_pair_from_an_empty_state() -> None:
    method, frame = Recorder(), _frame(0)
    state = VideoState(pairs=3, frame=frame, flow=np.zeros((32, 48, 2), np.float32))
    steady = method.estimate(frame, frame, state=state)
    cut = method.estimate(frame, np.zeros_like(frame), state=steady.state)  # a picture, then black
    assert method.states == [3, 0] and cut.state.cut and not steady.state.cut
    assert cut.state.pairs == 1


def test_given_flows_warn_at_the_start_about_a_pair_missing_before_the_last(tmp_path) -> None:
    flow = np.zeros((4, 6, 2), np.float32)
    for index in (0, 2):
        write_flow(tmp_path / f"{index:06d}.flo", flow)
    with pytest.warns(SemflowWarning, match="no flow for the pair at frame 1"):
        GivenFlows(tmp_path)
    write_flow(tmp_path / "000001.flo", flow)
    GivenFlows(tmp_path)  # none missing: no warning (SemflowWarnings are errors in the tests)


def test_the_default_video_step_carries_frame_t_plus_1_and_the_flow() -> None:
    method, a, b = Recorder(), _frame(0), _frame(0).copy()
    b[:, :4] = 0  # (not a cut: the rest is the same picture)
    state = method.estimate(a, b, state=VideoState()).state
    assert state.frame is not None and (state.frame == b).all() and state.pairs == 1
    assert state.flow.shape == (32, 48, 2)


def test_a_given_flow_file_of_the_shrunk_size_is_taken_as_it_is(tmp_path) -> None:
    from semflow.baseline.base import GivenFlow

    flow = np.full((20, 30, 2), 2.0, np.float32)
    write_flow(tmp_path / "shrunk.flo", flow)
    given = GivenFlow.from_file(tmp_path / "shrunk.flo", frame_size=(40, 60), size=(20, 30))
    np.testing.assert_array_equal(given.result.flow, flow)  # computed at the same --max-side: not resized
    write_flow(tmp_path / "full.flo", np.full((40, 60, 2), 2.0, np.float32))
    resized = GivenFlow.from_file(tmp_path / "full.flo", frame_size=(40, 60), size=(20, 30))
    np.testing.assert_allclose(resized.result.flow, 1.0)  # the frames' size: resized, vectors halved
