"""Memory: the peak resident memory of this process while a block of code runs (Linux /proc, else
getrusage), and the checks that stop a flow method, ``run`` (its flow and its videos) or ``segment``
before they start on frames too large for the memory available (from the measurements in
``memory_needs.json``, written by ``scripts/measure_memory.py``)."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import resource
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from semflow.errors import InputError, ResourceError

_PAGE = resource.getpagesize()
_STATM = Path("/proc/self/statm")


def current_rss_bytes() -> int:
    """Resident set size of this process now, in bytes (0 where unknown)."""
    try:
        return int(_STATM.read_text().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def peak_rss_bytes() -> int:
    """The kernel's high-water mark of this process's resident set (VmHWM), in bytes (0 where unknown)."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0


def lifetime_peak_rss_bytes() -> int:
    """The most this process has held resident since it started (``getrusage``'s ``ru_maxrss``: kB on
    Linux, bytes on macOS), in bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def _reset_peak_rss() -> bool:
    """Set the high-water mark back to the current resident set (Linux >= 4.0); False where it cannot
    (no such file, not allowed, or a kernel that takes the write and keeps the old mark)."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    mark = peak_rss_bytes()
    return 0 < mark <= current_rss_bytes() + 4 * 2**20  # (what the process touched between the reads)


class PeakMemory:
    """Context manager: ``peak_mb`` is the highest resident memory of the process while the block ran.

    ``peak_mb`` is the whole process (Python, libraries, caches included); ``delta_mb`` is the peak
    above what the process held when the block started. On Linux it is the kernel's own high-water mark
    (``VmHWM``, reset when the block starts): exact, and free: nothing runs beside the block. Without
    ``/proc`` (macOS) it is the process's peak since it started (``getrusage``), which a block only raises
    (``delta_mb`` 0 when it stayed below an earlier peak). Elsewhere a thread samples the resident set every
    ``interval`` seconds; it takes the GIL each time, which
    slowed Python-heavy code measured under it by about a tenth (semantic's things stage, sampled every
    5 ms), so the high-water mark is preferred. Blocks may nest: a block that starts inside another
    hands the outer one the peak so far before it resets the mark.
    """

    _open: list[PeakMemory] = []  # the blocks running now, outermost first (high-water-mark mode)

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.start_bytes = 0
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._marked = False
        self._lifetime = False

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_bytes = max(self.peak_bytes, current_rss_bytes())

    def __enter__(self) -> PeakMemory:
        self.start_bytes = self.peak_bytes = current_rss_bytes()
        self._lifetime = self.start_bytes == 0  # (no /proc, as on macOS: nothing to sample either)
        if self._lifetime:
            self.start_bytes = self.peak_bytes = lifetime_peak_rss_bytes()
        so_far = peak_rss_bytes()
        for outer in PeakMemory._open:  # the mark is the process's: the outer blocks keep what it held
            outer.peak_bytes = max(outer.peak_bytes, so_far)
        self._marked = _reset_peak_rss()
        if self._marked:
            PeakMemory._open.append(self)
        elif not self._lifetime:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._marked:
            self.peak_bytes = max(self.peak_bytes, peak_rss_bytes())
            if self in PeakMemory._open:
                PeakMemory._open.remove(self)
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_bytes = max(self.peak_bytes, current_rss_bytes(),
                              lifetime_peak_rss_bytes() if self._lifetime else 0)

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 2**20

    @property
    def delta_mb(self) -> float:
        return (self.peak_bytes - self.start_bytes) / 2**20


# --- what a method needs, and what there is -----------------------------------------------------

NEEDS_FILE = Path(__file__).with_name("memory_needs.json")
MEMORY_ENV = "SEMFLOW_MEMORY_MB"


@functools.lru_cache(maxsize=1)
def _measured_needs() -> dict:
    """``memory_needs.json`` (read once: every pair a method estimates checks it)."""
    try:
        return dict(json.loads(NEEDS_FILE.read_text()))
    except (OSError, ValueError, TypeError):
        return {}


def _fitted(section: str, name: str, height: int, width: int, part: str | None = None) -> float | None:
    """``base_mb + bytes_per_pixel * H * W`` (MB) of the entry ``name`` (its ``part``) in ``section``; None
    for one not measured."""
    try:
        needs = _measured_needs()[section][name]
        needs = needs[part] if part else needs
        return needs["base_mb"] + needs["bytes_per_pixel"] * height * width / 2**20
    except (KeyError, TypeError):
        return None


def memory_needed_mb(method: str, height: int, width: int) -> float | None:
    """Estimated peak memory (MB) of ``method`` on one (height, width) pair, from the per-method
    measurements in ``memory_needs.json`` (``scripts/measure_memory.py``); None for a method not measured."""
    return _fitted("methods", method, height, width)


def measured_segmenter(segmenter: Any) -> tuple[str, str]:
    """The kind of ``segmenter`` (a spec ``backend[:PATH]``, or a built Segmenter: the one behind a CLIP prior)
    and the segmenter whose measured needs stand for it: torchvision's (its largest model: the architecture
    is known only once the weights load) for a torchvision one, else the shipped camvid's (given masks need
    less: no network; the CLIP prior's model is not counted)."""
    if isinstance(segmenter, str):
        kind = segmenter.partition(":")[0].lower()
    else:
        kind = getattr(getattr(segmenter, "segmenter", segmenter), "name", "")
    kind = kind if isinstance(kind, str) and kind else "camvid"
    return kind, "torchvision" if kind == "torchvision" else "camvid"


def method_needed_mb(method: Any, height: int, width: int) -> float | None:
    """:func:`memory_needed_mb` of a built method (or a name). ``semantic`` was measured with the camvid
    segmenter: with another (``segmenter_spec()``), the difference between that one's measured needs and
    camvid's is added (at 320x240 semantic with torchvision's DeepLabV3-ResNet101 peaked at 1289 MB, and
    camvid's figures said 696)."""
    need, counted = memory_needed_mb(getattr(method, "name", method), height, width), _segmenter_counted(method)
    if need is None or counted == "camvid":
        return need
    mine, camvid = (segmenter_needed_mb(name, height, width, video=False) for name in (counted, "camvid"))
    return need + max(mine - camvid, 0) if mine is not None and camvid is not None else need


def _segmenter_counted(method: Any) -> str:
    """The segmenter whose measured needs stand for ``method``'s (``segmenter_spec()``): camvid's by default."""
    spec = method.segmenter_spec() if hasattr(method, "segmenter_spec") else None
    return "camvid" if spec is None else measured_segmenter(spec)[1]


def drawing_needed_mb(height: int, width: int) -> float | None:
    """Estimated memory (MB) that drawing ``run``'s videos of (height, width) frames adds to its method's
    flow (colours, panel, the flows' intermediate video, the FFmpeg encoders), measured as such."""
    return _fitted("drawing", "run", height, width)


def segmenter_needed_mb(segmenter: str, height: int, width: int, *, video: bool) -> float | None:
    """Estimated peak memory (MB) of ``semflow segment`` with ``segmenter`` (``camvid``, ``torchvision``) on
    (height, width) images, or a video's frames (``video``: filtered over time); None for one not measured."""
    return _fitted("segmenters", segmenter, height, width, "video" if video else "image")


def available_memory_mb() -> float | None:
    """Memory this process may still use, in MB: ``$SEMFLOW_MEMORY_MB`` when set, else the smaller of
    the system's MemAvailable and the cgroup's limit less its usage; where neither is known (no ``/proc``),
    the machine's physical memory (a ceiling); None where not even that is."""
    if os.environ.get(MEMORY_ENV):
        try:
            value = float(os.environ[MEMORY_ENV])
        except ValueError:
            value = float("nan")
        if not (math.isfinite(value) and value >= 0):  # nan was "nan MB is available", -5 "0 MB"
            raise InputError(f"${MEMORY_ENV} must be a number of MB (0 or more), got {os.environ[MEMORY_ENV]!r}")
        return value
    candidates = []
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                candidates.append(int(line.split()[1]) / 1024)
    with contextlib.suppress(OSError, ValueError):
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            candidates.append((int(limit) - used) / 2**20)
    if not candidates:  # (no /proc, as on macOS: the machine's memory is at least a ceiling)
        with contextlib.suppress(OSError, ValueError, AttributeError):
            candidates.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20)
    return min(candidates) if candidates else None


def check_memory(method: Any, height: int, width: int, *, hint: str, drawing: bool = False) -> None:
    """Raise :class:`ResourceError` before the work starts when ``method`` (a built method, or a name) on
    (height, width) frames needs more memory than is available (:func:`method_needed_mb`). ``hint`` ends
    the message: what the user can do, with
    ``{side}`` replaced by the longer side (px) at which the method would fit, e.g. ``"use --max-side {side}"``.
    ``drawing``: count what drawing ``run``'s videos adds too (:func:`drawing_needed_mb`)."""
    name, counted = str(getattr(method, "name", method)), _segmenter_counted(method)
    # the advice where no size fits: a lighter segmenter only where the method with camvid's fits at some size
    lighter = None if counted == "camvid" else name
    name += "" if counted == "camvid" else f" (with the {counted} segmenter)"
    if not drawing:
        _refuse_if_short(name, functools.partial(method_needed_mb, method), height, width, hint,
                         lighter=lighter and functools.partial(method_needed_mb, lighter))
        return

    def total(method: Any, h: int, w: int) -> float | None:
        parts = [need for need in (method_needed_mb(method, h, w), drawing_needed_mb(h, w)) if need is not None]
        return sum(parts) if parts else None

    flow, drawn = method_needed_mb(method, height, width), drawing_needed_mb(height, width)
    split = f" (flow {_amount(flow)}, videos {_amount(drawn)})" if flow is not None and drawn is not None else ""
    _refuse_if_short(f"{name} and drawing its videos", functools.partial(total, method), height, width, hint,
                     need="need", split=split, lighter=lighter and functools.partial(total, lighter))


def check_segmenter_memory(segmenter: str, height: int, width: int, *, video: bool, hint: str,
                           label: str | None = None) -> None:
    """:func:`check_memory` for ``semflow segment`` with ``segmenter``'s measured needs
    (:func:`segmenter_needed_mb`); ``label`` names the backend in the message (default ``segmenter``)."""
    needed = functools.partial(segmenter_needed_mb, segmenter, video=video)
    # where no size fits, a lighter segmenter only where camvid's (the lightest measured) fits at some size
    lighter = None if segmenter == "camvid" else functools.partial(segmenter_needed_mb, "camvid", video=video)
    _refuse_if_short(f"segment ({label or segmenter}{', video mode' if video else ''})", needed, height, width, hint,
                     lighter=lighter, otherwise="")


def _refuse_if_short(what: str, needed: Callable[[int, int], float | None], height: int, width: int, hint: str,
                     *, need: str = "needs", split: str = "",
                     lighter: str | Callable[[int, int], float | None] | None = None,
                     otherwise: str = "method") -> None:
    """The one-line :class:`ResourceError` when ``needed(height, width)`` (MB) exceeds what is available,
    with ``hint`` (``{side}``: the longer side at which it fits). Where no size fits, it advises a lighter
    ``otherwise`` (none where empty); a lighter ``lighter`` (a word), or a lighter segmenter where
    ``lighter`` (the needs with camvid's segmenter) fits at some size."""
    estimate, available = needed(height, width), available_memory_mb()
    if estimate is None or available is None or estimate <= available:
        return
    fits = _side_that_fits(needed, height, width, available)
    if callable(lighter):
        lighter = "segmenter" if _side_that_fits(lighter, height, width, available) else None
    lighter = lighter or otherwise
    advice = hint.format(side=fits) if fits else ("it does not fit even at a small size: free memory"
                                                  + (f", or use a lighter {lighter}" if lighter else ""))
    raise ResourceError(f"{what} {need} about {_amount(estimate)} for {width}x{height} frames{split}, and"
                        f" {_amount(max(available, 0))} is available; {advice}")


DRAW_BYTES_PER_PIXEL = (20, 16)
"""What ``visualize`` holds per pixel of its flows: for every flow (kept flow, valid mask, colour image,
tile) and, once, for the largest (reading and colouring it). Measured peak resident memory over the
interpreter's: 27 bytes a pixel for one 4000x4000 .flo, 33 for a KITTI .png, 45 for two .flo."""


def check_drawing_memory(pixels: list[int]) -> None:
    """Raise :class:`ResourceError` before ``visualize`` reads anything when flows of ``pixels`` pixels
    each need more memory to draw than is available."""
    available = available_memory_mb()
    if not pixels or available is None:
        return
    needed = (DRAW_BYTES_PER_PIXEL[0] * sum(pixels) + DRAW_BYTES_PER_PIXEL[1] * max(pixels)) / 2**20
    if needed > available:
        raise ResourceError(f"drawing {len(pixels)} flow(s) of {sum(pixels) / 1e6:.1f} Mpx needs about"
                            f" {_amount(needed)}, and {_amount(max(available, 0))} is available; draw fewer at a time")


def _amount(mb: float) -> str:
    return f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb:.0f} MB"


def _side_that_fits(needed: Callable[[int, int], float | None], height: int, width: int,
                    available: float) -> int | None:
    longer = max(height, width)
    for side in range(longer, 15, -max(longer // 64, 1)):
        scale = side / longer
        if needed(round(height * scale), round(width * scale)) <= available:
            return side
    return None
