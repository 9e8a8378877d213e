"""Temporally stable segmentation of a video: each pixel's class is filtered along its motion
trajectory. A hidden Markov model per trajectory: the class stays the same from frame to frame except
with a small switch probability, and each frame's segmenter output is a (tempered) observation. The
forward filter carries the previous frame's belief into the frame by the optical flow, where that flow
is trustworthy, and multiplies in the new evidence.

For frame t with single-frame probabilities Q_t (H, W, C) and the backward flow b (frame t -> t-1):

    P~(x)    = P_{t-1}(x + b(x))                           the previous belief, carried along the flow
    trust(x) = forward-backward check |b(x) + f(x + b(x))| <= fb_tolerance + 5% of |b(x)|
               and photometric check |I_t(x) - I_{t-1}(x + b(x))| <= photo_tolerance (blurred grey levels)
               and x + b(x) inside frame t-1
    prior(x) = (1 - switch) P~(x) + switch / C  where trusted, uniform 1 / C elsewhere
    P_t(x)  ~= Q_t(x) ** observation * prior(x)            normalised over the C classes

Where the flow cannot be trusted (disocclusions, a cut, motion the cheap flow misses) P_t is the
current frame's evidence alone. ``observation`` < 1 tempers each frame's evidence, since the errors of
a network on consecutive, nearly equal frames are far from independent; ``switch`` bounds the belief
(at most 1 - switch for one class before the evidence), so a real change of class wins in a few frames.

The flows come from the caller (a flow method that already has them) or from OpenCV's DIS (medium
preset) on grey frames, computed here. Use one :class:`TemporalSegmentation` per video, frames in order::

    temporal = TemporalSegmentation()
    for frame in frames:
        seg = temporal.update(frame, segmenter.predict(frame))   # a Segmentation with fused probs/labels
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from semflow.baseline.opencv import dis_flow
from semflow.segmentation.base import Segmentation, check_image
from semflow.warp import magnitude, to_gray, warp_backward

EPS = 1e-6


def flow_trust(gray: np.ndarray, previous_gray: np.ndarray, backward: np.ndarray, forward: np.ndarray, *,
               fb_tolerance: float = 1.0, photo_tolerance: float = 20.0) -> np.ndarray:
    """(H, W) bool: where the backward flow (frame t -> t-1) of frame t can be trusted.

    ``gray``/``previous_gray`` uint8 (H, W) frames t and t-1; ``forward`` the flow t-1 -> t. Trusted:
    the point lands inside frame t-1, the forward flow there brings it back within ``fb_tolerance`` px
    plus 5% of the motion, and the grey level there (both frames blurred by sigma 1) differs by at most
    ``photo_tolerance``.
    """
    carried_forward, inside = warp_backward(forward, backward)
    round_trip = backward + carried_forward
    fb_ok = magnitude(round_trip) <= fb_tolerance + 0.05 * magnitude(backward)
    g1 = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 1.0)
    g0 = cv2.GaussianBlur(previous_gray.astype(np.float32), (0, 0), 1.0)
    photo_ok = np.abs(g1 - warp_backward(g0, backward)[0]) <= photo_tolerance
    return inside & fb_ok & photo_ok


class TemporalSegmentation:
    """Fuses each frame's class probabilities with the previous frame's along the flow (see module doc).

    ``switch`` in (0, 1]: the per-frame class switch probability (1 turns fusion off: the prior is uniform).
    ``observation`` > 0: the exponent of each frame's probabilities. ``fb_tolerance`` (px) and
    ``photo_tolerance`` (grey levels): the trust checks.
    After each call, :attr:`trust` is the (H, W) bool map that was used (None on a first frame).
    """

    def __init__(self, switch: float = 0.05, observation: float = 0.5, *, fb_tolerance: float = 1.0,
                 photo_tolerance: float = 20.0) -> None:
        if not 0.0 < switch <= 1.0:
            raise ValueError(f"switch must be in (0, 1], got {switch}")
        if not observation > 0.0:
            raise ValueError(f"observation must be positive, got {observation}")
        self.switch, self.observation = switch, observation
        self.fb_tolerance = fb_tolerance
        self.photo_tolerance = photo_tolerance
        self.trust: np.ndarray | None = None
        self._gray: np.ndarray | None = None
        self._belief: np.ndarray | None = None

    def fuse(self, image: np.ndarray, probs: np.ndarray, *, backward_flow: np.ndarray | None = None,
             forward_flow: np.ndarray | None = None) -> np.ndarray:
        """Fused probabilities (H, W, C) float32 of frame t.

        ``image`` uint8 RGB (H, W, 3) frame t (or any image a segmenter takes: grey, float [0, 1]...),
        ``probs`` its single-frame probabilities (H, W, C).
        ``backward_flow`` (t -> t-1) and ``forward_flow`` (t-1 -> t), (H, W, 2) px, if the caller has
        them; missing ones are computed with DIS. The first frame (or one of another size or class
        count) is returned as given.
        """
        probs = np.asarray(probs, np.float32)
        gray = to_gray(check_image(image))  # (as the segmenter saw it: a float frame cast to uint8 was black)
        if self._belief is None or self._belief.shape != probs.shape or self.switch >= 1.0:
            self._gray, self._belief, self.trust = gray, probs, None
            return probs
        backward = dis_flow(gray, self._gray) if backward_flow is None else np.asarray(backward_flow, np.float32)
        forward = dis_flow(self._gray, gray) if forward_flow is None else np.asarray(forward_flow, np.float32)
        self.trust = flow_trust(gray, self._gray, backward, forward, fb_tolerance=self.fb_tolerance,
                                photo_tolerance=self.photo_tolerance)
        classes = probs.shape[2]
        prior = (1.0 - self.switch) * warp_backward(self._belief, backward)[0] + self.switch / classes
        prior[~self.trust] = 1.0 / classes
        out = np.maximum(probs, EPS) ** self.observation * prior
        out /= out.sum(axis=2, keepdims=True)
        self._gray, self._belief = gray, out
        return out

    def update(self, image: np.ndarray, seg: Segmentation, *, backward_flow: np.ndarray | None = None,
               forward_flow: np.ndarray | None = None) -> Segmentation:
        """``seg`` (frame t's single-frame Segmentation) with fused probabilities and labels: its own labels
        except where the filter changes the decision its probabilities make (as :func:`fuse_with_prior`).
        (Labels decided beyond the probabilities, such as a CLIP prior's per-region labels, stay as decided;
        they were replaced by the fused argmax, and the label maps no longer matched the prior's decisions.)"""
        probs = self.fuse(image, seg.probs, backward_flow=backward_flow, forward_flow=forward_flow)
        if probs is seg.probs or self.trust is None:
            return seg
        decided = probs.argmax(axis=2).astype(np.uint8)
        labels = np.where(decided != np.asarray(seg.probs).argmax(axis=2), decided, seg.labels).astype(np.uint8)
        return replace(seg, probs=probs, labels=labels, _instances=None)


# --- the same filter for a caller that carries its own state (semantic's video mode) ----------------

FUSION_SIDE = 480
"""Longest side (px) at which :func:`carry_belief` keeps a belief: class probabilities vary smoothly,
and a quarter of the pixels makes the carry cheap at video sizes."""


def invert_flow(forward: np.ndarray, iterations: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The backward flow b (frame t -> t-1) of a forward flow f (t-1 -> t), (H, W, 2) px, by the fixed
    point b(x) = -f(x + b(x)) (a few iterations from b = -f(x)), and where it converged (H, W) bool:
    the last step moved b by at most 0.5 px (+5%); elsewhere (disocclusions, folds) it is no inverse."""
    back = -np.asarray(forward, np.float32)
    step = np.zeros(back.shape[:2], np.float32)
    for i in range(iterations):
        new = -warp_backward(forward, back)[0]
        if i == iterations - 1:  # (only the last step tells where it converged)
            step = magnitude(new - back)
        back = new
    return back, step <= 0.5 + 0.05 * magnitude(back)


def carry_belief(belief: np.ndarray, image0: np.ndarray, image1: np.ndarray, forward: np.ndarray, *,
                 switch: float = 0.05, photo_tolerance: float = 20.0) -> np.ndarray:
    """The prior of frame t (the module's ``prior``): ``belief`` (h, w, C) of frame t-1, at any size up to
    the frames', carried to frame t by ``forward`` (H, W, 2, frame t-1 -> t) where that is trustworthy
    (its inverse converged, the grey levels agree within ``photo_tolerance``, inside frame t-1), uniform
    elsewhere. ``image0``/``image1`` uint8 RGB (H, W, 3) frames t-1 and t. Returned at the belief's size,
    float32, normalised over the C classes."""
    h, w, classes = belief.shape
    height, width = forward.shape[:2]
    scale = w / width
    if (h, w) != (height, width):
        forward = cv2.resize(forward, (w, h), interpolation=cv2.INTER_AREA) * scale
    grey = [cv2.resize(to_gray(np.asarray(im, np.uint8)), (w, h),
                       interpolation=cv2.INTER_AREA).astype(np.float32) for im in (image0, image1)]
    back, converged = invert_flow(forward)
    previous, inside = warp_backward(np.asarray(belief, np.float32), back)
    g0, g1 = (cv2.GaussianBlur(g, (0, 0), 1.0) for g in grey)
    trust = converged & inside & (np.abs(g1 - warp_backward(g0, back)[0]) <= photo_tolerance)
    prior = (1.0 - switch) * previous + switch / classes
    prior[~trust] = 1.0 / classes
    return prior


def fusion_size(height: int, width: int) -> tuple[int, int]:
    """(h, w) at which a belief of (height, width) frames is kept: at most :data:`FUSION_SIDE` on its
    longest side."""
    scale = min(1.0, FUSION_SIDE / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def fuse_with_prior(labels: np.ndarray, probs: np.ndarray, prior: np.ndarray | None, observation: float = 0.5
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Frame t's fused labels (H, W) uint8 and its belief (h, w, C) float32 (the module's ``P_t``,
    ``probs ** observation * prior`` normalised), at the size of ``probs``.

    ``labels`` (H, W) uint8 are the single-frame labels at full size, ``probs`` (h, w, C) the
    single-frame probabilities at the belief's size (:func:`fusion_size`), ``prior`` from
    :func:`carry_belief` (None: the first frame). The fused labels are ``labels`` except where the
    filter changes the decision at the belief's size: there they take the filter's class.
    """
    probs = np.asarray(probs, np.float32)
    if prior is None or prior.shape != probs.shape:
        return labels, probs
    fused = np.maximum(probs, EPS) ** observation * prior
    fused /= np.maximum(fused.sum(axis=2, keepdims=True), EPS)
    decided = fused.argmax(axis=2).astype(np.uint8)
    changed = decided != probs.argmax(axis=2)
    if changed.any():
        height, width = labels.shape
        if decided.shape != labels.shape:  # (each full-size pixel takes the cell its centre lies in)
            decided = cv2.resize(decided, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)
            changed = cv2.resize(changed.view(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST_EXACT) > 0
        labels = np.where(changed, decided, labels)
    return labels, fused
