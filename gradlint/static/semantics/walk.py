"""Fast read-only traversal of libcst trees for analyses.

libcst's visitor machinery (``node.visit``, ``node.children``) rebuilds each
node's children through ``_visit_and_replace_children``; an analysis that walks a
subtree that way pays several times the parse. Analyses only read, so this walks
the dataclass fields directly (per-class field lists computed once), skipping
whitespace and token nodes, which no analysis looks at.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Iterator, Tuple, Type, TypeVar, Union

import libcst as cst

N = TypeVar("N", bound=cst.CSTNode)

# Formatting-only nodes: never interesting to an analysis, and numerous.
SKIP: Tuple[type, ...] = (
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

_FIELDS: Dict[type, Tuple[str, ...]] = {}
# isinstance() against libcst's abstract base classes goes through ABCMeta
# (~0.5 µs), millions of times a run: decide once per concrete class instead.
OTHER, NODE, SEQUENCE = 0, 1, 2
_KIND: Dict[type, int] = {}


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


_FIELDS: Dict[type, Tuple[str, ...]] = {}


def _fields(cls: type) -> Tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(
            f.name
            for f in dataclasses.fields(cls)
            if not f.name.startswith(("whitespace", "lpar", "rpar", "leading_lines", "header", "footer"))
        )
    return names


def iter_children(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """Direct children in source order, formatting nodes left out."""
    for name in _fields(type(node)):
        value = getattr(node, name)
        kind = node_kind(type(value))
        if kind == NODE:
            yield value
        elif kind == SEQUENCE:
            for item in value:
                if node_kind(type(item)) == NODE:
                    yield item


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
        extend(reversed(tuple(iter_children(current))))


def find_all(node: cst.CSTNode, kind: Union[Type[N], Tuple[Type[N], ...]], *, into_scopes: bool = True) -> Iterator[N]:
    for n in walk(node, into_scopes=into_scopes):
        if isinstance(n, kind):
            yield n  # type: ignore[misc]
