"""GL014: gradient accumulation whose loss is not divided by the accumulation count."""

from __future__ import annotations

import libcst as cst

from gradlint.static.rule import Rule
from gradlint.static.semantics.imports import dotted_name
from gradlint.static.semantics.optim import (
    Event,
    OptimAnalysis,
    ScopeInfo,
    assignments_of,
    child_nodes,
    guard_tests_within,
    is_accumulation_guard,
    last_part,
    other_framework,
)


class UnscaledGradientAccumulation(Rule):
    """## What it does
    Flags gradient accumulation (a backward every batch, `optimizer.step()` only
    under a modulo condition such as `if (i + 1) % accum_steps == 0:`) where the
    loss passed to backward is not divided by the accumulation count.

    Off by default: some code deliberately sums (a loss with `reduction="sum"`
    normalised elsewhere, or a learning rate tuned for the sum).

    ## Why is this bad?
    Backward passes *add* into `.grad`. Over `k` micro-batches the gradient is the
    sum of `k` mean-reduced gradients, `k` times the gradient of the equivalent big
    batch: it is the same as multiplying the learning rate by `k`. Nothing raises;
    the run diverges ("loss is nan after enabling gradient accumulation") or lands
    somewhere worse, and raising `k` makes it worse.

    `accelerator.backward(loss)` inside `with accelerator.accumulate(model):`,
    Lightning's `accumulate_grad_batches` and DeepSpeed scale for you and are not
    reported.

    ## Example
    ```python
    for i, (x, y) in enumerate(loader):
        loss = criterion(model(x), y)
        loss.backward()
        if (i + 1) % accum_steps == 0:
            optimizer.step()
            optimizer.zero_grad()
    ```

    ## Use instead
    ```python
    for i, (x, y) in enumerate(loader):
        loss = criterion(model(x), y) / accum_steps
        loss.backward()
        if (i + 1) % accum_steps == 0:
            optimizer.step()
            optimizer.zero_grad()
    ```
    """

    code = "GL014"
    name = "unscaled-gradient-accumulation"
    message = (
        "gradients of several batches are summed before `{step}` but `{loss}` is not divided by the "
        "accumulation count, which multiplies the learning rate by it; backpropagate `{loss} / accum_steps`"
    )
    default_enabled = False
    VALID = [
        """
        for i, (x, y) in enumerate(loader):
            loss = criterion(model(x), y)
            (loss / accum).backward()
            if (i + 1) % accum == 0:
                optimizer.step()
                optimizer.zero_grad()
        """,
        """
        for batch in loader:
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                optimizer.step()
                optimizer.zero_grad()
        """,
    ]
    INVALID = [
        """
        for i, (x, y) in enumerate(loader):
            loss = criterion(model(x), y)
            loss.backward()  # error
            if (i + 1) % accum == 0:
                optimizer.step()
                optimizer.zero_grad()
        """,
    ]

    # Which optimizer steps which parameters is set up in `__init__`, used in another method.
    reads = "class"

    @classmethod
    def could_match(cls, text: str) -> bool:
        return "%" in text and ".step(" in text and "backward" in text and not other_framework(text)

    def visit_Module(self, node: cst.Module) -> None:
        analysis = self.context.analysis(OptimAnalysis)
        for scope in analysis.scopes:
            done = set()
            for step in scope.events:
                if step.kind != "step" or not step.loops:
                    continue
                loop = next(
                    (
                        l
                        for l in reversed(step.loops)
                        if any(l in e.loops and e.populates_grad for e in scope.events)
                    ),
                    None,
                )
                if loop is None or id(loop) in done:
                    continue
                guards = guard_tests_within(step, loop)
                if not any(is_accumulation_guard(t, scope) for t in guards):
                    continue
                done.add(id(loop))
                in_loop = [e for e in scope.events if loop in e.loops]
                if _grads_rescaled(in_loop, self.context):
                    continue
                for bw in in_loop:
                    if not bw.populates_grad or bw.backward is None or bw.backward.target is None:
                        continue
                    if (
                        bw.backward.kind == "wrapper"
                        or _managed(bw)
                        or any(g in bw.guards for g in step.guards)
                    ):
                        continue
                    if not self._unscaled(bw.backward.target, bw, scope, analysis, set()):
                        continue
                    self.report(
                        bw.node,
                        step=self.context.code_for(step.node),
                        loss=self.context.code_for(bw.backward.target),
                    )
                    break

    def _unscaled(
        self, expr: cst.BaseExpression, at: Event, scope: ScopeInfo, analysis, seen: set[str]
    ) -> bool:
        """True only when every visible definition of the loss lacks a division or scaling."""
        if _scaled(expr):
            return False
        name = dotted_name(expr)
        if name is None:
            if isinstance(expr, (cst.Subscript, cst.Attribute)):  # `outputs[0]`, `model(**batch).loss`
                return self._unscaled(expr.value, at, scope, analysis, seen)
            if isinstance(expr, cst.BinaryOperation):  # `loss_a + loss_b`: scaled if a part is
                return self._unscaled(expr.left, at, scope, analysis, seen) and self._unscaled(
                    expr.right, at, scope, analysis, seen
                )
            if isinstance(expr, cst.UnaryOperation):
                return self._unscaled(expr.expression, at, scope, analysis, seen)
            if isinstance(expr, cst.Call):
                callee = last_part(dotted_name(expr.func))
                if callee in analysis.functions:
                    return False  # a helper of this file may scale; stay silent
                func = expr.func
                if isinstance(func, cst.Attribute) and callee in _REDUCTIONS:
                    return self._unscaled(func.value, at, scope, analysis, seen)  # `loss.mean()`
                return True
            if isinstance(expr, (cst.Integer, cst.Float)):
                return True  # `total = 0` before `total += loss`: neutral
            return False  # something else: unknown, stay silent
        if name in seen:
            return True
        seen.add(name)
        parts = name.split(".")
        for i in range(len(parts), 0, -1):
            key = ".".join(parts[:i])
            defs = [d for d in assignments_of(scope, key, at) if d.value is not None]
            if not defs:
                continue
            for d in defs:
                if isinstance(d.node, (cst.For, cst.With)):
                    return False
                if d.augmented:
                    if isinstance(d.node.operator, (cst.DivideAssign, cst.MultiplyAssign)):
                        return False
                    if not self._unscaled(d.value, d, scope, analysis, seen):
                        return False
                    continue
                if not self._unscaled(d.value, d, scope, analysis, seen):
                    return False
            return True
        return False  # never assigned here (a parameter): unknown


_REDUCTIONS = {"mean", "sum", "float", "squeeze", "to", "contiguous", "clone", "double", "half", "nanmean"}


def _scaled(expr: cst.BaseExpression) -> bool:
    """A division anywhere, or a product with something that is not an integer literal."""
    stack = [expr]
    while stack:
        n = stack.pop()
        if isinstance(n, cst.BinaryOperation):
            if isinstance(n.operator, (cst.Divide, cst.FloorDivide)):
                return True
            if isinstance(n.operator, cst.Multiply) and not (
                isinstance(n.left, cst.Integer) or isinstance(n.right, cst.Integer)
            ):
                if not (_is_loss_like(n.left) and _is_loss_like(n.right)):
                    return True
        if (
            isinstance(n, cst.Call)
            and isinstance(n.func, cst.Attribute)
            and n.func.attr.value in ("div", "mul", "div_", "mul_")
        ):
            return True
        if isinstance(n, cst.Lambda):
            continue
        stack.extend(child_nodes(n))
    return False


def _is_loss_like(expr: cst.BaseExpression) -> bool:
    return "loss" in last_part(dotted_name(expr)).lower()


def _managed(bw: Event) -> bool:
    """Inside ``with accelerator.accumulate(model):`` (or similar) the framework scales."""
    for w in bw.withs:
        for item in w.items:
            call = item.item
            if (
                isinstance(call, cst.Call)
                and isinstance(call.func, cst.Attribute)
                and "accumulate" in call.func.attr.value
            ):
                return True
    return False


def _grads_rescaled(events, context) -> bool:
    """Gradients divided after the fact (``p.grad.div_(k)``, ``scale_grads_``) count as scaling."""
    for e in events:
        if e.kind == "clear" or (e.kind == "call" and "scale_grad" in (e.key or "")):
            text = context.code_for(e.node)
            if any(s in text for s in ("div", "/", "mul", "scale")):
                return True
    return False
