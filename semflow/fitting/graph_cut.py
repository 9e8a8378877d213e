"""Labelling pixels by graph cuts: each pixel takes one of K labels (motions), minimising

    sum_p costs[l_p, p] + sum_pq w_pq [l_p != l_q]

over 4-connected neighbours, with contrast-sensitive Potts weights (:func:`pairwise_weights`), by
alpha-expansion (:func:`assign_motions`: repeated binary graph cuts with PyMaxflow, each move exact
since Potts is a metric); :func:`solve_assignment` adds a coarse-to-fine pass for large boxes.

Used by the motion split of thing regions (:mod:`semflow.layers.motions`), the sharpening of motion
boundaries (:mod:`semflow.layers.boundary_layers`) and discrete's search for missed motions.
Costs are (K, h, w) float; labels (h, w) int32; guides float32 RGB (h, w, 3).
"""

from __future__ import annotations

import cv2
import maxflow
import numpy as np

from semflow.fitting.morphology import dilate
from semflow.fitting.motion_fit import MotionParams
from semflow.warp import channel_sum

__all__ = ["assign_motions", "label_changes", "pairwise_weights", "solve_assignment"]


def pairwise_weights(image: np.ndarray, smoothness: float) -> tuple[np.ndarray, np.ndarray]:
    """Contrast-sensitive Potts weights to the right (h, w-1) and down (h-1, w) neighbours of ``image``
    (h, w, 3): ``smoothness * exp(-|dI|^2 / (2 mean |dI|^2))``."""
    img = image.astype(np.float32)
    dx = channel_sum((img[:, 1:] - img[:, :-1]) ** 2)
    dy = channel_sum((img[1:] - img[:-1]) ** 2)
    beta = 1.0 / (2.0 * max(float(np.concatenate([dx.ravel(), dy.ravel()]).mean()), 1e-6))
    return smoothness * np.exp(-beta * dx), smoothness * np.exp(-beta * dy)


def label_changes(labels: np.ndarray) -> np.ndarray:
    """(h, w) bool: pixels of ``labels`` (h, w) whose right or lower neighbour has another label."""
    change = np.zeros(labels.shape, bool)
    change[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    change[1:] |= labels[1:] != labels[:-1]
    return change


def _potts_energy(costs: np.ndarray, weights: tuple[np.ndarray, np.ndarray], labels: np.ndarray) -> float:
    """``sum_p costs[l_p, p] + sum_pq w_pq [l_p != l_q]`` of ``labels`` (h, w), for ``costs`` (K, h, w)
    and the Potts ``weights`` to the right and down neighbours."""
    wr, wd = weights
    unary = costs.reshape(len(costs), -1)[labels.ravel(), np.arange(labels.size)].sum()
    return float(unary + (wr * (labels[:, 1:] != labels[:, :-1])).sum() + (wd * (labels[1:] != labels[:-1])).sum())


def _free_edges(free: np.ndarray, weights: tuple[np.ndarray, np.ndarray]) -> list[list[tuple[np.ndarray, ...]]]:
    """The neighbour edges with a free end, which stay the same between moves: per direction (right,
    down), three groups -- both ends free (the graph's edges), only the left/top end p free, only the
    right/bottom end q free (a fixed neighbour's label enters the free one's costs) -- each as (p, q,
    node of p, node of q, weight), (E,) arrays: the ends' flat pixel indices, their nodes in the graph
    (-1 where fixed) and the Potts weights. ``free`` (h, w) bool: the pixels that may change."""
    h, w = free.shape
    node = np.full(h * w, -1, np.int64)  # each free pixel's node in the graph
    node[free.ravel()] = np.arange(int(free.sum()))
    pixel = np.arange(h * w).reshape(h, w)
    wr, wd = weights
    directions = []
    for wgt, p, q in ((wr, np.s_[:, :-1], np.s_[:, 1:]), (wd, np.s_[:-1], np.s_[1:])):
        fp, fq = free[p], free[q]
        directions.append([(pixel[p][sel], pixel[q][sel], node[pixel[p][sel]], node[pixel[q][sel]], wgt[sel])
                           for sel in (fp & fq, fp & ~fq, fq & ~fp)])
    return directions


def _move_graph(costs: np.ndarray, labels: np.ndarray, alpha: int, free: np.ndarray,
                edges: list[list[tuple[np.ndarray, ...]]]) -> tuple[maxflow.GraphFloat, np.ndarray]:
    """The binary graph of the move to ``alpha`` from ``labels`` (h, w), and its nodes (n,), one per
    ``free`` pixel (x = 1: it takes ``alpha``, x = 0: it keeps its label). Terminal edges: each choice's
    unary cost plus the Potts terms with fixed neighbours, net of the cheaper choice; ``edges`` (from
    :func:`_free_edges`) between free pixels."""
    flat = costs.reshape(len(costs), -1)
    free_pixels = np.flatnonzero(free)
    nodes = np.arange(len(free_pixels))
    lab = labels.ravel()
    take = costs[alpha].ravel()[free_pixels].astype(np.float64)  # cost of x = 1 (take alpha)
    keep = flat[lab[free_pixels], free_pixels].astype(np.float64)  # cost of x = 0 (keep)
    g = maxflow.Graph[float]()
    g.add_nodes(len(free_pixels))
    for both, only_p, only_q in edges:
        # both free: E = e00 + (e10 - e00) x_p - e10 x_q + (e01 + e10 - e00) (1 - x_p) x_q   (e11 = 0)
        ip, iq, node_p, node_q, wgt = both
        lp, lq = lab[ip], lab[iq]
        e00 = wgt * (lp != lq)
        e01 = wgt * (lp != alpha)  # p keeps, q takes alpha
        e10 = wgt * (lq != alpha)
        take[node_p] += np.maximum(e10 - e00, 0)
        keep[node_p] += np.maximum(e00 - e10, 0)
        keep[node_q] += e10
        g.add_edges(node_p, node_q, e01 + e10 - e00, np.zeros(len(node_p)))
        # one end fixed: the free end pays the edge for its own choice
        ip, iq, node_p, _, wgt = only_p
        lp, lq = lab[ip], lab[iq]
        take[node_p] += wgt * (lq != alpha)
        keep[node_p] += wgt * (lp != lq)
        ip, iq, _, node_q, wgt = only_q
        lp, lq = lab[ip], lab[iq]
        take[node_q] += wgt * (lp != alpha)
        keep[node_q] += wgt * (lp != lq)
    base = np.minimum(take, keep)
    g.add_grid_tedges(nodes, take - base, keep - base)
    return g, nodes


def _expansion_move(costs: np.ndarray, labels: np.ndarray, alpha: int, free: np.ndarray,
                    edges: list[list[tuple[np.ndarray, ...]]]) -> np.ndarray:
    """``labels`` (h, w) after the best move to ``alpha``: each ``free`` pixel either keeps its label
    or takes ``alpha``, as the minimum cut of :func:`_move_graph` says. A new array."""
    g, nodes = _move_graph(costs, labels, alpha, free, edges)
    g.maxflow()
    proposal = labels.copy()
    proposal[free] = np.where(g.get_grid_segments(nodes), alpha, labels[free])
    return proposal


def assign_motions(costs: np.ndarray, weights: tuple[np.ndarray, np.ndarray], *, cycles: int = 2,
                   labels: np.ndarray | None = None, free: np.ndarray | None = None) -> np.ndarray:
    """Labels (h, w) int32 minimising ``sum_p costs[l_p, p] + sum_pq w_pq [l_p != l_q]`` by alpha-expansion.

    ``costs`` (K, h, w) float; ``weights``: Potts weights to the right and down neighbours (see
    :func:`pairwise_weights`); ``labels``: a start (default: the per-pixel cheapest); ``free`` (h, w)
    bool, optional: only these pixels may change (the graph has a node for each of them alone; a fixed
    neighbour's label enters its neighbours' costs). At most ``cycles`` rounds of a move to each label,
    each kept when it lowers the energy; they stop after a round that kept none.
    """
    k, h, w = costs.shape
    labels = np.argmin(costs, axis=0).astype(np.int32) if labels is None else labels.astype(np.int32).copy()
    free = np.ones((h, w), bool) if free is None else free.astype(bool)
    if k == 1 or int(free.sum()) == 0:
        return labels
    edges = _free_edges(free, weights)
    current = _potts_energy(costs, weights, labels)
    for _ in range(cycles):
        improved = False
        for alpha in range(k):
            proposal = _expansion_move(costs, labels, alpha, free, edges)
            e = _potts_energy(costs, weights, proposal)
            if e < current - 1e-6:
                labels, current, improved = proposal, e, True
        if not improved:
            break
    return labels


def solve_assignment(costs: np.ndarray, guide: np.ndarray, params: MotionParams,
                     labels: np.ndarray | None = None, free: np.ndarray | None = None) -> np.ndarray:
    """:func:`assign_motions` of ``costs`` (K, h, w) with contrast-sensitive weights from ``guide``
    (h, w, 3); a start ``labels`` (h, w) optional; ``free`` (h, w) bool, optional: only these pixels
    take part (the others keep their start, by default their cheapest motion).

    Over more than ``params.full_pixels`` pixels the graph cut runs at half resolution first (costs
    summed over 2x2 blocks, weights doubled: each coarse edge stands for two fine ones); the labels,
    brought back to full resolution, are then redone by a graph cut at full resolution on the pixels
    within ``params.refine_band`` px of a label change, the others kept as they are. A graph cut moves a
    whole misplaced strip of boundary at once, where pixel-by-pixel updates cannot (each pixel of a
    1 px strip pays three Potts edges to leave it).
    """
    k, h, w = costs.shape
    if k == 1:
        return np.zeros((h, w), np.int32)
    weights = pairwise_weights(guide, params.smoothness)
    if free is not None and labels is None:
        labels = np.argmin(costs, axis=0).astype(np.int32)
    if h * w <= params.full_pixels or min(h, w) < 8:
        return assign_motions(costs, weights, cycles=params.cycles, labels=labels, free=free)
    size = (max(1, w // 2), max(1, h // 2))
    small = np.stack([cv2.resize(c.astype(np.float32), size, interpolation=cv2.INTER_AREA) * 4.0 for c in costs])
    small_guide = cv2.resize(guide.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    start = None if labels is None else cv2.resize(labels.astype(np.int32), size, interpolation=cv2.INTER_NEAREST)
    small_free = None if free is None else cv2.resize(free.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
    coarse = assign_motions(small, pairwise_weights(small_guide, 2.0 * params.smoothness), cycles=params.cycles,
                            labels=start, free=small_free)
    fine = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_NEAREST).astype(np.int32)
    if free is not None:
        fine = np.where(free, fine, labels)
    refine = dilate(label_changes(fine), params.refine_band)
    if free is not None:
        refine &= free
    if not refine.any():
        return fine
    return assign_motions(costs, weights, cycles=1, labels=fine, free=refine)
