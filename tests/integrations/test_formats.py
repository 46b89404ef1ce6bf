"""The CI/editor output formats: pylint, junit, gitlab (renderers, and through the CLI)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from gradlint.reporters import FORMATS, ReportContext, gitlab, junit, pylint
from gradlint.static.diagnostic import Diagnostic, Location

HERE = Path(__file__).resolve().parent


def diag(
    filename, row, col, code="GL001", message="`loss` leaks; detach it", name="graph-leak", end_row=None
):
    return Diagnostic(
        filename, code, message, Location(row, col), Location(end_row or row, col + 4), rule_name=name
    )


@pytest.fixture
def files(tmp_path):
    a = tmp_path / "pkg" / "a.py"
    a.parent.mkdir()
    a.write_text("import torch\nx = 1\ntotal += loss\nx = 1\ntotal += loss\n")
    b = tmp_path / "b.py"
    b.write_text("y = 2\n")
    return tmp_path, str(a), str(b)


def test_formats_are_registered():
    assert FORMATS["pylint"] is pylint.render
    assert FORMATS["junit"] is junit.render
    assert FORMATS["gitlab"] is gitlab.render


# -- pylint ------------------------------------------------------------------------------


def test_pylint_lines(files):
    root, a, b = files
    ctx = ReportContext(cwd=str(root))
    out = pylint.render(
        [
            diag(a, 3, 1),
            diag(b, 1, 5, code="GL000", message="Cannot parse file:\n  detail", name="parse-error"),
        ],
        ctx,
    )
    assert out.splitlines() == [
        "pkg/a.py:3: [GL001(graph-leak), ] `loss` leaks; detach it",
        "b.py:1: [GL000(parse-error), ] Cannot parse file:   detail",
    ]
    assert pylint.render([], ctx) == ""


def test_pylint_without_rule_name_uses_the_code_alone(files):
    root, a, _ = files
    out = pylint.render([diag(a, 2, 1, name="")], ReportContext(cwd=str(root)))
    assert out == "pkg/a.py:2: [GL001, ] `loss` leaks; detach it\n"


# -- junit -------------------------------------------------------------------------------


def test_junit_one_suite_per_file_one_case_per_diagnostic(files):
    root, a, b = files
    ctx = ReportContext(cwd=str(root))
    nasty = 'bad <xml> & "quotes" \x1b[31m'
    xml = junit.render([diag(a, 3, 1), diag(a, 5, 2), diag(b, 1, 1, code="GL002", message=nasty)], ctx)
    root_el = ET.fromstring(xml.encode("utf-8"))
    assert root_el.tag == "testsuites" and root_el.get("tests") == "3" and root_el.get("failures") == "3"
    suites = root_el.findall("testsuite")
    assert [(s.get("name"), s.get("tests"), s.get("failures")) for s in suites] == [
        ("pkg/a.py", "2", "2"),
        ("b.py", "1", "1"),
    ]
    cases = suites[0].findall("testcase")
    assert [(c.get("name"), c.get("classname"), c.get("line"), c.get("column")) for c in cases] == [
        ("gradlint.GL001", "pkg/a.py", "3", "1"),
        ("gradlint.GL001", "pkg/a.py", "5", "2"),
    ]
    failure = cases[0].find("failure")
    assert failure.get("message") == "`loss` leaks; detach it" and failure.get("type") == "GL001"
    assert failure.text == "pkg/a.py:3:1: GL001 `loss` leaks; detach it"
    # Escaped markup survives; the control character XML cannot carry is replaced.
    assert suites[1].find("testcase/failure").get("message") == 'bad <xml> & "quotes" \ufffd[31m'


def test_junit_clean_run_is_one_passing_case():
    root_el = ET.fromstring(junit.render([], ReportContext()))
    assert root_el.get("tests") == "1" and root_el.get("failures") == "0"
    (case,) = root_el.iter("testcase")
    assert case.find("failure") is None


# -- gitlab ------------------------------------------------------------------------------


def test_gitlab_code_quality_fields(files, monkeypatch):
    root, a, b = files
    monkeypatch.delenv("CI_PROJECT_DIR", raising=False)
    ctx = ReportContext(cwd=str(root))
    issues = json.loads(
        gitlab.render([diag(a, 3, 1, end_row=4), diag(b, 1, 1, code="GL002", message="m")], ctx)
    )
    assert issues[0]["description"] == "GL001: `loss` leaks; detach it"
    assert issues[0]["check_name"] == "GL001" and issues[0]["severity"] == "major"
    assert issues[0]["location"] == {"path": "pkg/a.py", "lines": {"begin": 3, "end": 4}}
    assert issues[1]["location"]["path"] == "b.py"
    assert all(isinstance(i["fingerprint"], str) and len(i["fingerprint"]) >= 32 for i in issues)
    assert gitlab.render([], ctx) == "[]\n"


def test_gitlab_fingerprint_stable_unique_and_independent_of_line_number(files, tmp_path, monkeypatch):
    root, a, _ = files
    monkeypatch.delenv("CI_PROJECT_DIR", raising=False)
    ctx = ReportContext(cwd=str(root))
    # Lines 3 and 5 hold the same text and the same finding: fingerprints must still differ.
    first = json.loads(gitlab.render([diag(a, 3, 1), diag(a, 5, 1)], ctx))
    assert first[0]["fingerprint"] != first[1]["fingerprint"]
    again = json.loads(gitlab.render([diag(a, 3, 1), diag(a, 5, 1)], ReportContext(cwd=str(root))))
    assert [i["fingerprint"] for i in again] == [i["fingerprint"] for i in first]
    # Code inserted above moves the finding down two lines: same fingerprint.
    Path(a).write_text("# new\n# lines\n" + Path(a).read_text())
    moved = json.loads(gitlab.render([diag(a, 5, 1)], ReportContext(cwd=str(root))))
    assert moved[0]["fingerprint"] == first[0]["fingerprint"]
    # A different message (or code) on the same line is a different finding.
    other = json.loads(gitlab.render([diag(a, 5, 1, message="other")], ReportContext(cwd=str(root))))
    assert other[0]["fingerprint"] != first[0]["fingerprint"]


def test_gitlab_paths_relative_to_ci_project_dir(files, monkeypatch):
    root, a, _ = files
    monkeypatch.setenv("CI_PROJECT_DIR", str(root / "pkg"))
    (issue,) = json.loads(gitlab.render([diag(a, 3, 1)], ReportContext(cwd="/")))
    assert issue["location"]["path"] == "a.py"


# -- through the CLI ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["pylint", "junit", "gitlab"])
def test_cli_output_format(fmt, tmp_path, monkeypatch):
    from gradlint.cli import cli

    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.setenv("GRADLINT_EXTRA_RULES", "toyrules")
    monkeypatch.delenv("GRADLINT_OUTPUT_FORMAT", raising=False)
    monkeypatch.delenv("CI_PROJECT_DIR", raising=False)
    (tmp_path / "pyproject.toml").write_text("[tool.gradlint]\nselect = ['GL971']\n")
    (tmp_path / "m.py").write_text("x = 1\ny = bad_call()\n")
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(
        cli, ["check", "--no-cache", "--output-format", fmt, "m.py"], catch_exceptions=False
    )
    assert r.exit_code == 1
    if fmt == "pylint":
        assert r.stdout == "m.py:2: [GL971(toy-bad-call), ] `bad_call()` is wrong; call `good_call()`\n"
    elif fmt == "junit":
        (case,) = ET.fromstring(r.stdout.encode()).iter("testcase")
        assert case.get("classname") == "m.py" and case.get("line") == "2"
    else:
        (issue,) = json.loads(r.stdout)
        assert issue["check_name"] == "GL971" and issue["location"] == {
            "path": "m.py",
            "lines": {"begin": 2, "end": 2},
        }
