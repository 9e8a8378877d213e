"""Failures that the operating system's limits on a process cause (``ulimit -v``, ``-u``, ``-f``), as shared
machines, clusters and containers set them: one ``semflow: error:`` line naming the limit, never a
traceback. Simulated here (the failure raised where it happens, the limit in force made up), since real
limits reach every library the test process has loaded."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import semflow.evaluation  # noqa: F401  (imported now: they bind semflow.methods.get_method as they load,
import semflow.limits
import semflow.methods
import semflow.pipeline  # noqa: F401  and the tests here replace it for a while)
from semflow.cli import main
from semflow.errors import OutputFileError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    import cv2

    rng = np.random.default_rng(0)
    image = (rng.random((40, 48, 3)) * 255).astype(np.uint8)
    paths = tmp_path / "a.png", tmp_path / "b.png"
    for path, shifted in zip(paths, (image, np.roll(image, 2, axis=1))):
        cv2.imwrite(str(path), shifted)
    return paths


@pytest.fixture
def limits(monkeypatch) -> dict[str, str]:
    """The limits in force, as semflow.limits reads them: made up by each test."""
    made_up: dict[str, str] = {}
    monkeypatch.setattr(semflow.limits, "limit_in_force", made_up.get)
    return made_up


def _flow(pair: tuple[Path, Path], tmp_path: Path) -> object:
    return CliRunner().invoke(main, ["flow", str(pair[0]), str(pair[1]), "-o", str(tmp_path / "o.flo"),
                                     "--method", "dis-fast"])


def _failing_method(monkeypatch, exc: BaseException) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise exc

    monkeypatch.setattr(semflow.methods, "get_method", fail)


def test_a_library_that_the_address_space_limit_keeps_out_is_one_line(pair, tmp_path, monkeypatch, limits) -> None:
    """Was a traceback ending in "ImportError: libtorch_cpu.so: failed to map segment from shared object"
    (`ulimit -v 1000000`, the default method: torch needs more address space than that to load)."""
    limits["RLIMIT_AS"] = "ulimit -v 1000000 KiB"
    _failing_method(monkeypatch, ImportError("libtorch_cpu.so: failed to map segment from shared object"))
    result = _flow(pair, tmp_path)
    assert result.exit_code == 1 and not isinstance(result.exception, ImportError), result.exception
    assert result.output == ("semflow: error: out of memory while loading libtorch_cpu.so: the address-space"
                             " limit is ulimit -v 1000000 KiB; raise it\n"), result.output


def test_a_thread_that_cannot_start_is_one_line(pair, tmp_path, monkeypatch, limits) -> None:
    """Was a traceback ending in "RuntimeError: can't start new thread" (`ulimit -v 600000` or `ulimit -u 6`:
    the thread that reads FFmpeg's messages, the render's look-ahead thread)."""
    limits["RLIMIT_NPROC"] = "ulimit -u 6 processes"
    _failing_method(monkeypatch, RuntimeError("can't start new thread"))
    result = _flow(pair, tmp_path)
    assert result.exit_code == 1 and not isinstance(result.exception, RuntimeError), result.exception
    assert result.output.startswith("semflow: error: cannot start a thread or process (limits in force: ulimit"
                                    " -u 6 processes)") and result.output.count("\n") == 1, result.output


def test_a_process_that_cannot_fork_is_one_line_naming_the_limit(pair, tmp_path, monkeypatch, limits) -> None:
    """Was "semflow: error: Resource temporarily unavailable" (a fork under `ulimit -u 3`): no word of why."""
    limits["RLIMIT_NPROC"] = "ulimit -u 3 processes"
    _failing_method(monkeypatch, BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable"))
    result = _flow(pair, tmp_path)
    assert result.exit_code == 1 and "ulimit -u 3" in result.output, result.output


def test_other_runtime_errors_stay_visible(pair, tmp_path, monkeypatch, limits) -> None:
    """A RuntimeError no limit explains is a bug: it is not dressed up as a user's error."""
    _failing_method(monkeypatch, RuntimeError("something else"))
    result = _flow(pair, tmp_path)
    assert isinstance(result.exception, RuntimeError) and "semflow: error" not in result.output


def test_out_of_memory_names_the_address_space_limit(pair, tmp_path, monkeypatch, limits) -> None:
    """Was "out of memory; try smaller frames (run: --max-side)" alone, with `ulimit -v` the cause."""
    limits["RLIMIT_AS"] = "ulimit -v 2000000 KiB"
    _failing_method(monkeypatch, MemoryError())
    result = _flow(pair, tmp_path)
    assert result.exit_code == 1 and "ulimit -v 2000000 KiB" in result.output and "--max-side" in result.output


def test_a_file_too_large_names_the_file_size_limit(pair, tmp_path, monkeypatch, limits) -> None:
    """Was "semflow: error: o.flo: File too large" (`ulimit -f 8`): as if the disk or the format were at fault."""
    import semflow.io.flow

    limits["RLIMIT_FSIZE"] = "ulimit -f 8 KiB"

    def write(path: object, flow: object) -> None:
        raise OutputFileError(errno.EFBIG, "File too large", str(path))

    monkeypatch.setattr(semflow.io.flow, "write_flow", write)
    result = _flow(pair, tmp_path)
    assert result.exit_code == 1, result.output
    assert result.output == (f"semflow: error: {tmp_path / 'o.flo'}: file too large: the file-size limit is"
                             " ulimit -f 8 KiB; raise it\n"), result.output


def test_run_says_resume_keeps_what_was_finished(tmp_path, monkeypatch, limits) -> None:
    """`run` can continue: the line says so (after `ulimit -f 64` the same run with --resume finished)."""
    limits["RLIMIT_AS"] = "ulimit -v 1000000 KiB"
    _failing_method(monkeypatch, ImportError("libtorch_cpu.so: failed to map segment from shared object"))
    result = CliRunner().invoke(main, ["run", str(ROOT / "assets" / "street.mp4"), "--max-frames", "2",
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "--resume" in result.output and result.output.count("\n") == 1, result.output


def test_opencv_that_cannot_load_as_the_command_starts_is_one_line(tmp_path: Path) -> None:
    """Was a traceback of the imports ending in "ImportError: libavutil-...so: failed to map segment from
    shared object" (`ulimit -v 300000`: OpenCV's libraries, loaded before the command's own handling)."""
    script = ("import sys\n"
              "class Stop:\n"
              "    def find_spec(self, name, path=None, target=None):\n"
              "        if name == 'semflow.cli':\n"
              "            raise ImportError('libavutil.so.61: failed to map segment from shared object')\n"
              "sys.meta_path.insert(0, Stop())\n"
              "sys.argv = ['semflow', 'methods']\n"
              "from semflow.console import main\n"
              "main()\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert done.returncode == 1 and done.stderr.startswith(
        "semflow: error: out of memory while loading libavutil.so.61") and "Traceback" not in done.stderr, done.stderr


def test_the_soft_cpu_time_limit_stops_a_run_that_can_resume(tmp_path, monkeypatch) -> None:
    """SIGXCPU (`ulimit -S -t 4`) ended the process at once, exit 152, not a word said. It now unwinds like
    SIGTERM: one line naming the limit, what was finished kept (the same run with --resume went on)."""
    import signal

    def xcpu(*args: object, **kwargs: object) -> None:
        handler = signal.getsignal(signal.SIGXCPU)
        assert callable(handler), "SIGXCPU would end the process without a word"
        handler(signal.SIGXCPU, None)

    monkeypatch.setattr(semflow.methods, "get_method", xcpu)
    result = CliRunner().invoke(main, ["run", str(ROOT / "assets" / "street.mp4"), "--max-frames", "2",
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 152, (result.exit_code, result.output)
    assert result.output.startswith("semflow: stopped: CPU-time limit reached (ulimit -t)"), result.output
    assert signal.getsignal(signal.SIGXCPU) is signal.SIG_DFL  # (put back as it was)


def test_a_compare_child_that_cannot_start_its_watch_thread_still_works(monkeypatch) -> None:
    """`compare` under `ulimit -u 12`: the child's thread that watches for its parent could not start, the
    pool's initializer failed ("Exception in initializer:" and a traceback from the child) and the command
    said "method semantic stopped in its process (killed, perhaps for memory)". The child goes on unwatched."""
    import os
    import signal
    import threading

    import semflow.isolation

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # (this test process keeps its own handlers)
    monkeypatch.setattr(signal, "pthread_sigmask", lambda *args: None)
    monkeypatch.setattr(semflow.isolation, "own_native_output", lambda *args: None)
    semflow.isolation._leave_with_parent(os.getpid())  # (raised RuntimeError)


def test_a_compare_child_that_died_names_the_limits_in_force(monkeypatch) -> None:
    """Under `ulimit -u 12` OpenMP's threads could not start in the child (libgomp ends the process): the
    line said "killed, perhaps for memory" alone."""
    import concurrent.futures.process

    import semflow.isolation
    from semflow.errors import SemflowError

    broken: concurrent.futures.Future = concurrent.futures.Future()
    broken.set_exception(concurrent.futures.process.BrokenProcessPool("gone"))
    monkeypatch.setattr(semflow.isolation, "limits_in_force", lambda *names: "ulimit -u 12 processes",
                        raising=False)
    method = semflow.isolation.IsolatedMethod("dis-fast", {})
    try:
        monkeypatch.setattr(method, "_submit", lambda *args: broken)
        with pytest.raises(SemflowError, match=r"stopped in its process \(.*ulimit -u 12 processes\)"):
            method.estimate(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.uint8))
    finally:
        method.close()


@pytest.mark.parametrize("given", ["0", "-1", "abc", ""])
def test_a_thread_count_that_is_no_number_is_one_warning(given: str, tmp_path: Path) -> None:
    """OMP_NUM_THREADS=0 (-1, abc) made libgomp print "libgomp: Invalid value for environment variable
    OMP_NUM_THREADS" among semflow's lines when torch loaded; semflow now says it once and leaves it out."""
    script = ("import os, sys\n"
              "sys.argv = ['semflow', 'methods']\n"
              "from semflow.console import main\n"
              "try:\n"
              "    main()\n"
              "finally:\n"
              "    print('left', repr(os.environ.get('OMP_NUM_THREADS')), file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": given},
                          timeout=60)
    assert done.stderr == (f"semflow: warning: OMP_NUM_THREADS={given!r} is not a number of threads (1 or more);"
                           " ignored\nleft None\n"), done.stderr


def test_a_thread_count_that_is_a_number_is_kept(monkeypatch) -> None:
    from semflow.console import thread_count_checked

    monkeypatch.setenv("OMP_NUM_THREADS", "1000")
    thread_count_checked()
    assert os.environ["OMP_NUM_THREADS"] == "1000"


def test_a_video_whose_decoder_cannot_start_its_threads_names_the_limit(monkeypatch, limits) -> None:
    """`run` under `ulimit -u 3`: OpenCV's FFmpeg decoder could not start its threads and read nothing, and
    the line blamed the video: "street.mp4: not a readable video (no frame could be decoded)"."""
    import threading

    import semflow.io.video
    from semflow.errors import ResourceError

    class Unopened:
        def isOpened(self) -> bool:
            return False

        def release(self) -> None:
            pass

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    limits["RLIMIT_NPROC"] = "ulimit -u 3 processes"
    monkeypatch.setattr(semflow.io.video, "open_capture", lambda path: Unopened())
    monkeypatch.setattr(threading.Thread, "start", refuse)
    with pytest.raises(ResourceError, match=r"street.mp4: cannot start a thread or process \(limits in force: "
                                            r"ulimit -u 3 processes\)"):
        semflow.io.video.FrameSource(ROOT / "assets" / "street.mp4", max_frames=2)


def test_compare_that_cannot_start_the_pool_threads_says_so(monkeypatch, limits) -> None:
    """`compare` under `ulimit -u 6` waited for good: the process pool's feeder thread could not start (a
    traceback from that thread) and the pair's result never came. The threads are tried first."""
    import threading

    import semflow.isolation
    from semflow.errors import ResourceError

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    limits["RLIMIT_NPROC"] = "ulimit -u 6 processes"
    method = semflow.isolation.IsolatedMethod("dis-fast", {})
    try:
        monkeypatch.setattr(threading.Thread, "start", refuse)
        with pytest.raises(ResourceError, match=r"method dis-fast: cannot start a thread or process \(limits"):
            method.estimate(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.uint8))
    finally:
        monkeypatch.undo()
        method.close()


@pytest.mark.parametrize("failure", [
    RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you"
                 " tried to allocate 5440448 bytes. Error code 12 (Cannot allocate memory)"),
    RuntimeError("std::bad_alloc"),
])
def test_a_library_allocation_that_fails_is_out_of_memory(failure, pair, tmp_path, monkeypatch, limits) -> None:
    """`compare` under `ulimit -v 4000000`: a traceback ending in torch's "DefaultCPUAllocator: can't allocate
    memory" (raised in the child, re-raised in the command)."""
    limits["RLIMIT_AS"] = "ulimit -v 4000000 KiB"
    _failing_method(monkeypatch, failure)
    result = _flow(pair, tmp_path)
    assert result.exit_code == 1 and result.output.startswith(
        "semflow: error: out of memory (the address-space limit is ulimit -v 4000000 KiB"), result.output


def test_a_video_past_the_file_size_limit_names_it(tmp_path: Path) -> None:
    """FFmpeg, killed by SIGXFSZ at `ulimit -f`, was "FFmpeg could not finish the video: File size limit
    exceeded" without the limit; it now says which (run in a child process: the limit would bind pytest)."""
    script = ("import resource, sys\n"
              "import numpy as np\n"
              "from semflow.io.video import VideoWriter\n"
              "resource.setrlimit(resource.RLIMIT_FSIZE, (20 * 1024, resource.RLIM_INFINITY))\n"
              "rng = np.random.default_rng(0)\n"
              "w = VideoWriter(sys.argv[1], 10.0)\n"
              "try:\n"
              "    for _ in range(30):\n"
              "        w.write((rng.random((96, 128, 3)) * 255).astype(np.uint8))\n"
              "    w.close()\n"
              "except Exception as exc:\n"
              "    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "v.mp4")], capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.stdout.strip().endswith("File size limit exceeded (limit in force: ulimit -f 20 KiB)"), done


def test_ffmpeg_that_could_not_start_its_threads_names_the_limit(limits) -> None:
    """FFmpeg under `ulimit -u 24` said "Resource temporarily unavailable" and no more."""
    from types import SimpleNamespace

    from semflow.io.ffmpeg import FFmpegEncoder

    limits["RLIMIT_NPROC"] = "ulimit -u 24 processes"
    encoder = SimpleNamespace(log=["[vost#0:0 @ 0x1] Resource temporarily unavailable"], path=Path("t.mp4"),
                              name=Path("flow.mp4"), _proc=SimpleNamespace(returncode=1))
    said = str(FFmpegEncoder._failure(encoder))  # type: ignore[arg-type]
    assert said == ("flow.mp4: FFmpeg could not finish the video: Resource temporarily unavailable (limit in"
                    " force: ulimit -u 24 processes)"), said


def test_workers_that_cannot_load_their_libraries_name_the_address_space_limit(monkeypatch) -> None:
    """`batch` under `ulimit -v 3000000`: "the workers could not build method 'dis-fast': ImportError:
    libtorch_cpu.so: failed to map segment from shared object" said nothing of the limit its workers inherit."""
    from semflow.batch import workers

    raised = Exception("The actor died because of an error raised in its creation task, __init__\n"
                       "ImportError: libtorch_cpu.so: failed to map segment from shared object")
    monkeypatch.setattr(workers, "limits_in_force", lambda *names: "ulimit -v 3000000 KiB")
    assert workers.why_not_built(raised) == ("ImportError: libtorch_cpu.so: failed to map segment from shared object"
                                             " (out of memory: the address-space limit is ulimit -v 3000000 KiB;"
                                             " raise it)")
    monkeypatch.setattr(workers, "limits_in_force", lambda *names: "")  # (no limit: the line as it was)
    assert workers.why_not_built(raised).endswith("failed to map segment from shared object")


# --- limit_message itself: which failures a limit explains, and its line with and without one ------------


def test_a_limit_is_read_as_ulimit_says_it(monkeypatch) -> None:
    """The soft limit in ulimit's units; none where it is unlimited, unreadable or unknown on this system."""
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda which: (600000 * 1024, resource.RLIM_INFINITY))
    assert semflow.limits.limit_in_force("RLIMIT_AS") == "ulimit -v 600000 KiB"

    def unreadable(which: int) -> tuple[int, int]:
        raise ValueError("invalid resource")

    monkeypatch.setattr(resource, "getrlimit", unreadable)
    assert semflow.limits.limit_in_force("RLIMIT_AS") is None
    monkeypatch.delattr(resource, "RLIMIT_NPROC")
    assert semflow.limits.limit_in_force("RLIMIT_NPROC") is None


def test_the_limits_in_force_are_named_together(limits) -> None:
    limits.update({"RLIMIT_NPROC": "ulimit -u 6 processes", "RLIMIT_AS": "ulimit -v 100 KiB"})
    assert semflow.limits.limits_in_force("RLIMIT_NPROC", "RLIMIT_AS") == "ulimit -u 6 processes, ulimit -v 100 KiB"
    assert semflow.limits.limit_message(RuntimeError("can't start new thread")) == (
        "cannot start a thread or process (limits in force: ulimit -u 6 processes, ulimit -v 100 KiB); raise them")
    del limits["RLIMIT_NPROC"]  # (an address-space limit alone also keeps threads from starting)
    assert semflow.limits.limit_message(RuntimeError("can't start new thread")) == (
        "cannot start a thread or process (limits in force: ulimit -v 100 KiB); raise it")


@pytest.mark.parametrize("text", ["Insufficient memory", "OpenCV: Failed to allocate 1234 bytes", "std::bad_alloc",
                                  "DefaultCPUAllocator: can't allocate memory", "Cannot allocate memory",
                                  "libc.so: failed to map segment from shared object",
                                  "cannot map zero-fill pages"])
def test_each_way_a_library_says_it_ran_out_of_memory_is_read_so(text: str) -> None:
    assert semflow.limits.says_out_of_memory(text)


def test_other_lines_do_not_say_out_of_memory() -> None:
    assert not semflow.limits.says_out_of_memory("InputError: clip.mp4: not a readable video")


def test_opencvs_insufficient_memory_is_out_of_memory(limits) -> None:
    import cv2

    failure = cv2.error("OpenCV(4.9.0) alloc.cpp:73: error: (-4:Insufficient memory) Failed to allocate 9 bytes")
    assert semflow.limits.limit_message(failure) == "out of memory; try smaller frames (run: --max-side)"


@pytest.mark.parametrize("failure", [
    ValueError("failed to allocate the labels: give fewer classes"),  # (not a library's allocation)
    ImportError("No module named 'torchvision'"),
    BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable", "pipe"),  # (a file's, not a fork's)
])
def test_failures_no_limit_explains_are_left_as_they_are(failure: BaseException, limits) -> None:
    limits.update({"RLIMIT_NPROC": "ulimit -u 6 processes", "RLIMIT_AS": "ulimit -v 100 KiB"})
    assert semflow.limits.limit_message(failure) is None


def test_a_file_too_large_where_no_limit_is_set_blames_the_file_system(limits) -> None:
    failure = OSError(errno.EFBIG, "File too large", "o.flo")
    assert semflow.limits.limit_message(failure) == "o.flo: file too large for the file system"


def test_a_worker_build_error_that_is_not_out_of_memory_gets_no_limit_hint(monkeypatch) -> None:
    """Only an out-of-memory line is said with the address-space limit; semflow's own errors lose their class."""
    from semflow.batch import workers

    raised = Exception("The actor died because of an error raised in its creation task, __init__\n"
                       "semflow.errors.InputError: weights.pt: not a model file")
    monkeypatch.setattr(workers, "limits_in_force", lambda *names: "ulimit -v 3000000 KiB")
    assert workers.why_not_built(raised) == "weights.pt: not a model file"


def test_a_thread_count_for_each_nesting_level_is_kept(monkeypatch) -> None:
    """OpenMP takes a list, one count a level of nested parallelism (``4,2``): not a value to leave out."""
    from semflow.console import thread_count_checked

    monkeypatch.setenv("OMP_NUM_THREADS", "4, 2")
    thread_count_checked()
    assert os.environ["OMP_NUM_THREADS"] == "4, 2"


def test_a_local_ray_is_refused_where_the_process_limit_leaves_it_too_few(monkeypatch) -> None:
    """As a user under `ulimit -u 160`, `batch` hung for good in ray.init (its core worker could not start
    its threads), and under 200 its workers died "killed for memory, or a crash": a local Ray is now refused
    before it starts, in one line naming the limit and how far to raise it."""
    import resource
    import threading

    from semflow.batch import cluster
    from semflow.errors import SemflowError

    real = resource.getrlimit
    monkeypatch.setattr(semflow.limits.os, "getuid", lambda: 65534)  # (root is not held to ulimit -u)
    monkeypatch.setattr(semflow.limits.resource, "getrlimit",
                        lambda which: (160, 160) if which == resource.RLIMIT_NPROC else real(which))
    monkeypatch.setattr(semflow.limits, "tasks_of_user", lambda uid: 10)
    started = []
    with pytest.raises(SemflowError) as raised:
        cluster.start_ray(lambda **settings: started.append(settings), None, 2)
    needed = cluster.RAY_TASKS + 2 * cluster.WORKER_TASKS
    assert str(raised.value) == ("cannot start Ray on this machine: the limit on processes (ulimit -u 160 processes)"
                                 " leaves this user 150 more processes and threads, and a Ray of 2 workers needs"
                                 f" {needed} at the least; raise it by {needed - 150} or more, or use fewer --workers")
    assert not started
    monkeypatch.setattr(semflow.limits.resource, "getrlimit",
                        lambda which: (10 + needed, 10 + needed) if which == resource.RLIMIT_NPROC else real(which))
    cluster.check_process_room(2)  # (room enough: no refusal)
    monkeypatch.undo()
    assert semflow.limits.tasks_of_user(os.getuid()) >= threading.active_count()  # (this process's threads count)


def test_workers_that_died_building_their_method_name_the_process_limit_they_inherit(monkeypatch) -> None:
    """`batch` as a user under `ulimit -u 200`: each worker aborted, unable to start a thread, and the line
    said only "killed for memory, or a crash in the method's own code". A local Ray's workers inherit this
    process's limits: they are named; a cluster joined (not local) is under limits of its own."""
    from semflow.batch import workers

    died = Exception("The actor died unexpectedly before finishing this task.")
    monkeypatch.setattr(workers, "limits_in_force", lambda *names: "ulimit -u 200 processes")
    assert workers.why_not_built(died, local=True) == (
        "a worker process died while building it (2 times: killed for memory, or a crash in the method's own code,"
        " or a limit the workers inherit from here: ulimit -u 200 processes; raise it)")
    assert workers.why_not_built(died).endswith("crash in the method's own code)")


def test_ray_that_could_not_start_names_the_limit_on_open_files(monkeypatch) -> None:
    """As a user under `ulimit -n 32` Ray's GCS could not start, and the line named the limits in force as
    "ulimit -u 96369 processes" (the system's default) but not the one on open files that stopped it."""
    import resource

    from semflow.batch.cluster import ray_starting
    from semflow.errors import SemflowError

    real = resource.getrlimit
    monkeypatch.setattr(semflow.limits.resource, "getrlimit", lambda which: (32, 32) if which == resource.RLIMIT_NOFILE
                        else (resource.RLIM_INFINITY, resource.RLIM_INFINITY) if which == resource.RLIMIT_NPROC
                        else real(which))
    assert semflow.limits.limit_in_force("RLIMIT_NOFILE") == "ulimit -n 32 files"
    with pytest.raises(SemflowError) as raised:
        with ray_starting():
            raise Exception("Timed out waiting for file /tmp/ray/session_1/gcs_server_port_1")
    assert "Ray's processes are bound by the limits in force too: ulimit -n 32 files" in str(raised.value)


def test_an_encoder_that_could_not_open_with_few_threads_left_names_the_process_limit(limits, monkeypatch) -> None:
    """As a user under `ulimit -u 12` (or a batch's workers under 200) libx264 could not start its threads,
    and the clip failed with FFmpeg's "Error while opening encoder - maybe incorrect parameters such as
    bit_rate, rate, width or height.", naming no limit."""
    from types import SimpleNamespace

    from semflow.io import ffmpeg

    limits["RLIMIT_NPROC"] = "ulimit -u 12 processes"
    opening = ("[vost#0:0/libx264 @ 0x1] [enc:libx264 @ 0x2] Error while opening encoder - maybe incorrect parameters"
               " such as bit_rate, rate, width or height.")
    encoder = SimpleNamespace(log=[opening, "[vf#0:0 @ 0x3] Error sending frames to consumers"], path=Path("t.mp4"),
                              name=Path("flow.mp4"), _proc=SimpleNamespace(returncode=234))
    monkeypatch.setattr(ffmpeg, "processes_left", lambda: 9)
    said = str(ffmpeg.FFmpegEncoder._failure(encoder))  # type: ignore[arg-type]
    assert said == ("flow.mp4: FFmpeg could not finish the video: its encoder could not open, with 9 processes and"
                    " threads left to this user (limit in force: ulimit -u 12 processes)"), said
    monkeypatch.setattr(ffmpeg, "processes_left", lambda: None)  # (no such limit, or root: FFmpeg's own line)
    assert "Error while opening encoder" in str(ffmpeg.FFmpegEncoder._failure(encoder))  # type: ignore[arg-type]


def test_a_process_or_file_limit_far_from_binding_is_not_named_as_a_cause(monkeypatch, tmp_path: Path) -> None:
    """The system's default `ulimit -u` (96369 here) and `ulimit -n` (1024 and more) were named as the cause of
    every worker that died building its method and every Ray that did not start, for root too (whom the
    kernel does not hold to ulimit -u): `ulimit -u` is named only for another user with few processes left,
    `ulimit -n` only under 1024."""
    import resource

    real = resource.getrlimit
    monkeypatch.setattr(semflow.limits.resource, "getrlimit", lambda which: (
        (96369, 96369) if which == resource.RLIMIT_NPROC else (1024, 4096) if which == resource.RLIMIT_NOFILE
        else real(which)))
    monkeypatch.setattr(semflow.limits, "tasks_of_user", lambda uid: 96369 - 10)
    uid = [0]
    monkeypatch.setattr(semflow.limits.os, "getuid", lambda: uid[0])
    (tmp_path / "uid_map").write_text("0 0 4294967295\n")  # (the system's root, wherever the tests run)
    monkeypatch.setattr(semflow.limits, "UID_MAP", str(tmp_path / "uid_map"))
    assert semflow.limits.limits_in_force("RLIMIT_NPROC", "RLIMIT_NOFILE") == ""  # root: exempt
    uid[0] = 65534
    assert semflow.limits.limits_in_force("RLIMIT_NPROC") == "ulimit -u 96369 processes"  # 10 left
    monkeypatch.setattr(semflow.limits, "tasks_of_user", lambda uid: 200)
    assert semflow.limits.limits_in_force("RLIMIT_NPROC") == ""  # 96169 left: not what stopped it
    assert semflow.limits.limit_text("RLIMIT_NPROC") == "ulimit -u 96369 processes"  # (the limit as it is)
    monkeypatch.setattr(semflow.limits.resource, "getrlimit", lambda which: (
        (1023, 4096) if which == resource.RLIMIT_NOFILE else real(which)))
    assert semflow.limits.limits_in_force("RLIMIT_NOFILE") == "ulimit -n 1023 files"


def test_root_of_a_rootless_container_is_held_to_the_process_limit(monkeypatch, tmp_path: Path) -> None:
    """The kernel exempts the system's root from `ulimit -u`, not uid 0 in a user namespace of its own (a
    rootless container, its 0 mapped to an unprivileged user outside): there a full ulimit -u is named, and a
    local Ray refused, as for any other user."""
    import resource

    from semflow.batch import cluster
    from semflow.errors import SemflowError

    real = resource.getrlimit
    monkeypatch.setattr(semflow.limits.os, "getuid", lambda: 0)
    monkeypatch.setattr(semflow.limits.resource, "getrlimit",
                        lambda which: (200, 200) if which == resource.RLIMIT_NPROC else real(which))
    monkeypatch.setattr(semflow.limits, "tasks_of_user", lambda uid: 190)
    uid_map = tmp_path / "uid_map"
    monkeypatch.setattr(semflow.limits, "UID_MAP", str(uid_map))
    uid_map.write_text("         0          0 4294967295\n")  # the system's root: exempt
    assert semflow.limits.processes_left() is None and semflow.limits.limits_in_force("RLIMIT_NPROC") == ""
    cluster.check_process_room(2)
    uid_map.write_text("         0     100000      65536\n")  # root of a rootless container
    assert semflow.limits.processes_left() == 10
    assert semflow.limits.limits_in_force("RLIMIT_NPROC") == "ulimit -u 200 processes"
    with pytest.raises(SemflowError, match="leaves this user 10 more processes"):
        cluster.check_process_room(2)


def test_ulimit_u_binds_below_few_processes_left_and_where_they_cannot_be_counted(monkeypatch) -> None:
    """ulimit -u is named as a cause with fewer than FEW_PROCESSES_LEFT processes left to the user, not with
    exactly that many; where the running ones cannot be counted (no /proc) it may be the cause, so it is named."""
    import resource

    real = resource.getrlimit
    few = semflow.limits.FEW_PROCESSES_LEFT
    monkeypatch.setattr(semflow.limits.os, "getuid", lambda: 65534)
    monkeypatch.setattr(semflow.limits.resource, "getrlimit",
                        lambda which: (1000, 1000) if which == resource.RLIMIT_NPROC else real(which))
    running = [1000 - few]
    monkeypatch.setattr(semflow.limits, "tasks_of_user", lambda uid: running[0])
    assert semflow.limits.processes_left() == few and semflow.limits.limits_in_force("RLIMIT_NPROC") == ""
    running[0] += 1
    assert semflow.limits.limits_in_force("RLIMIT_NPROC") == "ulimit -u 1000 processes"
    running[0] = None
    assert semflow.limits.processes_left() is None
    assert semflow.limits.limits_in_force("RLIMIT_NPROC") == "ulimit -u 1000 processes"


def test_root_where_no_user_namespace_can_be_read_is_exempt_and_an_unlimited_limit_is_not_named(
        monkeypatch, tmp_path: Path) -> None:
    """Root on a system without /proc/self/uid_map (not Linux) is the system's root: exempt from ulimit -u.
    A limit that is unlimited (RLIM_INFINITY) is no limit at all: nothing is named."""
    import resource

    monkeypatch.setattr(semflow.limits.os, "getuid", lambda: 0)
    monkeypatch.setattr(semflow.limits, "UID_MAP", str(tmp_path / "no_uid_map"))
    monkeypatch.setattr(semflow.limits, "tasks_of_user", lambda uid: 10)
    assert semflow.limits.exempt_from_process_limit() and semflow.limits.processes_left() is None
    monkeypatch.setattr(semflow.limits.resource, "getrlimit", lambda which: (resource.RLIM_INFINITY,) * 2)
    assert semflow.limits.limit_text("RLIMIT_AS") is None and semflow.limits.limits_in_force("RLIMIT_AS") == ""


def test_the_tasks_of_a_user_are_the_threads_of_its_processes_by_real_uid(monkeypatch, tmp_path: Path) -> None:
    """tasks_of_user counts what ulimit -u counts: the threads of every process whose real uid (the first
    of /proc/PID/status's Uid line) is the user's; /proc/self (this process again) and processes that ended
    or whose status reads oddly meanwhile are left out."""
    proc = tmp_path / "proc"
    statuses = {"100": "Name:\ta\nUid:\t1000\t1000\t1000\t1000\nThreads:\t3\n",
                "101": "Name:\tb\nUid:\t2000\t1000\t1000\t1000\nThreads:\t5\n",  # effective 1000, real 2000
                "self": "Name:\tc\nUid:\t1000\t1000\t1000\t1000\nThreads:\t7\n",
                "102": "Uid:\t1000\t1000\t1000\t1000\nThreads:\tmany\n", "103": "Uid:\t1000\n",
                "105": "Name:\td\nUid:\t1000\t0\t0\t0\nThreads:\t4\n"}
    for name, text in statuses.items():
        (proc / name).mkdir(parents=True)
        (proc / name / "status").write_text(text)
    (proc / "104").mkdir()  # (ended: no status)
    real_open, real_scandir = open, os.scandir

    def proc_open(path, *args, **kwargs):
        return real_open(str(path).replace("/proc/", f"{proc}/", 1), *args, **kwargs)

    monkeypatch.setattr(semflow.limits, "open", proc_open, raising=False)
    monkeypatch.setattr(semflow.limits.os, "scandir", lambda path: real_scandir(proc if path == "/proc" else path))
    assert semflow.limits.tasks_of_user(1000) == 3 + 4
    assert semflow.limits.tasks_of_user(2000) == 5


def test_a_local_ray_is_sized_by_the_workers_asked_for_and_never_told_of_fewer_than_no_processes_left(
        monkeypatch) -> None:
    """The room a local Ray needs is counted for the --workers given (not this machine's cores); where the user
    already runs more than the limit allows (it was lowered meanwhile), 0 are left, not a negative count."""
    import resource

    from semflow.batch import cluster
    from semflow.errors import SemflowError

    real = resource.getrlimit
    monkeypatch.setattr(semflow.limits.os, "getuid", lambda: 65534)
    monkeypatch.setattr(semflow.limits.resource, "getrlimit",
                        lambda which: (160, 160) if which == resource.RLIMIT_NPROC else real(which))
    monkeypatch.setattr(semflow.limits, "tasks_of_user", lambda uid: 175)
    workers = (os.cpu_count() or 1) + 3
    needed = cluster.RAY_TASKS + workers * cluster.WORKER_TASKS
    with pytest.raises(SemflowError) as raised:
        cluster.start_ray(lambda **settings: None, None, workers)
    assert f"leaves this user 0 more processes and threads, and a Ray of {workers} workers needs {needed}" \
        in str(raised.value)
    assert f"raise it by {needed + 15} or more" in str(raised.value)


@pytest.mark.parametrize(("uid", "mapping", "exempt_before_5_14", "exempt_since"), [
    (0, "0 0 4294967295", True, True),        # the system's root
    (0, "0 0 65536", True, False),            # a container that keeps root as root, in a namespace of its own
    (0, "0 100000 65536", False, False),      # root of a rootless container: another user outside
    (1000, "0 0 4294967295", False, False),   # an ordinary user of the system
    (1000, "1000 0 1\n0 100000 1000", True, False),  # a namespace whose user 1000 is the system's root
    (1000, "0 100000 1000", False, False),    # a uid the map does not hold
    (1000, "0 100000 1000\n1000 0 1", True, False),  # the line just past the first holds it
    (1000, "0 0 65536", False, False),        # user 1000 of a namespace that keeps uids as they are
    (0, "x y z\n0 0 65536", True, False),     # a line that is not three numbers is passed over
])
@pytest.mark.parametrize("release", ["4.18.0-553.el8_10.x86_64", "5.13.19", "5.14.0-427.el9.x86_64", "6.18.44",
                                     "unknown"])
def test_the_process_limit_exempts_whoever_the_kernel_exempts(monkeypatch, tmp_path: Path, uid: int, mapping: str,
                                                              exempt_before_5_14: bool, exempt_since: bool,
                                                              release: str) -> None:
    """Since Linux 5.14 ulimit -u counts a user's processes per user namespace and skips only root of the
    initial namespace (its map: ``0 0 4294967295``); before it, any real uid that is uid 0 outside its namespace
    (read through the map's ``inside outside count`` lines, whatever the count) was skipped."""
    uid_map = tmp_path / "uid_map"
    uid_map.write_text(mapping + "\n")
    monkeypatch.setattr(semflow.limits, "UID_MAP", str(uid_map))
    monkeypatch.setattr(semflow.limits.os, "getuid", lambda: uid)
    monkeypatch.setattr(semflow.limits.os, "uname", lambda: types.SimpleNamespace(release=release))
    old_kernel = release.startswith(("4.", "5.13"))  # (a release of another form reads as a recent one)
    assert semflow.limits.exempt_from_process_limit() is (exempt_before_5_14 if old_kernel else exempt_since)
