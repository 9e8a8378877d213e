"""Output folders and files (issue 14): a run locks its --out, owns what it wrote and nothing else,
never writes or deletes through a link it did not create, and every command checks all its output
locations before it starts working.

(semflow.io.outputs is imported inside the tests that use it, so that the CLI-level tests also run,
and fail for the behaviour they check, against a semflow without it.)"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from semflow.io.images import write_image
from semflow.pipeline import WORK_DIR, RunOptions, run_video
from semflow.synthetic import write_dataset

RUN = ("--method", "dis-ultrafast")


# --- the run folder ------------------------------------------------------------------------------


def test_a_second_run_into_a_locked_folder_stops_with_one_line(cli_fails, make_frames, tmp_path: Path) -> None:
    """Two runs into one --out used to corrupt each other silently."""
    from semflow.io.outputs import OutputFolder

    frames = make_frames(3)
    (tmp_path / "out").mkdir()
    before = sorted(os.listdir(tmp_path / "out"))
    with OutputFolder(tmp_path / "out", fresh=True, work=WORK_DIR):  # another run holds it
        cli_fails("run", frames, "--out", "out", *RUN, match="another semflow command is writing")
        assert sorted(os.listdir(tmp_path / "out")) == [WORK_DIR]  # only the holder's work folder
    assert before == []


def test_the_lock_is_released_when_the_run_ends(make_frames, tmp_path: Path) -> None:
    from semflow.errors import OutputError
    from semflow.io.outputs import OutputFolder

    frames = make_frames(3)
    run_video(frames, tmp_path / "out", RunOptions(method="dis-ultrafast"))
    with OutputFolder(tmp_path / "out", fresh=False, work=WORK_DIR):
        with pytest.raises(OutputError, match="another semflow command"):
            OutputFolder(tmp_path / "out", fresh=False, work=WORK_DIR).__enter__()
    run_video(frames, tmp_path / "out", RunOptions(method="dis-ultrafast"))  # free again


def test_an_interrupted_fresh_run_never_leaves_the_old_outputs_beside_new_ones(run_cli, make_frames,
                                                                                tmp_path: Path) -> None:
    """A fresh run into a finished folder that stopped half-way left the old summary.json and mp4s."""
    frames = make_frames(6)
    assert run_cli("run", frames, "--out", "out", *RUN).rc == 0
    out = tmp_path / "out"
    assert (out / "summary.json").exists() and (out / "flow.mp4").exists() and (out / "plot.png").exists()
    (frames / "0004.png").write_bytes(b"corrupt")  # the next run stops at frame 4
    failed = run_cli("run", frames, "--out", "out", "--method", "dis-medium", "--save-flo")
    assert failed.rc == 1
    for name in ("summary.json", "flow.mp4", "panel.mp4", "plot.png"):  # plot.png stayed until 2026-12-04
        assert not (out / name).exists(), name
    assert sorted(p.name for p in (out / "flo").iterdir()) == ["000000.flo", "000001.flo", "000002.flo"]


def test_a_fresh_run_keeps_the_users_own_files(run_cli, make_frames, tmp_path: Path) -> None:
    """A fresh run deleted the user's own flo/000001.flo (a name it would use) even without --save-flo."""
    frames = make_frames(4)
    out = tmp_path / "out"
    (out / "flo").mkdir(parents=True)
    (out / "flo" / "000001.flo").write_bytes(b"the user's")
    (out / "notes.txt").write_text("mine")
    assert run_cli("run", frames, "--out", "out", *RUN).rc == 0
    assert (out / "flo" / "000001.flo").read_bytes() == b"the user's"
    assert (out / "notes.txt").read_text() == "mine"
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["outputs"]["written"]) == ["flow.mp4", "panel.mp4", "plot.png", "summary.json"]


def test_a_manifest_never_deletes_outside_what_run_writes(make_frames, tmp_path: Path) -> None:
    """The manifest lives in a folder the user controls: only run's own output names can be deleted."""
    frames = make_frames(3)
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "precious.txt").write_text("keep")
    (out / "notes.txt").write_text("keep")
    (out / "summary.json").write_text(json.dumps({"outputs": {"written": ["../precious.txt", "notes.txt",
                                                                          "/etc/hostname"]}}))
    run_video(frames, out, RunOptions(method="dis-ultrafast"))
    assert (tmp_path / "precious.txt").read_text() == "keep" and (out / "notes.txt").read_text() == "keep"


def test_temporary_files_a_killed_run_left_are_removed_by_the_next(tmp_path: Path) -> None:
    """A run killed outright (SIGKILL) left .flow.semflow-XXXXXXXX.partial.mp4 (as large as the video) and the
    like beside its outputs for good: the next run there removes them, and nothing else (a user's hidden files
    of that shape without the mark, .flow.mybackup.mp4, were removed too)."""
    from semflow.io.outputs import OutputFolder
    from semflow.runstore import RUN_OUTPUTS

    out = tmp_path / "out"
    (out / "flo").mkdir(parents=True)
    left = [".flow.semflow-q6b84a80.partial.mp4", ".panel.semflow-s00_agow.partial.mp4", ".plot.semflow-ubu4ose6.png",
            ".summary.semflow-1_nn6qjg.json", "flo/.000003.semflow-hr8nniuv.flo"]
    kept = [".notes.semflow-q6b84a80.txt", ".flow.short.mp4", "flo/.mine.semflow-abcdefgh.flo",
            ".flow.semflow-q6b84a80.partial.mp4.bak", ".flow.mybackup.mp4", ".summary.original.json",
            ".plot.20241201.png", "flo/.000001.keepthis.flo", ".flow.q6b84a80.partial.mp4"]
    for name in left + kept:
        (out / name).write_bytes(b"x" * 10)
    from semflow.io.atomic import temp_path_beside

    made = [temp_path_beside(out / "flow.mp4", ".partial.mp4"), temp_path_beside(out / "plot.png"),
            temp_path_beside(out / "flo" / "000002.flo")]  # the names the writers give
    (tmp_path / "victim.mp4").write_bytes(b"v")
    (out / ".panel.semflow-l1nk0000.partial.mp4").symlink_to(tmp_path / "victim.mp4")
    with OutputFolder(out, fresh=False, work=WORK_DIR, reserved=RUN_OUTPUTS):
        pass
    assert not any(os.path.lexists(out / name) for name in left) and not any(p.exists() for p in made)
    assert all((out / name).is_file() for name in kept)
    assert (out / ".panel.semflow-l1nk0000.partial.mp4").is_symlink() and (tmp_path / "victim.mp4").read_bytes() == b"v"


@pytest.mark.parametrize("name", [WORK_DIR, "flo"])
def test_a_linked_work_or_flo_folder_is_refused(cli_fails, make_frames, tmp_path: Path, name: str) -> None:
    """A symlinked flo/ had files deleted and written in its target; a symlinked work folder got state."""
    frames = make_frames(3)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "000000.flo").write_bytes(b"someone else's")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / name).symlink_to(elsewhere, target_is_directory=True)
    cli_fails("run", frames, "--out", "out", "--save-flo", *RUN, match="symbolic link")
    assert sorted(os.listdir(elsewhere)) == ["000000.flo"]
    assert (elsewhere / "000000.flo").read_bytes() == b"someone else's"


@pytest.mark.parametrize("name", ["flow.mp4", "panel.mp4", "plot.png", "summary.json"])
def test_a_linked_named_output_is_refused_before_any_work(cli_fails, make_frames, tmp_path: Path, name: str) -> None:
    """out/flow.mp4 a link to another file: refused when the run was done, leaving its work folder
    behind; now refused on entry, leaving nothing (cli_fails checks) and the target untouched."""
    frames = make_frames(3)
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / name).symlink_to(victim)
    cli_fails("run", frames, "--out", "out", *RUN, match=f"{name}: is a symbolic link")
    assert victim.read_text() == "untouched" and (tmp_path / "out" / name).is_symlink()


@pytest.mark.parametrize("partial", [".flow.partial.mp4", ".panel.partial.mp4"])
def test_a_planted_partial_video_link_is_not_written_through(run_cli, make_frames, tmp_path: Path,
                                                              partial: str) -> None:
    """With out/.flow.partial.mp4 a link to another file, run overwrote that file and left flow.mp4 a link."""
    frames = make_frames(3)
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / partial).symlink_to(victim)
    result = run_cli("run", frames, "--out", "out", *RUN)
    assert result.rc == 0, result.stderr
    assert victim.read_text() == "untouched"
    for video in ("flow.mp4", "panel.mp4"):
        assert not (tmp_path / "out" / video).is_symlink() and (tmp_path / "out" / video).stat().st_size > 0


# --- every command checks its outputs first ---------------------------------------------------------


@pytest.mark.parametrize("command", [
    ["flow", "a.png", "b.png", "-o", "a.png", *RUN],  # a KITTI flow PNG over the first frame
    ["flow", "a.png", "b.png", "-o", "f.flo", "--viz", "b.png", *RUN],
    ["visualize", "k.png", "-o", "k.png"],
    # --explain writes baseline.png (the baseline's flow drawn): here the baseline flow given
    ["flow", "a.png", "b.png", "-o", "f.flo", "--method", "semantic", "--baseline-flow", "baseline.png", "--explain", "."],
    ["segment", "frames", "--out", "frames"],  # each label map over its image
    ["segment", "a.png", "--out", "."],
    ["segment", "overlay.mp4", "--out", ".", "--overlay"],  # the video's overlay over the video
    ["run", "frames", "--out", "frames", *RUN],  # plot.png would join the frames
    ["run", "frames", "--out", "./frames/../frames", *RUN],
    ["run", "frames", "--out", "prev", "--baseline-flows", "prev/flo"],  # a fresh run clears prev/flo first
])
def test_no_command_writes_over_its_inputs(cli_fails, pair, make_frames, make_video, tmp_path: Path,
                                           command: list[str]) -> None:
    from semflow.io.flow import write_flow

    make_frames(3)
    write_flow(tmp_path / "k.png", np.zeros((8, 8, 2), np.float32))
    write_flow(tmp_path / "baseline.png", np.zeros((48, 64, 2), np.float32))
    make_video(3, name="overlay.mp4")
    for i in range(2):  # as `run --out prev --save-flo` leaves them
        write_flow(tmp_path / "prev" / "flo" / f"{i:06d}.flo", np.zeros((48, 64, 2), np.float32))
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    cli_fails(*command, match="is also an input")
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_flow_fails_before_writing_when_viz_or_explain_cannot_be_written(cli_fails, pair, tmp_path: Path) -> None:
    """`flow -o ok.flo --viz ro/v.png` failed but left ok.flo; --explain into an unwritable folder too."""
    (tmp_path / "file").write_text("a file, not a folder")
    cli_fails("flow", *pair, "-o", "ok.flo", "--viz", "file/v.png", match="not a folder")
    cli_fails("flow", *pair, "-o", "ok.flo", "--explain", "file/explain", match="not a folder")
    cli_fails("flow", *pair, "-o", "ok.flo", "--explain", "file", match="not a folder")
    assert not (tmp_path / "ok.flo").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_flow_fails_before_writing_into_a_read_only_folder(cli_fails, pair, tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        cli_fails("flow", *pair, "-o", "ok.flo", "--viz", "ro/v.png", match="not writable")
        cli_fails("flow", *pair, "-o", "ok.flo", "--explain", "ro/x", match="not writable")
    finally:
        ro.chmod(0o755)


def test_compare_checks_json_before_running_the_benchmark(run_cli, tmp_path: Path) -> None:
    """`compare --json ro/c.json` ran the whole benchmark before failing on the write."""
    root = tmp_path / "synthetic"
    write_dataset(root, count=1, height=48, width=64, seed=1)
    (tmp_path / "file").write_text("x")
    result = run_cli("compare", root, "--dataset", "synthetic", "--methods", "dis-ultrafast", "--json", "file/c.json")
    assert result.rc == 1 and result.stdout == ""  # no table: nothing was run
    assert result.stderr.splitlines() == [f"semflow: error: file/c.json: {tmp_path / 'file'} is not a folder"]
    result = run_cli("compare", root, "--dataset", "synthetic", "--methods", "dis-ultrafast", "--out", "file")
    assert result.rc == 1 and result.stdout == "" and "not a folder" in result.stderr


def test_run_and_segment_check_their_folder_first(cli_fails, make_frames, tmp_path: Path) -> None:
    frames = make_frames(3)
    (tmp_path / "file").write_text("x")
    cli_fails("run", frames, "--out", "file", *RUN, match="not a folder")
    cli_fails("run", frames, "--out", "file/out", *RUN, match="not a folder")
    cli_fails("segment", frames / "0000.png", "--out", "file/seg", match="not a folder")


def test_check_outputs_names_the_problem(tmp_path: Path, monkeypatch) -> None:
    from semflow.errors import OutputError
    from semflow.io.outputs import check_outputs

    (tmp_path / "dir").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "missing")
    check_outputs(files=[tmp_path / "new" / "deeper" / "f.png", None], folders=[tmp_path / "a" / "b", None])
    with pytest.raises(OutputError, match="a folder, where a file is to be written"):
        check_outputs(files=[tmp_path / "dir"])
    with pytest.raises(OutputError, match="link to nothing"):
        check_outputs(files=[tmp_path / "link" / "f.png"])
    with pytest.raises(OutputError, match=r"link: a link to nothing$"):  # (it said the path twice)
        check_outputs(folders=[tmp_path / "link"])
    monkeypatch.chdir(tmp_path)  # (as typed: a relative --out)
    with pytest.raises(OutputError, match=r"^link: a link to nothing$"):
        check_outputs(folders=[Path("link")])
    assert sorted(os.listdir(tmp_path)) == ["dir", "link"]  # nothing created


def test_a_device_or_pipe_is_never_replaced_by_an_output(tmp_path: Path) -> None:
    """`compare --json /dev/stdout` (a link to a terminal or pipe), a FIFO or /dev/null was renamed over by a
    regular file (as root, that replaced the system's /dev/stdout): refused first, and by the writer too."""
    from semflow.errors import OutputError
    from semflow.io.atomic import write_text_atomic
    from semflow.io.outputs import check_outputs

    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "to-fifo.json").symlink_to(tmp_path / "fifo")
    for name in ("fifo", "to-fifo.json"):
        with pytest.raises(OutputError, match="is a device, pipe or socket, not a file"):
            check_outputs(files=[tmp_path / name])
        with pytest.raises(OSError, match="is a device, pipe or socket"):
            write_text_atomic(tmp_path / name, "{}")
    with pytest.raises(OutputError, match="/dev/null: is a device"):
        check_outputs(files=["/dev/null"])
    assert (tmp_path / "fifo").is_fifo() and (tmp_path / "to-fifo.json").is_symlink()
    assert sorted(os.listdir(tmp_path)) == ["fifo", "to-fifo.json"]  # no temporary file left


def test_a_link_to_a_stream_is_never_replaced_by_an_output(tmp_path: Path) -> None:
    """`--json /dev/stdout` with stdout sent to a FILE passed the device test (the link leads to a regular
    file) and the link itself was replaced by the JSON (as root: the system's /dev/stdout)."""
    from semflow.errors import OutputError
    from semflow.io.atomic import stream_link, write_text_atomic
    from semflow.io.outputs import check_outputs

    with open(tmp_path / "redirected.txt", "w") as out:
        fd = out.fileno()
        (tmp_path / "mystdout").symlink_to(f"/proc/self/fd/{fd}")  # what /dev/stdout is, with stdout a file
        (tmp_path / "chain").symlink_to(tmp_path / "mystdout")
        for name in ("mystdout", "chain"):
            with pytest.raises(OutputError, match=f"{name}: is /proc/self/fd/{fd} \\(a stream or device\\)"):
                check_outputs(files=[tmp_path / name])
            with pytest.raises(OSError, match="a stream or device"):
                write_text_atomic(tmp_path / name, "{}")
    assert (tmp_path / "mystdout").is_symlink() and (tmp_path / "chain").is_symlink()
    assert stream_link("/dev/shm/x.flo") is None and stream_link(tmp_path / "f.flo") is None  # ordinary names


def test_named_outputs_are_replaced_in_every_command(run_cli, pair, tmp_path: Path) -> None:
    """The documented rule: a file a command is asked to write is replaced (atomically), in every command."""
    for name in ("f.flo", "v.png"):
        (tmp_path / name).write_bytes(b"old")
    assert run_cli("flow", *pair, "-o", "f.flo", "--method", "dis-ultrafast").rc == 0
    assert run_cli("visualize", "f.flo", "-o", "v.png").rc == 0
    assert (tmp_path / "f.flo").read_bytes()[:4] != b"old" and (tmp_path / "v.png").read_bytes()[:4] != b"old"


# --- frames too large for the memory available --------------------------------------------------------


def test_semantic_on_8000x6000_stops_before_starting(cli_fails, tmp_path: Path, monkeypatch) -> None:
    """An 8000x6000 pair died in semantic with a torch/numpy allocation traceback; now one line, before
    any work, saying what it needs (the budget is fixed here so that the test means the same anywhere)."""
    import re

    import numpy as np

    from semflow.memory import memory_needed_mb

    monkeypatch.setenv("SEMFLOW_MEMORY_MB", "16000")
    frame = np.zeros((6000, 8000, 3), np.uint8)
    frame[::7, ::5] = 200
    write_image(tmp_path / "a.png", frame)
    write_image(tmp_path / "b.png", frame)
    line = cli_fails("flow", "a.png", "b.png", "-o", "o.flo", "--method", "semantic", match="needs about")
    assert "for 8000x6000 frames" in line and "15.6 GB is available" in line
    # flow has --max-side now: the side it offers fits the budget, and a side an eighth larger does not
    side = int(re.search(r"use --max-side (\d+) \(or smaller\)", line).group(1))
    assert memory_needed_mb("semantic", round(6000 * side / 8000), side) <= 16000
    larger = round(side * 9 / 8)
    assert memory_needed_mb("semantic", round(6000 * larger / 8000), larger) > 16000


def test_run_too_large_says_which_max_side_fits(cli_fails, run_cli, make_frames, monkeypatch) -> None:
    import re

    from semflow.memory import drawing_needed_mb, memory_needed_mb

    frames = make_frames(2, 600, 800)
    budget = memory_needed_mb("dis-medium", 300, 400) + drawing_needed_mb(300, 400)  # (run draws its videos too)
    monkeypatch.setenv("SEMFLOW_MEMORY_MB", f"{budget:.1f}")
    line = cli_fails("run", frames, "--out", "out", "--method", "dis-medium", match="use --max-side")
    side = int(re.search(r"--max-side (\d+)", line).group(1))
    assert 200 <= side <= 400
    result = run_cli("run", frames, "--out", "out", "--method", "dis-medium", "--max-side", str(side))
    assert result.rc == 0, result.stderr


def test_a_name_of_255_bytes_can_be_written(tmp_path: Path) -> None:
    """A legal 255-byte output name failed with "File name too long": the temporary name beside it
    (a dot, a dot and 8 characters, the suffix) was longer than the file system takes."""
    from semflow.io.atomic import write_text_atomic
    from semflow.io.flow import read_flow, write_flow

    for name in ("y" * 251 + ".png", "é" * 125 + ".flo", "z" * 255):
        assert len(name.encode()) >= 254
        if name.endswith(".png"):
            write_image(tmp_path / name, np.zeros((4, 4, 3), np.uint8))
        elif name.endswith(".flo"):
            write_flow(tmp_path / name, np.ones((4, 4, 2), np.float32))
            assert read_flow(tmp_path / name).shape == (4, 4, 2)
        else:
            write_text_atomic(tmp_path / name, "x")
        assert (tmp_path / name).is_file()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left
    # a name whose bytes are not UTF-8 (`flow -o $'o\xff.flo'` was a UnicodeEncodeError traceback), long too
    # and a long UTF-8 name is cut between characters for its temporary name (a half "é" made one not UTF-8)
    from semflow.io.atomic import temp_path_beside

    tmp = temp_path_beside(tmp_path / ("é" * 125 + ".png"))
    tmp.unlink()
    assert tmp.name.encode("utf-8")  # (raised UnicodeEncodeError on a surrogate before)
    for raw in (b"o\xff.flo", b"\xff" * 251 + b".flo"):
        write_flow(tmp_path / os.fsdecode(raw), np.ones((4, 4, 2), np.float32))
        assert raw in {os.fsencode(p.name) for p in tmp_path.iterdir()}


def test_a_utf8_name_is_written_under_an_ascii_locale(tmp_path: Path) -> None:
    """Under an ASCII locale (PYTHONUTF8=0 LC_ALL=C) Python names a UTF-8 name's bytes with surrogates;
    the temporary name beside it was rebuilt from the characters they spell ("é"), which that locale
    cannot encode: `semflow flow ... -o é.flo` was a UnicodeEncodeError traceback from tempfile.mkstemp."""
    import subprocess
    import sys

    code = ("import os, sys, numpy as np; from semflow.io.flow import write_flow; "
            "assert sys.getfilesystemencoding() == 'ascii', sys.getfilesystemencoding(); "
            "write_flow(os.fsdecode(sys.argv[1].encode('ascii', 'surrogateescape')), np.ones((4, 4, 2), np.float32))")
    target = os.path.join(os.fsencode(tmp_path), "é.flo".encode())
    env = {**os.environ, "PYTHONUTF8": "0", "LC_ALL": "C", "LANG": "C", "PYTHONCOERCECLOCALE": "0"}
    done = subprocess.run([sys.executable, "-c", code, target], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-500:]
    assert [p.name for p in tmp_path.iterdir()] == ["é.flo"]  # the very bytes asked for, no temporary left


def test_a_fresh_run_refuses_before_deleting_when_the_old_files_cannot_be_replaced(make_frames, tmp_path: Path,
                                                                                     monkeypatch) -> None:
    """With flo/ not writable (another user's, or chmod a-w), a fresh run deleted the old summary and videos,
    failed at its first .flo, and left the old .flo files: a --resume then took them for its own pairs (the
    previous method's flows). It now refuses first, deleting nothing; so does a work folder it cannot clear."""
    import shutil

    from semflow.errors import OutputError

    frames = make_frames(4)
    out = tmp_path / "out"
    run_video(frames, out, RunOptions(method="dis-fast", save_flo=True))
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: Path(path) != out / "flo" and real_access(path, mode, **kw))
    with pytest.raises(OutputError, match="flo: not writable: the previous run's files in it cannot be replaced"):
        run_video(frames, out, RunOptions(method="farneback", save_flo=True))
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # nothing deleted
    monkeypatch.undo()
    # a work folder left by an interrupted run that cannot be cleared: its records would pass for the new run's
    (out / WORK_DIR / "pairs").mkdir(parents=True, exist_ok=True)
    (out / WORK_DIR / "pairs" / "old.jsonl").write_text("{}\n")
    real_rmtree = shutil.rmtree

    def refusing_rmtree(path, *args, **kwargs):
        if Path(path).name.startswith(WORK_DIR):  # (the work folder, or where it was put aside to be deleted)
            raise PermissionError(13, "Permission denied", str(out / WORK_DIR / "pairs" / "old.jsonl"))
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", refusing_rmtree)
    with pytest.raises(OutputError, match="old.jsonl: cannot remove the previous run's work files: Permission denied"):
        run_video(frames, out, RunOptions(method="farneback", save_flo=True))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_fresh_run_into_a_read_only_flo_folder_deletes_nothing(run_cli, make_frames, tmp_path: Path) -> None:
    frames = make_frames(4)
    out = tmp_path / "out"
    assert run_cli("run", frames, "--out", "out", "--method", "dis-fast", "--save-flo").rc == 0
    (out / "flo").chmod(0o555)
    try:
        failed = run_cli("run", frames, "--out", "out", "--method", "farneback", "--save-flo")
        assert failed.rc == 1 and "flo: not writable" in failed.stderr
        assert (out / "summary.json").exists() and (out / "flow.mp4").exists()
    finally:
        (out / "flo").chmod(0o755)


def test_another_users_file_in_a_sticky_folder_is_refused_before_the_work(make_frames, pair, tmp_path: Path,
                                                                         monkeypatch) -> None:
    """In a shared folder (sticky, as /tmp) only a file's owner may replace it: `run` computed every pair
    and then failed with "flow.mp4: Operation not permitted"; `flow -o` alike. Now refused first. (As
    another user: os.geteuid is made to say so; root may replace any file.)"""
    from semflow.errors import OutputError
    from semflow.io.outputs import check_output_file

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    for name in ("flow.mp4", "theirs.flo"):
        (shared / name).write_bytes(b"someone else's")
        os.chown(shared / name, 4242, 4242)
    monkeypatch.setattr(os, "geteuid", lambda: 4243)
    with pytest.raises(OutputError, match="theirs.flo: another user's file in a shared \\(sticky\\) folder"):
        check_output_file(shared / "theirs.flo")
    check_output_file(shared / "mine.flo")  # a new name is fine
    with pytest.raises(OutputError, match="flow.mp4: another user's file in a shared \\(sticky\\) folder"):
        run_video(make_frames(3), shared, RunOptions(method="dis-fast"))
    assert (shared / "flow.mp4").read_bytes() == b"someone else's"
    monkeypatch.setattr(os, "geteuid", lambda: 4242)  # its owner may
    check_output_file(shared / "theirs.flo")


@pytest.mark.parametrize("folded", [True, False])
def test_two_outputs_named_apart_by_case_only_clash_where_case_is_ignored(tmp_path: Path, monkeypatch,
                                                                        folded: bool) -> None:
    """`flow ... -o Out.png --viz out.png` passed the check: on macOS one file, one output over the other."""
    import semflow.io.files as files
    import semflow.io.outputs as outputs
    from semflow.errors import OutputError

    monkeypatch.setattr(files, "ignores_case", lambda folder: folded)
    names = [tmp_path / "Out.png", tmp_path / "out.png"]
    if folded:
        with pytest.raises(OutputError, match="out.png: named for two outputs"):
            outputs.check_outputs(files=names)
        with pytest.raises(OutputError, match="named as an output file and as"):
            outputs.check_outputs(files=[tmp_path / "Res"], folders=[tmp_path / "res" / "maps"])
    else:
        outputs.check_outputs(files=names)  # (two files here)


@pytest.mark.parametrize("folded", [True, False])
def test_an_output_inside_an_input_folder_named_in_another_case(tmp_path: Path, monkeypatch, folded: bool) -> None:
    """`compare --json Data/x.json` with the dataset at `data` wrote into the dataset where the file system
    ignores case (macOS): the check compared the names as written."""
    import semflow.io.files as files
    import semflow.io.outputs as outputs
    from semflow.errors import OutputError

    (tmp_path / "data").mkdir()
    monkeypatch.setattr(files, "ignores_case", lambda folder: folded)
    if folded:
        with pytest.raises(OutputError, match="x.json: is inside .*data, which this command reads"):
            outputs.refuse_outputs_inside(tmp_path / "data", [tmp_path / "DATA" / "x.json"])
    else:
        outputs.refuse_outputs_inside(tmp_path / "data", [tmp_path / "DATA" / "x.json"])  # (another folder here)
    with pytest.raises(OutputError, match="is inside"):
        outputs.refuse_outputs_inside(tmp_path / "data", [None, tmp_path / "data" / "x.json"])


def test_a_file_named_as_the_output_folder_is_named_once(tmp_path: Path) -> None:
    """`flow -o x.png --explain x.png` said "/abs/x.png: named as an output file and as (or above) the output
    folder x.png": the one path twice, with "(or above)" for a folder that is no other."""
    from semflow.errors import OutputError
    from semflow.io.outputs import check_outputs

    name = tmp_path / "x.png"
    with pytest.raises(OutputError) as raised:
        check_outputs(files=[name], folders=[name])
    assert str(raised.value) == f"{name}: named as an output file and as the output folder; choose another name for one of them"
    with pytest.raises(OutputError) as raised:
        check_outputs(files=[name], folders=[name / "sub"])
    assert str(raised.value).startswith(f"{name}: named as an output file and as a folder above the output folder {name}/sub;")


# --- a folder discarded as one step (semflow.io.atomic.discard_folder) -------------------------------------


class Killed(BaseException):
    """The command killed midway (raised where it was)."""


def test_a_folder_discarded_is_put_aside_first_and_its_leftover_goes_next_time(tmp_path: Path, monkeypatch) -> None:
    """Killed while it deletes, discard_folder leaves nothing under the folder's name, only a
    ``.NAME.semflow-XXXXXXXX.trash`` beside it, which discard_leftovers of that name removes (only that)."""
    import re
    import shutil

    from semflow.io.atomic import discard_folder, discard_leftovers

    work = tmp_path / WORK_DIR
    (work / "pairs").mkdir(parents=True)
    (work / "state.json").write_text("{}")
    keep = [tmp_path / f"{WORK_DIR}.semflow-0123abcd.trash.kept", tmp_path / ".other.semflow-0123abcd.trash",
            tmp_path / "pairs"]  # (not that folder's leftovers)
    for folder in keep:
        folder.mkdir()
    (tmp_path / f"{WORK_DIR}.semflow-0123abcf.trash").write_text("a file")  # (real folders only)

    def killed(path: object, ignore_errors: bool = False) -> None:
        raise Killed

    monkeypatch.setattr(shutil, "rmtree", killed)
    with pytest.raises(Killed):
        discard_folder(work)
    monkeypatch.undo()
    trash = [p.name for p in tmp_path.iterdir() if re.fullmatch(rf"{WORK_DIR}\.semflow-[0-9a-f]{{8}}\.trash", p.name)
             and p.is_dir()]
    assert not work.exists() and len(trash) == 1 and (tmp_path / trash[0] / "pairs").is_dir(), trash
    discard_leftovers(work)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([p.name for p in keep] + [f"{WORK_DIR}.semflow-0123abcf.trash"])


def test_a_folder_that_cannot_be_put_aside_is_deleted_in_place(tmp_path: Path, monkeypatch) -> None:
    from semflow.io.atomic import discard_folder

    work = tmp_path / "work"
    (work / "pairs").mkdir(parents=True)

    def refused(source: object, target: object) -> None:
        raise PermissionError(1, "Operation not permitted", str(source))

    monkeypatch.setattr(os, "rename", refused)
    discard_folder(work)
    assert list(tmp_path.iterdir()) == []


def test_a_folder_discarded_strictly_says_what_it_could_not_delete(tmp_path: Path, monkeypatch) -> None:
    """``strict``: the deletion's error is raised (not: all it can, quietly); a folder already gone is no error."""
    from semflow.io.atomic import discard_folder

    discard_folder(tmp_path / "gone", strict=True)
    real_unlink = os.unlink

    def unlink(path: object, *args: object, **kwargs: object) -> None:
        if str(path) == "held":
            raise PermissionError(1, "Operation not permitted", str(path))
        real_unlink(path, *args, **kwargs)

    for strict in (False, True):
        work = tmp_path / f"work{strict}"
        work.mkdir()
        (work / "held").write_text("x")
        (work / "other").write_text("x")
        monkeypatch.setattr(os, "unlink", unlink)
        if strict:
            with pytest.raises(PermissionError):
                discard_folder(work, strict=True)
        else:
            discard_folder(work)
            assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["held"]  # (all it can)
        monkeypatch.undo()
        assert not work.exists()


def test_a_long_save_flo_runs_manifest_holds_its_flo_names_in_a_bit_a_pair(tmp_path: Path) -> None:
    """The manifest held every flo/NNNNNN.flo a --save-flo run claimed as strings in a list and a set (about
    120 bytes a pair of Python objects, 225 in the process's memory) for the whole run: what it holds now
    per claimed .flo name is a bit, and it lists the same names in the same order."""
    import pathlib
    import tracemalloc

    from semflow.io.outputs import OutputFolder

    pairs = 3000
    with OutputFolder(tmp_path / "out", fresh=True, work=WORK_DIR) as folder:
        folder.claim("flo/")
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            for k in range(pairs):
                folder.claim(f"flo/{k:06d}.flo")
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        listed = folder.written()
    # (pathlib interns each name's parts: Python's table of interned strings may grow meanwhile; not the manifest)
    others = [tracemalloc.Filter(False, pathlib.__file__), tracemalloc.Filter(False, tracemalloc.__file__)]
    held = sum(stat.size_diff for stat in after.filter_traces(others).compare_to(before.filter_traces(others), "filename"))
    assert held < 8 * pairs, f"{held / pairs:.0f} bytes a claimed .flo name"
    assert listed == ["flo/", *(f"flo/{k:06d}.flo" for k in range(pairs))]


def test_the_manifest_lists_what_was_claimed_in_order_across_a_resume(tmp_path: Path) -> None:
    """Claimed names come back once each, in the order first claimed, .flo names out of order, repeated,
    past 999999 or not in the six-digit form included; a resumed folder continues the listing it finds (a
    listed flo/999999999.flo is held as a name, not as a bitmap to that pair)."""
    from semflow.io.outputs import OutputFolder

    first = ["flo/", "flo/000002.flo", "flo/000003.flo", "flo/000000.flo", "flo/000003.flo", "flow.mp4",
             "flo/999999999.flo", "flo/1000000.flo", "flo/01.flo"]
    then = ["flo/000001.flo", "flo/000004.flo", "flo/000002.flo", "flo/0000005.flo", "flo/000005.flo", "summary.json"]
    with OutputFolder(tmp_path / "out", fresh=True, work=WORK_DIR) as folder:
        for name in first:
            folder.claim(name)
    with OutputFolder(tmp_path / "out", fresh=False, work=WORK_DIR) as folder:
        for name in then:
            folder.claim(name)
        listed = folder.written()
    assert listed == list(dict.fromkeys(first + then))
    manifest = (tmp_path / "out" / WORK_DIR / "manifest").read_text().splitlines()
    assert [line for line in manifest if not line.startswith("#")] == listed


def test_a_path_through_a_linked_folder_is_refused_and_never_claimed(tmp_path: Path) -> None:
    """refuse_link looks at every folder between the root and the path, not the path alone; a run's claim of
    an output goes through it (a folder replaced by a link after the checks: nothing written through it)."""
    from semflow.errors import OutputError
    from semflow.io.outputs import OutputFolder, refuse_link
    from semflow.runstore import RUN_OUTPUTS

    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    with OutputFolder(out, fresh=True, work=WORK_DIR, reserved=RUN_OUTPUTS) as folder:
        (out / "flo").symlink_to(elsewhere)
        with pytest.raises(OutputError, match=r"out/flo: is a symbolic link"):
            refuse_link(out / "flo" / "000000.flo", out)
        with pytest.raises(OutputError, match=r"out/flo: is a symbolic link"):
            folder.claim("flo/000000.flo")
    assert os.listdir(elsewhere) == []


def test_a_failed_staging_removes_the_folders_it_created_only(tmp_path: Path) -> None:
    """output_staging made out and the folders above it; when the block fails they go again, where they are
    empty (a folder that held something already stays)."""
    from semflow.io.outputs import output_staging

    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "mine.txt").write_text("x")
    for out in (tmp_path / "a" / "b" / "out", tmp_path / "kept" / "out"):
        with pytest.raises(RuntimeError, match="stop"), output_staging(out, ".test-") as stage:
            (stage / "flow.flo").write_bytes(b"x")
            raise RuntimeError("stop")
    assert sorted(os.listdir(tmp_path)) == ["kept"] and os.listdir(tmp_path / "kept") == ["mine.txt"]


def test_a_fresh_run_deletes_only_the_regular_files_the_previous_run_listed(tmp_path: Path) -> None:
    """A pipe where the previous run listed a .flo file is no file of that run's: a fresh run leaves it."""
    from semflow.io.outputs import OutputFolder
    from semflow.runstore import RUN_OUTPUTS

    out = tmp_path / "out"
    (out / "flo").mkdir(parents=True)
    (out / "flo" / "000000.flo").write_bytes(b"PIEH")
    os.mkfifo(out / "flo" / "000001.flo")
    (out / "summary.json").write_text(json.dumps({"outputs": {"written": ["flo/", "flo/000000.flo", "flo/000001.flo",
                                                                          "summary.json"]}}))
    with OutputFolder(out, fresh=True, work=WORK_DIR, reserved=RUN_OUTPUTS):
        pass
    assert os.listdir(out / "flo") == ["000001.flo"] and (out / "flo" / "000001.flo").is_fifo()


def test_an_output_that_is_a_link_to_an_input_is_that_input(tmp_path: Path) -> None:
    from semflow.errors import OutputError
    from semflow.io.outputs import refuse_inputs_as_outputs

    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "out.png").symlink_to(tmp_path / "a.png")
    with pytest.raises(OutputError, match=r"out.png: is also an input \(as .*a.png\)"):
        refuse_inputs_as_outputs([tmp_path / "a.png"], [tmp_path / "out.png"])
    refuse_inputs_as_outputs([tmp_path / "a.png"], [tmp_path / "b.png"])  # (not there yet: no input)


def test_an_output_through_a_link_into_a_folder_read_is_inside_it(tmp_path: Path) -> None:
    """out/r.json where out is a link to the data folder a command reads is inside that folder."""
    from semflow.errors import OutputError
    from semflow.io.outputs import refuse_outputs_inside

    (tmp_path / "data").mkdir()
    (tmp_path / "out").symlink_to(tmp_path / "data")
    with pytest.raises(OutputError, match=r"out/r.json: is inside .*data, which this command reads"):
        refuse_outputs_inside(tmp_path / "data", [tmp_path / "out" / "r.json"])
    refuse_outputs_inside(tmp_path / "data", [tmp_path / "r.json", None])  # (beside it: fine)


def test_a_discarded_folder_goes_where_only_the_work_folder_was_in_it(tmp_path: Path) -> None:
    from semflow.io.outputs import OutputFolder
    from semflow.runstore import RUN_OUTPUTS

    for mine in (False, True):
        out = tmp_path / f"out{int(mine)}"
        with OutputFolder(out, fresh=True, work=WORK_DIR, reserved=RUN_OUTPUTS) as folder:
            if mine:
                (out / "notes.txt").write_text("keep")
            folder.discard()
        assert os.path.lexists(out) == mine and not (out / WORK_DIR).exists()


def test_the_flo_files_of_pairs_past_999999_are_the_runs_own_as_the_six_digit_ones_are(tmp_path: Path) -> None:
    """pair_name writes pair 1000000 as flo/1000000.flo (seven digits): a fresh run deleted the earlier run's
    six-digit .flo files only, leaving that one beside the new outputs (through the manifest, and in a batch's
    folder), and a resumed finished run did not check it was still whole."""
    from semflow.io.outputs import OutputFolder
    from semflow.run_outputs_check import listed_outputs, missing_output
    from semflow.runstore import RUN_OUTPUTS, open_store, pair_name

    names = [f"flo/{pair_name(k)}.flo" for k in (999999, 1000000, 12345678)]
    summary = {"outputs": {"written": ["flo/", *names, "summary.json"]}}
    assert listed_outputs(summary) == ["flo/", *names, "summary.json", "flow.mp4", "panel.mp4"]
    out = tmp_path / "out"
    (out / "flo").mkdir(parents=True)
    for name in names:
        (out / name).write_bytes(b"PIEH")
    assert missing_output(out, summary) == names[0]  # (a .flo whose header does not fit its size: damaged)
    (out / "flo" / "1000000.flo.mine").write_bytes(b"x")  # the user's own file stays
    (out / "summary.json").write_text(json.dumps(summary))
    with OutputFolder(out, fresh=True, work=WORK_DIR, reserved=RUN_OUTPUTS):
        pass
    assert os.listdir(out / "flo") == ["1000000.flo.mine"]
    batch = tmp_path / "batch"  # (a batch clip's folder has no manifest: its fresh store deletes them by name)
    (batch / "flo").mkdir(parents=True)
    for name in names:
        (batch / name).write_bytes(b"PIEH")
    (batch / "flo" / "01.flo").write_bytes(b"x")  # not a name pair_name gives: the user's
    open_store(batch, {}, resume=False, save_flo=True, frame_shape=(4, 4, 3))
    assert os.listdir(batch / "flo") == ["01.flo"]
