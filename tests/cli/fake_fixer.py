"""A stand-in for ``gradlint.static.fixer`` with the agreed API, for CLI wiring tests."""

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path

CALLS: list[dict] = []


@dataclass
class FixResult:
    applied: list = field(default_factory=list)
    remaining: list = field(default_factory=list)
    new_text: str | None = None
    old_text: str = ""
    errors: list[str] = field(default_factory=list)


def _offset(lines, row, col):
    return sum(len(l) for l in lines[: row - 1]) + col - 1


def fix_file(path: Path, diagnostics, *, unsafe: bool, write: bool = True, rules=None) -> FixResult:
    CALLS.append({"path": str(path), "n": len(diagnostics), "unsafe": unsafe, "write": write, "rules": rules})
    old = Path(path).read_text(encoding="utf-8")
    res = _fix(old, diagnostics, unsafe)
    if write and res.new_text is not None:
        tmp = str(path) + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(res.new_text)
        os.replace(tmp, path)
    return res


def fix_text(text, diagnostics, *, unsafe, filename="-", rules=None):
    CALLS.append({"path": filename, "n": len(diagnostics), "unsafe": unsafe, "write": False, "rules": rules})
    res = _fix(text, diagnostics, unsafe)
    return (res.new_text if res.new_text is not None else text), res.applied, res.errors


def _fix(old, diagnostics, unsafe):
    lines = old.splitlines(keepends=True)
    res = FixResult(old_text=old)
    chosen = []
    for d in diagnostics:
        if d.fix is not None and (d.fix.applicability == "safe" or unsafe):
            chosen.append(d)
        else:
            res.remaining.append(d)
    if not chosen:
        return res
    edits = []
    for d in chosen:
        for e in d.fix.edits:
            edits.append(
                (
                    _offset(lines, e.location.row, e.location.column),
                    _offset(lines, e.end_location.row, e.end_location.column),
                    e.content,
                )
            )
    text = old
    for a, b, content in sorted(edits, reverse=True):
        text = text[:a] + content + text[b:]
    res.applied = chosen
    res.new_text = text
    return res


def unified_diff(path, old_text: str, new_text: str) -> str:
    return "".join(
        difflib.unified_diff(
            old_text.splitlines(keepends=True),
            new_text.splitlines(keepends=True),
            fromfile=f"a/{path}",
            tofile=f"b/{path}",
        )
    )
