"""Hand libcst only the definitions a file's selected rules could care about.

libcst is the cost of a cold run (~100 µs per line to parse, as much again to
traverse), and a large library file usually has one or two functions that a
rule could match among hundreds that none can. The file-level pre-filter
(``Rule.could_match``) cannot tell them apart; this second stage can, using the
CPython AST that the nesting guard (see ``engine``) builds anyway.

The unit is a definition: a top-level function, or a method (or nested class
member) of a top-level class. A unit is kept whole when a selected rule's
``could_match_unit`` accepts its text; otherwise it becomes a *stub*,
``def name(): pass`` on its ``def`` line and blank lines around it (signatures
of library code run to dozens of lines; parsing them cost more than the kept
code). Everything else (imports, module-level code, class headers and
class-level statements) is always kept. Nothing moves: every kept token keeps
its line and column, so positions, ``# noqa`` comments and fixes (which are
line/column edits on the original text) stay exact, and the stubs keep every
name a rule might look up (``def helper``, the class's method names and bases).

What a rule may see beyond the unit that matched is declared by
``Rule.context``:

* ``"function"``: the unit itself, plus (for every rule) the bodies of the
  helpers it calls by name, transitively: ``repackage_hidden(h)``,
  ``self.clear_grads()``, ``model.detach_state()``.
* ``"callers"``: also the units that call it by name, transitively (GL017 asks
  whether a caller turned grad off).
* ``"class"``: the whole top-level class around it (GL008 looks for the method
  that resets the state another method carries).
* ``"module"``: the whole file; no slicing at all.

``tests/static/test_slicing.py`` checks that every fixture gives the same
diagnostics sliced and whole.
"""

from __future__ import annotations

import ast
import re
from typing import Dict, List, Optional, Sequence, Set, Type

from gradlint.static.rule import Rule

# A line with its own terminator, as CPython counts lines (\r\n, \r or \n; not
# str.splitlines's \f, \v, \x1c.., \u2028 which would shift line numbers).
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
# A call by name: ``name(`` (a module-level function or class) or ``.name(`` (a method).
_CALL = re.compile(r"(\.?)\s*([A-Za-z_]\w*)\s*\(")

_DEF = (ast.FunctionDef, ast.AsyncFunctionDef)


class _Unit:
    __slots__ = ("name", "start", "def_line", "end", "container", "is_method", "text", "_calls")

    def __init__(self, node, container: Optional[int], lines: Sequence[str]) -> None:
        self.name: str = node.name
        self.start: int = _first_line(node)
        self.def_line: int = node.lineno
        self.end: int = node.end_lineno
        self.container = container  # index of the top-level class, None for a top-level def
        self.is_method = container is not None
        self.text = "".join(lines[self.start - 1 : self.end])
        self._calls: Optional[Set[tuple]] = None

    def calls(self) -> Set[tuple]:
        """``(is_method_call, name)`` for each call by name in the unit."""
        if self._calls is None:
            self._calls = {(bool(dot), name) for dot, name in _CALL.findall(self.text)}
        return self._calls


def _first_line(node: ast.stmt) -> int:
    """Where a statement starts, its decorators included."""
    return min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", ())])


def _units(tree: ast.Module, lines: Sequence[str]) -> List[_Unit]:
    units: List[_Unit] = []

    def members(body, container: int) -> None:
        for node in body:
            if isinstance(node, _DEF):
                units.append(_Unit(node, container, lines))
            elif isinstance(node, ast.ClassDef):
                members(node.body, container)

    for index, node in enumerate(tree.body):
        if isinstance(node, _DEF):
            units.append(_Unit(node, None, lines))
        elif isinstance(node, ast.ClassDef):
            members(node.body, index)
    return units


def _close_over_callees(units: List[_Unit], kept: Set[int]) -> None:
    functions: Dict[str, List[int]] = {}
    methods: Dict[str, List[int]] = {}
    for i, u in enumerate(units):
        if not (u.name.startswith("__") and u.name.endswith("__")):
            (methods if u.is_method else functions).setdefault(u.name, []).append(i)
    todo = list(kept)
    while todo:
        for is_method, name in units[todo.pop()].calls():
            for j in (methods if is_method else functions).get(name, ()):
                if j not in kept:
                    kept.add(j)
                    todo.append(j)


def _close_over_callers(units: List[_Unit], kept: Set[int], seeds: Set[int]) -> None:
    todo = list(seeds)
    while todo:
        name = units[todo.pop()].name
        for j, u in enumerate(units):
            if j not in kept and any(n == name for _, n in u.calls()):
                kept.add(j)
                todo.append(j)


def relevant_source(text: str, tree: ast.Module, rules: Sequence[Type[Rule]]) -> str:
    """``text`` with the units no rule in ``rules`` could match stubbed out (see module docs)."""
    if any(r.context == "module" for r in rules):
        return text
    lines = _LINE.findall(text)
    units = _units(tree, lines)
    if not units:
        return text
    kept: Set[int] = set()
    for rule in rules:
        mine = {i for i, u in enumerate(units) if rule.could_match_unit(u.text, text)}
        if rule.context == "class":
            classes = {units[i].container for i in mine if units[i].container is not None}
            mine |= {i for i, u in enumerate(units) if u.container in classes}
        kept |= mine
        if rule.context == "callers":
            _close_over_callers(units, kept, mine)
    _close_over_callees(units, kept)
    if len(kept) == len(units):
        return text

    out = list(lines)
    for i, u in enumerate(units):
        if i in kept:
            continue
        for row in range(u.start - 1, u.end):
            out[row] = "\n"
        def_line = lines[u.def_line - 1]
        indent = def_line[: len(def_line) - len(def_line.lstrip(" \t"))]
        out[u.def_line - 1] = f"{indent}def {u.name}(): pass\n"
    return "".join(out)
