"""Files and folders named or written by someone else (a security probe): a file's name is never read as an
FFmpeg protocol, and a file's content never makes semflow read other files."""

from __future__ import annotations

from pathlib import Path

import pytest

from semflow.errors import InputError
from semflow.io.video import FrameSource


def test_a_video_named_like_an_ffmpeg_protocol_is_read_as_a_file(make_video, monkeypatch, tmp_path: Path) -> None:
    """A file named ``concat:clip.mp4`` in the working folder (``semflow run *``, a quoted glob there) was handed
    to OpenCV as it is: FFmpeg's concat protocol read clip.mp4 in its place (``http:HOST`` made a request)."""
    make_video(3)
    (tmp_path / "concat:clip.mp4").write_bytes(b"not a video, whatever its name says")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="not a readable video"):
        FrameSource("concat:clip.mp4")
