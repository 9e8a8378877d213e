"""Matches of what a region's first motions leave unexplained (:func:`rematch_unexplained`).

A *part* is a connected group of region pixels that no motion found so far explains, e.g. a weakly
textured car behind parked ones that the baseline and the small grey patches both missed. Its masked
colour template is searched for in frame t+1 as a whole (:func:`_match_part`), or tile by tile when
it is half hidden there; the matches go back to the multi-model fit (:mod:`semflow.layers.motions`).

Optionally (``MotionParams.rematch_hidden_cost``) the search knows about occlusion: frame-t+1 pixels
where the region's explained pixels land are *taken*; a template pixel landing on one is hidden
there and costs a fixed amount instead of its colour difference, and the part's motion is then
refined (affine, Lucas-Kanade) on its pixels that land away from taken ones. Without it, a car seen
as a strip above a parked car that rises into it is pulled towards matching its hidden rows.

Coordinates: boxes are (y0, y1, x0, x1) in full-image pixels; points (N, 2) float32 (x, y) in px.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from semflow.fitting.motion_fit import MotionParams, affine_field
from semflow.layers.common import dilate, erode, magnitude, photometric_error, refine_warp, tiles, warp_target
from semflow.warp import channel_mean

TAKEN_AGREEMENT = 1.0
"""A region pixel marks where it lands as taken only when its motion agrees with the baseline's flow
there within this many px (a motion that explains a pixel's colour by chance says nothing about
where it goes)."""
MIN_IN_VIEW = 0.5
"""With a taken map, a part's translation must leave at least this share of its pixels off taken ones."""
REFINE_ROUNDS = 3
"""Rounds of the occlusion-aware refinement: which pixels land near taken ones is redone under each
round's warp."""
MIN_VISIBLE = 0.3
"""...which stops when fewer than this share of the part's pixels land away from taken ones."""
VISIBLE_CLEARANCE = 2
"""Each round refines on the part's pixels that land away from taken ones, less those within this many
px of the ones that do not: next to the occluding edge the two things' colours meet in frame t+1 (the
same reason as ``ThingParams.covered_clearance`` for the split's motions)."""


def local_shifts(img1: np.ndarray, img2: np.ndarray, points: np.ndarray, shift: np.ndarray, *,
                 patch: int = 9, reach: int = 3) -> np.ndarray:
    """Per point (N, 2) of frame t, the offset (N, 2) float32 from ``shift`` (2,) that best matches its
    colour ``patch`` x ``patch`` window in frame t+1 (sum of squared differences, within ``reach`` px,
    with a sub-pixel parabola); 0 where the window leaves a frame. A part's translation is one motion
    for all its points: the offsets let an affine fit see its rotation and scale."""
    r = patch // 2
    height, width = img1.shape[:2]
    out = np.zeros((len(points), 2), np.float32)
    for i, (px, py) in enumerate(np.round(points).astype(int)):
        qx, qy = int(round(px + shift[0])), int(round(py + shift[1]))
        if (min(px, py, qx, qy) - r - reach < 0 or px + r >= width or py + r >= height
                or qx + r + reach >= width or qy + r + reach >= height):
            continue
        template = img1[py - r:py + r + 1, px - r:px + r + 1]
        window = img2[qy - r - reach:qy + r + reach + 1, qx - r - reach:qx + r + reach + 1]
        score = cv2.matchTemplate(np.ascontiguousarray(window), np.ascontiguousarray(template), cv2.TM_SQDIFF)
        _, _, (bx, by), _ = cv2.minMaxLoc(score)
        fx, fy = float(bx), float(by)
        if 0 < bx < score.shape[1] - 1:
            a, b, c = score[by, bx - 1], score[by, bx], score[by, bx + 1]
            fx += float(np.clip(0.5 * (a - c) / (a - 2 * b + c + 1e-9), -0.5, 0.5))
        if 0 < by < score.shape[0] - 1:
            a, b, c = score[by - 1, bx], score[by, bx], score[by + 1, bx]
            fy += float(np.clip(0.5 * (a - c) / (a - 2 * b + c + 1e-9), -0.5, 0.5))
        out[i] = (fx - reach + qx - px - shift[0], fy - reach + qy - py - shift[1])
    return out


def correlate_valid(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """The cross-correlation of ``image`` (H, W) with ``kernel`` (h, w), h <= H and w <= W, where the
    kernel lies wholly inside: (H - h + 1, W - w + 1) float64, by FFT (what ``scipy.signal.correlate``
    does with ``mode="valid", method="fft"``, without importing scipy.signal: that alone takes a second,
    on every start of the command line)."""
    from scipy import fft  # here: 0.3 s to import, and only the things stage needs it

    image, kernel = np.asarray(image, np.float64), np.asarray(kernel, np.float64)[::-1, ::-1]
    axes = [a for a in (0, 1) if image.shape[a] != 1 and kernel.shape[a] != 1]  # others: a plain product
    if not axes:
        return image * kernel
    size = [fft.next_fast_len(image.shape[a] + kernel.shape[a] - 1, True) for a in axes]
    conv = fft.irfftn(fft.rfftn(image, size, axes=axes) * fft.rfftn(kernel, size, axes=axes), size, axes=axes)
    return conv[kernel.shape[0] - 1:image.shape[0], kernel.shape[1] - 1:image.shape[1]].copy()


def hidden_aware_ssd(search: np.ndarray, template: np.ndarray, part: np.ndarray, taken: np.ndarray,
                     hidden_cost: float) -> np.ndarray:
    """Masked SSD of ``template`` (bh, bw, 3) over ``search`` (sh, sw, 3), both float32 RGB, where a
    ``part`` (bh, bw) pixel landing on a ``taken`` (sh, sw) pixel costs ``hidden_cost`` per channel
    instead of its squared difference. Returns (sh - bh + 1, sw - bw + 1) float64, inf where more than
    :data:`MIN_IN_VIEW` of the part would be hidden. Computed with float64 FFT correlations (OpenCV's
    masked TM_CCORR loses the precision the expanded square needs)."""
    corr = correlate_valid
    free = (~taken).astype(np.float32)
    m = part.astype(np.float32)
    score = np.zeros((search.shape[0] - part.shape[0] + 1, search.shape[1] - part.shape[1] + 1), np.float64)
    for ch in range(3):  # sum over visible pixels of (i2 - t)^2, expanded
        i2, t = search[..., ch], template[..., ch]
        score += corr(i2 * i2 * free, m) - 2 * corr(i2 * free, m * t) + corr(free, m * t * t)
    area = max(float(m.sum()), 1.0)
    hidden = np.rint(corr(1 - free, m))  # a count: rounded, or FFT noise tips ties at the threshold
    score += 3 * hidden_cost * hidden
    score[hidden > (1 - MIN_IN_VIEW) * area] = np.inf
    return score


def refine_visible(frames: tuple[np.ndarray, np.ndarray, np.ndarray], part: np.ndarray, ax: int, ay: int,
                   shift: np.ndarray, near_taken: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The affine (2, 3) of ``part`` (bh, bw) at (``ax``, ``ay``), refined from the translation ``shift``
    (2,) px on its visible pixels, and those pixels (bh, bw) bool: the part's pixels that land off
    ``near_taken`` (H, W) bool and inside frame t+1, less those within ``VISIBLE_CLEARANCE`` px of the ones
    that do not.
    ``frames``: grey frames t and t+1 (H, W) float32 and frame t+1's :func:`warp_target`."""
    gray1, gray2, target = frames
    height, width = gray1.shape
    bh, bw = part.shape
    warp = np.float64([[1, 0, shift[0]], [0, 1, shift[1]]])
    yy, xx = np.mgrid[ay:ay + bh, ax:ax + bw]
    visible = part
    for _ in range(REFINE_ROUNDS):
        lx = np.round(warp[0, 0] * xx + warp[0, 1] * yy + warp[0, 2]).astype(int)
        ly = np.round(warp[1, 0] * xx + warp[1, 1] * yy + warp[1, 2]).astype(int)
        ok = (lx >= 0) & (ly >= 0) & (lx < width) & (ly < height)
        hidden = np.ones((bh, bw), bool)
        hidden[ok] = near_taken[ly[ok], lx[ok]]
        visible = part & ~dilate(hidden & part, VISIBLE_CLEARANCE)
        if visible.sum() < MIN_VISIBLE * part.sum():
            break
        refined = refine_warp(gray1, gray2, warp, visible, (ay, ay + bh, ax, ax + bw), target=target)
        if refined is None:
            break
        warp = refined[:2]
    return warp, visible


def _match_part(img1: np.ndarray, img2: np.ndarray, part: np.ndarray, ax: int, ay: int, guess: np.ndarray,
                params: MotionParams, *, back: bool = False, taken: np.ndarray | None = None,
                near_taken: np.ndarray | None = None,
                frames: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
                ) -> tuple[np.ndarray, np.ndarray] | None:
    """Matches (frame-1 and frame-2 points (N, 2) float32) for ``part`` (bh, bw) bool at (``ax``, ``ay``)
    in frame t: its masked colour template searched for in frame t+1 (sum of squared differences,
    within ``search`` px of zero motion and of ``guess`` (2,) px); None unless the best translation
    explains the part (median error below half ``rematch_error``). With ``taken`` (H, W) bool, the
    search is :func:`hidden_aware_ssd` and the matches follow :func:`refine_visible` (given
    ``near_taken`` and ``frames``)."""
    height, width = img1.shape[:2]
    bh, bw = part.shape
    lo = np.floor(np.minimum(guess, 0.0)).astype(int) - params.search
    hi = np.ceil(np.maximum(guess, 0.0)).astype(int) + params.search
    wx0, wy0 = max(0, ax + lo[0]), max(0, ay + lo[1])
    wx1, wy1 = min(width, ax + bw + hi[0]), min(height, ay + bh + hi[1])
    if wx1 - wx0 < bw + 2 or wy1 - wy0 < bh + 2:
        return None
    template = np.ascontiguousarray(img1[ay:ay + bh, ax:ax + bw], np.float32)
    weight = np.repeat(part[..., None], 3, axis=2).astype(np.float32)
    search = np.ascontiguousarray(img2[wy0:wy1, wx0:wx1], np.float32)
    if taken is not None and taken[wy0:wy1, wx0:wx1].any():
        score = hidden_aware_ssd(search, template, part, taken[wy0:wy1, wx0:wx1], params.rematch_hidden_cost)
    else:
        score = cv2.matchTemplate(search, template, cv2.TM_SQDIFF, mask=weight)
    _, _, (mx, my), _ = cv2.minMaxLoc(score)
    shift = np.float32([wx0 + mx - ax, wy0 + my - ay])
    flow = np.broadcast_to(shift, (bh, bw, 2)).copy()
    err, inside = photometric_error(img1, img2, flow, ax, ay)
    fits = part & inside & (err < params.rematch_error)
    seen = part & inside
    if not seen.any() or np.median(err[seen]) >= 0.5 * params.rematch_error:
        return None
    if back:  # the same match back: frame t+1 there, searched for in frame t, finds the part again
        bx2, by2 = int(ax + shift[0]), int(ay + shift[1])
        if bx2 < 0 or by2 < 0 or bx2 + bw > width or by2 + bh > height:
            return None
        rx0, ry0 = max(0, ax - params.search), max(0, ay - params.search)
        rx1, ry1 = min(width, ax + bw + params.search), min(height, ay + bh + params.search)
        back_score = cv2.matchTemplate(np.ascontiguousarray(img1[ry0:ry1, rx0:rx1], np.float32),
                                       np.ascontiguousarray(img2[by2:by2 + bh, bx2:bx2 + bw], np.float32),
                                       cv2.TM_SQDIFF, mask=weight)
        _, _, (qx, qy), _ = cv2.minMaxLoc(back_score)
        if abs(rx0 + qx - ax) > 1 or abs(ry0 + qy - ay) > 1:
            return None
    step = max(1, params.rematch_step // 2) if back else params.rematch_step  # a tile: denser
    on_grid = (np.arange(bh)[:, None] % step == 0) & (np.arange(bw)[None] % step == 0)
    if taken is not None:
        warp, visible = refine_visible(frames, part, ax, ay, shift, near_taken)
        ys, xs = np.nonzero(visible & on_grid)
        pts = np.stack([xs + ax, ys + ay], 1).astype(np.float32)
        return pts, (pts.astype(np.float64) @ warp[:, :2].T + warp[:, 2]).astype(np.float32)
    ys, xs = np.nonzero(fits & on_grid)
    pts = np.stack([xs + ax, ys + ay], 1).astype(np.float32)
    return pts, pts + shift + local_shifts(img1, img2, pts, shift)


def taken_pixels(img1: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int], baseline: np.ndarray,
                 fields: list[tuple[np.ndarray, np.ndarray, np.ndarray]], params: MotionParams) -> np.ndarray:
    """(H, W) bool: the frame-t+1 pixels where ``mask``'s (h, w) pixels land under a motion that explains
    them (error at most ``rematch_error``) and agrees with ``baseline`` (h, w, 2) within
    :data:`TAKEN_AGREEMENT` px. ``fields``: per motion its flow (h, w, 2), photometric error and
    in-frame mask (h, w) over ``box``."""
    y0, _, x0, _ = box
    height, width = img1.shape[:2]
    taken = np.zeros((height, width), bool)
    for field, err, inside in fields:
        agree = magnitude(baseline - field) < TAKEN_AGREEMENT
        ys, xs = np.nonzero(mask & inside & (err <= params.rematch_error) & agree)
        tx = np.round(xs + x0 + field[ys, xs, 0]).astype(int)
        ty = np.round(ys + y0 + field[ys, xs, 1]).astype(int)
        ok = (tx >= 0) & (ty >= 0) & (tx < width) & (ty < height)
        taken[ty[ok], tx[ok]] = True
    return taken


def _unexplained(img1: np.ndarray, img2: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int],
                 affines: list[np.ndarray], params: MotionParams
                 ) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """The eroded ``mask`` (h, w) pixels that every motion in ``affines`` keeps in frame t+1 with a
    photometric error above ``rematch_error``: (h, w) bool; and per motion its flow (h, w, 2), error and
    in-frame mask (h, w) over ``box`` (for :func:`taken_pixels`)."""
    y0, _, x0, _ = box
    todo = erode(mask, 2)
    fields = []
    for affine in affines:
        field = affine_field(affine, box)
        err, inside = photometric_error(img1, img2, field, x0, y0)
        todo &= (err > params.rematch_error) & inside
        fields.append((field, err, inside))
    return todo, fields


def _occlusion_keywords(img1: np.ndarray, img2: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int],
                        baseline: np.ndarray, fields: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                        params: MotionParams) -> dict[str, object]:
    """:func:`_match_part`'s keywords for the occlusion-aware search (``taken``, ``near_taken`` and
    ``frames``, from :func:`taken_pixels`); none without ``rematch_hidden_cost``."""
    if params.rematch_hidden_cost is None:
        return {}
    taken = taken_pixels(img1, mask, box, baseline, fields, params)
    gray2 = channel_mean(img2).astype(np.float32)
    return {"taken": taken, "near_taken": dilate(taken, params.rematch_hidden_margin),
            "frames": (channel_mean(img1).astype(np.float32), gray2, warp_target(gray2))}


def _parts(todo: np.ndarray, min_pixels: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """Each connected group (8-connected) of at least ``min_pixels`` ``todo`` (h, w) pixels: the corner
    (x, y) px of its bounding box within ``todo`` and its pixels (bh, bw) bool over that bounding box."""
    count, comp, stats, _ = cv2.connectedComponentsWithStats(todo.astype(np.uint8), connectivity=8)
    for c in range(1, count):
        if stats[c, cv2.CC_STAT_AREA] < min_pixels:
            continue
        bx, by, bw, bh = (int(v) for v in stats[c, :4])
        yield bx, by, comp[by:by + bh, bx:bx + bw] == c


def _match_tiles(img1: np.ndarray, img2: np.ndarray, part: np.ndarray, ax: int, ay: int, guess: np.ndarray,
                 params: MotionParams, occlusion: dict[str, object]) -> tuple[np.ndarray, np.ndarray] | None:
    """Matches (frame-1 and frame-2 points (N, 2) float32) for ``part`` (bh, bw) bool at (``ax``, ``ay``)
    px in frame t, tile by tile (``rematch_tile`` px; tiles with grey-level contrast below
    ``rematch_contrast`` skipped), each tile searched as :func:`_match_part` with the reverse check;
    None when no tile matches."""
    bh, bw = part.shape
    gray = channel_mean(img1[ay:ay + bh, ax:ax + bw])
    found_tiles = []
    for sy, sx in tiles(part, params.rematch_tile):
        if gray[sy, sx][part[sy, sx]].std() < params.rematch_contrast:
            continue
        match = _match_part(img1, img2, part[sy, sx], ax + sx.start, ay + sy.start, guess, params,
                            back=True, **occlusion)
        if match is not None:
            found_tiles.append(match)
    if not found_tiles:
        return None
    return np.vstack([m[0] for m in found_tiles]), np.vstack([m[1] for m in found_tiles])


def rematch_unexplained(img1: np.ndarray, img2: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int],
                        baseline: np.ndarray, affines: list[np.ndarray], params: MotionParams
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Matches for the parts of ``mask`` (h, w, over ``box``) that no motion in ``affines`` explains.

    A part: a connected group of at least ``rematch_pixels`` eroded-mask pixels whose photometric error
    is above ``rematch_error`` under every motion (where it lands in frame t+1). Its colour template
    (frame t, masked) is searched for in frame t+1 as a whole (sum of squared differences, within
    ``search`` px of zero motion and of the baseline's median motion there); when the best translation
    explains the part (median error below half ``rematch_error``), its pixels that it explains give
    matches every ``rematch_step`` px. With ``rematch_tile``, a part that no translation explains is
    searched for again tile by tile (:func:`_match_part` with the reverse check). With
    ``rematch_hidden_cost``, the searches know where the explained pixels land (:func:`taken_pixels`,
    :func:`hidden_aware_ssd`, :func:`refine_visible`). Returns frame-1 and frame-2 points (N, 2) float32.
    """
    empty = np.zeros((0, 2), np.float32)
    if params.rematch_pixels <= 0:
        return empty, empty
    todo, fields = _unexplained(img1, img2, mask, box, affines, params)
    if todo.sum() < params.rematch_pixels:
        return empty, empty
    occlusion = _occlusion_keywords(img1, img2, mask, box, baseline, fields, params)
    y0, _, x0, _ = box
    src, dst = [], []
    for bx, by, part in _parts(todo, params.rematch_pixels):
        bh, bw = part.shape
        guess = np.median(baseline[by:by + bh, bx:bx + bw][part], axis=0)
        found = _match_part(img1, img2, part, x0 + bx, y0 + by, guess, params, **occlusion)
        if found is None and params.rematch_tile > 0:
            # No one translation explains the part (it may be half hidden in frame t+1): its tiles, each
            # searched the same way; the visible ones match.
            found = _match_tiles(img1, img2, part, x0 + bx, y0 + by, guess, params, occlusion)
        if found is not None:
            src.append(found[0])
            dst.append(found[1])
    if not src:
        return empty, empty
    return np.vstack(src), np.vstack(dst)
