"""``rdjson``: reviewdog's Diagnostic Format (``reviewdog -f=rdjson``), as ruff writes it.

    {"source": {"name": "gradlint", "url": ...}, "severity": "ERROR",
     "diagnostics": [{"message", "severity", "location": {"path", "range": {"start", "end"}},
                      "code": {"value", "url"}, "suggestions": [{"range", "text"}]}]}

Lines and columns are 1-based; columns count UTF-8 bytes, as the format asks
(gradlint's own columns count characters).  ``suggestions`` hold the fix's
edits when ``--fix`` would apply it (safe fixes; unsafe ones with
``--unsafe-fixes``), which reviewdog can post as suggested changes.  For a
notebook the range is the lines of the .ipynb file that hold the cell's code
(line-wise, no columns) and the message names the cell; its fixes, in cell
coordinates, are not offered.
"""

from __future__ import annotations

import json as _json
from collections.abc import Sequence
from typing import Any

from gradlint.reporters.context import ReportContext, file_rows, rule_url, severity
from gradlint.static.diagnostic import Diagnostic, Location

SOURCE = {"name": "gradlint", "url": "https://github.com/gradlint/gradlint"}


def _position(loc: Location, lines: list[str] | None) -> dict[str, int]:
    column = loc.column
    if lines is not None and 1 <= loc.row <= len(lines):
        column = len(lines[loc.row - 1][: max(loc.column - 1, 0)].encode("utf-8", "surrogatepass")) + 1
    return {"line": loc.row, "column": column}


def _range(start: Location, end: Location, lines: list[str] | None) -> dict[str, Any]:
    return {"start": _position(start, lines), "end": _position(end, lines)}


def _one(d: Diagnostic, ctx: ReportContext) -> dict[str, Any]:
    lines = ctx.source_lines(d.filename)
    if d.cell is None:
        where = _range(d.location, d.end_location, lines)
        message = d.message
    else:
        first, last = file_rows(d)
        where = {"start": {"line": first}, "end": {"line": last}}
        message = f"cell {d.cell}:{d.location.row}:{d.location.column}: {d.message}"
    out: dict[str, Any] = {
        "message": message,
        "severity": severity(d.code, ctx.rules).upper(),
        "location": {"path": ctx.display_path(d.filename), "range": where},
        "code": {"value": d.code},
    }
    url = rule_url(d.code)
    if url:
        out["code"]["url"] = url
    if d.fix is not None and d.cell is None and ctx.fix_available(d.fix):
        out["suggestions"] = [
            {"range": _range(e.location, e.end_location, lines), "text": e.content} for e in d.fix.edits
        ]
    return out


def render(diagnostics: Sequence[Diagnostic], ctx: ReportContext) -> str:
    doc = {
        "source": SOURCE,
        "severity": "ERROR"
        if any(severity(d.code, ctx.rules) == "error" for d in diagnostics)
        else "WARNING",
        "diagnostics": [_one(d, ctx) for d in diagnostics],
    }
    return _json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
