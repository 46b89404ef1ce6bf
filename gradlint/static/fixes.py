"""How to rewrite whole statements in a fix, keeping every comment once and the file's layout.

Rules that fix an expression use ``Replace(old_expr, new)``. Rules that move or
wrap statements (GL001 moves a backward after its loop, GL013/GL016 put edits
under ``torch.no_grad()``, GL017 wraps a loop in ``torch.inference_mode()``) use
the builders here, which return ready text ``Edit``s:

* the replaced range is whole lines, from the first statement's first line
  (its comment lines above stay where they are) through the last statement's
  last line, end-of-line comment included, and the new code carries that
  comment: so it is written exactly once;
* the new statements are printed by libcst at the indentation of the line they
  replace, with the module's own indent unit, so continuation lines keep their
  place relative to their statement and multi-line strings are not touched;
* the builder first prints the *old* statements the same way and checks that
  this reproduces the source byte for byte; if not (a layout libcst cannot
  round-trip at this position), there is no fix rather than a wrong one.

Newlines in the returned content are ``\\n``; the fixer writes the file's own.
"""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Callable, Sequence

import libcst as cst
from libcst._nodes.internal import CodegenState

from gradlint.static.diagnostic import Edit, Location

_NEWLINE = re.compile(r"\r\n|\r|\n")
_FINAL_NEWLINE = re.compile(r"(?:\r\n|\r|\n)\Z")


def _render(module: cst.Module, statements: Sequence[cst.BaseStatement], indent: str) -> str:
    state = CodegenState(default_indent=module.default_indent, default_newline="\n")
    if indent:
        state.indent_tokens.append(indent)
    for stmt in statements:
        stmt._codegen(state)
    return _NEWLINE.sub("\n", "".join(state.tokens))


def _line_starts(text: str) -> list[int]:
    return [0] + [m.end() for m in _NEWLINE.finditer(text)]


def replace_statements(
    context, old: Sequence[cst.BaseStatement], new: Sequence[cst.BaseStatement]
) -> list[Edit] | None:
    """The edit that replaces consecutive sibling statements ``old`` by ``new``.

    ``old[0]``'s leading lines (comments and blank lines above it) are not part
    of the range and stay; ``new[0]``'s are printed below them, unless they are
    the same lines (a rewritten ``old[0]``). None when the old statements do not
    print back as the source.
    """
    if not old or not new:
        return None
    first = old[0]
    lead = getattr(new[0], "leading_lines", ())
    if (
        lead
        and len(lead) == len(first.leading_lines)
        and all(a.deep_equals(b) for a, b in zip(lead, first.leading_lines))
    ):
        new = [new[0].with_changes(leading_lines=()), *new[1:]]
    row = context.position(first).start.line
    source = _NEWLINE.sub("\n", context.source)
    starts = _line_starts(source)
    if row > len(starts):
        return None
    start = starts[row - 1]
    line = source[start : starts[row] if row < len(starts) else len(source)]
    indent = line[: len(line) - len(line.lstrip(" \t"))]
    module = context.module
    old_code = _render(module, [first.with_changes(leading_lines=()), *old[1:]], indent)
    if source[start : start + len(old_code)] != old_code:
        return None
    body = old_code
    if body.endswith("\n"):
        body = body[:-1]
    end_row = row + body.count("\n")
    end_col = len(body) - (body.rfind("\n") + 1) + 1
    new_code = _FINAL_NEWLINE.sub("", _render(module, new, indent))
    # The range starts at column 1, so the new code brings its own first indentation.
    return [Edit(content=new_code, location=Location(row, 1), end_location=Location(end_row, end_col))]


def wrap_statements(
    context,
    old: Sequence[cst.BaseStatement],
    with_item: str,
    new_body: Sequence[cst.BaseStatement] | None = None,
) -> list[Edit] | None:
    """The edit that puts consecutive sibling statements ``old`` (or their rewritten
    ``new_body``) under ``with <with_item>:``. ``old[0]``'s comment lines above it
    stay above the ``with``."""
    body = list(new_body if new_body is not None else old)
    if not body:
        return None
    body[0] = body[0].with_changes(leading_lines=())
    with_stmt = cst.With(
        items=[cst.WithItem(cst.parse_expression(with_item))],
        body=cst.IndentedBlock(body=body),
    )
    return replace_statements(context, old, [with_stmt])


# -- putting in-place edits under no_grad -------------------------------------------------------

Rewrite = Callable[[cst.BaseStatement], "cst.BaseStatement | None"]


def no_grad_block(
    context, torch: str | None, line: cst.BaseStatement, rewrite: Rewrite, cache: dict | None = None
) -> list[Edit] | None:
    """Put ``line`` under ``with <torch>.no_grad():``, together with the statements around it
    that need the same cure, as one block.

    ``rewrite(stmt)`` is the rule's answer for one simple statement: its fixed
    form when the rule would fix it, else None. The block grows to whole
    ``for``/``while``/``if`` statements whose every statement the rule fixes
    (the ``with`` goes around the loop, not inside its body), then to the longest
    run of consecutive such siblings: six edits in a row make one block, and
    every diagnostic of the run proposes the same edit (the fixer applies it
    once). None without a ``torch`` import name.

    ``cache``: one dict per rule and file, so that the diagnostics of a run of n
    statements cost O(n) together, not O(n^2).
    """
    if torch is None:
        return None
    cache = {} if cache is None else cache
    memo: dict[int, cst.BaseStatement | None] = cache.setdefault("fixed", {})
    blocks: dict[int, list[Edit] | None] = cache.setdefault("blocks", {})

    def fixed(stmt) -> cst.BaseStatement | None:
        key = id(stmt)
        if key not in memo:
            memo[key] = _fixed_statement(stmt, rewrite, fixed)
        return memo[key]

    if fixed(line) is None:
        return None
    unit = line
    while True:
        owner = _compound_owning(context, unit)
        if owner is None or fixed(owner) is None:
            break
        unit = owner
    if id(unit) in blocks:
        return blocks[id(unit)]
    siblings = _siblings(context, unit)
    if siblings is None:
        run = [unit]
    else:
        i = j = next(k for k, s in enumerate(siblings) if s is unit)
        while i > 0 and fixed(siblings[i - 1]) is not None:
            i -= 1
        while j + 1 < len(siblings) and fixed(siblings[j + 1]) is not None:
            j += 1
        run = list(siblings[i : j + 1])
    edits = wrap_statements(context, run, f"{torch}.no_grad()", [fixed(s) for s in run])
    for s in run:
        blocks[id(s)] = edits
    return edits


def _fixed_statement(stmt, rewrite: Rewrite, fixed) -> cst.BaseStatement | None:
    if isinstance(stmt, cst.SimpleStatementLine):
        return rewrite(stmt)
    if isinstance(stmt, (cst.For, cst.While)):
        if stmt.orelse is not None:
            return None
        body = _fixed_block(stmt.body, fixed)
        return None if body is None else stmt.with_changes(body=body)
    if isinstance(stmt, cst.If):
        body = _fixed_block(stmt.body, fixed)
        if body is None:
            return None
        orelse = stmt.orelse
        if isinstance(orelse, cst.If):
            orelse = fixed(orelse)
            if orelse is None:
                return None
        elif isinstance(orelse, cst.Else):
            else_body = _fixed_block(orelse.body, fixed)
            if else_body is None:
                return None
            orelse = orelse.with_changes(body=else_body)
        return stmt.with_changes(body=body, orelse=orelse)
    return None


def _fixed_block(block, fixed) -> cst.IndentedBlock | None:
    if not isinstance(block, cst.IndentedBlock) or not block.body:
        return None
    body = [fixed(s) for s in block.body]
    if any(s is None for s in body):
        return None
    return block.with_changes(body=body)


def _compound_owning(context, stmt) -> cst.BaseStatement | None:
    """The ``for``/``while``/``if`` statement whose block ``stmt`` is in (for an ``else`` or
    ``elif`` block, the ``if``/loop the chain starts with), else None."""
    block = context.parent(stmt)
    if not isinstance(block, cst.IndentedBlock):
        return None
    owner = context.parent(block)
    while True:
        up = context.parent(owner)
        if isinstance(owner, cst.Else) or (
            isinstance(owner, cst.If) and isinstance(up, cst.If) and up.orelse is owner
        ):
            owner = up
            continue
        break
    return owner if isinstance(owner, (cst.For, cst.While, cst.If)) else None


def _siblings(context, stmt) -> Sequence[cst.BaseStatement] | None:
    parent = context.parent(stmt)
    if isinstance(parent, (cst.IndentedBlock, cst.Module)):
        return parent.body
    return None


def indent_continuation_lines(code: str, indent: str) -> str:
    """``code`` printed at column 0 (libcst's ``code_for_node``), for a place indented
    by ``indent``: every line after the first gets ``indent``, except the lines
    inside a multi-line string, whose text is the string's value."""
    lines = code.split("\n")
    inside = _rows_inside_strings(code)
    return "\n".join(
        [lines[0]]
        + [
            indent + ln if ln.strip() and row not in inside else ln
            for row, ln in enumerate(lines[1:], start=2)
        ]
    )


def _rows_inside_strings(code: str) -> set[int]:
    rows: set[int] = set()
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError):
        # Not tokenisable alone: a fragment of a statement. Leave every line as it is: the
        # lines after the first are inside brackets, where indentation does not matter.
        return set(range(2, code.count("\n") + 2))
    fstring_start = getattr(tokenize, "FSTRING_START", None)
    fstring_end = getattr(tokenize, "FSTRING_END", None)
    opened: list[int] = []
    for tok in tokens:
        if tok.type == tokenize.STRING:
            rows.update(range(tok.start[0] + 1, tok.end[0] + 1))
        elif fstring_start is not None and tok.type == fstring_start:
            opened.append(tok.start[0])
        elif fstring_end is not None and tok.type == fstring_end and opened:
            rows.update(range(opened.pop() + 1, tok.end[0] + 1))
    return rows
