"""``pylint``: pylint's parseable format, ``path:line: [GL001(rule-name), ] message``.

Tools that read pylint's ``--output-format=parseable`` (editors, Jenkins'
warnings plugin, reviewdog's ``%f:%l: %m`` patterns) read this.  The empty
field after the comma is pylint's *object* (function/class), which gradlint
does not report.
"""

from __future__ import annotations

from collections.abc import Sequence

from gradlint.reporters.context import ReportContext, file_rows
from gradlint.static.diagnostic import Diagnostic


def _one_line(s: str) -> str:
    return " ".join(s.splitlines())


def render(diagnostics: Sequence[Diagnostic], ctx: ReportContext) -> str:
    out = []
    for d in diagnostics:
        name = ctx.rule_name(d)
        symbol = f"{d.code}({name})" if name else d.code
        where = "" if d.cell is None else f"cell {d.cell}, line {d.location.row}: "
        line = file_rows(d)[0]
        out.append(f"{ctx.display_path(d.filename)}:{line}: [{symbol}, ] {where}{_one_line(d.message)}\n")
    return "".join(out)
