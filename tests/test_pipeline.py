"""``run_video`` (``semflow run``): outputs, summary, one colour normaliser, interruption and --resume."""

from __future__ import annotations

import colorsys
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import semflow.state_chain as state_chain
from semflow.baseline.base import FlowMethod, FlowResult
from semflow.errors import InputError
from semflow.io.flow import read_flow_valid
from semflow.io.images import write_image
from semflow.io.video import FrameSource, VideoWriter
from semflow.pipeline import STAGES, WORK_DIR, RunOptions, run_video
from semflow.runstore import open_store, reopen_store


class ScriptedFlow(FlowMethod):
    """A fake method: pair k gets a constant flow ``(k + 1) * step``; raises ``fail_with`` on pair ``fail_at``.

    ``calls`` counts the pairs it was asked for, so tests can tell computed pairs from resumed ones.
    """

    name = "scripted"

    def __init__(self, step: tuple[float, float] = (1.0, 0.5), fail_at: int | None = None,
                 fail_with: type[BaseException] = RuntimeError) -> None:
        self.step = np.float32(step)
        self.fail_at, self.fail_with = fail_at, fail_with
        self.calls = 0
        self.pair = 0

    def _estimate(self, img1: np.ndarray, img2: np.ndarray, **kwargs) -> FlowResult:
        self.calls += 1
        if self.pair == self.fail_at:
            raise self.fail_with(f"scripted failure on pair {self.pair}")
        flow = np.empty((*img1.shape[:2], 2), np.float32)
        flow[:] = (self.pair + 1) * self.step
        self.pair += 1
        return FlowResult(flow)


class ResumingFlow(ScriptedFlow):
    """ScriptedFlow for a resumed run: knows which pair it is from the frames it is given."""

    def __init__(self, first_pair: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pair = first_pair


def frame_count(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def hidden_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*"))


def test_run_writes_videos_flo_and_summary(make_frames, tmp_path: Path) -> None:
    frames = make_frames(5, 48, 64, shift=(2, 1))
    out = tmp_path / "out"
    summary = run_video(frames, out, RunOptions(method="dis-medium", save_flo=True))
    assert sorted(p.name for p in out.iterdir()) == ["flo", "flow.mp4", "panel.mp4", "plot.png", "summary.json"]
    assert sorted(p.name for p in (out / "flo").iterdir()) == [f"{i:06d}.flo" for i in range(4)]
    assert hidden_files(out) == []  # no work folder, no temporary files
    # The flo files hold the motion of the clip: 2 px right, 1 px down per frame.
    for i in range(4):
        flow, valid = read_flow_valid(out / "flo" / f"{i:06d}.flo")
        assert flow.shape == (48, 64, 2) and valid.all()
        inner = flow[8:-8, 8:-8].reshape(-1, 2)
        np.testing.assert_allclose(np.median(inner, axis=0), (2.0, 1.0), atol=0.25)
    # Videos: H.264, one frame per pair.
    for name in ("flow.mp4", "panel.mp4"):
        cap = cv2.VideoCapture(str(out / name))
        fourcc = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode().lower()
        cap.release()
        assert fourcc in ("h264", "avc1") and frame_count(out / name) == 4
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert on_disk["method"] == "dis-medium"
    assert on_disk["frames"] == 5 and on_disk["pairs"] == 4
    assert on_disk["resolution"] == [64, 48]
    sec = on_disk["seconds_per_pair"]
    assert sec["median"] > 0 and sec["mean"] > 0 and sec["total"] >= sec["median"]
    mags = on_disk["flow_magnitude_px"]
    assert 1.8 < mags["mean"] < 2.8 and mags["max"] >= mags["mean"]
    assert on_disk["resumed_pairs"] == 0 and on_disk["outputs"]["flo_dir"] == "flo"


def test_run_without_save_flo_keeps_no_flow_files(make_video, tmp_path: Path) -> None:
    video = make_video(4, 40, 56)
    out = tmp_path / "out"
    summary = run_video(video, out, RunOptions(method="dis-ultrafast"))
    assert sorted(p.name for p in out.iterdir()) == ["flow.mp4", "panel.mp4", "plot.png", "summary.json"]
    assert summary["frames"] == 4 and summary["outputs"]["flo_dir"] is None
    assert summary["fps"] == pytest.approx(5.0)


def test_semflow_run_opens_a_video_once(make_video, tmp_path: Path, monkeypatch) -> None:
    # The command checks the video before it builds the method (a bad video fails before torch loads)
    # and hands the check to run_video: the first frame is decoded once, not twice.
    from click.testing import CliRunner

    import semflow.pipeline as pipeline
    from semflow.cli import main

    opened = []
    monkeypatch.setattr(pipeline, "FrameSource", lambda *a, **k: opened.append(a) or FrameSource(*a, **k))
    video = make_video(3, 40, 56)
    result = CliRunner().invoke(main, ["run", str(video), "--out", str(tmp_path / "out"), "--method", "dis-ultrafast"])
    assert result.exit_code == 0, result.output
    assert len(opened) == 1 and (tmp_path / "out" / "flow.mp4").is_file()


def test_max_frames_and_max_side(make_frames, tmp_path: Path) -> None:
    frames = make_frames(6, 48, 64)
    summary = run_video(frames, tmp_path / "out", RunOptions(method="dis-ultrafast", save_flo=True,
                                                            max_frames=3, max_side=32))
    assert summary["frames"] == 3 and summary["resolution"] == [32, 24]
    assert len(list((tmp_path / "out" / "flo").iterdir())) == 2
    assert read_flow_valid(tmp_path / "out" / "flo" / "000001.flo")[0].shape == (24, 32, 2)


def test_one_normaliser_for_the_whole_video(make_frames, tmp_path: Path) -> None:
    """Pair k moves (k + 1) px right: under one shared normaliser later frames are more saturated."""
    frames = make_frames(5, 64, 96)
    out = tmp_path / "out"
    summary = run_video(frames, out, RunOptions(max_flow=8.0), method=ScriptedFlow(step=(1.0, 0.0)))
    assert summary["max_flow_px"] == 8.0 and summary["method"] == "scripted"
    cap = cv2.VideoCapture(str(out / "flow.mp4"))
    saturations, hues = [], []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        r, g, b = frame[16, 16, ::-1] / 255.0  # upper left: away from the legend
        h, s, _ = colorsys.rgb_to_hsv(r, g, b)
        saturations.append(s)
        hues.append(h * 360)
    cap.release()
    assert len(saturations) == 4
    assert all(b > a + 0.05 for a, b in zip(saturations, saturations[1:])), saturations
    assert all(min(h, 360 - h) < 20 for h in hues), hues  # motion to the right is red
    assert saturations[-1] == pytest.approx(4 / 8, abs=0.1)  # 4 px under max 8 px: half saturation


def test_default_normaliser_covers_the_largest_motion(make_frames, tmp_path: Path) -> None:
    summary = run_video(make_frames(4), tmp_path / "out", RunOptions(), method=ScriptedFlow(step=(3.0, 4.0)))
    assert summary["max_flow_px"] == pytest.approx(15.0, rel=1e-3)  # pair 2: (9, 12)


@pytest.mark.parametrize("save_flo", [True, False], ids=["save-flo", "work-folder"])
def test_interrupted_run_keeps_finished_pairs_and_resumes(make_frames, tmp_path: Path, save_flo: bool,
                                                          monkeypatch) -> None:
    # The video state saved after every pair: the resumed run starts right at pair 3, no warm-up (that one
    # is tested in test_video_mode).
    monkeypatch.setattr(state_chain, "STATE_INTERVAL", 0.0)
    frames = make_frames(7, 32, 48)
    out = tmp_path / "out"
    options = RunOptions(save_flo=save_flo)
    crashing = ScriptedFlow(fail_at=3)
    with pytest.raises(RuntimeError, match="pair 3"):
        run_video(frames, out, options, method=crashing)
    assert crashing.calls == 4
    # Finished pairs 0..2 are on disk, whole; nothing else is under a final name.
    assert not (out / "flow.mp4").exists() and not (out / "panel.mp4").exists()
    assert not (out / "summary.json").exists()
    done_dir = out / "flo"
    assert reopen_store(out, save_flo).recorded() == [0, 1, 2]
    if save_flo:
        assert sorted(p.name for p in done_dir.iterdir()) == [f"{i:06d}.flo" for i in range(3)]
    assert not [p for p in out.rglob("*") if p.name.startswith(".") and p.name != WORK_DIR]
    if save_flo:
        for i in range(3):
            flow, _ = read_flow_valid(done_dir / f"{i:06d}.flo")
            np.testing.assert_allclose(flow[0, 0], (i + 1) * np.float32([1.0, 0.5]))
        before = {p.name: p.read_bytes() for p in done_dir.iterdir()}

    resumed = ResumingFlow(first_pair=3)
    summary = run_video(frames, out, RunOptions(save_flo=save_flo, resume=True), method=resumed)
    assert resumed.calls == 3  # pairs 3, 4, 5 only
    assert summary["resumed_pairs"] == 3 and summary["pairs"] == 6
    assert (out / "flow.mp4").exists() and frame_count(out / "flow.mp4") == 6
    assert hidden_files(out) == []
    if save_flo:
        assert all((done_dir / name).read_bytes() == data for name, data in before.items())
        for i in range(6):
            flow, _ = read_flow_valid(done_dir / f"{i:06d}.flo")
            np.testing.assert_allclose(flow[5, 5], (i + 1) * np.float32([1.0, 0.5]))


def test_keyboard_interrupt_also_keeps_finished_pairs(make_frames, tmp_path: Path) -> None:
    frames = make_frames(5, 32, 48)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_video(frames, out, RunOptions(save_flo=True), method=ScriptedFlow(fail_at=2, fail_with=KeyboardInterrupt))
    assert sorted(p.name for p in (out / "flo").iterdir()) == ["000000.flo", "000001.flo"]


def test_fresh_run_after_a_crash_recomputes_everything(make_frames, tmp_path: Path) -> None:
    frames = make_frames(5, 32, 48)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        run_video(frames, out, RunOptions(save_flo=True), method=ScriptedFlow(fail_at=2))
    again = ScriptedFlow()
    summary = run_video(frames, out, RunOptions(save_flo=True), method=again)
    assert again.calls == 4 and summary["resumed_pairs"] == 0


def test_resume_with_other_settings_is_refused(make_frames, tmp_path: Path) -> None:
    frames = make_frames(5, 48, 64)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        run_video(frames, out, RunOptions(save_flo=True), method=ScriptedFlow(fail_at=2))
    with pytest.raises(InputError, match="cannot resume.*--max-side"):
        run_video(frames, out, RunOptions(save_flo=True, resume=True, max_side=32), method=ScriptedFlow())
    with pytest.raises(InputError, match="cannot resume.*--method"):
        run_video(frames, out, RunOptions(method="dis-fast", save_flo=True, resume=True))
    # The finished pairs survive the refusals.
    assert len(list((out / "flo").iterdir())) == 2


def test_resume_of_a_finished_run_with_saved_flo_computes_nothing(make_frames, tmp_path: Path) -> None:
    frames = make_frames(4, 32, 48)
    out = tmp_path / "out"
    run_video(frames, out, RunOptions(save_flo=True), method=ScriptedFlow())
    idle = ScriptedFlow()
    summary = run_video(frames, out, RunOptions(save_flo=True, resume=True), method=idle)
    assert idle.calls == 0 and summary["resumed_pairs"] == 3


def test_too_few_frames(make_frames, make_video, tmp_path: Path) -> None:
    one_folder = make_frames(1, name="one")
    one_video = make_video(1, name="one.mp4")
    for source, options in ((one_folder, RunOptions()), (one_video, RunOptions()),
                            (make_frames(3, name="three"), RunOptions(max_frames=1)),
                            (make_frames(3, name="three"), RunOptions(max_frames=0))):
        with pytest.raises(InputError, match="at least 2 frames"):
            run_video(source, tmp_path / "out", options)
        assert not (tmp_path / "out").exists()


def test_a_run_that_fails_before_its_first_pair_leaves_no_folder(make_frames, tmp_path: Path) -> None:
    # Frame k of another size fails the run when it is read. Before any pair was finished the run left
    # an output folder holding only its work folder; now it removes what it created. With pairs
    # finished, they stay for --resume; a folder that was there before stays.
    for bad, kept in ((1, False), (3, True)):
        frames = make_frames(5, name=f"frames{bad}")
        write_image(frames / f"{bad:04d}.png", np.zeros((40, 64, 3), np.uint8))
        out = tmp_path / f"out{bad}"
        with pytest.raises(InputError, match=f"{bad:04d}.png is 64x40"):
            run_video(frames, out, RunOptions(method="dis-ultrafast"))
        assert out.exists() == kept
        if kept:
            assert (out / WORK_DIR / "manifest").is_file()
    (tmp_path / "mine").mkdir()
    with pytest.raises(InputError, match="0001.png is 64x40"):
        run_video(tmp_path / "frames1", tmp_path / "mine", RunOptions(method="dis-ultrafast"))
    assert (tmp_path / "mine").is_dir()


def test_not_a_video(tmp_path: Path) -> None:
    (tmp_path / "clip.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(InputError, match="not a readable video"):
        run_video(tmp_path / "clip.mp4", tmp_path / "out")
    with pytest.raises(InputError, match="no such file"):
        run_video(tmp_path / "missing.mp4", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_odd_sized_video_runs(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 255, (41, 61, 3)).astype(np.uint8), (0, 0), 1.5)
    with VideoWriter(tmp_path / "odd.mp4", 5) as writer:
        for k in range(3):
            writer.write(np.roll(base, k, axis=1))
    summary = run_video(tmp_path / "odd.mp4", tmp_path / "out", RunOptions(method="dis-ultrafast"))
    assert summary["pairs"] == 2 and frame_count(tmp_path / "out" / "flow.mp4") == 2


def test_progress_bar_writes_to_stderr_only(capsys) -> None:
    from semflow.progress import progress_bar

    with progress_bar(3, "flow", enabled=True) as bar:
        for _ in range(3):
            bar.advance()
    out, err = capsys.readouterr()
    assert out == "" and "3/3" in err
    with progress_bar(3, "flow") as bar:  # default: only on a terminal; tests have none
        bar.advance()
    assert capsys.readouterr() == ("", "")


def test_run_shared_video_first_frames(shared_file, tmp_path: Path) -> None:
    video = shared_file("videos/vtest.avi")
    summary = run_video(video, tmp_path / "out", RunOptions(method="dis-ultrafast", max_frames=3, max_side=192))
    assert summary["frames"] == 3 and summary["resolution"] == [192, 144]
    assert summary["fps"] == pytest.approx(10.0, abs=0.5)
    assert frame_count(tmp_path / "out" / "panel.mp4") == 2


def test_a_fresh_run_removes_only_its_own_flo_files(make_frames, tmp_path: Path) -> None:
    """What a run removes is what an earlier run listed as written (issue 14: a fresh run deleted the
    user's own flo/000001.flo-style files, here 000007.flo, even without --save-flo)."""
    frames = make_frames(4, 32, 48)
    out = tmp_path / "out"
    (out / "flo").mkdir(parents=True)
    (out / "flo" / "notes.txt").write_text("mine")
    (out / "flo" / "000007.flo").write_bytes(b"mine too")
    run_video(frames, out, RunOptions(save_flo=True), method=ScriptedFlow())
    assert sorted(p.name for p in (out / "flo").iterdir()) == ["000000.flo", "000001.flo", "000002.flo",
                                                                 "000007.flo", "notes.txt"]
    run_video(frames, out, RunOptions(), method=ScriptedFlow())  # without --save-flo: the old flows go
    assert sorted(p.name for p in (out / "flo").iterdir()) == ["000007.flo", "notes.txt"]
    assert (out / "flo" / "000007.flo").read_bytes() == b"mine too"
    for path in (out / "flo").iterdir():
        path.unlink()
    (out / "flo").rmdir()
    run_video(frames, out, RunOptions(save_flo=True), method=ScriptedFlow())
    run_video(frames, out, RunOptions(), method=ScriptedFlow())
    assert not (out / "flo").exists()  # a flo folder the run created is removed once emptied


class BaselineReportingFlow(ScriptedFlow):
    """ScriptedFlow that also reports a baseline flow, as semantic does: 10x its flow on pair 0, equal after."""

    def _estimate(self, img1: np.ndarray, img2: np.ndarray, **kwargs) -> FlowResult:
        pair = self.pair
        result = super()._estimate(img1, img2, **kwargs)
        result.extras["baseline_flow"] = result.flow * (10 if pair == 0 else 1)
        return result


def test_resumed_run_keeps_the_normaliser_of_the_baseline_flows(make_frames, tmp_path: Path) -> None:
    frames = make_frames(5, 32, 48)
    full = run_video(frames, tmp_path / "full", RunOptions(), method=BaselineReportingFlow())
    with pytest.raises(RuntimeError, match="pair 2"):
        run_video(frames, tmp_path / "out", RunOptions(), method=BaselineReportingFlow(fail_at=2))
    resumed = BaselineReportingFlow()
    resumed.pair = 2
    summary = run_video(frames, tmp_path / "out", RunOptions(resume=True), method=resumed)
    assert summary["resumed_pairs"] == 2
    # pair 0's baseline (10 * 1.118 px) sets the scale whether or not pair 0 was computed in this run
    assert summary["max_flow_px"] == pytest.approx(full["max_flow_px"], rel=1e-3)
    assert full["max_flow_px"] > 10.0


def test_render_from_says_the_pairs_with_extras_were_computed_again_not_read_from_their_flo_files(make_frames,
                                                                                                   tmp_path: Path) -> None:
    """--save-flo keeps the flow only: a method that reports a baseline flow (as semantic does) has its pairs
    computed again to be drawn when no budget holds them, and summary.json said they came from the .flo files."""
    frames = make_frames(4, 32, 48)
    method = BaselineReportingFlow()
    summary = run_video(frames, tmp_path / "out", RunOptions(save_flo=True, cache_budget=0), method=method)
    assert method.calls == 6  # 3 pairs computed, then each again to draw it
    assert summary["render_from"] == "recompute"
    plain = ScriptedFlow()
    summary = run_video(frames, tmp_path / "plain", RunOptions(save_flo=True, cache_budget=0), method=plain)
    assert plain.calls == 3 and summary["render_from"] == "flo"


class FrameDerivedFlow(FlowMethod):
    """A deterministic fake method whose flow comes from the frames, with values float16 cannot hold
    (u = red / 7.3 + 0.1234567, v = -green / 11.1); raises on its ``fail_at``-th call."""

    name = "frame-derived"

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at, self.calls = fail_at, 0

    def _estimate(self, img1: np.ndarray, img2: np.ndarray, **kwargs) -> FlowResult:
        if self.calls == self.fail_at:
            raise RuntimeError(f"failure on call {self.calls}")
        self.calls += 1
        rgb = img1.astype(np.float32)
        return FlowResult(np.stack([rgb[..., 0] / 7.3 + 0.1234567, -rgb[..., 1] / 11.1], axis=2))


@pytest.mark.parametrize("save_flo", [False, True], ids=["work-folder", "save-flo"])
def test_resumed_run_gives_byte_identical_outputs(make_frames, tmp_path: Path, save_flo: bool) -> None:
    """issue 14: a run resumed after a crash writes the very bytes an uninterrupted run writes (the same
    normaliser, the same frames), whether its pairs were kept in the work folder or as .flo files."""
    frames = make_frames(6, 40, 56)
    full = run_video(frames, tmp_path / "full", RunOptions(save_flo=save_flo), method=FrameDerivedFlow())
    with pytest.raises(RuntimeError, match="call 3"):
        run_video(frames, tmp_path / "out", RunOptions(save_flo=save_flo), method=FrameDerivedFlow(fail_at=3))
    resumed = run_video(frames, tmp_path / "out", RunOptions(save_flo=save_flo, resume=True),
                        method=FrameDerivedFlow())
    assert resumed["resumed_pairs"] == 3 and full["resumed_pairs"] == 0
    assert resumed["max_flow_px"] == full["max_flow_px"]  # exactly
    assert resumed["flow_magnitude_px"] == full["flow_magnitude_px"]
    for name in ("flow.mp4", "panel.mp4"):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "full" / name).read_bytes(), name
    if save_flo:
        for i in range(5):
            assert (tmp_path / "out" / "flo" / f"{i:06d}.flo").read_bytes() == \
                (tmp_path / "full" / "flo" / f"{i:06d}.flo").read_bytes()


def test_recomputed_and_single_pass_drawings_equal_the_cached_one(make_frames, tmp_path: Path) -> None:
    """A clip whose flows no budget holds (0; or too little even for the intermediate) is computed again
    to draw it (with --save-flo, read from its .flo files), and a run given --max-flow draws in one pass
    keeping nothing: each writes the very bytes of the cached run (dis-fast is deterministic)."""
    frames = make_frames(5, 48, 64)
    cached = run_video(frames, tmp_path / "cached", RunOptions(method="dis-fast", save_flo=True))
    again = run_video(frames, tmp_path / "again", RunOptions(method="dis-fast", cache_budget=0))
    part = run_video(frames, tmp_path / "part", RunOptions(method="dis-fast", cache_budget=20_000))  # not even the intermediate
    single = run_video(frames, tmp_path / "single", RunOptions(method="dis-fast", max_flow=cached["max_flow_px"]))
    flo = run_video(frames, tmp_path / "flo", RunOptions(method="dis-fast", save_flo=True, cache_budget=0))
    # (with --save-flo the exact cache still comes first; the .flo files serve the pairs it does not hold)
    assert (cached["render_from"], again["render_from"], part["render_from"], single["render_from"], flo["render_from"]) == \
        ("cache", "recompute", "recompute", "single-pass", "flo")
    assert again["max_flow_px"] == part["max_flow_px"] == flo["max_flow_px"] == cached["max_flow_px"]
    for name in ("flow.mp4", "panel.mp4"):
        data = (tmp_path / "cached" / name).read_bytes()
        assert (tmp_path / "again" / name).read_bytes() == data
        assert (tmp_path / "part" / name).read_bytes() == data
        assert (tmp_path / "single" / name).read_bytes() == data
        assert (tmp_path / "flo" / name).read_bytes() == data
    for summary in (cached, again, part, single, flo):
        stages = summary["stage_seconds"]
        assert set(stages) == {"read", "flow", "stats", "draw", "write"} and all(v >= 0 for v in stages.values())
        assert summary["wall_seconds"]["total"] >= sum(stages.values()) * 0.99
        if summary is not single:  # pass 1 computes in the main thread: its flow stage holds the compute time
            assert stages["flow"] >= summary["seconds_per_pair"]["total"] * 0.99
        assert stages["stats"] > 0  # (a single pass charged its statistics to "flow": stats read 0.0)


def test_run_options_of_the_wrong_kind_are_one_line_errors(make_frames, tmp_path: Path) -> None:
    """RunOptions(max_frames="2") and the like failed deep in the run (a TypeError from a comparison or
    range()); a dict for options was an AttributeError."""
    from semflow.batch import BatchOptions
    from semflow.errors import InputError

    for bad, match in [({"max_frames": "2"}, "max_frames must be a whole number of at least 0"),
                       ({"max_frames": 2.5}, "max_frames must be a whole number"),
                       ({"max_frames": True}, "max_frames must be a whole number"),
                       ({"max_side": 8}, "max_side must be a whole number of at least 16"),
                       ({"cache_budget": "1"}, "cache_budget must be a whole number"),
                       ({"max_flow": "5"}, "max_flow must be a number of px"),
                       ({"max_flow": 1e-9}, r"max flow \(--max-flow\) must be between"),
                       ({"method_options": None}, "method_options must be a dict"),
                       ({"method": 3}, "method must be a method name or a built FlowMethod"),
                       ({"resume": "yes"}, "resume must be True or False"),
                       ({"pairwise": 1}, "pairwise must be True or False")]:
        with pytest.raises(InputError, match=match):
            RunOptions(**bad)
    for workers in ("2", 2.5, 0, 1025):
        with pytest.raises(InputError, match="workers must be a whole number from 1 to 1024"):
            BatchOptions(method="dis-fast", workers=workers)
    assert BatchOptions(method="dis-fast", workers=1024).workers == 1024  # (the most is allowed)
    with pytest.raises(InputError, match="options must be a RunOptions, not dict"):
        run_video(make_frames(2), tmp_path / "o", {"method": "dis-fast"})
    assert RunOptions(max_frames=3, max_side=32, max_flow=2, cache_budget=0).max_flow == 2


def test_a_single_pass_never_charges_a_stage_negative_seconds() -> None:
    """A single pass moved all the statistics and writing its flows thread did out of the main thread's wait
    for it ("flow"); where that thread's work overlapped the drawing, the wait was shorter and "flow" went
    negative (a fresh-clone CI run read it so). Only as much as the wait holds is moved, in proportion."""
    from semflow.timing import moved_out_of_flow, sum_stages

    main = {"read": 0.05, "flow": 0.1, "draw": 0.3, "write": 0.2}
    stages = sum_stages([main, moved_out_of_flow(main, {"stats": 0.2, "write": 0.1})], STAGES)
    assert all(v >= 0 for v in stages.values()) and stages["flow"] == pytest.approx(0.0)
    assert stages["stats"] == pytest.approx(0.2 / 3) and stages["write"] == pytest.approx(0.2 + 0.1 / 3)
    assert sum(stages.values()) == pytest.approx(sum(main.values()))  # the main thread's time, shared out
    ample = {"flow": 1.0}
    assert sum_stages([ample, moved_out_of_flow(ample, {"stats": 0.2, "write": 0.1})], STAGES)["flow"] == \
        pytest.approx(0.7)


@pytest.mark.parametrize("max_flow", [None, 5.0])
def test_drawing_the_plot_is_charged_to_the_write_stage(make_frames, monkeypatch, tmp_path: Path, max_flow) -> None:
    """An output check: plot.png (half a second, most of a short clip's wall time) was drawn outside every
    stage, so stage_seconds left it out of the wall time; and the percentile arithmetic's check (once a
    process) was timed inside the first pair's stats, which a single pass takes out of "flow"."""
    import time

    from semflow.pair_records import percentile_arithmetic
    from semflow.temporal import TemporalMeter

    drawn = TemporalMeter.write_plot
    monkeypatch.setattr(TemporalMeter, "write_plot", lambda *a, **k: (time.sleep(0.4), drawn(*a, **k))[1])
    summary = run_video(make_frames(3), tmp_path / "o", RunOptions(method="dis-fast", max_flow=max_flow, progress=False))
    assert summary["stage_seconds"]["write"] >= 0.4
    percentile_arithmetic.cache_clear()
    (tmp_path / "store").mkdir()
    open_store(tmp_path / "store", {}, resume=False, save_flo=False, frame_shape=(48, 64, 3), single_pass=max_flow is not None)
    assert percentile_arithmetic.cache_info().currsize == 1  # checked by the store, before any pair is timed
