"""--fix/--unsafe-fixes/--diff/--fix-only/--show-fixes wired to the fixer API.

Uses a stand-in fixer module with the agreed API (``fake_fixer``), so the CLI's
semantics are tested whether or not ``gradlint.static.fixer`` exists yet; the
last tests run against the real fixer when it is there.
"""

import sys

import pytest
from test_check import BACKWARD, write

SRC = BACKWARD + "print(1)\n"


def test_fix_flags_without_fixer_module(project, run, monkeypatch):
    monkeypatch.setitem(sys.modules, "gradlint.static.fixer", None)  # import fails
    import gradlint.static

    monkeypatch.delattr(gradlint.static, "fixer", raising=False)
    write(project, "a.py", SRC)
    for flag in ("--fix", "--diff", "--fix-only"):
        r = run(flag, "--no-cache", ".")
        assert r.exit_code == 2 and r.stderr == "gradlint: error: fixes are not available yet\n"
    assert (project / "a.py").read_text() == SRC


def test_fix_applies_safe_fixes_and_reports_rest(project, run, fake_fixer):
    a = write(project, "a.py", SRC)
    r = run("--fix", "--no-cache", "--output-format", "concise", ".")
    assert a.read_text() == SRC.replace("loss.backward()", "loss.backward_checked()")
    assert r.exit_code == 1  # the print call remains
    assert "a.py:5:1: GL902" in r.stdout and "GL901" not in r.stdout
    assert "Found 2 errors (1 fixed, 1 remaining)." in r.stdout


def test_unsafe_fixes(project, run, fake_fixer):
    a = write(project, "a.py", SRC)
    r = run("--fix", "--unsafe-fixes", "--no-cache", ".")
    assert a.read_text() == SRC.replace("loss.backward()", "loss.backward_checked()").replace(
        "print(1)", "log(1)"
    )
    assert r.exit_code == 0 and "Found 2 errors (2 fixed, 0 remaining)." in r.stdout
    assert fake_fixer.CALLS[0]["unsafe"] is True
    # The fixer re-lints with the file's effective rules.
    assert [r.code for r in fake_fixer.CALLS[0]["rules"]] == ["GL901", "GL902"]


def test_diff_writes_nothing(project, run, fake_fixer):
    a = write(project, "a.py", SRC)
    r = run("--diff", "--no-cache", ".")
    assert a.read_text() == SRC
    assert r.exit_code == 1
    assert "-    loss.backward()" in r.stdout and "+    loss.backward_checked()" in r.stdout
    assert "a/a.py" in r.stdout and "Would fix 1 error." in r.stderr
    assert all(c["write"] is False for c in fake_fixer.CALLS)
    write(project, "a.py", "print(1)\n")
    r = run("--diff", "--no-cache", ".")  # only an unsafe fix: no diff
    assert r.exit_code == 0 and r.stdout == ""


def test_fix_only_reports_counts(project, run, fake_fixer):
    a = write(project, "a.py", SRC)
    r = run("--fix-only", "--no-cache", ".")
    assert r.exit_code == 0 and r.stdout == "Fixed 1 error.\n"
    assert "backward_checked" in a.read_text()
    r = run("--fix-only", "--no-cache", ".")
    assert r.exit_code == 0 and r.stdout == "No errors fixed.\n"
    write(project, "b.py", BACKWARD)
    r = run("--fix-only", "--exit-non-zero-on-fix", "--no-cache", ".")
    assert r.exit_code == 1


def test_show_fixes(project, run, fake_fixer):
    write(project, "a.py", SRC + "x.backward()\n")
    r = run("--fix", "--show-fixes", "--no-cache", "--output-format", "concise", ".")
    assert "Fixed 2 errors:\n- a.py:\n    2 × GL901 (test-backward)\n" in r.stdout
    write(project, "a.py", SRC)
    r = run("--fix-only", "--show-fixes", "--no-cache", ".")
    assert r.stdout == "Fixed 1 error:\n- a.py:\n    1 × GL901 (test-backward)\nFixed 1 error.\n"


def test_fix_with_cache_then_plain_run_sees_fixed_file(project, run, fake_fixer):
    write(project, "a.py", BACKWARD)
    assert run("--fix", ".").exit_code == 0
    r = run("--output-format", "concise", ".")
    assert r.exit_code == 0 and "GL901" not in r.stdout


def test_fix_stdin_prints_fixed_source(project, run, fake_fixer):
    r = run("-", "--fix", input=SRC)
    assert r.stdout == SRC.replace("loss.backward()", "loss.backward_checked()")
    assert "GL902" in r.stderr and r.exit_code == 1
    r = run("-", "--diff", input=SRC)
    assert r.exit_code == 1 and "+    loss.backward_checked()" in r.stdout


def test_real_fixer_end_to_end(project, run):
    pytest.importorskip("gradlint.static.fixer")
    a = write(project, "a.py", SRC + "l2.backward()\n")
    r = run("--diff", "--no-cache", ".")
    assert (
        r.exit_code == 1
        and "+    loss.backward_checked()" in r.stdout
        and a.read_text() == SRC + "l2.backward()\n"
    )
    r = run("--fix", "--no-cache", "--output-format", "concise", ".")
    assert (
        a.read_text() == SRC.replace("loss.backward()", "loss.backward_checked()") + "l2.backward_checked()\n"
    )
    assert r.exit_code == 1 and "a.py:5:1: GL902" in r.stdout
    assert "Found 3 errors (2 fixed, 1 remaining)." in r.stdout
    r = run("--fix", "--unsafe-fixes", "--no-cache", "--output-format", "concise", ".")
    assert "log(1)" in a.read_text() and r.exit_code == 0


def test_real_fixer_stdin(project, run):
    pytest.importorskip("gradlint.static.fixer")
    r = run("-", "--fix", input=SRC)
    assert r.stdout == SRC.replace("loss.backward()", "loss.backward_checked()")
    assert "GL902" in r.stderr and r.exit_code == 1
