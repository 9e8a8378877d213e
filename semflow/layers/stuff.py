"""Stuff: regions no simple motion model describes (buildings, trees, poles, unknown) keep the baseline."""

from __future__ import annotations

import numpy as np


def stuff_flow(baseline: np.ndarray) -> np.ndarray:
    """The flow of stuff regions: the baseline's flow (H, W, 2), unchanged."""
    return baseline
