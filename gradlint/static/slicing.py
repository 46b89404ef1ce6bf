"""Hand libcst only the definitions a file's selected rules could care about.

libcst is the cost of a cold run (~100 µs per line to parse, as much again to
traverse), and a large library file usually has one or two functions that a
rule could match among hundreds that none can. The file-level pre-filter
(``Rule.could_match``) cannot tell them apart; this second stage can, using the
CPython AST that the nesting guard (see ``engine``) builds anyway.

The unit is a definition: a top-level function, or a method (or nested class
member) of a top-level class. A unit is kept whole when a selected rule's
``could_match_unit`` accepts its text; otherwise it becomes a *stub*:
``def name():`` and a string literal for a body, from its ``def`` line to its
last line, with its decorator lines blank (signatures of library code run to
dozens of lines; parsing them cost more than the kept code). Everything else
(imports, module-level code, class headers and class-level statements) is
always kept. Nothing moves: every kept token keeps
its line and column, so positions, ``# noqa`` comments and fixes (which are
line/column edits on the original text) stay exact, and the stubs keep every
name a rule might look up (``def helper``, the class's method names and bases).

A class none of whose methods is kept keeps its header (its bases matter to
the classes that derive from it) and loses its body the same way.

Slicing must never *hide* evidence a finding needs. What a rule needs beyond
the unit that matched is declared by ``Rule.reads``:

* ``"function"``: the unit itself, plus (for every rule) the bodies of the
  helpers it calls by name, transitively: ``repackage_hidden(h)``,
  ``self.clear_grads()``, ``model.detach_state()``, and the ``__enter__`` of a
  class of the file it calls by name (``with frozen():`` may turn grad off).
* ``"class"``: also the methods of its class that assign ``self`` attributes
  (``__init__`` declaring ``self.scale = nn.Parameter(...)`` or
  ``self.opt = Adam(self.net.parameters())``).
* ``"module"``: the whole file; no slicing at all.

Code that can only *silence* a finding (a caller under ``no_grad``, a method
that resets state) may be stubbed: when the sliced file reports anything, the
engine decides on the whole file instead, so slicing cuts work but cannot add a
false alarm. ``tests/test_slicing.py`` checks, on every fixture and rule
example, that the sliced file reports everything the whole file does.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence

from gradlint.static.rule import Rule

# A line with its own terminator, as CPython counts lines (\r\n, \r or \n; not
# str.splitlines's \f, \v, \x1c.., \u2028 which would shift line numbers).
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_NEWLINE = re.compile(r"\r\n?|\n")
# A call by name: ``name(`` (a module-level function or class) or ``.name(`` (a method).
_CALL = re.compile(r"(\.?)\s*([A-Za-z_]\w*)\s*\(")
# A decorator by name, without a call: ``@inference``, ``@utils.no_grad_wrapper`` (its last part).
_DECORATOR = re.compile(r"^[ \t]*@[ \t]*(?:[A-Za-z_]\w*\.)*([A-Za-z_]\w*)[ \t]*$", re.M)
# An assignment to attributes of self: ``self.x = ``, ``self.a, self.b = ``.
_SELF_ASSIGN = re.compile(r"^[ \t]*self\.\w+(?:[ \t]*,[ \t]*self\.\w+)*[ \t]*(?::[^=\n]*)?=[^=]", re.M)

_DEF = (ast.FunctionDef, ast.AsyncFunctionDef)


class _Unit:
    __slots__ = ("name", "start", "def_line", "body_indent", "end", "container", "owner", "text", "_calls")

    def __init__(self, node, container: int | None, lines: Sequence[str], owner: str | None = None) -> None:
        self.name: str = node.name
        self.owner = owner  # the name of the top-level class it belongs to
        self.start: int = _first_line(node)
        self.def_line: int = node.lineno
        # The body's indentation when it starts on a line of its own, else None (`def f(): ...`).
        self.body_indent: str | None = _own_line_indent(node, lines)
        self.end: int = node.end_lineno
        self.container = container  # index of the top-level class in the module body; None for a function
        self.text = "".join(lines[self.start - 1 : self.end])
        self._calls: set[tuple] | None = None

    def calls(self) -> set[tuple]:
        """``(is_method_call, name)`` for each call by name in the unit."""
        if self._calls is None:
            self._calls = {(bool(dot), name) for dot, name in _CALL.findall(self.text)}
            # ``@inference`` above a definition: the project's decorator (it may turn grad off).
            self._calls |= {(False, name) for name in _DECORATOR.findall(self.text)}
        return self._calls


def _first_line(node: ast.stmt) -> int:
    """Where a statement starts, its decorators included."""
    return min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", ())])


def _own_line_indent(node, lines: Sequence[str]) -> str | None:
    """The indentation of ``node``'s body when the body starts on a line of its own."""
    first = node.body[0]
    start = _first_line(first)
    if start <= node.lineno:
        return None
    line = lines[start - 1]
    if not getattr(first, "decorator_list", None) and line.encode("utf-8")[: first.col_offset].strip():
        return None  # `class A(\n    Base): x = 1` (col_offset counts UTF-8 bytes)
    return _indent(line)


def _units(tree: ast.Module, lines: Sequence[str]) -> list[_Unit]:
    units: list[_Unit] = []

    def members(body, container: int, owner: str | None) -> None:
        for node in body:
            if isinstance(node, _DEF):
                units.append(_Unit(node, container, lines, owner))
            elif isinstance(node, ast.ClassDef):
                members(node.body, container, None)

    for index, node in enumerate(tree.body):
        if isinstance(node, _DEF):
            units.append(_Unit(node, None, lines))
        elif isinstance(node, ast.ClassDef):
            members(node.body, index, node.name)
    return units


def _close_over_callees(units: list[_Unit], kept: set[int]) -> None:
    functions: dict[str, list[int]] = {}
    methods: dict[str, list[int]] = {}
    for i, u in enumerate(units):
        if not (u.name.startswith("__") and u.name.endswith("__")):
            (functions if u.container is None else methods).setdefault(u.name, []).append(i)
        elif u.name == "__enter__" and u.owner is not None:
            # ``with frozen():``: a context-manager class of this file may turn grad off on entry.
            functions.setdefault(u.owner, []).append(i)
    todo = list(kept)
    while todo:
        for is_method, name in units[todo.pop()].calls():
            for j in (methods if is_method else functions).get(name, ()):
                if j not in kept:
                    kept.add(j)
                    todo.append(j)


def _kept_units(text: str, units: list[_Unit], rules: Sequence[type[Rule]]) -> set[int]:
    kept: set[int] = set()
    for rule in rules:
        mine = {i for i, u in enumerate(units) if rule.could_match_unit(u.text, text)}
        if rule.reads == "class":
            classes = {units[i].container for i in mine if units[i].container is not None}
            mine |= {i for i, u in enumerate(units) if u.container in classes and _SELF_ASSIGN.search(u.text)}
        kept |= mine
    _close_over_callees(units, kept)
    return kept


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _fill(out: list[str], first: int, last: int, prefix: str, nl: str) -> None:
    """Rows ``first``..``last`` become ``prefix`` plus a body that keeps the line count.

    The body is one string literal spanning the rows: libcst makes a node per
    blank line (12 µs each) but reads a string of any length as one token.
    """
    if first == last:
        out[first - 1] = prefix + "pass" + nl
        return
    out[first - 1] = prefix + '"""' + nl
    for row in range(first, last - 1):
        out[row] = nl
    out[last - 1] = '"""' + nl


def _stub(
    out: list[str],
    lines: Sequence[str],
    header_end: int,
    body_indent: str | None,
    end: int,
    header: str,
    nl: str,
) -> None:
    """Replace a definition's body (rows after ``header_end``) by a string literal.

    A body that started on its own line still does, at its own indentation: the
    first indented block sets libcst's default indentation, which the code of a
    fix is rendered with, so the sliced module must see the same one.
    """
    if body_indent is None or end == header_end:
        _fill(out, header_end, end, header + " ", nl)
        return
    out[header_end - 1] = header + nl
    _fill(out, header_end + 1, end, body_indent, nl)


def _stub_class(node: ast.ClassDef, lines: Sequence[str], out: list[str], nl: str) -> bool:
    """Keep the header (its bases matter), replace the body; False when the body shares the header's line."""
    indent = _own_line_indent(node, lines)
    if indent is None:
        return False
    _fill(out, _first_line(node.body[0]), node.end_lineno, indent, nl)
    return True


def _outside_definitions(tree: ast.Module, lines: Sequence[str]) -> str:
    """The text of the statements that are in no definition: module-level and class-level code."""
    parts: list[str] = []

    def add(body) -> None:
        for node in body:
            if isinstance(node, _DEF):
                continue
            if isinstance(node, ast.ClassDef):
                parts.extend(lines[_first_line(node) - 1 : node.lineno])  # decorators, header
                add(node.body)
            else:
                parts.extend(lines[_first_line(node) - 1 : node.end_lineno])

    add(tree.body)
    return "".join(parts)


def relevant_source(text: str, tree: ast.Module, rules: Sequence[type[Rule]]) -> str | None:
    """``text`` with what no rule in ``rules`` could match stubbed out (see module docs).

    None when nothing in the file could match: no definition is kept and the
    code outside definitions passes no rule's ``could_match_unit`` either.
    """
    if any(r.reads == "module" for r in rules):
        return text
    lines = _LINE.findall(text)
    units = _units(tree, lines)
    kept = _kept_units(text, units, rules)
    if len(kept) == len(units):
        return text
    rest = _outside_definitions(tree, lines)
    rest_matches = any(r.could_match_unit(rest, text) for r in rules)
    if not kept and not rest_matches:
        return None
    if rest_matches:
        # A script's top-level training loop: keep the helpers it calls, as for a kept definition.
        called = {name for _, name in _CALL.findall(rest)}
        fresh = {i for i, u in enumerate(units) if u.name in called} - kept
        if fresh:
            kept |= fresh
            _close_over_callees(units, kept)
            if len(kept) == len(units):
                return text

    out = list(lines)
    newline = _NEWLINE.search(text)
    nl = (
        newline.group(0) if newline else "\n"
    )  # generated lines end like the file's first line (libcst's default)
    live_classes = {u.container for i, u in enumerate(units) if i in kept}
    stubbed_classes: set[int] = set()
    for index, node in enumerate(tree.body):
        if not isinstance(node, ast.ClassDef):
            continue
        if index not in live_classes and _stub_class(node, lines, out, nl):
            stubbed_classes.add(index)
    for i, u in enumerate(units):
        if i in kept or u.container in stubbed_classes:
            continue
        for row in range(u.start - 1, u.def_line - 1):
            out[row] = nl  # decorators
        _stub(
            out,
            lines,
            u.def_line,
            u.body_indent,
            u.end,
            f"{_indent(lines[u.def_line - 1])}def {u.name}():",
            nl,
        )
    return "".join(out)
