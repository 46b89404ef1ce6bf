"""Per-file summaries of functions and methods: what calling one does, applied at its call sites.

Training code spreads one step over helpers: ``optimize_parameters()`` calls
``self.forward()`` (which stores ``self.fake_B``) and then ``self.backward_D()``
in a loop (which backpropagates ``self.loss_D`` with ``retain_graph=True``). A
rule that reads one body sees none of that. A :class:`FunctionSummary` lists, in
statement order, the *effects* of a function (backward calls and their
``retain_graph``, optimizer steps and ``zero_grad``, module forwards and whether
grad is on, ``self`` attributes written), with the effects of a same-file
function or a ``self.method()`` it calls spliced in at the call site, plus the
kind of value it returns. Recursion and calls nobody can resolve add nothing
but an ``unknown`` effect where they might backpropagate (a ``backward=True``
argument), so that a rule can stay silent.

Built once per file (``ctx.analysis(Summaries)``), lazily per function. Only the
statement structure is indexed (not every expression), which keeps it cheap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import libcst as cst

from gradlint.static.semantics.grad_mode import grad_mode_of
from gradlint.static.semantics.imports import ImportMap, dotted_name
from gradlint.static.semantics.reads import key_of
from gradlint.static.semantics.vocabulary import (
    ARG_KIND_CALLS as _ARG_KIND_CALLS,
    CONTAINER_MUTATORS as _MUTATORS,
    DETACH_METHODS as _DETACH_METHODS,
    FUNCTION_MODULES as _FUNCTION_MODULES,
    FUNCTION_VERBS as _FUNCTION_VERBS,
    LOSS_WORD as _LOSS_NAME,
    METADATA_ATTRS,
    NOT_FORWARD_CALLEES as _NOT_FORWARD,
    NOT_FORWARD_METHODS,
    NOT_OPTIMIZER_WORD as _NOT_OPTIMIZER,
    NUMBER_CALLS as _NUMBER_CALLS,
    OPTIMIZER_WORD as _OPTIMIZER,
    PLAIN_DECORATORS as _PLAIN_DECORATORS,
    SUMMARY_NO_GRAPH_METHODS as _NO_GRAPH_METHODS,
    TO_PYTHON_METHODS,
)
from gradlint.static.semantics.walk import children, walk

# Return / value kinds.
ACTIVATION = "activation"  # carries a graph: a module's forward, or arithmetic on one
LOSS = "loss"  # an activation named or built as a loss
DETACHED = "detached"  # `.detach()`, `.data`, `.numpy()`...
NUMBER = "number"  # a Python number (`.item()`, `float()`, literals)
NONE = "none"
UNKNOWN = "unknown"

_GRAD_OFF = re.compile(r"\b(no_grad|inference_mode|set_grad_enabled\(\s*False)")


@dataclass(frozen=True)
class Backward:
    """One backward call: ``target.backward(...)``, ``torch.autograd.grad(target, ...)``..."""

    call: cst.Call
    target: cst.BaseExpression | None
    retain_graph: bool | None  # True / False as written; None when absent or not a literal
    create_graph: bool
    is_grad: bool  # autograd.grad: returns gradients, accumulates nothing


@dataclass
class Effect:
    """What one statement of a function does; ``index`` orders effects within the function.

    ``kind`` is one of ``backward``, ``step``, ``zero_grad``, ``forward``,
    ``write`` (a ``self`` attribute), ``call`` (a summarised callee, followed by
    its own effects) or ``unknown`` (may backpropagate, cannot tell).
    ``node`` is where it happens in the code that does it (in the callee for an
    applied effect); ``via`` names the call sites it was reached through.
    """

    kind: str
    index: int
    node: cst.CSTNode
    name: str = ""
    backward: Backward | None = None
    value: cst.BaseExpression | None = None
    grad_enabled: bool = True
    via: tuple[cst.Call, ...] = ()
    owner: FunctionSummary | None = None
    conditional: bool = False  # applied from a callee in which it runs under an `if`


@dataclass
class Assignment:
    """``keys`` (names, ``self.x``) get ``value`` at statement ``index``; ``accum`` for `+=`/append."""

    keys: tuple[str, ...]
    value: cst.BaseExpression | None
    index: int
    node: cst.CSTNode
    accum: bool = False
    loop_target: bool = False
    grad_off: bool = False  # made where autograd records nothing


@dataclass
class FunctionSummary:
    qualname: str
    node: cst.FunctionDef | cst.Module
    class_name: str | None
    effects: list[Effect] = field(default_factory=list)
    assignments: list[Assignment] = field(default_factory=list)
    loops: list[tuple[cst.CSTNode, int, int]] = field(default_factory=list)  # (loop, first index, end)
    spans: dict[cst.CSTNode, tuple[int, int]] = field(default_factory=dict)  # statement -> [start, end)
    branches: dict[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)  # index -> enclosing ifs
    returns: str = UNKNOWN
    params: tuple[str, ...] = ()  # the parameter names, in order (`self` included)
    # parameters it calls as modules (`model(x)`, `model.encode(x)`, directly or through a same-file
    # callee it hands them to) -> whether one of those runs has grad on
    runs_params: dict[str, bool] = field(default_factory=dict)
    grad_off: bool = False  # decorated with `@torch.no_grad()` (or the file's own wrapper of it)
    # `return a, b` on every path: the kind of each member (None otherwise)
    return_items: tuple[str, ...] | None = None
    # a generator (`yield` in its body): the kind of what it yields; calling it gives an iterator
    yields: str | None = None
    # every `return` gives one module attribute (`return self.avgG` / `return self.avgG.module`)
    returns_attr: str | None = None
    attr_reads: set[str] = field(default_factory=set)
    complete: bool = True  # False: recursion or an unresolved callee that may backpropagate

    # -- what the issue asks a summary to say -------------------------------------------
    @property
    def backwards(self) -> list[Effect]:
        return [e for e in self.effects if e.kind == "backward"]

    @property
    def steps(self) -> set[str]:
        return {e.name for e in self.effects if e.kind == "step"}

    @property
    def zeroes(self) -> set[str]:
        return {e.name for e in self.effects if e.kind == "zero_grad"}

    @property
    def forward_with_grad(self) -> bool:
        return any(e.kind == "forward" and e.grad_enabled for e in self.effects)

    @property
    def attr_writes(self) -> dict[str, Effect]:
        return {e.name: e for e in self.effects if e.kind == "write"}

    def loop_around(self, index: int) -> tuple[cst.CSTNode, int, int] | None:
        """The innermost loop of this function whose body holds statement ``index``."""
        best = None
        for loop in self.loops:
            if loop[1] < index < loop[2] and (best is None or loop[1] > best[1]):
                best = loop
        return best

    def exclusive(self, i: int, j: int) -> bool:
        """Do statements ``i`` and ``j`` sit in different branches of one ``if`` (never both run)?"""
        a = dict(self.branches.get(i, ()))
        return any(a.get(if_index, branch) != branch for if_index, branch in self.branches.get(j, ()))

    def conditional(self, i: int, since: int = -1) -> bool:
        """Is statement ``i`` under an ``if`` that starts after statement ``since``?"""
        return any(if_index > since for if_index, _ in self.branches.get(i, ()))

    def defs_of(self, key: str) -> list[Assignment]:
        return [a for a in self.assignments if key in a.keys]

    def closure(self, expr, refs_of) -> set[str]:
        """The names ``expr`` reads (``refs_of`` picks them out of an expression) and, transitively, those the
        function assigns them from (loop targets end the chain: they are fresh each iteration)."""
        out: set[str] = set()
        todo = list(refs_of(expr))
        while todo:
            key = todo.pop()
            if key in out:
                continue
            out.add(key)
            for a in self.defs_of(key):
                if not a.loop_target:
                    todo.extend(refs_of(a.value))
        return out


def backward_of(call: cst.Call) -> Backward | None:
    """The backward call ``call`` is, if any."""
    func = call.func
    if not isinstance(func, cst.Attribute):
        if isinstance(func, cst.Name) and func.value == "grad" and call.args:
            return _make(call, call.args[0].value, True)
        return None
    attr = func.attr.value
    if attr == "backward":
        receiver = func.value
        root = dotted_name(receiver)
        if root in ("torch.autograd", "autograd"):
            return _make(call, call.args[0].value if call.args else None, False)
        if root and re.search(r"(accelerator|fabric|engine|deepspeed)$", root) and call.args:
            return _make(call, call.args[0].value, False)
        if (
            isinstance(receiver, cst.Call)
            and isinstance(receiver.func, cst.Attribute)
            and receiver.func.attr.value == "scale"
            and receiver.args
        ):
            return _make(call, receiver.args[0].value, False)
        return _make(call, receiver, False)
    if attr == "manual_backward" and call.args:
        return _make(call, call.args[0].value, False)
    if attr == "grad" and dotted_name(func.value) in ("torch.autograd", "autograd") and call.args:
        return _make(call, call.args[0].value, True)
    return None


def _make(call: cst.Call, target, is_grad: bool) -> Backward:
    retain = create = None
    for arg in call.args:
        if arg.keyword is None:
            continue
        value = arg.value.value if isinstance(arg.value, cst.Name) else None
        literal = True if value == "True" else False if value == "False" else None
        if arg.keyword.value == "retain_graph":
            retain = literal
        elif arg.keyword.value == "create_graph":
            create = literal
    if retain is None and create is True:
        retain = True  # retain_graph defaults to create_graph
    return Backward(call, target, retain, bool(create), is_grad)


def _target_keys(target: cst.BaseExpression) -> list[str]:
    if isinstance(target, (cst.Tuple, cst.List)):
        out = []
        for el in target.elements:
            out.extend(_target_keys(el.value))
        return out
    if isinstance(target, cst.StarredElement):
        return _target_keys(target.value)
    k = key_of(target)
    return [k] if k else []


def optimizer_name(call: cst.Call, method: str) -> str | None:
    """``opt`` for ``opt.step()`` / ``opt.zero_grad()`` / ``scaler.step(opt)``; None if not an optimizer."""
    func = call.func
    if not isinstance(func, cst.Attribute) or func.attr.value != method:
        return None
    name = dotted_name(func.value)
    if name is None:
        return None
    last = name.rsplit(".", 1)[-1]
    if method == "step" and "scaler" in last.lower() and call.args:
        return dotted_name(call.args[0].value) or name
    if method == "zero_grad" and not _NOT_OPTIMIZER.search(last):
        return name  # `model.zero_grad()` clears the same gradients
    if _OPTIMIZER.search(last) and not _NOT_OPTIMIZER.search(last):
        return name
    return None


class Summaries:
    """Every function and method of one file, summarised on first request."""

    def __init__(self, ctx) -> None:
        self.module: cst.Module = ctx.module if hasattr(ctx, "module") else ctx
        self._functions: dict[str, cst.FunctionDef] = {}  # top-level functions
        self._methods: dict[tuple[str, str], cst.FunctionDef] = {}
        self._class_of: dict[cst.FunctionDef, str | None] = {}
        self._nested: dict[cst.FunctionDef, cst.FunctionDef] = {}  # nested def -> enclosing def
        self._done: dict[cst.FunctionDef, FunctionSummary] = {}
        self._busy: set[cst.FunctionDef] = set()
        self._callers: dict[cst.FunctionDef, list[tuple[FunctionSummary, Effect]]] | None = None
        self.imported_functions: set[str] = set()
        self.imports = ctx.analysis(ImportMap) if hasattr(ctx, "analysis") else None
        for stmt in self.module.body:
            if isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    if isinstance(small, cst.ImportFrom) and small.module is not None:
                        root = dotted_name(small.module) or ""
                        if root.split(".")[0] in _FUNCTION_MODULES and not isinstance(
                            small.names, cst.ImportStar
                        ):
                            self.imported_functions.update(
                                (a.asname.name.value if a.asname else dotted_name(a.name) or "")
                                for a in small.names
                            )
            if isinstance(stmt, cst.FunctionDef):
                self._functions[stmt.name.value] = stmt
                self._class_of[stmt] = None
                self._index_nested(stmt, None)
            elif isinstance(stmt, cst.ClassDef):
                for item in stmt.body.body:
                    if isinstance(item, cst.FunctionDef):
                        self._methods[(stmt.name.value, item.name.value)] = item
                        self._class_of[item] = stmt.name.value
                        self._index_nested(item, stmt.name.value)

    def _index_nested(self, fn: cst.FunctionDef, cls: str | None) -> None:
        for n in walk(fn.body):
            if isinstance(n, cst.FunctionDef):
                self._nested.setdefault(n, fn)
                self._class_of.setdefault(n, cls)

    # -- lookups ----------------------------------------------------------------------
    def functions(self) -> list[cst.FunctionDef | cst.Module]:
        """Every function and method, and the module itself (a script's top-level code)."""
        return [*self._class_of, self.module]

    def enclosing(self, fn: cst.FunctionDef) -> cst.FunctionDef | None:
        """The function a nested ``def`` (an optimizer closure) is defined in."""
        return self._nested.get(fn)

    def of(self, fn: cst.FunctionDef) -> FunctionSummary:
        done = self._done.get(fn)
        if done is not None:
            return done
        cls = self._class_of.get(fn)
        name = "<module>" if isinstance(fn, cst.Module) else fn.name.value
        summary = FunctionSummary(f"{cls}.{name}" if cls else name, fn, cls)
        self._busy.add(fn)
        try:
            _Builder(self, summary).run()
        finally:
            self._busy.discard(fn)
        self._done[fn] = summary
        return summary

    def resolve(self, call: cst.Call, class_name: str | None) -> cst.FunctionDef | None:
        """The same-file definition ``call`` runs: ``self.m(...)`` in a class, or a top-level ``f(...)``."""
        func = call.func
        if isinstance(func, cst.Name):
            return self._functions.get(func.value)
        if (
            class_name is not None
            and isinstance(func, cst.Attribute)
            and isinstance(func.value, cst.Name)
            and func.value.value == "self"
        ):
            return self._methods.get((class_name, func.attr.value))
        return None

    def is_forward(self, call: cst.Call, params: set[str] | frozenset[str] = frozenset()) -> bool:
        """Does ``call`` run a module (``model(x)``, ``self.net(x)``, ``netG.forward(x)``)?

        Not a same-file function, a class, or a function imported from math/numpy/torch.
        """
        func = call.func
        if isinstance(func, cst.Name) and (
            func.value in self.imported_functions or func.value in self._functions
        ):
            return False
        return _is_forward(call, set(params))

    def frozen_attrs(self, class_name: str) -> set[str]:
        """The module attributes (``self.avgG``) whose parameters some method of the class freezes
        (``requires_grad = False``): an in-place edit of them (a moving average) is no leaf edit."""
        cache = self.__dict__.setdefault("_frozen", {})
        if class_name not in cache:
            out: set[str] = set()
            for (cls, _name), fn in self._methods.items():
                if cls == class_name:
                    out |= _frozen_in(fn)
            cache[class_name] = out
        return cache[class_name]

    def module_attr_of(self, expr: cst.BaseExpression, class_name: str | None) -> str | None:
        """The ``self.x`` module attribute ``expr`` gives: ``self.x``, ``self.x.module``, or a method of
        the class that returns one of them (``self.getOriginalAvgG()``)."""
        attr = _self_module_attr(expr)
        if attr is not None:
            return attr
        if isinstance(expr, cst.Call) and class_name is not None:
            callee = self.resolve(expr, class_name)
            if callee is not None and callee not in self._busy:
                return self.of(callee).returns_attr
        return None

    def grad_mode(self, expr: cst.BaseExpression) -> bool | None:
        """The grad mode a context manager or decorator sets (the file's own wrappers included)."""
        if self.imports is not None:
            return grad_mode_of(expr, self.imports)
        return False if _GRAD_OFF.search(_code(expr)) else None

    def decorated_grad_off(self, fn: cst.FunctionDef) -> bool:
        """Is ``fn`` decorated with ``@torch.no_grad()`` / ``@torch.inference_mode()`` or a wrapper of them?"""
        return any(self.grad_mode(d.decorator) is False for d in fn.decorators)

    def callers(self, fn: cst.FunctionDef) -> list[tuple[FunctionSummary, Effect]]:
        """Every summarised function that calls ``fn`` directly, with the ``call`` effect."""
        if self._callers is None:
            self._callers = {}
            for other in self.functions():
                summary = self.of(other)
                for e in summary.effects:
                    if e.kind == "call" and not e.via and isinstance(e.value, cst.FunctionDef):
                        self._callers.setdefault(e.value, []).append((summary, e))
        return self._callers.get(fn, [])


class _Builder:
    """Walks one function's statements in order and records its effects."""

    def __init__(self, owner: Summaries, summary: FunctionSummary) -> None:
        self.owner = owner
        self.s = summary
        self.counter = 0
        self.returns: list[str] = []
        self.items: list[tuple[str, ...] | None] = []  # per `return`: its tuple members' kinds
        self.attrs: list[str | None] = []  # per `return`: the `self.x` it gives, if any
        self.yields: list[str] = []
        self.generator = False
        self.path: list[tuple[int, int]] = []  # the enclosing `if`s: (index of the if, 0 body / 1 else)

    def run(self) -> None:
        fn = self.s.node
        if isinstance(fn, cst.Module):  # a script's top level is one more "function"
            self.params = set()
            self.block(list(fn.body), grad_off=False)
        else:
            self.params = {p.name.value for p in fn.params.params + fn.params.kwonly_params}
            self.s.params = tuple(
                p.name.value for p in (*fn.params.posonly_params, *fn.params.params, *fn.params.kwonly_params)
            )
            self.s.grad_off = self.owner.decorated_grad_off(fn)
            self.block(fn.body, grad_off=self.s.grad_off)
        self.s.returns = _merge(self.returns)
        if self.attrs and None not in self.attrs and len(set(self.attrs)) == 1:
            self.s.returns_attr = self.attrs[0]
        if self.items and all(i is not None and len(i) == len(self.items[0]) for i in self.items):
            self.s.return_items = tuple(_merge([i[k] for i in self.items]) for k in range(len(self.items[0])))
        if self.generator:
            self.s.yields = _merge(self.yields) if self.yields else UNKNOWN
            self.s.returns = UNKNOWN  # what the generator returns is not what calling it gives
            self.s.return_items = None
        if isinstance(fn, cst.FunctionDef) and (fn.asynchronous is not None or _wrapped(fn, self.owner)):
            # a coroutine, or a decorator (`@contextmanager`, `@jit`...) that may change what calling gives
            self.s.returns, self.s.return_items, self.s.yields = UNKNOWN, None, None

    # -- statements ------------------------------------------------------------------
    def block(self, body, grad_off: bool) -> None:
        stmts = body.body if isinstance(body, cst.BaseSuite) and hasattr(body, "body") else body
        if isinstance(stmts, cst.SimpleStatementSuite):
            stmts = stmts.body
        for stmt in stmts if isinstance(stmts, (list, tuple)) else (stmts,):
            self.stmt(stmt, grad_off)

    def stmt(self, stmt: cst.CSTNode, grad_off: bool) -> None:
        start = self.counter
        self.counter += 1
        if self.path:
            self.s.branches[start] = tuple(self.path)
        if isinstance(stmt, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
            for small in stmt.body:
                self.small(small, start, grad_off)
        elif isinstance(stmt, cst.BaseSmallStatement):
            self.small(stmt, start, grad_off)
        elif isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            pass  # runs when called, summarised on its own
        elif isinstance(stmt, cst.With):
            off = grad_off
            for item in stmt.items:
                self.expr(item.item, start, off)  # `with A, B:` is `with A: with B:`
                mode = self.owner.grad_mode(item.item)
                if mode is not None:
                    off = not mode
                elif _GRAD_OFF.search(_code(item.item)):
                    off = True  # `torch.no_grad() if cond else nullcontext()`: maybe off, so not "with grad"
                if item.asname is not None:
                    self.assign(item.asname.name, item.item, start, stmt)
            self.block(stmt.body, off)
        elif isinstance(stmt, (cst.For, cst.While)):
            if isinstance(stmt, cst.For):
                self.expr(stmt.iter, start, grad_off)
                self.s.assignments.append(
                    Assignment(tuple(_target_keys(stmt.target)), stmt.iter, start, stmt, loop_target=True)
                )
            else:
                self.expr(stmt.test, start, grad_off)
            self.block(stmt.body, grad_off)
            end = self.counter
            if stmt.orelse is not None:
                self.block(stmt.orelse.body, grad_off)
            self.s.loops.append((stmt, start, end))
        elif isinstance(stmt, cst.If):
            self.expr(stmt.test, start, grad_off)
            self.path.append((start, 0))
            self.block(stmt.body, grad_off)
            self.path[-1] = (start, 1)
            orelse = stmt.orelse
            if isinstance(orelse, cst.If):
                self.stmt(orelse, grad_off)
            elif orelse is not None:
                self.block(orelse.body, grad_off)
            self.path.pop()
        elif isinstance(stmt, cst.Try) or type(stmt).__name__ == "TryStar":
            self.block(stmt.body, grad_off)
            for handler in stmt.handlers:
                self.block(handler.body, grad_off)
            if stmt.orelse is not None:
                self.block(stmt.orelse.body, grad_off)
            if stmt.finalbody is not None:
                self.block(stmt.finalbody.body, grad_off)
        elif isinstance(stmt, cst.Match):
            self.expr(stmt.subject, start, grad_off)
            for case in stmt.cases:
                self.block(case.body, grad_off)
        else:
            for child in children(stmt):
                if isinstance(child, cst.BaseExpression):
                    self.expr(child, start, grad_off)
        self.s.spans[stmt] = (start, self.counter)

    def small(self, small: cst.CSTNode, index: int, grad_off: bool) -> None:
        if isinstance(small, cst.Assign):
            self.expr(small.value, index, grad_off)
            for t in small.targets:
                self.assign(t.target, small.value, index, small, grad_off=grad_off)
        elif isinstance(small, cst.AnnAssign):
            if small.value is not None:
                self.expr(small.value, index, grad_off)
                self.assign(small.target, small.value, index, small, grad_off=grad_off)
        elif isinstance(small, cst.AugAssign):
            self.expr(small.value, index, grad_off)
            self.assign(small.target, small.value, index, small, accum=True, grad_off=grad_off)
        elif isinstance(small, cst.Return):
            if small.value is not None:
                self.expr(small.value, index, grad_off)
                self.returns.append(_no_graph(self.kind(small.value), grad_off))
                value = small.value
                self.attrs.append(_self_module_attr(value))
                if isinstance(value, cst.Tuple) and not any(
                    isinstance(el, cst.StarredElement) for el in value.elements
                ):
                    self.items.append(
                        tuple(_no_graph(self.kind(el.value), grad_off) for el in value.elements)
                    )
                else:
                    self.items.append(None)
        else:
            for child in children(small):
                if isinstance(child, cst.BaseExpression):
                    self.expr(child, index, grad_off)

    def assign(self, target, value, index: int, node, accum: bool = False, grad_off: bool = False) -> None:
        keys = tuple(_target_keys(target))
        if not keys:
            return
        if isinstance(target, cst.Subscript) or (
            isinstance(target, cst.Attribute) and not (keys[0].startswith("self.") and _is_self_attr(target))
        ):
            accum = True  # `d[k] = v`, `args.epoch = v`: a change to `d`, `args`
        self.s.assignments.append(Assignment(keys, value, index, node, accum=accum, grad_off=grad_off))
        if isinstance(target, cst.Attribute) and target.attr.value == "grad":
            # `p.grad = None`: clears gradients like zero_grad
            self.s.effects.append(Effect("zero_grad", index, node, name=_code(target.value), owner=self.s))
        for k in keys:
            if k.startswith("self."):
                self.s.effects.append(Effect("write", index, node, name=k, value=value, owner=self.s))

    # -- expressions -----------------------------------------------------------------
    def expr(self, node: cst.CSTNode, index: int, grad_off: bool) -> None:
        for n in walk(node, into_scopes=False):
            if isinstance(n, cst.Attribute) and isinstance(n.value, cst.Name) and n.value.value == "self":
                self.s.attr_reads.add(f"self.{n.attr.value}")
            if isinstance(n, cst.Call):
                self.call(n, index, grad_off)
            elif isinstance(n, cst.Yield):
                self.generator = True
                value = n.value
                if isinstance(value, cst.From) or value is None:
                    self.yields.append(UNKNOWN if value is not None else NONE)
                else:
                    self.yields.append(_no_graph(self.kind(value), grad_off))

    def call(self, call: cst.Call, index: int, grad_off: bool) -> None:
        s = self.s
        bw = backward_of(call)
        if bw is not None:
            s.effects.append(Effect("backward", index, call, backward=bw, grad_enabled=not grad_off, owner=s))
            return
        for method, kind in (("step", "step"), ("zero_grad", "zero_grad")):
            name = optimizer_name(call, method)
            if name is not None:
                s.effects.append(Effect(kind, index, call, name=name, owner=s))
                if kind == "step" and call.args:  # `opt.step(closure)`: the closure runs here
                    for arg in call.args:
                        self._maybe_apply(arg.value, call, index, grad_off)
                return
        func = call.func
        if (
            isinstance(func, cst.Attribute)
            and func.attr.value in ("zero_", "detach_")
            and ".grad" in _code(func.value)
        ):
            s.effects.append(Effect("zero_grad", index, call, name=_code(func.value), owner=s))
            return
        if isinstance(func, cst.Attribute) and func.attr.value in _MUTATORS and call.args:
            receiver = key_of(func.value)
            if receiver:  # `feats.append(model(x))` adds to `feats`
                s.assignments.append(Assignment((receiver,), call, index, call, accum=True))
        callee = self.owner.resolve(call, s.class_name)
        if callee is not None:
            self._apply(callee, call, index, grad_off)
            # `self.train_step(batch)` is not a module's forward
            return
        if any(
            a.keyword is not None and a.keyword.value == "backward" and _code(a.value) == "True"
            for a in call.args
        ):
            s.effects.append(Effect("unknown", index, call, owner=s))
            s.complete = False
            return
        ran = _param_run(call, self.params)
        if ran is not None:
            s.runs_params[ran] = s.runs_params.get(ran, False) or not grad_off
        if self.owner.is_forward(call, self.params):
            s.effects.append(
                Effect("forward", index, call, name=_code(call.func), grad_enabled=not grad_off, owner=s)
            )

    def _maybe_apply(self, value, call: cst.Call, index: int, grad_off: bool) -> None:
        if isinstance(value, cst.Name):
            body = self.s.node if isinstance(self.s.node, cst.Module) else self.s.node.body
            for n in walk(body, into_scopes=True):
                if isinstance(n, cst.FunctionDef) and n.name.value == value.value:
                    self._apply(n, call, index, grad_off)
                    return

    def _apply(self, callee: cst.FunctionDef, call: cst.Call, index: int, grad_off: bool = False) -> None:
        s = self.s
        if callee in self.owner._busy or _is_stub(callee):
            s.effects.append(Effect("unknown", index, call, owner=s))  # recursion, or a body left out
            s.complete = False
            return
        inner = self.owner.of(callee)
        s.effects.append(Effect("call", index, call, name=inner.qualname, value=callee, owner=s))
        if not inner.complete:
            s.complete = False
        for param, arg in bind_arguments(inner, call):
            if param in inner.runs_params and isinstance(arg, cst.Name) and arg.value in self.params:
                on = inner.runs_params[param] and not grad_off
                s.runs_params[arg.value] = s.runs_params.get(arg.value, False) or on
        for e in inner.effects:
            s.effects.append(
                Effect(
                    e.kind,
                    index,
                    e.node,
                    name=e.name,
                    backward=e.backward,
                    value=e.value,
                    grad_enabled=e.grad_enabled and not grad_off,  # the caller's no_grad holds in the callee
                    via=(call, *e.via),
                    owner=e.owner,
                    conditional=e.conditional or inner.conditional(e.index),
                )
            )

    # -- value kinds -----------------------------------------------------------------
    def kind(self, node: cst.BaseExpression) -> str:
        return value_kind(node, self.s, self.owner)


def value_kind(node: cst.BaseExpression, summary: FunctionSummary, owner: Summaries, depth: int = 0) -> str:
    """What ``node`` holds: ``activation``, ``loss``, ``detached``, ``number``, ``none`` or ``unknown``."""
    if depth > 8:
        return UNKNOWN
    if isinstance(node, (cst.Integer, cst.Float, cst.Imaginary)):
        return NUMBER
    if isinstance(node, cst.Name):
        if node.value == "None":
            return NONE
        defs = [a for a in summary.assignments if node.value in a.keys and not a.loop_target]
        kinds = set()
        for d in defs:
            value = d.value
            if (
                d.accum
                and isinstance(value, cst.Call)
                and isinstance(value.func, cst.Attribute)
                and value.args
            ):
                if value.func.attr.value in _MUTATORS:
                    value = value.args[0].value  # `xs.append(v)`: a container of what `v` is
            if isinstance(value, (cst.List, cst.Tuple, cst.Dict)) and not getattr(value, "elements", True):
                continue  # `xs = []`: says nothing yet
            if isinstance(value, cst.Dict) and not value.elements:
                continue
            kind = value_kind(value, summary, owner, depth + 1) if value is not None else UNKNOWN
            kinds.add(_no_graph(kind, d.grad_off))
        if len(kinds) == 1:
            return kinds.pop()
        if kinds and kinds <= {ACTIVATION, LOSS}:
            return LOSS if LOSS in kinds else ACTIVATION
        return UNKNOWN
    if isinstance(node, cst.Attribute):
        if node.attr.value == "data":
            return DETACHED
        if node.attr.value in METADATA_ATTRS:
            return UNKNOWN
        if isinstance(node.value, cst.Name) and node.value.value == "self":
            return _self_attr_kind(node, summary, owner, depth)
        return _graph_only(value_kind(node.value, summary, owner, depth + 1))  # `out.logits`
    if isinstance(node, cst.Subscript):
        return _graph_only(value_kind(node.value, summary, owner, depth + 1))  # `out[0]`, `logits[:, -1]`
    if isinstance(node, cst.UnaryOperation) and not isinstance(node.operator, cst.Not):
        return value_kind(node.expression, summary, owner, depth + 1)
    if isinstance(node, cst.Call):
        func = node.func
        if isinstance(func, cst.Name) and func.value in _NUMBER_CALLS:
            return NUMBER
        if (
            isinstance(func, cst.Name)
            and func.value in _ARG_KIND_CALLS
            and func.value not in owner._functions
        ):
            kinds = {value_kind(a.value, summary, owner, depth + 1) for a in node.args if a.keyword is None}
            return _merge(list(kinds)) if kinds and UNKNOWN not in kinds else UNKNOWN
        if isinstance(func, cst.Attribute):
            method = func.attr.value
            if method in ("item", "tolist"):
                return NUMBER
            if method in _DETACH_METHODS or method == "numpy":
                return DETACHED
            chain = _code(func.value)
            if ".data" in chain + "." or ".detach()" in chain:
                return DETACHED
            receiver = value_kind(func.value, summary, owner, depth + 1)
            if receiver in (ACTIVATION, LOSS, DETACHED):
                if method in TO_PYTHON_METHODS or method in _NO_GRAPH_METHODS:
                    return DETACHED  # `out.argmax(1)`: no graph
                return receiver  # `model(x).sum()`, `loss.mean()`: the graph goes on
        callee = owner.resolve(node, summary.class_name)
        if callee is not None:
            if callee in owner._busy:
                return UNKNOWN
            return owner.of(callee).returns
        if isinstance(func, cst.Name) and not _calls_a_network(func.value, summary, owner):
            return UNKNOWN  # `build(cfg)`, `resnet18()`: an unknown function, maybe a factory
        if owner.is_forward(node):
            name = _code(func)
            return LOSS if _LOSS_NAME.search(name) else ACTIVATION
        return UNKNOWN
    if isinstance(node, cst.BinaryOperation):
        kinds = {
            value_kind(node.left, summary, owner, depth + 1),
            value_kind(node.right, summary, owner, depth + 1),
        }
        if LOSS in kinds:
            return LOSS
        if ACTIVATION in kinds:
            return ACTIVATION
        if kinds == {NUMBER}:
            return NUMBER
        return UNKNOWN
    return UNKNOWN


def _self_module_attr(value: cst.BaseExpression) -> str | None:
    """``self.x`` for ``self.x`` or its wrapped module (``self.x.module``, ``self.x._orig_mod``)."""
    if isinstance(value, cst.Attribute) and value.attr.value in ("module", "_orig_mod"):
        value = value.value
    if isinstance(value, cst.Attribute) and _is_self_attr(value):
        return f"self.{value.attr.value}"
    return None


def _frozen_in(fn: cst.FunctionDef) -> set[str]:
    """``self.x`` whose parameters ``fn`` freezes: ``for p in self.x.parameters(): p.requires_grad = False``
    or ``self.x.requires_grad_(False)``."""
    out: set[str] = set()
    for node in walk(fn.body):
        if (
            isinstance(node, cst.For)
            and isinstance(node.target, cst.Name)
            and isinstance(node.iter, cst.Call)
        ):
            func = node.iter.func
            if not (isinstance(func, cst.Attribute) and func.attr.value == "parameters"):
                continue
            owner = _self_module_attr(func.value)
            loop_var = node.target.value
            if owner is None:
                continue
            for inner in walk(node.body):
                if isinstance(inner, cst.Assign) and _is_false(inner.value):
                    for t in inner.targets:
                        target = t.target
                        if (
                            isinstance(target, cst.Attribute)
                            and target.attr.value == "requires_grad"
                            and isinstance(target.value, cst.Name)
                            and target.value.value == loop_var
                        ):
                            out.add(owner)
                elif _requires_grad_false(inner) and _code(inner.func.value) == loop_var:
                    out.add(owner)
        elif _requires_grad_false(node):
            owner = _self_module_attr(node.func.value)
            if owner is not None:
                out.add(owner)
    return out


def _is_false(node) -> bool:
    return isinstance(node, cst.Name) and node.value == "False"


def _requires_grad_false(node) -> bool:
    return (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Attribute)
        and node.func.attr.value == "requires_grad_"
        and len(node.args) == 1
        and _is_false(node.args[0].value)
    )


def _no_graph(kind: str, grad_off: bool) -> str:
    """A forward's output made where autograd records nothing carries no graph."""
    return DETACHED if grad_off and kind in (ACTIVATION, LOSS) else kind


def bind_arguments(summary: FunctionSummary, call: cst.Call):
    """(parameter, argument expression) pairs of ``call`` to the summarised function."""
    params = list(summary.params)
    if params[:1] == ["self"] and isinstance(call.func, cst.Attribute):
        params = params[1:]
    i = 0
    for arg in call.args:
        if arg.star:
            return  # `f(*args)`: positions unknown from here on
        if arg.keyword is not None:
            if arg.keyword.value in params:
                yield arg.keyword.value, arg.value
        elif i < len(params):
            yield params[i], arg.value
            i += 1


def _param_run(call: cst.Call, params: set[str]) -> str | None:
    """The parameter ``call`` runs as a module (``model(x)``, ``model.encode(x)``, ``model.forward(x)``)."""
    if not call.args:
        return None
    func = call.func
    if isinstance(func, cst.Name):
        return func.value if func.value in params and func.value != "self" else None
    if (
        isinstance(func, cst.Attribute)
        and isinstance(func.value, cst.Name)
        and func.value.value in params
        and func.value.value != "self"
        and func.attr.value not in NOT_FORWARD_METHODS
    ):
        return func.value.value
    return None


def _calls_a_network(name: str, summary: FunctionSummary, owner: Summaries) -> bool:
    """Is the value of ``name(...)`` evidently a network's output: a module passed in
    (``model(x)`` with ``model`` a parameter), a name that says so (``netG``, ``encoder``,
    ``criterion``, ``loss_fn``), not a factory (``get_model``) or a same-file function?"""
    if name in summary.params:
        return True
    if name in owner.imported_functions or name in owner._functions or _FUNCTION_VERBS.match(name):
        return False
    from gradlint.static.semantics.dataflow import is_model_name

    return is_model_name(name) or bool(_LOSS_NAME.search(name))


def _graph_only(kind: str) -> str:
    """An attribute or item of a value: known only when the value carries a graph (model outputs)."""
    return kind if kind in (ACTIVATION, LOSS) else UNKNOWN


def _self_attr_kind(node: cst.Attribute, summary: FunctionSummary, owner, depth: int) -> str:
    """``self.x`` as this method last wrote it (``self.loss = ...; return self.loss``)."""
    key = f"self.{node.attr.value}"
    defs = [a for a in summary.assignments if key in a.keys and not a.accum and not a.loop_target]
    if len(defs) != 1 or defs[0].value is None:
        return UNKNOWN
    return value_kind(defs[0].value, summary, owner, depth + 1)


# Tensor methods whose result carries no graph (besides the TO_PYTHON ones).


def _merge(kinds: list[str]) -> str:
    """The kind of a value that is one of ``kinds`` (several returns, several yields)."""
    distinct = set(kinds)
    if not distinct:
        return NONE
    if len(distinct) == 1:
        return distinct.pop()
    if distinct <= {ACTIVATION, LOSS}:
        return ACTIVATION
    return UNKNOWN


def _wrapped(fn: cst.FunctionDef, owner: Summaries) -> bool:
    """Is ``fn`` decorated with something that may change what calling it gives?"""
    for dec in fn.decorators:
        expr = dec.decorator.func if isinstance(dec.decorator, cst.Call) else dec.decorator
        if (dotted_name(expr) or "") not in _PLAIN_DECORATORS and owner.grad_mode(dec.decorator) is None:
            return True
    return False


def _is_stub(fn: cst.FunctionDef) -> bool:
    """A body slicing left out (a lone string or ``pass``): what it does is unknown here."""
    body = fn.body.body if isinstance(fn.body, cst.IndentedBlock) else fn.body.body
    if len(body) != 1:
        return False
    stmt = body[0]
    small = stmt.body[0] if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 else stmt
    if isinstance(small, cst.Pass):
        return True
    return isinstance(small, cst.Expr) and isinstance(small.value, (cst.SimpleString, cst.ConcatenatedString))


def _is_self_attr(node: cst.Attribute) -> bool:
    return isinstance(node.value, cst.Name) and node.value.value == "self"


def _is_forward(call: cst.Call, params: set[str]) -> bool:
    """Does ``call`` look like running a module: ``model(x)``, ``self.net(x)``, ``netG.forward(x)``?"""
    func = call.func
    if isinstance(func, cst.Name):
        name = func.value
        if name in params:
            return True
        # `Adam(...)`, `Generator()`: a constructor; `G(z)`, `netD(x)`, `model(x)`: a module
        constructor = name[:1].isupper() and any(c.islower() for c in name)
        return name not in _NOT_FORWARD and not constructor and not _FUNCTION_VERBS.match(name)
    if isinstance(func, cst.Attribute):
        if func.attr.value == "forward":
            return True
        inner = func.value
        if isinstance(inner, cst.Name) and inner.value == "self":
            return True  # resolved methods were handled before: this is a sub-module
        if (
            isinstance(inner, cst.Attribute)
            and isinstance(inner.value, cst.Name)
            and inner.value.value == "self"
        ):
            return not func.attr.value.startswith(("get_", "compute_")) and func.attr.value[:1].islower()
    return False


def _code(node: cst.CSTNode) -> str:
    return cst.Module(body=[]).code_for_node(node)


# -- for slicing: keep the callers of helpers that hold the evidence ------------------------

_DEF_LINE = re.compile(r"^([ \t]*)(?:async[ \t]+)?def[ \t]+(\w+)[ \t]*\(", re.M)
_helper_cache: list = [None, {}]


def _helper_texts(file_text: str) -> dict[str, list[str]]:
    """Each ``def`` of the file by name, with its text (up to the next line indented no deeper)."""
    if _helper_cache[0] is file_text:
        return _helper_cache[1]
    out: dict[str, list[str]] = {}
    matches = list(_DEF_LINE.finditer(file_text))
    for i, m in enumerate(matches):
        indent = len(m.group(1).expandtabs())
        end = len(file_text)
        for later in matches[i + 1 :]:
            if len(later.group(1).expandtabs()) <= indent:
                end = later.start()
                break
        out.setdefault(m.group(2), []).append(file_text[m.start() : end])
    _helper_cache[:] = [file_text, out]
    return out


def _called_names(text: str) -> set[str]:
    """Names called as ``f(`` or ``self.f(`` (not ``obj.f(``): a scan from each ``(``, no regex."""
    out: set[str] = set()
    i = text.find("(")
    while i != -1:
        j = i
        while j > 0 and text[j - 1] in " \t":
            j -= 1
        k = j
        while k > 0 and (text[k - 1].isalnum() or text[k - 1] == "_"):
            k -= 1
        if (
            k < j
            and not text[k].isdigit()
            and (k == 0 or text[k - 1] != "." or text[max(k - 5, 0) : k] == "self.")
        ):
            out.add(text[k:j])
        i = text.find("(", i + 1)
    return out


def calls_matching_helper(unit_text: str, file_text: str, accept, depth: int = 3) -> bool:
    """Does ``unit_text`` call (``f(...)``, ``self.f(...)``), directly or through same-file
    helpers up to ``depth`` deep, a function of ``file_text`` whose text ``accept`` takes?

    For ``Rule.could_match_unit``: a loop in ``train()`` whose evidence sits in the
    ``train_step()`` it calls must be kept by slicing too.
    """
    helpers = _helper_texts(file_text)
    seen: set[str] = set()
    frontier = _called_names(unit_text) & helpers.keys()
    for _ in range(depth):
        nxt: set[str] = set()
        for name in frontier - seen:
            seen.add(name)
            for text in helpers[name]:
                if accept(text):
                    return True
                nxt |= _called_names(text) & helpers.keys()
        frontier = nxt
        if not frontier:
            break
    return False
