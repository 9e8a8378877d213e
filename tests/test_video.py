"""Streaming video input (FrameSource) and H.264 output (VideoWriter)."""

from __future__ import annotations

import inspect
import os
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from semflow.errors import InputError, SemflowWarning
from semflow.io.images import read_image, write_image
from semflow.io.video import FrameSource, VideoWriter, resize_max_side


def codec_of(path: Path) -> str:
    cap = cv2.VideoCapture(str(path))
    try:
        return int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode("ascii", "replace").lower()
    finally:
        cap.release()


def decoded_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame[..., ::-1])
    cap.release()
    return frames


# --- FrameSource --------------------------------------------------------------------------------


def test_folder_source_streams_frames_in_name_order(make_frames) -> None:
    folder = make_frames(5, 30, 40)
    (folder / "notes.txt").write_text("not a frame")
    source = FrameSource(folder)
    assert len(source) == 5
    frames = iter(source)
    assert inspect.isgenerator(frames)
    got = list(frames)
    assert len(got) == 5 and all(f.shape == (30, 40, 3) and f.dtype == np.uint8 for f in got)
    for k, frame in enumerate(got):
        np.testing.assert_array_equal(frame, read_image(folder / f"{k:04d}.png"))
    assert list(FrameSource(folder))[2].tobytes() == got[2].tobytes()  # iterating again starts over


def test_folder_source_reads_lazily(make_frames) -> None:
    """A frame is read when it is reached, not when the source is opened: a broken last frame fails late."""
    folder = make_frames(4)
    source = FrameSource(folder)
    (folder / "0003.png").write_bytes(b"broken")
    it = iter(source)
    for _ in range(3):
        assert next(it).shape == (48, 64, 3)
    with pytest.raises(InputError, match="0003.png: cannot decode"):
        next(it)


def test_max_frames_and_max_side(make_frames) -> None:
    folder = make_frames(5, 48, 64)
    source = FrameSource(folder, max_frames=3, max_side=32)
    assert len(source) == 3
    frames = list(source)
    assert len(frames) == 3 and frames[0].shape == (24, 32, 3)
    big = FrameSource(folder, max_side=1000)
    assert next(iter(big)).shape == (48, 64, 3)  # never enlarged


def test_resize_max_side() -> None:
    img = np.zeros((100, 300, 3), np.uint8)
    assert resize_max_side(img, 150).shape == (50, 150, 3)
    assert resize_max_side(img, None) is img
    assert resize_max_side(img, 300) is img
    assert resize_max_side(np.zeros((3, 1000, 3), np.uint8), 100).shape == (2, 100, 3)  # at least 2 px


def test_video_source_reads_what_the_writer_wrote(make_video, make_frames) -> None:
    path = make_video(6, 48, 64, fps=12.5)
    originals = list(FrameSource(make_frames(6, 48, 64)))  # the same frames, lossless
    source = FrameSource(path)
    assert len(source) == 6
    assert source.fps == pytest.approx(12.5)
    frames = list(source)
    assert len(frames) == 6 and frames[0].shape == (48, 64, 3) and frames[0].dtype == np.uint8
    for got, want in zip(frames, originals):
        assert np.abs(got.astype(int) - want).mean() < 8  # lossy but close, and in RGB order
    assert len(list(FrameSource(path, max_frames=2))) == 2
    assert next(iter(FrameSource(path, max_side=32))).shape == (24, 32, 3)


def test_video_source_keeps_rgb_order(tmp_path: Path) -> None:
    frame = np.zeros((32, 32, 3), np.uint8)
    frame[..., 0] = 220  # red
    with VideoWriter(tmp_path / "red.mp4", 5) as writer:
        writer.write(frame)
        writer.write(frame)
    got = next(iter(FrameSource(tmp_path / "red.mp4")))
    assert got[16, 16, 0] > 180 and got[16, 16, 2] < 60


def test_source_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        FrameSource(tmp_path / "missing.mp4")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images")
    with pytest.raises(InputError, match=r"holds no images$"):
        FrameSource(tmp_path / "empty")
    (tmp_path / "empty" / "clip.MP4").write_bytes(b"")  # a folder of videos given to run: say so
    with pytest.raises(InputError, match=r"empty: folder holds no images \(it holds videos: give one of them"):
        FrameSource(tmp_path / "empty")
    (tmp_path / "text.mp4").write_text("not a video at all")
    with pytest.raises(InputError, match="not a readable video"):
        FrameSource(tmp_path / "text.mp4")
    (tmp_path / "zero.avi").write_bytes(b"")
    with pytest.raises(InputError, match="not a readable video"):
        FrameSource(tmp_path / "zero.avi")


# --- VideoWriter --------------------------------------------------------------------------------


def test_writer_makes_h264_mp4_with_all_frames(make_video) -> None:
    path = make_video(5, 48, 64)
    assert codec_of(path) in ("h264", "avc1")
    data = path.read_bytes()
    assert b"ftyp" in data[:32] and b"avc1" in data  # an mp4 whose video track is AVC (H.264)
    frames = decoded_frames(path)
    assert len(frames) == 5 and frames[0].shape == (48, 64, 3)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no partial file left


def test_writer_puts_the_index_first_for_browsers(make_video) -> None:
    """The mp4 had its index (moov) at the end: a browser must download the whole file before it plays."""
    path = make_video(6)
    data = path.read_bytes()
    kinds, at = [], 0
    while at < len(data):
        kinds.append(data[at + 4:at + 8])
        at += int.from_bytes(data[at:at + 4], "big")
    assert kinds.index(b"moov") < kinds.index(b"mdat")


def test_writer_pads_odd_sizes(tmp_path: Path) -> None:
    frame = np.full((33, 45, 3), 90, np.uint8)
    with VideoWriter(tmp_path / "odd.mp4", 5) as writer:
        for _ in range(3):
            writer.write(frame)
        assert writer.frames == 3
    frames = decoded_frames(tmp_path / "odd.mp4")
    assert len(frames) == 3 and frames[0].shape == (34, 46, 3)
    assert np.abs(frames[0].astype(int) - 90).max() < 8  # padding repeats the edge


def test_writer_file_appears_only_on_close(tmp_path: Path) -> None:
    target = tmp_path / "v.mp4"
    writer = VideoWriter(target, 5)
    writer.write(np.zeros((16, 16, 3), np.uint8))
    assert not target.exists()  # ffmpeg writes to the hidden temporary name
    writer.close()
    assert target.exists() and not writer.tmp.exists()


def test_writer_deletes_partial_file_on_error(tmp_path: Path) -> None:
    target = tmp_path / "v.mp4"
    with pytest.raises(RuntimeError, match="boom"), VideoWriter(target, 5) as writer:
        writer.write(np.zeros((16, 16, 3), np.uint8))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_a_frame_of_another_size(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="size changed"), VideoWriter(tmp_path / "v.mp4", 5) as writer:
        writer.write(np.zeros((16, 16, 3), np.uint8))
        writer.write(np.zeros((20, 16, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_writer_accepts_gray_frames_and_keeps_the_previous_file_on_abort(tmp_path: Path) -> None:
    target = tmp_path / "v.mp4"
    with VideoWriter(target, 5) as writer:
        writer.write(np.full((16, 16), 200, np.uint8))
    before = target.read_bytes()
    with pytest.raises(KeyboardInterrupt), VideoWriter(target, 5) as writer:
        writer.write(np.zeros((16, 16, 3), np.uint8))
        raise KeyboardInterrupt
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_folder_frames_follow_their_numbers_not_the_alphabet(tmp_path: Path) -> None:
    """frame2 comes before frame10 (a plain sort would put frame10 first and pair the wrong frames)."""
    folder = tmp_path / "numbered"
    for k in (1, 2, 3, 10, 11):
        write_image(folder / f"frame{k}.png", np.full((8, 8, 3), k, np.uint8))
    with pytest.warns(SemflowWarning, match="frame numbers skip from frame3.png to frame10.png"):
        assert [p.name for p in FrameSource(folder).images] == [f"frame{k}.png" for k in (1, 2, 3, 10, 11)]
    with pytest.warns(SemflowWarning, match="frame numbers skip"):
        assert [int(f[0, 0, 0]) for f in FrameSource(folder)] == [1, 2, 3, 10, 11]


@pytest.mark.parametrize("odd", ["fifo", "device", "dangling link"])
def test_a_frame_that_is_not_a_regular_file_is_named_not_skipped(make_frames, tmp_path: Path, odd: str) -> None:
    # Skipped, it joined frames 0 and 2 into one pair (or left "need at least 2 frames, got 1").
    import os

    from semflow.segmentation.segment import segment_inputs

    folder = make_frames(3)
    frame = folder / "0001.png"
    frame.unlink()
    if odd == "fifo":
        os.mkfifo(frame)
    else:
        frame.symlink_to("/dev/zero" if odd == "device" else tmp_path / "missing.png")
    with pytest.raises(InputError, match="0001.png: not a regular file"):
        FrameSource(folder)
    with pytest.raises(InputError, match="0001.png: not a regular file"):
        segment_inputs([folder], tmp_path / "labels")
    assert not (tmp_path / "labels").exists()


def test_a_video_whose_name_is_not_utf8_is_read(tmp_path: Path) -> None:
    """OpenCV's binding crashed the process (SIGSEGV, nothing on stderr) on a file name whose bytes are not
    UTF-8: `semflow run $'bad\\xff.mp4'` died with exit 139. Run in a child so a crash fails this test."""
    import subprocess
    import sys

    from conftest import _cli_env

    name = tmp_path / os.fsdecode(b"bad\xff.mp4")
    with VideoWriter(name, 5) as writer:
        for k in range(4):
            writer.write(np.full((16, 24, 3), 40 * k, np.uint8))
    script = "import sys; from semflow.io.video import FrameSource; s = FrameSource(sys.argv[1]); print(len(s), len(list(s)))"
    proc = subprocess.run([os.fsencode(sys.executable), b"-c", script.encode(), os.fsencode(name)], env=_cli_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.split() == ["4", "4"], (proc.returncode, proc.stderr)
    fifo = tmp_path / os.fsdecode(b"pipe\xff.mp4")  # opened to reach /proc/self/fd: it must not block
    os.mkfifo(fifo)
    proc = subprocess.run([os.fsencode(sys.executable), b"-c", script.encode(), os.fsencode(fifo)], env=_cli_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stderr.splitlines()[-1].endswith("not a regular file"), proc.stderr


@pytest.mark.parametrize("kwargs, match", [({"fps": 0}, "fps must be"), ({"fps": -5}, "fps must be"),
                                           ({"fps": float("nan")}, "fps must be"), ({"fps": "25"}, "fps must be"),
                                           ({"quality": 20}, "quality must be a number from 0 to 10")])
def test_writer_refuses_bad_settings_when_made(tmp_path: Path, kwargs, match) -> None:
    """fps 0 or quality 20 were OutputErrors ("FFmpeg could not finish the video") at the first frame."""
    with pytest.raises(InputError, match=match):
        VideoWriter(tmp_path / "v.mp4", **kwargs)
    assert not list(tmp_path.iterdir())


def test_writer_refuses_a_frame_one_pixel_larger_than_an_odd_first(tmp_path: Path) -> None:
    """63x47 then 64x48 passed: the sizes were compared padded to even."""
    with pytest.raises(InputError, match="video frame size changed from 63x47 to 64x48"):
        with VideoWriter(tmp_path / "v.mp4", fps=np.float64(5)) as writer:
            writer.write(np.zeros((47, 63, 3), np.uint8))
            writer.write(np.zeros((48, 64, 3), np.uint8))
    assert not list(tmp_path.iterdir())


def test_a_video_whose_frame_size_changes_midway_is_refused_not_stretched(tmp_path: Path) -> None:
    """OpenCV scales every frame to the first one's size and reports that size: a clip of 64x48 then 32x48
    frames was read with its later frames stretched twice as wide, and their flows twice as large, without
    a word (a folder of such frames is refused). FFmpeg's keyframes now say where the size changes."""
    import subprocess

    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    for name, size in (("a.mkv", "64x48"), ("b.mkv", "32x48")):
        subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=10", "-t", "0.6",
                        "-c:v", "libx264", "-g", "3", "-pix_fmt", "yuv420p", str(tmp_path / name)], check=True)
    (tmp_path / "list.txt").write_text("file 'a.mkv'\nfile 'b.mkv'\n")
    subprocess.run([ffmpeg, "-v", "error", "-f", "concat", "-safe", "0", "-i", str(tmp_path / "list.txt"), "-c", "copy",
                    str(tmp_path / "changes.mkv")], check=True)
    with pytest.raises(InputError, match=r"changes\.mkv: its frame size changes from 64x48 to 32x48 0\.60 s in"):
        FrameSource(tmp_path / "changes.mkv")
    assert len(list(FrameSource(tmp_path / "changes.mkv", max_frames=4))) == 4  # the frames before the change
    assert [frame.shape for frame in FrameSource(tmp_path / "a.mkv")] == [(48, 64, 3)] * 6


def test_a_size_change_past_the_seconds_max_frames_probed_is_refused(tmp_path: Path) -> None:
    """--max-frames probes the keyframes of its frames' seconds at the clip's fps: a clip of 6 frames at 30 fps,
    then 5 at 5 fps, then 3 at half the width (OpenCV says 30 fps) was probed for 13 / 30 s, and its frames 11
    and 12 were read stretched without a word (a browser's recording keeps no frame rate). The whole file is
    probed once the frames run past those seconds; those before the change are read."""
    import subprocess

    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    for name, size, rate, seconds in (("a", "64x48", 30, 0.2), ("b", "64x48", 5, 1), ("c", "32x48", 5, 0.6)):
        subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}", "-t",
                        str(seconds), "-c:v", "libx264", "-pix_fmt", "yuv420p", str(tmp_path / f"{name}.mkv")], check=True)
    (tmp_path / "list.txt").write_text("file 'a.mkv'\nfile 'b.mkv'\nfile 'c.mkv'\n")
    subprocess.run([ffmpeg, "-v", "error", "-f", "concat", "-safe", "0", "-i", str(tmp_path / "list.txt"), "-c", "copy",
                    str(tmp_path / "slower.mkv")], check=True)
    source = FrameSource(tmp_path / "slower.mkv", max_frames=13)
    assert source.fps == 30 and len(source) == 13
    with pytest.raises(InputError, match=r"slower\.mkv: its frame size changes from 64x48 to 32x48 1\.20 s in"):
        list(source)
    assert len(list(FrameSource(tmp_path / "slower.mkv", max_frames=11))) == 11


def test_a_video_whose_keyframe_decodes_damaged_is_warned_about(tmp_path: Path, recwarn) -> None:
    """FFmpeg conceals a damaged keyframe: every frame still 'decodes', so a clip whose first keyframe was
    zeroed gave garbled frames and near-zero flows without a word (nothing was short)."""
    from conftest import keyframe_damaged_mp4

    from semflow.pipeline import RunOptions, run_video

    damaged, whole = keyframe_damaged_mp4(tmp_path)
    source = FrameSource(damaged)
    said = [str(w.message) for w in recwarn if issubclass(w.category, SemflowWarning)]
    assert len(list(source)) == 9 and source.shortfall() is None  # nothing short: only FFmpeg's log tells
    assert said == [source.damage_note] and "damaged.mp4: 1 of its keyframes decode damaged (the first 0.00 s in" in said[0]
    recwarn.clear()
    assert FrameSource(whole).damage_note is None and not [w for w in recwarn if issubclass(w.category, SemflowWarning)]
    summary = run_video(damaged, tmp_path / "out", RunOptions(method="dis-fast", progress=False))
    assert summary["damaged_keyframes"] == source.damage_note


def test_a_variable_frame_rate_video_read_whole_is_not_called_truncated(tmp_path: Path) -> None:
    """A Matroska file keeps no frame count: OpenCV estimates one, its duration times its (fastest) frame rate.
    A whole clip of 10 frames at 25 fps then 20 at 5 fps was "106 frames", and read whole was warned about as
    "read 30 of the 106 frames ... (the file is truncated or corrupt)", recorded truncated. Its last frame
    reaches the end of its duration: not short. The same clip cut short still is."""
    from conftest import variable_rate_mkv

    clip = variable_rate_mkv(tmp_path / "vfr.mkv")
    source = FrameSource(clip)
    estimate = source.declared  # (OpenCV's: 106 with 5.1, 105 with 5.0)
    assert estimate > 100 and len(list(source)) == 30 and source.frames_read == 30
    assert source.shortfall() is None
    data = clip.read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[:len(data) // 2])
    cut = FrameSource(tmp_path / "cut.mkv")
    read = len(list(cut))
    assert 10 < read < 30 and cut.shortfall() is not None and f"read {read} of the {estimate} frames" in cut.shortfall()


def test_a_clip_whose_container_keeps_no_frame_count_is_counted_by_its_packets(tmp_path: Path) -> None:
    """len() (the progress bar's total, batch's chunk plan, summary.json's frames_expected) was OpenCV's estimate
    where the container keeps no exact count: 106 for a whole Matroska clip of 30 frames at a variable frame rate
    (its duration times its fastest rate), and for the same stream in an AVI (its count takes in the empty chunks
    of frames shown longer). The keyframe probe, which demuxes the whole file anyway, counts its packets: 30. A cut
    clip counts the frames it holds, and is still said to be short of the 106 (its duration's estimate)."""
    import imageio_ffmpeg
    from conftest import variable_rate_mkv

    from semflow.pipeline import RunOptions, run_video

    clip = variable_rate_mkv(tmp_path / "vfr.mkv")
    avi = tmp_path / "vfr.avi"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(clip), "-c:v", "mjpeg", "-fps_mode", "vfr",
                    str(avi)], check=True)
    for path in (clip, avi):
        source = FrameSource(path)
        assert source.declared > 100, path  # (OpenCV's estimate: 106 with 5.1, 105 with 5.0)
        assert (len(source), len(FrameSource(path, max_frames=12))) == (30, 12), path
        assert len(list(source)) == 30 and source.shortfall() is None
    summary = run_video(clip, tmp_path / "out", RunOptions(method="dis-fast", progress=False))
    assert (summary["frames"], summary["frames_expected"], summary["truncated"]) == (30, 30, False)
    data = clip.read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[:len(data) // 2])
    cut = FrameSource(tmp_path / "cut.mkv")
    read, estimate = len(list(cut)), cut.declared
    assert estimate > 100 and len(cut) == read and f"read {read} of the {estimate} frames" in cut.shortfall()
    with pytest.warns(SemflowWarning, match=f"read {read} of the {estimate} frames"):
        summary = run_video(tmp_path / "cut.mkv", tmp_path / "cut", RunOptions(method="dis-fast", progress=False))
    assert (summary["frames"], summary["frames_expected"], summary["truncated"]) == (read, estimate, True)


def test_a_truncated_video_read_with_max_frames_is_not_said_to_declare_that_many(tmp_path: Path) -> None:
    """With --max-frames 30, an AVI that declares 40 frames and holds 14 was said to be "read 14 of the 30 frames its
    container declares": it declares 40. The note says the first 30 of them were asked for, as batch's does."""
    import json

    import cv2

    from semflow.batch.clips import clip_notes

    full = tmp_path / "full.avi"
    writer = cv2.VideoWriter(str(full), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 48))
    for frame in np.random.default_rng(0).integers(0, 256, (40, 48, 64, 3), dtype=np.uint8):
        writer.write(frame)
    writer.release()
    data = full.read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[:len(data) * 4 // 10])
    source = FrameSource(tmp_path / "cut.avi", max_frames=30)
    read = len(list(source))
    assert source.declared == 40 and source.count == 30 and read < 28  # (len: the frames it holds, FFmpeg counts)
    note = f"{tmp_path / 'cut.avi'}: read {read} of the first 30 of the frames its container declares (--max-frames 30;"
    assert source.shortfall().startswith(note)
    summary = {"video": str(tmp_path / "cut.avi"), "frames": read, "frames_expected": 30, "truncated": True,
               "settings": {"max_frames": 30}}
    assert clip_notes(json.loads(json.dumps(summary))) == [source.shortfall()]
    whole = FrameSource(tmp_path / "cut.avi")
    assert len(list(whole)) == read and f"read {read} of the 40 frames its container declares (the" in whole.shortfall()


def test_a_video_is_read_where_no_ffmpeg_can_probe_it(make_video, monkeypatch) -> None:
    """imageio-ffmpeg without a binary for the platform raises RuntimeError: the keyframe probe (a check) must not
    make every video unreadable; the video is read unprobed."""
    import imageio_ffmpeg

    clip = make_video(4)  # (a new file: no probe of it is kept)

    def no_ffmpeg() -> str:
        raise RuntimeError("No ffmpeg exe could be found. Install ffmpeg on your system")

    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", no_ffmpeg)
    assert len(list(FrameSource(clip))) == 4


def test_a_batch_of_many_clips_probes_each_once(monkeypatch, tmp_path: Path) -> None:
    """A probe of `batch` with 200 clips: the driver checks every clip, then each again as it opens; the
    keyframe probe's cache held 64 files, so each clip was probed twice (18 ms a clip each time)."""
    import subprocess

    from semflow.io import ffmpeg

    runs = []
    real_run = subprocess.run
    monkeypatch.setattr(ffmpeg.subprocess, "run", lambda *a, **k: runs.append(1) or real_run(*a, **k))
    ffmpeg._probe_keyframes.cache_clear()
    clips = [tmp_path / f"{k:03d}.mp4" for k in range(100)]
    for clip in clips:
        clip.write_bytes(b"not a video")  # (FFmpeg refuses it at once: an empty report, cached as any)
    for _ in range(2):
        for clip in clips:
            ffmpeg.probe_keyframes(clip)
    assert len(runs) == 100


def test_keyframe_probes_started_ahead_run_ffmpeg_once_each(monkeypatch, make_video, tmp_path: Path) -> None:
    """batch's driver checks its clips one after the other, 15 ms the keyframe probe of a small clip: the
    probes of the next clips start ahead in threads (17 -> 10 ms a clip on 2 cores), each FFmpeg run once,
    with the reports a probe alone gives; a loop left early drops the probes not started."""
    import subprocess
    import threading
    import time

    from semflow.io import ffmpeg

    clips = [make_video(3, name=f"c{k}.mp4", seed=k) for k in range(12)]
    ffmpeg._probe_keyframes.cache_clear()
    alone = [ffmpeg.probe_keyframes(clip) for clip in clips]
    ffmpeg._probe_keyframes.cache_clear()
    runs, lock, real_run = [], threading.Lock(), subprocess.run

    def counted_run(*args, **kwargs):
        with lock:
            runs.append(1)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(ffmpeg.subprocess, "run", counted_run)
    with ffmpeg.keyframes_ahead(clips, count=4, threads=2) as ahead:
        reports = []
        for k, clip in enumerate(clips):
            ahead(k)
            reports.append(ffmpeg.probe_keyframes(clip))
    assert reports == alone and len(runs) == len(clips)
    ffmpeg._probe_keyframes.cache_clear()
    runs.clear()
    with ffmpeg.keyframes_ahead(clips, count=8, threads=1) as ahead:
        ahead(0)  # eight started, then the loop is left: those not begun are dropped
    time.sleep(0.5)
    assert len(runs) < 8
    ffmpeg._probe_keyframes.cache_clear()
    runs.clear()
    with ffmpeg.keyframes_ahead(clips, whole=False) as ahead:  # (--max-frames: the checks probe a part)
        ahead(0)
    time.sleep(0.2)
    assert runs == []


def test_keyframe_probes_ahead_still_running_when_the_loop_stops_are_forgotten_once_done(
        monkeypatch, make_video) -> None:
    """A batch stopped while some probes ahead still ran left them in the module's registry for good: a
    long-lived process (a service starting and stopping batches of new clips) held ever more of them."""
    import os
    import subprocess
    import threading

    from semflow.io import ffmpeg

    clips = [make_video(3, name=f"c{k}.mp4", seed=k) for k in range(4)]
    monkeypatch.setattr(ffmpeg, "_ahead", {})
    release, real_run = threading.Event(), subprocess.run

    def held_run(*args, **kwargs):  # each probe still runs when its loop stops
        release.wait(30)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(ffmpeg.subprocess, "run", held_run)
    for stop in range(5):  # five batches of clips as they now stand (new keys), each stopped at once
        for clip in clips:
            os.utime(clip, ns=(10**9 * (stop + 1),) * 2)
        release.clear()
        with ffmpeg.keyframes_ahead(clips, count=3, threads=3) as ahead:
            ahead(0)
        release.set()
        for thread in [t for t in threading.enumerate() if t.name.startswith("semflow-keyframes")]:
            thread.join(30)
    assert ffmpeg._ahead == {}
    ffmpeg._probe_keyframes.cache_clear()


def test_keyframe_probes_ahead_are_those_of_the_next_small_clips(monkeypatch, tmp_path: Path) -> None:
    """``ahead(k)`` starts the probes of the ``count`` clips after clip k (not k's own: its check probes it),
    each once, and none of a file over AHEAD_MAX_BYTES (its probe is short beside its flow)."""
    from semflow.io import ffmpeg

    clips = [tmp_path / f"c{k}.mp4" for k in range(6)]
    for k, clip in enumerate(clips):
        clip.write_bytes(b"x" * (100 if k == 2 else 10))
    probed: list[str] = []
    monkeypatch.setattr(ffmpeg, "_probe_keyframes", lambda path, stamp, within: probed.append(path.name))
    monkeypatch.setattr(ffmpeg, "AHEAD_MAX_BYTES", 50)
    monkeypatch.setattr(ffmpeg, "_ahead", {})
    with ffmpeg.keyframes_ahead(clips, count=3, threads=1) as ahead:
        ahead(0)
        ahead(1)
        for started in list(ffmpeg._ahead.values()):
            started.result(30)
    assert sorted(probed) == ["c1.mp4", "c3.mp4", "c4.mp4"]


def test_a_probe_ahead_that_ends_drops_only_itself_from_the_registry(monkeypatch) -> None:
    """A probe of a stopped batch that ends after a later batch started its own of the same file leaves the
    later one there (its check waits for it: no second FFmpeg)."""
    from concurrent.futures import Future

    from semflow.io import ffmpeg

    earlier, later = Future(), Future()
    monkeypatch.setattr(ffmpeg, "_ahead", {"clip": later})
    ffmpeg._forget_ahead("clip", earlier)
    assert ffmpeg._ahead == {"clip": later}
    ffmpeg._forget_ahead("clip", later)
    assert ffmpeg._ahead == {}
