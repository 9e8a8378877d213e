"""A signal while ``semflow run`` loads matplotlib for its plot (its last step, after the videos) ends in one
line and a resumable folder. matplotlib's C extensions (pybind11) run Python code while they load; Ctrl-C or
SIGTERM raised there failed the import with a traceback ("ImportError: initialization failed") and aborted
Python as it exited ("Fatal Python error", SIGABRT): the crash probe met it once in about 50 SIGTERMs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# Runs `semflow run` with a hook that sends SIGTERM (or SIGINT) to the process from the first enum that
# matplotlib's ft2font extension makes (pybind11) while it loads: where a signal arriving then is handled.
# (A signal inside the extensions loaded before it, such as _c_internal_utils, was handled well already.)
SCRIPT = """
import importlib.machinery, os, signal, sys
how, frames, out = sys.argv[1:4]
loading, fired = [], []
Loader = importlib.machinery.ExtensionFileLoader
real_create, real_exec = Loader.create_module, Loader.exec_module

def create(self, spec):
    loading.append(spec.name)
    try:
        return real_create(self, spec)
    finally:
        loading.pop()

def execute(self, module):
    loading.append(module.__name__)
    try:
        return real_exec(self, module)
    finally:
        loading.pop()

def hook(frame, event, arg):
    if event == "call" and frame.f_code.co_name == "_create_" and loading and loading[-1] == "matplotlib.ft2font" and not fired:
        fired.append(loading[-1])
        print("fired", loading[-1], flush=True)
        os.kill(os.getpid(), signal.SIGINT if how == "int" else signal.SIGTERM)

Loader.create_module, Loader.exec_module = create, execute
sys.setprofile(hook)
sys.argv = ["semflow", "run", frames, "--out", out, "--method", "dis-fast", "--save-flo", "--no-progress"]
from semflow.console import main
main()
"""


@pytest.mark.parametrize(("how", "code", "word"), [("int", 130, "interrupted"), ("term", 143, "terminated")])
def test_a_signal_while_the_plot_loads_matplotlib_is_one_line_and_resumes(make_frames, cli_env, tmp_path: Path,
                                                                         how: str, code: int, word: str) -> None:
    frames, out = make_frames(4, 40, 56), tmp_path / "out"
    done = subprocess.run([sys.executable, "-c", SCRIPT, how, str(frames), str(out)], capture_output=True,
                          text=True, timeout=120, env=cli_env)
    if "fired" not in done.stdout:
        pytest.skip("this matplotlib's ft2font runs no Python code while it loads")
    assert done.returncode == code, done.stderr
    assert done.stderr == f"semflow: {word} (what it finished is kept: the same command with --resume continues)\n"
    again = subprocess.run([sys.executable, "-m", "semflow", "run", str(frames), "--out", str(out), "--method",
                            "dis-fast", "--save-flo", "--no-progress", "--resume"], capture_output=True, text=True,
                           timeout=120, env=cli_env)
    assert again.returncode == 0, again.stderr
    assert (out / "plot.png").is_file() and (out / "summary.json").is_file() and not (out / ".semflow-work").exists()
