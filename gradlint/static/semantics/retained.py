"""GL018's question: who needs the graph that a ``backward(retain_graph=True)`` keeps?

Reads the per-file :mod:`summaries`, so a step spread over methods
(``optimize_parameters`` -> ``self.forward()``, a loop of ``self.backward_D()``)
is seen as one step. Every answer that is not certain stays silent.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import libcst as cst

from gradlint.static.semantics.reads import any_reads
from gradlint.static.semantics.summaries import (
    DETACHED,
    NUMBER,
    Backward,
    Effect,
    FunctionSummary,
    Summaries,
    value_kind,
)
from gradlint.static.semantics.walk import walk


class Verdict(enum.Enum):
    UNNEEDED = "unneeded"  # last backward before the step; nothing carries the graph over
    PRE_LOOP_TERM = "pre_loop_term"  # the next iteration backpropagates through a term built before the loop
    STALE_INPUT = "stale_input"  # a later backward reaches it through a pre-step value fed to a fresh forward
    CLOSURE = "closure"  # inside an optimizer closure


@dataclass
class RetainedGraph:
    verdict: Verdict
    backward: Backward
    step: cst.CSTNode
    loop: cst.CSTNode | None = None
    term: str = ""
    term_node: cst.CSTNode | None = None
    later: Backward | None = None
    forward: cst.CSTNode | None = None
    closure: str = ""


def find_retained_graphs(ctx) -> list[RetainedGraph]:
    summaries = ctx.analysis(Summaries)
    out: list[RetainedGraph] = []
    seen: set[int] = set()
    for fn in summaries.functions():
        summary = summaries.of(fn)
        for effect in summary.effects:
            bw = effect.backward
            if effect.kind != "backward" or effect.via or bw is None or id(bw.call) in seen:
                continue
            if bw.retain_graph is not True or bw.create_graph or bw.is_grad:
                continue
            found = _judge(summaries, summary, effect)
            if found is not None:
                seen.add(id(bw.call))
                out.append(found)
    return out


def _judge(summaries: Summaries, owner: FunctionSummary, effect: Effect) -> RetainedGraph | None:
    closure = _closure_verdict(summaries, owner, effect)
    if closure is not None:
        return closure
    for region, position in _regions(summaries, owner, effect):
        found = _judge_in(summaries, owner, effect, region, position)
        if found is not False:
            return found
    return None


def _closure_verdict(summaries: Summaries, owner: FunctionSummary, effect: Effect) -> RetainedGraph | None:
    if not isinstance(owner.node, cst.FunctionDef):
        return None
    if any(e.kind == "backward" and e.index > effect.index for e in owner.effects):
        return None
    name = owner.node.name.value
    for fn in summaries.functions():
        for e in summaries.of(fn).effects:
            if e.kind == "step" and not e.via and isinstance(e.node, cst.Call):
                if any(isinstance(a.value, cst.Name) and a.value.value == name for a in e.node.args):
                    return RetainedGraph(Verdict.CLOSURE, effect.backward, e.node, closure=name)
    return None


def _regions(summaries: Summaries, owner: FunctionSummary, effect: Effect):
    """Where the backward runs as part of a step: (function, loop or None, index of the statement)."""
    loop = owner.loop_around(effect.index)
    if loop is not None:
        yield (owner, loop), effect.index
        return
    for caller, call in summaries.callers(owner.node):
        if caller is owner:
            continue
        yield (caller, caller.loop_around(call.index)), call.index
    yield (owner, None), effect.index


def _judge_in(summaries, owner, effect, region, position):
    """A verdict, None (silent: the retained graph may be needed), or False (no step here: try elsewhere)."""
    fn, loop = region
    lo, hi = (loop[1], loop[2]) if loop is not None else (-1, 1 << 30)
    timeline = [e for e in fn.effects if lo < e.index < hi]
    me = next((i for i, e in enumerate(timeline) if e.backward is effect.backward), None)
    if me is None:
        return False
    after = timeline[me + 1 :]
    if any(e.kind == "unknown" for e in after):
        return None
    later_at = next((i for i, e in enumerate(after) if e.kind == "backward"), None)
    steps = [e for e in after if e.kind == "step"]
    if later_at is None:
        if not steps:
            return False if loop is None else None
        return _last_backward(summaries, owner, effect, fn, loop, steps[0])
    later = after[later_at]
    between = [e for e in after[:later_at] if e.kind == "step"]
    if not between:
        return None
    return _stale_input(summaries, owner, effect, fn, between, later)


# -- the last backward before the step ------------------------------------------------------


def _last_backward(summaries, owner, effect, fn, loop, step) -> RetainedGraph | None:
    bw = effect.backward
    deps = owner.closure(bw.target, any_reads)
    inside = range(loop[1], loop[2]) if loop is not None else range(0, 1 << 30)
    # an accumulated loss is GL002's business
    for a in owner.assignments:
        if a.index in inside and set(a.keys) & deps and (a.accum or set(a.keys) & _operands(a.value)):
            return None  # `loss += term`, `loss = loss + term`
    if loop is not None and fn is owner:
        for key in deps:
            defs = [a for a in owner.defs_of(key) if a.index in inside]
            after_bw = [a for a in defs if a.index > effect.index and not a.loop_target]
            if after_bw and _carries_graph(owner, after_bw[-1], summaries):
                return None  # state carried into the next iteration: GL008's business
    if loop is not None and fn is owner:
        mine = deps - _callees(owner) - _params(owner)
        for e in fn.effects:
            if e.kind == "backward" and e.index >= loop[2] and e.backward.target is not None:
                if fn.closure(e.backward.target, any_reads) & mine:
                    return None  # a backward after the loop goes through the last iteration's graph
    if loop is not None:
        term = _pre_loop_term(summaries, owner, fn, deps, loop)
        if term is not None:
            key, node = term
            return RetainedGraph(Verdict.PRE_LOOP_TERM, bw, step.node, loop=loop[0], term=key, term_node=node)
    if any(k.startswith("self.") and not owner.defs_of(k) for k in deps) and loop is None:
        return None  # an attribute set elsewhere may hold a graph for another call
    return RetainedGraph(Verdict.UNNEEDED, bw, step.node, loop=loop[0] if loop else None)


def _pre_loop_term(summaries, owner, fn, deps, loop):
    """A dependency defined before the loop (in ``fn`` or by a helper it calls) that carries a graph."""
    callees = _callees(owner) | _callees(fn)
    for key in sorted(deps):
        if key in callees or key in _params(fn) or key in _params(owner):
            continue
        if any(loop[1] <= a.index < loop[2] for a in fn.defs_of(key)):
            continue  # rebuilt inside the loop
        if fn is not owner and owner.defs_of(key) and not key.startswith("self."):
            continue
        pre = [a for a in fn.defs_of(key) if a.index < loop[1] and not a.loop_target and not a.accum]
        if pre and _carries_graph(fn, pre[-1], summaries):
            return key, pre[-1].node
        if key.startswith("self."):
            writes = [e for e in fn.effects if e.kind == "write" and e.name == key and e.index < loop[1]]
            inside = [
                e for e in fn.effects if e.kind == "write" and e.name == key and loop[1] <= e.index < loop[2]
            ]
            if (
                writes
                and not inside
                and writes[-1].value is not None
                and _has_forward(writes[-1].value, summaries)
            ):
                return key, writes[-1].node
    return None


# -- a later backward through a pre-step value ---------------------------------------------


def _stale_input(summaries, owner, effect, fn, steps, later) -> RetainedGraph | None:
    if owner is not fn or later.via or later.owner is not fn:
        return None  # only within one body: positions across helpers are not comparable
    step = steps[0]
    stepped = set()
    for s in steps:
        mods = _optimized_modules(summaries, fn, s.name)
        if mods is None:
            return None
        stepped |= mods
    mine = fn.closure(effect.backward.target, any_reads)
    # the later loss's definitions between the step and the later backward
    frontier = set(any_reads(later.backward.target))
    seen: set[str] = set()
    while frontier:
        key = frontier.pop()
        if key in seen:
            continue
        seen.add(key)
        defs = [a for a in fn.defs_of(key) if step.index <= a.index <= later.index and not a.loop_target]
        for a in defs:
            for call in walk(a.value, into_scopes=False) if a.value is not None else ():
                if not isinstance(call, cst.Call) or not summaries.is_forward(call):
                    continue
                for arg in call.args:
                    if any(isinstance(n, cst.Call) for n in walk(arg.value, into_scopes=False)):
                        continue  # a nested call is judged on its own, closer to the value
                    for ref in any_reads(arg.value):
                        hit = _stale(fn, ref, step, later, mine, stepped, summaries)
                        if hit is not None:
                            return RetainedGraph(
                                Verdict.STALE_INPUT,
                                effect.backward,
                                step.node,
                                term=ref,
                                term_node=hit.node,
                                later=later.backward,
                                forward=call,
                            )
            for a_ref in any_reads(a.value):
                frontier.add(a_ref)
    return None


def _stale(fn, key, step, later, mine, stepped, summaries):
    if key not in mine:
        return None
    defs = [a for a in fn.defs_of(key) if not a.loop_target]
    if any(step.index <= a.index <= later.index for a in defs):
        return None  # rebuilt after the step
    before = [a for a in defs if a.index < step.index]
    if not before or not _carries_graph(fn, before[-1], summaries):
        return None
    if not (_producers(fn, key, summaries) & stepped):
        return None  # the step changed other modules' weights: the old graph is still valid
    return before[-1]


def _optimized_modules(summaries, fn, name: str) -> set[str] | None:
    """The modules whose ``.parameters()`` optimizer ``name`` was built from; None when unknown."""
    candidates = list(fn.defs_of(name))
    if not candidates:
        for other in summaries.functions():
            candidates.extend(a for a in summaries.of(other).assignments if name in a.keys)
    if not candidates:
        for stmt in summaries.module.body:
            if isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    if isinstance(small, cst.Assign) and any(
                        isinstance(t.target, cst.Name) and t.target.value == name for t in small.targets
                    ):
                        candidates.append(small)
    mods: set[str] = set()
    for c in candidates:
        value = c.value
        for n in walk(value, into_scopes=False) if value is not None else ():
            if (
                isinstance(n, cst.Call)
                and isinstance(n.func, cst.Attribute)
                and n.func.attr.value == "parameters"
            ):
                key = any_reads(n.func.value)
                mods |= {k for k in key if k != "self"}
    return mods or None


# -- small helpers ----------------------------------------------------------------------


def _producers(summary: FunctionSummary, key: str, summaries: Summaries, depth: int = 0) -> set[str]:
    """The modules whose forward produced ``key`` (through the function's assignments)."""
    if depth > 6:
        return set()
    out: set[str] = set()
    for a in summary.defs_of(key):
        if a.value is None or a.loop_target:
            continue
        for n in walk(a.value, into_scopes=False):
            if isinstance(n, cst.Call) and summaries.is_forward(n):
                out |= any_reads(n.func)
        for r in any_reads(a.value):
            if r != key:
                out |= _producers(summary, r, summaries, depth + 1)
    return out


def _operands(value) -> set[str]:
    """The names an arithmetic expression adds up: `loss + term * w` -> {loss, term}."""
    if isinstance(value, cst.BinaryOperation):
        return _operands(value.left) | _operands(value.right)
    if isinstance(value, (cst.Name, cst.Attribute)):
        return any_reads(value)
    return set()


def _has_forward(value, summaries: Summaries) -> bool:
    return any(isinstance(n, cst.Call) and summaries.is_forward(n) for n in walk(value, into_scopes=False))


def _carries_graph(summary: FunctionSummary, assignment, summaries: Summaries, depth: int = 0) -> bool:
    value = assignment.value
    if value is None or depth > 6:
        return False
    if value_kind(value, summary, summaries) in (DETACHED, NUMBER):
        return False
    if _has_forward(value, summaries):
        return True
    for r in any_reads(value):
        for a in summary.defs_of(r):
            if a is not assignment and not a.loop_target and a.index <= assignment.index:
                if _carries_graph(summary, a, summaries, depth + 1):
                    return True
    return False


def _callees(summary: FunctionSummary) -> set[str]:
    out: set[str] = set()
    body = summary.node if isinstance(summary.node, cst.Module) else summary.node.body
    for n in walk(body, into_scopes=False):
        if isinstance(n, cst.Call):
            out |= any_reads(n.func) if not isinstance(n.func, cst.Attribute) else _receiver_keys(n.func)
    return out


def _receiver_keys(func: cst.Attribute) -> set[str]:
    # `self.netD(x)` and `netD.forward(x)` name a module; `x.view(...)` does not
    if func.attr.value == "forward" or (isinstance(func.value, cst.Name) and func.value.value == "self"):
        return any_reads(func)
    return set()


def _params(summary: FunctionSummary) -> set[str]:
    if isinstance(summary.node, cst.Module):
        return set()
    p = summary.node.params
    return {x.name.value for x in (*p.params, *p.kwonly_params, *p.posonly_params)}
