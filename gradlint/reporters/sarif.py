"""``sarif``: a SARIF 2.1.0 log (GitHub code scanning, IDE viewers).

One run; ``tool.driver.rules`` lists every enabled rule (plus GL000 when it
occurs) with its docs; each result has ``ruleId``, ``ruleIndex``, ``level``
(always ``error``), ``message`` and one physical location whose URI is relative
to ``%SRCROOT%`` (the working directory, declared in ``originalUriBaseIds``)
when the file lies below it, else an absolute ``file://`` URI.
"""

from __future__ import annotations

import json as _json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gradlint import __version__
from gradlint.reporters.context import ReportContext, file_rows, rule_url, severity
from gradlint.static.diagnostic import GL000, Diagnostic

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def _rule_entry(code: str, name: str, summary: str, docs: str, level: str = "error") -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": code,
        "name": name,
        "shortDescription": {"text": summary},
        "fullDescription": {"text": docs or summary},
        "help": {"text": docs or summary, "markdown": docs or summary},
        "defaultConfiguration": {"level": level},
    }
    url = rule_url(code)
    if url:
        entry["helpUri"] = url
    return entry


def _artifact(filename: str, ctx: ReportContext) -> dict[str, Any]:
    if filename == "-":
        return {"uri": "stdin"}
    shown = ctx.display_path(filename)
    if not os.path.isabs(shown):
        return {"uri": Path(shown).as_posix(), "uriBaseId": "%SRCROOT%"}
    return {"uri": Path(shown).as_uri()}


def render(diagnostics: Sequence[Diagnostic], ctx: ReportContext) -> str:
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    for r in ctx.rules:
        index[r.code] = len(rules)
        rules.append(_rule_entry(r.code, r.name, r.summary(), r.docs(), severity(r.code, ctx.rules)))
    for d in diagnostics:
        if d.code not in index:
            index[d.code] = len(rules)
            if d.code == GL000:
                rules.append(_rule_entry(GL000, "parse-error", "The file could not be analysed.", ""))
            else:
                rules.append(_rule_entry(d.code, d.rule_name or d.code, d.message, ""))
    results = []
    for d in diagnostics:
        region = {
            "startLine": d.location.row,
            "startColumn": d.location.column,
            "endLine": d.end_location.row,
            "endColumn": d.end_location.column,
        }
        text = d.message
        if d.cell is not None:
            # The region is in the .ipynb file (its lines holding the cell's source);
            # the cell position goes in the message and in properties.
            start, end = file_rows(d)
            region = {"startLine": start, "endLine": end}
            text = f"cell {d.cell}, line {d.location.row}: {d.message}"
        result: dict[str, Any] = {
            "ruleId": d.code,
            "ruleIndex": index[d.code],
            "level": severity(d.code, ctx.rules),
            "message": {"text": text},
            "locations": [
                {"physicalLocation": {"artifactLocation": _artifact(d.filename, ctx), "region": region}}
            ],
        }
        if d.cell is not None:
            result["properties"] = {
                "cell": d.cell,
                "cellRow": d.location.row,
                "cellColumn": d.location.column,
                "cellEndRow": d.end_location.row,
                "cellEndColumn": d.end_location.column,
            }
        results.append(result)
    log = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "gradlint",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "rules": rules,
                    }
                },
                "originalUriBaseIds": {"%SRCROOT%": {"uri": Path(ctx.cwd).as_uri() + "/"}},
                "results": results,
            }
        ],
    }
    return _json.dumps(log, indent=2) + "\n"
