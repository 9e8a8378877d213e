"""FrameSource.frames(start) far into a video file seeks (semflow/io/seek.py), and gives exactly the frames
a full pass gives from ``start`` on; where the seek cannot be proven it decodes from frame 0 as before."""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from conftest import moving_frames

from semflow.io.video import FrameSource, VideoWriter

COUNT, HEIGHT, WIDTH, FPS = 150, 48, 64, 25
GOP = 12  # keyframes at 0, 12, 24, ... (-sc_threshold 0: no extra ones at scene cuts)
STARTS = (0, 1, 5, 37, 59, 60, 61, 71, 72, 73, 83, 84, 85, 100, 119, 120, 121, 131, 147, 148, 149, 150, 160)


def encode(path: Path, args: list[str], *, filters: str | None = None) -> Path:
    """``COUNT`` moving frames (each differs from the last) encoded by FFmpeg with ``args``."""
    frames = np.stack(moving_frames(COUNT, HEIGHT, WIDTH, shift=(2, 1), seed=3))
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo",
               "-pix_fmt", "rgb24", "-s", f"{WIDTH}x{HEIGHT}", "-r", str(FPS), "-i", "-"]
    command += ["-vf", filters] if filters else []
    subprocess.run([*command, *args, str(path)], input=frames.tobytes(), check=True)
    return path


H264 = ["-c:v", "libx264", "-g", str(GOP), "-keyint_min", str(GOP), "-sc_threshold", "0", "-bf", "2",
        "-pix_fmt", "yuv420p"]
DROP = "select='not(between(n\\,20\\,21))'"  # frames 20 and 21 dropped: later timestamps skip two steps


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("seek")
    made = {
        "h264-gop12-bframes": encode(folder / "gop.mp4", H264),
        "mjpeg-avi": encode(folder / "mjpeg.avi", ["-c:v", "mjpeg", "-q:v", "3"]),
        "mpeg4-avi-bframes": encode(folder / "xvid.avi", ["-c:v", "mpeg4", "-g", str(GOP), "-bf", "2",
                                                         "-vtag", "xvid"]),
        # variable frame rate: frames dropped (mp4; AVI writes an empty chunk for each), uneven steps
        "vfr-dropped-mp4": encode(folder / "dropped.mp4", [*H264, "-fps_mode", "vfr"], filters=DROP),
        "vfr-dropped-avi": encode(folder / "dropped.avi", ["-c:v", "mjpeg", "-fps_mode", "passthrough"],
                                  filters="select='not(eq(n\\,20))'"),
        "vfr-uneven-mp4": encode(folder / "uneven.mp4", [*H264, "-fps_mode", "passthrough", "-enc_time_base", "1:1000"],
                                 filters="settb=1/1000,setpts='(N+0.4*eq(mod(N\\,10)\\,5))/(25*TB)'"),
        "raw-h264": encode(folder / "raw.h264", [*H264[:-2], "-f", "h264"]),
        "h264-mkv": encode(folder / "gop.mkv", H264),
    }
    with VideoWriter(folder / "writer.mp4", FPS) as writer:  # semflow's own (x264's default GOP: 250)
        for frame in moving_frames(COUNT, HEIGHT, WIDTH, seed=3):
            writer.write(frame)
    made["semflow-writer-mp4"] = folder / "writer.mp4"
    # moov first, then cut: the index lists 150 frames, a full pass decodes fewer
    whole = encode(folder / "fast.mp4", [*H264, "-movflags", "+faststart"])
    cut = folder / "truncated.mp4"
    cut.write_bytes(whole.read_bytes()[:int(whole.stat().st_size * 0.8)])
    made["truncated-mp4"] = cut
    return made


SEEKABLE = ("h264-gop12-bframes", "mjpeg-avi", "semflow-writer-mp4")
# (MPEG-4 Part 2: its decoder outputs frames after a P-frame an index calls key, so its index is not believed)
UNPROVEN = ("vfr-dropped-mp4", "vfr-dropped-avi", "vfr-uneven-mp4", "raw-h264", "h264-mkv", "mpeg4-avi-bframes")


def full_pass(path: Path, **options) -> tuple[list[np.ndarray], int | None]:
    source = FrameSource(path, **options)
    frames = list(source.frames())
    return frames, source.frames_read


@pytest.mark.parametrize("name", (*SEEKABLE, "truncated-mp4", *UNPROVEN))
def test_frames_from_any_start_are_the_full_pass_frames(videos: dict[str, Path], name: str) -> None:
    full, read = full_pass(videos[name])
    assert len(full) >= 100
    assert not any(np.array_equal(a, b) for a, b in zip(full, full[1:])), "frames must differ to tell them apart"
    for start in (*STARTS, len(full) - 1, len(full)):
        source = FrameSource(videos[name])
        got = list(source.frames(start))
        assert len(got) == len(full[start:]), (name, start, source.seeked)
        for k, (a, b) in enumerate(zip(got, full[start:])):
            assert np.array_equal(a, b), f"{name}: frames({start}) item {k} is not frame {start + k}"
        if start < len(full):  # (the shortfall of a truncated file is seen from a seek too)
            assert source.frames_read == read, (name, start)


@pytest.mark.parametrize("name", SEEKABLE)
def test_a_constant_rate_file_is_seeked_far_in(videos: dict[str, Path], name: str) -> None:
    from semflow.io.seek import SEEK_AFTER

    for start in (60, 100, 121, 140):
        source = FrameSource(videos[name])
        next(source.frames(start))
        assert source.seeked is (start >= SEEK_AFTER), (name, start)
    source = FrameSource(videos[name])
    next(source.frames(SEEK_AFTER - 1))
    assert source.seeked is False  # (near the start, decoding from frame 0 costs no more)


@pytest.mark.parametrize("name", UNPROVEN)
def test_a_file_whose_frame_numbers_timestamps_cannot_prove_is_decoded_from_frame_0(
        videos: dict[str, Path], name: str) -> None:
    from semflow.io.seek import frame_grid

    assert frame_grid(videos[name]) is None
    for start in (60, 100, 140):
        source = FrameSource(videos[name])
        next(source.frames(start))
        assert source.seeked is False, (name, start)


def test_an_empty_avi_chunk_is_seen_in_the_index(videos: dict[str, Path]) -> None:
    """A dropped frame in an AVI is an empty chunk: the frames after it keep timestamps on the grid, one
    step later than their numbers, which only the index shows (the timestamps near the seek point agree)."""
    import cv2

    from semflow.io.seek import frame_grid

    cap = cv2.VideoCapture(str(videos["vfr-dropped-avi"]))
    stamps = []
    while cap.grab():
        stamps.append(cap.get(cv2.CAP_PROP_POS_MSEC))
    cap.release()
    steps = np.round(np.diff(stamps) / (1000 / FPS))
    assert len(stamps) == COUNT - 1 and list(np.flatnonzero(steps != 1)) == [19]  # one step of 2, then even
    assert frame_grid(videos["mjpeg-avi"]).count == COUNT and frame_grid(videos["vfr-dropped-avi"]) is None


def test_a_truncated_file_seeks_within_the_frames_it_holds(videos: dict[str, Path]) -> None:
    """Its index lists 150 frames; about 110 decode. A start among them seeks; one past them falls back
    (the seek finds no frame) and, as a full pass would, yields nothing."""
    path = videos["truncated-mp4"]
    full, read = full_pass(path)
    assert 100 <= read < COUNT - 1
    for start in (70, 100, read - 1, read, COUNT - 5):
        source = FrameSource(path)
        got = list(source.frames(start))
        assert len(got) == len(full[start:]) and all(np.array_equal(a, b) for a, b in zip(got, full[start:]))
        assert source.seeked is (start < read), start
        if start < read:
            assert source.frames_read == read and source.shortfall() is not None


def test_seek_with_max_side_and_max_frames(videos: dict[str, Path]) -> None:
    path = videos["h264-gop12-bframes"]
    full, _ = full_pass(path, max_side=32, max_frames=110)
    assert len(full) == 110 and full[0].shape == (24, 32, 3)
    for start in (70, 105, 109, 110, 130):
        source = FrameSource(path, max_side=32, max_frames=110)
        got = list(source.frames(start))
        assert len(got) == len(full[start:]) and all(np.array_equal(a, b) for a, b in zip(got, full[start:]))
        assert source.seeked is (start < 110)


def test_frame_grid_never_raises_on_damaged_containers(videos: dict[str, Path], tmp_path: Path) -> None:
    from semflow.io.seek import FrameGrid, frame_grid

    rng = np.random.default_rng(0)
    for name in ("h264-gop12-bframes", "mjpeg-avi"):
        data = videos[name].read_bytes()
        for trial in range(60):
            damaged = bytearray(data[:int(rng.integers(0, len(data)))] if trial % 2 else data)
            for at in rng.integers(0, max(len(damaged), 1), 8 if trial % 2 == 0 else 0):
                damaged[at] = int(rng.integers(0, 256))
            path = tmp_path / f"damaged{videos[name].suffix}"
            path.write_bytes(bytes(damaged))
            assert frame_grid(path) is None or isinstance(frame_grid(path), FrameGrid)


def test_an_avi_index_that_does_not_list_its_chunks_back_to_back_is_not_believed(videos: dict[str, Path],
                                                                                 tmp_path: Path) -> None:
    """A review: an idx1 entry listed twice, left out or pointing at another chunk kept the grid (every
    entry non-empty, on time), and the seek gave the full pass's frame 99 or 101 for frame 100."""
    from semflow.io.seek import frame_grid

    data = videos["mjpeg-avi"].read_bytes()
    at = data.rindex(b"idx1") + 8
    entries = [data[at + 16 * k:at + 16 * k + 16] for k in range((len(data) - at) // 16)]
    assert frame_grid(videos["mjpeg-avi"]) is not None
    variants = {"twice": entries[:50] + [entries[49]] + entries[51:],
                "left-out": entries[:50] + entries[51:] + [entries[-1]],
                "elsewhere": entries[:5] + [entries[5][:8] + entries[6][8:]] + entries[6:]}
    for name, changed in variants.items():
        path = tmp_path / f"{name}.avi"
        path.write_bytes(data[:at] + b"".join(changed)[:len(data) - at])
        assert frame_grid(path) is None, name
        source = FrameSource(path)
        next(source.frames(100))
        assert source.seeked is False, name


class LandsOneFrameLate:
    """A capture whose seek lands one frame later than asked (as a decoder that starts at a later keyframe
    would), its timestamps saying so."""

    def __init__(self, path: Path) -> None:
        import cv2

        self.cap, self.cv2 = cv2.VideoCapture(str(path)), cv2

    def set(self, prop: int, value: float) -> bool:
        return self.cap.set(prop, value + 1 if prop == self.cv2.CAP_PROP_POS_FRAMES else value)

    def __getattr__(self, name: str):
        return getattr(self.cap, name)


def test_a_seek_that_lands_one_frame_off_is_not_kept(videos: dict[str, Path]) -> None:
    from semflow.io.seek import open_at

    path = videos["h264-gop12-bframes"]
    opened = open_at(path, 100, lambda p: LandsOneFrameLate(p).cap)  # (the plain capture: the seek is proven)
    assert opened is not None
    opened[0].release()
    assert open_at(path, 100, LandsOneFrameLate) is None  # (its frame would be frame 101)
