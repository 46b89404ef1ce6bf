"""The graph registry: which autograd nodes the trace tagged, how they group into graphs, and the one
search over ``next_functions`` that every part of gradlint uses (:func:`iter_graph`)."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Iterator

from . import _frames
from .events import NodeDied

_new_tuple = tuple.__new__

TAG_KEY = "_gradlint"
DEATH_KEY = "_gradlint_death"


def iter_graph(
    roots: Iterable,
    *,
    stop: Callable[[object], bool] | None = None,
    limit: int | None = None,
    skip_roots: bool = False,
) -> Iterator:
    """Every autograd node reachable from ``roots`` (tensors or ``grad_fn`` nodes), each once, depth first.

    ``AccumulateGrad`` nodes are yielded (they have no inputs: their parameter is a leaf);
    ``stop(node)`` true: yield ``node`` but not what lies below it; ``limit``: at most that many nodes;
    ``skip_roots``: start from the roots' children (to find which roots another root reaches)."""
    stack = []
    for r in roots:
        fn = r if not hasattr(r, "grad_fn") else r.grad_fn
        if fn is None:
            continue
        if skip_roots:
            stack.extend(n for n, _ in _next(fn) if n is not None)
        else:
            stack.append(fn)
    seen = set()
    mark = seen.add
    pop = stack.pop
    push = stack.append
    while stack:
        f = pop()
        i = id(f)
        if i in seen:
            continue
        mark(i)
        yield f
        if limit is not None and len(seen) >= limit:
            return
        if stop is not None and stop(f):
            continue
        try:
            nexts = f.next_functions
        except Exception:  # pragma: no cover - exotic nodes
            continue
        for n, _ in nexts:
            if n is not None:
                push(n)


def _next(f):
    try:
        return f.next_functions
    except Exception:  # pragma: no cover - exotic nodes
        return ()


def tag_of(node):
    """The trace's tag on an autograd node, or None."""
    try:
        return node.metadata.get(TAG_KEY)
    except Exception:
        return None


class Graph:
    """One autograd graph as the trace sees it: nodes grouped at backward (or at an iteration boundary for
    graphs no backward consumed)."""

    __slots__ = (
        "id",
        "iteration",
        "pending",
        "nodes",
        "nodes_alive",
        "saved_alive",
        "bytes",
        "leaf_bytes",
        "peak",
        "best",
        "best_bytes",
        "first",
        "calls",
        "freed",
        "retained",
        "reported_gr001",
        "gr001",
        "roots",
        "root_names",
        "freed_site",
        "outs",
        "outs_cap",
    )

    def __init__(self, gid, iteration, pending=False):
        self.id = gid
        self.iteration = iteration
        self.pending = pending
        self.nodes = 0
        self.nodes_alive = 0
        self.saved_alive = 0
        self.bytes = {}
        self.leaf_bytes = {}
        self.peak = {}
        self.best = None  # (site, op) of the node that saved the most bytes
        self.best_bytes = -1
        self.first = None
        self.calls = []
        self.freed = None
        self.retained = None  # the BackwardCall that retained it, while it is retained
        self.reported_gr001 = False
        self.gr001 = (
            None  # GR001 drafted at a boundary, filed at the next one unless a backward used the graph
        )
        self.roots = ()  # weak references to the root tensors (backward roots / outputs alive at the boundary)
        self.root_names = ()  # the user's names for the roots, when known
        self.freed_site = None  # the last user line seen dropping one of its nodes
        self.outs = [] if pending else None  # pending graphs: weak references to op outputs (compacted)
        self.outs_cap = 4096

    def add_bytes(self, dev, nb, leaf):
        d = self.leaf_bytes if leaf else self.bytes
        v = d.get(dev, 0) + nb
        d[dev] = v
        if not leaf and v > self.peak.get(dev, 0):
            self.peak[dev] = v

    @property
    def alive(self) -> bool:
        return self.nodes_alive > 0 or self.saved_alive > 0


class NodeTag:
    """What the trace knows about one autograd node, stored in ``node.metadata``."""

    __slots__ = (
        "sink",
        "it",
        "site",
        "op",
        "fname",
        "graph",
        "n_saved",
        "saved_alive",
        "saved_bytes",
        "bytes_alive",
        "leaf_alive",
        "dev",
        "consumed",
        "fdetails",
        "retains",
        "epoch",
        "out_index",
    )

    def __init__(self, sink, it, site, op, fname, graph, epoch=0):
        self.sink = sink
        self.it = it
        self.site = site
        self.op = op
        self.fname = fname
        self.graph = graph
        self.n_saved = 0
        self.saved_alive = 0
        self.saved_bytes = 0
        self.bytes_alive = 0
        self.leaf_alive = 0
        self.dev = None
        self.consumed = None  # the BackwardCall that freed its buffers
        self.fdetails = None  # finding details that name this node's graph (kept current on regrouping)
        self.retains = False
        self.epoch = epoch  # backward calls started before this node was created
        self.out_index = 0  # which output of the torch call (``out, h = rnn(x, h)``: h is 1)


class _Death:
    """Stored next to the tag in ``node.metadata`` and referenced by nothing else, so its finalizer runs when
    the node dies (the tag itself may outlive the node: saved-tensor handles and queued events point to it)."""

    __slots__ = ("tag",)

    def __init__(self, tag):
        self.tag = tag

    def __del__(self):
        tag = self.tag
        s = tag.sink
        if s.open:
            site = None
            g = tag.graph
            if g is not None and g.freed is None and threading.get_ident() == s.main_ident:
                # the user line that dropped the last reference (``del a``, a rebinding), read now
                site = _frames.user_site(1, 1)
            s.q.append(_new_tuple(NodeDied, (tag, site)))  # tuple.__new__: no Python-level __new__ per event


def weak_roots(roots):
    out = []
    for r in roots:
        if hasattr(r, "grad_fn") and r.grad_fn is not None:
            try:
                out.append(weakref.ref(r))
            except TypeError:  # pragma: no cover
                pass
    return tuple(out)


class GraphRegistry:
    """Owns the graphs: the pending one (nodes created since the last grouping), the recorded ones (at most
    ``max_graphs``, oldest freed dropped first) and the ones kept by ``retain_graph=True``."""

    def __init__(self, sink, max_graphs):
        self.sink = sink
        self.max_graphs = max_graphs
        self.next_id = 0
        self.pending: Graph | None = None
        self.graphs: list[Graph] = []
        self.dropped = 0
        self.retained: list[Graph] = []

    def _new_id(self):
        self.next_id += 1
        return self.next_id

    def new_tag(self, fn, name, site, it, epoch, md=None):
        g = self.pending
        if g is None:
            g = self.pending = Graph(self._new_id(), it, pending=True)
        tag = NodeTag(self.sink, it, site, type(fn).__name__, name, g, epoch)
        g.nodes += 1
        g.nodes_alive += 1
        if g.first is None:
            g.first = (site, tag.op)
        if md is None:
            md = fn.metadata
        md[TAG_KEY] = tag
        md[DEATH_KEY] = _Death(tag)
        return tag

    @staticmethod
    def note_out(g, x):
        """Weakly remember an op output of a pending graph: its roots are found among them at the boundary."""
        outs = g.outs
        if outs is None:
            return
        try:
            outs.append(weakref.ref(x))
        except TypeError:  # pragma: no cover - exotic tensor subclasses
            return
        if len(outs) >= g.outs_cap:
            outs[:] = [r for r in outs if r() is not None]
            g.outs_cap = max(4096, 2 * len(outs))

    def add(self, g):
        self.graphs.append(g)
        if len(self.graphs) > self.max_graphs:
            for i, old in enumerate(self.graphs):
                if old.freed is not None:
                    del self.graphs[i]
                    break
            else:
                del self.graphs[0]
            self.dropped += 1

    def all(self) -> list[Graph]:
        """Recorded graphs plus the pending one when it holds anything."""
        out = list(self.graphs)
        pg = self.pending
        if pg is not None and pg.alive:
            out.append(pg)
        return out

    def get(self, graph_id):
        pg = self.pending
        if pg is not None and pg.id == graph_id:
            return pg
        for g in reversed(self.graphs):
            if g.id == graph_id:
                return g
        return None

    def group(self, tags, nodes, it, roots=(), root_names=()) -> dict:
        """Move the not-yet-grouped ``tags`` reached from a backward's roots into one new graph (before the
        engine runs).  Returns ``{graph id: graph}`` of every graph the backward touches."""
        newg = None
        touched = {}
        for tag in tags:
            g = tag.graph
            if g is None or g.pending:
                if newg is None:
                    newg = Graph(self._new_id(), it)
                    newg.nodes = nodes
                    newg.roots = weak_roots(roots)
                    newg.root_names = tuple(root_names)
                    self.add(newg)
                if g is not None:  # move from the pending graph
                    if g.best is not None and g.best[0] is tag.site:
                        g.best, g.best_bytes = None, -1
                    if g.first is not None and g.first[0] is tag.site and g.nodes <= 1:
                        g.first = None  # (outputs of one call share the site: keep it while any is left)
                    g.peak.clear()
                    g.nodes -= 1
                    g.nodes_alive -= 1
                    g.saved_alive -= tag.saved_alive
                    if tag.dev is not None:
                        g.bytes[tag.dev] = g.bytes.get(tag.dev, 0) - tag.bytes_alive
                        g.leaf_bytes[tag.dev] = g.leaf_bytes.get(tag.dev, 0) - tag.leaf_alive
                tag.graph = newg
                if tag.fdetails:  # findings that name this node's graph follow it
                    for d in tag.fdetails:
                        d["graph"] = newg.id
                newg.nodes_alive += 1
                newg.saved_alive += tag.saved_alive
                if tag.dev is not None:
                    newg.add_bytes(tag.dev, tag.bytes_alive, False)
                    newg.add_bytes(tag.dev, tag.leaf_alive, True)
                if tag.saved_bytes > newg.best_bytes:
                    newg.best_bytes = tag.saved_bytes
                    newg.best = (tag.site, tag.op)
                if newg.first is None or (tag.site and not newg.first[0]):
                    newg.first = (tag.site, tag.op)
                newg.iteration = min(newg.iteration, tag.it)
                g = newg
            touched[g.id] = g
        return touched

    def close_pending(self):
        """At an iteration boundary: the pending graph becomes a recorded graph (when anything of it lives)."""
        g = self.pending
        if g is None:
            return
        self.pending = None
        g.pending = False
        g.roots = self.pending_roots(g)
        g.outs = None
        if g.alive:
            self.add(g)

    def pending_roots(self, g, limit=16):
        """Weak references to the outputs of pending graph ``g`` that are alive, still belong to ``g`` and
        that no other such output's graph reaches (its roots)."""
        if not g.outs:
            return ()
        cands = {}
        for r in g.outs:
            x = r()
            if x is None:
                continue
            fn = x.grad_fn
            tag = tag_of(fn) if fn is not None else None
            if tag is not None and tag.graph is g and tag.sink is self.sink:
                cands.setdefault(id(fn), (r, fn))
        if not cands:
            return ()
        reached = {id(f) for f in iter_graph([fn for _, fn in cands.values()], skip_roots=True, limit=50000)}
        out = tuple(r for k, (r, _) in cands.items() if k not in reached)
        return out[-limit:]

    def roots_of(self, g) -> list:
        refs = self.pending_roots(g) if g.pending else g.roots
        out = []
        for r in refs:
            x = r()
            if x is not None and x.grad_fn is not None:
                out.append(x)
        return out
