"""semflow.batch.answers.lost_worker: the line a clip's result and a warning give for a worker that died."""

from __future__ import annotations

from ray.exceptions import RayActorError

from semflow.batch.answers import lost_worker
from semflow.batch.work import Chunk


class Died(RayActorError):
    """A RayActorError whose text is known (Ray's own says where the actor died, over many lines)."""

    def __str__(self) -> str:
        return "  The actor died unexpectedly.\nIt was killed by the OOM killer.\n"


def test_a_lost_worker_names_the_pairs_it_was_computing_and_the_first_line_of_ray_s_error() -> None:
    """Pairs 3-5 for the chunk 3..6 (its stop not included), "end" for a chunk to the clip's end, "the
    drawing" for a clip's drawing; the error's type and its first line, stripped, in brackets."""
    error = Died()
    assert lost_worker(error, Chunk(3, 6)) == "a worker died while computing pairs 3-5 (Died: The actor died unexpectedly.)"
    assert lost_worker(error, Chunk(7, None)).startswith("a worker died while computing pairs 7-end (Died: ")
    assert lost_worker(error, None).startswith("a worker died while computing the drawing (Died: ")
