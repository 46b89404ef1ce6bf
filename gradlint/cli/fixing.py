"""Wire ``--fix``/``--diff``/``--fix-only`` to ``gradlint.static.fixer``.

The fixer's API: ``fix_file(path, diagnostics, *, unsafe, write=True) -> FixResult``
(``applied``, ``remaining``, ``new_text``, ``old_text``, ``errors``) and
``unified_diff(path, old_text, new_text) -> str``.

Like ruff, ``--fix`` re-lints a fixed file and fixes again until nothing
fixable remains (at most ``MAX_PASSES`` times), so fixes that only become
possible after others are applied, and the positions of what remains, are
right.  ``--diff`` makes a single pass and writes nothing.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from gradlint.reporters import ReportContext
from gradlint.static.config import Settings
from gradlint.static.diagnostic import Diagnostic
from gradlint.static.engine import lint_source
from gradlint.static.runner import effective_rules, read_bytes

MAX_PASSES = 10


@dataclass
class FixOutcome:
    fixed: List[Diagnostic] = field(default_factory=list)
    remaining: List[Diagnostic] = field(default_factory=list)
    diff_text: str = ""


def _applicable(d: Diagnostic, unsafe: bool) -> bool:
    return d.fix is not None and (d.fix.applicability == "safe" or unsafe)


def apply_fixes(
    fixer,
    diags: List[Diagnostic],
    settings: Settings,
    ctx: ReportContext,
    *,
    unsafe: bool,
    diff: bool,
    warn: Callable[[str], None],
) -> FixOutcome:
    out = FixOutcome()
    by_file: Dict[str, List[Diagnostic]] = {}
    for d in diags:
        by_file.setdefault(d.filename, []).append(d)
    for filename in sorted(by_file):
        current = by_file[filename]
        if not any(_applicable(d, unsafe) for d in current):
            out.remaining.extend(current)
            continue
        path = Path(filename)
        if diff:
            result = fixer.fix_file(path, current, unsafe=unsafe, write=False)
            for e in result.errors:
                warn(f"{ctx.display_path(filename)}: {e}")
            if result.new_text is not None and result.new_text != result.old_text:
                out.diff_text += fixer.unified_diff(ctx.display_path(filename), result.old_text, result.new_text)
                out.fixed.extend(result.applied)
            out.remaining.extend(result.remaining)
            continue
        rules = effective_rules(filename, settings)
        for _ in range(MAX_PASSES):
            result = fixer.fix_file(path, current, unsafe=unsafe)
            for e in result.errors:
                warn(f"{ctx.display_path(filename)}: {e}")
            if not result.applied or result.new_text is None:
                break
            out.fixed.extend(result.applied)
            try:
                current = lint_source(filename, read_bytes(filename), rules)
            except OSError as exc:
                warn(f"cannot re-read '{ctx.display_path(filename)}' after fixing: {exc.strerror or exc}")
                current = list(result.remaining)
                break
            if not any(_applicable(d, unsafe) for d in current):
                break
        out.remaining.extend(current)
    out.remaining.sort(key=lambda d: d.sort_key)
    return out


def fix_stdin(
    fixer, data: bytes, name: str, diags: List[Diagnostic], settings: Settings, *, unsafe: bool
) -> Tuple[Optional[str], str, List[Diagnostic], List[Diagnostic]]:
    """(new_text or None, old_text, fixed, remaining) for source read from stdin.

    The fixer works on files, so the source goes through a private temporary file.
    """
    old_text = data.decode("utf-8", errors="replace")
    if not any(_applicable(d, unsafe) for d in diags):
        return None, old_text, [], diags
    fd, tmp = tempfile.mkstemp(suffix=".py", prefix="gradlint-stdin-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        result = fixer.fix_file(Path(tmp), diags, unsafe=unsafe)
        new_text = result.new_text
        if new_text is None or not result.applied:
            return None, old_text, [], diags
        rules = effective_rules(name, settings) if name != "-" else list(settings.rules)
        remaining = lint_source(name, new_text.encode("utf-8"), rules)
        return new_text, result.old_text, list(result.applied), remaining
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass
