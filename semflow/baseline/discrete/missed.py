"""Motions the flow missed: a thin or half-hidden thing that no grid match saw (issue 15).

A car seen only as a strip of 10 px above the parked car in front of it, moving 20 px while the flow
around it barely moves, gets no match of its own: the grid's descriptors straddle it and the car in
front, and the interpolation gives it the front car's motion. Its pixels then fit frame t+1 badly.
This step looks there again:

1. **Where.** Pixels whose colour error under the flow (smoothed by ``blur`` px) is above ``error``
   grey levels, in connected groups ("blobs") of at least ``min_pixels``.
2. **Which motion.** Small colour patches (``patch`` px) on a grid in each blob are matched in frame
   t+1 by normalised cross-correlation within ``search`` px of the flow
   (:func:`~semflow.fitting.motion_fit.patch_matches`), and affine motions are fitted to the matches
   with a label cost (:func:`~semflow.fitting.motion_fit.fit_motions`). The one most matches move with
   (within ``agree`` px) is the blob's missed motion when at least ``min_share`` of the patch centres
   tried (and ``min_support``) move with it and it differs from the flow at them by at least
   max(``jump``, ``jump_relative`` * its length): a motion the flow does not have, not a correction of
   one it has.
3. **Which pixels.** Pixels of the blob widened by ``grow`` px choose between the flow and the motion
   by a graph cut (:func:`~semflow.fitting.graph_cut.solve_assignment`): each side costs its smoothed
   colour error (capped at ``cap``), with a contrast-sensitive Potts term on frame t's colours
   (``smoothness``). Pixels that neither explains (error above ``error`` under both: hidden in frame
   t+1, like the end of a car that drives behind another) cost the same under both, so they go with
   the side they belong to by colour: a layer's hidden pixels take the layer's motion. None take it
   unless some pixel is explained by it and better than by the flow (lower by ``win_margin``).

Without a motion that many patches agree on, a blob is left alone: occlusions (pixels that frame t+1
does not show) and non-rigid surfaces are blobs too, and their patches scatter. Measured by
``scripts/bench_missed_motions.py`` (BENCHMARKS.md, section missed-motions). Flows are float32
(H, W, 2) (u, v) px, frame t -> t+1; images uint8 RGB (H, W, 3); boxes (y0, y1, x0, x1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from semflow.fitting.graph_cut import solve_assignment
from semflow.fitting.motion_fit import MotionParams, affine_field, fit_motions, patch_centres, patch_matches
from semflow.warp import prepare_image, smoothed_photometric_error

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class MissedParams:
    """Settings of :func:`follow_missed_motions` (distances in px, errors in grey levels)."""

    error: float = 10.0
    """A pixel is unexplained when its smoothed colour error under the flow is above this..."""
    blur: float = 1.5
    """...smoothed by a Gaussian of this sigma."""
    min_pixels: int = 300
    """Smaller blobs of unexplained pixels are left alone."""
    patch: int = 7
    """Side of the colour patches matched (small: a thin thing's own texture, not its neighbours')."""
    step: int = 4
    """Patch centres on a grid this many px apart in each blob..."""
    max_patches: int = 150
    """...coarser where that would give more than this many."""
    search: int = 40
    """Search radius around the flow."""
    min_ncc: float = 0.8
    """A patch match needs this correlation at its peak..."""
    min_peak_margin: float = 0.05
    """...and this much more than its best rival more than 2 px away."""
    agree: float = 1.5
    """A match moves with an affine motion when it lands within this of it (the motion fitting's inlier
    distance)."""
    min_share: float = 0.3
    """The missed motion needs this share of the patch centres tried in the blob..."""
    min_support: int = 8
    """...and at least this many of them."""
    jump: float = 6.0
    """It must differ from the flow at its patches by this much on average..."""
    jump_relative: float = 0.3
    """...and by this times its length."""
    win_margin: float = 3.0
    """The motion is taken only where some pixel's smoothed error under it is at most ``error`` and lower
    than under the flow by this much."""
    grow: int = 3
    """The blob widened by this much is where pixels may take it."""
    cap: float = 20.0
    """Colour errors are capped at this in the graph cut; a pixel neither side explains costs half of
    it under both."""
    smoothness: float = 12.0
    """Weight of the graph cut's contrast-sensitive Potts term (as the things layer's)."""
    seed: int = 0
    """Seed of the motion fitting's random samples (each blob draws from its own stream)."""

    def patches(self) -> MotionParams:
        """The patch matching's settings in :func:`~semflow.fitting.motion_fit.patch_matches`' terms."""
        return MotionParams(patch=self.patch, patch_step=self.step, max_patches=self.max_patches,
                            search=self.search, min_ncc=self.min_ncc, min_peak_margin=self.min_peak_margin,
                            inlier=self.agree)

    def cut(self) -> MotionParams:
        """The graph cut's settings in :func:`~semflow.fitting.graph_cut.solve_assignment`'s terms."""
        return MotionParams(smoothness=self.smoothness)


@dataclass(frozen=True)
class MissedReport:
    """One blob that got a missed motion: its ``box``, ``pixels`` (unexplained), the patch centres
    ``tried``, the matches that ``agree`` on its motion (``motion``: its (u, v) px at the box's centre),
    and the pixels that ``took`` it."""

    box: Box
    pixels: int
    tried: int
    agree: int
    motion: tuple[float, float]
    took: int


def blob_motion(f1: np.ndarray, f2: np.ndarray, flow: np.ndarray, blob: np.ndarray, box: Box,
                params: MissedParams) -> tuple[np.ndarray | None, int, int]:
    """The missed motion, an affine (2, 3) in full-image px, of one ``blob`` (h, w bool over ``box``;
    ``flow`` (h, w, 2) over it too), or None (step 2 of the module docstring); with the patch centres
    tried and the matches that move with it."""
    motion = params.patches()
    centres = patch_centres(blob, motion, erode_by=0)
    tried = len(centres[0])
    src, dst = patch_matches(f1, f2, blob, box, flow, motion, centres=centres, around_zero=False)
    if len(src) < params.min_support:
        return None, tried, 0
    rng = np.random.default_rng([params.seed, box[0], box[2]])  # each blob its own stream
    affines, owner = fit_motions(src, dst, motion, rng)
    if not affines:
        return None, tried, 0
    best = int(np.argmax(np.bincount(owner[owner >= 0], minlength=len(affines))))
    moving = owner == best
    support = int(moving.sum())
    if support < max(params.min_support, params.min_share * tried):
        return None, tried, support
    at = (src[moving] - [box[2], box[0]]).round().astype(int)
    found = dst[moving] - src[moving]
    differs = np.linalg.norm(flow[at[:, 1], at[:, 0]] - found, axis=1).mean()
    if differs < max(params.jump, params.jump_relative * np.linalg.norm(found, axis=1).mean()):
        return None, tried, support
    return affines[best], tried, support


def pixels_of_motion(guide: np.ndarray, error_flow: np.ndarray, moved: np.ndarray, f1: np.ndarray,
                     f2: np.ndarray, blob: np.ndarray, box: Box, params: MissedParams) -> np.ndarray:
    """(h, w) bool over ``box``: the pixels that take the missed motion ``moved`` (h, w, 2) instead of
    the flow, whose smoothed colour error is ``error_flow`` (h, w) (step 3 of the module docstring).
    ``guide``: frame t (h, w, 3) over the box; ``f1``, ``f2``: the prepared full frames."""
    error_moved, lands = smoothed_photometric_error(f1, f2, moved, box[2], box[0], blur=params.blur)
    grown = ndimage.binary_dilation(blob, iterations=params.grow)
    explained = lands & (error_moved <= params.error)
    if not (grown & explained & (error_moved + params.win_margin < error_flow)).any():
        return np.zeros_like(blob)
    hidden = (error_flow > params.error) & ~explained
    tie = np.float32(params.cap / 2)
    costs = np.stack([np.where(hidden, tie, np.minimum(error_flow, params.cap)),
                      np.where(hidden | ~lands, tie, np.minimum(error_moved, params.cap))]).astype(np.float32)
    labels = solve_assignment(costs, guide.astype(np.float32), params.cut(), free=grown)
    return grown & (labels == 1)


def follow_missed_motions(img1: np.ndarray, img2: np.ndarray, flow: np.ndarray,
                          params: MissedParams | None = None) -> tuple[np.ndarray, list[MissedReport]]:
    """``flow`` (H, W, 2) with the motions it missed put back (module docstring), and a report per blob
    that got one. Pixels elsewhere are returned unchanged."""
    params = params or MissedParams()
    f1, f2 = prepare_image(img1), prepare_image(img2)
    smoothed, inside = smoothed_photometric_error(f1, f2, flow, blur=params.blur)
    blobs, _ = ndimage.label((smoothed > params.error) & inside)
    out = flow.copy()
    reports = []
    height, width = flow.shape[:2]
    for index, (rows, cols) in enumerate(ndimage.find_objects(blobs), 1):
        y0, y1 = max(0, rows.start - params.grow), min(height, rows.stop + params.grow)
        x0, x1 = max(0, cols.start - params.grow), min(width, cols.stop + params.grow)
        blob = blobs[y0:y1, x0:x1] == index
        pixels = int(blob.sum())
        if pixels < params.min_pixels:
            continue
        box = (y0, y1, x0, x1)
        found, tried, support = blob_motion(f1, f2, flow[y0:y1, x0:x1], blob, box, params)
        if found is None:
            continue
        moved = affine_field(found, box)
        took = pixels_of_motion(img1[y0:y1, x0:x1], smoothed[y0:y1, x0:x1], moved, f1, f2, blob, box, params)
        out[y0:y1, x0:x1][took] = moved[took]
        centre = moved[(y1 - y0) // 2, (x1 - x0) // 2]
        reports.append(MissedReport(box, pixels, tried, support, (float(centre[0]), float(centre[1])), int(took.sum())))
    return out, reports
