"""Tracked regions for video mode: planes and things keep an identity, a model and a memory across pairs.

After each pair every plane region and thing instance is carried to the next frame (its mask warped
forward by the pair's flow). In the next pair a new region takes the identity of the carried region of
the same class it overlaps most (intersection over union at least :data:`MIN_IOU`); the others get new
ids. So ids stay the same from frame to frame and the explain output can name them.

A tracked plane remembers its last homography and whether it was used in the last pairs. The gate
then has hysteresis (:func:`gate_planes`):

- a plane that was on keeps its model unless the evidence against it is clear: the last pair's
  homography stays while it explains the region about as well as the new fit (:data:`KEEP_MARGIN`);
  a fit that failed its gate by a small margin stays on, and when it failed clearly the last pair's
  homography is tried as the model, judged by the same tolerances widened by the margin;
- a plane that was off needs clear evidence to be taken: the new fit must pass its gate by the margin.

A plane with no history (the first pair, a new region, after a cut) gets the plain gate of pair mode.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from semflow.layers.common import magnitude, photometric_error
from semflow.layers.context import PairContext
from semflow.layers.planes import PlaneFit, PlaneParams, homography_flow
from semflow.layers.veto import baseline_veto
from semflow.segmentation.regions import Region

MIN_IOU = 0.3
"""Smallest overlap (intersection over union) of a carried region and a new one of the same class."""

HISTORY = 5
"""How many past accept decisions a track keeps."""

SHARE_MARGIN = 0.15
"""Hysteresis margin on the inlier share (the share of confident baseline matches the homography explains)."""

ERROR_MARGIN = 1.0
"""Hysteresis margin on the photometric error (grey levels)."""

KEEP_MARGIN = 0.25
"""A plane that was on keeps the last pair's homography while it explains the region within this many
grey levels of the new fit (a camera moving smoothly keeps its plane motions from pair to pair)."""


@dataclass
class Track:
    """One region followed through the video.

    track_id: its id (1, 2, ...), unique in the video state. kind: ``"plane"`` or ``"thing"``.
    class_id: its class. mask: (H, W) bool, where it is in the newest frame. model: the last
    homography (3, 3) (planes) or None. history: accept decisions, oldest first (at most HISTORY).
    """

    track_id: int
    kind: str
    class_id: int
    mask: np.ndarray
    model: np.ndarray | None = None
    history: list[bool] = field(default_factory=list)

    @property
    def was_on(self) -> bool | None:
        """Whether the model was used in the last pair (None without history)."""
        return self.history[-1] if self.history else None


@dataclass
class Tracks:
    """The tracked regions of a video state (the ``"semantic"`` part, see semflow.video_state)."""

    tracks: list[Track] = field(default_factory=list)
    next_id: int = 1

    def match(self, regions: list[Region], kind: str, shape: tuple[int, int]) -> list[Track | None]:
        """For each region (boxed masks of an (H, W) image) the track of ``kind`` it continues, or None."""
        candidates = [t for t in self.tracks if t.kind == kind]
        scores = []
        for i, region in enumerate(regions):
            full = _full_mask(region, shape)
            for j, track in enumerate(candidates):
                if track.class_id != region.class_id:
                    continue
                inter = np.count_nonzero(full & track.mask)
                if inter:
                    iou = inter / np.count_nonzero(full | track.mask)
                    if iou >= MIN_IOU:
                        scores.append((iou, i, j))
        out: list[Track | None] = [None] * len(regions)
        used: set[int] = set()
        for _, i, j in sorted(scores, reverse=True):  # greedy, best overlap first
            if out[i] is None and j not in used:
                out[i], used = candidates[j], used | {j}
        return out

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    # --- saving (resume) --------------------------------------------------------------------------

    def snapshot(self) -> dict[str, np.ndarray]:
        meta = [{"id": t.track_id, "kind": t.kind, "class": t.class_id, "history": t.history,
                 "model": None if t.model is None else np.asarray(t.model, np.float64).ravel().tolist()}
                for t in self.tracks]
        out = {"meta": np.array(json.dumps({"next_id": self.next_id, "tracks": meta}))}
        for k, t in enumerate(self.tracks):
            out[f"mask{k}"] = np.packbits(t.mask, axis=None)
            out[f"shape{k}"] = np.array(t.mask.shape)
        return out

    @classmethod
    def restore(cls, arrays: dict[str, np.ndarray]) -> Tracks:
        meta = json.loads(str(arrays["meta"]))
        tracks = []
        for k, m in enumerate(meta["tracks"]):
            shape = tuple(int(v) for v in arrays[f"shape{k}"])
            mask = np.unpackbits(arrays[f"mask{k}"], count=shape[0] * shape[1]).reshape(shape).astype(bool)
            model = None if m["model"] is None else np.array(m["model"], np.float64).reshape(3, 3)
            tracks.append(Track(m["id"], m["kind"], m["class"], mask, model, list(m["history"])))
        return cls(tracks, meta["next_id"])


def _full_mask(region: Region, shape: tuple[int, int]) -> np.ndarray:
    full = np.zeros(shape, bool)
    full[region.slices] = region.mask
    return full


def carry_mask(mask: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Where the pixels of ``mask`` (H, W) bool of frame t are in frame t+1 under ``flow`` (H, W, 2):
    each pixel y of frame t+1 takes the mask at y - flow(y) (the flow read at y, fine for smooth flow)."""
    h, w = mask.shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    carried = cv2.remap(mask.astype(np.uint8), xs - flow[..., 0], ys - flow[..., 1], cv2.INTER_NEAREST,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return carried.astype(bool)


# --- the gate with memory ---------------------------------------------------------------------------


def _gate(params: PlaneParams, base_err: float, margin: float) -> float:
    """The largest model error the plane gate accepts, moved by ``margin`` grey levels."""
    return base_err * (1 + params.error_tolerance) + params.error_slack + margin


def _from_model(fit: PlaneFit, homography: np.ndarray, ctx: PairContext, params: PlaneParams) -> PlaneFit:
    """``fit``'s region judged with ``homography`` as its model (the baseline keeps the pixels the plane
    veto gives it, as in :func:`~semflow.layers.planes.fit_plane`)."""
    region = fit.region
    sy, sx = region.slices
    y0, _, x0, _ = region.box
    flow = homography_flow(homography, region.box)
    err, inside = photometric_error(ctx.f1, ctx.f2, flow, x0, y0)
    judged = region.mask & inside
    if not judged.any():
        judged = region.mask
    base_err = ctx.baseline_error[sy, sx]
    local_gain = cv2.blur(err - base_err, (params.veto.window, params.veto.window))
    veto = region.mask & baseline_veto(local_gain, 0.0, magnitude(flow - ctx.baseline[sy, sx]),
                                       ctx.confidence[sy, sx], params.veto)
    return replace(fit, homography=homography, flow=flow, veto=veto, model_error=float(err[judged].mean()),
                   baseline_error=float(base_err[judged].mean()), error=err)


def gate_planes(fits: list[PlaneFit], tracks: list[Track | None], ctx: PairContext,
                params: PlaneParams) -> list[PlaneFit]:
    """The plane fits after the gate with memory (module docstring); ``tracks[i]`` is fit i's track."""
    out = []
    for fit, track in zip(fits, tracks):
        was_on = None if track is None else track.was_on
        if was_on is None:
            out.append(fit)
            continue
        near = fit.homography is not None and fit.inlier_share >= params.min_inlier_share - SHARE_MARGIN \
            and fit.model_error <= _gate(params, fit.baseline_error, ERROR_MARGIN)
        if was_on and fit.accepted and track.model is not None:
            last = _from_model(fit, track.model, ctx, params)
            if last.model_error <= fit.model_error + KEEP_MARGIN \
                    and last.model_error <= _gate(params, last.baseline_error, 0.0):
                fit = replace(last, accepted=True, reason="last pair's homography (as good as the new fit)")
        elif was_on and not fit.accepted:
            if near:
                fit = replace(fit, accepted=True, reason=fit.reason + "; kept: on in the last pairs")
            elif track.model is not None:
                last = _from_model(fit, track.model, ctx, params)
                if last.model_error <= _gate(params, last.baseline_error, ERROR_MARGIN):
                    fit = replace(last, accepted=True, reason=f"last pair's homography ({fit.reason})")
        elif not was_on and fit.accepted:
            clear = fit.inlier_share >= params.min_inlier_share + SHARE_MARGIN \
                and fit.model_error <= _gate(params, fit.baseline_error, -ERROR_MARGIN)
            if not clear:
                fit = replace(fit, accepted=False, reason=fit.reason + "; not taken: off in the last pairs")
        out.append(fit)
    return out


def advance_tracks(memory: Tracks | None, planes: list[PlaneFit], plane_tracks: list[Track | None],
                   things: list[Region], thing_tracks: list[Track | None], flow: np.ndarray
                   ) -> tuple[Tracks, list[int], list[int]]:
    """The tracks after this pair (each region's mask carried to the next frame by ``flow``) and the
    ids of the planes and things of this pair (new ids for regions no track continued)."""
    memory = Tracks([], memory.next_id if memory is not None else 1)
    shape = flow.shape[:2]
    kept: list[Track] = []
    plane_ids, thing_ids = [], []
    for fit, track in zip(planes, plane_tracks):
        history = ([] if track is None else track.history)[-(HISTORY - 1):] + [bool(fit.accepted)]
        model = fit.homography if fit.homography is not None else (None if track is None else track.model)
        tid = memory.new_id() if track is None else track.track_id
        kept.append(Track(tid, "plane", fit.region.class_id, carry_mask(_full_mask(fit.region, shape), flow),
                          model, history))
        plane_ids.append(tid)
    for region, track in zip(things, thing_tracks):
        tid = memory.new_id() if track is None else track.track_id
        kept.append(Track(tid, "thing", region.class_id, carry_mask(_full_mask(region, shape), flow)))
        thing_ids.append(tid)
    memory.tracks = kept
    return memory, plane_ids, thing_ids
