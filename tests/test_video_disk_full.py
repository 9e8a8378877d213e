"""Videos on a full disk: VideoWriter (flow.mp4, panel.mp4) and the intermediate's SegmentWriter.

A full disk is simulated without root: a file size limit (``RLIMIT_FSIZE``, in a subprocess, so that FFmpeg
inherits it: writes past it fail as on a full disk) or ``/dev/full`` (every write: ENOSPC). FFmpeg that
cannot write the trailer (mp4 ``moov``) used to exit non-zero unchecked, and the unplayable file replaced
the good one from an earlier run; FFmpeg dying mid-stream gave imageio-ffmpeg's "Broken pipe" error with
the whole FFmpeg command and the hidden temporary name.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import semflow
import semflow.io.ffmpeg as ffmpeg
import semflow.io.video as video
from semflow.errors import SemflowError
from semflow.io.video import VideoWriter

LIMITED = r"""
import json, resource, signal, sys
from pathlib import Path

import numpy as np

kind, limit, count, target = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from semflow import flowvideo
from semflow.io.video import VideoWriter

rng = np.random.default_rng(0)
stage = "write"
try:
    if kind == "segment":
        writer = flowvideo.SegmentWriter(target, 0, (48, 64), "f", 1e5)
        for _ in range(count):
            writer.add((rng.normal(0, 5, (48, 64, 2)).astype(np.float32), None, None))
        stage = "close"
        writer.close()
    else:
        writer = VideoWriter(target, 10)  # no context manager: close() must clean up by itself
        for _ in range(count):
            writer.write(rng.integers(0, 256, (48, 64, 3), np.uint8))
        stage = "close"
        writer.close()
    print(json.dumps({"error": None}))
except Exception as exc:
    print(json.dumps({"error": str(exc), "type": type(exc).__name__, "stage": stage}))
"""
FINISHED_5 = 14_898
"""Bytes of the finished 5-frame video (64x48 noise): its frames and trailer are written at the end."""
TRAILER_LIMIT = 8_000
"""Far below FINISHED_5: the trailer cannot be written."""
MID_STREAM = (4_000, 200)
"""A limit and a frame count: FFmpeg fails after some 25 frames, while frames are still sent to it."""


def run_limited(kind: str, limit: int, count: int, target: Path) -> dict:
    """Write ``count`` noise frames (or pairs) to ``target`` in a subprocess whose files may not exceed
    ``limit`` bytes; returns what it reports (``error``: the exception's text or None)."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(Path(semflow.__file__).resolve().parents[1]),
                                         *filter(None, [env.get("PYTHONPATH")])])
    proc = subprocess.run([sys.executable, "-c", LIMITED, kind, str(limit), str(count), str(target)],
                          capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", f"FFmpeg's own lines reached the terminal: {proc.stderr!r}"
    return json.loads(proc.stdout)


def good_video(path: Path, count: int = 5) -> bytes:
    """Write a playable video of ``count`` noise frames to ``path``; returns its bytes."""
    rng = np.random.default_rng(1)
    with VideoWriter(path, 10) as writer:
        for _ in range(count):
            writer.write(rng.integers(0, 256, (48, 64, 3), np.uint8))
    return path.read_bytes()


def assert_one_clear_line(error: str | None, target: Path) -> None:
    assert error is not None, "the broken video was accepted"
    assert len(error.splitlines()) == 1, error
    assert str(target) in error, error
    assert "FFmpeg could not" in error and "FFMPEG COMMAND" not in error and ".partial" not in error, error


def test_the_size_of_the_videos_these_tests_write(tmp_path: Path) -> None:
    """The limits below rest on this size (no limit: a whole video)."""
    assert abs(len(good_video(tmp_path / "v.mp4")) - FINISHED_5) < 3000
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_a_trailer_that_cannot_be_written_is_an_error_and_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "flow.mp4"
    report = run_limited("video", TRAILER_LIMIT, 5, target)
    assert_one_clear_line(report["error"], target)
    assert report["stage"] == "close"
    assert list(tmp_path.iterdir()) == []  # no unplayable flow.mp4, and close() removed its temporary file


def test_the_video_of_an_earlier_run_stays_when_the_new_one_cannot_be_finished(tmp_path: Path) -> None:
    target = tmp_path / "flow.mp4"
    before = good_video(target)
    report = run_limited("video", TRAILER_LIMIT, 5, target)
    assert_one_clear_line(report["error"], target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["flow.mp4"]  # no temporary file left


def test_ffmpeg_failing_mid_stream_is_one_line_naming_the_output(tmp_path: Path) -> None:
    target = tmp_path / "panel.mp4"
    before = good_video(target)
    report = run_limited("video", *MID_STREAM, target)
    assert_one_clear_line(report["error"], target)
    assert report["stage"] == "write"  # (not at close: the frames were still being written)
    assert "Broken pipe" not in report["error"]
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["panel.mp4"]  # write() removed its temporary file


def test_a_segment_that_cannot_be_finished_is_an_error_and_leaves_no_segment(tmp_path: Path) -> None:
    report = run_limited("segment", 2_000, 3, tmp_path)
    assert report["error"] is not None, "the broken segment was accepted"
    assert report["stage"] == "close" and len(report["error"].splitlines()) == 1
    assert "FFmpeg could not" in report["error"] and str(tmp_path) in report["error"]
    assert list(tmp_path.iterdir()) == []  # neither a segment under its final name nor the .part file


def fill_the_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on VideoWriter's temporary files are links to /dev/full (every write: No space left on device)."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    made = iter(range(100))

    def temp_beside(path: os.PathLike, suffix: str | None = None) -> Path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        link = Path(path).parent / f".full{next(made)}{suffix}"
        link.symlink_to("/dev/full")
        return link

    monkeypatch.setattr(video, "temp_path_beside", temp_beside)


@pytest.mark.parametrize("count", [5, 200], ids=["at-close", "mid-stream"])
def test_a_full_disk_is_named_as_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int,
                                            capfd: pytest.CaptureFixture) -> None:
    target = tmp_path / "flow.mp4"
    before = good_video(target)
    fill_the_disk(monkeypatch)
    rng = np.random.default_rng(0)
    with pytest.raises(SemflowError) as caught, VideoWriter(target, 10) as writer:
        for _ in range(count):
            writer.write(rng.integers(0, 256, (48, 64, 3), np.uint8))
    assert str(caught.value) == f"{target}: FFmpeg could not finish the video: No space left on device"
    assert capfd.readouterr().err == ""  # FFmpeg's own lines stay out of the terminal
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["flow.mp4"]


def test_an_mp4_without_its_whole_index_is_not_complete(tmp_path: Path) -> None:
    """The second check before a video is moved into place (an FFmpeg that exits 0 on a failed trailer)."""
    data = good_video(tmp_path / "v.mp4")
    assert ffmpeg.mp4_complete(tmp_path / "v.mp4")
    for cut in (4096, len(data) - 1, 7):  # the probe's 4096-byte flow.mp4 ("moov atom not found"), a cut index
        (tmp_path / "cut.mp4").write_bytes(data[:cut])
        assert not ffmpeg.mp4_complete(tmp_path / "cut.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    assert not ffmpeg.mp4_complete(tmp_path / "empty.mp4")
    # a 64-bit box size smaller than its own 16-byte header passed as a whole file holding a 'moov'
    (tmp_path / "tiny.mp4").write_bytes((1).to_bytes(4, "big") + b"moov" + (8).to_bytes(8, "big"))
    assert not ffmpeg.mp4_complete(tmp_path / "tiny.mp4")


def test_a_staged_video_is_named_as_the_output_it_becomes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fill_the_disk(monkeypatch)
    staged, output = tmp_path / ".stage-x1y2" / "overlay.mp4", tmp_path / "overlay.mp4"
    with pytest.raises(SemflowError, match="^" + re.escape(f"{output}: FFmpeg could not")), \
            VideoWriter(staged, 10, name=output) as writer:
        writer.write(np.zeros((48, 64, 3), np.uint8))
    assert list(staged.parent.iterdir()) == []
