"""Fast read-only traversal of libcst trees for analyses.

libcst's visitor machinery (``node.visit``, ``node.children``) rebuilds each
node's children through ``_visit_and_replace_children``; an analysis that walks a
subtree that way pays several times the parse. Analyses only read, so this walks
the dataclass fields directly, in libcst's order (per-class field lists computed
once), skipping whitespace and token nodes, which no analysis looks at. The
engine's rule traversal (``gradlint/static/traversal.py``) uses the same
``children``.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Iterator
from typing import TypeVar

import libcst as cst

N = TypeVar("N", bound=cst.CSTNode)

# Formatting-only nodes: never interesting to an analysis, and numerous.
SKIP: tuple[type, ...] = (
    cst.BaseParenthesizableWhitespace,
    cst.EmptyLine,
    cst.TrailingWhitespace,
    cst.Newline,
    cst.Comment,
    cst.LeftParen,
    cst.RightParen,
    cst.LeftSquareBracket,
    cst.RightSquareBracket,
    cst.LeftCurlyBrace,
    cst.RightCurlyBrace,
    cst.Comma,
    cst.Dot,
    cst.Colon,
    cst.Semicolon,
    cst.AssignEqual,
    cst.BaseUnaryOp,
    cst.BaseBinaryOp,
    cst.BaseBooleanOp,
    cst.BaseCompOp,
    cst.BaseAugOp,
)

# isinstance() against libcst's abstract base classes goes through ABCMeta
# (~0.5 µs), millions of times a run: decide once per concrete class instead.
OTHER, NODE, SEQUENCE = 0, 1, 2
_KIND: dict[type, int] = {}


def node_kind(cls: type) -> int:
    """NODE for a node class worth walking into, SEQUENCE for a tuple/list, OTHER else (formatting too)."""
    kind = _KIND.get(cls)
    if kind is None:
        if issubclass(cls, cst.CSTNode):
            kind = OTHER if issubclass(cls, SKIP) else NODE
        elif issubclass(cls, (tuple, list)):
            kind = SEQUENCE
        else:
            kind = OTHER
        _KIND[cls] = kind
    return kind


_VISITED_FIELD = re.compile(r"visit_\w+\(\s*self,\s*\"(\w+)\"")
_ORDER: dict[type, tuple[str, ...]] = {}


def field_order(cls: type) -> tuple[str, ...]:
    """The fields of ``cls`` that can hold code, in libcst's visiting (source) order.

    Taken once per class from its ``_visit_and_replace_children``: declaration
    order differs (a function's decorators are declared after its body, an
    ``IfExp``'s test before its body).
    """
    order = _ORDER.get(cls)
    if order is None:
        names = [f.name for f in dataclasses.fields(cls)]
        try:
            source = inspect.getsource(cls._visit_and_replace_children)
            visited = [n for n in dict.fromkeys(_VISITED_FIELD.findall(source)) if n in names]
        except (OSError, TypeError):  # no source (a frozen install): declaration order
            visited = []
        order = _ORDER[cls] = tuple(
            n
            for n in visited + [n for n in names if n not in visited]
            if not n.startswith(("whitespace", "lpar", "rpar", "leading_lines", "header", "footer"))
        )
    return order


def children(node: cst.CSTNode) -> list[cst.CSTNode]:
    """Direct children in source order, formatting nodes left out."""
    out: list[cst.CSTNode] = []
    for name in field_order(type(node)):
        value = getattr(node, name)
        kind = node_kind(type(value))
        if kind == NODE:
            out.append(value)
        elif kind == SEQUENCE:
            out.extend(v for v in value if node_kind(type(v)) == NODE)
    return out


iter_children = children


def walk(node: cst.CSTNode, *, into_scopes: bool = True) -> Iterator[cst.CSTNode]:
    """Pre-order, source order, ``node`` included. With ``into_scopes=False`` the
    bodies of nested functions, lambdas and classes are not entered (their code
    does not run where they are defined)."""
    stack = [node]
    pop, extend = stack.pop, stack.extend
    scopes = (cst.FunctionDef, cst.ClassDef, cst.Lambda)
    while stack:
        current = pop()
        yield current
        if not into_scopes and current is not node and isinstance(current, scopes):
            continue
        extend(reversed(children(current)))


def contains(root: cst.CSTNode, target: cst.CSTNode) -> bool:
    """Is ``target`` (by identity) ``root`` or inside it?"""
    stack = [root]
    while stack:
        node = stack.pop()
        if node is target:
            return True
        stack.extend(children(node))
    return False


def find_all(
    node: cst.CSTNode, kind: type[N] | tuple[type[N], ...], *, into_scopes: bool = True
) -> Iterator[N]:
    for n in walk(node, into_scopes=into_scopes):
        if isinstance(n, kind):
            yield n  # type: ignore[misc]
