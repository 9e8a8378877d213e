"""The ``semflow`` command's entry point (:mod:`semflow.console`): Ctrl-C or SIGTERM while the command line
loads its modules ends in one line, as later, not in a traceback of the imports; ``import semflow`` loads
neither numpy nor OpenCV (the API's names come when first used)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Runs semflow.console.main() with an import hook that stops the load of semflow.cli part way, as a signal
# arriving then would: Ctrl-C raises KeyboardInterrupt there, SIGTERM runs the handler in force.
SCRIPT = """
import os, signal, sys
how = sys.argv[1]

class Stop:
    def find_spec(self, name, path=None, target=None):
        if name == "semflow.cli":
            if how.startswith("int"):
                raise KeyboardInterrupt
            os.kill(os.getpid(), signal.SIGTERM)
        return None

sys.meta_path.insert(0, Stop())

class Twice:
    def write(self, text):
        os.kill(os.getpid(), signal.SIGINT)  # (a second Ctrl-C, as the first one's line is written)
        return sys.__stderr__.write(text)

    def __getattr__(self, name):
        return getattr(sys.__stderr__, name)


if how == "int-twice":
    sys.stderr = Twice()
sys.argv = ["semflow", "methods"]
from semflow.console import main
main()
"""


@pytest.mark.parametrize(("how", "code", "line"), [("int", 130, "semflow: interrupted"),
                                                   ("int-twice", 130, "semflow: interrupted"),
                                                   ("term", 143, "semflow: terminated")])
def test_a_signal_while_the_command_line_loads_is_one_line(how: str, code: int, line: str) -> None:
    """Ctrl-C in the first half second of `semflow run ...` printed a KeyboardInterrupt traceback; a second
    Ctrl-C (int-twice) while the first one's line was written, another."""
    done = subprocess.run([sys.executable, "-c", SCRIPT, how], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (code, line + "\n"), done.stderr
    assert done.stdout == ""


def test_the_console_script_is_the_loader_and_import_semflow_stays_light() -> None:
    scripts = (ROOT / "pyproject.toml").read_text().split("[project.scripts]", 1)[1].split("[", 1)[0]
    assert scripts.split() == ["semflow", "=", '"semflow.console:main"']
    probe = ("import sys, semflow; light = not {'numpy', 'cv2', 'click'} & set(sys.modules); "
             "from semflow import estimate_flow, get_method, InputError; import numpy as np; "
             "f = semflow.estimate_flow(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8)); "
             "print(light, f.shape, 'estimate_flow' in dir(semflow))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["True", "(8,", "8,", "2)", "True"], done.stderr
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        import semflow

        semflow.nothing_here  # noqa: B018


def test_submodules_are_attributes_of_semflow_from_the_start() -> None:
    """README names semflow.errors.SemflowWarning for warnings filters and semflow.methods.method_options: after
    `import semflow` alone they were AttributeErrors (the lazy loader served only the top-level names)."""
    probe = ("import warnings, semflow; warnings.simplefilter('error', semflow.errors.SemflowWarning); "
             "print(semflow.methods.method_options('dis-fast')[0].name, semflow.metrics.__name__, "
             "semflow.io.flow.read_flow is semflow.read_flow)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["device", "semflow.metrics", "True"], done.stderr
    probe = "import semflow; semflow.no_such_module"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.stderr.strip().splitlines()[-1] == "AttributeError: module 'semflow' has no attribute 'no_such_module'"


def test_python_dash_m_semflow_runs_the_command_line() -> None:
    done = subprocess.run([sys.executable, "-m", "semflow", "methods"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "discrete" in done.stdout, done.stderr


def test_a_command_started_without_its_standard_streams_gets_dev_null_for_them() -> None:
    """Started with stderr closed (``2>&-``), the next file opened took descriptor 2: a process pool's wake-up
    pipe, which the decoders' capture of stderr replaced now and then (compare hung for good), and batch
    failed without a word (Ray wants sys.stderr). The command now opens /dev/null there first."""
    probe = ("import os, sys; from semflow.console import standard_streams_opened; standard_streams_opened(); "
             "null = os.stat(os.devnull); "
             "print([os.path.samestat(os.fstat(fd), null) for fd in (0, 2)], sys.stdin is not None, "
             "sys.stderr is not None, sys.stderr.fileno())")
    for closed in ((2,), (0, 2)):
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                              preexec_fn=lambda closed=closed: [os.close(fd) for fd in closed])
        assert done.stdout.split() == ["[True,", "True]", "True", "True", "2"], (closed, done.stdout, done.stderr)


def test_ctrl_c_while_python_shuts_down_after_the_command_exits_with_its_status() -> None:
    """A terminal probe: Ctrl-C in the tenths of a second between a command's last line and the process's
    end raised in the interpreter's shutdown (a traceback, exit 0) or killed it without a word. It now ends
    the process at once with the command's own status. (The SIGINT here comes from an exit handler.)"""
    probe = ("import atexit, os, signal, sys, time\n"
             "def late():\n"
             "    os.kill(os.getpid(), signal.SIGINT)\n"
             "    time.sleep(10)\n"
             "    print('slept')\n"
             "atexit.register(late)\n"
             "sys.argv = ['semflow', sys.argv[1]]\n"
             "from semflow.console import main\n"
             "main()\n")
    for command, rc in (("methods", 0), ("no-such-command", 2)):
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-c", probe, command], capture_output=True, text=True, timeout=120)
        assert done.returncode == rc and "slept" not in done.stdout and "Traceback" not in done.stderr, done
        assert "Exception ignored" not in done.stderr and time.monotonic() - started < 9
    assert "discrete" in subprocess.run([sys.executable, "-c", probe, "methods"], capture_output=True, text=True,
                                        timeout=120).stdout


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_help_or_version_into_a_full_disk_is_one_line(flag: str) -> None:
    """`semflow --version >/dev/full` printed a 38-line traceback (the group's own options wrote outside the
    command's error handling)."""
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "semflow", flag], stdout=full, stderr=subprocess.PIPE,
                              text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr == "semflow: error: cannot write the output: No space left on device\n"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_commands_lines_into_a_full_disk_name_stdout() -> None:
    """`semflow methods >/dev/full` said "semflow: error: No space left on device", as if an output file
    had failed."""
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "semflow", "methods"], stdout=full, stderr=subprocess.PIPE,
                              text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr == "semflow: error: stdout: No space left on device\n"
