"""``semflow batch`` stopped by SIGTERM at any moment (probe60, findings 1, 2 and 6): while its workers start,
while Ray starts, while it shuts down. It stops within seconds with exit 143 and one line, leaves no output
folder of its own that it made, and no Ray process of its own. Each test runs a batch in a process of its own
(in its own process group, as `timeout`, Slurm or systemd see it), made slow at one moment by a script."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import moving_frames

from semflow.io.video import VideoWriter

ray_node = pytest.importorskip("ray._private.node")
pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")

TERMINATED = "semflow: terminated (what it finished is kept: the same command with --resume continues)\n"
START_SECONDS = 120
"""How long the batch may take to reach the slow moment (Ray's start, on a loaded machine)."""
STOP_SECONDS = 20
"""How long the batch may take to stop after the signal (it hung for good, or took 30 s)."""

SLOW_WORKERS = '''
import sys, time
from pathlib import Path

from semflow.batch import work, workers

MARK = sys.argv[1]


class SlowStart(work.ClipWorker):
    """A worker that says it is starting (it makes MARK), then takes a minute to."""

    def __init__(self, *args):
        Path(MARK).touch()
        time.sleep(60)
        super().__init__(*args)


workers.ClipWorker = SlowStart  # (a class of __main__: Ray sends it to the workers by value)
from semflow.cli import main

main(sys.argv[2:], prog_name="semflow")
'''

SLOW_RAY = '''
import sys, time
from pathlib import Path

from ray._private import node

MARK = sys.argv[1]
start_ray_processes = node.Node.start_ray_processes


def slow_start(self):
    """ray.init has started Ray's processes (MARK), and takes a minute before it goes on."""
    start_ray_processes(self)
    Path(MARK).touch()
    time.sleep(60)


node.Node.start_ray_processes = slow_start
from semflow.cli import main

main(sys.argv[2:], prog_name="semflow")
'''


def _clips(tmp_path: Path) -> list[str]:
    paths = []
    for name, seed in (("a.mp4", 1), ("b.mp4", 2)):
        with VideoWriter(tmp_path / name, 5) as writer:
            for frame in moving_frames(6, 40, 56, seed=seed):
                writer.write(frame)
        paths.append(str(tmp_path / name))
    return paths


def _running_in_group(pgid: int) -> list[int]:
    """The processes of process group ``pgid`` still running (zombies left out)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            state, _, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
            if int(group) == pgid and state != "Z":
                found.append(int(stat.parent.name))
    return found


def _terminated_at_the_mark(tmp_path: Path, cli_env: dict[str, str], script: str, group: bool) -> None:
    """Run ``batch`` under ``script`` in a process group of its own; once the script makes its mark, SIGTERM
    the group (or the batch alone) and check how the batch stops."""
    (tmp_path / "slow.py").write_text(script)
    mark, out = tmp_path / "mark", tmp_path / "out"
    proc = subprocess.Popen([sys.executable, str(tmp_path / "slow.py"), str(mark), "batch", *_clips(tmp_path),
                             "--out", str(out), "--workers", "2", "--chunk-pairs", "3", "--method", "dis-fast",
                             "--no-progress"], env=cli_env, cwd=tmp_path, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + START_SECONDS
        while not mark.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        time.sleep(0.5)
        (os.killpg if group else os.kill)(proc.pid, signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the batch was still running {STOP_SECONDS} s after SIGTERM")
        assert (proc.returncode, err) == (143, TERMINATED)
        assert not out.exists()  # (the batch made it, and nothing is in it)
        deadline = time.monotonic() + 5
        while left := _running_in_group(proc.pid):
            assert time.monotonic() < deadline, f"processes of the batch outlived it: {left}"
            time.sleep(0.1)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_sigterm_to_the_group_while_workers_start_stops_the_batch(tmp_path: Path, cli_env) -> None:
    """Finding 1: `timeout -s TERM` (which signals the process group) while the workers started: the
    batch waited for them without a timeout, Ray restarted them for good, and it hung until SIGKILL."""
    _terminated_at_the_mark(tmp_path, cli_env, SLOW_WORKERS, group=True)


@pytest.mark.skipif(not hasattr(ray_node.Node, "start_ray_processes"), reason="the script slows down Ray 2.x's start")
def test_sigterm_while_ray_starts_stops_the_batch(tmp_path: Path, cli_env) -> None:
    """Finding 2: SIGTERM while ray.init ran met Ray's own handler: exit 15 and nothing said (or Ray's
    crash dump), and the processes Ray had started stayed behind (ray.shutdown knew none of them)."""
    _terminated_at_the_mark(tmp_path, cli_env, SLOW_RAY, group=False)


def test_sigterm_while_the_batch_shuts_down_is_raised_after_it(tmp_path: Path, cli_env) -> None:
    """Finding 6: ray.shutdown leaves SIGTERM at its default action behind Python's back, so a SIGTERM
    while a batch shut down (or at any time after) ended the process: exit 143, no line. Now the one that
    arrives during close() is raised when close() is done, and the command's handler stays in force."""
    script = f"""
import os, signal, time
import ray
from semflow import cli_group as cli
from semflow.batch import Batch, BatchOptions

signal.signal(signal.SIGTERM, cli.terminated_by_signal)
shutdown = ray.shutdown


def shutdown_then_sigterm():
    shutdown()
    os.kill(os.getpid(), signal.SIGTERM)


ray.shutdown = shutdown_then_sigterm
Batch._add_workers = lambda self, count: None  # (the batch's Ray is what this is about: no worker started)
batch = Batch({str(tmp_path / "out")!r}, BatchOptions(method="dis-fast", workers=1))
batch.start()
try:
    batch.close()
except cli.Terminated:
    print("after close", flush=True)
try:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)
except cli.Terminated:
    print("handled", flush=True)
"""
    proc = subprocess.run([sys.executable, "-c", script], env=cli_env, capture_output=True, text=True,
                          timeout=START_SECONDS)
    assert (proc.returncode, proc.stdout) == (0, "after close\nhandled\n"), proc.stderr
    assert not (tmp_path / "out").exists()
