"""Video mode (issue 12): the state carried from pair to pair, cuts, tracked planes, resume.

Synthetic sequences with exact motion: a textured plane zooming towards the camera (a road seen from a
car) and a translating texture; two unrelated clips back to back for a cut.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import texture

import semflow.state_chain as state_chain
from semflow.baseline.discrete import DiscreteFlow
from semflow.baseline.discrete.temporal import carried_flows
from semflow.compose import compose_planes
from semflow.errors import InputError
from semflow.io.flow import read_flow_valid
from semflow.io.images import write_image
from semflow.io.video import FrameSource
from semflow.layers.context import PairContext
from semflow.layers.plane_motion import carry_mask
from semflow.layers.planes import PlaneFit, PlaneParams, homography_flow
from semflow.layers.tracking import CONFIRM_STRENGTH, Track, Tracks, advance_tracks, gate_planes
from semflow.methods import get_method
from semflow.pipeline import WORK_DIR, RunOptions, run_video
from semflow.runstore import CACHE_BYTES_PER_PIXEL
from semflow.segmentation.regions import Region
from semflow.synthetic import render_sequence
from semflow.video_run import STATE_FILE
from semflow.video_state import CUT_DIFFERENCE, VideoState, restore, scene_cut, snapshot

ROAD = 3  # CamVid's Road


def zoom_sequence(frames: int, height: int = 96, width: int = 128, *, seed: int = 0,
                  scale: float = 1.02) -> list[np.ndarray]:
    """A plane coming closer: frame k is frame 0 scaled by ``scale ** k`` about the lower middle."""
    cx, cy = width / 2, height * 0.8
    zoom = np.array([[scale, 0, cx * (1 - scale)], [0, scale, cy * (1 - scale)], [0, 0, 1]])
    return render_sequence(texture(2 * height, 2 * width, seed), zoom, [], frames=frames, height=height,
                           width=width, origin=(width / 2, height / 2))


def shift_sequence(frames: int, height: int = 96, width: int = 128, *, seed: int = 0,
                   shift: tuple[float, float] = (3.0, 1.0)) -> list[np.ndarray]:
    move = np.array([[1, 0, shift[0]], [0, 1, shift[1]], [0, 0, 1]], float)
    return render_sequence(texture(2 * height, 2 * width, seed), move, [], frames=frames, height=height,
                           width=width, origin=(width / 2, height / 2))


def run_pairs(method, frames: list[np.ndarray], *, video: bool, **kwargs) -> list:
    state = VideoState() if video else None
    results = []
    for a, b in zip(frames, frames[1:]):
        result = method.estimate(a, b, state=state, **kwargs)
        state = result.state
        results.append(result)
    return results


def epe(flow: np.ndarray, truth: np.ndarray) -> float:
    return float(np.hypot(*(flow - truth).transpose(2, 0, 1)).mean())


# --- the state ----------------------------------------------------------------------------------


def test_pair_mode_returns_no_state_and_video_mode_carries_the_frame_and_flow() -> None:
    frames = shift_sequence(3, 48, 64)
    method = get_method("dis-medium")
    assert method.estimate(frames[0], frames[1]).state is None
    first = method.estimate(frames[0], frames[1], state=VideoState())
    assert first.state.pairs == 1 and first.state.follows(frames[1]) and not first.state.follows(frames[0])
    np.testing.assert_array_equal(first.state.flow, first.flow)
    # The default video mode of a method without memory is its pair mode.
    second = method.estimate(frames[1], frames[2], state=first.state)
    np.testing.assert_array_equal(second.flow, method.estimate(frames[1], frames[2]).flow)
    assert second.state.pairs == 2 and not second.state.cut


def test_scene_cut_finds_unrelated_shots_only() -> None:
    clip = shift_sequence(3, seed=1)
    other = shift_sequence(2, seed=2)
    assert not scene_cut(clip[0], clip[1]) and not scene_cut(clip[1], clip[2])
    assert scene_cut(clip[2], other[0])
    dark = (clip[0] // 4).astype(np.uint8)
    assert scene_cut(clip[0], dark)


def test_a_frame_that_lines_up_but_differs_by_more_than_the_cut_difference_is_a_cut() -> None:
    """The same picture brighter by 1.5 CUT_DIFFERENCE grey levels is a cut on the mean difference alone
    (its phase correlation, about 0.96, says the two line up); brighter by 0.75 CUT_DIFFERENCE it is not."""
    frame = shift_sequence(1, seed=1)[0]
    assert 100 < frame.mean() < 150  # (little of it clips at 255)

    def brighter(levels: float) -> np.ndarray:
        return np.clip(frame.astype(np.int32) + round(levels), 0, 255).astype(np.uint8)

    assert scene_cut(frame, brighter(1.5 * CUT_DIFFERENCE))
    assert not scene_cut(frame, brighter(0.75 * CUT_DIFFERENCE))


def test_a_frame_that_lines_up_is_no_cut_however_much_it_differs_after_the_alignment() -> None:
    """The same picture at 0.6 of its contrast (a haze, an exposure change) differs after the alignment by
    about 3x CUT_RESIDUAL of its spread, but its phase correlation (about 0.95, over CUT_RESPONSE) says the
    two line up: one shot."""
    frame = shift_sequence(1, seed=1)[0]
    flat = np.clip((frame.astype(np.float32) - 128) * 0.6 + 128, 0, 255).astype(np.uint8)
    assert not scene_cut(frame, flat)


def test_carried_candidates_of_a_uniform_motion_are_that_motion() -> None:
    flow = np.zeros((20, 30, 2), np.float32)
    flow[...] = (2.5, -1.0)
    cands = carried_flows(flow)
    assert cands.shape == (20, 30, 2, 2)
    np.testing.assert_allclose(cands, 0 * cands + np.float32([2.5, -1.0]), atol=1e-5)


# --- discrete ------------------------------------------------------------------------------------


def test_discrete_video_mode_stays_as_accurate_as_pair_mode() -> None:
    frames = shift_sequence(5, 120, 160)
    truth = np.zeros((*frames[0].shape[:2], 2), np.float32)
    truth[...] = (3.0, 1.0)
    method = DiscreteFlow()
    pair = run_pairs(method, frames, video=False)
    video = run_pairs(method, frames, video=True)
    inner = (slice(10, -10), slice(10, -10))
    for p, v in zip(pair, video):
        assert epe(v.flow[inner], truth[inner]) <= max(0.1, 1.5 * epe(p.flow[inner], truth[inner]))
    # Frame t's work was reused: the video state holds the descriptors of the newest frame.
    work = video[-1].state.parts["discrete"]
    assert work.described and work.gray.shape == frames[-1].shape[:2]


def test_discrete_reuses_frame_work_and_gets_the_flow_of_recomputed_work(monkeypatch) -> None:
    import semflow.baseline.discrete.method as discrete_method

    frames = shift_sequence(3, 96, 128)
    method = DiscreteFlow()
    described = []
    frame_descriptors = discrete_method.frame_descriptors
    monkeypatch.setattr(discrete_method, "frame_descriptors",
                        lambda pyr, **kw: described.append(pyr[0].shape) or frame_descriptors(pyr, **kw))
    first = method.estimate(frames[0], frames[1], state=VideoState())
    assert len(described) == 2  # the first pair describes both frames
    # Video mode's smaller descriptors (pair mode keeps the preset's dims).
    assert first.state.parts["discrete"].projection.shape[1] == method.params.video_dims < method.params.dims
    described.clear()
    reused = method.estimate(frames[1], frames[2], state=first.state)
    assert len(described) == 1  # frame 1 is the last pair's frame 2: only the new frame is described
    # The same state without the per-frame work (as a resumed run has it): described again, same flow.
    bare = restore(snapshot(first.state), frames[1], method.state_parts())
    assert not bare.parts["discrete"].described
    described.clear()
    recomputed = method.estimate(frames[1], frames[2], state=bare)
    assert len(described) == 2
    np.testing.assert_array_equal(reused.flow, recomputed.flow)
    np.testing.assert_array_equal(reused.confidence, recomputed.confidence)


def test_video_mode_recovers_from_a_cut_within_one_pair() -> None:
    first = shift_sequence(3, 120, 160, seed=1, shift=(3.0, 1.0))
    second = shift_sequence(3, 120, 160, seed=2, shift=(-12.0, 5.0))
    frames = first + second
    truth = np.zeros((*frames[0].shape[:2], 2), np.float32)
    truth[...] = (-12.0, 5.0)
    method = DiscreteFlow()
    video = run_pairs(method, frames, video=True)
    cut = len(first) - 1  # pair (last of clip 1, first of clip 2)
    assert video[cut].state.cut and not any(r.state.cut for k, r in enumerate(video) if k != cut)
    inner = (slice(16, -16), slice(16, -16))
    after = epe(video[cut + 1].flow[inner], truth[inner])
    pair_after = epe(method.estimate(frames[cut + 1], frames[cut + 2]).flow[inner], truth[inner])
    assert after <= max(0.25, 1.5 * pair_after), (after, pair_after)


# --- semantic: tracked planes ----------------------------------------------------------------------


def _fit(region: Region, accepted: bool, share: float, model_err: float, base_err: float) -> PlaneFit:
    h, w = region.mask.shape
    return PlaneFit(region=region, accepted=accepted, reason="ok" if accepted else "test", homography=np.eye(3),
                    flow=np.zeros((h, w, 2), np.float32), veto=np.zeros((h, w), bool), inlier_share=share,
                    model_error=model_err, baseline_error=base_err, error=np.zeros((h, w), np.float32))


def test_plane_gate_has_hysteresis() -> None:
    region = Region(ROAD, (0, 10, 0, 10), np.ones((10, 10), bool))
    ctx = PairContext.build(np.zeros((10, 10, 3), np.uint8), np.zeros((10, 10, 3), np.uint8),
                            np.zeros((10, 10, 2), np.float32))
    params = PlaneParams()
    on = Track(1, "plane", ROAD, np.ones((10, 10), bool), None, [True])  # no model carried: the gate alone
    off = Track(2, "plane", ROAD, np.ones((10, 10), bool), None, [False])
    marginal_fail = _fit(region, False, params.min_inlier_share - 0.05, 3.0, 2.0)
    marginal_pass = _fit(region, True, params.min_inlier_share + 0.05, 2.0, 2.0)
    clear_pass = _fit(region, True, 0.95, 1.0, 2.0)
    gated = gate_planes([marginal_fail, marginal_pass, clear_pass, marginal_fail], [on, off, off, None], ctx, params)
    assert [g.accepted for g in gated] == [True, False, True, False]
    assert "last pairs" in gated[0].reason and "last pairs" in gated[1].reason


def _shift_fit(region: Region, shift: float, share: float, model_err: float, base_err: float) -> PlaneFit:
    """A fit that passes the plain gate: a homography moving the region by ``shift`` px to the right."""
    homography = np.array([[1.0, 0.0, shift], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    h, w = region.mask.shape
    return PlaneFit(region=region, accepted=True, reason="ok", homography=homography,
                    flow=homography_flow(homography, region.box), veto=np.zeros((h, w), bool), inlier_share=share,
                    model_error=model_err, baseline_error=base_err, error=np.zeros((h, w), np.float32))


def test_a_new_plane_track_needs_clear_evidence() -> None:
    """Without a track history (first pair, new region, after a cut) a plane fit is taken only when it is
    clear evidence and its flow on the confident pixels is the baseline's; one that passes the plain
    gate only waits for the next pair to confirm it (a similar motion), then the two are averaged."""
    region = Region(ROAD, (0, 20, 0, 20), np.ones((20, 20), bool))
    frames = np.zeros((20, 20, 3), np.uint8)
    baseline = np.zeros((20, 20, 2), np.float32)
    baseline[..., 0] = 5.0  # the baseline's confident matches move the region by 5 px
    ctx = PairContext.build(frames, frames, baseline, np.ones((20, 20), np.float32))
    params = PlaneParams()
    right = _shift_fit(region, 5.0, 0.95, 1.0, 2.0)
    wrong = _shift_fit(region, 12.0, 0.95, 1.0, 2.0)  # as precise, but 12 px where the matches say 5
    marginal = _shift_fit(region, 5.0, params.min_inlier_share + 0.05, 2.0, 2.0)  # right, but no clear evidence
    gated = gate_planes([right, wrong, marginal], [None, None, None], ctx, params)
    assert [g.accepted for g in gated] == [True, False, False]
    assert [g.candidate for g in gated] == [False, True, True]
    assert all("clear evidence" in g.reason for g in gated[1:])

    tracks, ids, _ = advance_tracks(None, gated, [None] * 3, [], [], [], baseline)
    young = tracks.tracks[2]
    assert young.history == [] and young.model is None and young.pending is not None
    # The next pair: a marginal fit confirming the candidate's motion is taken (averaged: 5.5 px), one
    # moving the region quite differently is not, and becomes the candidate.
    confirming = _shift_fit(region, 6.0, params.min_inlier_share + 0.05, 2.0, 2.0)
    again = gate_planes([confirming], [young], ctx, params)[0]
    assert again.accepted and "confirmed" in again.reason
    np.testing.assert_allclose(again.flow[..., 0], 5.5, atol=1e-3)
    # On the pair it is confirmed the plane has half its region's flow (5 -> 5.25 px), full from the next.
    assert again.strength == CONFIRM_STRENGTH == 0.5 and gated[0].strength == 1.0
    composite = compose_planes(ctx, [again])
    np.testing.assert_allclose(composite[10, 10, 0], 5.0 + 0.5 * 0.5, atol=1e-3)
    far = replace(young, pending=wrong.homography)
    assert not gate_planes([confirming], [far], ctx, params)[0].accepted
    # The precise, right fit started a history: the track is on and carries its model.
    assert tracks.tracks[0].history == [True] and tracks.tracks[0].model is not None


def test_a_pair_leaves_the_state_it_was_handed_as_it_was() -> None:
    """``estimate(a, b, state=s)`` gives the next state and leaves ``s`` alone: the plane gate set this pair's
    candidate (``pending``) on the carried tracks themselves, so the same pair computed again with ``s`` (a retry
    after a failure, two branches from one state) started from another state. (With a carried candidate that
    confirms a clearly better fit, the first call moved a plane 1.5 px, the second 0.83 px.)"""
    labels = np.full((48, 64), ROAD, np.uint8)
    method = get_method("semantic", baseline="dis-medium", segmentation=labels)
    frames = zoom_sequence(4, 48, 64)
    state = VideoState()
    for a, b in zip(frames[:2], frames[1:3]):
        state = method.estimate(a, b, state=state).state
    (track,) = state.parts["semantic"].tracks
    assert track.model is not None and track.history
    track.pending = np.array([[1.0, 0.0, 3.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # a candidate of the last pair
    before = snapshot(state)
    first = method.estimate(frames[2], frames[3], state=state)
    after = snapshot(state)
    assert before.keys() == after.keys()
    for key in before:
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)
    again = method.estimate(frames[2], frames[3], state=state)
    np.testing.assert_array_equal(again.flow, first.flow)
    for key, value in snapshot(first.state).items():
        np.testing.assert_array_equal(snapshot(again.state)[key], value, err_msg=key)


def test_tracks_keep_ids_through_motion_and_survive_a_snapshot() -> None:
    mask = np.zeros((40, 60), bool)
    mask[10:20, 10:30] = True
    flow = np.zeros((40, 60, 2), np.float32)
    flow[...] = (4.0, 2.0)
    carried = carry_mask(mask, flow)
    assert carried[12:22, 14:34].all() and carried.sum() == mask.sum()
    tracks = Tracks([Track(7, "thing", 8, carried)], next_id=8)
    moved = Region(8, (12, 22, 14, 34), np.ones((10, 20), bool))
    elsewhere = Region(8, (25, 35, 40, 55), np.ones((10, 15), bool))
    assert [t and t.track_id for t in tracks.match([elsewhere, moved], "thing", (40, 60))] == [None, 7]
    state = VideoState(pairs=3, flow=flow, parts={"semantic": tracks}, cut=True)
    back = restore(snapshot(state), np.zeros((40, 60, 3), np.uint8), {"semantic": Tracks})
    assert back.pairs == 3 and back.parts["semantic"].next_id == 8
    assert back.cut  # (the next pair does not lean on the flow of a cut: discrete's temporal candidates)
    np.testing.assert_array_equal(back.flow, flow)
    np.testing.assert_array_equal(back.parts["semantic"].tracks[0].mask, carried)
    # A saved state is the method's whole memory or none of it: one that lacks a part the method keeps
    # (saved by another method or build), or holds one it does not, is not restored (the run warms up again).
    assert restore(snapshot(state), None, {"semantic": Tracks, "discrete": Tracks}) is None
    assert restore(snapshot(state), None, {}) is None


def test_a_zooming_plane_keeps_its_model_and_id_for_every_pair() -> None:
    frames = zoom_sequence(7)
    labels = np.full(frames[0].shape[:2], ROAD, np.uint8)
    method = get_method("semantic", baseline="dis-medium")
    results = run_pairs(method, frames, video=True, labels=labels)
    ids = set()
    for result in results:
        planes = json.loads(str(result.extras["report_json"]))["planes"]
        assert len(planes) == 1 and planes[0]["accepted"], planes
        ids.add(planes[0]["track"])
    assert ids == {1}


# --- semflow run: video mode and resume ----------------------------------------------------------


def crashing(method, fail_at: int | None = None):
    """``method`` made to fail on its ``fail_at``-th video pair; ``method.calls`` counts its video pairs."""
    inner = method._estimate_video
    method.calls = 0

    def estimate_video(img1, img2, state, **kwargs):
        if method.calls == fail_at:
            raise RuntimeError(f"scripted failure on call {method.calls}")
        method.calls += 1
        return inner(img1, img2, state, **kwargs)

    method._estimate_video = estimate_video
    return method


def semantic_on_road(fail_at: int | None = None):
    """``semantic`` over a DIS baseline with the whole frame given as road: deterministic, and its
    state holds a tracked plane."""
    labels = np.full((48, 64), ROAD, np.uint8)
    return crashing(get_method("semantic", baseline="dis-medium", segmentation=labels), fail_at)


def _flows(out: Path) -> list[np.ndarray]:
    return [read_flow_valid(p)[0] for p in sorted((out / "flo").glob("*.flo"))]


@pytest.mark.parametrize("lose_state", [False, True], ids=["saved-state", "warm-up"])
def test_resume_in_video_mode_gives_the_flows_of_an_uninterrupted_run(tmp_path: Path, lose_state: bool,
                                                                     monkeypatch) -> None:
    monkeypatch.setattr(state_chain, "STATE_INTERVAL", 0.0)  # the state saved after every pair
    folder = tmp_path / "frames"
    for k, frame in enumerate(zoom_sequence(6, 48, 64)):
        write_image(folder / f"{k:04d}.png", frame)
    whole = run_video(folder, tmp_path / "whole", RunOptions(save_flo=True), method=semantic_on_road())
    assert whole["pairs"] == 5
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="scripted"):
        run_video(folder, out, RunOptions(save_flo=True), method=semantic_on_road(fail_at=3))
    state_file = out / WORK_DIR / STATE_FILE
    assert state_file.exists()
    # Pair mode is another setting: a video-mode run does not resume in pair mode.
    with pytest.raises(InputError, match="cannot resume.*pairwise"):
        run_video(folder, out, RunOptions(save_flo=True, resume=True, pairwise=True), method=semantic_on_road())
    if lose_state:
        state_file.unlink()
    resumed = semantic_on_road()
    summary = run_video(folder, out, RunOptions(save_flo=True, resume=True), method=resumed)
    assert summary["resumed_pairs"] == 3
    assert resumed.calls == (5 if lose_state else 2)  # the warm-up recomputes pairs 0-2
    for a, b in zip(_flows(tmp_path / "whole"), _flows(out), strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_video_state_is_saved_at_most_every_few_seconds(tmp_path: Path, monkeypatch) -> None:
    # Saving after every pair wrote 13 MB a pair for semantic at 960x540: the state is saved after the
    # first pair, then only once STATE_INTERVAL seconds have passed. A run resumed later warms up from
    # that older state, and its flows are still those of an uninterrupted run.
    folder = tmp_path / "frames"
    for k, frame in enumerate(zoom_sequence(6, 48, 64)):
        write_image(folder / f"{k:04d}.png", frame)
    whole = run_video(folder, tmp_path / "whole", RunOptions(save_flo=True), method=semantic_on_road())
    monkeypatch.setattr(state_chain, "STATE_INTERVAL", 3600.0)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="scripted"):
        run_video(folder, out, RunOptions(save_flo=True), method=semantic_on_road(fail_at=4))
    with np.load(out / WORK_DIR / STATE_FILE) as saved:
        assert int(saved["index"]) == 0  # only the first pair's state, not the fourth's
    resumed = semantic_on_road()
    summary = run_video(folder, out, RunOptions(save_flo=True, resume=True), method=resumed)
    assert summary["resumed_pairs"] == 4 and whole["pairs"] == 5
    assert resumed.calls == 4  # the warm-up recomputes pairs 1-3, then pair 4
    for a, b in zip(_flows(tmp_path / "whole"), _flows(out), strict=True):
        np.testing.assert_array_equal(a, b)


def test_discrete_describes_resized_frames_only_when_a_full_search_needs_them() -> None:
    """Between full searches video mode does without the scale-tolerant costs: the new frame's resized
    descriptors wait for the full search that needs them, which gets the flow of a frame described afresh."""
    frames = zoom_sequence(4, 96, 128)
    method = DiscreteFlow(refresh_every=2)
    first = method.estimate(frames[0], frames[1], state=VideoState())
    assert first.state.parts["discrete"].shrunk is not None  # a full search: both scales
    narrow = method.estimate(frames[1], frames[2], state=first.state)
    assert not narrow.extras["video_full_search"]
    work = narrow.state.parts["discrete"]
    assert work.described and work.shrunk is None
    bare = restore(snapshot(narrow.state), frames[2], method.state_parts())
    full = method.estimate(frames[2], frames[3], state=narrow.state)
    assert full.extras["video_full_search"] and work.shrunk is not None  # described now, once
    np.testing.assert_array_equal(full.flow, method.estimate(frames[2], frames[3], state=bare).flow)


def test_discrete_frame_work_survives_a_snapshot() -> None:
    frames = shift_sequence(2, 64, 96)
    method = DiscreteFlow(preset="fast")
    state = method.estimate(frames[0], frames[1], state=VideoState()).state
    work = state.parts["discrete"]
    back = restore(snapshot(state), frames[1], method.state_parts())
    again = back.parts["discrete"]
    assert not again.described and again.since_full == work.since_full
    np.testing.assert_array_equal(again.flow, work.flow)
    np.testing.assert_array_equal(again.projection, work.projection)
    # The method describes the restored frame again, under the same basis: the same descriptors.
    levels, finest = work.levels, work.finest
    one, _ = method._describe(work.gray, work.gray, levels, finest, work.shrink, again)
    for a, b in zip(one.descriptors, work.descriptors):
        if a is not None:
            np.testing.assert_array_equal(a, b)


def test_a_warm_up_reads_the_given_masks_of_the_frames_it_recomputes(tmp_path: Path, monkeypatch) -> None:
    # A resumed run warms up from the state saved after pair 0 (the only one saved here) through pairs 1-3:
    # each of them must read the masks of its own first frame, as the uninterrupted run did, or the state it
    # ends in (the tracked plane) and so the resumed flows differ.
    folder, masks = tmp_path / "frames", tmp_path / "masks"
    masks.mkdir()
    for k, frame in enumerate(zoom_sequence(6, 48, 64)):
        write_image(folder / f"{k:04d}.png", frame)
        write_image(masks / f"{k:06d}.png", np.full((48, 64), ROAD if k in (0, 1, 4) else 1, np.uint8))

    def method(fail_at: int | None = None):
        return crashing(get_method("semantic", baseline="dis-medium", segmentation=masks), fail_at)

    whole = run_video(folder, tmp_path / "whole", RunOptions(save_flo=True), method=method())
    monkeypatch.setattr(state_chain, "STATE_INTERVAL", 3600.0)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="scripted"):
        run_video(folder, out, RunOptions(save_flo=True), method=method(fail_at=4))
    resumed = method()
    summary = run_video(folder, out, RunOptions(save_flo=True, resume=True), method=resumed)
    assert summary["resumed_pairs"] == 4 and whole["pairs"] == 5 and resumed.calls == 4
    for a, b in zip(_flows(tmp_path / "whole"), _flows(out), strict=True):
        np.testing.assert_array_equal(a, b)


def _run_whole_and_failing(tmp_path: Path, *, frames: int, fail_at: int) -> tuple[Path, Path]:
    """A zooming road of ``frames`` frames in tmp_path/frames, run whole into tmp_path/whole and into
    tmp_path/out by a run that fails at pair ``fail_at``: the folder and the failed run's output."""
    folder = tmp_path / "frames"
    for k, frame in enumerate(zoom_sequence(frames, 48, 64)):
        write_image(folder / f"{k:04d}.png", frame)
    run_video(folder, tmp_path / "whole", RunOptions(save_flo=True), method=semantic_on_road())
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="scripted"):
        run_video(folder, out, RunOptions(save_flo=True), method=semantic_on_road(fail_at=fail_at))
    return folder, out


def test_a_run_resumed_at_its_second_pair_carries_the_state_of_the_first(tmp_path: Path) -> None:
    # Pair 1 is computed with the state pair 0 left (saved after it), not with an empty one.
    folder, out = _run_whole_and_failing(tmp_path, frames=4, fail_at=1)
    resumed = semantic_on_road()
    summary = run_video(folder, out, RunOptions(save_flo=True, resume=True), method=resumed)
    assert summary["resumed_pairs"] == 1 and resumed.calls == 2
    for a, b in zip(_flows(tmp_path / "whole"), _flows(out), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_pair_computed_again_between_finished_ones_leaves_the_next_its_own_state(tmp_path: Path,
                                                                                 monkeypatch) -> None:
    # Pairs 0-3 finished, the state saved after pair 3; pair 2's .flo is cut short. The resumed run computes it again
    # (after a warm-up), skips pair 3, and computes pair 4 with the state saved after pair 3, not the one pair 2 left.
    monkeypatch.setattr(state_chain, "STATE_INTERVAL", 0.0)  # the state saved after every pair
    folder, out = _run_whole_and_failing(tmp_path, frames=6, fail_at=4)
    flo = out / "flo/000002.flo"
    flo.write_bytes(flo.read_bytes()[:100])
    summary = run_video(folder, out, RunOptions(save_flo=True, resume=True), method=semantic_on_road())
    assert summary["resumed_pairs"] == 3
    for a, b in zip(_flows(tmp_path / "whole"), _flows(out), strict=True):
        np.testing.assert_array_equal(a, b)



def _past_the_cache(method, folder: Path, out: Path, **options):
    """Run ``method`` (made by :func:`crashing`) over ``folder`` into ``out``, its exact cache holding 3 pairs
    of 48x64: the run's outcome and the flows ``method`` computed, in order."""
    flows, counted = [], method._estimate_video

    def estimate_video(img1, img2, state, **kwargs):
        result = counted(img1, img2, state, **kwargs)
        flows.append(result.flow)
        return result

    method._estimate_video = estimate_video
    budget = 3 * 48 * 64 * CACHE_BYTES_PER_PIXEL
    return run_video(folder, out, RunOptions(save_flo=True, cache_budget=budget, **options), method=method), flows


@pytest.mark.parametrize("fail_at", [None, 3, 5])
def test_a_drawing_computes_each_pair_past_the_cache_once(tmp_path: Path, monkeypatch, fail_at: int | None) -> None:
    # A clip longer than its frame count said keeps its first pairs in the exact cache; the rest are computed
    # again to be drawn. The first of them warmed up from frame 0 (the latest state saved was from a later pair,
    # no other kept), computing every cached pair again: a clip whose cache held its first half cost half as
    # much again. The state before it is now kept apart, and pass 2 computes each such pair once, as pass 1 did
    # (also after an interruption at that pair, or past it).
    monkeypatch.setattr(state_chain, "STATE_INTERVAL", 0.0)  # as in a long clip: the latest state saved is late
    monkeypatch.setattr(FrameSource, "__len__", lambda self: 4)  # 3 pairs said, which the cache holds exactly
    folder = tmp_path / "frames"
    for k, frame in enumerate(zoom_sequence(9, 48, 64)):
        write_image(folder / f"{k:04d}.png", frame)
    whole = tmp_path / "whole"
    out = whole if fail_at is None else tmp_path / "out"
    method = semantic_on_road()
    summary, flows = _past_the_cache(method, folder, whole)
    if fail_at is not None:
        with pytest.raises(RuntimeError, match="scripted"):
            _past_the_cache(semantic_on_road(fail_at=fail_at), folder, out)
        method = semantic_on_road()
        summary, flows = _past_the_cache(method, folder, out, resume=True)
    assert summary["pairs"] == 8 and summary["render_from"] == "cache+recompute"
    first = fail_at or 0  # the pair pass 1 computes first, from the state saved after the one before it
    assert method.calls == 8 - first + 5  # pass 1, then pairs 3-7 once each
    assert len(flows) == method.calls
    for again, kept in zip(flows[8 - first:], _flows(out)[3:], strict=True):
        np.testing.assert_array_equal(again, kept)
    for a, b in zip(_flows(whole), _flows(out), strict=True):
        np.testing.assert_array_equal(a, b)
