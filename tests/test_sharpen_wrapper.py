"""SharpenedFlow as a wrapper (semflow/sharpen.py): what it passes through from its base, and
report_entries' JSON. Tiny frames and a scripted base: no flow method runs."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import numpy as np

from semflow.baseline.base import FlowMethod, FlowResult
from semflow.layers.boundary_layers import RegionReport
from semflow.sharpen import SharpenedFlow, report_entries


class Scripted(FlowMethod):
    """A constant flow; it records the labels it is given and reports its stage timings."""

    name = "scripted"
    uses_labels = True

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.last_timings = {"match": 0.25}

    def _estimate(self, img1: np.ndarray, img2: np.ndarray, **kwargs: Any) -> FlowResult:
        self.seen.append(kwargs.get("labels"))
        return FlowResult(np.full((*img1.shape[:2], 2), 1.5, np.float32))

    def state_parts(self) -> dict[str, Any]:
        return {"scripted": dict}


def _frames() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return tuple(rng.integers(0, 255, (24, 32, 3)).astype(np.uint8) for _ in range(2))


def test_the_wrapper_passes_labels_timings_and_state_parts_of_its_base() -> None:
    base = Scripted()
    sharp = SharpenedFlow(base)
    labels = np.ones((24, 32), np.uint8)
    result = sharp.estimate(*_frames(), labels=labels)
    assert base.seen[-1] is not None and (base.seen[-1] == labels).all()  # a labels method stays one
    assert sharp.uses_labels
    np.testing.assert_array_equal(result.flow, 1.5)  # no jumps: nothing to sharpen
    assert set(sharp.last_timings) == {"match", "sharpen"} and sharp.last_timings["match"] == 0.25
    assert sharp.state_parts() == {"scripted": dict}


def test_the_wrapper_pickles_and_copies() -> None:
    sharp = SharpenedFlow(Scripted())
    for twin in (pickle.loads(pickle.dumps(sharp)), copy.deepcopy(sharp)):
        assert isinstance(twin.base, Scripted) and twin.name == "scripted"
    blank = SharpenedFlow.__new__(SharpenedFlow)  # before __init__ (as unpickling starts)
    assert not hasattr(blank, "base") and not hasattr(blank, "params")


def test_report_entries_are_the_reports_as_json() -> None:
    reports = [RegionReport((10, 40, 5, 25), 120, 2, False, 3, 9, 14, 0.81234),
               RegionReport((0, 8, 0, 8), 30, 3, True, 50, 2, 60, 1.0)]
    assert report_entries(reports) == [
        {"box": [5, 10, 25, 40], "uncertain_pixels": 120, "motions": 2, "kept": False, "better": 3, "worse": 9,
         "changed": 14, "explained": 0.812},
        {"box": [0, 0, 8, 8], "uncertain_pixels": 30, "motions": 3, "kept": True, "better": 50, "worse": 2,
         "changed": 60, "explained": 1.0}]
