"""Autograd graphs that outlive one backward pass.

Two facts, shared by GL008 and GL010, both about *which graph a backward frees*:

* **Loop-carried recurrent state** (GL008). A name that a call reads and rebinds
  (``out, h = rnn(x, h)``) carries the graph of every previous iteration unless
  something cuts it (``h = h.detach()``, ``h.detach_()``, ``repackage_hidden(h)``,
  a re-initialisation such as ``h = model.init_hidden(bs)``).  A small abstract
  interpretation walks each loop that contains a backward call with one state
  per variable: CLEAN (no graph of ours), LIVE (built since the last backward),
  FREED (a backward freed its graph).  Reading a FREED state into the call that
  rebinds it is the bug: the next backward walks into the freed graph.  State
  kept on a module (``out, self.hidden = self.lstm(x, self.hidden)``) is checked
  per class: some method must cut it between batches.

* **Losses from a common intermediate** (GL010).  A def-use walk over each
  block, in order, gives every graph-building value an id and the ids of the
  graph values it was computed from.  A non-retaining backward frees the ids of
  its loss; a later backward whose loss reaches one of those ids fails.  A
  backward in a loop whose loss reaches a value defined before the loop frees
  it on the first iteration and fails on the second.

Both are syntactic and deliberately conservative: anything that might cut a
graph (a helper with ``detach`` in its body, a conditional reset, an unknown
``retain_graph``) counts as a cut, and values whose origin is not visible
(function parameters, attributes) count as having no graph.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import libcst as cst

from gradlint.static.semantics.backward import BackwardCall, backward_call
from gradlint.static.semantics.dataflow import TENSOR_KINDS, Dataflow, Kind, is_layer_name, is_model_name
from gradlint.static.semantics.grad_mode import grad_mode_of
from gradlint.static.semantics.imports import ImportMap, dotted_name
from gradlint.static.semantics.reads import StateReads, body_detaches, graph_reads, matches, target_vars
from gradlint.static.semantics.vocabulary import (
    BUILTIN_FUNCTIONS,
    CONSTRUCTOR_NAME,
    DATA_CALLEE_NAME,
    INFERENCE_FUNCTION,
    ITERATION_HELPERS,
    ITERATION_METHODS,
    LOSSY_COLLECTION_NAME,
    MODEL_BASE_STRICT,
    NOT_ORIGIN_MODULES,
    OBJECT_METHODS,
    OBJECT_NAME,
    RESET_METHOD_NAME,
    SANITISER_NAME,
    TENSOR_METHODS,
    VALUE_WORD,
)
from gradlint.static.semantics.walk import children, walk

# ---------------------------------------------------------------------------
# Expressions: which names' autograd history can flow into a value
# ---------------------------------------------------------------------------


def _is_object_name(name: str) -> bool:
    """``ddp_model``, ``train_dl``, ``lr_scheduler``: objects; ``model_output``: a value."""
    return bool(OBJECT_NAME.search(name)) and not VALUE_WORD.search(name)


def var_of(node: cst.CSTNode) -> str | None:
    """The tracked variable a target/read denotes: ``h``, ``self.hidden``; subscripts map to their base."""
    while isinstance(node, cst.Subscript):
        node = node.value
    return dotted_name(node)


def _subscript_base(target: cst.BaseExpression) -> str | None:
    if isinstance(target, cst.Subscript):
        return var_of(target)
    return None


class Sanitisers:
    """Names of functions (in this file, or by name) that return a detached value."""

    def __init__(self, module: cst.Module) -> None:
        self.names: set[str] = set()
        # Every function defined in the file: called by bare name, it is a helper, not a module.
        self.functions: set[str] = set()
        self.reads = StateReads(self)  # what an expression reads, these helpers cutting
        for node in _iter_defs(module):
            self.functions.add(node.name.value)
            if body_detaches(node):
                self.names.add(node.name.value)

    def is_sanitiser_callee(self, func: cst.BaseExpression) -> bool:
        name = dotted_name(func)
        if name is None:
            return False
        last = name.rsplit(".", 1)[-1]
        return last in self.names or bool(SANITISER_NAME.search(last))


def _iter_definitions(module: cst.Module) -> Iterator[cst.FunctionDef | cst.ClassDef]:
    """Every function and class statement of the file, nested ones included."""
    stack: list[cst.CSTNode] = list(module.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
            yield node
            stack.extend(_block(node.body))
        elif isinstance(node, cst.BaseCompoundStatement):
            stack.extend(_child_blocks_flat(node))


def _iter_defs(module: cst.Module) -> Iterator[cst.FunctionDef]:
    return (n for n in _iter_definitions(module) if isinstance(n, cst.FunctionDef))


class _FileSanitisers(Sanitisers):
    """The module's sanitisers, built once per file: GL008 and GL010 both ask."""

    def __init__(self, context) -> None:
        super().__init__(context.module)


def _reads_var(reads: Iterable[str], var: str) -> bool:
    return any(matches(r, var) for r in reads)


def _calls_in(node: cst.CSTNode) -> Iterator[cst.Call]:
    """Calls in an expression or simple statement, not inside lambdas or nested defs."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, (cst.Lambda, cst.FunctionDef, cst.ClassDef)):
            continue
        if isinstance(n, cst.Call):
            yield n
        stack.extend(reversed(children(n)))


def is_graph_origin(
    expr: cst.CSTNode,
    imports: ImportMap,
    san: Sanitisers,
    receiver_kind: Callable[[cst.BaseExpression], Kind] | None = None,
) -> bool:
    """Does ``expr`` call something that may hold parameters (a model, a submodule, a loss)?

    Tensor methods, ``torch.*`` functions, builtins, detaching helpers and calls
    that evidently produce input data (tokenizers, loaders) start no graph.
    With ``receiver_kind`` (value kinds from ``dataflow``), neither does a method
    of an object nobody knows to be a module (``corpus.get_data(...)``,
    ``data.BucketIterator.splits(...)``).
    """
    for call in _calls_in(expr):
        func = call.func
        if san.is_sanitiser_callee(func):
            continue
        name = dotted_name(func)
        if name is not None and CONSTRUCTOR_NAME.search(name.rsplit(".", 1)[-1]):
            continue  # building a model/loss object is not a forward pass
        if isinstance(func, cst.Name):
            if func.value in BUILTIN_FUNCTIONS or DATA_CALLEE_NAME.search(func.value):
                continue
            if func.value in san.functions or func.value in imports.aliases:
                # A function (``batch_patchify(images)``, ``from utils import make_inputs``), not a
                # module instance: modules are called through variables and attributes.
                continue
            qual = imports.resolve(func) or ""
            if qual.startswith(NOT_ORIGIN_MODULES) or qual == "torch":
                continue
            return True
        if isinstance(func, cst.Attribute):
            last = func.attr.value
            if last in TENSOR_METHODS or last in OBJECT_METHODS or DATA_CALLEE_NAME.search(last):
                continue
            qual = imports.resolve(func)
            if qual is not None and (
                qual.startswith(NOT_ORIGIN_MODULES) or qual.split(".")[0] in ("torch", "F", "np")
            ):
                continue
            if receiver_kind is not None and _opaque_receiver(func, receiver_kind):
                continue
            return True
    return False


def _opaque_receiver(func: cst.Attribute, receiver_kind: Callable[[cst.BaseExpression], Kind]) -> bool:
    """``corpus.get_data``: a method of an object with no evidence of being a module."""
    method = func.attr.value
    if method in ("forward", "__call__") or is_model_name(method) or is_layer_name(method):
        return False
    root = func.value
    while isinstance(root, (cst.Attribute, cst.Subscript, cst.Call)):
        root = root.value if not isinstance(root, cst.Call) else root.func
    if isinstance(root, cst.Name) and root.value in ("self", "cls", "super"):
        return False
    recv = dotted_name(func.value)
    if recv is None or any(is_model_name(part) or is_layer_name(part) for part in recv.split(".")):
        return False
    return receiver_kind(func.value) in _NOT_MODULE_RECEIVERS


# Reads that make a plain function's result data (GL008): parts of a batch, Python numbers.
_DATA_READS = frozenset({Kind.DATA_BATCH, Kind.NON_TENSOR})

# Receivers whose method calls are not a forward pass: unknown objects, Python values, containers, data,
# optimizers and loaders.
_NOT_MODULE_RECEIVERS = frozenset(
    {
        Kind.UNKNOWN,
        Kind.NON_TENSOR,
        Kind.COLLECTION,
        Kind.TUPLE,
        Kind.ACTIVATION_CONTAINER,
        Kind.DATA_BATCH,
        Kind.OPTIMIZER,
        Kind.DATA_LOADER,
    }
)


# ---------------------------------------------------------------------------
# Statement structure helpers
# ---------------------------------------------------------------------------


def _block(body: cst.BaseSuite) -> Sequence[cst.BaseStatement]:
    if isinstance(body, cst.IndentedBlock):
        return body.body
    if isinstance(body, cst.SimpleStatementSuite):
        return [cst.SimpleStatementLine(body=body.body)]
    return ()


def _child_blocks_flat(stmt: cst.BaseCompoundStatement) -> list[cst.BaseStatement]:
    out: list[cst.BaseStatement] = []
    for suite in _child_suites(stmt):
        out.extend(_block(suite))
    return out


def _child_suites(stmt: cst.CSTNode) -> list[cst.BaseSuite]:
    suites: list[cst.BaseSuite] = []
    body = getattr(stmt, "body", None)
    if isinstance(body, cst.BaseSuite):
        suites.append(body)
    orelse = getattr(stmt, "orelse", None)
    while orelse is not None:
        if isinstance(orelse, cst.If):
            suites.append(orelse.body)
            orelse = orelse.orelse
        else:
            suites.append(orelse.body)
            orelse = None
    for handler in getattr(stmt, "handlers", ()) or ():
        suites.append(handler.body)
    final = getattr(stmt, "finalbody", None)
    if final is not None:
        suites.append(final.body)
    for case in getattr(stmt, "cases", ()) or ():
        suites.append(case.body)
    return suites


def _walk_statements(stmts: Sequence[cst.BaseStatement]) -> Iterator[cst.BaseStatement]:
    """Every statement, compound ones included, not descending into defs/classes."""
    for stmt in stmts:
        yield stmt
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            continue
        if isinstance(stmt, cst.BaseCompoundStatement):
            yield from _walk_statements(_child_blocks_flat(stmt))


def _small_statements(stmts: Sequence[cst.BaseStatement]) -> Iterator[cst.BaseSmallStatement]:
    for stmt in _walk_statements(stmts):
        if isinstance(stmt, cst.SimpleStatementLine):
            yield from stmt.body


def scopes(
    module: cst.Module,
) -> Iterator[tuple[cst.FunctionDef | None, cst.ClassDef | None, Sequence[cst.BaseStatement]]]:
    """(function, enclosing class, body) for the module and every (nested) function."""
    yield None, None, module.body
    stack: list[tuple[cst.CSTNode, cst.ClassDef | None]] = [(s, None) for s in module.body]
    while stack:
        node, cls = stack.pop()
        if isinstance(node, cst.FunctionDef):
            body = _block(node.body)
            yield node, cls, body
            stack.extend((s, None) for s in body)
        elif isinstance(node, cst.ClassDef):
            stack.extend((s, node) for s in _block(node.body))
        elif isinstance(node, cst.BaseCompoundStatement):
            stack.extend((s, cls) for s in _child_blocks_flat(node))


def _assign_parts(small: cst.BaseSmallStatement):
    """(targets, value, augmented) of an assignment, else None."""
    if isinstance(small, cst.Assign):
        return [t.target for t in small.targets], small.value, False
    if isinstance(small, cst.AnnAssign) and small.value is not None:
        return [small.target], small.value, False
    if isinstance(small, cst.AugAssign):
        return [small.target], small.value, True
    return None


def _disables_grad(with_stmt: cst.With, imports: ImportMap) -> bool | None:
    for item in with_stmt.items:
        mode = grad_mode_of(item.item, imports)
        if mode is not None:
            return not mode
    return None


def _func_disables_grad(func: cst.FunctionDef | None, imports: ImportMap) -> bool:
    if func is None:
        return False
    for dec in func.decorators:
        mode = grad_mode_of(dec.decorator, imports)
        if mode is not None:
            return not mode
    return False


# ---------------------------------------------------------------------------
# GL008: loop-carried recurrent state
# ---------------------------------------------------------------------------

CLEAN, LIVE, FREED = 0, 1, 2


@dataclass(frozen=True)
class StateFinding:
    call: cst.Call  # the call that reads the state and rebinds it
    var: str  # the state variable, e.g. ``hidden`` or ``self.hidden``
    kind: str  # "loop" (a loop with backward) or "module" (state kept on ``self`` across calls)


@dataclass
class _Slot:
    state: int
    group: frozenset[str]  # the targets of the assignment that set it: they share one graph


_Env = dict[str, _Slot]


def _join(a: _Env, b: _Env, lenient: bool) -> _Env:
    """Join at a merge point.  ``lenient`` (if/else): a branch that cut the state wins over one
    that freed it, because the condition (``if h is not None``) is usually what makes it right."""
    out: _Env = {}
    for key in set(a) | set(b):
        sa = a.get(key, _Slot(CLEAN, frozenset()))
        sb = b.get(key, _Slot(CLEAN, frozenset()))
        if lenient and {sa.state, sb.state} == {CLEAN, FREED}:
            out[key] = _Slot(CLEAN, sa.group | sb.group)
        else:
            best = sa if sa.state >= sb.state else sb
            out[key] = _Slot(best.state, sa.group | sb.group)
    return out


class _LoopInterpreter:
    """Abstract interpretation of one outermost loop (see module docstring)."""

    def __init__(
        self,
        loop: cst.CSTNode,
        imports: ImportMap,
        san: Sanitisers,
        grad_off: bool,
        kind_of: Callable[[cst.BaseExpression, cst.CSTNode], Kind] | None = None,
    ) -> None:
        self.imports = imports
        self.san = san
        # The value kind (dataflow) of an expression at a statement: a Python number or a tensor
        # without graph never becomes recurrent state, whatever calls made it.
        # Whether a value is a data batch (an item of a loader, ``next(it)``, a part of either, moved or
        # reshaped: dataflow's DATA_BATCH) is asked of the same function.
        self.kind_of = kind_of
        self._read_exprs: dict[str, cst.BaseExpression] = {}
        self.loops: list[cst.CSTNode] = []
        self._exposed: dict[int, set[str]] = {}
        self.findings: dict[int, StateFinding] = {}
        self.deps: dict[str, set[str]] = {}
        # ``h = h_new`` after ``out, h_new = model(x, h)``: h_new is h under another name.
        self.aliases: dict[str, set[str]] = {}
        for small in _small_statements([loop]):
            parts = _assign_parts(small)
            if parts is None:
                continue
            targets, value, aug = parts
            reads = graph_reads(value, san.reads)
            for t in targets:
                for v in target_vars(t):
                    self.deps.setdefault(v, set()).update(reads | ({v} if aug else set()))
                    src = var_of(value) if isinstance(value, (cst.Name, cst.Attribute)) else None
                    if src is not None:
                        self.aliases.setdefault(src, set()).add(v)
        self.loop = loop
        self.grad_off = grad_off

    def run(self) -> list[StateFinding]:
        self._stmt(self.loop, {}, self.grad_off)
        return list(self.findings.values())

    # -- statements --------------------------------------------------------
    def _block(self, stmts: Sequence[cst.BaseStatement], env: _Env, grad_off: bool) -> _Env:
        for stmt in stmts:
            env = self._stmt(stmt, env, grad_off)
        return env

    def _stmt(self, stmt: cst.CSTNode, env: _Env, grad_off: bool) -> _Env:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                env = self._small(small, env, grad_off)
            return env
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            return env
        if isinstance(stmt, (cst.For, cst.While)):
            return self._loop(stmt, env, grad_off)
        if isinstance(stmt, cst.If):
            then = self._block(_block(stmt.body), dict(env), grad_off)
            if stmt.orelse is None:
                other = env
            elif isinstance(stmt.orelse, cst.If):
                other = self._stmt(stmt.orelse, dict(env), grad_off)
            else:
                other = self._block(_block(stmt.orelse.body), dict(env), grad_off)
            return _join(then, other, lenient=True)
        if isinstance(stmt, cst.With):
            off = _disables_grad(stmt, self.imports)
            return self._block(_block(stmt.body), env, grad_off if off is None else off)
        if isinstance(stmt, cst.Try):
            env = self._block(_block(stmt.body), env, grad_off)
            if stmt.orelse is not None:
                env = self._block(_block(stmt.orelse.body), env, grad_off)
            if stmt.finalbody is not None:
                env = self._block(_block(stmt.finalbody.body), env, grad_off)
            return env
        if isinstance(stmt, cst.BaseCompoundStatement):  # match, try*, ...
            result = env
            for suite in _child_suites(stmt):
                result = _join(result, self._block(_block(suite), dict(env), grad_off), lenient=True)
            return result
        return env

    def _loop(self, loop, env: _Env, grad_off: bool) -> _Env:
        self.loops.append(loop)
        try:
            return self._loop_body(loop, env, grad_off)
        finally:
            self.loops.pop()

    def _loop_body(self, loop, env: _Env, grad_off: bool) -> _Env:
        head = dict(env)
        if isinstance(loop, cst.For):
            iter_reads = graph_reads(loop.iter, self.san.reads)
            state = max((self._state(env, r) for r in iter_reads), default=CLEAN)
            cut = self._body_cuts_target_in_place(loop)
            if cut:
                for r in iter_reads:
                    for var in list(head):
                        if matches(r, var):
                            head[var] = _Slot(CLEAN, head[var].group)
            targets = frozenset(target_vars(loop.target))
        out = head
        for _ in range(4):  # the lattice is 3 states high: this reaches the fixpoint
            body_env = dict(head)
            if isinstance(loop, cst.For):
                for v in targets:
                    body_env[v] = _Slot(CLEAN if cut else state, targets)
            out = self._block(_block(loop.body), body_env, grad_off)
            new_head = _join(head, out, lenient=False)
            if _same(new_head, head):
                break
            head = new_head
        if loop.orelse is not None:
            out = self._block(_block(loop.orelse.body), out, grad_off)
        return _join(env, out, lenient=False)

    def _body_cuts_target_in_place(self, loop: cst.For) -> bool:
        """``for s in h: s.detach_()``."""
        names = set(target_vars(loop.target))
        for small in _small_statements(_block(loop.body)):
            if isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
                func = small.value.func
                if (
                    isinstance(func, cst.Attribute)
                    and func.attr.value == "detach_"
                    and var_of(func.value) in names
                ):
                    return True
        return False

    def _state(self, env: _Env, read: str) -> int:
        best = CLEAN
        for var, slot in env.items():
            if matches(read, var):
                best = max(best, slot.state)
        return best

    def _small(self, small: cst.BaseSmallStatement, env: _Env, grad_off: bool) -> _Env:
        parts = _assign_parts(small)
        value = parts[1] if parts is not None else getattr(small, "value", None)
        if value is None:
            return env
        # A backward inside the right-hand side (``g = torch.autograd.grad(loss, p)``) runs first.
        backwards = [
            bw for bw in (backward_call(c, self.imports) for c in _calls_in(value)) if bw is not None
        ]
        if parts is None:
            env = self._expression_statement(value, env)
        else:
            targets, _, aug = parts
            env = self._assign(targets, value, aug, env, grad_off, small)
        for bw in backwards:
            env = self._backward(bw, env)
        return env

    def _expression_statement(self, value: cst.BaseExpression, env: _Env) -> _Env:
        if not isinstance(value, cst.Call):
            return env
        func = value.func
        cut: list[str] = []
        if isinstance(func, cst.Attribute) and func.attr.value == "detach_":
            base = var_of(func.value)
            if base is not None:
                cut.append(base)
        elif self.san.is_sanitiser_callee(func):
            # ``repackage_hidden(h)`` used for its side effect (an in-place helper).
            for arg in value.args:
                base = var_of(arg.value)
                if base is not None:
                    cut.append(base)
        if not cut:
            return env
        env = dict(env)
        for base in cut:
            for var in list(env):
                if matches(var, base) or matches(base, var):
                    env[var] = _Slot(CLEAN, env[var].group)
            env.setdefault(base, _Slot(CLEAN, frozenset({base})))
        return env

    def _no_graph(self, value: cst.BaseExpression, small: cst.CSTNode | None) -> bool:
        if self.kind_of is None or small is None:
            return False
        return self.kind_of(value, small) in (Kind.NON_TENSOR, Kind.TENSOR, Kind.CLONE)

    def _from_data(self, value: cst.BaseExpression, reads: set[str], env: _Env, small) -> bool:
        """``x = batch[0].to(dev)``, ``x, y = next(it)`` (dataflow's DATA_BATCH), and a plain function
        of the batch (``x, y = _get_point(batch, device)``): a data batch, not a graph."""
        if self.kind_of is None or small is None:
            return False
        if self.kind_of(value, small) is Kind.DATA_BATCH:
            return True
        if not isinstance(value, cst.Call):
            return False
        callee = dotted_name(value.func) or ""
        if is_model_name(callee.rsplit(".", 1)[-1]) or callee.startswith("self."):
            return False
        # What dataflow cannot say of an unknown function: its result is data when every value it
        # reads that this loop binds is data (a batch, or an index from ``enumerate(loader)``).
        tracked = [r for r in reads if any(matches(r, v) for v in env)]
        return bool(tracked) and all(self._read_kind(r, small) in _DATA_READS for r in tracked)

    def _read_kind(self, read: str, small) -> Kind:
        expr = self._read_exprs.get(read)
        if expr is None:
            try:
                expr = self._read_exprs[read] = cst.parse_expression(read)
            except cst.ParserSyntaxError:
                return Kind.UNKNOWN
        return self.kind_of(expr, small)

    def _carried(self, var: str) -> bool:
        """Is ``var`` read at the top of an enclosing loop's body before it is bound again?
        A name rebound from fresh data first (``imgs = batch["lr"]``) carries nothing across iterations."""
        for loop in self.loops:
            exposed = self._exposed.get(id(loop))
            if exposed is None:
                exposed = self._exposed[id(loop)] = _exposed_reads([loop], set())
            if any(matches(r, var) or matches(var, r) for r in exposed):
                return True
        return False

    def _assign(self, targets, value, aug: bool, env: _Env, grad_off: bool, small=None) -> _Env:
        reads = graph_reads(value, self.san.reads)
        bound: list[str] = []
        for t in targets:
            bound.extend(target_vars(t))
        rebinders = set(bound)
        for b in bound:
            rebinders |= self.aliases.get(b, set())
        no_graph = self._no_graph(value, small)
        if isinstance(value, cst.Call) and not grad_off and not no_graph:
            # Sorted: which of ``(h, c)`` a message names must not depend on set order (PYTHONHASHSEED).
            for r in sorted(reads):
                if self._state(env, r) == FREED and any(matches(r, v) for v in rebinders):
                    var = min(v for v in rebinders if matches(r, v))
                    if self._carried(var):
                        self.findings.setdefault(id(value), StateFinding(value, var, "loop"))
        if aug:
            reads = reads | set(bound)
        from_data = self._from_data(value, reads, env, small)
        if grad_off or no_graph or from_data:
            state = CLEAN
        else:
            state = max((self._state(env, r) for r in reads), default=CLEAN)
            if state == CLEAN and reads and any(True for _ in _calls_in(value)):
                state = LIVE
        env = dict(env)
        group = frozenset(bound)
        for v in bound:
            for var in list(env):
                if var != v and matches(var, v):  # rebinding ``self`` parts: forget the old fields
                    del env[var]
            env[v] = _Slot(state, group)
        for t in targets:
            base = _subscript_base(t)
            if base is not None and not reads and base in env:
                env[base] = _Slot(
                    CLEAN, env[base].group
                )  # ``hidden[0] = hidden[0].detach()``-style partial cut
        return env

    def _backward(self, bw: BackwardCall, env: _Env) -> _Env:
        if bw.retain_graph is not False or bw.target is None:
            return env  # retained (or unknown): the graph survives, nothing is freed
        roots = graph_reads(bw.target, self.san.reads)
        reach = self._closure(roots)
        env = dict(env)
        for var, slot in env.items():
            if slot.state == LIVE and (
                _reads_var(reach, var) or any(_reads_var(reach, g) for g in slot.group)
            ):
                env[var] = _Slot(FREED, slot.group)
        return env

    def _closure(self, roots: set[str]) -> set[str]:
        seen: set[str] = set()
        todo = list(roots)
        while todo:
            r = todo.pop()
            if r in seen:
                continue
            seen.add(r)
            for var, deps in self.deps.items():
                if matches(r, var) or matches(var, r):
                    todo.extend(d for d in deps if d not in seen)
        return seen


def _names_read(node: cst.CSTNode | None) -> set[str]:
    out: set[str] = set()
    stack = [node] if node is not None else []
    while stack:
        n = stack.pop()
        if isinstance(n, (cst.Name, cst.Attribute)):
            name = dotted_name(n)
            if name is not None:
                out.add(name)
                continue
        if isinstance(n, cst.Attribute):
            stack.append(n.value)
            continue
        if isinstance(n, cst.Arg):
            stack.append(n.value)
            continue
        stack.extend(children(n))
    return out


def _exposed_reads(stmts: Sequence[cst.CSTNode], killed: set[str]) -> set[str]:
    return _exposed(stmts, set(killed))[0]


def _exposed(stmts: Sequence[cst.CSTNode], killed: set[str]) -> tuple[set[str], set[str]]:
    """Names read in ``stmts`` before a binding that always runs first, and the names bound.

    A ``for`` loop counts as running (its target and what its body binds first are bound after
    it: a loop over the data runs); what a branch or a ``while`` body binds is not counted."""
    out: set[str] = set()
    for stmt in stmts:
        if isinstance(stmt, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
            for small in stmt.body:
                parts = _assign_parts(small)
                if parts is None:
                    out |= {r for r in _names_read(small) if not any(matches(r, k) for k in killed)}
                    continue
                targets, value, aug = parts
                reads = _names_read(value)
                for t in targets:
                    if aug or not isinstance(t, (cst.Name, cst.Attribute, cst.Tuple, cst.List)):
                        reads |= _names_read(t)
                out |= {r for r in reads if not any(matches(r, k) for k in killed)}
                for t in targets:
                    killed = killed | set(target_vars(t))
        elif isinstance(stmt, cst.For):
            out |= {r for r in _names_read(stmt.iter) if not any(matches(r, k) for k in killed)}
            killed = killed | set(target_vars(stmt.target))
            inner, killed = _exposed(_block(stmt.body), killed)
            out |= inner
        elif isinstance(stmt, (cst.While, cst.If)):
            out |= {r for r in _names_read(stmt.test) if not any(matches(r, k) for k in killed)}
            for suite in _child_suites(stmt):
                out |= _exposed_reads(_block(suite), killed)
        elif isinstance(stmt, (cst.With, cst.Try)):
            if isinstance(stmt, cst.With):
                for item in stmt.items:
                    out |= {r for r in _names_read(item.item) if not any(matches(r, k) for k in killed)}
            inner, killed = _exposed(_block(stmt.body), killed)
            out |= inner
            for suite in _child_suites(stmt)[1:]:
                out |= _exposed_reads(_block(suite), killed)
        elif isinstance(stmt, cst.BaseCompoundStatement) and not isinstance(
            stmt, (cst.FunctionDef, cst.ClassDef)
        ):
            for suite in _child_suites(stmt):
                out |= _exposed_reads(_block(suite), killed)
    return out, killed


def _same(a: _Env, b: _Env) -> bool:
    return a.keys() == b.keys() and all(a[k].state == b[k].state and a[k].group == b[k].group for k in a)


def _contains_backward(stmts: Sequence[cst.BaseStatement], imports: ImportMap) -> bool:
    for small in _small_statements(stmts):
        for call in _calls_in(small):
            if backward_call(call, imports) is not None:
                return True
    return False


def _outermost_loops(stmts: Sequence[cst.BaseStatement]) -> Iterator[tuple[cst.CSTNode, bool]]:
    """Outermost loops of a body, with whether an enclosing ``with no_grad`` is evident (resolved later)."""
    for stmt in stmts:
        if isinstance(stmt, (cst.For, cst.While)):
            yield stmt, False
        elif isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            continue
        elif isinstance(stmt, cst.BaseCompoundStatement):
            yield from _outermost_loops(_child_blocks_flat(stmt))


class RecurrentState:
    """Per-file GL008 facts; build with ``context.analysis(RecurrentState)``."""

    def __init__(self, context) -> None:
        module = context.module
        self.imports: ImportMap = context.analysis(ImportMap)
        self.sanitisers = context.analysis(_FileSanitisers)
        self.findings: list[StateFinding] = []
        seen: set[int] = set()
        in_loop_rebinds: set[int] = set()
        flow = context.analysis(Dataflow)

        def kind_of(value: cst.BaseExpression, small: cst.CSTNode) -> Kind:
            return flow.kind_of(value, at=small)

        for func, _cls, body in scopes(module):
            off = _func_disables_grad(func, self.imports)
            for loop, _ in _outermost_loops(body):
                if not _contains_backward([loop], self.imports):
                    continue
                grad_off = off or self._under_no_grad(body, loop)
                for small in _small_statements([loop]):
                    parts = _assign_parts(small)
                    if parts is not None and isinstance(parts[1], cst.Call):
                        in_loop_rebinds.add(id(parts[1]))
                interp = _LoopInterpreter(loop, self.imports, self.sanitisers, grad_off, kind_of)
                for finding in interp.run():
                    if id(finding.call) not in seen:
                        seen.add(id(finding.call))
                        self.findings.append(finding)
        for finding in self._module_state(module, in_loop_rebinds):
            if id(finding.call) not in seen:
                seen.add(id(finding.call))
                self.findings.append(finding)

    def _under_no_grad(self, body: Sequence[cst.BaseStatement], loop: cst.CSTNode) -> bool:
        """Is ``loop`` inside a grad-disabling ``with`` of this body?"""

        def search(stmts, off: bool) -> bool | None:
            for stmt in stmts:
                if stmt is loop:
                    return off
                if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
                    continue
                if isinstance(stmt, cst.BaseCompoundStatement):
                    inner = off
                    if isinstance(stmt, cst.With):
                        mode = _disables_grad(stmt, self.imports)
                        inner = off if mode is None else mode
                    found = search(_child_blocks_flat(stmt), inner)
                    if found is not None:
                        return found
            return None

        return bool(search(body, False))

    # -- state kept on the module ------------------------------------------
    def _module_state(self, module: cst.Module, skip: set[int]) -> Iterator[StateFinding]:
        classes = {c.name.value: c for c in _iter_classes(module)}
        file_resets = self._file_level_resets(module)
        for cls in classes.values():
            if not _is_module_class(cls, classes):
                continue  # a metric or a trainer keeps state too, but never runs it through autograd
            candidates: list[tuple[cst.Call, str]] = []
            own_methods = {m.name.value for m in _methods(cls)}
            for method in _methods(cls):
                if INFERENCE_FUNCTION.search(method.name.value) or _func_disables_grad(method, self.imports):
                    continue
                for small, grad_off in _smalls_with_grad(_block(method.body), self.imports):
                    if grad_off:
                        continue
                    parts = _assign_parts(small)
                    if (
                        parts is None
                        or parts[2]
                        or not isinstance(parts[1], cst.Call)
                        or id(parts[1]) in skip
                    ):
                        continue
                    targets, value, _ = parts
                    callee = dotted_name(value.func) or ""
                    if callee.split(".")[1:2] and callee.split(".")[1] in own_methods:
                        continue  # ``self.extend_cache(x, self.cache)``: a helper method, not a submodule
                    if not callee.startswith("self.") or not is_graph_origin(
                        cst.Call(func=value.func), self.imports, self.sanitisers
                    ):
                        # A recurrent step runs a submodule: ``torch.cat([self.buf, x])``,
                        # ``max(self.best, x)``, ``log(..., self.flag)`` are bookkeeping.
                        continue
                    reads = graph_reads(value, self.sanitisers.reads)
                    for t in targets:
                        for v in target_vars(t):
                            if v.startswith("self.") and v.count(".") == 1 and _reads_var(reads, v):
                                candidates.append((value, v))
            if not candidates:
                continue
            cut = self._class_cuts(cls, classes, {c for _, c in candidates}, {id(c) for c, _ in candidates})
            for call, var in candidates:
                attr = var.split(".", 1)[1]
                if var in cut or attr in file_resets:
                    continue
                yield StateFinding(call, var, "module")

    def _class_cuts(self, cls: cst.ClassDef, classes, vars_: set[str], rebinding_calls: set[int]) -> set[str]:
        """State attributes some method of the class (or an in-file base) cuts or re-creates."""
        cut: set[str] = set()
        todo, visited = [cls], set()
        while todo:
            c = todo.pop()
            if c.name.value in visited:
                continue
            visited.add(c.name.value)
            for base in c.bases:
                name = dotted_name(base.value)
                if name in classes:
                    todo.append(classes[name])
            for method in _methods(c):
                if method.name.value == "__init__":
                    continue
                if RESET_METHOD_NAME.search(method.name.value) and any(
                    v in cut or _mentions(method, v) for v in vars_
                ):
                    cut |= {v for v in vars_ if _mentions(method, v)}
                for small, guards in _smalls_with_guards(_block(method.body), ()):
                    parts = _assign_parts(small)
                    if parts is not None:
                        targets, value, aug = parts
                        if id(value) in rebinding_calls or aug:
                            continue
                        if any(_is_none_test(g, v) for g in guards for v in vars_):
                            continue  # ``if self.hidden is None: self.hidden = ...`` creates it once
                        reads = graph_reads(value, self.sanitisers.reads)
                        for t in targets:
                            for v in target_vars(t) + [_subscript_base(t) or ""]:
                                if v in vars_ and not _reads_var(reads, v):
                                    cut.add(v)
                    elif isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
                        func = small.value.func
                        if isinstance(func, cst.Attribute) and func.attr.value == "detach_":
                            base = var_of(func.value)
                            if base in vars_:
                                cut.add(base)
                        elif self.sanitisers.is_sanitiser_callee(func):
                            for arg in small.value.args:
                                if var_of(arg.value) in vars_:
                                    cut.add(var_of(arg.value))
        return cut

    def _file_level_resets(self, module: cst.Module) -> set[str]:
        """Attribute names assigned from outside a class (``model.hidden = None``), and a wildcard
        for calls to reset-like methods (``model.reset_hidden()``) whose body may be elsewhere."""
        names: set[str] = set()
        for func, cls, body in scopes(module):
            for small in _small_statements(body):
                parts = _assign_parts(small)
                if parts is not None:
                    for t in parts[0]:
                        for v in target_vars(t):
                            head, _, attr = v.rpartition(".")
                            if head and head != "self" and attr:
                                names.add(attr)
                # Only a call used for its effect resets state; ``h = model.init_hidden(bs)`` returns it.
                call = small.value if isinstance(small, cst.Expr) else None
                if isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute):
                    if RESET_METHOD_NAME.search(call.func.attr.value):
                        receiver = dotted_name(call.func.value)
                        if receiver is not None and receiver != "self":
                            names.add(_ANY_ATTR)
        if _ANY_ATTR in names:
            return _Everything()
        return names


_ANY_ATTR = "*"


class _Everything(set):
    def __contains__(self, item) -> bool:  # type: ignore[override]
        return True


def _is_module_class(
    cls: cst.ClassDef, classes: dict[str, cst.ClassDef], seen: set[str] | None = None
) -> bool:
    """Does the class derive (directly, or through classes of this file) from an ``nn.Module``-like base?"""
    seen = seen if seen is not None else set()
    seen.add(cls.name.value)
    for base in cls.bases:
        name = dotted_name(base.value) or ""
        last = name.rsplit(".", 1)[-1]
        if last in classes and last not in seen:
            if _is_module_class(classes[last], classes, seen):
                return True
        elif MODEL_BASE_STRICT.search(last):
            return True
    return False


def _smalls_with_guards(stmts: Sequence[cst.BaseStatement], guards: tuple[cst.BaseExpression, ...]):
    """Simple statements with the tests of the ``if`` statements whose body holds them."""
    for stmt in stmts:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                yield small, guards
        elif isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            continue
        elif isinstance(stmt, cst.If):
            yield from _smalls_with_guards(_block(stmt.body), guards + (stmt.test,))
            if stmt.orelse is not None:
                yield from _smalls_with_guards(
                    _block(stmt.orelse.body) if not isinstance(stmt.orelse, cst.If) else [stmt.orelse], guards
                )
        elif isinstance(stmt, cst.BaseCompoundStatement):
            yield from _smalls_with_guards(_child_blocks_flat(stmt), guards)


def _is_none_test(test: cst.BaseExpression, var: str) -> bool:
    """``var is None`` / ``not var``, alone or in an ``or``."""
    if isinstance(test, cst.BooleanOperation) and isinstance(test.operator, cst.Or):
        return _is_none_test(test.left, var) or _is_none_test(test.right, var)
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        return var_of(test.expression) == var
    if isinstance(test, cst.Comparison) and len(test.comparisons) == 1:
        comp = test.comparisons[0]
        return (
            isinstance(comp.operator, (cst.Is, cst.Equal))
            and var_of(test.left) == var
            and isinstance(comp.comparator, cst.Name)
            and comp.comparator.value == "None"
        )
    return False


def _mentions(node: cst.CSTNode, var: str) -> bool:
    return any(isinstance(n, cst.Attribute) and dotted_name(n) == var for n in walk(node))


def _iter_classes(module: cst.Module) -> Iterator[cst.ClassDef]:
    return (n for n in _iter_definitions(module) if isinstance(n, cst.ClassDef))


def _methods(cls: cst.ClassDef) -> Iterator[cst.FunctionDef]:
    for stmt in _walk_statements(_block(cls.body)):
        if isinstance(stmt, cst.FunctionDef):
            yield stmt


def _smalls_with_grad(stmts: Sequence[cst.BaseStatement], imports: ImportMap, off: bool = False):
    for stmt in stmts:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                yield small, off
        elif isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            continue
        elif isinstance(stmt, cst.BaseCompoundStatement):
            inner = off
            if isinstance(stmt, cst.With):
                mode = _disables_grad(stmt, imports)
                inner = off if mode is None else mode
            yield from _smalls_with_grad(_child_blocks_flat(stmt), imports, inner)


# ---------------------------------------------------------------------------
# GL010: several backward passes through one graph
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Def:
    anc: frozenset[int]  # ids of graph values this value was computed from (itself included)
    # ids every *element* of this value shares (a list of losses from one forward);
    # None for an empty collection that appends may still fill.
    shared: frozenset[int] | None = frozenset()
    depth: int = 0  # how many loops enclose the definition (appends in deeper loops repeat)


@dataclass(frozen=True)
class SharedGraphFinding:
    call: cst.Call  # the backward that walks into a freed graph
    first: cst.Call | None  # the earlier backward that freed it (None: the same call, previous iteration)
    loss: str  # source of the second loss
    kind: str  # "sequence" or "loop"


_EMPTY = _Def(frozenset())


@dataclass
class _Flow:
    env: dict[str, _Def]
    freed: dict[int, cst.Call] = field(default_factory=dict)  # graph id -> backward that freed it
    loops: tuple[int, ...] = ()  # first id of each enclosing loop (innermost last)


class SharedGraphs:
    """Per-file GL010 facts; build with ``context.analysis(SharedGraphs)``."""

    def __init__(self, context) -> None:
        self.context = context
        self.imports: ImportMap = context.analysis(ImportMap)
        self.sanitisers = context.analysis(_FileSanitisers)
        self.findings: list[SharedGraphFinding] = []
        self._reported: set[int] = set()
        self._next = 0
        for func, _cls, body in scopes(context.module):
            if not _contains_backward(body, self.imports):
                continue
            if func is not None and _func_disables_grad(func, self.imports):
                continue
            self._block(body, _Flow({}), grad_off=False)

    def _new_id(self) -> int:
        self._next += 1
        return self._next

    # -- expressions ---------------------------------------------------------
    def _lookup(self, env: dict[str, _Def], read: str) -> _Def:
        best, best_len = _EMPTY, -1
        for var, d in env.items():
            if matches(read, var) and len(var) > best_len:
                best, best_len = d, len(var)
        return best

    def _anc(self, expr: cst.CSTNode, env: dict[str, _Def]) -> frozenset[int]:
        out: set[int] = set()
        for r in graph_reads(expr, self.sanitisers.reads):
            out |= self._lookup(env, r).anc
        return frozenset(out)

    def _shared(
        self,
        expr: cst.BaseExpression,
        env: dict[str, _Def],
        anc: frozenset[int],
        lossy: bool = False,
        at: cst.CSTNode | None = None,
    ) -> frozenset[int] | None:
        """Graph ids that every element of the collection ``expr`` is computed from.

        ``at``: the statement that iterates ``expr`` (a ``for``), where dataflow is asked whether
        the argument of a wrapper (``ensure_tuple(loss)``) is evidently one tensor."""
        if isinstance(expr, (cst.List, cst.Tuple, cst.Set)):
            elems = [e.value for e in expr.elements if not isinstance(e, cst.StarredElement)]
            if not elems:
                return None
            if len(elems) == 1:
                return frozenset()
            common = self._anc(elems[0], env)
            for e in elems[1:]:
                common &= self._anc(e, env)
            return common
        if isinstance(expr, cst.Dict):
            vals = [e.value for e in expr.elements if isinstance(e, cst.DictElement)]
            if not vals:
                return None
            if len(vals) == 1:
                return frozenset()
            common = self._anc(vals[0], env)
            for v in vals[1:]:
                common &= self._anc(v, env)
            return common
        if isinstance(expr, (cst.ListComp, cst.SetComp, cst.GeneratorExp, cst.DictComp)):
            # Graph values the element expression reads directly are shared by all elements;
            # reads through the comprehension variable share what the iterable's elements share.
            bound: set[str] = set()
            iter_shared: set[int] = set()
            comp = expr.for_in
            while comp is not None:
                bound.update(target_vars(comp.target))
                iter_shared |= self._shared(comp.iter, env, self._anc(comp.iter, env)) or frozenset()
                comp = comp.inner_for_in
            elt = expr.value if isinstance(expr, cst.DictComp) else expr.elt
            direct: set[int] = set()
            via_bound = False
            for r in graph_reads(elt, self.sanitisers.reads):
                if any(matches(r, b) for b in bound):
                    via_bound = True
                else:
                    direct |= self._lookup(env, r).anc
            return frozenset(direct | (iter_shared if via_bound else set()))
        if isinstance(expr, (cst.Name, cst.Attribute, cst.Subscript)):
            var = var_of(expr)
            if var is not None:
                d = self._lookup(env, var)
                if d.shared is None or isinstance(d.shared, _OneElement):
                    return frozenset()  # iterating zero or one element runs one backward
                return d.shared
            return frozenset()
        if isinstance(expr, cst.Call):
            func = expr.func
            helper = (isinstance(func, cst.Name) and func.value in ITERATION_HELPERS) or (
                isinstance(func, cst.Attribute) and func.attr.value in ITERATION_METHODS
            )
            if helper:
                out: set[int] = set()
                parts = [a.value for a in expr.args]
                if isinstance(func, cst.Attribute):
                    parts.append(func.value)
                for p in parts:
                    out |= self._shared(p, env, self._anc(p, env)) or frozenset()
                return frozenset(out)
            wrapped = self._wrapped(expr, at)
            if wrapped is not None:
                # ``ensure_tuple(self.state.loss)``, ``as_list(outputs)``: a function of one value that
                # starts no graph gives the value's elements (the value itself when it is one).
                return self._shared(wrapped, env, self._anc(wrapped, env))
            # One call producing a collection of losses/outputs: all come from one forward.  Any
            # other call result (a loader, a model) is not iterated over as graph values.
            return anc if lossy else frozenset()
        return frozenset()

    def _wrapped(self, call: cst.Call, at: cst.CSTNode | None) -> cst.BaseExpression | None:
        """The one argument of a plain function that starts no graph and may hand back several
        values of it (``ensure_tuple(loss)``); None when dataflow says the argument is one tensor
        (``ensure_tuple(F.cross_entropy(out, y))`` runs one backward)."""
        func = call.func
        if at is None or not isinstance(func, cst.Name) or len(call.args) != 1:
            return None
        arg = call.args[0]
        if arg.keyword is not None or arg.star or self.sanitisers.is_sanitiser_callee(func):
            return None
        if is_graph_origin(call, self.imports, self.sanitisers):
            return None
        if self.context.analysis(Dataflow).kind_of(arg.value, at=at) in TENSOR_KINDS:
            return None
        return arg.value

    # -- statements ------------------------------------------------------------
    def _block(self, stmts: Sequence[cst.BaseStatement], flow: _Flow, grad_off: bool) -> None:
        for stmt in stmts:
            self._stmt(stmt, flow, grad_off)

    def _nested(
        self, stmts: Sequence[cst.BaseStatement], flow: _Flow, grad_off: bool, loop_start: int | None = None
    ) -> _Flow:
        inner = _Flow(
            dict(flow.env), dict(flow.freed), flow.loops + ((loop_start,) if loop_start is not None else ())
        )
        self._block(stmts, inner, grad_off)
        return inner

    def _after_branch(
        self, flow: _Flow, inner: _Flow, stmts: Sequence[cst.BaseStatement], keep_appends: bool
    ) -> None:
        """Names a branch (or loop) assigned are unknown afterwards; frees inside it do not leak out."""
        assigned: set[str] = set()
        appended: set[str] = set()
        for small in _small_statements(stmts):
            parts = _assign_parts(small)
            if parts is not None:
                for t in parts[0]:
                    assigned.update(target_vars(t))
                    base = _subscript_base(t)
                    if base is not None:
                        appended.add(base)
            elif isinstance(small, cst.Expr) and _append_target(small.value) is not None:
                appended.add(_append_target(small.value))
        for stmt in _walk_statements(stmts):
            if isinstance(stmt, cst.For):
                assigned.update(target_vars(stmt.target))
        for v in assigned:
            old, new = flow.env.get(v), inner.env.get(v)
            if not keep_appends and old is not None and new is not None and old.anc and old.anc <= new.anc:
                # Rebound from itself on one path only (``if scaling: loss = scaler.scale(loss)``):
                # on both paths it still carries the graph it had.
                flow.env[v] = _Def(old.anc, _common_shared(old.shared, new.shared), old.depth)
            else:
                flow.env[v] = _EMPTY
        for v in appended - assigned:
            flow.env[v] = inner.env.get(v, _EMPTY) if keep_appends else _EMPTY

    def _stmt(self, stmt: cst.CSTNode, flow: _Flow, grad_off: bool) -> None:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                self._small(small, flow, grad_off)
            return
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            return
        if isinstance(stmt, cst.With):
            off = _disables_grad(stmt, self.imports)
            self._block(_block(stmt.body), flow, grad_off if off is None else off)
            return
        if isinstance(stmt, (cst.For, cst.While)):
            self._loop(stmt, flow, grad_off)
            return
        if isinstance(stmt, cst.BaseCompoundStatement):
            for suite in _child_suites(stmt):
                stmts = _block(suite)
                inner = self._nested(stmts, flow, grad_off)
                self._after_branch(flow, inner, stmts, keep_appends=False)
            return

    def _loop(self, loop, flow: _Flow, grad_off: bool) -> None:
        body = _block(loop.body)
        start = self._next + 1
        inner_env = dict(flow.env)
        # A name the body rebinds is fresh on every iteration after the first: what it
        # held before the loop is not shared across iterations.
        variant: set[str] = set()
        for small in _small_statements(body):
            parts = _assign_parts(small)
            if parts is not None:
                for t in parts[0]:
                    variant.update(target_vars(t))
        for v in variant:
            if v in inner_env and inner_env[v].anc:
                nid = self._new_id()
                inner_env[v] = _Def(frozenset({nid}))
        if isinstance(loop, cst.For):
            if self.context.analysis(Dataflow).batch_bound_by(loop) is not None:
                shared = frozenset()  # items of a loader (dataflow's DATA_BATCH): fresh data, no graph
            else:
                anc = self._anc(loop.iter, flow.env)
                shared = self._shared(loop.iter, flow.env, anc, at=loop) or frozenset()
            for v in target_vars(loop.target):
                inner_env[v] = _Def(shared, frozenset())
        inner = _Flow(inner_env, dict(flow.freed), flow.loops + (start,))
        self._block(body, inner, grad_off)
        self._after_branch(flow, inner, body, keep_appends=True)
        if loop.orelse is not None:
            self._block(_block(loop.orelse.body), flow, grad_off)

    def _small(self, small: cst.BaseSmallStatement, flow: _Flow, grad_off: bool) -> None:
        parts = _assign_parts(small)
        value = parts[1] if parts is not None else getattr(small, "value", None)
        if value is None:
            return
        for call in _calls_in(value):
            bw = backward_call(call, self.imports)
            if bw is not None:
                self._backward(bw, flow)
        if parts is not None:
            self._assign(parts[0], value, parts[2], flow, grad_off, small)
        elif isinstance(small, cst.Expr):
            base = _append_target(value)
            if base is not None and isinstance(value, cst.Call) and value.args:
                self._append(base, value.args[0].value, flow, extend=value.func.attr.value == "extend")

    def _assign(self, targets, value, aug: bool, flow: _Flow, grad_off: bool, small=None) -> None:
        env = flow.env
        anc = frozenset() if grad_off else self._anc(value, env)
        kind = None
        if small is not None:
            dataflow = self.context.analysis(Dataflow)

            def kind(expr: cst.BaseExpression) -> Kind:
                return dataflow.kind_of(expr, at=small)

        if not grad_off and (anc or is_graph_origin(value, self.imports, self.sanitisers, kind)):
            nid = self._new_id()
            anc = anc | {nid}
        for t in targets:
            names = target_vars(t)
            if names and all(_is_object_name(v.rsplit(".", 1)[-1]) for v in names):
                for v in names:
                    env[v] = _EMPTY  # a model, loader or optimizer: an object, not a graph
                continue
            lossy = len(names) == 1 and bool(LOSSY_COLLECTION_NAME.search(names[0].rsplit(".", 1)[-1]))
            shared = (
                self._shared(value, env, anc, lossy)
                if anc or isinstance(value, (cst.List, cst.Dict))
                else frozenset()
            )
            if isinstance(value, _COLLECTIONS) and len(names) == 1:
                # A collection is only as shared as its elements: ``losses[i].backward()`` for
                # losses of separate forwards touches one graph each.
                anc = shared or frozenset()
            if aug:
                for v in names:
                    old = env.get(v, _EMPTY)
                    env[v] = _Def(old.anc | anc, frozenset())
                continue
            for v in names:
                for var in list(env):
                    if var != v and matches(var, v):
                        del env[var]
                env[v] = _Def(anc, shared if len(names) == 1 else anc, len(flow.loops))
            base = _subscript_base(t)
            if base is not None:
                self._append(base, value, flow, extend=False)

    def _append(self, base: str, elem: cst.BaseExpression, flow: _Flow, extend: bool) -> None:
        env = flow.env
        old = env.get(base)
        if old is None:
            return
        anc = self._anc(elem, env)
        contrib = anc
        if extend:
            contrib = self._shared(elem, env, anc) or frozenset()
        repeated = len(flow.loops) > old.depth
        if repeated:
            # Appended once per iteration: only what exists before the loop is common to all.
            start = flow.loops[-1]
            contrib = frozenset(i for i in contrib if i < start)
        if old.shared is None:
            shared = contrib if repeated else _OneElement(contrib)
        elif isinstance(old.shared, _OneElement):
            shared = frozenset(old.shared) & contrib
        else:
            shared = old.shared & contrib
        # As for literals, a filled collection carries what its elements share.
        env[base] = _Def(frozenset(shared), shared, old.depth)

    def _backward(self, bw: BackwardCall, flow: _Flow) -> None:
        if bw.target is None:
            return
        anc = self._anc(bw.target, flow.env)
        if id(bw.call) not in self._reported:
            hit = [flow.freed[i] for i in sorted(anc) if i in flow.freed]
            if hit:
                self._report(
                    SharedGraphFinding(bw.call, hit[0], self.context.code_for(bw.target), "sequence")
                )
            elif flow.loops and bw.retain_graph is False:
                start = flow.loops[-1]
                if any(i < start for i in anc):
                    self._report(SharedGraphFinding(bw.call, None, self.context.code_for(bw.target), "loop"))
        if bw.retain_graph is False:
            for i in anc:
                flow.freed.setdefault(i, bw.call)

    def _report(self, finding: SharedGraphFinding) -> None:
        self._reported.add(id(finding.call))
        self.findings.append(finding)


_COLLECTIONS = (
    cst.List,
    cst.Tuple,
    cst.Set,
    cst.Dict,
    cst.ListComp,
    cst.SetComp,
    cst.GeneratorExp,
    cst.DictComp,
)


class _OneElement(frozenset):
    """``shared`` of a collection holding exactly one appended element so far."""


def _common_shared(a: frozenset[int] | None, b: frozenset[int] | None) -> frozenset[int]:
    """What the elements share on both of two paths (an empty or one-element collection: nothing)."""
    if a is None or b is None or isinstance(a, _OneElement) or isinstance(b, _OneElement):
        return frozenset()
    return a & b


def _append_target(value: cst.BaseExpression) -> str | None:
    if (
        isinstance(value, cst.Call)
        and isinstance(value.func, cst.Attribute)
        and value.func.attr.value in ("append", "extend")
    ):
        return var_of(value.func.value)
    return None
