"""Helpers for testing rules against annotated snippets and fixture files.

An expected diagnostic is marked by a trailing comment on its line:
``# error: GL001`` (or several codes, comma-separated). Lines without a marker
must stay silent.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence

from gradlint.static.engine import lint_source
from gradlint.static.rule import Rule

_MARK = re.compile(r"#\s*error(?::\s*(?P<codes>[A-Z0-9, ]+))?\s*$")


def expected_markers(text: str, default_code: str = "") -> set[tuple[int, str]]:
    out = set()
    for i, line in enumerate(text.splitlines(), 1):
        m = _MARK.search(line)
        if m:
            codes = m.group("codes")
            for code in codes.replace(" ", "").split(",") if codes else [default_code]:
                if code:
                    out.add((i, code))
    return out


def lint_snippet(code: str, rules: Sequence[type[Rule]], filename: str = "snippet.py"):
    text = textwrap.dedent(code)
    return text, lint_source(filename, text.encode("utf-8"), rules)


def found_markers(diagnostics) -> set[tuple[int, str]]:
    return {(d.location.row, d.code) for d in diagnostics}
