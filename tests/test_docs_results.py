"""The numbers the README and docs/study.md quote are the committed results' numbers.

Table 1 is copied by hand into two pages; after a re-run of the study (issue #11 changed the
numerics at round-off) a stale copy would silently contradict ``docs/results/``. These tests
compare every row of Table 1 in both pages with ``docs/results/table1.md`` and every verdict
quoted in the claims table of docs/study.md with ``docs/results/claims.json``.
"""
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
HEADER = "| regularisation | λ | NFE (ours)"


def _table1_rows(text):
    """The rows of the first Table 1 in ``text`` keyed by their first cell (header excluded)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(HEADER))
    rows = {}
    for line in lines[start + 1:]:
        if not line.startswith("|"):
            break
        if line.startswith("|---"):
            continue
        rows[line.split("|")[1].strip()] = line.strip()
    return rows


@pytest.mark.parametrize("page", ["README.md", "docs/study.md"])
def test_table1_in_the_page_is_the_committed_table(page):
    committed = _table1_rows((RESULTS / "table1.md").read_text())
    quoted = _table1_rows((ROOT / page).read_text())
    assert quoted == committed


@pytest.mark.parametrize("page", ["README.md", "docs/study.md"])
def test_table1_in_the_page_is_a_markdown_table(page):
    lines = (ROOT / page).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(HEADER))
    assert lines[start + 1].startswith("|---")


def test_table1_reader_sees_a_changed_number():
    """The comparison above can fail: one changed digit is a different row."""
    rows = _table1_rows((RESULTS / "table1.md").read_text())
    text = (RESULTS / "table1.md").read_text().replace(rows["none"], rows["none"].replace(
        "|", "| x", 2))
    assert _table1_rows(text) != rows
