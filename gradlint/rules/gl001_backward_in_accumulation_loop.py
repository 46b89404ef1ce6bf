"""GL001: backward inside a loop on a value the loop keeps accumulating."""

from __future__ import annotations

import libcst as cst

from gradlint.static.fixes import replace_statements
from gradlint.static.rule import Rule
from gradlint.static.semantics.backward import NeedsBackwardCall
from gradlint.static.semantics.dataflow import Dataflow
from gradlint.static.semantics.loops import (
    AccumulatedBackward,
    LoopFacts,
    ScopeTracker,
    accumulated_backward,
    number_test,
)


class BackwardInAccumulationLoop(NeedsBackwardCall, ScopeTracker, Rule):
    """## What it does
    Flags a backward call inside a loop (`for`/`while`, nested too) on a tensor
    that the loop accumulates across iterations (`loss += term`,
    `loss = loss + term`, `losses.append(term)`), without `retain_graph=True`.

    ## Why is this bad?
    The first `backward()` frees the saved tensors of the graph behind the
    accumulated value. On the next iteration the accumulator still contains that
    freed graph, so backpropagating through it again fails with

    ```
    RuntimeError: Trying to backward through the graph a second time (or directly access saved tensors after they have already been freed). Saved intermediate values of the graph are freed when you call .backward() or autograd.grad(). Specify retain_graph=True if you need to backward through the graph a second time or if you need to access saved tensors after calling backward.
    ```

    Do not follow the error's advice to add `retain_graph=True`: that makes
    every iteration re-traverse all earlier graphs and add their gradients again
    (see GL002).

    ## Example
    ```python
    loss = 0
    for x, y in loader:
        loss += criterion(model(x), y)
        loss.backward()
        optimizer.step()
    ```

    ## Use instead
    Backpropagate each iteration's own loss (and keep a detached running total for logging):
    ```python
    total = 0.0
    for x, y in loader:
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        total += loss.item()
    ```
    or sum the terms and call `backward()` once, after the loop.

    ## Fix safety
    When the backward call is the last statement of the accumulating loop's
    body and the loop does nothing else with gradients (no optimizer step, no
    other backward), the fix moves the call after the loop. It is unsafe: the
    gradients change from "per iteration" to "of the sum", which is the intent
    in the cases this rule sees, but cannot be proven.
    """

    code = "GL001"
    name = "backward-in-accumulation-loop"
    reads = "class"  # value kinds (dataflow) read `__init__`
    message = (
        "`{target}` is backpropagated inside a loop that keeps accumulating `{key}` (line {line}) across iterations: "
        'the next iteration backpropagates through a graph this call already freed ("Trying to backward '
        'through the graph a second time"); sum the terms and call backward once after the loop, '
        "or backpropagate each iteration's term separately"
    )
    fix_applicability = "unsafe"

    VALID = [
        """
        for x, y in loader:
            loss = criterion(model(x), y)
            loss.backward()
        """,
        """
        for x, y in loader:
            loss = 0
            for head in heads:
                loss += criterion(head(x), y)
            loss.backward()
        """,
        """
        loss = 0
        for x, y in loader:
            loss += criterion(model(x), y)
        loss.backward()
        """,
        """
        loss = 0
        for i, (x, y) in enumerate(loader):
            loss = loss + criterion(model(x), y)
            if (i + 1) % accum == 0:
                loss.backward()
                optimizer.step()
                loss = 0
        """,
    ]
    INVALID = [
        """
        loss = 0
        for x, y in loader:
            loss += criterion(model(x), y)
            loss.backward()  # error
        """,
        """
        import torch
        total = torch.zeros(())
        while step < n:
            total = total + model(next(it)).sum()
            torch.autograd.backward(total)  # error
        """,
    ]

    def visit_Call(self, node: cst.Call) -> None:
        hit = self.backward_in_loop(node, lambda bw: bw.retain_graph is False)
        if hit is None:
            return
        bw, site, facts = hit
        found = accumulated_backward(facts, site, number_test(self.context.analysis(Dataflow)))
        if found is not None:
            self.report(
                node,
                target=self.context.code_for(bw.target),
                key=found.key,
                line=self.context.position(found.accumulation.node).start.line,
                fix=self._move_after_loop(facts, found),
                fix_message="Move the backward call after the loop",
            )

    def _move_after_loop(self, facts: LoopFacts, found: AccumulatedBackward):
        """Rewrite ``for ...: <body>; X.backward()`` as ``for ...: <body>`` + ``X.backward()``."""
        loop, unit = found.loop, found.site.unit
        line = unit.node
        body = loop.body
        if (
            unit.loops[-1] is not loop
            or unit.path[-1][0] is not loop
            or loop.orelse is not None
            or not isinstance(body, cst.IndentedBlock)
            or len(body.body) < 2
            or body.body[-1] is not line
            or not isinstance(line, cst.SimpleStatementLine)
            or len(line.body) != 1
            or not isinstance(line.body[0], cst.Expr)
            or line.body[0].value is not found.site.bw.call
            or any(u.in_loop(loop) for u in facts.optimizer_steps)
            or any(s is not found.site and s.unit.in_loop(loop) for s in facts.backwards)
        ):
            return None
        shorter = loop.with_changes(body=body.with_changes(body=body.body[:-1]))
        # The backward keeps its comment lines above; they now sit above it after the loop.
        return replace_statements(self.context, [loop], [shorter, line])
