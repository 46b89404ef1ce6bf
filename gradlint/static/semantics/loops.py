"""Loops, values accumulated across their iterations, and the backward calls inside them.

Rules GL001-GL003 share one question: *does a value carry autograd graph from
one iteration of a loop into the next?*  This module answers it per function,
flow-insensitively but structure-aware, with a strong bias to silence:

* A **unit** is one statement line (``a = b; c()`` is one unit) or a compound
  header (``for x in y:`` assigns ``x``).  Every unit knows the loops whose
  *body* contains it (comprehensions are not loops here) and its path of
  compound statements, so "unconditionally executed in loop L" is answerable.
* A **def** is what a unit does to a name or dotted name (``loss``,
  ``self.epoch_loss``): ``accum`` (``x += t``, ``x = x + t``, ``x = t + x``,
  ``x.append(t)``, ``d[k] = d.get(k, 0) + t``, ``x = torch.cat([x, t])``),
  ``keep`` (rebinds from an expression that still references the old value
  through a graph-preserving path: ``x = x / n``, ``h = model(x, h)``) or
  ``kill`` (a fresh value: ``x = 0``, ``x = crit(...)``, ``x = x.detach()``,
  ``x.detach_()``, ``del x``, a ``for``/``with`` target).
* **Graph references** of an expression are the names whose autograd graph
  can flow into its value: ``.item()``, ``.detach()``, ``float()``, ``len()``,
  comparisons, ``argmax``, ``.shape`` and shape arguments cut the flow; callee
  names (``model`` in ``model(x)``) are not values.
* **Graph-carrying** (needs positive evidence): a model call, a loss call, a
  backward target, or arithmetic/tensor methods on one of those.

The facts of a function are built lazily, only when a rule has a candidate in
it; :class:`ScopeTracker` gives rules, during the batched traversal, the scope
(function, lambda, class or module) and loop depth they are in, without paying
for parent metadata.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import libcst as cst

from gradlint.static.semantics.backward import BackwardCall, backward_call, is_backward_call
from gradlint.static.semantics.dataflow import is_model_name
from gradlint.static.semantics.grad_mode import grad_mode_of
from gradlint.static.semantics.imports import ImportMap, dotted_name
from gradlint.static.semantics.reads import LoopReads, graph_reads
from gradlint.static.semantics.vocabulary import (
    CONCAT_FUNCTIONS,
    DATA_ITERABLE_NAME,
    DATA_WRAPPERS,
    EPOCH_NAME,
    FORWARD_METHOD_NAME,
    FUNCTIONAL_LOSSES,
    LIST_ACCUMULATE_METHODS,
    LOSS_CALLEE_NAME,
    MODEL_CALLEE_NAME,
    NO_GRAPH_ATTRIBUTES,
    NO_GRAPH_FUNCTIONS,
    NO_GRAPH_RESULT_METHODS,
    OPTIMIZER_STEP_RECEIVER,
    STEP_METHOD_NAME,
)
from gradlint.static.semantics.walk import children, walk

Scope = cst.Module | cst.FunctionDef | cst.Lambda | cst.ClassDef
Loop = cst.For | cst.While

# -- vocabulary ---------------------------------------------------------------


_ADDITIVE = (cst.Add, cst.Subtract)
_ACCUM_AUG = (cst.AddAssign, cst.SubtractAssign)


# -- expression helpers -------------------------------------------------------


def additive_leaves(expr: cst.BaseExpression) -> list[cst.BaseExpression]:
    """The operands of a chain of ``+``/``-``: ``a + b - c`` -> [a, b, c]."""
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, _ADDITIVE):
        return additive_leaves(expr.left) + additive_leaves(expr.right)
    return [expr]


def _method_name(call: cst.Call) -> str | None:
    return call.func.attr.value if isinstance(call.func, cst.Attribute) else None


def _resolve(node: cst.CSTNode, imports: ImportMap | None) -> str | None:
    if imports is not None:
        return imports.resolve(node)
    return dotted_name(node)


def _target_keys(target: cst.BaseExpression) -> list[tuple[str, cst.BaseExpression]]:
    """Dotted keys bound by an assignment target (tuples unpacked)."""
    if isinstance(target, (cst.Tuple, cst.List)):
        out: list[tuple[str, cst.BaseExpression]] = []
        for el in target.elements:
            out += _target_keys(el.value)
        return out
    if isinstance(target, cst.StarredElement):
        return _target_keys(target.value)
    name = dotted_name(target)
    return [(name, target)] if name is not None else []


def is_loss_call(call: cst.Call, imports: ImportMap | None = None) -> bool:
    name = _resolve(call.func, imports)
    if name is None:
        return False
    last = name.rsplit(".", 1)[-1]
    if last in FUNCTIONAL_LOSSES or last == "loss":
        return True
    return bool(LOSS_CALLEE_NAME.match(last)) and not re.search(
        r"scale|weight|history|meter|avg|log|names?$|type", last, re.I
    )


def is_model_call(call: cst.Call, imports: ImportMap | None = None) -> bool:
    """``model(x)``, ``self.encoder(h)``, ``G(z)``, ``self(x)`` (Lightning), ``model.forward(x)``."""
    if not call.args:
        return False
    name = dotted_name(call.func)
    if name is None:
        return False
    if name == "self":
        return True
    parts = name.split(".")
    if parts[-1] == "forward" and len(parts) > 1:
        parts = parts[:-1]
    if parts[-1] == "module" and len(parts) > 1:  # DDP's model.module(x)
        parts = parts[:-1]
    if parts[0] in ("torch", "nn", "F", "np", "numpy", "math"):
        return False
    last = parts[-1]
    # The shared model vocabulary of dataflow.py (``mlp``, ``text_encoder``, ``netD``...) plus ours.
    return last != "forward" and (bool(MODEL_CALLEE_NAME.match(last)) or is_model_name(last))


# -- per-scope facts ----------------------------------------------------------


@dataclass(eq=False)
class Unit:
    """One statement line, or the header of a ``for``/``with`` (which binds targets)."""

    node: cst.CSTNode
    index: int
    loops: tuple[Loop, ...]  # loops whose body holds this unit, outermost first
    path: tuple[tuple[cst.CSTNode, str], ...]  # enclosing compound statements and which part
    # Loops this unit is followed by an unconditional exit from (a later ``break`` in its
    # block leaves the innermost loop; ``return``/``raise`` leave them all).
    exits: tuple[Loop, ...] = ()

    def in_loop(self, loop: Loop) -> bool:
        return any(l is loop for l in self.loops)

    def unconditional_in(self, loop: Loop) -> bool:
        """Runs on every iteration of ``loop`` that completes (no if/loop/except in between)."""
        seen = False
        for node, part in self.path:
            if node is loop:
                seen = True
                continue
            if seen and not (isinstance(node, cst.With) or part in ("try", "finally")):
                return False
        return seen


@dataclass(eq=False)
class Def:
    key: str
    kind: str  # "accum" | "keep" | "kill"
    unit: Unit
    node: cst.CSTNode  # the small statement (or call, or header) doing it
    value: cst.BaseExpression | None = None  # the RHS (kill/keep)
    increments: tuple[cst.BaseExpression, ...] = ()  # accum: what is added


@dataclass(eq=False)
class BackwardSite:
    bw: BackwardCall
    unit: Unit


class LoopFacts:
    """What one function (or module, class body, lambda) does, statement by statement."""

    def __init__(self, scope: Scope, imports: ImportMap):
        self.scope = scope
        self.imports = imports
        self.reads = LoopReads(imports)
        self.units: list[Unit] = []
        self.defs: dict[str, list[Def]] = {}
        self.def_of_node: dict[cst.CSTNode, Def] = {}
        self.backwards: list[BackwardSite] = []
        self.backward_of_call: dict[cst.Call, BackwardSite] = {}
        self.optimizer_steps: list[Unit] = []
        self.params: set[str] = set()
        self.loops: list[Loop] = []
        self.no_grad_units: set[int] = set()
        if isinstance(scope, cst.FunctionDef):
            self._params(scope.params)
            self._block(scope.body, (), ())
        elif isinstance(scope, cst.Lambda):
            self._params(scope.params)
        elif isinstance(scope, cst.ClassDef):
            self._block(scope.body, (), ())
        else:
            self._block_stmts(scope.body, (), ())

    # -- construction --
    def _params(self, params: cst.Parameters) -> None:
        for p in list(params.params) + list(params.posonly_params) + list(params.kwonly_params):
            self.params.add(p.name.value)
        for star in (params.star_arg, params.star_kwarg):
            if isinstance(star, cst.Param):
                self.params.add(star.name.value)

    def _block(self, suite: cst.BaseSuite, path, loops) -> None:
        if isinstance(suite, cst.IndentedBlock):
            self._block_stmts(suite.body, path, loops)
        elif isinstance(suite, cst.SimpleStatementSuite):
            self._unit(suite, suite.body, path, loops)

    def _block_stmts(self, stmts: Sequence[cst.BaseStatement], path, loops) -> None:
        first = len(self.units)
        for stmt in stmts:
            if isinstance(stmt, cst.SimpleStatementLine):
                exits = _exits(stmt.body, loops)
                if exits:
                    for unit in self.units[first:]:
                        unit.exits = unit.exits + exits
                self._unit(stmt, stmt.body, path, loops)
            elif isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
                # Its own scope; but binding the name is a kill here.
                unit = self._new_unit(stmt, path, loops)
                self._add_def(stmt.name.value, "kill", unit, stmt)
            elif isinstance(stmt, cst.If):
                self._block(stmt.body, path + ((stmt, "if"),), loops)
                orelse = stmt.orelse
                if isinstance(orelse, cst.If):
                    self._block_stmts([orelse], path + ((stmt, "else"),), loops)
                elif isinstance(orelse, cst.Else):
                    self._block(orelse.body, path + ((stmt, "else"),), loops)
            elif isinstance(stmt, cst.For):
                self.loops.append(stmt)
                inner_loops = loops + (stmt,)
                inner_path = path + ((stmt, "body"),)
                header = self._new_unit(stmt, inner_path, inner_loops)
                for key, _ in _target_keys(stmt.target):
                    self._add_def(key, "kill", header, stmt)
                self._block(stmt.body, inner_path, inner_loops)
                if stmt.orelse is not None:
                    self._block(stmt.orelse.body, path + ((stmt, "else"),), loops)
            elif isinstance(stmt, cst.While):
                self.loops.append(stmt)
                self._block(stmt.body, path + ((stmt, "body"),), loops + (stmt,))
                if stmt.orelse is not None:
                    self._block(stmt.orelse.body, path + ((stmt, "else"),), loops)
            elif isinstance(stmt, cst.With):
                inner_path = path + ((stmt, "with"),)
                header = self._new_unit(stmt, inner_path, loops)
                for item in stmt.items:
                    if item.asname is not None:
                        for key, _ in _target_keys(item.asname.name):
                            self._add_def(key, "kill", header, stmt)
                self._block(stmt.body, inner_path, loops)
            elif isinstance(stmt, (cst.Try, cst.TryStar)):
                self._block(stmt.body, path + ((stmt, "try"),), loops)
                for handler in stmt.handlers:
                    self._block(handler.body, path + ((stmt, "except"),), loops)
                if stmt.orelse is not None:
                    self._block(stmt.orelse.body, path + ((stmt, "else"),), loops)
                if stmt.finalbody is not None:
                    self._block(stmt.finalbody.body, path + ((stmt, "finally"),), loops)
            elif isinstance(stmt, cst.Match):
                for case in stmt.cases:
                    self._block(case.body, path + ((stmt, "case"),), loops)

    def _new_unit(self, node, path, loops) -> Unit:
        unit = Unit(node, len(self.units), tuple(loops), tuple(path))
        self.units.append(unit)
        return unit

    def _unit(self, node, smalls: Sequence[cst.BaseSmallStatement], path, loops) -> None:
        unit = self._new_unit(node, path, loops)
        for small in smalls:
            self._small(small, unit)
            calls, walrus = _calls_and_walrus(small)
            for call in calls:
                bw = backward_call(call, self.imports)
                if bw is not None:
                    site = BackwardSite(bw, unit)
                    self.backwards.append(site)
                    self.backward_of_call[call] = site
                elif _is_optimizer_step(call):
                    self.optimizer_steps.append(unit)
            for named in walrus:
                for key, _ in _target_keys(named.target):
                    self._classify_assign(key, named.value, unit, named)

    def _add_def(self, key, kind, unit, node, value=None, increments=()) -> Def:
        d = Def(key, kind, unit, node, value, tuple(increments))
        self.defs.setdefault(key, []).append(d)
        self.def_of_node.setdefault(node, d)
        return d

    def _small(self, small: cst.BaseSmallStatement, unit: Unit) -> None:
        if isinstance(small, (cst.Assign, cst.AnnAssign)):
            value = small.value
            if value is None:
                return
            targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
            for target in targets:
                if isinstance(target, cst.Subscript):
                    self._subscript_store(target, value, unit, small)
                    continue
                pairs = _target_keys(target)
                if len(pairs) == 1 and pairs[0][1] is target:
                    self._classify_assign(pairs[0][0], value, unit, small)
                else:
                    refs = graph_reads(value, self.reads)
                    for key, _ in pairs:
                        self._add_def(key, "keep" if key in refs else "kill", unit, small, value)
        elif isinstance(small, cst.AugAssign):
            target = small.target
            if isinstance(target, cst.Subscript):
                base = dotted_name(target.value)
                if base is not None and isinstance(small.operator, _ACCUM_AUG):
                    self._add_def(base, "accum", unit, small, small.value, (small.value,))
                return
            key = dotted_name(target)
            if key is None:
                return
            if isinstance(small.operator, _ACCUM_AUG):
                self._add_def(key, "accum", unit, small, small.value, (small.value,))
            else:
                self._add_def(key, "keep", unit, small, small.value)
        elif isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
            call = small.value
            method = _method_name(call)
            if method is None:
                return
            key = dotted_name(call.func.value)  # type: ignore[attr-defined]
            if key is None:
                return
            if method in LIST_ACCUMULATE_METHODS and call.args:
                added = call.args[-1].value
                if method == "extend" and isinstance(added, (cst.List, cst.Tuple)):
                    incs = tuple(el.value for el in added.elements)
                else:
                    incs = (added,)
                self._add_def(key, "accum", unit, small, added, incs)
            elif method in ("detach_", "clear"):
                self._add_def(key, "kill", unit, small)
        elif isinstance(small, cst.Del):
            for key, _ in _target_keys(small.target):
                self._add_def(key, "kill", unit, small)

    def _classify_assign(self, key: str, value: cst.BaseExpression, unit: Unit, node: cst.CSTNode) -> None:
        leaves = additive_leaves(value)
        if len(leaves) > 1:
            own = [l for l in leaves if dotted_name(l) == key]
            if own:
                others = [l for l in leaves if dotted_name(l) != key]
                self._add_def(key, "accum", unit, node, value, others)
                return
        if (
            isinstance(value, cst.Call)
            and _resolve(value.func, self.imports) in CONCAT_FUNCTIONS
            and value.args
        ):
            seq = value.args[0].value
            if isinstance(seq, (cst.List, cst.Tuple)):
                elems = [el.value for el in seq.elements]
                if any(dotted_name(e) == key for e in elems):
                    self._add_def(
                        key, "accum", unit, node, value, [e for e in elems if dotted_name(e) != key]
                    )
                    return
        kind = "keep" if key in graph_reads(value, self.reads) else "kill"
        self._add_def(key, kind, unit, node, value)

    def _subscript_store(self, target: cst.Subscript, value: cst.BaseExpression, unit: Unit, node) -> None:
        """``d[k] = d.get(k, 0) + t`` / ``d[k] = d[k] + t``: accumulation into ``d``."""
        base = dotted_name(target.value)
        if base is None:
            return
        leaves = additive_leaves(value)
        if len(leaves) < 2:
            return
        own = []
        for leaf in leaves:
            if isinstance(leaf, cst.Subscript) and dotted_name(leaf.value) == base:
                own.append(leaf)
            elif (
                isinstance(leaf, cst.Call)
                and _method_name(leaf) == "get"
                and dotted_name(leaf.func.value) == base
            ):  # type: ignore[attr-defined]
                own.append(leaf)
        if own:
            self._add_def(
                base, "accum", unit, node, value, [l for l in leaves if not any(l is o for o in own)]
            )

    # -- queries --
    def defs_in(self, key: str, loop: Loop, kinds: Iterable[str] = ("accum", "keep", "kill")) -> list[Def]:
        return [d for d in self.defs.get(key, ()) if d.kind in kinds and d.unit.in_loop(loop)]

    def units_in(self, loop: Loop) -> list[Unit]:
        return [u for u in self.units if u.in_loop(loop)]

    def refs(self, expr: cst.CSTNode | None) -> set[str]:
        return graph_reads(expr, self.reads)

    def closure_in(self, keys: Iterable[str], loop: Loop | None, limit: int = 200) -> set[str]:
        """``keys`` plus every name their definitions (inside ``loop``, or anywhere when None)
        reference, transitively."""
        seen: set[str] = set()
        todo = list(keys)
        while todo and len(seen) < limit:
            key = todo.pop()
            if key in seen:
                continue
            seen.add(key)
            for d in self.defs.get(key, ()):
                if loop is not None and not d.unit.in_loop(loop):
                    continue
                exprs = list(d.increments) if d.kind == "accum" else [d.value]
                for e in exprs:
                    todo.extend(self.refs(e) - seen)
        return seen

    def reaching_def(self, key: str, before: Unit) -> Def | None:
        """The last definition of ``key`` in source order before ``before`` (None if none)."""
        best = None
        for d in self.defs.get(key, ()):
            if d.unit.index < before.index and d.kind != "accum":
                best = d
        return best

    # -- graph evidence --
    def is_graph_value(self, expr: cst.BaseExpression, at: Unit, depth: int = 0) -> bool:
        """Positive evidence that ``expr`` carries an autograd graph (see module docs)."""
        if depth > 6:
            return False
        rec = lambda e: self.is_graph_value(e, at, depth + 1)  # noqa: E731
        if isinstance(expr, cst.Call):
            method = _method_name(expr)
            qual = _resolve(expr.func, self.imports)
            if method in NO_GRAPH_RESULT_METHODS or qual in NO_GRAPH_FUNCTIONS:
                return False
            if is_loss_call(expr, self.imports) or is_model_call(expr, self.imports):
                return True
            if method is not None and not (qual and qual.split(".", 1)[0] in ("torch", "F")):
                return rec(expr.func.value)  # type: ignore[attr-defined]
            if qual is not None and (qual.startswith("torch.") or qual in ("sum", "max", "min", "abs")):
                return any(rec(a.value) for a in expr.args)
            return False
        if isinstance(expr, (cst.Name, cst.Attribute)):
            if isinstance(expr, cst.Attribute) and expr.attr.value in NO_GRAPH_ATTRIBUTES:
                return False
            key = dotted_name(expr)
            if key is None:
                return rec(expr.value)  # type: ignore[attr-defined]
            d = self.reaching_def(key, at)
            if d is not None:
                if d.value is None or self.grad_disabled_at(d.unit):
                    return False  # a loop target, or computed under no_grad
                if isinstance(d.node, cst.AugAssign):  # ``loss *= w``: as graph-carrying as before
                    return rec(d.value) or self.is_graph_value(expr, d.unit, depth + 1)
                if isinstance(d.node, (cst.Assign, cst.AnnAssign, cst.NamedExpr)):
                    if self._unpacked_graph(d, key, at, depth):
                        return True
                    # A backward target is evidence too, unless this binding is evidently graph-free
                    # (``loss = loss.item()`` after the backward).
                    return self.is_backward_target(key) and _maybe_graph(self, d.value)
                return False
            if self.is_backward_target(key):
                return True
            if isinstance(expr, cst.Attribute) and not key.startswith("self."):
                return rec(expr.value)  # outputs.loss, out.logits
            return False
        if isinstance(expr, cst.Subscript):
            return rec(expr.value)
        if isinstance(expr, cst.BinaryOperation):
            return rec(expr.left) or rec(expr.right)
        if isinstance(expr, cst.UnaryOperation):
            return not isinstance(expr.operator, cst.Not) and rec(expr.expression)
        if isinstance(expr, (cst.Tuple, cst.List)):
            return any(rec(el.value) for el in expr.elements)
        return False

    def _unpacked_graph(self, d: Def, key: str, at: Unit, depth: int) -> bool:
        value = d.value
        assert value is not None
        targets = [t.target for t in d.node.targets] if isinstance(d.node, cst.Assign) else [d.node.target]  # type: ignore[union-attr]
        for target in targets:
            if isinstance(target, (cst.Tuple, cst.List)):
                # ``_, pred = torch.max(out, 1)``: only the values are differentiable, not the indices.
                names = [dotted_name(el.value) for el in target.elements]
                if key in names and isinstance(value, cst.Call):
                    last = (_resolve(value.func, self.imports) or "").rsplit(".", 1)[-1]
                    if (
                        last in ("max", "min", "topk", "sort", "kthvalue", "mode", "median")
                        and names.index(key) > 0
                    ):
                        return False
        return self.is_graph_value(value, d.unit, depth + 1)

    def is_backward_target(self, key: str) -> bool:
        return key in self.backward_target_keys

    @property
    def backward_target_keys(self) -> set[str]:
        cached = getattr(self, "_bw_keys", None)
        if cached is None:
            cached = set()
            for site in self.backwards:
                cached |= self.refs(site.bw.target)
            self._bw_keys = cached
        return cached

    def grad_disabled_at(self, unit: Unit) -> bool:
        """Inside a no-grad ``with`` of this scope, or a function decorated no-grad."""
        for node, _part in reversed(unit.path):
            if isinstance(node, cst.With):
                for item in node.items:
                    mode = grad_mode_of(item.item, self.imports)
                    if mode is not None:
                        return not mode
        if isinstance(self.scope, cst.FunctionDef):
            for dec in self.scope.decorators:
                mode = grad_mode_of(dec.decorator, self.imports)
                if mode is not None:
                    return not mode
        return False

    # -- loop kinds --
    def is_data_iterable(self, expr: cst.BaseExpression) -> bool:
        """``loader``, ``enumerate(tqdm(train_loader))``, ``zip(a_loader, b_loader)``, ``range(n)``."""
        if isinstance(expr, cst.Call):
            name = dotted_name(expr.func) or ""
            positional = [a.value for a in expr.args if a.keyword is None]
            if name in ("range", "trange"):
                return True
            if name == "zip":
                return bool(positional) and all(self.is_data_iterable(a) for a in positional)
            if name in DATA_WRAPPERS:
                return bool(positional) and self.is_data_iterable(positional[0])
            return False
        name = dotted_name(expr)
        return bool(name and DATA_ITERABLE_NAME.search(name.rsplit(".", 1)[-1]))

    def is_iteration_loop(self, loop: Loop) -> bool:
        """A loop over training/evaluation steps: it backpropagates or steps an optimizer, or
        it walks a data loader or epochs (``range(epochs)``; ``range(n_layers)`` is not one)."""
        if any(s.unit.in_loop(loop) for s in self.backwards) or any(
            u.in_loop(loop) for u in self.optimizer_steps
        ):
            return True
        if isinstance(loop, cst.While):
            return any(EPOCH_NAME.search(n) for n in _names_in(loop.test))
        it = loop.iter
        if isinstance(it, cst.Call) and dotted_name(it.func) in DATA_WRAPPERS and it.args:
            it = it.args[0].value
        if isinstance(it, cst.Call) and dotted_name(it.func) in ("range", "trange"):
            return any(EPOCH_NAME.search(n) for n in _names_in(it))
        name = dotted_name(it)
        return bool(name and DATA_ITERABLE_NAME.search(name.rsplit(".", 1)[-1]))


def _names_in(node: cst.CSTNode) -> set[str]:
    """Every name and attribute name in ``node``."""
    names: set[str] = set()
    for n in walk(node):
        if isinstance(n, cst.Name):
            names.add(n.value)
        elif isinstance(n, cst.Attribute):
            names.add(n.attr.value)
    return names


def _exits(smalls: Sequence[cst.BaseSmallStatement], loops: tuple[Loop, ...]) -> tuple[Loop, ...]:
    for small in smalls:
        if isinstance(small, (cst.Return, cst.Raise)):
            return loops
        if isinstance(small, cst.Break) and loops:
            return loops[-1:]
    return ()


def _is_optimizer_step(call: cst.Call) -> bool:
    if _method_name(call) != "step":
        return False
    recv = dotted_name(call.func.value)  # type: ignore[attr-defined]
    return bool(recv and OPTIMIZER_STEP_RECEIVER.search(recv.rsplit(".", 1)[-1]))


def _calls_and_walrus(small: cst.CSTNode) -> tuple[list[cst.Call], list[cst.NamedExpr]]:
    """Calls and walrus targets of one small statement, in source order (not inside lambdas)."""
    calls: list[cst.Call] = []
    walrus: list[cst.NamedExpr] = []
    stack: list[cst.CSTNode] = [small]
    while stack:
        n = stack.pop()
        if isinstance(n, cst.Lambda):
            continue
        if isinstance(n, cst.Call):
            calls.append(n)
        elif isinstance(n, cst.NamedExpr):
            walrus.append(n)
        stack.extend(reversed(children(n)))
    return calls, walrus


# -- the per-file analysis, and the rules' traversal helper ---------------------


class LoopAnalysis:
    """Per-file: ``context.analysis(LoopAnalysis).facts(scope)``, built once per scope."""

    def __init__(self, context) -> None:
        self.context = context
        self.imports: ImportMap = context.analysis(ImportMap)
        self._facts: dict[int, LoopFacts] = {}

    def facts(self, scope: Scope) -> LoopFacts:
        key = id(scope)
        found = self._facts.get(key)
        if found is None:
            found = self._facts[key] = LoopFacts(scope, self.imports)
        return found


class ScopeTracker:
    """Mixin for rules: the enclosing scope and loop depth during the batched traversal.

    Loop depth counts ``for``/``while`` statements of the current scope (their
    headers included: callers must confirm with :class:`LoopFacts`).
    """

    def visit_Module(self, node: cst.Module) -> None:
        self._scopes: list[list] = [[node, 0]]

    # (libcst registers visitor methods by their ``__name__``: no aliases here.)
    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._scopes.append([node, 0])

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._scopes.pop()

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._scopes.append([node, 0])

    def leave_ClassDef(self, node: cst.ClassDef) -> None:
        self._scopes.pop()

    def visit_Lambda(self, node: cst.Lambda) -> None:
        self._scopes.append([node, 0])

    def leave_Lambda(self, node: cst.Lambda) -> None:
        self._scopes.pop()

    def visit_For(self, node: cst.For) -> None:
        self._scopes[-1][1] += 1

    def leave_For(self, node: cst.For) -> None:
        self._scopes[-1][1] -= 1

    def visit_While(self, node: cst.While) -> None:
        self._scopes[-1][1] += 1

    def leave_While(self, node: cst.While) -> None:
        self._scopes[-1][1] -= 1

    @property
    def current_scope(self) -> Scope:
        return self._scopes[-1][0]

    @property
    def loop_depth(self) -> int:
        return self._scopes[-1][1]

    def scope_name(self) -> str:
        scope = self.current_scope
        return scope.name.value if isinstance(scope, (cst.FunctionDef, cst.ClassDef)) else ""

    def backward_in_loop(
        self, node: cst.Call, accept: Callable[[BackwardCall], bool]
    ) -> tuple[BackwardCall, BackwardSite, LoopFacts] | None:
        """``node`` as a backward call inside a loop of the current scope that ``accept``s it,
        with its site and the scope's facts (built only then); None otherwise."""
        if self.loop_depth == 0:
            return None
        bw = is_backward_call(node, self.context)  # type: ignore[attr-defined]
        if bw is None or not accept(bw):
            return None
        facts = self.context.analysis(LoopAnalysis).facts(self.current_scope)  # type: ignore[attr-defined]
        site = facts.backward_of_call.get(node)
        return None if site is None else (bw, site, facts)


def is_forward_like(name: str) -> bool:
    return bool(FORWARD_METHOD_NAME.match(name))


def is_step_method(name: str) -> bool:
    return bool(STEP_METHOD_NAME.match(name))


# -- the questions GL001-GL003 ask ----------------------------------------------


@dataclass(frozen=True)
class AccumulatedBackward:
    """A backward call on a value that a loop around it accumulates across iterations."""

    site: BackwardSite
    loop: Loop
    key: str  # the accumulated name the backward target depends on
    accumulation: Def


def _maybe_graph(facts: LoopFacts, expr: cst.BaseExpression) -> bool:
    """Not evidently graph-free: ``1``, ``loss.item()``, ``x.size(0)`` are; ``reg()`` is not."""
    if facts.refs(expr):
        return True
    if isinstance(expr, cst.Call):
        method = _method_name(expr)
        return not (
            method in NO_GRAPH_RESULT_METHODS or _resolve(expr.func, facts.imports) in NO_GRAPH_FUNCTIONS
        )
    if isinstance(expr, cst.BinaryOperation):
        return _maybe_graph(facts, expr.left) or _maybe_graph(facts, expr.right)
    if isinstance(expr, cst.UnaryOperation):
        return _maybe_graph(facts, expr.expression)
    return False


def _graphy_increment(facts: LoopFacts, d: Def) -> bool:
    return any(_maybe_graph(facts, inc) for inc in d.increments if d.key not in facts.refs(inc))


def accumulated_backward(
    facts: LoopFacts, site: BackwardSite, is_number: Callable[[Def], bool] | None = None
) -> AccumulatedBackward | None:
    """GL001/GL002: the backward target depends on a name that an enclosing loop accumulates
    and never rebinds fresh (any rebinding, even conditional, counts as a possible reset).

    ``is_number(d)``: does accumulation ``d`` evidently hold a Python number (value kinds from
    ``dataflow``: ``step += n``, ``k = k + c * diff.item()``)? Such a name carries no graph."""
    unit = site.unit
    if not unit.loops or site.bw.target is None:
        return None
    direct = facts.refs(site.bw.target)
    for loop in reversed(unit.loops):
        if any(l is loop for l in unit.exits):
            continue  # ``backward(); break``: it runs once
        for key in sorted(facts.closure_in(direct, loop)):
            accums = [
                d
                for d in facts.defs_in(key, loop, ("accum",))
                if _graphy_increment(facts, d) and not (is_number is not None and is_number(d))
            ]
            if accums and not facts.defs_in(key, loop, ("kill",)):
                return AccumulatedBackward(site, loop, key, accums[0])
    return None


def number_test(flow) -> Callable[[Def], bool]:
    """``is_number`` for :func:`accumulated_backward`, from a ``Dataflow``."""
    from gradlint.static.semantics.dataflow import Kind

    def is_number(d: Def) -> bool:
        node = d.node
        if isinstance(node, cst.AugAssign):
            return (
                flow.kind_of(node.target, at=node) is Kind.NON_TENSOR
                and flow.kind_of(node.value, at=node) is Kind.NON_TENSOR
            )
        if isinstance(node, (cst.Assign, cst.AnnAssign)) and node.value is not None:
            return flow.kind_of(node.value, at=node) is Kind.NON_TENSOR
        return False

    return is_number


def _loop_start(facts: LoopFacts, loop: Loop) -> int:
    for u in facts.units:
        if u.in_loop(loop):
            return u.index
    return -1


def unused_retained_graph(facts: LoopFacts, site: BackwardSite) -> Loop | None:
    """GL002: ``retain_graph=True`` in a loop whose retained graph nothing can reuse.

    Flags only when no other backward runs in or after the loop, and every value the
    target depends on is evidently rebuilt each iteration from fresh data (a data
    loader's items, literals): no graph from before the loop, and none carried from
    the previous iteration, can reach it.
    """
    bw = site.bw
    unit = site.unit
    if bw.retain_graph is not True or bw.create_graph or not unit.loops or bw.target is None:
        return None
    loop = unit.loops[-1]
    start = _loop_start(facts, loop)
    for other in facts.backwards:
        if other is site:
            continue
        if other.unit.index >= start or any(other.unit.in_loop(l) for l in unit.loops):
            return None
    keys = facts.closure_in(facts.refs(bw.target), loop)
    users: dict[str, int] = {}
    for k in keys:
        for d in facts.defs_in(k, loop):
            exprs = d.increments if d.kind == "accum" else (d.value,)
            for e in exprs:
                for r in facts.refs(e):
                    users[r] = min(users.get(r, d.unit.index), d.unit.index)
    for key in keys:
        inside = facts.defs_in(key, loop)
        if inside:
            first_use = users.get(key)
            if first_use is not None or any(d.kind == "accum" for d in inside):
                limit = first_use if first_use is not None else min(d.unit.index for d in inside)
                fresh = [
                    d
                    for d in inside
                    if d.kind == "kill" and d.unit.index <= limit and d.unit.unconditional_in(loop)
                ]
                if not fresh:
                    return None  # carried over from the previous iteration
            for d in inside:
                if isinstance(d.node, cst.For) and not facts.is_data_iterable(d.node.iter):
                    return None  # ``for h in hidden_states``: items may share one graph
            continue
        if not _fresh_outside(facts, key, loop):
            return None
    return loop


def _fresh_outside(facts: LoopFacts, key: str, loop: Loop) -> bool:
    if DATA_ITERABLE_NAME.search(key.rsplit(".", 1)[-1]):
        return True
    defs = facts.defs.get(key, ())
    if not defs or key in facts.params:
        return False
    for d in defs:
        if isinstance(d.node, cst.For):
            if not facts.is_data_iterable(d.node.iter):
                return False
        elif (
            d.kind != "kill"
            or d.value is None
            or facts.refs(d.value)
            or facts.is_graph_value(d.value, d.unit)
        ):
            return False
    return True


def graph_accumulation(facts: LoopFacts, d: Def, scope_name: str) -> list[cst.BaseExpression]:
    """GL003: the graph-carrying increments of an accumulation into something that outlives
    the iteration of a training/evaluation loop (empty when there is nothing to report)."""
    if d.kind != "accum" or is_forward_like(scope_name):
        return []
    key = d.key
    unit = d.unit
    if key.startswith("self."):
        in_steps = any(facts.is_iteration_loop(l) for l in unit.loops)
        if not (in_steps or is_step_method(scope_name) or facts.backwards or facts.optimizer_steps):
            return []
    else:
        steps = [l for l in unit.loops if facts.is_iteration_loop(l)]
        if not steps:
            return []
        for inner in unit.loops[unit.loops.index(steps[-1]) :]:
            if any(k.unit.unconditional_in(inner) for k in facts.defs_in(key, inner, ("kill",))):
                return []  # rebuilt every iteration: it does not outlive one
    if facts.grad_disabled_at(unit):
        return []
    if key in facts.closure_in(facts.backward_target_keys, None):
        return []  # a loss summed over terms: GL001/GL002's business, or correct
    return [inc for inc in d.increments if key not in facts.refs(inc) and facts.is_graph_value(inc, unit)]
