"""Flow for many clips and long clips on Ray: ``semflow batch``.

The batch layer sits above the pipeline; nothing below it imports Ray. :class:`Batch` is the Python API
(submit inputs, iterate results), :func:`run_batch` runs a whole batch, ``semflow batch`` is a thin
command over them.
"""

from __future__ import annotations

from typing import Any

from semflow.batch.clips import InputResult
from semflow.batch.inputs import BatchInput, expand_inputs
from semflow.batch.work import BatchOptions, Chunk, plan_chunks

__all__ = ["Batch", "BatchInput", "BatchOptions", "Chunk", "InputResult", "expand_inputs", "plan_chunks", "run_batch"]


def __getattr__(name: str) -> Any:
    """``Batch`` and ``run_batch`` on first use: importing Ray takes a second and changes the process
    (its excepthook, sys.path), which a program that only wants ``expand_inputs`` or ``BatchOptions`` need not pay."""
    if name in ("Batch", "run_batch"):
        from semflow.batch import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
