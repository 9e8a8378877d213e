"""Files and folders named or written by someone else (a security probe): a file's name is never read as an
FFmpeg protocol, and a file's content never makes semflow read other files."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
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


def _playlists(folder: Path, video: Path) -> list[Path]:
    """An HLS playlist naming a local video by its absolute path, and an ffconcat one naming it beside it."""
    import subprocess

    import imageio_ffmpeg

    private = folder / "private.ts"  # (HLS reads the segments it names by their extension: .ts, .mp4, .mkv...)
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(video), "-c", "copy", "-f", "mpegts",
                    str(private)], check=True)
    hls, concat = folder / "clip.m3u8", folder / "clip.mp4"
    hls.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{private}\n#EXT-X-ENDLIST\n")
    concat.write_text("ffconcat version 1.0\nfile private.ts\n")
    return [hls, concat]


@pytest.mark.parametrize("kind", [0, 1], ids=["hls", "ffconcat"])
def test_a_playlist_given_as_a_video_is_refused(make_video, tmp_path: Path, kind: int) -> None:
    """A playlist (HLS .m3u8, FFmpeg's ffconcat) given as a video, in a folder or a glob of someone's clips, made
    FFmpeg read the files it names in its place: another of the user's videos, by its absolute path, came out
    drawn in flow.mp4 and panel.mp4, for whoever made the playlist to be shown."""
    playlist = _playlists(tmp_path, make_video(3, name="source.mp4"))[kind]
    with pytest.raises(InputError, match="playlist"):
        FrameSource(playlist)


def test_the_video_opened_is_the_file_checked_through_links_and_dots(make_video, tmp_path: Path) -> None:
    """open_capture checked the file the system opens for `link/../clip.mp4` (real/clip.mp4, a video) but gave
    OpenCV the name made absolute by its text (clip.mp4 beside `link`: a playlist), which read secret.mp4."""
    import shutil

    (tmp_path / "real" / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real" / "sub")
    shutil.move(make_video(3, name="video.mp4", seed=1), tmp_path / "real" / "clip.mp4")
    make_video(3, name="secret.mp4", seed=2)
    (tmp_path / "clip.mp4").write_text("ffconcat version 1.0\nfile secret.mp4\n")
    first = next(iter(FrameSource(tmp_path / "link" / ".." / "clip.mp4")))
    assert np.array_equal(first, next(iter(FrameSource(tmp_path / "real" / "clip.mp4"))))
    assert not np.array_equal(first, next(iter(FrameSource(tmp_path / "secret.mp4"))))


@pytest.mark.parametrize("kind", [0, 1], ids=["hls", "ffconcat"])
def test_a_playlist_is_not_handed_to_ffmpeg_by_the_keyframe_probe(make_video, tmp_path: Path, monkeypatch,
                                                                    kind: int) -> None:
    """The keyframe probe (a batch's driver starts them ahead of the checks) ran FFmpeg on a playlist before its
    check refused it: FFmpeg read the files the playlist names."""
    import subprocess

    from semflow.io import ffmpeg

    playlist = _playlists(tmp_path, make_video(3, name="source.mp4"))[kind]
    ran: list = []
    monkeypatch.setattr(subprocess, "run", lambda *args, **kwargs: ran.append(args) or subprocess.CompletedProcess(
        args, 0, b"", b""))
    assert ffmpeg.probe_keyframes(playlist) == ffmpeg.KeyframeReport() and ran == []
    ffmpeg.probe_keyframes(tmp_path / "source.mp4")
    assert len(ran) == 1  # (a video is probed: the stand-in was reached)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="caps the memory with Linux's /proc and RLIMIT_AS")
def test_a_flow_file_numbered_in_the_trillions_costs_no_memory(tmp_path: Path) -> None:
    """One file named 99999999999999.flo in a folder of flows (--baseline-flows) made the check for gaps list every
    number below it: all the memory there was (a one-line 'out of memory' at last, the machine stalled meanwhile)."""
    import resource
    import struct

    from semflow.baseline import GivenFlows
    from semflow.errors import SemflowWarning

    folder = tmp_path / "flows"
    folder.mkdir()
    for stem in ("000000", "000002", "99999999999999"):
        (folder / f"{stem}.flo").write_bytes(b"PIEH" + struct.pack("<ii", 1, 1) + bytes(8))
    before = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as statm:
        used = int(statm.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (used + (1 << 30), before[1]))  # 1 GiB more at most
    try:
        with pytest.warns(SemflowWarning, match=r"at frame 1 \(99999999999997 missing before 99999999999999, the last"):
            GivenFlows(folder)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, before)


def test_a_local_ray_keeps_its_session_in_a_folder_of_its_owners_alone(monkeypatch, tmp_path: Path) -> None:
    """Ray makes every folder of its session writable by every user (0777, /tmp/ray/session_*/sockets and logs
    among them): another user of the machine could replace the sockets the batch's workers connect to, or
    its logs by links. The local Ray a batch starts keeps its session below a folder of its owner's alone."""
    import os
    import stat

    from semflow.batch import cluster

    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # (the token's file is another test's)
    monkeypatch.setattr(cluster, "child_processes", dict)
    given: list[dict] = []
    cluster.start_ray(lambda **settings: given.append(settings), None, 1)
    temp = Path(given[0]["_temp_dir"])
    info = temp.parent.lstat()
    assert temp.is_absolute() and temp.parent.parent == tmp_path
    assert stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) == 0o700
    theirs = temp.parent
    theirs.chmod(0o777)  # a folder of that name that others may write in (or another user's): not used
    cluster.start_ray(lambda **settings: given.append(settings), None, 1)
    temp = Path(given[1]["_temp_dir"])
    assert temp.parent != theirs and stat.S_IMODE(temp.parent.lstat().st_mode) == 0o700


@pytest.mark.parametrize("name", ["...mp4", "..mp4"])
def test_segment_gives_a_video_named_dot_dot_a_folder_of_its_own(make_video, tmp_path: Path, name: str) -> None:
    """Of several videos, each gets OUT/<its stem>/: a video named ``...mp4`` (stem ``..``; ``..mp4``: ``.``) had
    OUT/.. (OUT/.), and its frames' label maps went to OUT itself, where the staging put them, unchecked against
    the other outputs (an image's OUT/000000.png was written over without a word)."""
    from semflow.segmentation.segment import segment_inputs

    videos = [make_video(2), make_video(2, name=name)]
    out = tmp_path / "out"
    written = segment_inputs(videos, out, temporal=False, progress=False)
    assert not list(out.glob("*.png")) and not list(tmp_path.glob("0*.png"))
    assert sorted(p.relative_to(out).as_posix() for p in written) == sorted(
        [f"clip/{k:06d}.png" for k in range(2)] + [f"{name}/{k:06d}.png" for k in range(2)])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Ray takes TMPDIR on Linux only")
def test_a_local_ray_session_folder_keeps_its_socket_names_short_enough(monkeypatch, tmp_path: Path) -> None:
    """Ray refuses a socket name over 107 bytes: a TMPDIR Ray alone could use (its sessions in TMPDIR/ray) could
    be too long once semflow-ray-UID is added; the folder Ray would use is the parent (TMPDIR on Linux)."""
    import shutil
    import tempfile

    from semflow.batch import cluster

    monkeypatch.delenv("RAY_TMPDIR", raising=False)
    short = Path(tempfile.mkdtemp(prefix="s", dir="/tmp"))  # /tmp/sXXXXXXXX: room for the sockets
    long = tmp_path / ("x" * 60)
    long.mkdir()
    try:
        for given, parent in ((short, short), (long, Path("/tmp"))):
            monkeypatch.setenv("TMPDIR", str(given))
            temp = Path(cluster.private_temp_dir())
            assert temp.parent.parent == parent
            assert len(str(temp / cluster.SESSION_SOCKET).encode()) <= cluster.SOCKET_PATH_MAX
    finally:
        shutil.rmtree(short)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "not" / "yet"))  # (Ray makes one that is not there)
    assert Path(cluster.private_temp_dir()).parent.parent == tmp_path / "not" / "yet"
