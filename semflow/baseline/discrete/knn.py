"""Exact k nearest neighbours inside a square search window (the exhaustive search of ``proposals``).

Each query descriptor (a grid point of frame 1) is compared with every pixel of frame 2 within
``|dx|, |dy| <= radius`` (squared L2 distance) and keeps the ``k`` nearest.

Memory: one chunk of queries against the whole frame is a chunk x H x W float matrix (786 MB for 1024
queries on a 6000x32 level: thin frames are searched at full size). Where that matrix would be large,
the queries are cut into tiles of nearby grid points, and each tile is compared only with the pixels of
the bounding box of its windows (:func:`tiles`), so memory follows the window, not the frame.

The tiles give the same neighbours, in the same order, with the same costs, bit for bit:

- ``torch.topk`` on the CPU (for rows of at least 64 k entries) keeps a heap of a row's first k
  entries and lets a later entry in only if it is strictly smaller than the heap's worst. Pixels outside
  the window cost +inf, so they never get in. A tile's row holds the frame's first k pixels, then the
  box's pixels in frame order: the same heap sees the same finite entries in the same order.
- The distances are the same expression; each query's squared norm is computed in the same chunk as
  before. A matrix product gives each entry the same bits whatever its size, except small products
  (measured with MKL: a few rows per thread, or under about 600 columns), which use other kernels and
  round differently: each tile has at least :func:`tile_queries` queries and :data:`TILE_TARGETS`
  targets, and a last chunk of fewer queries is still compared with the whole frame, as before.

Only CPU tensors are tiled (CUDA's ``topk`` breaks ties another way).
"""

from __future__ import annotations

import torch

DENSE_ELEMENTS = 1 << 23
"""Distance matrices (queries x target pixels) up to this many floats (32 MB) are computed whole."""

TILE_QUERIES = 64
"""The fewest queries in a tile with up to 8 threads (see :func:`tile_queries`)."""

TILE_TARGETS = 2048
"""The fewest target pixels a tile is compared with (its box is widened to reach it)."""


def rescale(coords: torch.Tensor, scale: float) -> torch.Tensor:
    """Integer pixel coordinates of an image in the same image resized by ``scale`` (pixel centres)."""
    if scale == 1.0:
        return coords
    return torch.round((coords.float() + 0.5) * scale - 0.5).long()


def squared_norms(desc: torch.Tensor) -> torch.Tensor:
    """Squared L2 norms along the last axis (``vector_norm`` is several times faster than a product-sum)."""
    return torch.linalg.vector_norm(desc, dim=-1).square_()


def tile_queries() -> int:
    """The fewest queries in a tile: 8 per torch thread, at least :data:`TILE_QUERIES` (fewer rows per
    thread may change the product's rounding, see the module docstring)."""
    return max(TILE_QUERIES, 8 * torch.get_num_threads())


def _widen(lo: int, hi: int, need: int, size: int) -> tuple[int, int]:
    """The range [lo, hi) grown on both sides to at least ``need`` long, within [0, size)."""
    need = min(need, size)
    if hi - lo >= need:
        return lo, hi
    lo = max(0, min(lo - (need - (hi - lo)) // 2, size - need))
    return lo, lo + need


def tiles(ys: torch.Tensor, xs: torch.Tensor, radius: int, size: tuple[int, int], scale: float = 1.0, *,
          budget: int = DENSE_ELEMENTS) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Blocks (grid rows, grid columns) covering the grid ``ys`` x ``xs`` (pixels of frame 1), each with
    at least :func:`tile_queries` points where the grid has that many, halved (along the side longer in
    pixels) until queries x box pixels is at most ``budget``. size: the target frame (h, w), ``scale``
    times frame 1's size."""
    gh, gw = len(ys), len(xs)
    gy = float(ys[-1] - ys[0]) / max(1, gh - 1)
    gx = float(xs[-1] - xs[0]) / max(1, gw - 1)

    def box(th: int, tw: int) -> float:  # target pixels around th x tw grid points
        return (min(size[0], ((th - 1) * gy + 2 * radius + 1) * scale + 1)
                * min(size[1], ((tw - 1) * gx + 2 * radius + 1) * scale + 1))

    def smallest(th: int, tw: int) -> int:  # the fewest points of a block once split evenly
        return gh // -(-gh // th) * (gw // -(-gw // tw))

    fewest = tile_queries()
    th, tw = gh, gw
    while th * tw * box(th, tw) > budget and th * tw > 1:
        taller = (th - 1) * gy >= (tw - 1) * gx
        nh, nw = (-(-th // 2), tw) if (taller and th > 1) or tw == 1 else (th, -(-tw // 2))
        if smallest(nh, nw) < fewest:
            break
        th, tw = nh, nw
    rows = torch.tensor_split(torch.arange(gh, device=ys.device), -(-gh // th))
    cols = torch.tensor_split(torch.arange(gw, device=xs.device), -(-gw // tw))
    return [(r, c) for r in rows for c in cols]


def _distances(qs: torch.Tensor, q_sq: torch.Tensor, t: torch.Tensor, t_sq: torch.Tensor) -> torch.Tensor:
    """Squared L2 distances (n, m) from queries ``qs`` (n, D) to targets ``t`` (m, D), given their
    squared norms (n,), (m,): ``q_sq + t_sq - 2 q.t`` as before, the subtraction in place (less memory)."""
    return (q_sq[:, None] + t_sq[None]).sub_(2.0 * qs @ t.T)


def _whole_frame(qs: torch.Tensor, q_sq: torch.Tensor, qx: torch.Tensor, qy: torch.Tensor,
                 t: torch.Tensor, t_sq: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor, *, k: int, radius: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Costs and flat target indices (n, k) of queries ``qs`` (n, D) at ``qx``, ``qy`` (n,) among all
    the targets ``t`` (H * W, D) at columns ``tx`` (W,) and rows ``ty`` (H,), out of the window +inf."""
    n, h, w = len(qs), len(ty), len(tx)
    dist = _distances(qs, q_sq, t, t_sq).view(n, h, w)
    # Out of the window: each query's columns out of reach, then its rows out of reach. (Written through
    # their indices: the same entries as masked_fill_ with the broadcast masks, which reads every entry.)
    query, col = ((tx[None] - qx[:, None]).abs() > radius).nonzero(as_tuple=True)
    dist[query, :, col] = float("inf")
    query, row = ((ty[None] - qy[:, None]).abs() > radius).nonzero(as_tuple=True)
    dist[query, row] = float("inf")
    return torch.topk(dist.view(n, h * w), k, dim=1, largest=False, sorted=True)


def _in_box(qs: torch.Tensor, q_sq: torch.Tensor, qx: torch.Tensor, qy: torch.Tensor,
            t: torch.Tensor, t_sq: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor, *, k: int, radius: int
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_whole_frame` for nearby queries: only against the frame's first ``k`` targets and those of
    the box around the queries' windows (both in frame order), which gives the same result."""
    w = len(tx)
    c0, c1 = (int(torch.searchsorted(tx, v, right=right)) for v, right in
              ((qx.min() - radius, False), (qx.max() + radius, True)))
    r0, r1 = (int(torch.searchsorted(ty, v, right=right)) for v, right in
              ((qy.min() - radius, False), (qy.max() + radius, True)))
    need = max(TILE_TARGETS, 64 * k)  # enough for MKL's usual kernels, and for topk's heap (see above)
    c0, c1 = _widen(c0, c1, -(-need // max(1, r1 - r0)), w)
    r0, r1 = _widen(r0, r1, -(-need // (c1 - c0)), len(ty))
    index = (torch.arange(r0, r1, device=t.device)[:, None] * w + torch.arange(c0, c1, device=t.device)).reshape(-1)
    index = torch.cat([torch.arange(k, device=t.device), index[index >= k]])
    dist = _distances(qs, q_sq, t.index_select(0, index), t_sq[index])
    for pos, at in ((tx[index % w][None], qx[:, None]), (ty[index // w][None], qy[:, None])):
        dist.masked_fill_((pos < at - radius) | (pos > at + radius), float("inf"))
    cost, i = torch.topk(dist, k, dim=1, largest=False, sorted=True)
    return cost, index[i]


def window_knn(q: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, target: torch.Tensor, tx: torch.Tensor,
               ty: torch.Tensor, *, k: int, radius: int, chunk: int = 1024, scale: float = 1.0,
               budget: int = DENSE_ELEMENTS) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest targets of each query within ``|dx|, |dy| <= radius``, nearest first.

    q: (Gh * Gw, D) descriptors of the grid points ``ys`` (Gh,) x ``xs`` (Gw,) (pixels of frame 1),
    row-major. target: (H, W, D) descriptors of frame 2 (``scale`` times frame 1's size); tx (W,), ty
    (H,): its columns and rows in pixels of frame 1 (non-decreasing). Returns costs (Gh * Gw, k) float32
    (squared L2; +inf where a window has fewer than k pixels) and flat indices (Gh * Gw, k) into the
    target. Queries are searched ``chunk`` at a time against the whole frame, or in tiles (module
    docstring) where that matrix would exceed ``budget`` floats.
    """
    h, w, d = target.shape
    t = target.reshape(h * w, d)
    t_sq = squared_norms(t)
    qy, qx = (c.reshape(-1) for c in torch.meshgrid(ys, xs, indexing="ij"))
    q_sq = torch.cat([squared_norms(q[s:s + chunk]) for s in range(0, len(q), chunk)])  # as each chunk had
    costs = torch.empty(len(q), k, device=t.device)
    index = torch.empty(len(q), k, dtype=torch.int64, device=t.device)
    options = dict(k=k, radius=radius)
    starts, fewest = range(0, len(q), chunk), tile_queries()
    if not (t.device.type != "cpu" or len(q) < fewest or h * w < max(TILE_TARGETS, 64 * k)
            or min(chunk, len(q)) * h * w <= budget):
        for rows, cols in tiles(ys, xs, radius, (h, w), scale, budget=budget):
            sel = (rows[:, None] * len(xs) + cols[None]).reshape(-1)
            costs[sel], index[sel] = _in_box(q[sel], q_sq[sel], qx[sel], qy[sel], t, t_sq, tx, ty, **options)
        rest = len(q) % chunk  # a small last chunk: as before, against the whole frame (see above)
        starts = [len(q) - rest] if 0 < rest < fewest else []
    for s in starts:
        part = slice(s, s + chunk)
        costs[part], index[part] = _whole_frame(q[part], q_sq[part], qx[part], qy[part], t, t_sq, tx, ty, **options)
    return costs, index
