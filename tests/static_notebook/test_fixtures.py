"""The fixture notebooks: marked findings, clean twins, and parity with the exported .py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from export import export
from nbhelpers import FIXTURES

from gradlint.rules import ALL_RULES
from gradlint.static.engine import lint_source

NOTEBOOKS = sorted(FIXTURES.glob("*.ipynb"))
CORPUS = Path("/work/corpus/trees")
REAL = (
    sorted(p for p in CORPUS.glob("**/*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    if CORPUS.is_dir()
    else []
)


def marked(path: Path) -> list[tuple[str, int, int]]:
    """(code, cell, row) of every ``# error: GLnnn`` in a notebook's code cells."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for number, cell in enumerate(doc["cells"], start=1):
        if cell["cell_type"] != "code":
            continue
        for row, line in enumerate("".join(cell["source"]).split("\n"), start=1):
            out += [(c, number, row) for c in re.findall(r"# error: (GL\d{3})", line)]
    return sorted(out)


def lint_file(path: Path):
    return lint_source(str(path), path.read_bytes(), ALL_RULES)


def test_there_are_buggy_and_correct_fixtures():
    names = {p.name for p in NOTEBOOKS}
    assert {"buggy_training.ipynb", "correct_training.ipynb", "buggy_rnn.ipynb", "correct_rnn.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_fixture_reports_exactly_the_marked_lines(path):
    got = sorted((d.code, d.cell, d.location.row) for d in lint_file(path))
    assert got == marked(path)
    if path.name.startswith("buggy"):
        assert got, "a buggy fixture must have findings"
    else:
        assert got == []


def same_as_exported(path: Path) -> tuple[list, list]:
    nb = sorted((d.code, d.cell, d.location.row, d.location.column) for d in lint_file(path))
    text, where = export(path)
    py = []
    for d in lint_source(str(path) + ".py", text.encode("utf-8"), ALL_RULES):
        cell, row = where.get(d.location.row, (None, d.location.row))
        py.append((d.code, cell, row, d.location.column))
    return nb, sorted(py)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_fixture_diagnostics_equal_those_of_the_exported_script(path):
    nb, py = same_as_exported(path)
    assert nb == py


@pytest.mark.skipif(not REAL, reason="the development corpus (/work/corpus) is not on this machine")
@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_real_notebooks_equal_their_exported_scripts(path):
    nb, py = same_as_exported(path)
    if any(c == "GL000" for c, *_ in py):
        pytest.skip("the exported script does not parse (a cell with a syntax error)")
    assert nb == py
