"""``run --resume`` and the files a method option names (given masks, a label set, weights, a class list):
the resumed run must read the same files, whatever folder it is started from and however they are named."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import moving_frames

from semflow.errors import InputError
from semflow.io.files import path_identity
from semflow.io.images import write_image
from semflow.pipeline import RunOptions, run_video
from semflow.run_options import named_path
from semflow.run_outputs_check import refuse_other_settings
from semflow.segmentation import get_label_set

CAMVID_LIKE = get_label_set("camvid").to_json()


def _clip(tmp_path: Path, count: int = 4) -> tuple[Path, Path]:
    """A folder of ``count`` frames and a folder of given masks for them (CamVid ids: Car box on Road)."""
    frames, masks = tmp_path / "frames", tmp_path / "masks"
    masks.mkdir(parents=True)
    for k, frame in enumerate(moving_frames(count, 48, 64)):
        write_image(frames / f"{k:06d}.png", frame)
        labels = np.full((48, 64), 3, np.uint8)  # Road
        labels[10:30, 10 + k:30 + k] = 8  # Car
        write_image(masks / f"{k:06d}.png", labels)
    return frames, masks


def _options(masks: str | Path, label_set: Path | None = None, **kw) -> RunOptions:
    given = {"baseline": "dis-fast", "segmentation": str(masks)} | ({"label_set": str(label_set)} if label_set else {})
    return RunOptions(method="semantic", method_options=given, progress=False, **kw)


def test_a_given_file_changed_since_the_earlier_run_is_refused_on_resume(tmp_path: Path) -> None:
    """The option's text was the only thing compared: a label set rewritten in place was accepted, and the
    resumed pairs mixed with those made under the old one. (A folder's files are not compared: a folder
    of given flows may gain those a run was missing, and --resume goes on.)"""
    frames, masks = _clip(tmp_path)
    label_set = tmp_path / "set.json"
    label_set.write_text(json.dumps(CAMVID_LIKE))
    out = tmp_path / "out"
    run_video(frames, out, _options(masks, label_set=label_set))
    run_video(frames, out, _options(masks, label_set=label_set, resume=True))  # the same files: accepted
    label_set.write_text(json.dumps({**CAMVID_LIKE, "kinds": {}}))  # every class stuff now: no thing, no plane
    with pytest.raises(InputError, match=rf"^{out}: cannot resume, --label-set {label_set} changed since the earlier"
                                         r" run \(its size or modification time\); run it afresh, without --resume$"):
        run_video(frames, out, _options(masks, label_set=label_set, resume=True))
    before = json.loads((out / "summary.json").read_text())["settings"]
    label_set.unlink()  # gone: said so, not "the earlier run used other settings (inputs, method_options)"
    now = {**before, "inputs": {}, "method_options": {**before["method_options"], "label_set": "set.json"}}
    with pytest.raises(InputError, match=rf"^{out}: cannot resume, --label-set {label_set}, which the earlier run"
                                         " read, is gone; run it afresh, without --resume$"):
        refuse_other_settings(out, before, now)


def test_the_same_file_named_otherwise_resumes_and_the_same_name_elsewhere_does_not(tmp_path: Path,
                                                                                 monkeypatch) -> None:
    """A relative name was recorded as typed: the same folder named by its absolute path was refused, and
    the same relative name in another working folder (other files) was accepted."""
    frames, masks = _clip(tmp_path)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    run_video(frames, out, _options("masks"))
    run_video(frames, out, _options(masks.resolve(), resume=True))
    other = tmp_path / "elsewhere"
    _clip(other)
    monkeypatch.chdir(other)
    with pytest.raises(InputError, match="cannot resume, the earlier run used other settings"):
        run_video(frames, out, _options("masks", resume=True))
    settings = json.loads((out / "summary.json").read_text())["settings"]
    assert settings["method_options"]["segmentation"] == str(masks.resolve())
    assert settings["inputs"]["segmentation"] == [str(masks.resolve()), ["folder"]]


def test_path_identity_and_named_path(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "a").write_bytes(b"12")
    before = path_identity(folder / "a")
    assert before is not None and before[0] == 2 and path_identity(tmp_path / "missing") is None
    (folder / "a").write_bytes(b"34")  # same size, same name: the time tells
    os.utime(folder / "a", ns=(5, 5))
    assert path_identity(folder / "a") == [2, 5] and path_identity(folder) == ["folder"]
    monkeypatch.chdir(tmp_path)
    real = str(folder.resolve())
    assert named_path("f") == (real, real)
    assert named_path("camvid:f", "prefixed") == ("camvid:" + real, real)
    assert named_path("f/a:f", "prefixed") is None  # (f/a is no NAME: not read as NAME:PATH)
    assert named_path("camvid") is None and named_path("dog:thing,water:plane") is None and named_path(None) is None
    (tmp_path / "camvid").mkdir()  # a folder named as the shipped segmenter and label set: still their names
    assert named_path("camvid", "prefixed") is None and named_path("camvid", "file") is None
    assert named_path("f", "file") is None and named_path("f/a", "file") == (real + "/a", real + "/a")


def test_the_fingerprint_names_a_gpu_without_needing_one(tmp_path: Path) -> None:
    """`batch --device cuda --resume` was refused on a driver without a GPU (its workers have them): making
    the fingerprint built the options, which check that the device is there."""
    frames, _ = _clip(tmp_path)
    given = RunOptions(method="discrete", method_options={"device": "cuda"}, progress=False)
    assert given.fingerprint(frames)["method_options"]["device"] == "cuda"
    default = RunOptions(method="discrete", progress=False).fingerprint(frames)["method_options"]
    assert default["device"] == "cpu"
