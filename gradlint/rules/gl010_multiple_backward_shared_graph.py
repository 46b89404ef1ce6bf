"""GL010: a second backward pass through a graph an earlier one freed."""

from __future__ import annotations

import libcst as cst

from gradlint.rules import through_helpers
from gradlint.static.rule import Rule
from gradlint.static.semantics.backward import NeedsBackwardCall
from gradlint.static.semantics.state import SharedGraphs


class MultipleBackwardSharedGraph(NeedsBackwardCall, Rule):
    """## What it does
    Flags a backward call whose loss was computed from the same intermediate
    (the same model output, the same forward pass) as a loss that an earlier
    backward already went through without `retain_graph=True`:
    `loss1.backward(); loss2.backward()` for two heads on one trunk, or
    `for loss in losses: loss.backward()` for losses from one forward.

    It stays silent when the losses come from separate forwards, when the
    earlier loss only sees a detached copy (`D(fake.detach())` in a GAN step),
    when the earlier backward retains the graph (including
    `torch.autograd.grad(..., create_graph=True)` for a gradient penalty), and
    when the shared value is an input or a parameter rather than a computed
    tensor.

    Also a graph freed by a backward inside a loop (a WGAN critic loop that
    backpropagates through the generator's output) and needed again after the
    loop, and a second backward run by a helper called with `backward=True`.

    ## Why is this bad?
    A backward pass frees the buffers the graph saved for it, so the second
    pass over the shared part fails with

    `RuntimeError: Trying to backward through the graph a second time (or directly access saved tensors after they have already been freed). Saved intermediate values of the graph are freed when you call .backward() or autograd.grad(). Specify retain_graph=True if you need to backward through the graph a second time or if you need to access saved tensors after calling backward.`

    ## Example
    ```python
    features = backbone(images)
    cls_loss = ce(cls_head(features), labels)
    box_loss = l1(box_head(features), boxes)
    cls_loss.backward()
    box_loss.backward()
    ```

    ## Use instead
    ```python
    features = backbone(images)
    cls_loss = ce(cls_head(features), labels)
    box_loss = l1(box_head(features), boxes)
    (cls_loss + box_loss).backward()  # one traversal, gradients summed
    ```
    or keep the graph for all but the last pass:
    `cls_loss.backward(retain_graph=True); box_loss.backward()`.
    """

    code = "GL010"
    name = "multiple-backward-shared-graph"
    reads = "class"  # value kinds (dataflow) read `__init__`
    message = (
        "`{loss}` shares its graph with the loss that the backward on line {line} already went through without "
        '`retain_graph=True`, so this pass fails with "Trying to backward through the graph a second time"; '
        "backpropagate the sum once (`(loss1 + loss2).backward()`) or pass `retain_graph=True` to all but the "
        "last backward"
    )
    message_freed = (
        "`{loss}` goes back through `{source}` (line {source_line}), whose graph the backward on line {line} "
        'already freed, so this pass fails with "Trying to backward through the graph a second time"; pass '
        "`retain_graph=True` to the backward on line {line} if both losses must reach that forward, else "
        "recompute `{source}` here or let the first loss use `{source}.detach()`"
    )
    loop_message = (
        "each iteration backpropagates `{loss}` through a graph computed once before the loop, which the first "
        'iteration already freed ("Trying to backward through the graph a second time"); backpropagate the '
        "sum of the losses once, or pass `retain_graph=True` to all but the last backward"
    )

    VALID = [
        """
        out = model(x)
        loss1 = ce(out, y)
        loss2 = mse(out, z)
        (loss1 + loss2).backward()
        """,
        """
        out = model(x)
        ce(out, y).backward(retain_graph=True)
        mse(out, z).backward()
        """,
        """
        fake = G(z)
        d_loss = bce(D(real), ones) + bce(D(fake.detach()), zeros)
        d_loss.backward()
        g_loss = bce(D(fake), ones)
        g_loss.backward()
        """,
    ]
    INVALID = [
        """
        for _ in range(n_critic):
            fake = G(torch.randn(b, d))
            D(fake).mean().backward()
            opt_D.step()
        g_loss = -D(fake).mean()
        g_loss.backward()  # error
        """,
        """
        out = model(x)
        loss1 = ce(out, y)
        loss2 = mse(out, z)
        loss1.backward()
        loss2.backward()  # error
        """,
        """
        out = model(x)
        losses = [crit(out, y) for crit in criteria]
        for loss in losses:
            loss.backward()  # error
        """,
    ]

    def visit_Module(self, node: cst.Module) -> None:
        for finding in self.context.analysis(SharedGraphs).findings:
            if finding.kind == "loop":
                self.report(finding.call, self.loop_message, loss=finding.loss)
            else:
                line = self.context.position(finding.first).start.line
                self.report(finding.call, loss=finding.loss, line=line)

    def leave_Module(self, original_node: cst.Module) -> None:
        # the same shape spread over helpers and methods (semantics/interproc.py)
        through_helpers.report_gl010(self)
