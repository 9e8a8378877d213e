"""Shared fixtures for the semflow test suite.

- ``shared_data``: the public data folder beside the project (``../shared/data``); skips when absent.
- ``shared_file``: a factory ``shared_file("kitti/training/...")`` -> Path, skipping when that file is absent.
- ``small_scene``: a small layered synthetic scene (64x96) with exact ground truth.
- ``make_frames``: a factory writing a folder of PNG frames of a textured plane moving by a fixed shift.
- ``make_video``: the same frames encoded as an H.264 mp4 with :class:`semflow.io.video.VideoWriter`.
- ``run_cli``: run ``python -m semflow ARGS...`` in a subprocess -> :class:`CliResult` (rc, stdout, stderr)
  (``cli_env``: its environment, with the checkout these tests import first on PYTHONPATH),
  so "one line on stderr, no traceback" is checked on the real process.
- ``cli_fails``: run the CLI on a bad input and assert the error contract (non-zero exit code, exactly one
  stderr line ``semflow: error: ...``, no traceback, nothing new written in the working folder).

A suite started ignoring SIGINT (in the background) takes Ctrl-C's usual handling back first, so that the
commands its tests start act on a SIGINT as from a terminal (:func:`ctrl_c_as_from_a_terminal`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

import semflow
from semflow.io.images import write_image
from semflow.io.video import VideoWriter
from semflow.synthetic import SyntheticScene, make_scene, random_texture, to_uint8, translation_scene

SHARED_DATA = Path(os.environ.get("SEMFLOW_SHARED_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
"""The public data: ``../shared/data`` beside the checkout, or the folder ``$SEMFLOW_SHARED_DATA`` names (a
checkout elsewhere, e.g. a git worktree)."""


def ctrl_c_as_from_a_terminal() -> None:
    """Give this process Ctrl-C's usual handling (KeyboardInterrupt) if it was started ignoring SIGINT, as a
    suite started in the background is (`pytest ... &` in a script: the shell ignores SIGINT for the job):
    the commands these tests start then act on a SIGINT as they do from a terminal. They inherited the
    ignoring instead, and a Ctrl-C check failed (exit 0, the SIGINT it sent itself ignored) or skipped."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # (a handler: a child starts with SIG_DFL)


ctrl_c_as_from_a_terminal()  # (here: each xdist worker loads this file too)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared public data folder (Middlebury, Sintel, KITTI, ...); skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"public data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def shared_file(shared_data: Path) -> Callable[[str], Path]:
    """Factory: ``shared_file("middlebury/Dimetrodon/flow10.flo")`` -> Path; skips when that file is absent."""

    def get(relative: str) -> Path:
        path = shared_data / relative
        if not path.exists():
            pytest.skip(f"{relative} not found under {shared_data}")
        return path

    return get


@pytest.fixture(scope="session")
def small_scene() -> SyntheticScene:
    """A 64x96 layered scene (a background homography, two moving objects) with exact GT; do not modify."""
    return make_scene(64, 96, seed=3)


def failing_at_pair(pair: int, name: str = "dis-fast", **options):
    """Method ``name`` (built with ``options``), except that computing pair ``pair`` (its ``pair + 1``-th
    call) raises, as a crash would."""
    from semflow.methods import get_method

    method = get_method(name, **options)
    estimate, calls = method.estimate, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == pair + 1:
            raise RuntimeError(f"interrupted at pair {pair}")
        return estimate(*args, **kwargs)

    method.estimate = failing
    return method


def keyframe_damaged_mp4(folder: Path) -> tuple[Path, Path]:
    """(damaged, whole): a 9-frame 64x48 H.264 mp4 (a keyframe every 3 frames) and a copy whose first
    keyframe's macroblocks are zeroed (its slice header kept): FFmpeg decodes every frame, concealing the
    damage."""
    import imageio_ffmpeg

    whole, damaged = folder / "whole.mp4", folder / "damaged.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10",
                    "-t", "0.9", "-c:v", "libx264", "-g", "3", "-bf", "0", "-x264-params", "scenecut=0",
                    "-pix_fmt", "yuv420p", str(whole)], check=True)
    data = bytearray(whole.read_bytes())
    at = data.find(b"mdat") + 4  # the first sample: x264's SEI, then the IDR slice (each length-prefixed)
    slice_at = at + 4 + int.from_bytes(data[at:at + 4], "big")
    length = int.from_bytes(data[slice_at:slice_at + 4], "big")
    data[slice_at + 12:slice_at + 4 + length] = bytes(length - 8)
    damaged.write_bytes(data)
    return damaged, whole


def variable_rate_mkv(path: Path) -> Path:
    """A 30-frame 48x32 MJPEG Matroska clip at a variable frame rate: 10 frames 1/25 s apart, then 20 frames
    1/5 s apart (4.2 s). Matroska keeps no frame count: OpenCV estimates 106 (its duration times 25 fps)."""
    import imageio_ffmpeg

    frames = np.stack(moving_frames(30, 32, 48))
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s",
                    "48x32", "-r", "25", "-i", "pipe:0", "-vf", r"setpts=if(lt(N\,10)\,N/25\,10/25+(N-10)/5)/TB",
                    "-fps_mode", "vfr", "-c:v", "mjpeg", str(path)], input=frames.tobytes(), check=True)
    return path


def texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A uint8 RGB frame (H, W, 3) of smooth random texture (``synthetic.random_texture``) drawn with ``seed``."""
    return to_uint8(random_texture(height, width, np.random.default_rng(seed)))


def moving_frames(count: int, height: int = 48, width: int = 64, *, shift: tuple[int, int] = (2, 1),
                  seed: int = 0) -> list[np.ndarray]:
    """``count`` uint8 RGB frames (H, W, 3) of one textured plane; frame k is frame 0 moved by ``k * shift`` px."""
    su, sv = shift
    pad = max(abs(su), abs(sv)) * count + 1
    texture = random_texture(height + 2 * pad, width + 2 * pad, np.random.default_rng(seed))
    texture = to_uint8(texture)
    # Content moving right/down by shift means each frame's window moves left/up over the texture.
    return [texture[pad - k * sv:pad - k * sv + height, pad - k * su:pad - k * su + width].copy()
            for k in range(count)]


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    """Two 48x64 PNG frames of a plane moving 3 px right and 2 px down: ``tmp_path / "a.png"``, ``"b.png"``."""
    scene = translation_scene(48, 64, shift=(3.0, 2.0), seed=4)
    write_image(tmp_path / "a.png", scene.img1)
    write_image(tmp_path / "b.png", scene.img2)
    return tmp_path / "a.png", tmp_path / "b.png"


@pytest.fixture
def make_frames(tmp_path: Path) -> Callable[..., Path]:
    """Factory ``make_frames(count=4, height=48, width=64, shift=(2, 1), name="frames")`` -> folder of
    ``NNNN.png`` frames under tmp_path (lossless, so tests may rely on exact pixel values)."""

    def make(count: int = 4, height: int = 48, width: int = 64, *, shift: tuple[int, int] = (2, 1),
             name: str = "frames", seed: int = 0) -> Path:
        folder = tmp_path / name
        for k, frame in enumerate(moving_frames(count, height, width, shift=shift, seed=seed)):
            write_image(folder / f"{k:04d}.png", frame)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    return make


@pytest.fixture
def make_video(tmp_path: Path) -> Callable[..., Path]:
    """Factory ``make_video(count=4, height=48, width=64, shift=(2, 1), name="clip.mp4", fps=5)`` -> an
    H.264 mp4 under tmp_path written with VideoWriter (``count=0`` gives no file at all)."""

    def make(count: int = 4, height: int = 48, width: int = 64, *, shift: tuple[int, int] = (2, 1),
             name: str = "clip.mp4", fps: float = 5.0, seed: int = 0) -> Path:
        path = tmp_path / name
        with VideoWriter(path, fps) as writer:
            for frame in moving_frames(count, height, width, shift=shift, seed=seed):
                writer.write(frame)
        return path

    return make


class CliResult(NamedTuple):
    """What a CLI subprocess did: exit code, stdout and stderr (text)."""

    rc: int
    stdout: str
    stderr: str


def _cli_env() -> dict[str, str]:
    """The environment for a ``python -m semflow`` subprocess: the semflow these tests imported comes
    first on its path, so that a second checkout's tests run its own CLI, not the installed one."""
    env = dict(os.environ)
    checkout = str(Path(semflow.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([checkout, *filter(None, [env.get("PYTHONPATH")])])
    return env


def _run(args: tuple[str | os.PathLike, ...], cwd: Path | None, timeout: float) -> CliResult:
    env = _cli_env()
    env.pop("OPENCV_FFMPEG_LOGLEVEL", None)  # the CLI must quiet FFmpeg itself
    proc = subprocess.run(
        [sys.executable, "-m", "semflow", *map(str, args)], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli_env() -> dict[str, str]:
    """The environment for running ``python -m semflow`` by hand (see :func:`_cli_env`)."""
    return _cli_env()


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., CliResult]:
    """Run ``python -m semflow *args`` (in ``cwd``, default tmp_path) -> CliResult(rc, stdout, stderr)."""

    def run(*args: str | os.PathLike, cwd: Path | None = None, timeout: float = 120) -> CliResult:
        return _run(args, cwd or tmp_path, timeout)

    return run


def _listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture
def cli_fails(tmp_path: Path) -> Callable[..., str]:
    """Run the CLI on a bad input in tmp_path and check the error contract; return the error line.

    Asserts: exit code != 0, stderr is exactly one line starting ``semflow: error:``, no traceback, and
    no file or folder appeared anywhere under tmp_path (no output, no partial temporary file). ``match``
    (case-insensitive) must occur in the line when given.
    """

    def run(*args: str | os.PathLike, match: str | None = None, timeout: float = 120) -> str:
        before = _listing(tmp_path)
        result = _run(args, tmp_path, timeout)
        assert result.rc != 0, f"expected failure, got rc 0; stdout: {result.stdout!r}"
        assert "Traceback" not in result.stderr, result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 1, f"expected one stderr line, got {len(lines)}: {result.stderr!r}"
        assert lines[0].startswith("semflow: error: "), lines[0]
        if match is not None:
            assert match.lower() in lines[0].lower(), lines[0]
        created = _listing(tmp_path) - before
        assert not created, f"files left behind: {sorted(created)}"
        return lines[0]

    return run
