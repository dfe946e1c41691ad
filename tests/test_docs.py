"""The project's documents point only inside the repository, at files and headings that
exist: a newcomer follows the README's links without falling off the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
DOCUMENTS = [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(document: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation but hyphens dropped, spaces hyphens."""
    headings = re.findall(r"^#+ (.+)$", document.read_text(), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def _resolves(document: Path, target: str) -> bool:
    if target.startswith(("http://", "https://", "mailto:")):
        return True
    path, _, anchor = target.partition("#")
    resolved = (document.parent / path).resolve() if path else document
    if not resolved.is_relative_to(ROOT) or not resolved.exists():
        return False
    return not anchor or resolved.suffix != ".md" or anchor in _anchors(resolved)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_of_a_document_resolves_inside_the_repository(document: Path) -> None:
    broken = [target for target in LINK.findall(document.read_text()) if not _resolves(document, target)]
    assert broken == []


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_headings_go_down_one_level_at_a_time(document: Path) -> None:
    """A reader's outline (and a screen reader's) has no holes: `#` then `##`, never `###`."""
    level, jumps, fenced = 0, [], False
    for line in document.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (heading := re.match(r"^(#+) ", line)):
            depth = len(heading.group(1))
            if depth > level + 1:
                jumps.append(line)
            level = depth
    assert jumps == []
