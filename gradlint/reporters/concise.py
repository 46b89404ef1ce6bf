"""``concise``: one line per diagnostic, ``path:row:col: CODE message`` (grep/editor friendly)."""

from __future__ import annotations

from collections.abc import Sequence

from gradlint.reporters.context import ReportContext, position, summary
from gradlint.static.diagnostic import Diagnostic


def render(diagnostics: Sequence[Diagnostic], ctx: ReportContext) -> str:
    lines = [f"{ctx.display_path(d.filename)}:{position(d)}: {d.code} {d.message}" for d in diagnostics]
    body = "\n".join(lines) + "\n" if lines else ""
    return body + summary(diagnostics, ctx)
