"""``--add-noqa``: put ``# noqa: CODE`` on every line that has a violation, as ruff does.

* The comment goes on the diagnostic's ``noqa_row``.  An existing ``# noqa:
  CODES`` there is merged with (codes sorted, none repeated); another comment is
  kept and the directive is appended after it (``# why  # noqa: GL003``).
* A line whose end is not the end of a physical line of code (inside a
  multi-line string, before a backslash continuation) gets nothing: a comment
  there would change the program or break it.  Such lines are reported.
* The new text must parse to the same AST as the old one (comments are not in
  the AST), else the file is left alone.  Line endings, the encoding and a
  UTF-8 BOM are kept; the file is replaced atomically.  Running it twice adds
  nothing the second time, since the first run silenced every diagnostic.

GL000 is never silenced by a ``# noqa`` and gets none.  Notebooks are left
alone (reported): their lines live inside JSON strings.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from gradlint.static.diagnostic import GL000, Diagnostic
from gradlint.static.noqa import noqa_codes

# The same directive noqa.py recognises, here to find its span in a comment.
_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[\s,]+[A-Z]+[0-9]+)*))?", re.I)


# Physical lines end at "\r\n", "\n" or "\r" only (str.splitlines also splits at "\f" and others).
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


@dataclass
class AddNoqaResult:
    added: int = 0  # directives added or extended (one per line)
    files: list[str] = field(default_factory=list)  # files written
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, message)


def _ending(line: str) -> tuple[str, str]:
    for nl in ("\r\n", "\n", "\r"):
        if line.endswith(nl):
            return line[: -len(nl)], nl
    return line, ""


def _line_facts(text: str) -> tuple[set[int], dict[int, tokenize.TokenInfo]]:
    """(rows where a comment may be appended, the comment token of each row)."""
    ends: set[int] = set()
    comments: dict[int, tokenize.TokenInfo] = {}
    # newline=None: "\r" and "\r\n" end rows too, as in the engine's positions.
    for tok in tokenize.generate_tokens(io.StringIO(text, newline=None).readline):
        if tok.type in (tokenize.NEWLINE, tokenize.NL):
            ends.add(tok.start[0])
        elif tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok
            ends.add(tok.start[0])
    return ends, comments


def add_noqa_to_text(text: str, codes_by_row: dict[int, set[str]]) -> tuple[str, int, list[int]]:
    """(new text, lines changed, rows that could not take a comment).  Raises SyntaxError/tokenize errors."""
    ends, comments = _line_facts(text)
    lines = _LINE.findall(text)
    changed = 0
    skipped: list[int] = []
    for row in sorted(codes_by_row):
        if not (1 <= row <= len(lines)) or row not in ends:
            skipped.append(row)
            continue
        body, nl = _ending(lines[row - 1])
        wanted = {c.upper() for c in codes_by_row[row]}
        tok = comments.get(row)
        m = _NOQA.search(tok.string) if tok is not None else None
        if tok is not None and m is not None:
            present = noqa_codes(tok.string)
            if present is not None and not present:
                continue  # a blanket noqa already silences everything here
            merged = sorted((present or set()) | wanted)
            if set(merged) == (present or set()):
                continue
            col = tok.start[1]
            new_comment = tok.string[: m.start()] + "# noqa: " + ", ".join(merged) + tok.string[m.end() :]
            body = body[:col] + new_comment + body[col + len(tok.string) :]
        else:
            body = body.rstrip() + "  # noqa: " + ", ".join(sorted(wanted))
        lines[row - 1] = body + nl
        changed += 1
    return "".join(lines), changed, skipped


def _same_program(old: str, new: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escape sequences and the like
        try:
            before = ast.dump(ast.parse(old))
        except (SyntaxError, ValueError):
            return True  # newer syntax than this Python parses: tokenize vetted the rows
        try:
            after = ast.dump(ast.parse(new))
        except (SyntaxError, ValueError):
            return False
    return before == after


def add_noqa(diagnostics: Iterable[Diagnostic]) -> AddNoqaResult:
    from gradlint.static.fixer import _atomic_write, _read_text

    by_file: dict[str, dict[int, set[str]]] = {}
    notebooks: set[str] = set()
    for d in diagnostics:
        if d.code == GL000 or d.noqa_row is None or d.filename == "-":
            continue
        if d.cell is not None or d.filename.endswith(".ipynb"):
            notebooks.add(d.filename)
            continue
        by_file.setdefault(d.filename, {}).setdefault(d.noqa_row, set()).add(d.code)
    result = AddNoqaResult()
    for filename in sorted(notebooks):
        result.errors.append((filename, "--add-noqa does not edit notebooks; add `# noqa: CODE` in the cell"))
    for filename in sorted(by_file):
        path = Path(filename)
        try:
            text, encoding = _read_text(path)
        except OSError as exc:
            result.errors.append((filename, f"cannot read file: {exc.strerror or exc}"))
            continue
        if text is None:
            result.errors.append((filename, "cannot decode file; no noqa comments added"))
            continue
        try:
            new, changed, skipped = add_noqa_to_text(text, by_file[filename])
        except (SyntaxError, tokenize.TokenError) as exc:
            result.errors.append((filename, f"cannot tokenize file ({exc}); no noqa comments added"))
            continue
        for row in skipped:
            result.errors.append(
                (
                    filename,
                    f"line {row}: a comment cannot go there (string or line continuation); not silenced",
                )
            )
        if not changed:
            continue
        if not _same_program(text, new):
            result.errors.append((filename, "adding noqa comments would change the code; file left alone"))
            continue
        error = _atomic_write(path, new.encode(encoding))
        if error is not None:
            result.errors.append((filename, error.replace("fixes", "noqa comments")))
            continue
        result.added += changed
        result.files.append(filename)
    return result
