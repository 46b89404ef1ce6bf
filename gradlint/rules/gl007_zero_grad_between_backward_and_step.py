"""GL007: zero_grad() after backward and before the step of the same optimizer."""

from __future__ import annotations

import libcst as cst

from gradlint.static.rule import Rule
from gradlint.static.semantics.optim import OptimAnalysis, other_framework, reaches_around


class ZeroGradBetweenBackwardAndStep(Rule):
    """## What it does
    Flags `zero_grad()` of an optimizer (or of the model it optimizes) on the path
    from a backward call to the next `step()` of that same optimizer, with no
    backward in between.

    ## Why is this bad?
    `zero_grad()` erases (or, with the default `set_to_none=True`, deletes) the
    gradients the backward pass just computed, so the following `step()` applies
    nothing: with `set_to_none=True` the optimizer skips every parameter whose
    `.grad` is `None`, with zeros it applies only weight decay and momentum. The
    model does not learn and nothing raises: the symptom is a loss that stays
    flat ("loss not decreasing", "model not learning", "weights not updating").

    With several optimizers (a GAN) each `zero_grad()` is paired with its own
    optimizer's step: `opt_d.step(); opt_g.zero_grad(); g_loss.backward();
    opt_g.step()` is correct and not reported.

    ## Example
    ```python
    for x, y in loader:
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.zero_grad()
        optimizer.step()
    ```

    ## Use instead
    ```python
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    ```
    """

    code = "GL007"
    name = "zero-grad-between-backward-and-step"
    message = (
        "`{zero}` clears the gradients the backward pass on line {line} just computed, so the next "
        "`{step}` applies nothing; move `zero_grad()` before the backward (or after the step)"
    )
    VALID = [
        """
        for x, y in loader:
            optimizer.zero_grad()
            criterion(model(x), y).backward()
            optimizer.step()
        """,
        """
        for real in loader:
            d_loss.backward()
            opt_d.step()
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
        """,
    ]
    INVALID = [
        """
        for x, y in loader:
            criterion(model(x), y).backward()
            optimizer.zero_grad()  # error
            optimizer.step()
        """,
    ]

    # Which optimizer steps which parameters is set up in `__init__`, used in another method.
    reads = "class"

    @classmethod
    def could_match(cls, text: str) -> bool:
        return "zero_grad" in text and ".step(" in text and "backward" in text and not other_framework(text)

    def visit_Module(self, node: cst.Module) -> None:
        analysis = self.context.analysis(OptimAnalysis)
        reaches = analysis.reaches
        for scope in analysis.scopes:
            events = scope.events
            for zi, zero in enumerate(events):
                if zero.kind != "zero_grad":
                    continue
                step = next(
                    (
                        e
                        for e in events[zi + 1 :]
                        if e.kind == "step"
                        and analysis.zero_grad_pairs_with(zero, e.key or "", scope)
                        and reaches(zero, e)
                    ),
                    None,
                )
                if step is not None:
                    between = [e for e in events if zero.order < e.order < step.order]
                else:
                    # `opt.step()` at the top of the loop body, `zero_grad()` at the bottom: the
                    # next iteration steps what this one cleared.
                    step, between = self._step_next_iteration(zero, scope, analysis)
                if step is None:
                    continue
                # A backward after the zero_grad (the FGSM / two-pass pattern), or gradients
                # written by hand (gradient surgery, federated averaging) feed the step.
                if any(analysis.calls_backward(e) or e.kind == "clear" for e in between):
                    continue
                if any(e.kind == "call" and e.key and analysis.clears(e) for e in between):
                    continue
                backward = next(
                    (e for e in reversed(events[:zi]) if e.populates_grad and reaches(e, zero)), None
                )
                if backward is None:
                    continue
                self.report(
                    zero.node,
                    zero=self.context.code_for(zero.node),
                    step=self.context.code_for(step.node),
                    line=self.context.position(backward.node).start.line,
                )

    @staticmethod
    def _step_next_iteration(zero, scope, analysis):
        for loop in reversed(zero.loops):
            in_loop = [e for e in scope.events if loop in e.loops]
            for e in in_loop:
                if e.order >= zero.order:
                    break
                if (
                    e.kind == "step"
                    and analysis.zero_grad_pairs_with(zero, e.key or "", scope)
                    and reaches_around(zero, e, loop)
                ):
                    between = [x for x in in_loop if x.order > zero.order or x.order < e.order]
                    return e, between
            return None, []
        return None, []
