"""A temporal prior for video mode: where the new pair's matches are weak, lean on the last flow.

Pair mode interpolates each pair's flow from that pair's matches alone. Where none back it (low
texture: asphalt, sky; fast motion near the frame's bottom edge) the interpolated flow is whatever the
nearest matches say, and it jumps from one pair to the next. In video mode the last flow, carried
forward along itself (:func:`~semflow.baseline.discrete.temporal.along_itself`: the motion of the
point that arrived at each pixel), is a second estimate of the same motion. Before the variational
refinement, the interpolated flow F is pulled toward the carried flow C::

    F' = F + w (C - F),   w = weight * max(1 - support, better) * fit

with, per pixel, e_F and e_C the photometric errors of F and C (|I_1(x) - I_2(x + flow(x))|, grey
levels, locally averaged over the pixels whose flow stays in the frame), and

- ``support`` in [0, 1]: the share of kept grid matches around the pixel: where matches back F, the
  prior stays out unless ``better``;
- ``better`` in [0, 1]: C explains the images better than F: (e_F - e_C - margin) / tolerance;
- ``fit`` in [0, 1], the gate: 1 where C explains the images at least as well as F, falling to 0 as
  e_C exceeds e_F by ``tolerance`` grey levels. After a cut or a sudden change of motion C does not
  fit the new frames and F is kept. Where either flow leaves the frame around the pixel, the images
  cannot compare them and the gate is its mean where they can: in steady motion about 1, C let in (near
  the frame's edges the true motion often points out of it); on a camera shake about 0, since C fits
  nowhere (it was 1 there too: pixels leaving the frame took the last pair's motion, 10 % of a
  240x180 frame more than 1 px off on a jump of (-16, -6) px).

The variational refinement then fits the blend to the images. Since each pair blends toward the last
result, in weakly matched areas the flow is an exponential moving average of the evidence: steady, at
a lag of about weight / (1 - weight) pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from semflow.baseline.discrete.temporal import along_itself
from semflow.warp import warp_backward


@dataclass(frozen=True)
class PriorParams:
    """weight: the largest pull toward the carried flow (0: off). tolerance: grey levels over which
    the gate ``fit`` falls from 1 to 0 and ``better`` rises from 0 to 1. margin: grey levels by which
    the carried flow's photometric error must be below the new one's before ``better`` rises. blur:
    sigma (px) of the local averaging of the photometric errors. support_blur: sigma (grid cells) of
    the spread of kept grid matches (see the module docstring)."""

    weight: float = 0.85
    tolerance: float = 2.0
    margin: float = 0.0
    blur: float = 4.0
    support_blur: float = 1.5


def match_support(valid: np.ndarray, size: tuple[int, int], sigma: float) -> np.ndarray:
    """The share of kept grid matches around each pixel: ``valid`` (Gh, Gw) bool, the lattice of grid
    points over the frame, blurred by ``sigma`` grid cells and resized to ``size`` (H, W); float32 in
    [0, 1]."""
    h, w = size
    spread = cv2.GaussianBlur(valid.astype(np.float32), (0, 0), sigma)
    # Normalise so that a fully valid lattice gives 1 everywhere (the border of the blur loses mass).
    norm = cv2.GaussianBlur(np.ones_like(spread), (0, 0), sigma)
    spread = spread / np.maximum(norm, 1e-6)
    return np.clip(cv2.resize(spread, (w, h), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)


def _reduce(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def local_error(gray1: np.ndarray, gray2: np.ndarray, flow: np.ndarray, blur: float, size: tuple[int, int]
                ) -> tuple[np.ndarray, np.ndarray]:
    """|I_1(x) - I_2(x + flow(x))| (``gray1``, ``gray2`` float32 (H, W), grey levels; ``flow`` (H, W, 2)
    px), Gaussian-averaged with sigma ``blur`` px (of these frames) over the pixels whose x + flow(x) lands inside the frame, and the weight in
    [0, 1] of those pixels in the average (0: the flow leaves the frame all around x, nothing is known
    there); both float32 at ``size`` (width, height), a reduction of (W, H): the averages are smooth."""
    warped, inside = warp_backward(gray2, flow)
    inside = inside.astype(np.float32)
    sigma = blur * size[0] / gray1.shape[1]
    mass, err = (cv2.GaussianBlur(cv2.resize(a, size, interpolation=cv2.INTER_AREA), (0, 0), sigma)
                 for a in (inside, cv2.multiply(cv2.absdiff(gray1, warped), inside)))
    return err / np.maximum(mass, 1e-3), mass


def blend_toward_carried(flow: np.ndarray, last_flow: np.ndarray, valid: np.ndarray,
                         gray1: np.ndarray, gray2: np.ndarray, params: PriorParams = PriorParams(), *,
                         along: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The interpolated ``flow`` (H, W, 2) px pulled toward ``last_flow`` (the last pair's flow, same
    size) carried forward along itself, where the grid matches ``valid`` (Gh, Gw bool, the lattice of
    grid points over the frame) are sparse and the carried flow fits the frames ``gray1``, ``gray2``
    (uint8 (H, W)) at least as well, or where it fits clearly better. Returns the blended flow
    (H, W, 2) float32 and the weight map w (H, W) float32 in [0, 1] (see the module docstring).
    ``along``: ``last_flow`` carried along itself, when already computed."""
    h, w = flow.shape[:2]
    if params.weight <= 0 or last_flow is None or last_flow.shape != flow.shape:
        return flow, np.zeros((h, w), np.float32)
    carried = along_itself(last_flow) if along is None else along
    # The photometric errors are compared at half size and averaged at a quarter (they are smooth),
    # the weight is worked out at a quarter size.
    half, small = (max(1, w // 2), max(1, h // 2)), (max(1, w // 4), max(1, h // 4))
    scale = np.float32([half[0] / w, half[1] / h])
    g1, g2 = (_reduce(g.astype(np.float32), half) for g in (gray1, gray2))
    e_new, seen_new = local_error(g1, g2, _reduce(flow, half) * scale, params.blur * scale[0], small)
    e_old, seen_old = local_error(g1, g2, _reduce(carried, half) * scale, params.blur * scale[0], small)
    fit = np.clip(1.0 - (e_old - e_new) / params.tolerance, 0.0, 1.0)
    blind = np.minimum(seen_new, seen_old) < 0.5  # the images cannot compare the two flows there:
    fit[blind] = float(fit[~blind].mean()) if (~blind).any() else 1.0  # C as trusted as where they can
    support = match_support(valid, (small[1], small[0]), params.support_blur)
    better = np.clip((e_new - e_old - params.margin) / params.tolerance, 0.0, 1.0)
    weight = params.weight * np.maximum(1.0 - support, better) * fit
    weight = cv2.resize(weight.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    blended = cv2.add(flow, cv2.multiply(cv2.subtract(carried, flow), cv2.merge([weight, weight])))
    return blended, weight
