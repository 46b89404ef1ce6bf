"""Write fixes back into a notebook's cells (``--fix``, ``--diff`` for ``.ipynb``).

The fixer works on the notebook's Python module (see ``gradlint.static.notebook``);
the fixed module is cut back into cells at the separator lines, each changed
cell is diffed line by line against its saved source (so magics come back),
and only the JSON strings of the changed lines are replaced in the file text:
indent, key order, escapes, outputs and the final newline stay byte for byte.
The result is re-read and compared with what was intended before anyone writes it.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from gradlint.static.diagnostic import Diagnostic, Edit, Fix, Location
from gradlint.static.notebook import (
    SEPARATOR_RE,
    Cell,
    Notebook,
    NotebookError,
    json_value,
    lint_notebook,
    list_items,
    load,
    split_lines,
    to_cells,
)

# -- writing fixes back -------------------------------------------------------------


def _cell_segments(module: str) -> dict[int, str] | None:
    """Cell number -> that cell's text in a (fixed) module; None if a separator was touched."""
    marks = list(SEPARATOR_RE.finditer(module))
    if not marks or marks[0].start() != 0:
        return None
    out: dict[int, str] = {}
    for m, nxt in zip(marks, marks[1:] + [None]):
        number = int(m.group(1))
        if number in out:
            return None
        out[number] = module[m.end() : nxt.start() if nxt else len(module)]
    return out


def _ensure_ascii(text: str) -> bool:
    if not text.isascii():
        return False
    return re.search(r"\\u(?:00[89a-fA-F]|0[1-9a-fA-F]|[1-9a-fA-F])[0-9a-fA-F]", text) is not None


def new_cell_sources(nb: Notebook, module: str) -> dict[int, str] | str:
    """Cell number -> new source text, for the cells the fixed ``module`` changed; or an error."""
    segments = _cell_segments(module)
    if segments is None or sorted(segments) != sorted(c.number for c in nb.cells):
        return "a fix touched the boundary between two cells; the notebook was left unchanged"
    out: dict[int, str] = {}
    for c in nb.cells:
        seg = segments[c.number]
        old = "".join(c.code)
        added_newline = bool(old) and not old.endswith(("\n", "\r"))
        if seg == old + ("\n" if added_newline else ""):
            continue
        if added_newline and seg.endswith("\n"):
            seg = seg[:-1]
        new_code = split_lines(seg)
        lines: list[str] = []
        sm = difflib.SequenceMatcher(None, c.code, new_code, autojunk=False)
        for tag, i1, i2, j1, j2 in sm.get_opcodes():
            if tag == "equal":
                lines.extend(c.lines[i1:i2])  # the saved text: magics come back
                continue
            if any(c.code[i] != c.lines[i] for i in range(i1, i2)):
                return (
                    f"a fix in cell {c.number} touched an IPython magic line; the notebook was left unchanged"
                )
            lines.extend(new_code[j1:j2])
        out[c.number] = "".join(lines)
    return out


def write_back(nb: Notebook, sources: dict[int, str]) -> str:
    """The notebook text with the given cells' sources replaced, everything else byte for byte."""
    text = nb.text
    ensure_ascii = _ensure_ascii(text)
    pieces: list[str] = []
    pos = 0
    for c in sorted(nb.cells, key=lambda c: c.span[0]):
        if c.number not in sources:
            continue
        start, end = c.span
        pieces.append(text[pos:start])
        pieces.append(_encode_source(text, c, sources[c.number], ensure_ascii))
        pos = end
    pieces.append(text[pos:])
    return "".join(pieces)


def _dump(s: str, ensure_ascii: bool) -> str:
    return json.dumps(s, ensure_ascii=ensure_ascii)


def _encode_source(text: str, c: Cell, new: str, ensure_ascii: bool) -> str:
    if not c.is_list:
        return _dump(new, ensure_ascii)
    start, end = c.span
    tokens = list_items(text, c.span)
    old_lines = c.lines
    new_lines = split_lines(new)
    items = [json_value(text, a)[0] for a, _ in tokens]
    if not tokens:
        return _dump_list(new_lines, ensure_ascii, "\n", "\n", ",\n")
    head = text[start + 1 : tokens[0][0]]
    tail = text[tokens[-1][1] : end - 1]
    sep = text[tokens[0][1] : tokens[1][0]] if len(tokens) > 1 else "," + head
    raw = [text[a:b] for a, b in tokens]
    if items != old_lines:
        # Items are not one line each (hand-written JSON): the whole list is rewritten.
        return "[" + head + sep.join(_dump(x, ensure_ascii) for x in new_lines) + tail + "]"
    out: list[str] = []
    sm = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            out.extend(raw[i1:i2])
        else:
            out.extend(_dump(x, ensure_ascii) for x in new_lines[j1:j2])
    if not out:
        return "[]"
    return "[" + head + sep.join(out) + tail + "]"


def _dump_list(lines: Sequence[str], ensure_ascii: bool, head: str, tail: str, sep: str) -> str:
    if not lines:
        return "[]"
    return "[" + head + sep.join(_dump(x, ensure_ascii) for x in lines) + tail + "]"


@dataclass
class NotebookFix:
    new_text: str | None  # None: nothing changed
    old_text: str
    applied: list[Diagnostic]
    remaining: list[Diagnostic]
    errors: list[str]


def _to_module(d: Diagnostic, nb: Notebook) -> Diagnostic | None:
    """Inverse of ``to_cells``: module positions for the fixer."""
    cells = {c.number: c for c in nb.cells}
    c = cells.get(d.cell) if d.cell is not None else None
    if c is None:
        return None

    def loc(x: Location) -> Location:
        return Location(c.start_row + x.row - 1, max(x.column - c.shifts.get(x.row - 1, 0), 1))

    fix = d.fix
    if fix is not None:
        fix = Fix(
            fix.message,
            fix.applicability,
            tuple(Edit(e.content, loc(e.location), loc(e.end_location)) for e in fix.edits),
        )
    return replace(d, location=loc(d.location), end_location=loc(d.end_location), fix=fix, cell=None)


def fix_notebook_data(
    data: bytes, filename: str, diagnostics: Sequence[Diagnostic], *, unsafe: bool, rules
) -> NotebookFix:
    """Apply the fixes of ``diagnostics`` (cell positions) to a notebook's bytes, re-checked."""
    from gradlint.static import fixer

    result = NotebookFix(None, "", [], list(diagnostics), [])
    try:
        nb = load(data, filename)
    except NotebookError as exc:
        result.errors.append(f"cannot fix: {exc}")
        return result
    result.old_text = nb.text
    if nb.skipped or not nb.cells:
        return result
    originals: dict[int, Diagnostic] = {}
    module_diags = []
    for d in diagnostics:
        m = _to_module(d, nb)
        if m is not None:
            originals[id(m)] = d
            module_diags.append(m)
    code_name = filename + "#module.py"
    new_module, applied, _, errors = fixer._fix_loop(
        nb.module,
        module_diags,
        unsafe=unsafe,
        filename=code_name,
        rules=rules,
        encode=lambda t: t.encode("utf-8"),
    )
    result.errors.extend(e.replace(code_name, filename) for e in errors)
    if not applied or new_module == nb.module:
        return result
    sources = new_cell_sources(nb, new_module)
    if isinstance(sources, str):
        result.errors.append(sources)
        return result
    if not sources:
        return result
    new_text = write_back(nb, sources)
    # Re-check: the new file must be JSON whose changed cells read back as intended
    # and whose other cells are untouched.
    prefix = b"\xef\xbb\xbf" if data.startswith(b"\xef\xbb\xbf") else b""
    new_data = prefix + new_text.encode("utf-8")
    try:
        json.loads(new_text)
        check = load(new_data, filename)
    except (NotebookError, ValueError) as exc:
        result.errors.append(
            f"fixed notebook would not read back ({exc}); it was left unchanged. Please report this."
        )
        return result
    want = {c.number: sources.get(c.number, c.source) for c in nb.cells}
    got = {c.number: c.source for c in check.cells}
    if want != got:
        result.errors.append(
            "fixed notebook would not read back as intended; it was left unchanged. Please report this."
        )
        return result
    result.new_text = new_text
    result.applied = [originals.get(id(a)) or to_cells(a, nb, filename) for a in applied]
    result.remaining = lint_notebook(filename, new_data, rules) if rules else []
    return result


def unified_diff(path: str, old_text: str, new_text: str) -> str:
    """``--diff`` for a notebook: one hunk group per changed cell, named like ruff (``x.ipynb:cell 3``)."""
    from gradlint.static import fixer

    try:
        old = {c.number: c.source for c in load(old_text.encode("utf-8"), path).cells}
        new = {c.number: c.source for c in load(new_text.encode("utf-8"), path).cells}
    except NotebookError:
        return ""
    out = []
    for number in sorted(old):
        if number in new and new[number] != old[number]:
            out.append(fixer.unified_diff(f"{path}:cell {number}", old[number], new[number]))
    return "".join(out)
