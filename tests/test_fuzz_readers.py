"""Property-based tests of every reader (issue 14): any byte string gives a valid result or semflow's
one-line error (a :class:`SemflowError`), never another exception, never a hang, bounded memory.

Each reader gets random bytes, valid files cut short, valid files with bytes overwritten, inserted or
deleted, and valid files with their header fields set to extreme values. What a reader returns must
be what its contract says (shape, dtype, finite flow); what it raises must be one line. Memory: the
whole run of one reader may not raise the process's resident memory by more than
``MEMORY_LIMIT_MB`` (a header declaring 75 GiB used to be allocated before anything was checked).
"""

from __future__ import annotations

import io
import struct
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semflow.errors import SemflowError
from semflow.io.flow import FLO_TAG, read_flow_valid
from semflow.io.images import read_image, read_image_raw
from semflow.io.video import FrameSource, VideoWriter
from semflow.memory import PeakMemory
from semflow.viz import add_legend, flow_to_color, label_image, max_flow_of

MEMORY_LIMIT_MB = 400
FUZZ = settings(max_examples=250, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_RNG = np.random.default_rng(14)
_IMAGE = (_RNG.random((12, 16, 3)) * 255).astype(np.uint8)


def _encode(ext: str, image: np.ndarray, *params: int) -> bytes:
    ok, buf = cv2.imencode(ext, image, list(params))
    assert ok
    return buf.tobytes()


def _flo(flow: np.ndarray) -> bytes:
    h, w = flow.shape[:2]
    return struct.pack("<fii", FLO_TAG, w, h) + flow.astype("<f4").tobytes()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _kitti(flow: np.ndarray) -> bytes:
    raw = np.clip(flow * 64 + 2**15, 0, 65535).astype(np.uint16)
    bgr = np.stack([np.ones(flow.shape[:2], np.uint16), raw[..., 1], raw[..., 0]], axis=2)
    return _encode(".png", bgr)


def _huge_png(width: int, height: int, depth: int = 8, colour: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _npy_header(shape: str) -> bytes:
    """A .npy whose header declares ``shape`` (text), with 400 bytes of data."""
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}".ljust(117) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + bytes(400)


_FLOW = (_RNG.standard_normal((6, 7, 2)) * 3).astype(np.float32)
SEEDS = {
    "image": [_encode(".png", _IMAGE), _encode(".jpg", _IMAGE, cv2.IMWRITE_JPEG_QUALITY, 80),
              _encode(".jpg", _IMAGE, cv2.IMWRITE_JPEG_PROGRESSIVE, 1), _encode(".bmp", _IMAGE),
              _encode(".tiff", _IMAGE), _encode(".webp", _IMAGE), _encode(".png", _IMAGE[..., 0]),
              _encode(".png", (_IMAGE.astype(np.uint16) * 257)), _huge_png(100_000, 100_000),
              _huge_png(30_000, 30_000), _huge_png(12_000, 12_000, 1, 0), _huge_png(8_000, 8_000, 16, 6),
              _encode(".webp", np.zeros((64, 64, 3), np.uint8))],
    ".flo": [_flo(_FLOW), _flo(np.full((2, 3, 2), 3e38, np.float32)), _flo(np.full((2, 3, 2), np.nan, np.float32))],
    ".npy": [_npy(_FLOW), _npy(_FLOW.astype(np.float64)), _npy(_FLOW.astype(np.float16)),
             _npy(np.asfortranarray(_FLOW)), _npy(np.zeros((0, 8, 2), np.float32)), _npy(np.full((3, 3, 2), 3e38, np.float32)),
             _npy(np.zeros((3, 3, 2), np.int16)), _npy_header("(-1, 7, 2)"), _npy_header("(-6, -7, 2)")],
    ".png": [_kitti(_FLOW), _encode(".png", _IMAGE)],
}


def corrupted(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    """Random bytes, or one of ``seeds`` cut short, overwritten, with bytes inserted/deleted, or with a
    4-byte header field set to an extreme value."""
    seed = st.sampled_from(seeds)

    def cut(data: bytes, frac: float) -> bytes:
        return data[:int(len(data) * frac)]

    def overwrite(data: bytes, edits: list[tuple[float, int]]) -> bytes:
        out = bytearray(data)
        for where, value in edits:
            if out:
                out[int(where * (len(out) - 1))] = value
        return bytes(out)

    def splice(data: bytes, where: float, delete: int, insert: bytes) -> bytes:
        i = int(where * len(data))
        return data[:i] + insert + data[i + delete:]

    def field(data: bytes, offset: int, value: int) -> bytes:
        if offset + 4 > len(data):
            return data
        return data[:offset] + struct.pack("<I", value) + data[offset + 4:]

    extreme = st.sampled_from([0, 1, 2**31 - 1, 2**31, 2**32 - 1, 100_000, 65_535])
    return st.one_of(
        st.binary(max_size=600),
        st.builds(cut, seed, st.floats(0, 1)),
        st.builds(overwrite, seed, st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=6)),
        st.builds(splice, seed, st.floats(0, 1), st.integers(0, 16), st.binary(max_size=16)),
        st.builds(field, seed, st.integers(0, 128), extreme),
        seed,
    )


def _one_line(exc: SemflowError) -> None:
    message = str(exc)
    assert message and "\n" not in message and "\r" not in message, repr(message)


def _fuzz(reader: Callable[[Path], None], seeds: list[bytes], suffix: str, *, max_examples: int | None = None
          ) -> None:
    """Run ``reader`` on many corrupted files named ``*suffix`` (``max_examples``: fewer than FUZZ's, for a
    slow reader); a SemflowError is the only allowed error."""
    with tempfile.TemporaryDirectory() as folder, PeakMemory() as memory:
        path = Path(folder) / f"input{suffix}"

        @(FUZZ if max_examples is None else settings(FUZZ, max_examples=max_examples))
        @given(corrupted(seeds))
        def check(data: bytes) -> None:
            path.write_bytes(data)
            try:
                reader(path)
            except SemflowError as exc:
                _one_line(exc)

        check()
    assert memory.delta_mb < MEMORY_LIMIT_MB, f"reading corrupt files took {memory.delta_mb:.0f} MB"


def _check_image(path: Path) -> None:
    img = read_image(path)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 2
    raw = read_image_raw(path, gray=True)
    assert raw.ndim == 2


def _check_flow(path: Path) -> None:
    flow, valid = read_flow_valid(path)
    assert flow.dtype == np.float32 and flow.ndim == 3 and flow.shape[2] == 2 and flow.size > 0
    assert valid.dtype == np.bool_ and valid.shape == flow.shape[:2]
    assert np.isfinite(flow).all() and (np.abs(flow) <= 1e9).all()
    # what `semflow visualize` does with it
    max_flow = max_flow_of([flow], valid=[valid], percentile=100)
    assert np.isfinite(max_flow) and max_flow >= 1
    label_image(add_legend(flow_to_color(flow, max_flow, valid=valid), max_flow), path.stem)


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_image_reader_on_any_bytes(ext: str) -> None:
    _fuzz(_check_image, SEEDS["image"], ext)


@pytest.mark.parametrize("ext", [".flo", ".npy", ".png"])
def test_flow_readers_on_any_bytes(ext: str) -> None:
    _fuzz(_check_flow, SEEDS[ext], ext)


def _mp4_seed() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "v.mp4"
        with VideoWriter(path, 5) as writer:
            for k in range(6):
                writer.write(np.roll(_IMAGE, k, axis=1))
        return path.read_bytes()


def test_video_reader_on_any_bytes() -> None:
    def check(path: Path) -> None:
        source = FrameSource(path)
        for frame in source:
            assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
        assert source.frames_read is not None

    _fuzz(check, [_mp4_seed()], ".mp4", max_examples=120)
