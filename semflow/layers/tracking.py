"""Tracked regions for video mode: planes and things keep an identity, a model and a memory across pairs.

After each pair every plane region and thing instance is carried to the next frame (its mask warped
forward by the pair's flow). In the next pair a new region takes the identity of the carried region of
the same class it overlaps most (intersection over union at least :data:`MIN_IOU`); the others get new
ids. So ids stay the same from frame to frame and the explain output can name them.

A tracked plane remembers its last two homographies and whether it was used in the last pairs
(:func:`carry_plane`, :func:`gate_planes`):

- the carried homography, or its constant-velocity prediction (:func:`predict_plane`) where that explains
  the pair clearly better, is smoothed together with the new fit (an exponential moving average of the
  plane's motion, :data:`SMOOTHING`; less weight for a fit the gate takes only just, :data:`WEAK_SMOOTHING`;
  a running mean while the track is young); a precise fit (:data:`PRECISE_SHARE`) is taken as it is unless
  the smoothed model explains the pair at least as well;
- when the new fit explains the region clearly better (:data:`CHANGE_MARGIN` grey levels and
  :data:`CHANGE_RATIO`, on the same sampled pixels), and either the baseline's matches clearly support it
  or the last pair's candidate beats the carried model too (two pairs of evidence), the motion changed:
  the model moves towards the new fit by :data:`CHANGE_WEIGHT` (never a jump: on a poorly textured road
  the fits scatter from pair to pair); when there is no new fit the carried homography is judged alone;
- the gate has hysteresis: a plane that was on stays on unless the new fit fails clearly (inlier
  share and photometric error beyond :data:`SHARE_MARGIN` / :data:`ERROR_MARGIN`); a plane that was
  off needs the new fit to pass by those margins.

Things have a gate with memory too, and their last motion is a candidate for the next pair
(:mod:`semflow.layers.thing_tracks`).

A plane with no history (the first pair, a new region, after a cut) has no carried model to fall back
on, so its fit is taken only on clear evidence (:func:`carry_plane`): the baseline's matches agree with it
nearly everywhere (:data:`PRECISE_SHARE`) or it passes the gate by the hysteresis margins, and its mean
flow over the confident pixels is the baseline's there. A fit that passes the plain gate only is a
candidate (``PlaneFit.candidate``): not used, kept in ``Track.pending``, and taken (averaged with it) when
the next pair's fit passes the gate and moves the region alike (two pairs of evidence); until a fit is
taken the track has no history.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import numpy as np

from semflow.io.jsonfile import loads_untrusted
from semflow.layers.context import PairContext
from semflow.layers.footprint import Footprint, carried, checked_meta, checked_prior, of_frame, unpacked
from semflow.layers.plane_motion import (
    blend_homographies,
    carry_reach,
    confident_mean_flows,
    region_mean_flow,
    sampled_error,
)
from semflow.layers.planes import PlaneFit, PlaneParams, judge_homography
from semflow.layers.thing_tracks import thing_motion
from semflow.layers.things import ThingFit
from semflow.segmentation.regions import Region

MIN_IOU = 0.3
"""Smallest overlap (intersection over union) of a carried region and a new one of the same class."""

HISTORY = 5
"""How many past accept decisions a track keeps."""

SHARE_MARGIN = 0.15
"""Hysteresis margin on the inlier share (the share of confident baseline matches the homography explains)."""

ERROR_MARGIN = 1.0
"""Hysteresis margin on the photometric error (grey levels)."""

CHANGE_MARGIN = 0.5
"""The motion changed (the model moves towards the new fit by :data:`CHANGE_WEIGHT`) only when the new fit
explains the region by this many grey levels better than the carried homography..."""

CHANGE_RATIO = 0.8
"""...and by this factor (photometric noise grows with the error level: on a textureless road, a
20% difference in the mean error of two models is no clear evidence)."""

SMOOTHING = 0.3
"""Weight of the new fit in the smoothed model (the carried one has ``1 - SMOOTHING``): an exponential
moving average of the plane's motion over the pairs..."""

WEAK_SMOOTHING = 1 / (HISTORY + 1)
"""...for a fit the gate takes only just (not "ok", or an inlier share within SHARE_MARGIN of the gate's):
on the dash-cam clip the road's fits (15% of it matched with confidence) scatter from 2 to 37 px mean
flow from pair to pair, and their mean is the better estimate. A young track averages its fits
(weight ``1 / (pairs + 1)``) until that is smaller. (0.15 instead of 1/6 reads 0.98 px flicker on the
dash-cam clip instead of 0.92: the figure moves by several hundredths with such details.)"""

CHANGE_WEIGHT = 0.3
"""Weight of a new fit that is clearly better and confirmed (the motion changed): the model moves towards
it by this much each pair, never jumps."""

PRECISE_SHARE = 0.9
"""A fit that passes the gate with this inlier share is precise: it is taken as it is, unless the smoothed
model explains the pair at least as well (on exact synthetic sequences, smoothing only adds lag)."""

YOUNG_FLOW_TOLERANCE = 0.2
"""A plane without a track history is taken only when its mean flow magnitude over the region's confident
pixels is the baseline's there within ``ransac_threshold`` px plus this share: on the dash-cam clip the
first pair's road fit (78% inliers) reads 8.5 px there against the baseline's 4.9 px, and 36.9 px over
the whole road against the baseline's 13.3 px."""

CONFIRM_STRENGTH = 0.5
"""A confirmed candidate's share of its region's flow on the pair it is confirmed (full from the next): the
region changes from the baseline's motion to the plane's over two pairs, as a change of motion does."""

PREDICT_MARGIN = 0.2
PREDICT_RATIO = 0.95
"""The constant-velocity prediction (:func:`predict_plane`) replaces the carried homography when it explains
the region by this many grey levels and this factor better: on a textureless road the prediction (twice
the last model minus the one before) doubles the scatter of the fits, so it has to earn its place."""


@dataclass
class Track:
    """One region followed through the video.

    track_id: its id (1, 2, ...), unique in the video state. kind: ``"plane"`` or ``"thing"``.
    class_id: its class. where: where it is in the newest frame, a :class:`Footprint` (its mask within
    its bounding box; an (H, W) bool mask given is held so; ``mask`` gives it whole). model: the last
    homography (3, 3) (planes), the object's last affine motions as (3, 3) matrices, stacked
    (K, 3, 3) (things whose model was used), or None. history: accept decisions, oldest first (at most HISTORY).
    pending: see below.
    """

    track_id: int
    kind: str
    class_id: int
    where: Footprint
    model: np.ndarray | None = None
    history: list[bool] = field(default_factory=list)
    pending: np.ndarray | None = None
    """A homography of the last pair that explained the region clearly better than the carried model
    but is not taken until this pair confirms it (:func:`carry_plane`), or None."""
    previous: np.ndarray | None = None
    """The homography of the pair before the last (planes), for a constant-velocity prediction, or None."""

    def __post_init__(self) -> None:
        if not isinstance(self.where, Footprint):
            self.where = Footprint.of(self.where)

    @property
    def mask(self) -> np.ndarray:
        """Where it is in the newest frame, (H, W) bool (made on each call: the track holds its box)."""
        return self.where.full()

    @property
    def was_on(self) -> bool | None:
        """Whether the model was used in the last pair (None without history)."""
        return self.history[-1] if self.history else None


@dataclass
class Tracks:
    """The tracked regions of a video state (the ``"semantic"`` part, see semflow.video_state)."""

    tracks: list[Track] = field(default_factory=list)
    next_id: int = 1
    prior: np.ndarray | None = None
    """The segmentation prior of the next frame, (h, w, C) float16 (the previous belief carried along
    the flow, :func:`~semflow.segmentation.temporal.carry_belief`), or None."""

    def match(self, regions: list[Region], kind: str, shape: tuple[int, int]) -> list[Track | None]:
        """For each region (boxed masks of an (H, W) image) the track of ``kind`` it continues, or None."""
        candidates = [t for t in self.tracks if t.kind == kind]
        areas = [t.where.area for t in candidates]
        scores = []
        for i, region in enumerate(regions):
            # Each overlap within the two boxes (two whole-frame masks a pair of a crowd's hundreds of
            # instances and tracks took 15 s a pair at 720p); the union from the two areas.
            area = np.count_nonzero(region.mask)
            for j, track in enumerate(candidates):
                if track.class_id != region.class_id:
                    continue
                inter = track.where.overlap(region)
                if inter:
                    iou = inter / (area + areas[j] - inter)
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
                 "model": None if t.model is None else np.asarray(t.model, np.float64).ravel().tolist(),
                 "pending": None if t.pending is None else np.asarray(t.pending, np.float64).ravel().tolist(),
                 "previous": None if t.previous is None else np.asarray(t.previous, np.float64).ravel().tolist()}
                for t in self.tracks]
        out = {"meta": np.array(json.dumps({"next_id": self.next_id, "tracks": meta}))}
        for k, t in enumerate(self.tracks):
            # The mask's bounding box and its bits there (a whole frame's each: 115 KB at 720p, 44 MB a
            # state for a crowd's 380 tracks); a snapshot without boxes holds whole frames.
            out.update({f"{key}{k}": value for key, value in t.where.packed().items()})
        if self.prior is not None:
            out["prior"] = self.prior
        return out

    @classmethod
    def restore(cls, arrays: dict[str, np.ndarray]) -> Tracks:
        """The tracks :meth:`snapshot` saved; ValueError for arrays it does not write (they are read from
        the run's folder: a damaged state counts as missing, see :mod:`semflow.layers.footprint`)."""
        meta = checked_meta(loads_untrusted(str(arrays.get("meta", ""))), HISTORY)
        tracks = []
        for k, m in enumerate(meta["tracks"]):
            if f"mask{k}" not in arrays or f"shape{k}" not in arrays:
                raise ValueError(f"saved tracks: no mask {k}")
            mask = unpacked(arrays[f"mask{k}"], arrays.get(f"box{k}"), arrays[f"shape{k}"])
            shape3 = (3, 3) if m["kind"] == "plane" else (-1, 3, 3)
            model = None if m["model"] is None else np.array(m["model"], np.float64).reshape(shape3)
            pending = None if m.get("pending") is None else np.array(m["pending"], np.float64).reshape(3, 3)
            previous = None if m.get("previous") is None else np.array(m["previous"], np.float64).reshape(3, 3)
            tracks.append(Track(m["id"], m["kind"], m["class"], mask, model, list(m["history"]), pending, previous))
        return cls(tracks, meta["next_id"], checked_prior(arrays.get("prior")))

    def fits_frame(self, height: int, width: int) -> bool:
        """Whether restored tracks are of a ``height`` x ``width`` frame (:func:`~semflow.layers.footprint.of_frame`)."""
        return of_frame([t.where for t in self.tracks], self.prior, height, width)


# --- the gate with memory ---------------------------------------------------------------------------


def _gate(params: PlaneParams, base_err: float, margin: float) -> float:
    """The largest model error the plane gate accepts, moved by ``margin`` grey levels."""
    return base_err * (1 + params.error_tolerance) + params.error_slack + margin


def _hysteresis(fit: PlaneFit, was_on: bool | None, params: PlaneParams) -> PlaneFit:
    """``fit``'s gate decision with memory: a plane that was on stays on unless the fit fails clearly,
    one that was off is taken only when the fit passes clearly (module docstring)."""
    if was_on is None or fit.homography is None:
        return fit
    if was_on and not fit.accepted:
        near = fit.inlier_share >= params.min_inlier_share - SHARE_MARGIN \
            and fit.model_error <= _gate(params, fit.baseline_error, ERROR_MARGIN)
        if near:
            return replace(fit, accepted=True, reason=fit.reason + "; kept: on in the last pairs")
    if not was_on and fit.accepted:
        clear = fit.inlier_share >= params.min_inlier_share + SHARE_MARGIN \
            and fit.model_error <= _gate(params, fit.baseline_error, -ERROR_MARGIN)
        if not clear:
            return replace(fit, accepted=False, reason=fit.reason + "; not taken: off in the last pairs")
    return fit


def predict_plane(track: Track, box: tuple[int, int, int, int]) -> np.ndarray | None:
    """The track's homography for this pair by constant velocity: its motion over ``box`` moves on from
    the last pair's by as much as it moved from the pair before's (None without two pairs of models)."""
    if track.model is None or track.previous is None:
        return None
    return blend_homographies(track.previous, track.model, 2.0, box)


def _agrees_with_matches(fit: PlaneFit, ctx: PairContext, params: PlaneParams) -> tuple[bool, str]:
    """Whether the fit's mean flow over the region's confident pixels is the baseline's there (within
    ``ransac_threshold`` px plus :data:`YOUNG_FLOW_TOLERANCE`), and the two means for reports."""
    model_mean, base_mean = confident_mean_flows(fit, ctx, params)
    agrees = abs(model_mean - base_mean) <= params.ransac_threshold + YOUNG_FLOW_TOLERANCE * base_mean
    return agrees, f"mean flow {model_mean:.1f} px on the confident pixels against the baseline's {base_mean:.1f} px"


def _young_gate(fit: PlaneFit, ctx: PairContext, params: PlaneParams) -> PlaneFit:
    """The gate of a plane without a track history (the first pair, a new region, after a cut): it has
    no carried model to fall back on, so the fit is taken only on clear evidence (module docstring) --
    the baseline's matches agree with it nearly everywhere (:data:`PRECISE_SHARE`), or its inlier share
    and photometric error pass the gate by :data:`SHARE_MARGIN` / :data:`ERROR_MARGIN` -- and its mean
    flow over the confident pixels is the baseline's there (:func:`_agrees_with_matches`). A fit that
    passes the plain gate only is a candidate: not used, kept for the next pair to confirm."""
    return _young_verdict(fit, ctx, params)[0]


def _young_verdict(fit: PlaneFit, ctx: PairContext, params: PlaneParams) -> tuple[PlaneFit, bool, str]:
    """:func:`_young_gate`'s fit, with what :func:`_agrees_with_matches` said of it (False and "" for
    a fit the plain gate refused: not asked)."""
    if not fit.accepted or fit.homography is None:
        return fit, False, ""
    precise = fit.reason == "ok" and fit.inlier_share >= PRECISE_SHARE
    clear = fit.inlier_share >= params.min_inlier_share + SHARE_MARGIN \
        and fit.model_error <= _gate(params, fit.baseline_error, -ERROR_MARGIN)
    agrees, means = _agrees_with_matches(fit, ctx, params)
    if (precise or clear) and agrees:
        return fit, agrees, means
    why = means if precise or clear else \
        f"inlier share {fit.inlier_share:.2f} and error {fit.model_error:.2f} (baseline {fit.baseline_error:.2f})"
    return replace(fit, accepted=False, candidate=True,
                   reason=f"{fit.reason}; not taken: a new track needs clear evidence ({why})"), agrees, means


def _confirm_candidate(fit: PlaneFit, track: Track, ctx: PairContext, params: PlaneParams) -> PlaneFit:
    """The gate of a plane whose last pair's fit was a candidate (``track.pending``, not used): this pair's
    fit is taken when it is clear evidence itself, or when it passes the gate and moves the region as
    the candidate did (mean flow over the region within ``ransac_threshold`` px plus
    :data:`YOUNG_FLOW_TOLERANCE`; two pairs of evidence): then the two are averaged. Otherwise this
    pair's fit becomes the candidate (or, failing the gate, the track starts over)."""
    young, agrees, means = _young_verdict(fit, ctx, params)
    if young.accepted or not young.candidate:
        return young
    if not agrees:
        return replace(young, reason=f"{young.reason}; {means}")
    region, candidate = fit.region, track.pending
    now, before = region_mean_flow(region, fit.homography), region_mean_flow(region, candidate)
    if abs(now - before) > params.ransac_threshold + YOUNG_FLOW_TOLERANCE * before:
        return replace(young, reason=young.reason + f"; the last pair's candidate moved it by {before:.1f} px"
                       f" against {now:.1f} px now")
    mean = judge_homography(region, ctx, params, blend_homographies(candidate, fit.homography, 0.5, region.box))
    return replace(mean, accepted=True, strength=CONFIRM_STRENGTH, reason=f"{fit.reason}; confirmed: the last pair's candidate moved it by"
                   f" {before:.1f} px, this pair's fit by {now:.1f} px; averaged")


def carry_plane(fit: PlaneFit, track: Track | None, ctx: PairContext, params: PlaneParams) -> PlaneFit:
    """The model of one tracked plane for this pair (module docstring): the carried homography (or its
    constant-velocity prediction) and the new fit smoothed together, the new fit alone where it is
    precise and the blend would cost photometric error; then the gate with memory. Sets ``track.pending``."""
    if track is None or (track.model is None and not track.history and track.pending is None):
        return _young_gate(fit, ctx, params)
    if track.model is None and not track.history:
        return _confirm_candidate(fit, track, ctx, params)
    if track.model is None:
        return _hysteresis(fit, track.was_on, params)
    region = fit.region
    carried, last_err = track.model, sampled_error(region, ctx, track.model)
    how = "last pair's homography"
    predicted = predict_plane(track, region.box)
    if predicted is not None:  # the constant-velocity prediction, where it explains the pair clearly better
        predicted_err = sampled_error(region, ctx, predicted)
        if predicted_err + PREDICT_MARGIN < last_err and predicted_err < PREDICT_RATIO * last_err:
            carried, last_err = predicted, predicted_err
            how = "constant-velocity prediction of the last pairs' homographies"
    if fit.homography is None:  # no new fit: the carried model is the only candidate
        last = judge_homography(region, ctx, params, carried)
        return _hysteresis(replace(last, reason=f"{how} ({fit.reason})"), track.was_on, params)
    new_err = sampled_error(region, ctx, fit.homography)
    supported = fit.accepted and fit.inlier_share >= params.min_inlier_share + SHARE_MARGIN
    # The weight of the new fit: less for a fit the gate only just takes; a running mean while the track
    # is young (its first model is one pair's evidence, no better than this pair's).
    weight = max(SMOOTHING if supported and fit.reason == "ok" else WEAK_SMOOTHING, 1.0 / (1 + len(track.history)))
    note = f"smoothed with the {how}"
    if fit.reason == "ok" and fit.inlier_share >= PRECISE_SHARE:
        # A precise fit (the baseline's matches agree with it nearly everywhere) is taken as it is
        # unless the smoothed model explains the pair at least as well.
        if new_err <= sampled_error(region, ctx, blend_homographies(carried, fit.homography, weight, region.box)):
            track.pending = None
            return _hysteresis(replace(fit, reason=fit.reason + "; precise fit, taken as it is"), track.was_on, params)
    if new_err + CHANGE_MARGIN < last_err and new_err < CHANGE_RATIO * last_err:
        # Clearly better on this pair. The motion changed when the baseline's matches clearly support
        # the new fit too, or when the last pair's candidate also beats the carried model here:
        # photometry alone on a textureless, repetitive region (a road with dashed lines) can prefer a
        # wrong motion on one pair. Even then the model moves towards the new fit by CHANGE_WEIGHT
        # only: the fits of a poorly textured region scatter, and a jump would be a flicker.
        pending_err = float("inf") if track.pending is None else sampled_error(region, ctx, track.pending)
        track.pending = None
        if supported or (pending_err + CHANGE_MARGIN < last_err and pending_err < CHANGE_RATIO * last_err):
            weight = max(weight, CHANGE_WEIGHT)
            note = (f"the motion changed (error {new_err:.2f} against {last_err:.2f} of the carried model,"
                    f" confirmed): moved towards the new fit by {weight:.2f}")
        else:
            track.pending = fit.homography
    else:
        track.pending = None
    # This pair's evidence decides whether the region is planar (the new fit's gate, with memory); the
    # homography used is the temporal filter's: the carried one and the new fit smoothed together.
    decided = _hysteresis(fit, track.was_on, params)
    smooth = judge_homography(region, ctx, params, blend_homographies(carried, fit.homography, weight, region.box))
    return replace(smooth, accepted=decided.accepted, reason=f"{decided.reason}; {note}")


def gate_planes(fits: list[PlaneFit], tracks: list[Track | None], ctx: PairContext,
                params: PlaneParams) -> list[PlaneFit]:
    """The plane fits after model carry-over and the gate with memory (:func:`carry_plane`);
    ``tracks[i]`` is fit i's track (None: a new region, judged as in pair mode)."""
    return [carry_plane(fit, track, ctx, params) for fit, track in zip(fits, tracks)]


def advance_tracks(memory: Tracks | None, planes: list[PlaneFit], plane_tracks: list[Track | None],
                   things: list[Region], thing_tracks: list[Track | None], thing_fits: list[ThingFit],
                   flow: np.ndarray) -> tuple[Tracks, list[int], list[int]]:
    """The tracks after this pair (each region's mask carried to the next frame by ``flow``) and the
    ids of the planes and things of this pair (new ids for regions no track continued);
    ``thing_fits`` say which things' models were used (instances too small to fit have none)."""
    memory = Tracks([], memory.next_id if memory is not None else 1)
    reach = carry_reach(flow)  # (each region carried within its box grown by the flow's reach)
    kept: list[Track] = []
    plane_ids, thing_ids = [], []
    for fit, track in zip(planes, plane_tracks):
        tid = memory.new_id() if track is None else track.track_id
        mask = carried(fit.region, flow, reach)
        if fit.candidate or (not fit.accepted and (track is None or not track.history)):
            # No history yet: the track stays young; a candidate fit waits for the next pair to confirm it.
            kept.append(Track(tid, "plane", fit.region.class_id, mask, pending=fit.homography if fit.candidate else None))
            plane_ids.append(tid)
            continue
        history = ([] if track is None else track.history)[-(HISTORY - 1):] + [bool(fit.accepted)]
        model = fit.homography if fit.homography is not None else (None if track is None else track.model)
        previous = None if track is None else track.model if fit.homography is not None else track.previous
        kept.append(Track(tid, "plane", fit.region.class_id, mask, model, history,
                          None if track is None else track.pending, previous))
        plane_ids.append(tid)
    fits = {fit.instance_id: fit for fit in thing_fits}
    for region, track in zip(things, thing_tracks):
        tid = memory.new_id() if track is None else track.track_id
        history = ([] if track is None else track.history)[-(HISTORY - 1):]
        fit = fits.get(region.id)
        history = history + [bool(fit.accepted)] if fit is not None else []
        kept.append(Track(tid, "thing", region.class_id, carried(region, flow, reach),
                          thing_motion(fit), history))
        thing_ids.append(tid)
    memory.tracks = kept
    return memory, plane_ids, thing_ids
