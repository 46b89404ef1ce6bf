"""The leak search (GR002): graphs of past iterations still alive at an iteration boundary, and the
name of what holds them (a local, a global, an attribute, a container), found in the user's frames or,
as a fallback, by climbing ``gc.get_referrers`` a few levels."""

from __future__ import annotations

import gc
import types
import weakref

import torch

from ..units import fmt_bytes as _fmt_bytes
from . import _frames
from .events import ACCUM_FUNCS, INPLACE_ACCUM
from .graphs import Graph, GraphRegistry, NodeTag, iter_graph, tag_of
from .handles import Packed
from .memory import MemoryLedger
from .report import Finding


class LeakSearch:
    def __init__(self, registry: GraphRegistry, ledger: MemoryLedger):
        self.registry = registry
        self.ledger = ledger
        self.leaks: dict = {}
        self.searches = 0
        self.gc_searches = 0
        self.last_holders: list = []
        self.stable_since = 0  # first iteration the boundaries are regular (warm-up excluded)

    def check(self, b):
        """At the boundary that ends iteration ``b``: nodes / saved bytes of earlier iterations still alive."""
        lo = self.stable_since
        nodes = 0
        saved = 0
        its = []
        it_nodes, it_saved = self.ledger.it_nodes, self.ledger.it_saved
        for it in range(lo, b):
            n = it_nodes[it]
            s = it_saved[it]
            if n > 0 or s > 0:
                nodes += n
                saved += s
                its.append(it)
        # One old graph kept alive without saved buffers (e.g. a tensor computed once before the loop) is
        # harmless; a leak is saved activations kept alive, or live nodes from several past iterations.
        if not its or (saved <= 0 and len(its) < 2):
            return
        holders = []
        if self.searches < 8:
            self.searches += 1
            holders = self._find_holders(its[-1])
            if not holders and self.gc_searches < 3:
                self.gc_searches += 1
                holders = self._gc_holders(its[-1])
            if holders:
                self.last_holders = holders
        elif self.last_holders:  # search budget spent: the leak keeps its holder
            holders = self.last_holders
        if not holders:
            holders = [None]
        for h in holders:
            key = (h["name"], h["where"]) if h else None
            rec = self.leaks.get(key)
            if rec is None:
                rec = self.leaks[key] = {"holder": h, "series": [], "first_iteration": its[0]}
            rec["series"].append(
                {"boundary": b, "iterations": list(its), "nodes_alive": nodes, "saved_bytes_alive": saved}
            )
            if h is not None and h.get("site"):
                rec["holder"] = h

    def _old_tag(self, t, max_it, limit=20000):
        """A tag of this trace from iteration <= max_it reachable from ``t``'s graph, or None."""
        sink = self.registry.sink
        for f in iter_graph([t], limit=limit):
            tag = tag_of(f)
            if tag is not None and tag.it <= max_it and tag.sink is sink:
                return tag
        return None

    @staticmethod
    def _holder_info(c, old, name, where, kind):
        root_tag = tag_of(c.grad_fn)
        site = None
        if root_tag is not None and root_tag.fname in ACCUM_FUNCS and root_tag.site:
            site = root_tag.site
        g = root_tag.graph if root_tag is not None else None
        return {
            "name": name,
            "where": where,
            "kind": kind,
            "site": site or old.site,
            "accumulated": site is not None,
            "inplace": root_tag.fname in INPLACE_ACCUM if root_tag is not None else None,
            "op": root_tag.op if root_tag is not None else None,
            "graph": g.id if g is not None else None,
        }

    def _leak_candidates(self, max_it, limit=8):
        """Live root tensors (newest graphs first) whose graph reaches a node from iteration <= max_it."""
        out = []
        seen = set()
        graphs = list(self.registry.graphs)
        if self.registry.pending is not None:
            graphs.append(self.registry.pending)
        for g in reversed(graphs):
            refs = g.roots
            if g.pending and g.outs:
                refs = g.outs[-64:]
            for r in refs:
                x = r()
                if x is None or id(x) in seen or x.grad_fn is None:
                    continue
                seen.add(id(x))
                old = self._old_tag(x, max_it)
                if old is not None:
                    out.append((x, old))
                    if len(out) >= limit:
                        return out
        return out

    def _gc_holders(self, max_it):
        """Fallback holder search: climb ``gc.get_referrers`` from the leaked graphs' live root tensors (a few
        levels: containers, object attributes, module globals, locals of the live user frames).  Keeps no
        reference afterwards; skips the tracer's own objects and frames outside the user's code."""
        cands = self._leak_candidates(max_it)
        if not cands:
            return []
        try:
            return self._name_by_referrers(cands)
        finally:
            del cands

    def _name_by_referrers(self, cands, levels=6, width=256):
        frames = _frames.user_frames(start=1, limit=8)
        _frames.touched()
        frame_of = {}  # id(frame) and id(frame.f_locals) -> frame (only the live user frames)
        for fr in frames:
            frame_of[id(fr)] = fr
            try:
                frame_of[id(fr.f_locals)] = fr
            except Exception:  # pragma: no cover
                pass
        objs = {}  # id -> object on a path from a candidate up; the links hold no objects
        link = {}  # id -> (child id, step): obj[step] is the child; step = (kind, key)
        info = {}  # candidate id -> (tensor, old tag)
        for x, old in cands:
            objs[id(x)] = x
            link[id(x)] = None
            info[id(x)] = old
        frontier = [x for x, _ in cands]
        mine = {id(objs), id(frontier), id(frames), id(frame_of), id(cands)}
        mine.update(id(c) for c in cands)
        skip_types = (
            types.FrameType,
            types.FunctionType,
            types.CellType,
            types.ModuleType,
            type,
            weakref.ref,
            NodeTag,
            Packed,
            Graph,
            torch.Tensor,
            types.CodeType,
        )
        anchors = []  # (name, where, kind, child id)
        fallback = None  # (child id, object type name) of the highest plain object reached
        try:
            for _ in range(levels):
                if not frontier or anchors:
                    break
                ids = {id(o) for o in frontier}
                refs = gc.get_referrers(*frontier)
                mine.add(id(refs))
                nxt = []
                mine.add(id(nxt))
                for R in refs:
                    rid = id(R)
                    if rid in mine or rid in objs or R is frontier or R is ids:
                        continue
                    fr = frame_of.get(rid)
                    if fr is not None:
                        func = fr.f_code.co_name
                        where = "module" if func == "<module>" else f"{func}()"
                        kind = "module global" if func == "<module>" else "local variable"
                        rank = next(i for i, f2 in enumerate(frames) if f2 is fr)
                        for k, v in list(fr.f_locals.items()):
                            if id(v) in ids:
                                anchors.append((rank, k, where, kind, id(v)))
                        continue
                    if isinstance(R, skip_types):
                        continue
                    found = None
                    if isinstance(R, dict):
                        if "__builtins__" in R and isinstance(R.get("__name__"), str):
                            for k, v in list(R.items()):
                                if id(v) in ids and isinstance(k, str):
                                    anchors.append((99, k, f"module {R['__name__']}", "module global", id(v)))
                            continue
                        for k, v in list(R.items())[:100000]:
                            if id(v) in ids:
                                found = (id(v), ("key", k))
                                break
                    elif isinstance(R, (list, tuple)):
                        for i, v in enumerate(R[:100000]):
                            if id(v) in ids:
                                found = (id(v), ("idx", i))
                                break
                    else:
                        try:
                            d = vars(R)
                        except TypeError:
                            d = None
                        if isinstance(d, dict):
                            if id(d) in ids:
                                found = (id(d), ("dictof", None))
                            else:
                                for k, v in list(d.items()):
                                    if id(v) in ids:
                                        found = (id(v), ("attr", k))
                                        break
                        if found is None:
                            for cls in type(R).__mro__:
                                for sl in getattr(cls, "__slots__", ()) or ():
                                    if isinstance(sl, str) and id(getattr(R, sl, None)) in ids:
                                        found = (id(getattr(R, sl)), ("attr", sl))
                                        break
                                if found:
                                    break
                        if found is not None:
                            fallback = (rid, type(R).__name__)
                    if found is None:
                        continue
                    objs[rid] = R
                    link[rid] = found
                    if len(nxt) < width:
                        nxt.append(R)
                del refs
                frontier = nxt
            # one object reached from several names is one holder: the innermost frame's name wins
            out = []
            for _, name, where, kind, cid in sorted(anchors, key=lambda a: a[0]):
                h = self._compose(name, where, kind, cid, link, info, objs)
                if h is not None:
                    out.append(h)
                    break
            if not out and fallback is not None:
                rid, tname = fallback
                h = self._compose("", f"a {tname} object", "object attribute", rid, link, info, objs)
                if h is not None:
                    out.append(h)
            return out
        finally:
            objs.clear()
            frontier = None
            frame_of.clear()

    def _compose(self, name, where, kind, cid, link, info, objs):
        """Holder dict for the path from an anchor (``name``) down to a candidate tensor."""
        parts = [name] if name else []
        as_attr = False
        cur = cid
        last = None
        n = 0
        while link.get(cur) is not None and n < 16:
            n += 1
            child, (sk, key) = link[cur]
            if sk == "dictof":
                as_attr = True
            else:
                if sk == "attr" or (sk == "key" and as_attr and isinstance(key, str)):
                    parts.append(f".{key}")
                elif sk == "key":
                    parts.append(f"[{key!r}]" if isinstance(key, (str, int)) else "[...]")
                else:
                    parts.append(f"[{key}]")
                as_attr = False
                last = (sk, type(objs.get(cur)).__name__)
            cur = child
        if cur not in info:
            return None
        if last is not None and last[0] == "idx":
            parts.pop()  # name the list, not one (moving) index of it
            kind = f"{kind} ({last[1]})"
        path = "".join(parts).lstrip(".")
        if not path:
            return None
        x = objs.get(cur)
        if x is None:
            return None
        return self._holder_info(x, info[cur], path, where, kind)

    def _find_holders(self, max_it):
        """Name what keeps graphs from iteration <= max_it alive: locals/globals/attributes/containers."""
        found = []
        seen_ids = set()

        def graph_is_old(t):
            return self._old_tag(t, max_it)

        def consider(name, where, kind, v, site_frame=None):
            if isinstance(v, torch.Tensor):
                cands = [v]
            elif isinstance(v, (list, tuple)):
                cands = [x for x in v[-16:] if isinstance(x, torch.Tensor)]
                kind = f"{kind} ({type(v).__name__})"
            elif isinstance(v, dict):
                cands = [x for x in list(v.values())[-16:] if isinstance(x, torch.Tensor)]
                kind = f"{kind} (dict)"
            else:
                return
            for c in cands:
                if not c.requires_grad or c.grad_fn is None:
                    continue
                old = graph_is_old(c)
                if old is not None:
                    key = (name, where)
                    if key in seen_ids:
                        return
                    seen_ids.add(key)
                    found.append(self._holder_info(c, old, name, where, kind))
                    return

        frames = _frames.user_frames(start=3, limit=6)
        # Library frames (IPython's shell, runners) hold their own namespaces; only the innermost
        # library frame is searched, so holders are named in the user's code.
        frames = [fr for i, fr in enumerate(frames) if i == 0 or not _frames.is_library_code(fr.f_code)]
        _frames.touched()
        globs_done = set()
        for fr in frames:
            func = fr.f_code.co_name
            where = f"{func}()" if func != "<module>" else "module"
            if func == "<module>":
                # a module frame's locals are its globals: scan them once, under one name
                if id(fr.f_globals) in globs_done:
                    continue
                globs_done.add(id(fr.f_globals))
                where = f"module {fr.f_globals.get('__name__', '?')}"
            for k, v in list(fr.f_locals.items()):
                if fr.f_code.co_name == "<module>":
                    kind = "module global"
                else:
                    kind = "local variable"
                consider(k, where, kind, v)
                if k == "self" and hasattr(v, "__dict__") and not isinstance(v, torch.nn.Module):
                    for ak, av in list(vars(v).items()):
                        consider(f"self.{ak}", where, "attribute", av)
            gid = id(fr.f_globals)
            if gid not in globs_done and fr.f_code.co_name != "<module>":
                globs_done.add(gid)
                mod = fr.f_globals.get("__name__", "?")
                for k, v in list(fr.f_globals.items()):
                    if not k.startswith("__"):
                        consider(k, f"module {mod}", "module global", v)
        return found

    def findings(self, since=None) -> list[Finding]:
        out = []
        for rec in self.leaks.values():
            f = self._finding(rec, since)
            if f is not None:
                out.append(f)
        return out

    @staticmethod
    def _finding(rec, since):
        h = rec["holder"]
        series = [s for s in rec["series"] if since is None or s["boundary"] >= since]
        if not series:
            return None
        last = series[-1]
        nodes, saved = last["nodes_alive"], last["saved_bytes_alive"]
        growing = len(series) > 1 and (
            series[-1]["nodes_alive"] > series[0]["nodes_alive"]
            or series[-1]["saved_bytes_alive"] > series[0]["saved_bytes_alive"]
        )
        if saved > 0:
            what = f"{_fmt_bytes(saved)} of saved activations and {nodes} autograd nodes"
            kind = "saved-activations"
            fix = "wrap evaluation in `torch.no_grad()` or keep `.detach()`ed / `.item()` values"
        else:
            what = f"{nodes} autograd nodes (their saved buffers were freed by backward, the nodes were not)"
            kind = "graph-nodes"
            fix = "accumulate a Python number (`.item()`) or a detached tensor (`.detach()`) instead"
        its = last["iterations"]
        span = f"iteration {its[0]}" if len(its) == 1 else f"iterations {its[0]}..{its[-1]}"
        grow = " and growing every iteration" if growing else ""
        if h is not None:
            holder = f"`{h['name']}` ({h['kind']} in {h['where']})"
            msg = (
                f"graphs created in {span} are still alive at the end of iteration {last['boundary']}: {what}"
                f"{grow}, held by {holder}. Fix: {fix}, e.g. {_example_fix(h)}"
            )
            site = h.get("site")
        else:
            msg = (
                f"graphs created in {span} are still alive at the end of iteration {last['boundary']}: {what}"
                f"{grow}; gradlint could not name the holder (a container or object not reachable from the "
                f"training loop's frames). Fix: {fix}"
            )
            site = None
        fn, line, func = _frames.site_parts(site)
        details = {
            "kind": kind,
            "holder": h["name"] if h else None,
            "holder_kind": h["kind"] if h else None,
            "where": h["where"] if h else None,
            "accumulated_here": bool(h and h.get("accumulated")),
            "graph": h.get("graph") if h else None,
            "nodes_alive": nodes,
            "saved_bytes_alive": saved,
            "series": [
                {
                    "boundary": s["boundary"],
                    "nodes_alive": s["nodes_alive"],
                    "saved_bytes_alive": s["saved_bytes_alive"],
                }
                for s in series
            ],
        }
        if func:
            details["function"] = func
        return Finding("GR002", msg, fn, line, details)


def _example_fix(h) -> str:
    """The one-line fix for holder ``h``, in the form the user's code takes."""
    name = h["name"]
    kind = h.get("kind") or ""
    if "(list)" in kind or "(deque)" in kind:
        return f"`{name}.append(loss.item())`"
    if "(dict)" in kind:
        return f"`{name}[key] = loss.item()`"
    if "(tuple)" in kind:
        return f"store `loss.item()` in `{name}`"
    if h.get("accumulated") and h.get("inplace") is False:
        return f"`{name} = {name} + loss.item()`"
    return f"`{name} += loss.item()`"
