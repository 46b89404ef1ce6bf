"""Adapter: annotations and root tensors from a ``gradlint.trace()`` object.

What it reads from the tracer (gradlint/runtime; read-only):

* the ``_Tag`` the tracer stores in every autograd node's ``metadata["_gradlint"]``:
  creating user line (``site``), op, iteration, graph, saved-tensor counts and bytes;
* the report (``t.report()``): findings (GR001 ``details["graph"]``, GR004
  ``details["saved_by_node"]``/``["saved_at"]``, GR002/GR003 ``details["holder"]``)
  and graph records (ids, ``alive_at_exit``, ``freed``).

The tracer keeps no reference to graphs (on purpose: it must not keep them alive),
so the tensors to draw from are found among live objects (``gc``) and in the
namespaces the caller passes (the script's globals, a traceback's frames).
"""

from __future__ import annotations

import gc
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from gradlint.render.annotations import NodeInfo

_TAG = "_gradlint"
_ACCUM = {"add", "__add__", "__radd__", "__iadd__", "add_", "sum", "stack", "cat", "sub", "__sub__", "sub_",
          "__isub__"}


def _tag_of(fn, sink=None):
    try:
        tag = fn.metadata.get(_TAG)
    except Exception:
        return None
    if tag is None or (sink is not None and getattr(tag, "sink", None) is not sink):
        return None
    return tag


def _fmt_site(site) -> Optional[str]:
    if not site:
        return None
    try:
        from gradlint.runtime._frames import fmt_site

        s = fmt_site(site)
        return None if s == "<unknown>" else s
    except Exception:  # pragma: no cover - tracer internals changed
        return None


def _report(t) -> dict:
    try:
        return t.report()
    except Exception:
        return {"findings": [], "graphs": []}


@dataclass
class _Live:
    """Live tensors (and modules) that belong to trace ``t``, from one gc pass."""

    tensors: List[Any] = field(default_factory=list)  # tensors whose grad_fn carries this trace's tag
    retains: set = field(default_factory=set)  # id(grad_fn) of non-leaf tensors with retain_grad()
    params: Dict[str, Any] = field(default_factory=dict)  # name -> parameter of the root modules


def _scan(t) -> _Live:
    import torch

    sink = getattr(t, "_sink", None)
    live = _Live()
    modules = []
    with warnings.catch_warnings():  # isinstance() on some lazy torch modules warns
        warnings.simplefilter("ignore")
        objs = [o for o in gc.get_objects() if isinstance(o, (torch.Tensor, torch.nn.Module))]
    for o in objs:
        if isinstance(o, torch.Tensor):
            try:
                fn = o.grad_fn
            except Exception:
                continue
            if fn is None:
                continue
            if _tag_of(fn, sink) is not None:
                live.tensors.append(o)
            if getattr(o, "retains_grad", False):
                live.retains.add(id(fn))
        elif isinstance(o, torch.nn.Module):
            modules.append(o)
    children = {id(c) for m in modules for c in m.children()}
    for m in modules:
        if id(m) in children:
            continue
        for name, p in m.named_parameters():
            live.params.setdefault(name, p)
    return live


def _graph_sets(rep: dict):
    """Graph ids concerned by GR001 / GR002, and GR004 node keys."""
    gr001 = set()
    gr004 = set()
    leak = False
    for f in rep.get("findings", []):
        d = f.get("details") or {}
        if f["code"] == "GR001" and d.get("graph") is not None:
            gr001.add(d["graph"])
        elif f["code"] == "GR004":
            at = d.get("saved_at") or {}
            gr004.add((d.get("saved_by_node"), at.get("filename"), at.get("line")))
        elif f["code"] == "GR002":
            leak = True
    leaked = set()
    if leak:
        for g in rep.get("graphs", []):
            if g.get("freed") is None or g.get("alive_at_exit"):
                leaked.add(g["id"])
    return gr001, leaked, gr004


def annotations_from_trace(t, graph_id: Optional[int] = None, live: Optional[_Live] = None):
    """``node -> NodeInfo`` from trace ``t``.

    ``saved_bytes`` are the activation bytes the node saved (kept after they are
    freed, so a freed node still says how much it held); ``state`` is left to the
    renderer's introspection (exact at drawing time, also after the trace stopped)
    except for nodes the tracer saw save nothing.  ``codes``: GR001 on the nodes
    of a graph kept by ``retain_graph=True``, GR002 on nodes of graphs alive across
    iterations when the trace found a leak, GR004 on the node whose saved tensor was
    modified in place.  With ``graph_id``, nodes of other graphs are labelled with
    their graph and iteration.
    """
    sink = getattr(t, "_sink", None)
    rep = _report(t)
    gr001, leaked, gr004 = _graph_sets(rep)
    retains = live.retains if live is not None else set()
    try:
        from gradlint.runtime._frames import site_parts
    except Exception:  # pragma: no cover
        site_parts = None

    def annotate(node) -> Optional[NodeInfo]:
        tag = _tag_of(node, sink)
        if tag is None:
            return NodeInfo(retains_grad=True) if id(node) in retains else None
        gid = getattr(getattr(tag, "graph", None), "id", None)
        codes = []
        if gid in gr001:
            codes.append("GR001")
        if gid in leaked:
            codes.append("GR002")
        if gr004 and site_parts is not None:
            fn, line, _ = site_parts(tag.site)
            if (tag.op, fn, line) in gr004:
                codes.append("GR004")
        nb = int(getattr(tag, "saved_bytes", 0) or 0)
        note = None
        if graph_id is not None and gid is not None and gid != graph_id:
            note = f"graph {gid}, iteration {tag.it}"
        return NodeInfo(
            saved_bytes=nb if nb > 0 else None,
            state=None,
            source=_fmt_site(tag.site),
            codes=codes,
            retains_grad=id(node) in retains,
            note=note,
        )

    return annotate


# --------------------------------------------------------------------------- choosing roots


def _reduce_roots(tensors: Sequence[Any], limit: int = 200_000) -> List[Any]:
    """Keep the tensors whose grad_fn no other candidate's graph reaches (the outputs)."""
    by_fn: Dict[int, Any] = {}
    for x in tensors:
        by_fn.setdefault(id(x.grad_fn), x)
    reached = set()
    seen = set()
    stack = []
    for x in by_fn.values():
        for n, _ in x.grad_fn.next_functions:
            if n is not None:
                stack.append(n)
    while stack and len(seen) < limit:
        f = stack.pop()
        if id(f) in seen:
            continue
        seen.add(id(f))
        reached.add(id(f))
        try:
            nexts = f.next_functions
        except Exception:
            continue
        for n, _ in nexts:
            if n is not None and id(n) not in seen:
                stack.append(n)
    return [x for k, x in by_fn.items() if k not in reached]


def _span(x, sink, limit=50_000):
    """(min iteration, max iteration) of the tagged nodes reachable from tensor ``x``."""
    lo = hi = None
    stack = [x.grad_fn]
    seen = set()
    while stack and len(seen) < limit:
        f = stack.pop()
        if id(f) in seen:
            continue
        seen.add(id(f))
        tag = _tag_of(f, sink)
        if tag is not None:
            lo = tag.it if lo is None else min(lo, tag.it)
            hi = tag.it if hi is None else max(hi, tag.it)
        try:
            nexts = f.next_functions
        except Exception:
            continue
        stack.extend(n for n, _ in nexts if n is not None)
    return lo, hi


def _lookup(namespaces: Iterable[Mapping[str, Any]], name: Optional[str]):
    import torch

    if not name:
        return None
    key = name[5:] if name.startswith("self.") else name
    for ns in namespaces or ():
        v = ns.get(name) if name in ns else None
        if v is None and name.startswith("self."):
            obj = ns.get("self")
            v = getattr(obj, key, None) if obj is not None else None
        if isinstance(v, torch.Tensor) and v.grad_fn is not None:
            return v
    return None


@dataclass
class GraphPick:
    """One picture to draw: root tensors, why, and the graph id they belong to."""

    label: str  # short file-name-safe description, e.g. "GR002_total_loss"
    title: str
    roots: List[Any]
    graph_id: Optional[int] = None
    names: List[str] = field(default_factory=list)


def _name_for(x, namespaces) -> Optional[str]:
    for ns in namespaces or ():
        for k, v in ns.items():
            if v is x and not k.startswith("_"):
                return k
    return None


def pick_graphs(t, namespaces: Sequence[Mapping[str, Any]] = (), live: Optional[_Live] = None) -> List[GraphPick]:
    """The graphs worth drawing: one per finding that has a graph (GR001-GR004) and
    one per retained / leaked graph still alive, most important first, deduplicated."""
    sink = getattr(t, "_sink", None)
    live = live if live is not None else _scan(t)
    rep = _report(t)
    picks: List[GraphPick] = []
    used = set()

    def add(label, title, roots, gid=None):
        roots = [r for r in roots if r is not None]
        key = tuple(sorted(id(r.grad_fn) for r in roots))
        if not roots or key in used:
            return
        used.add(key)
        names = [(_name_for(r, namespaces) or "output") for r in roots]
        picks.append(GraphPick(label, title, roots, gid, names))

    def of_graph(gid):
        return _reduce_roots([x for x in live.tensors if _graph_id(x, sink) == gid])

    for i, f in enumerate(rep.get("findings", [])):
        code, d = f["code"], f.get("details") or {}
        loc = f"{f.get('filename')}:{f.get('line')}" if f.get("filename") else ""
        title = f"{code} {loc}".strip()
        if code == "GR001" and d.get("graph") is not None:
            add(f"{code}_graph{d['graph']}", title + f" (graph {d['graph']} kept by retain_graph=True)",
                of_graph(d["graph"]), d["graph"])
        elif code in ("GR002", "GR003"):
            x = _lookup(namespaces, d.get("holder"))
            if x is None and code == "GR002":
                roots = _reduce_roots(live.tensors)
                spans = [(r, _span(r, sink)) for r in roots]
                multi = [r for r, (lo, hi) in spans if lo is not None and hi is not None and hi > lo]
                x = multi[0] if multi else None
            if x is not None:
                holder = d.get("holder") or "graph"
                add(f"{code}_{holder}", title + f" (`{holder}`)", [x], _graph_id(x, sink))
        elif code == "GR004":
            at = d.get("saved_at") or {}
            want = (d.get("saved_by_node"), at.get("filename"), at.get("line"))
            from gradlint.runtime._frames import site_parts

            for x in _reduce_roots(live.tensors):
                hit = _find_node(x, sink, lambda tag: (tag.op,) + tuple(site_parts(tag.site)[:2]) == want)
                if hit is not None:
                    add(f"{code}_{d.get('saved_by_node') or 'node'}", title + " (saved tensor modified in place)",
                        [x], hit.graph.id if getattr(hit, "graph", None) is not None else None)
                    break
    # retained / leaked graphs still alive that no finding covered
    for g in rep.get("graphs", []):
        held = sum((g.get("saved_bytes") or {}).values())
        if g.get("freed") is None and (g.get("alive_at_exit") or held > 0):
            roots = of_graph(g["id"])
            if roots:
                add(f"graph{g['id']}", f"graph {g['id']} (iteration {g['iteration']}), still alive", roots, g["id"])
    return picks


def _graph_id(x, sink) -> Optional[int]:
    tag = _tag_of(x.grad_fn, sink)
    return getattr(getattr(tag, "graph", None), "id", None)


def _find_node(x, sink, pred, limit=200_000):
    stack = [x.grad_fn]
    seen = set()
    while stack and len(seen) < limit:
        f = stack.pop()
        if id(f) in seen:
            continue
        seen.add(id(f))
        tag = _tag_of(f, sink)
        if tag is not None and pred(tag):
            return tag
        try:
            nexts = f.next_functions
        except Exception:
            continue
        stack.extend(n for n, _ in nexts if n is not None)
    return None


# --------------------------------------------------------------------------- drawing


def _leaf_names(namespaces) -> Dict[str, Any]:
    """Leaf tensors that require grad, named as the caller's namespaces name them."""
    import torch

    out: Dict[str, Any] = {}
    for ns in reversed(list(namespaces or ())):  # innermost wins
        for k, v in list(ns.items()):
            if isinstance(v, torch.Tensor) and v.requires_grad and v.grad_fn is None and not k.startswith("_"):
                out[k] = v
    return out


def _draw(t, pick: GraphPick, path, params, live: _Live, namespaces=(), **kw) -> Path:
    from gradlint.render import render

    ann = annotations_from_trace(t, graph_id=pick.graph_id, live=live)
    rep = _report(t)
    gr001, leaked, _ = _graph_sets(rep)
    codes = []
    if pick.graph_id in gr001:
        codes.append("GR001")
    if pick.graph_id in leaked:
        codes.append("GR002")
    if params is None:
        params = dict(live.params)
        params.update(_leaf_names(namespaces))
    return render(pick.roots, path, params=params, annotations=ann,
                  title=kw.pop("title", None) or pick.title, output_names=pick.names, **kw)


def render_trace(t, path: Union[str, Path], graph: Optional[int] = None, params: Optional[Dict[str, Any]] = None,
                 namespaces: Sequence[Mapping[str, Any]] = (), **kw) -> Path:
    """Draw graph ``graph`` of trace ``t`` (default: the most relevant graph still
    alive, see :func:`pick_graphs`) into ``path``."""
    live = _scan(t)
    sink = getattr(t, "_sink", None)
    if graph is not None:
        roots = _reduce_roots([x for x in live.tensors if _graph_id(x, sink) == graph])
        if not roots:
            known = [g["id"] for g in _report(t).get("graphs", [])]
            raise LookupError(
                f"graph {graph} of this trace is not alive any more (no live tensor holds it"
                + ("" if graph in known else f"; recorded graph ids: {known[:20]}")
                + "), so there is nothing to draw: keep the loss alive, or pass it: gradlint.render(loss, path)"
            )
        names = [(_name_for(r, namespaces) or "output") for r in roots]
        pick = GraphPick(f"graph{graph}", f"graph {graph}", roots, graph, names)
    else:
        picks = pick_graphs(t, namespaces, live=live)
        if not picks:
            roots = _reduce_roots(live.tensors)
            if not roots:
                raise LookupError("no graph of this trace is alive any more, so there is nothing to draw: "
                                  "pass a tensor instead: gradlint.render(loss, path)")
            pick = GraphPick("graph", "autograd graph", roots[-1:], None, ["output"])
        else:
            pick = picks[0]
    return _draw(t, pick, path, params, live, namespaces, **kw)


def render_picks(t, directory: Union[str, Path], namespaces: Sequence[Mapping[str, Any]] = (),
                 params: Optional[Dict[str, Any]] = None, fmt: str = "png", limit: int = 20):
    """Draw one picture per :func:`pick_graphs` entry into ``directory`` (created if
    missing); returns ``[(GraphPick, Path), ...]``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    live = _scan(t)
    out = []
    for i, pick in enumerate(pick_graphs(t, namespaces, live=live)[:limit]):
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in pick.label)
        out.append((pick, _draw(t, pick, directory / f"{i + 1:02d}_{safe}.{fmt}", params, live, namespaces)))
    return out


def trace_png(t, namespaces: Sequence[Mapping[str, Any]] = ()) -> Optional[bytes]:
    """PNG of the most relevant live graph of ``t`` (``None`` if none, or no ``dot``)."""
    import tempfile

    from gradlint.render.output import dot_binary

    if dot_binary() is None:
        return None
    try:
        with tempfile.TemporaryDirectory() as d:
            p = render_trace(t, Path(d) / "g.png", namespaces=namespaces)
            return p.read_bytes()
    except LookupError:
        return None
