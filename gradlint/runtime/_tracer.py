"""The ``Trace`` facade behind ``gradlint.trace()``: it wires the parts and runs the iteration clock.

The parts, each owning its state:

* :mod:`.hooks` -- installs and removes everything plugged into torch (also when the body raises);
* :mod:`.handles` -- the saved-tensor pack/unpack handles; :mod:`.events` -- their named events;
* :mod:`.graphs` -- the graph registry and :func:`~.graphs.iter_graph`, the one graph search;
* :mod:`.memory` -- the memory ledger;
* :mod:`.leaks` -- the leak search (GR002);
* :mod:`.params` -- parameter names, gradient coverage (GR006) and resets (GR007);
* :mod:`.checks` -- what each finding says (GR001, GR003, GR004, GR005);
* :mod:`.report` -- the report model (findings, graph records, JSON).

Nothing here draws or formats for people: ``str(t)``, ``t._repr_html_()`` and ``t.render()`` go through
:mod:`.display` to :mod:`gradlint.render`.
"""

from __future__ import annotations

import functools
import threading
import weakref

import torch

from . import _frames, checks, hooks
from .display import presenter
from .errors import (
    BackwardThroughFreedGraphError,
    GradlintError,
    InplaceOnSavedTensorError,
    TraceStateError,
)
from .events import HandleReleased, Sink
from .graphs import TAG_KEY, GraphRegistry, NodeTag, tag_of
from .handles import Packed, SavedTensorHooks
from .leaks import LeakSearch
from .memory import MemoryLedger, storage_key
from .params import GradCoverage, GradResets, ParamIndex
from .report import SCHEMA_VERSION, Finding, FindingLog, GraphRecord, dumps

__all__ = [
    "Trace",
    "trace",
    "GradlintError",
    "BackwardThroughFreedGraphError",
    "InplaceOnSavedTensorError",
    "TraceStateError",
]

_ORDER = {"GR003": 0, "GR004": 1, "GR002": 2, "GR001": 3, "GR006": 4, "GR007": 5, "GR005": 6}

# What the tracer cannot see; the report lists the ones that applied to a run.
BLIND_SPOTS = {
    "compiled": (
        "code inside torch.compile regions is not traced op by op (the tracer steps aside there): graphs, "
        "saved bytes and in-place writes inside compiled code are not attributed to lines"
    ),
    "threads": (
        "backward calls and forwards in other threads than the one that started the trace are not traced "
        "(torch's function modes are thread-local); start a trace in the worker thread instead"
    ),
}


class Trace:
    """A runtime autograd trace.  Use as ``with gradlint.trace() as t:``, as a decorator,
    or with ``t.start()`` / ``t.stop()``.  See docs/runtime.md."""

    def __init__(
        self, *, stacks: int = 1, cuda="auto", inplace: bool = True, max_graphs: int = 1000, every: int = 1
    ):
        if not isinstance(stacks, int) or stacks < 1:
            raise ValueError("stacks must be an int >= 1 (user frames recorded per site)")
        if not isinstance(every, int) or every < 1:
            raise ValueError("every must be an int >= 1")
        if cuda not in (True, False, "auto"):
            raise ValueError("cuda must be True, False or 'auto'")
        self.stacks = stacks
        self.cuda = cuda
        self.inplace = inplace
        self.max_graphs = max_graphs
        self.every = every
        self._running = False
        self._report = None
        # A *host* trace (``gradlint trace``, ``%%gradlint_trace``) lets traces started inside it run as views
        # of it; ``_outer`` is the host of a trace that runs (or ran) as such a view.
        self._host: str | None = None
        self._outer: Trace | None = None
        self._exception = None  # a record of the exception that ended the run (never the exception itself)
        self._reset()

    # ------------------------------------------------------------------ state

    def _reset(self):
        self._sink = Sink()
        self._lock = threading.RLock()
        self._ledger = MemoryLedger()
        self._registry = GraphRegistry(self._sink, self.max_graphs)
        self._handles = SavedTensorHooks(self._sink, self._lock, self._ledger, self._drain, self._on_stale)
        self._hooks = hooks.Hooks(self)
        self._index = ParamIndex()
        self._params = GradCoverage(self._index)
        self._resets = GradResets()
        self._leaks = LeakSearch(self._registry, self._ledger)
        self._log = FindingLog()
        self._it = 0
        self._light = False
        self._in_step = False
        self._user_steps = False
        self._opt_seen: dict[int, weakref.ref] = {}
        self._last_opt = None
        self._last_step_site = None
        self._calls = 0
        self._backward = None  # the backward call running now (its site names a GR004 raised inside it)
        self._nonleaf_retained: list[dict] = []
        self._blind: set[str] = set()
        self._started_at = None
        self._vfindings: list[Finding] = []
        self._vkeys: set = set()
        self._v_it0 = 0
        self._v_gid0 = 0

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is not None:
            self._exception = _exception_record(exc)
        self.stop()
        return False

    def __call__(self, fn):
        if not callable(fn):
            raise TypeError("trace() used as a decorator expects a callable")

        @functools.wraps(fn)
        def traced(*args, **kwargs):
            with self:
                return fn(*args, **kwargs)

        traced.trace = self
        return traced

    def start(self) -> Trace:
        with hooks.ACTIVE_LOCK:
            if self._running:
                raise TraceStateError("this gradlint trace is already running")
            outer = hooks.ACTIVE
            if outer is not None and outer._host is None:
                raise TraceStateError(
                    "gradlint.trace() is already active (started at "
                    f"{_frames.fmt_site(outer._started_at)}); nested traces are not supported: "
                    "keep a single trace around the outermost block"
                )
            if outer is None:
                hooks.ACTIVE = self
        if outer is not None:
            return self._start_view(outer)
        try:
            self._reset()
            self._report = None
            self._exception = None
            self._started_at = _frames.user_site(1, 1)
            self._ledger.start_cuda(self.cuda)
            self._hooks.install()
            self._running = True
        except BaseException:
            self._teardown()
            raise
        return self

    def stop(self, exception: BaseException | None = None) -> Trace:
        """Stop tracing.  ``exception``: the exception that ended the traced run, if any (shown in the
        report; parameters the run never reached are then not reported)."""
        if not self._running:
            raise TraceStateError("this gradlint trace is not running")
        if exception is not None:
            # only a record: the exception's traceback would keep the run's frames and tensors alive
            self._exception = _exception_record(exception)
        if self._outer is not None:
            return self._stop_view()
        try:
            self._hooks.pause_mode()  # the report reads many tensor attributes: not through the mode
            _frames.refresh_locals()
            with self._lock:
                self._drain()
                self._check_retained(at_exit=True)
                self._params.at_exit(
                    self._add_finding, self._exception is None, max(1, len(self._ledger.iterations))
                )
                self._report = self._build_report(final=True)
                for v in list(self._log.views):  # views left running end with their host
                    v._report = self._build_report(final=True, view=v)
                    v._running = False
                self._log.views = []
        finally:
            try:
                _frames.refresh_locals()
            finally:
                self._teardown()
        return self

    # ------------------------------------------------------------------ views (a trace inside a host trace)

    def _start_view(self, outer: Trace) -> Trace:
        """Run as a view of the host trace ``outer``: the host records; this trace reports what the host saw
        between its start() and stop() (findings, graphs created, iterations), with the host's options."""
        self._reset()
        self._report = None
        self._outer = outer
        self._started_at = _frames.user_site(1, 1)
        with outer._lock:
            outer._drain()
            self._v_it0 = outer._it
            self._v_gid0 = outer._registry.next_id
            outer._log.views.append(self)
        self._running = True
        return self

    def _stop_view(self) -> Trace:
        o = self._outer
        with o._lock:
            o._drain()
            self._report = o._build_report(final=True, view=self)
            if self in o._log.views:
                o._log.views.remove(self)
        self._running = False
        return self

    def _view_add(self, f, key):
        if key not in self._vkeys:
            self._vkeys.add(key)
            self._vfindings.append(f)

    def _teardown(self):
        errors = self._hooks.remove()
        self._sink.open = False
        q = self._sink.q
        while q:  # handles released after the last drain: keep their nodes' saved counts exact
            try:
                ev = q.popleft()
            except IndexError:  # pragma: no cover
                break
            if isinstance(ev, HandleReleased) and ev.tag is not None:
                ev.tag.saved_alive -= 1
        self._ledger.storages = {}
        self._running = False
        with hooks.ACTIVE_LOCK:
            if hooks.ACTIVE is self:
                hooks.ACTIVE = None
        if errors and not hooks.raising():
            raise errors[0]

    # ------------------------------------------------------------------ events

    def _drain(self):
        q = self._sink.q
        ledger = self._ledger
        on_release = ledger.on_release
        popleft = q.popleft
        while q:
            try:
                ev = popleft()
            except IndexError:  # pragma: no cover
                break
            if type(ev) is HandleReleased:  # (tuple unpacking: a named field read costs a descriptor call)
                key, tag, nb, dev, leaf = ev
                on_release(key)
                if tag is None:
                    continue
                tag.saved_alive -= 1
                if leaf:
                    tag.leaf_alive -= nb
                else:
                    tag.bytes_alive -= nb
                    ledger.released(tag.it, nb)
                g = tag.graph
                if g is not None:
                    g.saved_alive -= 1
                    d = g.leaf_bytes if leaf else g.bytes
                    d[dev] = d.get(dev, 0) - nb
            else:  # NodeDied
                tag, site = ev
                ledger.node_died(tag.it)
                g = tag.graph
                if g is not None:
                    g.nodes_alive -= 1
                    if g.freed is None and not g.pending:
                        if site:  # the last user line seen dropping a node of it
                            g.freed_site = site
                        if g.nodes_alive <= 0:
                            fn, line, _ = _frames.site_parts(g.freed_site)
                            g.freed = {"by": "gc", "filename": fn, "line": line, "iteration": self._it}

    # ------------------------------------------------------------------ per op (called by the function mode)

    def _after_op(self, r, name, pend):
        tag = None
        reg = self._registry
        if isinstance(r, torch.Tensor):
            fn = r.grad_fn
            if fn is not None:
                md = fn.metadata
                tag = md.get(TAG_KEY)
                if tag is None:
                    tag = reg.new_tag(fn, name, _frames.user_site(self.stacks, 1), self._it, self._calls, md)
                    led = self._ledger
                    led.it_nodes[-1] += 1
                    led.nodes_alive += 1
                    g = tag.graph
                    outs = g.outs
                    if outs is not None and len(outs) < g.outs_cap - 1:
                        outs.append(weakref.ref(r))
                    else:
                        reg.note_out(g, r)
        elif isinstance(r, (tuple, list)):
            site = None
            for i, x in enumerate(r[:8]):
                if isinstance(x, torch.Tensor):
                    fn = x.grad_fn
                    if fn is not None and TAG_KEY not in fn.metadata:
                        if site is None:
                            site = _frames.user_site(self.stacks, 1)
                        t2 = reg.new_tag(fn, name, site, self._it, self._calls)
                        t2.out_index = i
                        self._ledger.node_created()
                        reg.note_out(t2.graph, x)
                        if tag is None:
                            tag = t2
        if pend:
            self._attach_saved(tag, pend)

    def _attach_saved(self, tag, pend):
        """The saved tensors one torch call packed: counted in the ledger and given to the node the call created
        (its first output's)."""
        led = self._ledger
        on_pack = led.on_pack
        with self._lock:
            if self._sink.q:
                self._drain()
            if tag is None:
                for h in pend:
                    h.nb = on_pack(h, h.key, h.size, h.dev, h.leaf)
                led.orphans += len(pend)
                return
            g = tag.graph
            act = 0
            leaf_b = 0
            n_leaf = 0
            dev = pend[0].dev
            one_dev = True
            for h in pend:
                h.tag = tag
                leaf = h.leaf
                nb = h.nb = on_pack(h, h.key, h.size, h.dev, leaf)
                if h.dev is not dev:
                    one_dev = False
                if leaf:
                    leaf_b += nb
                    n_leaf += 1
                else:
                    act += nb
            n = len(pend)
            if one_dev:  # the common case: the graph's per-device sums once per kind, not once per tensor
                if n_leaf:
                    g.add_bytes(dev, leaf_b, True)
                if n_leaf < n:
                    g.add_bytes(dev, act, False)
            else:
                for h in pend:
                    g.add_bytes(h.dev, h.nb, h.leaf)
            dev = pend[-1].dev
            tag.n_saved += n
            tag.saved_alive += n
            tag.leaf_alive += leaf_b
            tag.saved_bytes += act
            tag.bytes_alive += act
            tag.dev = dev
            g.saved_alive += n
            if act:
                led.saved(act)
            if tag.saved_bytes > g.best_bytes:
                g.best_bytes = tag.saved_bytes
                g.best = (tag.site, tag.op)

    def _before_inplace(self, name, args, kwargs):
        if not self.inplace or self._in_step:
            return None
        target = kwargs.get("out") if kwargs and kwargs.get("out") is not None else args[0]
        targets = target if isinstance(target, (list, tuple)) else (target,)
        zero = name in ("zero_", "_foreach_zero_")
        hits = None
        with self._lock:
            if self._sink.q:
                self._drain()
            st = self._ledger.storages
            for tt in targets[:64]:
                if not isinstance(tt, torch.Tensor):
                    continue
                if zero:
                    self._resets.on_zero(tt)
                if not st:
                    continue
                key, _ = storage_key(tt)
                e = st.get(key)
                if e is not None:
                    h = e.handle()
                    before = h.t._version if h is not None else None
                    if hits is None:
                        hits = []
                    hits.append((tt, e, h, before))
        if hits is None:
            return None
        return (name, hits, _frames.user_site(self.stacks, 1))

    def _after_inplace(self, mut):
        name, hits, site = mut
        for tt, e, h, before in hits:
            shared = h is not None and h.t._version != before
            if tt.requires_grad:
                path = "through a view" if tt._is_view() else "directly"
            elif shared:
                path = "through a view of .detach()" if tt._is_view() else "through .detach()"
            else:
                path = "through .data"
            e.mutation = (site, name, path, None)
            code, msg, fsite, details, key = checks.inplace_finding(name, path, e, h, site, shared)
            tag = h.tag if h is not None else None
            if self._add_finding(code, msg, fsite, details, key=key) and tag is not None:
                # a pending graph's id changes when a backward groups it: keep details["graph"] current
                if tag.fdetails is None:
                    tag.fdetails = []
                tag.fdetails.append(details)

    def _on_stale(self, h):
        """Unpack found a saved tensor whose version changed: the GR004 exception (and finding)."""
        e = self._ledger.storages.get(h.key) if isinstance(h, Packed) else None
        finding, exc = checks.inplace_error(h, e, self._backward, self._last_step_site)
        if e is None or e.mutation is None or e.mutation[1] == "optimizer.step()":
            # an in-place write gradlint saw has its finding already, at the write
            with self._lock:
                self._add_finding(*finding[:4], key=finding[4])
        return exc

    def _on_nonleaf_grad(self, a):
        r = checks.nonleaf_grad(a, _frames.user_site(self.stacks, 1))
        if r is not None:
            self._add_finding(*r[:4], key=r[4])

    def _on_grad_set(self, p):
        self._resets.on_grad_set(p)

    def _on_zero_grad(self, params):
        self._resets.on_reset(params)

    def _on_retain_grad(self, a):
        if a.grad_fn is None:
            return
        tag = tag_of(a.grad_fn)
        if tag is not None:
            tag.retains = True
        if len(self._nonleaf_retained) >= 100:
            return
        fn, line, _ = _frames.site_parts(_frames.user_site(1, 1))
        self._nonleaf_retained.append({"filename": fn, "line": line, "op": type(a.grad_fn).__name__})

    def _on_cut(self, a, how):
        self._params.on_cut(a, how)

    # ------------------------------------------------------------------ backward

    def _backward_call(self, kind, sig, args, kwargs):
        """``(call, roots, retain, partial)`` for one backward/grad call, or None when the arguments do not bind
        (torch then raises its own error)."""
        try:
            a = sig.bind(*args, **kwargs)
        except TypeError:
            return None
        if kind == "tensor":
            roots = [a.get("self")]
        else:
            r = a.get("tensors") if kind == "backward" else a.get("outputs")
            roots = [r] if isinstance(r, torch.Tensor) else list(r or ())
        create = bool(a.get("create_graph", False))
        retain = a.get("retain_graph")
        if retain is None:
            retain = create
        partial = kind == "grad" or a.get("inputs") is not None
        site = _frames.user_site(self.stacks, 2)
        fn, line, _ = _frames.site_parts(site)
        call = {
            "index": 0,  # numbered by the caller, once the call is known to bind
            "filename": fn,
            "line": line,
            "iteration": self._it,
            "retain_graph": bool(retain),
            "_site": site,
            "api": "grad" if kind == "grad" else "backward",
            "create_graph": create,
        }
        return call, roots, retain, partial

    def _run_backward_light(self, kind, orig, sig, args, kwargs):
        """A sampled-out iteration records nothing unless torch raises its freed-graph error; the call's site
        (a walk over torch's frames, the main cost of a backward's wrapper) is read only then, while the user's
        frame is still on the stack."""
        self._calls += 1
        try:
            return orig(*args, **kwargs)
        except RuntimeError as err:
            if isinstance(err, InplaceOnSavedTensorError) or not (
                "second time" in str(err) or "already been freed" in str(err)
            ):
                raise
            rec = self._backward_call(kind, sig, args, kwargs)
            if rec is None:
                raise
            call, roots, _, _ = rec
            call["index"] = self._calls
            with self._lock:
                self._drain()
                walk = checks.walk_backward(roots, self._index.note_leaf)
            raise self._freed_error(call, walk, roots, err) from err

    def _run_backward(self, kind, orig, sig, args, kwargs):
        if self._light:
            return self._run_backward_light(kind, orig, sig, args, kwargs)
        rec = self._backward_call(kind, sig, args, kwargs)
        if rec is None:
            return orig(*args, **kwargs)
        call, roots, retain, partial = rec
        self._calls += 1
        call["index"] = self._calls
        with self._lock:
            self._drain()
            walk = checks.walk_backward(roots, self._index.note_leaf)
            if walk["compiled"]:
                self._blind.add("compiled")
            walk["graphs"] = self._registry.group(walk["tags"], walk["nodes"], self._it, roots)
        if walk["hits"] and not partial:
            raise self._freed_error(call, walk, roots, None)
        prev = self._backward
        self._backward = call
        try:
            result = orig(*args, **kwargs)
        except BaseException as err:
            for g in walk.get("graphs", {}).values():
                g.retained = None  # a later backward went into it: retaining it was not the bug
            if not isinstance(err, RuntimeError) or isinstance(err, InplaceOnSavedTensorError):
                raise
            if "second time" in str(err) or "already been freed" in str(err):  # torch saw it first
                raise self._freed_error(call, walk, roots, err) from err
            raise
        finally:
            self._backward = prev
        with self._lock:
            self._drain()
            self._after_backward(call, walk, retain)
        return result

    def _name_roots(self, g):
        """The user's names for graph ``g``'s live roots (``loss``, ``hidden``), read from the live user frames
        (only for graphs a finding is about: reading frames is not free)."""
        roots = self._registry.roots_of(g)
        if not roots or g.root_names:
            return
        out = []
        try:
            frames = _frames.user_frames(start=2, limit=4)
            _frames.touched()
            for r in roots[:4]:
                name = None
                for fr in frames:
                    for k, v in list(fr.f_locals.items()):
                        if v is r and not k.startswith("_"):
                            name = k
                            break
                    if name:
                        break
                out.append(name or "output")
        finally:
            roots = None
            frames = None
        g.root_names = tuple(out)

    def _freed_error(self, call, walk, roots, err):
        finding, exc = checks.freed_error(call, walk, roots, err)
        code, msg, site, details, _ = finding
        self._add_finding(code, msg, site, details)
        return exc

    def _after_backward(self, call, walk, retain):
        touched = walk.get("graphs", {})
        if not retain:
            for tag in walk["tags"]:
                tag.consumed = call
        pub = {
            k: v
            for k, v in call.items()
            if not k.startswith("_") and k not in ("index", "api", "create_graph")
        }
        for g in touched.values():
            g.calls.append(pub)
            if retain:
                g.retained = call
                if g not in self._registry.retained:
                    self._registry.retained.append(g)
            else:
                # whatever an earlier backward retained, this one used it: that retain_graph=True was needed
                g.retained = None
                if g.saved_alive <= 0:
                    g.freed = {
                        "by": "backward",
                        "filename": call["filename"],
                        "line": call["line"],
                        "iteration": call["iteration"],
                    }
        self._params.on_backward(walk["params"], call["_site"])

    # ------------------------------------------------------------------ optimizer hooks / iterations

    def _opt_pre(self, opt, args, kwargs):
        self._hooks.pause_mode()
        self._in_step = True
        self._last_step_site = _frames.user_site(1, 1)
        wrapped = self._wrap_closure(args, kwargs)
        if not self._light:
            self._check_stale(opt)
            self._params.on_step(opt)
        return wrapped

    def _wrap_closure(self, args, kwargs):
        """A closure (LBFGS) runs forward and backward inside step(), where the mode is paused: trace it as
        ordinary user code.  Returns the hook's replacement ``(args, kwargs)``, or None."""
        # args[0] is the optimizer itself (the hook sees step's full argument list)
        closure = kwargs.get("closure") if "closure" in kwargs else (args[1] if len(args) > 1 else None)
        if not callable(closure) or getattr(closure, "_gradlint_closure", False):
            return None

        def traced_closure():
            self._in_step = False
            if not self._light:
                self._hooks.resume_mode()
            try:
                return closure()
            finally:
                self._in_step = True
                self._hooks.pause_mode()

        traced_closure._gradlint_closure = True
        if "closure" in kwargs:
            return args, {**kwargs, "closure": traced_closure}
        return (args[0], traced_closure, *args[2:]), kwargs

    def _check_stale(self, opt):
        r = self._resets.stale(opt)
        if r:
            stale, prevsite = r
            site = self._last_step_site
            fn, line, _ = _frames.site_parts(site)
            names = self._index.names_for(stale)
            pfn, pline, _ = _frames.site_parts(prevsite)
            self._add_finding(
                "GR007",
                (
                    f"optimizer.step() called again without resetting gradients since the previous step "
                    f"(at {_frames.loc(pfn, pline)}): {len(stale)} parameter(s) ({', '.join(names[:5])}"
                    f"{', ...' if len(names) > 5 else ''}) still hold the old gradients plus the new ones. "
                    f"Call `optimizer.zero_grad()` after each step (or before each backward)"
                ),
                site,
                {
                    "parameters": names,
                    "optimizer": type(opt).__name__,
                    "previous_step": {"filename": pfn, "line": pline},
                },
                key=("GR007", fn, line),
            )

    def _opt_post(self, opt, args, kwargs):
        # the mode stays off until the end: gradlint's own reads of p.grad, versions and shapes (a few per
        # parameter) must not go through it
        try:
            if not self._light:
                self._resets.after_step(opt, self._last_step_site, self._index)
                self._note_stepped_saved(opt)
            if self._user_steps:
                return
            oid = id(opt)
            if oid not in self._opt_seen:
                self._opt_seen[oid] = weakref.ref(opt)
                if self._last_opt is not None:
                    self._leaks.stable_since = self._it + 1
                self._last_opt = oid
            if oid == self._last_opt:
                self._boundary()
        finally:
            self._in_step = False
            if not self._light:
                self._hooks.resume_mode()

    def _note_stepped_saved(self, opt):
        """Parameters the step updated in place while a live graph saved them for backward: a later backward
        through that graph fails (GR004); remember the step so the error names it and the parameter."""
        st = self._ledger.storages
        if not st:
            return
        with self._lock:
            for group in opt.param_groups:
                for p in group["params"]:
                    key, _ = storage_key(p)
                    e = st.get(key)
                    if e is None:
                        continue
                    h = e.handle()
                    if h is not None and h.t._version != h.v:
                        e.mutation = (
                            self._last_step_site,
                            "optimizer.step()",
                            "optimizer",
                            self._index.qualified(p),
                        )

    def step(self):
        """Explicit iteration boundary.  Once called, optimizer steps no longer end iterations."""
        if not self._running:
            raise TraceStateError("trace.step() called while the trace is not running")
        if self._outer is not None:
            self._outer.step()
            return
        if not self._user_steps:
            self._user_steps = True
            self._leaks.stable_since = self._it + 1 if self._ledger.iterations else self._it
        self._boundary()

    def _boundary(self):
        popped = self._hooks.pause_mode()  # (t.step() is called under the mode) the checks read tensors
        try:
            self._boundary_checks()
        finally:
            if popped and not self._light and not self._in_step:
                self._hooks.resume_mode()

    def _boundary_checks(self):
        _frames.refresh_locals()
        with self._lock:
            self._drain()
            b = self._it
            self._registry.close_pending()
            if not self._light:
                self._params.end_iteration(b, self._add_finding)
            self._check_retained(at_exit=False)
            if not self._light:
                self._leaks.check(b)
                _frames.refresh_locals()
            self._ledger.end_iteration(b, not self._light)
            self._it = b + 1
            self._set_light(self._it % self.every != 0)

    def _set_light(self, light):
        if light == self._light:
            return
        self._light = light
        self._handles.light = light
        if light:
            self._resets.opt_grads.clear()
            self._hooks.pause_mode()
            self._hooks.pause_saved()
        else:
            self._hooks.resume_saved()
            if not self._in_step:
                self._hooks.resume_mode()

    @property
    def iteration(self) -> int:
        if self._outer is not None and self._running:
            return self._outer._it
        return self._it

    # ------------------------------------------------------------------ GR001

    def _check_retained(self, at_exit):
        """GR001 is drafted when a boundary finds a retained graph still holding buffers, and filed one
        boundary later (or at exit) unless a backward used the graph meanwhile: a GAN steps D between the
        two backward calls through D's output, so the first boundary may fall between them."""
        reg = self._registry
        for g in reg.retained:
            if g.reported_gr001:
                continue
            if g.gr001 is not None:
                if g.retained is None:  # a later backward used it: retain_graph=True was needed
                    g.gr001 = None
                    continue
                g.reported_gr001 = True
                code, msg, site, details, key = g.gr001
                self._add_finding(code, msg, site, details, key=key)
                continue
            if g.retained is None or g.saved_alive <= 0:
                continue
            self._name_roots(g)
            draft = checks.gr001(g, at_exit, self._it)
            if at_exit:
                g.reported_gr001 = True
                self._add_finding(*draft[:4], key=draft[4])
            else:
                g.gr001 = draft
        reg.retained = [
            g
            for g in reg.retained
            if not g.reported_gr001 and (g.gr001 is not None or (g.retained and g.saved_alive > 0))
        ]

    # ------------------------------------------------------------------ findings / report

    def _add_finding(self, code, msg, site, details, key=None):
        fn, line, func = _frames.site_parts(site)
        return self._log.add(code, msg, fn, line, func, details, key)

    def _graph_record(self, g, final):
        site, op = g.best if g.best else (g.first if g.first else (None, None))
        fn, line, _ = _frames.site_parts(site)
        return GraphRecord(
            id=g.id,
            iteration=g.iteration,
            created={"filename": fn, "line": line, "op": op},
            saved_bytes={k: max(0, v) for k, v in g.bytes.items()},
            peak_saved_bytes=dict(g.peak),
            nodes=g.nodes,
            backward_calls=[{k: v for k, v in c.items() if not k.startswith("_")} for c in g.calls],
            freed=dict(g.freed) if g.freed else None,
            alive_at_exit=bool(final and g.alive),
            leaf_saved_bytes={k: max(0, v) for k, v in g.leaf_bytes.items()},
            roots=list(g.root_names),
            nodes_alive=max(0, g.nodes_alive),
        )

    def _leaf_grads(self):
        leaf = []
        leaf_ids = []
        for pid, ref in list(self._index.leaf_params.items())[:10000]:
            p = ref()
            if p is None:
                continue
            leaf_ids.append(pid)
            leaf.append({"name": self._index.name(p), "shape": list(p.shape), "has_grad": p.grad is not None})
        if leaf and any(x["name"] is None for x in leaf):
            try:
                self._index.scan(want=set(self._index.leaf_params), allow_gc=False)
                local_names = {}
                _frames.touched()
                for fr in _frames.user_frames(start=2, limit=4):
                    for k, v in list(fr.f_locals.items()):
                        if isinstance(v, torch.Tensor) and v.is_leaf:
                            local_names.setdefault(id(v), k)
                for x, pid in zip(leaf, leaf_ids):
                    if x["name"] is None:
                        ent = self._index.names.get(pid)
                        x["name"] = ent[1] if ent is not None else local_names.get(pid)
            except Exception:  # pragma: no cover
                pass
        return leaf

    def _build_report(self, final=False, view=None) -> dict:
        graphs = self._registry.all()
        if view is None:
            findings = list(self._log.findings) + self._leaks.findings()
        else:
            graphs = [g for g in graphs if g.id > view._v_gid0]
            findings = list(view._vfindings) + self._leaks.findings(since=view._v_it0)
            if final:  # what a trace of its own would report at its exit, without consuming the host's
                keys = set(view._vkeys)
                for g in self._registry.retained:
                    if (
                        g.retained is not None
                        and not g.reported_gr001
                        and g.saved_alive > 0
                        and g.id > view._v_gid0
                    ):
                        code, msg, site, details, key = checks.gr001(g, True, self._it)
                        if key not in keys:
                            keys.add(key)
                            fn, line, func = _frames.site_parts(site)
                            details["function"] = func
                            findings.append(Finding(code, msg, fn, line, details))
        findings.sort(key=lambda f: _ORDER.get(f.code, 9))
        led = self._ledger
        exc = self._exception if view is None else (view._exception or self._exception)
        rep = {
            "version": SCHEMA_VERSION,
            "torch": torch.__version__.split("+")[0],
            "devices": sorted(led.devices),
            "findings": [f.to_dict() for f in findings],
            "graphs": [self._graph_record(g, final).to_dict() for g in graphs],
            "graphs_dropped": self._registry.dropped,
            "grads": {"leaf": self._leaf_grads(), "nonleaf_retained": list(self._nonleaf_retained)},
            "iterations": [dict(i) for i in led.iterations if view is None or i["index"] >= view._v_it0],
            "memory": {"cuda_peak_bytes": led.peak_cuda(), "saved_bytes_peak": dict(led.saved_peak)},
            "options": {
                "stacks": self.stacks,
                "cuda": self.cuda,
                "inplace": self.inplace,
                "max_graphs": self.max_graphs,
                "every": self.every,
            },
            "exception": dict(exc) if exc else None,
            "blind_spots": [BLIND_SPOTS[k] for k in sorted(self._blind)],
        }
        if view is not None:
            rep["nested_in"] = {
                "host": self._host,
                "started_at": _frames.fmt_site(view._started_at),
                "first_iteration": view._v_it0,
            }
        return rep

    def report(self) -> dict:
        """The report as a plain dict (a snapshot while running, final after stop())."""
        if self._report is not None and not self._running:
            return self._report
        if self._outer is not None:
            o = self._outer
            with o._lock:
                o._drain()
                return o._build_report(final=False, view=self)
        with self._lock:
            self._drain()
            return self._build_report(final=False)

    @property
    def findings(self) -> list[Finding]:
        return [
            Finding(f["code"], f["message"], f["filename"], f["line"], f["details"])
            for f in self.report()["findings"]
        ]

    @property
    def graphs(self) -> list[GraphRecord]:
        return [GraphRecord(**g) for g in self.report()["graphs"]]

    @property
    def iterations(self) -> list[dict]:
        return self.report()["iterations"]

    def to_json(self, indent: int | None = 2) -> str:
        return dumps(self.report(), indent=indent)

    def save_json(self, path) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(self.to_json())

    def __str__(self) -> str:
        return presenter().text(self.report())

    def __repr__(self) -> str:
        state = "running" if self._running else "stopped"
        return f"<gradlint.Trace {state}: {len(self.report()['findings'])} findings>"

    def _repr_html_(self) -> str:
        return presenter().html(self)

    def render(self, path, graph=None, params=None, **kwargs):
        """Draw a traced graph (default: the most interesting one) to PNG/SVG/DOT by suffix."""
        return presenter().render_trace(self, path, graph=graph, params=params, **kwargs)

    # ------------------------------------------------------------------ public graph API (the renderer uses it)

    def node_info(self, node) -> dict | None:
        """What this trace recorded about autograd node ``node`` (a ``grad_fn``), or None when the trace did not
        see it being created.  Keys: ``op`` (node class), ``call`` (the torch function), ``site``
        (``{"filename", "line", "function"}`` of the creating user line, or None), ``source`` (``"file:line"``),
        ``stack``, ``iteration``, ``graph`` (graph id), ``saved_tensors``, ``saved_bytes`` (activation bytes the
        node saved, kept after they are freed), ``state`` (``"alive"``/``"freed"`` for its saved tensors, None if
        it saved none; exact also after stop()) and ``retains_grad``."""
        if self._outer is not None:
            return self._outer.node_info(node)
        tag = tag_of(node)
        if not isinstance(tag, NodeTag) or tag.sink is not self._sink:
            return None
        if self._running:
            with self._lock:
                self._drain()
        fn, line, func = _frames.site_parts(tag.site)
        g = tag.graph
        state = None if not tag.n_saved else ("alive" if tag.saved_alive > 0 else "freed")
        return {
            "op": tag.op,
            "call": tag.fname,
            "site": {"filename": fn, "line": line, "function": func} if fn is not None else None,
            "source": _frames.loc(fn, line) if fn is not None else None,
            "stack": _frames.site_stack(tag.site) if tag.site else [],
            "iteration": tag.it,
            "graph": g.id if g is not None else None,
            "saved_tensors": tag.n_saved,
            "saved_bytes": tag.saved_bytes,
            "state": state,
            "retains_grad": bool(tag.retains),
        }

    def graph_roots(self, graph_id: int) -> list:
        """The live root tensors of graph ``graph_id``: the tensors a backward was called on, or, for a graph no
        backward consumed, its outputs that were alive at the iteration boundary.  The trace holds them by weak
        references only, so a root that died is simply missing (``[]`` when none is left).  A root modified in
        place since (``total_loss += loss``) now starts a newer graph that contains this one."""
        if self._outer is not None:
            return self._outer.graph_roots(graph_id)
        with self._lock:
            g = self._registry.get(graph_id)
            return self._registry.roots_of(g) if g is not None else []

    def graph_root_names(self, graph_id: int) -> list[str]:
        """The user's names for the roots of graph ``graph_id`` (``loss``, ``hidden``) where the trace saw them."""
        if self._outer is not None:
            return self._outer.graph_root_names(graph_id)
        g = self._registry.get(graph_id)
        return list(g.root_names) if g is not None else []

    def named_parameters(self) -> list[tuple]:
        """``[(name, parameter)]`` for the live parameters the trace has named (module paths such as
        ``fc1.weight``), like ``nn.Module.named_parameters``."""
        if self._outer is not None:
            return self._outer.named_parameters()
        return self._index.named_parameters()

    def model_names(self) -> dict[int, str]:
        """``id(parameter) -> "model.fc1.weight"``: module paths prefixed by the model's variable name."""
        if self._outer is not None:
            return self._outer.model_names()
        out = {}
        for pid, ent in list(self._index.names.items()):
            if ent[2]() is not None:
                out[pid] = f"{ent[3]}.{ent[1]}" if ent[3] else ent[1]
        return out


def _exception_record(exc):
    """What the report says about the exception that ended the traced run (``sys.exit(0)`` is not one)."""
    if exc is None or (isinstance(exc, SystemExit) and exc.code in (None, 0)):
        return None
    tb = exc.__traceback__
    fn = line = None
    while tb is not None:  # the innermost user frame of the traceback
        code = tb.tb_frame.f_code
        if not _frames.is_internal_code(code):
            fn, line = _frames.short_filename(code.co_filename), tb.tb_lineno
        tb = tb.tb_next
    text = str(exc)
    return {
        "type": type(exc).__name__,
        "message": text.splitlines()[0][:500] if text else "",
        "filename": fn,
        "line": line,
    }


def trace(
    fn=None, *, stacks: int = 1, cuda="auto", inplace: bool = True, max_graphs: int = 1000, every: int = 1
):
    """Trace autograd: ``with gradlint.trace() as t: ...``; ``@gradlint.trace``; ``t = trace(); t.start()``.

    stacks: user frames recorded per site (1 = the innermost user line).
    cuda: record per-iteration CUDA memory (True/False/"auto": only if CUDA is already initialized).
    inplace: detect in-place writes into saved tensors (GR004) at the mutation.
    max_graphs: graph records kept (oldest freed ones are dropped first).
    every: sampling -- fully trace every Nth iteration, only cheap counters in between.
    """
    t = Trace(stacks=stacks, cuda=cuda, inplace=inplace, max_graphs=max_graphs, every=every)
    if fn is not None:
        if not callable(fn):
            raise TypeError("trace() takes keyword options only (or a function to decorate)")
        return t(fn)
    return t
