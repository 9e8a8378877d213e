"""Sharper motion boundaries after interpolation: adaptive-support-weight reassignment (issue 15).

Edge-aware interpolation carries a background's flow a few pixels into the object in front of it
("foreground fattening"). This step looks at each pixel near a motion discontinuity of the dense
flow, takes as candidates the flows found ``radius`` px away on either side (in 4 directions), and
gives the pixel the candidate whose patch matches best in frame t+1, by an adaptive-support-weight
cost (Yoon and Kweon, PAMI 2006): each patch pixel is weighted by its colour similarity (CIELab) to
the centre and by its distance, in both frames, so a patch that straddles the boundary is judged by
the pixels on the centre's own side -- which is what keeps a plain window cost from fattening too.

Occlusion: a pixel hidden in frame t+1 matches no candidate well; when its best cost stays above
``occlusion_cost`` (or does not beat the current flow's by ``margin``) it keeps the interpolated flow.

:func:`boundary_matches` works one step earlier, on the grid matches (``Preset.boundary_matches``):
the rejected grid points near a motion discontinuity of a first, half-size interpolation get the
best-fitting candidate flow as a match when it fits about as well as the kept matches there, and the
full interpolation then has matches on both sides of the boundary. Off by default, as it costs 1.2-1.3
times discrete's time per pair (one busy run, side by side; the issue allows ~10 %). Radius 15 against
off, one process (``scripts/band_oracles.py`` for the hard scenes): hard scenes band EPE 1.771 ->
1.090 px, inside-band 0.442 -> 0.257 (ratio 4.01 -> 4.24: the inside gains as much); real data EPE /
Fl-all KITTI -28.8 % / +0.7 % (one pair), Sintel -5.6 % / -7.6 %, Middlebury -0.6 % / -5.7 %, Chairs
-12.2 % / -7.5 %. ``fill_hidden`` (hidden points take the side they share a uniform region with) lowers
the hidden band pixels' part of the band EPE (0.386 -> 0.250 px) but not the band's (1.172) and puts
wrong matches elsewhere: KITTI Fl-all +10 %. KITTI's one pair is not settled: at the points given a
match there, 68 % of the new matches are off by > 3 px and 5 % (the base flow: 34 %; Sintel 5 %
against 4 %), and small changes of the step (the scale's sample, a patch check) swing its EPE from
-29 % to +5 %; the adaptive-support-weight cost does not pick the right side on its weakly textured
road.

The pixel step is off by default (``Preset.boundary_radius`` 0). Measured by ``scripts/bench_boundary.py`` (radius 10):
hard scenes things EPE 0.905 -> 0.619 px, band / inside 4.01 -> 3.66 (the issue asks 2); real data
EPE KITTI -0.8 %, Sintel +0.6 % (final alone +5.9 %), Middlebury -1.5 % (Venus +17 %), Chairs -8.3 %;
but 2-50 s per pair on 2 busy cores (KITTI 20 s with jump_relative 0.15, 48 s without), too slow
for a default; jump_relative 0.15 left every number above within 0.15 %.

Flows are float32 (H, W, 2) (u, v) px, frame t -> t+1; images uint8 RGB (H, W, 3).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from semflow.flow_jumps import DIRECTIONS  # the unit steps along which candidates are taken, both sides


@dataclass(frozen=True)
class BoundaryParams:
    """Settings of :func:`reassign_boundaries`.

    radius: px from the pixel to the candidates on either side; jump: px, the smallest flow
    difference between the two sides that marks a discontinuity, at least ``jump_relative`` times the
    pixel's flow magnitude; patch: half-size of the support
    window (px), sampled every ``step`` px (``patch`` a multiple of ``step``); gamma_c: colour scale (CIELab units); gamma_p: distance scale (px); truncation: the
    largest per-pixel colour difference counted (Lab units); occlusion_cost, occlusion_factor: a
    pixel whose best cost is above both this and this factor times the median best cost is taken as
    hidden in frame t+1; margin: a visible pixel's best candidate must beat the current flow's cost by
    this factor (< 1); occlusion_layers: a hidden pixel takes the lowest-cost candidate that explains
    it as hidden (:func:`hidden_under`, within ``layer_tol`` px), else keeps its flow. accept,
    fill_hidden: :func:`boundary_matches` only.
    """

    radius: int = 10
    jump: float = 3.0
    jump_relative: float = 0.15
    patch: int = 6
    step: int = 2
    gamma_c: float = 7.0
    gamma_p: float = 5.0
    truncation: float = 30.0
    occlusion_cost: float = 6.0
    occlusion_factor: float = 3.0
    margin: float = 0.9
    occlusion_layers: bool = False
    layer_tol: float = 1.0
    accept: float = 3.0
    fill_hidden: bool = False


def _lab(image: np.ndarray) -> torch.Tensor:
    """CIELab (3, H, W) float32 of a uint8 RGB image."""
    lab = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    return torch.from_numpy(np.ascontiguousarray(lab.transpose(2, 0, 1)))


def _sample(image: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Bilinear samples (C, *x.shape) of image (C, H, W) at pixel positions x, y (borders replicate)."""
    _, h, w = image.shape
    gx = 2.0 * x / max(w - 1, 1) - 1.0
    gy = 2.0 * y / max(h - 1, 1) - 1.0
    grid = torch.stack([gx, gy], -1).reshape(1, -1, 1, 2)
    out = F.grid_sample(image[None], grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out[0, :, :, 0].reshape(image.shape[0], *x.shape)


def discontinuities(flow: np.ndarray, radius: int, jump: float, relative: float = 0.0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Pixels near a motion discontinuity and their candidate flows.

    Returns ``mask`` (H, W) bool: some direction's two sides, ``radius`` px away, differ by more than
    max(``jump``, ``relative`` * |f(p)|) px (a second difference, |f(p + d) + f(p - d) - 2 f(p)|, was tried: Sintel final +6 %); and ``candidates`` (H, W, 2 * len(DIRECTIONS), 2) float32: the flows on both sides
    (positions clamped to the image).
    """
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w]
    return discontinuities_at(flow, xs, ys, radius, jump, relative)


def discontinuities_at(flow: np.ndarray, xs: np.ndarray, ys: np.ndarray, radius: int, jump: float,
                       relative: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """:func:`discontinuities` at the integer pixels ``xs``, ``ys`` (one shape S) only: ``mask`` (S) bool
    and ``candidates`` (S, 2 * len(DIRECTIONS), 2) float32. (The whole image's mask alone, without the
    candidates, is :func:`semflow.flow_jumps.flow_jumps`.)"""
    h, w = flow.shape[:2]
    cands = []
    mask = np.zeros(np.shape(xs), bool)
    limit = np.maximum(jump, relative * np.linalg.norm(flow[ys, xs], axis=-1))
    for dx, dy in DIRECTIONS:
        sides = []
        for s in (1, -1):
            x = np.clip(xs + s * dx * radius, 0, w - 1)
            y = np.clip(ys + s * dy * radius, 0, h - 1)
            sides.append(flow[y, x])
        mask |= np.linalg.norm(sides[0] - sides[1], axis=-1) > limit
        cands += sides
    return mask, np.stack(cands, -2).astype(np.float32)


def asw_costs(lab1: torch.Tensor, lab2: torch.Tensor, points: torch.Tensor, flows: torch.Tensor,
              params: BoundaryParams) -> torch.Tensor:
    """Adaptive-support-weight costs (N, K) of candidate flows ``flows`` (N, K, 2) at ``points`` (N, 2) (x, y).

    Per patch pixel q of the (2 * patch + 1)^2 window: weight exp(-dc1 / gamma_c - d / gamma_p) *
    exp(-dc2 / gamma_c - d / gamma_p) (dc: Lab distance to the window's centre in that frame, d: the
    distance to the centre), cost the truncated Lab distance between the two frames; the weighted mean.
    """
    r = params.patch
    off = torch.arange(-r, r + 1, params.step, dtype=torch.float32)
    oy, ox = torch.meshgrid(off, off, indexing="ij")
    ox, oy = ox.reshape(-1), oy.reshape(-1)
    spatial = torch.exp(-torch.sqrt(ox * ox + oy * oy) / params.gamma_p)  # (P,)
    centre = int(torch.nonzero((ox == 0) & (oy == 0))[0, 0])
    x1 = points[:, :1] + ox[None]  # (N, P)
    y1 = points[:, 1:] + oy[None]
    p1 = _sample(lab1, x1, y1)  # (3, N, P)
    w1 = torch.exp(-torch.linalg.vector_norm(p1 - p1[:, :, centre:centre + 1], dim=0) / params.gamma_c)
    x2 = x1[:, None] + flows[:, :, :1]  # (N, K, P)
    y2 = y1[:, None] + flows[:, :, 1:]
    p2 = _sample(lab2, x2, y2)  # (3, N, K, P)
    w2 = torch.exp(-torch.linalg.vector_norm(p2 - p2[..., centre:centre + 1], dim=0) / params.gamma_c)
    e = torch.linalg.vector_norm(p2 - p1[:, :, None], dim=0).clamp(max=params.truncation)
    weight = w1[:, None] * w2 * (spatial * spatial)[None, None]
    return (weight * e).sum(-1) / weight.sum(-1).clamp(min=1e-6)


def hidden_under(flow: np.ndarray, points: np.ndarray, cands: np.ndarray, jump: float, tol: float) -> np.ndarray:
    """Which candidates explain a pixel as hidden in frame t+1: (N, K) bool.

    Candidate k explains pixel p (points (N, 2) x, y) as occluded by another candidate j's layer when
    p moved by f_k lands where that layer sits in frame t+1: the flow at p + f_k - f_j (frame t) is
    within ``tol`` px of f_j, and f_k, f_j differ by more than ``jump`` px. ``cands`` (N, K, 2).
    """
    h, w = flow.shape[:2]
    diff = cands[:, :, None] - cands[:, None]  # (N, K, J, 2): f_k - f_j
    x = np.clip(np.rint(points[:, None, None, 0] + diff[..., 0]), 0, w - 1).astype(np.int64)
    y = np.clip(np.rint(points[:, None, None, 1] + diff[..., 1]), 0, h - 1).astype(np.int64)
    there = flow[y, x]  # (N, K, J, 2)
    fits = np.linalg.norm(there - cands[:, None], axis=-1) < tol
    apart = np.linalg.norm(diff, axis=-1) > jump
    return (fits & apart).any(2)


def reassign_boundaries(img1: np.ndarray, img2: np.ndarray, flow: np.ndarray,
                        params: BoundaryParams | None = None, *, chunk: int = 4096) -> np.ndarray:
    """``flow`` (H, W, 2) float32 with pixels near motion discontinuities given the best-matching
    candidate flow from either side (see the module docstring); other pixels unchanged."""
    params = params or BoundaryParams()
    flow = np.asarray(flow, np.float32)
    mask, cands = discontinuities(flow, params.radius, params.jump, params.jump_relative)
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return flow.copy()
    lab1, lab2 = _lab(img1), _lab(img2)
    every = np.concatenate([flow[ys, xs][:, None], cands[ys, xs]], 1)  # (n, 1 + K, 2): current first
    points = np.stack([xs, ys], 1).astype(np.float32)
    with torch.no_grad():
        cost = np.concatenate([asw_costs(lab1, lab2, torch.from_numpy(points[s:s + chunk]),
                                         torch.from_numpy(every[s:s + chunk]), params).numpy()
                               for s in range(0, len(ys), chunk)])
    rows = np.arange(len(ys))
    best = cost[:, 1:].argmin(1) + 1
    best_cost = cost[rows, best]
    limit = max(params.occlusion_cost, params.occlusion_factor * float(np.median(best_cost)))
    hidden = best_cost > limit
    take = ~hidden & (best_cost < params.margin * cost[:, 0])
    out = flow.copy()
    out[ys[take], xs[take]] = every[rows, best][take]
    if params.occlusion_layers and hidden.any():
        h_idx = np.nonzero(hidden)[0]
        explained = hidden_under(flow, points[h_idx], every[h_idx], params.jump, params.layer_tol)
        c = np.where(explained, cost[h_idx], np.inf)
        k = c.argmin(1)
        ok = np.isfinite(c[np.arange(len(h_idx)), k])
        sel = h_idx[ok]
        out[ys[sel], xs[sel]] = every[sel, k[ok]]
    return out


def path_costs(lab1: torch.Tensor, points: np.ndarray, radius: int) -> np.ndarray:
    """How far each side of ``points`` (N, 2) (x, y) looks unlike the point, in frame t: (N, 2 * len(DIRECTIONS)).

    For each candidate position of :func:`discontinuities` (same order: per direction, + side then -
    side, ``radius`` px away) the largest CIELab distance between the point's colour and the colours on
    the straight path to it: small when the point and that side lie in one uniform region, large when
    an image edge separates them. ``lab1``: frame t in CIELab (3, H, W) (:func:`_lab`).
    """
    steps = torch.linspace(0.0, 1.0, max(1, radius) + 1)[1:]
    pts = torch.from_numpy(np.ascontiguousarray(points, np.float32))
    centre = _sample(lab1, pts[:, :1], pts[:, 1:])  # (3, N, 1)
    out = []
    for dx, dy in DIRECTIONS:
        for s in (1, -1):
            path = _sample(lab1, pts[:, :1] + s * dx * radius * steps[None], pts[:, 1:] + s * dy * radius * steps[None])
            out.append(torch.linalg.vector_norm(path - centre, dim=0).amax(1))
    return torch.stack(out, 1).numpy()


def boundary_matches(img1: np.ndarray, img2: np.ndarray, flow: np.ndarray, valid: np.ndarray, stride: int,
                     params: BoundaryParams | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Matches for rejected grid points near motion discontinuities of a first dense ``flow``.

    The grid matcher fails on points whose descriptor window straddles a motion boundary (about 4 in 10
    inside the 5 px band of the hard scenes' things), and the interpolation then fills the gap from the
    other side. Here each rejected point of the grid (``valid`` (Gh, Gw) False, points every ``stride``
    px from (0, 0)) at most ``radius`` px from a kept one and near a discontinuity of ``flow`` (H, W, 2)
    px (:func:`discontinuities`) takes the candidate flow (its own, or that on either side) with the
    lowest adaptive-support-weight cost (:func:`asw_costs`), kept only when that cost is at most
    ``accept`` times the median cost of the kept points near discontinuities (at the first flow).
    With ``fill_hidden``, a point that no candidate fits (hidden in frame t+1: the cost test of
    :func:`reassign_boundaries`) whose candidates all stay in the frame takes the side it shares a
    uniform region with in frame t (:func:`path_costs`): the layer it belongs to, not the one that
    moves over it.

    Returns ``new`` (Gh, Gw) bool, the points given a match, and their flows (Gh, Gw, 2) float32.
    """
    params = params or BoundaryParams()
    gh, gw = valid.shape
    new, flows = np.zeros((gh, gw), bool), np.zeros((gh, gw, 2), np.float32)
    if not valid.any():
        return new, flows
    py, px, sides, rejected = _grid_points_near_discontinuities(flow, valid, stride, params)
    kept = ~rejected
    if not rejected.any() or not kept.any():
        return new, flows
    every = np.concatenate([flow[py, px][:, None], sides], 1)  # (n, 1 + K, 2): the first flow first
    points = np.stack([px, py], 1).astype(np.float32)
    lab1, lab2 = _lab(img1), _lab(img2)
    cost, pick = _best_candidates(lab1, lab2, points, every, rejected, params)
    take = rejected & (cost <= params.accept * float(np.median(cost[kept])))
    if params.fill_hidden:
        _fill_hidden(lab1, points, every, cost, rejected, pick, take, flow.shape[:2], params)
    ys, xs = py[take] // stride, px[take] // stride
    new[ys, xs] = True
    flows[ys, xs] = pick[take]
    return new, flows


def _grid_points_near_discontinuities(flow: np.ndarray, valid: np.ndarray, stride: int, params: BoundaryParams
                                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The grid points (kept, or rejected in a gap between kept ones) near a discontinuity of ``flow``.

    Returns their pixel rows ``py`` and columns ``px`` (n,) int, their candidate flows from either side
    ``sides`` (n, 2 * len(DIRECTIONS), 2) float32 (:func:`discontinuities_at`) and ``rejected`` (n,)
    bool, the points ``valid`` (Gh, Gw) rejects.
    """
    gh, gw = valid.shape
    h, w = flow.shape[:2]
    gy, gx = np.mgrid[0:gh, 0:gw] * stride
    # Only gaps between kept matches (the interpolation fills larger holes, where nothing was matched).
    gap = ndimage.distance_transform_edt(~valid) * stride <= params.radius
    inside = (gy < h) & (gx < w) & (valid | gap)
    py, px = gy[inside], gx[inside]
    near, sides = discontinuities_at(flow, px, py, params.radius, params.jump, params.jump_relative)
    rejected = ~valid[inside][near]
    return py[near], px[near], sides[near], rejected


def _best_candidates(lab1: torch.Tensor, lab2: torch.Tensor, points: np.ndarray, every: np.ndarray,
                     rejected: np.ndarray, params: BoundaryParams) -> tuple[np.ndarray, np.ndarray]:
    """Each point's cost (n,) float32 and flow (n, 2) float32: a rejected point's lowest-cost candidate of
    ``every`` (n, 1 + K, 2) px, a kept point's first flow (``every[:, 0]``) and its cost.

    ``points`` (n, 2) (x, y) px; ``lab1``, ``lab2``: the frames in CIELab (3, H, W) (:func:`_lab`).
    """
    kept = ~rejected
    # The rejected points choose among all candidates; the kept ones' cost at the first flow is the scale.
    cost = np.zeros(len(points), np.float32)
    pick = every[:, 0].copy()
    with torch.no_grad():
        cost[kept] = asw_costs(lab1, lab2, torch.from_numpy(points[kept]), torch.from_numpy(every[kept, :1]),
                               params).numpy()[:, 0]
        c = asw_costs(lab1, lab2, torch.from_numpy(points[rejected]), torch.from_numpy(every[rejected]),
                      params).numpy()
    best = c.argmin(1)
    cost[rejected] = c[np.arange(len(best)), best]
    pick[rejected] = every[rejected][np.arange(len(best)), best]
    return cost, pick


def _fill_hidden(lab1: torch.Tensor, points: np.ndarray, every: np.ndarray, cost: np.ndarray,
                 rejected: np.ndarray, pick: np.ndarray, take: np.ndarray, size: tuple[int, int],
                 params: BoundaryParams) -> None:
    """Give the rejected points hidden in frame t+1 the side they share a uniform region with, in place.

    A rejected point whose ``cost`` (n,) is above the occlusion limit of :func:`reassign_boundaries` and
    whose candidates ``every`` (n, 1 + K, 2) px all land inside the frame (``size`` (H, W)) gets, in
    ``pick`` (n, 2) and ``take`` (n,) bool, the candidate of lowest :func:`path_costs`.
    """
    h, w = size
    limit = max(params.occlusion_cost, params.occlusion_factor * float(np.median(cost)))
    hidden = np.nonzero(rejected & (cost > limit))[0]
    land = points[hidden][:, None] + every[hidden]
    hidden = hidden[((land >= 0) & (land <= np.float32([w - 1, h - 1]))).all((1, 2))]
    if len(hidden):
        pick[hidden] = every[hidden, 1 + path_costs(lab1, points[hidden], params.radius).argmin(1)]
        take[hidden] = True
