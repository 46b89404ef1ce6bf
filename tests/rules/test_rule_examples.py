"""Every rule's own VALID/INVALID snippets, and every fixture under fixtures/rules/.

Fixture files carry their expectations inline (``# error: GL001`` on the line of
each expected report); a fixture without markers must be silent for its rule.
"""

from pathlib import Path

import pytest

from gradlint.rules import ALL_RULES
from gradlint.static.testing import expected_markers, found_markers, lint_snippet

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "rules"


def _cases(attr):
    for rule in ALL_RULES:
        for i, snippet in enumerate(getattr(rule, attr)):
            yield pytest.param(rule, snippet, id=f"{rule.code}-{attr.lower()}-{i}")


@pytest.mark.parametrize("rule,snippet", list(_cases("VALID")))
def test_valid_snippets_are_silent(rule, snippet):
    _, diags = lint_snippet(snippet, [rule])
    assert [d for d in diags if d.code == rule.code] == []


@pytest.mark.parametrize("rule,snippet", list(_cases("INVALID")))
def test_invalid_snippets_report_marked_lines(rule, snippet):
    text, diags = lint_snippet(snippet, [rule])
    expected = expected_markers(text, rule.code)
    assert expected, "an INVALID snippet must mark at least one line with '# error'"
    assert found_markers(d for d in diags if d.code == rule.code) == {
        e for e in expected if e[1] == rule.code
    }


def _with_replacement():
    for rule in ALL_RULES:
        for i, snippet in enumerate(rule.INVALID):
            if getattr(snippet, "expected_replacement", None) is not None:
                yield pytest.param(rule, snippet, id=f"{rule.code}-invalid-{i}")


@pytest.mark.parametrize("rule,snippet", list(_with_replacement()))
def test_invalid_snippets_fix_to_the_stated_code(rule, snippet):
    import textwrap

    from gradlint.static.fixer import fix_text

    text, diags = lint_snippet(snippet, [rule])
    new, applied, errors = fix_text(text, diags, unsafe=True, rules=[rule])
    assert not errors
    assert applied
    assert new == textwrap.dedent(snippet.expected_replacement)


def test_every_rule_has_examples_and_docs():
    for rule in ALL_RULES:
        assert rule.VALID and rule.INVALID, rule.code
        docs = rule.docs()
        for section in ("## What it does", "## Why is this bad?", "## Example", "## Use instead"):
            assert section in docs, (rule.code, section)


def _fixture_files():
    if not FIXTURES.is_dir():
        return []
    return sorted(FIXTURES.glob("gl*/**/*.py"))


@pytest.mark.parametrize("path", _fixture_files(), ids=lambda p: str(p.relative_to(FIXTURES)))
def test_fixture_expectations(path):
    from gradlint.rules import RULES_BY_CODE

    code = path.relative_to(FIXTURES).parts[0].upper()
    rule = RULES_BY_CODE[code]
    text = path.read_text(encoding="utf-8")
    _, diags = lint_snippet(text, [rule], filename=str(path))
    expected = {e for e in expected_markers(text, code) if e[1] == code}
    assert found_markers(d for d in diags if d.code == code) == expected
