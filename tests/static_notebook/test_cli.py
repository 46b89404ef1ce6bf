"""Notebooks through `gradlint check`: discovery, positions in every format, cache, integrations."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET

import pytest
from nbhelpers import code, md, mtime, write_nb

SETUP = (
    "import torch\nmodel = torch.nn.Linear(2, 1)\noptimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
)
TRAIN = "for x, y in loader:\n    loss = model(x).sum()\n    loss.backward()\n    optimizer.step()\n"
CELLS = [md("# t"), code(SETUP), md("loop"), code("loader = []\n" + TRAIN)]


def test_folder_walk_finds_notebooks_and_skips_checkpoints(project, run):
    write_nb(project, "nbs/train.ipynb", CELLS)
    write_nb(project, "nbs/.ipynb_checkpoints/train-checkpoint.ipynb", CELLS)
    r = run("check", "--no-cache", "--output-format", "concise", ".")
    assert r.exit_code == 1
    assert r.stdout.splitlines()[0].startswith("nbs/train.ipynb:cell 4:5:5: GL006 ")
    assert "checkpoint" not in r.stdout


def test_include_setting_restricts_and_extend_include_adds(project, run):
    write_nb(project, "a.ipynb", CELLS)
    (project / "b.py").write_text(SETUP + "loader = []\n" + TRAIN)
    (project / "c.pyw").write_text(SETUP + "loader = []\n" + TRAIN)
    (project / "pyproject.toml").write_text('[tool.gradlint]\ninclude = ["*.py"]\n')
    r = run("check", "--no-cache", "--output-format", "concise", ".")
    assert "b.py:" in r.stdout and "a.ipynb" not in r.stdout and "c.pyw" not in r.stdout
    (project / "pyproject.toml").write_text('[tool.gradlint]\nextend-include = ["*.pyw"]\n')
    r = run("check", "--no-cache", "--output-format", "concise", ".")
    assert all(n in r.stdout for n in ("a.ipynb:cell 4", "b.py:", "c.pyw:"))


def test_bad_include_value_is_a_config_error(project, run):
    (project / "pyproject.toml").write_text('[tool.gradlint]\ninclude = "*.py"\n')
    r = run("check", "--no-cache", ".")
    assert r.exit_code == 2 and "include" in r.output and "list of strings" in r.output


def test_full_format_shows_the_cell_lines(project, run):
    write_nb(project, "train.ipynb", CELLS)
    r = run("check", "--no-cache", "train.ipynb")
    assert "train.ipynb:cell 4:5:5: GL006" in r.stdout
    assert "5 |     optimizer.step()" in r.stdout
    assert "4 |     loss.backward()" in r.stdout


def test_json_has_ruffs_cell_field_and_rows_within_the_cell(project, run):
    write_nb(project, "train.ipynb", CELLS)
    (project / "plain.py").write_text(SETUP + "loader = []\n" + TRAIN)
    r = run("check", "--no-cache", "--output-format", "json", ".")
    by_name = {os.path.basename(d["filename"]): d for d in json.loads(r.stdout)}
    nb, py = by_name["train.ipynb"], by_name["plain.py"]
    assert nb["cell"] == 4 and nb["location"] == {"row": 5, "column": 5} and nb["noqa_row"] == 5
    assert py["cell"] is None and py["location"] == {"row": 8, "column": 5}


def test_file_annotating_formats_point_at_the_ipynb_line(project, run):
    p = write_nb(project, "train.ipynb", CELLS)
    line = next(i for i, t in enumerate(p.read_text().splitlines(), 1) if '"    optimizer.step()' in t)
    gh = run("check", "--no-cache", "--output-format", "github", "train.ipynb").stdout
    assert f"file=train.ipynb,line={line},endLine={line}::train.ipynb:cell 4:5:5: GL006" in gh
    sarif = json.loads(run("check", "--no-cache", "--output-format", "sarif", "train.ipynb").stdout)
    res = sarif["runs"][0]["results"][0]
    assert res["locations"][0]["physicalLocation"]["region"] == {"startLine": line, "endLine": line}
    assert res["properties"]["cell"] == 4 and res["message"]["text"].startswith("cell 4, line 5: ")
    gl = json.loads(run("check", "--no-cache", "--output-format", "gitlab", "train.ipynb").stdout)
    assert gl[0]["location"]["lines"] == {"begin": line, "end": line}
    assert gl[0]["description"].startswith("GL006: cell 4, line 5: ")
    junit = ET.fromstring(run("check", "--no-cache", "--output-format", "junit", "train.ipynb").stdout)
    case = junit.find(".//testcase")
    assert case.get("line") == str(line) and "train.ipynb:cell 4:5:5: GL006" in case.find("failure").text
    pylint = run("check", "--no-cache", "--output-format", "pylint", "train.ipynb").stdout
    assert pylint.startswith(f"train.ipynb:{line}: [GL006(") and "cell 4, line 5: " in pylint


def test_cache_answers_an_unchanged_notebook_and_notices_an_edit(project, run, monkeypatch):
    p = write_nb(project, "train.ipynb", CELLS)
    os.utime(p, ns=(mtime(p) - 10**10, mtime(p) - 10**10))  # older than the cache's 2 s window
    first = run("check", "--output-format", "json", "train.ipynb").stdout
    from gradlint.static import engine, notebook

    # Workers are forked processes (also with -j1), so calls are counted in a file.
    log = project / "lint_calls.log"
    real = notebook.lint_notebook

    def counted(*a, **k):
        with open(log, "a") as f:
            f.write("1")
        return real(*a, **k)

    def calls() -> int:
        return len(log.read_text()) if log.exists() else 0

    monkeypatch.setattr(engine, "lint_notebook", counted)
    second = run("check", "--output-format", "json", "train.ipynb").stdout
    assert second == first and calls() == 0
    write_nb(
        project,
        "train.ipynb",
        [
            code(SETUP),
            code("loader = []\n" + TRAIN.replace("    loss =", "    optimizer.zero_grad()\n    loss =")),
        ],
    )
    third = run("check", "--output-format", "json", "train.ipynb").stdout
    assert calls() == 1 and json.loads(third) == []


def test_stdin_with_a_notebook_name(project):
    from click.testing import CliRunner
    from nbhelpers import nb_json

    from gradlint.cli import cli

    r = CliRunner().invoke(
        cli,
        ["check", "--no-cache", "--output-format", "concise", "--stdin-filename", "x.ipynb", "-"],
        input=nb_json(CELLS),
    )
    assert r.stdout.startswith("x.ipynb:cell 4:5:5: GL006")


def test_bad_notebook_in_a_tree_is_one_gl000_and_the_run_goes_on(project, run):
    (project / "broken.ipynb").write_text('{"cells": [')
    write_nb(project, "ok.ipynb", CELLS)
    r = run("check", "--no-cache", "--output-format", "concise", ".")
    assert "Traceback" not in r.output
    assert "broken.ipynb:1:1: GL000 Notebook is not valid JSON" in r.stdout
    assert "ok.ipynb:cell 4:5:5: GL006" in r.stdout


def test_parallel_and_serial_runs_agree(project, run):
    for i in range(6):
        write_nb(project, f"n{i}.ipynb", CELLS)
    serial = run("check", "--no-cache", "-j", "1", "--output-format", "json", ".").stdout
    parallel = run("check", "--no-cache", "-j", "2", "--output-format", "json", ".").stdout
    assert serial == parallel and len(json.loads(serial)) == 6


def test_pre_commit_hooks_cover_jupyter():
    from nbhelpers import REPO

    text = (REPO / ".pre-commit-hooks.yaml").read_text()
    hooks = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("types_or:")]
    assert hooks and all("jupyter" in h and "python" in h for h in hooks)


def test_flake8_plugin_leaves_notebooks_alone():
    pytest.importorskip("flake8")
    import ast

    from gradlint.integrations.flake8 import GradlintChecker

    src = SETUP + "loader = []\n" + TRAIN
    lines = src.splitlines(keepends=True)
    assert list(GradlintChecker(ast.parse(src), "x.py", lines).run())
    assert list(GradlintChecker(ast.parse(src), "x.ipynb", lines).run()) == []
