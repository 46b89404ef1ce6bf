"""docs/fixes.md lists exactly the rules that have a fix, with their applicability."""

import re
from pathlib import Path

from gradlint.rules import ALL_RULES

DOC = Path(__file__).resolve().parents[2] / "docs" / "fixes.md"
_ROW = re.compile(r"^\|\s*(GL\d{3})\s*\|\s*([a-z0-9-]+)\s*\|\s*(safe|unsafe)\s*\|", re.M)


def test_fix_table_matches_the_rules():
    documented = {code: (name, kind) for code, name, kind in _ROW.findall(DOC.read_text())}
    actual = {r.code: (r.name, r.fix_applicability) for r in ALL_RULES if r.fix_applicability}
    assert documented == actual, "update the table in docs/fixes.md"
