"""The runtime tracer behind ``gradlint.trace()``.

Mechanisms (all installed on start, all removed on stop, also when the body raises):

* ``torch.autograd.graph.saved_tensors_hooks`` -- every tensor autograd saves is
  packed into a small handle holding ``t.detach()`` (never ``t``: that would make
  reference cycles) plus its version, storage pointer and size.  The handle's
  ``__del__`` tells us when autograd released it.  Because PyTorch skips its own
  version-counter check while such hooks are installed, the unpack hook checks
  the version itself and raises :class:`InplaceOnSavedTensorError`.
* a ``TorchFunctionMode`` that sees every Python-level torch call: it tags the
  autograd node each op creates with a sentinel in ``node.metadata`` (whose
  finalizer tells us when the node dies), detects in-place writes into saved
  storages, ``.grad`` reads on non-leaves, gradient resets and graph cuts.
* wrappers around ``Tensor.backward``, ``torch.autograd.backward`` and
  ``torch.autograd.grad`` (patched only while tracing) that walk the graph from
  the roots, group nodes into graphs and diagnose backward through freed graphs.
* global optimizer step pre/post hooks: iteration boundaries and GR007.

Finalizers (handles, node sentinels) may run on autograd's worker threads; they
only append to a deque.  All bookkeeping happens under a lock on the tracing thread.
"""

from __future__ import annotations

import collections
import functools
import gc
import inspect
import sys
import threading
import types
import weakref
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from . import _frames
from .report import (
    SCHEMA_VERSION,
    Finding,
    GraphRecord,
    dumps,
    fmt_bytes,
    fmt_devbytes,
    render_html,
    render_text,
)

_TAG = "_gradlint"

_ACTIVE: Trace | None = None
_ACTIVE_LOCK = threading.Lock()
_tls = threading.local()


# --------------------------------------------------------------------------- errors


class GradlintError(RuntimeError):
    """Base class of errors raised by the gradlint runtime tracer."""


class BackwardThroughFreedGraphError(GradlintError):
    """GR003: backward would run through a graph whose buffers were already freed.

    ``graph``: id of the freed graph the backward reached (or None); ``details``: the finding's details."""

    code = "GR003"
    graph = None
    details = None


class InplaceOnSavedTensorError(GradlintError):
    """GR004: a tensor saved for backward was modified in place before backward used it.

    ``graph``: id of the graph of the node that saved the tensor (or None)."""

    code = "GR004"
    graph = None


class TraceStateError(GradlintError):
    """Nested or double-started traces, or stop() without start()."""


# --------------------------------------------------------------------------- small objects


class _Sink:
    """Shared by handles and node sentinels; outlives the trace harmlessly."""

    __slots__ = ("q", "open", "main_ident")

    def __init__(self):
        self.q = collections.deque()
        self.open = True
        self.main_ident = threading.get_ident()


class _Graph:
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
        "roots",
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
        self.best = None  # (site, op)
        self.best_bytes = -1
        self.first = None
        self.calls = []
        self.freed = None
        self.retained = None
        self.reported_gr001 = False
        self.roots = ()  # weak references to the root tensors (backward roots / outputs alive at the boundary)
        self.outs = [] if pending else None  # pending graphs: weak references to op outputs (compacted)
        self.outs_cap = 4096

    def add_bytes(self, dev, nb, leaf):
        d = self.leaf_bytes if leaf else self.bytes
        v = d.get(dev, 0) + nb
        d[dev] = v
        if not leaf and v > self.peak.get(dev, 0):
            self.peak[dev] = v


class _Tag:
    """Sentinel stored in ``node.metadata``; its finalizer reports the node's death."""

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
    )

    def __del__(self):
        s = self.sink
        if s.open:
            site = None
            g = self.graph
            if g is not None and g.freed is None and threading.get_ident() == s.main_ident:
                site = _frames.user_site(1, 1)
            s.q.append((0, self, site))


class _Packed:
    """What the pack hook returns: the detached tensor plus bookkeeping (no reference to ``t``)."""

    __slots__ = ("t", "v", "key", "nb", "dev", "leaf", "tag", "sink", "__weakref__")

    def __del__(self):
        s = self.sink
        if s.open:
            s.q.append((1, self.key, self.tag, self.nb, self.dev, self.leaf))
        else:  # after stop(): keep the node's alive/freed state exact for node_info()
            tag = self.tag
            if tag is not None:
                tag.saved_alive -= 1


class _Light:
    """Cheap handle used between sampled iterations: only keeps the version check."""

    __slots__ = ("t", "v")

    def __init__(self, t, v):
        self.t = t
        self.v = v


_ACCUM_FUNCS = {
    "add",
    "__add__",
    "__radd__",
    "__iadd__",
    "add_",
    "sum",
    "stack",
    "cat",
    "append",
    "__isub__",
    "sub",
    "__sub__",
    "__rsub__",
    "sub_",
}
_NOT_MUTATING = {
    "requires_grad_",
    "detach_",
    "share_memory_",
    "retain_grad",
    "_fix_weakref",
    "record_stream",
    "pin_memory_",
    "set_grad_enabled_",
}
_INPLACE_DUNDER = {
    "__iadd__",
    "__isub__",
    "__imul__",
    "__itruediv__",
    "__ifloordiv__",
    "__imod__",
    "__ipow__",
    "__iand__",
    "__ior__",
    "__ixor__",
    "__ilshift__",
    "__irshift__",
    "__imatmul__",
    "__setitem__",
}
_CUT_FUNCS = {
    "detach",
    "long",
    "int",
    "short",
    "byte",
    "bool",
    "char",
    "item",
    "tolist",
    "numpy",
    "round",
    "argmax",
    "argmin",
}

# func -> (kind, name); kinds: 0 plain, 1 in-place, 2 getter, 3 setter, 4 cut candidate, 5 passthrough
_KIND_CACHE: dict = {}


def _classify_func(func):
    name = getattr(func, "__name__", "") or ""
    kind = 0
    if name in ("__get__", "__set__"):
        owner = getattr(func, "__self__", None)
        attr = getattr(owner, "__name__", "")
        kind = 2 if name == "__get__" else 3
        name = attr
    elif getattr(func, "_gradlint_wrapper", False):
        kind = 5
    elif name in _INPLACE_DUNDER or (
        name.endswith("_") and not name.endswith("__") and name not in _NOT_MUTATING
    ):
        kind = 1
    elif name in _CUT_FUNCS:
        kind = 4
    elif name == "retain_grad":
        kind = 6
    try:
        _KIND_CACHE[func] = (kind, name)
    except TypeError:  # pragma: no cover - unhashable callables
        pass
    return kind, name


def _first_tensor(x):
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (list, tuple)) and x and isinstance(x[0], torch.Tensor):
        return x[0]
    return None


def _weak_roots(roots):
    out = []
    for r in roots:
        if isinstance(r, torch.Tensor) and r.grad_fn is not None:
            try:
                out.append(weakref.ref(r))
            except TypeError:  # pragma: no cover
                pass
    return tuple(out)


def _storage_key(t):
    try:
        s = t.untyped_storage()
        return s.data_ptr(), s.nbytes()
    except Exception:
        return None, 0


# --------------------------------------------------------------------------- the mode


class _Mode(TorchFunctionMode):
    def __init__(self, tr: Trace):
        super().__init__()
        self.tr = tr

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if kwargs is None:
            kwargs = {}
        tr = self.tr
        kn = _KIND_CACHE.get(func)
        if kn is None:
            kn = _classify_func(func)
        kind, name = kn
        if kind == 5:
            return func(*args, **kwargs)
        if kind == 2:
            r = func(*args, **kwargs)
            if name == "grad":
                a = args[0] if args else None
                if a is not None and a.grad_fn is not None and not a.retains_grad:
                    tr._on_nonleaf_grad(a)
            elif name == "data" and args and args[0].requires_grad:
                tr._on_cut(args[0], ".data")
            return r
        if kind == 3:
            if name == "grad" and args:
                tr._gen += 1
                tr._grad_set[id(args[0])] = tr._gen
            return func(*args, **kwargs)
        inplace = kind == 1
        if kwargs and not inplace:
            if kwargs.get("inplace") is True:
                inplace = True
            elif kwargs.get("out") is not None:
                inplace = True
        mut = None
        if inplace and args:
            mut = tr._before_inplace(name, args, kwargs)
        grad_on = torch.is_grad_enabled()
        if grad_on:
            pend = tr._pending = []
            try:
                r = func(*args, **kwargs)
            finally:
                tr._pending = None
            tr._after_op(r, name, pend)
        else:
            r = func(*args, **kwargs)
            if not tr._in_step and args and tr._cuts_left > 0:
                a = _first_tensor(args[0])
                if a is not None and a.requires_grad and isinstance(r, torch.Tensor) and not r.requires_grad:
                    tr._on_cut(a, f"{name} under no_grad")
        if mut is not None:
            tr._after_inplace(mut)
        elif kind == 4 and args:
            a = args[0]
            if isinstance(a, torch.Tensor) and a.requires_grad:
                if (
                    name != "detach"
                    and isinstance(r, torch.Tensor)
                    and (r.requires_grad or r.is_floating_point())
                ):
                    pass  # e.g. round() keeps a graph; not a cut
                else:
                    tr._on_cut(a, f".{name}()")
        elif kind == 6 and args:
            tr._on_retain_grad(args[0])
        return r


# --------------------------------------------------------------------------- backward wrappers


_ORIG: dict[str, Any] = {}


def _make_wrapper(kind, orig):
    sig = inspect.signature(orig)

    @functools.wraps(orig)
    def wrapper(*args, **kwargs):
        tr = _ACTIVE
        if tr is None or getattr(_tls, "depth", 0) or threading.get_ident() != tr._sink.main_ident:
            return orig(*args, **kwargs)
        return tr._run_backward(kind, orig, sig, args, kwargs)

    wrapper._gradlint_wrapper = True
    return wrapper


def _install_patches():
    import torch.autograd as ag

    _ORIG["Tensor.backward"] = torch.Tensor.backward
    _ORIG["autograd.backward"] = ag.backward
    _ORIG["autograd.grad"] = ag.grad
    torch.Tensor.backward = _make_wrapper("tensor", _ORIG["Tensor.backward"])
    ag.backward = _make_wrapper("backward", _ORIG["autograd.backward"])
    ag.grad = _make_wrapper("grad", _ORIG["autograd.grad"])


def _remove_patches():
    import torch.autograd as ag

    if "Tensor.backward" in _ORIG:
        torch.Tensor.backward = _ORIG.pop("Tensor.backward")
    if "autograd.backward" in _ORIG:
        ag.backward = _ORIG.pop("autograd.backward")
    if "autograd.grad" in _ORIG:
        ag.grad = _ORIG.pop("autograd.grad")


# --------------------------------------------------------------------------- the trace


def _dev_str(dev, _cache=None):
    if _cache is None:
        _cache = {}
    s = _cache.get(dev)
    if s is None:
        s = _cache[dev] = str(dev)
    return s


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
        self._reset()

    # ------------------------------------------------------------------ state

    def _reset(self):
        self._sink = _Sink()
        self._lock = threading.RLock()
        self._pending = None
        self._it = 0
        self._stable_since = 0
        self._light = False
        self._in_step = False
        self._mode = None
        self._mode_popped = False
        self._hooks_cm = None
        self._opt_handles = []
        self._storages: dict[int, list] = {}
        self._saved_alive = {}  # dev -> activation bytes
        self._leaf_alive = {}
        self._saved_peak = {}
        self._devices = set()
        self._it_nodes: list[int] = [0]
        self._it_saved: list[int] = [0]
        self._graph_id = 0
        self._pending_graph = None
        self._graphs: list[_Graph] = []
        self._graphs_dropped = 0
        self._retained: list[_Graph] = []
        self._calls = 0
        self._findings: list[Finding] = []
        self._fkeys = set()
        self._leaks: dict[Any, dict] = {}
        self._leak_searches = 0
        self._gc_searches = 0
        self._last_holders = []
        self._iterations: list[dict] = []
        self._user_steps = False
        self._opt_seen: dict[int, Any] = {}
        self._last_opt = None
        self._opt_grads: dict[int, dict] = {}
        self._gen = 0
        self._zeroed: dict[int, int] = {}
        self._grad_set: dict[int, int] = {}
        self._reached: set = set()
        self._reached_any = False
        self._cuts: list[tuple] = []
        self._cuts_left = 32
        self._param_names: dict[int, tuple] = {}
        self._modules_scanned = False
        self._gc_scanned = False
        self._nonleaf_retained: list[dict] = []
        self._leaf_params: dict[int, Any] = {}
        self._cuda_on = False
        self._cuda_peak = 0
        self._orphans = 0
        self._light_saved = 0
        self._last_step_site = None
        self._started_at = None
        self._frames_touched = False
        self._views: list[Trace] = []
        self._vfindings: list[Finding] = []
        self._vkeys: set = set()
        self._v_it0 = 0
        self._v_gid0 = 0

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
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
        global _ACTIVE
        with _ACTIVE_LOCK:
            if self._running:
                raise TraceStateError("this gradlint trace is already running")
            outer = _ACTIVE
            if outer is not None and outer._host is None:
                raise TraceStateError(
                    "gradlint.trace() is already active (started at "
                    f"{_frames.fmt_site(outer._started_at)}); nested traces are not supported: "
                    "keep a single trace around the outermost block"
                )
            if outer is None:
                _ACTIVE = self
        if outer is not None:
            return self._start_view(outer)
        try:
            self._reset()
            self._report = None
            self._started_at = _frames.user_site(1, 1)
            self._cuda_on = bool(
                self.cuda is True
                or (self.cuda == "auto" and torch.cuda.is_available() and torch.cuda.is_initialized())
            )
            if self.cuda is True and not torch.cuda.is_available():
                self._cuda_on = False
            if self._cuda_on:
                self._devices.add(f"cuda:{torch.cuda.current_device()}")
                torch.cuda.reset_peak_memory_stats()
            self._hooks_cm = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
            self._hooks_cm.__enter__()
            self._mode = _Mode(self)
            self._mode.__enter__()
            _install_patches()
            from torch.optim.optimizer import (
                register_optimizer_step_post_hook,
                register_optimizer_step_pre_hook,
            )

            self._opt_handles = [
                register_optimizer_step_pre_hook(self._opt_pre),
                register_optimizer_step_post_hook(self._opt_post),
            ]
            self._running = True
        except BaseException:
            self._teardown()
            raise
        return self

    def stop(self) -> Trace:
        if not self._running:
            raise TraceStateError("this gradlint trace is not running")
        if self._outer is not None:
            return self._stop_view()
        try:
            self._refresh_frame_locals()
            with self._lock:
                self._drain()
                self._check_retained(at_exit=True)
                if self._reached_any:
                    self._check_params()
                self._report = self._build_report(final=True)
                for v in list(self._views):  # views left running end with their host
                    v._report = self._build_report(final=True, view=v)
                    v._running = False
                self._views = []
        finally:
            try:
                self._refresh_frame_locals()
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
            self._v_gid0 = outer._graph_id
            outer._views.append(self)
        self._running = True
        return self

    def _stop_view(self) -> Trace:
        o = self._outer
        with o._lock:
            o._drain()
            self._report = o._build_report(final=True, view=self)
            if self in o._views:
                o._views.remove(self)
        self._running = False
        return self

    def _view_add(self, f, key):
        if key not in self._vkeys:
            self._vkeys.add(key)
            self._vfindings.append(f)

    def _teardown(self):
        global _ACTIVE
        errors = []
        for h in self._opt_handles:
            try:
                h.remove()
            except Exception as e:  # pragma: no cover
                errors.append(e)
        self._opt_handles = []
        _remove_patches()
        if self._mode is not None:
            if not self._mode_popped:
                try:
                    self._remove_mode()
                except Exception as e:  # pragma: no cover
                    errors.append(e)
            self._mode = None
            self._mode_popped = False
        if self._hooks_cm is not None:
            try:
                self._remove_saved_hooks(errors)
            finally:
                self._hooks_cm = None
        self._sink.open = False
        q = self._sink.q
        while q:  # handles released after the last drain: keep their nodes' saved counts exact
            try:
                ev = q.popleft()
            except IndexError:  # pragma: no cover
                break
            if ev[0] == 1 and ev[2] is not None:
                ev[2].saved_alive -= 1
        self._storages = {}
        self._running = False
        with _ACTIVE_LOCK:
            if _ACTIVE is self:
                _ACTIVE = None
        if errors and sys.exc_info()[0] is None:
            raise errors[0]

    def _remove_saved_hooks(self, errors):
        """Pop our saved-tensor hooks; hooks a user left open above ours are popped and pushed back."""
        A = torch._C._autograd
        above = []
        try:
            while True:
                top = A._top_saved_tensors_default_hooks(False)
                if top is None:
                    return
                if getattr(top[0], "__self__", None) is self:
                    A._pop_saved_tensors_default_hooks()
                    if above:
                        errors.append(
                            TraceStateError(
                                "a saved_tensors_hooks context entered inside the trace was still open at stop(); "
                                "gradlint removed only its own hooks"
                            )
                        )
                    return
                A._pop_saved_tensors_default_hooks()
                above.append(top)
        finally:
            for pack, unpack in reversed(above):
                A._push_saved_tensors_default_hooks(pack, unpack)

    def _remove_mode(self):
        """Pop our TorchFunctionMode even if user modes were pushed above it."""
        C = torch._C
        above = []
        try:
            while C._len_torch_function_stack() > 0:
                m = C._pop_torch_function_stack()
                if m is self._mode:
                    return
                above.append(m)
        finally:
            for m in reversed(above):
                C._push_on_torch_function_stack(m)

    def _mode_on_top(self):
        C = torch._C
        n = C._len_torch_function_stack()
        return n > 0 and C._get_function_stack_at(n - 1) is self._mode

    # ------------------------------------------------------------------ queue processing

    def _drain(self):
        q = self._sink.q
        while q:
            try:
                ev = q.popleft()
            except IndexError:  # pragma: no cover
                break
            if ev[0] == 0:
                tag = ev[1]
                it = tag.it
                if it < len(self._it_nodes):
                    self._it_nodes[it] -= 1
                g = tag.graph
                if g is not None:
                    g.nodes_alive -= 1
                    if g.nodes_alive <= 0 and g.freed is None and not g.pending:
                        self._mark_gc(g, ev[2])
            else:
                _, key, tag, nb, dev, leaf = ev
                e = self._storages.get(key)
                if e is not None:
                    e[0] -= 1
                    if e[0] <= 0:
                        del self._storages[key]
                        d = self._leaf_alive if e[3] else self._saved_alive
                        d[e[2]] = d.get(e[2], 0) - e[1]
                if tag is not None:
                    tag.saved_alive -= 1
                    if leaf:
                        tag.leaf_alive -= nb
                    else:
                        tag.bytes_alive -= nb
                        if tag.it < len(self._it_saved):
                            self._it_saved[tag.it] -= nb
                    g = tag.graph
                    if g is not None:
                        g.saved_alive -= 1
                        d = g.leaf_bytes if leaf else g.bytes
                        d[dev] = d.get(dev, 0) - nb

    def _mark_gc(self, g, site):
        fn, line, func = _frames.site_parts(site)
        g.freed = {"by": "gc", "filename": fn, "line": line, "iteration": self._it}

    # ------------------------------------------------------------------ saved tensor hooks

    def _pack(self, t):
        if self._light:
            self._light_saved += 1
            return _Light(t.detach(), t._version)
        h = _Packed()
        h.t = t.detach()
        h.v = t._version
        h.sink = self._sink
        h.tag = None
        key, nb = _storage_key(t)
        dev = _dev_str(t.device)
        leaf = t.grad_fn is None
        if not leaf and t._is_view():
            b = t._base
            leaf = b is not None and b.grad_fn is None
        h.key = key
        h.dev = dev
        h.leaf = leaf
        with self._lock:
            if self._sink.q:
                self._drain()
            e = self._storages.get(key)
            if e is None:
                self._storages[key] = [1, nb, dev, leaf, weakref.ref(h), None]
                h.nb = nb
                d = self._leaf_alive if leaf else self._saved_alive
                v = d.get(dev, 0) + nb
                d[dev] = v
                if not leaf and v > self._saved_peak.get(dev, 0):
                    self._saved_peak[dev] = v
                if dev not in self._devices:
                    self._devices.add(dev)
            else:
                e[0] += 1
                h.nb = 0
                if e[4]() is None:
                    e[4] = weakref.ref(h)
            pend = self._pending
            if pend is not None:
                pend.append(h)
            else:
                self._orphans += 1
        return h

    def _unpack(self, h):
        t = h.t
        if t._version != h.v:
            raise self._inplace_error(h)
        return t

    # ------------------------------------------------------------------ per op

    def _new_tag(self, fn, name, site):
        tag = _Tag()
        tag.sink = self._sink
        tag.it = self._it
        tag.site = site
        tag.op = type(fn).__name__
        tag.fname = name
        tag.n_saved = 0
        tag.saved_alive = 0
        tag.saved_bytes = 0
        tag.bytes_alive = 0
        tag.leaf_alive = 0
        tag.dev = None
        tag.consumed = None
        tag.fdetails = None
        tag.retains = False
        g = self._pending_graph
        if g is None:
            self._graph_id += 1
            g = self._pending_graph = _Graph(self._graph_id, self._it, pending=True)
        tag.graph = g
        g.nodes += 1
        g.nodes_alive += 1
        if g.first is None:
            g.first = (site, tag.op)
        self._it_nodes[-1] += 1
        fn.metadata[_TAG] = tag
        return tag

    @staticmethod
    def _note_out(g, x):
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

    def _after_op(self, r, name, pend):
        tag = None
        if isinstance(r, torch.Tensor):
            fn = r.grad_fn
            if fn is not None:
                md = fn.metadata
                tag = md.get(_TAG)
                if tag is None:
                    tag = self._new_tag(fn, name, _frames.user_site(self.stacks, 1))
                    self._note_out(tag.graph, r)
        elif isinstance(r, (tuple, list)):
            site = None
            for x in r[:8]:
                if isinstance(x, torch.Tensor):
                    fn = x.grad_fn
                    if fn is not None and _TAG not in fn.metadata:
                        if site is None:
                            site = _frames.user_site(self.stacks, 1)
                        t2 = self._new_tag(fn, name, site)
                        self._note_out(t2.graph, x)
                        if tag is None:
                            tag = t2
        if pend:
            with self._lock:
                if tag is None:
                    self._orphans += len(pend)
                    return
                g = tag.graph
                for h in pend:
                    h.tag = tag
                    tag.n_saved += 1
                    tag.saved_alive += 1
                    nb = h.nb
                    if h.leaf:
                        tag.leaf_alive += nb
                    else:
                        tag.saved_bytes += nb
                        tag.bytes_alive += nb
                        self._it_saved[-1] += nb
                    tag.dev = h.dev
                    g.saved_alive += 1
                    g.add_bytes(h.dev, nb, h.leaf)
                if tag.saved_bytes > g.best_bytes:
                    g.best_bytes = tag.saved_bytes
                    g.best = (tag.site, tag.op)

    # ------------------------------------------------------------------ in-place (GR004)

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
            st = self._storages
            for tt in targets[:64]:
                if not isinstance(tt, torch.Tensor):
                    continue
                if zero:
                    self._gen += 1
                    try:
                        self._zeroed[tt.data_ptr()] = self._gen
                    except Exception:
                        pass
                if not st:
                    continue
                key, _ = _storage_key(tt)
                e = st.get(key)
                if e is not None:
                    h = e[4]()
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
            e[5] = (site, name, path)
            tag = h.tag if h is not None else None
            saved_op = (tag.fname, tag.op, tag.site) if tag is not None else (None, None, None)
            fn, line, func = _frames.site_parts(site)
            sfn, sline, _ = _frames.site_parts(saved_op[2])
            what = (
                f"the {'input' if e[3] else 'output/activation'} saved by `{saved_op[0]}` ({saved_op[1]}) at {sfn}:{sline}"
                if saved_op[1]
                else "a tensor saved for backward"
            )
            if shared:
                consequence = (
                    "backward would fail with a version-counter error; gradlint raises at backward "
                    "(PyTorch's own check is off while saved-tensor hooks are installed)"
                )
            else:
                consequence = (
                    "PyTorch does NOT detect this (.data has its own version counter): the next backward "
                    "would silently compute wrong gradients"
                )
            msg = (
                f"in-place `{name}` {path} modifies {what} before backward used it; {consequence}. "
                f"Fix: use the out-of-place op (e.g. `y = y + 1`) or modify a `.clone()`"
            )
            details = {
                "op": name,
                "path": path,
                "saved_by_op": saved_op[0],
                "saved_by_node": saved_op[1],
                "saved_at": {"filename": sfn, "line": sline},
                "bytes": e[1],
                "version_checked": shared,
                "graph": tag.graph.id if tag is not None and tag.graph is not None else None,
                "stack": _frames.site_stack(site),
            }
            if self._add_finding("GR004", msg, site, details, key=("GR004", fn, line)) and tag is not None:
                # a pending graph's id changes when a backward groups it: keep details["graph"] current
                if tag.fdetails is None:
                    tag.fdetails = []
                tag.fdetails.append(details)

    def _inplace_error(self, h):
        e = self._storages.get(h.key) if isinstance(h, _Packed) else None
        tag = getattr(h, "tag", None)
        where = ""
        if tag is not None:
            where = f" saved by `{tag.fname}` ({tag.op}) at {_frames.fmt_site(tag.site)}"
        mut = e[5] if e is not None else None
        if mut is not None:
            msite, mname, mpath = mut
            how = f"modified by in-place `{mname}` {mpath} at {_frames.fmt_site(msite)}"
        elif self._last_step_site is not None:
            how = (
                f"modified in place by an operation gradlint did not see at Python level "
                f"(the last optimizer.step() was at {_frames.fmt_site(self._last_step_site)})"
            )
        else:
            how = "modified in place by an operation gradlint did not see at Python level"
        msg = (
            f"one of the variables needed for gradient computation has been modified by an inplace operation: "
            f"[{h.t.type()} {list(h.t.shape)}]{where} is at version {h.t._version}; expected version {h.v} instead. "
            f"gradlint GR004: the tensor was {how}. PyTorch skips its own check while saved-tensor hooks are "
            f"installed, so gradlint raises instead of computing wrong gradients. Fix: use an out-of-place op "
            f"or modify a .clone()."
        )
        exc = InplaceOnSavedTensorError(msg)
        exc.graph = tag.graph.id if tag is not None and tag.graph is not None else None
        return exc

    # ------------------------------------------------------------------ GR005, cuts, retain_grad

    def _on_nonleaf_grad(self, a):
        site = _frames.user_site(self.stacks, 1)
        fn, line, _ = _frames.site_parts(site)
        if fn is None:
            return
        op = type(a.grad_fn).__name__
        self._add_finding(
            "GR005",
            (
                f"`.grad` read on a non-leaf tensor (created by {op}); it is always None because autograd only "
                f"populates .grad of leaves. Call `.retain_grad()` on it before backward, or read the gradient of "
                f"the leaf parameters instead"
            ),
            site,
            {"op": op},
            key=("GR005", fn, line),
        )

    def _on_retain_grad(self, a):
        if a.grad_fn is None:
            return
        tag = a.grad_fn.metadata.get(_TAG)
        if tag is not None:
            tag.retains = True
        if len(self._nonleaf_retained) >= 100:
            return
        site = _frames.user_site(1, 1)
        fn, line, _ = _frames.site_parts(site)
        self._nonleaf_retained.append({"filename": fn, "line": line, "op": type(a.grad_fn).__name__})

    def _on_cut(self, a, how):
        if self._cuts_left <= 0:
            return
        self._cuts_left -= 1
        site = _frames.user_site(1, 1)
        params = set()
        if a.grad_fn is None:
            params.add(id(a))
        else:
            self._walk_params(a.grad_fn, params, limit=256)
        self._cuts.append((site, how, params))

    @staticmethod
    def _walk_params(fn, params, limit):
        stack = [fn]
        seen = set()
        keep = []
        while stack and len(seen) < limit:
            f = stack.pop()
            i = id(f)
            if i in seen:
                continue
            seen.add(i)
            keep.append(f)
            if type(f).__name__ == "AccumulateGrad":
                params.add(id(f.variable))
                continue
            for n, _ in f.next_functions:
                if n is not None:
                    stack.append(n)

    # ------------------------------------------------------------------ backward

    def _run_backward(self, kind, orig, sig, args, kwargs):
        try:
            ba = sig.bind(*args, **kwargs)
            a = ba.arguments
        except TypeError:
            return orig(*args, **kwargs)
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
        site = _frames.user_site(self.stacks, 1)
        fn, line, _ = _frames.site_parts(site)
        self._calls += 1
        call = {
            "index": self._calls,
            "filename": fn,
            "line": line,
            "iteration": self._it,
            "retain_graph": bool(retain),
            "_site": site,
        }
        walk = None
        if not self._light:
            with self._lock:
                self._drain()
                walk = self._walk(roots)
                self._group(call, walk, roots)
            if walk["hits"] and not partial:
                raise self._freed_error(call, walk, roots, None)
        _tls.depth = getattr(_tls, "depth", 0) + 1
        try:
            result = orig(*args, **kwargs)
        except RuntimeError as err:
            if "second time" in str(err) or "already been freed" in str(err):
                if walk is None:
                    with self._lock:
                        self._drain()
                        walk = self._walk(roots)
                raise self._freed_error(call, walk, roots, err) from err
            raise
        finally:
            _tls.depth -= 1
        if walk is not None:
            with self._lock:
                self._drain()
                self._after_backward(call, walk, retain)
        return result

    def _walk(self, roots):
        stack = []
        params = set()
        for r in roots:
            if isinstance(r, torch.Tensor):
                if r.grad_fn is not None:
                    stack.append(r.grad_fn)
                elif r.requires_grad:
                    params.add(id(r))
        seen = set()
        keep = []
        tags = []
        hits = []
        while stack:
            f = stack.pop()
            i = id(f)
            if i in seen:
                continue
            seen.add(i)
            keep.append(f)
            if type(f).__name__ == "AccumulateGrad":
                v = f.variable
                params.add(id(v))
                if id(v) not in self._leaf_params:
                    self._leaf_params[id(v)] = weakref.ref(v)
                continue
            try:
                tag = f.metadata.get(_TAG)
            except Exception:
                tag = None
            if tag is not None:
                if tag.n_saved and tag.saved_alive == 0:
                    hits.append(tag)
                    continue
                tags.append(tag)
            for n, _ in f.next_functions:
                if n is not None:
                    stack.append(n)
        return {"tags": tags, "hits": hits, "params": params, "nodes": len(seen)}

    def _group(self, call, walk, roots=()):
        """Move the not-yet-grouped tags reached from the roots into one new graph (before the engine runs)."""
        newg = None
        touched = {}
        for tag in walk["tags"]:
            g = tag.graph
            if g is None or g.pending:
                if newg is None:
                    self._graph_id += 1
                    newg = _Graph(self._graph_id, self._it)
                    newg.nodes = walk["nodes"]
                    newg.roots = _weak_roots(roots)
                    self._add_graph(newg)
                if g is not None:  # move from the pending graph
                    if g.best is not None and g.best[0] is tag.site:
                        g.best, g.best_bytes = None, -1
                    if g.first is not None and g.first[0] is tag.site:
                        g.first = None
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
        walk["graphs"] = touched

    def _after_backward(self, call, walk, retain):
        touched = walk.get("graphs", {})
        if not retain:
            for tag in walk["tags"]:
                tag.consumed = call
        pub = {k: v for k, v in call.items() if not k.startswith("_") and k != "index"}
        for g in touched.values():
            g.calls.append(pub)
            if retain:
                g.retained = call
                if g not in self._retained:
                    self._retained.append(g)
            elif g.saved_alive <= 0:
                g.retained = None
                g.freed = {
                    "by": "backward",
                    "filename": call["filename"],
                    "line": call["line"],
                    "iteration": call["iteration"],
                }
        if walk["params"]:
            self._reached |= walk["params"]
            self._reached_any = True

    def _add_graph(self, g):
        self._graphs.append(g)
        if len(self._graphs) > self.max_graphs:
            for i, old in enumerate(self._graphs):
                if old.freed is not None:
                    del self._graphs[i]
                    break
            else:
                del self._graphs[0]
            self._graphs_dropped += 1

    # ------------------------------------------------------------------ GR003

    def _freed_error(self, call, walk, roots, err):
        hits = walk["hits"] if walk else []
        hit = hits[0] if hits else None
        cur = f"{call['filename']}:{call['line']}"
        prev = hit.consumed if hit is not None else None
        if prev is not None:
            freed_at = (
                f"freed by the backward at {prev['filename']}:{prev['line']} "
                f"(backward call #{prev['index']}, iteration {prev['iteration']})"
            )
        else:
            freed_at = "freed by an earlier backward"
        created = (
            f" (buffers saved by `{hit.fname}` at {_frames.fmt_site(hit.site)})" if hit is not None else ""
        )
        cause = ""
        fix = (
            "Fix: recompute the forward pass for each backward, or sum the losses and call backward once; "
            "do NOT add retain_graph=True (it keeps every graph alive and backpropagates the old terms again)"
        )
        details = {
            "backward": {"filename": call["filename"], "line": call["line"], "iteration": call["iteration"]},
            "freed_by": ({k: prev[k] for k in ("filename", "line", "iteration")} if prev else None),
            "holder": None,
            "cause": None,
            "graph": hit.graph.id if hit is not None and hit.graph is not None else None,
        }
        (call["filename"], call["line"])
        frames = _frames.user_frames(start=3, limit=3)
        self._frames_touched = True
        root = roots[0] if roots else None
        root_name = None
        for fr in frames:
            for k, v in fr.f_locals.items():
                if v is root and root is not None:
                    root_name = k
                    break
            if root_name:
                break
        root_tag = None
        if isinstance(root, torch.Tensor) and root.grad_fn is not None:
            root_tag = root.grad_fn.metadata.get(_TAG)
        if root_tag is not None and root_tag.fname in _ACCUM_FUNCS and root_name is not None:
            acc = _frames.fmt_site(root_tag.site)
            cause = (
                f" The variable `{root_name}` accumulates across loop iterations (`{root_name} += ...` at {acc}) "
                f"and still holds the graph of the earlier step."
            )
            fix = (
                f"Fix: sum the losses and call backward once after the loop (e.g. `{root_name} = sum(losses); "
                f"{root_name}.backward()`), or call backward on each term separately; do NOT add "
                f"retain_graph=True (it keeps every step's graph alive and backpropagates old terms again)"
            )
            details["holder"] = root_name
            details["cause"] = "accumulation"
            details["accumulated_at"] = {
                "filename": _frames.site_parts(root_tag.site)[0],
                "line": _frames.site_parts(root_tag.site)[1],
            }
        elif hit is not None:
            state = None
            for fr in frames:
                for k, v in fr.f_locals.items():
                    if isinstance(v, torch.Tensor) and v is not root and v.grad_fn is not None:
                        t2 = v.grad_fn.metadata.get(_TAG)
                        if (
                            t2 is not None
                            and t2 is not hit
                            and t2.site
                            and hit.site
                            and t2.site[:2] == hit.site[:2]
                            and t2.consumed is None
                        ):
                            state = k
                            break
                    elif isinstance(v, (tuple, list)) and v and isinstance(v[0], torch.Tensor):
                        for x in v[:4]:
                            if isinstance(x, torch.Tensor) and x.grad_fn is not None:
                                t2 = x.grad_fn.metadata.get(_TAG)
                                if (
                                    t2 is not None
                                    and t2 is not hit
                                    and t2.site
                                    and hit.site
                                    and t2.site[:2] == hit.site[:2]
                                    and t2.consumed is None
                                ):
                                    state = k
                                    break
                        if state:
                            break
                if state:
                    break
            if state is not None:
                cause = (
                    f" The recurrent state `{state}` (computed at {_frames.fmt_site(hit.site)}) is carried into "
                    f"the next step without `.detach()`, so this backward reaches into the freed graph."
                )
                fix = (
                    f"Fix: detach the carried state at the start of each truncation window "
                    f"(`{state} = {state}.detach()`); do NOT add retain_graph=True (memory and time grow "
                    f"with every step)"
                )
                details["holder"] = state
                details["cause"] = "carried-state"
        msg = (
            f"backward at {cur} goes through a graph whose saved buffers were already {freed_at}{created}.{cause} "
            f"{fix}."
        )
        if err is not None:
            msg += f" [torch: {str(err).splitlines()[0]}]"
        self._add_finding("GR003", msg, call.get("_site"), details)
        exc = BackwardThroughFreedGraphError("gradlint GR003: " + msg)
        exc.graph = details["graph"]
        exc.details = details
        return exc

    # ------------------------------------------------------------------ optimizer hooks / iterations

    def _opt_pre(self, opt, args, kwargs):
        if self._mode is not None and not self._mode_popped and self._mode_on_top():
            torch._C._pop_torch_function_stack()
            self._mode_popped = True
        self._in_step = True
        self._last_step_site = _frames.user_site(1, 1)
        if self._light:
            return
        rec = self._opt_grads.get(id(opt))
        if rec is None:
            return
        stale = []
        for group in opt.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                prev = rec.get(id(p))
                if prev is None or prev[0]() is not g or g._version == prev[1]:
                    continue
                if self._grad_set.get(id(p), -1) > prev[3]:
                    continue
                try:
                    if self._zeroed.get(g.data_ptr(), -1) > prev[3]:
                        continue
                except Exception:
                    continue
                stale.append(p)
        if stale:
            site = self._last_step_site
            fn, line, _ = _frames.site_parts(site)
            names = self._names_for(stale)
            prevsite = rec.get("_site")
            pfn, pline, _ = _frames.site_parts(prevsite)
            self._add_finding(
                "GR007",
                (
                    f"optimizer.step() called again without resetting gradients since the previous step "
                    f"(at {pfn}:{pline}): {len(stale)} parameter(s) ({', '.join(names[:5])}"
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
        self._in_step = False
        if self._mode_popped and self._mode is not None:
            if not self._light:
                torch._C._push_on_torch_function_stack(self._mode)
                self._mode_popped = False
        if not self._light:
            self._gen += 1
            gen = self._gen
            rec = {"_site": self._last_step_site}
            for group in opt.param_groups:
                for p in group["params"]:
                    g = p.grad
                    if g is not None:
                        rec[id(p)] = (weakref.ref(g), g._version, None, gen)
                    if id(p) not in self._leaf_params:
                        self._leaf_params[id(p)] = weakref.ref(p)
            self._opt_grads[id(opt)] = rec
        if self._user_steps:
            return
        oid = id(opt)
        if oid not in self._opt_seen:
            self._opt_seen[oid] = weakref.ref(opt)
            if self._last_opt is not None:
                self._stable_since = self._it + 1
            self._last_opt = oid
        if oid == self._last_opt:
            self._boundary()

    def step(self):
        """Explicit iteration boundary.  Once called, optimizer steps no longer end iterations."""
        if not self._running:
            raise TraceStateError("trace.step() called while the trace is not running")
        if self._outer is not None:
            self._outer.step()
            return
        if not self._user_steps:
            self._user_steps = True
            self._stable_since = self._it + 1 if self._iterations else self._it
        self._boundary()

    def _refresh_frame_locals(self):
        """Drop the ``f_locals`` snapshots the holder/name searches left on the user's frames.

        Python < 3.13: reading ``frame.f_locals`` of a function frame stores a snapshot dict on the frame that
        keeps every value it saw alive (also after the function deletes or rebinds the name) until the next
        read.  For function frames the snapshot is only a cache of the fast locals, so it is emptied (CPython
        refills it on the next ``locals()``/``f_locals``); module and class frames (whose ``f_locals`` is the
        real namespace) are never touched."""
        if not self._frames_touched or sys.version_info >= (3, 13):
            return
        self._frames_touched = False
        for fr in _frames.user_frames(start=2, limit=8):
            if fr.f_code.co_flags & inspect.CO_OPTIMIZED:
                try:
                    fr.f_locals.clear()
                except Exception:  # pragma: no cover
                    pass

    def _boundary(self):
        self._refresh_frame_locals()
        with self._lock:
            self._drain()
            b = self._it
            if self._pending_graph is not None:
                g = self._pending_graph
                self._pending_graph = None
                g.pending = False
                g.roots = self._pending_roots(g)
                g.outs = None
                if g.nodes_alive > 0 or g.saved_alive > 0:
                    self._add_graph(g)
            if self._reached_any and not self._light:
                self._check_params()
            self._check_retained(at_exit=False)
            if not self._light:
                self._check_leaks(b)
                self._refresh_frame_locals()
            cuda_alloc = cuda_peak = 0
            if self._cuda_on:
                try:
                    cuda_alloc = torch.cuda.memory_allocated()
                    cuda_peak = torch.cuda.max_memory_allocated()
                    self._cuda_peak = max(self._cuda_peak, cuda_peak)
                    torch.cuda.reset_peak_memory_stats()
                except Exception:  # pragma: no cover
                    pass
            self._iterations.append(
                {
                    "index": b,
                    "saved_bytes_alive_at_end": {k: v for k, v in self._saved_alive.items()},
                    "cuda_allocated": int(cuda_alloc),
                    "cuda_peak": int(cuda_peak),
                    "traced": not self._light,
                }
            )
            self._it = b + 1
            self._it_nodes.append(0)
            self._it_saved.append(0)
            self._reached = set()
            self._reached_any = False
            self._cuts = []
            self._cuts_left = 32
            self._set_light(self._it % self.every != 0)

    def _pending_roots(self, g, limit=16):
        """Weak references to the outputs of pending graph ``g`` that are alive, still belong to ``g`` and
        that no other such output's graph reaches (its roots)."""
        if not g.outs:
            return ()
        sink = self._sink
        cands = {}
        for r in g.outs:
            x = r()
            if x is None:
                continue
            fn = x.grad_fn
            tag = fn.metadata.get(_TAG) if fn is not None else None
            if tag is not None and tag.graph is g and tag.sink is sink:
                cands.setdefault(id(fn), (r, fn))
        if not cands:
            return ()
        reached = set()
        stack = []
        for _, fn in cands.values():
            stack.extend(n for n, _ in fn.next_functions if n is not None)
        seen = set()
        while stack and len(seen) < 50000:
            f = stack.pop()
            if id(f) in seen:
                continue
            seen.add(id(f))
            if id(f) in cands:
                reached.add(id(f))
            if type(f).__name__ == "AccumulateGrad":
                continue
            stack.extend(n for n, _ in f.next_functions if n is not None)
        out = tuple(r for k, (r, _) in cands.items() if k not in reached)
        return out[-limit:]

    def _set_light(self, light):
        if light == self._light:
            return
        self._light = light
        if self._mode is None:
            return
        if light:
            self._opt_grads.clear()
            if not self._mode_popped and self._mode_on_top():
                torch._C._pop_torch_function_stack()
                self._mode_popped = True
        else:
            if self._mode_popped and not self._in_step:
                torch._C._push_on_torch_function_stack(self._mode)
                self._mode_popped = False

    @property
    def iteration(self) -> int:
        if self._outer is not None and self._running:
            return self._outer._it
        return self._it

    # ------------------------------------------------------------------ GR001

    def _check_retained(self, at_exit):
        for g in self._retained:
            if g.retained is None or g.reported_gr001 or g.saved_alive <= 0:
                continue
            g.reported_gr001 = True
            self._add_finding(*self._gr001(g, at_exit))
        self._retained = [g for g in self._retained if not g.reported_gr001 and g.saved_alive > 0]

    def _gr001(self, g, at_exit):
        call = g.retained
        held = {k: v for k, v in g.bytes.items() if v > 0}
        site = call.get("_site")
        cfn, cline, _ = _frames.site_parts(g.best[0] if g.best else (g.first[0] if g.first else None))
        op = g.best[1] if g.best else (g.first[1] if g.first else None)
        when = "at exit of the trace" if at_exit else f"at the end of iteration {self._it}"
        total = sum(held.values())
        msg = (
            f"graph {g.id} (created at {cfn}:{cline} by {op}) was kept alive by "
            f"`backward(retain_graph=True)` at {call['filename']}:{call['line']} and still holds "
            f"{fmt_devbytes(held) if total else str(g.saved_alive) + ' saved tensors'} {when}. "
            f"Drop retain_graph=True if no second backward needs this graph (sum the losses and backward "
            f"once), or `del` the outputs that keep it alive"
        )
        details = {
            "graph": g.id,
            "bytes": held,
            "saved_tensors": g.saved_alive,
            "leaf_bytes": {k: v for k, v in g.leaf_bytes.items() if v > 0},
            "created": {"filename": cfn, "line": cline, "op": op},
            "backward": {"filename": call["filename"], "line": call["line"], "iteration": call["iteration"]},
        }
        return "GR001", msg, site, details, ("GR001", call["filename"], call["line"])

    # ------------------------------------------------------------------ GR002

    def _check_leaks(self, b):
        lo = self._stable_since
        nodes = 0
        saved = 0
        its = []
        for it in range(lo, b):
            n = self._it_nodes[it]
            s = self._it_saved[it]
            if n > 0 or s > 0:
                nodes += n
                saved += s
                its.append(it)
        # One old graph kept alive without saved buffers (e.g. a tensor computed once before the loop) is
        # harmless; a leak is saved activations kept alive, or live nodes from several past iterations.
        if not its or (saved <= 0 and len(its) < 2):
            return
        holders = []
        if self._leak_searches < 8:
            self._leak_searches += 1
            holders = self._find_holders(its[-1])
            if not holders and self._gc_searches < 3:
                self._gc_searches += 1
                holders = self._gc_holders(its[-1])
            if holders:
                self._last_holders = holders
        elif self._last_holders:  # search budget spent: the leak keeps its holder
            holders = self._last_holders
        if not holders:
            holders = [None]
        for h in holders:
            key = (h["name"], h["where"]) if h else None
            rec = self._leaks.get(key)
            if rec is None:
                rec = self._leaks[key] = {"holder": h, "series": [], "first_iteration": its[0]}
            rec["series"].append(
                {"boundary": b, "iterations": list(its), "nodes_alive": nodes, "saved_bytes_alive": saved}
            )
            if h is not None and h.get("site"):
                rec["holder"] = h

    def _old_tag(self, t, max_it, limit=20000):
        """A tag of this trace from iteration <= max_it reachable from ``t``'s graph, or None."""
        fn = t.grad_fn
        if fn is None:
            return None
        stack = [fn]
        seen = set()
        while stack and len(seen) < limit:
            f = stack.pop()
            if id(f) in seen:
                continue
            seen.add(id(f))
            if type(f).__name__ == "AccumulateGrad":
                continue
            tag = f.metadata.get(_TAG)
            if tag is not None and tag.it <= max_it and tag.sink is self._sink:
                return tag
            for n, _ in f.next_functions:
                if n is not None:
                    stack.append(n)
        return None

    @staticmethod
    def _holder_info(c, old, name, where, kind):
        root_tag = c.grad_fn.metadata.get(_TAG)
        site = None
        if root_tag is not None and root_tag.fname in _ACCUM_FUNCS and root_tag.site:
            site = root_tag.site
        g = root_tag.graph if root_tag is not None else None
        return {
            "name": name,
            "where": where,
            "kind": kind,
            "site": site or old.site,
            "accumulated": site is not None,
            "op": root_tag.op if root_tag is not None else None,
            "graph": g.id if g is not None else None,
        }

    def _leak_candidates(self, max_it, limit=8):
        """Live root tensors (newest graphs first) whose graph reaches a node from iteration <= max_it."""
        out = []
        seen = set()
        graphs = list(self._graphs)
        if self._pending_graph is not None:
            graphs.append(self._pending_graph)
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
        self._frames_touched = True
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
            _Tag,
            _Packed,
            _Graph,
            Trace,
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
        self._frames_touched = True
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

    # ------------------------------------------------------------------ GR006

    def _scan_modules(self, want=None, allow_gc=True):
        """Map parameter ids to (root module, dotted name).  Looks at the user's frames first (cheap) and
        falls back to a gc scan when some wanted parameter is not owned by a module found there."""
        Module = torch.nn.Module
        mods = {}

        def add(v):
            if isinstance(v, Module):
                mods[id(v)] = v
            elif isinstance(v, (list, tuple)) and len(v) < 64:
                for x in v:
                    if isinstance(x, Module):
                        mods[id(x)] = x

        frames = _frames.user_frames(start=2, limit=8)
        self._frames_touched = True
        for fr in frames:
            for v in list(fr.f_locals.values()):
                add(v)
                if not isinstance(v, Module) and hasattr(v, "__dict__") and not isinstance(v, type):
                    for a in list(getattr(v, "__dict__", {}).values())[:64]:
                        add(a)
            if fr.f_globals is not fr.f_locals:
                for v in list(fr.f_globals.values()):
                    add(v)
        self._index_modules(list(mods.values()))
        if want is not None and all(pid in self._param_names for pid in want):
            return
        if self._gc_scanned or not allow_gc:
            return
        self._gc_scanned = True
        self._index_modules([o for o in gc.get_objects() if issubclass(type(o), Module)])

    def _index_modules(self, mods):
        children = set()
        for m in mods:
            for c in m.modules():
                if c is not m:
                    children.add(id(c))
        for m in mods:
            if id(m) in children:
                continue
            ref = weakref.ref(m)
            for name, p in m.named_parameters():
                ent = self._param_names.get(id(p))
                if ent is None or ent[0]() is None:
                    self._param_names[id(p)] = (ref, name, weakref.ref(p))
        self._modules_scanned = True

    def _check_params(self):
        reached = self._reached
        if not reached:
            return
        P = torch.nn.Parameter
        want = set()
        for pid in reached:
            ref = self._leaf_params.get(pid)
            p = ref() if ref is not None else None
            if isinstance(p, P) and pid not in self._param_names:
                want.add(pid)
        if want:
            self._scan_modules(want=want)
        roots = {}
        for pid in reached:
            ent = self._param_names.get(pid)
            if ent is not None:
                m = ent[0]()
                if m is not None:
                    roots[id(m)] = m
        for m in roots.values():
            missing = [(n, p) for n, p in m.named_parameters() if p.requires_grad and id(p) not in reached]
            if not missing:
                continue
            names = [n for n, _ in missing]
            mids = {id(p) for _, p in missing}
            cut = None
            for site, how, params in self._cuts:
                if params & mids:
                    cut = (site, how)
                    break
            if cut is None and self._cuts:
                cut = self._cuts[0][:2]
            site = cut[0] if cut else None
            fn, line, _ = _frames.site_parts(site)
            key = ("GR006", type(m).__name__, tuple(names))
            if key in self._fkeys and not self._views:
                continue
            cut_txt = f"; the path was cut by `{cut[1]}` at {fn}:{line}" if cut else ""
            self._add_finding(
                "GR006",
                (
                    f"{len(names)} parameter(s) of {type(m).__name__} require grad but received no gradient in "
                    f"iteration {self._it} while the others did: {', '.join(names[:8])}{', ...' if len(names) > 8 else ''}"
                    f"{cut_txt}. If they should train, remove the `.detach()`/`.data`/`no_grad`/integer cast on their path; "
                    f"if they are frozen, set `requires_grad_(False)` on them"
                ),
                site,
                {
                    "module": type(m).__name__,
                    "parameters": names,
                    "cut": ({"op": cut[1], "filename": fn, "line": line} if cut else None),
                },
                key=key,
            )

    def _names_for(self, params):
        if any(id(p) not in self._param_names for p in params):
            self._scan_modules(want={id(p) for p in params})
        out = []
        for p in params:
            ent = self._param_names.get(id(p))
            out.append(ent[1] if ent else f"<param {tuple(p.shape)}>")
        return out

    # ------------------------------------------------------------------ findings / report

    def _add_finding(self, code, msg, site, details, key=None):
        fn, line, func = _frames.site_parts(site)
        if key is None:
            key = (code, fn, line, msg)
        seen = key in self._fkeys
        if seen and not self._views:
            return False
        if func and "function" not in details:
            details["function"] = func
        f = Finding(code, msg, fn, line, details)
        for v in self._views:  # a view reports what it saw, also what the host saw before it started
            v._view_add(f, key)
        if seen:
            return False
        self._fkeys.add(key)
        self._findings.append(f)
        return True

    def _leak_findings(self, since=None):
        out = []
        for key, rec in self._leaks.items():
            h = rec["holder"]
            series = [s for s in rec["series"] if since is None or s["boundary"] >= since]
            if not series:
                continue
            last = series[-1]
            nodes, saved = last["nodes_alive"], last["saved_bytes_alive"]
            growing = len(series) > 1 and (
                series[-1]["nodes_alive"] > series[0]["nodes_alive"]
                or series[-1]["saved_bytes_alive"] > series[0]["saved_bytes_alive"]
            )
            if saved > 0:
                what = f"{fmt_bytes(saved)} of saved activations and {nodes} autograd nodes"
                kind = "saved-activations"
                fix = "wrap evaluation in `torch.no_grad()` or keep `.detach()`ed / `.item()` values"
            else:
                what = (
                    f"{nodes} autograd nodes (their saved buffers were freed by backward, the nodes were not)"
                )
                kind = "graph-nodes"
                fix = "accumulate a Python number (`.item()`) or a detached tensor (`.detach()`) instead"
            its = last["iterations"]
            span = f"iteration {its[0]}" if len(its) == 1 else f"iterations {its[0]}..{its[-1]}"
            grow = " and growing every iteration" if growing else ""
            if h is not None:
                holder = f"`{h['name']}` ({h['kind']} in {h['where']})"
                msg = (
                    f"graphs created in {span} are still alive at the end of iteration {last['boundary']}: {what}"
                    f"{grow}, held by {holder}. Fix: {fix}, e.g. `{h['name']} += loss.item()`"
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
            out.append(
                Finding(
                    "GR002",
                    msg,
                    fn,
                    line,
                    {
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
                    },
                )
            )
        return out

    def _graph_record(self, g, final):
        site, op = g.best if g.best else (g.first if g.first else (None, None))
        fn, line, _ = _frames.site_parts(site)
        alive = g.nodes_alive > 0 or g.saved_alive > 0
        return GraphRecord(
            id=g.id,
            iteration=g.iteration,
            created={"filename": fn, "line": line, "op": op},
            saved_bytes={k: max(0, v) for k, v in g.bytes.items()},
            peak_saved_bytes=dict(g.peak),
            nodes=g.nodes,
            backward_calls=[{k: v for k, v in c.items() if not k.startswith("_")} for c in g.calls],
            freed=dict(g.freed) if g.freed else None,
            alive_at_exit=bool(final and alive),
            leaf_saved_bytes={k: max(0, v) for k, v in g.leaf_bytes.items()},
        )

    def _build_report(self, final=False, view=None) -> dict:
        graphs = list(self._graphs)
        pg = self._pending_graph
        if pg is not None and (pg.nodes_alive > 0 or pg.saved_alive > 0):
            graphs.append(pg)
        if view is None:
            findings = list(self._findings) + self._leak_findings()
        else:
            graphs = [g for g in graphs if g.id > view._v_gid0]
            findings = list(view._vfindings) + self._leak_findings(since=view._v_it0)
            if final:  # what a trace of its own would report at its exit, without consuming the host's
                keys = set(view._vkeys)
                for g in self._retained:
                    if (
                        g.retained is not None
                        and not g.reported_gr001
                        and g.saved_alive > 0
                        and g.id > view._v_gid0
                    ):
                        code, msg, site, details, key = self._gr001(g, True)
                        if key not in keys:
                            keys.add(key)
                            fn, line, func = _frames.site_parts(site)
                            details["function"] = func
                            findings.append(Finding(code, msg, fn, line, details))
        order = {"GR003": 0, "GR004": 1, "GR002": 2, "GR001": 3, "GR006": 4, "GR007": 5, "GR005": 6}
        findings.sort(key=lambda f: order.get(f.code, 9))
        leaf = []
        leaf_ids = []
        for pid, ref in list(self._leaf_params.items())[:10000]:
            p = ref()
            if p is None:
                continue
            leaf_ids.append(pid)
            ent = self._param_names.get(pid)
            leaf.append(
                {"name": ent[1] if ent else None, "shape": list(p.shape), "has_grad": p.grad is not None}
            )
        if leaf and any(x["name"] is None for x in leaf):
            try:
                self._scan_modules(want=set(self._leaf_params), allow_gc=False)
                local_names = {}
                self._frames_touched = True
                for fr in _frames.user_frames(start=2, limit=4):
                    for k, v in list(fr.f_locals.items()):
                        if isinstance(v, torch.Tensor) and v.is_leaf:
                            local_names.setdefault(id(v), k)
                for x, pid in zip(leaf, leaf_ids):
                    if x["name"] is None:
                        ent = self._param_names.get(pid)
                        x["name"] = ent[1] if ent is not None else local_names.get(pid)
            except Exception:  # pragma: no cover
                pass
        cuda_peak = self._cuda_peak
        if self._cuda_on:
            try:
                cuda_peak = max(cuda_peak, torch.cuda.max_memory_allocated())
            except Exception:  # pragma: no cover
                pass
        rep = {
            "version": SCHEMA_VERSION,
            "torch": torch.__version__.split("+")[0],
            "devices": sorted(self._devices),
            "findings": [f.to_dict() for f in findings],
            "graphs": [self._graph_record(g, final).to_dict() for g in graphs],
            "graphs_dropped": self._graphs_dropped,
            "grads": {"leaf": leaf, "nonleaf_retained": list(self._nonleaf_retained)},
            "iterations": [dict(i) for i in self._iterations if view is None or i["index"] >= view._v_it0],
            "memory": {"cuda_peak_bytes": int(cuda_peak), "saved_bytes_peak": dict(self._saved_peak)},
            "options": {
                "stacks": self.stacks,
                "cuda": self.cuda,
                "inplace": self.inplace,
                "max_graphs": self.max_graphs,
                "every": self.every,
            },
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
        return render_text(self.report())

    def __repr__(self) -> str:
        state = "running" if self._running else "stopped"
        return f"<gradlint.Trace {state}: {len(self.report()['findings'])} findings>"

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
        try:
            tag = node.metadata.get(_TAG)
        except Exception:
            return None
        if not isinstance(tag, _Tag) or tag.sink is not self._sink:
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
            "source": f"{fn}:{line}" if fn is not None else None,
            "stack": _frames.site_stack(tag.site) if tag.site else [],
            "iteration": tag.it,
            "graph": g.id if g is not None else None,
            "saved_tensors": tag.n_saved,
            "saved_bytes": tag.saved_bytes,
            "state": state,
            "retains_grad": bool(tag.retains),
        }

    def _graph_obj(self, graph_id):
        pg = self._pending_graph
        if pg is not None and pg.id == graph_id:
            return pg
        for g in reversed(self._graphs):
            if g.id == graph_id:
                return g
        return None

    def graph_roots(self, graph_id: int) -> list:
        """The live root tensors of graph ``graph_id``: the tensors a backward was called on, or, for a graph no
        backward consumed, its outputs that were alive at the iteration boundary.  The trace holds them by weak
        references only, so a root that died is simply missing (``[]`` when none is left).  A root modified in
        place since (``total_loss += loss``) now starts a newer graph that contains this one."""
        if self._outer is not None:
            return self._outer.graph_roots(graph_id)
        with self._lock:
            g = self._graph_obj(graph_id)
            if g is None:
                return []
            refs = self._pending_roots(g) if g.pending else g.roots
            out = []
            for r in refs:
                x = r()
                if x is not None and x.grad_fn is not None:
                    out.append(x)
            return out

    def named_parameters(self) -> list[tuple]:
        """``[(name, parameter)]`` for the live parameters the trace has named (module paths such as
        ``fc1.weight``), like ``nn.Module.named_parameters``."""
        if self._outer is not None:
            return self._outer.named_parameters()
        out = []
        for ent in list(self._param_names.values()):
            p = ent[2]()
            if p is not None:
                out.append((ent[1], p))
        return out

    def _repr_html_(self) -> str:
        # Pictures come in through report.register_image_hook (gradlint.render
        # registers one), so this stays usable without graphviz.
        return render_html(self.report(), trace=self)

    def render(self, path, graph=None, params=None, **kwargs):
        """Draw a traced graph (default: the most interesting one) to PNG/SVG/DOT by suffix."""
        from gradlint.render import render_trace

        return render_trace(self, path, graph=graph, params=params, **kwargs)


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
