"""``json-lines``: one ``json``-format object per line (streamable)."""

from __future__ import annotations

import json as _json
from collections.abc import Sequence

from gradlint.reporters.context import ReportContext
from gradlint.reporters.json import to_ruff_dict
from gradlint.static.diagnostic import Diagnostic


def render(diagnostics: Sequence[Diagnostic], ctx: ReportContext) -> str:
    return "".join(_json.dumps(to_ruff_dict(d, ctx), sort_keys=True) + "\n" for d in diagnostics)
