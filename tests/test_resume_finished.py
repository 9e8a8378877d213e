"""``semflow run --resume`` on a FINISHED run: it is finished only while every output its summary lists
is there.

A finished run whose listed outputs are all regular files does nothing. One with an output missing or
damaged (``plot.png``, a ``flo/NNNNNN.flo``) is made again (a finished run keeps no work folder, so its
pairs are computed again) and afterwards every listed output is there. A link, or anything that is not
a regular file, in place of a listed output is refused in one line before any work, as on the resume of
an interrupted run. Before, only the two videos were looked at: the run said it was finished with the
plot or .flo files gone, and a .flo file replaced by a link.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pytest
from conftest import failing_at_pair

from semflow.errors import InputError, OutputError, SemflowWarning
from semflow.pipeline import WORK_DIR, RunOptions, run_video
from semflow.run_outputs_check import listed_outputs

OPTIONS = RunOptions(method="dis-fast", save_flo=True, progress=False)
RESUME = RunOptions(method="dis-fast", save_flo=True, progress=False, resume=True)
SAME_BYTES = ["flow.mp4", "panel.mp4"] + [f"flo/{i:06d}.flo" for i in range(4)]
"""What a run made again writes byte for byte as before (plot.png and summary.json hold timings)."""


def finished(make_frames, tmp_path: Path) -> tuple[Path, Path, Path]:
    """(frames, a finished run's folder, an untouched copy of it) for 5 frames of 40x56."""
    frames = make_frames(5, 40, 56)
    out = tmp_path / "out"
    run_video(frames, out, OPTIONS)
    shutil.copytree(out, tmp_path / "copy", symlinks=True)
    return frames, out, tmp_path / "copy"


def _truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _cropped_flo(path: Path, height: int, width: int) -> None:
    from semflow.io.flow import read_flo, write_flo

    write_flo(path, read_flo(path)[0][:height, :width].copy())


def test_a_finished_run_with_all_its_outputs_computes_nothing(make_frames, tmp_path: Path) -> None:
    frames, out, copy = finished(make_frames, tmp_path)
    summary = run_video(frames, out, RESUME, method=failing_at_pair(0))  # any pair computed would raise
    assert summary["resumed_pairs"] == summary["pairs"] == 4
    assert sorted(os.listdir(out)) == sorted(os.listdir(copy)) and not (out / WORK_DIR).exists()
    for name in [*SAME_BYTES, "plot.png", "summary.json"]:
        assert (out / name).read_bytes() == (copy / name).read_bytes(), name


def test_a_finished_run_resumed_with_its_video_named_otherwise_computes_nothing(make_frames, monkeypatch,
                                                                               tmp_path: Path) -> None:
    """The video is recorded by its real path: the same frames named by a relative path are the same video."""
    frames, out, _ = finished(make_frames, tmp_path)
    monkeypatch.chdir(frames.parent)
    summary = run_video(Path(frames.name), out, RESUME, method=failing_at_pair(0))  # any pair computed would raise
    assert summary["resumed_pairs"] == summary["pairs"] == 4


@pytest.mark.parametrize("damage", ["plot.png", "flo/000001.flo", "flo/000003.flo", "flow.mp4", "flo-truncated",
                                    "plot-and-flo", "flo-cropped"])
def test_a_finished_run_with_an_output_missing_is_made_again(make_frames, tmp_path: Path, damage: str) -> None:
    frames, out, copy = finished(make_frames, tmp_path)
    if damage == "flo-truncated":
        _truncate(out / "flo/000002.flo")
    elif damage == "flo-cropped":  # whole, of 20x28 frames (the video's are 40x56): counted as finished before
        _cropped_flo(out / "flo/000002.flo", 20, 28)
    elif damage == "plot-and-flo":
        (out / "plot.png").unlink()
        (out / "flo/000000.flo").unlink()
    else:
        (out / damage).unlink()
    with pytest.warns(SemflowWarning, match="missing or damaged; the finished run is computed again"):
        summary = run_video(frames, out, RESUME)
    assert summary["pairs"] == 4 and summary["resumed_pairs"] == 0  # a finished run kept no pair records
    listed = listed_outputs(summary)
    assert {"plot.png", "flow.mp4", "panel.mp4", "summary.json", "flo/000003.flo"} <= set(listed)
    for name in listed:
        assert (out / name).is_dir() if name.endswith("/") else (out / name).is_file(), name
        assert not (out / name).is_symlink(), name
    for name in SAME_BYTES:
        assert (out / name).read_bytes() == (copy / name).read_bytes(), name
    assert not (out / WORK_DIR).exists()
    idle = run_video(frames, out, RESUME, method=failing_at_pair(0))  # now finished again: nothing to do
    assert idle["resumed_pairs"] == 4


@pytest.mark.parametrize("name", ["flo/000001.flo", "plot.png", "flow.mp4", "summary.json"])
def test_a_link_in_place_of_a_listed_output_is_refused_before_any_work(make_frames, tmp_path: Path,
                                                                       name: str) -> None:
    frames, out, _ = finished(make_frames, tmp_path)
    target = tmp_path / "target"
    if name == "summary.json":  # the link leads to the real summary: still not written through
        shutil.move(out / name, target)
    else:
        target.write_bytes(b"junk")
        (out / name).unlink()
    before = target.read_bytes()
    (out / name).symlink_to(target)
    (out / "flo/000000.flo").unlink()  # an output missing as well: still refused, not made again
    with pytest.raises(OutputError, match=f"{name}: is a symbolic link"):
        run_video(frames, out, RESUME, method=failing_at_pair(0))
    assert (out / name).is_symlink() and target.read_bytes() == before
    assert not (out / WORK_DIR).exists() and not (out / "flo/000000.flo").exists()


def test_a_linked_flo_file_is_one_error_line_in_the_cli(cli_fails, make_frames, tmp_path: Path) -> None:
    """The probe's case: plot.png and a .flo file deleted, another .flo file replaced by a link."""
    frames, out, _ = finished(make_frames, tmp_path)
    (out / "plot.png").unlink()
    (out / "flo/000001.flo").unlink()
    (out / "flo/000003.flo").unlink()
    (tmp_path / "target.txt").write_text("junk")
    (out / "flo/000003.flo").symlink_to(tmp_path / "target.txt")
    cli_fails("run", frames, "--out", out, "--method", "dis-fast", "--save-flo", "--no-progress", "--resume",
              match="flo/000003.flo: is a symbolic link")
    assert (tmp_path / "target.txt").read_text() == "junk" and (out / "flo/000003.flo").is_symlink()


@pytest.mark.parametrize("name", ["plot.png", "flo/000002.flo"])
def test_a_folder_in_place_of_a_listed_output_is_refused(make_frames, tmp_path: Path, name: str) -> None:
    frames, out, _ = finished(make_frames, tmp_path)
    (out / name).unlink()
    (out / name).mkdir()
    with pytest.raises(OutputError, match=f"{name}: is not a regular file"):
        run_video(frames, out, RESUME, method=failing_at_pair(0))
    assert (out / name).is_dir() and not (out / WORK_DIR).exists()


def test_only_names_a_run_writes_are_checked(tmp_path: Path) -> None:
    summary = {"outputs": {"written": ["../elsewhere", "/etc/passwd", "flo/", "flo/000000.flo", "flo/x.flo", 3],
                           "flow_video": "flow.mp4", "panel_video": "panel.mp4", "plot": "plot.png"}}
    assert listed_outputs(summary) == ["flo/", "flo/000000.flo", "flow.mp4", "panel.mp4", "plot.png"]
    assert listed_outputs({"outputs": [1]}) == []


def test_a_finished_run_with_other_settings_or_video_is_refused(make_frames, tmp_path: Path) -> None:
    """`--resume` over a finished run with another option, or after its video was replaced, made the run again
    afresh without a word, where an interrupted one is refused: refused alike now, nothing touched."""
    frames, out, copy = finished(make_frames, tmp_path)
    other = RunOptions(method="dis-fast", save_flo=False, progress=False, resume=True)
    with pytest.raises(InputError, match=r"out: cannot resume, the earlier run used other settings \(--save-flo on -> off\)"):
        run_video(frames, out, other)
    with pytest.raises(InputError, match=r"out: cannot resume, the earlier run used other settings \(--max-flow"):
        run_video(frames, out, dataclasses.replace(RESUME, max_flow=5.0))
    with pytest.raises(InputError, match=r"out: cannot resume, the earlier run used other settings \(--max-frames"):
        run_video(frames, out, dataclasses.replace(RESUME, max_frames=3))
    os.utime(frames / "0000.png", ns=(1, 1))  # the video (its first frame) replaced
    with pytest.raises(InputError, match="cannot resume, .* changed since the earlier run"):
        run_video(frames, out, RESUME)
    assert sorted(os.listdir(out)) == sorted(os.listdir(copy))
    for name in [*SAME_BYTES, "plot.png", "summary.json"]:
        assert (out / name).read_bytes() == (copy / name).read_bytes(), name


def test_resuming_a_finished_run_says_nothing_was_computed(run_cli, make_frames, tmp_path: Path) -> None:
    """`run --resume` on a finished folder printed the earlier run's "N pairs, 0.421 s/pair median compute"
    line, which read as if it had computed them again."""
    frames = make_frames(4)
    first = run_cli("run", frames, "--out", tmp_path / "out", "--method", "dis-fast", "--no-progress")
    assert first.rc == 0 and "s/pair median compute" in first.stdout + first.stderr
    again = run_cli("run", frames, "--out", tmp_path / "out", "--method", "dis-fast", "--no-progress", "--resume")
    said = again.stdout + again.stderr
    assert again.rc == 0 and "3 pairs, all finished by the run this resumes: none computed (dis-fast)" in said
    assert "s/pair" not in said


@pytest.mark.parametrize("interrupted", [False, True])
def test_a_run_made_by_another_build_is_refused_not_mixed(make_frames, monkeypatch, tmp_path: Path,
                                                          interrupted: bool) -> None:
    """An upgrade probe: a run made by an earlier semflow whose flows differ (a change to DIS's padding of
    small frames) but that recorded the same settings was resumed without a word: its pairs kept beside
    this build's (or, finished, all of them called done). The build that computes the flows (semflow's
    code digest, the libraries' versions) is now part of what a resume compares."""
    import json

    import semflow.run_options as run_options
    from semflow.build_identity import build_identity

    frames, out = make_frames(5, 40, 56), tmp_path / "out"
    if interrupted:
        with pytest.raises(RuntimeError):
            run_video(frames, out, RunOptions(method=failing_at_pair(2), save_flo=True, progress=False))
    else:
        run_video(frames, out, OPTIONS)
    resume = RESUME if not interrupted else RunOptions(method=failing_at_pair(4), save_flo=True, progress=False,
                                                        resume=True)  # (fails should it compute a pair)
    other = {**build_identity(), "numpy": "9.9.9"}
    monkeypatch.setattr(run_options, "build_identity", lambda: other)
    with pytest.raises(InputError, match=r"made by another build \(numpy [\d.]+ -> 9\.9\.9\): its flows may differ"):
        run_video(frames, out, resume)
    monkeypatch.undo()
    recorded = out / (f"{WORK_DIR}/state.json" if interrupted else "summary.json")
    document = json.loads(recorded.read_text())
    settings = document["fingerprint"] if interrupted else document["settings"]
    settings["later_setting"] = 1  # as a newer semflow may record
    recorded.write_text(json.dumps(document))
    with pytest.raises(InputError, match=r"made by a newer semflow \(it recorded later_setting, which this one does"):
        run_video(frames, out, resume)
    del settings["later_setting"], settings["build"]
    recorded.write_text(json.dumps(document))
    with pytest.raises(InputError, match=r"made by an older semflow \(it did not record the build that computed"):
        run_video(frames, out, resume)


def test_a_refused_resume_says_what_each_setting_was_and_is(tmp_path: Path) -> None:
    """A newcomer probe: "other settings (save_flo)" named the setting, not its values (nor which method option)."""
    from semflow.run_outputs_check import refuse_other_settings

    before = {"method": "discrete", "method_options": {"preset": "balanced", "device": "cpu"}, "max_side": None,
              "video": "/clips/" + "a" * 50 + ".mp4"}
    now = {**before, "method_options": {"preset": "fast", "device": "cpu"}, "max_side": 240,
           "video": "/clips/" + "b" * 50 + ".mp4"}
    # (as the command line names them: it said "max_side None -> 240, method_options: preset 'balanced' -> 'fast'")
    with pytest.raises(InputError, match=r"other settings \(--max-side \(none\) -> 240, --preset balanced -> fast, the"
                                         r" video\); give the same ones, or run it afresh without --resume$"):
        refuse_other_settings(tmp_path, before, now)


def test_a_refused_resume_names_no_internal_field(tmp_path: Path) -> None:
    """A review: another video into the same --out said "--video-identity [6943, ...] -> [...]" beside the
    video; a given file's stamp read "--segmentation ['/m1.png', [1, 2]] -> ...", said twice with the method
    option; a kinds table "--Tree plane -> thing"."""
    from semflow.run_outputs_check import refuse_other_settings

    m1, m2 = tmp_path / "m1.png", tmp_path / "m2.png"
    m1.write_bytes(b""), m2.write_bytes(b"")
    before = {"video": "/v/f1", "video_identity": [1, 2], "max_side": 32, "inputs": {"segmentation": [str(m1), [1, 2]]},
              "method_options": {"segmentation": str(m1), "kinds": {"Tree": "plane"}}}
    now = {"video": "/v/f2", "video_identity": [1, 3], "max_side": 32, "inputs": {"segmentation": [str(m2), [1, 4]]},
           "method_options": {"segmentation": str(m2), "kinds": {"Tree": "thing"}}}
    with pytest.raises(InputError, match=r"other settings \(--segmentation, --kinds, the video /v/f1 -> /v/f2\); give the"
                                         r" same ones"):  # (a long path: named alone)
        refuse_other_settings(tmp_path, before, now)
    now = {**before, "video_identity": [1, 3], "max_side": 64}  # the video replaced in place, and an option
    with pytest.raises(InputError, match=r"other settings \(--max-side 32 -> 64, the video's size or modification time\);"):
        refuse_other_settings(tmp_path, before, now)


def test_a_resumed_run_says_how_many_pairs_it_kept(run_cli, make_frames, tmp_path: Path) -> None:
    """A newcomer probe: a resumed run's result line read as a whole run's ("4 pairs, ..."), the pairs it kept
    said nowhere but in summary.json."""
    frames = make_frames(5, 40, 56)
    with pytest.raises(RuntimeError):
        run_video(frames, tmp_path / "out", RunOptions(method=failing_at_pair(2), save_flo=True, progress=False))
    result = run_cli("run", frames, "--out", "out", "--method", "dis-fast", "--save-flo", "--resume", "--no-progress")
    assert result.rc == 0 and result.stdout.startswith("4 pairs (2 of them resumed), "), result.stdout + result.stderr


class Killed(BaseException):
    """A SIGKILL, simulated: nothing that catches Exception stops it."""


@pytest.mark.parametrize(("victim", "coded"), [("state.json", False), ("pairs", False), ("cache", False),
                                               ("end.json", False), ("manifest", False), ("pairs", True),
                                               ("intermediate", True)])
def test_a_run_killed_while_it_deletes_its_work_folder_is_finished(make_frames, monkeypatch, tmp_path: Path,
                                                                   victim: str, coded: bool) -> None:
    """The crash probe's cases: a run killed after its summary, while it deleted its work folder (``victim``
    went first), is finished: --resume computes nothing, and the outputs are an uninterrupted run's (``coded``:
    one drawn from the intermediate). The work folder is now put aside as one step, then deleted. Before, a
    deletion that had reached state.json but not pairs/ left the folder refused as damaged; one that had
    reached pairs/ had every pair computed again."""
    frames = make_frames(7, 40, 56)
    options = RunOptions(method="dis-fast", progress=False, cache_budget=60_000) if coded else \
        RunOptions(method="dis-fast", save_flo=True, progress=False)
    resume = dataclasses.replace(options, resume=True)
    reference = tmp_path / "reference"
    run_video(frames, reference, options)
    out = tmp_path / "killed"

    def killed_while_deleting(path, *args, **kwargs) -> None:
        """Delete ``victim`` where it is in (or is) the folder asked for: the first entry the deletion reached."""
        gone = Path(path) if Path(path).name == victim else Path(path) / victim
        if gone.is_dir():
            real_rmtree(gone)
        elif gone.exists():
            gone.unlink()
        raise Killed

    real_rmtree = shutil.rmtree
    monkeypatch.setattr(shutil, "rmtree", killed_while_deleting)
    with pytest.raises(Killed):
        run_video(frames, out, options)
    monkeypatch.undo()
    assert (out / "summary.json").is_file()
    summary = run_video(frames, out, resume, method=failing_at_pair(0))  # any pair computed would raise
    assert summary["resumed_pairs"] == summary["pairs"] == 6 and not (out / WORK_DIR).exists()
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == sorted(p.relative_to(reference) for p in reference.rglob("*"))
    for name in ["flow.mp4", "panel.mp4", *(f"flo/{i:06d}.flo" for i in range(6) if not coded)]:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name


def test_a_batch_clip_folder_that_is_a_link_is_refused_before_its_leftovers_go(make_frames, tmp_path: Path) -> None:
    """A resumed batch's check of DIR/NAME looked for a finished run there (and deleted what a run killed
    while deleting its work folder left) before refusing DIR/NAME as a link: it deleted, through a link the
    batch did not make, the ``.semflow-work.semflow-XXXXXXXX.trash`` folder in the folder it points to."""
    from semflow.batch.clips import ClipState, InputResult, check_clip
    from semflow.batch.inputs import BatchInput

    frames = make_frames(3, 40, 56)
    elsewhere = tmp_path / "elsewhere"
    run_video(frames, elsewhere, OPTIONS)  # a finished run someone keeps elsewhere
    leftover = elsewhere / f"{WORK_DIR}.semflow-0123abcd.trash"
    (leftover / "pairs").mkdir(parents=True)
    root = tmp_path / "batch"
    root.mkdir()
    (root / "clip").symlink_to(elsewhere)
    clip = ClipState(BatchInput(frames, "clip"), InputResult("clip", str(frames), str(root / "clip")))
    with pytest.raises(OutputError, match="symbolic link"):
        check_clip(clip, root, RESUME, 4)
    assert (leftover / "pairs").is_dir()  # never deleted through the link


def test_a_summary_resolution_a_user_changed_is_never_a_traceback(make_frames, tmp_path: Path) -> None:
    """The .flo files of a finished run are compared with its summary's ``resolution`` only where that is
    two integers as a run writes it: otherwise (edited by hand) the run is still finished, without a traceback."""
    import json

    frames, out, _ = finished(make_frames, tmp_path)
    summary = json.loads((out / "summary.json").read_text())
    for resolution in ["56x40", [56], [56.0, 40.0], [56, "40"], None, [56, 40, 3]]:
        (out / "summary.json").write_text(json.dumps({**summary, "resolution": resolution}))
        assert run_video(frames, out, RESUME, method=failing_at_pair(0))["resumed_pairs"] == 4, resolution
