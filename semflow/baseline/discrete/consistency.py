"""Forward-backward consistency and small-segment removal for grid matches.

A grid here is a regular lattice of frame points with spacing ``stride`` pixels starting at (0, 0);
grid flows are float arrays (Gh, Gw, 2) in pixels (u, v).
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

_MAP_COLUMNS = 1024


def sample_grid_flow(grid_flow: np.ndarray, x: np.ndarray, y: np.ndarray, stride: int) -> np.ndarray:
    """Bilinearly sample a grid flow (Gh, Gw, 2) at image positions ``x``, ``y`` (pixels, any shape)."""
    gx = (np.asarray(x, np.float32) / stride).reshape(-1)
    gy = (np.asarray(y, np.float32) / stride).reshape(-1)
    # cv2.remap takes maps of fewer than 32767 rows and columns: lay the points out as rows of
    # _MAP_COLUMNS (a single column failed above 32767 points, i.e. frames above ~0.5 Mpx at stride 4).
    count = gx.size
    rows = max(1, -(-count // _MAP_COLUMNS))
    pad = rows * _MAP_COLUMNS - count
    map_x = np.pad(gx, (0, pad)).reshape(rows, _MAP_COLUMNS)
    map_y = np.pad(gy, (0, pad)).reshape(rows, _MAP_COLUMNS)
    out = cv2.remap(np.ascontiguousarray(grid_flow, dtype=np.float32), map_x, map_y, cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(-1, 2)[:count].reshape(*np.shape(x), 2)


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
