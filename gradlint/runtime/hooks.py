"""Hook installation: everything the tracer plugs into torch, installed on start and removed on stop
(also when the traced body raises).

* ``torch.autograd.graph.saved_tensors_hooks`` (the handles of :mod:`.handles`);
* a ``TorchFunctionMode`` that sees every Python-level torch call and forwards what matters to the trace;
* wrappers around ``Tensor.backward``, ``torch.autograd.backward`` and ``torch.autograd.grad``, and around
  ``Optimizer.zero_grad`` / ``Module.zero_grad`` (run without the mode; they report the reset instead);
* global optimizer step pre/post hooks (iteration boundaries, GR004 by a step, GR007);
* a warnings relay, so that warnings torch raises inside the user's code keep the user's file and line
  (without it they would be attributed to the mode's frame and deduplicated there).
"""

from __future__ import annotations

import functools
import inspect
import re
import sys
import threading
import warnings
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from . import _frames
from .events import _KIND_CACHE, OpKind, classify

# plain ints: comparing against enum members costs a class attribute lookup per op
_PLAIN, _PASS, _GET, _SET, _INPL, _CUT, _RETAIN = (
    int(OpKind.PLAIN),
    int(OpKind.PASSTHROUGH),
    int(OpKind.GETTER),
    int(OpKind.SETTER),
    int(OpKind.INPLACE),
    int(OpKind.CUT),
    int(OpKind.RETAIN_GRAD),
)

ACTIVE = None  # the Trace receiving hook calls (one at a time)
ACTIVE_LOCK = threading.Lock()
_tls = threading.local()


try:
    _is_compiling = torch.compiler.is_compiling  # dynamo folds it to True while it traces
except AttributeError:  # pragma: no cover - torch without torch.compiler

    def _is_compiling() -> bool:
        return False


_grad_enabled = torch.is_grad_enabled


def _first_tensor(x):
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (list, tuple)) and x and isinstance(x[0], torch.Tensor):
        return x[0]
    return None


class FunctionMode(TorchFunctionMode):
    """Forwards torch calls to the trace.  Inside a ``torch.compile`` region it steps aside (dynamo traces
    this method; doing nothing there keeps compiled code free of graph breaks)."""

    def __init__(self, tr):
        super().__init__()
        self.tr = tr
        self.saved = tr._handles
        self.after_op = tr._after_op

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if _is_compiling():
            return func(*args, **(kwargs or {}))
        kn = _KIND_CACHE.get(func)
        kind, name = kn if kn is not None else classify(func)
        if kind == _PLAIN and not kwargs:  # the common case, kept short: most torch calls are plain ops
            if not _grad_enabled():
                r = func(*args)
                if args:
                    self._after_nograd(r, name, args)
                return r
            saved = self.saved
            pend = saved.pending = []
            try:
                r = func(*args)
            finally:
                saved.pending = None
            self.after_op(r, name, pend)
            return r
        if kwargs is None:
            kwargs = {}
        if kind == _PASS:
            return func(*args, **kwargs)
        tr = self.tr
        if kind == _GET:
            r = func(*args, **kwargs)
            if name == "grad":
                a = args[0] if args else None
                if a is not None and a.grad_fn is not None and not a.retains_grad:
                    tr._on_nonleaf_grad(a)
            elif name == "data" and args and args[0].requires_grad:
                tr._on_cut(args[0], ".data")
            return r
        if kind == _SET:
            if name == "grad" and args:
                tr._on_grad_set(args[0])
            return func(*args, **kwargs)
        inplace = kind == _INPL
        if kwargs and not inplace:
            if kwargs.get("inplace") is True or kwargs.get("out") is not None:
                inplace = True
        mut = None
        if inplace and args:
            mut = tr._before_inplace(name, args, kwargs)
        if _grad_enabled():
            saved = self.saved
            pend = saved.pending = []
            try:
                r = func(*args, **kwargs)
            finally:
                saved.pending = None
            self.after_op(r, name, pend)
        else:
            r = func(*args, **kwargs)
            if args:
                self._after_nograd(r, name, args)
        if mut is not None:
            tr._after_inplace(mut)
        elif kind == _CUT and args:
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
        elif kind == _RETAIN and args:
            tr._on_retain_grad(args[0])
        return r

    def _after_nograd(self, r, name, args):
        """An op under no_grad on a tensor that requires grad cuts the graph (GR006 names the line)."""
        tr = self.tr
        if not tr._in_step and tr._params.cuts_left > 0:
            a = _first_tensor(args[0])
            if a is not None and a.requires_grad and isinstance(r, torch.Tensor) and not r.requires_grad:
                tr._on_cut(a, f"{name} under no_grad")


# --------------------------------------------------------------------------- backward wrappers

_ORIG: dict[str, Any] = {}


class _Binder:
    """``inspect.Signature.bind(...).arguments`` for the backward functions, without inspect's cost on every
    call: positional names in order, then keywords; anything unusual goes to ``Signature.bind``."""

    def __init__(self, fn):
        self.sig = inspect.signature(fn)
        P = inspect.Parameter
        params = list(self.sig.parameters.values())
        self.simple = all(p.kind == P.POSITIONAL_OR_KEYWORD for p in params)  # else: inspect decides
        self.names = tuple(p.name for p in params)
        self.required = tuple(p.name for p in params if p.default is P.empty)

    def bind(self, *args, **kwargs):
        """The explicitly passed arguments by name; TypeError where the call itself would fail."""
        names = self.names
        if not self.simple or len(args) > len(names):
            return self.sig.bind(*args, **kwargs).arguments
        out = dict(zip(names, args))
        for k, v in kwargs.items():
            if k in out or k not in names:
                return self.sig.bind(*args, **kwargs).arguments  # raises TypeError as the call would
            out[k] = v
        for k in self.required:
            if k not in out:
                return self.sig.bind(*args, **kwargs).arguments
        return out


def _make_wrapper(kind, orig):
    sig = _Binder(orig)

    @functools.wraps(orig)
    def wrapper(*args, **kwargs):
        tr = ACTIVE
        if tr is None or getattr(_tls, "depth", 0) or _is_compiling():
            return orig(*args, **kwargs)
        if threading.get_ident() != tr._sink.main_ident:
            tr._blind.add("threads")  # said in the report: this thread's graphs are not traced
            return orig(*args, **kwargs)
        _tls.depth = getattr(_tls, "depth", 0) + 1
        try:
            return tr._run_backward(kind, orig, sig, args, kwargs)
        finally:
            _tls.depth -= 1

    wrapper._gradlint_wrapper = True
    return wrapper


def _make_zero_grad_wrapper(orig, params_of):
    """``zero_grad`` reads and writes ``p.grad`` twice per parameter: through the function mode that is two
    dispatches per parameter, more than the forward's ops in a wide model.  The wrapper runs it with the mode
    off and tells the trace which parameters it reset (GR007 needs only that)."""

    @functools.wraps(orig)
    def zero_grad(self, *args, **kwargs):
        tr = ACTIVE
        if tr is None or tr._light or _is_compiling() or threading.get_ident() != tr._sink.main_ident:
            return orig(self, *args, **kwargs)
        hk = tr._hooks
        popped = hk.pause_mode()
        try:
            return orig(self, *args, **kwargs)
        finally:
            try:
                tr._on_zero_grad(params_of(self))
            finally:
                if popped:
                    hk.resume_mode()

    zero_grad._gradlint_wrapper = True
    return zero_grad


def _optimizer_params(opt):
    return [p for g in opt.param_groups for p in g["params"]]


def _install_patches():
    import torch.autograd as ag

    _ORIG["Tensor.backward"] = torch.Tensor.backward
    _ORIG["autograd.backward"] = ag.backward
    _ORIG["autograd.grad"] = ag.grad
    torch.Tensor.backward = _make_wrapper("tensor", _ORIG["Tensor.backward"])
    ag.backward = _make_wrapper("backward", _ORIG["autograd.backward"])
    ag.grad = _make_wrapper("grad", _ORIG["autograd.grad"])
    Opt, Mod = torch.optim.Optimizer, torch.nn.Module
    _ORIG["Optimizer.zero_grad"] = Opt.__dict__["zero_grad"]
    _ORIG["Module.zero_grad"] = Mod.__dict__["zero_grad"]
    Opt.zero_grad = _make_zero_grad_wrapper(_ORIG["Optimizer.zero_grad"], _optimizer_params)
    Mod.zero_grad = _make_zero_grad_wrapper(_ORIG["Module.zero_grad"], lambda m: list(m.parameters()))


def _remove_patches():
    import torch.autograd as ag

    if "Tensor.backward" in _ORIG:
        torch.Tensor.backward = _ORIG.pop("Tensor.backward")
    if "autograd.backward" in _ORIG:
        ag.backward = _ORIG.pop("autograd.backward")
    if "autograd.grad" in _ORIG:
        ag.grad = _ORIG.pop("autograd.grad")
    if "Optimizer.zero_grad" in _ORIG:
        torch.optim.Optimizer.zero_grad = _ORIG.pop("Optimizer.zero_grad")
    if "Module.zero_grad" in _ORIG:
        torch.nn.Module.zero_grad = _ORIG.pop("Module.zero_grad")


def in_backward() -> bool:
    return bool(getattr(_tls, "depth", 0))


# --------------------------------------------------------------------------- warnings relay

_RUNTIME_MODULES = re.compile(r"gradlint\.runtime(\..*)?$")
_RUNTIME_DIR = __file__.rsplit("/", 1)[0].rsplit("\\", 1)[0]


class _WarningRelay:
    """Torch raises warnings (``TORCH_WARN``, ``warnings.warn(stacklevel=2)``) against the innermost Python
    frame, which under the tracer is one of gradlint's.  An ``always`` filter for gradlint's runtime modules
    lets every such warning reach ``warnings._showwarnmsg``, where it is re-issued against the user's frame
    with ``warnings.warn_explicit`` (so the user's filters and once-per-line registry apply as without
    the tracer)."""

    def __init__(self):
        self.orig = None
        self.filter = ("always", None, Warning, _RUNTIME_MODULES, 0)

    def install(self):
        self.orig = warnings._showwarnmsg
        warnings._showwarnmsg = self._show
        warnings.filters.insert(0, self.filter)
        warnings._filters_mutated()

    def remove(self):
        if self.orig is not None and warnings._showwarnmsg == self._show:
            warnings._showwarnmsg = self.orig
        self.orig = None
        try:
            warnings.filters.remove(self.filter)
        except ValueError:
            pass
        warnings._filters_mutated()

    def _show(self, msg):
        orig = self.orig or warnings._showwarnmsg_impl
        if not str(msg.filename).startswith(_RUNTIME_DIR):
            return orig(msg)
        fr = _frames.user_frame(start=2)
        if fr is None:
            return orig(msg)
        g = fr.f_globals
        reg = g.setdefault("__warningregistry__", {})
        warnings.warn_explicit(
            msg.message,
            msg.category,
            fr.f_code.co_filename,
            fr.f_lineno,
            module=g.get("__name__", "<string>"),
            registry=reg,
            module_globals=g,
            source=msg.source,
        )


# --------------------------------------------------------------------------- installation


class Hooks:
    """Installs and removes every hook of one trace; owns the function mode's place on the mode stack."""

    def __init__(self, tr):
        self.tr = tr
        self.mode = None
        self.mode_popped = False
        self.saved_cm = None
        self.saved_paused = False
        self.opt_handles = []
        self.relay = None

    def install(self):
        tr = self.tr
        h = tr._handles
        self.saved_cm = torch.autograd.graph.saved_tensors_hooks(h.pack, h.unpack)
        self.saved_cm.__enter__()
        self.mode = FunctionMode(tr)
        self.mode.__enter__()
        _install_patches()
        from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

        self.opt_handles = [
            register_optimizer_step_pre_hook(tr._opt_pre),
            register_optimizer_step_post_hook(tr._opt_post),
        ]
        self.relay = _WarningRelay()
        self.relay.install()

    def remove(self) -> list:
        """Remove everything; returns the errors met (the caller raises the first unless already raising)."""
        errors = []
        if self.relay is not None:
            try:
                self.relay.remove()
            except Exception as e:  # pragma: no cover
                errors.append(e)
            self.relay = None
        for h in self.opt_handles:
            try:
                h.remove()
            except Exception as e:  # pragma: no cover
                errors.append(e)
        self.opt_handles = []
        _remove_patches()
        if self.mode is not None:
            if not self.mode_popped:
                try:
                    self._remove_mode()
                except Exception as e:  # pragma: no cover
                    errors.append(e)
            self.mode = None
            self.mode_popped = False
        if self.saved_cm is not None:
            try:
                if not self.saved_paused:
                    self._remove_saved_hooks(errors)
            finally:
                self.saved_cm = None
                self.saved_paused = False
        return errors

    def pause_saved(self):
        """Take the saved-tensor hooks off (sampled-out iterations: PyTorch's own version check applies)."""
        A = torch._C._autograd
        if self.saved_cm is None or self.saved_paused:
            return
        top = A._top_saved_tensors_default_hooks(False)
        if top is not None and getattr(top[0], "__self__", None) is self.tr._handles:
            A._pop_saved_tensors_default_hooks()
            self.saved_paused = True

    def resume_saved(self):
        A = torch._C._autograd
        if self.saved_cm is not None and self.saved_paused:
            if A._top_saved_tensors_default_hooks(False) is not None:
                return  # the user's own hooks are active: they see their tensors; retried at the next boundary
            h = self.tr._handles
            A._push_saved_tensors_default_hooks(h.pack, h.unpack)
            self.saved_paused = False

    def pause_mode(self) -> bool:
        """Take the function mode off the stack (optimizer steps, sampled-out iterations, gradlint's own work);
        True when this call took it off."""
        if self.mode is not None and not self.mode_popped and self._mode_on_top():
            torch._C._pop_torch_function_stack()
            self.mode_popped = True
            return True
        return False

    def resume_mode(self):
        if self.mode is not None and self.mode_popped:
            torch._C._push_on_torch_function_stack(self.mode)
            self.mode_popped = False

    def _remove_saved_hooks(self, errors):
        """Pop our saved-tensor hooks; hooks a user left open above ours are popped and pushed back."""
        from .errors import TraceStateError

        A = torch._C._autograd
        above = []
        handles = self.tr._handles
        try:
            while True:
                top = A._top_saved_tensors_default_hooks(False)
                if top is None:
                    return
                if getattr(top[0], "__self__", None) is handles:
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
                if m is self.mode:
                    return
                above.append(m)
        finally:
            for m in reversed(above):
                C._push_on_torch_function_stack(m)

    def _mode_on_top(self):
        C = torch._C
        n = C._len_torch_function_stack()
        return n > 0 and C._get_function_stack_at(n - 1) is self.mode


def raising() -> bool:
    return sys.exc_info()[0] is not None
