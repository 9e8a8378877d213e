"""DiscreteFlow-style optical flow (Menze, Heipke, Geiger, GCPR 2015), re-implemented: see ``method.py``.

The method (and torch) is imported on first use, so that reading the presets and options is cheap.
"""

from __future__ import annotations

from typing import Any

from semflow.baseline.discrete.presets import DEFAULT_PRESET, PRESETS, DiscreteOptions, Preset

__all__ = ["DEFAULT_PRESET", "PRESETS", "DiscreteFlow", "DiscreteOptions", "Preset"]


def __getattr__(name: str) -> Any:
    if name == "DiscreteFlow":
        from semflow.baseline.discrete.method import DiscreteFlow

        return DiscreteFlow
    raise AttributeError(f"module 'semflow.baseline.discrete' has no attribute {name!r}")
