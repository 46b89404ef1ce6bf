"""Wire ``--fix``/``--diff``/``--fix-only`` to ``gradlint.static.fixer``.

The fixer's API: ``fix_file(path, diagnostics, *, unsafe, write=True, rules=None)
-> FixResult`` (``applied``, ``remaining``, ``new_text``, ``old_text``,
``errors``), ``fix_text(text, diagnostics, *, unsafe, filename, rules) ->
(new_text, applied, errors)`` and ``unified_diff(path, old_text, new_text)``.
The fixer itself re-lints between rounds (with the file's effective rules,
which we pass), so ``remaining`` carries positions in the fixed text.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gradlint.reporters import ReportContext
from gradlint.static.config import Settings
from gradlint.static.diagnostic import Diagnostic
from gradlint.static.engine import lint_source
from gradlint.static.runner import effective_rules


@dataclass
class FixOutcome:
    fixed: list[Diagnostic] = field(default_factory=list)
    remaining: list[Diagnostic] = field(default_factory=list)
    diff_text: str = ""


def _applicable(d: Diagnostic, unsafe: bool) -> bool:
    return d.fix is not None and (d.fix.applicability == "safe" or unsafe)


def apply_fixes(
    fixer,
    diags: list[Diagnostic],
    settings: Settings,
    ctx: ReportContext,
    *,
    unsafe: bool,
    diff: bool,
    warn: Callable[[str], None],
) -> FixOutcome:
    out = FixOutcome()
    by_file: dict[str, list[Diagnostic]] = {}
    for d in diags:
        by_file.setdefault(d.filename, []).append(d)
    for filename in sorted(by_file):
        current = by_file[filename]
        if not any(_applicable(d, unsafe) for d in current):
            out.remaining.extend(current)  # the file is not even read
            continue
        result = fixer.fix_file(
            Path(filename), current, unsafe=unsafe, write=not diff, rules=effective_rules(filename, settings)
        )
        for e in result.errors:
            warn(f"{ctx.display_path(filename)}: {e}")
        out.remaining.extend(result.remaining)
        if result.new_text is None or result.new_text == result.old_text:
            continue
        out.fixed.extend(result.applied)
        if diff:
            out.diff_text += fixer.unified_diff(ctx.display_path(filename), result.old_text, result.new_text)
    out.remaining.sort(key=lambda d: d.sort_key)
    return out


def fix_stdin(
    fixer, data: bytes, name: str, diags: list[Diagnostic], settings: Settings, *, unsafe: bool
) -> tuple[str | None, str, list[Diagnostic], list[Diagnostic], list[str]]:
    """(new_text or None, old_text, fixed, remaining, errors) for source read from stdin."""
    from gradlint.static.engine import decode_source

    if name.endswith(".ipynb"):
        return _fix_stdin_notebook(data, name, diags, settings, unsafe=unsafe)
    old_text, err = decode_source(data, name)
    if old_text is None or not any(_applicable(d, unsafe) for d in diags):
        return None, data.decode("utf-8", errors="replace"), [], diags, []
    rules = effective_rules(name, settings) if name != "-" else list(settings.rules)
    new_text, applied, errors = fixer.fix_text(old_text, diags, unsafe=unsafe, filename=name, rules=rules)
    if not applied or new_text == old_text:
        return None, old_text, [], diags, errors
    remaining = lint_source(name, new_text.encode("utf-8"), rules)
    return new_text, old_text, list(applied), remaining, errors


def _fix_stdin_notebook(data: bytes, name: str, diags: list[Diagnostic], settings: Settings, *, unsafe: bool):
    from gradlint.static.notebook_fix import fix_notebook_data

    if not any(_applicable(d, unsafe) for d in diags):
        return None, data.decode("utf-8", errors="replace"), [], diags, []
    nf = fix_notebook_data(
        data, name, diags, unsafe=unsafe, rules=effective_rules(os.path.abspath(name), settings)
    )
    if nf.new_text is None:
        return None, nf.old_text, [], diags, nf.errors
    return nf.new_text, nf.old_text, nf.applied, nf.remaining, nf.errors
