"""Findings that need a step spread over helpers and methods, from the per-file summaries.

Each function here answers one existing rule's question where that rule's own
single-body analysis cannot see the evidence:

* :func:`loops_missing_zero_grad` (GL006): a loop whose body, through the
  helpers it calls, backpropagates and steps but never clears gradients;
* :func:`stale_after_step` (GL015): a backward whose loss reads an attribute
  that a helper's forward wrote before an optimizer step, after an earlier
  backward, changed that forward's weights in place;
* :func:`freed_graph_reuse` (GL010): a second backward through a forward whose
  graph an earlier backward (no ``retain_graph``) already freed: after the loop
  that built it, or through a helper called with ``backward=True``;
* :func:`data_cut_in_time_loop` (GL005): ``h = h.data.clone()`` on state carried
  between time steps of a loop that holds no backward (inside ``forward``).

Every uncertain case stays silent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import libcst as cst

from gradlint.static.semantics.reads import any_reads, helper_reads
from gradlint.static.semantics.summaries import (
    Assignment,
    Effect,
    FunctionSummary,
    Summaries,
    key_of,
)
from gradlint.static.semantics.vocabulary import HELPER_CUT_ATTRIBUTES, HELPER_CUT_METHODS
from gradlint.static.semantics.walk import walk

# Cheap text gates: build the summaries only for files that can hold the shape.
# Both regexes run on single lines holding `.data` (one that starts with `(\w+)`
# would scan every position of a large file).
_DATA_REBIND = re.compile(r"[ \t]*(\w+)[ \t]*=[ \t]*\1\.data\b")
_DATA_ARITH = re.compile(r"\.data\b[^\n=]*(?:[-+*/]=|\][ \t]*=[^=])")
# Asked once per definition while slicing: remember the last file's answers.
_gates: list = [None, None, None]


def might_step_through_helpers(text: str) -> bool:
    """GL006 / GL015 / GL010 / GL003 shapes: a file that backpropagates (or asks a helper to)."""
    if _gates[0] is not text:
        _gates[:] = [text, None, None]
    if _gates[1] is None:
        _gates[1] = ("backward(" in text or "backward=True" in text) and (
            ".step(" in text or "backward=True" in text
        )
    return _gates[1]


def might_cut_with_data(text: str) -> bool:
    """GL005 shapes: ``h = h.data...`` or arithmetic assigned through ``.data``."""
    if _gates[0] is not text:
        _gates[:] = [text, None, None]
    if _gates[2] is None:
        _gates[2] = cuts_with_data(text)
    return _gates[2]


def cuts_with_data(text: str) -> bool:
    """``might_cut_with_data`` without the per-file memo (for the text of one definition)."""
    i = text.find(".data")
    while i != -1:
        start = text.rfind("\n", 0, i) + 1
        end = text.find("\n", i)
        line = text[start : end if end != -1 else len(text)]
        if _DATA_REBIND.match(line) or _DATA_ARITH.search(line):
            return True
        if end == -1:
            break
        i = text.find(".data", end)
    return False


def reaching(summary: FunctionSummary, key: str, at: int) -> list[Assignment]:
    """The definitions of ``key`` that reach statement ``at`` (the last ones before it, in order)."""
    before = [a for a in summary.defs_of(key) if a.index < at]
    if not before:
        return []
    last = max(a.index for a in before if not a.accum) if any(not a.accum for a in before) else -1
    return [a for a in before if a.index >= last and not summary.exclusive(a.index, at) or a.index == last]


def forward_sources(
    summary: FunctionSummary, summaries: Summaries, expr, at: int, depth: int = 0
) -> dict[int, Assignment]:
    """The assignments running a module's forward that flow (without a cut) into ``expr`` at ``at``."""
    out: dict[int, Assignment] = {}
    todo = [(k, at) for k in helper_reads(expr)]
    seen: set[tuple[str, int]] = set()
    while todo:
        key, pos = todo.pop()
        if (key, pos) in seen or len(seen) > 400:
            continue
        seen.add((key, pos))
        for a in reaching(summary, key, pos):
            if a.loop_target or a.value is None:
                continue
            if _runs_forward(a.value, summaries):
                out[id(a.node)] = a
            todo.extend((k, a.index) for k in helper_reads(a.value) if k != key or a.accum)
    return out


def _runs_forward(value, summaries: Summaries) -> bool:
    for n in walk(value, into_scopes=False):
        if isinstance(n, cst.Call) and summaries.is_forward(n):
            callee = n.func
            if isinstance(callee, cst.Attribute) and callee.attr.value in HELPER_CUT_METHODS:
                continue
            return True
    return False


# -- GL006 -------------------------------------------------------------------------------


@dataclass
class MissingZeroGrad:
    step: Effect
    loop: cst.CSTNode
    function: FunctionSummary


def loops_missing_zero_grad(summaries: Summaries) -> list[MissingZeroGrad]:
    """Loops that step and backpropagate through helpers (some effect applied from a call) and never clear grads."""
    out: list[MissingZeroGrad] = []
    reported: set[int] = set()
    for fn in summaries.functions():
        s = summaries.of(fn)
        if not s.complete:
            continue
        for loop, lo, hi in s.loops:
            inside = [e for e in s.effects if lo < e.index < hi]
            steps = [e for e in inside if e.kind == "step" and not _closure_step(e)]
            backwards = [e for e in inside if e.kind == "backward" and not e.backward.is_grad]
            if not steps or not backwards or any(e.kind == "zero_grad" for e in inside):
                continue
            if not any(e.via for e in steps + backwards):
                continue  # the rule's own analysis reads this loop
            step = steps[0]
            if step.conditional or s.conditional(step.index, lo):
                continue  # gradient accumulation: cleared where the condition holds, maybe elsewhere
            if id(step.node) in reported:
                continue
            reported.add(id(step.node))
            out.append(MissingZeroGrad(step, loop, s))
    return out


def _closure_step(e: Effect) -> bool:
    return isinstance(e.node, cst.Call) and bool(e.node.args) and "scaler" not in _code(e.node.func)


# -- GL015 -------------------------------------------------------------------------------


@dataclass
class StaleAfterStep:
    step: Effect
    later: Effect
    attr: str
    written: Effect
    function: FunctionSummary


def stale_after_step(summaries: Summaries) -> list[StaleAfterStep]:
    """A backward whose loss reads a ``self`` attribute a forward wrote before a step that changed its weights."""
    out: list[StaleAfterStep] = []
    seen: set[int] = set()
    for fn in summaries.functions():
        s = summaries.of(fn)
        if not s.complete:
            continue
        effects = s.effects
        for i, first in enumerate(effects):
            if first.kind != "backward" or first.backward.is_grad:
                continue
            for j in range(i + 1, len(effects)):
                later = effects[j]
                if later.kind != "backward" or later.backward.is_grad or id(later.node) in seen:
                    continue
                steps = [e for e in effects[i + 1 : j] if e.kind == "step"]
                if not steps or not (first.via or later.via or any(e.via for e in steps)):
                    continue
                if s.exclusive(first.index, later.index):
                    continue
                hit = _stale_attr(summaries, s, effects[:j], later, steps)
                if hit is not None:
                    attr, written, step = hit
                    seen.add(id(later.node))
                    out.append(StaleAfterStep(step, later, attr, written, s))
                break
    return out


def _stale_attr(summaries, s, before, later, steps):
    owner = later.owner
    attrs = {k for k in owner.closure(later.backward.target, helper_reads) if k.startswith("self.")}
    step_pos = {id(e): n for n, e in enumerate(before) if e.kind == "step"}
    for attr in sorted(attrs):
        writes = [(n, e) for n, e in enumerate(before) if e.kind == "write" and e.name == attr]
        if not writes:
            continue
        n_last, last = writes[-1]
        for step in steps:
            if n_last > step_pos[id(step)]:
                continue  # rewritten after this step
            if last.value is None or not _runs_forward(last.value, summaries):
                continue
            modules = _optimizer_modules(summaries, step.name)
            producers = {
                k
                for n in walk(last.value, into_scopes=False)
                if isinstance(n, cst.Call) and summaries.is_forward(n)
                for k in any_reads(n.func)
            }
            if modules and producers & modules:
                return attr, last, step
    return None


def _optimizer_modules(summaries: Summaries, name: str) -> set[str]:
    mods: set[str] = set()
    for fn in summaries.functions():
        for a in summaries.of(fn).assignments:
            if name in a.keys and a.value is not None:
                for n in walk(a.value, into_scopes=False):
                    if (
                        isinstance(n, cst.Call)
                        and isinstance(n.func, cst.Attribute)
                        and n.func.attr.value == "parameters"
                    ):
                        mods |= any_reads(n.func.value)
    return mods


# -- GL010 -------------------------------------------------------------------------------


@dataclass
class FreedGraphReuse:
    first: Effect  # the backward that freed the graph
    later: Effect  # the backward (or `helper(..., backward=True)`) that needs it again
    source: Assignment  # the forward both go through
    function: FunctionSummary
    key: str = ""  # the name of that forward's output the later backward reads


def freed_graph_reuse(summaries: Summaries) -> list[FreedGraphReuse]:
    """A backward (no retain_graph) frees a forward's graph that a later backward in the same pass needs.

    Only within one body (own effects), in statement order; the later backward
    runs after the loop that built the forward, or is a call with ``backward=True``.
    """
    out: list[FreedGraphReuse] = []
    for fn in summaries.functions():
        s = summaries.of(fn)
        own = [e for e in s.effects if not e.via and e.kind in ("backward", "unknown")]
        for i, first in enumerate(own):
            bw = first.backward
            if first.kind != "backward" or bw.retain_graph or bw.create_graph or bw.is_grad:
                continue
            sources = forward_sources(s, summaries, bw.target, first.index)
            if not sources:
                continue
            for later in own[i + 1 :]:
                if later.index <= first.index or s.exclusive(first.index, later.index):
                    continue
                if later.kind == "backward":
                    if later.backward.is_grad:
                        continue
                    exprs = [later.backward.target]
                    after_loop = _loop_exited(s, sources, first, later)
                    if not after_loop:
                        continue  # within one iteration: GL010's own analysis
                else:
                    exprs = [a.value for a in later.node.args if a.keyword is None]
                shared = None
                for expr in exprs:
                    theirs = forward_sources(s, summaries, expr, later.index)
                    common = [sources[k] for k in theirs if k in sources]
                    if common:
                        shared = common[0]
                        reads = s.closure(expr, helper_reads)
                        key = next((k for k in shared.keys if k in reads), shared.keys[0])
                        break
                if shared is not None and not _rebuilt_between(s, shared, first, later):
                    out.append(FreedGraphReuse(first, later, shared, s, key))
                    break
    return out


def _loop_exited(s: FunctionSummary, sources: dict[int, Assignment], first: Effect, later: Effect) -> bool:
    """Is ``later`` after a loop that holds ``first`` and the forward, but not ``later``?"""
    loop = s.loop_around(first.index)
    return loop is not None and not (loop[1] < later.index < loop[2])


def _rebuilt_between(s: FunctionSummary, source: Assignment, first: Effect, later: Effect) -> bool:
    return any(
        a.index > first.index and a.index < later.index and set(a.keys) & set(source.keys) and not a.accum
        for a in s.assignments
    )


# -- GL005 -------------------------------------------------------------------------------


@dataclass
class DataCut:
    node: cst.CSTNode  # the `.data` attribute
    key: str
    loop: cst.CSTNode
    function: FunctionSummary


def data_cut_in_time_loop(summaries: Summaries) -> list[DataCut]:
    """``h = h.data(.clone())`` on a value carried between iterations of a loop with no backward.

    The next iteration computes from ``h``; gradient then stops at every step
    (backprop through time cut). Loops that backpropagate or step are training
    loops, where the cut is the intended truncation.
    """
    out: list[DataCut] = []
    for fn in summaries.functions():
        s = summaries.of(fn)
        for loop, lo, hi in s.loops:
            inside = [e for e in s.effects if lo < e.index < hi]
            if any(e.kind in ("backward", "step", "unknown") for e in inside):
                continue
            if not any(e.kind == "forward" and e.grad_enabled for e in inside):
                continue
            for a in s.assignments:
                if not (lo < a.index < hi) or a.accum or len(a.keys) != 1 or a.value is None:
                    continue
                key = a.keys[0]
                data = _data_of(a.value, key)
                if data is None:
                    continue
                # carried: read in the loop before this rebinding, and written with an activation after it
                reads_before = any(
                    key in any_reads(b.value)
                    for b in s.assignments
                    if lo < b.index < a.index and b.value is not None
                )
                grows = any(
                    key in b.keys
                    and b.accum
                    and b.index > a.index
                    and b.index < hi
                    and _runs_forward_or_math(b)
                    for b in s.assignments
                )
                if reads_before and grows:
                    out.append(DataCut(data, key, loop, s))
    return out


def _data_of(value, key: str) -> cst.Attribute | None:
    for n in walk(value, into_scopes=False):
        if isinstance(n, cst.Attribute) and n.attr.value == "data" and key_of(n.value) == key:
            return n
    return None


def _runs_forward_or_math(a: Assignment) -> bool:
    # `state[0:n] = timestep_output`: a slice written with a computed value
    return (
        isinstance(a.node, cst.Assign)
        and a.value is not None
        and not isinstance(a.value, (cst.Integer, cst.Float))
    )


def _code(node: cst.CSTNode) -> str:
    return cst.Module(body=[]).code_for_node(node)


# -- GL006, per optimizer -------------------------------------------------------------------


def optimizer_never_cleared(summaries: Summaries) -> list[MissingZeroGrad]:
    """A loop steps optimizer X and clears only *other* optimizers, built over other modules."""
    out: list[MissingZeroGrad] = []
    for fn in summaries.functions():
        s = summaries.of(fn)
        if not s.complete:
            continue
        for loop, lo, hi in s.loops:
            inside = [e for e in s.effects if lo < e.index < hi]
            zeroed = {e.name for e in inside if e.kind == "zero_grad"}
            if not zeroed or not any(e.kind == "backward" and not e.backward.is_grad for e in inside):
                continue
            cleared_modules: set[str] = set()
            for name in zeroed:
                mods = _optimizer_modules(summaries, name)
                if not mods:
                    cleared_modules = set()
                    break  # a model's zero_grad, or an optimizer we cannot see: may clear anything
                cleared_modules |= mods
            if not cleared_modules:
                continue
            for step in (e for e in inside if e.kind == "step" and not _closure_step(e)):
                if step.name in zeroed or step.conditional or s.conditional(step.index, lo):
                    continue
                mods = _optimizer_modules(summaries, step.name)
                if mods and not (mods & cleared_modules) and not _nested_loop_clears(s, step, lo, hi):
                    if all(o.step.node is not step.node for o in out):
                        out.append(MissingZeroGrad(step, loop, s))
                    break
    return out


def _nested_loop_clears(s: FunctionSummary, step: Effect, lo: int, hi: int) -> bool:
    return any(e.kind == "zero_grad" and e.name == step.name for e in s.effects)


# -- GL005, through a helper ------------------------------------------------------------------


@dataclass
class DataWriteOnActivation:
    node: cst.CSTNode  # the first in-place write through `.data`
    param: str
    call: Effect  # a call site passing an activation
    function: FunctionSummary


def data_write_on_passed_activation(summaries: Summaries) -> list[DataWriteOnActivation]:
    """A helper edits its argument in place through ``.data`` while a same-file caller passes an activation."""
    out: list[DataWriteOnActivation] = []
    for fn in summaries.functions():
        if not isinstance(fn, cst.FunctionDef):
            continue
        params = [p.name.value for p in fn.params.params]
        writes = _data_writes(fn)
        for pos, param in enumerate(params):
            write = writes.get(param)
            if write is None:
                continue
            for caller, call in summaries.callers(fn):
                arg = _argument(call.node, pos, param)
                if arg is not None and (
                    _runs_forward(arg, summaries) or forward_sources(caller, summaries, arg, call.index)
                ):
                    out.append(DataWriteOnActivation(write, param, call, summaries.of(fn)))
                    break
            else:
                continue
            break
    return out


def _data_writes(fn: cst.FunctionDef) -> dict[str, cst.CSTNode]:
    """The first in-place arithmetic through ``.data`` per root name.

    Arithmetic only: ``x.data += 1``, ``x.data[:, c] = (x.data[:, c] - m) / s``;
    ``x.data = y`` swaps storage, and ``x.data.masked_fill_(...)`` is as often
    on indices as on values.
    """
    out: dict[str, cst.CSTNode] = {}

    def root_through_data(target) -> str | None:
        n = target
        while isinstance(n, (cst.Subscript, cst.Attribute)):
            if isinstance(n, cst.Attribute) and n.attr.value == "data":
                return _root(n.value)
            n = n.value
        return None

    for n in walk(fn.body, into_scopes=False):
        if isinstance(n, cst.AugAssign):
            root = root_through_data(n.target)
        elif isinstance(n, cst.Assign) and isinstance(n.value, cst.BinaryOperation):
            root = next(
                (root_through_data(t.target) for t in n.targets if isinstance(t.target, cst.Subscript)), None
            )
        else:
            continue
        if root is not None:
            out.setdefault(root, n)
    return out


def _root(node) -> str | None:
    while isinstance(node, (cst.Attribute, cst.Subscript)):
        node = node.value
    return node.value if isinstance(node, cst.Name) else None


def _argument(call: cst.CSTNode, pos: int, name: str):
    if not isinstance(call, cst.Call):
        return None
    positional = [a for a in call.args if a.keyword is None and not a.star]
    for a in call.args:
        if a.keyword is not None and a.keyword.value == name:
            return a.value
    return positional[pos].value if pos < len(positional) else None


# -- GL003, through a helper's return ----------------------------------------------------------


@dataclass
class AccumulatedReturn:
    node: cst.CSTNode  # the accumulating statement
    key: str
    call: cst.Call  # the helper call whose return carries the graph
    function: FunctionSummary
    generator: bool = False  # the helper is a generator: what it yields carries the graph


def accumulated_helper_loss(summaries: Summaries) -> list[AccumulatedReturn]:
    """``total += v`` across a loop where ``v`` comes from a same-file helper that returns a loss or activation."""
    from gradlint.static.semantics.summaries import ACTIVATION, LOSS

    out: list[AccumulatedReturn] = []
    for fn in summaries.functions():
        s = summaries.of(fn)
        for loop, lo, hi in s.loops:
            inside = [e for e in s.effects if lo < e.index < hi]
            if any(e.kind == "forward" and not e.grad_enabled for e in inside):
                continue
            # `for loss in train_steps(model, loader)`: a same-file generator's body runs between the iterations
            gen = _iterated_generator(s, summaries, loop)
            inside += summaries.of(gen).effects if gen is not None else []
            if not any(e.kind in ("backward", "step") for e in inside):
                continue  # collecting a forward's outputs (a decoder's layers) is not history kept across steps
            for a in s.assignments:
                if not (lo < a.index < hi) or not isinstance(a.node, cst.AugAssign) or len(a.keys) != 1:
                    continue
                key = a.keys[0]
                if any(lo < b.index < hi and key in b.keys and not b.accum for b in s.assignments):
                    continue  # rebound inside the loop: not carried across iterations
                if not any(b.index < lo and key in b.keys for b in s.assignments):
                    continue
                call = _helper_source(s, summaries, a.value, a.index, (ACTIVATION, LOSS))
                if call is not None and all(o.node is not a.node for o in out):
                    callee = summaries.resolve(call, s.class_name)
                    generator = callee is not None and summaries.of(callee).yields is not None
                    out.append(AccumulatedReturn(a.node, key, call, s, generator))
    return out


def _helper_source(s, summaries, expr, at, kinds):
    direct = _helper_call_in(s, summaries, expr, kinds)
    if direct is not None:
        return direct
    todo = [(k, at) for k in helper_reads(expr)]
    seen: set[tuple[str, int]] = set()
    while todo:
        key, pos = todo.pop()
        if (key, pos) in seen or len(seen) > 200:
            continue
        seen.add((key, pos))
        for d in reaching(s, key, pos):
            value = d.value
            if value is None:
                continue
            if d.loop_target:
                # `for loss in train_steps(...)`: what a same-file generator yields
                if isinstance(value, cst.Call):
                    callee = summaries.resolve(value, s.class_name)
                    if callee is not None and summaries.of(callee).yields in kinds:
                        return value
                # `for k, v in losses.items()`: the items of `losses`
                if isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute):
                    if value.func.attr.value in ("items", "values"):
                        todo.extend((k, d.index + 1) for k in helper_reads(value.func.value))
                continue
            call = _helper_call_in(s, summaries, value, kinds)
            if call is not None:
                return call
            todo.extend((k, d.index) for k in helper_reads(value))
    return None


def _iterated_generator(s, summaries, loop):
    """The same-file generator function a ``for`` loop iterates (``for x in batches(...)``), if any."""
    if not isinstance(loop, cst.For) or not isinstance(loop.iter, cst.Call):
        return None
    callee = summaries.resolve(loop.iter, s.class_name)
    if callee is None or summaries.of(callee).yields is None:
        return None
    return callee


def _helper_call_in(s, summaries, expr, kinds):
    """A same-file call in ``expr`` (not read through a cut) whose summary returns one of ``kinds``."""
    stack = [expr]
    while stack:
        n = stack.pop()
        if isinstance(n, cst.Call):
            if isinstance(n.func, cst.Attribute) and n.func.attr.value in HELPER_CUT_METHODS:
                continue
            callee = summaries.resolve(n, s.class_name)
            if callee is not None and summaries.of(callee).returns in kinds:
                return n
            stack.extend(a.value for a in n.args)
            stack.append(n.func)
        elif isinstance(n, cst.BinaryOperation):
            stack.extend((n.left, n.right))
        elif isinstance(n, cst.Attribute) and n.attr.value not in HELPER_CUT_ATTRIBUTES:
            stack.append(n.value)
        elif isinstance(n, cst.Subscript):
            stack.append(n.value)
    return None
