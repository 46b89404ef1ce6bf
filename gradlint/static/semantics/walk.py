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
# isinstance() against SKIP's abstract base classes goes through ABCMeta, ~1 µs
# a call, millions of calls a run: decide once per concrete class instead.
_SKIPPED: Dict[type, bool] = {}


def is_formatting(node: object) -> bool:
    cls = type(node)
    skipped = _SKIPPED.get(cls)
    if skipped is None:
        skipped = _SKIPPED[cls] = issubclass(cls, SKIP)
    return skipped


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
        if isinstance(value, cst.CSTNode):
            if not is_formatting(value):
                yield value
        elif isinstance(value, (tuple, list)):
            for item in value:
                if isinstance(item, cst.CSTNode) and not is_formatting(item):
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
