"""The pair context: everything the layer models read about one frame pair, built once per pair.

    ctx = PairContext.build(img1, img2, baseline_flow, confidence, thing_pixels=things)
    planes = fit_planes(plane_regions, ctx)                     # semflow.layers.planes
    things = fit_things(instances, instance_map, ctx, plane_flow=...)   # semflow.layers.things
    comp = compose(ctx, planes, things)                         # semflow.compose

It is frozen and its arrays are read-only views: a fitter can never change what the next one sees.
Shapes: H, W of the frames; flows (H, W, 2) float32, u then v in pixels, frame t -> t+1; photometric
errors in grey levels (0-255, capped at :data:`~semflow.layers.common.ERROR_CAP`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from semflow.layers.common import PHOTOMETRIC_SCALE, GrayFrames, gray_frames, photometric_error, prepare_image
from semflow.warp import warp_backward

GAIN_TOLERANCE = 1.1
"""Frame 2 brighter or darker than frame 1 by more than this factor (a channel's gain) is matched to it
(:func:`match_brightness`) before the models compare photometric errors."""
MAX_GAIN = 8.0
"""The largest gain (or 1 / gain) :func:`match_brightness` applies (a frame nearly black stays as it is)."""


def match_brightness(img1: np.ndarray, img2: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``img2`` (uint8 (H, W, C) or (H, W)) with each channel scaled by its gain to frame 1 where a global
    change of brightness (a fade, an exposure change) exceeds :data:`GAIN_TOLERANCE`; else ``img2`` as is.
    The gain is the median over pixels of I_1(x) / I_2(x + flow(x)) (``flow``: the baseline's, (H, W, 2)),
    where both are at least 4 grey levels: content that comes or goes (a large object entering) moves the
    frames' means, not this; gains beyond :data:`MAX_GAIN` are not applied. Photometric errors measured in
    grey levels otherwise favour a wrong model whose warp lands on matching brightness (a dim pair, 0.15
    -> 0.35 of full brightness: semantic's flow 8x too large)."""
    a = np.asarray(img1, np.float32).reshape(*img1.shape[:2], -1)
    b = np.asarray(img2, np.float32).reshape(*img2.shape[:2], -1)
    means = a.mean(axis=(0, 1)), b.mean(axis=(0, 1))
    if np.abs(np.log(np.maximum(means[0], 1e-3) / np.maximum(means[1], 1e-3))).max() <= np.log(GAIN_TOLERANCE):
        return img2  # (the common case: no channel's mean moved, nothing to measure)
    warped, inside = warp_backward(b, flow)
    warped = warped.reshape(b.shape)
    usable = inside[..., None] & (a >= 4) & (warped >= 4)
    if usable.sum(axis=(0, 1)).min() < 0.01 * inside.size:
        return img2  # (too little of the frames exposed to tell: one nearly black)
    gain = np.array([np.median(a[..., c][usable[..., c]] / warped[..., c][usable[..., c]]) for c in range(a.shape[2])])
    change = float(np.abs(np.log(gain)).max())
    if change <= np.log(GAIN_TOLERANCE) or change > np.log(MAX_GAIN):
        return img2
    return np.clip(b * gain, 0, 255).round().astype(np.uint8).reshape(np.shape(img2))


def read_only(array: np.ndarray) -> np.ndarray:
    """A read-only view of ``array`` (the array itself stays writable for whoever owns it)."""
    view = array.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True)
class PairContext:
    """One frame pair as the layer models see it (build it with :meth:`build`).

    ``f1``, ``f2``: float32 RGB (H, W, 3), lightly smoothed (:func:`~semflow.layers.common.prepare_image`);
    ``raw1``, ``raw2``: the same frames as given (float32, unsmoothed: where colours must not mix across
    an outline);
    ``gray``: both in gray and frame 2's warp target (:class:`~semflow.layers.common.GrayFrames`);
    ``baseline``: the baseline flow (H, W, 2); ``confidence``: its per-pixel confidence (H, W) float32 in
    [0, 1]; ``baseline_error``: its photometric error (H, W) float32, grey levels
    (:func:`~semflow.layers.common.photometric_error`); ``thing_pixels``: (H, W) bool, pixels of any
    thing class (plane models keep away from them, thing models leave other things alone).
    """

    f1: np.ndarray
    f2: np.ndarray
    raw1: np.ndarray
    raw2: np.ndarray
    gray: GrayFrames
    baseline: np.ndarray
    confidence: np.ndarray
    baseline_error: np.ndarray
    thing_pixels: np.ndarray

    @classmethod
    def build(cls, img1: np.ndarray, img2: np.ndarray, baseline: np.ndarray,
              confidence: np.ndarray | None = None, *, thing_pixels: np.ndarray | None = None) -> PairContext:
        """The context of frames ``img1``, ``img2`` (uint8 RGB (H, W, 3)) and a baseline flow (H, W, 2).

        ``confidence`` (H, W), the baseline's own, is clipped to [0, 1]; without one it is
        ``exp(-e / PHOTOMETRIC_SCALE)`` of the baseline's photometric error ``e`` (5x5 mean).
        ``thing_pixels`` (H, W) bool: default none. Frame 2 is first matched to frame 1's brightness
        where a global change exceeds :data:`GAIN_TOLERANCE` (:func:`match_brightness`).
        """
        img2 = match_brightness(img1, img2, baseline)
        f1, f2 = prepare_image(img1), prepare_image(img2)
        baseline_error, _ = photometric_error(f1, f2, baseline)
        if confidence is not None:
            confidence = np.clip(np.asarray(confidence, np.float32), 0, 1)
        else:
            confidence = np.exp(-cv2.blur(baseline_error, (5, 5)) / PHOTOMETRIC_SCALE).astype(np.float32)
        if thing_pixels is None:
            thing_pixels = np.zeros(baseline.shape[:2], bool)
        gray = GrayFrames(*(read_only(g) for g in gray_frames(f1, f2)))
        raw1, raw2 = (np.asarray(img, np.float32) for img in (img1, img2))
        return cls(read_only(f1), read_only(f2), read_only(raw1), read_only(raw2), gray, read_only(baseline),
                   read_only(confidence), read_only(baseline_error), read_only(np.asarray(thing_pixels, bool)))

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the frames."""
        return self.baseline.shape[:2]
