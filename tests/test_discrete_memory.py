"""Memory of ``discrete``'s exhaustive window search (``semflow.baseline.discrete.knn``).

Thin frames (short side under ~48 px) are searched at full size: comparing each chunk of queries with
the whole frame took 0.58 GB per 1000 px of the long side. The search now follows the window, and must
find the same neighbours, in the same order, with the same costs, bit for bit.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from semflow.baseline.discrete import knn, proposals


def descriptors(rng: np.random.Generator, h: int, w: int, d: int, levels: int) -> torch.Tensor:
    """L2-normalised (h, w, d) descriptors; with ``levels``, quantised to that many values (many ties)."""
    x = rng.integers(0, levels, (h, w, d)) if levels else rng.normal(size=(h, w, d))
    x = x.astype(np.float32)
    return torch.from_numpy(x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-6).astype(np.float32))


def whole_frame_knn(q: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, target: torch.Tensor, tx: torch.Tensor,
                    ty: torch.Tensor, *, k: int, radius: int, chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference: each chunk of queries against every target pixel, the window as a mask (as the
    search was before it followed the window). Costs and flat indices (N, k)."""
    h, w, d = target.shape
    t = target.reshape(h * w, d)
    t_sq = knn.squared_norms(t)
    qy, qx = (c.reshape(-1) for c in torch.meshgrid(ys, xs, indexing="ij"))
    costs, index = [], []
    for s in range(0, len(q), chunk):
        qs = q[s:s + chunk]
        dist = (knn.squared_norms(qs)[:, None] + t_sq[None] - 2.0 * qs @ t.T).view(len(qs), h, w)
        dist.masked_fill_(((tx[None] - qx[s:s + chunk, None]).abs() > radius)[:, None, :], float("inf"))
        dist.masked_fill_(((ty[None] - qy[s:s + chunk, None]).abs() > radius)[:, :, None], float("inf"))
        c, i = torch.topk(dist.view(len(qs), h * w), k, dim=1, largest=False, sorted=True)
        costs.append(c)
        index.append(i)
    return torch.cat(costs), torch.cat(index)


def check_same_as_whole_frame(h: int, w: int, g: int, radius: int, k: int, levels: int, scale: float,
                              seed: int, budget: int) -> None:
    rng = np.random.default_rng(seed)
    desc1 = descriptors(rng, h, w, 16, levels)
    target = descriptors(rng, max(1, round(h * scale)), max(1, round(w * scale)), 16, levels)
    ys, xs = proposals.grid_coords(h, w, g)
    q = desc1[ys][:, xs].reshape(-1, 16)
    tx = knn.rescale(torch.arange(target.shape[1]), 1.0 / scale)
    ty = knn.rescale(torch.arange(target.shape[0]), 1.0 / scale)
    k = min(k, target.shape[0] * target.shape[1])
    want = whole_frame_knn(q, ys, xs, target, tx, ty, k=k, radius=radius)
    got = knn.window_knn(q, ys, xs, target, tx, ty, k=k, radius=radius, scale=scale, budget=budget)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_a_thin_level_is_searched_in_memory_that_follows_the_window():
    # 4000 x 32 (a 4000 x 16 frame, padded): 1024 queries against the whole level were 524 MB a matrix,
    # and the search peaked ~1.9 GB above its inputs.
    if sys.platform != "linux":
        pytest.skip("ru_maxrss is in kB on Linux only")
    code = textwrap.dedent("""
        import resource
        import numpy as np, torch
        from semflow.baseline.discrete import proposals
        torch.set_num_threads(2)  # tiles grow with the thread count (knn.tile_queries)
        rng = np.random.default_rng(0)
        d1, d2 = (torch.from_numpy(rng.normal(size=(32, 4000, 32)).astype(np.float32)) for _ in range(2))
        ys, xs = proposals.grid_coords(32, 4000, 8)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        props = proposals.exhaustive_knn(d1, d2, ys, xs, k=12, radius=256)
        assert props.flows.shape == (4, 500, 12, 2)
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    grown_mb = float(done.stdout.split()[-1])
    assert grown_mb < 400, f"the search of a 4000 x 32 level took {grown_mb:.0f} MB"


def test_tiles_cover_a_thin_grid_once_with_small_matrices():
    ys, xs = proposals.grid_coords(32, 8000, 8)
    tiles = knn.tiles(ys, xs, 256, (32, 8000))
    count = torch.zeros(len(ys), len(xs), dtype=torch.int64)
    for rows, cols in tiles:
        count[rows[:, None], cols[None]] += 1
        assert len(rows) * len(cols) >= knn.tile_queries()
        box = 32 * min(8000, int(xs[cols[-1]] - xs[cols[0]]) + 2 * 256 + 1)
        assert len(rows) * len(cols) * box <= max(knn.DENSE_ELEMENTS, knn.tile_queries() * box)
    assert torch.all(count == 1) and len(tiles) > 1


@pytest.mark.parametrize("h, w, g, radius, k, levels, scale", [
    (32, 400, 4, 64, 12, 0, 1.0),     # a thin level, a window wider than it
    (24, 300, 2, 20, 8, 2, 1.0),      # many tied distances
    (16, 500, 1, 1, 16, 2, 1.0),      # windows of 9 pixels or fewer, under k: their +inf entries too
    (40, 160, 3, 24, 12, 3, 0.84),    # against a frame resized by 0.84
    (300, 16, 2, 33, 12, 2, 1.0),     # a tall level
    (60, 90, 1, 5, 16, 0, 1.0),       # a wider level, several tiles each way
])
def test_tiled_search_equals_the_whole_frame_search(h, w, g, radius, k, levels, scale):
    check_same_as_whole_frame(h, w, g, radius, k, levels, scale, seed=h + w, budget=1 << 15)


def test_a_small_last_chunk_is_searched_as_before():
    # 32 x 129 = 4 x 1024 + 32 queries: the last 32 (too few for a tile) are searched against the whole frame.
    check_same_as_whole_frame(32, 129, 1, 12, 12, 2, 1.0, seed=3, budget=1 << 15)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(8, 40), w=st.integers(60, 240), g=st.integers(1, 4), radius=st.integers(1, 48),
       k=st.sampled_from([8, 12, 16]), levels=st.sampled_from([0, 2, 3]),
       scale=st.sampled_from([1.0, 0.84]), seed=st.integers(0, 1000))
def test_tiled_search_equals_the_whole_frame_search_on_random_levels(h, w, g, radius, k, levels, scale, seed):
    check_same_as_whole_frame(h, w, g, radius, k, levels, scale, seed, budget=1 << 14)


def test_exhaustive_knn_on_a_thin_level_matches_the_whole_frame_search():
    # Tiled at the real budget (1024 x 48000 floats would be 197 MB); the flows and costs as before.
    rng = np.random.default_rng(7)
    desc1, desc2 = descriptors(rng, 24, 2000, 32, 3), descriptors(rng, 24, 2000, 32, 3)
    ys, xs = proposals.grid_coords(24, 2000, 8)
    props = proposals.exhaustive_knn(desc1, desc2, ys, xs, k=12, radius=256)
    costs, index = whole_frame_knn(desc1[ys][:, xs].reshape(-1, 32), ys, xs, desc2, torch.arange(2000),
                                   torch.arange(24), k=12, radius=256)
    qy, qx = torch.meshgrid(ys, xs, indexing="ij")
    flows = torch.stack([index % 2000 - qx.reshape(-1, 1), index // 2000 - qy.reshape(-1, 1)], 2)
    assert torch.equal(props.flows, flows.view(3, 250, 12, 2))
    assert torch.isfinite(costs).all()  # (each window holds more than k pixels)
    assert torch.equal(props.costs, costs.view(3, 250, 12))
