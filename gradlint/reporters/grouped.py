"""``grouped``: ruff's grouped format, the diagnostics under a header line per file.

    src/train.py:
       4:9  GL001 [*] `loss` is backpropagated inside a loop ...
      12:13 GL006 `optimizer.step()` ...

    Found 2 errors.

Rows are right-aligned and columns left-aligned within a file, as in ruff; a
notebook's rows read ``cell N:row``.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from gradlint.reporters.context import ReportContext, summary
from gradlint.static.diagnostic import Diagnostic


def _row(d: Diagnostic) -> str:
    return str(d.location.row) if d.cell is None else f"cell {d.cell}:{d.location.row}"


def render(diagnostics: Sequence[Diagnostic], ctx: ReportContext) -> str:
    by_file: dict[str, list[Diagnostic]] = {}
    for d in diagnostics:
        by_file.setdefault(d.filename, []).append(d)
    out: list[str] = []
    for filename, diags in by_file.items():
        out.append(f"{click.style(ctx.display_path(filename), bold=True, underline=True)}:")
        row_w = max(len(_row(d)) for d in diags)
        col_w = max(len(str(d.location.column)) for d in diags)
        for d in diags:
            row, col = _row(d), str(d.location.column)
            marker = "[*] " if ctx.fix_available(d.fix) else ""
            out.append(
                f"  {' ' * (row_w - len(row))}{row}{click.style(':', fg='cyan')}{col}{' ' * (col_w - len(col))} "
                f"{click.style(d.code, fg='red', bold=True)} {marker}{d.message}"
            )
        out.append("")
    body = "\n".join(out) + "\n" if out else ""
    return body + summary(diagnostics, ctx)
