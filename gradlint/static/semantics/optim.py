"""Training-loop structure: what a loop body does to gradients, in what order.

One walk per file turns each scope (function body, or module top level) into an
ordered list of *events*: backward calls, optimizer ``step()`` (and
``scaler.step(opt)``), ``zero_grad()`` of an optimizer or a model, other ways of
clearing gradients (``p.grad = None``, ``p.grad.zero_()``, helpers whose name
says ``zero_grad`` or whose body in this file clears), ``.eval()``/``.train()``
switches, and every other call, plus the assignments between them.  Each event
knows the statement path that leads to it, so rules can ask structural
questions without a parent lookup:

- which loops and ``if`` guards enclose it (is the step under
  ``if (i + 1) % accum == 0``?),
- which ``with`` blocks enclose it (grad mode, ``accelerator.accumulate``),
- can control flow go from one event to a later one within an iteration
  (``reaches``): not across exclusive ``if``/``else`` branches, not past a
  ``continue``/``break``/``return``/``raise`` that ends the block first.

Optimizers are paired by receiver text (``opt_d.step()`` with ``opt_d.zero_grad()``,
``scaler.step(opt_g)`` with ``opt_g``), and with the models whose
``.parameters()`` built them (``opt_d = Adam(netD.parameters())`` lets
``netD.zero_grad()`` pair with ``opt_d.step()``).

Nested functions, classes and lambdas are their own scopes: a closure passed to
``optimizer.step(closure)`` is not part of the loop that calls ``step``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import libcst as cst

from gradlint.static.semantics.backward import BackwardCall, backward_call
from gradlint.static.semantics.dataflow import TENSOR_KINDS, Dataflow, Kind
from gradlint.static.semantics.grad_mode import grad_mode_of
from gradlint.static.semantics.imports import ImportMap, dotted_name
from gradlint.static.semantics.vocabulary import (
    CLEAR_GRAD_NAME,
    EVAL_FUNCTION_NAME,
    EVAL_LOADER_NAME,
    GRAD_CLEARING_METHODS,
    LIGHTNING_EVAL_HOOKS,
    LOADER_NAME,
    MODEL_RECEIVER_NAME,
    NOT_MODEL_RECEIVER_NAME,
    NOT_OPTIMIZER_NAME,
    OPTIMIZER_CLASSES,
    OPTIMIZER_FACTORY_NAME,
    OPTIMIZER_NAME,
)
from gradlint.static.semantics.walk import children

Scope = cst.Module | cst.FunctionDef
#: Kinds dataflow knows that are not an optimizer (UNKNOWN, containers, Python values: it cannot say).
_NOT_OPTIMIZER_KINDS = TENSOR_KINDS | {
    Kind.MODULE,
    Kind.DATA_LOADER,
    Kind.DATA_BATCH,
    Kind.ACTIVATION_CONTAINER,
}
Loop = cst.For | cst.While

# Other frameworks with torch-like training APIs (paddle's clear_grad, jittor's step(loss)):
# their loops are not PyTorch's and follow other rules.
_OTHER_FRAMEWORK = re.compile(
    r"^\s*(?:import|from)\s+(?:paddle|mindspore|jittor|megengine|oneflow|mxnet|chainer|tensorflow|jax|flax|keras)\b",
    re.M,
)


def other_framework(text: str) -> bool:
    """The file imports another deep-learning framework (and so is probably not PyTorch code)."""
    return "torch" not in text and _OTHER_FRAMEWORK.search(text) is not None


_TERMINATORS = (cst.Continue, cst.Break, cst.Return, cst.Raise)


@dataclass(frozen=True, eq=False)
class Frame:
    """One level of the statement path to an event: block identity and index in it."""

    block: tuple[int, str]  # (id of the owning node, branch label)
    index: int
    stmts: tuple[cst.CSTNode, ...]
    owner: cst.CSTNode


@dataclass
class Event:
    kind: str  # backward | step | zero_grad | clear | clear_helper | eval | train | call | assign
    node: cst.CSTNode
    order: int
    frames: tuple[Frame, ...]
    loops: tuple[Loop, ...]
    guards: tuple[tuple[cst.If, bool], ...]
    withs: tuple[cst.With, ...]
    key: str | None = None  # optimizer / model receiver text, or assigned name
    backward: BackwardCall | None = None
    value: cst.BaseExpression | None = None  # for assignments
    augmented: bool = False

    @property
    def populates_grad(self) -> bool:
        """A backward that accumulates into ``.grad`` (``autograd.grad`` returns them instead)."""
        return self.kind == "backward" and self.backward is not None and not self.backward.is_grad


@dataclass
class ScopeInfo:
    node: Scope
    events: list[Event] = field(default_factory=list)
    classes: tuple[str, ...] = ()  # enclosing class names, outermost first
    parent: ScopeInfo | None = None

    def of_kind(self, *kinds: str) -> list[Event]:
        return [e for e in self.events if e.kind in kinds]

    def in_loop(self, loop: Loop, *kinds: str) -> list[Event]:
        return [e for e in self.events if loop in e.loops and (not kinds or e.kind in kinds)]

    @property
    def name(self) -> str:
        return self.node.name.value if isinstance(self.node, cst.FunctionDef) else "<module>"


# libcst's ``node.children`` and ``node.visit`` rebuild nodes and cost ~100x a field read.
child_nodes = children


def iter_nodes(node: cst.CSTNode, into_lambdas: bool = False) -> Iterator[cst.CSTNode]:
    """Pre-order, source order, not into nested function/class bodies (nor lambdas unless asked)."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        if n is not node and isinstance(n, (cst.FunctionDef, cst.ClassDef)):
            continue
        if isinstance(n, cst.Lambda) and not into_lambdas:
            continue
        stack.extend(reversed(child_nodes(n)))


def calls_in(node: cst.CSTNode) -> list[cst.Call]:
    """Calls in an expression, source order, not descending into lambdas."""
    return [n for n in iter_nodes(node) if isinstance(n, cst.Call)]


def names_in(node: cst.CSTNode) -> set[str]:
    """Plain names read by an expression (and dotted chains, ``out.loss``)."""
    out: set[str] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, cst.Name):
            out.add(n.value)
            continue
        if isinstance(n, cst.Attribute):
            d = dotted_name(n)
            if d is not None:
                out.add(d)
            stack.append(n.value)
            continue
        stack.extend(child_nodes(n))
    return out


def _target_names(target: cst.BaseExpression) -> list[str]:
    if isinstance(target, (cst.Tuple, cst.List)):
        out: list[str] = []
        for el in target.elements:
            out.extend(_target_names(el.value))
        return out
    if isinstance(target, cst.StarredElement):
        return _target_names(target.value)
    d = dotted_name(target)
    return [d] if d else []


def last_part(name: str | None) -> str:
    return (name or "").rsplit(".", 1)[-1]


def looks_like_optimizer_name(name: str | None) -> bool:
    last = last_part(name)
    if not last or NOT_OPTIMIZER_NAME.search(last):
        return False
    return bool(OPTIMIZER_NAME.search(last))


def has_modulo(expr: cst.CSTNode) -> bool:
    """``(i + 1) % accum`` in a condition; not string formatting, not ``% 1``."""
    for node in _walk(expr):
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Modulo):
            if isinstance(node.left, (cst.SimpleString, cst.ConcatenatedString, cst.FormattedString)):
                continue
            if isinstance(node.right, cst.Integer) and node.right.value in ("1", "0"):
                continue
            return True
    return False


def _walk(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    return iter_nodes(node, into_lambdas=True)


class OptimAnalysis:
    """Per-file: ``context.analysis(OptimAnalysis)``; built on first use."""

    def __init__(self, context) -> None:
        self.context = context
        self.imports: ImportMap = context.analysis(ImportMap)
        self.scopes: list[ScopeInfo] = []
        self._scope_of: dict[int, ScopeInfo] = {}
        # optimizer receiver text -> texts of the models whose parameters it was built from
        self.optimizer_models: dict[str, set[str]] = {}
        self.optimizer_names: set[str] = set()
        self.functions: dict[str, list[cst.FunctionDef]] = {}
        self._order = 0
        self._classes: tuple[str, ...] = ()
        self._walk_scope(context.module, context.module.body)
        self._resolve_steps()
        self._clearing_funcs: set[str] | None = None
        self._backward_funcs: set[str] | None = None

    # -- file-level bindings ---------------------------------------------------
    def _bind_optimizer(self, node: cst.Assign) -> None:
        """``opt_d = Adam(netD.parameters())``: remember the optimizer and its models."""
        value = node.value
        if not self._is_optimizer_factory(value):
            return
        models = {
            dotted_name(c.func.value)
            for c in calls_in(value)
            if isinstance(c.func, cst.Attribute) and c.func.attr.value in ("parameters", "named_parameters")
        }
        models.discard(None)
        for t in node.targets:
            for name in _target_names(t.target):
                self.optimizer_names.add(name)
                if models:
                    self.optimizer_models.setdefault(name, set()).update(models)  # type: ignore[arg-type]

    def _resolve_steps(self) -> None:
        """``X.step()`` is an optimizer step once every binding of the file is known."""
        for info in self.scopes:
            for e in info.events:
                if e.kind == "step?":
                    e.kind = "step" if self.is_optimizer(e.key, e) else "call"

    def _is_optimizer_factory(self, value: cst.BaseExpression) -> bool:
        if isinstance(value, cst.Subscript):  # opt_g, opt_d = self.optimizers()[0]...
            value = value.value
        if not isinstance(value, cst.Call):
            return False
        qual = self.imports.resolve(value.func) or ""
        last = last_part(qual)
        if qual.startswith("torch.optim.") and last[:1].isupper():
            return True
        return last in OPTIMIZER_CLASSES or last == "optimizers" or bool(OPTIMIZER_FACTORY_NAME.search(last))

    def is_optimizer(self, name: str | None, event: Event | None = None) -> bool:
        """Is ``name`` (the receiver of ``event``'s call, when given) an optimizer?

        Dataflow decides first: an OPTIMIZER (its constructor seen) is one, a value of a
        known other kind (a module, a tensor, a loader...) is not; when it cannot say, the
        file's optimizer bindings and the name decide.
        """
        if not name:
            return False
        kind = self._receiver_kind(event) if event is not None else None
        if kind is Kind.OPTIMIZER:
            return True
        if kind in _NOT_OPTIMIZER_KINDS:
            return False
        return name in self.optimizer_names or looks_like_optimizer_name(name)

    def _receiver_kind(self, event: Event):
        """Dataflow's kind of the receiver of ``event``'s ``X.method()`` call (None: no such call)."""
        call = event.node
        if not isinstance(call, cst.Call) or not isinstance(call.func, cst.Attribute) or not event.frames:
            return None
        frame = event.frames[-1]
        return self.context.analysis(Dataflow).kind_of(call.func.value, at=frame.stmts[frame.index])

    # -- the walk ------------------------------------------------------------------
    def _walk_scope(
        self,
        node: Scope,
        body: Sequence[cst.BaseStatement],
        parent: ScopeInfo | None = None,
        classes: tuple[str, ...] = (),
    ) -> None:
        if isinstance(node, cst.FunctionDef):
            self.functions.setdefault(node.name.value, []).append(node)
        info = ScopeInfo(node, classes=classes, parent=parent)
        self.scopes.append(info)
        self._scope_of[id(node)] = info
        self._block(info, body, (), (), (), (), (id(node), "body"), node)

    def scope_of(self, node: Scope) -> ScopeInfo | None:
        return self._scope_of.get(id(node))

    def _next(self) -> int:
        self._order += 1
        return self._order

    def _block(self, info, stmts, frames, loops, guards, withs, key, owner) -> None:
        stmts = tuple(stmts)
        for i, stmt in enumerate(stmts):
            fr = frames + (Frame(key, i, stmts, owner),)
            self._stmt(info, stmt, fr, loops, guards, withs)

    def _exprs(self, info, expr, fr, loops, guards, withs) -> None:
        if expr is None:
            return
        for call in calls_in(expr):
            self._classify(info, call, fr, loops, guards, withs)

    def _stmt(self, info, stmt, fr, loops, guards, withs) -> None:
        ctx = (fr, loops, guards, withs)
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                self._small(info, small, *ctx)
        elif isinstance(stmt, cst.FunctionDef):
            self._walk_scope(stmt, _body(stmt.body), info, self._classes)
        elif isinstance(stmt, cst.ClassDef):
            self._classes = self._classes + (stmt.name.value,)
            try:
                for inner in _body(stmt.body):
                    if isinstance(inner, (cst.FunctionDef, cst.ClassDef)):
                        self._stmt(info, inner, fr, loops, guards, withs)
            finally:
                self._classes = self._classes[:-1]
        elif isinstance(stmt, cst.If):
            self._exprs(info, stmt.test, *ctx)
            self._block(
                info, _body(stmt.body), fr, loops, guards + ((stmt, True),), withs, (id(stmt), "body"), stmt
            )
            if stmt.orelse is not None:
                other = [stmt.orelse] if isinstance(stmt.orelse, cst.If) else _body(stmt.orelse.body)
                self._block(
                    info, other, fr, loops, guards + ((stmt, False),), withs, (id(stmt), "orelse"), stmt
                )
        elif isinstance(stmt, (cst.For, cst.While)):
            if isinstance(stmt, cst.For):
                self._exprs(info, stmt.iter, *ctx)
                for name in _target_names(stmt.target):
                    info.events.append(
                        Event(
                            "assign", stmt, self._next(), fr, loops, guards, withs, key=name, value=stmt.iter
                        )
                    )
            else:
                self._exprs(info, stmt.test, *ctx)
            self._block(info, _body(stmt.body), fr, loops + (stmt,), guards, withs, (id(stmt), "loop"), stmt)
            if stmt.orelse is not None:
                self._block(info, _body(stmt.orelse.body), fr, loops, guards, withs, (id(stmt), "else"), stmt)
        elif isinstance(stmt, cst.With):
            for item in stmt.items:
                self._exprs(info, item.item, *ctx)
                if item.asname is not None:
                    for name in _target_names(item.asname.name):
                        info.events.append(
                            Event(
                                "assign",
                                stmt,
                                self._next(),
                                fr,
                                loops,
                                guards,
                                withs,
                                key=name,
                                value=item.item,
                            )
                        )
            self._block(info, _body(stmt.body), fr, loops, guards, withs + (stmt,), (id(stmt), "with"), stmt)
        elif isinstance(stmt, (cst.Try, cst.TryStar)):
            self._block(info, _body(stmt.body), fr, loops, guards, withs, (id(stmt), "try"), stmt)
            for h, handler in enumerate(stmt.handlers):
                self._block(
                    info, _body(handler.body), fr, loops, guards, withs, (id(stmt), f"except{h}"), stmt
                )
            if stmt.orelse is not None:
                self._block(info, _body(stmt.orelse.body), fr, loops, guards, withs, (id(stmt), "else"), stmt)
            if stmt.finalbody is not None:
                self._block(
                    info, _body(stmt.finalbody.body), fr, loops, guards, withs, (id(stmt), "finally"), stmt
                )
        elif isinstance(stmt, cst.Match):
            self._exprs(info, stmt.subject, *ctx)
            for c, case in enumerate(stmt.cases):
                self._block(info, _body(case.body), fr, loops, guards, withs, (id(stmt), f"case{c}"), stmt)

    def _small(self, info, small, fr, loops, guards, withs) -> None:
        ctx = (fr, loops, guards, withs)
        if isinstance(small, (cst.Assign, cst.AugAssign, cst.AnnAssign)):
            value = small.value
            if isinstance(small, cst.Assign) and isinstance(value, (cst.Call, cst.Subscript)):
                self._bind_optimizer(small)
            self._exprs(info, value, *ctx)
            targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
            for t in targets:
                if isinstance(t, cst.Attribute) and t.attr.value == "grad":
                    info.events.append(
                        Event(
                            "clear", small, self._next(), fr, loops, guards, withs, key=dotted_name(t.value)
                        )
                    )
                for name in _target_names(t):
                    info.events.append(
                        Event(
                            "assign",
                            small,
                            self._next(),
                            fr,
                            loops,
                            guards,
                            withs,
                            key=name,
                            value=value,
                            augmented=isinstance(small, cst.AugAssign),
                        )
                    )
        elif isinstance(small, cst.Del):
            for el in _walk(small.target):
                if isinstance(el, cst.Attribute) and el.attr.value == "grad":
                    info.events.append(Event("clear", small, self._next(), fr, loops, guards, withs))
        elif isinstance(small, (cst.Expr, cst.Return)):
            self._exprs(info, small.value, *ctx)
        elif isinstance(small, cst.Raise):
            self._exprs(info, small.exc, *ctx)

    def _classify(self, info, call: cst.Call, fr, loops, guards, withs) -> None:
        def add(kind: str, key: str | None = None, bw: BackwardCall | None = None) -> None:
            info.events.append(
                Event(kind, call, self._next(), fr, loops, guards, withs, key=key, backward=bw)
            )

        bw = backward_call(call, self.imports)
        if bw is not None:
            add("backward", bw=bw)
            return
        func = call.func
        if isinstance(func, cst.Attribute):
            attr = func.attr.value
            recv = dotted_name(func.value)
            if attr == "step":
                if "scaler" in last_part(recv).lower() and call.args and call.args[0].keyword is None:
                    add("step", dotted_name(call.args[0].value) or self.context.code_for(call.args[0].value))
                    return
                if recv is not None:
                    add("step?", recv)  # resolved once all optimizer bindings are known
                    return
            elif attr == "zero_grad":
                add("zero_grad", recv or self.context.code_for(func.value))
                return
            elif CLEAR_GRAD_NAME.search(attr):
                add("clear_helper", recv)
                return
            elif (attr in GRAD_CLEARING_METHODS or attr.endswith("_")) and _mentions_grad_attr(func.value):
                add("clear", dotted_name(func.value))
                return
            elif attr in ("eval", "train") and recv is not None:
                if attr == "eval" and not call.args:
                    add("eval", recv)
                    return
                if attr == "train":
                    first = call.args[0].value if call.args else None
                    off = isinstance(first, cst.Name) and first.value == "False"
                    add("eval" if off else "train", recv)
                    return
        elif isinstance(func, cst.Name) and CLEAR_GRAD_NAME.search(func.value):
            add("clear_helper", func.value)
            return
        add("call", dotted_name(func))

    # -- helpers defined in this file ------------------------------------------------
    def _funcs_with(self, kinds: tuple[str, ...]) -> set[str]:
        """Names of functions of this file that (directly or one call deep) do ``kinds``."""
        direct: set[str] = set()
        calls: dict[str, set[str]] = {}
        for info in self.scopes:
            if not isinstance(info.node, cst.FunctionDef):
                continue
            name = info.node.name.value
            if any(e.kind in kinds for e in info.events):
                direct.add(name)
            calls.setdefault(name, set()).update(
                last_part(e.key) for e in info.events if e.kind == "call" and e.key
            )
        found = set(direct)
        for _ in range(2):
            found |= {n for n, callees in calls.items() if callees & found}
        return found

    @property
    def clearing_functions(self) -> set[str]:
        if self._clearing_funcs is None:
            self._clearing_funcs = self._funcs_with(("zero_grad", "clear", "clear_helper"))
        return self._clearing_funcs

    @property
    def backward_functions(self) -> set[str]:
        if self._backward_funcs is None:
            self._backward_funcs = self._funcs_with(("backward",))
        return self._backward_funcs

    def clears(self, event: Event) -> bool:
        """Does this event clear gradients (directly, or through a helper of this file)?"""
        if event.kind in ("zero_grad", "clear", "clear_helper"):
            return True
        return event.kind == "call" and bool(event.key) and last_part(event.key) in self.clearing_functions

    def calls_backward(self, event: Event) -> bool:
        return event.kind == "backward" or (
            event.kind == "call" and bool(event.key) and last_part(event.key) in self.backward_functions
        )

    # -- pairing ---------------------------------------------------------------------
    def zero_grad_pairs_with(self, zero: Event, optimizer: str, scope: ScopeInfo) -> bool:
        """Does ``zero`` (a ``zero_grad`` event) clear the gradients ``optimizer.step()`` applies?"""
        recv = zero.key or ""
        if recv == optimizer:
            return True
        if self.is_optimizer(recv, zero):
            return False  # another optimizer: the GAN case
        models = self.optimizer_models.get(optimizer)
        if models is None:
            models = self.optimizer_models.get("self." + last_part(optimizer)) or self.optimizer_models.get(
                last_part(optimizer)
            )
        if models:
            return recv in models or last_part(recv) in {last_part(m) for m in models}
        # Mapping unknown: a model's zero_grad clears this optimizer's gradients only if
        # the scope steps a single optimizer and zeroes a single model.
        steps = {e.key for e in scope.events if e.kind == "step"}
        model_zeros = {
            e.key for e in scope.events if e.kind == "zero_grad" and not self.is_optimizer(e.key, e)
        }
        return steps == {optimizer} and model_zeros == {recv}

    # -- control flow ----------------------------------------------------------------
    @staticmethod
    def reaches(a: Event, b: Event) -> bool:
        """Can control go from ``a`` to ``b`` (later in the source) in one pass of the scope?"""
        if a.order >= b.order:
            return False
        fa, fb = a.frames, b.frames
        d = 0
        while d < len(fa) and d < len(fb) and fa[d].block == fb[d].block and fa[d].index == fb[d].index:
            d += 1
        if d < len(fa) and d < len(fb) and fa[d].block != fb[d].block:
            label_a, label_b = fa[d].block[1], fb[d].block[1]
            exclusive = {label_a, label_b} <= {"body", "orelse"} or (
                label_a.startswith(("except", "case")) or label_b.startswith(("except", "case"))
            )
            if exclusive:
                return False
            stop = d - 1  # a's branch block must run to its end, then the container goes on to b
        else:
            stop = d
            if d < len(fa) and d < len(fb):
                # same block: nothing between them may end the block
                between = fa[d].stmts[fa[d].index + 1 : fb[d].index]
                if any(_terminates(s, loops_below=False) for s in between):
                    return False
        # from a up to the divergence level, the rest of each enclosing block must not end it;
        # break/continue only end the path when no loop lies between them and the divergence
        for level in range(len(fa) - 1, stop, -1):
            frame = fa[level]
            loop_between = any(fa[j].block[1] == "loop" for j in range(stop + 1, level + 1))
            rest = frame.stmts[frame.index + 1 :]
            if any(_terminates(s, loops_below=loop_between) for s in rest):
                return False
        return True


def reaches_around(a: Event, b: Event, loop: Loop) -> bool:
    """Can control go from ``a`` to the end of ``loop``'s body and, next iteration, to ``b``?

    ``b`` comes before ``a`` in the body (``opt.step()`` at the top of the loop, ``zero_grad()``
    at the bottom).  ``continue`` after ``a`` still goes round; ``break``/``return``/``raise``
    do not, and neither does anything that ends the body before ``b``.
    """
    if loop not in a.loops or loop not in b.loops or b.order >= a.order:
        return False
    la = next(i for i, f in enumerate(a.frames) if f.owner is loop and f.block[1] == "loop")
    lb = next(i for i, f in enumerate(b.frames) if f.owner is loop and f.block[1] == "loop")
    goes_round = False
    for level in range(len(a.frames) - 1, la - 1, -1):
        frame = a.frames[level]
        inner_loop = any(a.frames[j].block[1] == "loop" for j in range(la + 1, level + 1))
        for stmt in frame.stmts[frame.index + 1 :]:
            if not _terminates(stmt, loops_below=inner_loop):
                continue
            if _is_continue(stmt):
                goes_round = True
                break
            return False
        if goes_round:
            break
    for level in range(lb, len(b.frames)):
        frame = b.frames[level]
        if any(_terminates(stmt, loops_below=False) for stmt in frame.stmts[: frame.index]):
            return False
    return True


def _is_continue(stmt: cst.CSTNode) -> bool:
    return (
        isinstance(stmt, cst.SimpleStatementLine)
        and any(isinstance(x, cst.Continue) for x in stmt.body)
        and not any(isinstance(x, (cst.Break, cst.Return, cst.Raise)) for x in stmt.body)
    )


def _terminates(stmt: cst.CSTNode, loops_below: bool) -> bool:
    if not isinstance(stmt, cst.SimpleStatementLine):
        return False
    for small in stmt.body:
        if isinstance(small, (cst.Return, cst.Raise)):
            return True
        if isinstance(small, (cst.Continue, cst.Break)) and not loops_below:
            return True
    return False


def _body(block) -> Sequence[cst.BaseStatement]:
    if isinstance(block, cst.IndentedBlock):
        return block.body
    if isinstance(block, cst.SimpleStatementSuite):
        return [cst.SimpleStatementLine(body=block.body)]
    return getattr(block, "body", ())


def _mentions_grad_attr(expr: cst.BaseExpression) -> bool:
    """``p.grad``, ``p.grad.data``, ``self.w.grad``: the receiver chain goes through ``.grad``."""
    while isinstance(expr, (cst.Attribute, cst.Subscript)):
        if isinstance(expr, cst.Attribute) and expr.attr.value == "grad":
            return True
        expr = expr.value
    return False


# ---------------------------------------------------------------------------------------------
# Queries shared by several rules
# ---------------------------------------------------------------------------------------------


def innermost_loop_with(events: Sequence[Event], step: Event, kinds_pred) -> Loop | None:
    """The innermost loop around ``step`` whose body also holds an event matching ``kinds_pred``."""
    for loop in reversed(step.loops):
        if any(loop in e.loops and kinds_pred(e) for e in events if e is not step):
            return loop
    return None


def guard_tests_within(event: Event, loop: Loop | None) -> list[cst.BaseExpression]:
    """``if`` tests that guard ``event`` inside ``loop`` (all of them when ``loop`` is None)."""
    tests = []
    inside = loop is None
    for frame in event.frames:
        if frame.owner is loop:
            inside = True
            continue
        if inside and isinstance(frame.owner, cst.If):
            tests.append(frame.owner.test)
    return tests


def is_accumulation_guard(test: cst.BaseExpression, scope: ScopeInfo) -> bool:
    """``(i + 1) % accum == 0``, or a flag assigned from such an expression in this scope."""
    if has_modulo(test):
        return True
    names = names_in(test)
    for e in scope.events:
        if e.kind == "assign" and e.key in names and e.value is not None and has_modulo(e.value):
            return True
    return False


def last_assignment(scope: ScopeInfo, name: str, before: Event) -> Event | None:
    found = None
    for e in scope.events:
        if e.order >= before.order:
            break
        if e.kind == "assign" and e.key == name:
            found = e
    return found


def assignments_of(scope: ScopeInfo, name: str, before: Event) -> list[Event]:
    return [e for e in scope.events if e.kind == "assign" and e.key == name and e.order < before.order]


def root_names(expr: cst.BaseExpression) -> set[str]:
    """Names an expression's value comes from, dotted where the chain is plain (``out.loss``)."""
    out: set[str] = set()
    d = dotted_name(expr)
    if d is not None:
        out.add(d)
        parts = d.split(".")
        for i in range(1, len(parts)):
            out.add(".".join(parts[:i]))
        return out
    return names_in(expr)


def grad_mode_at(
    event: Event, scope: ScopeInfo, imports: ImportMap
) -> tuple[bool | None, cst.CSTNode | None]:
    """(mode, region) of the innermost ``with``/decorator that sets grad mode for ``event``.

    ``(None, None)`` when nothing in this scope sets it (the caller's mode applies).
    """
    for w in reversed(event.withs):
        for item in w.items:
            mode = grad_mode_of(item.item, imports)
            if mode is not None:
                return mode, w
    if isinstance(scope.node, cst.FunctionDef):
        for dec in scope.node.decorators:
            mode = grad_mode_of(dec.decorator, imports)
            if mode is not None:
                return mode, scope.node
    return None, None


def looks_like_eval_function(name: str) -> bool:
    return bool(EVAL_FUNCTION_NAME.search(name)) and not name.startswith("test_")


def looks_like_eval_loader(expr: cst.BaseExpression) -> bool:
    """``val_loader``, ``self.test_dataloader()``, ``enumerate(valid_loader)``, ``tqdm(eval_dl)``."""
    for name in sorted(names_in(expr)):
        last = last_part(name)
        if "train" in last.lower():
            return False
        if EVAL_LOADER_NAME.search(last) and LOADER_NAME.search(last):
            return True
    for call in calls_in(expr):
        last = last_part(dotted_name(call.func))
        if re.match(r"(val|valid|validation|test|eval|predict)_?dataloader$", last, re.I):
            return True
    return False


def looks_like_model_name(name: str | None) -> bool:
    last = last_part(name)
    return bool(last) and bool(MODEL_RECEIVER_NAME.match(last)) and not NOT_MODEL_RECEIVER_NAME.search(last)


__all__ = [
    "Event",
    "Frame",
    "ScopeInfo",
    "OptimAnalysis",
    "calls_in",
    "names_in",
    "root_names",
    "has_modulo",
    "innermost_loop_with",
    "reaches_around",
    "guard_tests_within",
    "is_accumulation_guard",
    "last_assignment",
    "assignments_of",
    "grad_mode_at",
    "looks_like_eval_function",
    "looks_like_eval_loader",
    "looks_like_model_name",
    "looks_like_optimizer_name",
    "LIGHTNING_EVAL_HOOKS",
    "last_part",
    "other_framework",
    "child_nodes",
    "iter_nodes",
]
