"""``json``: an array of objects with ruff's field names, so tools that read ruff's JSON read ours.

Fields: ``cell`` (notebooks: the 1-based cell, and every row is within it; else null), ``code``,
``end_location`` {``row``, ``column``}, ``filename`` (absolute), ``fix``
({``applicability``, ``message``, ``edits``: [{``content``, ``location``,
``end_location``}]} or null), ``location``, ``message``, ``noqa_row``, ``url``
(the rule's page, docs/rules/GLnnn.md on GitHub), and gradlint's own ``name``
(the rule name, as ruff's JSON has since 0.5) and ``severity`` (``error`` or
``warning``).  Rows and columns are 1-based.
"""

from __future__ import annotations

import json as _json
import os
from collections.abc import Sequence
from typing import Any

from gradlint.reporters.context import ReportContext, rule_url, severity
from gradlint.static.diagnostic import Diagnostic, Location


def _loc(loc: Location) -> dict[str, int]:
    return {"row": loc.row, "column": loc.column}


def to_ruff_dict(d: Diagnostic, ctx: ReportContext) -> dict[str, Any]:
    fix = None
    if d.fix is not None:
        fix = {
            "applicability": d.fix.applicability,
            "message": d.fix.message,
            "edits": [
                {"content": e.content, "location": _loc(e.location), "end_location": _loc(e.end_location)}
                for e in d.fix.edits
            ],
        }
    filename = d.filename if d.filename == "-" else os.path.join(ctx.cwd, d.filename)
    return {
        "cell": d.cell,
        "code": d.code,
        "end_location": _loc(d.end_location),
        "filename": filename,
        "fix": fix,
        "location": _loc(d.location),
        "message": d.message,
        "name": ctx.rule_name(d) or None,
        "noqa_row": d.noqa_row,
        "severity": severity(d.code, ctx.rules),
        "url": rule_url(d.code),
    }


def render(diagnostics: Sequence[Diagnostic], ctx: ReportContext) -> str:
    return _json.dumps([to_ruff_dict(d, ctx) for d in diagnostics], indent=2, sort_keys=True) + "\n"
