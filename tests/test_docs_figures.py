"""Figures the reference pages quote from BENCHMARKS.md, read against BENCHMARKS.md itself, so that a bench
script that rewrites its section (or a page edited by hand) cannot leave a page quoting numbers BENCHMARKS.md
no longer holds.

- :data:`TABLES`: every cell of the tables docs/methods.md and docs/semantic.md copy from BENCHMARKS.md's
  sections (flow, sharpen, things, photo-scenes), each number equal to its source rounded to the decimals
  the page shows.
- :data:`QUOTES`: sentences whose figures are worked out from a section's rows (a change in per cent), the
  text the page must hold made from BENCHMARKS.md as it stands.

Each kind of check has a test that feeds it a stale figure and sees it fail.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NUMBER = re.compile(r"\d+(?:\.\d+)?")

Source = tuple[str, str, str]
"""(section, the start of a table's ### heading in it, a column): where in BENCHMARKS.md one figure of a row is."""


def benchmark_tables(text: str) -> dict[str, dict[str, dict[str, dict[str, str]]]]:
    """{section: {### heading: {row name: {column: cell}}}} of the tables between BENCHMARKS.md's
    ``<!-- name:start -->`` and ``<!-- name:end -->`` markers (a table with no ### heading above it in its
    section is under ""); a row is named by its ``method`` cell, else its first."""
    found: dict[str, dict[str, dict[str, dict[str, str]]]] = {}
    for name, body in re.findall(r"<!-- ([\w-]+):start -->\n(.*?)<!-- \1:end -->", text, flags=re.S):
        heading, header, tables = "", None, found.setdefault(name, {})
        for line in body.splitlines():
            if line.startswith("### "):
                heading, header = line[4:].strip(), None
            elif not line.startswith("|"):
                header = None
            elif header is None:
                header = cells(line)
            elif not set(line) <= set("|-: "):
                row = dict(zip(header, cells(line)))
                tables.setdefault(heading, {})[row.get("method", cells(line)[0])] = row
    return found


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


BENCH = benchmark_tables((ROOT / "BENCHMARKS.md").read_text(encoding="utf-8"))


def figure(bench: dict, row: str, source: Source) -> str:
    """The number of a row's cell (``0.19x`` -> ``0.19``)."""
    section, heading, column = source
    headings = [h for h in bench[section] if h.startswith(heading)]
    assert len(headings) == 1, f"BENCHMARKS.md section {section}: {len(headings)} tables under {heading!r}"
    match = NUMBER.search(bench[section][headings[0]][row][column])
    assert match, f"BENCHMARKS.md section {section}, {heading!r}, {row!r}, {column!r}: no number"
    return match.group(0)


def roundings(value: str, places: int) -> set[str]:
    """A decimal number rounded to ``places`` decimals, half up or half even (the pages use both)."""
    step = Decimal(1).scaleb(-places)
    return {str(Decimal(value).quantize(step, rounding=mode)) for mode in (ROUND_HALF_UP, ROUND_HALF_EVEN)}


@dataclass(frozen=True)
class Table:
    """A table of a page copied from BENCHMARKS.md: the page, the start of its header line, the BENCHMARKS.md
    row of each of its rows (in order), and per column after the first the figures it shows (or a function of
    the row that gives them, where rows show different figures)."""

    page: str
    header: str
    rows: tuple[str, ...]
    columns: tuple[tuple[Source, ...], ...] | Callable[[str], tuple[tuple[Source, ...], ...]]


def page_table(text: str, header: str) -> list[list[str]]:
    """The body rows (cells) of the page's table whose header line starts with ``header``."""
    lines = text.splitlines()
    starts = [k for k, line in enumerate(lines) if line.startswith(header)]
    assert len(starts) == 1, f"{len(starts)} tables start with {header!r}"
    body = []
    for line in lines[starts[0] + 2:]:
        if not line.startswith("|"):
            break
        body.append(cells(line))
    return body


def table_problems(table: Table, text: str, bench: dict) -> list[str]:
    """Each cell of ``table`` (in the page's ``text``) whose numbers are not its sources' figures, rounded as
    the page rounds them."""
    body, problems = page_table(text, table.header), []
    assert len(body) == len(table.rows), f"{table.page}: {len(body)} rows under {table.header!r}, expected {len(table.rows)}"
    for row, source_row in zip(body, table.rows):
        columns = table.columns(source_row) if callable(table.columns) else table.columns
        for cell, sources in zip(row[1:], columns, strict=True):
            shown = NUMBER.findall(cell)
            wanted = [figure(bench, source_row, source) for source in sources]
            if len(shown) != len(wanted) or any(s not in roundings(w, len(s.partition(".")[2]))
                                                for s, w in zip(shown, wanted)):
                problems.append(f"{table.page}: {row[0]} | {cell} | BENCHMARKS.md has {', '.join(wanted)}")
    return problems


FLOW_METHODS = ("dis-ultrafast", "dis-fast", "dis-medium", "farneback", "deepflow", "tvl1", "discrete", "semantic")
SHARPEN_ROWS = ("dis-medium", "dis-medium --sharpen", "discrete", "discrete --sharpen",
                "discrete missed_motions=True --sharpen", "semantic",
                "semantic[discrete missed_motions=True] --sharpen")
PHOTO_GROUPS = ("photo:", "held-out:", "fresh:")


def gains_columns(row: str) -> tuple[tuple[Source, ...], ...]:
    """docs/semantic.md's "What it gains" table: a `semantic` row also shows its ratio to its baseline."""
    ratio = row.startswith("semantic")
    hard = (("things", "Hard synthetic", "things EPE"),) + ((("things", "Hard synthetic", "things vs baseline"),) if ratio else ())
    photo = tuple(("photo-scenes", group, "things EPE") for group in PHOTO_GROUPS)
    photo += tuple(("photo-scenes", group, "things vs baseline") for group in PHOTO_GROUPS) if ratio else ()
    real = "Real data, default segmenter"
    return (hard, photo, (("things", real, "kitti EPE"), ("things", real, "kitti Fl %")), (("things", real, "sintel EPE"),),
            (("things", real, "middlebury EPE"),), (("things", real, "chairs EPE"),))


TABLES = [
    Table("docs/methods.md", "| method | Middlebury EPE |", FLOW_METHODS, (
        (("flow", "middlebury", "EPE"),), (("flow", "sintel", "EPE"),), (("flow", "kitti", "Fl-all %"),),
        (("flow", "chairs", "EPE"),), (("flow", "synthetic", "EPE"), ("flow", "synthetic", "EPE things")),
        (("flow", "sintel", "s/pair"),))),
    Table("docs/methods.md", "| method | hard scenes |", SHARPEN_ROWS, (
        (("sharpen", "Hard synthetic", "EPE"), ("sharpen", "Hard synthetic", "things EPE")),
        (("sharpen", "Held-out", "EPE"), ("sharpen", "Held-out", "things EPE")),
        tuple(("sharpen", "Photo scenes", f"{group} things EPE") for group in ("photo", "held-out", "fresh")),
        (("sharpen", "Real data", "kitti EPE"),), (("sharpen", "Real data", "sintel EPE"),),
        (("sharpen", "Real data", "middlebury EPE"),), (("sharpen", "Real data", "chairs EPE"),))),
    Table("docs/semantic.md", "| baseline | hard synthetic scenes |",
          ("dis-medium", "semantic[dis-medium]", "discrete", "semantic[discrete]"), gains_columns),
]


@pytest.mark.parametrize("table", TABLES, ids=lambda t: f"{t.page}: {t.header}")
def test_tables_quote_benchmarks_as_it_stands(table: Table) -> None:
    text = (ROOT / table.page).read_text(encoding="utf-8")
    assert table_problems(table, text, BENCH) == []


def test_a_stale_table_cell_is_found() -> None:
    """A figure BENCHMARKS.md no longer holds, a figure missing, and a rounding the source does not give fail;
    the page's own rounding (2.011 -> 2.01, 2.375 -> 2.38) does not."""
    table = TABLES[0]
    text = (ROOT / table.page).read_text(encoding="utf-8")
    assert "| `discrete` | 0.287 | 0.196 | 29.4% | 2.01 |" in text and "| 2.38 |" in text
    for stale in ("| `discrete` | 0.297 |", "| `discrete` | 0.28 |", "| `discrete` | 0.286 |"):
        broken = text.replace("| `discrete` | 0.287 |", stale)
        assert [p.split(" | ")[0] for p in table_problems(table, broken, BENCH)] == ["docs/methods.md: `discrete`"]
    broken = text.replace("| 0.027 (0.070) |", "| 0.027 |")
    assert len(table_problems(table, broken, BENCH)) == 1
    gains = TABLES[2]
    text = (ROOT / gains.page).read_text(encoding="utf-8")
    assert len(table_problems(gains, text.replace("(0.33x, 0.42x, 0.43x)", "(0.33x, 0.42x, 0.45x)"), BENCH)) == 1


# --- sentences whose figures are worked out from BENCHMARKS.md ------------------------------------


def median_on_photo_scenes(bench: dict) -> str:
    """docs/methods.md: what `median_radius=15` does to `discrete`'s things EPE on the photo scenes (both with
    the default stages), a change in per cent a group."""
    changes = []
    for group, name in zip(PHOTO_GROUPS, ("photo", "held-out", "fresh")):
        plain = float(figure(bench, "discrete", ("photo-scenes", group, "things EPE")))
        median = float(figure(bench, "discrete median_radius=15", ("photo-scenes", group, "things EPE")))
        changes.append(f"{name} {round(100 * (median / plain - 1)):+d} %")
    return f"({', '.join(changes)})"


QUOTES: list[tuple[str, Callable[[dict], str]]] = [("docs/methods.md", median_on_photo_scenes)]
"""(page, the text it must hold, made from BENCHMARKS.md's tables)."""


@pytest.mark.parametrize("page, quote", QUOTES, ids=lambda q: getattr(q, "__name__", q))
def test_quoted_changes_are_those_of_benchmarks(page: str, quote: Callable[[dict], str]) -> None:
    text = " ".join((ROOT / page).read_text(encoding="utf-8").split())
    wanted = quote(BENCH)
    assert wanted in text, f"{page} should say {wanted!r} ({quote.__name__}, from BENCHMARKS.md)"


def test_a_stale_quote_is_found() -> None:
    """The quote follows the tables: another figure in the section gives another text."""
    wanted = median_on_photo_scenes(BENCH)
    assert wanted.startswith("(photo +") and "held-out -" in wanted
    stale = {section: {h: {r: dict(c) for r, c in rows.items()} for h, rows in tables.items()}
             for section, tables in BENCH.items()}
    heading = next(h for h in stale["photo-scenes"] if h.startswith("photo:"))
    rows = stale["photo-scenes"][heading]
    rows["discrete median_radius=15"]["things EPE"] = rows["discrete"]["things EPE"]
    assert median_on_photo_scenes(stale).startswith("(photo +0 %")


def test_benchmark_tables_are_read() -> None:
    """The reader finds rows by section, heading and first cell (a reader that found none would fail every
    check above for the wrong reason)."""
    assert figure(BENCH, "semantic", ("flow", "kitti", "Fl-all %")) == "23.12"
    assert figure(BENCH, "semantic[discrete]", ("things", "Hard synthetic", "things vs baseline")) == "0.48"
    sample = "<!-- s:start -->\n## S\n| a | b |\n|---|---|\n| x | 1.5x |\n### T\n| a | b |\n|---|---|\n| y | 2 |\n<!-- s:end -->"
    assert benchmark_tables(sample) == {"s": {"": {"x": {"a": "x", "b": "1.5x"}}, "T": {"y": {"a": "y", "b": "2"}}}}
