"""What pass 1 of a run keeps of each pair (:class:`PairRecord`), and where: :class:`RecordLog`; checks of
the files a finished pair left (:func:`read_cached`, :func:`flo_whole`: damaged, they count as missing).

A record is a few hundred bytes of JSON: the pair's 99th magnitude percentile (for the clip's colour
normaliser), magnitude statistics, compute seconds, where its flows were kept. The records of a work
folder live in ``pairs/*.jsonl``: append-only files of one JSON line a record, one file a writer (a
``semflow run`` invocation, a batch task: several workers of a batch never write to one file). A
record costs its own size on disk, not a file-system block (an hour of 1080p: 108000 records, about
25 MB instead of 0.44 GB as one file a pair).

Each line is written with one ``write`` on a file opened for appending, so an interrupted writer
leaves whole lines and at most one unfinished last line; a line that is not a complete, valid record
(unfinished, damaged) is skipped when reading, and its pair counts as not finished. When a pair has
several records (computed again after its intermediate segment was lost), the latest counts: file
names start with the time they were opened (ns), lines within a file are in the order written.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from semflow.io.flow import FLO_TAG, MAX_FLO_SIDE, UNKNOWN_FLOW_THRESHOLD, check_flow
from semflow.io.jsonfile import loads_untrusted
from semflow.viz import DEFAULT_PERCENTILE, MIN_MAX_FLOW
from semflow.warp import magnitude

SUFFIX = ".jsonl"


def _interpolated(part: np.ndarray, q: float, kind: Callable[[float], float]) -> float:
    """``np.percentile(values, q)`` (linear method) from ``part``, the values partitioned at the two order
    statistics it needs (:func:`_percentile_ranks`), with ``q / 100``, the virtual index and the weight
    computed in ``kind`` (``float``: float64; a numpy float type) and the interpolation in float32."""
    n = part.size
    virtual = kind(n - 1) * (kind(q) / kind(100))
    below = int(np.floor(virtual))
    if virtual >= n - 1:
        return float(part[-1])
    gamma = virtual - kind(below)
    a, b = part[below], part[below + 1]
    diff = b - a
    return float(b - diff * (kind(1) - gamma) if gamma >= 0.5 else a + diff * gamma)


def _float64_index(part: np.ndarray, q: float) -> float:
    """:func:`_interpolated` as numpy 2.4.1 and later compute it: index and weight in float64 (Python floats,
    which the float32 interpolation takes as float32)."""
    return _interpolated(part, q, float)


def _own_type_index(part: np.ndarray, q: float) -> float:
    """:func:`_interpolated` as numpy 2.0 to 2.3 compute it: index and weight in the values' own type."""
    return _interpolated(part, q, part.dtype.type)


def _percentile_ranks(n: int, q: float) -> list[int]:
    """The order statistics that both arithmetics above may need for the ``q``-th percentile of ``n`` values."""
    virtual = {float(kind(n - 1) * (kind(q) / kind(100))) for kind in (float, np.float32)}
    return sorted({min(b, n - 1) for v in virtual for b in (int(np.floor(v)), int(np.floor(v)) + 1)})


@functools.cache
def percentile_arithmetic() -> Callable[[np.ndarray, float], float] | None:
    """The arithmetic of this numpy's ``np.percentile`` on float32 values, when it is one of the two above:
    :func:`_float64_index` from numpy 2.4.1, :func:`_own_type_index` in numpy 2.0 to 2.3, checked once a
    process on 200 random float32 arrays at the percentiles semflow takes. None for another numpy, or one
    that fails the check (numpy 2.4.0 has a third arithmetic): then :func:`magnitude_stats` calls
    ``np.percentile`` itself, more slowly."""
    version = np.lib.NumpyVersion(np.__version__)
    known = (_float64_index if version >= "2.4.1" else
             _own_type_index if "2.0.0" <= version < "2.4.0" else None)
    if known is None:
        return None
    rng = np.random.default_rng(20261205)
    for _ in range(200):
        values = np.sort(rng.gamma(1.5, 3.0, int(rng.integers(1, 2000))).astype(np.float32))
        if rng.random() < 0.3:  # ties, as whole-pixel flows give
            values = np.rint(values)
        for q in (95, DEFAULT_PERCENTILE, float(rng.uniform(0, 100))):
            if known(values, q) != float(np.percentile(values, q)):
                return None
    return known


def _percentile_of_partitioned(part: np.ndarray, q: float) -> float:
    """``np.percentile(values, q)`` bit for bit from ``part``, the values partitioned at
    :func:`_percentile_ranks`' order statistics (:func:`percentile_arithmetic`)."""
    arithmetic = percentile_arithmetic()
    return float(np.percentile(part, q)) if arithmetic is None else arithmetic(part, q)


def magnitude_stats(flow: np.ndarray) -> tuple[dict[str, float], float]:
    """(``metrics.flow_stats(flow)``, ``viz.max_flow_of(flow)``): the same numbers bit for bit (mean,
    median, 95th percentile and max of |F|; the 99th percentile, >= 1 px), from one magnitude map and
    one partition (the three percentiles' order statistics at once) instead of three sorts. Raises
    :class:`~semflow.errors.InputError` for a flow ``check_flow`` refuses."""
    arr = np.asarray(flow)
    if arr.ndim != 3 or arr.shape[-1] != 2 or arr.dtype != np.float32 or 0 in arr.shape:
        arr = check_flow(arr)
    with np.errstate(over="ignore", invalid="ignore"):  # a huge or NaN flow is told apart below
        mag = magnitude(arr).ravel()
        top = float(mag.max())
    if not top <= UNKNOWN_FLOW_THRESHOLD:  # NaN, inf or huge somewhere: check_flow says which (or passes)
        arr = check_flow(arr)
    mean = float(mag.mean())  # before the partition: the sum's order is that of flow_stats
    n = mag.size
    middle = [n // 2 - 1, n // 2] if n % 2 == 0 else [n // 2]
    mag.partition(sorted({*middle, *_percentile_ranks(n, 95), *_percentile_ranks(n, DEFAULT_PERCENTILE)}))
    stats = {"mean": mean, "median": float(np.mean(mag[middle[0]:middle[-1] + 1])),  # np.median's own mean
             "p95": _percentile_of_partitioned(mag, 95), "max": top}
    return stats, max(_percentile_of_partitioned(mag, DEFAULT_PERCENTILE), MIN_MAX_FLOW)


@dataclass(slots=True)
class PairRecord:
    """What pass 1 keeps of one pair: enough for the normaliser and the summary, a few hundred bytes.

    max_flow / baseline_max_flow: the pair's 99th magnitude percentile (px) of the flow / the baseline
    flow, from float32 (``viz.max_flow_of``'s numbers). stats: ``metrics.flow_stats`` of the flow.
    seconds: compute seconds of the method. extras: the keys of the extras the method reported.
    """

    index: int
    max_flow: float
    baseline_max_flow: float | None
    stats: dict[str, float]
    seconds: float
    extras: list[str] = field(default_factory=list)
    kept: str = ""
    """Where its flows were kept for drawing: ``cache``, ``intermediate``, ``flo`` or ``none``."""

    @classmethod
    def of(cls, index: int, flow: np.ndarray, extras: dict[str, np.ndarray], seconds: float) -> PairRecord:
        """The record of a freshly computed pair (:func:`magnitude_stats` of its flow and baseline flow)."""
        stats, max_flow = magnitude_stats(flow)
        base = extras.get("baseline_flow")
        return cls(index, max_flow, None if base is None else magnitude_stats(base)[1], stats,
                   float(seconds), sorted(extras))

    @classmethod
    def parse(cls, line: bytes) -> PairRecord | None:
        """The record of one JSON line, or None when it is not a valid record (unfinished, damaged)."""
        try:
            data = loads_untrusted(line)
            record = cls(**data)
            # Names held once, not once a pair (about 250 bytes a pair)
            if isinstance(record.extras, list) and all(isinstance(key, str) for key in record.extras):
                record.extras = [sys.intern(key) for key in record.extras]
            if isinstance(record.stats, dict):
                record.stats = {sys.intern(key): value for key, value in record.stats.items()}  # (JSON keys: str)
        except (ValueError, TypeError):
            return None
        ok = (type(record.index) is int and record.index >= 0 and isinstance(record.max_flow, (int, float))
              and isinstance(record.stats, dict) and isinstance(record.kept, str))
        return record if ok else None


def normaliser(records: list[PairRecord]) -> float:
    """The clip's colour normaliser (px): the largest per-pair 99th percentile of any drawn flow."""
    values = [r.max_flow for r in records] + [r.baseline_max_flow for r in records if r.baseline_max_flow is not None]
    return max(values)


class RecordLog:
    """The pair records in ``folder`` (``*.jsonl``): :meth:`append` writes this writer's, :meth:`get`
    reads anyone's (all files are read on first use, then only what was appended since, on a miss)."""

    def __init__(self, folder: Path) -> None:
        percentile_arithmetic()  # (its check, ~45 ms once a process: now, not in the first pair's timed stats)
        self.folder = Path(folder)
        self._file: BinaryIO | None = None
        self._records: dict[int, PairRecord] = {}
        self._read: dict[str, int] = {}  # file name -> bytes consumed (up to its last whole line)
        self._loaded = False

    def append(self, record: PairRecord) -> None:
        """Append ``record`` (one ``write`` of one line; the file is created on the first record)."""
        if self._file is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}{SUFFIX}"
            fd = os.open(self.folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o666)
            self._file = os.fdopen(fd, "ab", buffering=0)  # unbuffered: each write is one system call
        data = memoryview((json.dumps(asdict(record), separators=(",", ":")) + "\n").encode())
        while data:  # a regular file takes it whole, short of a full disk
            data = data[self._file.write(data):]
        if self._loaded:
            self._records[record.index] = record

    def close(self) -> None:
        """Close this writer's file (a later :meth:`append` opens a new one)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def get(self, index: int, *, refresh: bool = False) -> PairRecord | None:
        """The latest record of pair ``index``, or None; ``refresh``: on a miss, read what other writers
        appended since."""
        if not self._loaded or (refresh and index not in self._records):
            self.refresh()
        return self._records.get(index)

    def indices(self) -> list[int]:
        """The pairs that have a record, in order."""
        self.refresh()
        return sorted(self._records)

    def refresh(self) -> None:
        """Read the whole lines appended to the record files since the last call (files in the order
        they were opened; a later record of a pair replaces an earlier one)."""
        names = sorted(p.name for p in self.folder.iterdir() if p.suffix == SUFFIX) if self.folder.is_dir() else []
        for name in names:
            start = self._read.get(name, 0)
            try:
                with open(self.folder / name, "rb") as file:
                    file.seek(start)
                    for line in file:  # (a line at a time: a whole file of 30000 pairs held 17 MB at once)
                        if not line.endswith(b"\n"):
                            break  # an unfinished last line waits (or stays unread: a writer died)
                        start += len(line)
                        if (record := PairRecord.parse(line)) is not None:
                            self._records[record.index] = record
            except OSError:
                pass
            self._read[name] = start
        self._loaded = True


def read_cached(path: Path, dtype: type, channels: int) -> np.ndarray:
    """The (H, W, ``channels``) array of ``dtype`` in .npy file ``path``; ValueError when it is not one."""
    with open(path, "rb") as file:
        array = np.lib.format.read_array(file, allow_pickle=False)
    if array.dtype != dtype or array.ndim != 3 or array.shape[2] != channels or 0 in array.shape:
        raise ValueError(f"{path}: not a cached {channels}-channel {np.dtype(dtype)} array")
    return array


def flo_whole(path: Path) -> bool:
    """Whether ``path`` is a .flo file whose header fits its size (12 bytes read, not the flow)."""
    try:
        with open(path, "rb") as file:
            header, size = file.read(12), path.stat().st_size
    except OSError:
        return False
    width, height = (int(x) for x in np.frombuffer(header.ljust(12, b"\0"), "<i4", 2, 4))
    return (header[:4] == np.array([FLO_TAG], "<f4").tobytes() and 0 < width <= MAX_FLO_SIDE
            and 0 < height <= MAX_FLO_SIDE and size == 12 + 8 * width * height)
