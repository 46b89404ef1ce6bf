"""What a renderer may know besides the diagnostics, and text helpers shared by formats."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from gradlint.static.diagnostic import GL000, Diagnostic, Fix
from gradlint.static.rule import Rule

# Rule pages are the Markdown files in the repository (docs/rules/GLnnn.md,
# generated from the rule classes), linked on the main branch: a stable address
# that GitHub renders, and that needs no separate documentation site.
DOCS_URL = "https://github.com/gradlint/gradlint/blob/main/docs/"
RULE_URL_TEMPLATE: str | None = DOCS_URL + "rules/{code}.md"
# GL000 is not a rule: it links to where it is explained.
GL000_URL = DOCS_URL + "configuration.md#rule-selection"
_RULE_CODE = re.compile(r"GL[0-9]{3}")


def rule_url(code: str) -> str | None:
    if code == GL000:
        return GL000_URL
    if RULE_URL_TEMPLATE and _RULE_CODE.fullmatch(code):
        return RULE_URL_TEMPLATE.format(code=code)
    return None


def severity(code: str, rules: Sequence[type[Rule]]) -> str:
    """``error`` for GL000 and the default rules; ``warning`` for off-by-default ones.

    Off-by-default rules are the judgement calls (a finding may be intended),
    the default ones report code that fails or computes wrong gradients.
    """
    for r in rules:
        if r.code == code:
            return "error" if r.default_enabled else "warning"
    return "error"


@dataclass
class ReportContext:
    cwd: str = field(default_factory=os.getcwd)
    rules: Sequence[type[Rule]] = ()
    show_fixes: bool = False
    unsafe_fixes: bool = False
    # True under --fix/--fix-only: ``fixed`` holds the diagnostics whose fixes were applied.
    fix_mode: bool = False
    fixed: list[Diagnostic] = field(default_factory=list)
    quiet: bool = False
    # Source text of inputs that are not on disk (stdin), by diagnostic filename.
    sources: dict[str, str] = field(default_factory=dict)
    _lines: dict[str, list[str] | None] = field(default_factory=dict, repr=False)
    _cells: dict[str, dict[int, list[str]] | None] = field(default_factory=dict, repr=False)

    def display_path(self, filename: str) -> str:
        """Relative to the working directory when the file is below it."""
        if not os.path.isabs(filename):
            return filename
        rel = os.path.relpath(filename, self.cwd)
        if rel.startswith(os.pardir + os.sep) or rel == os.pardir:
            return filename
        return rel

    def source_lines(self, filename: str) -> list[str] | None:
        if filename not in self._lines:
            text = self.sources.get(filename)
            if text is None:
                try:
                    with open(filename, "rb") as fh:
                        text = fh.read().decode("utf-8", errors="replace")
                except OSError:
                    text = None
            if text is not None and text.startswith("\ufeff"):
                text = text[1:]
            self._lines[filename] = text.splitlines() if text is not None else None
        return self._lines[filename]

    def lines_of(self, d: Diagnostic) -> list[str] | None:
        """The lines ``d``'s rows count in: the file's, or for a notebook its cell's."""
        if d.cell is None:
            return self.source_lines(d.filename)
        if d.filename not in self._cells:  # one read of the notebook for all its cells
            self._cells[d.filename] = _cell_lines(d.filename, self.sources.get(d.filename))
        cells = self._cells[d.filename]
        return cells.get(d.cell) if cells is not None else None

    def fix_available(self, fix: Fix | None) -> bool:
        """Would ``--fix`` (with the current ``--unsafe-fixes`` setting) apply it?"""
        return fix is not None and (fix.applicability == "safe" or self.unsafe_fixes)

    def rule_name(self, d: Diagnostic) -> str:
        if d.rule_name:
            return d.rule_name
        for r in self.rules:
            if r.code == d.code:
                return r.name
        return ""


def _cell_lines(filename: str, text: str | None) -> dict[int, list[str]] | None:
    from gradlint.static import notebook

    try:
        if text is not None:
            data = text.encode("utf-8")
        else:
            with open(filename, "rb") as fh:
                data = fh.read()
        cells = notebook.load(data, filename).cells
    except (OSError, notebook.NotebookError):
        return None
    return {c.number: c.source.splitlines() for c in cells}


def position(d: Diagnostic) -> str:
    """``row:col``, or for a notebook ``cell N:row:col`` as ruff writes it."""
    where = f"{d.location.row}:{d.location.column}"
    return where if d.cell is None else f"cell {d.cell}:{where}"


def file_rows(d: Diagnostic) -> tuple[int, int]:
    """First and last line in the file itself (a notebook's .ipynb lines), for formats that annotate files."""
    if d.cell is None:
        return d.location.row, d.end_location.row
    row = d.extra.get("ipynb_row") or 1
    return row, max(d.extra.get("ipynb_end_row") or row, row)


def plural(n: int, word: str) -> str:
    suffix = "es" if word.endswith(("x", "s", "ch", "sh")) else "s"
    return f"{n} {word}{'' if n == 1 else suffix}"


def summary(diagnostics: Sequence[Diagnostic], ctx: ReportContext) -> str:
    """ruff-style closing lines for the human formats (empty under --quiet)."""
    if ctx.quiet:
        return ""
    lines: list[str] = []
    if ctx.show_fixes and ctx.fixed:
        lines.append(fixed_listing(ctx.fixed, ctx))
    n = len(diagnostics)
    if ctx.fix_mode:
        f = len(ctx.fixed)
        if n == 0 and f == 0:
            lines.append("All checks passed!")
        elif n == 0:
            lines.append(f"Found {plural(f, 'error')} ({f} fixed, 0 remaining).")
        else:
            lines.append(f"Found {plural(n + f, 'error')} ({f} fixed, {n} remaining).")
    elif n == 0:
        lines.append("All checks passed!")
    else:
        lines.append(f"Found {plural(n, 'error')}.")
    fixable = sum(1 for d in diagnostics if ctx.fix_available(d.fix))
    hidden = sum(1 for d in diagnostics if d.fix is not None and not ctx.fix_available(d.fix))
    if fixable and not ctx.fix_mode:
        lines.append(f"[*] {fixable} fixable with the `--fix` option.")
    if hidden:
        lines.append(f"({plural(hidden, 'hidden fix')} can be enabled with the `--unsafe-fixes` option.)")
    return "\n".join(lines) + "\n"


def fixed_listing(fixed: Sequence[Diagnostic], ctx: ReportContext) -> str:
    """``--show-fixes``: what was fixed, per file and code."""
    by_file: dict[str, Counter] = {}
    for d in fixed:
        by_file.setdefault(ctx.display_path(d.filename), Counter())[(d.code, ctx.rule_name(d))] += 1
    out = [f"Fixed {plural(len(fixed), 'error')}:"]
    for path in sorted(by_file):
        out.append(f"- {path}:")
        for (code, name), count in sorted(by_file[path].items()):
            out.append(f"    {count} × {code} ({name})" if name else f"    {count} × {code}")
    return "\n".join(out) + "\n"
