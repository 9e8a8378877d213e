"""Flow proposals: for each point of a grid, the K best matches in descriptor space.

The search runs coarse to fine over descriptor pyramids (see ``descriptors.descriptor_pyramid``):

- at the coarsest level every pixel is a query, compared with every pixel of the other frame inside a
  square search window (an exact k-nearest-neighbour search, matrix products over tiles: ``knn``; in video
  mode between full searches the window is narrow and each of its flows is scored as a candidate);
- at each finer level a query inherits its parent's K candidates (doubled), plus the best candidate of
  each of the parent's 8 neighbours (propagation), plus optional extra candidates (a coarse DIS flow);
  each is re-scored, with a local +-1 px search around the best ones, and the K best distinct flows are kept;
- with propagation on, a last pass also offers each query its 8 neighbours' best flows;
- optionally, the finest level's queries are also offered the flows of nearby keypoint matches
  (``keypoints``), which do not depend on the coarser levels.

All flows here are integer displacements in pixels of the level they belong to. Descriptor distance is
the squared L2 distance. Candidates that land outside the other frame cost ``outside_cost``.

Scale changes: a surface that comes closer grows between the frames (the road in front of a car), and a
fixed-size descriptor no longer matches it. With a :class:`MatchLevel` that also holds descriptors of
one frame resized, a flow's cost is the smaller of its distance at equal scale and its distance between
the query and the resized frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from semflow.baseline.discrete.keypoints import KeypointMatches, nearby_match_flows
from semflow.baseline.discrete.knn import rescale, squared_norms, window_knn

OUTSIDE_COST = 2.0
"""Cost of a match that lands outside the other frame (L2-normalised descriptors are at most 2 apart)."""


@dataclass
class Proposals:
    """K candidate flows per grid point, best first.

    ys, xs: int64 (Gh,), (Gw,) pixel rows / columns of the grid at its level.
    flows: int64 (Gh, Gw, K, 2) displacements (u, v) in pixels of that level.
    costs: float32 (Gh, Gw, K) descriptor distances (squared L2), ascending along K.
    """

    ys: torch.Tensor
    xs: torch.Tensor
    flows: torch.Tensor
    costs: torch.Tensor

    @property
    def k(self) -> int:
        return self.flows.shape[2]


def grid_coords(height: int, width: int, stride: int, device: torch.device | str = "cpu"
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows and columns of a grid with ``stride`` over an image, starting at 0."""
    return torch.arange(0, height, stride, device=device), torch.arange(0, width, stride, device=device)


def _as_tensor(desc: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(desc, dtype=torch.float32)


def _distances(query: torch.Tensor, target: torch.Tensor, target_index: torch.Tensor,
               target_sq: torch.Tensor, *, chunk_elems: int = 1 << 22) -> torch.Tensor:
    """Squared L2 distances (N, C) between query descriptors (N, D) and rows ``target_index`` (N, C)
    of ``target`` (M, D), whose squared norms are ``target_sq`` (M,)."""
    n, c = target_index.shape
    d = query.shape[1]
    q_sq = squared_norms(query)[:, None]
    out = torch.empty(n, c, device=target.device)
    step = max(1, chunk_elems // max(1, c * d))
    for s in range(0, n, step):
        i = target_index[s:s + step].reshape(-1)  # index_select: far faster than indexing with a 2-D tensor
        dot = torch.bmm(target.index_select(0, i).view(-1, c, d), query[s:s + step, :, None])[..., 0]
        out[s:s + step] = q_sq[s:s + step] + target_sq.index_select(0, i).view(-1, c) - 2.0 * dot
    return out.clamp_(min=0.0)


def _targets(ys: torch.Tensor, xs: torch.Tensor, flows: torch.Tensor, size: tuple[int, int]
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Target pixels (columns, rows) (Gh, Gw, C) of flows from the grid, and whether each is outside."""
    h, w = size
    tx = xs.view(1, -1, 1) + flows[..., 0]
    ty = ys.view(-1, 1, 1) + flows[..., 1]
    return tx, ty, (tx < 0) | (tx >= w) | (ty < 0) | (ty >= h)


def _scaled_distances(desc1: torch.Tensor, desc2: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor,
                      index: torch.Tensor, query_scale: float, target_sq: torch.Tensor) -> torch.Tensor:
    """Distances (Gh, Gw, C) from grid queries to the target pixels ``index`` (Gh, Gw, C) (flat
    indices into ``desc2``), with the descriptors of frame 1 resized by ``query_scale`` (``target_sq``:
    the squared norms of ``desc2``'s descriptors, flattened)."""
    gh, gw, c = index.shape
    h1, w1, d = desc1.shape
    qy = rescale(ys, query_scale).clamp(0, h1 - 1)
    qx = rescale(xs, query_scale).clamp(0, w1 - 1)
    query = desc1[qy][:, qx].reshape(gh * gw, d)
    out = _distances(query, desc2.reshape(-1, d), index.reshape(gh * gw, c), target_sq)
    return out.view(gh, gw, c)


def _resized_index(height: int, width: int, size: tuple[int, int], scale: float,
                   device: torch.device | str) -> torch.Tensor | None:
    """For each pixel of a (height, width) frame (flat, row-major), the flat index of its pixel in the
    frame resized by ``scale`` to ``size`` (h, w) (clamped to it); None for the frame itself."""
    if scale == 1.0 and tuple(size) == (height, width):
        return None
    h2, w2 = size
    rows = rescale(torch.arange(height, device=device), scale).clamp(0, h2 - 1)
    cols = rescale(torch.arange(width, device=device), scale).clamp(0, w2 - 1)
    return (rows[:, None] * w2 + cols[None]).reshape(-1)


@dataclass
class MatchLevel:
    """The descriptors of one pyramid level that score flows from the query frame to the target frame.

    query, target: (H, W, D). scaled: ``(query descriptors, query scale, target descriptors, target
    scale)`` of the same level with one of the frames resized by that factor (pixel ``x`` of a frame
    is pixel ``(x + 0.5) * scale - 0.5`` of the resized one; grid points and flows stay in pixels of
    the frames as they are). A flow costs the smallest of its distances at equal scale and under each
    scaled pair.
    """

    query: torch.Tensor
    target: torch.Tensor
    scaled: list[tuple[torch.Tensor, float, torch.Tensor, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Squared norms of every target descriptor, computed once for all the scoring at this level.
        self._target_sq = [squared_norms(t).reshape(-1) for t in [self.target] + [s[2] for s in self.scaled]]
        # Where each pixel of the target frame lies in each (resized) target: one lookup per scored flow.
        h, w = self.target.shape[:2]
        self._target_index = [_resized_index(h, w, tuple(t.shape[:2]), t_scale, self.target.device)
                              for t, t_scale in [(self.target, 1.0)] + [(s[2], s[3]) for s in self.scaled]]

    def score(self, ys: torch.Tensor, xs: torch.Tensor, flows: torch.Tensor) -> torch.Tensor:
        """Cost (Gh, Gw, C) of flows (Gh, Gw, C, 2) from the grid ``ys`` x ``xs``."""
        h, w = self.target.shape[:2]
        tx, ty, outside = _targets(ys, xs, flows, (h, w))
        # Targets outside the frame are clamped to its edge here; their cost is OUTSIDE_COST below.
        flat = ty.clamp_(0, h - 1).mul_(w).add_(tx.clamp_(0, w - 1))
        pairs = [(self.query, 1.0, self.target, 1.0)] + self.scaled
        cost = None
        for (q, q_scale, t, _), t_sq, t_index in zip(pairs, self._target_sq, self._target_index):
            index = flat if t_index is None else t_index.index_select(0, flat.reshape(-1)).view(flat.shape)
            other = _scaled_distances(q, t, ys, xs, index, q_scale, t_sq)
            cost = other if cost is None else torch.minimum(cost, other, out=cost)
        return cost.masked_fill_(outside, OUTSIDE_COST)


def score(desc1: torch.Tensor, desc2: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor,
          flows: torch.Tensor) -> torch.Tensor:
    """Squared L2 descriptor distance (Gh, Gw, C) float32 of candidate flows at equal scale.

    desc1, desc2: (H, W, D). ys, xs: grid rows/columns. flows: int64 (Gh, Gw, C, 2). Matches outside
    frame 2 cost :data:`OUTSIDE_COST`.
    """
    return MatchLevel(desc1, desc2).score(ys, xs, flows)


def keep_best_distinct(flows: torch.Tensor, costs: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` cheapest distinct flows along dim -2 of ``flows`` (..., C, 2), sorted by cost.

    If fewer than ``k`` are distinct, the best one is repeated (with its cost) to fill the set.
    """
    shape = costs.shape[:-1]
    c = costs.shape[-1]
    f = flows.reshape(-1, c, 2)
    cost = costs.reshape(-1, c).clone()
    key = ((f[..., 0] + 4096) * 8192 + (f[..., 1] + 4096)).double()
    # Sorting by key + cost / 4 (costs are below 4) groups equal flows, cheapest copy first.
    order = torch.argsort(key + cost.double().clamp(max=3.9) / 4.0, dim=1)
    key = torch.gather(key, 1, order)
    cost = torch.gather(cost, 1, order)
    f = torch.gather(f, 1, order[..., None].expand(-1, -1, 2))
    dup = torch.zeros_like(cost, dtype=torch.bool)
    dup[:, 1:] = key[:, 1:] == key[:, :-1]
    cost.masked_fill_(dup, float("inf"))
    kk = min(k, c)
    best_cost, best_idx = torch.topk(cost, kk, dim=1, largest=False, sorted=True)
    best_flow = torch.gather(f, 1, best_idx[..., None].expand(-1, -1, 2))
    # Fill duplicates (cost inf) with the best candidate.
    bad = ~torch.isfinite(best_cost)
    if bad.any():
        best_flow = torch.where(bad[..., None], best_flow[:, :1].expand_as(best_flow), best_flow)
        best_cost = torch.where(bad, best_cost[:, :1].expand_as(best_cost), best_cost)
    if kk < k:
        pad = k - kk
        best_flow = torch.cat([best_flow, best_flow[:, :1].expand(-1, pad, -1)], 1)
        best_cost = torch.cat([best_cost, best_cost[:, :1].expand(-1, pad)], 1)
    return best_flow.reshape(*shape, k, 2), best_cost.reshape(*shape, k)


def exhaustive_knn(desc1: torch.Tensor, desc2: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, *,
                   k: int, radius: int, chunk: int = 1024, query_scale: float = 1.0,
                   target_scale: float = 1.0) -> Proposals:
    """Exact k nearest neighbours of each grid point's descriptor among frame-2 pixels within ``radius``.

    Squared L2 distance; the window is the square ``|dx|, |dy| <= radius`` around the point.
    With ``query_scale`` / ``target_scale`` != 1, ``desc1`` / ``desc2`` describe the frames resized by
    that factor (as in :class:`MatchLevel`); the flows are in pixels of the frames as they are.
    Memory follows the window, not the frame (:mod:`.knn`).
    """
    h, w, d = desc2.shape
    gh, gw = len(ys), len(xs)
    qy, qx = torch.meshgrid(ys, xs, indexing="ij")
    q = desc1[rescale(qy.reshape(-1), query_scale).clamp(0, desc1.shape[0] - 1),
              rescale(qx.reshape(-1), query_scale).clamp(0, desc1.shape[1] - 1)]
    kk = min(k, h * w)
    # Each target pixel's position in the frame at its own size.
    xs_all = rescale(torch.arange(w, device=desc2.device), 1.0 / target_scale)
    ys_all = rescale(torch.arange(h, device=desc2.device), 1.0 / target_scale)
    costs, i = window_knn(q, ys, xs, desc2, xs_all, ys_all, k=kk, radius=radius, chunk=chunk, scale=target_scale)
    flows = torch.stack([xs_all[i % w] - qx.reshape(-1, 1), ys_all[i // w] - qy.reshape(-1, 1)], 2)
    costs = torch.where(torch.isfinite(costs), costs, torch.full_like(costs, OUTSIDE_COST))
    flows, costs = flows.view(gh, gw, kk, 2), costs.view(gh, gw, kk)
    if kk < k:
        flows = torch.cat([flows, flows[:, :, :1].expand(-1, -1, k - kk, -1)], 2)
        costs = torch.cat([costs, costs[:, :, :1].expand(-1, -1, k - kk)], 2)
    return Proposals(ys, xs, flows, costs)


def neighbour_flows(flows: torch.Tensor, *, top: int = 1) -> torch.Tensor:
    """The ``top`` best flows of each grid point's 8 neighbours: (Gh, Gw, 8 * top, 2) (edges replicate)."""
    f = flows[:, :, :top]
    gh, gw = f.shape[:2]
    padded = torch.nn.functional.pad(f.permute(2, 3, 0, 1).float(), (1, 1, 1, 1), mode="replicate")
    padded = padded.long().permute(2, 3, 0, 1)
    out = [padded[1 + dy:1 + dy + gh, 1 + dx:1 + dx + gw] for dy in (-1, 0, 1) for dx in (-1, 0, 1)
           if dy or dx]
    return torch.cat(out, 2)


LOCAL_OFFSETS = torch.tensor([(dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1)], dtype=torch.int64)


def local_search(level: MatchLevel, ys: torch.Tensor, xs: torch.Tensor,
                 centers: torch.Tensor, *, k: int, local: int) -> Proposals:
    """Score ``centers`` (Gh, Gw, C, 2) and the 3x3 neighbourhoods of the first ``local`` of them.

    Returns the ``k`` best distinct flows.
    """
    gh, gw, c, _ = centers.shape
    local = min(local, c)
    around = (centers[:, :, :local, None, :] + LOCAL_OFFSETS.to(centers.device)).reshape(gh, gw, local * 9, 2)
    cands = torch.cat([around, centers[:, :, local:]], 2)
    costs = level.score(ys, xs, cands)
    flows, costs = keep_best_distinct(cands, costs, k)
    return Proposals(ys, xs, flows, costs)


def propagate(level: MatchLevel, props: Proposals, *, k: int) -> Proposals:
    """Offer each grid point its 8 neighbours' best flows; keep the ``k`` best distinct."""
    extra = neighbour_flows(props.flows)
    costs = level.score(props.ys, props.xs, extra)
    flows, costs = keep_best_distinct(torch.cat([props.flows, extra], 2), torch.cat([props.costs, costs], 2), k)
    return Proposals(props.ys, props.xs, flows, costs)


def windowed_search(level: MatchLevel, ys: torch.Tensor, xs: torch.Tensor, *, k: int, radius: int
                    ) -> Proposals:
    """:func:`exhaustive_knn` at one level, at equal scale and at each of the level's other scales:
    the ``k`` best distinct flows of them all under the level's (smallest-distance) cost."""
    props = exhaustive_knn(level.query, level.target, ys, xs, k=k, radius=radius)
    for q, q_scale, t, t_scale in level.scaled:
        more = exhaustive_knn(q, t, ys, xs, k=k, radius=radius, query_scale=q_scale, target_scale=t_scale)
        cands = torch.cat([props.flows, more.flows], 2)
        props = Proposals(ys, xs, *keep_best_distinct(cands, level.score(ys, xs, cands), k))
    return props


def window_flows(radius: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Every flow (C, 2) int64 of the square window ``|dx|, |dy| <= radius``, C = (2 radius + 1)^2."""
    r = torch.arange(-radius, radius + 1, device=device)
    dy, dx = torch.meshgrid(r, r, indexing="ij")
    return torch.stack([dx.reshape(-1), dy.reshape(-1)], 1)


def scored_window(level: MatchLevel, ys: torch.Tensor, xs: torch.Tensor, *, k: int, radius: int) -> Proposals:
    """The ``k`` best flows of the window ``|dx|, |dy| <= radius``, each scored as a candidate under
    the level's cost (its scales at once): for a narrow window, far cheaper than :func:`windowed_search`,
    which compares each query with the whole frame (large levels: a box around a tile's windows)."""
    flows = window_flows(radius, ys.device)
    cands = flows.expand(len(ys), len(xs), -1, -1)
    costs = level.score(ys, xs, cands)
    kk = min(k, len(flows))
    best_cost, best = torch.topk(costs, kk, dim=2, largest=False, sorted=True)
    best_flow = flows[best]
    if kk < k:
        best_flow = torch.cat([best_flow, best_flow[:, :, :1].expand(-1, -1, k - kk, -1)], 2)
        best_cost = torch.cat([best_cost, best_cost[:, :, :1].expand(-1, -1, k - kk)], 2)
    return Proposals(ys, xs, best_flow, best_cost)


def _match_level(pyr1: list, pyr2: list, scaled: list | None, level: int) -> MatchLevel:
    """The :class:`MatchLevel` of pyramid ``level`` (with its scaled pairs, if ``scaled`` has any)."""
    extra = [] if scaled is None else scaled[level]
    extra = [(_as_tensor(q), q_scale, _as_tensor(t), t_scale) for q, q_scale, t, t_scale in extra]
    return MatchLevel(_as_tensor(pyr1[level]), _as_tensor(pyr2[level]), extra)


def _level_radius(radius: int, level: int) -> int:
    """The search window's half-size in pixels of ``level`` (at least 1), for ``radius`` level-0 pixels."""
    return max(1, -(-radius // (1 << level)))


def _carried(stack: np.ndarray, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """Video mode's carried flows (Gh, Gw, n, 2) int64 at the grid, from one level's stack, rounded."""
    return torch.round(torch.as_tensor(stack, device=ys.device)[ys][:, xs]).long()


def _coarsest_proposals(top: MatchLevel, ys: torch.Tensor, xs: torch.Tensor, *, k: int, radius: int,
                        narrow: bool, temporal: np.ndarray | None) -> Proposals:
    """The ``k`` best flows of the coarsest level's window (``radius`` px of the level): an exhaustive
    search, or each flow scored when ``narrow``; in video mode the carried flows ``temporal`` join first."""
    search = scored_window if narrow else windowed_search
    props = search(top, ys, xs, k=k, radius=radius)
    if temporal is not None:
        props = local_search(top, ys, xs, torch.cat([_carried(temporal, ys, xs), props.flows], 2), k=k,
                             local=temporal.shape[2])
    return props


def _parent_index(parent: Proposals, ys: torch.Tensor, xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of the nearest row / column of ``parent``'s (coarser) grid for each of ``ys`` / ``xs``."""
    pg_y = parent.ys[1] - parent.ys[0] if len(parent.ys) > 1 else 1
    pg_x = parent.xs[1] - parent.xs[0] if len(parent.xs) > 1 else 1
    iy = torch.round(ys.float() / 2 / pg_y).long().clamp(0, len(parent.ys) - 1)
    ix = torch.round(xs.float() / 2 / pg_x).long().clamp(0, len(parent.xs) - 1)
    return iy, ix


def _level_candidates(here: MatchLevel, parent: Proposals, ys: torch.Tensor, xs: torch.Tensor, *, level: int,
                      k: int, radius: int, temporal: np.ndarray | None, neighbours: bool,
                      extra_flow: np.ndarray | None, keypoints: KeypointMatches | None,
                      keypoint_radius: float, keypoint_count: int, search: bool) -> torch.Tensor:
    """Candidate flows (Gh, Gw, C, 2) int64 for the grid ``ys`` x ``xs`` of ``level``, in order: carried
    flows ``temporal``, the ``parent`` point's flows doubled, its 8 neighbours' best doubled (``neighbours``),
    the ``extra_flow`` field's value, nearby ``keypoints``' flows, and (``search``) the exhaustive
    search's, window ``radius`` px of the level."""
    iy, ix = _parent_index(parent, ys, xs)
    inherited = parent.flows[iy][:, ix] * 2
    parts = [inherited] if temporal is None else [_carried(temporal, ys, xs), inherited]
    if neighbours:
        parts.append(neighbour_flows(parent.flows)[iy][:, ix] * 2)
    if extra_flow is not None:
        ef = torch.as_tensor(extra_flow, device=ys.device)[ys][:, xs]
        parts.append(torch.round(ef).long()[:, :, None, :])
    if keypoints is not None:
        parts.append(nearby_match_flows(keypoints, ys, xs, level, inherited[:, :, :1], radius=keypoint_radius,
                                        count=keypoint_count))
    if search:  # on every second grid point: each query takes its nearest one's
        found = exhaustive_knn(here.query, here.target, ys[::2], xs[::2], k=k, radius=radius)
        near_y = torch.arange(len(ys), device=ys.device) // 2
        near_x = torch.arange(len(xs), device=ys.device) // 2
        parts.append(found.flows[near_y][:, near_x])
    return torch.cat(parts, 2)


def coarse_to_fine_proposals(pyr1: list, pyr2: list, *, stride: int, k: int, radius: int,
                             finest: int = 0, local: int = 4, propagation: bool = True,
                             extra_flows: list | None = None, coarse_stride: int | None = None,
                             scaled: list | None = None, search_pixels: int = 0,
                             temporal: list | None = None, narrow: bool = False,
                             keypoints: KeypointMatches | None = None, keypoint_radius: float = 12.0,
                             keypoint_count: int = 2) -> Proposals:
    """K candidate flows for the grid with ``stride`` (level-0 pixels) at pyramid level ``finest``.

    pyr1, pyr2: descriptor pyramids (lists of (H_l, W_l, D)), coarsest last. radius: search window
    half-size in level-0 pixels. local: how many of the best inherited candidates get a +-1 px search.
    extra_flows: optional per-level float flow fields (H_l, W_l, 2) whose value at each query is added
    as a candidate (e.g. a coarse DIS flow). coarse_stride: grid spacing (level-0 pixels) of the
    levels above ``finest`` (default ``stride``; larger is faster, each finest point then inherits
    from the nearest coarse one). scaled: optional per-level lists of ``(query descriptors, query
    scale, target descriptors, target scale)`` for scale-tolerant costs (:class:`MatchLevel`).
    search_pixels: finer levels with at most this many pixels also get the exhaustive windowed search
    (at equal scale, on every second grid point; its candidates join the inherited ones), so that
    objects too small to show at the coarsest level are still found. temporal: optional per-level
    stacks (H_l, W_l, n, 2) of candidate flows carried from the previous pair of a video (video mode):
    they join the candidates at every level, the coarsest included, ahead of the inherited ones (so
    the +-1 px search looks around them first). narrow: the coarsest level's window is narrow (video
    mode between full searches): its flows are scored one by one (:func:`scored_window`) instead of
    by the exhaustive search; the finer levels do not inherit the parent's neighbours' flows, and
    those between the coarsest and ``finest`` skip the propagation pass (each point has its carried
    candidates there; the coarsest level and ``finest`` keep it).
    keypoints: matched keypoints (:mod:`.keypoints`); each grid point of level ``finest`` is also
    offered the flows of its ``keypoint_count`` nearest ones within ``keypoint_radius`` level-0 px
    (things too small for the coarse levels, whose motion no point would inherit).
    The returned flows are in pixels of level ``finest``.
    """
    levels = len(pyr1) - 1
    top = _match_level(pyr1, pyr2, scaled, levels)
    h, w = top.query.shape[:2]
    device = top.query.device
    coarse_stride = stride if coarse_stride is None else coarse_stride
    # A frame too small for coarser levels: the coarsest level is ``finest``, whose grid is ``stride`` apart.
    ys, xs = grid_coords(h, w, max(1, (stride if levels == finest else coarse_stride) >> levels), device)
    props = _coarsest_proposals(top, ys, xs, k=k, radius=_level_radius(radius, levels), narrow=narrow,
                                temporal=None if temporal is None else temporal[levels])
    if propagation:
        props = propagate(top, props, k=k)
    for level in range(levels - 1, finest - 1, -1):
        here = _match_level(pyr1, pyr2, scaled, level)
        h, w = here.query.shape[:2]
        ys, xs = grid_coords(h, w, max(1, (stride if level == finest else coarse_stride) >> level), device)
        cands = _level_candidates(
            here, props, ys, xs, level=level, k=k, radius=_level_radius(radius, level),
            temporal=None if temporal is None else temporal[level], neighbours=propagation and not narrow,
            extra_flow=None if extra_flows is None else extra_flows[level],
            keypoints=keypoints if level == finest else None, keypoint_radius=keypoint_radius,
            keypoint_count=keypoint_count, search=h * w <= search_pixels)
        props = local_search(here, ys, xs, cands, k=k, local=local)
        if propagation and (level == finest or not narrow):
            props = propagate(here, props, k=k)
    return props
