"""--fix and --diff on notebooks: only the fixed source lines change, byte for byte."""

from __future__ import annotations

import difflib
import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from nbhelpers import FIXTURES, code, md, mtime, nb_json, write_nb

CORPUS = Path("/work/corpus/trees")
REAL = (
    sorted(p for p in CORPUS.glob("**/*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    if CORPUS.is_dir()
    else []
)

SETUP = "import torch\nmodel = torch.nn.Linear(2, 1)\nloader = []\n"
ACCUM = "total = 0\nfor x, y in loader:\n    loss = model(x).sum()\n    total += loss\n"  # GL003, safe fix
DATA = "out = model(torch.randn(3, 2))\nout.data.clamp_(0, 1)\n"  # GL005, unsafe fix


def sources(doc: dict) -> list[str]:
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in doc["cells"]]


def assert_only_source_lines_changed(old: bytes, new: bytes) -> None:
    """Every changed line of the file is a source string; everything else is byte for byte."""
    a, b = old.decode("utf-8").splitlines(keepends=True), new.decode("utf-8").splitlines(keepends=True)
    old_doc, new_doc = json.loads(old), json.loads(new)
    items = {x for c in old_doc["cells"] if isinstance(c.get("source"), list) for x in c["source"]}
    sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
    diffs = [op for op in sm.get_opcodes() if op[0] != "equal"]
    assert diffs, "nothing changed"
    for _tag, i1, i2, j1, j2 in diffs:
        for line in a[i1:i2]:
            assert json.loads(line.strip().rstrip(",")) in items, line
        for line in b[j1:j2]:
            assert isinstance(json.loads(line.strip().rstrip(",")), str), line
    # Apart from the sources, the documents are equal (outputs, metadata, key order).
    assert len(old_doc["cells"]) == len(new_doc["cells"])
    for c_old, c_new in zip(old_doc["cells"], new_doc["cells"]):
        c_old.pop("source"), c_new.pop("source")
    assert json.dumps(old_doc) == json.dumps(new_doc)


@pytest.mark.parametrize("name", ["buggy_training.ipynb", "buggy_rnn.ipynb"])
def test_fixture_fix_round_trips_and_is_idempotent(project, run, name):
    p = project / name
    shutil.copy(FIXTURES / name, p)
    old = p.read_bytes()
    r = run("check", "--no-cache", "--fix", "--unsafe-fixes", "--output-format", "concise", name)
    assert "Traceback" not in r.output
    new = p.read_bytes()
    if new != old:
        assert_only_source_lines_changed(old, new)
    before = mtime(p)
    r2 = run("check", "--no-cache", "--fix", "--unsafe-fixes", "--output-format", "concise", name)
    assert "(0 fixed" in r2.stdout or "All checks passed" in r2.stdout
    assert p.read_bytes() == new and mtime(p) == before


def test_training_fixture_safe_fix_edits_exactly_one_line(project, run):
    p = project / "t.ipynb"
    shutil.copy(FIXTURES / "buggy_training.ipynb", p)
    old = p.read_bytes()
    run("check", "--no-cache", "--fix", "t.ipynb")
    new = p.read_bytes()
    changed = [
        ln for ln in difflib.ndiff(old.decode().splitlines(), new.decode().splitlines()) if ln[:1] in "+-"
    ]
    assert changed == [
        '-     "        total_loss += loss  # error: GL003\\n",',
        '+     "        total_loss += loss.detach()  # error: GL003\\n",',
    ]


@pytest.mark.parametrize(
    "fmt",
    [
        dict(indent=1),
        dict(indent=2),
        dict(indent=4, sort_keys=False),
        dict(indent=1, ensure_ascii=True),
        dict(indent=1, newline=False),
        dict(indent=None),
    ],
    ids=["nbformat", "indent2", "indent4-unsorted", "ascii", "no-final-newline", "one-line"],
)
def test_formatting_is_kept(project, run, fmt):
    cells = [
        md("# Café ☕"),
        code(SETUP + "# naïve ü\n"),
        code(ACCUM, outputs=[{"output_type": "stream", "name": "stdout", "text": ["é\n"]}]),
    ]
    p = write_nb(project, "nb.ipynb", cells, **fmt)
    old = p.read_bytes()
    run("check", "--no-cache", "--fix", "nb.ipynb")
    new = p.read_bytes()
    expected = old.replace(b"total += loss", b"total += loss.detach()")
    assert new == expected


def test_string_source_stays_a_string(project, run):
    doc = json.loads(nb_json([code(SETUP), code(ACCUM)]))
    for c in doc["cells"]:
        c["source"] = "".join(c["source"])
    p = project / "s.ipynb"
    p.write_text(json.dumps(doc, indent=1) + "\n")
    old = p.read_bytes()
    run("check", "--no-cache", "--fix", "s.ipynb")
    assert p.read_bytes() == old.replace(b"total += loss\\n", b"total += loss.detach()\\n")


def test_crlf_and_bom_are_kept(project, run):
    text = nb_json([code(SETUP), code(ACCUM)]).replace("\n", "\r\n")
    p = project / "w.ipynb"
    p.write_bytes(b"\xef\xbb\xbf" + text.encode())
    old = p.read_bytes()
    run("check", "--no-cache", "--fix", "w.ipynb")
    assert p.read_bytes() == old.replace(b"total += loss", b"total += loss.detach()")


def test_magics_survive_a_fix_in_their_cell(project, run):
    cell = "%matplotlib inline\n" + SETUP + "!nvidia-smi\n" + ACCUM
    p = write_nb(project, "m.ipynb", [code(cell)])
    old = p.read_bytes()
    run("check", "--no-cache", "--fix", "m.ipynb")
    assert p.read_bytes() == old.replace(b"total += loss", b"total += loss.detach()")


def test_notebook_without_an_applicable_fix_is_not_rewritten(project, run):
    p = write_nb(project, "u.ipynb", [code(SETUP), code(DATA)])
    before, old = mtime(p), p.read_bytes()
    r = run(
        "check", "--no-cache", "--fix", "--output-format", "concise", "u.ipynb"
    )  # the GL005 fix is unsafe
    assert r.exit_code == 1 and "u.ipynb:cell 2:2:1: GL005" in r.stdout
    assert p.read_bytes() == old and mtime(p) == before


def test_diff_names_the_cell_and_writes_nothing(project, run):
    p = write_nb(project, "d.ipynb", [md("x"), code(SETUP), code(ACCUM)])
    old = p.read_bytes()
    r = run("check", "--no-cache", "--diff", "d.ipynb")
    assert p.read_bytes() == old
    assert r.stdout.startswith("--- d.ipynb:cell 3\n+++ d.ipynb:cell 3\n")
    assert "-    total += loss\n+    total += loss.detach()\n" in r.stdout


def test_read_only_notebook_is_left_alone(project, run):
    p = write_nb(project, "r.ipynb", [code(SETUP), code(ACCUM)])
    old = p.read_bytes()
    os.chmod(p, stat.S_IRUSR | stat.S_IRGRP)
    try:
        r = run("check", "--no-cache", "--fix", "r.ipynb")
        assert "read-only" in r.output and p.read_bytes() == old
    finally:
        os.chmod(p, stat.S_IRUSR | stat.S_IWUSR)


def test_fix_from_stdin(project, run):
    text = nb_json([code(SETUP), code(ACCUM)])
    r = (
        __import__("click.testing")
        .testing.CliRunner()
        .invoke(
            __import__("gradlint.cli").cli.cli,
            ["check", "--no-cache", "--fix", "--stdin-filename", "x.ipynb", "-"],
            input=text,
        )
    )
    assert r.stdout == text.replace("total += loss", "total += loss.detach()")


@pytest.mark.skipif(not REAL, reason="the development corpus (/work/corpus) is not on this machine")
def test_real_notebooks_with_outputs_round_trip(project, run):
    fixed = 0
    for src in REAL:
        p = project / f"{src.parent.name}_{src.name}"
        shutil.copy(src, p)
        old = p.read_bytes()
        r = run("check", "--no-cache", "--fix", "--unsafe-fixes", "--output-format", "concise", p.name)
        assert "Traceback" not in r.output
        new = p.read_bytes()
        if new != old:
            fixed += 1
            assert_only_source_lines_changed(old, new)
            r2 = run("check", "--no-cache", "--fix", "--unsafe-fixes", p.name)
            assert p.read_bytes() == new, r2.output
    assert fixed >= 1


def test_items_that_are_not_one_line_each_are_rewritten_in_that_cell_only(project, run):
    doc = json.loads(nb_json([code(SETUP), code(ACCUM)]))
    doc["cells"][1]["source"] = [ACCUM]  # one item holding every line (hand-written JSON)
    p = project / "h.ipynb"
    p.write_text(json.dumps(doc, indent=1) + "\n")
    old = p.read_bytes()
    run("check", "--no-cache", "--fix", "h.ipynb")
    new_doc = json.loads(p.read_bytes())
    assert "".join(new_doc["cells"][1]["source"]) == ACCUM.replace("total += loss", "total += loss.detach()")
    assert new_doc["cells"][0] == json.loads(old)["cells"][0]
    head = old[: old.index(b'"total = 0')]
    assert p.read_bytes().startswith(head)


def test_fix_touching_a_magic_line_or_a_cell_boundary_is_refused():
    from gradlint.static.notebook import read_notebook
    from gradlint.static.notebook_fix import new_cell_sources

    nb = read_notebook(nb_json([code("!ls\nx = 1\n"), code("y = 2\n")]).encode(), "n.ipynb")
    assert nb.module.splitlines()[1] == "pass"
    touched_magic = nb.module.replace("pass\n", "passed = 1\n")
    assert "magic" in new_cell_sources(nb, touched_magic)
    lost_boundary = nb.module.replace("# %% gradlint cell 2\n", "")
    assert "boundary" in new_cell_sources(nb, lost_boundary)
    fine = nb.module.replace("y = 2", "y = 3")
    assert new_cell_sources(nb, fine) == {2: "y = 3\n"}
