"""Which names does this expression read that could carry a graph into its value?

One walk, :func:`graph_reads`, answers it for every analysis; a :class:`Reads`
says what each one counts as a read, where they genuinely differ:

* **keys**: how a read is named: ``"tracked"`` (``x``, ``self.x`` for any
  ``self.x.y``: the per-function summaries), ``"dotted"`` (``out.logits``:
  recurrent state and shared graphs), ``"prefixes"`` (``out``, ``out.logits``:
  loop accumulations);
* **structural** reads are every name written in the expression (indices,
  conditions, comparisons, f-strings, callees: ``model`` in ``model(x)``), minus
  the cuts; the other analyses follow values only (a callee, a comparison or an
  index carries no graph into the result);
* **cuts**: methods whose result has no graph (``.item()``, ``.detach()``,
  ``.size()``), attributes that read none (``.data``, ``.shape``) and calls a
  rule set knows to return a leaf or a Python value (:meth:`Reads.cuts`: builtins,
  factories, a file's detaching helpers);
* **receivers**: whether ``x`` in ``x.m(...)`` is read (:meth:`Reads.reads_receiver`:
  a tensor method's receiver is, a module's or a library's is not);
* **comprehensions**: ``"all"`` (targets are names too), ``"bound"`` (the
  targets are not reads of the enclosing scope), ``"element"`` (the iterable is
  read only when the element reads its target: ``[s.detach() for s in h]``
  reads nothing).

A rule set is an instance: ``ANY_READ`` (every key read), ``HELPER_READS``
(``interproc``), ``LoopReads(imports)`` (``loops``), ``StateReads(sanitisers)``
(``state``).
"""

from __future__ import annotations

from collections.abc import Iterable

import libcst as cst

from gradlint.static.semantics.imports import ImportMap, dotted_name
from gradlint.static.semantics.vocabulary import (
    HELPER_CUT_ATTRIBUTES,
    HELPER_CUT_BUILTINS,
    HELPER_CUT_METHODS,
    LIBRARY_ALIASES,
    LOSS_CALLEE_NAME,
    MODEL_CALLEE_NAME,
    NO_GRAPH_ATTRIBUTES,
    NO_GRAPH_BUILTINS,
    NO_GRAPH_FUNCTIONS,
    NO_GRAPH_RESULT_METHODS,
    SHAPE_ARGUMENT_METHODS,
    TENSOR_FACTORY_NAME,
    TENSOR_METHODS,
)
from gradlint.static.semantics.walk import children, walk

_CONSTANTS = ("True", "False", "None")
_LITERALS = (
    cst.SimpleString,
    cst.FormattedString,
    cst.ConcatenatedString,
    cst.Integer,
    cst.Float,
    cst.Imaginary,
    cst.Ellipsis,
)
_COMPREHENSIONS = (cst.ListComp, cst.SetComp, cst.GeneratorExp, cst.DictComp)


def key_of(node: cst.CSTNode) -> str | None:
    """The name a value is tracked under: ``x``, or ``self.x`` for an attribute of ``self``."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        inner = node
        while isinstance(inner.value, cst.Attribute):
            inner = inner.value
        if isinstance(inner.value, cst.Name):
            return f"self.{inner.attr.value}" if inner.value.value == "self" else inner.value.value
    if isinstance(node, cst.Subscript):
        return key_of(node.value)
    return None


def prefixes(dotted: str) -> Iterable[str]:
    """``a.b.c`` -> ``a``, ``a.b``, ``a.b.c``."""
    parts = dotted.split(".")
    for i in range(1, len(parts) + 1):
        yield ".".join(parts[:i])


def matches(read: str, var: str) -> bool:
    """A read of ``out.logits`` is a read of ``out``; a read of ``self`` is not a read of ``self.hidden``."""
    return read == var or read.startswith(var + ".")


class Reads:
    """What one analysis counts as a read (the defaults: every name written, no cuts)."""

    keys = "tracked"  # "tracked" | "dotted" | "prefixes"
    structural = True
    # Values only: not a dict's keys, not the operand of ``not``, not a walrus target, nothing
    # under a node the walk does not know (loops); otherwise such nodes' children are read.
    strict_values = False
    cut_methods: frozenset[str] = frozenset()
    cut_method_args = False  # the arguments of a cut method are still read (helpers)
    cut_attrs: frozenset[str] = frozenset()
    comprehensions = "all"  # "all" | "bound" | "element"
    # A lambda or def given as the whole expression: its body is read (the summaries' keys).
    into_root_scope = False

    def cuts(self, call: cst.Call) -> bool:
        """``call`` returns a value without a graph, whatever it reads (beyond ``cut_methods``)."""
        return False

    def reads_receiver(self, func: cst.Attribute) -> bool:
        """Does ``x.m(...)`` read ``x`` (not structural reads, which read every callee)?"""
        return True

    def reads_args(self, method: str) -> bool:
        """Do the arguments of ``x.method(...)`` flow into the result?"""
        return True

    def bound_names(self, target: cst.BaseExpression) -> set[str]:
        """The names a comprehension target binds."""
        out: set[str] = set()
        stack = [target]
        while stack:
            t = stack.pop()
            if isinstance(t, cst.Name):
                out.add(t.value)
            elif isinstance(t, (cst.Tuple, cst.List)):
                stack.extend(el.value for el in t.elements)
            elif isinstance(t, cst.StarredElement):
                stack.append(t.value)
        return out


def graph_reads(expr: cst.CSTNode | None, reads: Reads) -> set[str]:
    """The names (keys, see :class:`Reads`) whose autograd graph can flow into ``expr``'s value."""
    out: set[str] = set()
    if expr is None:
        return out
    if (
        reads.structural
        and reads.into_root_scope
        and isinstance(expr, (cst.Lambda, cst.FunctionDef, cst.ClassDef))
    ):
        stack = [(c, frozenset()) for c in children(expr)]
    else:
        stack = [(expr, frozenset())]
    structural = reads.structural
    while stack:
        node, bound = stack.pop()
        if isinstance(node, cst.Name):
            if node.value not in bound and node.value not in _CONSTANTS:
                out.add(node.value)
            continue
        if isinstance(node, cst.Attribute):
            if node.attr.value in reads.cut_attrs:
                continue
            if structural:
                k = key_of(node)
                if k:
                    out.add(k)
                stack.append((node.value, bound))
                continue
            name = dotted_name(node)
            if name is None:
                stack.append((node.value, bound))
            elif name.split(".", 1)[0] not in bound:
                if reads.keys == "prefixes":
                    out.update(prefixes(name))
                else:
                    out.add(name)
            continue
        if isinstance(node, cst.Call):
            func = node.func
            method = func.attr.value if isinstance(func, cst.Attribute) else None
            if method is not None and method in reads.cut_methods:
                if reads.cut_method_args:
                    stack.extend((a.value, bound) for a in node.args)
                continue
            if reads.cuts(node):
                continue
            if structural:
                stack.append((func, bound))
            elif isinstance(func, cst.Attribute):
                if reads.reads_receiver(func):
                    stack.append((func.value, bound))
                if not reads.reads_args(func.attr.value):
                    continue
            elif not isinstance(func, cst.Name):
                stack.append((func, bound))
            stack.extend((a.value, bound) for a in node.args)
            continue
        if isinstance(node, (cst.Lambda, cst.FunctionDef, cst.ClassDef)):
            continue
        if isinstance(node, _COMPREHENSIONS):
            if reads.comprehensions == "element":
                out |= _element_reads(node, reads)
                continue
            if reads.comprehensions == "bound":
                inner = set(bound)
                comp = node.for_in
                while comp is not None:
                    stack.append((comp.iter, frozenset(inner)))
                    inner |= reads.bound_names(comp.target)
                    comp = comp.inner_for_in
                inner_bound = frozenset(inner)
                stack.append((node.key if isinstance(node, cst.DictComp) else node.elt, inner_bound))
                if isinstance(node, cst.DictComp):
                    stack.append((node.value, inner_bound))
                continue
        if isinstance(node, cst.Arg):
            stack.append((node.value, bound))
            continue
        if structural:
            stack.extend((c, bound) for c in children(node))
            continue
        # Values only, from here on.
        if isinstance(node, (cst.Comparison, *_LITERALS)):
            continue
        if isinstance(node, cst.Subscript):
            stack.append((node.value, bound))
        elif isinstance(node, cst.IfExp):
            stack.append((node.body, bound))
            stack.append((node.orelse, bound))
        elif isinstance(node, (cst.BinaryOperation, cst.BooleanOperation)):
            stack.append((node.left, bound))
            stack.append((node.right, bound))
        elif isinstance(node, (cst.Tuple, cst.List, cst.Set)):
            stack.extend((el.value, bound) for el in node.elements)
        elif isinstance(node, cst.StarredElement):
            stack.append((node.value, bound))
        elif isinstance(node, cst.Await):
            stack.append((node.expression, bound))
        elif not reads.strict_values:
            stack.extend((c, bound) for c in children(node))
        elif isinstance(node, cst.Dict):
            stack.extend((el.value, bound) for el in node.elements)
        elif isinstance(node, cst.UnaryOperation):
            if not isinstance(node.operator, cst.Not):
                stack.append((node.expression, bound))
        elif isinstance(node, cst.NamedExpr):
            stack.append((node.value, bound))
    if reads.keys == "tracked":
        out.discard("self")
    return out


def _element_reads(node: cst.CSTNode, reads: Reads) -> set[str]:
    """Comprehension variables stand for their iterables: ``(s.detach() for s in h)`` reads nothing."""
    bound: set[str] = set()
    iter_reads: set[str] = set()
    comp = node.for_in
    while comp is not None:
        bound.update(reads.bound_names(comp.target))
        iter_reads |= graph_reads(comp.iter, reads)
        comp = comp.inner_for_in
    elt_reads: set[str] = set()
    for e in [node.key, node.value] if isinstance(node, cst.DictComp) else [node.elt]:
        elt_reads |= graph_reads(e, reads)
    out = {r for r in elt_reads if not any(matches(r, b) for b in bound)}
    if any(matches(r, b) for r in elt_reads for b in bound):
        out |= {r for r in iter_reads if not any(matches(r, b) for b in bound)}
    return out


class HelperReads(Reads):
    """The per-function summaries' keys, not those read through a cut (``interproc``)."""

    cut_method_args = True
    cut_methods = HELPER_CUT_METHODS
    cut_attrs = HELPER_CUT_ATTRIBUTES

    def cuts(self, call: cst.Call) -> bool:
        return isinstance(call.func, cst.Name) and call.func.value in HELPER_CUT_BUILTINS


class _AnyRead(Reads):
    into_root_scope = True


# Every key read anywhere in an expression, callees included (nested functions and lambdas left out).
ANY_READ: Reads = _AnyRead()
HELPER_READS: Reads = HelperReads()


def any_reads(node: cst.CSTNode | None) -> set[str]:
    """Keys read anywhere in an expression (nested functions and lambdas left out)."""
    return graph_reads(node, ANY_READ)


def helper_reads(node: cst.CSTNode | None) -> set[str]:
    """Like :func:`any_reads`, without names read through a cut (``.detach()``, ``.data``, ``.shape``...)."""
    return graph_reads(node, HELPER_READS)


class LoopReads(Reads):
    """Loop accumulations (GL001-GL003): dotted names with their prefixes, values only;
    comprehension variables are not reads; a module used as callee (``self.encoder.forward(x)``)
    and a library (``torch.sigmoid``) are not values; shape arguments carry nothing."""

    keys = "prefixes"
    structural = False
    strict_values = True
    cut_methods = NO_GRAPH_RESULT_METHODS
    cut_attrs = NO_GRAPH_ATTRIBUTES
    comprehensions = "bound"

    def __init__(self, imports: ImportMap | None = None) -> None:
        self.imports = imports

    def _qual(self, func: cst.BaseExpression) -> str | None:
        return self.imports.resolve(func) if self.imports is not None else dotted_name(func)

    def cuts(self, call: cst.Call) -> bool:
        return self._qual(call.func) in NO_GRAPH_FUNCTIONS

    def reads_receiver(self, func: cst.Attribute) -> bool:
        qual = self._qual(func)
        if qual and qual.split(".", 1)[0] in LIBRARY_ALIASES:
            return False  # a module-level function (torch.sigmoid) has no receiver value
        return not is_callee_like(func.value)

    def reads_args(self, method: str) -> bool:
        return method not in SHAPE_ARGUMENT_METHODS


# Without the file's imports (names as written): the loop rules' text-level checks.
LOOP_READS: Reads = LoopReads()


def is_callee_like(receiver: cst.BaseExpression) -> bool:
    """``self.encoder`` in ``self.encoder.forward(x)``: a module used as callee, not a value."""
    name = dotted_name(receiver)
    if name is None:
        return False
    last = name.rsplit(".", 1)[-1]
    return name == "self" or bool(MODEL_CALLEE_NAME.match(last)) or bool(LOSS_CALLEE_NAME.match(last))


class StateReads(Reads):
    """Recurrent state and shared graphs (GL008, GL010): dotted names, values only; a method's
    receiver only when it is a tensor method's (``h.clone()``, not ``model.encode(x)``); the file's
    detaching helpers (``repackage_hidden(h)``), factories and numpy cut; a comprehension reads its
    iterable only through an element that reads the target."""

    keys = "dotted"
    structural = False
    cut_methods = NO_GRAPH_RESULT_METHODS
    cut_attrs = NO_GRAPH_ATTRIBUTES
    comprehensions = "element"

    def __init__(self, sanitisers) -> None:
        self.sanitisers = sanitisers  # state.Sanitisers: ``is_sanitiser_callee(func)``

    def cuts(self, call: cst.Call) -> bool:
        func = call.func
        if isinstance(func, cst.Name) and func.value in NO_GRAPH_BUILTINS:
            return True
        if self.sanitisers.is_sanitiser_callee(func) or any(_lambda_detaches(a.value) for a in call.args):
            return True
        callee = dotted_name(func)
        if callee is not None and "." in callee:
            head, _, last = callee.rpartition(".")
            if (head in ("torch", "t", "th") or head.startswith("torch.")) and TENSOR_FACTORY_NAME.match(
                last
            ):
                return True
            if head in ("np", "numpy") or head.startswith("numpy."):
                return True  # leaving autograd for numpy
        return False

    def reads_receiver(self, func: cst.Attribute) -> bool:
        # A tensor method's receiver carries its graph (``h.clone()``); another method's
        # receiver is an object (``model.encode(x)``, ``self.lstm(x, h)``), not a graph.
        if dotted_name(func.value) in LIBRARY_ALIASES:
            return False  # ``torch.cat(...)``, ``F.softmax(...)``: a library, not a value
        return func.attr.value in TENSOR_METHODS or not isinstance(func.value, (cst.Name, cst.Attribute))

    def bound_names(self, target: cst.BaseExpression) -> set[str]:
        return set(target_vars(target))


def target_vars(target: cst.BaseExpression) -> list[str]:
    """Variables bound by an assignment target (tuples, lists, starred; not subscripts)."""
    out: list[str] = []
    if isinstance(target, (cst.Tuple, cst.List)):
        for el in target.elements:
            out.extend(target_vars(el.value))
    elif isinstance(target, cst.StarredElement):
        out.extend(target_vars(target.value))
    elif isinstance(target, (cst.Name, cst.Attribute)):
        name = dotted_name(target)
        if name is not None:
            out.append(name)
    return out


def body_detaches(node: cst.CSTNode) -> bool:
    """Does the code call ``.detach()``/``.detach_()`` or read ``.data`` anywhere?"""
    for n in walk(node):
        if isinstance(n, cst.Call):
            if isinstance(n.func, cst.Attribute) and n.func.attr.value in ("detach", "detach_"):
                return True
        elif isinstance(n, cst.Attribute) and n.attr.value == "data":
            return True
    return False


def _lambda_detaches(arg: cst.BaseExpression) -> bool:
    return isinstance(arg, cst.Lambda) and body_detaches(arg.body)
