"""``semflow batch`` hardened against a tester's findings (probe81): a Batch never prepares a finished clip
again (that deleted its outputs), clips submitted while results() runs are run, the batch's own outputs are
checked and its folder locked before any work, it writes nothing into its inputs, a truncated video is
recorded and warned about, bad options and inputs are one-line errors, and a batch left early still writes
batch.json. The tests without Ray come first; the others share one local Ray (1 worker each, tiny clips)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import keyframe_damaged_mp4, moving_frames

from semflow.batch import Batch, BatchOptions, expand_inputs
from semflow.errors import InputError, OutputError, SemflowError, SemflowWarning
from semflow.io.outputs import lock_folder
from semflow.methods import get_method
from semflow.pipeline import RunOptions, run_video

ray = pytest.importorskip("ray")

METHOD = "dis-ultrafast"


def options(**kwargs) -> BatchOptions:
    return BatchOptions(**{"method": METHOD, "workers": 1, "progress": False, **kwargs})


def outputs_of(folder: Path) -> dict[str, tuple[int, int]]:
    """Each file below ``folder``: (size, modification time in ns), to see that nothing was rewritten."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


# --- without Ray ----------------------------------------------------------------------------------


def test_batch_json_that_is_a_folder_is_refused_before_any_work(tmp_path: Path) -> None:
    """Finding 7: every clip was computed, then "batch.json: Is a directory" and no summary."""
    (tmp_path / "out" / "batch.json").mkdir(parents=True)
    with pytest.raises(OutputError, match=r"batch\.json: a folder, where a file is to be written; name a file$"):
        with Batch(tmp_path / "out", options()):
            pytest.fail("the batch started")


def test_a_batch_into_a_folder_another_command_writes_is_refused_in_one_line(monkeypatch, tmp_path: Path) -> None:
    """Finding 8: two batches into one --out ran side by side, the last batch.json won."""
    out = tmp_path / "out"
    out.mkdir()
    fd = lock_folder(out)  # (as a running `semflow run` or batch holds it)
    try:
        with pytest.raises(OutputError, match="another semflow command is writing to this folder"):
            with Batch(out, options()):
                pytest.fail("the batch started")
    finally:
        os.close(fd)
    assert list(out.iterdir()) == []

    def no_cluster(self: Batch) -> None:
        raise SemflowError("no cluster")

    monkeypatch.setattr(Batch, "_start_ray", no_cluster)
    with pytest.raises(SemflowError, match="no cluster"):  # a batch that stops before its work leaves no folder it made
        with Batch(tmp_path / "new", options()):
            pass
    assert not (tmp_path / "new").exists()


def test_a_batch_writes_nothing_into_the_folders_it_reads(make_frames, make_video, tmp_path: Path) -> None:
    """Finding 6: --out inside a folder of frames or of videos was accepted, and a glob picked up the
    batch's own output folder on its next run ("out: failed: folder holds no images")."""
    frames = make_frames(4)
    for out in (frames, frames / "out"):
        with pytest.raises(OutputError, match="which this command reads"):
            Batch(out, options()).submit([frames])
    videos = tmp_path / "videos"
    videos.mkdir()
    os.replace(make_video(4), videos / "a.mp4")
    with pytest.raises(OutputError, match="which this command reads"):
        Batch(videos / "out", options()).submit([videos])
    (videos / "out" / "a").mkdir(parents=True)  # a previous batch's outputs
    (videos / "out" / "a" / "flow.mp4").write_bytes(b"")
    with pytest.warns(SemflowWarning, match=r"a.mp4: given twice \(as a and a-2\)"):  # (a name the user gave: not)
        found = Batch(videos / "out", options()).submit([str(videos / "*"), str(videos / "**" / "*.mp4")])
    assert [(c.path, c.name) for c in found] == [(videos / "a.mp4", "a"), (videos / "a.mp4", "a-2")]
    assert [c.name for c in expand_inputs([str(videos / "*")])] == ["a", "out"]  # (without an out: as before)


def test_a_manifest_with_a_byte_order_mark(tmp_path: Path) -> None:
    """Finding 9: the BOM of Notepad or Excel's "CSV UTF-8" went into the first path (and the CSV header)."""
    (tmp_path / "v.mp4").write_bytes(b"")
    (tmp_path / "list.txt").write_bytes(b"\xef\xbb\xbfv.mp4\r\n")
    (tmp_path / "list.csv").write_bytes(b"\xef\xbb\xbfinput,name\nv.mp4,x\n")
    with pytest.warns(SemflowWarning, match="given twice"):  # (the same clip in both manifests)
        clips = expand_inputs([tmp_path / "list.txt", tmp_path / "list.csv"])
    assert [(c.path, c.name) for c in clips] == [(tmp_path / "v.mp4", "v"), (tmp_path / "v.mp4", "x")]


def test_hidden_files_in_a_folder_of_videos_are_skipped(tmp_path: Path) -> None:
    """Finding 10: macOS's ._v.mp4 became a clip, and ._cover.png made a folder of videos a "frames folder"."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "v.mp4").write_bytes(b"")
    (tmp_path / "a" / "._v.mp4").write_bytes(b"\x00\x05\x16\x07")
    (tmp_path / "b" / "._cover.png").write_bytes(b"\x00\x05\x16\x07")
    assert [(c.path, c.name) for c in expand_inputs([tmp_path / "a", tmp_path / "b"])] == [
        (tmp_path / "a" / "v.mp4", "v"), (tmp_path / "b" / "v.mp4", "v-2")]


@pytest.mark.parametrize(("bad", "match"), [
    ({"chunk_pairs": "5"}, "chunk_pairs must be a whole number of at least 1, got '5'"),
    ({"chunk_pairs": None}, "chunk_pairs must be a whole number of at least 1"),
    ({"chunk_pairs": 2.5}, "chunk_pairs must be a whole number"),
    ({"chunk_pairs": 0}, "chunk_pairs must be a whole number of at least 1, got 0"),
    ({"chunk_pairs": True}, "chunk_pairs must be a whole number"),
    ({"warmup_pairs": -2}, "warmup_pairs must be a whole number of at least 0, got -2"),
    ({"warmup_pairs": "1"}, "warmup_pairs must be a whole number"),
    ({"address": 6379}, "address must be a Ray address"),
    ({"method": get_method(METHOD), "method_options": {"sharpen": True}}, "go with a method name"),
])
def test_batch_options_of_the_wrong_kind_are_one_line_errors(bad: dict, match: str) -> None:
    """Finding 11: these failed after Ray started, as tracebacks or misleading clip errors (or silently)."""
    with pytest.raises(InputError, match=match):
        BatchOptions(**{"method": METHOD, **bad})
    assert options(chunk_pairs=1, warmup_pairs=0, address="auto").chunk_pairs == 1


def test_the_clips_are_run_without_a_display_of_their_own() -> None:
    """``progress`` is the batch's own display (its bars on the driver's terminal), not each clip's: a worker
    given it would draw every chunk's and drawing's bars into its own log, which nobody watches."""
    assert options(progress=True).run_options().progress is False
    assert options(progress=None).run_options().progress is False


def test_a_folder_of_one_videos_masks_is_refused_for_a_batch(tmp_path: Path) -> None:
    """Its NNNNNN.png were every clip's frame N masks, without a word; one PNG for every frame stays allowed."""
    folder = tmp_path / "masks"
    folder.mkdir()
    cv2.imwrite(str(folder / "000000.png"), np.zeros((8, 8), np.uint8))
    with pytest.raises(InputError, match="holds one video's masks"):
        BatchOptions(method="semantic", method_options={"segmentation": str(folder)})
    assert BatchOptions(method="semantic", method_options={"segmentation": str(folder / "000000.png")})
    # The same folder through the masks segmenter (which semantic reads by frame index as well).
    with pytest.raises(InputError, match="holds one video's masks"):
        BatchOptions(method="semantic", method_options={"segmenter": f"masks:{folder}"})
    assert BatchOptions(method="semantic", method_options={"segmenter": f"masks:{folder / '000000.png'}"})


def test_submit_names_a_value_that_is_not_a_path(tmp_path: Path) -> None:
    """Finding 14: bytes were taken as their numbers (clips "105", "110", ...), None as a clip "None"."""
    batch = Batch(tmp_path / "out", options())
    (tmp_path / "v.mp4").write_bytes(b"")
    assert [c.path for c in batch.submit(os.fsencode(tmp_path / "v.mp4"))] == [tmp_path / "v.mp4"]
    for bad, named in (([None], "None"), ([3], "3"), (None, "None"), (5, "5")):
        with pytest.raises(InputError, match=f"got {named}$"):
            batch.submit(bad)
    assert len(batch.clips) == 1


# --- on a local Ray ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray with 2 CPUs for this module's batches (each Batch starts and stops its own workers)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 1024 ** 2)
    yield
    ray.shutdown()


def test_finished_clips_are_never_prepared_again(local_ray, make_video, make_frames, tmp_path: Path) -> None:
    """Finding 1: a second results(), or submit + results() after the with block, prepared every clip afresh,
    deleting finished clips' outputs while still reporting them ok. (And finding 8: a second batch into the
    folder of an open one is refused.)"""
    out = tmp_path / "out"
    first, second, third = make_video(5, name="a.mp4"), make_frames(4, name="b"), make_video(4, name="c.mp4", seed=2)
    with Batch(out, options()) as batch:
        batch.submit([first])
        assert [(r.name, r.status) for r in batch.results()] == [("a", "ok")]
        kept = outputs_of(out / "a")
        assert "flow.mp4" in kept and "summary.json" in kept
        assert list(batch.results()) == []  # nothing new: nothing run, nothing yielded again
        assert outputs_of(out / "a") == kept
        with pytest.raises(OutputError, match="another semflow command is writing to this folder"):
            Batch(out, options()).start()  # finding 8 on a live batch: its folder is locked while it is open
        batch.submit([second])
        assert [(r.name, r.status) for r in batch.results()] == [("b", "ok")]
    batch.submit([third])  # a Batch used again after its with block
    try:
        assert [(r.name, r.status) for r in batch.results()] == [("c", "ok")]
    finally:
        batch.close()
    assert outputs_of(out / "a") == kept
    summary = json.loads((out / "batch.json").read_text())
    assert [(e["name"], e["status"]) for e in summary["inputs"]] == [("a", "ok"), ("b", "ok"), ("c", "ok")]
    assert summary == batch.summary and summary["pairs"] == 4 + 3 + 3


def test_clips_submitted_while_results_runs_are_run(local_ray, make_video, tmp_path: Path) -> None:
    """Finding 5: such a clip was never prepared and failed with "cannot resume ... without --resume"."""
    out = tmp_path / "out"
    clips = [make_video(4, name="a.mp4"), make_video(5, name="b.mp4", seed=1)]
    seen = []
    with Batch(out, options()) as batch:
        batch.submit(clips[:1])
        for result in batch.results():
            seen.append((result.name, result.status, result.error))
            if result.name == "a":
                batch.submit(clips[1:])
    assert seen == [("a", "ok", None), ("b", "ok", None)]
    assert (out / "b" / "flow.mp4").is_file() and batch.summary["ok"] == 2


def truncated_avi(path: Path, frames: int = 16) -> Path:
    """An MJPG .avi of ``frames`` frames cut to 60 % of its bytes: its header still declares them all."""
    full = path.with_name("full.avi")
    writer = cv2.VideoWriter(str(full), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 48))
    for frame in moving_frames(frames, 48, 64):
        writer.write(frame[:, :, ::-1])
    writer.release()
    data = full.read_bytes()
    path.write_bytes(data[:len(data) * 6 // 10])
    full.unlink()
    return path


def test_a_truncated_video_is_recorded_and_warned_about(local_ray, tmp_path: Path) -> None:
    """Finding 3: batch recorded "truncated": false and said nothing, where run warns and records true."""
    clip = truncated_avi(tmp_path / "cut.avi")
    with pytest.warns(SemflowWarning, match="frames its container declares"):
        run = run_video(clip, tmp_path / "run", RunOptions(method=METHOD))
    assert run["truncated"] and run["frames"] < run["frames_expected"]
    with pytest.warns(SemflowWarning) as said, Batch(tmp_path / "out", options(chunk_pairs=2)) as batch:
        batch.submit([clip])
        (result,) = batch.results()
    summary = json.loads((tmp_path / "out" / "cut" / "summary.json").read_text())
    assert result.status == "ok" and summary["truncated"] is True
    assert (summary["frames"], summary["frames_expected"]) == (run["frames"], run["frames_expected"])
    warning = f"read {run['frames']} of the {run['frames_expected']} frames its container declares"
    assert len(result.warnings) == 1 and warning in result.warnings[0]
    assert [str(w.message) for w in said] == [result.warnings[0]]
    assert result.warnings[0].startswith(f"{clip}: {warning}")
    listed = json.loads((tmp_path / "out" / "batch.json").read_text())
    assert listed["truncated"] == ["cut"] and listed["inputs"][0]["truncated"] is True


def test_a_gap_and_damaged_keyframes_are_said_once_and_recorded(local_ray, tmp_path: Path) -> None:
    """A folder's numbering gap was said twice (the clip is checked, then checked again when opened); a
    video's damaged keyframes are said once too, and kept in batch.json as run keeps them in summary.json."""
    from semflow.io.images import write_image

    damaged, _ = keyframe_damaged_mp4(tmp_path)
    frames = tmp_path / "gap"
    frames.mkdir()
    for number, frame in zip((1, 2, 4), moving_frames(3, 48, 64)):
        write_image(frames / f"{number:06d}.png", frame)
    with pytest.warns(SemflowWarning) as said, Batch(tmp_path / "out", options()) as batch:
        batch.submit([damaged, frames])
        results = {r.name: r for r in batch.results()}
    assert sorted(str(w.message) for w in said) == sorted(note for r in results.values() for note in r.warnings)
    assert [len(results[name].warnings) for name in ("damaged", "gap")] == [1, 1]
    assert "keyframes decode damaged" in results["damaged"].warnings[0]
    assert "frame numbers skip from 000002.png to 000004.png" in results["gap"].warnings[0]


def test_a_folder_holding_each_frame_twice_fails_its_clip_in_one_line(local_ray, make_frames, tmp_path: Path) -> None:
    """0001.png beside 0001.jpg (every frame twice) was a clip of twice the frames, half its pairs zero flow."""
    from semflow.io.images import read_image, write_image

    good, twice = make_frames(3), tmp_path / "twice"
    twice.mkdir()
    for frame in sorted(good.iterdir()):
        write_image(twice / frame.name, read_image(frame))
        write_image(twice / f"{frame.stem}.jpg", read_image(frame))
    with Batch(tmp_path / "out", options()) as batch:
        batch.submit([good, twice])
        results = {r.name: r for r in batch.results()}
    assert (results[good.name].status, results[good.name].pairs) == ("ok", 2)
    assert results["twice"].status == "failed"
    assert results["twice"].error == (f"{twice / '0000.jpg'} and 0000.png are one frame under two names (3 frames"
                                      " in the folder have more than one file): keep one kind of file (move the"
                                      " .jpg or the .png files out)")


def test_a_batch_left_early_writes_which_clips_finished(local_ray, make_video, tmp_path: Path) -> None:
    """Finding 15: after a break (an exception, Ctrl-C) there was no batch.json and summary stayed None. A
    batch with resume then finishes what the first left."""
    out = tmp_path / "out"
    clips = [make_video(4, name=f"{name}.mp4", seed=k) for k, name in enumerate("abc")]
    with Batch(out, options()) as batch:
        batch.submit(clips)
        for _ in batch.results():
            break
    assert batch.summary is not None and batch.summary["pairs_per_second"] is not None
    listed = json.loads((out / "batch.json").read_text())
    assert [e["status"] for e in listed["inputs"]] == ["ok", "interrupted", "interrupted"]
    assert (listed["ok"], listed["interrupted"]) == (1, 2)
    # Clips it had not started leave no folder (each was left empty but for its work folder's manifest).
    assert sorted(p.name for p in out.iterdir()) == ["a", "batch.json"]
    with Batch(out, options(resume=True)) as again:
        again.submit(clips)
        assert {r.name: r.status for r in again.results()} == {"a": "ok", "b": "ok", "c": "ok"}
    assert all((out / name / "flow.mp4").is_file() for name in "abc")


def test_a_resumed_batch_gives_each_clip_its_own_folder_whatever_the_order(tmp_path: Path) -> None:
    """Finding 4: two clips called ``clip`` took ``clip`` and ``clip-2`` in the order given; given in the
    other order, `--resume` refused both ("the earlier run used other settings")."""
    out = tmp_path / "out"
    clips = []
    for parent, seed in (("a", 1), ("b", 2)):
        folder = tmp_path / parent / "clip"
        folder.mkdir(parents=True)
        for k, frame in enumerate(moving_frames(3, seed=seed)):
            cv2.imwrite(str(folder / f"{k:06d}.png"), frame)
        clips.append(folder)
    first = Batch(out, options()).submit(clips)
    assert [(c.path.parent.name, c.name) for c in first] == [("a", "clip"), ("b", "clip-2")]
    for item in first:  # the outputs as the batch leaves them (a run per clip writes the same)
        run_video(item.path, out / item.name, RunOptions(method=METHOD, progress=False))
    again = Batch(out, options(resume=True)).submit(list(reversed(clips)))
    assert [(c.path.parent.name, c.name) for c in again] == [("b", "clip-2"), ("a", "clip")]
    fresh = Batch(out, options()).submit(list(reversed(clips)))  # (a fresh batch starts over: the order decides)
    assert [c.name for c in fresh] == ["clip", "clip-2"]


def test_a_link_loop_given_to_a_resumed_batch_is_a_failed_clip_not_a_traceback(tmp_path: Path) -> None:
    """A review: `batch loop.mp4 --resume` (loop.mp4 a link to itself) ended in a RuntimeError traceback
    from Path.resolve(); `run` said "no such file" in one line."""
    (tmp_path / "loop.mp4").symlink_to(tmp_path / "loop.mp4")
    (tmp_path / "out").mkdir()
    items = Batch(tmp_path / "out", options(resume=True)).submit([tmp_path / "loop.mp4"])
    assert [item.name for item in items] == ["loop"]
    assert RunOptions(method=METHOD).fingerprint(tmp_path / "loop.mp4")["video"] == str(tmp_path / "loop.mp4")


@pytest.mark.parametrize("device", ["cuda", "auto", "cpu"])
def test_batch_cli_leaves_the_gpu_to_the_cluster(monkeypatch, tmp_path: Path, device: str) -> None:
    """A cluster probe: `semflow batch --device cuda` was refused on a driver without a GPU ("no CUDA GPU is
    available here"), though the workers run where Ray puts them; the device now goes to the workers as given
    (a cluster without a GPU is refused when Ray shares them out)."""
    from click.testing import CliRunner

    import semflow.batch
    from semflow.cli import main

    given: list[BatchOptions] = []

    class Stop(Batch):
        def __init__(self, out_dir, options) -> None:
            given.append(options)
            raise SemflowError("stopped before Ray")

    monkeypatch.setattr(semflow.batch, "Batch", Stop)
    result = CliRunner().invoke(main, ["batch", str(tmp_path), "--out", str(tmp_path / "out"), "--method", "discrete",
                                       "--device", device])
    assert "stopped before Ray" in result.output and len(given) == 1, result.output
    assert given[0].method_options["device"] == device and given[0].method_options["preset"] == "balanced"


def test_a_worker_imports_torch_only_for_a_method_that_runs_it(cli_env) -> None:
    """Each worker imported torch to set its threads: seconds of every worker's start, OpenCV's methods' too.
    It leaves torch alone now, and torch imported later by a method, or before (a built method unpickled),
    runs on the worker's threads all the same. (A process of its own: a worker sets its process's limits.)"""
    import subprocess
    import sys

    script = """
import sys
from semflow.batch.work import ClipWorker
ClipWorker("dis-ultrafast", {}, 1)
print("torch" in sys.modules)
import torch
print(torch.get_num_threads())
torch.set_num_threads(2)
ClipWorker("discrete", {"device": "cpu"}, 1)
print(torch.get_num_threads())
"""
    env = {name: value for name, value in cli_env.items() if name != "OMP_NUM_THREADS"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["False", "1", "1"], done.stdout + done.stderr[-2000:]


def test_a_worker_of_another_build_is_refused(local_ray, make_frames, monkeypatch, tmp_path: Path) -> None:
    """A clip's chunks run on any worker: a node with another semflow or other library versions would have
    computed some of its pairs with another build (the driver records its own build as the clip's)."""
    import semflow.batch.workers as workers
    from semflow.batch.work import ClipWorker
    from semflow.build_identity import build_identity

    other = {**build_identity(), "torch": "0.0.1"}
    with pytest.raises(SemflowError, match=r"a worker runs another build than the driver \(torch [^ ]+ -> 0\.0\.1\)"):
        ClipWorker(METHOD, {}, build=other)
    monkeypatch.setattr(workers, "build_identity", lambda: other)  # the driver's, as the workers are told it
    with pytest.raises(SemflowError, match=r"could not build method .*: a worker runs another build than the driver"):
        with Batch(tmp_path / "out", options()) as batch:
            batch.submit([make_frames(3)])
            list(batch.results())


def test_the_token_of_a_local_ray_is_its_owners_alone(monkeypatch, tmp_path: Path) -> None:
    """A permissions probe: Ray writes ~/.ray/auth_token under the umask (0644: every user of the machine could
    read it and run code on the batch's cluster). semflow writes it first, 0600; one others may read loses that."""
    import stat

    from semflow.batch.cluster import keep_token_private

    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    old = os.umask(0o022)
    try:
        keep_token_private()
    finally:
        os.umask(old)
    token = tmp_path / ".ray" / "auth_token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600 and stat.S_IMODE(token.parent.stat().st_mode) == 0o700
    assert len(token.read_text()) == 64 and int(token.read_text(), 16) >= 0
    before = token.read_text()
    keep_token_private()  # kept as it is
    assert token.read_text() == before and stat.S_IMODE(token.stat().st_mode) == 0o600
    token.chmod(0o644)
    keep_token_private()
    assert stat.S_IMODE(token.stat().st_mode) == 0o640  # every user's read taken, the group's kept (shared on purpose)
    token.unlink()
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    keep_token_private()
    assert not token.exists()


def test_only_a_folder_the_batch_made_and_wrote_nothing_to_goes(tmp_path: Path) -> None:
    """An interrupted batch left a folder, empty but for .semflow-work/manifest, for every clip not started."""
    from semflow.batch.clips import ClipState, InputResult
    from semflow.batch.inputs import BatchInput
    from semflow.runstore import WORK_DIR

    def clip_folder(name: str, *more: str, status: str = "interrupted", created: bool = True) -> Path:
        out = tmp_path / name
        (out / WORK_DIR).mkdir(parents=True)
        for relative in ("manifest", *more):
            (out / WORK_DIR / relative).parent.mkdir(parents=True, exist_ok=True)
            (out / WORK_DIR / relative).write_text("x")
        ClipState(BatchInput(tmp_path / "clip.mp4", name), InputResult(name, "clip.mp4", str(out), status=status),
                  created=created).release()
        return out

    assert not clip_folder("unstarted").exists() and not clip_folder("failed", status="failed").exists()
    started = clip_folder("started", "pairs/1.jsonl")  # a chunk's records: --resume keeps them, and the manifest
    assert (started / WORK_DIR / "manifest").is_file() and (started / WORK_DIR / "pairs" / "1.jsonl").is_file()
    assert clip_folder("done", status="ok").is_dir() and clip_folder("earlier", created=False).is_dir()
    outside = tmp_path / "outside"
    (outside / WORK_DIR).mkdir(parents=True)
    (outside / WORK_DIR / "manifest").write_text("x")
    (tmp_path / "linked").symlink_to(outside)
    ClipState(BatchInput(tmp_path / "clip.mp4", "linked"), InputResult("linked", "clip.mp4", str(tmp_path / "linked"),
                                                                       status="failed"), created=True).release()
    assert (outside / WORK_DIR / "manifest").is_file()  # never through a link
    running = ClipState(BatchInput(tmp_path / "clip.mp4", "running"), InputResult(
        "running", "clip.mp4", str(tmp_path / "outside"), status="interrupted"), created=True, running=1)
    running.release()
    assert (outside / WORK_DIR / "manifest").is_file()  # a task of it still runs: it may write there yet
    fd = lock_folder(outside)  # another command's folder (it made its manifest after the batch's check)
    try:
        ClipState(BatchInput(tmp_path / "clip.mp4", "held"), InputResult(
            "held", "clip.mp4", str(outside), status="failed"), created=True).release()
        assert (outside / WORK_DIR / "manifest").is_file()
    finally:
        os.close(fd)


def test_a_clips_seconds_per_pair_and_the_batchs_rate_are_over_the_pairs_it_computed() -> None:
    """A resumed clip's seconds are those of the pairs this batch computed, not of the pairs finished before."""
    from semflow.batch.clips import InputResult, batch_summary

    resumed = InputResult("a", "a.mp4", "out/a", status="ok", pairs=10, computed_pairs=4, wall_seconds=2.0)
    fresh = InputResult("b", "b.mp4", "out/b", status="ok", pairs=6, computed_pairs=6, wall_seconds=3.0)
    summary = batch_summary([resumed, fresh], wall_seconds=5.0)
    assert [entry["wall_seconds_per_pair"] for entry in summary["inputs"]] == [0.5, 0.5]
    assert (summary["pairs"], summary["computed_pairs"], summary["pairs_per_second"]) == (16, 10, 2.0)


def test_a_resumed_batch_finds_earlier_folders_by_visible_folders_and_records_that_are_no_links(tmp_path: Path) -> None:
    """A hidden folder (a copy put aside: ``.clip-2.old``) sorts first and would take the clip's folder from
    ``clip-2``, where its work is; a record that is a link is not read (nothing in an output folder is
    followed through a link)."""
    from semflow.batch.clips import earlier_names
    from semflow.runstore import WORK_DIR

    def record(folder: Path, video: str) -> Path:
        (folder / WORK_DIR).mkdir(parents=True)
        state = folder / WORK_DIR / "state.json"
        state.write_text(json.dumps({"fingerprint": {"video": video}}))
        return state

    out = tmp_path / "out"
    record(out / "clip-2", "/videos/a/clip.mp4")
    record(out / ".clip-2.old", "/videos/a/clip.mp4")
    elsewhere = record(tmp_path / "elsewhere", "/videos/b/clip.mp4")
    (out / "clip" / WORK_DIR).mkdir(parents=True)
    (out / "clip" / WORK_DIR / "state.json").symlink_to(elsewhere)
    assert earlier_names(out) == {"/videos/a/clip.mp4": "clip-2"}
