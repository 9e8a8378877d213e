"""A discrete CRF over per-point candidate flows, solved by block coordinate descent.

Energy of a labelling ``x`` (one candidate index per grid point)::

    E(x) = sum_i U_i(x_i) + sum_(i,j) w_ij * lam * min(|f_i(x_i) - f_j(x_j)|_1, tau)

over the 4-connected grid: ``U`` is the (truncated) matching cost, ``f_i(k)`` the k-th candidate flow
of point i. Block coordinate descent alternates between all rows and all columns: each row (column) is
a chain, solved exactly by dynamic programming (min-sum Viterbi) with the other direction's
neighbours held fixed. Every step can only lower the energy. All chains are solved at once.
"""

from __future__ import annotations

import torch


def truncated_l1(fa: torch.Tensor, fb: torch.Tensor, tau: float) -> torch.Tensor:
    """Pairwise cost table ``min(|fa_k - fb_l|_1, tau)``: fa (..., K, 2), fb (..., L, 2) -> (..., K, L)."""
    diff = (fa[..., :, None, :] - fb[..., None, :, :]).abs().sum(-1)
    return diff.clamp(max=tau)


def chain_dp(unary: torch.Tensor, pairwise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact minimum of ``sum_t unary[t, x_t] + sum_t pairwise[t, x_t, x_t+1]`` for a batch of chains.

    unary: (N, T, K); pairwise: (N, T-1, K, K), entry ``[n, t, k, l]`` the cost of labels k at t and
    l at t+1. Returns ``(labels (N, T) int64, energy (N,))``.
    """
    n, t_len, k = unary.shape
    if pairwise.shape != (n, max(t_len - 1, 0), k, k):
        raise ValueError(f"pairwise has shape {tuple(pairwise.shape)}, expected {(n, t_len - 1, k, k)}")
    message = unary[:, 0]
    back = torch.empty(n, max(t_len - 1, 0), k, dtype=torch.int64, device=unary.device)
    for t in range(1, t_len):
        best, arg = (message[:, :, None] + pairwise[:, t - 1]).min(1)
        back[:, t - 1] = arg
        message = best + unary[:, t]
    energy, last = message.min(1)
    labels = torch.empty(n, t_len, dtype=torch.int64, device=unary.device)
    labels[:, -1] = last
    for t in range(t_len - 2, -1, -1):
        labels[:, t] = back[:, t].gather(1, labels[:, t + 1:t + 2])[:, 0]
    return labels, energy


def _take(flows: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """flows (..., K, 2), labels (...) -> the chosen flows (..., 2)."""
    return flows.gather(-2, labels[..., None, None].expand(*labels.shape, 1, 2))[..., 0, :]


def grid_energy(unary: torch.Tensor, flows: torch.Tensor, labels: torch.Tensor, *, lam: float, tau: float,
                weights_x: torch.Tensor | None = None, weights_y: torch.Tensor | None = None) -> float:
    """Energy of ``labels`` (H, W) for unary (H, W, K), flows (H, W, K, 2) and edge weights.

    weights_x: (H, W-1) on horizontal edges, weights_y: (H-1, W) on vertical ones (default 1).
    """
    f = _take(flows.float(), labels)
    e = unary.gather(2, labels[..., None]).sum()
    dx = (f[:, 1:] - f[:, :-1]).abs().sum(-1).clamp(max=tau)
    dy = (f[1:] - f[:-1]).abs().sum(-1).clamp(max=tau)
    if weights_x is not None:
        dx = dx * weights_x
    if weights_y is not None:
        dy = dy * weights_y
    return float(e + lam * (dx.sum() + dy.sum()))


def _solve_rows(unary: torch.Tensor, labels: torch.Tensor, along: torch.Tensor, across: torch.Tensor
                ) -> torch.Tensor:
    """One exact DP pass over every row, the rows above and below held at ``labels``.

    along: (H, W-1, K, K) pairwise tables between row neighbours; across: (H-1, W, K, K) between a
    point (first label index) and the point below it (second).
    """
    h, w, k = unary.shape
    cost = unary.clone()
    if h > 1:
        # Cost of each candidate against the fixed label of the point above / below.
        above = labels[:-1, :, None, None].expand(h - 1, w, 1, k)
        cost[1:] += across.gather(2, above)[:, :, 0, :]
        below = labels[1:, :, None, None].expand(h - 1, w, k, 1)
        cost[:-1] += across.gather(3, below)[..., 0]
    new_labels, _ = chain_dp(cost, along)
    return new_labels


def solve_bcd(unary: torch.Tensor, flows: torch.Tensor, *, lam: float, tau: float, sweeps: int = 3,
              weights_x: torch.Tensor | None = None, weights_y: torch.Tensor | None = None,
              labels: torch.Tensor | None = None) -> torch.Tensor:
    """Minimise the grid CRF energy by block coordinate descent; returns labels (H, W) int64.

    unary: (H, W, K) costs; flows: (H, W, K, 2) candidate flows; lam, tau: smoothness weight and
    truncation (pixels); one sweep = all rows, then all columns. Starts from ``labels`` or the
    cheapest candidate of each point.
    """
    h, w, k = unary.shape
    flows = flows.float()
    # Pairwise tables, built once: horizontal (H, W-1, K, K) and vertical (H-1, W, K, K) edges.
    horizontal = lam * truncated_l1(flows[:, :-1], flows[:, 1:], tau)
    vertical = lam * truncated_l1(flows[:-1], flows[1:], tau)
    if weights_x is not None:
        horizontal *= weights_x[..., None, None]
    if weights_y is not None:
        vertical *= weights_y[..., None, None]
    horizontal_t = vertical.transpose(0, 1)
    vertical_t = horizontal.transpose(0, 1)
    unary_t = unary.transpose(0, 1)
    if labels is None:
        labels = unary.argmin(2)
    for _ in range(sweeps):
        labels = _solve_rows(unary, labels, horizontal, vertical)
        labels = _solve_rows(unary_t, labels.T, horizontal_t, vertical_t).T
    return labels.contiguous()


def select(flows: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The flow each point's label picks: flows (H, W, K, 2), labels (H, W) -> (H, W, 2)."""
    return _take(flows, labels)
