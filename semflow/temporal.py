"""Temporal metrics of a flow video: how steady the flow is from one pair to the next, and how well it
explains the frames. Computed pair by pair (:class:`TemporalMeter` holds only the previous pair's flow
and labels), so a whole clip never sits in memory.

Per pair t (frame t -> t+1, flow F_t (H, W, 2) in px):

- ``magnitude``: mean_x |F_t(x)| (px).
- ``flicker``: mean_x |F_t(x) - F_{t-1}(x)| (px, Euclidean norm of the difference), from the second pair on.
- ``warped_flicker``: the same after carrying F_{t-1} along itself (constant velocity: the flow at x in
  frame t is F_{t-1} at the point y with y + F_{t-1}(y) = x, by forward splatting), over the pixels
  something lands on.
  A moving camera's flow is steady in this sense even where it differs pixel by pixel.
- ``photometric_error`` (:func:`mean_photometric_error`): mean_x |I_t(x) - I_{t+1}(x + F_t(x))| (grey
  levels 0..255, mean over RGB) over pixels that land inside frame t+1: how well the flow explains the
  frames. :class:`TemporalMeter` measures it on a regular sample of frames above a quarter million pixels
  (:func:`metric_stride`).
- ``image_change``: mean_x |I_{t+1}(x) - I_t(x)| (grey levels): the frames' own change, which says
  whether a jump in magnitude is backed by the images.
- ``label_flip_rate``: share of pixels whose segmentation label differs between frame t-1 and frame t
  (labels (H, W), or label colours (H, W, 3)); :func:`label_flip_rate` with ``flow`` first reads frame
  t's labels at x + F(x) (motion-compensated flips).
"""

from __future__ import annotations

import math
import os
import statistics
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from semflow.warp import channel_mean, inside_frame, pixel_grid, sample_points, warp_backward


def _length(vectors: np.ndarray) -> np.ndarray:
    """|v| of (..., 2) vectors (np.hypot: a quarter of np.linalg.norm's time on (H, W, 2))."""
    return np.hypot(vectors[..., 0], vectors[..., 1])


def flicker(flow: np.ndarray, previous: np.ndarray) -> float:
    """mean_x |F_t(x) - F_{t-1}(x)| in px: flows (H, W, 2) of consecutive pairs."""
    return float(_length(np.asarray(flow, np.float32) - np.asarray(previous, np.float32)).mean())


def carry_forward(previous: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """F_{t-1} (H, W, 2) moved along itself into frame t: (predicted F_t (H, W, 2), valid (H, W) bool).

    Each pixel y of frame t-1 is splatted to the nearest pixel of y + F_{t-1}(y) (constant velocity);
    where several land on one pixel the largest motion wins (the nearer, faster layer, usually);
    pixels nothing lands on (disocclusions) are invalid.
    """
    prev = np.ascontiguousarray(previous, np.float32)
    h, w = prev.shape[:2]
    tx = np.rint(prev[..., 0] + np.arange(w, dtype=np.float32)).ravel()  # whole numbers, as float32
    ty = np.rint(prev[..., 1] + np.arange(h, dtype=np.float32)[:, None]).ravel()
    keep = np.flatnonzero(inside_frame(tx, ty, w, h))  # (NaN lands nowhere)
    target = ty[keep].astype(np.intp) * w + tx[keep].astype(np.intp)
    moved = prev.reshape(-1, 2).view(np.complex64).ravel()[keep]  # (u, v) as one item
    speed = moved.real * moved.real + moved.imag * moved.imag
    fastest = np.full(h * w, -1.0, np.float32)
    np.maximum.at(fastest, target, speed)  # a z-buffer: the largest motion reaching each pixel
    wins = speed == fastest[target]  # ties: numpy assigns repeated indices in order, the last one stays
    reached = target[wins]
    carried = np.zeros(h * w, np.complex64)
    valid = np.zeros(h * w, bool)
    carried[reached] = moved[wins]
    valid[reached] = True
    carried, valid = carried.view(np.float32).reshape(h, w, 2), valid.reshape(h, w)
    return carried, valid


def warped_flicker(flow: np.ndarray, previous: np.ndarray) -> float:
    """mean |F_t(x) - carried F_{t-1}(x)| (px) over pixels the carried flow reaches; NaN if none."""
    carried, valid = carry_forward(previous)
    if not valid.any():
        return float("nan")
    return float(_length(np.asarray(flow, np.float32) - carried)[valid].mean())


def mean_photometric_error(img1: np.ndarray, img2: np.ndarray, flow: np.ndarray, stride: int = 1) -> float:
    """mean_x |I_1(x) - I_2(x + F(x))| (grey levels, mean over channels) over pixels landing inside; NaN if none.
    ``stride`` > 1: over every stride-th pixel of every stride-th row only (a sample)."""
    flow = np.asarray(flow, np.float32)
    if stride > 1:
        h, w = flow.shape[:2]
        x, y = pixel_grid(h, w)
        mx = x[::stride, ::stride] + flow[::stride, ::stride, 0]
        my = y[::stride, ::stride] + flow[::stride, ::stride, 1]
        warped = sample_points(np.asarray(img2, np.float32), mx, my)
        valid = inside_frame(mx, my, w, h)
        img1 = np.asarray(img1)[::stride, ::stride]
    else:
        warped, valid = warp_backward(np.asarray(img2, np.float32), flow)
    diff = np.abs(np.asarray(img1, np.float32) - warped)
    if diff.ndim == 3:
        diff = channel_mean(diff)
    return float(diff[valid].mean()) if valid.any() else float("nan")


def image_change(img1: np.ndarray, img2: np.ndarray) -> float:
    """mean_x |I_2(x) - I_1(x)| in grey levels (mean over channels): the frames' own change."""
    return float(np.abs(np.asarray(img2, np.float32) - np.asarray(img1, np.float32)).mean())


def label_flip_rate(labels1: np.ndarray, labels2: np.ndarray, flow: np.ndarray | None = None) -> float:
    """Share in [0, 1] of pixels whose label differs between frame 1 and frame 2.

    Labels are (H, W) ids or (H, W, 3) label colours. With ``flow`` (frame 1 -> 2) frame 2's labels are
    read at the nearest pixel to x + F(x), over pixels landing inside; NaN if none do.
    """
    a, b = np.asarray(labels1), np.asarray(labels2)
    if a.shape != b.shape:
        raise ValueError(f"label maps differ in shape: {a.shape} vs {b.shape}")
    valid = np.ones(a.shape[:2], bool)
    if flow is not None:
        h, w = a.shape[:2]
        x, y = pixel_grid(h, w)
        tx = np.rint(x + flow[..., 0])  # (rounded as floats: a NaN lands nowhere, not where its cast falls)
        ty = np.rint(y + flow[..., 1])
        valid = inside_frame(tx, ty, w, h)
        b = b[np.where(valid, ty, 0).astype(np.intp), np.where(valid, tx, 0).astype(np.intp)]
    differ = a != b
    if differ.ndim == 3:  # colours: any channel (three ORs: a tenth of differ.any(axis=2)'s time)
        differ = np.logical_or.reduce([differ[..., c] for c in range(differ.shape[2])])
    return float(differ[valid].mean()) if valid.any() else float("nan")


METRIC_PIXELS = 1 << 18  # the photometric error of larger frames uses a sample


def metric_stride(shape: tuple[int, ...]) -> int:
    """The sampling stride of :class:`TemporalMeter`'s photometric error for frames of ``shape``
    (H, W, ...): 1 up to :data:`METRIC_PIXELS` pixels, else the smallest stride whose grid has at most
    that many (960x540: 2, 1920x1080: 3). At full size it costs about as much as dis-medium's flow;
    measured on vtest.avi and solidWhiteRight.mp4 (20 pairs each, stride 2) the sample's clip mean is
    within 0.25 %, each pair within 1.2 %. (Warped flicker is not sampled: splatting a sample of the
    previous flow resolves fewer occlusions and reads 5-11 % high.)"""
    stride = 1
    while -(-shape[0] // stride) * -(-shape[1] // stride) > METRIC_PIXELS:
        stride += 1
    return stride


ROW_KEYS = ("magnitude", "flicker", "warped_flicker", "photometric_error", "image_change", "label_flip_rate",
            "seconds")
"""The numbers :meth:`TemporalMeter.add` measures of a pair."""


class PairRows(Sequence[dict[str, "float | None"]]):
    """The pairs' rows of numbers (:data:`ROW_KEYS`) in columns of float64, 56 bytes a pair (dicts took
    about 430: an hour of 30 fps held 46 MB). ``rows[t]`` is a new dict of pair t's numbers each time (None
    where a metric had no value; a NaN reads back as None too): write with :meth:`set_column`, not into it.
    Equal to a list of the same dicts; ``list(rows)`` for JSON."""

    def __init__(self) -> None:
        self._columns = {key: array("d") for key in ROW_KEYS}

    def append(self, row: dict[str, float | None]) -> None:
        """Add a pair's row; a key not in :data:`ROW_KEYS` is a ValueError (it would be lost)."""
        if unknown := set(row) - set(ROW_KEYS):
            raise ValueError(f"PairRows: unknown keys {sorted(unknown)}; a row holds {', '.join(ROW_KEYS)}")
        for key, column in self._columns.items():
            value = row.get(key)
            column.append(np.nan if value is None else float(value))

    def array(self, key: str) -> np.ndarray:
        """One number of every pair as float64 (N,), NaN where it had none (a copy)."""
        return np.array(self._columns[key], np.float64)

    def values(self, key: str) -> Iterator[float]:
        """One number of every pair, one at a time (NaN where it had none): no list of them is made."""
        return iter(self._columns[key])

    def column(self, key: str) -> list[float | None]:
        """One number of every pair, None where it had none."""
        return [None if value != value else value for value in self._columns[key]]  # (NaN: none)

    def set_column(self, key: str, values: Sequence[float | None] | np.ndarray) -> None:
        """Replace the first ``len(values)`` pairs' ``key``."""
        for t, value in enumerate(values):
            self._columns[key][t] = np.nan if value is None else float(value)

    def __len__(self) -> int:
        return len(self._columns["magnitude"])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (PairRows, list, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # (mutable, as the list it stands for)

    def __getitem__(self, t: Any) -> Any:
        if isinstance(t, slice):
            return [self[k] for k in range(*t.indices(len(self)))]
        return {key: None if (value := column[t]) != value else value for key, column in self._columns.items()}


@dataclass
class TemporalMeter:
    """Collects the temporal metrics pair by pair: call :meth:`add` for pairs 0, 1, 2... in order.

    Holds only the previous pair's flow and labels; :attr:`pairs` keeps the numbers of every pair (for
    plots; :class:`PairRows`, a sequence of dicts), :meth:`summary` the clip's means.
    """

    pairs: PairRows = field(default_factory=PairRows)
    _flow: np.ndarray | None = field(default=None, repr=False)
    _labels: np.ndarray | None = field(default=None, repr=False)

    def add(self, img1: np.ndarray, img2: np.ndarray, flow: np.ndarray, *, labels: np.ndarray | None = None,
            seconds: float | None = None) -> dict[str, float | None]:
        """Measure pair (img1 -> img2, ``flow`` (H, W, 2)); ``labels``: img1's segmentation if any
        (ids (H, W) or colours (H, W, 3)), compared with the previous pair's; ``seconds`` the pair's
        compute time. Returns this pair's numbers."""
        flow = np.asarray(flow, np.float32)
        stride = metric_stride(flow.shape)
        row: dict[str, float | None] = {
            "magnitude": float(_length(flow).mean()),
            "flicker": None, "warped_flicker": None,
            "photometric_error": mean_photometric_error(img1, img2, flow, stride),
            "image_change": image_change(img1, img2),
            "label_flip_rate": None, "seconds": seconds,
        }
        if self._flow is not None and self._flow.shape == flow.shape:
            row["flicker"] = flicker(flow, self._flow)
            row["warped_flicker"] = warped_flicker(flow, self._flow)  # full size: a sample would be biased
        if labels is not None and self._labels is not None and np.shape(labels) == np.shape(self._labels):
            row["label_flip_rate"] = label_flip_rate(self._labels, labels)
        self._flow, self._labels = flow, labels
        self.pairs.append(row)
        return row

    def on_pair(self, index: int, img1: np.ndarray, img2: np.ndarray, flows: tuple) -> None:
        """:meth:`add` for a drawing loop's callback: ``flows`` = (flow, segmentation or None, ...)."""
        self.add(img1, img2, flows[0], labels=flows[1])

    def write_plot(self, path: str | os.PathLike, title: str, seconds: Sequence[float] | np.ndarray | None = None) -> None:
        """Draw the pairs' magnitude, flicker and ``seconds`` (compute seconds per pair, (N,)) into a PNG."""
        from semflow.plots import write_plot

        if seconds is not None:
            self.pairs.set_column("seconds", seconds[:len(self.pairs)])
        write_plot(path, self.pairs, title=title)

    def summary_in(self, extra: dict[str, Any] | None) -> dict[str, Any]:
        """``extra`` (summary fields) with ``"temporal"``: :meth:`summary`."""
        return {"temporal": self.summary(), **(extra or {})}

    def summary(self) -> dict[str, Any]:
        """Means over the clip (None where a metric had no pair), the magnitude range and the largest
        frame-to-frame magnitude ratio beside the image change of that pair. (The numbers are read one at a
        time: lists of them took 40 bytes a pair at the end of a run, when its memory peaks.)"""
        def mean(key: str) -> float | None:
            try:  # (fmean: fsum, the exactly rounded sum, over the count)
                return statistics.fmean(value for value in self.pairs.values(key) if math.isfinite(value))
            except statistics.StatisticsError:  # (none)
                return None

        out: dict[str, Any] = {key: mean(key) for key in
                               ("flicker", "warped_flicker", "photometric_error", "image_change", "label_flip_rate")}
        out["magnitude_min"] = min(self._magnitudes(), default=None)
        out["magnitude_max"] = max(self._magnitudes(), default=None)
        out.update(largest_jump(self.pairs))
        return out

    def _magnitudes(self) -> Iterator[float]:
        return (value for value in self.pairs.values("magnitude") if value == value)  # (NaN: none)


def largest_jump(pairs: Sequence[dict[str, float | None]]) -> dict[str, Any]:
    """The largest frame-to-frame ratio of mean magnitudes (max/min of neighbours, >= 1) and, for that
    step, the ratio of the frames' own change (``image_change``), so a flow jump can be checked against
    a matching change in the images. Magnitudes under 0.5 px are floored at 0.5 px."""
    best: dict[str, Any] = {"largest_magnitude_jump": None, "jump_pair": None, "jump_image_change_ratio": None}
    for t in range(1, len(pairs)):
        before, after = pairs[t - 1]["magnitude"], pairs[t]["magnitude"]
        if before is None or after is None:  # (a flow of NaN given through the API)
            continue
        a, b = max(before, 0.5), max(after, 0.5)
        ratio = max(a, b) / min(a, b)
        if best["largest_magnitude_jump"] is None or ratio > best["largest_magnitude_jump"]:
            ca, cb = max(pairs[t - 1]["image_change"] or 0, 1e-3), max(pairs[t]["image_change"] or 0, 1e-3)
            best = {"largest_magnitude_jump": ratio, "jump_pair": t,
                    "jump_image_change_ratio": max(ca, cb) / min(ca, cb)}
    return best
