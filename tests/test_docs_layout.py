"""docs/layout.md names every module of semflow/, semflow/io/ and semflow/batch/ in the entry of its folder,
so that a module added without a line there fails here (subpackages such as baseline/, layers/ and
segmentation/ stay summarised in one entry each)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYOUT = ROOT / "docs" / "layout.md"
FOLDERS = ("", "io/", "batch/")
"""The folders under semflow/ whose every module the layout names ("": semflow/ itself)."""


def layout_block(markdown: str) -> str:
    """The first fenced block of the layout page: the tree."""
    return re.search(r"^```\w*\n(.*?)^```", markdown, flags=re.S | re.M).group(1)


def entries(tree: str) -> dict[str, str]:
    """The text of each folder's entries in the tree: "" for semflow/ (its own line and every entry under it
    that is no folder: `semantic.py  ...`, `viz.py, plots.py, ...`), "io/" for `  io/  ...` with its
    continuation lines, and so on. A line indented by 2 starts an entry under semflow/, a line indented
    further continues the entry above it, a line that is not indented starts a folder of the repository."""
    found: dict[str, str] = {}
    current = None
    for line in tree.splitlines():
        indent = len(line) - len(line.lstrip(" "))
        if not line.strip():
            continue
        if indent == 0:
            current = "" if line.startswith("semflow/") else None
        elif indent == 2:
            key = line.split()[0]
            current = key if key.endswith("/") else ""
        if current is not None:
            found[current] = f"{found[current]} {line.strip()}" if current in found else line.strip()
    return found


def unnamed_modules(tree: str, package: Path) -> list[str]:
    """The module files of :data:`FOLDERS` (a subpackage's __init__.py aside) whose name (`claimed.py`) is not
    in their folder's entry."""
    text = entries(tree)
    missing = []
    for folder in FOLDERS:
        for module in sorted((package / folder).glob("*.py")):
            if folder and module.name == "__init__.py":
                continue
            if not re.search(rf"(?<![\w/.]){re.escape(module.name)}(?!\w)", text.get(folder, "")):
                missing.append(f"semflow/{folder}{module.name}")
    return missing


def test_the_layout_names_every_module() -> None:
    assert unnamed_modules(layout_block(LAYOUT.read_text(encoding="utf-8")), ROOT / "semflow") == []


def test_a_module_left_out_is_found(tmp_path: Path) -> None:
    """A module named only in another folder's entry, or not at all, is missing; one named in its own is not."""
    for name in ("semflow/a.py", "semflow/io/b.py", "semflow/io/__init__.py", "semflow/batch/c.py",
                 "semflow/batch/progress.py", "semflow/progress.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    tree = ("semflow/            the package (a.py: the first)\n"
            "  io/               formats (b.py); c.py\n"
            "  batch/            progress.py: its bar\n"
            "models/             weights, progress.py\n")
    assert unnamed_modules(tree, tmp_path / "semflow") == ["semflow/progress.py", "semflow/batch/c.py"]
    assert unnamed_modules(tree + "  progress.py       bars\n", tmp_path / "semflow") == ["semflow/batch/c.py"]
    assert entries("semflow/ x\n  io/ y\n      z\n  w.py v\n") == {"": "semflow/ x w.py v", "io/": "io/ y z"}
