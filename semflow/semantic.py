"""Semantic flow (method ``semantic``): a baseline flow, a segmentation, a motion model per region kind.

After Sevilla-Lara, Sun, Jampani and Black, "Optical Flow with Semantic Segmentation and Localized
Layers" (CVPR 2016): things get a local two-layer model (:mod:`semflow.layers.things`), planes a
homography (:mod:`semflow.layers.planes`), stuff keeps the baseline; :mod:`semflow.compose` fuses them.
Every model is kept only where the evidence (inlier share, photometric error) supports it, so on
scenes without things or planes the result is the baseline. Where the models changed it, the fused flow
gets the baseline's last step again (discrete's ring refit, ``ring_width``: :meth:`SemanticFlow.ring_width_for`).

The segmentation of frame 1 comes from, in this order: ``labels`` given to :meth:`estimate`; the
``segmentation`` given to the constructor (an array, a label PNG, or a folder of ``NNNNNN.png``
holding one label map per video frame, read in call order); the segmenter (``camvid`` by default).
Label maps hold class ids of a label set (CamVid by default); a class -> kind table can be overridden.

``FlowResult.extras`` of a semantic result (all (H, W) unless said):
``labels`` uint8 class ids, ``segmentation_rgb`` (H, W, 3) uint8, ``kinds`` uint8 (KIND_CODES),
``instances`` int32 (0 none, k thing instance k), ``plane_regions`` uint8 (1 in a plane region large
enough for a homography, ``PlaneParams.min_area``, kept or not: a plane pixel with 0 keeps the baseline),
``model_map`` uint8 (compose.MODEL_LEGEND),
``motion_ids`` uint16 (the motion instance of each thing pixel: 1, 2... over the accepted things' motions,
the ``id`` of each entry of ``report_json``'s ``things[].motion_instances`` (``explain.json``'s); 0 none),
``occlusion`` uint8 (1 = background covered by a thing in frame t+1), ``baseline_flow`` (H, W, 2)
(with ``--sharpen`` also ``baseline_unsharpened_flow``, the baseline before that step),
``layer_plane`` / ``layer_object`` / ``layer_background`` (H, W, 2) float32, NaN outside the layer,
``report_json`` a 0-d string array: per-region decisions and timings.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from semflow.baseline.base import FlowMethod, FlowResult, rewound_on_error
from semflow.baseline.discrete.rings import refit_rings
from semflow.compose import compose, compose_planes, weigh_planes
from semflow.errors import InputError
from semflow.layers.context import PairContext
from semflow.layers.planes import PlaneFit, PlaneParams, fit_planes
from semflow.layers.thing_tracks import fit_tracked_things
from semflow.layers.things import ThingFit, ThingParams, fit_things, thing_params_for
from semflow.layers.tracking import Track, Tracks, advance_tracks, gate_planes
from semflow.options import SharpenOptions, option
from semflow.segmentation import KIND_CODES as KIND_CODES  # re-exported: the codes of extras["kinds"]
from semflow.segmentation import LabelSet, Region, extract_instances, find_regions, get_label_set
from semflow.segmentation.labels import check_labels
from semflow.segmentation.temporal import carry_belief, fuse_with_prior, fusion_size
from semflow.semantic_explain import write_semantic_explain  # (re-exported: explain files of a result)
from semflow.semantic_report import number_motion_instances, pair_extras, pair_report
from semflow.timing import StageTimer
from semflow.video_state import VideoState

DEFAULT_BASELINE = "discrete"
DEFAULT_SEGMENTER = "camvid"


# --- the method ---------------------------------------------------------------------------------


def _digest(image: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(image).data, digest_size=16).hexdigest() + str(image.shape)


@dataclass(frozen=True)
class SemanticOptions(SharpenOptions):
    """Options of ``semantic``: what it is made of (baseline, segmenter or given masks, CLIP prior) and
    how regions are treated. :func:`semflow.methods.get_method` builds the parts from these."""

    baseline: str | FlowMethod = option(DEFAULT_BASELINE, "The baseline flow method (any other method).")
    baseline_flows: str | os.PathLike | None = option(
        None, "The baseline's flows computed already, instead of a baseline method: a folder of NNNNNN.flo "
        "(.png, .npy) for the pair that starts at frame NNNNNN, as run --save-flo writes them.", path="path")
    sharpen: bool | None = option(None, "Sharpen the baseline's motion boundaries (True or False; None: as "
                                  "the baseline does by default: discrete does, the OpenCV methods do not).")
    segmenter: Any = option(DEFAULT_SEGMENTER, "Segmentation backend: camvid, camvid:PATH, "
                            "torchvision:PATH, masks:PATH (or a Segmenter from Python).", path="prefixed")
    segmentation: str | os.PathLike | np.ndarray | None = option(
        None, "Given masks instead of a segmenter: a label PNG, or a folder of NNNNNN.png.", path="path")
    label_set: str | LabelSet = option("camvid", "Label set of given masks (--segmentation, masks:PATH) or of "
                                       "torchvision:PATH (camvid, voc, a .json).", path="file")
    kinds: str | dict | None = option(None, "Override the class -> kind table, e.g. 'Tree:plane,Car:thing'.")
    prior: str = option("none", "Prior fused with the segmentation per region: clip = zero-shot CLIP "
                        "labels (needs pip install 'semflow[clip]' and --clip-weights).", choices=("none", "clip"))
    clip_model: str = option("ViT-B-32", "open_clip architecture of the checkpoint (ViT-B-32, "
                             "ViT-B-16, ViT-L-14, RN50, a -quickgelu variant...).", path="file")
    clip_weights: str | None = option(None, "CLIP checkpoint file you downloaded (OpenAI .pt or "
                                      "OpenCLIP .bin/.pt/.safetensors); never downloaded by semflow, and "
                                      "read as tensors only: no code in it is run.", path="path")
    prior_classes: str | None = option(None, "Classes CLIP chooses from, 'name:kind,...' (kind: thing, "
                                       "plane, stuff) or a file of them (default: common ones).", path="file")
    prior_weight: float = option(0.5, "Weight w of CLIP in the per-region fusion: (1 - w) * backbone + "
                                 "(w + (1 - w) * v) * CLIP, v the backbone's void share there; w from 0 to 1.")
    planes: PlaneParams | None = option(None, "Parameters of the plane layer.", cli=False)
    things: ThingParams | None = option(None, "Parameters of the thing layer.", cli=False)
    feather_radius: float = option(4.0, "Width of the blended seams between models, px.", cli=False)
    ring_width: int | None = option(None, "Ring refit of the fused flow, px (0: off; None: the baseline's).", cli=False)


@dataclass(frozen=True)
class _PairRegions:
    """Frame 1's segmentation as the layer models take it, and the pair as they see it: ``labels`` (H, W)
    uint8 class ids; ``instance_map`` (H, W) int32 (0 none, k: ``instances[k - 1]``), ``instances`` the
    thing instances; ``thing_pixels`` (H, W) bool, a thing's class or instance; ``plane_regions`` the plane
    classes' regions (boxes with a margin for the seams); ``ctx`` the pair."""

    labels: np.ndarray
    instance_map: np.ndarray
    instances: list[Region]
    thing_pixels: np.ndarray
    plane_regions: list[Region]
    ctx: PairContext


@dataclass
class _VideoMemory:
    """Video mode's memory through one pair: ``tracks``, the last pair's (None: none leads here) until
    :meth:`SemanticFlow._track` puts the next pair's there; ``belief`` (h, w, C), frame 1's segmentation's
    (None: the labels are not filtered); the track each plane and thing continues, set as they are fitted."""

    tracks: Tracks | None
    belief: np.ndarray | None = None
    plane_tracks: list[Track | None] = field(default_factory=list)
    thing_tracks: list[Track | None] = field(default_factory=list)

    def continued(self, regions: list[Region], kind: str, shape: tuple[int, int]) -> list[Track | None]:
        """The track of ``kind`` each region continues (None: a new one; all None without tracks), as a copy:
        what the pair sets on it (the plane gate's candidate, ``pending``) goes to the next state, not into
        the state the pair was handed (computed again with that state, the pair gives the same flow)."""
        if not self.tracks:
            return [None] * len(regions)
        return [None if track is None else replace(track) for track in self.tracks.match(regions, kind, shape)]


class SemanticFlow(FlowMethod):
    """Semantic flow: ``baseline`` flow + segmentation + per-kind layer models, fused by the composer.

    The parts come built (:func:`semflow.methods.get_method` builds them from :class:`SemanticOptions`):
    ``baseline``: a FlowMethod. ``segmenter``: a Segmenter, or a function that builds one on first use
    (only when a segmentation is needed), or None when masks are always given. ``segmentation``: given
    masks, a label map array, a label PNG, or a folder of ``NNNNNN.png`` (one per video frame, taken in
    call order; see :meth:`seek`). ``label_set`` (name or JSON file) says what the ids of given masks
    mean; ``kinds`` overrides the class -> kind table (``"Tree:plane,Car:thing"`` or a dict).
    """

    name = "semantic"
    uses_labels = True

    def __init__(self, baseline: FlowMethod, segmenter: Any = None, *,
                 segmentation: str | os.PathLike | np.ndarray | None = None, label_set: str | LabelSet = "camvid",
                 kinds: str | Mapping[str, str] | None = None,
                 planes: PlaneParams | None = None, things: ThingParams | None = None,
                 feather_radius: float = 4.0, ring_width: int | None = None, cache_size: int = 4) -> None:
        if not isinstance(baseline, FlowMethod):
            raise InputError(f"the baseline of 'semantic' must be a built flow method, not {baseline!r}"
                             " (get_method('semantic', baseline=NAME) builds it from a name)")
        if isinstance(baseline, SemanticFlow):
            raise InputError("the baseline of 'semantic' cannot be 'semantic'")
        self.baseline = baseline
        self._segmenter: Any = None if callable(segmenter) and not hasattr(segmenter, "predict") else segmenter
        self._build_segmenter = segmenter if self._segmenter is None else None
        self.kinds = kinds or None
        own = getattr(self._segmenter, "label_set", None)
        if isinstance(own, LabelSet):
            own.with_kinds(self.kinds)  # a built segmenter's classes: checked now
        self.label_set = get_label_set(label_set)
        self._kinds_error: str | None = None
        try:
            self.label_set = self.label_set.with_kinds(self.kinds)
        except InputError as exc:
            # The table names the classes the segmentation comes in: a segmenter's (VOC's for a torchvision
            # model) need not be --label-set's, which only given masks and labels are in.
            if segmentation is not None or segmenter is None:
                raise
            self._kinds_error = str(exc)  # (raised where labels in this set are given)
        self.given_array: np.ndarray | None = None
        self.given_masks: Any = None
        if isinstance(segmentation, np.ndarray):
            self.given_array = segmentation
        elif segmentation is not None:
            from semflow.segmentation.backends import MaskSegmenter
            self.given_masks = MaskSegmenter(segmentation, label_set=self.label_set)
        self.plane_params = planes or PlaneParams()
        self.thing_params = things or thing_params_for(baseline)
        self.feather_radius, self.ring_width = feather_radius, ring_width
        self._cache: OrderedDict[str, tuple[np.ndarray, LabelSet]] = OrderedDict()
        self._cache_size = cache_size
        self._frame_index = 0
        self.last_timings: dict[str, float] = {}

    def __repr__(self) -> str:
        segmenter = self._segmenter or self._build_segmenter
        return f"SemanticFlow(baseline={self.baseline.name!r}, segmenter={segmenter!r})"

    def seek(self, frame_index: int) -> None:
        """Say which video frame the next pair starts at (given masks or flows); without it pairs count from 0,
        one per call that succeeds (a failed call reads none). A second video (or pass) starts with seek(0)."""
        self._frame_index = int(frame_index)
        if hasattr(self.baseline, "seek"):
            self.baseline.seek(frame_index)

    # segmentation --------------------------------------------------------------------------------

    def segmenter(self) -> Any:
        """The segmenter, built on first use."""
        if self._segmenter is None:
            if self._build_segmenter is None:
                raise InputError("'semantic' has no segmenter here: give labels or --segmentation masks")
            self._segmenter = self._build_segmenter()
        return self._segmenter

    def segmenter_spec(self) -> Any:
        """What names the segmenter, without building it (the memory check counts its needs): the
        ``segmenter`` option it was built from (``torchvision:PATH``...), else the built one; None for none."""
        spec = getattr(self.options, "segmenter", None)
        return self._segmenter if spec is None else spec

    def tile_label_set(self) -> LabelSet:
        """The label set the segmentation (``extras["segmentation_rgb"]``, the panel's tile) is coloured in,
        for its key: the given masks' (``label_set``), else the segmenter's (VOC for ``torchvision:PATH``;
        ``<set>+clip`` with the classes a CLIP prior adds), building the segmenter if need be."""
        if self.given_array is not None or self.given_masks is not None or (
                self._segmenter is None and self._build_segmenter is None):
            return self.label_set
        own = getattr(self.segmenter(), "label_set", None)
        return own.with_kinds(self.kinds) if isinstance(own, LabelSet) else self.label_set

    def reads_masks(self) -> bool:
        """Whether the segmenter reads given masks (``masks:PATH``, behind a CLIP prior or not), building
        it if need be: like ``segmentation``'s, they are read by frame index and never filtered over time."""
        from semflow.segmentation.masks import MaskSegmenter

        segmenter = self.segmenter()
        return isinstance(getattr(segmenter, "segmenter", segmenter), MaskSegmenter)

    def segment(self, image: np.ndarray) -> tuple[np.ndarray, LabelSet]:
        """Labels (H, W) uint8 and label set of ``image`` from the segmenter, cached by frame content
        (in a video, frame t+1 of one pair is frame t of the next) and, for given masks (``masks:PATH``),
        by frame index (:meth:`seek`) too."""
        segmenter = self.segmenter()
        index = self._frame_index if self.reads_masks() else None
        key = _digest(image) + ("" if index is None else f"#{index}")
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        if index is not None:
            raw, label_set = segmenter.predict_labels(image, key=index)
        elif hasattr(type(segmenter), "predict_labels"):  # only the labels are needed here
            raw, label_set = segmenter.predict_labels(image)
        else:
            seg = segmenter.predict(image)
            raw, label_set = seg.labels, seg.label_set
        label_set = label_set.with_kinds(self.kinds)
        labels = check_labels(raw, label_set, image.shape[:2], source="segmenter output")
        self._cache[key] = (labels, label_set)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return labels, label_set

    def labels_of(self, image: np.ndarray, labels: np.ndarray | None = None) -> tuple[np.ndarray, LabelSet]:
        """The segmentation of frame 1 = ``image``: given labels, given masks, or the segmenter's."""
        if labels is not None:
            if self._kinds_error is not None:
                raise InputError(self._kinds_error)
            return check_labels(labels, self.label_set, image.shape[:2], source="given labels"), self.label_set
        if self.given_array is not None:
            return check_labels(self.given_array, self.label_set, image.shape[:2]), self.label_set
        if self.given_masks is not None:
            seg = self.given_masks.predict(image, key=self._frame_index)
            return seg.labels, self.label_set
        return self.segment(image)

    def fused_labels(self, image: np.ndarray, prior: np.ndarray | None
                     ) -> tuple[np.ndarray, LabelSet, np.ndarray]:
        """Video mode: the segmenter's labels of ``image`` filtered over time
        (:func:`~semflow.segmentation.temporal.fuse_with_prior`; ``prior``: the last frame's belief
        carried to this one, or None), their label set, and this frame's belief (h, w, C)."""
        segmenter = self.segmenter()
        raw, probs, label_set = segmenter.predict_small_probs(image, fusion_size(*image.shape[:2]))
        label_set = label_set.with_kinds(self.kinds)
        labels = check_labels(raw, label_set, image.shape[:2], source="segmenter output")
        labels, belief = fuse_with_prior(labels, probs, None if prior is None else prior.astype(np.float32))
        return labels, label_set, belief

    def kind_map(self, image: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        """Region kinds (H, W) uint8 (KIND_CODES) of ``image``, as this method sees them."""
        labels, label_set = self.labels_of(image, labels)
        return label_set.kind_map(labels)

    # flow ----------------------------------------------------------------------------------------

    def state_parts(self) -> dict[str, type]:
        return {**self.baseline.state_parts(), self.name: Tracks}

    def _estimate(self, img1: np.ndarray, img2: np.ndarray, labels: np.ndarray | None = None) -> FlowResult:
        with rewound_on_error(self.baseline):  # a call that fails reads no pair of a folder of flows
            return self._pair(img1, img2, labels)

    def _estimate_video(self, img1: np.ndarray, img2: np.ndarray, state: VideoState,
                        labels: np.ndarray | None = None) -> FlowResult:
        """Video mode: the baseline runs in video mode too; the segmenter's class probabilities are
        filtered along the flow (:func:`~semflow.segmentation.temporal.fuse_with_prior`, given masks
        stay as given), and the planes and things are tracked (:mod:`semflow.layers.tracking`): ids
        across frames, carried and smoothed plane models, gates with hysteresis."""
        with rewound_on_error(self.baseline):
            return self._pair(img1, img2, labels, state)

    def _pair(self, img1: np.ndarray, img2: np.ndarray, labels: np.ndarray | None = None,
              state: VideoState | None = None) -> FlowResult:
        """The flow of one pair, stage by stage (each stage's seconds in ``last_timings`` and the report);
        ``state`` given: video mode (the tracks and the segmentation's belief go on to the next pair)."""
        timer = StageTimer()
        video = None if state is None else _VideoMemory(None if state.cut else state.part(self.name, img1))
        # The labels first: bad ones fail before the baseline has read a given flow.
        labels, table = self._segmentation(img1, labels, video)
        timer.lap("segmentation")
        base = self.baseline.estimate(img1, img2, state=state)
        timer.lap("baseline")
        regions = self._regions(img1, img2, base, labels, table)
        timer.lap("regions")
        planes = self._planes(regions, video)
        timer.lap("planes")
        # The planes' blend weights, shared by the things (the plane flow they see) and the composer.
        weights = weigh_planes(planes, regions.thing_pixels, self.feather_radius)
        things = self._things(regions, planes, weights, video)
        timer.lap("things")
        comp = compose(regions.ctx, planes, things, feather_radius=self.feather_radius, plane_weights=weights)
        timer.lap("compose")
        flow, width = comp.flow, self.ring_width_for(video=state is not None)
        if width > 0 and not np.array_equal(comp.flow, base.flow):  # (no model kept: the baseline's, ringed)
            flow = refit_rings(img1, img2, comp.flow, width=width,  # (superpixels of img1: the baseline's, if it has them)
                               labels=getattr(self.baseline, "superpixels_of", lambda _: None)(img1))
            timer.lap("rings")
        track_ids = None
        if video is not None:
            track_ids = self._track(video, regions, planes, things, comp.flow, img1, img2)
            timer.lap("tracking")

        motion_ids = number_motion_instances(things, base.flow.shape[:2])
        report = pair_report(self.baseline, table, planes, things, timer.seconds, track_ids)
        self.last_timings = timer.seconds
        extras = pair_extras(labels, table, regions.instance_map, planes, comp, motion_ids, base, report)
        result = FlowResult(flow, comp.confidence, extras)
        if video is not None:
            result.state = VideoState(pairs=base.state.pairs, frame=img2, flow=comp.flow,
                                      parts={**base.state.parts, self.name: video.tracks})
        self._frame_index += 1  # only now: a call that raises counts no frame
        return result

    def ring_width_for(self, *, video: bool) -> int:
        """The ring step's width (px) on the fused flow: ``ring_width``, or if None the baseline's own (0: none)."""
        own = getattr(self.baseline, "ring_width_for", lambda **_: 0)(video=video)  # (discrete's; 0: others)
        return own if self.ring_width is None else self.ring_width

    def _segmentation(self, img1: np.ndarray, labels: np.ndarray | None, video: _VideoMemory | None
                      ) -> tuple[np.ndarray, LabelSet]:
        """The labels (H, W) uint8 of frame 1 and their label set (:meth:`labels_of`); in video mode the
        segmenter's are filtered over time (:meth:`fused_labels`; the belief goes to ``video.belief``)."""
        if video is not None and labels is None and self.given_array is None and self.given_masks is None \
                and not self.reads_masks():
            prior = video.tracks.prior if video.tracks is not None else None
            labels, table, video.belief = self.fused_labels(img1, prior)
            return labels, table
        return self.labels_of(img1, labels)

    def _regions(self, img1: np.ndarray, img2: np.ndarray, base: FlowResult, labels: np.ndarray,
                 table: LabelSet) -> _PairRegions:
        """The thing instances and plane regions of ``labels``, and the pair as the models see it."""
        instance_map, instances = extract_instances(labels, table.ids_of("thing"),
                                                    min_area=self.thing_params.min_area)
        thing_pixels = np.isin(labels, table.ids_of("thing")) | (instance_map > 0)
        plane_regions = find_regions(labels, table.ids_of("plane"), min_area=self.plane_params.min_area,
                                     margin=int(2 * self.feather_radius))
        ctx = PairContext.build(img1, img2, base.flow, base.confidence, thing_pixels=thing_pixels)
        return _PairRegions(labels, instance_map, instances, thing_pixels, plane_regions, ctx)

    def _planes(self, regions: _PairRegions, video: _VideoMemory | None) -> list[PlaneFit]:
        """A homography per plane region, each judged on the evidence; in video mode with the memory of
        the track it continues (:func:`~semflow.layers.tracking.gate_planes`)."""
        planes = fit_planes(regions.plane_regions, regions.ctx, self.plane_params)
        if video is None:
            return planes
        video.plane_tracks = video.continued([p.region for p in planes], "plane", regions.labels.shape)
        return gate_planes(planes, video.plane_tracks, regions.ctx, self.plane_params)

    def _things(self, regions: _PairRegions, planes: list[PlaneFit], weights: list[np.ndarray | None],
                video: _VideoMemory | None) -> list[ThingFit]:
        """The two-layer model (object, background) of each thing instance; in video mode with the memory
        of the track it continues (:func:`~semflow.layers.thing_tracks.fit_tracked_things`)."""
        # The accepted planes over the baseline: a candidate for each thing's background layer.
        plane_flow = compose_planes(regions.ctx, planes, feather_radius=self.feather_radius, weights=weights)
        if video is None:
            return fit_things(regions.instances, regions.instance_map, regions.ctx, self.thing_params,
                              plane_flow=plane_flow)
        video.thing_tracks = video.continued(regions.instances, "thing", regions.labels.shape)
        return fit_tracked_things(regions.instances, regions.instance_map, regions.ctx, self.thing_params,
                                  video.thing_tracks, plane_flow=plane_flow)

    def _track(self, video: _VideoMemory, regions: _PairRegions, planes: list[PlaneFit],
               things: list[ThingFit], flow: np.ndarray, img1: np.ndarray, img2: np.ndarray
               ) -> tuple[list[int], list[int]]:
        """Video mode: the tracks carried to frame t+1 along ``flow`` become ``video.tracks`` (the memory of
        the next pair); returns the track ids of this pair's planes and of its things (by instance)."""
        tracks, plane_ids, thing_ids = advance_tracks(video.tracks, planes, video.plane_tracks,
                                                      regions.instances, video.thing_tracks, things, flow)
        if video.belief is not None:  # the segmentation's belief, carried to frame t+1 along this flow
            tracks.prior = carry_belief(video.belief, img1, img2, flow).astype(np.float16)
        video.tracks = tracks
        return plane_ids, thing_ids

    def write_explain(self, result: FlowResult, out_dir: str | os.PathLike) -> None:
        """:func:`~semflow.semantic_explain.write_semantic_explain`, and the CLIP prior's region decisions of
        frame 1 (``prior.json``, ``prior.txt``)."""
        from semflow.segmentation.clip.segmenter import write_prior_decisions
        write_semantic_explain(result, out_dir)
        write_prior_decisions(self._segmenter, out_dir)
