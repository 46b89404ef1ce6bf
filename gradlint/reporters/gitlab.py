"""``gitlab``: GitLab Code Quality JSON (the ``codequality`` report artifact).

An array of issues, each with ``description``, ``check_name`` (the code),
``fingerprint``, ``severity`` and ``location`` {``path``, ``lines``: {``begin``,
``end``}}.  Paths are relative to ``$CI_PROJECT_DIR`` when it is set (GitLab
resolves them against the repository root), else to the working directory.

The fingerprint is what GitLab uses to tell new findings from old ones in a
merge request, so it hashes the path, the code, the message and the text of
the reported line, not the line number: a finding does not look new because
code above it moved.  Identical findings in one file get an occurrence
counter so each fingerprint stays unique.
"""

from __future__ import annotations

import hashlib
import json as _json
import os
from collections.abc import Sequence
from pathlib import PurePath
from typing import Any

from gradlint.reporters.context import ReportContext, file_rows, severity
from gradlint.static.diagnostic import Diagnostic


def _path(filename: str, ctx: ReportContext) -> str:
    base = os.environ.get("CI_PROJECT_DIR")
    if base and os.path.isabs(filename):
        rel = os.path.relpath(filename, base)
        if not rel.startswith(os.pardir):
            return PurePath(rel).as_posix()
    return PurePath(ctx.display_path(filename)).as_posix()


def _line_text(d: Diagnostic, ctx: ReportContext) -> str:
    lines = ctx.lines_of(d)
    if lines and 0 < d.location.row <= len(lines):
        return lines[d.location.row - 1].strip()
    return ""


def _cell_note(d: Diagnostic) -> str:
    return "" if d.cell is None else f"cell {d.cell}, line {d.location.row}: "


def render(diagnostics: Sequence[Diagnostic], ctx: ReportContext) -> str:
    issues: list[dict[str, Any]] = []
    seen: dict[tuple[str, ...], int] = {}
    for d in diagnostics:
        path = _path(d.filename, ctx)
        key = (path, d.code, d.message, _line_text(d, ctx))
        n = seen.get(key, 0)
        seen[key] = n + 1
        fingerprint = hashlib.sha256("\0".join(key + (str(n),)).encode("utf-8", "surrogatepass")).hexdigest()
        issues.append(
            {
                "description": f"{d.code}: {_cell_note(d)}{d.message}",
                "check_name": d.code,
                "fingerprint": fingerprint,
                "severity": "major" if severity(d.code, ctx.rules) == "error" else "minor",
                "location": {
                    "path": path,
                    "lines": dict(zip(("begin", "end"), file_rows(d))),
                },
            }
        )
    return _json.dumps(issues, indent=2, ensure_ascii=False) + "\n"
