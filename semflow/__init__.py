"""semflow: semantic optical flow.

The main entry points::

    import semflow
    flow = semflow.estimate_flow(img1, img2, method="dis-medium")   # (H, W, 2) float32, pixels
    semflow.write_flow("out.flo", flow)
    rgb = semflow.flow_to_color(flow)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from semflow.baseline.base import FlowMethod, FlowResult
from semflow.errors import InputError, SemflowError, WeightsError
from semflow.io.flow import read_flow, read_flow_valid, write_flow
from semflow.io.images import read_image, write_image
from semflow.methods import get_method, list_methods
from semflow.viz import flow_to_color

__version__ = "0.1.0"


def estimate_flow(img1: np.ndarray, img2: np.ndarray, method: str = "dis-medium", **options: Any) -> np.ndarray:
    """Optical flow (H, W, 2) float32 from ``img1`` to ``img2`` (uint8 RGB) with a named method."""
    return get_method(method, **options)(img1, img2)


__all__ = [
    "FlowMethod", "FlowResult", "InputError", "SemflowError", "WeightsError",
    "estimate_flow", "flow_to_color", "get_method", "list_methods",
    "read_flow", "read_flow_valid", "read_image", "write_flow", "write_image",
]
