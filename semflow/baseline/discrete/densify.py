"""From sparse matches to dense flow: sub-pixel match refinement, edge-aware interpolation
(EpicFlow's, or RIC), variational refinement, a weighted median (an option), and a dense confidence map.

Points are float32 (N, 2) pixel positions (x, y) in frame 1; flows float32 (N, 2) (u, v) in pixels.
"""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass

import cv2
import numpy as np

from semflow.warp import inside_frame, photometric_error, prepare_image, sample_points


def refine_matches(gray1: np.ndarray, gray2: np.ndarray, points: np.ndarray, flows: np.ndarray, *,
                   patch: int = 9, iterations: int = 6, max_change: float = 1.5, check_patch: int = 5
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sub-pixel matches by inverse-compositional Lucas-Kanade on a ``patch`` x ``patch`` window.

    A translation per match, mean-normalised patches (robust to brightness offsets), as in DIS's
    inverse search. A match that moves by more than ``max_change`` pixels is left as it was.
    Returns the refined flows (N, 2) float32, the normalised cross-correlation (N,) in [-1, 1] of the
    central ``check_patch`` x ``check_patch`` windows at the returned flows (how well the match fits
    at pixel level: small, so that a patch across a motion boundary shows it), and the texture (N,):
    the smaller eigenvalue of the patch's structure tensor per pixel (squared gray levels per pixel).
    """
    if len(points) == 0:
        return flows.astype(np.float32), np.zeros(0, np.float32), np.zeros(0, np.float32)
    g1 = cv2.GaussianBlur(np.asarray(gray1, np.float32), (0, 0), 0.7)
    g2 = cv2.GaussianBlur(np.asarray(gray2, np.float32), (0, 0), 0.7)
    gx = cv2.Sobel(g1, cv2.CV_32F, 1, 0, ksize=1) * 0.5
    gy = cv2.Sobel(g1, cv2.CV_32F, 0, 1, ksize=1) * 0.5
    r = np.arange(patch, dtype=np.float32) - (patch - 1) / 2.0
    oy, ox = (a.ravel() for a in np.meshgrid(r, r, indexing="ij"))
    px = points[:, :1] + ox[None]
    py = points[:, 1:] + oy[None]
    template = sample_points(g1, px, py)
    template -= template.mean(1, keepdims=True)
    tx, ty = sample_points(gx, px, py), sample_points(gy, px, py)
    hxx, hxy, hyy = (tx * tx).sum(1), (tx * ty).sum(1), (ty * ty).sum(1)
    det = hxx * hyy - hxy * hxy
    ok = det > 1e-3 * (hxx + hyy + 1e-6) ** 2
    det = np.where(ok, det, 1.0)
    flow = flows.astype(np.float32).copy()
    for _ in range(iterations):
        warped = sample_points(g2, px + flow[:, :1], py + flow[:, 1:])
        resid = warped - warped.mean(1, keepdims=True) - template
        bx, by = (tx * resid).sum(1), (ty * resid).sum(1)
        du = (hyy * bx - hxy * by) / det
        dv = (hxx * by - hxy * bx) / det
        step = np.stack([du, dv], 1)
        step[~ok] = 0.0
        flow -= np.clip(step, -1.0, 1.0)
    moved = np.abs(flow - flows).max(1) > max_change
    flow[moved] = flows[moved]
    c = np.abs(r) <= (check_patch - 1) / 2.0
    centre = (c[:, None] & c[None, :]).ravel()
    a = sample_points(g1, px[:, centre], py[:, centre])
    b = sample_points(g2, px[:, centre] + flow[:, :1], py[:, centre] + flow[:, 1:])
    a -= a.mean(1, keepdims=True)
    b -= b.mean(1, keepdims=True)
    ncc = (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1) + 1e-6)
    texture = 0.5 * (hxx + hyy - np.sqrt((hxx - hyy) ** 2 + 4 * hxy * hxy)) / len(ox)
    return flow, ncc.astype(np.float32), texture.astype(np.float32)


def edge_map(image: np.ndarray) -> np.ndarray:
    """The edge cost (H, W) float32 OpenCV's EPIC interpolator computes itself: the sum over channels
    of |Sobel x| + |Sobel y|, divided by channels * 4 * 255 (``image`` uint8 (H, W, 3))."""
    dx = cv2.Sobel(image, cv2.CV_16S, 1, 0).astype(np.float32)
    dy = cv2.Sobel(image, cv2.CV_16S, 0, 1).astype(np.float32)
    return ((np.abs(dx) + np.abs(dy)).sum(axis=2) / (image.shape[2] * 4.0 * 255.0)).astype(np.float32)


def motion_edge_map(image: np.ndarray, flow: np.ndarray, *, boost: float, jump: float = 1.0,
                    radius: int = 6) -> np.ndarray:
    """:func:`edge_map` with the image edges near motion boundaries of ``flow`` (H, W, 2) made
    ``1 + boost`` times stronger, so that the interpolation's geodesic distances stop at them.

    Near a motion boundary: within ``radius`` px of a pixel whose flow differs from a 4-neighbour's by
    more than ``jump`` px (a first interpolation's boundaries are smeared by a few px; the image edge
    inside that band is where the motion really jumps).
    """
    du = np.abs(np.diff(flow, axis=1)).sum(-1)
    dv = np.abs(np.diff(flow, axis=0)).sum(-1)
    jumps = np.zeros(flow.shape[:2], np.uint8)
    jumps[:, 1:] |= du > jump
    jumps[:, :-1] |= du > jump
    jumps[1:] |= dv > jump
    jumps[:-1] |= dv > jump
    near = cv2.dilate(jumps, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))
    return (edge_map(image) * (1.0 + boost * near)).astype(np.float32)


MAX_MATCHES = 32766


def interpolate(img1: np.ndarray, img2: np.ndarray, points: np.ndarray, flows: np.ndarray, *,
                method: str = "epic", cost_map: np.ndarray | None = None, k: int | None = None) -> np.ndarray:
    """Dense flow (H, W, 2) from sparse matches by edge-aware interpolation.

    method: ``"epic"`` (EpicFlow's locally-weighted affine fits along geodesic distances, Revaud et
    al. 2015, ``cv2.ximgproc.createEdgeAwareInterpolator``) or ``"ric"`` (Hu et al. 2017). img1, img2
    are uint8 RGB (H, W, 3). ``cost_map`` (H, W) float32: the edge cost of the geodesic distances
    (default: the interpolator's own, :func:`edge_map`). ``k``: EPIC's number of nearest matches per
    local fit (default OpenCV's, 128).
    OpenCV takes fewer than 32767 matches: beyond that (frames above about 0.5 Mpx at stride 4) an
    evenly spread subset of ``MAX_MATCHES`` is interpolated. Where OpenCV's RIC cannot work with the
    matches it is given (too few for its superpixels, e.g. 25 on a 48x64 frame), EPIC interpolates them.
    """
    if method == "epic":
        interp = cv2.ximgproc.createEdgeAwareInterpolator()
    elif method == "ric":
        interp = cv2.ximgproc.createRICInterpolator()
    else:
        raise ValueError(f"unknown interpolation {method!r}; use 'epic' or 'ric'")
    if cost_map is not None:
        interp.setCostMap(np.ascontiguousarray(cost_map, np.float32))
    p1 = np.ascontiguousarray(points, np.float32)
    # OpenCV's EPIC returns zero flow where the matches it fits are exactly equal (a degenerate
    # affine fit, e.g. a pure translation); a fixed +-0.01 px dither avoids that case.
    dither = np.random.default_rng(0).uniform(-0.01, 0.01, np.shape(flows)).astype(np.float32)
    p2 = np.ascontiguousarray(points + flows + dither, np.float32)
    if len(p1) > MAX_MATCHES:  # OpenCV's interpolators stop with an assertion at 32767 matches
        keep = np.linspace(0, len(p1) - 1, MAX_MATCHES).round().astype(int)  # evenly spread (raster order)
        p1, p2 = np.ascontiguousarray(p1[keep]), np.ascontiguousarray(p2[keep])
    if method == "epic" and k is not None:
        interp.setK(int(k))
    if method == "epic" and len(p1) < interp.getK():  # given fewer matches than its K (128) nearest
        interp.setK(len(p1))  # neighbours, OpenCV's EPIC reads past them: results varied run to run
    try:
        dense = interp.interpolate(img1, p1, img2, p2)
    except cv2.error:
        if method != "ric":
            raise
        # OpenCV's RIC stops with an out-of-range assertion when its superpixels get too few matches
        # (tiny frames, a few dozen matches); EPIC interpolates any number of them.
        return interpolate(img1, img2, points, flows, method="epic", cost_map=cost_map, k=k)
    return np.nan_to_num(dense, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


@dataclass(frozen=True)
class OutvotedParams:
    """Settings of :func:`follow_outvoted_matches`. Distances in px, errors in grey levels."""

    jump: float = 3.0
    """The two flows differ by more than this in a region; a match disagrees with a flow by more than this..."""
    agree: float = 1.5
    """...and agrees with it within this."""
    min_votes: int = 5
    """A region needs at least this many matches that agree with the local flow alone..."""
    vote_ratio: float = 2.0
    """...and this times as many as agree with the wide flow alone..."""
    error_ratio: float = 0.5
    """...and the local flow's median photometric error there at most this share of the wide flow's..."""
    error_gain: float = 2.0
    """...and lower by at least this."""


def follow_outvoted_matches(img1: np.ndarray, img2: np.ndarray, points: np.ndarray, flows: np.ndarray,
                            wide: np.ndarray, local: np.ndarray, params: OutvotedParams | None = None
                            ) -> tuple[np.ndarray, int]:
    """``wide`` (H, W, 2), an interpolation of the matches ``points`` (N, 2) x, y -> ``flows`` (N, 2)
    with many neighbours per fit, with ``local``'s flow (the same with few) in the regions where the
    matches chose it: where the two differ (by ``params.jump``), a cluster of matches that the wide fit
    outvoted (a thing of a few thousand pixels moving 15-30 px against its surroundings: its own
    matches are a minority of 128 neighbours) agrees with the local flow and not the wide one, and the
    local flow explains frame t+1 clearly better (median photometric error over the region). Matches
    that passed every check can still be wrong together (repeated texture, KITTI's road; FlyingChairs),
    which the photometric test catches. Returns the flow and the number of regions taken."""
    params = params or OutvotedParams()
    h, w = wide.shape[:2]
    differ = np.linalg.norm(local - wide, axis=-1) > params.jump
    count, regions = cv2.connectedComponents(differ.astype(np.uint8), connectivity=8)
    if count <= 1 or len(points) == 0:
        return wide, 0
    at = np.clip(np.round(points).astype(int), 0, [w - 1, h - 1])
    region = regions[at[:, 1], at[:, 0]]
    off_wide = np.linalg.norm(wide[at[:, 1], at[:, 0]] - flows, axis=-1)
    off_local = np.linalg.norm(local[at[:, 1], at[:, 0]] - flows, axis=-1)
    for_local = np.bincount(region[(off_local < params.agree) & (off_wide > params.jump)], minlength=count)
    for_wide = np.bincount(region[(off_wide < params.agree) & (off_local > params.jump)], minlength=count)
    voted = (for_local >= params.min_votes) & (for_local >= params.vote_ratio * np.maximum(for_wide, 1))
    voted[0] = False
    if not voted.any():
        return wide, 0
    f1, f2 = prepare_image(img1), prepare_image(img2)
    err_wide, in_wide = photometric_error(f1, f2, wide)
    err_local, in_local = photometric_error(f1, f2, local)
    taken = np.zeros(count, bool)
    for r in np.flatnonzero(voted):
        seen = (regions == r) & in_wide & in_local
        if seen.any():
            e_wide, e_local = float(np.median(err_wide[seen])), float(np.median(err_local[seen]))
            taken[r] = e_local <= params.error_ratio * e_wide and e_wide - e_local >= params.error_gain
    return np.where(taken[regions][..., None], local, wide), int(taken.sum())


def interpolate_coarse(img1: np.ndarray, img2: np.ndarray, points: np.ndarray, flows: np.ndarray, *,
                       scale: float = 0.5, method: str = "epic") -> np.ndarray:
    """:func:`interpolate` on the frames resized by ``scale`` (matches scaled with them), resized back:
    a quicker, blurrier dense flow (H, W, 2) float32 px of the full-size frames."""
    h, w = img1.shape[:2]
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    a = cv2.resize(img1, size, interpolation=cv2.INTER_AREA)
    b = cv2.resize(img2, size, interpolation=cv2.INTER_AREA)
    sx, sy = size[0] / w, size[1] / h
    k = np.float32([sx, sy])
    small = interpolate(a, b, points * k, flows * k, method=method)
    return (cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR) / k).astype(np.float32)


def variational_refine(gray1: np.ndarray, gray2: np.ndarray, flow: np.ndarray, *, iterations: int = 5,
                       sor_iterations: int = 5, alpha: float = 20.0, delta: float = 5.0, gamma: float = 10.0,
                       omega: float = 1.6, scales: int = 1) -> np.ndarray:
    """Refine ``flow`` (H, W, 2) with OpenCV's variational energy (brightness + gradient constancy,
    smoothness ``alpha``), as EpicFlow and DIS do; ``scales`` > 1 first refines at coarser scales.

    gray1, gray2: uint8 (H, W). Returns float32 (H, W, 2).
    """
    vr = cv2.VariationalRefinement_create()
    vr.setFixedPointIterations(iterations)
    vr.setSorIterations(sor_iterations)
    vr.setOmega(omega)
    vr.setAlpha(alpha)
    vr.setDelta(delta)
    vr.setGamma(gamma)
    flow = np.ascontiguousarray(flow, np.float32)
    h, w = flow.shape[:2]
    for s in range(scales - 1, -1, -1):
        f = 2.0 ** -s
        if s:
            size = (max(8, round(w * f)), max(8, round(h * f)))
            a = cv2.resize(gray1, size, interpolation=cv2.INTER_AREA)
            b = cv2.resize(gray2, size, interpolation=cv2.INTER_AREA)
            small = cv2.resize(flow, size, interpolation=cv2.INTER_AREA) * f
            delta_flow = vr.calc(a, b, small.copy()) - small
            flow = flow + cv2.resize(delta_flow, (w, h), interpolation=cv2.INTER_LINEAR) / f
        else:
            flow = vr.calc(gray1, gray2, flow.copy())
    return np.nan_to_num(flow).astype(np.float32)


def weighted_median(image: np.ndarray, flow: np.ndarray, *, radius: int, sigma: float = 25.5,
                    min_change: float = 0.5, where: np.ndarray | None = None) -> np.ndarray:
    """``flow`` (H, W, 2) after a colour-weighted median of each component over (2 ``radius`` + 1)^2
    windows: the non-local step of Sun, Roth and Black's "Secrets of optical flow" (2010), which puts
    motion boundaries back on the colour edges of ``image`` (uint8 (H, W, 3), frame 1) where the
    interpolation and refinement smeared them. ``sigma``: the colour distance (grey levels) at which a
    neighbour's weight falls off.

    OpenCV's filter (``cv2.ximgproc.weightedMedianFilter``, Zhang et al. 2014) sorts float input into
    256 levels over its range: steps of about 0.2 px on a flow that spans 50 px. So a pixel takes the
    filtered value only where it moves by more than ``min_change`` px; elsewhere it keeps its own.
    ``where`` (H, W) bool: only these pixels may change (None: all).
    Returns float32 (H, W, 2); the same for the same input (OpenCV's random stream is seeded).
    """
    flow = np.asarray(flow, np.float32)
    if where is not None and not where.any():
        return flow.copy()
    image = np.ascontiguousarray(image, np.uint8)

    def filtered_components() -> list[np.ndarray]:
        components = []
        for c in range(2):
            # The filter clusters a colour guide's colours from OpenCV's random stream, so that results
            # differ call to call (by up to 1.6 px on a Middlebury pair): the stream is seeded first.
            cv2.setRNGSeed(0)
            components.append(cv2.ximgproc.weightedMedianFilter(
                image, np.ascontiguousarray(flow[..., c], np.float32), radius, sigma=sigma))
        return components

    # OpenCV's random stream is the calling thread's: seeded in a thread of its own, the caller's stream
    # (a host program's cv2.setRNGSeed(42)) is left as it was.
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="semflow-median") as pool:
        filtered = np.stack(pool.submit(filtered_components).result(), axis=-1)
    moved = np.linalg.norm(filtered - flow, axis=-1) > min_change
    if where is not None:
        moved &= where
    return np.where(moved[..., None], filtered, flow).astype(np.float32)


def dense_confidence(grid_conf: np.ndarray, image_size: tuple[int, int], gray1: np.ndarray, gray2: np.ndarray,
                     flow: np.ndarray, *, photometric_scale: float = 12.0) -> np.ndarray:
    """Per-pixel confidence (H, W) float32 in [0, 1].

    The product of (a) match support: the Gaussian-weighted mean of the grid points' confidences
    (0 for rejected matches) around the pixel, and (b) photometric fit: ``exp(-e / photometric_scale)``
    with ``e`` the locally averaged |frame 1 - warped frame 2| (gray levels); pixels whose flow leaves
    the image keep (a) only.
    """
    h, w = image_size
    support = cv2.GaussianBlur(grid_conf.astype(np.float32), (0, 0), 1.0)
    support = cv2.resize(support, (w, h), interpolation=cv2.INTER_LINEAR)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    tx, ty = xs + flow[..., 0], ys + flow[..., 1]
    warped = cv2.remap(gray2.astype(np.float32), tx, ty, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    err = cv2.GaussianBlur(np.abs(gray1.astype(np.float32) - warped), (0, 0), 1.5)
    photo = np.exp(-err / photometric_scale)
    inside = inside_frame(tx, ty, w, h)
    conf = support * np.where(inside, photo, 1.0)
    return np.clip(conf, 0.0, 1.0).astype(np.float32)
