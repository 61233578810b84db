"""The README stays short and every link in it and in docs/ leads somewhere."""

import re
from pathlib import Path

import pytest

from tests.conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def prose(text: str) -> str:
    """`text` without fenced code blocks and inline code, where brackets are not links."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def anchor(heading: str) -> str:
    """The id GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    headings = re.findall(r"^#{1,6} (.+)$", prose(page.read_text()), flags=re.M)
    return {anchor(h) for h in headings}


def relative_links(page: Path) -> list[str]:
    return [t for t in LINK.findall(prose(page.read_text())) if not re.match(r"\w+:", t)]


def test_github_anchors_are_computed_as_github_does():
    assert anchor("Training (Section 4)") == "training-section-4"
    assert anchor("A run's directory") == "a-runs-directory"
    assert anchor("`snakemake --profile slurm`, exactly") == "snakemake---profile-slurm-exactly"


def test_links_are_found_outside_code_only():
    text = "[a](a.md) `[b](b.md)` ![c](c.png) [d](https://x.org)\n```\n[e](e.md)\n```\n"
    assert LINK.findall(prose(text)) == ["a.md", "c.png", "https://x.org"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    links = relative_links(page)
    for link in links:
        path, _, fragment = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        assert target.exists(), f"{page.name}: {link} points at nothing"
        if fragment:
            assert fragment in anchors(target), f"{page.name}: {link}: no such heading"


def test_the_readme_links_every_docs_page_and_the_pages_link_back_into_docs():
    linked = {Path(link.partition("#")[0]).name for link in relative_links(REPO / "README.md")}
    pages = {p.name for p in PAGES[1:] if p.name not in ("table1.md", "measure-ranking.md")}
    assert pages - linked <= {"mutation-testing.md"}  # linked from development.md
    assert "mutation-testing.md" in {
        Path(x).name for x in relative_links(REPO / "docs/development.md")
    }


def test_the_readme_is_read_in_five_minutes():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    headings = re.findall(r"^## (.+)$", readme, flags=re.M)
    for section in ("Quickstart", "Results of the default study", "What the pipeline does",
                    "Run on a GPU workstation", "Run on SLURM"):  # fmt: skip
        assert section in headings
    assert "<!-- table1:start -->" in readme and "![Fig. 1a](docs/fig1a.png)" in readme
