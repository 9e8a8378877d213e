"""Any flow method with sharper motion boundaries: ``get_method(NAME, sharpen=True)``, ``--sharpen``.

:class:`SharpenedFlow` runs a method, then redoes its flow where the flow jumps, by local motion
layers (:func:`~semflow.layers.boundary_layers.sharpen_boundaries`). It helps most where rigid things
move against each other or against the background (street scenes) and costs 0.1-1.2 s a pair; see
BENCHMARKS.md, section sharpen, for what it does on each dataset. ``discrete`` (and so ``semantic``
on it) is built sharpened by default; ``sharpen=False`` (``--no-sharpen``) turns it off.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from semflow.baseline.base import FlowMethod, FlowResult
from semflow.layers.boundary_layers import BoundaryLayerParams, RegionReport, sharpen_boundaries
from semflow.segmentation.regions import Box
from semflow.video_state import VideoState


class SharpenedFlow(FlowMethod):
    """``base``'s flow with its motion boundaries sharpened (``sharpen_params``: the step's settings).

    Attributes it does not have itself are the base's (``params``, ``device``...). It keeps ``base``'s
    name (so memory checks and outputs read the same), its video state (the state carries ``base``'s own
    flow, as ``base`` expects) and its extras, adding ``unsharpened_flow`` (the base's flow). After each call ``last_reports`` holds a
    :class:`~semflow.layers.boundary_layers.RegionReport` per region looked at (:func:`report_entries`
    makes them JSON), and ``last_timings`` the base's stage seconds plus the step's as ``sharpen``.
    """

    def __init__(self, base: FlowMethod, params: BoundaryLayerParams | None = None) -> None:
        if not isinstance(base, FlowMethod):
            raise TypeError(f"SharpenedFlow needs a FlowMethod, not {type(base).__name__}")
        self.base = base
        self.sharpen_params = params or BoundaryLayerParams()
        self.name = base.name  # type: ignore[misc]  # an instance's name: the base's
        self.uses_labels = base.uses_labels  # type: ignore[misc]
        self.last_timings: dict[str, float] = {}
        self.last_reports: list[RegionReport] = []

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not found on the wrapper: the base's (its params, device...).
        if name == "base" or name.startswith("__"):  # unpickling, before ``base`` is set
            raise AttributeError(name)
        return getattr(self.base, name)

    def _sharpen(self, img1: np.ndarray, img2: np.ndarray, result: FlowResult) -> FlowResult:
        start = time.perf_counter()
        before = result.flow
        result.flow, self.last_reports = sharpen_boundaries(img1, img2, before, self.sharpen_params)
        result.extras = {**result.extras, "unsharpened_flow": before}
        self.last_timings = {**getattr(self.base, "last_timings", {}), "sharpen": time.perf_counter() - start}
        return result

    def _finished(self, img1: np.ndarray, img2: np.ndarray, estimate: Any, *args: Any, video: bool = False,
                  finish: bool = True, **kwargs: Any) -> FlowResult:
        """``estimate``'s result sharpened; a base with a last step of its own (``finish_flow``, as discrete's
        ``ring_width``) has it run after the sharpening, on the final flow (``video``: in video mode), unless
        ``finish`` is False (a wrapper around this one runs it, after its own sharpening)."""
        last_step = getattr(self.base, "finish_flow", None)
        if last_step is None:
            return self._sharpen(img1, img2, estimate(img1, img2, *args, **kwargs))
        result = self._sharpen(img1, img2, estimate(img1, img2, *args, finish=False, **kwargs))
        if not finish:
            return result
        result = last_step(img1, img2, result, video=video)
        ringed = getattr(self.base, "last_timings", {})  # (the finish's laps after sharpen's, in the order run)
        self.last_timings = {**self.last_timings, **{k: v for k, v in ringed.items() if k not in self.last_timings}}
        return result

    def _estimate(self, img1: np.ndarray, img2: np.ndarray, **kwargs: Any) -> FlowResult:
        return self._finished(img1, img2, self.base._estimate, **kwargs)

    def _estimate_video(self, img1: np.ndarray, img2: np.ndarray, state: VideoState, **kwargs: Any) -> FlowResult:
        return self._finished(img1, img2, self.base._estimate_video, state, video=True, **kwargs)

    def state_parts(self) -> dict[str, Any]:
        return self.base.state_parts()

    def __repr__(self) -> str:
        return f"SharpenedFlow({self.base!r})"


def sharpened(method: FlowMethod, options: Any) -> FlowMethod:
    """``method`` wrapped in :class:`SharpenedFlow` when ``options.sharpen`` is set (a method's builder
    calls this with its :class:`~semflow.options.SharpenOptions`); a method wrapped already stays as it is."""
    if not getattr(options, "sharpen", False) or isinstance(method, SharpenedFlow):
        return method
    return SharpenedFlow(method)


def report_entries(reports: list[RegionReport]) -> list[dict[str, Any]]:
    """The regions a sharpen step looked at, as JSON-ready dicts: ``box`` [x0, y0, x1, y1] px (end-exclusive),
    ``uncertain_pixels``, ``motions`` fitted, ``kept`` (its new flow), and its changed visible pixels
    that match ``better`` / ``worse`` in frame t+1 (``changed`` in all), and the share of its trusted
    pixels the motions ``explained``."""
    return [{"box": Box(*r.box).xyxy(), "uncertain_pixels": r.pixels, "motions": r.motions, "kept": r.kept,
             "better": r.better, "worse": r.worse, "changed": r.changed, "explained": round(r.explained, 3)}
            for r in reports]
