"""The project's documents point only inside the repository, at files and headings that
exist: a newcomer follows the README's links without falling off the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
DOCUMENTS = [
    ROOT / "README.md",
    ROOT / "CHANGELOG.md",
    ROOT / "BENCHMARKS.md",
    ROOT / "bench" / "HISTORY.md",
    *sorted((ROOT / "docs").glob("*.md")),
]
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


CITATION = re.compile(r"(BENCHMARKS\.md|bench/HISTORY\.md)(#[\w-]+)?")


def test_every_figure_the_code_cites_names_a_section_that_exists() -> None:
    """A comment that leans on a measurement says where it is: a section of BENCHMARKS.md
    (the current figures) or of bench/HISTORY.md (the rounds), and that section exists."""
    sources = [
        path
        for pattern in ("*.py", "*.toml", "Makefile")
        for path in ROOT.rglob(pattern)
        if not path.is_relative_to(ROOT / ".venv") and "tests" not in path.relative_to(ROOT).parts[:1]
    ]
    wrong = []
    for source in sources:
        for document, anchor in CITATION.findall(source.read_text()):
            if not anchor or anchor[1:] not in _anchors(ROOT / document):
                wrong.append(f"{source.relative_to(ROOT)}: {document}{anchor}")
    assert wrong == []
