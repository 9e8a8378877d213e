"""DiscreteFlow-style optical flow (Menze, Heipke, Geiger, GCPR 2015), re-implemented: see ``method.py``."""

from semflow.baseline.discrete.method import DiscreteFlow
from semflow.baseline.discrete.presets import DEFAULT_PRESET, PRESETS, Preset

__all__ = ["DEFAULT_PRESET", "PRESETS", "DiscreteFlow", "Preset"]
