"""`gradlint rule`."""

import json


def test_rule_docs(run):
    r = run("rule", "GL901")
    assert r.exit_code == 0
    out = r.stdout
    assert out.startswith("# GL901: test-backward\n")
    assert "Fix: safe\n" in out and "Default: on\n" in out
    for section in (
        "## What it does",
        "## Why is this bad?",
        "## Example",
        "## Use instead",
        "## Fix safety",
    ):
        assert section in out


def test_rule_by_name_lowercase_code_and_off_by_default(run):
    assert run("rule", "test-print").stdout.startswith("# GL902: test-print")
    r = run("rule", "gl950")
    assert "Default: off" in r.stdout and "Fix: none" in r.stdout
    assert "Fix: unsafe" in run("rule", "GL902").stdout


def test_rule_gl000(run):
    r = run("rule", "GL000")
    assert r.exit_code == 0 and "could not analyse" in r.stdout


def test_unknown_rule_exits_2(run):
    r = run("rule", "GL999")
    assert (
        r.exit_code == 2 and r.stderr == "gradlint: error: unknown rule 'GL999' (see `gradlint rule --all`)\n"
    )
    assert run("rule").exit_code == 2
    assert run("rule", "GL901", "--all").exit_code == 2


def test_rule_all_text(run):
    r = run("rule", "--all")
    lines = r.stdout.splitlines()
    assert lines[0].startswith("GL901  test-backward") and "[*]" in lines[0]
    assert "Test rule: flags every `.backward()` call." in lines[0]
    assert "[~]" in lines[1]
    assert "(off by default)" in lines[2]


def test_rule_all_json(run, test_registry):
    data = json.loads(run("rule", "--all", "--output-format", "json").stdout)
    assert [d["code"] for d in data] == ["GL901", "GL902", "GL950"]
    assert set(data[0]) == {"code", "name", "message", "summary", "fix", "default_enabled", "docs"}
    assert data[0]["fix"] == "safe" and data[1]["fix"] == "unsafe" and data[2]["fix"] == "none"
    assert data[2]["default_enabled"] is False
    assert data[0]["summary"] == test_registry[0].summary()
    one = json.loads(run("rule", "GL902", "--output-format", "json").stdout)
    assert one == data[1]
