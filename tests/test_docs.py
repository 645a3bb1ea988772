"""The front page and docs/: every relative link reaches a file that exists and, with
#anchor, a heading in it. Headings carry numbers here ("... 4.05% in 29 minutes"), so a
rerun that changes one breaks every link to it unless the links change too."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def anchors(markdown: str) -> set[str]:
    """The #anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces
    to hyphens, a repeated heading numbered -1, -2, ...; lines in code blocks are not headings."""
    found, seen, in_code = set(), {}, False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        heading = None if in_code else re.match(r"#{1,6} (.*)", line)
        if heading:
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
            found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
            seen[slug] = seen.get(slug, 0) + 1
    return found


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path) if path else page
        if not linked.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked.read_text()):
            broken.append(f"{target} (no such heading)")
    return broken


def test_every_relative_link_in_the_readme_and_docs_resolves():
    broken = {page.name: b for page in PAGES if (b := broken_links(page))}
    assert not broken, broken


def test_anchors_follow_githubs_rule():
    page = "# Speed: per machine\n```\n# not a heading\n```\n## Cluttered 60x60: 4.05% (paper 4.08%)\n## Speed: per machine\n"
    assert anchors(page) == {"speed-per-machine", "cluttered-60x60-405-paper-408", "speed-per-machine-1"}


def test_a_renamed_heading_breaks_its_links(tmp_path):
    (tmp_path / "a.md").write_text("## Results: 1.09%\n")
    page = tmp_path / "b.md"
    page.write_text("[ok](a.md#results-109) [stale](a.md#results-112) [gone](c.md) [web](https://x.org/#y)\n")
    assert broken_links(page) == ["a.md#results-112 (no such heading)", "c.md (no such file)"]
