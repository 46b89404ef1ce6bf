"""Property: every rule fixture, fuzzed, fixes to valid code that keeps comments and newlines.

The fuzzing (``scripts/check_fixes.py``'s ``mutate``) adds a comment at the end of
every logical line and above most statements, changes the indentation unit and
the newline style: the places where statement-moving fixes used to write a
comment twice or a line ending wrong. The same check runs over a sample of real
files with ``python scripts/check_fixes.py DIR``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("check_fixes", ROOT / "scripts" / "check_fixes.py")
check_fixes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_fixes)

FIXTURES = sorted((ROOT / "fixtures" / "rules").rglob("*.py"))


def test_the_fuzzer_adds_comments_and_keeps_code_valid():
    src = "def f(xs):\n    for x in xs:\n        y = (x,\n             1)\n    return y\n"
    out = check_fixes.mutate(src, seed=1, newline="\r", indent="\t")
    assert out is not None and "\n" not in out
    text = out.replace("\r", "\n")
    compile(text, "t", "exec")
    assert "\tfor x in xs:  # m" in text and "\t\ty = (x,\n             1)  # m" in text
    assert sum(check_fixes.comments(text).values()) >= 4


@pytest.mark.skipif(not FIXTURES, reason="no fixtures")
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(FIXTURES),
    st.integers(0, 10_000),
    st.sampled_from(check_fixes.NEWLINES),
    st.sampled_from([None, "  ", "\t"]),
)
def test_fuzzed_fixture_fixes_keep_comments_newlines_and_are_stable(path, seed, newline, indent):
    fuzzed = check_fixes.mutate(path.read_text(), seed, newline, indent)
    if fuzzed is None:
        fuzzed = check_fixes.mutate(path.read_text(), seed, newline, None)
    assert fuzzed is not None
    _, problems = check_fixes.check(str(path.relative_to(ROOT)), fuzzed)
    assert problems == []


def test_the_checker_sees_a_fix_that_drops_a_statement_or_doubles_a_comment(monkeypatch):
    src = "import torch\ndef f(m, loader):\n    m.eval()\n    for x in loader:\n        y = m(x)  # out\n        print(y)\n"
    assert check_fixes.check("t.py", src)[1] == []
    real = check_fixes.fix_text

    def dropping(text, diags, **kw):
        new, applied, errors = real(text, diags, **kw)
        return new.replace("print(y)\n", "pass\n"), applied, errors

    monkeypatch.setattr(check_fixes, "fix_text", dropping)
    assert "the program changed beyond what the fixes declare" in check_fixes.check("t.py", src)[1]

    def doubling(text, diags, **kw):
        new, applied, errors = real(text, diags, **kw)
        return new.replace("# out", "# out  # out"), applied, errors

    monkeypatch.setattr(check_fixes, "fix_text", doubling)
    assert any(p.startswith("comments changed") for p in check_fixes.check("t.py", src)[1])
