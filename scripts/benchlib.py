"""Shared bits of the benchmark scripts: machine description and BENCHMARKS.md sections."""

from __future__ import annotations

import datetime
import os
import platform
import re
import shlex
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
HEADER = """# Benchmarks

Every table here is written by a script in `scripts/`; each section names the command that made it.
Methods in one table ran side by side, on the same machine, in the same run, one pair at a time.
Seconds are per frame pair (median over samples). Peak MB: since 2026-11-30 `semflow compare` and
`scripts/bench_flow.py` run each method in a child process of its own (`compare(..., isolate=True)`),
and peak MB is that process's resident memory at its highest (Python,
torch, OpenCV and the method's model included; nothing another method left behind). Tables dated
earlier ran every method in one process, so their peak MB of a method includes what the methods before
it in the table left resident (dis-medium: 892 MB after discrete, 85 MB alone); their other columns
are unaffected. Scripts that measure memory themselves say so in their section.

Rounding: `discrete` and `semantic` on large motion amplify last-bit differences of OpenCV's image
operations. With only the OpenCV kernels changed (section rounding, `scripts/bench_rounding.py`)
their KITTI EPE (one pair) moves by 13-22 %, Chairs (three pairs) by 6-9 %, Sintel and Middlebury by
1-3 %; DIS not at all. Expect those figures to read that much differently on another CPU: the tables
here ran on an AMD EPYC unless their line says otherwise; on an Intel Xeon with the same packages
`discrete` reads KITTI 10.01 and Chairs 2.44 (8.95 and 2.25 in section flow). Side-by-side changes
within one table are unaffected in kind, but a difference on KITTI or Chairs smaller than that spread
is noise.
OpenCV's version moves them too: with 4.14.0 instead of 5.0.0 (the same machine, `semflow compare`
on each dataset) `dis-medium` reads KITTI 24.3 instead of 38.5 (Fl-all 54.0 % and 54.9 %: a few large
outliers), `discrete` 12.5 instead of 10.0, and Sintel, Middlebury and Chairs within 3 %.
"""


def machine() -> str:
    """One line describing this machine: CPU model, cores, memory, Python."""
    cpu = platform.processor() or platform.machine()
    try:  # a virtual machine's model name can be bare ("AMD EPYC"): family, model and AVX-512 tell them apart
        info: dict[str, str] = {}
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
        if "model name" in info:
            wide = ", AVX-512" if "avx512f" in info.get("flags", "").split() else ""
            cpu = f"{info['model name']} (family {info.get('cpu family', '?')} model {info.get('model', '?')}{wide})"
    except OSError:
        pass
    try:
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{mem_kb / 2**20:.0f} GB"
    except (OSError, ValueError, IndexError):
        mem = "? GB"
    return f"{cpu}, {os.cpu_count()} cores, {mem}, Python {platform.python_version()}"


def invoked() -> str:
    """The command line that runs this script as it was run (``python scripts/NAME.py ARGS``), for a section to
    name the command that made it."""
    return " ".join(["python", f"scripts/{Path(sys.argv[0]).name}", *map(shlex.quote, sys.argv[1:])])


def today() -> str:
    return datetime.date.today().isoformat()


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section between ``<!-- name:start -->`` and ``<!-- name:end -->``."""
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else HEADER
    block = f"<!-- {name}:start -->\n{body.strip()}\n<!-- {name}:end -->"
    pattern = re.compile(rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    BENCHMARKS.write_text(text)


def hard_scenes(seeds: dict[str, int], count: int):
    """The hard synthetic scenes of section things, ``count`` per group of ``seeds`` (name: first seed;
    scene i has seed + 1000 i, street and group scenes in turn). Yields (group, i, scene, things, band,
    inside): the scene's thing pixels, the 5 px band inside their outlines, and the rest of them."""
    from semflow.metrics import inner_band
    from semflow.synthetic_hard import HARD_KINDS, make_hard_scene

    for group, seed0 in seeds.items():
        for i in range(count):
            scene = make_hard_scene(seed=seed0 + 1000 * i, kind=HARD_KINDS[i % 2])
            things = scene.instances > 0
            band = inner_band(things, 5, scene.instances)
            yield group, i, scene, things, band, things & ~band
