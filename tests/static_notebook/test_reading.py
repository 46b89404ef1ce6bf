"""Reading notebooks: cells as one module, magics, skipped cells, bad input as GL000."""

from __future__ import annotations

import json

import pytest
from nbhelpers import code, md, nb_json

from gradlint.rules import ALL_RULES
from gradlint.static.engine import lint_source
from gradlint.static.notebook import read_notebook

TRAIN = "for x, y in loader:\n    loss = criterion(model(x), y)\n    loss.backward()\n    optimizer.step()\n"
SETUP = (
    "import torch\nmodel = torch.nn.Linear(2, 1)\noptimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
)


def lint(text: str, name: str = "nb.ipynb"):
    return lint_source(name, text.encode("utf-8"), ALL_RULES)


def codes(diags):
    return [(d.code, d.cell, d.location.row, d.location.column) for d in diags]


def test_cells_are_one_module_in_cell_order():
    # The optimizer built in cell 2 is what makes cell 4's loop a training loop.
    text = nb_json([md("# title"), code(SETUP), md("text"), code(TRAIN)])
    assert codes(lint(text)) == [("GL006", 4, 4, 5)]


def test_a_loop_alone_in_a_notebook_is_not_flagged_without_its_setup():
    # Near miss: with the setup cell removed, nothing says `optimizer` is an optimizer...
    # unless the rule does not need it; either way the same as the .py of the same code.
    nb = lint(nb_json([code(TRAIN)]))
    py = lint_source("x.py", TRAIN.encode(), ALL_RULES)
    assert [(d.code, d.location.row) for d in nb] == [(d.code, d.location.row) for d in py]


def test_magics_become_neutral_lines_and_keep_rows():
    cell = "%matplotlib inline\n!pip install torch\nfiles = !ls\nmodel?\n" + SETUP
    text = nb_json([code(cell), code("%load_ext autoreload\n" + TRAIN)])
    assert codes(lint(text)) == [("GL006", 2, 5, 5)]


def test_magic_inside_a_block_and_continued_lines():
    cell = (
        SETUP
        + "for x, y in loader:\n    !echo step \\\n        more\n    loss = model(x).sum()\n    loss.backward()\n    optimizer.step()\n"
    )
    diags = lint(nb_json([code(cell)]))
    assert codes(diags) == [("GL006", 1, 9, 5)]


def test_time_magic_keeps_its_statement_and_columns():
    cell = SETUP + "x = torch.randn(3, 2)\nout = model(x)\n%time out.data.clamp_(0, 1)\n"
    diags = lint(nb_json([code(cell)]))
    assert [(d.code, d.location.row, d.location.column) for d in diags] == [("GL005", 6, 7)]


def test_non_python_cell_magics_are_skipped_python_ones_linted():
    bash = "%%bash\nfor f in *; do echo $f; done\n"
    timed = "%%time\n" + TRAIN
    diags = lint(nb_json([code(SETUP), code(bash), code(timed)]))
    assert codes(diags) == [("GL006", 3, 5, 5)]


def test_a_cell_with_a_syntax_error_gives_gl000_and_the_rest_is_linted():
    diags = lint(nb_json([code(SETUP), code("def broken(:\n    pass\n"), code(TRAIN)]))
    assert [(d.code, d.cell) for d in diags] == [("GL000", 2), ("GL006", 3)]
    assert "SyntaxError in cell 2" in diags[0].message and diags[0].location.row == 1


def test_top_level_await_is_valid_in_a_cell():
    diags = lint(nb_json([code("import asyncio\nawait asyncio.sleep(0)\n"), code(SETUP), code(TRAIN)]))
    assert codes(diags) == [("GL006", 3, 4, 5)]


def test_string_source_is_read_as_the_format_allows():
    doc = json.loads(nb_json([code(SETUP), code(TRAIN)]))
    for cell in doc["cells"]:
        cell["source"] = "".join(cell["source"])
    assert codes(lint(json.dumps(doc))) == [("GL006", 2, 4, 5)]


def test_format_3_worksheets_are_read():
    doc = {
        "metadata": {"name": "old"},
        "nbformat": 3,
        "nbformat_minor": 0,
        "worksheets": [
            {
                "cells": [
                    {"cell_type": "code", "input": SETUP, "language": "python", "outputs": []},
                    {"cell_type": "code", "input": TRAIN, "language": "python", "outputs": []},
                ]
            }
        ],
    }
    assert codes(lint(json.dumps(doc))) == [("GL006", 2, 4, 5)]


@pytest.mark.parametrize(
    "text, expect",
    [
        ("{not json", "not valid JSON"),
        ("", "empty"),
        ('{"metadata": {}, "nbformat": 4}', "no `cells`"),
        ("[1, 2]", "not a Jupyter notebook"),
        ('{"cells": {}, "nbformat": 4}', "`cells` is not a list"),
        ('{"cells": [{"cell_type": "code", "source": ["x = 1"]}]} trailing', "not valid JSON"),
        ("[" * 100000, "not valid JSON"),
        ('{"cells": [], "nbformat": 4}\n', None),
        (b"\xff\xfe{}".decode("latin-1"), "not valid JSON"),
    ],
)
def test_bad_notebooks_give_one_clear_gl000(text, expect):
    diags = lint(text)
    if expect is None:
        assert diags == []
        return
    assert len(diags) == 1 and diags[0].code == "GL000", diags
    assert expect in diags[0].message


def test_invalid_utf8_is_a_gl000():
    diags = lint_source("nb.ipynb", b'{"cells": ["\xff"]}', ALL_RULES)
    assert [d.code for d in diags] == ["GL000"] and "UTF-8" in diags[0].message


def test_bad_cells_are_reported_and_others_still_linted():
    doc = json.loads(nb_json([code(SETUP), code(TRAIN)]))
    doc["cells"].insert(0, {"cell_type": "code", "source": 42, "metadata": {}, "outputs": []})
    doc["cells"].insert(0, "not a cell")
    diags = lint(json.dumps(doc))
    assert [(d.code, d.cell) for d in diags] == [("GL000", 1), ("GL000", 2), ("GL006", 4)]


@pytest.mark.parametrize("language", ["R", "julia"])
def test_non_python_kernels_are_skipped_with_a_gl000(language):
    diags = lint(nb_json([code("x <- c(1, 2)\nprint(x)\n")], language=language))
    assert len(diags) == 1 and diags[0].code == "GL000"
    assert f"Not a Python notebook (kernel language: {language}); skipped" in diags[0].message


def test_outputs_are_not_kept_in_the_model():
    big = {"output_type": "stream", "name": "stdout", "text": ["x" * 1000 + "\n"] * 100}
    nb = read_notebook(nb_json([code(SETUP, outputs=[big])]).encode(), "nb.ipynb")
    assert [c.number for c in nb.cells] == [1]
    assert "xxxx" not in nb.module


def test_noqa_inside_a_cell_and_file_noqa_in_the_first_cell():
    noqa = TRAIN.replace("optimizer.step()", "optimizer.step()  # noqa: GL006")
    assert lint(nb_json([code(SETUP), code(noqa)])) == []
    other = TRAIN.replace("optimizer.step()", "optimizer.step()  # noqa: GL001")
    assert [d.code for d in lint(nb_json([code(SETUP), code(other)]))] == ["GL006"]
    assert lint(nb_json([code("# gradlint: noqa\n" + SETUP), code(TRAIN)])) == []
    # In a later cell the file-level comment covers that cell only.
    both = [code(SETUP), code("# gradlint: noqa\n" + TRAIN), code(TRAIN)]
    assert codes(lint(nb_json(both))) == [("GL006", 3, 4, 5)]


def test_line_references_in_messages_name_cell_lines():
    acc = "loss = 0\nfor x, y in loader:\n    loss += model(x).sum()\n    loss.backward()\n"
    diags = lint(nb_json([code(SETUP), code(acc)]))
    assert [d.code for d in diags] == ["GL001"]
    assert "(line 3)" in diags[0].message


def test_kernel_known_by_name_only_is_skipped():
    doc = json.loads(nb_json([code("f <- function(a) { a }\n")]))
    doc["metadata"] = {"kernelspec": {"name": "ir", "display_name": "R"}}
    diags = lint(json.dumps(doc))
    assert [d.code for d in diags] == ["GL000"] and "kernel language: R" in diags[0].message
    doc["metadata"] = {"kernelspec": {"name": "python3", "display_name": "Python 3"}}
    assert lint(json.dumps(doc))[0].message.startswith("SyntaxError in cell 1")


def test_truncated_and_mangled_notebooks_never_raise():
    from nbhelpers import FIXTURES

    data = (FIXTURES / "buggy_training.ipynb").read_bytes()
    for cut in range(0, len(data), max(1, len(data) // 150)):
        diags = lint_source("t.ipynb", data[:cut], ALL_RULES)
        assert diags and all(d.code == "GL000" for d in diags), cut
    for old, new in [(b'"source"', b'"sourc"'), (b'"cell_type": "code"', b'"cell_type": 3'), (b"[", b"{")]:
        mangled = data.replace(old, new, 2)
        assert isinstance(lint_source("t.ipynb", mangled, ALL_RULES), list)
