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
import math
import os
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from semflow.io.flow import FLO_TAG, MAX_FLO_SIDE, UNKNOWN_FLOW_THRESHOLD, check_flow
from semflow.io.jsonfile import loads_untrusted
from semflow.io.npyfile import read_npy
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
        """The record of one JSON line, or None when it is not a valid record (unfinished, damaged, or of
        another shape than :meth:`of` gives: see :func:`_well_formed`)."""
        try:
            record = cls(**loads_untrusted(line))
        except (ValueError, TypeError):
            return None
        return record if _well_formed(record) else None


def _well_formed(record: PairRecord) -> bool:
    """Whether ``record`` has the shape :meth:`PairRecord.of` gives it, the one a :data:`ROW` holds: an index
    that fits 64 bits, finite float numbers (the baseline's, when not None), the four statistics, the extras'
    and ``kept`` names."""
    stats, base = record.stats, record.baseline_max_flow
    if not (type(record.index) is int and 0 <= record.index < 2**63 and isinstance(stats, dict) and set(stats) == set(STAT_KEYS)
            and isinstance(record.extras, list) and all(isinstance(key, str) for key in record.extras)
            and isinstance(record.kept, str)):
        return False
    numbers = [record.max_flow, record.seconds, *stats.values(), *([] if base is None else [base])]
    return all(type(value) is float and math.isfinite(value) for value in numbers)


STAT_KEYS = ("mean", "median", "p95", "max")
"""The names of a record's statistics (``metrics.flow_stats``), in the order :func:`magnitude_stats` gives them."""
ROW = np.dtype([("index", "i8"), ("max_flow", "f8"), ("baseline_max_flow", "f8"), *((key, "f8") for key in STAT_KEYS),
                ("seconds", "f8"), ("extras", "i4"), ("kept", "i4")])
"""A record as numbers, 72 bytes (a :class:`PairRecord` with its dict of statistics held about 590): a
baseline of None is NaN; ``extras`` and ``kept`` number the names in the holder's :class:`Names`; a ``kept``
of :data:`ABSENT`: no record."""
ABSENT = -1
PAGE_PAIRS = 1024
"""Pairs a page of :class:`RecordLog`'s rows holds (72 KB): pages are made as pairs arrive, so a stray
index far out (a damaged line) costs one page, not rows up to it."""
_EMPTY_PAGE = np.zeros(PAGE_PAIRS, ROW)
_EMPTY_PAGE["kept"] = ABSENT


class Names:
    """Strings and tuples of strings, numbered in the order first seen and each held once."""

    def __init__(self) -> None:
        self.values: list[str | tuple[str, ...]] = []
        self._codes: dict[str | tuple[str, ...], int] = {}

    def code(self, value: str | tuple[str, ...]) -> int:
        """The number of ``value`` (a new one when it is new)."""
        if (code := self._codes.get(value)) is None:
            code = self._codes[value] = len(self.values)
            self.values.append(value)
        return code


def _row(record: PairRecord, extras: Names, kept: Names) -> tuple:
    """``record`` as a :data:`ROW` (its names numbered in ``extras`` and ``kept``)."""
    base = record.baseline_max_flow
    return (record.index, record.max_flow, np.nan if base is None else base, *(record.stats[key] for key in STAT_KEYS),
            record.seconds, extras.code(tuple(record.extras)), kept.code(record.kept))


def _record(row: np.void, extras: Names, kept: Names) -> PairRecord:
    """The :class:`PairRecord` of a :data:`ROW`: the same Python floats that went in."""
    index, max_flow, base, *numbers, seconds, extras_code, kept_code = row.item()
    return PairRecord(index, max_flow, None if base != base else base, dict(zip(STAT_KEYS, numbers)), seconds,
                      list(extras.values[extras_code]), kept.values[kept_code])


class RecordTable(Sequence[PairRecord]):
    """Records as rows of numbers (:data:`ROW`, 72 bytes a record): ``table[i]`` is a new
    :class:`PairRecord` each time, :meth:`column` one number of every record at once."""

    def __init__(self, rows: np.ndarray, extras: Names, kept: Names) -> None:
        self.rows, self._extras, self._kept = rows, extras, kept

    @classmethod
    def of(cls, records: Iterable[PairRecord]) -> RecordTable:
        """The table of ``records``, in their order."""
        extras, kept = Names(), Names()
        return cls(np.array([_row(record, extras, kept) for record in records], ROW), extras, kept)

    def column(self, name: str) -> np.ndarray:
        """Field ``name`` of every record's :data:`ROW`, (N,): float64 for the numbers (a view)."""
        return self.rows[name]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        return _record(self.rows[i], self._extras, self._kept)


def normaliser(records: Sequence[PairRecord]) -> float:
    """The clip's colour normaliser (px): the largest per-pair 99th percentile of any drawn flow."""
    table = records if isinstance(records, RecordTable) else RecordTable.of(records)
    flows = np.concatenate([table.column("max_flow"), table.column("baseline_max_flow")])
    return float(flows[~np.isnan(flows)].max())  # (NaN: no baseline)


class RecordLog:
    """The pair records in ``folder`` (``*.jsonl``): :meth:`append` writes this writer's, :meth:`get`
    reads anyone's (all files are read on first use, then only what was appended since, on a miss).
    It holds the latest record of each pair as a :data:`ROW`, in pages of :data:`PAGE_PAIRS` pairs."""

    def __init__(self, folder: Path) -> None:
        percentile_arithmetic()  # (its check, ~45 ms once a process: now, not in the first pair's timed stats)
        self.folder = Path(folder)
        self._file: BinaryIO | None = None
        self._pages: dict[int, np.ndarray] = {}  # page number -> (PAGE_PAIRS,) ROW
        self._extras, self._kept = Names(), Names()
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
            self._keep(record)

    def close(self) -> None:
        """Close this writer's file (a later :meth:`append` opens a new one)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def get(self, index: int, *, refresh: bool = False) -> PairRecord | None:
        """The latest record of pair ``index``, or None; ``refresh``: on a miss, read what other writers
        appended since."""
        if not self._loaded or (refresh and not self._has(index)):
            self.refresh()
        return _record(self._page(index)[index % PAGE_PAIRS], self._extras, self._kept) if self._has(index) else None

    def indices(self) -> list[int]:
        """The pairs that have a record, in order."""
        self.refresh()
        pages = [self._pages[number] for number in sorted(self._pages)]
        return [int(index) for page in pages for index in page["index"][page["kept"] != ABSENT]]

    def table(self, pairs: int) -> RecordTable | int:
        """The records of pairs ``0 .. pairs - 1`` (a copy of their rows), else the first of them that has
        none (also after reading what other writers appended since)."""
        for again in (False, True):
            if again or not self._loaded:
                self.refresh()
            pages = [self._pages.get(start // PAGE_PAIRS, _EMPTY_PAGE) for start in range(0, pairs, PAGE_PAIRS)]
            rows = np.concatenate(pages)[:pairs] if pages else np.empty(0, ROW)
            missing = np.flatnonzero(rows["kept"] == ABSENT)
            if not missing.size:
                return RecordTable(rows, self._extras, self._kept)
        return int(missing[0])

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
                            self._keep(record)
            except OSError:
                pass
            self._read[name] = start
        self._loaded = True

    def _has(self, index: int) -> bool:
        page = self._pages.get(index // PAGE_PAIRS)
        return page is not None and page["kept"][index % PAGE_PAIRS] != ABSENT

    def _page(self, index: int) -> np.ndarray:
        return self._pages[index // PAGE_PAIRS]

    def _keep(self, record: PairRecord) -> None:
        """Hold ``record`` as the latest of its pair (in a new page when its page has none yet)."""
        number = record.index // PAGE_PAIRS
        if (page := self._pages.get(number)) is None:
            page = self._pages[number] = _EMPTY_PAGE.copy()
        page[record.index % PAGE_PAIRS] = _row(record, self._extras, self._kept)


def read_cached(path: Path, dtype: type, channels: int) -> np.ndarray:
    """The (H, W, ``channels``) array of ``dtype`` in .npy file ``path``; ValueError when it is not one
    (:func:`~semflow.io.npyfile.read_npy`: nothing is allocated beyond the file's own size)."""
    with open(path, "rb") as file:
        array = read_npy(file, os.fstat(file.fileno()).st_size)
    if array.dtype != dtype or array.ndim != 3 or array.shape[2] != channels or 0 in array.shape:
        raise ValueError(f"{path}: not a cached {channels}-channel {np.dtype(dtype)} array")
    return array


def flo_whole(path: Path, shape: tuple[int, ...] | None = None) -> bool:
    """Whether ``path`` is a .flo file whose header fits its size (12 bytes read, not the flow), and with
    ``shape`` (the frames' (H, W, ...)) declares a flow of that (H, W)."""
    try:
        with open(path, "rb") as file:
            header, size = file.read(12), path.stat().st_size
    except OSError:
        return False
    width, height = (int(x) for x in np.frombuffer(header.ljust(12, b"\0"), "<i4", 2, 4))
    return (header[:4] == np.array([FLO_TAG], "<f4").tobytes() and 0 < width <= MAX_FLO_SIDE
            and 0 < height <= MAX_FLO_SIDE and size == 12 + 8 * width * height
            and (shape is None or (height, width) == tuple(shape[:2])))
