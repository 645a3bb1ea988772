"""The front page and docs/: every relative link reaches a file that exists and, with
#anchor, a heading in it. Headings carry numbers here ("... 4.05% in 29 minutes"), so a
rerun that changes one breaks every link to it unless the links change too. And the
README's results tables say what results/ records, row by row."""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import reproduce  # noqa: E402  (its reading of results/ and its percent format)
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


# The README's results tables, by the start of their title, and the results/ folder of each
README_TABLES = {"28x28 MNIST": "mnist", "60x60 translated": "translated", "60x60 cluttered": "cluttered60",
                 "100x100 cluttered": "cluttered100", "28x28 Fashion-MNIST": "fashion-mnist"}


def readme_rows(markdown: str) -> dict[str, dict[str, list[str]]]:
    """{results folder: {row label: [paper, ours, seeds, difference]}} from the README's tables."""
    tables, current = {}, None
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else None
        if cells is None:
            current = None
        elif current is None:
            current = next((d for title, d in README_TABLES.items() if cells[0].startswith(title)), None)
            if current:
                tables[current] = {}
        elif not cells[0].startswith("---"):
            tables[current][cells[0]] = cells[1:]
    return tables


def expected_cells(result: dict) -> list[str]:
    """What the README should say for a results file: the paper, the mean, the seeds
    (with their spread), and the difference, in points, of the rounded figures."""
    paper, ours = result["paper_error_percent"], result["test_error_percent"]
    seeds = (f"{len(result['seeds'])} ({result['test_error_min']:.2f} to {result['test_error_max']:.2f}%)"
             if result.get("seeds") else "1")
    difference = "n/a" if paper is None else f"{round(ours, 2) - paper:+.2f}".replace("+0.00", "0.00")
    return [reproduce.pct(paper), reproduce.pct(ours), seeds, difference]


def test_the_readme_results_tables_say_what_results_records():
    shown = readme_rows((ROOT / "README.md").read_text())
    assert set(shown) == set(README_TABLES.values())
    recorded = reproduce.load_results(ROOT / "results")
    for folder, rows in shown.items():
        results = [r for r in recorded if r["table"] == folder]
        assert sorted(rows) == sorted(r["label"] for r in results), folder  # every row, none extra
        for r in results:
            assert rows[r["label"]] == expected_cells(r), (folder, r["row"])


def test_a_stale_readme_row_is_caught():
    result = {"paper_error_percent": 1.12, "test_error_percent": 1.0933, "seeds": [{}, {}, {}],
              "test_error_min": 0.99, "test_error_max": 1.19}
    assert expected_cells(result) == ["1.12%", "1.09%", "3 (0.99 to 1.19%)", "-0.03"]
    table = "| 28x28 MNIST (Table 1a) | paper | ours | seeds | difference |\n| --- |\n| RAM-6 | 1.12% | 1.18% | 1 | +0.06 |\n"
    assert readme_rows(table)["mnist"]["RAM-6"] != expected_cells(result)
