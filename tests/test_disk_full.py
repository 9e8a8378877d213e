"""Writers on a full disk: a write that fails at any point (OpenCV's final flush at fclose included) raises an
OSError that names the output file and the reason, and leaves nothing under the final name nor a temporary file.

A full disk is stood in for by ``RLIMIT_FSIZE`` in a subprocess: a write past the limit fails with EFBIG
("File too large") where a full disk fails with ENOSPC, in Python's and in C's stdio writes alike.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import _cli_env

from semflow.io.flow import read_flow, write_flow
from semflow.io.images import write_image

TOO_LARGE = os.strerror(errno.EFBIG)
LIMITED = "file too large: the file-size limit is ulimit -f"
"""How the command says EFBIG here, where ``ulimit -f`` stands in for a full disk (semflow.limits names it)."""

# Writes one output in a child whose files cannot grow past its limit; prints what it raised as JSON.
_WRITER = """
import json, sys
import numpy as np
from semflow.io.flow import write_flo, write_kitti_flow, write_npy_flow
from semflow.io.atomic import write_text_atomic
from semflow.io.images import write_image

kind, target, side = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = np.random.default_rng(0)
flow = (rng.standard_normal((side, side, 2)) * 20).astype(np.float32)
write = {
    "labels": lambda: write_image(target, rng.integers(0, 12, (side, side), dtype=np.uint8)),
    "rgb": lambda: write_image(target, rng.integers(0, 256, (side, side, 3), dtype=np.uint8)),
    "kitti": lambda: write_kitti_flow(target, flow),
    "flo": lambda: write_flo(target, flow),
    "npy": lambda: write_npy_flow(target, flow),
    "json": lambda: write_text_atomic(target, "[" + "1.25, " * side * side + "0]"),
}[kind]
try:
    write()
except Exception as exc:
    print(json.dumps({"type": type(exc).__name__, "errno": getattr(exc, "errno", None),
                      "filename": getattr(exc, "filename", None), "text": str(exc)}))
else:
    print(json.dumps(None))
"""


def _limit_file_size(limit: int) -> Callable[[], None]:
    """A ``preexec_fn``: files of the child cannot grow past ``limit`` bytes (EFBIG, as ENOSPC on a full disk)."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the write kills the process instead of failing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def _write_limited(kind: str, target: Path, side: int, limit: int) -> dict | None:
    env = {**_cli_env(), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-c", _WRITER, kind, str(target), str(side)], capture_output=True,
                          text=True, env=env, timeout=120, preexec_fn=_limit_file_size(limit))
    assert proc.returncode == 0, proc.stderr
    assert "libpng error" not in proc.stderr  # encoded in memory: OpenCV never meets the failing file
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(("kind", "name", "side", "limit"), [
    ("labels", "l.png", 32, 200),     # the whole PNG fits stdio's buffer: only the flush at fclose failed
    ("labels", "l.png", 32, 0),       # nothing at all could be written: a 0-byte PNG was left
    ("rgb", "c.jpg", 96, 4096),       # a JPEG cut short after its first buffer
    ("kitti", "f.png", 16, 300),      # KITTI PNG, fits the buffer
    ("kitti", "f.png", 96, 4096),     # KITTI PNG, cut short after its first buffer
    ("flo", "f.flo", 64, 4096),
    ("npy", "f.npy", 64, 4096),       # numpy's tofile said "8192 requested and 992 written"
    ("json", "s.json", 64, 4096),     # Path.write_bytes in atomic_path: "[Errno 27] File too large", no name
])
def test_a_write_cut_short_raises_and_leaves_nothing(tmp_path: Path, kind: str, name: str, side: int,
                                                     limit: int) -> None:
    """Before: cv2.imwrite returned True when the flush at fclose failed, and the cut-short PNG was renamed into
    place; numpy's tofile and Path.write_bytes raised without the file name (or the reason)."""
    target = tmp_path / "out" / name
    error = _write_limited(kind, target, side, limit)
    assert error is not None, f"the write succeeded; left {sorted(p.name for p in target.parent.iterdir())}"
    # (OutputFileError, an OSError too, from the public writers write_image / write_flow)
    assert error["type"] in ("OSError", "OutputFileError") and error["errno"] == errno.EFBIG, error
    assert error["filename"] == str(target), error
    assert TOO_LARGE in error["text"] and str(target) in error["text"], error
    assert list(target.parent.iterdir()) == []  # no output, no temporary .NAME.XXXXXXXX.ext


@pytest.mark.parametrize(("kind", "name", "side"), [("labels", "l.png", 32), ("kitti", "f.png", 16),
                                                     ("flo", "f.flo", 64), ("npy", "f.npy", 64)])
def test_a_write_cut_short_keeps_the_previous_file(tmp_path: Path, kind: str, name: str, side: int) -> None:
    target = tmp_path / name
    if kind == "labels":
        write_image(target, np.full((4, 4), 7, np.uint8))
    else:
        write_flow(target, np.ones((3, 5, 2), np.float32))
    before = target.read_bytes()
    error = _write_limited(kind, target, side, limit=len(before) + 10)
    assert error is not None and error["errno"] == errno.EFBIG and error["filename"] == str(target), error
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_npy_flow_file_is_what_numpy_save_writes(tmp_path: Path) -> None:
    """Written through Python's file I/O now, byte for byte what ``numpy.save`` gives, and read back as written."""
    flow = (np.random.default_rng(2).standard_normal((5, 9, 2)) * 10).astype(np.float32)
    write_flow(tmp_path / "f.npy", flow)
    np.save(tmp_path / "ref.npy", flow)
    assert (tmp_path / "f.npy").read_bytes() == (tmp_path / "ref.npy").read_bytes()
    np.testing.assert_array_equal(read_flow(tmp_path / "f.npy"), flow)


@pytest.mark.parametrize("name", ["f.png", "f.flo", "f.npy"])
def test_cli_flow_on_a_full_disk_says_so_in_one_line(tmp_path: Path, name: str) -> None:
    """`semflow flow a.png b.png -o full/f.png` said it wrote f.png and left a cut-short file (OpenCV's fclose
    failed unseen); .flo and .npy said "24576 requested and 14304 written" without the file or the reason."""
    rng = np.random.default_rng(1)
    texture = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    write_image(tmp_path / "a.png", texture)
    write_image(tmp_path / "b.png", np.roll(texture, 2, axis=1))
    before = {p.name for p in tmp_path.iterdir()}
    env = {**_cli_env(), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("OPENCV_FFMPEG_LOGLEVEL", None)
    proc = subprocess.run([sys.executable, "-m", "semflow", "flow", "a.png", "b.png", "-o", name], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                          preexec_fn=_limit_file_size(100))
    assert proc.returncode != 0, f"expected failure; stdout: {proc.stdout!r}"
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0] == f"semflow: error: {name}: {LIMITED} 0 KiB; raise it", lines[0]
    assert {p.name for p in tmp_path.iterdir()} == before  # no output, no temporary file


def _cli_limited(args: list[str], cwd: Path, limit: int) -> subprocess.CompletedProcess:
    env = {**_cli_env(), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("OPENCV_FFMPEG_LOGLEVEL", None)
    return subprocess.run([sys.executable, "-m", "semflow", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL, preexec_fn=_limit_file_size(limit))


def test_run_and_segment_on_a_full_disk_name_the_file(tmp_path: Path) -> None:
    """`run` said "38400 requested and 4968 written" (its flow cache, numpy's tofile); `segment` named the
    hidden staging file (s/.segment-XXXXXXXX/a.png) where it stands for s/a.png."""
    frames = tmp_path / "frames"
    texture = np.random.default_rng(2).integers(0, 256, (48, 80, 3), dtype=np.uint8)
    for k in range(3):
        write_image(frames / f"{k:04d}.png", np.roll(texture, 2 * k, axis=1))
    run = _cli_limited(["run", "frames", "--out", "r", "--method", "dis-fast", "--no-progress"], tmp_path, 4000)
    assert run.returncode == 1 and run.stderr.splitlines() == [
        f"semflow: error: r/.semflow-work/cache/flow/000000.npy: {LIMITED} 3 KiB; raise it and run again (with"
        " --resume: what was finished is kept)"], run.stderr
    masks = tmp_path / "m.png"
    write_image(masks, np.random.default_rng(3).integers(0, 11, (48, 80), dtype=np.uint8))
    seg = _cli_limited(["segment", "frames/0000.png", "--out", "s", "--backend", f"masks:{masks}", "--no-progress"],
                       tmp_path, 100)
    assert seg.returncode == 1 and seg.stderr.splitlines() == [f"semflow: error: s/0000.png: {LIMITED} 0 KiB; raise it"], \
        seg.stderr
    assert not (tmp_path / "s").exists()
