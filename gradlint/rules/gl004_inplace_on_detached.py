"""GL004: in-place edit of ``.detach()`` of an activation."""

from __future__ import annotations

import re

import libcst as cst

from gradlint.static.rule import Replace, Rule
from gradlint.static.semantics.dataflow import Kind, TracksStatements, inplace_edits, view_root
from gradlint.static.semantics.imports import dotted_name

_INPLACE_SIGN = re.compile(r"[a-z0-9]_\(|[-+*/%&|^@]=|\]\s*=[^=]")


class InplaceOnDetached(TracksStatements, Rule):
    """## What it does
    Flags an in-place operation (`add_`, `zero_`, `mul_`, `clamp_`, `copy_`, `fill_`,
    `masked_fill_`, `+=`, `t[i] = v`...) on the result of `.detach()` of an activation
    (a model output or a value computed from tensors that require grad), whether the
    edit is chained (`out.detach().zero_()`), made through a name bound to it, or
    through a view of it (`y = out.detach(); y[:, :5].mul_(2)`).

    ## Why is this bad?
    `.detach()` returns a tensor that shares storage **and the version counter** with
    the original. Editing it in place edits the activation itself: if autograd saved
    that value for backward, the next `backward()` fails with

    ```
    RuntimeError: one of the variables needed for gradient computation has been
    modified by an inplace operation: [torch.FloatTensor [64, 10]], which is output 0
    of SigmoidBackward0, is at version 1; expected version 0 instead.
    ```

    and if it did not, the forward result (and everything computed from it later)
    silently changes.

    Parameters, gradients and buffers are not activations: `p.detach().copy_(avg)`
    (SWA/EMA), `p.grad.detach().mul_(scale)` and `weight[0].detach().zero_()` at
    initialisation are idiomatic and not flagged.

    ## Example
    ```python
    probs = model(x).sigmoid()
    masked = probs.detach()
    masked[masked < 0.5] = 0.0
    loss = criterion(probs, y)
    loss.backward()
    ```

    ## Use instead
    ```python
    probs = model(x).sigmoid()
    masked = probs.detach().clone()
    masked[masked < 0.5] = 0.0
    loss = criterion(probs, y)
    loss.backward()
    ```

    ## Fix safety
    The fix appends `.clone()` to the `.detach()` call, so that the edit applies to
    a private copy. It is offered only where the edited copy is read after the
    edit (or the edit's result is used), and it is unsafe: the original no longer
    receives the edit, so what is computed from it afterwards changes. Where
    nothing reads the copy (`probs.detach().clamp_(min=0.3)` as a statement), the
    edit's only effect is on the original and a clone would make it dead code:
    there is no fix, the author decides (edit the original under
    `torch.no_grad()`, or use an out-of-place result).
    """

    code = "GL004"
    name = "inplace-on-detached"
    reads = "class"  # `self.lin` is a module because `__init__` says so
    message = (
        "In-place edit of `{target}`, which is `.detach()` of an activation and shares its storage and "
        "version counter: backward fails or the forward result changes; use `.detach().clone()`"
    )
    fix_applicability = "unsafe"
    prefilter = ("detach",)

    VALID = [
        """
        next_q = target_net(next_states).detach()
        next_q[dones] = 0.0
        """,
        """
        for x in xs:
            h = rnn(x, h)
            h = h.detach()
            h.clamp_(-1, 1)
        """,
        """
        out = model(x)
        y = out.detach().clone()
        y.zero_()
        """,
        """
        out = model(x)
        y = out.detach()
        y = y.clone()
        y[:, :5].mul_(2)
        """,
        """
        for p, avg in zip(model.parameters(), ema.parameters()):
            avg.detach().mul_(0.99).add_(p.detach(), alpha=0.01)
        """,
        """
        for p in model.parameters():
            p.grad.detach().mul_(0.5)
        """,
        """
        out = model(x)
        z = out.detach() * 2
        z += 1
        """,
    ]
    INVALID = [
        """
        out = model(x)
        out.detach().zero_()  # error
        out.sum().backward()
        """,
        """
        out = model(x)
        y = out.detach()
        y[:, :5].mul_(2)  # error
        loss = (out - y).pow(2).mean()
        """,
        """
        h = encoder(x)
        y = h.detach()
        y += 1  # error
        y[0] = 0  # error
        loss = h.sum()
        """,
    ]

    @classmethod
    def could_match(cls, text: str) -> bool:
        return "detach" in text and _INPLACE_SIGN.search(text) is not None

    def visit_Call(self, node: cst.Call) -> None:
        self._check(node)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._check(node)

    def visit_Assign(self, node: cst.Assign) -> None:
        self._check(node)

    def _original_in_use(self, origin) -> bool:
        """Is the activation behind ``origin`` (its ``.detach()`` call) still wanted?

        ``target_net(s).detach()`` detaches a temporary nothing else refers to, and
        ``h = h.detach()`` drops the only name of the old value: editing those harms
        no one. The original must be a name read somewhere else in the function.
        """
        if not (isinstance(origin, cst.Call) and isinstance(origin.func, cst.Attribute)):
            return False
        name = dotted_name(origin.func.value)
        if name is None:
            return False
        for anc in self.context.ancestors(origin):
            if isinstance(anc, cst.Assign):
                if any(dotted_name(t.target) == name for t in anc.targets):
                    return False  # rebinds the name of the original
                break
            if isinstance(anc, (cst.BaseSmallStatement, cst.BaseCompoundStatement)):
                break
        return self.flow.loads(self.flow_scope()).get(name, 0) >= 2

    def _check(self, node: cst.CSTNode) -> None:
        for edit in inplace_edits(node):
            target = edit.target
            if edit.form == "setitem":
                target = target.value  # ``y[mask] = v`` writes ``y`` whatever the index is
            fact = self.flow_fact(target)
            if fact.kind is not Kind.DETACHED_VIEW_OF_ACTIVATION or not self._original_in_use(fact.origin):
                continue
            fix = self._fix(node, target, fact.origin)
            self.report(
                node,
                target=self.context.code_for(edit.target if edit.form != "setitem" else target),
                fix=fix,
                fix_message="Clone the detached tensor: `.detach().clone()`",
            )

    # -- the fix ---------------------------------------------------------------------------------
    def _fix(self, node: cst.CSTNode, target: cst.BaseExpression, origin) -> Replace | None:
        """``.clone()`` after the ``.detach()``, when the edited copy is read after the edit.

        When nothing reads it (``probs.detach().clamp_(min=0.3)``, ``y = out.detach();
        y.zero_()`` and no later ``y``), the edit's only effect is on the original:
        cloning would turn the statement into dead code, so there is no fix.
        """
        if not isinstance(origin, cst.Call):
            return None
        names = set()
        root = view_root(target)
        if isinstance(root, cst.Name):
            names.add(root.value)
        if isinstance(node, cst.Call):
            outer = _outermost_chain(self.context, node)
            holder = self.context.parent(outer)
            if isinstance(holder, cst.Assign) and holder.value is outer:
                names.update(t.target.value for t in holder.targets if isinstance(t.target, cst.Name))
            elif not isinstance(holder, cst.Expr):
                return Replace(origin, self.context.code_for(origin) + ".clone()")  # the result is used
        cache = self.__dict__.setdefault("_scope_reads", {})
        if names and _read_after(self.context, self.flow_scope(), names, self.flow_statement, cache):
            return Replace(origin, self.context.code_for(origin) + ".clone()")
        return None


def _outermost_chain(context, call: cst.Call) -> cst.BaseExpression:
    """``x.detach().zero_()`` in ``x.detach().zero_().add_(1)``: climb method calls on the result."""
    expr: cst.BaseExpression = call
    while True:
        attr = context.parent(expr)
        if not (isinstance(attr, cst.Attribute) and attr.value is expr):
            return expr
        up = context.parent(attr)
        if not (isinstance(up, cst.Call) and up.func is attr):
            return expr
        expr = up


def _read_after(context, scope: cst.CSTNode, names: set[str], stmt: cst.CSTNode | None, cache: dict) -> bool:
    """Is one of ``names`` read after ``stmt`` in ``scope``, other than as the tensor a
    statement edits in place? ``cache`` keeps each scope's reads (one walk per scope)."""
    if stmt is None:
        return True
    pos = context.position(stmt).end
    end = (pos.line, pos.column)
    reads = cache.get(id(scope))
    if reads is None:
        reads = cache[id(scope)] = _reads(context, scope)
    for name in names:
        for row, column in reads.get(name, ()):
            if (row, column) >= end:
                return True
    return False


def _reads(context, scope: cst.CSTNode) -> dict[str, list[tuple[int, int]]]:
    """Where each name is read in ``scope``: not assigned, not the receiver of an in-place edit."""
    edited: set[int] = set()
    found: list[cst.Name] = []
    stack: list[cst.CSTNode] = [scope]
    while stack:
        n = stack.pop()
        if isinstance(n, cst.SimpleStatementLine):
            for small in n.body:
                node = small.value if isinstance(small, cst.Expr) else small
                for e in inplace_edits(node):
                    r = view_root(e.target)
                    if isinstance(r, cst.Name):
                        edited.add(id(r))
        elif isinstance(n, cst.Name):
            found.append(n)
        stack.extend(n.children)
    reads: dict[str, list[tuple[int, int]]] = {}
    for name in found:
        if id(name) in edited or _is_store(context, name):
            continue
        start = context.position(name).start
        reads.setdefault(name.value, []).append((start.line, start.column))
    return reads


def _is_store(context, name: cst.Name) -> bool:
    parent = context.parent(name)
    return (
        (isinstance(parent, (cst.AssignTarget, cst.AnnAssign)) and parent.target is name)
        or (isinstance(parent, cst.For) and parent.target is name)
        or (isinstance(parent, cst.AsName) and parent.name is name)
    )
