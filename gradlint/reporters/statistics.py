"""``--statistics``: counts per rule instead of the diagnostics themselves."""

from __future__ import annotations

import json as _json
from collections import Counter
from collections.abc import Sequence

from gradlint.reporters.context import ReportContext
from gradlint.static.diagnostic import Diagnostic


def _rows(diagnostics: Sequence[Diagnostic], ctx: ReportContext):
    counts: Counter = Counter(d.code for d in diagnostics)
    fixable: dict[str, bool] = {}
    names: dict[str, str] = {}
    for d in diagnostics:
        fixable[d.code] = fixable.get(d.code, False) or ctx.fix_available(d.fix)
        names.setdefault(d.code, ctx.rule_name(d))
    # Most frequent first, then by code (ruff's order).
    return [
        (code, names[code], n, fixable[code])
        for code, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def render_statistics(diagnostics: Sequence[Diagnostic], ctx: ReportContext, *, as_json: bool) -> str:
    rows = _rows(diagnostics, ctx)
    if as_json:
        return (
            _json.dumps(
                [{"code": c, "name": name, "count": n, "fixable": f} for c, name, n, f in rows], indent=2
            )
            + "\n"
        )
    if not rows:
        return ""
    width = max(len(str(n)) for _, _, n, _ in rows)
    code_w = max(len(c) for c, _, _, _ in rows)
    return "".join(
        f"{n:>{width}}\t{c:<{code_w}}\t{'[*] ' if f else '    '}{name}\n" for c, name, n, f in rows
    )
