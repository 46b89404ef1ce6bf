"""Jupyter notebooks (``.ipynb``) for the static analyzer, with the stdlib only.

A notebook is read as JSON (format 4, and 3/2 where their ``worksheets`` hold
cells) and its code cells are linted as **one module, in cell order**, so that a
loop in cell 5 sees the model built in cell 2 (as the kernel does).  Each cell
is preceded in that module by a separator comment line, which both the position
map (module row -> cell, row in cell) and the fixer rely on.

* IPython syntax (``%magic``, ``!shell``, ``obj?``) becomes neutral lines of the
  same count (``pass`` at the same indent), so rows never move.  ``%time CODE``
  and friends keep ``CODE``.  A cell magic that is not Python (``%%bash``,
  ``%%html``...) skips the cell.
* A cell that does not compile on its own gets a GL000 and is left out; the
  other cells are still linted.
* Non-Python notebooks (R, Julia kernels) give one GL000 saying they were
  skipped; bad JSON or a notebook without cells likewise.
* Diagnostics carry ``cell`` (1-based over all cells, markdown included, as in
  ruff and Jupyter's own numbering) and rows/columns within that cell.  ``extra``
  holds ``ipynb_row``/``ipynb_end_row``: the line of the ``.ipynb`` file itself,
  for formats that annotate files by line (SARIF, GitHub, GitLab, JUnit).

The reader keeps the span of every cell's source in the file text, so that
``gradlint.static.notebook_fix`` can write fixes back by replacing only the
edited source lines' JSON strings.  Outputs (base64 images, logs) are skipped by
the C JSON scanner and never kept, so a 50 MB notebook costs about what its
code costs.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from json.decoder import scanstring

from gradlint.static.diagnostic import GL000, Diagnostic, Edit, Fix, Location

NOTEBOOK_SUFFIX = ".ipynb"

# Cell magics whose body is Python; any other ``%%magic`` makes the cell non-Python.
PYTHON_CELL_MAGICS = frozenset(
    {"time", "timeit", "capture", "prun", "debug", "python", "python3", "pypy", "gradlint_trace", "memit"}
)
# Line magics followed by a Python statement, which is linted.
_CODE_LINE_MAGICS = frozenset({"time", "timeit", "prun", "debug", "memit"})

_SEPARATOR = "# %% gradlint cell {}\n"
SEPARATOR_RE = re.compile(r"^# %% gradlint cell (\d+)\n", re.M)
_WS = re.compile(r"[ \t\n\r]*")
_NEWLINE = re.compile(r"\r\n|\r|\n")
_MAGIC = re.compile(r"^([ \t]*)(?:[!%?]|[A-Za-z_][\w.]*\?\??[ \t]*$)")
_ASSIGN_MAGIC = re.compile(r"^([ \t]*)([A-Za-z_][\w.]*(?:[ \t]*,[ \t]*[A-Za-z_][\w.]*)*[ \t]*=[ \t]*)[!%]")
_TOP_LEVEL_AWAIT = getattr(ast, "PyCF_ALLOW_TOP_LEVEL_AWAIT", 0)
_DECODER = json.JSONDecoder()

# Python text of the notebooks linted in this process, by content: --fix and
# --diff read a notebook the runner has just linted (outputs are not kept).
_MODELS: dict[bytes, Notebook] = {}
_MODELS_MAX = 4


class NotebookError(Exception):
    """The notebook cannot be linted; the message says why and what to do."""

    def __init__(self, message: str, row: int = 1, column: int = 1):
        super().__init__(message)
        self.row, self.column = row, column


@dataclass
class Cell:
    number: int  # 1-based over all cells
    source: str  # the cell's text as saved
    # Where the source value sits in the file text, and its JSON form (list or string).
    span: tuple[int, int]
    is_list: bool
    lines: list[str] = field(default_factory=list)  # source lines, with their line breaks
    code: list[str] = field(default_factory=list)  # same count: magics neutralised
    shifts: dict[int, int] = field(default_factory=dict)  # 0-based line -> columns removed at its start
    start_row: int = 0  # module row of the cell's first line (after its separator)


@dataclass
class Notebook:
    text: str  # the notebook file, decoded
    cells: list[Cell]  # linted code cells, in order
    module: str  # the Python module linted
    problems: list[Diagnostic]  # GL000 per cell that could not be linted
    skipped: str | None = None  # why the whole notebook is not linted
    base_rows: dict[int, int] | None = None  # cell -> file line of its source (see file_row)

    def locate(self, row: int, column: int) -> tuple[Cell, int, int]:
        """(cell, row in cell, column in cell) of a module position."""
        cell = self.cells[0]
        for c in self.cells:
            if c.start_row <= row:
                cell = c
            else:
                break
        r = max(row - cell.start_row, 0)
        return cell, r + 1, column + cell.shifts.get(r, 0)


# -- reading ---------------------------------------------------------------------


def _ws(s: str, i: int) -> int:
    return _WS.match(s, i).end()  # type: ignore[union-attr]


def _object(s: str, i: int, on_value) -> int:
    """Walk the object at ``s[i]``; ``on_value(key, start)`` returns the end of each value."""
    if s[i] != "{":
        raise ValueError(f"expected an object at offset {i}")
    i = _ws(s, i + 1)
    if s[i] == "}":
        return i + 1
    while True:
        if s[i] != '"':
            raise ValueError(f"expected a key at offset {i}")
        key, i = scanstring(s, i + 1)
        i = _ws(s, i)
        if s[i] != ":":
            raise ValueError(f"expected ':' at offset {i}")
        i = _ws(s, on_value(key, _ws(s, i + 1)))
        if s[i] == ",":
            i = _ws(s, i + 1)
        elif s[i] == "}":
            return i + 1
        else:
            raise ValueError(f"expected ',' or '}}' at offset {i}")


def _array(s: str, i: int, on_item) -> int:
    if s[i] != "[":
        raise ValueError(f"expected an array at offset {i}")
    i = _ws(s, i + 1)
    if s[i] == "]":
        return i + 1
    n = 0
    while True:
        i = _ws(s, on_item(n, i))
        n += 1
        if s[i] == ",":
            i = _ws(s, i + 1)
        elif s[i] == "]":
            return i + 1
        else:
            raise ValueError(f"expected ',' or ']' at offset {i}")


def json_value(s: str, i: int):
    try:
        return _DECODER.scan_once(s, i)
    except StopIteration:
        raise ValueError(f"expected a value at offset {i}") from None


def _skip(s: str, i: int) -> int:
    return json_value(s, i)[1]


def _raw_cells(text: str) -> tuple[dict, list[dict]]:
    """(top-level metadata and format, cells) with each cell's ``source`` span; outputs skipped."""
    top: dict = {}
    cells: list[dict] = []

    def cell_value(cell: dict):
        def on_value(key: str, i: int) -> int:
            if key in ("outputs", "attachments"):
                return _skip(text, i)
            value, end = json_value(text, i)
            cell[key] = value
            if key in ("source", "input"):
                cell["_span"] = (i, end)
            return end

        return on_value

    def on_cell(_n: int, i: int) -> int:
        if text[i] != "{":
            value, end = json_value(text, i)
            cells.append({"_bad": True})
            return end
        cell: dict = {}
        cells.append(cell)
        return _object(text, i, cell_value(cell))

    def on_worksheet(_n: int, i: int) -> int:
        if text[i] != "{":
            return _skip(text, i)
        return _object(text, i, lambda k, j: _array(text, j, on_cell) if k == "cells" else _skip(text, j))

    def on_top(key: str, i: int) -> int:
        if key == "cells" and text[i] == "[":
            top["cells"] = True
            return _array(text, i, on_cell)
        if key == "worksheets" and text[i] == "[":
            top["worksheets"] = True
            return _array(text, i, on_worksheet)
        value, end = json_value(text, i)
        top[key] = value
        return end

    start = _ws(text, 0)
    end = _object(text, start, on_top)
    if _ws(text, end) != len(text):
        raise ValueError(f"extra data at offset {end}")
    return top, cells


def _json_error(text: str, exc: Exception) -> NotebookError:
    try:
        json.loads(text)
    except json.JSONDecodeError as err:  # the stdlib's message says where
        return NotebookError(
            f"Notebook is not valid JSON ({err.msg} at line {err.lineno} column {err.colno}); "
            "it was not analysed: repair or re-save it in Jupyter",
        )
    except Exception:
        return NotebookError(f"Notebook is not valid JSON ({exc}); it was not analysed")
    return NotebookError(
        "Notebook is JSON but not a Jupyter notebook (not an object with a `cells` list); it was not analysed"
    )


def _language(top: dict) -> str | None:
    meta = top.get("metadata")
    if not isinstance(meta, dict):
        return None
    for key, sub in (("kernelspec", "language"), ("language_info", "name")):
        value = meta.get(key)
        if isinstance(value, dict) and isinstance(value.get(sub), str):
            return value[sub]
    if isinstance(meta.get("language"), str):  # format 3
        return meta["language"]
    spec = meta.get("kernelspec")
    name = spec.get("name") if isinstance(spec, dict) else None
    if isinstance(name, str):  # a kernelspec without its language: known kernels by name
        for prefix, language in _KERNEL_LANGUAGES:
            if name.lower().startswith(prefix):
                return language
    return None


_KERNEL_LANGUAGES = (
    ("ir", "R"),
    ("julia", "julia"),
    ("bash", "bash"),
    ("javascript", "javascript"),
    ("scala", "scala"),
    ("xcpp", "C++"),
    ("sas", "sas"),
    ("evcxr", "rust"),
    ("gophernotes", "go"),
)


def _source_text(source) -> tuple[str, bool] | None:
    if isinstance(source, str):
        return source, False
    if isinstance(source, list) and all(isinstance(x, str) for x in source):
        return "".join(source), True
    return None


def read_notebook(data: bytes, filename: str) -> Notebook:
    """Raises NotebookError when the notebook as a whole cannot be linted."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise NotebookError(f"Notebook is not UTF-8 ({exc.reason}); it was not analysed") from None
    if _ws(text, 0) == len(text):  # (not strip(): that would copy 50 MB)
        raise NotebookError("Notebook is empty (no JSON); it was not analysed")
    try:
        top, raw = _raw_cells(text)
    except (ValueError, IndexError, RecursionError) as exc:
        raise _json_error(text, exc) from None
    if top.get("cells", True) is not True or top.get("worksheets", True) is not True:
        raise NotebookError("Notebook's `cells` is not a list; it was not analysed")
    if "cells" not in top and "worksheets" not in top:
        raise NotebookError(
            "Notebook has no `cells` list (not a Jupyter notebook, or nbformat older than 3); it was not analysed"
        )
    language = _language(top)
    if language is not None and language.lower() not in ("python", "python3", "ipython", "ipython3"):
        return Notebook(
            text, [], "", [], skipped=f"Not a Python notebook (kernel language: {language}); skipped"
        )
    nb = Notebook(text, [], "", [])
    parts: list[str] = []
    row = 1
    for number, cell in enumerate(raw, start=1):
        if cell.get("_bad"):
            nb.problems.append(_cell_problem(filename, number, "Cell is not a JSON object; it was skipped"))
            continue
        if cell.get("cell_type") != "code":
            continue
        if "_span" not in cell:
            continue  # a code cell without source: nothing to lint
        src = _source_text(cell.get("source", cell.get("input")))
        if src is None:
            nb.problems.append(
                _cell_problem(
                    filename, number, "Cell source is neither a string nor a list of strings; it was skipped"
                )
            )
            continue
        if not _is_python_cell(cell):
            continue
        c = Cell(number, src[0], cell["_span"], src[1])
        c.lines = split_lines(c.source)
        problem = _prepare(c, filename)
        if problem == "skip":
            continue
        if problem is not None:
            nb.problems.append(problem)
            continue
        parts.append(_SEPARATOR.format(number))
        row += 1
        c.start_row = row
        body = "".join(c.code)
        if body and not body.endswith(("\n", "\r")):
            body += "\n"
        parts.append(body)
        row += len(c.code)
        nb.cells.append(c)
    nb.module = "".join(parts)
    return nb


def _is_python_cell(cell: dict) -> bool:
    lang = cell.get("language")  # format 3
    if isinstance(lang, str) and lang.lower() not in ("python", "ipython"):
        return False
    meta = cell.get("metadata")
    vscode = meta.get("vscode") if isinstance(meta, dict) else None
    lang = vscode.get("languageId") if isinstance(vscode, dict) else None
    return not (isinstance(lang, str) and lang.lower() not in ("python", "ipython"))


def split_lines(text: str) -> list[str]:
    starts = [0] + [m.end() for m in _NEWLINE.finditer(text)]
    return [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)]) if b > a]


def _cell_problem(filename: str, number: int, message: str, row: int = 1, column: int = 1) -> Diagnostic:
    loc = Location(max(row, 1), max(column, 1))
    return Diagnostic(filename, GL000, message, loc, loc, rule_name="parse-error", cell=number)


def _compiles(code: str) -> SyntaxError | None:
    try:
        compile(code, "<cell>", "exec", ast.PyCF_ONLY_AST | _TOP_LEVEL_AWAIT, dont_inherit=True)
    except SyntaxError as exc:
        return exc
    except (ValueError, RecursionError, MemoryError, OverflowError) as exc:
        return SyntaxError(str(exc))
    return None


def _ending(line: str) -> str:
    return line[len(line.rstrip("\r\n")) :]


def _prepare(c: Cell, filename: str) -> Diagnostic | str | None:
    """Fill ``c.code``; 'skip' for a non-Python cell, a GL000 for one that does not compile."""
    lines = c.lines
    c.code = list(lines)
    if lines and lines[0].startswith("%%"):
        name = lines[0][2:].split(None, 1)[0] if lines[0][2:].strip() else ""
        if name not in PYTHON_CELL_MAGICS:
            return "skip"
        c.code[0] = _ending(lines[0])
    err = _compiles("".join(c.code))
    if err is not None:
        _neutralise(c)
        err2 = _compiles("".join(c.code))
        if err2 is not None and not _libcst_parses("".join(c.code)):
            row = err2.lineno or 1
            col = (err2.offset or 1) + c.shifts.get(row - 1, 0)
            return _cell_problem(
                filename,
                c.number,
                f"SyntaxError in cell {c.number}: {err2.msg}; the cell was not analysed (the others were)",
                row,
                col,
            )
    return None


def _libcst_parses(code: str) -> bool:
    # Syntax newer than this interpreter: libcst may know it (as in the engine).
    import libcst as cst

    try:
        cst.parse_module(code)
    except Exception:
        return False
    return True


def _neutralise(c: Cell) -> None:
    """IPython-only lines -> ``pass`` (or the Python after ``%time``), keeping rows."""
    i = 0
    n = len(c.code)
    while i < n:
        line = c.code[i]
        m = _MAGIC.match(line)
        am = None if m else _ASSIGN_MAGIC.match(line)
        if m is None and am is None:
            i += 1
            continue
        indent = (m or am).group(1)  # type: ignore[union-attr]
        end = _ending(line)
        body = line[len(indent) :].rstrip("\r\n")
        words = body.lstrip("%").split(None, 1)
        if (
            m
            and body.startswith("%")
            and not body.startswith("%%")
            and words
            and words[0] in _CODE_LINE_MAGICS
        ):
            rest = words[1] if len(words) > 1 else ""
            if rest and not rest.startswith("-"):
                c.code[i] = indent + rest + end
                c.shifts[i] = len(body) - len(rest)
                i += 1
                continue
        c.code[i] = indent + (am.group(2) + "None" if am else "pass") + end
        # A magic continued with backslashes: its other lines are neutral too.
        while body.endswith("\\") and i + 1 < n:
            i += 1
            body = c.code[i].rstrip("\r\n")
            c.code[i] = _ending(c.code[i])
        i += 1


def load(data: bytes, filename: str) -> Notebook:
    """``read_notebook``, remembered by content for the rest of this process (a few notebooks)."""
    key = hashlib.blake2b(data, digest_size=16).digest()
    nb = _MODELS.pop(key, None)
    if nb is None:
        nb = read_notebook(data, filename)
        while len(_MODELS) >= _MODELS_MAX:
            _MODELS.pop(next(iter(_MODELS)))
    _MODELS[key] = nb  # most recently used last
    return nb


# -- linting -----------------------------------------------------------------------


def _gl000(filename: str, message: str, row: int = 1, column: int = 1) -> Diagnostic:
    loc = Location(max(row, 1), max(column, 1))
    return Diagnostic(filename, GL000, message, loc, loc, rule_name="parse-error")


def lint_notebook(
    filename: str, data: bytes, rules, *, noqa: bool = True, slicing: bool = True
) -> list[Diagnostic]:
    from gradlint.static.engine import MAX_FILE_BYTES, lint_source
    from gradlint.static.noqa import file_is_exempt, filter_noqa

    try:
        nb = load(data, filename)
    except NotebookError as exc:
        return [_gl000(filename, str(exc), exc.row, exc.column)]
    if nb.skipped:
        return [_gl000(filename, nb.skipped)]
    problems = [replace(p, filename=filename) for p in nb.problems]
    if not nb.cells:
        return problems
    if len(nb.module) > MAX_FILE_BYTES:
        return problems + [
            _gl000(
                filename,
                f"Notebook code is {len(nb.module) / 2**20:.1f} MiB, over gradlint's "
                f"{MAX_FILE_BYTES // 2**20} MiB limit; it was not analysed (split it)",
            )
        ]
    if noqa and file_is_exempt("".join(nb.cells[0].lines)):
        return problems  # `# gradlint: noqa` in the first code cell: the whole notebook
    diags = lint_source(
        filename + "#module.py", nb.module.encode("utf-8"), rules, noqa=False, slicing=slicing
    )
    if noqa:
        exempt = {c.number for c in nb.cells[1:] if file_is_exempt("".join(c.lines))}
        diags = filter_noqa(diags, nb.module, file_level=False)
        diags = [d for d in diags if d.code == GL000 or nb.locate(d.location.row, 1)[0].number not in exempt]
    return problems + [to_cells(d, nb, filename) for d in diags]


def to_cells(d: Diagnostic, nb: Notebook, filename: str) -> Diagnostic:
    """A module diagnostic with cell-relative positions (and the .ipynb line in ``extra``)."""
    cell, row, col = nb.locate(d.location.row, d.location.column)
    _, erow, ecol = nb.locate(d.end_location.row, d.end_location.column)
    if nb.locate(d.end_location.row, 1)[0] is not cell:
        erow, ecol = len(cell.lines) or 1, 1
    noqa_row = None
    if d.noqa_row is not None:
        ncell, noqa_row, _ = nb.locate(d.noqa_row, 1)
        if ncell is not cell:
            noqa_row = None
    fix = d.fix
    if fix is not None:
        edits = []
        for e in fix.edits:
            ec, er, ecl = nb.locate(e.location.row, e.location.column)
            xc, xr, xcl = nb.locate(e.end_location.row, e.end_location.column)
            if ec is not cell or xc is not cell:
                edits = None  # a fix across cells cannot be written back
                break
            edits.append(Edit(e.content, Location(er, ecl), Location(xr, xcl)))
        fix = Fix(fix.message, fix.applicability, tuple(edits)) if edits else None
    message = _LINE_REF.sub(lambda m: _line_ref(nb, cell, int(m.group(1))), d.message)
    extra = dict(d.extra)
    extra["ipynb_row"] = file_row(nb, cell, row)
    extra["ipynb_end_row"] = file_row(nb, cell, erow)
    return replace(
        d,
        filename=filename,
        location=Location(row, col),
        end_location=Location(erow, max(ecol, 1)),
        noqa_row=noqa_row,
        fix=fix,
        cell=cell.number,
        extra=extra,
        message=message,
    )


_LINE_REF = re.compile(r"\bline (\d+)\b")


def _line_ref(nb: Notebook, cell: Cell, row: int) -> str:
    """A rule's `line N` (a module row) said the notebook's way."""
    other, r, _ = nb.locate(row, 1)
    return f"line {r}" if other is cell else f"line {r} of cell {other.number}"


def file_row(nb: Notebook, cell: Cell, row: int) -> int:
    """1-based line of the .ipynb file that holds the cell's ``row``-th source line."""
    start = cell.span[0]
    base = _base_rows(nb)[cell.number]
    if not cell.is_list:
        return base
    tokens = list_items(nb.text, cell.span)
    if not tokens:
        return base
    # Source lines and list items usually coincide; where they do not, the first item.
    k = min(max(row - 1, 0), len(tokens) - 1) if len(tokens) == len(cell.lines) else 0
    return base + nb.text.count("\n", start, tokens[k][0])


def _base_rows(nb: Notebook) -> dict[int, int]:
    """File line of each cell's source value, counted in one pass (outputs can be 50 MB)."""
    if nb.base_rows is None:
        nb.base_rows = {}
        line, pos = 1, 0
        for c in sorted(nb.cells, key=lambda c: c.span[0]):
            line += nb.text.count("\n", pos, c.span[0])
            pos = c.span[0]
            nb.base_rows[c.number] = line
    return nb.base_rows


def list_items(text: str, span: tuple[int, int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []

    def on_item(_n: int, i: int) -> int:
        end = _skip(text, i)
        out.append((i, end))
        return end

    _array(text, span[0], on_item)
    return out
