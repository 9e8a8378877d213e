"""Seconds spent in the named stages of a computation, for reports and benchmarks."""

from __future__ import annotations

import time


class StageTimer:
    """Call :meth:`lap` at the end of each stage; ``seconds`` maps stage name -> seconds (summed)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._clock = time.perf_counter()

    def lap(self, name: str) -> None:
        """Charge the time since the previous lap (or creation) to stage ``name``."""
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._clock
        self._clock = now
