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
    densify      sub-pixel refinement of the kept matches, EpicFlow interpolation, variational
                 refinement, (option) a colour-weighted median, a dense confidence map
    boundary     (options) rejected grid points near motion boundaries get a match from the side
                 they fit, then a second interpolation; pixels near them reassigned after refinement
    temporal, temporal_prior   video mode: per-frame work and the last flow carried to the next pair
                 (as candidates, and as a prior where the new matches are sparse)
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from semflow.baseline.base import FlowMethod, FlowResult
from semflow.baseline.discrete import boundary, consistency, crf, densify, missed
from semflow.baseline.discrete.descriptors import (
    DESCRIPTORS,
    frame_descriptors,
    gray_pyramid,
    pair_projection,
    shrunk_descriptors,
)
from semflow.baseline.discrete.keypoints import frame_keypoints, match_keypoints
from semflow.baseline.discrete.presets import DEFAULT_PRESET, PRESETS, Preset
from semflow.baseline.discrete.proposals import Proposals, coarse_to_fine_proposals
from semflow.baseline.discrete.temporal import FrameWork, along_itself, temporal_candidates
from semflow.baseline.discrete.temporal_prior import PriorParams, blend_toward_carried
from semflow.device import resolve_device
from semflow.errors import InputError
from semflow.flow_jumps import near_jumps
from semflow.timing import StageTimer
from semflow.video_state import VideoState
from semflow.warp import to_gray

MIN_SIDE = 32
"""Frames are padded (reflecting) to at least this size, so the pyramid always has a level."""

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

    def _estimate(self, img1: np.ndarray, img2: np.ndarray) -> FlowResult:
        return self._run(img1, img2)[0]

    def _estimate_video(self, img1: np.ndarray, img2: np.ndarray, state: VideoState, **kwargs) -> FlowResult:
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
        return result

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
        timings, lap = timer.seconds, timer.lap

        h0, w0 = img1.shape[:2]
        img1 = _pad_to(img1, MIN_SIDE, MIN_SIDE)
        img2 = _pad_to(img2, MIN_SIDE, MIN_SIDE)
        h, w = img1.shape[:2]
        gray1, gray2 = to_gray(img1), to_gray(img2)
        levels = p.levels
        while levels > 0 and min(h, w) >> levels < MIN_COARSE_SIDE:
            levels -= 1
        finest = min(p.finest, levels)

        with torch.no_grad():
            shrink = p.shrink if p.shrink not in (None, 1.0) else None
            # Video mode: the last flow, and it carried along itself (candidates and prior both use it).
            last = carried.flow if temporal and carried is not None else None
            along = None if last is None else along_itself(last)
            narrow = last is not None and not full
            scales = shrink is not None and (p.video_narrow_scales or not narrow)
            one, two = self._describe(gray1, gray2, levels, finest, shrink, carried, p.dims, scales=scales)
            pyramids = (one.descriptors, two.descriptors) + ((one.shrunk, two.shrunk) if scales else ())
            pyr1, pyr2, *shrunk = ([None if d is None else torch.from_numpy(d).to(self.device) for d in pyr]
                                   for pyr in pyramids)
            # Scale-tolerant costs: a surface that grows from frame 1 to frame 2 matches frame 2 shrunk
            # (as the target of the forward search, the query of the backward one), one that gets
            # smaller matches frame 1 shrunk.
            # The backward search compares the same pairs with query and target swapped.
            scaled_f = scaled_b = None
            if shrunk:
                scaled_f = [[] if a_small is None else [(a, 1.0, b_small, shrink), (a_small, shrink, b, 1.0)]
                            for a, b, a_small, b_small in zip(pyr1, pyr2, *shrunk)]
                scaled_b = [[(t, t_scale, q, q_scale) for q, q_scale, t, t_scale in pairs] for pairs in scaled_f]
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
                # Video mode: frame 1's keypoints are the last pair's frame 2's.
                settings = dict(contrast=p.keypoint_contrast, max_keypoints=p.keypoint_max)
                if one.keypoints is None or not one.keypoints.made_with(**settings):
                    one.keypoints = frame_keypoints(gray1, **settings)
                two.keypoints = frame_keypoints(gray2, **settings)
                keys_f = match_keypoints(one.keypoints, two.keypoints, ratio=p.keypoint_ratio, max_flow=p.radius,
                                         device=self.device)
                keys_b = keys_f.reversed()
                options.update(keypoint_radius=p.keypoint_radius, keypoint_count=p.keypoint_count)
                lap("keypoints")
            props_f = coarse_to_fine_proposals(pyr1, pyr2, extra_flows=extra_f, scaled=scaled_f,
                                               temporal=temporal_f, keypoints=keys_f, **options)
            props_b = coarse_to_fine_proposals(pyr2, pyr1, extra_flows=extra_b, scaled=scaled_b,
                                               temporal=temporal_b, keypoints=keys_b, **options)
            del pyr1, pyr2, shrunk, scaled_f, scaled_b
            lap("proposals")
            fwd, cost_f, agrees = self._grid_flow(props_f, finest)
            # Only the forward matches are checked: the backward flow serves the forward-backward test.
            bwd, _, _ = self._grid_flow(props_b, finest, check=False)
            lap("crf")

        stride = max(1, p.stride >> finest) << finest  # grid spacing in full-size pixels
        fb_err = consistency.forward_backward_error(fwd, bwd, stride, (h, w))
        fb_limit = np.maximum(p.fb_threshold, p.fb_relative * np.hypot(fwd[..., 0], fwd[..., 1]))
        valid = (fb_err <= fb_limit) & agrees
        valid = consistency.remove_small_segments(fwd, valid, max_diff=max(1.0, stride / 2),
                                                  min_size=p.min_segment)
        lap("consistency")

        gh, gw = fwd.shape[:2]
        ys, xs = np.mgrid[0:gh, 0:gw].astype(np.float32) * stride
        points = np.stack([xs[valid], ys[valid]], 1)
        matches = fwd[valid]
        # Sub-pixel refinement, then a pixel-level check: drop matches whose small patches disagree.
        matches, ncc, _ = densify.refine_matches(gray1, gray2, points, matches,
                                                 iterations=6 if self.subpixel else 0,
                                                 check_patch=p.check_patch)
        fits = ncc >= p.ncc_min
        points, matches = points[fits], matches[fits]
        match_fit = np.zeros_like(fb_err)
        match_fit[valid] = np.clip(ncc, 0.0, 1.0)
        valid[valid] = fits
        lap("subpixel")
        if len(points) >= 3 and p.boundary_matches > 0:
            # A first, half-size interpolation finds the motion boundaries; the rejected grid points
            # near them get a match from the side they fit; then the full interpolation.
            coarse = densify.interpolate_coarse(img1, img2, points, matches, method=p.interpolator)
            new, new_flows = boundary.boundary_matches(img1, img2, coarse, valid, stride,
                                                       boundary.BoundaryParams(radius=p.boundary_matches))
            points = np.concatenate([points, np.stack([xs[new], ys[new]], 1)])
            matches = np.concatenate([matches, new_flows[new]])
            flow = densify.interpolate(img1, img2, points, matches, method=p.interpolator)
        elif len(points) >= 3:
            flow = densify.interpolate(img1, img2, points, matches, method=p.interpolator)
            cost = None
            if p.motion_edges > 0:  # again, stopping at image edges where the first pass's motion jumps
                cost = densify.motion_edge_map(img1, flow, boost=p.motion_edges)
                flow = densify.interpolate(img1, img2, points, matches, method=p.interpolator, cost_map=cost)
            if p.local_k > 0 and p.interpolator == "epic":
                # Matches of a small thing that the wide fits outvoted: a local interpolation, where they choose it.
                local = densify.interpolate(img1, img2, points, matches, cost_map=cost, k=p.local_k)
                flow, _ = densify.follow_outvoted_matches(img1, img2, points, matches, flow, local)
        else:  # nothing trustworthy was matched: fall back to the coarse DIS flow
            flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(gray1, gray2, None)
        lap("interpolation")
        if last is not None and p.video_prior > 0:
            # Video mode: where matches are sparse, lean on the last flow carried forward (temporal_prior).
            flow, _ = blend_toward_carried(flow, last, valid, gray1, gray2, PriorParams(weight=p.video_prior),
                                           along=along)
            lap("temporal_prior")
        if self.refine:
            flow = densify.variational_refine(gray1, gray2, flow, iterations=p.refine_iterations,
                                              scales=p.refine_scales)
        lap("refinement")
        if p.median_radius > 0:  # motion boundaries back on the colour edges, near the flow's jumps
            flow = densify.weighted_median(img1, flow, radius=p.median_radius, where=near_jumps(flow))
            lap("median")
        if p.boundary_radius > 0:  # sharper motion boundaries (adaptive-support-weight reassignment)
            flow = boundary.reassign_boundaries(img1, img2, flow, boundary.BoundaryParams(radius=p.boundary_radius))
            lap("boundary")
        if p.missed_motions:  # a thin or half-hidden thing that no grid match saw (missed.py)
            flow, _ = missed.follow_missed_motions(img1, img2, flow)
            lap("missed")

        # A grid point's confidence: kept, forward-backward consistent, and its patches correlate.
        consistent = np.exp(-0.5 * (np.minimum(fb_err, 1e3) / np.maximum(fb_limit, 1e-3)) ** 2)
        grid_conf = np.where(valid, consistent * match_fit, 0.0)
        confidence = densify.dense_confidence(grid_conf, (h, w), gray1, gray2, flow)
        lap("confidence")
        self.last_timings = timings
        extras = {
            "grid_flow": fwd,
            "grid_valid": valid,
            "grid_fb_error": np.minimum(fb_err, 1e3).astype(np.float32),
            "grid_cost": cost_f.astype(np.float32),
            "grid_crf_agrees": agrees,
        }
        two.flow, two.valid_share = flow, float(valid.mean())
        return FlowResult(flow[:h0, :w0].copy(), confidence=confidence[:h0, :w0].copy(), extras=extras), two
