"""Adapter: annotations and root tensors from a ``gradlint.trace()`` object.

It uses the tracer's public API only (gradlint/runtime, docs/runtime.md):

* ``t.node_info(node)``: creating user line, op, iteration, graph id, saved bytes,
  alive/freed state and ``retains_grad`` of a node the trace saw being created;
* ``t.graph_roots(graph_id)``: the live root tensors of a graph (the tracer holds
  them by weak references, so it keeps nothing alive);
* ``t.named_parameters()``: names of the parameters the trace saw;
* the report (``t.report()``): findings (``details["graph"]`` on GR001-GR004,
  GR004 ``details["saved_by_node"]``/``["saved_at"]``, GR002/GR003
  ``details["holder"]``) and graph records (ids, ``alive_at_exit``, ``freed``).

Only for a graph that is still alive but whose recorded roots all died (an
intermediate tensor holds it, not its output) are the tensors searched among the
live objects (``gc``); the namespaces the caller passes (the script's globals, a
traceback's frames) name outputs and leaves.
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradlint.render.annotations import NodeInfo
from gradlint.runtime.graphs import iter_graph


def _info(t, fn) -> dict | None:
    get = getattr(t, "node_info", None)
    if get is None or fn is None:
        return None
    try:
        return get(fn)
    except Exception:  # pragma: no cover - defensive: a picture never breaks on a node
        return None


def _report(t) -> dict:
    try:
        return t.report()
    except Exception:
        return {"findings": [], "graphs": []}


@dataclass
class _Live:
    """Live root tensors of trace ``t``, per graph, and parameter names."""

    tensors: list[Any] = field(default_factory=list)  # all roots found (deduplicated by grad_fn)
    by_graph: dict[int, list[Any]] = field(default_factory=dict)  # graph id -> its live roots
    params: dict[str, Any] = field(default_factory=dict)  # name -> parameter
    gc_used: bool = False  # the gc fallback ran (some alive graph had no live recorded root)


def _scan(t, namespaces: Sequence[Mapping[str, Any]] = (), everything: bool = False) -> _Live:
    """Roots from ``t.graph_roots``; a ``gc`` pass only for alive graphs whose recorded roots are all gone."""
    import torch

    live = _Live()
    seen = set()

    def add(gid, x):
        live.by_graph.setdefault(gid, []).append(x)
        if id(x.grad_fn) not in seen:
            seen.add(id(x.grad_fn))
            live.tensors.append(x)

    missing = set()
    roots_of = getattr(t, "graph_roots", None)
    for g in _report(t).get("graphs", []):
        gid = g["id"]
        roots = roots_of(gid) if roots_of is not None else []
        for x in roots:
            add(gid, x)
        if not roots and g.get("freed") is None:
            missing.add(gid)
    if everything and not live.tensors:  # last resort: any live tensor whose graph the trace saw
        missing = {g["id"] for g in _report(t).get("graphs", [])} | {None}
    if missing:
        live.gc_used = True
        with warnings.catch_warnings():  # isinstance() on some lazy torch modules warns
            warnings.simplefilter("ignore")
            objs = [o for o in gc.get_objects() if isinstance(o, torch.Tensor)]
        for o in objs:
            try:
                fn = o.grad_fn
            except Exception:
                continue
            info = _info(t, fn) if fn is not None else None
            if info is not None and (info["graph"] in missing or (everything and info["graph"] is not None)):
                add(info["graph"], o)
        del objs
    # parameter names: the trace's, then the modules found in the caller's namespaces
    try:  # "model.0.weight": the trace's module paths, prefixed by the model's variable name
        qualified = t.model_names() if hasattr(t, "model_names") else {}
        for name, p in t.named_parameters():
            live.params[qualified.get(id(p), name)] = p
    except Exception:
        pass
    mods = []
    for ns in namespaces or ():
        for k, v in list(ns.items()):
            if isinstance(v, torch.nn.Module) and not k.startswith("_"):
                mods.append((k, v))
    children = {id(c) for _, m in mods for c in m.modules() if c is not m}
    known = {id(p) for p in live.params.values()}
    for var, m in mods:
        if id(m) not in children:
            for name, p in m.named_parameters():
                if id(p) not in known:
                    known.add(id(p))
                    live.params[f"{var}.{name}"] = p
    return live


def _graph_sets(rep: dict):
    """Graph ids concerned by GR001 / GR002, and GR004 node keys."""
    gr001 = set()
    gr004 = set()
    gr003 = set()
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
        elif f["code"] == "GR003" and d.get("node"):
            n = d["node"]
            gr003.add((n.get("op"), n.get("filename"), n.get("line"), n.get("iteration")))
    leaked = set()
    if leak:
        for g in rep.get("graphs", []):
            if g.get("freed") is None or g.get("alive_at_exit"):
                leaked.add(g["id"])
    return gr001, leaked, gr004, gr003


def annotations_from_trace(t, graph_id: int | None = None, live: _Live | None = None):  # noqa: ARG001
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
    rep = _report(t)
    gr001, leaked, gr004, gr003 = _graph_sets(rep)

    def annotate(node) -> NodeInfo | None:
        info = _info(t, node)
        if info is None:
            return None
        gid = info["graph"]
        codes = []
        if gid in gr001:
            codes.append("GR001")
        if gid in leaked:
            codes.append("GR002")
        site = info.get("site") or {}
        if gr004 and (info["op"], site.get("filename"), site.get("line")) in gr004:
            codes.append("GR004")
        if gr003 and (info["op"], site.get("filename"), site.get("line"), info["iteration"]) in gr003:
            codes.append("GR003")
        nb = int(info.get("saved_bytes") or 0)
        note = None
        if graph_id is not None and gid is not None and gid != graph_id:
            note = f"graph {gid}, iteration {info['iteration']}"
        return NodeInfo(
            saved_bytes=nb if nb > 0 else None,
            state=None,
            source=info.get("source"),
            codes=codes,
            retains_grad=bool(info.get("retains_grad")),
            note=note,
            findings_known=True,
        )

    return annotate


# --------------------------------------------------------------------------- choosing roots


def _reduce_roots(tensors: Sequence[Any], limit: int = 200_000) -> list[Any]:
    """Keep the tensors whose grad_fn no other candidate's graph reaches (the outputs)."""
    by_fn: dict[int, Any] = {}
    for x in tensors:
        by_fn.setdefault(id(x.grad_fn), x)
    reached = {id(f) for f in iter_graph(list(by_fn.values()), skip_roots=True, limit=limit)}
    return [x for k, x in by_fn.items() if k not in reached]


def _span(t, x, limit=50_000):
    """(min iteration, max iteration) of the traced nodes reachable from tensor ``x``."""
    its = [info["iteration"] for f in iter_graph([x], limit=limit) if (info := _info(t, f)) is not None]
    return (min(its), max(its)) if its else (None, None)


def _lookup(namespaces: Iterable[Mapping[str, Any]], name: str | None):
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
    roots: list[Any]
    graph_id: int | None = None
    names: list[str] = field(default_factory=list)
    findings: list[int] = field(default_factory=list)  # indexes into the report's findings it illustrates


def _name_for(x, namespaces) -> str | None:
    for ns in namespaces or ():
        for k, v in ns.items():
            if k.startswith("_"):
                continue
            if v is x:
                return k
            if isinstance(v, (list, tuple)) and len(v) < 100_000:
                for i, y in enumerate(v):
                    if y is x:
                        return f"{k}[{i}]"
    return None


def _root_names(t, roots, gid, holder, namespaces) -> list[str]:
    """What the user calls each root: a namespace name (``hidden``, ``history[0]``), the name the trace saw
    at backward, the finding's holder, else ``output``."""
    traced = []
    if gid is not None and hasattr(t, "graph_root_names"):
        try:
            traced = t.graph_root_names(gid)
        except Exception:  # pragma: no cover
            traced = []
    out = []
    for i, r in enumerate(roots):
        name = _name_for(r, namespaces)
        if name is None and i < len(traced):
            name = traced[i]
        if name is None and holder and len(roots) == 1:
            name = holder
        out.append(name or "output")
    return out


def pick_graphs(
    t, namespaces: Sequence[Mapping[str, Any]] = (), live: _Live | None = None
) -> list[GraphPick]:
    """The graphs worth drawing: one per finding that has a graph (GR001-GR004) and
    one per retained / leaked graph still alive, most important first.  A graph two findings concern is
    drawn once, listing both findings."""
    live = live if live is not None else _scan(t, namespaces)
    rep = _report(t)
    picks: list[GraphPick] = []
    used: dict[tuple, GraphPick] = {}

    def add(label, title, roots, gid=None, holder=None, finding=None):
        roots = [r for r in roots if r is not None]
        key = tuple(sorted(id(r.grad_fn) for r in roots))
        if not roots:
            return
        if key in used:
            if finding is not None:
                used[key].findings.append(finding)
            return
        names = _root_names(t, roots, gid, holder, namespaces)
        pick = GraphPick(label, title, roots, gid, names, [finding] if finding is not None else [])
        used[key] = pick
        picks.append(pick)

    def of_graph(gid):
        return _reduce_roots(live.by_graph.get(gid, [])) if gid is not None else []

    for idx, f in enumerate(rep.get("findings", [])):
        code, d = f["code"], f.get("details") or {}
        loc = f"{f.get('filename')}:{f.get('line')}" if f.get("filename") else ""
        title = f"{code} {loc}".strip()
        gid = d.get("graph")
        if code == "GR001" and gid is not None:
            add(
                f"{code}_graph{gid}",
                title + f" (graph {gid} kept by retain_graph=True)",
                of_graph(gid),
                gid,
                finding=idx,
            )
        elif code in ("GR002", "GR003"):
            holder = d.get("holder")
            x = _lookup(namespaces, holder)
            if x is None and gid is not None:
                roots = of_graph(gid)
                x = roots[-1] if roots else None
            if x is None and code == "GR002":
                spans = [(r, _span(t, r)) for r in _reduce_roots(live.tensors)]
                multi = [r for r, (lo, hi) in spans if lo is not None and hi is not None and hi > lo]
                x = multi[0] if multi else None
            if x is not None:
                label = holder or "graph"
                add(f"{code}_{label}", title + f" (`{label}`)", [x], _graph_id(t, x), holder, finding=idx)
        elif code == "GR004":
            at = d.get("saved_at") or {}
            want = (d.get("saved_by_node"), at.get("filename"), at.get("line"))

            def is_it(info, want=want):
                site = info.get("site") or {}
                return (info["op"], site.get("filename"), site.get("line")) == want

            cands = of_graph(gid) or _reduce_roots(live.tensors)
            for x in cands:
                hit = _find_node(t, x, is_it)
                if hit is not None:
                    add(
                        f"{code}_{d.get('saved_by_node') or 'node'}",
                        title + " (saved tensor modified in place)",
                        [x],
                        hit["graph"],
                        finding=idx,
                    )
                    break
    # retained / leaked graphs still alive that no finding covered
    for g in rep.get("graphs", []):
        held = sum((g.get("saved_bytes") or {}).values())
        if g.get("freed") is None and (g.get("alive_at_exit") or held > 0):
            roots = of_graph(g["id"])
            if roots:
                add(
                    f"graph{g['id']}",
                    f"graph {g['id']} (iteration {g['iteration']}), still alive",
                    roots,
                    g["id"],
                )
    return picks


def _graph_id(t, x) -> int | None:
    info = _info(t, x.grad_fn)
    return info["graph"] if info is not None else None


def _find_node(t, x, pred, limit=200_000) -> dict | None:
    for f in iter_graph([x], limit=limit):
        info = _info(t, f)
        if info is not None and pred(info):
            return info
    return None


# --------------------------------------------------------------------------- drawing


def _leaf_names(namespaces) -> dict[str, Any]:
    """Leaf tensors that require grad, named as the caller's namespaces name them."""
    import torch

    out: dict[str, Any] = {}
    for ns in reversed(list(namespaces or ())):  # innermost wins
        for k, v in list(ns.items()):
            if (
                isinstance(v, torch.Tensor)
                and v.requires_grad
                and v.grad_fn is None
                and not k.startswith("_")
            ):
                out[k] = v
    return out


def _draw(t, pick: GraphPick, path, params, live: _Live, namespaces=(), **kw) -> Path:
    from gradlint.render import render

    ann = annotations_from_trace(t, graph_id=pick.graph_id, live=live)
    rep = _report(t)
    gr001, leaked, _, _ = _graph_sets(rep)
    codes = []
    if pick.graph_id in gr001:
        codes.append("GR001")
    if pick.graph_id in leaked:
        codes.append("GR002")
    if params is None:
        params = dict(live.params)
        params.update(_leaf_names(namespaces))
    return render(
        pick.roots,
        path,
        params=params,
        annotations=ann,
        title=kw.pop("title", None) or pick.title,
        output_names=pick.names,
        **kw,
    )


def render_trace(
    t,
    path: str | Path,
    graph: int | None = None,
    params: dict[str, Any] | None = None,
    namespaces: Sequence[Mapping[str, Any]] = (),
    **kw,
) -> Path:
    """Draw graph ``graph`` of trace ``t`` (default: the most relevant graph still
    alive, see :func:`pick_graphs`) into ``path``."""
    live = _scan(t, namespaces)
    if graph is not None:
        roots = _reduce_roots(live.by_graph.get(graph, []))
        if not roots:
            known = [g["id"] for g in _report(t).get("graphs", [])]
            raise LookupError(
                f"graph {graph} of this trace is not alive any more (no live tensor holds it"
                + ("" if graph in known else f"; recorded graph ids: {known[:20]}")
                + "), so there is nothing to draw: keep the loss alive, or pass it: gradlint.render(loss, path)"
            )
        names = _root_names(t, roots, graph, None, namespaces)
        pick = GraphPick(f"graph{graph}", f"graph {graph}", roots, graph, names)
    else:
        picks = pick_graphs(t, namespaces, live=live)
        if not picks:
            roots = _reduce_roots(live.tensors)
            if not roots:
                live = _scan(t, namespaces, everything=True)
                roots = _reduce_roots(live.tensors)
            if not roots:
                raise LookupError(
                    "no graph of this trace is alive any more (the tensors that held them were freed), so there "
                    "is nothing to draw: call t.render(...) while the loss is alive, or pass a tensor: "
                    "gradlint.render(loss, path)"
                )
            pick = GraphPick("graph", "autograd graph", roots[-1:], None, ["output"])
        else:
            pick = picks[0]
    return _draw(t, pick, path, params, live, namespaces, **kw)


def render_picks(
    t,
    directory: str | Path,
    namespaces: Sequence[Mapping[str, Any]] = (),
    params: dict[str, Any] | None = None,
    fmt: str = "png",
    limit: int = 20,
):
    """Draw one picture per :func:`pick_graphs` entry into ``directory`` (created if
    missing); returns ``[(GraphPick, Path), ...]``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    live = _scan(t, namespaces)
    out = []
    for i, pick in enumerate(pick_graphs(t, namespaces, live=live)[:limit]):
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in pick.label)
        out.append((pick, _draw(t, pick, directory / f"{i + 1:02d}_{safe}.{fmt}", params, live, namespaces)))
    return out


def trace_png(t, namespaces: Sequence[Mapping[str, Any]] = ()) -> bytes | None:
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
