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

GAIN_TOLERANCE = 1.1
"""Frame 2 brighter or darker than frame 1 by more than this factor (a channel's mean) is matched to it
(:func:`match_brightness`) before the models compare photometric errors."""


def match_brightness(img1: np.ndarray, img2: np.ndarray) -> np.ndarray:
    """``img2`` (uint8 RGB) with each channel scaled to frame 1's mean where a global change of brightness
    (a fade, an exposure change) makes one differ by more than :data:`GAIN_TOLERANCE`; else ``img2`` as is.
    Photometric errors measured in grey levels otherwise favour a wrong model whose warp happens to land
    on matching brightness (a dim pair, 0.15 -> 0.35 of full brightness: semantic's flow 8x too large)."""
    mean1 = np.asarray(img1, np.float32).reshape(-1, img1.shape[-1]).mean(axis=0)
    mean2 = np.asarray(img2, np.float32).reshape(-1, img2.shape[-1]).mean(axis=0)
    gain = mean1 / np.maximum(mean2, 1e-3)
    if np.abs(np.log(np.maximum(gain, 1e-6))).max() <= np.log(GAIN_TOLERANCE) or mean1.max() < 1.0:
        return img2
    return np.clip(np.asarray(img2, np.float32) * gain, 0, 255).round().astype(np.uint8)


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
        img2 = match_brightness(img1, img2)
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
