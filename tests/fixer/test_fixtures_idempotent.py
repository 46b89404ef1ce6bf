"""Every fixture, every rule, unsafe fixes too: fixing twice changes nothing the second time.

The rule authors own idempotence; this test holds every rule that exists to it,
over every file under ``fixtures/rules/`` (new rules and fixtures are picked up
automatically).
"""

from __future__ import annotations

from pathlib import Path

import libcst as cst
import pytest

from gradlint.rules import ALL_RULES
from gradlint.static.engine import decode_source, lint_source
from gradlint.static.fixer import _encoding_of_text, fix_text

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = (
    sorted((ROOT / "fixtures" / "rules").rglob("*.py")) if (ROOT / "fixtures" / "rules").is_dir() else []
)


def _fix_once(name: str, text: str):
    data = text.encode(_encoding_of_text(text))
    diags = lint_source(name, data, ALL_RULES)
    return fix_text(text, diags, unsafe=True, filename=name, rules=ALL_RULES)


@pytest.mark.parametrize("path", FIXTURES, ids=[str(p.relative_to(ROOT)) for p in FIXTURES])
def test_fix_is_idempotent_and_parses(path: Path):
    name = str(path.relative_to(ROOT))
    text, err = decode_source(path.read_bytes(), name)
    assert err is None, err.message
    once, applied, errors = _fix_once(name, text)
    assert errors == [], errors
    if not applied:
        assert once == text
        return  # nothing applied: a second pass would see the same input
    cst.parse_module(once)
    compile(once, name, "exec", dont_inherit=True)
    twice, applied2, errors2 = _fix_once(name, once)
    assert errors2 == [], errors2
    assert applied2 == [], [
        f"{d.code} at {d.location.row}:{d.location.column}: {d.fix.message}" for d in applied2
    ]
    assert twice == once
