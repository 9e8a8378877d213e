"""semflow: semantic optical flow.

The main entry points::

    import semflow
    flow = semflow.estimate_flow(img1, img2, method="dis-medium")   # (H, W, 2) float32, pixels
    semflow.write_flow("out.flo", flow)
    rgb = semflow.flow_to_color(flow)
"""

from __future__ import annotations

import os

# Worker threads of torch's OpenMP and of OpenBLAS wait for work by spinning. Where other processes
# keep the cores busy, each parallel step then waits on a thread that is spinning or not running:
# discrete's video mode at 960x540 on 2 shared cores (load average 12) took 16 s per pair with
# spinning torch threads against 1.3 s with passive ones (1.8 s on one thread), and scipy's banded
# solver (the things layer) runs ~70x slower with threaded OpenBLAS. Passive waiting costs
# microseconds per step on an idle machine. A value the user set wins; these take effect only when
# semflow is imported before torch / numpy.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import importlib  # noqa: E402
import sys  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402


def _torch_in_a_forked_child() -> None:
    """In a process forked after torch ran (a fork pool of ``discrete`` or ``semantic``), torch's thread pool
    is gone and its first parallel operation waited for good: the child runs torch on one thread."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_torch_in_a_forked_child)

__version__ = "0.1.0"

# The API's names, each from its module, imported when first used: `import semflow` alone (and the
# `semflow` command, before it takes over Ctrl-C) loads neither numpy nor OpenCV.
_API = {
    "FlowMethod": "semflow.baseline.base", "FlowResult": "semflow.baseline.base",
    "InputError": "semflow.errors", "OutputError": "semflow.errors", "ResourceError": "semflow.errors",
    "SemflowError": "semflow.errors", "WeightsError": "semflow.errors",
    "read_flow": "semflow.io.flow", "read_flow_valid": "semflow.io.flow", "write_flow": "semflow.io.flow",
    "read_image": "semflow.io.images", "write_image": "semflow.io.images",
    "get_method": "semflow.methods", "list_methods": "semflow.methods",
    "flow_to_color": "semflow.viz",
}

if TYPE_CHECKING:
    import numpy as np

    from semflow.baseline.base import FlowMethod, FlowResult
    from semflow.errors import InputError, OutputError, ResourceError, SemflowError, WeightsError
    from semflow.io.flow import read_flow, read_flow_valid, write_flow
    from semflow.io.images import read_image, write_image
    from semflow.methods import get_method, list_methods
    from semflow.viz import flow_to_color


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value  # (once: later lookups find it here)
        return value
    if not name.startswith("_"):  # a submodule (semflow.errors, semflow.metrics...), imported as `import semflow.x` would
        try:
            return importlib.import_module(f"semflow.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"semflow.{name}":  # (a module it imports is missing: that is the error to see)
                raise
    raise AttributeError(f"module 'semflow' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def estimate_flow(img1: np.ndarray, img2: np.ndarray, method: str | FlowMethod = "dis-medium",
                  **options: Any) -> np.ndarray:
    """Optical flow (H, W, 2) float32 from ``img1`` to ``img2`` (uint8 RGB) with a named method (or a built one,
    given no options: :func:`~semflow.methods.get_method`)."""
    from semflow.methods import get_method

    return get_method(method, **options)(img1, img2)


__all__ = [
    "FlowMethod", "FlowResult", "InputError", "OutputError", "ResourceError", "SemflowError", "WeightsError",
    "estimate_flow", "flow_to_color", "get_method", "list_methods",
    "read_flow", "read_flow_valid", "read_image", "write_flow", "write_image",
]
