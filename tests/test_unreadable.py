"""Files that exist but cannot be read (another user's, mode 000) are said to be unreadable, not damaged or
of the wrong kind. Root reads whatever the mode, so the refusal is simulated: reading the file raises the
PermissionError a non-root user gets (found running the suite and the CLI as a non-root user)."""

from __future__ import annotations

import builtins
from pathlib import Path

import pytest

from semflow.errors import InputError, WeightsError


def deny_reading(monkeypatch: pytest.MonkeyPatch, target: Path) -> None:
    """Opening or reading ``target`` raises PermissionError, as for a non-root user and a file of mode 000."""
    real_open, real_read_text = builtins.open, Path.read_text

    def opening(file, *args, **kwargs):
        if Path(str(file)) == target:
            raise PermissionError(13, "Permission denied", str(target))
        return real_open(file, *args, **kwargs)

    def reading(self, *args, **kwargs):
        if self == target:
            raise PermissionError(13, "Permission denied", str(target))
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", opening)
    monkeypatch.setattr(Path, "read_text", reading)


def test_unreadable_weights_are_said_to_be_unreadable(tmp_path: Path, monkeypatch) -> None:
    """It said "cannot read segmenter weights: not a torch weights file"."""
    import torch

    from semflow.io.weights import load_torch_file

    weights = tmp_path / "mymodel.pt"
    torch.save({"w": torch.zeros(2)}, weights)
    deny_reading(monkeypatch, weights)
    with pytest.raises(WeightsError, match=r"mymodel.pt: cannot read segmenter weights: Permission denied$"):
        load_torch_file(weights, "segmenter weights")


def test_an_unreadable_label_set_is_said_to_be_unreadable(tmp_path: Path, monkeypatch) -> None:
    """It said "not a label-set JSON file (PermissionError: [Errno 13] ...)"."""
    from semflow.segmentation.labels import get_label_set

    spec = tmp_path / "mine.json"
    spec.write_text('{"class_names": ["a", "b"]}')
    deny_reading(monkeypatch, spec)
    with pytest.raises(InputError, match=r"mine.json: cannot read the label-set file: Permission denied$"):
        get_label_set(spec)


def test_resume_with_an_unreadable_state_is_not_called_damaged(make_frames, tmp_path: Path, monkeypatch) -> None:
    """It said the work folder was damaged and to run again without --resume, which throws the pairs away."""
    from semflow.pipeline import WORK_DIR, RunOptions, run_video

    frames = make_frames(5)
    (frames / "0003.png").write_bytes(b"corrupt")  # the run stops there, its work folder kept
    out = tmp_path / "out"
    with pytest.raises(InputError):
        run_video(frames, out, RunOptions(method="dis-fast"))
    state = out / WORK_DIR / "state.json"
    assert state.is_file()
    deny_reading(monkeypatch, state)
    with pytest.raises(InputError, match=r"state.json: cannot read the work folder's state: Permission denied$"):
        run_video(frames, out, RunOptions(method="dis-fast", resume=True))
