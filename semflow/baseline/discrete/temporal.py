"""What ``discrete`` carries from one pair of a video to the next (video mode, see semflow.video_state).

- :class:`FrameWork`: the per-frame work of the newest frame (padded gray image, its gray pyramid and
  descriptor pyramids under the video's PCA projection, its SIFT keypoints when the pairs match them).
  Frame t+1 of one pair is frame t of the next, so each frame is described once.
- :func:`temporal_candidates`: the previous flow carried forward, as candidate flows for every pyramid
  level: constant velocity (F_{t-1}(x)) and the previous flow warped by itself (F_{t-1}(x - F_{t-1}(x)),
  the motion of the point that arrived at x). The backward search gets their negations.

The projection is fitted on the first pair of the video (or after a cut) exactly as pair mode fits it,
and kept: descriptors of frames described under different bases could not be compared.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from semflow.baseline.discrete.keypoints import FrameKeypoints
from semflow.video_state import checked, checked_flow

MIN_SIDE = 32
"""Frames are padded (reflecting) to at least this size, so the pyramid always has a level."""


@dataclass
class FrameWork:
    """Per-frame work of one frame, reusable by the pair that starts at it.

    gray: padded gray frame (H, W) uint8. pyramid: its gray pyramid (float32, level 0 first).
    descriptors / shrunk: descriptor pyramids (lists of (H_l, W_l, D) float32, None below ``finest``;
    ``shrunk`` None without scale-tolerant costs, or until a pair needs them). projection: the PCA
    basis (D, d) or None.
    levels, finest, shrink: the settings they were made with. flow: the flow of the pair that ended
    at this frame (padded size, px), or None. valid_share: share of that pair's grid matches kept.
    searched_share: the valid share of the last pair computed with the full search (the reference
    of the confidence trigger). since_full: pairs since the last full search. keypoints: the frame's
    SIFT keypoints when a pair with keypoint matches found them (not in snapshots: found again).
    """

    gray: np.ndarray
    pyramid: list[np.ndarray]
    descriptors: list
    shrunk: list | None
    projection: np.ndarray | None
    levels: int
    finest: int
    shrink: float | None
    flow: np.ndarray | None = None
    valid_share: float = 0.0
    searched_share: float = 0.0
    since_full: int = 0
    keypoints: FrameKeypoints | None = None

    def fits(self, gray: np.ndarray, levels: int, finest: int, shrink: float | None) -> bool:
        """Whether this work is the frame ``gray`` described with these settings."""
        return (self.levels == levels and self.finest == finest and self.shrink == shrink
                and self.gray.shape == gray.shape and np.array_equal(self.gray, gray))

    _SCALARS = ("levels", "finest", "valid_share", "searched_share", "since_full")

    def snapshot(self) -> dict[str, np.ndarray]:
        """What :meth:`restore` needs (the pyramids are recomputed from ``gray`` and ``projection``)."""
        out = {key: np.array(getattr(self, key)) for key in self._SCALARS}
        out["gray"] = self.gray
        out["shrink"] = np.array(np.nan if self.shrink is None else self.shrink)
        if self.projection is not None:
            out["projection"] = self.projection
        if self.flow is not None:
            out["flow"] = np.asarray(self.flow, np.float32)
        return out

    @classmethod
    def restore(cls, arrays: dict[str, np.ndarray]) -> FrameWork:
        """The work :meth:`snapshot` saved; its pyramids are empty until the method recomputes them.
        ValueError for arrays it does not write (read from the run's folder: see :func:`semflow.video_state.checked`):
        a gray uint8 frame, a finite float32 flow of its size, a finite float32 projection (D, d), integer
        settings and counts, shares within [0, 1], a shrink factor (NaN: none) within (0, 1]."""
        gray = checked(arrays.get("gray"), "u", (None, None), "gray frame")
        flow = checked_flow(arrays.get("flow"), "carried flow")
        projection = arrays.get("projection")
        if gray.dtype != np.uint8 or (flow is not None and flow.shape[:2] != gray.shape) or (
                projection is not None and checked(projection, "f", (None, None), "projection").dtype != np.float32):
            raise ValueError("saved video state: malformed frame work")
        levels, finest, since_full = (int(checked(arrays.get(key), "iu", (), key)) for key in ("levels", "finest", "since_full"))
        shares = [float(checked(arrays.get(key), "f", (), key)) for key in ("valid_share", "searched_share")]
        shrink = arrays.get("shrink")  # (NaN: none)
        if not (isinstance(shrink, np.ndarray) and shrink.dtype.kind == "f" and shrink.ndim == 0):
            raise ValueError("saved video state: malformed shrink")
        shrink = None if np.isnan(shrink) else float(shrink)
        if min(levels, finest, since_full) < 0 or not all(0 <= v <= 1 for v in shares) or not (
                shrink is None or 0 < shrink <= 1):
            raise ValueError("saved video state: malformed frame work")
        work = cls(gray, [], [], None, projection, levels, finest, shrink, flow=flow)
        work.valid_share, work.searched_share = shares
        work.since_full = since_full
        return work

    def fits_frame(self, height: int, width: int) -> bool:
        """Whether this work (restored from a file) is of a ``height`` x ``width`` frame: its gray frame and
        carried flow are that frame padded to at least :data:`MIN_SIDE` on each side."""
        padded = (max(height, MIN_SIDE), max(width, MIN_SIDE))
        return self.gray.shape == padded and (self.flow is None or self.flow.shape[:2] == padded)

    @property
    def described(self) -> bool:
        """Whether the descriptor pyramids are there (not after :meth:`restore`)."""
        return bool(self.descriptors)


def _sample(field: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    return cv2.remap(field, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def along_itself(flow: np.ndarray) -> np.ndarray:
    """The last pair's ``flow`` (H, W, 2) px carried forward along itself: F(x - F(x)), the motion of
    the point that arrived at x (sampled bilinearly where each pixel came from); float32 (H, W, 2)."""
    flow = np.asarray(flow, np.float32)
    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return _sample(flow, xs - flow[..., 0], ys - flow[..., 1])


def carried_flows(flow: np.ndarray, along: np.ndarray | None = None) -> np.ndarray:
    """Candidate flows (H, W, 2, 2) for the next pair from the last one's ``flow`` (H, W, 2): constant
    velocity, and the flow carried along itself (:func:`along_itself`; ``along`` when already computed)."""
    flow = np.asarray(flow, np.float32)
    return np.stack([flow, along_itself(flow) if along is None else along], 2)


def temporal_candidates(flow: np.ndarray, levels: int, along: np.ndarray | None = None
                        ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per-level candidate stacks (H_l, W_l, n, 2) in each level's pixels, forward and backward,
    from the last flow (H, W, 2) px at full size (levels as ``cv2.pyrDown`` halves them); ``along``:
    :func:`along_itself` of it, when already computed."""
    cands = carried_flows(flow, along)
    n = cands.shape[2]
    planar = cands.reshape(*cands.shape[:2], 2 * n)
    fwd = [planar]
    for _ in range(levels):
        planar = np.stack([cv2.pyrDown(planar[..., c]) for c in range(2 * n)], 2) * 0.5
        fwd.append(planar)
    fwd = [f.reshape(*f.shape[:2], n, 2) for f in fwd]
    return fwd, [-f for f in fwd]
