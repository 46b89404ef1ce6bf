"""Does a value leave autograd? Follow an expression to every place its value goes.

A read of a tensor that ends as a Python number, in an image file, a log line,
a comparison or a format string cannot make any gradient wrong: rules that
speak of gradients report only reads that may flow back into autograd.

``leaves_autograd(node, parent, scope)`` walks up from ``node`` through the
operations that pass a value on (views, arithmetic, ``torch.cat``, tuples,
comprehensions), and through an assignment to a name into every later read of
that name in ``scope`` (a few hops deep). It answers True only when every path
ends in a sink (:mod:`vocabulary`: ``.item()``, ``save_image``, ``print``,
loggers, ``torch.equal``, comparisons, f-strings, a discarded expression); a
path it cannot follow (a return, an unknown call, an in-place edit) answers
False.
"""

from __future__ import annotations

from collections.abc import Callable

import libcst as cst

from gradlint.static.semantics.imports import dotted_name
from gradlint.static.semantics.vocabulary import (
    METADATA_ATTRS,
    PASS_THROUGH_FUNCTIONS,
    SINK_FUNCTIONS,
    SINK_NAMESPACES,
    SINK_PREFIX_LOOKALIKES,
    TO_PYTHON_METHODS,
    WITH_INDICES_METHODS,
)
from gradlint.static.semantics.walk import iter_children

Parent = Callable[[cst.CSTNode], "cst.CSTNode | None"]
_MAX_HOPS = 6  # assignments followed; beyond that, assume the value may reach autograd
_COMPS = (cst.ListComp, cst.GeneratorExp, cst.SetComp)


def _is_inplace(method: str) -> bool:
    return method.endswith("_") and not method.endswith("__")


def _callee(call: cst.Call) -> str:
    return dotted_name(call.func) or ""


def _is_sink_call(call: cst.Call) -> bool:
    name = _callee(call)
    last = name.rsplit(".", 1)[-1]
    if last in SINK_FUNCTIONS or name.startswith(SINK_NAMESPACES):
        return True
    if last.endswith("_") or last in SINK_PREFIX_LOOKALIKES:
        return False  # ``p.add_(v)``, ``F.log_softmax(v)``: computation, not a sink
    return last.startswith(("log_", "add_", "save_", "plot_", "show_", "assert"))


def leaves_autograd(node: cst.CSTNode, parent: Parent, scope: cst.CSTNode | None, _hops: int = 0) -> bool:
    """True when every use of the value of ``node`` ends where no gradient can reach it."""
    current = node
    while True:
        up = parent(current)
        if up is None:
            return False
        if isinstance(up, cst.Subscript) and up.value is current:
            current = up
            continue
        if isinstance(up, (cst.SubscriptElement, cst.Index, cst.Slice)):
            return True  # used as an index
        if isinstance(up, cst.Attribute) and up.value is current:
            attr = up.attr.value
            call = parent(up)
            if not (isinstance(call, cst.Call) and call.func is up):
                if attr in METADATA_ATTRS:
                    return True
                current = up  # ``x.T``, ``x.real``
                continue
            if attr in TO_PYTHON_METHODS:
                return True
            if attr in WITH_INDICES_METHODS:
                sub = parent(call)
                if isinstance(sub, cst.Subscript) and sub.value is call and len(sub.slice) == 1:
                    index = sub.slice[0].slice
                    if isinstance(index, cst.Index) and isinstance(index.value, cst.Integer):
                        if index.value.value == "1":
                            return True
            if _is_inplace(attr) or attr in ("backward", "register_hook", "retain_grad", "requires_grad_"):
                return False
            if attr in ("append", "extend", "add", "insert", "put", "push"):
                return False  # into a container: where it goes next is not followed
            current = call  # any other method: its result carries the value on
            continue
        if isinstance(up, (cst.BinaryOperation, cst.UnaryOperation, cst.BooleanOperation, cst.IfExp)):
            current = up
            continue
        if isinstance(up, (cst.Comparison, cst.ComparisonTarget)):
            return True
        if isinstance(up, (cst.FormattedStringExpression,)):
            return True
        if isinstance(up, (cst.Element, cst.StarredElement)):
            current = parent(up) or up
            if current is up:
                return False
            continue
        if isinstance(up, (cst.Tuple, cst.List, cst.Set)):
            current = up
            continue
        if isinstance(up, _COMPS) and up.elt is current:
            current = up
            continue
        if isinstance(up, cst.CompFor) and up.iter is current:
            comp = parent(up)
            while isinstance(comp, cst.CompFor):
                comp = parent(comp)
            if not isinstance(comp, _COMPS):
                return False
            current = comp  # the items of ``[x for x in v]`` are ``v``'s items
            continue
        if isinstance(up, cst.Arg):
            call = parent(up)
            if not isinstance(call, cst.Call):
                return False
            if _is_sink_call(call):
                return True
            last = _callee(call).rsplit(".", 1)[-1]
            if last in PASS_THROUGH_FUNCTIONS:
                current = call
                continue
            return False
        if isinstance(up, cst.Expr):
            return True  # the value is dropped
        if isinstance(up, (cst.If, cst.While, cst.Assert)) and getattr(up, "test", None) is current:
            return True
        if isinstance(up, (cst.Assign, cst.AugAssign, cst.AnnAssign)) and up.value is current:
            targets = [t.target for t in up.targets] if isinstance(up, cst.Assign) else [up.target]
            return all(_target_leaves(t, up, parent, scope, _hops) for t in targets)
        if isinstance(up, cst.AssignTarget):
            return False
        return False


def _target_leaves(
    target: cst.BaseExpression, stmt: cst.CSTNode, parent: Parent, scope: cst.CSTNode | None, hops: int
) -> bool:
    while isinstance(target, cst.Subscript):
        target = target.value  # ``weights[name] = v``: follow ``weights``
    if isinstance(target, (cst.Tuple, cst.List)):
        return all(
            _target_leaves(el.value, stmt, parent, scope, hops)
            for el in target.elements
            if isinstance(el, (cst.Element, cst.StarredElement))
        )
    if not isinstance(target, cst.Name) or scope is None or hops >= _MAX_HOPS:
        return False
    name = target.value
    # Reads inside the assignment itself (``x = f(x.data)``, ``acc = a if acc is None else cat((acc, a))``)
    # are where the value came from, not where it goes.
    own = set(_names(stmt, name))
    reads = [n for n in _names(scope, name) if n not in own and not _is_store(n, parent)]
    return all(leaves_autograd(n, parent, scope, hops + 1) for n in reads)


def _is_store(node: cst.Name, parent: Parent) -> bool:
    up = parent(node)
    if isinstance(up, (cst.AssignTarget, cst.CompFor, cst.For)) and getattr(up, "target", None) is node:
        return True
    if isinstance(up, (cst.AugAssign, cst.AnnAssign)) and up.target is node:
        return False  # ``x += v`` reads x too, but its fate is the statement's: follow it
    if isinstance(up, (cst.Element, cst.Tuple, cst.List)):
        owner = parent(up) if isinstance(up, cst.Element) else up
        while isinstance(owner, (cst.Tuple, cst.List, cst.Element)):
            nxt = parent(owner)
            if nxt is None:
                break
            owner = nxt
        return isinstance(owner, (cst.AssignTarget, cst.For, cst.CompFor))
    return False


def _names(scope: cst.CSTNode, name: str) -> list[cst.Name]:
    out = []
    stack = [scope]
    while stack:
        node = stack.pop()
        if isinstance(node, cst.Name) and node.value == name:
            out.append(node)
            continue
        if node is not scope and isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            continue
        if isinstance(node, cst.Attribute):
            stack.append(node.value)  # ``obj.name`` is not a read of ``name``
        elif isinstance(node, cst.Arg):
            stack.append(node.value)  # nor is ``f(name=...)``
        else:
            stack.extend(iter_children(node))
    return out
