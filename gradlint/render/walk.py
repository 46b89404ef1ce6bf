"""Iterative walk of an autograd graph into a small, plain model.

Why not ``torchviz.make_dot``: it recurses once per node (``RecursionError`` near
3,000 ops on CPython's default limit), raises on ``show_saved=True`` once
``backward()`` has freed the saved tensors, and imports ``distutils`` at import
time (removed in Python 3.12).  The walk below is an explicit stack, never touches
a freed saved tensor without catching the error (a freed buffer is a *fact* to
draw, not a failure), and needs nothing but torch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

SAVED_PREFIX = "_saved_"

# Per grad_fn class: names of its ``_saved_*`` attributes (dir() is slow; classes are few).
_saved_attr_cache: dict[type, tuple[str, ...]] = {}


def _saved_attrs(fn) -> tuple[str, ...]:
    cls = type(fn)
    names = _saved_attr_cache.get(cls)
    if names is None:
        names = tuple(
            a
            for a in dir(cls)
            if a.startswith(SAVED_PREFIX)
            and not a.endswith(("_sym_sizes", "_sym_strides", "_sizes", "_strides"))
        )
        _saved_attr_cache[cls] = names
    return names


@dataclass
class GNode:
    """One drawn unit of the autograd graph.

    ``kind`` is ``"fn"`` (a backward node), ``"leaf"`` (a leaf tensor, i.e. an
    ``AccumulateGrad`` node and its ``.variable``) or ``"output"`` (a tensor the walk
    started from).
    """

    key: int
    kind: str
    name: str
    obj: Any = None  # the grad_fn (fn/leaf) or the tensor (output); kept alive during the walk
    inputs: list[int] = field(default_factory=list)  # keys of the nodes this one consumes
    seq: int = -1
    shape: tuple[int, ...] | None = None
    # introspected (may be overridden by annotations)
    saved_bytes: int | None = None
    state: str | None = None  # "alive" | "freed" | None (nothing saved / unknown)
    inplace_modified: bool = False
    source: str | None = None
    # leaf tensors
    param_name: str | None = None
    has_grad: bool | None = None
    retains_grad: bool = False


def _tensor_bytes(t) -> int:
    try:
        return int(t.nelement()) * int(t.element_size())
    except Exception:  # pragma: no cover - exotic tensor subclasses
        return 0


def introspect_saved(fn) -> tuple[int | None, str | None, bool]:
    """``(saved_bytes, state, inplace_modified)`` read from a grad_fn's ``_saved_*`` slots.

    After ``backward()`` reading a freed slot raises; that is how "freed" is known.
    A slot whose tensor was later modified in place raises a different error: that
    node would fail in backward (what the tracer reports as GR004).
    """
    names = _saved_attrs(fn)
    if not names:
        return None, None, False
    import torch

    total = 0
    seen_any = False
    freed = False
    inplace = False
    ptrs = set()
    for a in names:
        try:
            val = getattr(fn, a)
        except RuntimeError as e:
            msg = str(e)
            if "modified by an inplace operation" in msg:
                inplace = True
                seen_any = True
            else:
                freed = True
            continue
        except Exception:
            continue
        vals = val if isinstance(val, (tuple, list)) else (val,)
        for v in vals:
            if isinstance(v, torch.Tensor):
                seen_any = True
                try:
                    key = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape))
                except Exception:
                    key = id(v)
                if key in ptrs:
                    continue
                ptrs.add(key)
                total += _tensor_bytes(v)
    if freed:
        return None, "freed", inplace
    if not seen_any:
        return None, None, inplace
    return (total if ptrs else None), "alive", inplace


def anomaly_source(fn) -> str | None:
    """``file:line`` of the user frame that created ``fn``, when anomaly mode recorded it."""
    try:
        tb = fn.metadata.get("traceback_")
    except Exception:
        return None
    if not tb:
        return None
    torch_dir = os.sep + "torch" + os.sep
    for entry in reversed(list(tb)):
        line = entry.strip().splitlines()[0] if entry.strip() else ""
        if not line.startswith("File "):
            continue
        try:
            path = line.split('"', 2)[1]
            lineno = int(line.split("line ", 1)[1].split(",", 1)[0])
        except (IndexError, ValueError):
            continue
        if torch_dir in path or (os.sep + "gradlint" + os.sep) in path:
            continue
        return f"{_short(path)}:{lineno}"
    return None


def _short(path: str) -> str:
    try:
        cwd = os.getcwd() + os.sep
    except OSError:  # pragma: no cover
        return path
    return path[len(cwd) :] if path.startswith(cwd) else path


@dataclass
class Walk:
    nodes: dict[int, GNode]
    order: list[int]  # topological: inputs before consumers
    roots: list[int]


def _seq(fn) -> int:
    try:
        s = int(fn._sequence_nr())
    except Exception:
        return -1
    return -1 if s >= 2**63 else s  # AccumulateGrad reports UINT64_MAX


def _is_tensor(x) -> bool:
    import torch

    return isinstance(x, torch.Tensor)


def walk(
    roots: Sequence[Any],
    params: dict[str, Any] | None = None,
    introspect: bool = True,
    output_names: Sequence[str] | None = None,
) -> Walk:
    """Walk the graph(s) reachable from ``roots`` (tensors or grad_fn nodes), iteratively."""
    param_map = {id(v): k for k, v in (params or {}).items()}
    nodes: dict[int, GNode] = {}
    root_keys: list[int] = []
    start_fns = []

    for i, r in enumerate(roots):
        if _is_tensor(r):
            name = (
                (output_names[i] if output_names and i < len(output_names) else None)
                or param_map.get(id(r))
                or "output"
            )
            out = GNode(
                key=id(r),
                kind="output",
                name=name,
                obj=r,
                shape=tuple(r.shape),
                retains_grad=bool(getattr(r, "retains_grad", False)),
            )
            if r.grad_fn is not None:
                out.inputs.append(id(r.grad_fn))
                start_fns.append(r.grad_fn)
            elif r.requires_grad:  # a leaf: draw it as the leaf it is
                out.kind = "leaf"
                out.param_name = param_map.get(id(r))
                out.has_grad = r.grad is not None
            nodes[out.key] = out
            root_keys.append(out.key)
        elif r is not None and hasattr(r, "next_functions"):
            start_fns.append(r)
            root_keys.append(id(r))
        else:
            raise TypeError(
                f"cannot draw an autograd graph from {type(r).__name__}: pass a tensor or a grad_fn"
            )

    # Iterative post-order DFS: `order` lists every input before its consumers.
    order: list[int] = []
    stack: list[tuple[Any, bool]] = [(fn, False) for fn in reversed(start_fns)]
    while stack:
        fn, expanded = stack.pop()
        key = id(fn)
        if expanded:
            order.append(key)
            continue
        if key in nodes:
            continue
        var = getattr(fn, "variable", None)
        if var is not None:  # AccumulateGrad: draw the leaf tensor itself
            node = GNode(
                key=key,
                kind="leaf",
                name=type(fn).__name__,
                obj=fn,
                seq=-1,
                shape=tuple(var.shape),
                param_name=param_map.get(id(var)),
                has_grad=var.grad is not None,
                retains_grad=False,
            )
            nodes[key] = node
            order.append(key)
            continue
        node = GNode(key=key, kind="fn", name=type(fn).__name__, obj=fn, seq=_seq(fn))
        try:
            nexts = fn.next_functions
        except Exception:  # pragma: no cover
            nexts = ()
        for nxt, _ in nexts:
            if nxt is not None:
                node.inputs.append(id(nxt))
        if introspect:
            node.saved_bytes, node.state, node.inplace_modified = introspect_saved(fn)
            node.source = anomaly_source(fn)
        nodes[key] = node
        stack.append((fn, True))
        for nxt, _ in reversed(nexts):
            if nxt is not None and id(nxt) not in nodes:
                stack.append((nxt, False))
    # outputs last (they consume their grad_fn)
    for k in root_keys:
        if nodes[k].kind == "output" and k not in order:
            order.append(k)
        elif nodes[k].kind == "leaf" and k not in order:
            order.append(k)
    # dedupe inputs, keep order
    for n in nodes.values():
        if len(n.inputs) > 1:
            n.inputs = list(dict.fromkeys(n.inputs))
    return Walk(nodes=nodes, order=order, roots=root_keys)
