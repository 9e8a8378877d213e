"""Optical flow file formats: Middlebury ``.flo``, KITTI 16-bit PNG and NumPy ``.npy``.

Flow is a float32 array (H, W, 2): u (to the right) then v (down), in pixels, from frame t to t+1.
Pixels whose flow is unknown are reported through a boolean ``valid`` mask (H, W).

- ``.flo``: float32 tag 202021.25, int32 width, int32 height, then interleaved float32 u, v, all
  little-endian. A component with ``|value| > 1e9`` marks the pixel unknown.
- KITTI ``.png``: 16-bit, 3 channels u, v, valid in RGB order; ``value = (raw - 2**15) / 64``.
- ``.npy``: a float array (H, W, 2); NaN marks unknown pixels only if ``allow_unknown`` is set.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from semflow.errors import InputError
from semflow.io.atomic import atomic_path, write_bytes_atomic
from semflow.io.files import require_file

FLO_TAG = 202021.25
UNKNOWN_FLOW_THRESHOLD = 1e9
UNKNOWN_FLOW_VALUE = 1e10
MAX_FLO_SIDE = 100_000
FLOW_EXTENSIONS = (".flo", ".png", ".npy")


def check_flow(flow: np.ndarray, *, name: str = "flow") -> np.ndarray:
    """Return ``flow`` as float32 (H, W, 2), raising :class:`InputError` on a bad shape or NaN/inf."""
    arr = np.asarray(flow)
    if arr.ndim != 3 or arr.shape[2] != 2:
        raise InputError(f"{name}: expected flow of shape (H, W, 2), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise InputError(f"{name}: expected a float flow array, got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=2).sum())
        raise InputError(f"{name}: flow has NaN or inf values at {bad} pixels")
    return arr.astype(np.float32, copy=False)


# --- .flo -------------------------------------------------------------------------------------


def read_flo(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a Middlebury ``.flo`` file. Returns ``(flow (H, W, 2) float32, valid (H, W) bool)``."""
    path = require_file(path)
    data = path.read_bytes()
    if len(data) < 12:
        raise InputError(f"{path}: not a .flo file (only {len(data)} bytes)")
    tag = np.frombuffer(data, "<f4", 1, 0)[0]
    if tag != np.float32(FLO_TAG):
        raise InputError(f"{path}: not a .flo file (wrong tag {float(tag)!r}, expected {FLO_TAG})")
    width, height = (int(x) for x in np.frombuffer(data, "<i4", 2, 4))
    if not (0 < width <= MAX_FLO_SIDE and 0 < height <= MAX_FLO_SIDE):
        raise InputError(f"{path}: corrupt .flo header (size {width}x{height})")
    expected = 12 + 8 * width * height
    if len(data) != expected:
        raise InputError(
            f"{path}: corrupt .flo file ({len(data)} bytes, expected {expected} for {width}x{height})"
        )
    flow = np.frombuffer(data, "<f4", 2 * width * height, 12).reshape(height, width, 2).copy()
    unknown = ~np.isfinite(flow).all(axis=2) | (np.abs(flow) > UNKNOWN_FLOW_THRESHOLD).any(axis=2)
    flow[unknown] = 0.0
    return flow.astype(np.float32), ~unknown


def write_flo(path: str | os.PathLike, flow: np.ndarray, valid: np.ndarray | None = None) -> None:
    """Write ``flow`` (H, W, 2) as ``.flo``; pixels where ``valid`` is False are written as unknown."""
    flow = check_flow(flow).copy()
    if valid is not None:
        flow[~np.asarray(valid, bool)] = UNKNOWN_FLOW_VALUE
    height, width = flow.shape[:2]
    header = np.array([FLO_TAG], "<f4").tobytes() + np.array([width, height], "<i4").tobytes()
    write_bytes_atomic(path, header + flow.astype("<f4").tobytes())


# --- KITTI 16-bit PNG -------------------------------------------------------------------------


def read_kitti_flow(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a KITTI flow PNG. Returns ``(flow (H, W, 2) float32, valid (H, W) bool)``."""
    path = require_file(path)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise InputError(f"{path}: cannot decode as an image")
    if raw.dtype != np.uint16 or raw.ndim != 3 or raw.shape[2] != 3:
        channels = 1 if raw.ndim == 2 else raw.shape[2]
        raise InputError(
            f"{path}: not a KITTI flow PNG (need 16-bit, 3 channels; got {raw.dtype.itemsize * 8}-bit,"
            f" {channels} channel(s))"
        )
    bgr = raw.astype(np.float32)
    flow = (np.stack([bgr[..., 2], bgr[..., 1]], axis=2) - 2.0**15) / 64.0
    valid = raw[..., 0] > 0
    flow[~valid] = 0.0
    return flow, valid


def write_kitti_flow(path: str | os.PathLike, flow: np.ndarray, valid: np.ndarray | None = None) -> None:
    """Write ``flow`` as a KITTI 16-bit PNG (values clipped to the format's +-512 px range)."""
    flow = check_flow(flow)
    if valid is None:
        valid = np.ones(flow.shape[:2], bool)
    raw = np.clip(np.round(flow * 64.0 + 2.0**15), 0, 2**16 - 1).astype(np.uint16)
    bgr = np.stack([np.asarray(valid, np.uint16), raw[..., 1], raw[..., 0]], axis=2)
    bgr[~np.asarray(valid, bool), 1:] = 0
    with atomic_path(path, suffix=".png") as tmp:
        if not cv2.imwrite(str(tmp), bgr):
            raise InputError(f"{path}: could not write PNG")


# --- .npy -------------------------------------------------------------------------------------


def read_npy_flow(path: str | os.PathLike, *, allow_unknown: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Read a ``.npy`` flow (H, W, 2). NaN pixels are unknown only when ``allow_unknown`` is set."""
    path = require_file(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{path}: not a readable .npy file ({exc})") from None
    if arr.ndim != 3 or arr.shape[2] != 2 or not np.issubdtype(arr.dtype, np.floating):
        raise InputError(f"{path}: expected a float array of shape (H, W, 2), got {arr.dtype} {arr.shape}")
    unknown = ~np.isfinite(arr).all(axis=2)
    if unknown.any() and not allow_unknown:
        raise InputError(f"{path}: flow has NaN or inf values at {int(unknown.sum())} pixels")
    flow = arr.astype(np.float32)
    flow[unknown] = 0.0
    return flow, ~unknown


def write_npy_flow(path: str | os.PathLike, flow: np.ndarray, valid: np.ndarray | None = None) -> None:
    """Write ``flow`` as ``.npy`` float32; pixels where ``valid`` is False become NaN."""
    flow = check_flow(flow).copy()
    if valid is not None:
        flow[~np.asarray(valid, bool)] = np.nan
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, flow)


# --- by extension -----------------------------------------------------------------------------


def _extension(path: str | os.PathLike) -> str:
    ext = Path(path).suffix.lower()
    if ext not in FLOW_EXTENSIONS:
        raise InputError(f"{path}: unknown flow format {ext or '(none)'}; use one of {', '.join(FLOW_EXTENSIONS)}")
    return ext


def read_flow_valid(path: str | os.PathLike, *, allow_unknown: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Read a flow file by extension. Returns ``(flow (H, W, 2) float32, valid (H, W) bool)``.

    ``allow_unknown``: read NaN pixels of a ``.npy`` (as :func:`write_flow` writes unknown pixels) as
    unknown instead of raising; ``.flo`` and KITTI ``.png`` always carry their own unknown markers.
    """
    ext = _extension(path)
    if ext == ".flo":
        return read_flo(path)
    if ext == ".png":
        return read_kitti_flow(path)
    return read_npy_flow(path, allow_unknown=allow_unknown)


def read_flow(path: str | os.PathLike) -> np.ndarray:
    """Read a flow file (``.flo``, KITTI ``.png``, ``.npy``) as float32 (H, W, 2); unknown pixels are 0."""
    return read_flow_valid(path)[0]


def write_flow(path: str | os.PathLike, flow: np.ndarray, valid: np.ndarray | None = None) -> None:
    """Write ``flow`` (H, W, 2) atomically in the format named by the extension."""
    ext = _extension(path)
    writer = {".flo": write_flo, ".png": write_kitti_flow, ".npy": write_npy_flow}[ext]
    writer(path, flow, valid)
