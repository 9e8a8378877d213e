"""Flow for many clips and long clips on Ray: ``semflow batch``.

The batch layer sits above the pipeline; nothing below it imports Ray. :class:`Batch` is the Python API
(submit inputs, iterate results), :func:`run_batch` runs a whole batch, ``semflow batch`` is a thin
command over them.
"""

from __future__ import annotations

from semflow.batch.clips import InputResult
from semflow.batch.inputs import BatchInput, expand_inputs
from semflow.batch.runner import Batch, run_batch
from semflow.batch.work import BatchOptions, Chunk, plan_chunks

__all__ = ["Batch", "BatchInput", "BatchOptions", "Chunk", "InputResult", "expand_inputs", "plan_chunks", "run_batch"]
