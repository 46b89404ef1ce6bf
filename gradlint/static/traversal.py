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

from collections.abc import Callable, Sequence

import libcst as cst

from gradlint.static.semantics.walk import children

Visitor = Callable[[cst.CSTNode], object]


def run(
    module: cst.Module,
    visitors: Sequence[dict[str, Visitor]],
    enter: Callable[[cst.CSTNode], None],
    leave: Callable[[cst.CSTNode], None],
) -> None:
    """Pre-order ``enter`` + ``visit_*``, post-order ``leave_*`` + ``leave``, like ``visit_batched``."""
    table: dict[type, tuple[list[Visitor], list[Visitor]]] = {}

    def methods(cls: type) -> tuple[list[Visitor], list[Visitor]]:
        found = table.get(cls)
        if found is None:
            name = cls.__name__
            found = table[cls] = (
                [v[f"visit_{name}"] for v in visitors if f"visit_{name}" in v],
                [v[f"leave_{name}"] for v in visitors if f"leave_{name}" in v],
            )
        return found

    stack: list[tuple[cst.CSTNode, bool]] = [(module, False)]
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
