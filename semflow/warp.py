"""Pixel grids, backward warping and the photometric error: the one place frames are sampled along a flow.

Flows are float32 (H, W, 2), u then v in pixels, frame t -> t+1; images (H, W[, C]) of any dtype
that :func:`cv2.remap` takes.
"""

from __future__ import annotations

import cv2
import numpy as np

CV_MAX_CHANNELS = 128
"""The most channels OpenCV's Python binding takes in one array (``CV_CN_MAX``): an image with more (class
probabilities of a label set of more than 128 classes) is sampled that many channels at a time."""

ERROR_CAP = 40.0
"""Photometric errors are truncated here (grey levels), so occlusions and outliers do not dominate means."""


def pixel_grid(height: int, width: int, x0: int = 0, y0: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (x, y), each float32 (height, width), starting at (x0, y0).

    Both are read-only broadcast views of one row / one column (no memory per pixel): use them in
    arithmetic, do not write to them.
    """
    x = np.arange(x0, x0 + width, dtype=np.float32)[None, :]
    y = np.arange(y0, y0 + height, dtype=np.float32)[:, None]
    return np.broadcast_to(x, (height, width)), np.broadcast_to(y, (height, width))


def magnitude(vectors: np.ndarray) -> np.ndarray:
    """Length of 2-vectors along the last axis, e.g. (H, W, 2) -> (H, W) or (N, 2) -> (N,).

    For float vectors bit for bit ``np.linalg.norm(vectors, axis=-1)`` (squares, one sum, the root, in their dtype),
    several times faster on small last axes (a tenth of its time on a 480x360 flow; no temporary but the result).
    """
    return length(vectors[..., 0], vectors[..., 1])


def length(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """|(u, v)| of two components of the same shape (:func:`magnitude`'s arithmetic), the same bits whatever
    the arrays' addresses (``cv2.magnitude``'s last bit depends on its buffers' alignment). Integer or bool
    components are squared in float64, as ``np.linalg.norm`` does (uint8's 200 * 200 wrapped round)."""
    if u.dtype.kind in "biu" or v.dtype.kind in "biu":
        u, v = u.astype(np.float64), v.astype(np.float64)  # (float components: as they are, not a bit moved)
    mag = u * u
    mag += v * v
    return np.sqrt(mag, out=mag) if mag.dtype.kind == "f" else np.sqrt(mag)


def channel_sum(array: np.ndarray) -> np.ndarray:
    """Sum over a last axis of 2 or 3 (flow vectors, RGB), (..., C) -> (...): bit for bit ``array.sum(-1)``
    (numpy adds so short an axis channel after channel; a longer one pairwise), a tenth to a twentieth of its
    time on float arrays. Other dtypes and lengths: ``array.sum(-1)`` itself."""
    if array.dtype not in (np.float32, np.float64) or array.shape[-1] not in (2, 3):
        return array.sum(-1)
    out = array[..., 0] + array[..., 1]
    if array.shape[-1] == 3:
        out += array[..., 2]
    out += 0.0  # (numpy's sum starts at +0.0: a sum of negative zeros is +0.0, not -0.0; nothing else moves)
    return out


def channel_mean(array: np.ndarray) -> np.ndarray:
    """Mean over a last axis of 2 or 3, bit for bit ``array.mean(-1)`` (:func:`channel_sum` over its length)."""
    if array.dtype not in (np.float32, np.float64) or array.shape[-1] not in (2, 3):
        return array.mean(-1)
    return channel_sum(array) / array.dtype.type(array.shape[-1])


def inside_frame(x: np.ndarray, y: np.ndarray, width: int, height: int) -> np.ndarray:
    """Whether the points (x, y) px (arrays of one shape) lie in a frame of ``width`` x ``height`` px:
    0 <= x <= width - 1 and 0 <= y <= height - 1 (a NaN coordinate does not). Bool, of their shape."""
    return (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)


def warp_backward(image: np.ndarray, flow: np.ndarray, x0: int = 0, y0: int = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``image`` (frame t+1, full size) at ``x + flow(x)`` for a crop of flow starting at (x0, y0).

    Bilinear, border replicated. Returns the warped crop (h, w[, C]), which is frame t where the flow
    is right, and a bool mask (h, w) of the points that land inside the image.
    """
    flow = np.asarray(flow, np.float32)  # (remap takes float32 maps only)
    h, w = flow.shape[:2]
    x, y = pixel_grid(h, w, x0, y0)
    mx, my = x + flow[..., 0], y + flow[..., 1]
    warped = _remap(image, mx, my)
    inside = inside_frame(mx, my, image.shape[1], image.shape[0])
    return warped, inside


def _remap(image: np.ndarray, mx: np.ndarray, my: np.ndarray) -> np.ndarray:
    """``cv2.remap`` of ``image`` at maps ``mx``, ``my`` (bilinear, border replicated), for any number of channels
    (more than :data:`CV_MAX_CHANNELS` were a cv2.error: they are sampled in groups, to the same values)."""
    if image.ndim < 3 or image.shape[2] <= CV_MAX_CHANNELS:
        return cv2.remap(image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.concatenate([cv2.remap(np.ascontiguousarray(image[..., i:i + CV_MAX_CHANNELS]), mx, my, cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE).reshape(*mx.shape, -1)
                           for i in range(0, image.shape[2], CV_MAX_CHANNELS)], axis=2)


_MAP_COLUMNS = 1024  # cv2.remap takes maps of fewer than 32767 rows and columns


def sample_points(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``image`` (H, W[, C]) at points ``x``, ``y`` (pixels, arrays of one shape S,
    any number of points), border replicated. Returns an array of shape S (+ (C,)), the same values
    :func:`cv2.remap` gives; the points are laid out as rows of 1024 so that no map side reaches
    OpenCV's 32767 limit (a single column of points failed on frames above ~0.5 Mpx)."""
    shape = np.shape(x)
    fx = np.asarray(x, np.float32).reshape(-1)
    fy = np.asarray(y, np.float32).reshape(-1)
    count = fx.size
    rows = max(1, -(-count // _MAP_COLUMNS))
    pad = rows * _MAP_COLUMNS - count
    out = _remap(image, np.pad(fx, (0, pad)).reshape(rows, _MAP_COLUMNS), np.pad(fy, (0, pad)).reshape(rows, _MAP_COLUMNS))
    channels = out.shape[2:] if out.ndim == 3 else ()
    return out.reshape(-1, *channels)[:count].reshape(*shape, *channels)


def to_gray(image: np.ndarray) -> np.ndarray:
    """RGB (H, W, 3) -> grey (H, W) of the same dtype (uint8 frames; float32 from :func:`prepare_image`),
    with OpenCV's weights (``cv2.COLOR_RGB2GRAY``): the one grey conversion of frames."""
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def prepare_image(image: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> float32 RGB lightly smoothed (sigma 0.8 px), for sub-pixel warping."""
    return cv2.GaussianBlur(image.astype(np.float32), (0, 0), 0.8)


def photometric_error(img1: np.ndarray, img2: np.ndarray, flow: np.ndarray, x0: int = 0, y0: int = 0
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel colour error |I1(x) - I2(x + flow(x))| (mean over RGB, grey levels, capped at ERROR_CAP).

    ``flow`` may be a crop of the image starting at (x0, y0); ``img1``/``img2`` are full frames.
    Returns the error (h, w) float32 and the mask (h, w) of points that land inside frame 2.
    """
    h, w = flow.shape[:2]
    warped, inside = warp_backward(img2, flow, x0, y0)
    diff = cv2.absdiff(img1[y0:y0 + h, x0:x0 + w], warped)
    err = (diff[..., 0] + diff[..., 1] + diff[..., 2]) / np.float32(3)  # = diff.mean(axis=2), in a fifth of its time
    return np.minimum(err, ERROR_CAP).astype(np.float32), inside


def smoothed_photometric_error(img1: np.ndarray, img2: np.ndarray, flow: np.ndarray, x0: int = 0, y0: int = 0,
                               *, blur: float, cap: float = ERROR_CAP) -> tuple[np.ndarray, np.ndarray]:
    """:func:`photometric_error` capped at ``cap`` and smoothed by a Gaussian of sigma ``blur`` px (none
    for 0): the error (h, w) float32 and the mask of points that land inside frame 2."""
    err, inside = photometric_error(img1, img2, flow, x0, y0)
    return smoothed_error(err, blur=blur, cap=cap), inside


def smoothed_error(error: np.ndarray, *, blur: float, cap: float = ERROR_CAP) -> np.ndarray:
    """A photometric ``error`` (h, w) capped at ``cap`` and smoothed by a Gaussian of sigma ``blur`` px
    (none for 0), float32: what :func:`smoothed_photometric_error` returns, for an error at hand."""
    err = np.minimum(error, cap).astype(np.float32)
    return cv2.GaussianBlur(err, (0, 0), blur) if blur > 0 else err


def landings(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each pixel of ``flow`` (h, w, 2) lands, rounded to the nearest pixel: x and y (h, w) int64,
    and whether that is inside the crop."""
    h, w = flow.shape[:2]
    x, y = pixel_grid(h, w)
    tx = np.rint(x + flow[..., 0]).astype(np.int64)
    ty = np.rint(y + flow[..., 1]).astype(np.int64)
    return tx, ty, (tx >= 0) & (tx < w) & (ty >= 0) & (ty < h)


def footprint(tx: np.ndarray, ty: np.ndarray, where: np.ndarray) -> np.ndarray:
    """(h, w) bool: the cells where the pixels ``where`` (h, w, inside the crop) land, by
    :func:`landings` (``tx``, ``ty``), closed 3x3 (a slightly expanding motion leaves no holes)."""
    cells = np.zeros(where.shape, np.uint8)
    cells[ty[where], tx[where]] = 1
    return cv2.morphologyEx(cells, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)).astype(bool)


def hidden_by_collision(flow: np.ndarray, error: np.ndarray, *, matched: float = 8.0) -> np.ndarray:
    """Pixels the flow shows as hidden in frame t+1: (h, w) bool.

    ``flow`` (h, w, 2) and its photometric ``error`` (h, w, grey levels) over one crop. A pixel is hidden
    when it does not match (error >= ``matched``) and lands on the footprint of the pixels that do: where
    those land in frame t+1 (rounded to the nearest pixel, closed 3x3; landings outside the crop are left
    out). This is the forward-splatting occlusion test: two pixels that land on one, and the one that
    matches is the one in view. It trusts the flow: a pixel whose flow is wrong (a background pixel
    carried along with the object beside it) does not match either and lands among pixels that do, so
    it looks hidden too (docs/design-notes.md, "Hidden pixels left out of the check").
    """
    h, w = error.shape
    tx, ty, inside = landings(flow)
    good = inside & (error < matched)
    return inside & ~good & footprint(tx, ty, good)[ty.clip(0, h - 1), tx.clip(0, w - 1)]


def landing_conflicts(flow: np.ndarray, *, apart: float = 2.0) -> np.ndarray:
    """Pixels that land, in frame t+1, where a pixel with another motion lands too: (h, w) bool.

    ``flow`` (h, w, 2) over one crop; landings are rounded to the nearest pixel, and one lands where
    another does when their cells are the same or neighbours (3x3). Another motion: a flow that differs
    by more than ``apart`` px in u or in v. Both pixels of such a collision are marked (which one is in
    view is not asked here); pixels that land outside the crop are not.
    """
    h, w = flow.shape[:2]
    tx, ty, inside = landings(flow)
    cell = (ty * w + tx)[inside]
    cy, cx = ty.clip(0, h - 1), tx.clip(0, w - 1)
    near = np.ones((3, 3), np.uint8)
    conflict = np.zeros((h, w), bool)
    for c in range(2):
        values = flow[..., c][inside].astype(np.float32)
        low = np.full(h * w, np.inf, np.float32)
        high = np.full(h * w, -np.inf, np.float32)
        np.minimum.at(low, cell, values)  # the smallest and largest flow landing on each cell
        np.maximum.at(high, cell, values)
        low = cv2.erode(low.reshape(h, w), near)  # ... and on its neighbours
        high = cv2.dilate(high.reshape(h, w), near)
        own = flow[..., c]
        conflict |= (high[cy, cx] - own > apart) | (own - low[cy, cx] > apart)
    return inside & conflict
