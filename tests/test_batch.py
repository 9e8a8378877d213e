"""``semflow batch`` on a real local Ray (2 workers): the same outputs as ``semflow run``, bad clips
reported and skipped, a worker killed mid-batch and ``--resume``; input expansion and chunk plans."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import moving_frames

from semflow.baseline.base import FlowMethod, FlowResult
from semflow.batch import Batch, BatchOptions, Chunk, expand_inputs, plan_chunks
from semflow.batch.cluster import check_address, ray_starting, worker_gpus, workers_to_start
from semflow.errors import InputError, OutputError, SemflowError, SemflowWarning
from semflow.io.images import write_image
from semflow.io.outputs import OutputFolder
from semflow.io.video import FrameSource, VideoWriter
from semflow.methods import get_method
from semflow.pipeline import RunOptions, run_video
from semflow.runstore import WORK_DIR, reopen_store

ray = pytest.importorskip("ray")
from ray import cloudpickle  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import the test module

METHOD = "dis-fast"


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray with 2 CPUs and a GPU (declared, not there: Ray schedules by it all the same) for this
    module's batches (each Batch starts and stops its own workers)."""
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 1024 ** 2)
    yield
    ray.shutdown()

TIMING_KEYS = {"seconds_per_pair", "wall_seconds", "stage_seconds", "stage_seconds_per_pair", "resumed_pairs"}


def write_video(path: Path, count: int, height: int = 40, width: int = 56, shift=(2, 1), seed: int = 0) -> Path:
    with VideoWriter(path, 5) as writer:
        for frame in moving_frames(count, height, width, shift=shift, seed=seed):
            writer.write(frame)
    return path


def write_folder(path: Path, count: int, height: int = 40, width: int = 56, seed: int = 0) -> Path:
    for k, frame in enumerate(moving_frames(count, height, width, shift=(1, 2), seed=seed)):
        write_image(path / f"{k:04d}.png", frame)
    return path


def assert_same_as_run(clip: Path, batch_out: Path, run_out: Path) -> None:
    """The batch's outputs for ``clip`` are byte for byte those of ``semflow run --save-flo``."""
    run_summary = run_video(clip, run_out, RunOptions(method=METHOD, save_flo=True))
    batch_summary = json.loads((batch_out / "summary.json").read_text())
    assert {k: v for k, v in batch_summary.items() if k not in TIMING_KEYS} == \
        {k: v for k, v in json.loads(json.dumps(run_summary)).items() if k not in TIMING_KEYS}
    flos = sorted(p.name for p in (run_out / "flo").iterdir())
    assert flos == sorted(p.name for p in (batch_out / "flo").iterdir()) and len(flos) == run_summary["pairs"]
    for name in flos:
        assert (batch_out / "flo" / name).read_bytes() == (run_out / "flo" / name).read_bytes(), name
    for name in ("flow.mp4", "panel.mp4"):
        assert (batch_out / name).read_bytes() == (run_out / name).read_bytes(), name
    assert not (batch_out / WORK_DIR).exists()


def test_batch_gives_run_outputs_and_skips_bad_clips(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    good = [write_video(clips / "a.mp4", 9, seed=1), write_video(clips / "b.mp4", 6, shift=(-1, 2), seed=2),
            write_folder(tmp_path / "frames", 7, seed=3)]
    (clips / "broken.mp4").write_bytes(b"not a video")
    write_video(clips / "short.mp4", 1, seed=4)
    write_video(clips / "locked.mp4", 4, seed=5)  # its output folder is another run's: refused, as run does
    write_video(clips / "linked.mp4", 4, seed=6)  # its flo/ is a link: refused, as run does
    out = tmp_path / "out"
    (out / "linked").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (out / "linked" / "flo").symlink_to(tmp_path / "elsewhere")
    (out / "inplace").mkdir()  # a clip whose output folder would be its own folder of frames: refused
    write_video(clips / "planted.mp4", 4, seed=8)  # its folder is a link someone left: refused
    (tmp_path / "victim").mkdir()
    (out / "planted").symlink_to(tmp_path / "victim")
    inplace = write_folder(out / "inplace", 4, seed=7)
    options = BatchOptions(method=METHOD, workers=2, chunk_pairs=3, save_flo=True)
    with OutputFolder(out / "locked", fresh=True, work=WORK_DIR), Batch(out, options) as batch:
        submitted = batch.submit([str(clips / "*.mp4"), tmp_path / "frames", inplace])
        results = {r.name: r for r in batch.results()}
    assert [s.name for s in submitted] == ["a", "b", "broken", "linked", "locked", "planted", "short", "frames",
                                           "inplace"]
    assert results["planted"].status == "failed" and "symbolic link" in results["planted"].error
    assert not any((tmp_path / "victim").iterdir())  # it wrote its outputs there
    assert results["broken"].status == "failed" and "not a readable video" in results["broken"].error
    assert results["short"].status == "failed" and "at least 2 frames" in results["short"].error
    assert results["locked"].status == "failed" and "another semflow command" in results["locked"].error
    assert results["linked"].status == "failed" and "symbolic link" in results["linked"].error
    assert results["inplace"].status == "failed" and "is also an input" in results["inplace"].error
    assert sorted(p.name for p in inplace.iterdir()) == [f"{k:04d}.png" for k in range(4)]
    assert not (out / "broken").exists() and not (out / "short").exists()  # a bad clip leaves no folder behind
    assert all("\n" not in r.error for r in results.values() if r.error)
    summary = json.loads((out / "batch.json").read_text())
    assert (summary["ok"], summary["failed"], summary["pairs"]) == (3, 6, 8 + 5 + 6)
    assert [e["status"] for e in summary["inputs"]] == ["ok", "ok", "failed", "failed", "failed", "failed", "failed",
                                                        "ok", "failed"]
    for entry in summary["inputs"]:
        if entry["status"] == "ok":
            assert entry["wall_seconds"] > 0 and entry["stage_seconds"]["flow"] > 0
    for clip, name in zip(good, ("a", "b", "frames")):
        assert results[name].status == "ok"
        assert_same_as_run(clip, out / name, tmp_path / "run" / name)


class DieAt(FlowMethod):
    """dis-fast, except that the worker computing the pair whose first frame hashes to ``frame_sha`` kills
    its own process (SIGKILL, as the OOM killer would), the first ``times`` times (counted in ``marker``)."""

    name = METHOD

    def __init__(self, marker: str, frame_sha: str, times: int) -> None:
        self.inner, self.marker, self.frame_sha, self.times = get_method(METHOD), marker, frame_sha, times

    def _estimate(self, img1: np.ndarray, img2: np.ndarray, **kwargs) -> FlowResult:
        if hashlib.sha256(img1.tobytes()).hexdigest() == self.frame_sha:
            deaths = int(Path(self.marker).read_text()) if os.path.exists(self.marker) else 0
            if deaths < self.times:
                Path(self.marker).write_text(str(deaths + 1))
                os.kill(os.getpid(), signal.SIGKILL)
        return self.inner.estimate(img1, img2)


def _dying_batch(tmp_path: Path, times: int) -> tuple[list[Path], BatchOptions]:
    """Three clips; the workers die at pair 4 of ``b`` (a chunk of 3 pairs: 3-5) the first ``times`` times."""
    clips = [write_video(tmp_path / "a.mp4", 8, seed=1), write_video(tmp_path / "b.mp4", 11, width=72, seed=2),
             write_video(tmp_path / "c.mp4", 7, seed=3)]
    frame = list(FrameSource(clips[1]))[4]
    method = DieAt(str(tmp_path / "killed"), hashlib.sha256(frame.tobytes()).hexdigest(), times)
    return clips, BatchOptions(method=method, workers=2, chunk_pairs=3, save_flo=True)


def test_a_chunk_whose_worker_dies_is_computed_again_once(tmp_path: Path) -> None:
    """A worker killed mid-chunk (the OOM killer, a node lost) failed its clip though Ray restarts the worker
    and a chunk can be computed again: the chunk is now sent again, once, with a warning."""
    clips, options = _dying_batch(tmp_path, times=1)
    with pytest.warns(SemflowWarning, match=r"^b: a worker died while computing pairs 3-5 .*; computing them again$"):
        with Batch(tmp_path / "out", options) as batch:
            batch.submit(clips)
            results = {r.name: r for r in batch.results()}
    assert (tmp_path / "killed").read_text() == "1"
    assert all(r.status == "ok" for r in results.values()), {n: r.error for n, r in results.items()}
    recorded = {e["name"]: e["warnings"] for e in json.loads((tmp_path / "out" / "batch.json").read_text())["inputs"]}
    assert recorded["a"] == recorded["c"] == [] and len(recorded["b"]) == 1  # (it was not: a cluster probe)
    assert recorded["b"][0].startswith("a worker died while computing pairs 3-5 (") and \
        recorded["b"][0].endswith("; computed them again")
    for clip in clips:
        assert_same_as_run(clip, tmp_path / "out" / clip.stem, tmp_path / "run" / clip.stem)


def test_a_chunk_whose_worker_dies_twice_fails_its_clip_only_and_resume_finishes_it(tmp_path: Path) -> None:
    clips, options = _dying_batch(tmp_path, times=2)
    out = tmp_path / "out"
    with pytest.warns(SemflowWarning, match="computing them again"):
        with Batch(out, options) as batch:
            batch.submit(clips)
            results = {r.name: r for r in batch.results()}
    assert (tmp_path / "killed").read_text() == "2"
    assert results["b"].status == "failed" and results["b"].error.startswith("a worker died while computing pairs 3-5")
    assert results["a"].status == results["c"].status == "ok", (results["a"].error, results["c"].error)
    kept = reopen_store(out / "b", True).recorded()
    assert 4 <= len(kept) < 10  # the finished pairs of the dead worker and the other chunks are kept
    assert not (out / "b" / "flow.mp4").exists()

    options.resume = True
    with Batch(out, options) as batch:
        batch.submit(clips)
        again = {r.name: r for r in batch.results()}
    assert all(r.status == "ok" for r in again.values())
    assert again["a"].computed_pairs == again["c"].computed_pairs == 0  # finished before: nothing redone
    assert 0 < again["b"].computed_pairs <= 10 - len(kept)
    for clip in clips:
        assert_same_as_run(clip, out / clip.stem, tmp_path / "run" / clip.stem)


def test_a_worker_dead_for_good_is_replaced_by_a_new_one(tmp_path: Path) -> None:
    """One worker, killed twice on clip b: Ray restarts it once, then it is dead for good. b fails, and a new
    worker runs c (without it: "no worker left to run it")."""
    clips, options = _dying_batch(tmp_path, times=2)
    options.workers = 1
    with pytest.warns(SemflowWarning, match="computing them again"):
        with Batch(tmp_path / "out", options) as batch:
            first = batch.worker_pids()
            batch.submit(clips)
            results = {r.name: r for r in batch.results()}
            assert len(batch.worker_pids()) == 1 and batch.worker_pids() != first
    assert (tmp_path / "killed").read_text() == "2"
    assert results["b"].status == "failed" and results["b"].error.startswith("a worker died while computing pairs 3-5")
    assert results["a"].status == results["c"].status == "ok", (results["a"].error, results["c"].error)
    assert_same_as_run(clips[2], tmp_path / "out" / "c", tmp_path / "run" / "c")


class RestartsSlowly(DieAt):
    """DieAt, whose worker, restarted by Ray after it died, then takes two minutes to build the method (on a
    cluster that lost a node, the restart waits for good for a CPU the other workers hold)."""

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if os.path.exists(self.marker):
            time.sleep(120)


def test_a_batch_whose_clips_are_done_does_not_wait_for_a_dead_worker_to_come_back(tmp_path: Path) -> None:
    """A cluster probe: a node lost mid-batch, the other worker finished every clip, and the batch never ended:
    it waited for good on the dead worker's restart. It now ends when every clip's result is known."""
    import threading

    clips, options = _dying_batch(tmp_path, times=1)
    options.method = RestartsSlowly(options.method.marker, options.method.frame_sha, 1)
    results: dict = {}

    def run() -> None:
        with pytest.warns(SemflowWarning, match="computing them again"):
            with Batch(tmp_path / "out", options) as batch:
                batch.submit(clips)
                results.update({r.name: r for r in batch.results()})

    thread = threading.Thread(target=run, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(100)
    assert not thread.is_alive(), "the batch waited for the dead worker's restart"
    assert time.monotonic() - started < 90
    assert [results[c.stem].status for c in clips] == ["ok", "ok", "ok"], {n: r.error for n, r in results.items()}


def test_a_clip_submitted_after_a_worker_died_for_good_is_run(tmp_path: Path) -> None:
    """A review: clips submitted while results() ran started workers and waited for every worker, the dead
    one too: "the workers could not build method" ended the batch (or it waited for good on a restart)."""
    clips, options = _dying_batch(tmp_path, times=2)
    options.chunk_pairs = 100  # (b in one chunk: its worker dies twice, b fails)
    results = {}
    with pytest.warns(SemflowWarning, match="computing them again"):
        with Batch(tmp_path / "out", options) as batch:
            batch.submit(clips[1:2])
            for result in batch.results():
                results[result.name] = result
                if result.name == "b":
                    batch.submit([clips[0], clips[2]])
    assert results["b"].status == "failed" and results["a"].status == results["c"].status == "ok", results


class ReadsARelativeFile(FlowMethod):
    """dis-fast, that reads a file named by a relative path when it first computes (as a built semantic
    reads its label set or masks)."""

    name = METHOD

    def __init__(self, path: str) -> None:
        self.inner, self.path = get_method(METHOD), path

    def _estimate(self, img1: np.ndarray, img2: np.ndarray, **kwargs) -> FlowResult:
        Path(self.path).read_text()
        return self.inner.estimate(img1, img2)


def test_a_batch_of_a_built_method_with_its_own_options_resumes(tmp_path: Path) -> None:
    """Given a method built with options other than its defaults, a resumed batch failed every finished clip:
    "cannot resume, the earlier run used other settings" (the driver compared the registry's defaults)."""
    clip = write_video(tmp_path / "a.mp4", 5)
    for resume in (False, True):
        options = BatchOptions(method=get_method(METHOD, sharpen=True), workers=1, resume=resume)
        with Batch(tmp_path / "out", options) as batch:
            batch.submit([clip])
            (result,) = batch.results()
        assert (result.status, result.error, result.computed_pairs) == ("ok", None, 0 if resume else 4)
    settings = json.loads((tmp_path / "out" / "a" / "summary.json").read_text())["settings"]
    assert settings["method_options"]["sharpen"] is True


def test_relative_paths_reach_workers_that_run_in_another_folder(tmp_path: Path, monkeypatch) -> None:
    """A cluster probe: workers started by `ray start` run in the folder it ran in, and read the relative
    inputs and --out as the user typed them from there: another clip of the same name silently, or every clip
    failed. (This module's workers run where pytest started Ray; the batch runs from tmp_path.)"""
    write_video(tmp_path / "a.mp4", 5)
    (tmp_path / "labels.png").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    with Batch("out", BatchOptions(method=METHOD, workers=1)) as batch:
        batch.submit(["a.mp4"])
        (result,) = batch.results()
    assert (result.status, result.error, result.pairs) == ("ok", None, 4)
    assert (tmp_path / "out" / "a" / "flow.mp4").exists()
    options = BatchOptions(method="semantic", method_options={"segmentation": "labels.png", "label_set": "camvid"})
    assert options.method_options == {"segmentation": str(tmp_path / "labels.png"), "label_set": "camvid"}
    (tmp_path / "note.txt").write_text("read by the method")  # a built method's own relative path (a review)
    with Batch("out2", BatchOptions(method=ReadsARelativeFile("note.txt"), workers=1)) as batch:
        batch.submit(["a.mp4"])
        (result,) = batch.results()
    assert (result.status, result.error) == ("ok", None)


def test_batch_cli_reports_each_clip_and_fails_when_one_does(run_cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)  # set by this module's own Ray: a user's shell has none
    write_video(tmp_path / "good.mp4", 5)
    (tmp_path / "bad.mp4").write_bytes(b"junk")
    (tmp_path / "list.txt").write_text("good.mp4\n# a comment\n\nbad.mp4\n")
    result = run_cli("batch", "list.txt", "--out", "out", "--method", METHOD, "--workers", "2", timeout=300)
    assert result.rc == 1 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()  # Ray's notice that its local cluster has token auth on was a line here
    assert len(lines) == 1 and lines[0].startswith("semflow: error: 1 of 2 clips failed"), result.stderr
    assert "good: ok, 4 pairs" in result.stdout and "bad: failed: " in result.stdout
    # the summary line says the time Ray took to start beside the batch's (a probe: 73.0 s said, 81.2 s taken)
    assert re.search(r"^1 of 2 clips ok, 4 pairs computed in [\d.]+ s \([\d.]+ pairs/s, after [\d.]+ s starting Ray\)",
                     result.stdout, re.M), result.stdout
    assert lines[0].endswith("the same command with --resume redoes only what is missing")
    assert (tmp_path / "out" / "good" / "flow.mp4").exists()
    assert json.loads((tmp_path / "out" / "batch.json").read_text())["workers"] == 1  # one clip, one chunk: was 2


def test_expand_inputs(tmp_path: Path) -> None:
    write_folder(tmp_path / "frames", 2)
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("x.mp4", "y.avi", "notes.md"):
        (videos / name).write_bytes(b"")
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "x.mp4").write_bytes(b"")
    (tmp_path / "list.csv").write_text("input,name\nvideos/x.mp4,first\nframes\n")
    with pytest.warns(SemflowWarning) as said:  # (once named by the user and once not: either order)
        found = expand_inputs([tmp_path / "frames", videos, str(tmp_path / "more" / "*.mp4"), tmp_path / "list.csv"])
    assert [str(w.message).split("/")[-1] for w in said] == ["x.mp4: given twice (as x and first): it is computed twice",
                                                             "frames: given twice (as frames and frames-2): it is computed twice"]
    assert [(p.path, p.name) for p in found] == [
        (tmp_path / "frames", "frames"), (videos / "x.mp4", "x"), (videos / "y.avi", "y"),
        (tmp_path / "more" / "x.mp4", "x-2"), (tmp_path / "videos" / "x.mp4", "first"),
        (tmp_path / "frames", "frames-2"),
    ]
    with pytest.raises(InputError, match="no file matches"):
        expand_inputs([str(tmp_path / "*.mkv")])
    # one path alone is one input (a str was taken as its characters: clips "i", "n", "/", ... the root)
    assert expand_inputs(str(tmp_path / "frames")) == expand_inputs(tmp_path / "frames") == found[:1]


def test_no_input_of_a_batch_is_skipped_without_a_word(tmp_path: Path) -> None:
    """A link to nothing in a folder of videos was left out (in no line, no batch.json entry); videos
    beside images were ignored; a folder of folders of videos failed as "folder holds no images"."""
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "a.mp4").write_bytes(b"")
    (videos / "gone.mp4").symlink_to(tmp_path / "nowhere.mp4")
    assert [(c.path, c.name) for c in expand_inputs([videos])] == [(videos / "a.mp4", "a"), (videos / "gone.mp4", "gone")]
    write_folder(tmp_path / "frames", 2)
    (tmp_path / "frames" / "take2.mp4").write_bytes(b"")
    with pytest.warns(SemflowWarning, match=r"frames: a folder of frames, read as one clip; 1 video file in it"
                                            r" \(take2.mp4\) is not read: name them to add them$"):
        assert [c.name for c in expand_inputs([tmp_path / "frames"])] == ["frames"]
    (tmp_path / "tree" / "d1").mkdir(parents=True)
    (tmp_path / "tree" / "d1" / "x.mp4").write_bytes(b"")
    with pytest.raises(InputError, match=r"tree: holds no images or videos at its top level; a batch does not look"
                                         r" into its folders: give '.*tree/\*\*/\*.mp4' \(in quotes\)"):
        expand_inputs([tmp_path / "tree"])
    # a glob's dangling link is a clip, as in a folder (its run says what it is)
    assert [c.name for c in expand_inputs([str(videos / "*.mp4")])] == ["a", "gone"]
    # two links to the same nothing are two clips, not one given twice; a folder of frame folders is pointed at 'DIR/*'
    (videos / "gone2.mp4").symlink_to(tmp_path / "nowhere.mp4")
    assert [c.name for c in expand_inputs([videos])] == ["a", "gone", "gone2"]
    write_folder(tmp_path / "seqs" / "s1", 2)
    with pytest.raises(InputError, match=r"seqs: holds no images or videos at its top level; a batch does not look into"
                                         r" its folders: give '.*seqs/\*' \(in quotes\) for each folder of frames in it$"):
        expand_inputs([tmp_path / "seqs"])


def test_a_manifest_cannot_name_a_clip_out_of_the_batch_folder(tmp_path: Path) -> None:
    # Named ".." a clip's outputs went to the folder above --out (and a fresh batch cleared what its
    # previous run listed there); "." mixed them with the batch's; "batch.json" clashed with its file;
    # ".._.._up" and ".x" were hidden folders, and a tab went into a folder's name.
    for name in ("x.mp4", "y.mp4", "z.mp4", "w.mp4", "v.mp4", "u.mp4", "t.mp4"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "list.csv").write_text('x.mp4,..\ny.mp4,.\nz.mp4,batch.json\nw.mp4,../../up\nv.mp4,.x\n'
                                       'u.mp4,a/b\tc\nt.mp4,/./\n')
    names = [clip.name for clip in expand_inputs([tmp_path / "list.csv"])]
    assert names == ["clip", "clip-2", "batch.json-2", "up", "x", "a_b_c", "clip-3"]


def test_clip_names_that_differ_only_in_case_get_folders_of_their_own(tmp_path: Path) -> None:
    """A.mp4 and a.mp4 got the folders A and a: one folder where the file system ignores case (macOS,
    Windows), the second clip's outputs over the first's; BATCH.JSON clashed with batch.json there."""
    from semflow.batch import Batch, BatchOptions

    for name in ("A.mp4", "a.mp4", "BATCH.JSON.mp4", "B.mp4", "b.mp4"):
        (tmp_path / name).write_bytes(b"")
    named = expand_inputs([tmp_path / "A.mp4", tmp_path / "a.mp4", tmp_path / "BATCH.JSON.mp4"])
    assert [clip.name for clip in named] == ["A", "a-2", "BATCH.JSON-2"]
    batch = Batch(tmp_path / "out", BatchOptions(method="dis-fast", progress=False))
    batch.submit([tmp_path / "B.mp4"])
    assert [clip.name for clip in batch.submit([tmp_path / "b.mp4"])] == ["b-2"]  # (submitted later: as well)


def test_names_that_are_not_utf8(tmp_path: Path, monkeypatch) -> None:
    """On the command line they were a UnicodeEncodeError traceback from ray.init (Ray records the command
    line as UTF-8): now one line saying so. In a manifest they were "cannot read the manifest": now read
    as the file system's names."""
    monkeypatch.setattr(sys, "argv", ["semflow", "batch", os.fsdecode(b"bad\xff"), "--out", "o"])
    with pytest.raises(SemflowError, match="bad\udcff: Ray cannot start from a command line holding a name that"):
        with ray_starting():
            pytest.fail("Ray would start")
    clip = tmp_path / os.fsdecode(b"bad\xff.mp4")
    clip.write_bytes(b"")
    (tmp_path / "list.txt").write_bytes(b"bad\xff.mp4\n")
    assert [c.path for c in expand_inputs([tmp_path / "list.txt"])] == [clip]


def test_a_batch_folder_that_is_a_file_fails_before_ray_starts(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")  # was "file: File exists" after the clips had failed one by one
    with pytest.raises(OutputError, match="file: not a folder$"):
        Batch(tmp_path / "file", BatchOptions(method=METHOD, workers=1)).start()


def test_plan_chunks() -> None:
    assert plan_chunks(7, 3) == [Chunk(0, 3), Chunk(3, 6), Chunk(6, None)]
    assert plan_chunks(6, 3) == [Chunk(0, 3), Chunk(3, None)]
    assert plan_chunks(1, 50) == [Chunk(0, None)]


def test_workers_that_cannot_build_the_method_stop_the_batch_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(SemflowError, match="could not build method 'dis-fast': method 'dis-fast' takes no option 'bogus'"):
        with Batch(tmp_path / "out", BatchOptions(method=METHOD, method_options={"bogus": 1}, workers=2)):
            pass


def test_an_address_nobody_answers_at_fails_in_one_line_before_ray() -> None:
    # ray.init retried such an address for good, printing Ray's own log lines
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        with pytest.raises(SemflowError, match=rf"^cannot reach a Ray cluster at {address} \(connection refused\);"):
            check_address(address)
    for address in ("garbage:99999", "host:0", "nonsense", ":6379", "host:", "host:6379x", "a/b:6379"):
        with pytest.raises(InputError, match="expected HOST:PORT"):
            check_address(address)
    check_address("auto")  # left to Ray


def test_an_address_that_answers_but_is_no_ray_fails_in_one_line_and_a_ray_passes() -> None:
    """A port that accepts connections but is no Ray (a web server) passed the check, and ray.init then
    waited on it for good, printing Ray's log lines every 5 s. The check now asks for a gRPC answer."""
    import http.server
    import threading

    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        address = f"127.0.0.1:{server.server_address[1]}"
        started = time.monotonic()
        with pytest.raises(SemflowError, match=rf"^{address} answers, but not as a Ray cluster \(no gRPC reply"):
            check_address(address)
        assert time.monotonic() - started < 10
    finally:
        server.shutdown()
        server.server_close()
    check_address(ray.get_runtime_context().gcs_address)  # this module's own Ray answers


class DiesBuilding(FlowMethod):
    """dis-fast, whose worker processes die (SIGKILL, as the OOM killer would) while building it: unpickled in
    any process but the one that made it."""

    name = METHOD

    def __init__(self) -> None:
        self.inner, self.maker = get_method(METHOD), os.getpid()

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if os.getpid() != self.maker:
            os.kill(os.getpid(), signal.SIGKILL)

    def _estimate(self, img1: np.ndarray, img2: np.ndarray, **kwargs) -> FlowResult:
        return self.inner.estimate(img1, img2)


def test_workers_that_die_while_building_the_method_stop_the_batch_in_one_line(tmp_path: Path) -> None:
    """Ray restarted such a worker for good (max_restarts=-1): the batch waited on it for ever, Ray printing a
    line on each death. It is now restarted once, then the batch stops with one line."""
    import threading

    raised: list[BaseException] = []

    def start() -> None:
        try:
            with Batch(tmp_path / "out", BatchOptions(method=DiesBuilding(), workers=1)):
                pass
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=start, daemon=True)
    thread.start()
    thread.join(120)
    assert not thread.is_alive(), "the batch waited for good on a worker that dies while it starts"
    assert len(raised) == 1 and isinstance(raised[0], SemflowError), raised
    assert str(raised[0]) == ("the workers could not build method 'dis-fast': a worker process died while building"
                              " it (2 times: killed for memory, or a crash in the method's own code)")


def test_a_batch_without_address_starts_its_own_ray_whatever_ray_address_says(cli_env, tmp_path: Path) -> None:
    """With RAY_ADDRESS set (a Ray job's shell), or a cluster `ray start` left behind, ray.init joined it and
    refused the CPU count: a ValueError traceback. Without --address a batch starts a Ray of its own."""
    script = f"""
from semflow.batch import Batch, BatchOptions
batch = Batch({str(tmp_path / "out")!r}, BatchOptions(method="dis-fast", workers=1))
batch.start()
print("started")
batch.close()
"""
    env = {**cli_env, "RAY_ADDRESS": "127.0.0.1:1"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=180)
    assert proc.stdout.strip() == "started", proc.stdout + proc.stderr


def test_no_more_workers_than_tasks_to_run_at_once() -> None:
    # 24 workers were started for 2 clips of one chunk each (each worker holds a built method)
    assert workers_to_start(24, [1, 1]) == 2
    assert workers_to_start(24, [3, 0]) == 4  # a clip with no chunk left still has its drawing to do
    assert workers_to_start(2, [5, 1]) == 2
    assert workers_to_start(8, []) == 1
    with pytest.raises(InputError, match=r"workers must be a whole number from 1 to 1024, got 10{21}$"):
        BatchOptions(method=METHOD, workers=10 ** 21)  # was Ray's 18-frame ValueError


def test_workers_share_out_the_clusters_gpus_for_a_method_on_one() -> None:
    assert worker_gpus("cuda", 2, 4) == 0.5
    assert worker_gpus("cuda", 2, 3) == 0.5  # (0.6666 a worker: Ray could place two, never the third)
    assert worker_gpus("cuda", 4, 2) == 1.0  # one GPU a worker at most
    assert worker_gpus("auto", 1, 3) == 0.3333  # Ray counts GPUs in 1/10000: three such shares fit in one
    assert worker_gpus(" CUDA ", 1, 1) == 1.0
    assert worker_gpus("auto", 0, 3) == 0.0 and worker_gpus("cpu", 8, 2) == 0.0 and worker_gpus(None, 8, 2) == 0.0
    with pytest.raises(InputError, match=r"^device 'cuda' asked for, but the Ray cluster has no GPU; use --device"):
        worker_gpus("cuda", 0, 2)
    with pytest.raises(InputError, match=r"^device 'cuda:1': in a batch Ray gives each worker its GPU; use --device cuda$"):
        worker_gpus("cuda:1", 2, 2)
    with pytest.raises(InputError, match=r"^device 'cuda:0': in a batch Ray gives each worker its GPU"):
        BatchOptions(method=METHOD, method_options={"device": "cuda:0"})  # before Ray starts


def test_a_batch_reserves_a_gpu_share_for_each_worker_of_a_method_on_one(tmp_path: Path) -> None:
    """Its workers reserved no GPU: Ray put every worker on the first GPU of a machine (or on one without
    any) and, in older releases, hid every GPU from them. (``auto``: this machine's driver may have no GPU;
    the module's Ray declares one.)"""
    clip = write_video(tmp_path / "clip.mp4", 3)
    # (discrete runs torch code; dis-fast is OpenCV's: no GPU for it whatever the device)
    for method, device, share in (("discrete", "auto", 0.5), ("discrete", "cpu", 0.0), (METHOD, "auto", 0.0)):
        options = BatchOptions(method=method, method_options={"device": device}, workers=2)
        with Batch(tmp_path / f"{method}-{device}", options) as batch:
            assert batch.worker_pids() and gpus_free(1 - share) == pytest.approx(1 - share)
            if method == METHOD:
                batch.submit([clip])
                assert [r.status for r in batch.results()] == ["ok"]
    built = get_method("discrete", device="auto")
    with Batch(tmp_path / "built", BatchOptions(method=built, workers=2)):
        assert gpus_free(0.5) == pytest.approx(0.5)


def gpus_free(expected: float, seconds: float = 10.0) -> float:
    """The GPUs Ray has free, once they read ``expected`` or ``seconds`` have passed (Ray's count lags)."""
    end = time.monotonic() + seconds
    while (free := ray.available_resources().get("GPU", 0.0)) != pytest.approx(expected) and time.monotonic() < end:
        time.sleep(0.1)
    return free


def test_an_interrupted_batch_names_batch(monkeypatch, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from semflow.cli import main

    def interrupted(self: Batch) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Batch, "start", interrupted)
    result = CliRunner().invoke(main, ["batch", "x.mp4", "--out", str(tmp_path / "out"), "--method", METHOD])
    assert result.exit_code == 130
    assert result.stderr == "semflow: interrupted (what it finished is kept: the same command with --resume continues)\n"


def test_sigterm_after_ray_starts_unwinds_the_batch(cli_env, tmp_path: Path) -> None:
    """ray.init installed its own SIGTERM handler over the command's: `kill` of a running batch printed
    Ray's crash dump and exited 1, without the one line or the clean-up. (A process of its own: the
    module's Ray is already up, and ray.init would not run here.)"""
    script = f"""
import os, signal
from semflow import cli_group as cli
from semflow.batch import Batch, BatchOptions
signal.signal(signal.SIGTERM, cli.terminated_by_signal)
batch = Batch({str(tmp_path / "out")!r}, BatchOptions(method="dis-fast", workers=1))
try:
    batch.start()
    os.kill(os.getpid(), signal.SIGTERM)
    signal.sigtimedwait([], 5)  # (not reached: the handler raises when os.kill returns)
except cli.Terminated:
    print("unwound")
finally:
    batch.close()
"""
    proc = subprocess.run([sys.executable, "-c", script], env=cli_env, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "unwound", proc.stdout + proc.stderr
    assert "SIGTERM received" not in proc.stderr


def test_ray_failing_to_join_an_address_is_one_line_naming_token_authentication(monkeypatch) -> None:
    """A cluster `ray start` made has token authentication on: --address HOST:PORT without RAY_AUTH_MODE=token
    failed after 20 s with Ray's generic "Failed to connect" (and 20 lines of its log), nothing said why."""
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    with pytest.raises(SemflowError, match=r"^could not join the Ray cluster at 10\.0\.0\.9:6379: Failed to connect"
                                           r" to Ray cluster at 10\.0\.0\.9:6379; a cluster with token authentication"
                                           r" \(Ray's default\) needs RAY_AUTH_MODE=token here too"):
        with ray_starting("10.0.0.9:6379"):
            raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.9:6379")
    # (auto finds the token itself; ray:// fails for reasons of its own, ray[client] missing: a cluster probe)
    for address, said in (("auto", "Could not find any running Ray instance."),
                          ("ray://127.0.0.1:10001", "Ray Client requires pip package `ray[client]`.")):
        with pytest.raises(SemflowError) as raised:
            with ray_starting(address):
                raise ConnectionError(said)
        assert str(raised.value) == f"could not join the Ray cluster at {address}: {said}"
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    with pytest.raises(SemflowError, match=r"^could not start Ray on this machine: When connecting to an existing"):
        with ray_starting():
            raise ValueError("When connecting to an existing cluster, num_cpus and num_gpus must not be provided.")


def test_the_clips_bar_counts_clips_per_second() -> None:
    """The clips bar's rate read "9.6 pairs/s": it was clips per second."""
    from types import SimpleNamespace

    from semflow.batch.progress import _Rate

    assert str(_Rate().render(SimpleNamespace(speed=9.6, fields={"unit": "clips"}))) == "9.6 clips/s"
    assert str(_Rate().render(SimpleNamespace(speed=18.7, fields={"unit": "pairs"}))) == "18.7 pairs/s"


def test_a_utf8_name_under_an_ascii_locale_is_told_apart(tmp_path: Path) -> None:
    """Under an ASCII locale (PYTHONUTF8=0 LC_ALL=C) Python holds a UTF-8 name's bytes as surrogates and
    Ray cannot record the command line: the refusal said the name "is not UTF-8" (it is) and to rename
    it; it now names the locale and how to change it."""
    import subprocess

    code = ("import sys; from semflow.batch.cluster import ray_starting; from semflow.errors import SemflowError\n"
            "try:\n    ray_starting().__enter__()\nexcept SemflowError as exc:\n    print(exc)")
    env = {**os.environ, "PYTHONUTF8": "0", "LC_ALL": "C", "LANG": "C", "PYTHONCOERCECLOCALE": "0"}
    done = subprocess.run([sys.executable, "-c", code, "rué.mp4".encode()], env=env, capture_output=True,
                          text=True, errors="replace")
    assert done.returncode == 0, done.stderr[-500:]
    assert "not ASCII under this ASCII locale; set PYTHONUTF8=1" in done.stdout


def test_ray_that_cannot_write_its_files_says_where() -> None:
    """With HOME not writable (HOME=/nonexistent, as service accounts have) Ray's start failed with
    "semflow: error: /nonexistent: Permission denied", naming neither Ray nor HOME."""
    with pytest.raises(SemflowError, match=r"^could not start Ray on this machine: /nonexistent: Permission denied; Ray"
                                           r" writes its files under HOME \(~/.ray\) and TMPDIR: both must be writable$"):
        with ray_starting():
            raise PermissionError(13, "Permission denied", "/nonexistent")


def test_a_clips_file_error_reads_as_runs_does() -> None:
    """A clip whose output could not be written failed with "PermissionError: [Errno 13] Permission denied:
    'out/clip/flo/000000.flo'"; `semflow run` says "out/clip/flo/000000.flo: Permission denied"."""
    from semflow.batch.workers import one_line

    said = one_line(PermissionError(13, "Permission denied", "out/clip/flo/000000.flo"))
    assert said == "out/clip/flo/000000.flo: Permission denied"
    assert one_line(ValueError("bad\nvalue")) == "ValueError: bad"


def test_ray_timing_out_at_its_start_is_one_line_naming_the_limits_in_force(monkeypatch) -> None:
    """Under `ulimit -f 64` Ray's raylet and GCS could not start, and ray.init raised a bare Exception ("The
    current node timed out during startup"): a traceback. Now one line, with the limits Ray's processes meet."""
    from semflow.batch import cluster

    monkeypatch.setattr(cluster, "limits_in_force", lambda *names: "ulimit -f 64 KiB" if "RLIMIT_FSIZE" in names else "")
    with pytest.raises(SemflowError) as raised:
        with ray_starting():
            raise Exception("The current node timed out during startup. This could happen because some of the "
                            "raylet failed to startup or the GCS has become overloaded.")
    assert str(raised.value) == ("could not start Ray on this machine: The current node timed out during startup. This"
                                 " could happen because some of the raylet failed to startup or the GCS has become"
                                 " overloaded.; Ray's processes are bound by the limits in force too: ulimit -f 64 KiB")
