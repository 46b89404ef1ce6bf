"""Output formats.  ``FORMATS`` maps each ``--output-format`` name to its renderer.

Every renderer has the same signature::

    render(diagnostics: Sequence[Diagnostic], ctx: ReportContext) -> str

``diagnostics`` is already filtered and sorted by ``(path, row, column, code)``;
the returned text is written to stdout as is (it should end with a newline when
it is not empty).  ``ReportContext`` carries everything else a format may need:
the working directory for relative paths (``ctx.display_path``), source lines
for excerpts (``ctx.source_lines``, which also knows stdin input), the enabled
rules, and the fix state (``show_fixes``, ``unsafe_fixes``, ``fix_mode``,
``fixed``).  Renderers must not print or raise on odd input.

To add a format: create ``gradlint/reporters/<name>.py`` with ``render`` and add
one line to ``FORMATS`` below.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gradlint.reporters import (
    concise,
    full,
    github,
    gitlab,
    grouped,
    json,
    json_lines,
    junit,
    pylint,
    rdjson,
    sarif,
)
from gradlint.reporters.context import ReportContext, rule_url
from gradlint.static.diagnostic import Diagnostic

Renderer = Callable[[Sequence[Diagnostic], ReportContext], str]

FORMATS: dict[str, Renderer] = {
    "full": full.render,
    "concise": concise.render,
    "json": json.render,
    "json-lines": json_lines.render,
    "github": github.render,
    "sarif": sarif.render,
    "pylint": pylint.render,
    "junit": junit.render,
    "gitlab": gitlab.render,
    "grouped": grouped.render,
    "rdjson": rdjson.render,
}

__all__ = ["FORMATS", "ReportContext", "Renderer", "rule_url"]
