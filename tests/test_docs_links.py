"""The links inside README.md, BENCHMARKS.md and docs/: every `#anchor` names a heading of its file (as
GitHub makes anchors), every relative file link names a file of the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "BENCHMARKS.md", ROOT / "models" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a Markdown text's headings: lower case, punctuation but '-' and '_' dropped, spaces
    as '-' (outside fenced code)."""
    text = re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M)
    found = set()
    for heading in re.findall(r"^#{1,6} (.+?)\s*$", text, flags=re.M):
        found.add(re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-"))
    return found


def test_github_anchor_rule() -> None:
    assert anchors("# A `--sharpen` step: on (B)\n```\n# not a heading\n```\n") == {"a---sharpen-step-on-b"}


@pytest.mark.parametrize("doc", [d for d in DOCS if d.is_file()], ids=lambda d: str(d.relative_to(ROOT)))
def test_every_link_inside_the_repository_resolves(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+://|mailto:", target):
            continue  # (outside the repository)
        path, _, anchor = target.partition("#")
        file = (doc.parent / path) if path else doc
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text(encoding="utf-8")):
            broken.append(target)
    assert broken == [], f"{doc.name}: links to nothing: {broken}"
