"""The per-finding checks: what each finding says (GR001, GR003, GR004, GR005) and the exceptions the
tracer raises instead of letting autograd fail obscurely or compute wrong gradients.

Each function builds ``(code, message, site, details, key)`` or an exception from what the other parts
recorded; none keeps state of its own."""

from __future__ import annotations

import torch

from ..units import fmt_devbytes
from . import _frames
from .errors import BackwardThroughFreedGraphError, InplaceOnSavedTensorError
from .events import INPLACE_ACCUM
from .graphs import iter_graph, tag_of

TORCH_FREED = (
    "Trying to backward through the graph a second time (or directly access saved tensors after they have "
    "already been freed)."
)
TORCH_INPLACE = (
    "one of the variables needed for gradient computation has been modified by an inplace operation"
)


def call_text(call) -> str:
    """How the backward call that retained a graph was written."""
    api = call.get("api", "backward")
    if api == "grad":
        return (
            "`torch.autograd.grad(..., create_graph=True)`"
            if call.get("create_graph")
            else ("`torch.autograd.grad(..., retain_graph=True)`")
        )
    if call.get("create_graph"):
        return "`backward(create_graph=True)`"
    return "`backward(retain_graph=True)`"


# --------------------------------------------------------------------------- GR001


def gr001(g, at_exit, it):
    call = g.retained
    held = {k: v for k, v in g.bytes.items() if v > 0}
    site = call.get("_site")
    cfn, cline, _ = _frames.site_parts(g.best[0] if g.best else (g.first[0] if g.first else None))
    op = g.best[1] if g.best else (g.first[1] if g.first else None)
    when = "at exit of the trace" if at_exit else f"at the end of iteration {it}"
    total = sum(held.values())
    by = call_text(call)
    msg = (
        f"graph {g.id} (created at {_frames.loc(cfn, cline)} by {op}) was kept alive by {by} at "
        f"{_frames.loc(call['filename'], call['line'])} and no later backward used it; it still holds "
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
        "call": call.get("api", "backward"),
    }
    return "GR001", msg, site, details, ("GR001", call["filename"], call["line"])


# --------------------------------------------------------------------------- GR003


def _reaches(x, old_ids, limit=20000):
    return any(id(tag_of(f)) in old_ids for f in iter_graph([x], limit=limit) if tag_of(f) is not None)


def _state_vars(frames, root, old, cur_epoch, on_path):
    """Locals (innermost frame first) holding a tensor, or a tuple/list of tensors, of this step that were
    created at the line that created an old node the failing backward reached, and whose own graph reaches
    that old graph: the carried recurrent state (an output fed back as the next step's input)."""
    # the same output of the same call: ``out, h = rnn(x, h)`` feeds back h (output 1), not out
    old_sites = {(t.site[:2], t.op, t.out_index) for t in old if t.site}
    old_ids = {id(t) for t in old}
    for fr in frames:
        found = []
        for k, v in list(fr.f_locals.items()):
            if k.startswith("_") or v is root:
                continue
            xs = (
                [v]
                if isinstance(v, torch.Tensor)
                else (
                    [x for x in v[:4] if isinstance(x, torch.Tensor)] if isinstance(v, (tuple, list)) else []
                )
            )
            for x in xs:
                tag = tag_of(x.grad_fn) if x.grad_fn is not None else None
                if tag is None or tag.consumed is not None or tag.epoch < cur_epoch:
                    continue
                if tag.site and (tag.site[:2], tag.op, tag.out_index) in old_sites and _reaches(x, old_ids):
                    found.append((k, isinstance(v, (tuple, list)), tag))
                    break
        if found:
            # an output this step's loss does not use is the one carried to the next step (``out, h = ...``)
            off_path = [f for f in found if id(f[2]) not in on_path]
            return off_path or found
    return []


def freed_error(call, walk, roots, err):
    """GR003 finding and exception for a backward that reaches buffers an earlier backward freed."""
    hits = walk["hits"] if walk else []
    hit = hits[0] if hits else None
    cur = _frames.loc(call["filename"], call["line"])
    prev = hit.consumed if hit is not None else None
    if prev is None and walk:
        for tag in walk.get("all", ()):
            if tag.consumed is not None:
                prev = tag.consumed
                break
    if prev is not None:
        freed_at = (
            f"freed by the backward at {_frames.loc(prev['filename'], prev['line'])} "
            f"(backward call #{prev['index']}, iteration {prev['iteration']})"
        )
    else:
        freed_at = "freed by an earlier backward"
    created = f" (buffers saved by `{hit.fname}` at {_frames.fmt_site(hit.site)})" if hit is not None else ""
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
    frames = _frames.user_frames(start=3, limit=3)
    _frames.touched()
    root = roots[0] if roots else None
    root_name = None
    for fr in frames:
        for k, v in fr.f_locals.items():
            if v is root and root is not None:
                root_name = k
                break
        if root_name:
            break
    root_tag = tag_of(root.grad_fn) if isinstance(root, torch.Tensor) and root.grad_fn is not None else None
    # nodes created before the previous backward (or consumed by one) are the earlier steps' graph
    cur_epoch = call["index"] - 1
    old = [t for t in (walk.get("all", ()) if walk else ()) if t.consumed is not None or t.epoch < cur_epoch]
    on_path = {id(t) for t in (walk.get("all", ()) if walk else ())}
    states = _state_vars(frames, root, old, cur_epoch, on_path) if old else []
    accum = (
        root_tag is not None
        and root_tag.consumed is None
        and root_tag.fname
        in (
            "__iadd__",
            "add_",
            "__add__",
            "__radd__",
            "add",
            "__isub__",
            "sub_",
            "__sub__",
            "sub",
        )
    )
    if root_tag is not None and root_tag.consumed is not None:
        again = root_tag.consumed
        name = f"`{root_name}`" if root_name else "this tensor"
        cause = (
            f" {name} was already backpropagated by the backward at "
            f"{_frames.loc(again['filename'], again['line'])} (backward call #{again['index']}), which freed its graph."
        )
        fix = (
            "Fix: call backward once; if two backward passes through this graph are really needed, pass "
            "`retain_graph=True` to the first one only"
        )
        details["holder"] = root_name
        details["cause"] = "repeated-backward"
    elif accum and root_name is not None and not states:
        acc = _frames.fmt_site(root_tag.site)
        written = (
            f"{root_name} += ..." if root_tag.fname in INPLACE_ACCUM else f"{root_name} = {root_name} + ..."
        )
        cause = (
            f" The variable `{root_name}` accumulates across loop iterations (`{written}` at {acc}) "
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
    elif states:
        names = [k for k, _, _ in states]
        tag = states[0][2]
        if len(states) == 1 and states[0][1]:
            k = names[0]
            detach = f"{k} = tuple(s.detach() for s in {k})"
        elif len(names) == 1:
            detach = f"{names[0]} = {names[0]}.detach()"
        else:
            detach = f"{', '.join(names)} = {', '.join(n + '.detach()' for n in names)}"
        shown = " and ".join(f"`{n}`" for n in names)
        cause = (
            f" The recurrent state {shown} (computed at {_frames.fmt_site(tag.site)}) is carried into the "
            f"next step without `.detach()`, so this backward reaches into the graph of the previous step, "
            f"which that step's backward freed."
        )
        fix = (
            f"Fix: detach the carried state before each new step (truncated backpropagation through time): "
            f"`{detach}`; do NOT add retain_graph=True (memory and time grow with every step)"
        )
        details["holder"] = names[0] if len(names) == 1 else ", ".join(names)
        details["cause"] = "carried-state"
    mark = hit or (old[0] if old else None)
    if mark is not None:  # the freed node the backward reached (drawn with a GR003 mark)
        mfn, mline, _ = _frames.site_parts(mark.site)
        details["node"] = {"op": mark.op, "filename": mfn, "line": mline, "iteration": mark.it}
    msg = (
        f"{TORCH_FREED} gradlint: backward at {cur} goes through a graph whose saved buffers were already "
        f"{freed_at}{created}.{cause} {fix}."
    )
    finding = ("GR003", msg, call.get("_site"), details, None)
    exc = BackwardThroughFreedGraphError("gradlint GR003: " + msg)
    exc.graph = details["graph"]
    exc.details = details
    return finding, exc


# --------------------------------------------------------------------------- GR004


def inplace_finding(name, path, e, h, site, shared):
    tag = h.tag if h is not None else None
    saved_op = (tag.fname, tag.op, tag.site) if tag is not None else (None, None, None)
    fn, line, _ = _frames.site_parts(site)
    sfn, sline, _ = _frames.site_parts(saved_op[2])
    what = (
        f"the {'input' if e.leaf else 'output/activation'} saved by `{saved_op[0]}` ({saved_op[1]}) at "
        f"{_frames.loc(sfn, sline)}"
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
        "bytes": e.nbytes,
        "version_checked": shared,
        "graph": tag.graph.id if tag is not None and tag.graph is not None else None,
        "stack": _frames.site_stack(site),
    }
    return "GR004", msg, site, details, ("GR004", fn, line)


def inplace_error(h, e, backward_call, last_step_site):
    """GR004 finding and exception for a saved tensor whose version changed before backward unpacked it."""
    tag = getattr(h, "tag", None)
    where = f" saved by `{tag.fname}` ({tag.op}) at {_frames.fmt_site(tag.site)}" if tag is not None else ""
    sfn, sline, _ = _frames.site_parts(tag.site if tag is not None else None)
    mut = e.mutation if e is not None else None
    details = {
        "op": None,
        "path": None,
        "saved_by_op": tag.fname if tag is not None else None,
        "saved_by_node": tag.op if tag is not None else None,
        "saved_at": {"filename": sfn, "line": sline},
        "bytes": e.nbytes if e is not None else None,
        "version_checked": True,
        "graph": tag.graph.id if tag is not None and tag.graph is not None else None,
        "raised": True,
    }
    site = backward_call.get("_site") if backward_call else None
    if mut is not None and mut[1] == "optimizer.step()":
        msite, _, _, pname = mut
        details.update(op="optimizer.step()", path="optimizer", parameter=pname)
        details["step"] = dict(zip(("filename", "line"), _frames.site_parts(msite)[:2]))
        step_at = _frames.fmt_site(msite)
        how = (
            f"the parameter `{pname}`, saved for backward by the forward at {_frames.fmt_site(tag.site if tag else None)}, "
            f"was updated in place by `optimizer.step()` at {step_at} before this backward used it"
        )
        fix = (
            "Fix: compute the second loss after the step (run the forward again), or call `optimizer.step()` "
            "only after both backward calls, or `.detach()` the output whose graph is reused (e.g. "
            "`D(fake.detach())` for the discriminator's loss in a GAN)"
        )
    elif mut is not None:
        msite, mname, mpath = mut[:3]
        details.update(op=mname, path=mpath)
        how = f"the tensor{where} was modified by in-place `{mname}` {mpath} at {_frames.fmt_site(msite)}"
        fix = "Fix: use an out-of-place op (e.g. `y = y + 1`) or modify a `.clone()`"
        site = msite or site
    else:
        how = f"the tensor{where} was modified in place by an operation gradlint did not see at Python level"
        if last_step_site is not None:
            how += f" (the last optimizer.step() was at {_frames.fmt_site(last_step_site)})"
        fix = "Fix: use an out-of-place op or modify a `.clone()`"
    msg = (
        f"{TORCH_INPLACE}: [{h.t.type()} {list(h.t.shape)}]{where} is at version {h.t._version}; expected "
        f"version {h.v} instead. gradlint GR004: {how}. PyTorch skips its own check while saved-tensor "
        f"hooks are installed, so gradlint raises instead of computing wrong gradients. {fix}."
    )
    fn, line, _ = _frames.site_parts(site)
    exc = InplaceOnSavedTensorError(msg)
    exc.graph = details["graph"]
    exc.details = details
    return ("GR004", msg, site, details, ("GR004", fn, line, "raised")), exc


# --------------------------------------------------------------------------- GR005


def nonleaf_grad(a, site):
    fn, line, _ = _frames.site_parts(site)
    if fn is None:
        return None
    op = type(a.grad_fn).__name__
    msg = (
        f"`.grad` read on a non-leaf tensor (created by {op}); it is always None because autograd only "
        f"populates .grad of leaves. Call `.retain_grad()` on it before backward, or read the gradient of "
        f"the leaf parameters instead"
    )
    return "GR005", msg, site, {"op": op}, ("GR005", fn, line)


def walk_backward(roots, note_leaf):
    """The search a backward needs before the engine runs: the tagged nodes it will consume, the ones whose
    buffers are already freed (``hits``: the walk stops there), the leaves it reaches."""
    params = set()
    starts = []
    for r in roots:
        if isinstance(r, torch.Tensor):
            if r.grad_fn is not None:
                starts.append(r.grad_fn)
            elif r.requires_grad:
                params.add(id(r))
    tags = []
    hits = []
    alltags = []
    n = 0
    compiled = False

    hit_now = [False]  # set by the loop body for the node just yielded: the walk stops below a hit

    for f in iter_graph(starts, stop=lambda f: hit_now[0]):
        n += 1
        hit_now[0] = False
        if type(f).__name__ == "AccumulateGrad":
            v = f.variable
            params.add(id(v))
            note_leaf(v)
            continue
        tag = tag_of(f)
        if tag is None and not compiled and type(f).__name__.startswith("CompiledFunction"):
            compiled = True
        if tag is not None:
            alltags.append(tag)
            if tag.n_saved and tag.saved_alive == 0:
                hits.append(tag)
                hit_now[0] = True
            else:
                tags.append(tag)
    return {"tags": tags, "hits": hits, "params": params, "nodes": n, "all": alltags, "compiled": compiled}
