"""`semflow compare` on hostile inputs: every per-sample image name checked (and made safe) before any
method runs, Ctrl-C and SIGTERM without a worker's traceback or a lingering worker, stray files in a
Sintel layout, samples whose ground truth has no valid pixel."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from semflow import evaluation
from semflow.errors import InputError, OutputError, SemflowWarning
from semflow.io.datasets import chairs, kitti, middlebury, sintel, synthetic
from semflow.io.flow import write_flo
from semflow.io.images import write_image
from semflow.synthetic import translation_scene


def _middlebury(root: Path, names: list[str], *, no_gt: tuple[str, ...] = ()) -> Path:
    """A Middlebury-layout dataset of 48x64 sequences ``names``; those in ``no_gt`` have no valid GT pixel."""
    scene = translation_scene(48, 64, shift=(3.0, 2.0), seed=4)
    for name in names:
        seq = root / name
        write_image(seq / "frame10.png", scene.img1)
        write_image(seq / "frame11.png", scene.img2)
        write_flo(seq / "flow10.flo", scene.flow, np.zeros((48, 64), bool) if name in no_gt else None)
    return root


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# --- bug 1: per-sample image names -------------------------------------------------------------------


def test_compare_checks_every_image_name_before_any_method_runs(tmp_path: Path, monkeypatch) -> None:
    """With DIR/middlebury_B.png a folder, compare wrote DIR/middlebury_A.png, then failed on B (an
    OSError after all the work) and lost every result. Now: a one-line OutputError, nothing computed."""
    root = _middlebury(tmp_path / "ds", ["A", "B"])
    out = tmp_path / "out"
    (out / "middlebury_B.png").mkdir(parents=True)
    monkeypatch.setattr(evaluation, "get_method", lambda *a, **k: pytest.fail("a method was built"))
    with pytest.raises(OutputError, match=r"middlebury_B\.png: a folder, where a file is to be written; name a file$"):
        evaluation.compare("middlebury", root, ["dis-fast"], out_dir=out)
    assert _listing(out) == ["middlebury_B.png"]
    # The caller's other outputs (the CLI's --json) may not be one of the images either.
    monkeypatch.undo()
    with pytest.raises(OutputError, match=r"middlebury_A\.png: named for two outputs"):
        evaluation.compare("middlebury", root, ["dis-fast"], out_dir=tmp_path / "o2",
                           outputs=[tmp_path / "o2" / "middlebury_A.png"])
    assert not (tmp_path / "o2").exists()


def test_compare_cli_fails_at_once_on_an_image_name_that_is_a_folder(cli_fails, tmp_path: Path) -> None:
    _middlebury(tmp_path / "ds", ["A", "B"])
    (tmp_path / "DIR" / "middlebury_B.png").mkdir(parents=True)
    cli_fails("compare", "ds", "--dataset", "middlebury", "--methods", "dis-fast", "--out", "DIR",
              "--json", "c.json", match="DIR/middlebury_B.png: a folder, where a file is to be written")


def test_compare_cli_refuses_json_named_as_the_image_folder(cli_fails, tmp_path: Path) -> None:
    """`--json X --out X` ran every method, then failed "X: Is a directory" and lost the results."""
    _middlebury(tmp_path / "ds", ["A"])
    for json_name, out_name, how in (("X", "X", "the output folder;"), ("Y", "Y/sub", "a folder above the output folder Y/sub;")):
        cli_fails("compare", "ds", "--dataset", "middlebury", "--methods", "dis-fast", "--out", out_name,
                  "--json", json_name, match=f"{json_name}: named as an output file and as {how}")
        assert not (tmp_path / json_name).exists()


def test_image_names_are_safe_short_and_distinct() -> None:
    names = ["a/b", "a_b", "a\nb", "x" * 250, "x" * 250 + "y", "é" * 200, "ok"]
    stems = evaluation.image_names("sintel", names)
    assert len(set(stems)) == len(stems) and stems[-1] == "sintel_ok"
    for stem in stems:
        assert stem.isprintable() and "/" not in stem
        # Room for the temporary name an atomic write makes beside it: .<stem>.semflow-XXXXXXXX.png
        assert len(os.fsencode(f".{stem}.semflow-XXXXXXXX.png")) <= 255


def test_compare_writes_safe_images_for_long_and_odd_sample_names(tmp_path: Path) -> None:
    """A 250-character sequence name failed (File name too long) after other images were written; a
    newline in a name went into the file name."""
    names = ["line\nbreak", "s" * 250, "ok"]
    root = _middlebury(tmp_path / "ds", names)
    out = tmp_path / "out"
    results = evaluation.compare("middlebury", root, ["dis-fast"], out_dir=out)
    assert sorted(r.sample for r in results) == sorted(names)
    written = _listing(out)  # (and no staging folder left)
    assert len(written) == 3 and "middlebury_ok.png" in written and "middlebury_line_break.png" in written
    assert all(name.isprintable() and len(os.fsencode(name)) <= 255 - 10 for name in written)


def test_a_failing_compare_leaves_no_images(tmp_path: Path) -> None:
    """A sample that fails after others were drawn (its GT of another size) left their images behind."""
    root = _middlebury(tmp_path / "ds", ["A", "B"])
    write_flo(root / "B" / "flow10.flo", np.zeros((8, 8, 2), np.float32))
    with pytest.raises(InputError, match="flow10.flo: 8x8"):
        evaluation.compare("middlebury", root, ["dis-fast"], out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --- bug 2: Ctrl-C and SIGTERM -----------------------------------------------------------------------

_SLOW_CLI = """\
import os, sys, time
from pathlib import Path
from semflow.baseline.base import FlowMethod
from semflow.methods import register_method

class Slow(FlowMethod):
    name = "slow"

    def _estimate(self, img1, img2, **kwargs):
        Path(os.environ["SLOW_MARK"]).write_text(str(os.getpid()))
        time.sleep(60)

register_method("slow", "sleeps", lambda options: Slow())  # (here and in the spawned worker)
if __name__ == "__main__":
    from semflow.cli import main
    main(sys.argv[1:], prog_name="semflow")
"""


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _default_sigint() -> None:
    """In the child before it starts: Ctrl-C's default action, whatever this process has (a suite started in
    the background, `pytest ... &`, ignores SIGINT, and its children would too: the Ctrl-C case failed)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(("how", "line", "rc"), [("ctrl-c", "semflow: interrupted", 130),
                                                  ("sigterm", "semflow: terminated", 143)])
def test_compare_stops_its_workers_quietly(tmp_path: Path, cli_env, how: str, line: str, rc: int) -> None:
    """Ctrl-C (SIGINT to the whole process group) printed the idle worker's (dis-fast's, while slow
    runs) 20-line KeyboardInterrupt traceback before `semflow: interrupted`. SIGTERM to semflow alone
    waited for the busy worker's pair to finish. Now: one line, and every worker gone at once."""
    root = _middlebury(tmp_path / "ds", ["A"])
    script = tmp_path / "slow_cli.py"
    script.write_text(_SLOW_CLI)
    mark = tmp_path / "worker.pid"
    env = {**cli_env, "SLOW_MARK": str(mark)}
    proc = subprocess.Popen([sys.executable, str(script), "compare", str(root), "--dataset", "middlebury",
                             "--methods", "dis-fast,slow", "--no-progress"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=_default_sigint)
    try:
        deadline = time.monotonic() + 60
        while not mark.exists() or not mark.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        workers = _children(proc.pid)
        assert int(mark.read_text()) in workers
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        assert (proc.returncode, err) == (rc, line + "\n")
        deadline = time.monotonic() + 2
        while not all(map(_gone, workers)):
            assert time.monotonic() < deadline, "a worker outlived semflow"
            time.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# --- bug 3: Sintel's stray files ---------------------------------------------------------------------


def test_sintel_skips_flow_files_not_named_as_the_layout_names_them(tmp_path: Path) -> None:
    scene = translation_scene(48, 64, shift=(3.0, 2.0), seed=4)
    training = tmp_path / "training"
    write_image(training / "clean" / "alley" / "frame_0001.png", scene.img1)
    write_image(training / "clean" / "alley" / "frame_0002.png", scene.img2)
    for name in ("frame_0001.flo", "frame_abc.flo", "frame_1.flo", "frame_0001_copy.flo"):
        write_flo(training / "flow" / "alley" / name, scene.flow)
    assert [s.name for s in sintel(tmp_path)] == ["clean/alley/frame_0001"]


def test_a_sintel_flow_file_whose_frame_is_missing_is_named_not_skipped(tmp_path: Path) -> None:
    """It was skipped without a word (the other readers fail on a missing frame when a sample is loaded): a
    copy of Sintel missing frames was scored on fewer pairs than it looked. Every official flow file has its
    two frames in each pass, so one missing is a broken copy, named before any work."""
    scene = translation_scene(48, 64, shift=(3.0, 2.0), seed=4)
    training = tmp_path / "training"
    for k in (1, 2):
        write_image(training / "clean" / "alley" / f"frame_{k:04d}.png", scene.img1)
        write_flo(training / "flow" / "alley" / f"frame_{k:04d}.flo", scene.flow)
    with pytest.raises(InputError, match=r"^\S+/training/clean/alley/frame_0003\.png: no such file \(the second"
                                         r" frame of \S+/training/flow/alley/frame_0002\.flo\)$"):
        sintel(tmp_path)
    write_image(training / "clean" / "alley" / "frame_0003.png", scene.img2)
    assert [s.name for s in sintel(tmp_path)] == ["clean/alley/frame_0001", "clean/alley/frame_0002"]


def _kitti(root: Path) -> Path:
    scene = translation_scene(48, 64, shift=(3.0, 2.0), seed=4)
    write_image(root / "training" / "image_2" / "000000_10.png", scene.img1)
    write_image(root / "training" / "image_2" / "000000_11.png", scene.img2)
    write_flo(root / "training" / "flow_occ" / "000000_10.flo", scene.flow)  # (its name is all listing reads)
    (root / "training" / "flow_occ" / "000000_10.flo").rename(root / "training" / "flow_occ" / "000000_10.png")
    return root


def _chairs(root: Path) -> Path:
    scene = translation_scene(48, 64, shift=(3.0, 2.0), seed=4)
    write_image(root / "data" / "00001_img1.ppm", scene.img1)
    write_image(root / "data" / "00001_img2.ppm", scene.img2)
    write_flo(root / "data" / "00001_flow.flo", scene.flow)
    return root


def _synthetic(root: Path) -> Path:
    from semflow.synthetic import write_dataset

    write_dataset(root, count=1, height=24, width=32, seed=3)
    return root


@pytest.mark.parametrize(("make", "reader", "frame", "gt"), [
    (lambda root: _middlebury(root, ["A", "B"]), middlebury, "B/frame11.png", "B/flow10.flo"),
    (lambda root: _middlebury(root, ["A", "B"]), middlebury, "A/frame10.png", "A/flow10.flo"),
    (_kitti, kitti, "training/image_2/000000_11.png", "training/flow_occ/000000_10.png"),
    (_kitti, kitti, "training/image_2/000000_10.png", "training/flow_occ/000000_10.png"),
    (_chairs, chairs, "data/00001_img2.ppm", "data/00001_flow.flo"),
    (_chairs, chairs, "data/00001_img1.ppm", "data/00001_flow.flo"),
    (_synthetic, synthetic, "scene_000/frame2.png", "scene_000/flow.flo"),
    (_synthetic, synthetic, "scene_000/occlusion.png", "scene_000/flow.flo"),
    (_synthetic, synthetic, "scene_000/labels.png", "scene_000/flow.flo"),
    (_synthetic, synthetic, "scene_000/instances.png", "scene_000/flow.flo"),
])
def test_a_missing_frame_is_named_when_the_samples_are_listed(tmp_path: Path, monkeypatch, make, reader,
                                                              frame: str, gt: str) -> None:
    """Middlebury, KITTI, FlyingChairs and synthetic listed a sample whose frame (or synthetic's mask) was
    missing, and failed only when it was loaded: midway through a long compare, the work before it lost. Now,
    like Sintel's, a one-line InputError naming the file and its ground truth when the samples are listed."""
    root = make(tmp_path)
    assert len(reader(root)) == (2 if reader is middlebury else 1)
    (root / frame).unlink()
    which = {"occlusion.png": "occlusion mask", "labels.png": "label map", "instances.png": "instance map"}.get(
        Path(frame).name, "second frame" if frame.endswith(("11.png", "img2.ppm", "frame2.png")) else "first frame")
    with pytest.raises(InputError, match=rf"^\S+/{frame}: no such file \(the {which} of \S+/{gt}\)$"):
        reader(root)
    monkeypatch.setattr(evaluation, "get_method", lambda *a, **k: pytest.fail("a method was built"))
    with pytest.raises(InputError, match=rf"^\S+/{frame}: no such file"):
        evaluation.compare(reader.__name__, root, ["dis-fast"])


# --- bug 4: ground truth without a valid pixel -------------------------------------------------------


def test_a_sample_without_valid_ground_truth_is_left_out_with_a_warning(tmp_path: Path) -> None:
    """It gave NaN scores and counted in n (2) while the EPE averaged only the valid sample."""
    root = _middlebury(tmp_path / "ds", ["A", "B"], no_gt=("B",))
    with pytest.warns(SemflowWarning) as said:
        results = evaluation.compare("middlebury", root, ["dis-fast"])
    assert [r.sample for r in results] == ["A"] and results.left_out == ["B"]
    assert evaluation.results_json(results)["left_out"] == ["B"]  # (the --json file did not name it)
    (row,) = evaluation.summarize(results)
    assert row["samples"] == 1 and np.isfinite(row["epe"])
    assert [str(w.message) for w in said] == ["middlebury sample B: no valid ground-truth pixel; left out of the"
                                              " comparison"]
    _middlebury(root, ["A"], no_gt=("A",))
    with pytest.raises(InputError, match="no middlebury sample has a valid ground-truth pixel"), \
            pytest.warns(SemflowWarning, match="left out of the comparison"):
        evaluation.compare("middlebury", root, ["dis-fast"])


def test_compare_and_explain_refuse_a_folder_another_command_writes_to(tmp_path: Path) -> None:
    """While a `run` wrote into DIR, `compare --out DIR` and `flow --explain DIR` wrote into it beside the
    run (their names could replace its files); `run` and `segment` held the folder's lock, they did not."""

    from semflow.explain import write_explain
    from semflow.io.outputs import lock_folder
    from semflow.methods import get_method

    root = _middlebury(tmp_path / "ds", ["A"])
    busy = tmp_path / "busy"
    busy.mkdir()
    method = get_method("dis-fast")
    frame = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    result = method.estimate(frame, frame)
    held = lock_folder(busy)  # as a running `run --out busy` holds it
    try:
        with pytest.raises(OutputError, match="busy: another semflow command is writing to this folder"):
            evaluation.compare("middlebury", root, ["dis-fast"], out_dir=busy)
        with pytest.raises(OutputError, match="busy: another semflow command is writing to this folder"):
            write_explain(method, result, busy)
    finally:
        os.close(held)
    assert list(busy.iterdir()) == []
    assert write_explain(method, result, busy)  # free again


def test_compare_takes_method_names(tmp_path: Path) -> None:
    """No methods read "no sample has a valid ground-truth pixel"; a str was compared letter by letter
    ("unknown method 'd'"); an instance ran and named its results by its repr."""
    from semflow.errors import InputError
    from semflow.methods import get_method

    root = _middlebury(tmp_path / "ds", ["A"])
    assert [r.method for r in evaluation.compare("middlebury", root, "dis-fast")] == ["dis-fast"]
    for bad in ([], [get_method("dis-fast")]):
        with pytest.raises(InputError, match="compare takes one or more method names"):
            evaluation.compare("middlebury", root, bad)


# --- one --segmentation for samples of several sizes -------------------------------------------------


def test_one_segmentation_for_samples_of_another_size_is_refused_before_any_work(tmp_path: Path, monkeypatch) -> None:
    """`compare --segmentation seg.png` scored every sample of seg.png's size, then failed at the first of
    another size ("seg.png: size 64x48 differs from the image's 40x32"). Now refused first, from headers."""
    root = _middlebury(tmp_path / "ds", ["A", "B"])
    small = translation_scene(32, 40, shift=(1.0, 1.0), seed=5)
    write_image(root / "C" / "frame10.png", small.img1)
    write_image(root / "C" / "frame11.png", small.img2)
    write_flo(root / "C" / "flow10.flo", small.flow)
    seg = tmp_path / "seg.png"
    write_image(seg, np.zeros((48, 64), np.uint8))
    monkeypatch.setattr(evaluation, "get_method", lambda *a, **k: pytest.fail("a method was built"))
    with pytest.raises(InputError, match=r"seg\.png: 64x48, but middlebury sample C is 40x32 \(frame10\.png\); "
                                         r"one label map for every sample needs samples of its size$"):
        evaluation.compare("middlebury", root, ["semantic"], method_options={"segmentation": str(seg)},
                           out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # Samples of its size, or of a size it is shrunk to (as --max-side shrinks maps), pass the check.
    samples = middlebury(root)
    evaluation.check_given_segmentation(samples[:2], {"semantic": {"segmentation": seg}})
    write_image(seg, np.zeros((96, 128), np.uint8))
    evaluation.check_given_segmentation(samples[:2], {"semantic": {"segmentation": seg}})
    evaluation.check_given_segmentation(samples, {"semantic": {"segmentation": tmp_path}})  # a folder: per frame
    # Samples with labels of their own are given those (not checked), unless the labels are not used.
    labelled = [dataclasses.replace(sample, labels=sample.frame1) for sample in samples]
    evaluation.check_given_segmentation(labelled, {"semantic": {"segmentation": seg}})
    with pytest.raises(InputError, match="middlebury sample C is 40x32"):
        evaluation.check_given_segmentation(labelled, {"semantic": {"segmentation": seg}}, use_labels=False)


def test_an_earlier_image_of_a_sample_left_out_is_named_in_a_warning(tmp_path: Path) -> None:
    """`compare --out DIR` left DIR/middlebury_B.png from an earlier comparison beside this one's images,
    with nothing to tell that B's image is not this run's. It is kept (compare deletes nothing it was not
    asked to write), and a warning names it."""
    root = _middlebury(tmp_path / "ds", ["A", "B"])
    out = tmp_path / "out"
    evaluation.compare("middlebury", root, ["dis-fast"], out_dir=out)
    before = (out / "middlebury_B.png").read_bytes()
    _middlebury(root, ["B"], no_gt=("B",))
    with pytest.warns(SemflowWarning) as said:
        results = evaluation.compare("middlebury", root, ["dis-fast"], out_dir=out)
    assert results.left_out == ["B"] and (out / "middlebury_B.png").read_bytes() == before
    assert [str(w.message) for w in said][1:] == [f"{out}: middlebury_B.png (a sample left out) is from an earlier"
                                                  " comparison, left as it was"]



def test_earlier_images_of_several_samples_left_out_are_named_in_one_warning(tmp_path: Path) -> None:
    """Three samples left out: all three named (no "..." before a fourth), in the plural."""
    root = _middlebury(tmp_path / "ds", ["A", "B", "C", "D"])
    out = tmp_path / "out"
    evaluation.compare("middlebury", root, ["dis-fast"], out_dir=out)
    _middlebury(root, ["B", "C", "D"], no_gt=("B", "C", "D"))
    with pytest.warns(SemflowWarning) as said:
        evaluation.compare("middlebury", root, ["dis-fast"], out_dir=out)
    assert str(said[-1].message) == (f"{out}: middlebury_B.png, middlebury_C.png, middlebury_D.png (3 samples left"
                                     " out) are from an earlier comparison, left as they were")

def test_a_segmentation_whose_header_declares_a_bomb_is_left_to_its_reader(tmp_path: Path) -> None:
    """The size check before any work read a header claiming 100000x100000 (a 60-byte PNG) with Pillow's
    DecompressionBombError let out: `compare --segmentation bomb.png` ended in a traceback. Its reader
    refuses it in one line, as before the check."""
    import struct
    import zlib

    from semflow.io.images import read_image

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b""))
    samples = middlebury(_middlebury(tmp_path / "ds", ["A"]))
    evaluation.check_given_segmentation(samples, {"semantic": {"segmentation": bomb}})  # (no size to check)
    with pytest.raises(InputError):
        read_image(bomb)


def test_a_signal_while_compare_moves_its_images_in_leaves_no_mix(tmp_path: Path, monkeypatch) -> None:
    """compare --out DIR's images go in all together: SIGTERM after the first is acted on after the last (it
    left the new middlebury_A.png beside the earlier comparison's middlebury_B.png)."""
    import signal

    from semflow.errors import Terminated, terminated_by_signal

    root, out, new = _middlebury(tmp_path / "ds", ["A", "B"]), tmp_path / "out", tmp_path / "new"
    evaluation.compare("middlebury", root, ["dis-fast"], out_dir=out)  # an earlier comparison
    evaluation.compare("middlebury", root, ["dis-fast", "farneback"], out_dir=new)  # what this one writes
    names = ["middlebury_A.png", "middlebury_B.png"]
    assert all((out / n).read_bytes() != (new / n).read_bytes() for n in names)
    real, moved = evaluation.move_into_place, []

    def move_then_signal(tmp: Path, path: Path) -> None:
        real(tmp, path)
        if not moved:
            moved.append(path)
            signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(evaluation, "move_into_place", move_then_signal)
    previous = signal.signal(signal.SIGTERM, terminated_by_signal)
    try:
        with pytest.raises(Terminated):
            evaluation.compare("middlebury", root, ["dis-fast", "farneback"], out_dir=out)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert moved and [(out / n).read_bytes() == (new / n).read_bytes() for n in names] == [True, True]


@pytest.mark.parametrize("isolate", [False, True])
def test_per_pair_inputs_follow_the_sample_a_left_out_sample_is_not_handed_on(tmp_path: Path, isolate: bool) -> None:
    """A method that reads a file per pair (--baseline-flows DIR: NNNNNN.flo for the NNNNNN-th sample) is told
    which sample it is on: a sample left out (no valid GT) does not hand its file on to the next one (C was
    scored against B's flows, 10 px off)."""
    root = _middlebury(tmp_path / "mb", ["A", "B", "C"], no_gt=("B",))
    truth = translation_scene(48, 64, shift=(3.0, 2.0), seed=4).flow
    flows = tmp_path / "flows"
    for k, offset in enumerate((0.0, 10.0, 0.0)):  # B's flows are wrong: no sample scored may get them
        write_flo(flows / f"{k:06d}.flo", truth + np.float32([offset, 0.0]))
    write_image(tmp_path / "sky.png", np.zeros((48, 64), np.uint8))  # every pixel stuff: semantic = its baseline
    with pytest.warns(SemflowWarning, match="sample B: no valid ground-truth pixel"):
        results = evaluation.compare("middlebury", root, ["semantic"], isolate=isolate, method_options={
            "baseline_flows": str(flows), "segmentation": str(tmp_path / "sky.png")})
    assert [r.sample for r in results] == ["A", "C"] and results.left_out == ["B"]
    assert [round(r.epe, 3) for r in results] == [0.0, 0.0]
