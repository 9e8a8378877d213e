"""What importing semflow sets up for the process: passive waiting of torch's and OpenBLAS's threads."""

from __future__ import annotations

import os
import subprocess
import sys


def _environment_after_import(env: dict[str, str]) -> list[str]:
    code = "import os, semflow; print(os.environ['OMP_WAIT_POLICY'], os.environ['OPENBLAS_NUM_THREADS'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_importing_semflow_makes_worker_threads_wait_passively_unless_the_user_chose() -> None:
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OPENBLAS_NUM_THREADS")}
    assert _environment_after_import(base) == ["PASSIVE", "1"]
    assert _environment_after_import({**base, "OMP_WAIT_POLICY": "ACTIVE", "OPENBLAS_NUM_THREADS": "2"}) == \
        ["ACTIVE", "2"]
