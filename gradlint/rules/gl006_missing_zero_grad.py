"""GL006: a training loop that steps the optimizer but never clears gradients."""

from __future__ import annotations

import libcst as cst

from gradlint.rules import through_helpers
from gradlint.static.rule import Rule
from gradlint.static.semantics.interproc import might_step_through_helpers
from gradlint.static.semantics.optim import OptimAnalysis, guard_tests_within, other_framework
from gradlint.static.semantics.summaries import calls_matching_helper


class MissingZeroGrad(Rule):
    """## What it does
    Flags a loop whose body runs a backward pass and `optimizer.step()` (or
    `scaler.step(optimizer)`) but never clears the gradients: no
    `optimizer.zero_grad()`, `model.zero_grad()`, `p.grad = None` nor
    `p.grad.zero_()` anywhere in the loop (helpers of the same file that clear
    them count).

    Also when the loop's backward and step run in the helpers or methods it calls
    (`self.train_step(batch)` in a `while` loop, with `zero_grad()` only before
    the loop), and when a loop clears only other optimizers, built over other
    modules, than the one it steps.

    ## Why is this bad?
    PyTorch *adds* every backward pass into `.grad`; nothing resets it for you.
    Without a `zero_grad()` per step, step *n* applies the sum of the gradients of
    steps 1..n: the effective learning rate grows every iteration, and the loss
    curve looks like a bad hyperparameter ("loss explodes after a few hundred
    steps", "loss is nan") rather than a bug. Nothing raises.

    Deliberate gradient accumulation (step and `zero_grad()` every *k* batches
    under `if (i + 1) % k == 0:`) is not reported, nor is a loop that clears the
    gradients through a helper (`self.optimizer_zero_grad()`).

    ## Example
    ```python
    for x, y in loader:
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    ```

    ## Use instead
    ```python
    for x, y in loader:
        optimizer.zero_grad(set_to_none=True)
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    ```
    """

    code = "GL006"
    name = "missing-zero-grad"
    message = (
        "`{step}` runs every iteration of a loop that never clears gradients, so each step applies the "
        "sum of all previous gradients; call `{optimizer}.zero_grad()` once per step"
    )
    message_helpers = (
        "`{step}` runs every iteration of the loop on line {loop} (through `{via}`), which never clears "
        "gradients, so each step applies the sum of all previous gradients; call `{optimizer}.zero_grad()` "
        "once per step"
    )
    message_other_cleared = (
        "`{step}` runs every iteration of the loop on line {loop}, which clears only `{cleared}` (other "
        "parameters): each step of `{optimizer}` applies the sum of all previous gradients; call "
        "`{optimizer}.zero_grad()` once per step"
    )
    prefilter = (".step(",)
    VALID = [
        """
        for x, y in loader:
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
        """,
        """
        for i, (x, y) in enumerate(loader):
            loss = criterion(model(x), y) / accum
            loss.backward()
            if (i + 1) % accum == 0:
                optimizer.step()
                optimizer.zero_grad()
        """,
    ]
    INVALID = [
        """
        class Recipe:
            def train_step(self, batch):
                self.loss_fn(self.model(batch["x"]), batch["y"]).backward()
                self.optimizer.step()  # error

            def train(self):
                self.optimizer.zero_grad()
                for batch in self.loader:
                    self.train_step(batch)
        """,
        """
        for x, y in loader:
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()  # error
        """,
    ]

    # Which optimizer steps which parameters is set up in `__init__`, used in another method.
    reads = "class"

    @classmethod
    def could_match(cls, text: str) -> bool:
        return ".step(" in text and "backward" in text and not other_framework(text)

    @classmethod
    def could_match_unit(cls, text: str, file_text: str) -> bool:
        # also a loop whose evidence sits in the same-file helpers it calls (slicing keeps it)
        return cls.could_match(text) or (
            might_step_through_helpers(file_text)
            and calls_matching_helper(text, file_text, _step_or_backward)
        )

    def visit_Module(self, node: cst.Module) -> None:
        analysis = self.context.analysis(OptimAnalysis)
        for scope in analysis.scopes:
            reported = set()
            steps = [e for e in scope.events if e.kind == "step" and e.loops]
            for step in steps:
                loop = next(
                    (
                        l
                        for l in reversed(step.loops)
                        if any(l in e.loops and e.populates_grad for e in scope.events)
                    ),
                    None,
                )
                if loop is None or (id(loop), step.key) in reported:
                    continue
                if step.node.args and not _is_scaler_step(step.node):
                    continue  # step(closure): the closure clears and backpropagates
                if any(analysis.clears(e) for e in scope.events if loop in e.loops):
                    continue
                conditional = bool(guard_tests_within(step, loop))
                if conditional and any(analysis.clears(e) for e in scope.events):
                    continue  # accumulation: gradients are cleared elsewhere in this function
                reported.add((id(loop), step.key))
                self.report(step.node, step=self.context.code_for(step.node), optimizer=step.key)

    def leave_Module(self, original_node: cst.Module) -> None:
        # the same shape spread over helpers and methods (semantics/interproc.py)
        through_helpers.report_gl006(self)


def _is_scaler_step(call: cst.Call) -> bool:
    return isinstance(call.func, cst.Attribute) and "scaler" in (
        cst.Module([]).code_for_node(call.func.value).lower()
    )


def _step_or_backward(text: str) -> bool:
    return ".step(" in text or "backward" in text
