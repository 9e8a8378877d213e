"""Optical flow file formats: Middlebury ``.flo``, KITTI 16-bit PNG and NumPy ``.npy``.

Flow is a float32 array (H, W, 2): u (to the right) then v (down), in pixels, from frame t to t+1.
Pixels whose flow is unknown are reported through a boolean ``valid`` mask (H, W).

- ``.flo``: float32 tag 202021.25, int32 width, int32 height, then interleaved float32 u, v, all
  little-endian. A component with ``|value| > 1e9`` marks the pixel unknown.
- KITTI ``.png``: 16-bit, 3 channels u, v, valid in RGB order; ``value = (raw - 2**15) / 64``, so it
  holds -512 to 511.98 px; the writer marks a pixel with flow beyond that invalid (it says how many).
- ``.npy``: a float array (H, W, 2); as in ``.flo``, ``|value| > 1e9`` marks a pixel unknown.

One rule for every format: a finite component with ``|value| > 1e9`` marks the pixel unknown (KITTI
``.png`` says it with its valid channel); NaN or inf in a flow file is an error (:class:`InputError`),
never a silently black pixel. ``allow_unknown`` also reads NaN in a ``.npy`` as unknown, for files written by
semflow 0.1 (which marked unknown ``.npy`` pixels with NaN).

Readers check sizes before allocating: a header that declares more data than the file holds is an
error, not a huge allocation.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import cv2
import numpy as np

from semflow.errors import FlowRangeWarning, InputError, counted, reason, writing_output
from semflow.io.atomic import write_bytes_atomic
from semflow.io.files import image_file_bytes, require_file
from semflow.io.images import decode_image, write_image
from semflow.io.npyfile import npy_header

FLO_TAG = 202021.25
UNKNOWN_FLOW_THRESHOLD = 1e9
UNKNOWN_FLOW_VALUE = 1e10
MAX_FLO_SIDE = 100_000
FLOW_EXTENSIONS = (".flo", ".png", ".npy")


def check_flow(flow: np.ndarray, *, name: str = "flow") -> np.ndarray:
    """Return ``flow`` as float32 (H, W, 2), raising :class:`InputError` on a bad or empty shape, NaN/inf,
    or a component beyond ``1e9`` px (the unknown-flow marker; its magnitude would overflow float32)."""
    arr = np.asarray(flow)
    if arr.ndim != 3 or arr.shape[2] != 2:
        raise InputError(f"{name}: expected flow of shape (H, W, 2), got {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"{name}: flow is empty ({arr.shape[1]}x{arr.shape[0]})")
    if not np.issubdtype(arr.dtype, np.floating):
        raise InputError(f"{name}: expected a float flow array, got dtype {arr.dtype}")
    with np.errstate(invalid="ignore"):  # (as Python floats: float16 cannot hold the 1e9 compared with)
        lowest, highest = float(arr.min()), float(arr.max())  # NaN if any is NaN: two fast passes decide
    if not (np.isfinite(lowest) and np.isfinite(highest)):
        bad = int((~np.isfinite(arr)).any(axis=2).sum())
        raise InputError(f"{name}: flow has NaN or inf values at {counted(bad, 'pixel')}")
    if max(-lowest, highest) > UNKNOWN_FLOW_THRESHOLD:
        huge = int((np.abs(arr) > UNKNOWN_FLOW_THRESHOLD).any(axis=2).sum())
        raise InputError(f"{name}: flow has values beyond 1e9 px (the unknown-flow marker) at {counted(huge, 'pixel')}")
    return arr.astype(np.float32, copy=False)


def check_mask(mask: np.ndarray | None, shape: tuple[int, ...], *, name: str = "valid") -> np.ndarray | None:
    """``mask`` as a bool (H, W) array for a flow of ``shape`` (None stays None); InputError when its
    size differs (a numpy IndexError deep inside before)."""
    if mask is None:
        return None
    arr = np.asarray(mask)
    if arr.shape != tuple(shape[:2]):
        raise InputError(f"{name}: a mask of shape {arr.shape} for a flow of {shape[1]}x{shape[0]} pixels")
    return arr.astype(bool, copy=False)


def check_flow_to_write(flow: np.ndarray, valid: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """(``flow`` as :func:`check_flow` gives it, ``valid`` as :func:`check_mask` does) for a writer: what lies
    at the pixels ``valid`` marks unknown is not written, so it is not checked (NaN or 1e10 there is fine)."""
    arr = np.asarray(flow)
    if valid is not None and arr.ndim == 3 and arr.shape[2] == 2 and np.issubdtype(arr.dtype, np.floating):
        valid = check_mask(valid, arr.shape)
        arr = np.where(valid[..., None], arr, arr.dtype.type(0))
    flow = check_flow(arr)
    return flow, check_mask(valid, flow.shape)


def _split_unknown(arr: np.ndarray, name: str, *, nan_is_unknown: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(flow float32 with unknown pixels set to 0, valid)`` for a flow array read from a file: a finite
    component with ``|value| > 1e9`` marks the pixel unknown; NaN or inf is an error unless
    ``nan_is_unknown`` (then they mark unknown pixels too)."""
    finite = np.isfinite(arr).all(axis=2)
    if not finite.all() and not nan_is_unknown:
        raise InputError(f"{name}: flow has NaN or inf values at {counted(int((~finite).sum()), 'pixel')}"
                         " (unknown flow is marked with a finite value beyond 1e9)")
    with np.errstate(invalid="ignore", over="ignore"):  # float64 beyond float32's range: unknown anyway
        unknown = ~finite | (np.abs(arr) > UNKNOWN_FLOW_THRESHOLD).any(axis=2)
        flow = arr.astype(np.float32)
    flow[unknown] = 0.0
    return flow, ~unknown


# --- .flo -------------------------------------------------------------------------------------


def read_flo(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a Middlebury ``.flo`` file. Returns ``(flow (H, W, 2) float32, valid (H, W) bool)``."""
    path = require_file(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        header = fh.read(12)
        if len(header) < 12:
            raise InputError(f"{path}: not a .flo file (only {len(header)} bytes)")
        tag = np.frombuffer(header, "<f4", 1, 0)[0]
        if tag != np.float32(FLO_TAG):
            raise InputError(f"{path}: not a .flo file (it starts with {bytes(header[:4])!r}, not the tag b'PIEH')")
        width, height = (int(x) for x in np.frombuffer(header, "<i4", 2, 4))
        if not (0 < width <= MAX_FLO_SIDE and 0 < height <= MAX_FLO_SIDE):
            raise InputError(f"{path}: corrupt .flo header (size {width}x{height})")
        expected = 12 + 8 * width * height
        if size != expected:  # checked before reading: a lying header allocates nothing
            raise InputError(f"{path}: corrupt .flo file ({size} bytes, expected {expected} for {width}x{height})")
        data = fh.read(expected - 12)
    if len(data) != expected - 12:
        raise InputError(f"{path}: corrupt .flo file (it changed while being read)")
    flow = np.frombuffer(data, "<f4").reshape(height, width, 2)
    return _split_unknown(flow, str(path))


def _unknown_marked(flow: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """``flow`` checked for writing (:func:`check_flow_to_write`) with the pixels where ``valid`` is False
    set to ``UNKNOWN_FLOW_VALUE`` (in a copy): unknown flow as .flo and .npy files store it."""
    flow, valid = check_flow_to_write(flow, valid)
    if valid is not None:
        flow = flow.copy()
        flow[~valid] = UNKNOWN_FLOW_VALUE
    return flow


def write_flo(path: str | os.PathLike, flow: np.ndarray, valid: np.ndarray | None = None) -> None:
    """Write ``flow`` (H, W, 2) as ``.flo``; pixels where ``valid`` is False are written as unknown."""
    flow = _unknown_marked(flow, valid)
    height, width = flow.shape[:2]
    header = np.array([FLO_TAG], "<f4").tobytes() + np.array([width, height], "<i4").tobytes()
    write_bytes_atomic(path, header, memoryview(np.ascontiguousarray(flow, "<f4")))  # without another copy


# --- KITTI 16-bit PNG -------------------------------------------------------------------------


def read_kitti_flow(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a KITTI flow PNG. Returns ``(flow (H, W, 2) float32, valid (H, W) bool)``."""
    path = require_file(path)
    raw = decode_image(image_file_bytes(path), str(path))
    if raw.dtype != np.uint16 or raw.ndim != 3 or raw.shape[2] != 3:
        channels = 1 if raw.ndim == 2 else raw.shape[2]
        raise InputError(
            f"{path}: not a KITTI flow PNG (need 16-bit, 3 channels; got {raw.dtype.itemsize * 8}-bit,"
            f" {channels} channel(s){'; an 8-bit PNG is a picture, not a flow' if raw.dtype == np.uint8 else ''})"
        )
    if raw[..., 0].max() > 1:  # a 16-bit photo has the format's shape but no 0/1 valid channel
        raise InputError(f"{path}: not a KITTI flow PNG (its valid channel, blue, holds values up to "
                         f"{int(raw[..., 0].max())}; KITTI's holds 0 and 1)")
    bgr = raw.astype(np.float32)
    flow = (np.stack([bgr[..., 2], bgr[..., 1]], axis=2) - 2.0**15) / 64.0
    valid = raw[..., 0] > 0
    flow[~valid] = 0.0
    return flow, valid


def write_kitti_flow(path: str | os.PathLike, flow: np.ndarray, valid: np.ndarray | None = None) -> int:
    """Write ``flow`` as a KITTI 16-bit PNG. The format holds u and v from -512 to 511.98 px: a pixel whose
    flow lies beyond is written as invalid (valid bit 0). Returns how many valid pixels that made invalid."""
    flow, valid = check_flow_to_write(flow, valid)
    valid = np.ones(flow.shape[:2], bool) if valid is None else valid
    scaled = np.round(flow.astype(np.float64) * 64.0 + 2.0**15)  # (float32 near 2**15 is 1/256 px coarse)
    held = ((scaled >= 0) & (scaled <= 2**16 - 1)).all(axis=2)
    lost = int((valid & ~held).sum())
    valid = valid & held
    raw = np.clip(scaled, 0, 2**16 - 1).astype(np.uint16)
    rgb = np.stack([raw[..., 0], raw[..., 1], valid.astype(np.uint16)], axis=2)
    rgb[~valid, :2] = 0
    write_image(path, rgb)  # (16-bit PNG, encoded in memory and written atomically)
    if lost:  # (a script that ignores the count lost them silently)
        warnings.warn(f"{path}: {lost} pixel(s) moved beyond the KITTI format's -512..512 px and are written"
                      " as unknown; .flo or .npy keeps them", FlowRangeWarning, stacklevel=3)
    return lost


# --- .npy -------------------------------------------------------------------------------------


def read_npy_flow(path: str | os.PathLike, *, allow_unknown: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Read a ``.npy`` flow (H, W, 2). NaN pixels are unknown only when ``allow_unknown`` is set."""
    path = require_file(path)
    arr = load_npy(path)
    if arr.ndim != 3 or arr.shape[2] != 2 or arr.dtype.kind != "f":
        raise InputError(f"{path}: expected a float array of shape (H, W, 2), got {arr.dtype} {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"{path}: flow is empty ({arr.shape[1]}x{arr.shape[0]})")
    return _split_unknown(arr, str(path), nan_is_unknown=allow_unknown)


def load_npy(path: str | os.PathLike) -> np.ndarray:
    """Read one array from a ``.npy`` file without trusting its header.

    Refuses (:class:`InputError`) an ``.npz`` archive under a ``.npy`` name, a malformed header (negative
    sizes included), object (pickled) arrays, and a header that declares more data than the file holds,
    before allocating.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        shape, fortran, dtype = npy_header(fh, path)
        count = 1
        for side in shape:
            count *= side
        needed, held = count * dtype.itemsize, size - fh.tell()
        if needed > held:
            raise InputError(f"{path}: corrupt .npy file (its header declares shape {shape}, {needed} bytes,"
                             f" but the file holds {held})")
        data = fh.read(needed)
    try:  # a zero side beside a huge one: no array numpy can make
        return np.frombuffer(data, dtype, count).reshape(shape, order="F" if fortran else "C")
    except ValueError as exc:
        raise InputError(f"{path}: corrupt .npy header ({reason(exc, 80)})") from None


def flow_file_pixels(path: str | os.PathLike) -> int | None:
    """The pixels of the flow in a ``.flo``, KITTI ``.png`` or ``.npy`` file, from its header only (no
    decoding: what sizing the memory a reader needs takes); None when the header does not say or does
    not fit the file (the reader then gives the file's own error)."""
    shape = flow_file_shape(path)
    return None if shape is None else shape[0] * shape[1]


def flow_file_shape(path: str | os.PathLike) -> tuple[int, int] | None:
    """The (H, W) of the flow in a ``.flo``, KITTI ``.png`` or ``.npy`` file, from its header only (a flow of
    the wrong size is refused before it is decoded); None as :func:`flow_file_pixels`."""
    path = Path(path)
    try:
        if not path.is_file():  # (opening a FIFO would block: the reader says what it is)
            return None
        ext, size = _extension(path), path.stat().st_size
        if ext == ".flo":
            with open(path, "rb") as fh:
                width, height = (int(x) for x in np.frombuffer(fh.read(12), "<i4", 2, 4))
            return (height, width) if width > 0 and height > 0 and size == 12 + 8 * width * height else None
        if ext == ".npy":
            with open(path, "rb") as fh:
                shape, _, dtype = npy_header(fh, path)
                held = size - fh.tell()
            fits = len(shape) == 3 and shape[2] == 2 and shape[0] * shape[1] * shape[2] * dtype.itemsize <= held
            return (int(shape[0]), int(shape[1])) if fits else None  # (else its reader says what it expects)
        from PIL import Image

        with Image.open(path) as image:  # reads the header; the pixels stay on disk
            return image.height, image.width
    except Exception:  # noqa: BLE001 - any header its reader refuses: that reader says why
        return None


def write_npy_flow(path: str | os.PathLike, flow: np.ndarray, valid: np.ndarray | None = None) -> None:
    """Write ``flow`` as ``.npy`` float32; pixels where ``valid`` is False become 1e10 (unknown, as in .flo)."""
    save_npy(path, _unknown_marked(flow, valid))


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as a ``.npy`` file (what ``numpy.save`` writes) atomically, through Python's file I/O:
    a full disk raises OSError naming ``path`` and the reason (``numpy.save`` to a file writes with numpy's
    ``tofile``, whose error says only "N requested and M written"). InputError for object arrays."""
    arr = np.asarray(array)
    if arr.dtype.hasobject:
        raise InputError(f"{path}: cannot write {arr.dtype} values as .npy (not numbers)")
    if not arr.flags.c_contiguous:  # (a 0-d array always is: it keeps its shape)
        arr = np.ascontiguousarray(arr)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(arr))
    data = memoryview(arr.reshape(-1).view(np.uint8))  # its bytes, not copied (any dtype: datetime64 too)
    write_bytes_atomic(path, header.getvalue(), data, suffix=".npy")


# --- by extension -----------------------------------------------------------------------------


def _extension(path: str | os.PathLike) -> str:
    ext = Path(path).suffix.lower()
    if ext not in FLOW_EXTENSIONS:
        raise InputError(f"{path}: unknown flow format {ext or '(none)'}; use one of {', '.join(FLOW_EXTENSIONS)}")
    return ext


def read_flow_valid(path: str | os.PathLike, *, allow_unknown: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Read a flow file by extension. Returns ``(flow (H, W, 2) float32, valid (H, W) bool)``.

    ``allow_unknown``: also read NaN pixels of a ``.npy`` as unknown (as semflow 0.1 wrote them) instead of
    raising. Every format marks unknown flow its own way (see the module docstring).
    """
    if Path(path).is_dir():
        raise InputError(f"{path}: a folder, not a flow file ({', '.join(FLOW_EXTENSIONS)})")
    ext = _extension(path)
    if ext == ".flo":
        return read_flo(path)
    if ext == ".png":
        return read_kitti_flow(path)
    return read_npy_flow(path, allow_unknown=allow_unknown)


def read_flow(path: str | os.PathLike) -> np.ndarray:
    """Read a flow file (``.flo``, KITTI ``.png``, ``.npy``) as float32 (H, W, 2); unknown pixels are 0, so
    score against ground truth read with :func:`read_flow_valid`, passing its mask as ``valid``."""
    return read_flow_valid(path)[0]


def resize_flow(flow: np.ndarray, height: int, width: int) -> np.ndarray:
    """``flow`` (H, W, 2) resampled to (height, width, 2) float32, its vectors scaled with the frame (px of the
    new size); ``flow`` itself when it has that size already."""
    h, w = flow.shape[:2]
    if (h, w) == (height, width):
        return flow
    out = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR if height > h else cv2.INTER_AREA)
    return (out * np.array([width / w, height / h], np.float32)).astype(np.float32)


def write_flow(path: str | os.PathLike, flow: np.ndarray, valid: np.ndarray | None = None) -> int:
    """Write ``flow`` (H, W, 2) atomically in the format named by the extension. Returns how many valid
    pixels the format cannot hold and wrote as unknown (KITTI ``.png``, beyond +-512 px; 0 otherwise)."""
    ext = _extension(path)
    with writing_output(path):
        if ext == ".png":
            return write_kitti_flow(path, flow, valid)
        (write_flo if ext == ".flo" else write_npy_flow)(path, flow, valid)
    return 0
