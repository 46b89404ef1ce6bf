"""Tensor-kind data flow: what each name is bound to, statement by statement.

For every function (and the module body) this analysis walks the statements in
order and keeps an environment ``name -> Fact``.  A :class:`Fact` says what kind
of value an expression evaluates to:

=================================  ============================================
``Kind.ACTIVATION``                carries a graph: a module/model output, an op on
                                   tensors that require grad, a non-leaf copy
``Kind.PARAMETER``                 ``nn.Parameter``, ``.weight``/``.bias``, an item
                                   of ``.parameters()`` or of ``group["params"]``
``Kind.LEAF_REQUIRES_GRAD``        a tensor created with ``requires_grad=True`` (or
                                   ``.requires_grad_()`` on a tensor without graph)
``Kind.GRADIENT``                  ``x.grad``, items of ``torch.autograd.grad(...)``
``Kind.BUFFER``                    ``register_buffer`` names, ``running_mean``...
``Kind.DETACHED_VIEW_OF_ACTIVATION``  ``act.detach()`` or a view of it: shares
                                   storage (and version counter) with a graph value;
                                   ``Fact.origin`` is the ``.detach()`` call
``Kind.CLONE``                     a fresh copy without graph (``.detach().clone()``)
``Kind.TENSOR``                    any other tensor without graph (``torch.zeros``,
                                   ``p.detach()``, results computed under no_grad)
``Kind.MODULE``                    an ``nn.Module`` (calling it gives an activation)
``Kind.OPTIMIZER``                 an optimizer: ``torch.optim.X(...)`` (imports resolved),
                                   ``transformers.AdamW``, ``bitsandbytes.optim.*``,
                                   ``apex.optimizers.*``, a same-file ``Optimizer``
                                   subclass; ``Fact.origin`` is the constructor call
``Kind.DATA_LOADER``               a ``torch.utils.data.DataLoader(...)`` (or ``iter()`` of
                                   one); its items are ``DATA_BATCH``
``Kind.COLLECTION``                an iterable; ``Fact.elem`` is its item
``Kind.ACTIVATION_CONTAINER``      a list filled with activations (``losses.append(loss)``
                                   on an empty list); ``Fact.origin`` is the first append
``Kind.DATA_BATCH``                an item of a loader, dataset or data iterator (the
                                   target of ``for x, y in loader``, unpacked or not;
                                   ``next(it)`` of an iterator with unknown items), and
                                   its parts (``batch[0]``, ``batch["ids"]``,
                                   ``batch.text``, unpacking) moved or reshaped
                                   (``.to(dev)``, ``.view(...)``, ``.float()``: the
                                   vocabulary's ``BATCH_PRESERVING_METHODS``): fresh
                                   every iteration, no graph; ``Fact.origin`` is the
                                   ``for`` statement or the ``next`` call
``Kind.TUPLE``                     a fixed tuple; ``Fact.items`` are its members
``Kind.NON_TENSOR``                ints, strings, datasets...
``Kind.UNKNOWN``                   no evidence: rules must stay silent
=================================  ============================================

Control flow is handled the cheap way: branches are joined, loop bodies are
walked twice (so a value bound at the end of an iteration reaches the next),
and differing kinds join to ``UNKNOWN`` (except "activation or plain tensor",
which joins to ``ACTIVATION``: the value carries a graph on some iterations).
Grad mode is tracked: a module called inside ``with torch.no_grad():`` (or in a
function decorated with it) gives a ``TENSOR``.  Rebinding replaces a fact, so
``y = act.detach(); y = y.clone()`` ends the alias.

API
---
Build once per file with ``flow = context.analysis(Dataflow)``, then

* ``flow.kind_of(expr, at=node)`` / ``flow.fact_of(expr, at=node)``: the kind of
  ``expr`` evaluated before the statement containing ``node`` (default: ``expr``).
  ``at`` is fastest when it is the statement itself; any other node works but
  resolves parent links for the whole file (costly: ~3x the parse).
* Rules that derive from :class:`TracksStatements` know their current statement
  for free: ``self.flow_kind(expr)`` / ``self.flow_fact(expr)`` /
  ``self.flow_grad_disabled()`` / ``self.flow_scope()``.
* ``flow.scope_facts(scope)``: per-function facts (``retained``: dotted names
  with ``retain_grad()``; ``grad_disabled_at(stmt)``; ``env_before``), plus
  ``flow.has_backward(scope)`` (the function itself runs a backward pass) and
  ``flow.loads(scope)`` (how often each name / ``self.x`` chain is read).
* Helpers: :func:`inplace_edits` (in-place methods, augmented and item
  assignment), :func:`view_root` (strip indexing/views), :func:`write_roles` and
  the :class:`TracksWrites` mixin (read or write of an attribute such as
  ``.data``/``.grad``), :func:`state_data_receiver`, :func:`strip_state_data`.
  Fixes that move or wrap statements are built in :mod:`gradlint.static.fixes`.

Evidence rules worth knowing: a name called like a model (``model``, ``netD``,
``G``, ``text_encoder``) or a ``self.<layer>`` attribute assigned a module in the
class (or named like one: ``fc``, ``encoder``, ``lm_head``) gives activations;
``.weight``/``.bias`` attributes are parameters (``Fact.origin`` None: a naming
convention, not proof); function arguments are ``UNKNOWN``. A call of a function or
``self.method()`` of the same file takes the kind its :mod:`summaries` entry returns
(``origin``: the callee's ``def``); what it cannot tell stays ``UNKNOWN``.

The analysis never evaluates a scope nobody asks about: cost is paid per
function, on the first question about it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import libcst as cst

from gradlint.static.semantics.backward import backward_call
from gradlint.static.semantics.grad_mode import grad_mode_of
from gradlint.static.semantics.imports import ImportMap, dotted_name
from gradlint.static.semantics.vocabulary import (
    BATCH_PRESERVING_METHODS,
    BUFFER_ATTRS,
    DATA_SOURCE_NAME,
    DATA_WRAPPERS,
    GRAD_SCALER_NAME,
    INPLACE_METHOD,
    LAYER_ATTR,
    MODEL_CLASS as _MODEL_CLASS,  # eval_plain_call reads it
    MODEL_FACTORIES,
    MODEL_NAME,
    MODULE_BASE,
    MOVE_METHODS,
    NO_GRAPH_METHODS,
    NON_TENSOR_ATTRS,
    NOT_INPLACE_METHODS,
    PARAMETER_ATTR,
    SCALAR_METHODS,
    TENSOR_FACTORIES,
    TORCH_DIFFERENTIABLE_NAMESPACES,
    TORCH_NO_GRAPH_FUNCTIONS,
    VIEW_ATTRS,
    VIEW_METHODS,
)
from gradlint.static.semantics.walk import contains, iter_children


class Kind(enum.Enum):
    ACTIVATION = "activation"
    PARAMETER = "parameter"
    LEAF_REQUIRES_GRAD = "leaf-requires-grad"
    GRADIENT = "gradient"
    BUFFER = "buffer"
    DETACHED_VIEW_OF_ACTIVATION = "detached-view-of-activation"
    CLONE = "clone"
    TENSOR = "tensor"
    MODULE = "module"
    OPTIMIZER = "optimizer"
    DATA_LOADER = "data-loader"
    COLLECTION = "collection"
    ACTIVATION_CONTAINER = "activation-container"
    DATA_BATCH = "data-batch"
    TUPLE = "tuple"
    NON_TENSOR = "non-tensor"
    UNKNOWN = "unknown"


K = Kind
#: Tensors that require grad: an op on them builds a graph.
REQUIRES_GRAD: frozenset[Kind] = frozenset({K.ACTIVATION, K.PARAMETER, K.LEAF_REQUIRES_GRAD})
#: Every kind that is known to be a tensor.
TENSOR_KINDS: frozenset[Kind] = REQUIRES_GRAD | {
    K.GRADIENT,
    K.BUFFER,
    K.DETACHED_VIEW_OF_ACTIVATION,
    K.CLONE,
    K.TENSOR,
}
#: Tensors that are the model's state rather than values flowing through it.
STATE_KINDS: frozenset[Kind] = frozenset({K.PARAMETER, K.LEAF_REQUIRES_GRAD, K.GRADIENT, K.BUFFER})


@dataclass(frozen=True)
class Fact:
    kind: Kind
    # DETACHED_VIEW_OF_ACTIVATION: the ``.detach()`` call; LEAF/PARAMETER: the node that
    # created it in this file (None when only a naming convention says so).
    origin: cst.CSTNode | None = field(default=None, compare=False)
    elem: Fact | None = None  # COLLECTION
    items: tuple[Fact, ...] | None = None  # TUPLE

    def __eq__(self, other):  # origins compared by identity
        return (
            isinstance(other, Fact)
            and self.kind is other.kind
            and self.origin is other.origin
            and self.elem == other.elem
            and self.items == other.items
        )

    def __hash__(self):
        return hash((self.kind, id(self.origin)))


UNKNOWN = Fact(K.UNKNOWN)
NON_TENSOR = Fact(K.NON_TENSOR)
TENSOR = Fact(K.TENSOR)
ACTIVATION = Fact(K.ACTIVATION)
MODULE = Fact(K.MODULE)
#: An item of a DATA_LOADER outside a ``for`` over it (``next(iter(loader))``): no ``for`` origin.
LOADER_ITEM = Fact(K.DATA_BATCH)
GRADIENT = Fact(K.GRADIENT)


def collection(elem: Fact) -> Fact:
    return Fact(K.COLLECTION, elem=elem)


def join(a: Fact | None, b: Fact | None) -> Fact:
    """The fact that holds after control flow merges ``a`` and ``b`` (None: unbound)."""
    if a is None:
        return b if b is not None else UNKNOWN
    if b is None or a == b:
        return a
    if a.kind is b.kind:
        if a.kind is K.COLLECTION:
            return collection(join(a.elem, b.elem))
        if a.kind is K.TUPLE and a.items and b.items and len(a.items) == len(b.items):
            return Fact(K.TUPLE, items=tuple(join(x, y) for x, y in zip(a.items, b.items)))
        return Fact(a.kind)
    kinds = {a.kind, b.kind}
    for x, y in ((a, b), (b, a)):
        if x.kind is K.ACTIVATION_CONTAINER and y.kind is K.TUPLE and not y.items:
            return x  # an empty list, or the same list after appends
    if K.ACTIVATION in kinds and kinds <= {K.ACTIVATION, K.TENSOR, K.CLONE}:
        return ACTIVATION  # e.g. a recurrent state: zeros before the loop, an output after
    return UNKNOWN


# --------------------------------------------------------------------------- vocab


def is_model_name(name: str) -> bool:
    """``model``, ``netD``, ``G``, ``text_encoder``: a variable that names a model by convention."""
    return bool(MODEL_NAME.match(name.lower()))


def is_layer_name(name: str) -> bool:
    """An attribute that names a layer of a model: ``fc``, ``encoder``, ``lm_head``."""
    return is_model_name(name) or bool(LAYER_ATTR.match(name.lower()))


def _kwarg(call: cst.Call, name: str) -> cst.Arg | None:
    for a in call.args:
        if a.keyword is not None and a.keyword.value == name:
            return a
    return None


def _is_true(node: cst.BaseExpression | None) -> bool:
    return isinstance(node, cst.Name) and node.value == "True"


def _is_false(node: cst.BaseExpression | None) -> bool:
    return isinstance(node, cst.Name) and node.value == "False"


def is_inplace_method(name: str) -> bool:
    return bool(INPLACE_METHOD.match(name)) and name not in NOT_INPLACE_METHODS


# --------------------------------------------------------------------------- edits
@dataclass(frozen=True)
class InplaceEdit:
    """One in-place write: ``node`` (the call or statement), ``target`` (the tensor
    expression written to), ``form`` ("method", "augassign" or "setitem")."""

    node: cst.CSTNode
    target: cst.BaseExpression
    form: str
    method: str | None = None


def inplace_edits(node: cst.CSTNode) -> list[InplaceEdit]:
    """The in-place writes ``node`` performs itself (not those of its children).

    ``t.add_(x)`` writes ``t``; ``t += x`` writes ``t``; ``t[i] = v`` and
    ``t[i] += v`` write ``t[i]`` (a view of ``t``: use :func:`view_root`).
    """
    if isinstance(node, cst.Call):
        func = node.func
        if isinstance(func, cst.Attribute) and is_inplace_method(func.attr.value):
            return [InplaceEdit(node, func.value, "method", func.attr.value)]
        return []
    if isinstance(node, cst.AugAssign):
        if isinstance(node.target, (cst.Name, cst.Attribute, cst.Subscript)):
            return [InplaceEdit(node, node.target, "augassign")]
        return []
    if isinstance(node, cst.Assign):
        return [
            InplaceEdit(node, t.target, "setitem")
            for t in node.targets
            if isinstance(t.target, cst.Subscript)
        ]
    return []


def view_root(expr: cst.BaseExpression) -> cst.BaseExpression:
    """Strip indexing and view operations: the tensor whose storage ``expr`` shows."""
    while True:
        if isinstance(expr, cst.Subscript):
            expr = expr.value
        elif isinstance(expr, cst.Attribute) and expr.attr.value in VIEW_ATTRS:
            expr = expr.value
        elif (
            isinstance(expr, cst.Call)
            and isinstance(expr.func, cst.Attribute)
            and expr.func.attr.value in VIEW_METHODS
        ):
            expr = expr.func.value
        else:
            return expr


# --------------------------------------------------------------------------- scopes
Scope = cst.CSTNode  # cst.Module, cst.FunctionDef or cst.ClassDef (class body)
_COMPOUND_BODIES = ("body", "orelse", "finalbody")


def _block(body) -> Sequence[cst.CSTNode]:
    if isinstance(body, cst.IndentedBlock):
        return body.body
    if isinstance(body, cst.SimpleStatementSuite):
        return (body,)
    if isinstance(body, (cst.Else, cst.Finally)):
        return _block(body.body)
    return ()


@dataclass
class ScopeKinds:
    """The value kinds one scope's walk found: the environment before each statement, grad mode, `retain_grad` names."""

    scope: Scope
    env_before: dict[cst.CSTNode, dict[str, Fact]] = field(default_factory=dict)
    disabled: dict[cst.CSTNode, bool] = field(default_factory=dict)
    # Dotted names on which ``retain_grad()`` is called anywhere in the scope.
    retained: set = field(default_factory=set)
    # ``for`` loops over a loader/dataset/iterator -> the DATA_BATCH fact bound to their target.
    batches: dict = field(default_factory=dict)
    _has_backward: bool | None = None
    _loads: dict[str, int] | None = None

    def grad_disabled_at(self, stmt: cst.CSTNode) -> bool:
        return self.disabled.get(stmt, False)


@dataclass
class ClassFacts:
    attrs: dict[str, Fact]
    is_module: bool


class Dataflow:
    """Per-file tensor-kind analysis (``context.analysis(Dataflow)``)."""

    def __init__(self, context) -> None:
        self.context = context
        self.imports: ImportMap = context.analysis(ImportMap)
        self._stmt_scope: dict[cst.CSTNode, Scope] = {}
        self._func_class: dict[cst.CSTNode, cst.ClassDef] = {}
        self._classes_by_name: dict[str, cst.ClassDef] = {}
        self._scope_facts: dict[Scope, ScopeKinds] = {}
        self._class_facts: dict[cst.ClassDef, ClassFacts] = {}
        self._torch_alias: str | None = None
        self._summaries = None
        self._skeleton(context.module, context.module.body, None)

    @property
    def summaries(self):
        """The file's per-function summaries (what a same-file call returns), built on first use."""
        if self._summaries is None:
            from gradlint.static.semantics.summaries import Summaries

            self._summaries = self.context.analysis(Summaries)
        return self._summaries

    # -- statement skeleton (statements only: cheap) --------------------------
    def _skeleton(self, scope: Scope, body: Sequence[cst.CSTNode], cls: cst.ClassDef | None) -> None:
        for stmt in body:
            self._stmt_scope[stmt] = scope
            if isinstance(stmt, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
                for small in stmt.body:
                    self._stmt_scope[small] = scope
            elif isinstance(stmt, cst.FunctionDef):
                if cls is not None:
                    self._func_class[stmt] = cls
                self._skeleton(stmt, _block(stmt.body), None)
            elif isinstance(stmt, cst.ClassDef):
                self._classes_by_name.setdefault(stmt.name.value, stmt)
                self._skeleton(stmt, _block(stmt.body), stmt)
            else:
                for handler in getattr(stmt, "handlers", ()) or ():
                    self._stmt_scope[handler] = scope
                for part in self._compound_parts(stmt):
                    self._skeleton(scope, part, cls)

    @staticmethod
    def _compound_parts(stmt: cst.CSTNode) -> Iterator[Sequence[cst.CSTNode]]:
        for name in _COMPOUND_BODIES:
            sub = getattr(stmt, name, None)
            if sub is None:
                continue
            if isinstance(sub, cst.If):  # elif
                yield (sub,)
            else:
                yield _block(sub)
        for handler in getattr(stmt, "handlers", ()) or ():
            yield _block(handler.body)
        for case in getattr(stmt, "cases", ()) or ():
            yield _block(case.body)

    # -- public API -------------------------------------------------------------
    def statement_of(self, node: cst.CSTNode) -> cst.CSTNode | None:
        """The innermost statement holding ``node`` (costly: parent links)."""
        if node in self._stmt_scope:
            return node
        for anc in self.context.ancestors(node):
            if anc in self._stmt_scope:
                return anc
        return None

    def scope_of(self, at: cst.CSTNode) -> Scope:
        stmt = self.statement_of(at)
        return self._stmt_scope.get(stmt, self.context.module) if stmt is not None else self.context.module

    def scope_facts(self, scope: Scope) -> ScopeKinds:
        facts = self._scope_facts.get(scope)
        if facts is None:
            facts = self._scope_facts[scope] = ScopeKinds(scope)
            _Walker(self, scope, facts).run()
        return facts

    def fact_of(
        self,
        expr: cst.BaseExpression,
        at: cst.CSTNode | None = None,
        binders: Sequence[cst.CSTNode] | None = None,
    ) -> Fact:
        """The fact for ``expr`` as evaluated where ``at`` is (default: ``expr``).

        ``binders`` are the comprehensions/lambdas enclosing ``expr`` inside its
        statement, outermost first (:class:`TracksStatements` passes them); when
        None they are found from the parent links.
        """
        at = expr if at is None else at
        stmt = self.statement_of(at)
        if stmt is None:
            return UNKNOWN
        if binders is None:
            binders = self._binders_between(expr, stmt) if expr is not stmt else []
        stmt = self._small_statement_holding(stmt, expr)
        scope = self._stmt_scope.get(stmt, self.context.module)
        facts = self.scope_facts(scope)
        env = facts.env_before.get(stmt)
        if env is None:
            return UNKNOWN  # a statement the walk did not reach (e.g. unreachable code)
        ev = _Eval(self, scope, env, facts.grad_disabled_at(stmt))
        for binder in binders:
            ev.enter_binder(binder)
        return ev.eval(expr)

    def kind_of(
        self,
        expr: cst.BaseExpression,
        at: cst.CSTNode | None = None,
        binders: Sequence[cst.CSTNode] | None = None,
    ) -> Kind:
        return self.fact_of(expr, at, binders).kind

    def batch_bound_by(self, loop: cst.For) -> Fact | None:
        """The DATA_BATCH fact a ``for`` loop binds to its target (items of a loader), or None."""
        scope = self._stmt_scope.get(loop)
        if scope is None:
            return None
        return self.scope_facts(scope).batches.get(loop)

    def grad_disabled_at(self, at: cst.CSTNode) -> bool:
        """Inside no_grad/inference_mode (with-block or decorator of this function)."""
        stmt = self.statement_of(at)
        if stmt is None:
            return False
        scope = self._stmt_scope.get(stmt, self.context.module)
        return self.scope_facts(scope).grad_disabled_at(stmt)

    def has_backward(self, scope: Scope) -> bool:
        """Whether the scope itself (nested functions excluded) runs a backward pass."""
        facts = self.scope_facts(scope)
        if facts._has_backward is None:
            finder = _BackwardFinder(self.imports)
            body = scope.body if isinstance(scope, cst.Module) else scope.body
            if isinstance(body, cst.BaseSuite):
                body.visit(finder)
            else:
                for stmt in body:
                    stmt.visit(finder)
            facts._has_backward = finder.found
        return facts._has_backward

    def loads(self, scope: Scope) -> dict[str, int]:
        """How often each name / dotted chain (``self.h``) is read in ``scope``
        (nested functions included: closures read it too; bare assignment targets
        excluded). Built on first request, one walk of the scope."""
        facts = self.scope_facts(scope)
        if facts._loads is None:
            counts: dict[str, int] = {}
            body = scope.body
            stack: list[cst.CSTNode] = list(body) if isinstance(body, (list, tuple)) else [body]
            while stack:
                node = stack.pop()
                if isinstance(node, (cst.Name, cst.Attribute)):
                    name = dotted_name(node)
                    if name is not None:
                        counts[name] = counts.get(name, 0) + 1
                        if isinstance(node, cst.Name):
                            continue
                if isinstance(node, (cst.Assign, cst.AugAssign, cst.AnnAssign, cst.For, cst.CompFor)):
                    targets = (
                        [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
                    )
                    for t in targets:
                        stack.extend(_target_loads(t))
                    for child in iter_children(node):
                        if child not in targets and not isinstance(child, cst.AssignTarget):
                            stack.append(child)
                    continue
                stack.extend(iter_children(node))
            facts._loads = counts
        return facts._loads

    def torch_alias(self) -> str | None:
        """The local name bound to the ``torch`` package, if the file imports it."""
        if self._torch_alias is None:
            alias = ""
            for local, full in self.imports.aliases.items():
                if full == "torch":
                    alias = local
                    if local == "torch":
                        break
            self._torch_alias = alias
        return self._torch_alias or None

    def class_of(self, func: cst.CSTNode) -> cst.ClassDef | None:
        return self._func_class.get(func)

    def class_facts(self, cls: cst.ClassDef) -> ClassFacts:
        facts = self._class_facts.get(cls)
        if facts is None:
            # Placeholder first: evaluating ``self.a = self.b(x)`` asks for this class again.
            self._class_facts[cls] = ClassFacts({}, False)
            facts = self._class_facts[cls] = self._build_class_facts(cls)
        return facts

    # -- internals ----------------------------------------------------------------
    def _binders_between(self, node: cst.CSTNode, stmt: cst.CSTNode) -> list[cst.CSTNode]:
        out = []
        for anc in self.context.ancestors(node):
            if anc is stmt or anc in self._stmt_scope:
                break
            if isinstance(anc, (cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp, cst.Lambda)):
                out.append(anc)
        out.reverse()
        return out

    @staticmethod
    def _small_statement_holding(stmt: cst.CSTNode, expr: cst.CSTNode) -> cst.CSTNode:
        if isinstance(stmt, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
            if len(stmt.body) == 1:
                return stmt.body[0]
            for small in stmt.body:
                if contains(small, expr):
                    return small
        return stmt

    def is_module_class(self, cls: cst.ClassDef) -> bool:
        """A class deriving (directly or through same-file classes) from a module class, or with a ``forward``."""

        def module_base(name: str, full: str) -> bool:
            return full.startswith("torch.nn.") or bool(MODULE_BASE.search(name))

        def defines_forward(c: cst.ClassDef) -> bool:
            return any(isinstance(s, cst.FunctionDef) and s.name.value == "forward" for s in _block(c.body))

        return self._derives(cls, module_base, defines_forward, set())

    def is_optimizer_class(self, cls: cst.ClassDef) -> bool:
        """A same-file class deriving (directly or through same-file classes) from an optimizer class."""

        def optimizer_base(name: str, full: str) -> bool:
            return (
                full in ("torch.optim.Optimizer", "torch.optim.optimizer.Optimizer")
                or constructed_kind(full) is K.OPTIMIZER
            )

        return self._derives(cls, optimizer_base, lambda c: False, set())

    def _derives(self, cls: cst.ClassDef, base_test, own_test, seen: set) -> bool:
        """Does ``cls`` or a same-file class it derives from pass ``base_test(name, resolved)`` on one of its
        bases, or ``own_test(class)`` itself?"""
        if cls in seen:
            return False
        seen.add(cls)
        for base in cls.bases:
            name = dotted_name(base.value) or ""
            full = self.imports.resolve(base.value) or name
            if base_test(name, full):
                return True
            local = self._classes_by_name.get(name)
            if local is not None and self._derives(local, base_test, own_test, seen):
                return True
        return own_test(cls)

    def _build_class_facts(self, cls: cst.ClassDef) -> ClassFacts:
        attrs: dict[str, Fact] = {}
        is_module = self.is_module_class(cls)
        ev = _Eval(self, cls, {}, False)
        for func in _block(cls.body):
            if not isinstance(func, cst.FunctionDef):
                continue
            for small in _small_statements(_block(func.body)):
                if isinstance(small, cst.Assign):
                    for t in small.targets:
                        name = dotted_name(t.target)
                        if name and name.startswith("self.") and name.count(".") == 1:
                            fact = ev.eval(small.value)
                            if fact.kind in (K.ACTIVATION, K.DETACHED_VIEW_OF_ACTIVATION):
                                fact = UNKNOWN  # per-call state of another method: not trusted
                            attr = name[5:]
                            attrs[attr] = join(attrs[attr], fact) if attr in attrs else fact
                elif isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
                    call = small.value
                    func_name = dotted_name(call.func) or ""
                    if func_name in ("self.register_buffer", "self.register_parameter") and call.args:
                        first = call.args[0].value
                        if isinstance(first, cst.SimpleString):
                            attr = first.evaluated_value
                            kind = K.BUFFER if func_name.endswith("buffer") else K.PARAMETER
                            fact = Fact(kind, origin=call)
                            if isinstance(attr, str):
                                attrs[attr] = join(attrs[attr], fact) if attr in attrs else fact
        return ClassFacts(attrs, is_module)


def _small_statements(body: Sequence[cst.CSTNode]) -> Iterator[cst.BaseSmallStatement]:
    """Small statements of a block and its nested compound statements (not nested defs)."""
    stack = list(reversed(body))
    while stack:
        stmt = stack.pop()
        if isinstance(stmt, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
            yield from stmt.body
        elif isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            continue
        else:
            for part in Dataflow._compound_parts(stmt):
                stack.extend(reversed(part))


def _target_loads(target: cst.CSTNode) -> list[cst.CSTNode]:
    """Parts of an assignment target that are reads: ``x`` in ``x[i] = v``, ``obj`` in ``obj.a = v``."""
    if isinstance(target, (cst.Tuple, cst.List)):
        out: list[cst.CSTNode] = []
        for el in target.elements:
            out.extend(_target_loads(el.value))
        return out
    if isinstance(target, cst.StarredElement):
        return _target_loads(target.value)
    if isinstance(target, cst.Subscript):
        return [target]
    if isinstance(target, cst.Attribute):
        return [target.value]
    return []


class _BackwardFinder(cst.CSTVisitor):
    def __init__(self, imports: ImportMap) -> None:
        super().__init__()
        self.imports = imports
        self.found = False

    def visit_FunctionDef(self, node) -> bool:
        return False

    def visit_ClassDef(self, node) -> bool:
        return False

    def visit_Call(self, node: cst.Call) -> bool | None:
        if not self.found and backward_call(node, self.imports) is not None:
            self.found = True
        return not self.found


# --------------------------------------------------------------------------- evaluation
class _Eval:
    """Evaluates expressions to facts against one environment."""

    def __init__(self, flow: Dataflow, scope: Scope, env: dict[str, Fact], disabled: bool) -> None:
        self.flow = flow
        self.scope = scope
        self.env = env
        self.disabled = disabled
        self.overlay: dict[str, Fact] = {}

    # binders: comprehension variables and lambda parameters shadow the statement's env
    def enter_binder(self, binder: cst.CSTNode) -> None:
        if isinstance(binder, cst.Lambda):
            for p in binder.params.params + binder.params.posonly_params + binder.params.kwonly_params:
                self.overlay[p.name.value] = UNKNOWN
            return
        comp = getattr(binder, "for_in", None)
        while comp is not None:
            elem = self.elem_of(self.eval(comp.iter))
            for name, fact in _bind_target(comp.target, elem):
                self.overlay[name] = fact
            comp = comp.inner_for_in

    def lookup(self, name: str) -> Fact | None:
        if name in self.overlay:
            return self.overlay[name]
        return self.env.get(name)

    def graph(self) -> Fact:
        return TENSOR if self.disabled else ACTIVATION

    # -- dispatch ------------------------------------------------------------------
    def eval(self, e: cst.BaseExpression) -> Fact:
        if isinstance(e, cst.Name):
            return self.eval_name(e.value)
        if isinstance(e, cst.Attribute):
            return self.eval_attribute(e)
        if isinstance(e, cst.Call):
            return self.eval_call(e)
        if isinstance(e, cst.Subscript):
            return self.eval_subscript(e)
        if isinstance(e, cst.BinaryOperation):
            return self.arith([self.eval(e.left), self.eval(e.right)])
        if isinstance(e, cst.UnaryOperation):
            if isinstance(e.operator, cst.Not):
                return NON_TENSOR
            return self.arith([self.eval(e.expression)])
        if isinstance(e, cst.BooleanOperation):
            return join(self.eval(e.left), self.eval(e.right))
        if isinstance(e, cst.Comparison):
            facts = [self.eval(e.left)] + [self.eval(c.comparator) for c in e.comparisons]
            return TENSOR if any(f.kind in TENSOR_KINDS for f in facts) else UNKNOWN
        if isinstance(e, cst.IfExp):
            return join(self.eval(e.body), self.eval(e.orelse))
        if isinstance(
            e,
            (
                cst.Integer,
                cst.Float,
                cst.Imaginary,
                cst.SimpleString,
                cst.ConcatenatedString,
                cst.FormattedString,
                cst.Ellipsis,
            ),
        ):
            return NON_TENSOR
        if isinstance(e, (cst.Tuple, cst.List)):
            if any(isinstance(el, cst.StarredElement) for el in e.elements):
                return UNKNOWN
            return Fact(K.TUPLE, items=tuple(self.eval(el.value) for el in e.elements))
        if isinstance(e, (cst.ListComp, cst.GeneratorExp, cst.SetComp)):
            inner = _Eval(self.flow, self.scope, self.env, self.disabled)
            inner.overlay = dict(self.overlay)
            inner.enter_binder(e)
            return collection(inner.eval(e.elt))
        if isinstance(e, cst.NamedExpr):
            return self.eval(e.value)
        if isinstance(e, (cst.Dict, cst.DictComp, cst.Set, cst.Lambda)):
            return NON_TENSOR
        return UNKNOWN

    def eval_name(self, name: str) -> Fact:
        if name in ("True", "False", "None"):
            return NON_TENSOR
        fact = self.lookup(name)
        if fact is not None:
            return fact
        if name == "self":
            return Fact(K.UNKNOWN)  # handled by attribute/call evaluation
        if name in self.flow._classes_by_name:
            return NON_TENSOR
        if is_model_name(name):
            return MODULE
        return UNKNOWN

    # -- self -----------------------------------------------------------------------
    def _class(self) -> cst.ClassDef | None:
        if isinstance(self.scope, cst.ClassDef):
            return self.scope
        return self.flow.class_of(self.scope)

    def _self_bound(self) -> bool:
        return self.lookup("self") is None and self._class() is not None

    def eval_self_attr(self, attr: str) -> Fact:
        cls = self._class()
        if cls is not None:
            fact = self.flow.class_facts(cls).attrs.get(attr)
            if fact is not None:
                return fact
        if attr in BUFFER_ATTRS:
            return Fact(K.BUFFER)
        if PARAMETER_ATTR.match(attr):
            return Fact(K.PARAMETER)
        if is_layer_name(attr):
            return MODULE
        return UNKNOWN

    # -- attributes -------------------------------------------------------------------
    def eval_attribute(self, e: cst.Attribute) -> Fact:
        dotted = dotted_name(e)
        if dotted is not None:
            fact = self.lookup(dotted)
            if fact is not None:
                return fact
        attr = e.attr.value
        if attr == "grad":
            return GRADIENT
        if attr in NON_TENSOR_ATTRS:
            return NON_TENSOR
        if isinstance(e.value, cst.Name) and e.value.value == "self" and self._self_bound():
            if attr == "data":
                return UNKNOWN
            return self.eval_self_attr(attr)
        if attr in BUFFER_ATTRS:
            return Fact(K.BUFFER)
        if PARAMETER_ATTR.match(attr):
            base = self.eval(e.value)
            if base.kind in (K.ACTIVATION, K.TENSOR, K.DETACHED_VIEW_OF_ACTIVATION, K.CLONE):
                return UNKNOWN
            return Fact(K.PARAMETER)
        base = self.eval(e.value)
        if base.kind is K.DATA_BATCH:
            return base  # ``batch.text``, ``batch.x``: a part of the batch
        if attr == "data":
            return TENSOR if base.kind in TENSOR_KINDS else UNKNOWN
        if attr in VIEW_ATTRS:
            return self.view_of(base)
        if attr == "param_groups":
            return collection(UNKNOWN)
        if base.kind is K.MODULE:
            if attr in ("module", "_orig_mod") or is_layer_name(attr):
                return MODULE
            return UNKNOWN
        if base.kind is K.ACTIVATION:
            # Model outputs: ``out.logits``, ``outputs.last_hidden_state``.
            return ACTIVATION
        return UNKNOWN

    # -- subscripts -----------------------------------------------------------------
    def basic_index(self, e: cst.Subscript) -> bool:
        for el in e.slice:
            s = el.slice
            if isinstance(s, cst.Slice):
                continue
            v = s.value
            if isinstance(v, cst.UnaryOperation):
                v = v.expression
            if isinstance(v, (cst.Integer, cst.Ellipsis)):
                continue
            if isinstance(v, cst.Name):
                if v.value == "None":
                    continue
                f = self.lookup(v.value)
                if f is not None and f.kind is K.NON_TENSOR:
                    continue
            return False
        return True

    def eval_subscript(self, e: cst.Subscript) -> Fact:
        if len(e.slice) == 1 and isinstance(e.slice[0].slice, cst.Index):
            key = e.slice[0].slice.value
            if isinstance(key, cst.SimpleString) and key.evaluated_value == "params":
                return collection(Fact(K.PARAMETER, origin=e))
        base = self.eval(e.value)
        k = base.kind
        if k is K.COLLECTION:
            return base.elem or UNKNOWN
        if k is K.TUPLE:
            items = base.items or ()
            if len(e.slice) == 1 and isinstance(e.slice[0].slice, cst.Index):
                key = e.slice[0].slice.value
                if isinstance(key, cst.Integer):
                    i = int(key.value, 0)
                    return items[i] if i < len(items) else UNKNOWN
            out: Fact | None = None
            for it in items:
                out = join(out, it) if out is not None else it
            return out or UNKNOWN
        if k is K.MODULE:
            return MODULE
        if k is K.ACTIVATION:
            return ACTIVATION
        if k is K.DATA_BATCH:
            return base  # ``batch[0]``, ``batch["input_ids"]``: a part of the batch
        if k in TENSOR_KINDS:
            if self.basic_index(e):
                return self.view_of(base)
            return self.graph() if k in REQUIRES_GRAD else TENSOR
        return UNKNOWN

    def view_of(self, base: Fact) -> Fact:
        k = base.kind
        if k is K.DETACHED_VIEW_OF_ACTIVATION:
            return base
        if k in REQUIRES_GRAD:
            return self.graph()  # a view of a leaf is not a leaf
        if k in (K.GRADIENT, K.BUFFER, K.TENSOR, K.CLONE):
            return Fact(k)
        return UNKNOWN

    # -- arithmetic -------------------------------------------------------------------
    def arith(self, facts: Iterable[Fact]) -> Fact:
        facts = list(facts)
        if any(f.kind in REQUIRES_GRAD for f in facts):
            return self.graph()
        if any(f.kind in TENSOR_KINDS for f in facts):
            if all(f.kind in TENSOR_KINDS or f.kind is K.NON_TENSOR for f in facts):
                return TENSOR
            return UNKNOWN
        if facts and all(f.kind is K.NON_TENSOR for f in facts):
            return NON_TENSOR
        return UNKNOWN

    def _flat_args(self, call: cst.Call) -> list[Fact]:
        out = []
        for a in call.args:
            f = self.eval(a.value)
            if f.kind is K.TUPLE:
                out.extend(f.items or ())
            elif f.kind is K.COLLECTION:
                out.append(f.elem or UNKNOWN)
            else:
                out.append(f)
        return out

    # -- calls ------------------------------------------------------------------------
    def eval_call(self, call: cst.Call) -> Fact:
        func = call.func
        imports = self.flow.imports
        name = dotted_name(func)
        if name is not None:
            head = name.split(".")[0]
            shadow = self.lookup(head)
            if head in imports.aliases and (shadow is None or shadow.kind is K.NON_TENSOR):
                fact = self.eval_qualified(imports.resolve(func) or name, call)
                if fact is not None:
                    return fact
        if isinstance(func, cst.Attribute):
            return self.eval_method(call, func)
        if isinstance(func, cst.Name):
            return self.eval_plain_call(call, func.value)
        # ``self.layers[i](x)``, ``getattr(self, name)(x)``
        callee = self.eval(func)
        if callee.kind is K.MODULE:
            return self.graph()
        return UNKNOWN

    def eval_qualified(self, qual: str, call: cst.Call) -> Fact | None:
        constructed = constructed_kind(qual)
        if constructed is not None:
            return Fact(constructed, origin=call)
        if qual.startswith(("numpy.random.", "random.", "math.")):
            return NON_TENSOR  # numbers and arrays: no graph (``np.random.randint(1, 4)``)
        if qual in ("torch.nn.Parameter", "torch.nn.parameter.Parameter"):
            rg = _kwarg(call, "requires_grad")
            if rg is None and len(call.args) > 1 and call.args[1].keyword is None:
                rg = call.args[1]
            if rg is not None and _is_false(rg.value):
                return TENSOR
            return Fact(K.PARAMETER, origin=call)
        if qual in ("torch.autograd.grad",):
            return collection(GRADIENT)
        if qual in ("torch.autograd.Variable", "torch.autograd.variable.Variable"):
            rg = _kwarg(call, "requires_grad")
            if rg is not None and _is_true(rg.value):
                return Fact(K.LEAF_REQUIRES_GRAD, origin=call)
            inner = self.eval(call.args[0].value) if call.args else UNKNOWN
            return inner if inner.kind in TENSOR_KINDS else UNKNOWN
        if qual.startswith("torch.nn.init."):
            first = call.args[0].value if call.args else None
            return self.eval(first) if first is not None else UNKNOWN
        if qual.startswith("torch.nn.utils."):
            return TENSOR if qual.endswith("clip_grad_norm_") else UNKNOWN
        if qual.startswith("torch.nn.") and not qual.startswith("torch.nn.functional."):
            last = qual.rsplit(".", 1)[-1]
            return MODULE if last[:1].isupper() else None
        if MODEL_FACTORIES.match(qual):
            if qual == "copy.deepcopy":
                arg = self.eval(call.args[0].value) if call.args else UNKNOWN
                return arg if arg.kind in (K.MODULE, K.COLLECTION) else UNKNOWN
            return MODULE
        if qual.endswith(".from_pretrained") and re.search(r"Model|For[A-Z]", qual):
            return MODULE
        if not qual.startswith(TORCH_DIFFERENTIABLE_NAMESPACES):
            return None
        last = qual.rsplit(".", 1)[-1]
        if qual.count(".") == 1 and last in TENSOR_FACTORIES:
            rg = _kwarg(call, "requires_grad")
            if rg is not None and _is_true(rg.value):
                return Fact(K.LEAF_REQUIRES_GRAD, origin=call)
            if last == "as_tensor":
                return UNKNOWN  # may return its argument itself
            return TENSOR
        if last in TORCH_NO_GRAPH_FUNCTIONS:
            non_tensor = last.startswith(
                (
                    "is_",
                    "manual_seed",
                    "save",
                    "load",
                    "device",
                    "dtype",
                    "get_",
                    "can_",
                    "promote",
                    "result",
                    "set_",
                    "no_grad",
                    "enable_grad",
                    "inference",
                )
            )
            return NON_TENSOR if non_tensor else TENSOR
        if last == "detach":
            args = self._flat_args(call)
            return self.detach_of(args[0], call) if args else UNKNOWN
        if last[:1].isupper():
            return None  # torch.Generator(...), torch.Size(...)
        return self.arith(self._flat_args(call)) if call.args else UNKNOWN

    def detach_of(self, base: Fact, call: cst.Call) -> Fact:
        if base.kind is K.ACTIVATION:
            return Fact(K.DETACHED_VIEW_OF_ACTIVATION, origin=call)
        if base.kind is K.DETACHED_VIEW_OF_ACTIVATION:
            return base
        if base.kind in TENSOR_KINDS:
            return TENSOR
        return UNKNOWN

    def eval_plain_call(self, call: cst.Call, name: str) -> Fact:
        if name == "self" and self._self_bound():
            cls = self._class()
            return self.graph() if cls is not None and self.flow.is_module_class(cls) else UNKNOWN
        bound = self.lookup(name)
        if bound is not None:
            if bound.kind is K.MODULE:
                return self.graph()
            if bound.kind is not K.NON_TENSOR or self.flow.summaries.resolve(call, None) is None:
                return UNKNOWN
        if name in ("list", "tuple", "iter", "sorted", "reversed", "filter"):
            if not call.args:
                return UNKNOWN
            src = self.eval(call.args[-1].value)
            if src.kind is K.COLLECTION or (name == "iter" and src.kind is K.DATA_LOADER):
                return src
            if src.kind is K.TUPLE:
                return collection(self.elem_of(src))
            return UNKNOWN
        if name == "enumerate" and call.args:
            return collection(Fact(K.TUPLE, items=(NON_TENSOR, self.elem_of(self.eval(call.args[0].value)))))
        if name == "zip":
            return collection(Fact(K.TUPLE, items=tuple(self.elem_of(self.eval(a.value)) for a in call.args)))
        if name == "range":
            return collection(NON_TENSOR)
        if name in ("len", "int", "float", "str", "bool", "isinstance", "hasattr", "print"):
            return NON_TENSOR
        if name in ("min", "max", "abs", "round") and call.args and not any(a.star for a in call.args):
            if len(call.args) == 1 and name in ("min", "max"):
                return UNKNOWN  # ``max(values)``: an item of an iterable
            return self.arith(self.eval(a.value) for a in call.args if a.keyword is None)
        if name == "next" and call.args:
            item = self.elem_of(self.eval(call.args[0].value))
            # ``next(it)``, ``next(iter(loader))`` of an iterator nothing else is known of: a data batch
            return Fact(K.DATA_BATCH, origin=call) if item.kind is K.UNKNOWN else item
        if bound is None or bound.kind is K.NON_TENSOR:  # not rebound since its `def`
            returned = self.returned(call, None)
            if returned is not None:
                return returned
        cls = self.flow._classes_by_name.get(name)
        if cls is not None:
            if self.flow.is_module_class(cls):
                return MODULE
            return Fact(K.OPTIMIZER, origin=call) if self.flow.is_optimizer_class(cls) else UNKNOWN
        if name[:1].isupper() and _MODEL_CLASS.search(name):
            return MODULE
        if is_model_name(name):
            return self.graph()  # ``model(x)``, ``G(z)``, ``netD(fake)``
        return UNKNOWN

    def eval_method(self, call: cst.Call, func: cst.Attribute) -> Fact:
        m = func.attr.value
        recv = func.value
        if isinstance(recv, cst.Name) and recv.value == "self" and self._self_bound():
            return self.eval_self_method(call, m)
        if m in ("parameters", "named_parameters") and self._frozen_module(recv):
            frozen = collection(TENSOR)  # a moving-average copy whose weights were set requires_grad=False
            return frozen if m == "parameters" else collection(Fact(K.TUPLE, items=(NON_TENSOR, TENSOR)))
        if m in ("parameters",):
            return collection(Fact(K.PARAMETER, origin=call))
        if m == "named_parameters":
            return collection(Fact(K.TUPLE, items=(NON_TENSOR, Fact(K.PARAMETER, origin=call))))
        if m == "buffers":
            return collection(Fact(K.BUFFER))
        if m == "named_buffers":
            return collection(Fact(K.TUPLE, items=(NON_TENSOR, Fact(K.BUFFER))))
        if m in ("modules", "children"):
            return collection(MODULE)
        if m in ("named_modules", "named_children"):
            return collection(Fact(K.TUPLE, items=(NON_TENSOR, MODULE)))
        if m in ("items",):
            return collection(Fact(K.TUPLE, items=(NON_TENSOR, UNKNOWN)))
        if (
            m == "scale"
            and len(call.args) == 1
            and GRAD_SCALER_NAME.search((dotted_name(recv) or "").rsplit(".", 1)[-1])
        ):
            return self.eval(call.args[0].value)  # ``scaler.scale(loss)``: the loss times a number
        base = self.eval(recv)
        k = base.kind
        if k is K.MODULE:
            if m in ("forward", "__call__") or is_layer_name(m):
                return self.graph()  # ``model.encoder(x)``
            if m in (
                "to",
                "cuda",
                "cpu",
                "train",
                "eval",
                "float",
                "half",
                "double",
                "bfloat16",
                "requires_grad_",
                "apply",
                "type",
                "share_memory",
                "to_empty",
            ):
                return MODULE
            return UNKNOWN
        if m in ("item", "tolist"):
            return NON_TENSOR  # a Python number or list, whatever the receiver (tensor or numpy)
        if k is K.DATA_BATCH and m in BATCH_PRESERVING_METHODS:
            # ``batch[0].to(dev)``, ``x.view(bs, -1)``: the same data, moved or reshaped
            return collection(base) if m in ("split", "chunk", "unbind", "tensor_split") else base
        if k not in TENSOR_KINDS:
            return UNKNOWN
        if m == "detach":
            if k is K.ACTIVATION and self.eval(view_root(recv)).kind in STATE_KINDS:
                return TENSOR  # ``weight[0].detach()``: a window on a parameter, not an activation
            return self.detach_of(base, call)
        if m == "clone":
            if k in REQUIRES_GRAD:
                return self.graph()  # clone is differentiable
            if k is K.GRADIENT:
                return TENSOR
            return Fact(K.CLONE)
        if m == "requires_grad_":
            arg = call.args[0].value if call.args else None
            if _is_false(arg):
                return TENSOR if k is not K.ACTIVATION else base
            if k in (K.ACTIVATION, K.PARAMETER, K.LEAF_REQUIRES_GRAD):
                return base
            return Fact(K.LEAF_REQUIRES_GRAD, origin=call)
        if m in SCALAR_METHODS:
            return NON_TENSOR
        if m in NO_GRAPH_METHODS:
            return TENSOR
        if is_inplace_method(m):
            return base  # returns its receiver
        if m in VIEW_METHODS:
            view = self.view_of(base)
            if m in ("split", "chunk", "unbind", "tensor_split"):
                return collection(view)
            return view
        if m in MOVE_METHODS:
            if k is K.LEAF_REQUIRES_GRAD:
                return base if self._noop_move(base, call, m) else self.graph()
            if k is K.PARAMETER:
                return self.graph()
            if k is K.DETACHED_VIEW_OF_ACTIVATION:
                return TENSOR  # may alias or copy: unknown, so no longer an evident alias
            return Fact(k) if k in (K.ACTIVATION, K.CLONE, K.GRADIENT, K.BUFFER) else TENSOR
        args = [base] + self._flat_args(call)
        if k in (K.GRADIENT, K.BUFFER, K.CLONE, K.TENSOR, K.DETACHED_VIEW_OF_ACTIVATION):
            return self.graph() if any(a.kind in REQUIRES_GRAD for a in args) else TENSOR
        return self.arith(args)

    @staticmethod
    def _noop_move(base: Fact, call: cst.Call, method: str) -> bool:
        """``torch.randn(3, requires_grad=True).float()`` returns the leaf itself."""
        origin = base.origin
        if not isinstance(origin, cst.Call):
            return False
        dtype = _kwarg(origin, "dtype")
        device = _kwarg(origin, "device")
        if method == "float":
            return dtype is None
        if method == "cpu":
            return device is None
        if method == "to" and len(call.args) == 1 and device is not None:
            return cst.Module([]).code_for_node(call.args[0].value) == cst.Module([]).code_for_node(
                device.value
            )
        return False

    def eval_self_method(self, call: cst.Call, m: str) -> Fact:
        if m in ("parameters",):
            return collection(Fact(K.PARAMETER, origin=call))
        if m == "named_parameters":
            return collection(Fact(K.TUPLE, items=(NON_TENSOR, Fact(K.PARAMETER, origin=call))))
        if m in ("modules", "children"):
            return collection(MODULE)
        if m in ("named_modules", "named_children"):
            return collection(Fact(K.TUPLE, items=(NON_TENSOR, MODULE)))
        if m == "buffers":
            return collection(Fact(K.BUFFER))
        if m == "forward":
            return self.graph()
        cls = self._class()
        if cls is not None:
            returned = self.returned(call, cls.name.value)
            if returned is not None:
                return returned  # ``self.compute_loss(batch)``: what the method returns
        if self.eval_self_attr(m).kind is K.MODULE:
            return self.graph()  # ``self.encoder(h)``
        return UNKNOWN

    def _frozen_module(self, recv: cst.BaseExpression) -> bool:
        """``self.avgG`` (or ``self.getOriginalAvgG()``) whose parameters a method of the class freezes."""
        cls = self._class()
        if cls is None or not self._self_bound():
            return False
        summaries = self.flow.summaries
        attr = summaries.module_attr_of(recv, cls.name.value)
        return attr is not None and attr in summaries.frozen_attrs(cls.name.value)

    def returned(self, call: cst.Call, class_name: str | None) -> Fact | None:
        """What calling a function or method of this file gives, from its summary (None: not one).

        The fact's ``origin`` is the callee's ``def`` (the evidence). Its grad mode is
        the caller's: a forward the callee runs under the caller's ``no_grad`` builds no graph.
        """
        from gradlint.static.semantics.summaries import _is_stub

        summaries = self.flow.summaries
        callee = summaries.resolve(call, class_name)
        if callee is None:
            return None
        if callee in summaries._busy or _is_stub(callee):
            return UNKNOWN  # recursion, or a body slicing left out
        summary = summaries.of(callee)
        if summary.yields is not None:
            return collection(self._summary_fact(summary.yields, callee))
        if summary.return_items is not None:
            return Fact(K.TUPLE, items=tuple(self._summary_fact(k, callee) for k in summary.return_items))
        return self._summary_fact(summary.returns, callee)

    def _summary_fact(self, kind: str, callee: cst.FunctionDef) -> Fact:
        from gradlint.static.semantics import summaries as S

        if kind in (S.ACTIVATION, S.LOSS):
            return TENSOR if self.disabled else Fact(K.ACTIVATION, origin=callee)
        if kind == S.DETACHED:
            return Fact(K.TENSOR, origin=callee)
        if kind in (S.NUMBER, S.NONE):
            return NON_TENSOR
        return UNKNOWN

    # -- iteration ----------------------------------------------------------------------
    def elem_of(self, fact: Fact) -> Fact:
        if fact.kind is K.COLLECTION:
            return fact.elem or UNKNOWN
        if fact.kind is K.TUPLE:
            out: Fact | None = None
            for it in fact.items or ():
                out = join(out, it) if out is not None else it
            return out or UNKNOWN
        if fact.kind is K.ACTIVATION:
            return ACTIVATION
        if fact.kind is K.MODULE:
            return MODULE  # nn.Sequential / ModuleList
        if fact.kind is K.DATA_LOADER:
            return LOADER_ITEM
        return UNKNOWN


#: Optimizer classes outside ``torch.optim`` (qualified names as imports resolve them).
_OPTIMIZER_QUALS = frozenset(
    {
        "transformers.AdamW",
        "transformers.Adafactor",
        "transformers.optimization.AdamW",
        "transformers.optimization.Adafactor",
    }
)
_OPTIMIZER_PACKAGES = ("torch.optim.", "bitsandbytes.optim.", "apex.optimizers.", "torch_optimizer.")
_NOT_OPTIMIZER_PACKAGES = ("torch.optim.lr_scheduler.", "torch.optim.swa_utils.")
_LOADER_QUALS = frozenset({"torch.utils.data.DataLoader", "torch.utils.data.dataloader.DataLoader"})


def constructed_kind(qual: str) -> Kind | None:
    """What calling the class ``qual`` (imports resolved) builds: OPTIMIZER, DATA_LOADER or None."""
    if qual in _LOADER_QUALS:
        return K.DATA_LOADER
    if qual in _OPTIMIZER_QUALS:
        return K.OPTIMIZER
    last = qual.rsplit(".", 1)[-1]
    if (
        qual.startswith(_OPTIMIZER_PACKAGES)
        and not qual.startswith(_NOT_OPTIMIZER_PACKAGES)
        and last[:1].isupper()
    ):
        return K.OPTIMIZER
    return None


def unwrap_data_wrappers(it: cst.BaseExpression) -> cst.BaseExpression:
    """``enumerate(tqdm(loader))`` -> ``loader``: the iterable under ``enumerate``/``tqdm``-like wrappers."""
    while isinstance(it, cst.Call) and (dotted_name(it.func) or "") in DATA_WRAPPERS and it.args:
        it = it.args[0].value
    return it


def iterates_data(it: cst.BaseExpression) -> bool:
    """``for x, y in loader``, ``enumerate(train_loader)``, ``tqdm(data_iter)``: the items are data batches."""
    name = dotted_name(unwrap_data_wrappers(it))  # a wrapper called without arguments has no dotted name
    return name is not None and DATA_SOURCE_NAME.search(name.rsplit(".", 1)[-1]) is not None


def _with_batch(elem: Fact, batch: Fact) -> Fact:
    """An item of a data source: what nothing else says of it is the batch (``enumerate`` keeps its index)."""
    if elem.kind is K.UNKNOWN or elem is LOADER_ITEM:
        return batch
    if elem.kind is K.TUPLE and elem.items is not None:
        items = tuple(_with_batch(it, batch) for it in elem.items)
        if any(new is not old for new, old in zip(items, elem.items)):
            return Fact(K.TUPLE, items=items)
    return elem


def _bind_target(target: cst.BaseExpression, fact: Fact) -> list[tuple[str, Fact]]:
    """(dotted name, fact) pairs bound by assigning ``fact`` to ``target``."""
    if isinstance(target, (cst.Name, cst.Attribute)):
        name = dotted_name(target)
        return [(name, fact)] if name else []
    if isinstance(target, (cst.Tuple, cst.List)):
        elements = target.elements
        out: list[tuple[str, Fact]] = []
        starred = any(isinstance(el, cst.StarredElement) for el in elements)
        for i, el in enumerate(elements):
            if isinstance(el, cst.StarredElement):
                sub = collection(UNKNOWN)
            elif (
                fact.kind is K.TUPLE
                and fact.items is not None
                and len(fact.items) == len(elements)
                and not starred
            ):
                sub = fact.items[i]
            elif fact.kind is K.COLLECTION:
                sub = fact.elem or UNKNOWN
            elif fact.kind is K.ACTIVATION:
                sub = ACTIVATION  # ``out, hidden = rnn(x)``
            elif fact.kind is K.DATA_BATCH:
                sub = fact  # ``for i, (x, y) in enumerate(loader)``: parts of the batch
            else:
                sub = UNKNOWN
            out.extend(_bind_target(el.value, sub))
        return out
    return []  # subscripts bind nothing


# --------------------------------------------------------------------------- the walk
Env = dict[str, Fact]


def _join_env(a: Env, b: Env) -> Env:
    if a is b:
        return a
    out = {}
    for name in a.keys() | b.keys():
        out[name] = join(a.get(name), b.get(name))
    return out


def _assign(env: Env, pairs: Iterable[tuple[str, Fact]]) -> Env:
    pairs = list(pairs)
    if not pairs:
        return env
    env = dict(env)
    for name, fact in pairs:
        prefix = name + "."
        for key in [k for k in env if k.startswith(prefix)]:
            del env[key]  # rebinding ``x`` forgets ``x.attr``
        env[name] = fact
    return env


def _scalar_annotation(annotation: cst.Annotation | None) -> bool:
    return (
        annotation is not None
        and isinstance(annotation.annotation, cst.Name)
        and annotation.annotation.value in ("int", "float", "bool", "str")
    )


class _Walker:
    """Walks one scope's statements in order, recording the env before each."""

    def __init__(self, flow: Dataflow, scope: Scope, facts: ScopeKinds) -> None:
        self.flow = flow
        self.scope = scope
        self.facts = facts
        self.memo: dict[cst.CSTNode, tuple[Env, bool, Env]] = {}

    def run(self) -> None:
        scope = self.scope
        env: Env = {}
        disabled = False
        if isinstance(scope, cst.FunctionDef):
            disabled = self.decorated_disabled(scope)
            params = scope.params
            for p in list(params.posonly_params) + list(params.params) + list(params.kwonly_params):
                fact = UNKNOWN
                if p.name.value == "self":
                    continue
                if is_model_name(p.name.value):
                    fact = MODULE
                elif isinstance(p.default, (cst.Integer, cst.Float)) or _scalar_annotation(p.annotation):
                    fact = NON_TENSOR  # ``gamma=0.75``, ``lr: float``
                env[p.name.value] = fact
            for star in (params.star_arg, params.star_kwarg):
                if isinstance(star, cst.Param):
                    env[star.name.value] = UNKNOWN
            body = _block(scope.body)
        else:
            body = _block(scope.body) if isinstance(scope, cst.ClassDef) else scope.body
        self.block(body, env, disabled)

    def decorated_disabled(self, func: cst.FunctionDef) -> bool:
        for dec in func.decorators:
            mode = grad_mode_of(dec.decorator, self.flow.imports)
            if mode is not None:
                return not mode
            name = (
                dotted_name(dec.decorator.func if isinstance(dec.decorator, cst.Call) else dec.decorator)
                or ""
            )
            if name.endswith("_use_grad_for_differentiable") or name.endswith("no_grad"):
                return True
        return False

    def block(self, body: Sequence[cst.CSTNode], env: Env, disabled: bool) -> Env:
        for stmt in body:
            env = self.stmt(stmt, env, disabled)
        return env

    def record(self, stmt: cst.CSTNode, env: Env, disabled: bool) -> None:
        self.facts.env_before[stmt] = env
        if disabled:
            self.facts.disabled[stmt] = True
        elif stmt in self.facts.disabled:
            del self.facts.disabled[stmt]

    def ev(self, env: Env, disabled: bool) -> _Eval:
        return _Eval(self.flow, self.scope, env, disabled)

    def stmt(self, stmt: cst.CSTNode, env: Env, disabled: bool) -> Env:
        self.record(stmt, env, disabled)
        if isinstance(stmt, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
            for small in stmt.body:
                self.record(small, env, disabled)
                env = self.small(small, env, disabled)
            return env
        if isinstance(stmt, cst.If):
            then = self.block(_block(stmt.body), env, disabled)
            if stmt.orelse is None:
                other = env
            elif isinstance(stmt.orelse, cst.If):
                other = self.stmt(stmt.orelse, env, disabled)
            else:
                other = self.block(_block(stmt.orelse), env, disabled)
            return _join_env(then, other)
        if isinstance(stmt, (cst.For, cst.While)):
            return self.loop(stmt, env, disabled)
        if isinstance(stmt, cst.With):
            inner = disabled
            pairs = []
            ev = self.ev(env, disabled)
            for item in stmt.items:
                mode = grad_mode_of(item.item, self.flow.imports)
                if mode is not None:
                    inner = not mode
                if item.asname is not None:
                    pairs.extend(_bind_target(item.asname.name, UNKNOWN))
                ev.eval(item.item)
            return self.block(_block(stmt.body), _assign(env, pairs), inner)
        if isinstance(stmt, (cst.Try, cst.TryStar)):
            after_body = self.block(_block(stmt.body), env, disabled)
            start = _join_env(env, after_body)
            out = after_body
            if stmt.orelse is not None:
                out = self.block(_block(stmt.orelse), after_body, disabled)
            for handler in stmt.handlers:
                self.record(handler, start, disabled)
                h_env = start
                if handler.name is not None:
                    h_env = _assign(h_env, _bind_target(handler.name.name, NON_TENSOR))
                out = _join_env(out, self.block(_block(handler.body), h_env, disabled))
            if stmt.finalbody is not None:
                out = self.block(_block(stmt.finalbody), out, disabled)
            return out
        if isinstance(stmt, cst.FunctionDef):
            return _assign(env, [(stmt.name.value, NON_TENSOR)])
        if isinstance(stmt, cst.ClassDef):
            return _assign(env, [(stmt.name.value, NON_TENSOR)])
        if isinstance(stmt, cst.Match):
            out = env
            for case in stmt.cases:
                out = _join_env(out, self.block(_block(case.body), env, disabled))
            return out
        return env

    def loop(self, stmt, env: Env, disabled: bool) -> Env:
        # Each loop body is walked twice (a value bound late in an iteration reaches the
        # next); nested loops would make that 2**depth walks. A loop entered again with an
        # environment it has already seen gives the same result and records the same facts,
        # so the walk is skipped. Only the latest walk is reused: its facts are the ones
        # recorded, and they must be the facts of the environment the loop is entered with.
        last = self.memo.get(stmt)
        if last is not None and last[1] == disabled and last[0] == env:
            return last[2]
        out = self._loop(stmt, env, disabled)
        self.memo[stmt] = (env, disabled, out)
        return out

    def _iterates_loader(self, it: cst.BaseExpression, env: Env, disabled: bool) -> bool:
        """``for b in dl`` / ``enumerate(tqdm(dl))`` where ``dl`` is a DATA_LOADER by its constructor."""
        return self.ev(env, disabled).eval(unwrap_data_wrappers(it)).kind is K.DATA_LOADER

    def _loop(self, stmt, env: Env, disabled: bool) -> Env:
        entry = env
        body_env = env
        for _ in range(2):
            if isinstance(stmt, cst.For):
                elem = self.ev(body_env, disabled).elem_of(self.ev(body_env, disabled).eval(stmt.iter))
                if iterates_data(stmt.iter) or self._iterates_loader(stmt.iter, body_env, disabled):
                    batch = self.facts.batches.get(stmt) or Fact(K.DATA_BATCH, origin=stmt)
                    item = _with_batch(elem, batch)
                    if item is not elem:  # something of the item is the batch
                        self.facts.batches[stmt] = batch
                        elem = item
                self.record(stmt, body_env, disabled)
                body_env = _assign(body_env, _bind_target(stmt.target, elem))
            else:
                self.record(stmt, body_env, disabled)
            end = self.block(_block(stmt.body), body_env, disabled)
            body_env = _join_env(entry, end)
        out = body_env
        if stmt.orelse is not None:
            out = self.block(_block(stmt.orelse), out, disabled)
        return out

    def small(self, small: cst.BaseSmallStatement, env: Env, disabled: bool) -> Env:
        if isinstance(small, cst.Assign):
            fact = self.ev(env, disabled).eval(small.value)
            pairs = []
            for t in small.targets:
                pairs.extend(_bind_target(t.target, fact))
                pairs.extend(self.setitem_effect(t.target, fact, env, disabled))
                pairs.extend(self.requires_grad_assign(t.target, small.value, env))
            return _assign(env, pairs)
        if isinstance(small, cst.AnnAssign):
            if small.value is None:
                return env
            fact = self.ev(env, disabled).eval(small.value)
            return _assign(env, _bind_target(small.target, fact))
        if isinstance(small, cst.AugAssign):
            target = small.target
            ev = self.ev(env, disabled)
            value = ev.eval(small.value)
            if isinstance(target, (cst.Name, cst.Attribute)):
                name = dotted_name(target)
                old = ev.eval(target)
                if name is None:
                    return env
                if old.kind in (K.TENSOR, K.CLONE) and value.kind in REQUIRES_GRAD and not disabled:
                    return _assign(env, [(name, ACTIVATION)])  # ``acc += out``: now carries a graph
                if old.kind is K.NON_TENSOR and value.kind is not K.NON_TENSOR:
                    return _assign(env, [(name, ev.arith([old, value]))])  # ``total = 0; total += loss``
                if old.kind in TENSOR_KINDS or old.kind is K.NON_TENSOR:
                    return env  # in place: same tensor, same kind
                return _assign(env, [(name, ev.arith([old, value]))])
            if isinstance(target, cst.Subscript):
                return _assign(env, self.setitem_effect(target, value, env, disabled))
            return env
        if isinstance(small, cst.Expr):
            return self.expr_statement(small.value, env, disabled)
        if isinstance(small, cst.Del):
            names = []
            t = small.target
            elements = t.elements if isinstance(t, cst.Tuple) else [t]
            for el in elements:
                target = el.value if isinstance(el, cst.Element) else el
                n = dotted_name(target)
                if n:
                    names.append(n)
            if names:
                env = dict(env)
                for n in names:
                    env.pop(n, None)
            return env
        if isinstance(small, (cst.Import, cst.ImportFrom)):
            pairs = []
            names = small.names
            if isinstance(names, cst.ImportStar):
                return env
            for alias in names:
                if alias.asname is not None:
                    n = dotted_name(alias.asname.name)
                else:
                    n = (dotted_name(alias.name) or "").split(".")[0]
                if n:
                    pairs.append((n, NON_TENSOR))
            return _assign(env, pairs)
        return env

    def setitem_effect(self, target, value: Fact, env: Env, disabled: bool) -> list[tuple[str, Fact]]:
        """``buf[i] = out`` makes a graph-less buffer carry the graph of ``out``."""
        if not isinstance(target, cst.Subscript) or disabled or value.kind not in REQUIRES_GRAD:
            return []
        root = view_root(target)
        name = dotted_name(root)
        if name is None:
            return []
        old = self.ev(env, disabled).eval(root)
        if old.kind in (K.TENSOR, K.CLONE):
            return [(name, ACTIVATION)]
        return []

    def requires_grad_assign(self, target, value, env: Env) -> list[tuple[str, Fact]]:
        """``x.requires_grad = True`` turns a graph-less tensor into a leaf."""
        if not (isinstance(target, cst.Attribute) and target.attr.value == "requires_grad"):
            return []
        name = dotted_name(target.value)
        if name is None:
            return []
        old = self.ev(env, False).eval(target.value)
        if _is_true(value) and old.kind in (K.TENSOR, K.CLONE, K.DETACHED_VIEW_OF_ACTIVATION):
            return [(name, Fact(K.LEAF_REQUIRES_GRAD, origin=target))]
        if _is_false(value) and old.kind in (K.LEAF_REQUIRES_GRAD, K.PARAMETER):
            return [(name, TENSOR)]
        return []

    def expr_statement(self, value, env: Env, disabled: bool) -> Env:
        if not (isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute)):
            return env
        m = value.func.attr.value
        recv = value.func.value
        name = dotted_name(recv)
        if name is None:
            return env
        if m == "retain_grad":
            self.facts.retained.add(name)
            return env
        ev = self.ev(env, disabled)
        if m == "requires_grad_":
            new = ev.eval(value)
            return _assign(env, [(name, new)]) if new.kind is not K.UNKNOWN else env
        if m in ("detach_",):
            return _assign(env, [(name, TENSOR)])
        if m in ("append", "extend") and len(value.args) == 1 and not disabled:
            old = ev.eval(recv)
            if (old.kind is K.TUPLE and not old.items) or old.kind is K.ACTIVATION_CONTAINER:
                added = ev.eval(value.args[0].value)
                if m == "extend":
                    added = ev.elem_of(added)
                if added.kind is K.ACTIVATION:
                    origin = old.origin if old.kind is K.ACTIVATION_CONTAINER else value
                    return _assign(env, [(name, Fact(K.ACTIVATION_CONTAINER, origin=origin))])
        if is_inplace_method(m) and not disabled:
            old = ev.eval(recv)
            if old.kind in (K.TENSOR, K.CLONE) and any(f.kind in REQUIRES_GRAD for f in ev._flat_args(value)):
                return _assign(env, [(name, ACTIVATION)])  # ``buf.copy_(out)``
        return env


# --------------------------------------------------------------------------- rule mixin
_BINDERS = (cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp, cst.Lambda)


class TracksStatements:
    """Mixin for rules: know the current statement without parent links.

    Derive a rule from ``(TracksStatements, Rule)``; if the rule defines any of
    the ``visit_``/``leave_`` methods below, it must call ``super()``.
    """

    flow_statement: cst.CSTNode | None = None

    def _flow_binders(self) -> list[cst.CSTNode]:
        stack = self.__dict__.get("_flow_binder_stack")
        if stack is None:
            stack = self.__dict__["_flow_binder_stack"] = []
        return stack

    @property
    def flow(self) -> Dataflow:
        return self.context.analysis(Dataflow)  # type: ignore[attr-defined]

    def flow_fact(self, expr: cst.BaseExpression) -> Fact:
        at = self.flow_statement
        if at is None:
            return self.flow.fact_of(expr)
        return self.flow.fact_of(expr, at=at, binders=list(self._flow_binders()))

    def flow_kind(self, expr: cst.BaseExpression) -> Kind:
        return self.flow_fact(expr).kind

    def flow_grad_disabled(self) -> bool:
        stmt = self.flow_statement
        return self.flow.grad_disabled_at(stmt) if stmt is not None else False

    def flow_scope(self) -> Scope:
        stmt = self.flow_statement
        return (
            self.flow._stmt_scope.get(stmt, self.context.module) if stmt is not None else self.context.module
        )  # type: ignore[attr-defined]

    def flow_small_statement(self, node: cst.CSTNode) -> cst.CSTNode | None:
        stmt = self.flow_statement
        if stmt is None:
            return None
        return Dataflow._small_statement_holding(stmt, node)

    def _flow_set(self, node) -> None:
        self.flow_statement = node
        self._flow_binders().clear()

    def visit_SimpleStatementLine(self, node) -> None:
        self._flow_set(node)

    def visit_SimpleStatementSuite(self, node) -> None:
        self._flow_set(node)

    def visit_If(self, node) -> None:
        self._flow_set(node)

    def visit_For(self, node) -> None:
        self._flow_set(node)

    def visit_While(self, node) -> None:
        self._flow_set(node)

    def visit_With(self, node) -> None:
        self._flow_set(node)

    def visit_Try(self, node) -> None:
        self._flow_set(node)

    def visit_ExceptHandler(self, node) -> None:
        self._flow_set(node)

    def visit_FunctionDef(self, node) -> None:
        self._flow_set(node)

    def visit_ClassDef(self, node) -> None:
        self._flow_set(node)

    def visit_Match(self, node) -> None:
        self._flow_set(node)

    def _push(self, node) -> None:
        self._flow_binders().append(node)

    def _pop(self, node) -> None:
        stack = self._flow_binders()
        if stack and stack[-1] is node:
            stack.pop()

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = visit_Lambda = _push
    leave_ListComp = leave_SetComp = leave_DictComp = leave_GeneratorExp = leave_Lambda = _pop


# --------------------------------------------------------------------------- attribute roles
def write_roles(node: cst.CSTNode) -> list[tuple[cst.BaseExpression, str]]:
    """Expressions that ``node`` (a statement or call) writes, with how.

    Roles: ``"inplace"`` (receiver of an in-place method), ``"inplace-through-data"``
    (``X`` in ``X.data.add_()``), ``"augassign"``, ``"assign"`` (``X = v`` target),
    ``"setitem"`` (``X`` in ``X[i] = v`` / ``X[i] += v``) and ``"del"``.  Rules call
    this from ``visit_Call``/``visit_Assign``/``visit_AugAssign``/``visit_Del``:
    parents are visited before children, so an ``Attribute`` visit can then tell
    a read from a write.
    """
    out: list[tuple[cst.BaseExpression, str]] = []
    if isinstance(node, cst.Call):
        for edit in inplace_edits(node):
            out.append((edit.target, "inplace"))
            if isinstance(edit.target, cst.Attribute) and edit.target.attr.value == "data":
                out.append((edit.target.value, "inplace-through-data"))
    elif isinstance(node, cst.AugAssign):
        target = node.target
        if isinstance(target, cst.Subscript):
            out.append((target.value, "setitem"))
        else:
            out.append((target, "augassign"))
    elif isinstance(node, cst.Assign):
        for t in node.targets:
            if isinstance(t.target, cst.Subscript):
                out.append((t.target.value, "setitem"))
            else:
                out.append((t.target, "assign"))
    elif isinstance(node, cst.AnnAssign):
        out.append((node.target, "assign"))
    elif isinstance(node, cst.Del):
        t = node.target
        for el in t.elements if isinstance(t, cst.Tuple) else [t]:
            out.append((el.value if isinstance(el, cst.Element) else el, "del"))
    return out


class TracksWrites:
    """Mixin for rules: ``self.write_role(attr)`` says how an expression is written
    (see :func:`write_roles`), or None for a read."""

    def _roles(self) -> dict[cst.CSTNode, str]:
        roles = self.__dict__.get("_write_roles")
        if roles is None:
            roles = self.__dict__["_write_roles"] = {}
        return roles

    def write_role(self, node: cst.CSTNode) -> str | None:
        return self._roles().get(node)

    def _note_writes(self, node) -> None:
        roles = self._roles()
        for expr, role in write_roles(node):
            roles.setdefault(expr, role)

    def visit_Call(self, node) -> None:
        self._note_writes(node)

    def visit_Assign(self, node) -> None:
        self._note_writes(node)

    def visit_AugAssign(self, node) -> None:
        self._note_writes(node)

    def visit_AnnAssign(self, node) -> None:
        self._note_writes(node)

    def visit_Del(self, node) -> None:
        self._note_writes(node)


def is_data_attr(node: cst.CSTNode) -> bool:
    return isinstance(node, cst.Attribute) and node.attr.value == "data"


def state_data_receiver(flow_fact, expr: cst.BaseExpression) -> Kind | None:
    """Kind of the state tensor (parameter, leaf, gradient, buffer) that ``expr``
    is, or is a view of; None when ``expr`` is not evidently one.

    ``flow_fact`` evaluates an expression in place (e.g. ``rule.flow_fact``).
    """
    fact = flow_fact(expr)
    if fact.kind in STATE_KINDS:
        return fact.kind
    if fact.kind is K.ACTIVATION:
        root = view_root(expr)
        # A distributed parameter's own value (``p.full_tensor()``, ``p.to_local()``) is still the parameter.
        while (
            isinstance(root, cst.Call)
            and isinstance(root.func, cst.Attribute)
            and root.func.attr.value in ("full_tensor", "to_local")
        ):
            root = view_root(root.func.value)
        if root is not expr:
            kind = flow_fact(root).kind
            if kind in STATE_KINDS:
                return kind
    return None


def _data_attrs(root: cst.CSTNode) -> list[cst.Attribute]:
    out = []
    stack = [root]
    while stack:
        node = stack.pop()
        if is_data_attr(node):
            out.append(node)
        stack.extend(iter_children(node))
    return out


def strip_state_data(context, small: cst.CSTNode, flow_fact) -> str:
    """Code of ``small`` with ``.data`` removed wherever it is taken of a
    parameter, leaf, gradient or buffer (``p.data.add_(p.grad.data)`` -> ``p.add_(p.grad)``)."""
    targets = {a for a in _data_attrs(small) if state_data_receiver(flow_fact, a.value) is not None}
    return context.module.code_for_node(small.visit(_StripData(targets)))


class _StripData(cst.CSTTransformer):
    def __init__(self, targets) -> None:
        super().__init__()
        self.targets = targets

    def leave_Attribute(self, original_node, updated_node):
        if original_node in self.targets:
            return updated_node.value
        return updated_node
