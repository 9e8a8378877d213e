"""Keypoint matches as extra candidates: whole-frame SIFT matches for small things the search misses.

The coarse-to-fine search (``proposals``) finds a flow at a fine level only near the flows inherited
from the coarser ones. A thing of a few thousand pixels moving 15-30 px against its surroundings is
invisible at the coarse levels (their 16 px descriptor patches span 64+ px of the frame and see
mostly the surroundings), so none of its grid points inherits its motion and the finest level never
tries it. Keypoint matches do not depend on the pyramid: SIFT keypoints (with a low contrast
threshold, so that weakly textured things get some), matched over the whole frame to their mutual
nearest neighbour and kept when they pass Lowe's ratio test. Each grid point of the finest level is
then offered the flows of the nearest matches around it (:func:`nearby_match_flows`); they are
scored with the same descriptors as every other candidate, so a match that does not fit a point is
not chosen there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

# torch and scipy are imported where they are used: `semflow --help` and the listing of methods import
# this module (for MAX_KEYPOINTS) and stay fast.
if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class KeypointMatches:
    """Matched keypoints: ``points`` (N, 2) float32 (x, y) in the query frame, ``flows`` (N, 2) float32
    their displacement to the target frame (px)."""

    points: np.ndarray
    flows: np.ndarray

    def __len__(self) -> int:
        return len(self.points)

    def reversed(self) -> KeypointMatches:
        """The same matches from the target frame back to the query frame."""
        return KeypointMatches(self.points + self.flows, -self.flows)


def _empty() -> KeypointMatches:
    return KeypointMatches(np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32))


def _mutual_ratio_matches(d1: torch.Tensor, d2: torch.Tensor, ratio: float, chunk: int = 2048
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (i, j) of descriptor pairs that are each other's nearest neighbours (L2) and whose
    nearest distance is below ``ratio`` times the second nearest (d1's side)."""
    import torch

    sq2 = torch.linalg.vector_norm(d2, dim=1).square_()
    best = torch.empty(len(d1), 2, device=d1.device)
    nearest = torch.empty(len(d1), dtype=torch.long, device=d1.device)
    col_min = torch.full((len(d2),), float("inf"), device=d1.device)
    col_arg = torch.zeros(len(d2), dtype=torch.long, device=d1.device)
    # Every chunk's distances in the same two buffers: new ones each time cost more than the product.
    product_rows = torch.empty(min(chunk, len(d1)), len(d2), device=d1.device)
    dist_rows = torch.empty_like(product_rows)
    for s in range(0, len(d1), chunk):
        q = d1[s:s + chunk]
        product, dist = product_rows[:len(q)], dist_rows[:len(q)]
        torch.mm(q, d2.T, out=product)
        torch.add(torch.linalg.vector_norm(q, dim=1).square_()[:, None], sq2[None], out=dist).sub_(product, alpha=2.0)
        b, i = torch.topk(dist, 2, dim=1, largest=False)
        best[s:s + chunk], nearest[s:s + chunk] = b, i[:, 0]
        m, a = dist.min(0)
        better = m < col_min
        col_min = torch.where(better, m, col_min)
        col_arg = torch.where(better, a + s, col_arg)
    best = best.clamp_(min=0.0).sqrt_()
    idx = torch.arange(len(d1), device=d1.device)
    keep = (best[:, 0] < ratio * best[:, 1]) & (col_arg[nearest] == idx)
    return idx[keep], nearest[keep]


MAX_KEYPOINTS = 8000
"""At most this many keypoints per frame (the strongest): the matching costs their number squared."""


@dataclass(frozen=True)
class FrameKeypoints:
    """SIFT keypoints of one frame: ``points`` (N, 2) float32 (x, y), ``descriptors`` (N, 128) float32,
    found with contrast threshold ``contrast`` keeping at most ``max_keypoints``. Video mode keeps a
    pair's second frame's for the next pair, whose first frame it is."""

    points: np.ndarray
    descriptors: np.ndarray
    contrast: float
    max_keypoints: int

    def __len__(self) -> int:
        return len(self.points)

    def made_with(self, contrast: float, max_keypoints: int) -> bool:
        """Whether these are the keypoints :func:`frame_keypoints` finds with these settings."""
        return self.contrast == contrast and self.max_keypoints == max_keypoints


def frame_keypoints(gray: np.ndarray, *, contrast: float = 0.01, max_keypoints: int = MAX_KEYPOINTS
                    ) -> FrameKeypoints:
    """SIFT keypoints of a gray frame (H, W) uint8. contrast: SIFT's contrast threshold (OpenCV's default
    is 0.04; lower finds keypoints on weak texture). max_keypoints: the strongest are kept (at 1024x436
    there are about 6000 at contrast 0.01). Frames under 16 px on a side have none."""
    points, descriptors = np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32)
    if min(gray.shape[:2]) >= 16:
        sift = cv2.SIFT_create(nfeatures=max_keypoints, contrastThreshold=contrast)
        found, described = sift.detectAndCompute(gray, None)
        if described is not None and len(found):
            # (KeyPoint_convert: the same float32 positions as [k.pt for k in found], without a Python loop)
            points, descriptors = cv2.KeyPoint_convert(found).reshape(-1, 2), described.astype(np.float32)
    return FrameKeypoints(points, descriptors, contrast, max_keypoints)


def match_keypoints(one: FrameKeypoints, two: FrameKeypoints, *, ratio: float = 0.8,
                    max_flow: float | None = None, device: torch.device | str = "cpu") -> KeypointMatches:
    """The keypoints of frame ``one`` matched to frame ``two``'s: mutual nearest neighbours that pass
    Lowe's ratio test at ``ratio``; matches longer than ``max_flow`` (px; the search window of the
    method) dropped. The matching runs on ``device``."""
    import torch

    if len(one) < 2 or len(two) < 2:
        return _empty()
    i, j = _mutual_ratio_matches(torch.from_numpy(one.descriptors).to(device),
                                 torch.from_numpy(two.descriptors).to(device), ratio)
    i, j = i.cpu().numpy(), j.cpu().numpy()
    p1, flows = one.points[i], two.points[j] - one.points[i]
    if max_flow is not None:
        short = np.abs(flows).max(1) <= max_flow
        p1, flows = p1[short], flows[short]
    return KeypointMatches(p1, flows)


def keypoint_matches(gray1: np.ndarray, gray2: np.ndarray, *, contrast: float = 0.01, ratio: float = 0.8,
                     max_flow: float | None = None, max_keypoints: int = MAX_KEYPOINTS,
                     device: torch.device | str = "cpu") -> KeypointMatches:
    """SIFT keypoints of two gray frames (H, W) uint8 (:func:`frame_keypoints`), matched mutually with a
    ratio test (:func:`match_keypoints`)."""
    one = frame_keypoints(gray1, contrast=contrast, max_keypoints=max_keypoints)
    two = frame_keypoints(gray2, contrast=contrast, max_keypoints=max_keypoints)
    return match_keypoints(one, two, ratio=ratio, max_flow=max_flow, device=device)


def nearby_match_flows(matches: KeypointMatches, ys: torch.Tensor, xs: torch.Tensor, level: int,
                       fill: torch.Tensor, *, radius: float, count: int) -> torch.Tensor:
    """For each point of the grid ``ys`` x ``xs`` (pixels of pyramid ``level``), the flows (Gh, Gw,
    count, 2) int64, in that level's pixels, of its ``count`` nearest matches within ``radius``
    full-size px; where there are fewer, ``fill`` (Gh, Gw, 1, 2) takes their place."""
    import torch
    from scipy.spatial import cKDTree

    gh, gw = len(ys), len(xs)
    fill = fill.expand(gh, gw, count, 2)
    if len(matches) == 0:
        return fill
    scale = 1 << level
    gy, gx = np.meshgrid(ys.cpu().numpy() * scale, xs.cpu().numpy() * scale, indexing="ij")
    dist, index = cKDTree(matches.points).query(np.stack([gx.ravel(), gy.ravel()], 1), k=count,
                                                distance_upper_bound=radius)
    dist, index = dist.reshape(gh, gw, count), index.reshape(gh, gw, count)
    found = np.isfinite(dist)
    flows = np.zeros((gh, gw, count, 2), np.float32)
    flows[found] = matches.flows[index[found]] / scale
    flows = torch.from_numpy(np.round(flows)).long().to(fill.device)
    return torch.where(torch.from_numpy(found).to(fill.device)[..., None], flows, fill)
