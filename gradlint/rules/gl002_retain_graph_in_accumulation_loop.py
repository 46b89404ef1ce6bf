"""GL002: retain_graph=True inside a loop: an accumulating graph, or a retained graph nobody reuses."""

from __future__ import annotations

import libcst as cst

from gradlint.static.rule import Rule
from gradlint.static.semantics.backward import NeedsBackwardCall
from gradlint.static.semantics.dataflow import Dataflow
from gradlint.static.semantics.loops import (
    ScopeTracker,
    accumulated_backward,
    number_test,
    unused_retained_graph,
)


class RetainGraphInAccumulationLoop(NeedsBackwardCall, ScopeTracker, Rule):
    """## What it does
    Flags `retain_graph=True` on a backward call inside a loop when

    * the backpropagated value is accumulated across iterations
      (`loss += term` ... `loss.backward(retain_graph=True)`), or
    * nothing in the loop can use the retained graph: the value is rebuilt from
      fresh data every iteration and no other backward call follows.

    ## Why is this bad?
    `retain_graph=True` is what PyTorch's error message suggests for

    ```
    RuntimeError: Trying to backward through the graph a second time (or directly access saved tensors after they have already been freed). Saved intermediate values of the graph are freed when you call .backward() or autograd.grad(). Specify retain_graph=True if you need to backward through the graph a second time or if you need to access saved tensors after calling backward.
    ```

    but on an accumulated value it only hides the bug: every iteration
    backpropagates again through all earlier iterations' graphs, so memory grows
    until it runs out, each step gets slower (quadratic time), and `backward()`
    adds the early terms' gradients once more on every iteration (silently wrong
    gradients). When the graph is rebuilt every iteration, retaining it just
    keeps it alive for nothing.

    Higher-order uses (`create_graph=True`: gradient penalties, MAML) are not
    reported, and neither is a retained graph that a later backward in the same
    iteration (GAN D/G updates, several heads over one forward) reuses.

    ## Example
    ```python
    loss = 0
    for x, y in loader:
        loss = loss + criterion(model(x), y)
        loss.backward(retain_graph=True)
        optimizer.step()
    ```

    ## Use instead
    ```python
    for x, y in loader:
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    ```
    """

    code = "GL002"
    name = "retain-graph-in-accumulation-loop"
    reads = "class"  # value kinds (dataflow) read `__init__`
    message = (
        "`retain_graph=True` while `{key}` accumulates across loop iterations (line {line}): every iteration "
        "backpropagates again through all earlier graphs (memory grows until OOM, time grows quadratically) "
        "and re-adds the earlier terms' gradients; backpropagate each iteration's own loss without "
        "retain_graph, or sum the terms and call backward once after the loop"
    )
    message_grad = (
        "`retain_graph=True` while `{key}` accumulates across loop iterations (line {line}): every iteration "
        "differentiates again through all earlier graphs (memory grows until OOM, time grows quadratically); "
        "differentiate each iteration's own value without retain_graph, or once after the loop"
    )
    message_unused = (
        "`retain_graph=True` on `{target}`, which is rebuilt every iteration and not backpropagated again: "
        "the retained graph is never used but stays in memory; drop `retain_graph=True` (if it was added "
        'for "backward through the graph a second time", detach what carries over between iterations)'
    )

    VALID = [
        """
        for x, y in loader:
            fake = G(z)
            d_loss = criterion(D(fake), y)
            d_loss.backward(retain_graph=True)
            g_loss = criterion(D(fake), ones)
            g_loss.backward()
        """,
        """
        feats = backbone(x)
        for head in heads:
            head_loss = criterion(head(feats), y)
            head_loss.backward(retain_graph=True)
        """,
        """
        for x, y in loader:
            loss = criterion(model(x), y)
            grads = torch.autograd.grad(loss, params, create_graph=True)
        """,
        """
        for x, y in loader:
            loss = criterion(model(x), y)
            loss.backward(retain_graph=keep)
        """,
    ]
    INVALID = [
        """
        loss = 0
        for x, y in loader:
            loss = loss + criterion(model(x), y)
            loss.backward(retain_graph=True)  # error
        """,
        """
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
            loss = criterion(model(x), y)
            loss.backward(retain_graph=True)  # error
            optimizer.step()
        """,
    ]

    def visit_Call(self, node: cst.Call) -> None:
        # create_graph=True (gradient penalties, MAML) is not this rule's business.
        hit = self.backward_in_loop(node, lambda bw: bw.retain_graph is True and not bw.create_graph)
        if hit is None:
            return
        bw, site, facts = hit
        found = accumulated_backward(facts, site, number_test(self.context.analysis(Dataflow)))
        if found is not None:
            self.report(
                node,
                self.message_grad if bw.is_grad else self.message,
                key=found.key,
                line=self.context.position(found.accumulation.node).start.line,
            )
        elif unused_retained_graph(facts, site) is not None:
            self.report(node, self.message_unused, target=self.context.code_for(bw.target))
