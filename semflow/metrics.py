"""Flow accuracy metrics: endpoint error (EPE) and KITTI's Fl-all outlier rate.

All functions take flow arrays (H, W, 2) in pixels and optional boolean masks (H, W).
"""

from __future__ import annotations

import cv2
import numpy as np

from semflow.errors import InputError
from semflow.io.flow import UNKNOWN_FLOW_THRESHOLD, check_flow, check_mask

BAND_WIDTH = 5
"""Width (px) of the band inside object outlines that :func:`inner_band` measures by default."""


def endpoint_error(flow: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-pixel endpoint error |flow - gt| (H, W), in pixels. InputError when ``gt`` is no (H, W, 2)
    flow of ``flow``'s size (a KITTI PNG's raw (H, W, 3) included: read it with ``read_flow``)."""
    flow = check_flow(flow, name="estimate")
    gt = np.asarray(gt, np.float32)
    if flow.shape != gt.shape:
        raise InputError(f"the estimate {flow.shape} and the ground truth {gt.shape} differ in shape; both"
                         " must be (H, W, 2) flows of one size")
    return np.linalg.norm(flow - gt, axis=2)


def _mask(valid: np.ndarray | None, gt: np.ndarray, region: np.ndarray | None) -> np.ndarray:
    """Pixels to score: ``valid`` and inside ``region`` where given, and where the ground truth is known:
    finite, each component at most ``UNKNOWN_FLOW_THRESHOLD`` (1e9) in size (the readers' unknown flow)."""
    gt = np.asarray(gt)
    shape = gt.shape
    if gt.ndim == 3:
        with np.errstate(invalid="ignore"):
            mask = (np.abs(gt) <= UNKNOWN_FLOW_THRESHOLD).all(axis=-1)  # NaN compares False: unknown too
    else:
        mask = np.ones(shape[:2], bool)
    if valid is not None:
        mask &= check_mask(valid, shape)
    if region is not None:
        mask = mask & check_mask(region, shape, name="region")
    return mask


def _scored_mean(per_pixel: np.ndarray, gt: np.ndarray, valid: np.ndarray | None,
                 region: np.ndarray | None) -> float:
    """Mean of a per-pixel score (H, W) over the pixels :func:`_mask` scores; NaN if there are none."""
    mask = _mask(valid, gt, region)
    return float(per_pixel[mask].mean()) if mask.any() else float("nan")


def epe(flow: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None,
        region: np.ndarray | None = None) -> float:
    """Mean endpoint error over valid pixels (inside ``region`` if given); NaN if none are valid.

    Ground-truth pixels that are not finite (NaN, inf) or unknown (a component over 1e9 px, the .flo
    convention) count as invalid.
    """
    return _scored_mean(endpoint_error(flow, gt), gt, valid, region)


def outliers(flow: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """KITTI outlier map (H, W): EPE > 3 px and EPE > 5% of |gt|."""
    err = endpoint_error(flow, gt)
    mag = np.linalg.norm(np.asarray(gt, np.float32), axis=2)
    return (err > 3.0) & (err > 0.05 * mag)


def fl_all(flow: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None,
           region: np.ndarray | None = None) -> float:
    """Fraction in [0, 1] of valid pixels that are KITTI outliers; NaN if none are valid.

    Ground-truth pixels that are not finite (NaN, inf) or unknown (a component over 1e9 px, the .flo
    convention) count as invalid.
    """
    return _scored_mean(outliers(flow, gt), gt, valid, region)


def inner_band(mask: np.ndarray, width: int = BAND_WIDTH, instances: np.ndarray | None = None) -> np.ndarray:
    """Pixels of ``mask`` (H, W) bool less than ``width`` px inside its outline (H, W) bool.

    With ``instances`` (H, W) int (object ids), the outline between two touching objects counts too:
    that is where motion jumps. Pixels at the image border are not an outline.
    """
    mask = np.asarray(mask, bool)
    ids = np.where(mask, 1, 0) if instances is None else np.where(mask, np.asarray(instances, np.int64) + 1, 0)
    padded = np.pad(ids, 1, mode="edge")
    h, w = mask.shape
    edge = np.zeros((h, w), bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):  # a 4-neighbour of another id (or outside the mask)
        edge |= padded[dy:dy + h, dx:dx + w] != ids
    edge &= mask
    if not edge.any():
        return np.zeros((h, w), bool)
    dist = cv2.distanceTransform((~edge).astype(np.uint8), cv2.DIST_L2, 5)
    return mask & (dist < width)


def flow_stats(flow: np.ndarray) -> dict[str, float]:
    """Magnitude statistics of a flow field, in pixels: mean, median, p95, max."""
    mag = np.linalg.norm(check_flow(flow), axis=2)
    return {
        "mean": float(mag.mean()),
        "median": float(np.median(mag)),
        "p95": float(np.percentile(mag, 95)),
        "max": float(mag.max()),
    }
