"""Lint one file: decode, pre-filter, guard, parse once, run all rules in one pass.

This module never imports or executes the code it checks.  Whatever goes wrong
with a file becomes one ``GL000`` diagnostic for that file; nothing raises.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import re
import tokenize
from collections.abc import Iterable, Sequence

import libcst as cst

from gradlint.static import guard, traversal
from gradlint.static.diagnostic import GL000, Diagnostic, Location
from gradlint.static.noqa import filter_noqa
from gradlint.static.notebook import NOTEBOOK_SUFFIX, lint_notebook
from gradlint.static.rule import FileContext, Rule
from gradlint.static.slicing import relevant_source

# Past this size a file is almost certainly generated or data, and libcst's
# memory use (~40x the source) would hurt the whole run.
MAX_FILE_BYTES = 10 * 1024 * 1024

_CR_NEWLINE = re.compile(r"\r\n?")


def _gl000(filename: str, message: str, row: int = 1, column: int = 1) -> Diagnostic:
    loc = Location(max(row, 1), max(column, 1))
    return Diagnostic(filename, GL000, message, loc, loc, noqa_row=None, rule_name="parse-error")


def decode_source(data: bytes, filename: str) -> tuple[str | None, Diagnostic | None]:
    """Decode per PEP 263 (BOM, coding cookie, else UTF-8)."""
    if len(data) > MAX_FILE_BYTES:
        return None, _gl000(
            filename,
            f"File is {len(data) / 2**20:.1f} MiB, over gradlint's {MAX_FILE_BYTES // 2**20} MiB limit; "
            "it was not analysed (exclude it, or split it)",
        )
    if b"\0" in data:
        row = data.count(b"\n", 0, data.index(b"\0")) + 1
        return None, _gl000(filename, "File contains null bytes (binary data?); it was not analysed", row)
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:
        return None, _gl000(filename, f"Cannot decode file: {exc.msg if hasattr(exc, 'msg') else exc}")
    try:
        text = data.decode(encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        row = 1
        if isinstance(exc, UnicodeDecodeError):
            row = data.count(b"\n", 0, exc.start) + 1
        return None, _gl000(
            filename,
            f"Cannot decode file as {encoding}: {exc.reason if isinstance(exc, UnicodeDecodeError) else exc}; "
            "save it as UTF-8 or fix its coding declaration",
            row,
        )
    if text.startswith("\ufeff"):
        text = text[1:]
    return text, None


# libcst's parser backtracks exponentially on nested brackets in `case` patterns
# (measured: a mapping pattern nested 8 deep takes 0.1 s, 10 deep 1.7 s, 14 deep
# over 8 minutes; sequences and parentheses ~4x per two levels). Real patterns
# nest two or three deep.
MAX_PATTERN_DEPTH = 6
_CASE_LINE = re.compile(r"^[ \t]*case\b", re.M)


def _pattern_too_deep(text: str, tree: ast.Module | None, filename: str) -> Diagnostic | None:
    """GL000 for a ``case`` pattern nested deeper than libcst can parse in reasonable time."""
    if _CASE_LINE.search(text) is None:
        return None
    if tree is not None:
        found = (
            (
                _bracket_depth(ast.get_source_segment(text, n.pattern) or ""),
                n.pattern.lineno,
                n.pattern.col_offset + 1,
            )
            for n in ast.walk(tree)
            if isinstance(n, ast.match_case)
        )
    else:  # CPython could not parse it (newer syntax, or an error): scan the text after each `case`
        found = (
            (_bracket_depth(text, m.end()), text.count("\n", 0, m.start()) + 1, m.end() - m.start())
            for m in _CASE_LINE.finditer(text)
        )
    for depth, row, column in found:
        if depth > MAX_PATTERN_DEPTH:
            return _gl000(
                filename,
                f"`case` pattern nested {depth} brackets deep (over {MAX_PATTERN_DEPTH}): too deep for gradlint's "
                "parser to analyse in reasonable time; the file was not analysed",
                row,
                column,
            )
    return None


def _bracket_depth(code: str, start: int = 0) -> int:
    """Deepest bracket nesting from ``start`` to the end of that logical line (string literals skipped)."""
    depth = deepest = 0
    quote = ""
    i, n = start, len(code)
    while i < n:
        c = code[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote or (c == "\n" and len(quote) == 1):
                quote = ""
        elif c in "\"'":
            quote = c
        elif c in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in ")]}":
            depth = max(depth - 1, 0)
        elif c == "\n" and depth == 0:
            break
        i += 1
    return deepest


def _cpython_parse(text: str, filename: str) -> tuple[ast.Module | None, Diagnostic | None]:
    """CPython's tree (None when it cannot parse), and a GL000 that ends the analysis."""
    tree, final, _ = _cpython_check(text, filename)
    if final is not None:
        return None, final
    return tree, _pattern_too_deep(text, tree, filename)


_TOO_DEEP = (
    f"Code is nested more than {guard.MAX_DEPTH} levels deep (a very long chain of operators, calls, "
    "attribute accesses or `elif`s): too deep for gradlint's parser; the file was not analysed "
    "(generated code? exclude it)"
)


def _cpython_check(
    text: str, filename: str, tree: bool = True
) -> tuple[ast.Module | None, Diagnostic | None, Diagnostic | None]:
    """Reject input that would crash libcst's native parser.

    libcst's parser segfaults or hangs on pathological nesting (thousands of
    brackets, operators or attribute accesses) that CPython rejects cleanly, so
    CPython's C parser runs first as a guard (about 1/7 of libcst's parse cost),
    after ``guard.too_deep`` made sure that building the tree cannot crash
    CPython 3.10 either (``tree=False``: bytecode only, which every supported
    CPython guards itself).
    Only its structural-limit errors are final (second item): other syntax errors
    may be newer syntax than this interpreter knows, and libcst gets to decide
    those; where libcst fails too, CPython's message and position are the ones
    reported (third item). The tree (None when CPython could not parse) drives
    the slicing.
    """
    try:
        if not tree:  # only the verdict: bytecode costs less than AST objects
            compile(text, filename, "exec", dont_inherit=True)
            return None, None, None
        return compile(text, filename, "exec", ast.PyCF_ONLY_AST, dont_inherit=True), None, None
    except RecursionError:  # CPython's own limit (3.11+ building the tree; bytecode on every version)
        return None, _gl000(filename, _TOO_DEEP), None
    except MemoryError:
        return None, _gl000(filename, "Code is too complex to analyse (parser ran out of memory)"), None
    except SyntaxError as exc:
        msg = str(exc.msg or "")
        row, column = exc.lineno or 1, exc.offset or 1
        if "too many nested" in msg or "too complex" in msg or "too many statically nested" in msg:
            return None, _gl000(filename, f"SyntaxError: {msg}", row, column), None
        return None, None, _gl000(filename, f"SyntaxError: {' '.join(msg.split())}", row, column)
    except (ValueError, OverflowError) as exc:
        return None, _gl000(filename, f"Cannot parse file: {exc}"), None


def _syntax_error(exc: cst.ParserSyntaxError, filename: str) -> Diagnostic:
    msg = " ".join(str(exc.message).split())
    return _gl000(filename, f"SyntaxError: {msg}", exc.raw_line, exc.raw_column + 1)


def select_rules_for(text: str, rules: Sequence[type[Rule]]) -> list[type[Rule]]:
    """The pre-filter: rules whose cheap text test says the file might match."""
    return [r for r in rules if r.could_match(text)]


def lint_source(
    filename: str,
    data: bytes,
    rules: Sequence[type[Rule]],
    *,
    noqa: bool = True,
    slicing: bool = True,
) -> list[Diagnostic]:
    """Lint one file's bytes with ``rules``.

    ``noqa=False`` leaves ``# noqa`` comments to the caller (the flake8 plugin:
    flake8 applies them). ``slicing=False`` parses every definition, not only
    those a rule could match (see ``gradlint.static.slicing``); tests compare
    the two.
    """
    if filename.endswith(NOTEBOOK_SUFFIX):
        return lint_notebook(filename, data, rules, noqa=noqa, slicing=slicing)
    text, err = decode_source(data, filename)
    if err is not None:
        return [err]
    assert text is not None
    if "\r" in text:
        # CPython reads "\r\n" and a lone "\r" as "\n"; the rules' text tests (re.M
        # anchors) and libcst's printing know only "\n". Rows and columns do not change.
        text = _CR_NEWLINE.sub("\n", text)
    # Before any parser: the depth and literal scan, where libcst will run (a
    # candidate rule) or the file is large enough for its literals to matter to
    # CPython's memory too. A file no rule can match is only compiled to bytecode,
    # which every supported CPython guards against deep nesting itself.
    candidates = select_rules_for(text, rules)
    found = guard.scan(text) if candidates or len(text) >= guard.SCAN_FIRST_BYTES else None
    blanked = None
    if found is not None:
        where = guard.too_deep(text, found) if candidates else None
        if where is not None:
            return [_gl000(filename, _TOO_DEEP, *where)]
        if found.literals:
            blanked, error = guard.blank(text, found.literals)
            if error is not None:
                return [_gl000(filename, f"SyntaxError: {error[2]}", error[0], error[1])]

    def finish(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
        if blanked is not None:
            diagnostics = [_unblank(d, blanked) for d in diagnostics]
        return filter_noqa(diagnostics, text) if noqa else diagnostics

    source = blanked.text if blanked is not None else text
    tree, final, syntax = _cpython_check(source, filename, tree=bool(candidates))
    if final is not None and final.message == _TOO_DEEP:  # where: the scan knows
        found = found or guard.scan(source)
        final = _gl000(filename, _TOO_DEEP, *guard.row_col(source, found.deep_at))
    if final is not None:
        return finish([final])
    if not candidates:
        if syntax is None:
            return []
        # Only a syntax error to report, as ruff's E999 does on every file; libcst
        # decides whether it is syntax newer than this Python, where it can be trusted.
        if guard.too_deep(source, found or guard.scan(source)) or _pattern_too_deep(source, None, filename):
            return finish([syntax])
        return [] if isinstance(_parse(source, filename), cst.Module) else finish([syntax])
    deep_pattern = _pattern_too_deep(source, tree, filename)
    if deep_pattern is not None:
        return finish([deep_pattern])
    if tree is not None and slicing:
        sliced_source = relevant_source(source, tree, candidates)
        if sliced_source is None:
            return []  # the definitions and code some rule's text test let through turn out not to match
        if sliced_source is not source:
            try:
                sliced = cst.parse_module(sliced_source)
            except Exception:  # a slicing bug must not become the user's problem: lint it whole
                sliced = None
            if sliced is not None:
                diagnostics = _run_rules(FileContext(filename, sliced_source, sliced), candidates)
                by_code = {r.code: r for r in candidates}
                if all(d.code in by_code and not by_code[d.code].silenced_elsewhere for d in diagnostics):
                    return finish(diagnostics)
                # A finding that code left out may silence (a caller under no_grad, a
                # method that resets state), or an internal error: decide on the whole
                # file, so that slicing cuts work but never adds a false alarm.
    module = _parse(source, filename)
    if isinstance(module, Diagnostic):
        return finish([syntax or module])
    return finish(_run_rules(FileContext(filename, source, module), candidates))


def _unblank(d: Diagnostic, blanked: guard.Blanked) -> Diagnostic:
    """``d`` at its positions in the original text; a fix that would rewrite a blanked literal is dropped."""

    def loc(at: Location) -> Location:
        return Location(*blanked.position(at.row, at.column))

    fix = d.fix
    if fix is not None:
        spans = [
            ((e.location.row, e.location.column), (e.end_location.row, e.end_location.column))
            for e in fix.edits
        ]
        if any(blanked.touches(a, b) for a, b in spans):
            fix = None
        else:
            edits = tuple(
                dataclasses.replace(e, location=loc(e.location), end_location=loc(e.end_location))
                for e in fix.edits
            )
            fix = dataclasses.replace(fix, edits=edits)
    # the noqa comment ends the line: past any blanked display on it
    noqa_row = None if d.noqa_row is None else blanked.position(d.noqa_row, 1 << 30)[0]
    return dataclasses.replace(
        d, location=loc(d.location), end_location=loc(d.end_location), fix=fix, noqa_row=noqa_row
    )


def _parse(text: str, filename: str):
    """The libcst module, or the GL000 diagnostic saying why there is none."""
    try:
        return cst.parse_module(text)
    except cst.ParserSyntaxError as exc:
        return _syntax_error(exc, filename)
    except RecursionError:
        return _gl000(filename, "Code is nested too deeply to analyse (parser recursion limit reached)")
    except Exception as exc:  # libcst raises a few other types on odd input
        return _gl000(filename, f"Cannot parse file: {type(exc).__name__}: {exc}")


def _run_rules(ctx: FileContext, rule_classes: Sequence[type[Rule]]) -> list[Diagnostic]:
    """Run all rules in one batched traversal; a crashing rule is dropped and reported."""
    active = list(rule_classes)
    internal: list[Diagnostic] = []
    while active:
        ctx.diagnostics = []
        ctx._stack.clear()
        instances = [cls(ctx) for cls in active]
        try:
            traversal.run(ctx.module, [r.get_visitors() for r in instances], ctx._enter, ctx._leave)
            break
        except RecursionError:
            return internal + [
                _gl000(ctx.filename, "Code is nested too deeply to analyse (recursion limit reached)")
            ]
        except Exception as exc:
            culprit = _find_culprit(exc, instances)
            if culprit is None:
                return internal + [
                    _gl000(
                        ctx.filename, f"Internal error while analysing this file: {type(exc).__name__}: {exc}"
                    )
                ]
            internal.append(
                _gl000(
                    ctx.filename,
                    f"Internal error in rule {culprit.code} ({culprit.name}): {type(exc).__name__}: {exc}; "
                    "the other rules still ran. Please report this.",
                )
            )
            active.remove(culprit)
    return ctx.diagnostics + internal


def _find_culprit(exc: BaseException, instances: Iterable[Rule]) -> type[Rule] | None:
    by_id = {id(r): type(r) for r in instances}
    tb = exc.__traceback__
    culprit = None
    while tb is not None:
        self_obj = tb.tb_frame.f_locals.get("self")
        if self_obj is not None and id(self_obj) in by_id:
            culprit = by_id[id(self_obj)]
        tb = tb.tb_next
    return culprit
