"""The import rules of DESIGN.md, checked on the source: imports run one way down the data flow."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "semflow"


def imports_of(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every import in a file, at any depth (lazy imports inside functions count)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


SOURCES = sorted(PACKAGE.rglob("*.py"))
BELOW_THE_REGISTRY = ("semflow.semantic", "semflow.compose", "semflow.layers", "semflow.segmentation",
                      "semflow.baseline", "semflow.io", "semflow.viz", "semflow.metrics", "semflow.options")


@pytest.mark.parametrize("path", SOURCES, ids=module_name)
def test_imports_follow_the_data_flow(path: Path) -> None:
    name = module_name(path)
    for module, names in imports_of(path):
        if not module.startswith("semflow"):
            continue
        assert module != "semflow.cli" or name == "semflow.console", f"{name} imports the CLI"
        if name.startswith(BELOW_THE_REGISTRY):
            assert module != "semflow.methods" and "methods" not in names, f"{name} imports the method registry"
        private = [n for n in names if n.startswith("_") and not n.startswith("__")]
        assert not private, f"{name} imports private names {private} from {module}"


LOW_PACKAGES = ("semflow.baseline", "semflow.segmentation", "semflow.io", "semflow.fitting")
"""Packages below the layer models in the data flow (compose -> layers -> segmentation, baseline, io;
fitting serves both baseline and layers)."""
HIGH_MODULES = ("semflow.layers", "semflow.compose", "semflow.semantic")


def _is_under(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


@pytest.mark.parametrize("path", [p for p in SOURCES if _is_under(module_name(p), LOW_PACKAGES)], ids=module_name)
def test_low_packages_do_not_import_the_layers(path: Path) -> None:
    name = module_name(path)
    for module, names in imports_of(path):
        wanted = [module] + [f"{module}.{n}" for n in names]  # ``from semflow import layers`` counts too
        upward = [m for m in wanted if _is_under(m, HIGH_MODULES)]
        assert not upward, f"{name} imports {upward[0]}, which sits above it"


def test_no_module_is_longer_than_400_lines() -> None:
    long = {module_name(p): n for p in SOURCES if (n := len(p.read_text().splitlines())) > 420}
    assert not long, f"modules over ~400 lines: {long}"
