"""The thing model's settings (:class:`ThingParams`) and its result per instance (:class:`ThingFit`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from semflow.fitting.motion_fit import MotionParams
from semflow.layers.veto import VetoParams
from semflow.segmentation.regions import Box, Region

if TYPE_CHECKING:
    from semflow.baseline.base import FlowMethod

THING_VETO = VetoParams(window=7, margin=2.0, disagreement=None, trust_confidence=0.5, trust_disagreement=1.0,
                        trust_margin=3.0)
"""The thing's veto: the baseline must be better by 2 grey levels (7x7 mean) anywhere, or confident
(0.5), different by 1 px and not worse by 3: a non-rigid thing's affine-plus-residual layer is often
photometrically as good as a confident baseline, and wrong."""


@dataclass
class ThingParams:
    """Settings of the thing model. Distances in pixels, errors in grey levels (0-255)."""

    min_area: int = 150
    """Instances smaller than this keep the baseline."""
    seed: int = 0
    """Seed of the random draws (samples of points and of motion hypotheses). Each instance draws from
    a generator of its own, seeded with this and its box and area, so its fit does not depend on the
    other instances; another seed shows how much a result owes to the draws."""
    pad_fraction: float = 0.35
    """Box padding as a fraction of the instance's larger side..."""
    min_pad: int = 12
    max_pad: int = 80
    min_confidence: float = 0.5
    max_points: int = 2000
    ransac_threshold: float = 1.0
    min_points: int = 30
    min_inlier_share: float = 0.4
    min_seed_share: float = 0.2
    """The object's motion is fitted to the baseline's confident pixels; an instance where they cover
    less than this share of the (eroded) mask keeps the baseline."""
    search_missed: bool = True
    """Where the baseline's confident pixels cover less than ``min_seed_share``, look for the object's
    motion by matching the object itself (:func:`~semflow.layers.things.motion.searched_motion`); one
    found is tried as the object layer's motion, refined and judged photometrically like any other."""
    search_radius: int = 40
    """...over whole-pixel shifts within this many px of the surroundings' motion..."""
    search_ncc: float = 0.9
    """...taking the best when its zero-mean normalised correlation is at least this..."""
    search_margin: float = 0.2
    """...beats the correlation at the baseline's own flow on the object by this..."""
    search_unique: float = 0.05
    """...and the best more than 3 px from it by this (0.85 and no uniqueness test took one look-alike
    for a pedestrian hidden in frame t+1 on the photo scenes they were chosen on, seeds 7000+)..."""
    search_contrast: float = 4.0
    """...on objects whose gray levels (0-255) vary by at least this (a standard deviation)."""
    search_tile: int = 24
    """Where no one translation matches the object (touching things of its class that move otherwise),
    its tiles of this side (px) are searched the same way; the translations found, with the
    surroundings', are the motion split's first hypotheses (0: whole objects only)..."""
    search_tile_votes: int = 2
    """...each translation found by at least this many tiles (within 2 px). With one vote, one tile of
    KITTI's car (which moves 136 px, beyond the search) matched a look-alike and its model was taken
    (EPE 7.2 -> 17.9 without ``hidden_behind``). Photo scenes, semantic on dis-medium, things EPE:
    3.25 -> 1.94 px (development), 1.76 -> 1.42 (held-out); on discrete (which misses fewer things)
    unchanged (one vote: 2.39 -> 2.25 on a third group)."""
    hidden_behind: bool = True
    """Pixels of the thing's region that no layer explains (5x5 mean error at least ``hidden_error``
    under the object's motion and the background's) and that the background's motion, not the
    object's, carries under the object in frame t+1 are background hidden behind it (a parked car that
    the passing one covers, inside the same thing region): they take the background layer's affine
    motion, as occluded (:func:`~semflow.layers.things.assignment.hidden_behind`). Photo scenes,
    semantic on discrete: things EPE -11 % (development), -4.5 % (held-out)..."""
    hidden_error: float = 15.0
    hidden_reach: float = 40.0
    """...where the object's and the background's motions differ by at most this (px; KITTI's car moving
    136 px, which none of its fitted motions matched, lost pixels to the background 55 px away)."""
    max_object_motions: int = 3
    """A thing mask may cover touching objects: up to this many affine motions are fitted inside it..."""
    min_motion_share: float = 0.1
    """...each explaining at least this share of the mask's usable pixels."""
    agreement_weight: float = 3.0
    """Cost (grey levels per px, up to residual_cap) of a motion's disagreement with the baseline."""
    occlusion_aware: bool = True
    """With several object motions, pixels that a motion in front covers in frame t+1 keep no photometric
    evidence against their own motion: their error under it is capped at ``occluded_cost``."""
    occluded_cost: float = 6.0
    boundary_margin: int = 3
    """Pixels this close to the mask boundary are not used to fit either layer's motion."""
    residual_cap: float = 3.0
    """Baseline deviations from the affine motion larger than this (px) are outliers, not residual."""
    residual_deadzone: float = 0.25
    """Baseline deviations are shrunk by this much (px) before they feed the residual."""
    photometric_refinement: bool = True
    """Refine each RANSAC affine motion by robust Gauss-Newton on brightness constancy over its pixels."""
    refine_points: int = 4000
    """The photometric refinement uses at most this many pixels (an affine motion has 6 parameters)."""
    covered_clearance: int = 2
    """A motion instance of a split is refined only on its pixels at least this many px from those a
    motion in front covers in frame t+1: the visible rows next to the occluding edge, where the two
    things' colours meet in frame t+1, pulled a far car's affine to a 20 % vertical squash (hard scene
    2; 0 refines on every uncovered pixel, as before 2026-12-03's third session)."""
    motion_margin: int = 0
    """...and at least this many px inside its own part of the region (away from the other motions'
    pixels and the region's edge) when that leaves ``min_points``: on the smoothed frames the edge
    pixels mix in the neighbour's colours, which moved otherwise (0: up to the edge; 3 on ``discrete``,
    :data:`POLISH_MARGIN`)."""
    explained_error: float = 4.0
    """An instance whose padded box the baseline already explains, i.e. whose 99th percentile of the
    baseline's 7x7-mean photometric error is below this (grey levels), keeps the baseline without a
    fit: no model could be shown clearly better there."""
    residual_smoothness: float = 30.0
    """Weight of the residual's smoothness term relative to one pixel of data."""
    residual_grid: int = 4
    """The residual is solved on a grid this many times coarser than the image..."""
    residual_cells: int = 2500
    """...or coarser still in large boxes, so that the grid has at most about this many cells."""
    context_preference: float = 0.05
    """The surrounding models are the background layer unless the local affine explains this much more."""
    refine_band: float = 0.12
    """Half-width of the band where the assignment may change, as a fraction of the instance size..."""
    min_band: int = 3
    max_band: int = 12
    colour_weight: float = 4.0
    """Cost (grey levels) per nat of colour log-likelihood ratio."""
    prior_weight: float = 12.0
    """Cost (grey levels) of assigning a pixel against the mask at the band's edge."""
    filter_radius: int = 4
    filter_eps: float = 0.01
    change_threshold: float = 0.5
    """The model is judged on the visible pixels where it moves the flow by more than this (px)."""
    error_slack: float = 0.0
    """The model is used when its per-pixel photometric error, minus the baseline's, has a median no
    higher than this (grey levels) over the pixels it is judged on..."""
    unexplained_error: float = 12.0
    """...and, where its median error there is this high or higher (most of those pixels unexplained
    by it: hidden in frame t+1, or the model is wrong), lower than the baseline's median: a tie among
    pixels that neither flow explains is no evidence for the model
    (:func:`~semflow.layers.things.judgement.judge_model`). Hard scene 4 of BENCHMARKS.md section
    things: one affine for two touching cars 5 px apart, both medians at the cap (40), things EPE 0.093
    with discrete, 0.182 when the model was used. 0: no such rule (before 2026-12-02's seventh session)."""
    unsmoothed: bool = True
    """Those errors, and the object/background assignment's photometric costs, on the frames as given;
    False: on the lightly smoothed frames the motions are fitted on
    (:func:`~semflow.layers.common.prepare_image`; before 2026-12-02's sixth session)."""
    veto: VetoParams = THING_VETO
    """Where inside an accepted model's box the baseline stays (:func:`~semflow.layers.veto.baseline_veto`)."""
    motion_split: bool = True
    """Motion instances (:mod:`semflow.layers.things.instances`): where the sequential RANSAC's motions
    leave part of the object unexplained, the object layer's motions come from
    :mod:`semflow.layers.motions` instead (own patch matches + the baseline's, multi-model fitting with
    a label cost, graph-cut assignment, occlusion between the motions); off: sequential RANSAC only."""
    split_error: float = 12.0
    """The split runs when more than ``split_share`` of the object has a photometric error above this
    under the sequential RANSAC's motions (or when they found none)."""
    split_share: float = 0.05
    compromise_ratio: float = 0.6
    """The split is also tried when the object's sequential-RANSAC motion looks like a compromise: several
    motions fitted to the baseline's confident flow on the object leave at most this share of its
    deviation from that flow (:func:`~semflow.layers.things.instances.compromise`)..."""
    retry_tolerance: float = 0.1
    """...and it replaces that motion when its flow stays within this much (px, mean over the confident
    object pixels) of the first motion's agreement with the baseline's confident flow, the judgement
    accepts it and it explains the pixels it changes no worse than the first model (median error)."""
    motions: MotionParams = MotionParams()
    """Settings of the motion split itself (:class:`~semflow.fitting.motion_fit.MotionParams`)."""
    reassign: bool = True
    """Once the split's motions are refined, the pixels near their boundaries choose again among the
    refined flows, by colour on the frames as given (:func:`~semflow.layers.motions.reassign_motions`).
    False: the labels stay those of the unrefined motions (before 2026-12-02's sixth session)."""
    processes: int = 2
    """Processes that share the instances' fits (:func:`semflow.forked.map_forked`: forks of this one,
    Linux only); the fits are the same with any number. 1: all in this process."""
    parallel_pixels: int = 50_000
    """The fits are shared only when the instances hold at least this many pixels together: below, a
    fork (25-40 ms for a process that holds the segmenter) costs about what the second core saves."""

    def __post_init__(self) -> None:
        # numpy's seed sequences take non-negative integers only; say so here, not at the first fit.
        _check_integer("seed", self.seed, 0, "a non-negative integer")
        _check_integer("processes", self.processes, 1, "an integer of at least 1")
        _check_integer("covered_clearance", self.covered_clearance, 0, "a non-negative integer (px)")
        _check_integer("motion_margin", self.motion_margin, 0, "a non-negative integer (px)")


def _check_integer(name: str, value: object, least: int, what: str) -> None:
    """ValueError unless ``value`` is an integer (not a bool) of at least ``least``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ValueError(f"ThingParams.{name} must be {what}, not {value!r}")


SPLIT_INLIER = {"discrete": 1.0}
"""The motion split's inlier distance (``MotionParams.inlier``, px) on baselines whose flow inside
things is exact enough to tell apart two touching things that move 1-1.5 px apart (two pedestrians
side by side): on ``discrete`` (inside-band EPE 0.07 px on the hard scenes) 1.0. Others keep 1.5:
DIS's flow inside things is off by 2 px and more, and at 1.0 the strip of a car behind parked ones
lost its motion (hard scene 2). Matches of parts matched again keep a wider distance
(``MotionParams.rematch_inlier``). Side by side: rows ``inlier 1.5`` of BENCHMARKS.md sections things
and photo-scenes."""
POLISH_MARGIN = {"discrete": 3}
"""``ThingParams.motion_margin`` (px) on baselines whose split motions are close enough that only the
seam pixels pull their polish off: on ``discrete`` a narrow pedestrian's motion, polished up to its
seam with the pedestrian beside it (moving 1.5 px apart), stayed 0.5 px off; 3 px inside its own
pixels the polish finds it (hard scenes' things EPE 0.086 -> 0.055, photo scenes 0.779 -> 0.772).
On ``dis-medium`` the motions start further off and the polish needs every pixel: 3 px cost 1.3-2.4 %
(hard 0.574 -> 0.588, photo 2.066 -> 2.095, fresh 2.517 -> 2.550). Side by side: rows ``no margin``
of BENCHMARKS.md sections things and photo-scenes."""
HIDDEN_COST = {"discrete": 100.0}
"""The occlusion-aware rematch of unexplained parts (``MotionParams.rematch_hidden_cost``,
:mod:`semflow.layers.part_match`) on baselines that find the things that few matches see: ``discrete``
with its search for missed motions (its default). It marks the frame-t+1 pixels where pixels that a
found motion explains, in agreement with the baseline, land; where the baseline missed a thing, the
motions that agree with it there are wrong and mark the wrong pixels (hard scene 2's far car, which
only that search finds: things EPE 0.39 -> 2.5 px on ``discrete`` without it, 0.71 -> 2.5 on
``dis-medium``). Side by side: rows ``no occl`` of sections things and photo-scenes; section sharpen
has ``discrete`` without the search."""


def thing_params_for(baseline: str | FlowMethod) -> ThingParams:
    """The thing layer's default settings on ``baseline``: a flow method, or the name of one (taken
    with its default settings)."""
    name = baseline if isinstance(baseline, str) else baseline.name
    preset = None if isinstance(baseline, str) else getattr(baseline, "params", None)
    changes: dict[str, float] = {}
    if name in SPLIT_INLIER:
        changes["inlier"] = SPLIT_INLIER[name]
    if name in HIDDEN_COST and getattr(preset, "missed_motions", True):
        changes["rematch_hidden_cost"] = HIDDEN_COST[name]
    params = ThingParams(motion_margin=POLISH_MARGIN.get(name, 0))
    return replace(params, motions=replace(params.motions, **changes)) if changes else params


@dataclass(frozen=True, kw_only=True)
class ThingFit:
    """The two-layer model of one thing instance, over its padded box (h, w) = (box.height, box.width).

    ``region``: the instance (its ``id`` is its value in the instance map); ``box``: the padded box the
    model lives in. ``fg_affine``/``bg_affine`` (2, 3) map full-image frame-1 pixels to frame 2 (None
    when a layer had too few usable pixels: the background layer then falls back to the baseline, and
    the model is not accepted without an object layer; ``bg_affine`` is also None when the background
    layer is the plane flow around the object). ``foreground`` (h, w) bool is the refined object mask;
    ``occluded`` (h, w) bool marks background pixels covered by the object in frame t+1; ``others``
    (h, w) bool: pixels of other things inside the box (the model leaves them alone).
    ``fg_flow``/``bg_flow``/``flow`` (h, w, 2) are the layer flows and their composition (with several
    object motions, ``fg_flow`` follows the first one away from the mask, beyond the assignment's
    reach); a rejected fit holds the baseline there. Errors are medians over the judged pixels (grey
    levels); ``error`` (h, w) is the per-pixel photometric error of ``flow`` and ``veto`` (h, w) bool
    the pixels where the baseline stays (:mod:`semflow.layers.veto`), both set on accepted fits.
    """

    region: Region
    box: Box
    accepted: bool
    reason: str
    """Why the model is used or not (for reports)."""
    foreground: np.ndarray
    occluded: np.ndarray
    others: np.ndarray
    fg_flow: np.ndarray
    bg_flow: np.ndarray
    flow: np.ndarray
    fg_affine: np.ndarray | None = None
    bg_affine: np.ndarray | None = None
    fg_inlier_share: float = 0.0
    bg_inlier_share: float = 0.0
    model_error: float = float("nan")
    baseline_error: float = float("nan")
    excess_error: float = float("nan")
    """The median over the judged pixels of the model's photometric error minus the baseline's (grey
    levels; what the judgement compares with ``error_slack``), NaN where no judgement was reached."""
    error: np.ndarray | None = None
    veto: np.ndarray | None = None
    motions: list[dict] = field(default_factory=list)
    """The object's motion instances (with ``motion_split``), back to front: per instance its index
    ``motion`` (into ``motion_labels``), its flow at the object's centre (px), its affine map and its
    pixels in the object layer."""
    motion_labels: np.ndarray | None = None
    """(h, w) int32: each object pixel's motion instance, -1 off the object (with ``motion_split``)."""
    fg_affines: list[np.ndarray] = field(default_factory=list)
    """The object layer's motions (2, 3) each, by motion index (``fg_affine`` is the first); set on
    accepted fits."""

    @property
    def instance_id(self) -> int:
        """The instance's value in the instance map (``region.id``)."""
        return self.region.id
