"""The Python API where a script calls it directly: the checks the CLI runs before the work (memory,
option values) and what a format cannot hold, said to a script as clearly as to a terminal."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import semflow
from semflow.errors import FlowRangeWarning, InputError, ResourceError
from semflow.memory import memory_needed_mb
from semflow.pipeline import RunOptions
from semflow.synthetic import translation_scene
from semflow.video_state import VideoState


def test_estimate_checks_memory_before_a_pair(monkeypatch) -> None:
    """``estimate_flow`` and ``get_method(...).estimate`` ran without the memory check the CLI runs: a
    frame too large for the memory was killed by the OOM killer, with no exception to catch."""
    scene = translation_scene(480, 640, shift=(2.0, 1.0), seed=1)
    monkeypatch.setenv("SEMFLOW_MEMORY_MB", f"{memory_needed_mb('dis-medium', 240, 320):.2f}")
    with pytest.raises(ResourceError, match=r"dis-medium needs about .* for 640x480 frames.*longer side is (\d+) px") as err:
        semflow.estimate_flow(scene.img1, scene.img2, method="dis-medium")
    assert 300 <= int(err.value.args[0].rsplit("is ", 1)[1].split()[0]) <= 320
    method = semflow.get_method("dis-medium")
    with pytest.raises(ResourceError):
        method.estimate(scene.img1, scene.img2, state=VideoState())  # a video's first pair
    monkeypatch.setenv("SEMFLOW_MEMORY_MB", f"{memory_needed_mb('dis-medium', 480, 640) * 1.01:.2f}")
    first = method.estimate(scene.img1, scene.img2, state=VideoState())
    monkeypatch.setenv("SEMFLOW_MEMORY_MB", "1")  # later pairs are not checked: the video goes on
    second = method.estimate(scene.img2, scene.img1, state=first.state)
    assert second.flow.shape == (480, 640, 2) and second.state.pairs == 2


def test_kitti_png_says_what_it_could_not_hold(tmp_path: Path) -> None:
    """``write_flow`` to a KITTI ``.png`` writes flow beyond +-512 px as unknown and returned the count
    only: a script that ignored it lost those pixels silently. Now a FlowRangeWarning says so."""
    flow = np.zeros((8, 10, 2), np.float32)
    flow[:2, :3, 0] = 600.0
    with pytest.warns(FlowRangeWarning, match=r"6 pixel\(s\) moved beyond the KITTI format's -512..512 px"):
        assert semflow.write_flow(tmp_path / "f.png", flow) == 6
    _, valid = semflow.read_flow_valid(tmp_path / "f.png")
    assert int((~valid).sum()) == 6
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # within range (and other formats): no warning
        semflow.write_flow(tmp_path / "g.png", flow.clip(-500, 500))
        semflow.write_flow(tmp_path / "f.flo", flow)


def test_kitti_png_range_is_one_warning_line_in_the_cli(run_cli, tmp_path: Path) -> None:
    """The CLI says the API's FlowRangeWarning as one semflow warning line (not Python's two-line form)."""
    scene = translation_scene(40, 1100, shift=(0.0, 0.0), seed=3)
    semflow.write_image(tmp_path / "a.png", scene.img1)
    semflow.write_image(tmp_path / "b.png", scene.img1)
    # a given baseline beyond 512 px: semantic over it keeps it where no layer changes it
    semflow.write_image(tmp_path / "labels.png", np.zeros((40, 1100), np.uint8))
    semflow.write_flow(tmp_path / "base.flo", np.full((40, 1100, 2), [700.0, 0.0], np.float32))
    result = run_cli("flow", "a.png", "b.png", "-o", "o.png", "--method", "semantic", "--baseline-flow", "base.flo",
                     "--segmentation", "labels.png")
    assert result.rc == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines == ["semflow: warning: o.png: 44000 pixel(s) moved beyond the KITTI format's -512..512 px and are"
                     " written as unknown; .flo or .npy keeps them"]


def test_run_options_refuse_unknown_method_and_progress_values() -> None:
    """``RunOptions(method="nope")`` was accepted and failed only inside ``run_video``; ``progress="yes"``
    was accepted and read as true."""
    with pytest.raises(InputError, match="unknown method 'nope'; known methods: .*dis-medium"):
        RunOptions(method="nope")
    for bad in ("yes", 1, "false"):
        with pytest.raises(InputError, match="progress must be True, False or None"):
            RunOptions(progress=bad)
    assert RunOptions(method="dis-fast", progress=False).progress is False


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    """``code`` run by a fresh Python, in an environment without what a test before may have set here."""
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_FFMPEG_LOGLEVEL"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


def test_a_program_that_imports_semflow_keeps_its_stderr(tmp_path: Path) -> None:
    """Decoding an image or a video sent descriptor 2 of the whole process to a temporary file, in any
    program that imported semflow: what its other threads wrote meanwhile (log lines) was lost."""
    code = (
        "import os, threading, numpy as np, semflow\n"
        "semflow.write_image('x.png', np.zeros((64, 64, 3), np.uint8))\n"
        "stop, sent = threading.Event(), [0]\n"
        "def beat():\n"
        "    while not stop.is_set():\n"
        "        os.write(2, b'beat\\n'); sent[0] += 1\n"
        "thread = threading.Thread(target=beat); thread.start()\n"
        "for _ in range(300): semflow.read_image('x.png')\n"
        "stop.set(); thread.join(); print(sent[0])\n")
    proc = _python(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("beat\n") == int(proc.stdout) > 0


def test_importing_semflow_leaves_opencv_logging_alone(tmp_path: Path) -> None:
    """``import semflow`` silenced OpenCV's logging for the whole program and set FFmpeg's log level
    in its environment (passed on to every child it starts)."""
    code = (
        "import os, cv2\n"
        "level = cv2.utils.logging.getLogLevel()\n"
        "import semflow\n"
        "from semflow.io.video import FrameSource\n"
        "semflow.read_image  # (the IO modules imported)\n"
        "print(cv2.utils.logging.getLogLevel() == level, 'OPENCV_FFMPEG_LOGLEVEL' in os.environ)\n")
    proc = _python(code, tmp_path)
    assert proc.stdout.split() == ["True", "False"], proc.stderr


def test_the_cli_run_in_process_puts_back_what_it_changed() -> None:
    """Run in-process (a script, a test), the CLI left its SIGTERM handler (raising a BaseException)
    installed after it returned; it now also gives back OpenCV's log level."""
    import signal

    import cv2
    from click.testing import CliRunner

    from semflow.cli import main
    from semflow.io import native

    owned = native.own_native_output(False)  # (a test before may have built a batch's worker here,
    handler = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # or started Ray, which handles SIGTERM)
    try:
        level = cv2.utils.logging.getLogLevel()
        result = CliRunner().invoke(main, ["methods"])
        assert result.exit_code == 0
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        assert cv2.utils.logging.getLogLevel() == level and native.own_native_output(False) is False
    finally:
        native.own_native_output(owned)
        signal.signal(signal.SIGTERM, handler)


def test_writing_an_output_never_changes_the_umask(monkeypatch, tmp_path: Path) -> None:
    """Every atomic write read the umask by setting it to 0 and back: for that moment a host's other
    threads created files anyone could write (2 of 61,320 in a probe). Now it is read, not set."""
    calls = []
    real_umask = os.umask
    old = real_umask(0o027)
    try:
        monkeypatch.setattr(os, "umask", lambda mask: calls.append(mask) or real_umask(mask))
        semflow.write_flow(tmp_path / "f.flo", np.zeros((4, 4, 2), np.float32))
        semflow.write_image(tmp_path / "i.png", np.zeros((4, 4, 3), np.uint8))
    finally:
        real_umask(old)
    assert calls == []
    assert {oct((tmp_path / n).stat().st_mode & 0o777) for n in ("f.flo", "i.png")} == {oct(0o640)}


def test_an_output_that_cannot_be_written_is_a_semflow_error(tmp_path: Path) -> None:
    """``write_flow`` / ``write_image`` raised bare OSErrors (a file in place of the folder read "File
    exists: 'afile'"), where every problem a user can cause is a SemflowError."""
    from semflow.errors import OutputFileError

    (tmp_path / "afile").write_text("")
    (tmp_path / "folder.flo").mkdir()
    flow, image = np.zeros((4, 4, 2), np.float32), np.zeros((4, 4, 3), np.uint8)
    cases = [(lambda: semflow.write_flow(tmp_path / "afile/x.flo", flow), "afile/x.flo: a part of its folder is a file"),
             (lambda: semflow.write_image(tmp_path / "afile/x.png", image), "afile/x.png: a part of its folder is a file"),
             (lambda: semflow.write_flow(tmp_path / "folder.flo", flow), "folder.flo: Is a directory")]
    for write, message in cases:
        with pytest.raises(semflow.OutputError, match=message) as err:
            write()
        assert isinstance(err.value, OutputFileError) and isinstance(err.value, OSError)  # (errno kept)
        assert "\n" not in str(err.value)
    assert sorted(os.listdir(tmp_path)) == ["afile", "folder.flo"]  # no temporary file left


def test_building_a_segmenter_draws_nothing_from_the_callers_torch_stream() -> None:
    """The segmenter's model was built with random weights (then replaced by the file's) from torch's
    global stream: a host that seeds torch got other numbers once semflow's segmenter was built."""
    torch = pytest.importorskip("torch")
    from semflow.segmentation import get_segmenter

    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    get_segmenter("camvid")
    assert torch.equal(torch.rand(3), expected)


def test_discrete_median_leaves_the_callers_opencv_stream_alone() -> None:
    """``discrete`` with ``median_radius`` seeded OpenCV's random stream to 0 (for a repeatable filter)
    in the caller's thread: a host's cv2.setRNGSeed(42) stream was replaced."""
    import cv2

    from semflow.baseline.discrete.densify import weighted_median
    from semflow.synthetic import make_scene

    scene = make_scene(60, 80, seed=0)
    first = weighted_median(scene.img1, scene.flow, radius=5)
    drawn = np.zeros(4, np.float32)
    cv2.setRNGSeed(42)
    cv2.randu(drawn, 0, 1)
    expected = drawn.copy()
    cv2.setRNGSeed(42)
    again = weighted_median(scene.img1, scene.flow, radius=5)
    cv2.randu(drawn, 0, 1)
    assert np.array_equal(drawn, expected) and np.array_equal(first, again)  # (and still repeatable)


def test_batch_options_and_inputs_come_without_ray(tmp_path: Path) -> None:
    """``import semflow.batch`` (for BatchOptions or expand_inputs) imported Ray: a second, and a changed
    process (Ray's excepthook, sys.path). Ray comes with ``Batch`` now."""
    code = ("import sys\nfrom semflow.batch import BatchOptions, expand_inputs\nprint('ray' in sys.modules)\n"
            "from semflow.batch import Batch\nprint('ray' in sys.modules, Batch.__name__)\n")
    proc = _python(code, tmp_path)
    assert proc.stdout.split() == ["False", "True", "Batch"], proc.stderr


def test_captures_of_native_stderr_share_one_file_and_keep_their_own_lines(monkeypatch) -> None:
    """Every decoded frame made (and deleted) a temporary file for what FFmpeg might print: 0.12 ms a frame,
    a third of decoding a 96x72 frame. Now one file serves a process's captures; each still gets only
    its own lines, a capture inside another too."""
    import os
    import tempfile

    from semflow.io import native

    made = []
    real = tempfile.TemporaryFile
    monkeypatch.setattr(native.tempfile, "TemporaryFile", lambda *a, **k: made.append(1) or real(*a, **k))
    monkeypatch.setattr(native, "_sink", None)
    owned = native.own_native_output(True)
    try:
        for k in range(3):
            with native.native_stderr() as lines:
                os.write(2, f"line {k}\n".encode())
            assert lines == [f"line {k}"]
        with native.native_stderr() as outer:
            os.write(2, b"outer 1\n")
            with native.native_stderr() as inner:
                os.write(2, b"inner\n")
            os.write(2, b"outer 2\n")
        assert inner == ["inner"] and outer == ["outer 1", "outer 2"]
        assert len(made) == 2  # the process's one file, and the nested capture's own
    finally:
        native.own_native_output(owned)


def test_run_options_of_a_built_method_name_it_and_its_options(make_frames) -> None:
    """RunOptions(method=<built method>).fingerprint(video) recorded the method object itself as the method
    (summary.json could not hold it) and the registry's defaults as its options (static typing probe)."""
    frames = make_frames(3)
    built = semflow.get_method("dis-fast", sharpen=True)
    settings = RunOptions(method=built).fingerprint(frames)
    assert settings["method"] == "dis-fast" and settings["method_options"]["sharpen"] is True
    assert settings == RunOptions(method="dis-fast", method_options={"sharpen": True}).fingerprint(frames)


FORKED_CHILD = """
import multiprocessing as mp, time
import numpy as np
import semflow
from semflow.synthetic import translation_scene

scene = translation_scene(96, 128, shift=(2.0, 1.0), seed=3)
method = semflow.get_method("discrete", sharpen=False)
first = method(scene.img1, scene.img2)

def child(queue):
    queue.put(bool(np.array_equal(method(scene.img1, scene.img2), first)))

context = mp.get_context("fork")
queue = context.Queue()
process = context.Process(target=child, args=(queue,))
process.start()
process.join(60)
alive = process.is_alive()
if alive:
    process.kill()
print("waited for good" if alive else queue.get(timeout=5))
"""


@pytest.mark.skipif(not hasattr(os, "register_at_fork"), reason="fork only")
def test_discrete_runs_in_a_process_forked_after_it_ran() -> None:
    """A threads-and-processes probe: a fork pool of `discrete` (or `semantic`) whose parent had run it once
    waited for good in torch's first parallel operation (torch's thread pool does not survive a fork). A
    forked child now runs torch on one thread: the same flow."""
    done = subprocess.run([sys.executable, "-c", FORKED_CHILD], capture_output=True, text=True, timeout=180,
                          env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert done.stdout.strip() == "True", (done.stdout, done.stderr[-2000:])
