"""`# noqa` handling, flake8/ruff compatible.

``# noqa`` on the reported line silences every code there, ``# noqa: GL001,GL003``
only those (unknown codes are ignored, not errors), and a ``# gradlint: noqa``
comment on a line of its own silences the whole file.  GL000 is never silenced
by a line comment: a file that cannot be parsed cannot be trusted to carry one.
"""

from __future__ import annotations

import re

from gradlint.static.diagnostic import GL000, Diagnostic

_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[\s,]+[A-Z]+[0-9]+)*))?", re.I)
_FILE_NOQA = re.compile(r"^\s*#\s*gradlint:\s*noqa\s*$", re.I | re.M)


def file_is_exempt(text: str) -> bool:
    return "gradlint" in text and _FILE_NOQA.search(text) is not None


def noqa_codes(line: str) -> set[str] | None:
    """None: no noqa; empty set: blanket noqa; else the listed codes."""
    if "#" not in line:
        return None
    m = _NOQA.search(line)
    if m is None:
        return None
    codes = m.group("codes")
    if not codes:
        return set()
    return {c.upper() for c in re.split(r"[\s,]+", codes) if c}


def filter_noqa(diagnostics: list[Diagnostic], text: str, *, file_level: bool = True) -> list[Diagnostic]:
    """``file_level=False``: line comments only (notebooks decide per cell)."""
    if not diagnostics:
        return diagnostics
    if file_level and file_is_exempt(text):
        return [d for d in diagnostics if d.code == GL000]
    lines = text.splitlines()
    cache: dict[int, set[str] | None] = {}
    kept = []
    for d in diagnostics:
        row = d.noqa_row
        if row is None or d.code == GL000 or not (0 < row <= len(lines)):
            kept.append(d)
            continue
        if row not in cache:
            cache[row] = noqa_codes(lines[row - 1])
        codes = cache[row]
        if codes is None or (codes and d.code not in codes):
            kept.append(d)
    return kept
