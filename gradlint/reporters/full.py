"""``full`` (the default): each diagnostic with its source lines, a caret under the span, and the fix.

    train.py:12:9: GL001 [*] `loss.backward()` runs before `optimizer.zero_grad()` ...
       |
    11 |     for batch in loader:
    12 |         loss.backward()
       |         ^^^^^^^^^^^^^^^ GL001
    13 |         optimizer.step()
       |
       = help: Move `optimizer.zero_grad()` before `loss.backward()`
       - 12 |         loss.backward()
       + 12 |         optimizer.zero_grad(); loss.backward()

``[*]`` marks a fix that ``--fix`` applies with the current settings.  The
preview of the fixed lines is shown when the fix touches at most a few lines.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from gradlint.reporters.context import ReportContext, position, summary
from gradlint.static.diagnostic import Diagnostic, Fix

CONTEXT_LINES = 1
MAX_PREVIEW_LINES = 6


def _caret_prefix(line: str, column: int) -> str:
    # Keep tabs so the caret lines up however the terminal renders them.
    return "".join(ch if ch == "\t" else " " for ch in line[: max(column - 1, 0)])


def preview_fix(lines: list[str], fix: Fix) -> tuple[int, list[str], list[str]] | None:
    """(first row, old lines, new lines) of the region the fix edits, or None if too big/odd."""
    if not fix.edits:
        return None
    first = min(e.location.row for e in fix.edits)
    last = max(
        e.end_location.row - (1 if e.end_location.column == 1 and e.end_location.row > e.location.row else 0)
        for e in fix.edits
    )
    if first < 1 or last > len(lines) or last - first + 1 > MAX_PREVIEW_LINES:
        return None
    old = lines[first - 1 : last]
    text = "\n".join(old) + "\n"
    # Offsets of each row start inside ``text``.
    starts = [0]
    for ln in old:
        starts.append(starts[-1] + len(ln) + 1)

    def offset(row: int, col: int) -> int:
        idx = row - first
        if idx >= len(old):
            return len(text)
        # A column past the end of its line clamps to the start of the next one.
        return min(starts[idx] + col - 1, starts[idx + 1])

    for e in sorted(fix.edits, key=lambda e: (e.location.row, e.location.column), reverse=True):
        a, b = offset(e.location.row, e.location.column), offset(e.end_location.row, e.end_location.column)
        if a > b:
            return None
        text = text[:a] + e.content + text[b:]
    new = text[:-1].split("\n") if text.endswith("\n") else text.split("\n")
    if text == "":
        new = []
    return first, old, new


def _one(d: Diagnostic, ctx: ReportContext) -> str:
    marker = "[*] " if ctx.fix_available(d.fix) else ""
    head = (
        f"{click.style(ctx.display_path(d.filename), bold=True)}:{position(d)}: "
        f"{click.style(d.code, fg='red', bold=True)} {marker}{d.message}"
    )
    out = [head]
    lines = ctx.lines_of(d)
    row = d.location.row
    if lines is not None and 1 <= row <= len(lines):
        lo, hi = max(1, row - CONTEXT_LINES), min(len(lines), row + CONTEXT_LINES)
        width = len(str(hi))
        gutter = " " * width + " |"
        out.append(gutter)
        for r in range(lo, hi + 1):
            text = lines[r - 1]
            out.append(f"{r:>{width}} | {text}".rstrip())
            if r == row:
                end_col = d.end_location.column if d.end_location.row == row else len(text) + 1
                n = max(1, end_col - d.location.column)
                out.append(
                    f"{gutter} {_caret_prefix(text, d.location.column)}{click.style('^' * n, fg='red')} {d.code}"
                )
        out.append(gutter)
        if d.fix is not None:
            label = "help" if d.fix.applicability == "safe" else "help (unsafe fix)"
            out.append(f"{' ' * width} = {label}: {d.fix.message}")
            pv = preview_fix(lines, d.fix)
            if pv is not None:
                start, old, new = pv
                for i, ln in enumerate(old):
                    out.append(click.style(f"{' ' * width} - {start + i} | {ln}".rstrip(), fg="red"))
                for i, ln in enumerate(new):
                    out.append(click.style(f"{' ' * width} + {start + i} | {ln}".rstrip(), fg="green"))
    elif d.fix is not None:
        out.append(f"  = help: {d.fix.message}")
    return "\n".join(out) + "\n"


def render(diagnostics: Sequence[Diagnostic], ctx: ReportContext) -> str:
    body = "\n".join(_one(d, ctx) for d in diagnostics)
    tail = summary(diagnostics, ctx)
    if body and tail:
        body += "\n"
    return body + tail
