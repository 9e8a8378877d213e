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


def sum_stages(parts: list[dict[str, float]], names: tuple[str, ...] = ()) -> dict[str, float]:
    """The stages' seconds of ``parts`` summed, name by name (``names`` first, at 0.0 when no part has them)."""
    total = {name: 0.0 for name in names}
    for part in parts:
        for name, value in part.items():
            total[name] = total.get(name, 0.0) + value
    return total


def moved_out_of_flow(main: dict[str, float], inside: dict[str, float]) -> dict[str, float]:
    """What to move from the main thread's ``flow`` stage (its wait for a flows thread) to the stages that
    thread spent ``inside`` it: all of it, or, when that thread's work overlapped the main thread's own, as
    much as the wait holds, shared out in proportion (moving all of it made ``flow`` negative)."""
    total = sum(inside.values())
    share = min(1.0, main.get("flow", 0.0) / total) if total > 0 else 0.0
    return {"flow": -total * share, **{name: value * share for name, value in inside.items()}}
