"""DiscreteFlow-style optical flow (after Menze, Heipke and Geiger, GCPR 2015): a re-implementation.

Stages, each in its own module::

    descriptors  dense SIFT-like descriptors on image pyramids of both frames
    keypoints    (balanced, accurate) SIFT keypoints matched over the whole frame
    proposals    K candidate flows per grid point: coarse-to-fine nearest neighbours in descriptor
                 space inside a search window (``knn``), propagation from neighbours, a coarse DIS flow, and
                 at the finest level the nearby keypoint matches
    crf          discrete CRF over the candidates (truncated matching cost, truncated-L1
                 smoothness), block coordinate descent with exact DP along rows then columns;
                 by default its smooth labelling checks each point's best match (see ``crf_check``)
    consistency  forward-backward check, small-segment removal
    grid_matches the CRF's grid matches kept, refined and interpolated (the steps of ``consistency``,
                 ``densify`` and ``boundary`` in turn), and the confidence map
    densify      sub-pixel refinement of the kept matches, EpicFlow interpolation, variational
                 refinement, (option) a colour-weighted median, a dense confidence map
    boundary     (options) rejected grid points near motion boundaries get a match from the side
                 they fit, then a second interpolation; pixels near them reassigned after refinement
    missed       a thin or half-hidden thing no grid match saw, searched again with colour patches
    rings        (option ``ring_width``, last: after ``--sharpen`` where that is on, see :meth:`DiscreteFlow.finish_flow`)
                 each rigid moving region's affine on the ring just inside its outline
    temporal, temporal_prior   video mode: per-frame work and the last flow carried to the next pair
                 (as candidates, and as a prior where the new matches are sparse)
"""

from __future__ import annotations

import time
from collections.abc import Callable

import cv2
import numpy as np
import torch

from semflow.baseline.base import FlowMethod, FlowResult
from semflow.baseline.discrete import boundary, crf, densify, missed, rings
from semflow.baseline.discrete.descriptors import (
    DESCRIPTORS,
    frame_descriptors,
    gray_pyramid,
    pair_projection,
    shrunk_descriptors,
)
from semflow.baseline.discrete.grid_matches import (
    confidence_map,
    grid_extras,
    grid_positions,
    interpolate_matches,
    kept_matches,
    refined_matches,
)
from semflow.baseline.discrete.keypoints import KeypointMatches, frame_keypoints, match_keypoints
from semflow.baseline.discrete.presets import DEFAULT_PRESET, PRESETS, Preset
from semflow.baseline.discrete.proposals import Proposals, coarse_to_fine_proposals
from semflow.baseline.discrete.temporal import MIN_SIDE, FrameWork, along_itself, temporal_candidates
from semflow.baseline.discrete.temporal_prior import PriorParams, blend_toward_carried
from semflow.device import resolve_device
from semflow.errors import InputError
from semflow.flow_jumps import near_jumps
from semflow.timing import StageTimer
from semflow.video_state import VideoState
from semflow.warp import to_gray

MIN_COARSE_SIDE = 24
"""The coarsest pyramid level keeps at least this many pixels on its shorter side."""


def _pad_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    h, w = image.shape[:2]
    if h >= height and w >= width:
        return image
    return cv2.copyMakeBorder(image, 0, max(0, height - h), 0, max(0, width - w), cv2.BORDER_REFLECT_101)


def _dis_pyramid(gray1: np.ndarray, gray2: np.ndarray, levels: int) -> list[np.ndarray]:
    """A coarse DIS flow (OpenCV's fast preset) at every pyramid level, in that level's pixels."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    flow = dis.calc(gray1, gray2, None)
    out = [flow]
    for _ in range(levels):
        flow = cv2.pyrDown(flow) * 0.5
        out.append(flow)
    return out


def _pyramid_levels(p: Preset, height: int, width: int) -> tuple[int, int]:
    """The pyramid levels below full size for (padded) frames ``height`` x ``width`` px (``p.levels``, fewer
    so that the coarsest keeps ``MIN_COARSE_SIDE`` px on its shorter side) and the finest level matched."""
    levels = p.levels
    while levels > 0 and min(height, width) >> levels < MIN_COARSE_SIDE:
        levels -= 1
    return levels, min(p.finest, levels)


def _scale_tolerant_pairs(pyr1: list, pyr2: list, shrunk: list, shrink: float | None
                          ) -> tuple[list | None, list | None]:
    """Per level, the (query, query scale, target, target scale) descriptor pairs of the scale-tolerant
    costs, forward and backward; None without ``shrunk`` (frame 1's and frame 2's shrunk pyramids)."""
    if not shrunk:
        return None, None
    # A surface that grows from frame 1 to frame 2 matches frame 2 shrunk (as the target of the forward
    # search, the query of the backward one), one that gets smaller matches frame 1 shrunk.
    scaled_f = [[] if a_small is None else [(a, 1.0, b_small, shrink), (a_small, shrink, b, 1.0)]
                for a, b, a_small, b_small in zip(pyr1, pyr2, *shrunk)]
    # The backward search compares the same pairs with query and target swapped.
    scaled_b = [[(t, t_scale, q, q_scale) for q, q_scale, t, t_scale in pairs] for pairs in scaled_f]
    return scaled_f, scaled_b


class DiscreteFlow(FlowMethod):
    """DiscreteFlow-style flow: matched proposals, a discrete CRF, EpicFlow interpolation, refinement.

    Keyword-only options:
      preset: ``"fast"``, ``"balanced"`` (default, for video) or ``"accurate"`` (see ``presets.py``).
      device: where the torch stages run: ``"cpu"``, ``"cuda"`` or ``"auto"``.
      propagation, crf, refine, subpixel: switch stages off (for ablations): candidates from
        neighbours and from DIS; the CRF (off: each point keeps its best match, unchecked); variational
        refinement; sub-pixel refinement of the matches.
      descriptor: ``"sift"`` (the fast SIFT-like default), ``"daisy"`` or ``"kornia-sift"``.
      Any :class:`Preset` field (``k``, ``stride``, ``sweeps``...) overrides the preset.

    ``estimate`` returns a :class:`FlowResult` whose ``confidence`` (H, W) in [0, 1] says how far each
    pixel's flow is backed by consistent matches and fits the images; ``extras`` hold the grid
    matches. ``last_timings`` holds seconds per stage of the last call.
    """

    name = "discrete"

    def __init__(self, *, preset: str = DEFAULT_PRESET, device: str = "cpu", propagation: bool = True,
                 crf: bool = True, refine: bool = True, subpixel: bool = True, descriptor: str = "sift",
                 **overrides) -> None:
        if preset not in PRESETS:
            raise InputError(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}")
        if descriptor not in DESCRIPTORS:
            raise InputError(f"unknown descriptor {descriptor!r}; use one of {', '.join(DESCRIPTORS)}")
        unknown = set(overrides) - set(Preset.__dataclass_fields__)
        if unknown:
            raise InputError(f"method 'discrete' takes no option {sorted(unknown)[0]!r}")
        self.preset_name = preset
        self.params: Preset = PRESETS[preset].with_options(**overrides)
        self.device = resolve_device(device)
        self.propagation = propagation
        self.use_crf = crf
        self.refine = refine
        self.subpixel = subpixel
        self.descriptor = descriptor
        self.last_timings: dict[str, float] = {}
        self._superpixels: rings.PendingSuperpixels | None = None  # (the ring step's, started early)
        self._ring_labels: tuple[np.ndarray, np.ndarray] | None = None  # (frame 1 and its superpixels, last pair)

    def __getstate__(self) -> dict:  # (a thread does not travel to another process; the last frame need not)
        return {**self.__dict__, "_superpixels": None, "_ring_labels": None}

    def __repr__(self) -> str:
        return f"DiscreteFlow(preset={self.preset_name!r}, device={str(self.device)!r})"

    # --- stages -------------------------------------------------------------------------------

    def _grid_flow(self, props: Proposals, level: int, *, check: bool = True
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The flow of each grid point and whether the CRF backs it.

        Returns (flow (Gh, Gw, 2) float32 px, cost (Gh, Gw), agrees (Gh, Gw) bool). With ``crf_check``
        > 0 the flow is each point's best match, and ``agrees`` says whether it lies within
        ``crf_check`` px (each component) of the CRF's choice (with ``check`` off the CRF is not
        solved and every point agrees); with 0 the flow is the CRF's choice.
        """
        p = self.params
        flows = props.flows.float() * (1 << level)
        unary = props.costs.clamp(max=p.unary_trunc)
        labels = unary.argmin(2)
        chosen = crf.select(flows, labels)
        agrees = torch.ones(labels.shape, dtype=torch.bool, device=labels.device)
        if self.use_crf and (check or p.crf_check <= 0):
            smooth = crf.solve_bcd(unary, flows, lam=p.lam, tau=p.tau, sweeps=p.sweeps)
            if p.crf_check > 0:
                agrees = (chosen - crf.select(flows, smooth)).abs().amax(-1) <= p.crf_check
            else:
                labels = smooth
                chosen = crf.select(flows, labels)
        cost = unary.gather(2, labels[..., None])[..., 0]
        return chosen.cpu().numpy().astype(np.float32), cost.cpu().numpy(), agrees.cpu().numpy()

    def _estimate(self, img1: np.ndarray, img2: np.ndarray, *, finish: bool = True) -> FlowResult:
        self._start_superpixels(img1, self.ring_width_for(video=False))
        result = self._run(img1, img2)[0]
        return self.finish_flow(img1, img2, result) if finish else result

    def ring_width_for(self, *, video: bool) -> int:
        """The ring step's width (px; 0: off): ``ring_width``, ``video_ring_width`` in video mode."""
        return self.params.video_ring_width if video else self.params.ring_width

    def superpixels_of(self, image: np.ndarray) -> np.ndarray | None:
        """The ring step's superpixels (H, W) int32 of the last pair's frame 1 if ``image`` has its pixels, else
        None: for a method over this one that runs the step again on its own flow (semantic)."""
        last = self._ring_labels
        return last[1] if last is not None and last[0].shape == image.shape and np.array_equal(last[0], image) else None

    def _start_superpixels(self, img1: np.ndarray, width: int) -> None:
        """With a ring step to come (``width`` > 0), frame 1's superpixels start now on a thread of their own:
        they overlap the rest of the pair's work (about 0.17 s of the step's 0.45 s at 1024x436)."""
        self._superpixels = rings.PendingSuperpixels(img1) if width > 0 else None

    def finish_flow(self, img1: np.ndarray, img2: np.ndarray, result: FlowResult, *, video: bool = False
                    ) -> FlowResult:
        """The last step on ``result``'s flow, the method's final one (a :class:`~semflow.sharpen.SharpenedFlow`
        calls it after sharpening, and has the estimate skip it with ``finish=False``): with ``ring_width``
        (``video_ring_width`` in video mode) > 0, each rigid moving region's affine on its outer ring
        (``rings.refit_rings``; lap ``"rings"``)."""
        width = self.ring_width_for(video=video)
        pending, self._superpixels = self._superpixels, None
        if width > 0:
            start = time.perf_counter()
            labels = None if pending is None else pending.labels_for(img1)
            labels = rings.superpixels(img1, params=rings.RingParams()) if labels is None else labels
            self._ring_labels = (img1, labels)
            result.flow = rings.refit_rings(img1, img2, result.flow, width=width, labels=labels)
            self.last_timings = {**self.last_timings, "rings": time.perf_counter() - start}
        return result

    def _estimate_video(self, img1: np.ndarray, img2: np.ndarray, state: VideoState, *, finish: bool = True,
                        **kwargs) -> FlowResult:
        """Video mode: frame 1's descriptors come from the last pair, and the last flow carried forward
        joins the candidates at every level with a smaller coarse search (``video_radius``) on sparser
        coarse levels (``video_narrow_coarse_stride``), without scale-tolerant costs (unless
        ``video_narrow_scales``), and pulls the interpolated flow toward it where matches are sparse
        (``video_prior``). A full
        search (pair mode's, with the carried candidates) runs every ``refresh_every`` pairs, and again
        on the same pair when the share of kept matches falls below ``refresh_share`` times the last
        full search's. After a cut (:func:`~semflow.video_state.scene_cut`) the pair is computed as the
        first of a new video (``estimate`` hands it an empty state)."""
        p = self.params
        self._start_superpixels(img1, self.ring_width_for(video=True))
        work = state.part(self.name, img1)
        if work is None or work.flow is None or state.cut:  # after a cut the last flow means nothing
            result, work2 = self._run(img1, img2, carried=work, video=True)
            work2.searched_share = work2.valid_share
        else:
            full = p.refresh_every > 0 and work.since_full + 1 >= p.refresh_every
            result, work2 = self._run(img1, img2, carried=work, temporal=True, full=full, video=True)
            if not full and work2.valid_share < p.refresh_share * work.searched_share:
                result, work2 = self._run(img1, img2, carried=work, temporal=True, full=True, video=True)
                full = True
            work2.searched_share = work2.valid_share if full else work.searched_share
            work2.since_full = 0 if full else work.since_full + 1
        result.extras["video_full_search"] = np.array(work is None or work2.since_full == 0)
        result.state = state.advance(img2, result.flow, {self.name: work2})
        return self.finish_flow(img1, img2, result, video=True) if finish else result

    def state_parts(self) -> dict[str, type]:
        return {self.name: FrameWork}

    def _describe(self, gray1: np.ndarray, gray2: np.ndarray, levels: int, finest: int,
                  shrink: float | None, carried: FrameWork | None, dims: int | None = None, *,
                  scales: bool = True) -> tuple[FrameWork, FrameWork]:
        """Both frames' per-frame work; frame 1's is ``carried`` when it is that frame with these settings.
        ``dims``: the PCA size of a new projection (default the preset's). ``scales``: also describe
        the frames resized by ``shrink``; without, frame 2's are left to a later pair that needs them."""
        dims = self.params.dims if dims is None else dims
        pyr2 = gray_pyramid(gray2, levels)
        options = dict(kind=self.descriptor, finest=finest, shrink=shrink if scales else None)
        if carried is not None and carried.fits(gray1, levels, finest, shrink):
            one = carried
            if not one.described:  # restored from a snapshot: describe the frame again, same basis
                one.pyramid = gray_pyramid(gray1, levels)
                one.descriptors, one.shrunk = frame_descriptors(one.pyramid, projection=one.projection, **options)
            elif scales and shrink is not None and one.shrunk is None:  # the last pair did without them
                one.shrunk = shrunk_descriptors(one.pyramid, kind=self.descriptor, projection=one.projection,
                                                finest=finest, shrink=shrink)
        else:
            pyr1 = gray_pyramid(gray1, levels)
            proj = pair_projection(pyr1, pyr2, self.descriptor, dims) if dims is not None else None
            one = FrameWork(gray1, pyr1, *frame_descriptors(pyr1, projection=proj, **options), proj,
                            levels, finest, shrink)
        two = FrameWork(gray2, pyr2, *frame_descriptors(pyr2, projection=one.projection, **options),
                        one.projection, levels, finest, shrink)
        return one, two

    def _run(self, img1: np.ndarray, img2: np.ndarray, *, carried: FrameWork | None = None,
             temporal: bool = False, full: bool = True, video: bool = False) -> tuple[FlowResult, FrameWork]:
        """One pair. ``carried``: frame 1's work from the last pair (video mode); with ``temporal`` its
        flow joins the candidates, and without ``full`` the coarse search shrinks to ``video_radius``,
        the coarser levels match every ``video_narrow_coarse_stride`` px, finer levels skip the
        windowed search, and the scale-tolerant costs are off unless ``video_narrow_scales``. ``video``: video mode's parameters
        (:meth:`Preset.for_video`). Returns the result and frame 2's work."""
        p = self.params.for_video() if video else self.params
        timer = StageTimer()
        h0, w0 = img1.shape[:2]
        img1, img2 = _pad_to(img1, MIN_SIDE, MIN_SIDE), _pad_to(img2, MIN_SIDE, MIN_SIDE)
        h, w = img1.shape[:2]
        gray1, gray2 = to_gray(img1), to_gray(img2)
        levels, finest = _pyramid_levels(p, h, w)

        with torch.no_grad():
            # Video mode: the last flow, and it carried along itself (candidates and prior both use it).
            last = carried.flow if temporal and carried is not None else None
            along = None if last is None else along_itself(last)
            one, two, props_f, props_b = self._proposals(p, gray1, gray2, levels, finest, carried=carried,
                                                         last=last, along=along, full=full, lap=timer.lap)
            timer.lap("proposals")
            fwd, cost_f, agrees = self._grid_flow(props_f, finest)
            # Only the forward matches are checked: the backward flow serves the forward-backward test.
            bwd, _, _ = self._grid_flow(props_b, finest, check=False)
            timer.lap("crf")

        stride = max(1, p.stride >> finest) << finest  # grid spacing in full-size pixels
        valid, fb_err, fb_limit = kept_matches(fwd, bwd, agrees, stride=stride, size=(h, w), params=p)
        timer.lap("consistency")
        grid = grid_positions(fwd.shape[:2], stride)
        points, matches, valid, fit = refined_matches(gray1, gray2, fwd, valid, grid=grid,
                                                      subpixel=self.subpixel, params=p)
        timer.lap("subpixel")
        flow = interpolate_matches(img1, img2, gray1, gray2, points, matches, valid=valid, grid=grid,
                                   stride=stride, params=p)
        timer.lap("interpolation")
        flow = self._refined_flow(flow, gray1, gray2, valid=valid, last=last, along=along, params=p,
                                  lap=timer.lap)
        flow = _boundary_stages(img1, img2, flow, params=p, lap=timer.lap)
        confidence = confidence_map(flow, gray1, gray2, size=(h, w), valid=valid, fb_err=fb_err,
                                    fb_limit=fb_limit, fit=fit)
        timer.lap("confidence")
        self.last_timings = timer.seconds
        extras = grid_extras(fwd, valid=valid, fb_err=fb_err, cost=cost_f, agrees=agrees)
        two.flow, two.valid_share = flow, float(valid.mean())
        return FlowResult(flow[:h0, :w0].copy(), confidence=confidence[:h0, :w0].copy(), extras=extras), two

    def _proposals(self, p: Preset, gray1: np.ndarray, gray2: np.ndarray, levels: int, finest: int, *,
                   carried: FrameWork | None, last: np.ndarray | None, along: np.ndarray | None, full: bool,
                   lap: Callable[[str], None]) -> tuple[FrameWork, FrameWork, Proposals, Proposals]:
        """Both frames' descriptors (lap ``"descriptors"``), the keypoint matches (options; lap
        ``"keypoints"``) and K candidate flows per grid point, forward and backward. ``last``, ``along``:
        video mode's last flow (H, W, 2) px and it carried along itself, or None; ``full``: as in
        :meth:`_run`. Returns both frames' work and the forward and backward proposals."""
        shrink = p.shrink if p.shrink not in (None, 1.0) else None
        narrow = last is not None and not full
        scales = shrink is not None and (p.video_narrow_scales or not narrow)
        one, two = self._describe(gray1, gray2, levels, finest, shrink, carried, p.dims, scales=scales)
        pyramids = (one.descriptors, two.descriptors) + ((one.shrunk, two.shrunk) if scales else ())
        pyr1, pyr2, *shrunk = ([None if d is None else torch.from_numpy(d).to(self.device) for d in pyr]
                               for pyr in pyramids)
        scaled_f, scaled_b = _scale_tolerant_pairs(pyr1, pyr2, shrunk, shrink)
        lap("descriptors")
        extra_f = extra_b = None
        if self.propagation:
            extra_f = _dis_pyramid(gray1, gray2, levels)
            extra_b = _dis_pyramid(gray2, gray1, levels)
        options = dict(stride=p.stride, k=p.k, radius=p.radius, finest=finest, local=p.local,
                       propagation=self.propagation, coarse_stride=p.coarse_stride,
                       search_pixels=p.search_pixels)
        temporal_f = temporal_b = None
        if last is not None:
            temporal_f, temporal_b = temporal_candidates(last, levels, along)
            if narrow:  # between full searches: narrow coarse window, sparser coarse levels
                options.update(radius=min(p.radius, p.video_radius), search_pixels=0, narrow=True,
                               coarse_stride=max(p.coarse_stride, p.video_narrow_coarse_stride))
        keys_f = keys_b = None
        if p.keypoint_radius > 0:  # whole-frame keypoint matches, offered at the finest level
            keys_f, keys_b = self._keypoint_matches(p, one, two, gray1, gray2)
            options.update(keypoint_radius=p.keypoint_radius, keypoint_count=p.keypoint_count)
            lap("keypoints")
        props_f = coarse_to_fine_proposals(pyr1, pyr2, extra_flows=extra_f, scaled=scaled_f,
                                           temporal=temporal_f, keypoints=keys_f, **options)
        props_b = coarse_to_fine_proposals(pyr2, pyr1, extra_flows=extra_b, scaled=scaled_b,
                                           temporal=temporal_b, keypoints=keys_b, **options)
        return one, two, props_f, props_b

    def _keypoint_matches(self, p: Preset, one: FrameWork, two: FrameWork, gray1: np.ndarray,
                          gray2: np.ndarray) -> tuple[KeypointMatches, KeypointMatches]:
        """Whole-frame keypoint matches from ``gray1`` to ``gray2``, forward and backward; finds (and keeps
        in the frames' work ``one``, ``two``) frame 2's keypoints, and frame 1's unless ``one`` has them."""
        # Video mode: frame 1's keypoints are the last pair's frame 2's.
        settings = dict(contrast=p.keypoint_contrast, max_keypoints=p.keypoint_max)
        if one.keypoints is None or not one.keypoints.made_with(**settings):
            one.keypoints = frame_keypoints(gray1, **settings)
        two.keypoints = frame_keypoints(gray2, **settings)
        keys_f = match_keypoints(one.keypoints, two.keypoints, ratio=p.keypoint_ratio, max_flow=p.radius,
                                 device=self.device)
        return keys_f, keys_f.reversed()

    def _refined_flow(self, flow: np.ndarray, gray1: np.ndarray, gray2: np.ndarray, *, valid: np.ndarray,
                      last: np.ndarray | None, along: np.ndarray | None, params: Preset,
                      lap: Callable[[str], None]) -> np.ndarray:
        """The interpolated flow (H, W, 2) px pulled toward video mode's ``last`` flow where the kept grid
        matches ``valid`` are sparse (``video_prior``; lap ``"temporal_prior"``), then refined
        variationally (unless ``refine`` is off; lap ``"refinement"``)."""
        p = params
        if last is not None and p.video_prior > 0:
            # Video mode: where matches are sparse, lean on the last flow carried forward (temporal_prior).
            flow, _ = blend_toward_carried(flow, last, valid, gray1, gray2, PriorParams(weight=p.video_prior),
                                           along=along)
            lap("temporal_prior")
        if self.refine:
            flow = densify.variational_refine(gray1, gray2, flow, iterations=p.refine_iterations,
                                              scales=p.refine_scales)
        lap("refinement")
        return flow


def _boundary_stages(img1: np.ndarray, img2: np.ndarray, flow: np.ndarray, *, params: Preset,
                     lap: Callable[[str], None]) -> np.ndarray:
    """The refined flow (H, W, 2) px with the optional boundary stages, each lapped under its name: a
    weighted median (``"median"``), boundary reassignment (``"boundary"``), missed motions (``"missed"``)."""
    p = params
    if p.median_radius > 0:  # motion boundaries back on the colour edges, near the flow's jumps
        flow = densify.weighted_median(img1, flow, radius=p.median_radius, where=near_jumps(flow))
        lap("median")
    if p.boundary_radius > 0:  # sharper motion boundaries (adaptive-support-weight reassignment)
        flow = boundary.reassign_boundaries(img1, img2, flow, boundary.BoundaryParams(radius=p.boundary_radius))
        lap("boundary")
    if p.missed_motions:  # a thin or half-hidden thing that no grid match saw (missed.py)
        flow, _ = missed.follow_missed_motions(img1, img2, flow)
        lap("missed")
    return flow
