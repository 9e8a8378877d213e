"""The state a video run carries from pair (t-1, t) to pair (t, t+1).

A flow method computes each pair of a video from scratch in pair mode. In video mode it is handed a
:class:`VideoState` with the pair and returns the next one in ``FlowResult.state``: what it knows of
frame t+1 (per-frame work such as descriptors, the segmentation), the last flow, and per-method
memory (tracked regions, their models and accept history). ``FlowMethod.estimate(a, b, state=...)``
with ``state=None`` is pair mode, unchanged; with ``VideoState()`` (empty) it starts a video.

A cut (two unrelated shots back to back) restarts the state: :func:`scene_cut` compares small
thumbnails of the two frames, and a method may also restart when its own evidence collapses.
This module sits at the bottom of the package: it imports only numpy, OpenCV and :mod:`semflow.warp`
(which imports nothing of semflow).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from semflow.warp import to_gray

CUT_DIFFERENCE = 40.0
"""Mean absolute difference (grey levels) of the two frames' blurred thumbnails above which a pair is
a cut. Consecutive frames of one shot, even with fast motion, stay well below (a dash-cam clip at 25
fps: under 10); two unrelated shots are far above."""

CUT_RESPONSE = 0.5
"""...or, below this phase-correlation peak of the thumbnails (about 1 for frames of one shot, even
with motion of a few pixels at thumbnail size; 0.3-0.4 for unrelated shots)..."""

CUT_RESIDUAL = 0.15
"""...with the thumbnails, aligned by the phase-correlation shift, still differing by more than this
fraction of their standard deviation on average (0.01-0.1 within a shot)."""


@dataclass
class VideoState:
    """What is known after pair (t-1, t), for pair (t, t+1).

    pairs: pairs computed since the state (re)started (0: nothing known yet).
    frame: frame t (uint8 RGB (H, W, 3)), the first frame of the next pair; None before the first.
    flow: the last flow F_{t-1} (H, W, 2) float32 px (frame t-1 -> t), or None.
    parts: per-method memory keyed by method name (``"discrete"``: its per-frame work of frame t and
      temporal candidates; ``"semantic"``: the segmentation of frame t and the tracked regions).
    cut: whether the last pair was found to be a cut (the state restarted there).
    """

    pairs: int = 0
    frame: np.ndarray | None = None
    flow: np.ndarray | None = None
    parts: dict[str, Any] = field(default_factory=dict)
    cut: bool = False

    def follows(self, img1: np.ndarray) -> bool:
        """Whether ``img1`` is the frame this state ended on (so carried per-frame work applies)."""
        return self.frame is not None and self.frame.shape == img1.shape and np.array_equal(self.frame, img1)

    def part(self, name: str, img1: np.ndarray) -> Any:
        """The memory of method ``name`` if it applies to a pair starting at ``img1``, else None."""
        return self.parts.get(name) if self.follows(img1) else None

    def advance(self, img2: np.ndarray, flow: np.ndarray, parts: dict[str, Any] | None = None) -> VideoState:
        """The state after the pair that ended on ``img2`` with ``flow`` (``parts`` replace or join
        the carried ones)."""
        return VideoState(pairs=self.pairs + 1, frame=img2, flow=flow, parts={**self.parts, **(parts or {})})


THUMB_SIDES = (16, 256)
"""Fewest and most pixels a side of a thumbnail has: a thin strip of a frame (500x10) gets a 256x16
thumbnail, not a 64x1 one, whose phase correlation cannot tell unrelated shots apart (or fails)."""


def _thumbnail(image: np.ndarray, width: int = 64) -> np.ndarray:
    """The blurred grey thumbnail, ``width`` px wide where that leaves each side within :data:`THUMB_SIDES`."""
    gray = to_gray(image) if image.ndim == 3 else image
    h, w = gray.shape
    low, high = THUMB_SIDES
    scale = max(width / w, low / min(h, w))
    size = (min(max(round(w * scale), low), high), min(max(round(h * scale), low), high))
    small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    return cv2.GaussianBlur(small, (0, 0), 1.0)


def scene_cut(img1: np.ndarray, img2: np.ndarray) -> bool:
    """Whether ``img2`` starts another shot than ``img1`` (uint8 RGB, same size): their blurred 64 px
    wide thumbnails (:func:`_thumbnail`) differ by more than :data:`CUT_DIFFERENCE` grey levels on
    average, or they do not line up (phase-correlation peak below :data:`CUT_RESPONSE` and a residual
    above :data:`CUT_RESIDUAL`)."""
    a, b = _thumbnail(img1), _thumbnail(img2)
    if float(np.abs(a - b).mean()) > CUT_DIFFERENCE:
        return True
    window = cv2.createHanningWindow((a.shape[1], a.shape[0]), cv2.CV_32F)
    (dx, dy), response = cv2.phaseCorrelate(a, b, window)
    if response >= CUT_RESPONSE:
        return False
    aligned = cv2.warpAffine(b, np.float32([[1, 0, -dx], [0, 1, -dy]]), (a.shape[1], a.shape[0]),
                             borderMode=cv2.BORDER_REFLECT)
    m = 3 if min(a.shape) > 12 else 0
    residual = float(np.abs(a - aligned)[m:a.shape[0] - m, m:a.shape[1] - m].mean())
    return residual > CUT_RESIDUAL * max(0.5 * (float(a.std()) + float(b.std())), 1e-3)


# --- saving and restoring (resume) ---------------------------------------------------------------
# A part (a method's memory) that can be saved has ``snapshot() -> dict[str, np.ndarray]`` and a
# classmethod ``restore(arrays) -> part``; per-frame work that the frame alone gives back (descriptors)
# is left out of the snapshot and recomputed on first use. A part may have ``fits_frame(height, width)
# -> bool``: whether its restored arrays are of frames of that size (:func:`fits`).


def snapshot(state: VideoState) -> dict[str, np.ndarray]:
    """Arrays that :func:`restore` turns back into ``state`` (without its frame, which the video has)."""
    arrays: dict[str, np.ndarray] = {"pairs": np.array(state.pairs), "cut": np.array(state.cut)}
    if state.flow is not None:
        arrays["flow"] = np.asarray(state.flow, np.float32)
    for name, part in state.parts.items():
        if not hasattr(part, "snapshot"):
            raise TypeError(f"video state part {name!r} ({type(part).__name__}) cannot be saved")
        arrays.update({f"{name}/{key}": value for key, value in part.snapshot().items()})
    return arrays


def checked(value: object, kinds: str, shape: tuple[int | None, ...], what: str) -> np.ndarray:
    """``value``, an array read from a saved state, if its dtype's kind is one of ``kinds`` (``"b"``, ``"iu"``,
    ``"f"``), its shape ``shape`` (None: any positive side) and its numbers finite; else ValueError (the state
    is damaged: a resumed run warms up again, see :class:`semflow.state_chain.StateChain`)."""
    if not (isinstance(value, np.ndarray) and value.dtype.kind in kinds and value.ndim == len(shape)
            and all(n > 0 if s is None else n == s for n, s in zip(value.shape, shape))
            and (value.dtype.kind != "f" or bool(np.isfinite(value).all()))):
        raise ValueError(f"saved video state: malformed {what}")
    return value


def checked_flow(value: object, what: str = "flow") -> np.ndarray | None:
    """A saved flow, float32 (H, W, 2) finite px (:func:`checked`), or None."""
    if value is not None and checked(value, "f", (None, None, 2), what).dtype != np.float32:
        raise ValueError(f"saved video state: malformed {what}")
    return value


def fits(state: VideoState, frame: np.ndarray) -> bool:
    """Whether a restored ``state`` is of ``frame``'s size: its flow (H, W) and each part by its own
    ``fits_frame(height, width)`` (a part without one: any). A state of other frames (well formed, but
    not of this video) counts as damaged: a resumed run warms up again (:func:`semflow.video_run.state_before`)."""
    height, width = frame.shape[:2]
    return (state.flow is None or state.flow.shape[:2] == (height, width)) and all(
        part.fits_frame(height, width) for part in state.parts.values() if hasattr(part, "fits_frame"))


def restore(arrays: dict[str, np.ndarray], frame: np.ndarray | None,
            part_types: dict[str, Any]) -> VideoState | None:
    """The state :func:`snapshot` saved, ending on ``frame`` (None: the caller sets it); None if it holds a part that none of
    ``part_types`` (name -> class with ``restore``) restores, or lacks one of them; ValueError for arrays
    :func:`snapshot` does not write (at least one pair, a bool cut, a finite float32 flow)."""
    names = {key.split("/", 1)[0] for key in arrays if "/" in key}
    if names != set(part_types):
        return None
    pairs = int(checked(arrays.get("pairs"), "iu", (), "pairs"))
    if pairs < 1:  # (a state is saved after a pair; 0 would start the video afresh)
        raise ValueError("saved video state: malformed pairs")
    cut = bool(checked(arrays.get("cut"), "b", (), "cut"))
    parts = {name: part_types[name].restore({key.split("/", 1)[1]: value for key, value in arrays.items()
                                             if key.startswith(name + "/")})
             for name in names}
    return VideoState(pairs=pairs, frame=frame, flow=checked_flow(arrays.get("flow")), parts=parts, cut=cut)
