"""Forward-backward consistency and small-segment removal for grid matches.

A grid here is a regular lattice of frame points with spacing ``stride`` pixels starting at (0, 0);
grid flows are float arrays (Gh, Gw, 2) in pixels (u, v).
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from semflow.warp import sample_points


def sample_grid_flow(grid_flow: np.ndarray, x: np.ndarray, y: np.ndarray, stride: int) -> np.ndarray:
    """Bilinearly sample a grid flow (Gh, Gw, 2) at image positions ``x``, ``y`` (pixels, any shape)."""
    gx = np.asarray(x, np.float32) / stride
    gy = np.asarray(y, np.float32) / stride
    return sample_points(np.ascontiguousarray(grid_flow, dtype=np.float32), gx, gy)


def forward_backward_error(forward: np.ndarray, backward: np.ndarray, stride: int,
                           image_size: tuple[int, int]) -> np.ndarray:
    """|F(p) + B(p + F(p))| at every grid point (Gh, Gw), in pixels; ``inf`` where p + F(p) leaves the image.

    forward: grid flow of frame 1 -> 2; backward: grid flow of frame 2 -> 1 on the same lattice;
    image_size: (H, W) of the frames.
    """
    gh, gw = forward.shape[:2]
    ys, xs = np.mgrid[0:gh, 0:gw].astype(np.float32) * stride
    tx, ty = xs + forward[..., 0], ys + forward[..., 1]
    h, w = image_size
    back = sample_grid_flow(backward, tx, ty, stride)
    err = np.linalg.norm(forward + back, axis=2)
    outside = (tx < 0) | (tx > w - 1) | (ty < 0) | (ty > h - 1)
    err[outside] = np.inf
    return err


def remove_small_segments(grid_flow: np.ndarray, valid: np.ndarray, *, max_diff: float,
                          min_size: int) -> np.ndarray:
    """Drop valid points whose segment has fewer than ``min_size`` points.

    Segments are 4-connected groups of valid grid points whose neighbours' flows differ by at most
    ``max_diff`` pixels in each component. Returns the new valid mask (Gh, Gw) bool.
    """
    gh, gw = valid.shape
    idx = np.arange(gh * gw).reshape(gh, gw)
    rows, cols = [], []
    for a, b, fa, fb, va, vb in (
        (idx[:, :-1], idx[:, 1:], grid_flow[:, :-1], grid_flow[:, 1:], valid[:, :-1], valid[:, 1:]),
        (idx[:-1], idx[1:], grid_flow[:-1], grid_flow[1:], valid[:-1], valid[1:]),
    ):
        link = va & vb & (np.abs(fa - fb).max(axis=-1) <= max_diff)
        rows.append(a[link])
        cols.append(b[link])
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r), np.int8), (r, c)), shape=(gh * gw, gh * gw))
    _, comp = connected_components(graph, directed=False)
    sizes = np.bincount(comp, minlength=comp.max() + 1)
    return valid & (sizes[comp] >= min_size).reshape(gh, gw)
