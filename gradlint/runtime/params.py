"""Parameters: their names (module path, prefixed by the model's variable name where the user's frames
name it), which got a gradient (GR006), graph cuts on their path, and gradient resets between optimizer
steps (GR007)."""

from __future__ import annotations

import gc
import weakref

import torch

from . import _frames
from .graphs import iter_graph


class ParamIndex:
    """``id(param) -> (module ref, dotted name, param ref, model variable name)``."""

    def __init__(self):
        self.names: dict[int, tuple] = {}
        self.leaf_params: dict[int, weakref.ref] = {}  # every leaf a backward reached / an optimizer holds
        self.gc_scanned = False

    def note_leaf(self, p):
        if id(p) not in self.leaf_params:
            self.leaf_params[id(p)] = weakref.ref(p)

    def scan(self, want=None, allow_gc=True):
        """Find modules in the user's frames (cheap); fall back to a gc scan once when some wanted parameter
        is not owned by a module found there."""
        Module = torch.nn.Module
        mods = {}

        def add(v, var):
            if isinstance(v, Module):
                mods.setdefault(id(v), (v, var))
            elif isinstance(v, (list, tuple)) and len(v) < 64:
                for i, x in enumerate(v):
                    if isinstance(x, Module):
                        mods.setdefault(id(x), (x, f"{var}[{i}]" if var else None))

        frames = _frames.user_frames(start=2, limit=8)
        _frames.touched()
        for fr in frames:
            for k, v in list(fr.f_locals.items()):
                add(v, k if k != "self" else None)
                if not isinstance(v, Module) and hasattr(v, "__dict__") and not isinstance(v, type):
                    for ak, a in list(getattr(v, "__dict__", {}).items())[:64]:
                        add(a, f"{k}.{ak}" if k != "self" else f"self.{ak}")
            if fr.f_globals is not fr.f_locals:
                for k, v in list(fr.f_globals.items()):
                    if not k.startswith("__"):
                        add(v, k)
        self._index(list(mods.values()))
        if want is not None and all(pid in self.names for pid in want):
            return
        if self.gc_scanned or not allow_gc:
            return
        self.gc_scanned = True
        self._index([(o, None) for o in gc.get_objects() if issubclass(type(o), Module)])

    def _index(self, mods):
        children = set()
        for m, _ in mods:
            for c in m.modules():
                if c is not m:
                    children.add(id(c))
        for m, var in mods:
            if id(m) in children:
                continue
            ref = weakref.ref(m)
            for name, p in m.named_parameters():
                ent = self.names.get(id(p))
                if ent is None or ent[0]() is None or (var and not ent[3]):
                    self.names[id(p)] = (ref, name, weakref.ref(p), var)

    def name(self, p) -> str | None:
        ent = self.names.get(id(p))
        return ent[1] if ent else None

    def qualified(self, p) -> str:
        """``D.0.weight``: the model's variable name and the module path (``<param (4, 2)>`` if unnamed)."""
        if id(p) not in self.names:
            self.scan(want={id(p)})
        ent = self.names.get(id(p))
        if ent is None:
            return f"<param {tuple(p.shape)}>"
        return f"{ent[3]}.{ent[1]}" if ent[3] else ent[1]

    def names_for(self, params):
        if any(id(p) not in self.names for p in params):
            self.scan(want={id(p) for p in params})
        return [self.name(p) or f"<param {tuple(p.shape)}>" for p in params]

    def named_parameters(self):
        out = []
        for ent in list(self.names.values()):
            p = ent[2]()
            if p is not None:
                out.append((ent[1], p))
        return out


def params_below(fn, limit=256) -> set:
    """Ids of the leaf tensors reached from node ``fn``."""
    return {id(f.variable) for f in iter_graph([fn], limit=limit) if type(f).__name__ == "AccumulateGrad"}


class GradCoverage:
    """GR006.  Parameters that receive no gradient in some iterations are normal (LayerDrop, mixture of
    experts, multitask heads taking turns).  A finding is made only when a graph cut (``.detach()``,
    ``.data``, ``no_grad``, an integer cast) was seen on their path, at that cut's line, or at the end of
    a trace that completed for parameters of a trained module that never got a gradient."""

    def __init__(self, index: ParamIndex):
        self.index = index
        self.reached: set = set()  # this iteration
        self.ever: set = set()  # over the trace
        self.reached_any = False
        self.cuts: list[tuple] = []  # (site, how, param ids) this iteration
        self.cuts_left = 32
        self.backward_site = {}  # id(root module) -> site of a backward that reached it
        self.modules: dict[int, weakref.ref] = {}
        self.reported: set = set()
        self._last_site = None  # the latest backward that reached any parameter

    def on_cut(self, a, how):
        if self.cuts_left <= 0:
            return
        self.cuts_left -= 1
        site = _frames.user_site(1, 1)
        params = {id(a)} if a.grad_fn is None else params_below(a.grad_fn)
        self.cuts.append((site, how, params))

    def on_backward(self, params, site):
        if params:
            self.reached |= params
            self.ever |= params
            self.reached_any = True
            self._last_site = site

    def on_step(self, opt):
        """Parameters an optimizer steps while they hold a gradient did receive one.  This does not rely on
        the pre-backward graph walk, which on CUDA was seen to miss some leaves (GPU run, issue 13), so a
        parameter that trains is never reported as never reached."""
        self.ever |= {id(p) for g in opt.param_groups for p in g["params"] if p.grad is not None}

    def _roots(self, ids):
        P = torch.nn.Parameter
        want = set()
        for pid in ids:
            ref = self.index.leaf_params.get(pid)
            p = ref() if ref is not None else None
            if isinstance(p, P) and pid not in self.index.names:
                want.add(pid)
        if want:
            self.index.scan(want=want)
        roots = {}
        for pid in ids:
            ent = self.index.names.get(pid)
            if ent is not None:
                m = ent[0]()
                if m is not None:
                    roots[id(m)] = (m, ent[3])
        return roots

    def end_iteration(self, it, add_finding):
        """Cuts seen this iteration that kept trainable parameters of a trained module from their gradient."""
        if self.reached_any and self.cuts:
            for mid, (m, var) in self._roots(self.reached).items():
                self.modules[mid] = weakref.ref(m)
                self.backward_site.setdefault(mid, self._last_site)
                missing = [
                    (n, p) for n, p in m.named_parameters() if p.requires_grad and id(p) not in self.reached
                ]
                if not missing:
                    continue
                mids = {id(p) for _, p in missing}
                for site, how, params in self.cuts:
                    cut_ids = params & mids
                    if cut_ids:
                        names = [n for n, p in missing if id(p) in cut_ids]
                        self._report(add_finding, m, var, names, site, how, it)
                        break
        elif self.reached_any:
            for mid, (m, _) in self._roots(self.reached).items():
                self.modules[mid] = weakref.ref(m)
                self.backward_site.setdefault(mid, self._last_site)
        self.reached = set()
        self.reached_any = False
        self.cuts = []
        self.cuts_left = 32

    def at_exit(self, add_finding, completed, iterations):
        """Trainable parameters of a trained module that no backward of the (completed) trace reached."""
        if not completed or not self.ever:
            return
        if self.reached_any:
            for mid, (m, _) in self._roots(self.reached).items():
                self.modules[mid] = weakref.ref(m)
                self.backward_site.setdefault(mid, self._last_site)
        for mid, ref in self.modules.items():
            m = ref()
            if m is None:
                continue
            missing = [n for n, p in m.named_parameters() if p.requires_grad and id(p) not in self.ever]
            if not missing:
                continue
            ent = None
            for _, p in m.named_parameters():
                ent = self.index.names.get(id(p))
                if ent:
                    break
            var = ent[3] if ent else None
            self._report(add_finding, m, var, missing, self.backward_site.get(mid), None, iterations)

    def _report(self, add_finding, m, var, names, site, how, it):
        key = ("GR006", id(m), tuple(names))
        if key in self.reported:
            return
        self.reported.add(key)
        fn, line, _ = _frames.site_parts(site)
        shown = [f"{var}.{n}" if var else n for n in names]
        listed = ", ".join(shown[:8]) + (", ..." if len(shown) > 8 else "")
        if how is not None:
            msg = (
                f"{len(names)} parameter(s) of {type(m).__name__} require grad but the path to them is cut by "
                f"`{how}` at {fn}:{line}: {listed} received no gradient in iteration {it} while the others did. "
                f"If they should train, remove the `{how}` (compute on the tensor itself, not on `.detach()`/`.data`, "
                f"outside `no_grad`); if they are frozen on purpose, set `requires_grad_(False)` on them"
            )
            cut = {"op": how, "filename": fn, "line": line}
        else:
            msg = (
                f"{len(names)} parameter(s) of {type(m).__name__} require grad but never received a gradient in "
                f"the {it} traced iteration(s), while the others did (backward at {fn}:{line}): {listed}. "
                f"If they should train, make the loss depend on them; if they are unused or frozen, set "
                f"`requires_grad_(False)` on them (or leave them out of the model)"
            )
            cut = None
        add_finding(
            "GR006",
            msg,
            site,
            {"module": type(m).__name__, "parameters": list(names), "qualified": shown, "cut": cut},
            key=key,
        )


class GradResets:
    """GR007: an optimizer step whose parameters still hold the gradients the previous step used."""

    def __init__(self):
        self.opt_grads: dict[int, dict] = {}
        self.gen = 0
        self.zeroed: dict[int, int] = {}
        self.grad_set: dict[int, int] = {}

    def on_grad_set(self, p):
        self.gen += 1
        self.grad_set[id(p)] = self.gen

    def on_reset(self, params):
        """``zero_grad()`` reset the gradients of ``params`` (to None or to zeros)."""
        self.gen += 1
        gen = self.gen
        gs = self.grad_set
        for p in params:
            gs[id(p)] = gen

    def on_zero(self, t):
        self.gen += 1
        try:
            self.zeroed[t.data_ptr()] = self.gen
        except Exception:
            pass

    def stale(self, opt) -> tuple[list, object] | None:
        rec = self.opt_grads.get(id(opt))
        if rec is None:
            return None
        stale = []
        for group in opt.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                prev = rec.get(id(p))
                if prev is None or prev[0]() is not g or g._version == prev[1]:
                    continue
                if self.grad_set.get(id(p), -1) > prev[2]:
                    continue
                try:
                    if self.zeroed.get(g.data_ptr(), -1) > prev[2]:
                        continue
                except Exception:
                    continue
                stale.append(p)
        return (stale, rec.get("_site")) if stale else None

    def after_step(self, opt, site, index: ParamIndex):
        self.gen += 1
        gen = self.gen
        rec = {"_site": site}
        for group in opt.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is not None:
                    rec[id(p)] = (weakref.ref(g), g._version, gen)
                index.note_leaf(p)
        self.opt_grads[id(opt)] = rec
