"""The one traversal that runs every rule of a file: libcst's visit order, a fraction of its cost.

libcst's ``visit_batched`` goes through ``_visit_and_replace_children`` on every
node, which rebuilds the node from its visited children even when nothing
changes: on the transformers tree that bookkeeping alone cost as much as the
parse. Rules only read, so this walks the node fields directly, in the order
libcst visits them (taken once per node class from its
``_visit_and_replace_children``: a function's decorators before its body, an
``IfExp``'s body before its test), calling the same ``visit_<Node>`` and
``leave_<Node>`` methods. Formatting nodes (whitespace, commas, brackets,
operators) are not visited: no rule has methods for them.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Callable, Dict, List, Sequence, Tuple

import libcst as cst

from gradlint.static.semantics.walk import NODE, SEQUENCE, node_kind

_VISITED_FIELD = re.compile(r"visit_\w+\(\s*self,\s*\"(\w+)\"")
_ORDER: Dict[type, Tuple[str, ...]] = {}


def field_order(cls: type) -> Tuple[str, ...]:
    """The fields of ``cls`` that can hold nodes, in libcst's visiting order."""
    order = _ORDER.get(cls)
    if order is None:
        names = [f.name for f in dataclasses.fields(cls)]
        try:
            source = inspect.getsource(cls._visit_and_replace_children)
            visited = [n for n in dict.fromkeys(_VISITED_FIELD.findall(source)) if n in names]
        except (OSError, TypeError):  # no source (a frozen install): declaration order
            visited = []
        order = tuple(visited + [n for n in names if n not in visited])
        order = tuple(n for n in order if not n.startswith(("whitespace", "lpar", "rpar")))
        _ORDER[cls] = order
    return order


def children(node: cst.CSTNode) -> List[cst.CSTNode]:
    """Direct children in libcst's visiting (source) order, formatting nodes left out."""
    out: List[cst.CSTNode] = []
    for name in field_order(type(node)):
        value = getattr(node, name)
        kind = node_kind(type(value))
        if kind == NODE:
            out.append(value)
        elif kind == SEQUENCE:
            out.extend(v for v in value if node_kind(type(v)) == NODE)
    return out


Visitor = Callable[[cst.CSTNode], object]


def run(
    module: cst.Module,
    visitors: Sequence[Dict[str, Visitor]],
    enter: Callable[[cst.CSTNode], None],
    leave: Callable[[cst.CSTNode], None],
) -> None:
    """Pre-order ``enter`` + ``visit_*``, post-order ``leave_*`` + ``leave``, like ``visit_batched``."""
    table: Dict[type, Tuple[List[Visitor], List[Visitor]]] = {}

    def methods(cls: type) -> Tuple[List[Visitor], List[Visitor]]:
        found = table.get(cls)
        if found is None:
            name = cls.__name__
            found = table[cls] = (
                [v[f"visit_{name}"] for v in visitors if f"visit_{name}" in v],
                [v[f"leave_{name}"] for v in visitors if f"leave_{name}" in v],
            )
        return found

    stack: List[Tuple[cst.CSTNode, bool]] = [(module, False)]
    pop, push = stack.pop, stack.append
    while stack:
        node, leaving = pop()
        on_visit, on_leave = methods(type(node))
        if leaving:
            for f in on_leave:
                f(node)
            leave(node)
            continue
        enter(node)
        for f in on_visit:
            f(node)
        push((node, True))
        stack.extend((c, False) for c in reversed(children(node)))
