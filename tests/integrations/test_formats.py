"""The CI/editor output formats: pylint, junit, gitlab, grouped, rdjson, json fields (renderers and CLI)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from gradlint.reporters import FORMATS, ReportContext, gitlab, grouped, junit, pylint, rdjson
from gradlint.static.diagnostic import Diagnostic, Edit, Fix, Location

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
    assert FORMATS["grouped"] is grouped.render
    assert FORMATS["rdjson"] is rdjson.render


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


# -- grouped (ruff's format) -------------------------------------------------------------


def test_grouped_header_per_file_aligned_rows_and_columns(files):
    root, a, b = files
    ctx = ReportContext(cwd=str(root))
    fix = Fix("use x", "safe", (Edit("x", Location(3, 1), Location(3, 2)),))
    out = click_unstyle(
        grouped.render(
            [
                diag(a, 3, 1, code="GL001"),
                Diagnostic(a, "GL002", "fixable", Location(12, 13), Location(12, 14), fix=fix),
                diag(b, 1, 5, code="GL003", message="m"),
            ],
            ctx,
        )
    )
    assert out.splitlines() == [
        "pkg/a.py:",
        "   3:1  GL001 `loss` leaks; detach it",
        "  12:13 GL002 [*] fixable",
        "",
        "b.py:",
        "  1:5 GL003 m",
        "",
        "Found 3 errors.",
        "[*] 1 fixable with the `--fix` option.",
    ]
    assert click_unstyle(grouped.render([], ctx)) == "All checks passed!\n"


def click_unstyle(text):
    import click

    return click.unstyle(text)


# -- rdjson (reviewdog) ------------------------------------------------------------------

_POS = {
    "type": "object",
    "properties": {"line": {"type": "integer", "minimum": 1}, "column": {"type": "integer", "minimum": 1}},
    "required": ["line"],  # a notebook's range is line-wise
    "additionalProperties": False,
}
_RANGE = {
    "type": "object",
    "properties": {"start": _POS, "end": _POS},
    "required": ["start", "end"],
    "additionalProperties": False,
}
_SEVERITY = {"enum": ["ERROR", "WARNING", "INFO"]}
# The fields reviewdog's DiagnosticResult defines (proto/rdf/reviewdog.proto), and no others.
RDJSON_SCHEMA = {
    "type": "object",
    "properties": {
        "source": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "url": {"type": "string"}},
            "required": ["name"],
            "additionalProperties": False,
        },
        "severity": _SEVERITY,
        "diagnostics": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "message": {"type": "string", "minLength": 1},
                    "severity": _SEVERITY,
                    "location": {
                        "type": "object",
                        "properties": {"path": {"type": "string", "minLength": 1}, "range": _RANGE},
                        "required": ["path", "range"],
                        "additionalProperties": False,
                    },
                    "code": {
                        "type": "object",
                        "properties": {"value": {"type": "string"}, "url": {"type": "string"}},
                        "required": ["value"],
                        "additionalProperties": False,
                    },
                    "suggestions": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"range": _RANGE, "text": {"type": "string"}},
                            "required": ["range", "text"],
                            "additionalProperties": False,
                        },
                    },
                },
                "required": ["message", "location", "code"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["source", "diagnostics"],
    "additionalProperties": False,
}


def test_rdjson_fields_utf8_byte_columns_and_suggestions(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("x = 1\ny = 'é𐐀'; bad_call()\n", encoding="utf-8")
    safe = Fix("use good_call", "safe", (Edit("good_call", Location(2, 11), Location(2, 19)),))
    unsafe = Fix("drop", "unsafe", (Edit("", Location(1, 1), Location(2, 1)),))
    diags = [
        Diagnostic(str(src), "GL001", "one", Location(1, 1), Location(1, 6), fix=unsafe),
        Diagnostic(str(src), "GL002", "two", Location(2, 11), Location(2, 21), fix=safe),
    ]
    doc = json.loads(rdjson.render(diags, ReportContext(cwd=str(tmp_path))))
    jsonschema.validate(doc, RDJSON_SCHEMA)
    assert doc["source"]["name"] == "gradlint"
    first, second = doc["diagnostics"]
    assert first["location"] == {
        "path": "m.py",
        "range": {"start": {"line": 1, "column": 1}, "end": {"line": 1, "column": 6}},
    }
    assert "suggestions" not in first  # an unsafe fix is not offered without --unsafe-fixes
    # 'é' is 2 bytes and '𐐀' 4 bytes in UTF-8: character column 11 (`bad_call`) is byte column 15.
    assert second["location"]["range"] == {
        "start": {"line": 2, "column": 15},
        "end": {"line": 2, "column": 25},
    }
    assert second["suggestions"] == [
        {"range": {"start": {"line": 2, "column": 15}, "end": {"line": 2, "column": 23}}, "text": "good_call"}
    ]
    assert second["code"] == {
        "value": "GL002",
        "url": "https://github.com/gradlint/gradlint/blob/main/docs/rules/GL002.md",
    }
    unsafe_ctx = ReportContext(cwd=str(tmp_path), unsafe_fixes=True)
    assert "suggestions" in json.loads(rdjson.render(diags, unsafe_ctx))["diagnostics"][0]
    empty = json.loads(rdjson.render([], ReportContext(cwd=str(tmp_path))))
    jsonschema.validate(empty, RDJSON_SCHEMA)
    assert empty["diagnostics"] == []


# -- json: name, severity, url -----------------------------------------------------------


def test_every_rule_url_names_an_existing_docs_page():
    import gradlint.rules as registry
    from gradlint.reporters import rule_url
    from gradlint.reporters.context import DOCS_URL

    repo = HERE.parents[1]
    for rule in registry.ALL_RULES:
        url = rule_url(rule.code)
        assert url == f"{DOCS_URL}rules/{rule.code}.md"
        assert (repo / "docs" / url[len(DOCS_URL) :]).is_file(), url
    page, _, anchor = rule_url("GL000")[len(DOCS_URL) :].partition("#")
    text = (repo / "docs" / page).read_text()
    assert "## Rule selection" in text and anchor == "rule-selection" and "GL000" in text


def _cli(tmp_path, monkeypatch, *args, files=None):
    from gradlint.cli import cli

    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.setenv("GRADLINT_EXTRA_RULES", "toyrules")
    monkeypatch.delenv("GRADLINT_OUTPUT_FORMAT", raising=False)
    (tmp_path / "pyproject.toml").write_text("[tool.gradlint]\nselect = ['GL971', 'GL972']\n")
    for name, text in (files or {}).items():
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    return CliRunner().invoke(cli, ["check", "--no-cache", *args], catch_exceptions=False)


def test_json_name_severity_url(tmp_path, monkeypatch):
    r = _cli(
        tmp_path,
        monkeypatch,
        "--output-format",
        "json",
        ".",
        files={"m.py": "y = bad_call()\npedantic = 1\n", "broken.py": "def f(:\n    bad_call()\n"},
    )
    by_code = {d["code"]: d for d in json.loads(r.stdout)}
    assert by_code["GL971"]["name"] == "toy-bad-call" and by_code["GL971"]["severity"] == "error"
    # Off-by-default rules are the judgement calls: a warning.
    assert by_code["GL972"]["name"] == "toy-pedantic" and by_code["GL972"]["severity"] == "warning"
    assert by_code["GL971"]["url"] == "https://github.com/gradlint/gradlint/blob/main/docs/rules/GL971.md"
    assert by_code["GL000"]["severity"] == "error" and by_code["GL000"]["url"].endswith("#rule-selection")
    assert by_code["GL000"]["name"]
    lines = _cli(tmp_path, monkeypatch, "--output-format", "json-lines", "m.py").stdout.splitlines()
    assert {json.loads(line)["name"] for line in lines} == {"toy-bad-call", "toy-pedantic"}


@pytest.mark.parametrize("fmt", ["grouped", "rdjson"])
def test_cli_new_formats(fmt, tmp_path, monkeypatch):
    r = _cli(tmp_path, monkeypatch, "--output-format", fmt, "m.py", files={"m.py": "x = 1\ny = bad_call()\n"})
    assert r.exit_code == 1
    if fmt == "grouped":
        assert click_unstyle(r.stdout).startswith("m.py:\n  2:5 GL971 [*] `bad_call()` is wrong")
    else:
        doc = json.loads(r.stdout)
        jsonschema.validate(doc, RDJSON_SCHEMA)
        (d,) = doc["diagnostics"]
        assert d["location"]["range"]["start"] == {"line": 2, "column": 5}
        assert d["suggestions"][0]["text"] == "good_call"


def test_grouped_and_rdjson_for_a_notebook(tmp_path, monkeypatch):
    import shutil

    nb = HERE.parents[1] / "fixtures" / "notebooks" / "buggy_rnn.ipynb"
    shutil.copy(nb, tmp_path / "nb.ipynb")
    lines = (tmp_path / "nb.ipynb").read_text().splitlines()
    for fmt in ("grouped", "rdjson"):
        from gradlint.cli import cli

        monkeypatch.delenv("GRADLINT_OUTPUT_FORMAT", raising=False)
        monkeypatch.chdir(tmp_path)
        r = CliRunner().invoke(cli, ["check", "--isolated", "--no-cache", "--output-format", fmt, "nb.ipynb"])
        assert r.exit_code == 1, r.output
        if fmt == "grouped":
            assert "\n  cell 4:4:19 GL008 " in click_unstyle(r.stdout)
            continue
        doc = json.loads(r.stdout)
        jsonschema.validate(doc, RDJSON_SCHEMA)
        first = doc["diagnostics"][0]
        assert first["message"].startswith("cell 4:4:19: ")
        line = first["location"]["range"]["start"]["line"]
        # The range is the .ipynb line that holds the flagged code.
        assert "hidden" in lines[line - 1]
        assert all("suggestions" not in d for d in doc["diagnostics"])
