"""GL015: an optimizer step between two backward passes through the same graph."""

from __future__ import annotations

import libcst as cst

from gradlint.rules import through_helpers
from gradlint.static.rule import Rule
from gradlint.static.semantics.imports import dotted_name
from gradlint.static.semantics.interproc import might_step_through_helpers
from gradlint.static.semantics.optim import (
    Event,
    OptimAnalysis,
    ScopeInfo,
    child_nodes,
    last_assignment,
    last_part,
    other_framework,
)
from gradlint.static.semantics.summaries import calls_matching_helper


class StepBetweenBackwardOnSharedGraph(Rule):
    """## What it does
    Flags `optimizer.step()` (or `scaler.step(optimizer)`) between two backward
    calls when the second loss was computed *before* the step, from a forward
    through the parameters that step updates: the GAN pattern
    `d_loss.backward(retain_graph=True); opt_d.step(); g_loss.backward()` where
    `g_loss` reuses the discriminator's outputs.

    Also when the backward calls and the step are spread over methods
    (`self.backward_EG()`, `self.optimizer_E.step()`, `self.backward_G_alone()`)
    and the second loss reads an attribute that `self.forward()` wrote, from a
    module that the step changed, before the step.

    ## Why is this bad?
    `step()` updates the parameters in place. The graph of the second loss saved
    those parameters (their version counter) for its backward, so the second
    backward fails with

    `RuntimeError: one of the variables needed for gradient computation has been modified by an inplace operation: [torch.FloatTensor [128, 1]], which is output 0 of AsStridedBackward0, is at version 2; expected version 1 instead.`

    (PyTorch before 1.5 silently computed the generator's gradients with the
    stale discriminator weights instead.)

    ## Example
    ```python
    d_loss = bce(D(real), ones) + bce(D(fake.detach()), zeros)
    g_loss = bce(D(fake), ones)
    d_loss.backward()
    opt_d.step()
    g_loss.backward()
    opt_g.step()
    ```

    ## Use instead
    ```python
    d_loss = bce(D(real), ones) + bce(D(fake.detach()), zeros)
    d_loss.backward()
    opt_d.step()
    g_loss = bce(D(fake), ones)  # a fresh forward through the updated D
    g_loss.backward()
    opt_g.step()
    ```
    """

    code = "GL015"
    name = "step-between-backward-on-shared-graph"
    message = (
        "`{step}` updates in place parameters that the graph of `{loss}` (a forward run before the step) still "
        'needs for its backward on line {line}, which fails with "one of the variables needed for gradient computation has '
        'been modified by an inplace operation"; run both backward passes before stepping, or recompute '
        "`{loss}` after the step"
    )
    message_helpers = (
        "`{step}` updates in place the weights of the forward that wrote `{attr}` (line {attr_line}) before it; "
        'the backward of `{loss}` on line {line} still goes through that forward and fails with "one of the '
        'variables needed for gradient computation has been modified by an inplace operation"; recompute '
        "`{attr}` after the step, or run both backward passes before stepping"
    )
    VALID = [
        """
        opt_d = Adam(D.parameters())
        opt_g = Adam(G.parameters())
        for real in loader:
            fake = G(z)
            d_loss = bce(D(real), ones) + bce(D(fake.detach()), zeros)
            d_loss.backward()
            opt_d.step()
            g_loss = bce(D(fake), ones)
            g_loss.backward()
            opt_g.step()
        """,
    ]
    INVALID = [
        """
        class Model:
            def setup(self):
                self.opt_E = torch.optim.Adam(self.netE.parameters())

            def forward(self):
                self.fake = self.netG(self.real)
                self.mu = self.netE(self.fake)

            def backward_G(self):
                self.netD(self.fake).mean().backward(retain_graph=True)

            def backward_z(self):
                self.mu.abs().mean().backward()

            def optimize(self):
                self.forward()
                self.backward_G()
                self.opt_E.step()  # error
                self.backward_z()
        """,
        """
        opt_d = Adam(D.parameters())
        opt_g = Adam(G.parameters())
        for real in loader:
            fake = G(z)
            d_loss = bce(D(real), ones) + bce(D(fake.detach()), zeros)
            g_loss = bce(D(fake), ones)
            d_loss.backward(retain_graph=True)
            opt_d.step()  # error
            g_loss.backward()
            opt_g.step()
        """,
    ]

    # Which optimizer steps which parameters is set up in `__init__`, used in another method.
    reads = "class"

    @classmethod
    def could_match(cls, text: str) -> bool:
        return text.count("backward") >= 2 and ".step(" in text and not other_framework(text)

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
            events = scope.events
            for si, step in enumerate(events):
                if step.kind != "step" or not step.key:
                    continue
                first = next(
                    (e for e in reversed(events[:si]) if e.populates_grad and analysis.reaches(e, step)), None
                )
                if first is None:
                    continue
                second = next((e for e in events[si + 1 :] if e.kind == "backward"), None)
                if second is None or second.backward is None or second.backward.target is None:
                    continue
                if not analysis.reaches(step, second):
                    continue
                hit = self._stale_forward(second, step, first, scope, analysis)
                if hit:
                    self.report(
                        step.node,
                        step=self.context.code_for(step.node),
                        loss=self.context.code_for(second.backward.target),
                        line=self.context.position(second.node).start.line,
                    )

    def _stale_forward(self, second: Event, step: Event, first: Event, scope: ScopeInfo, analysis) -> bool:
        # Forward calls evaluated before the step whose outputs reach the second loss.
        stale = [
            c
            for c, order in _forward_calls(second.backward.target, second, scope, set())
            if order < step.order
        ]
        if not stale:
            return False  # computed after the step, or from detached inputs only
        models = analysis.optimizer_models.get(step.key) or analysis.optimizer_models.get(
            "self." + last_part(step.key)
        )
        if models:
            return any(_calls_model(c, models) for c in stale)
        # Unknown parameter set: only the explicit retain_graph=True on the first backward says
        # both losses share one graph, and the second must also share a forward with the first.
        if not (
            first.backward is not None and first.backward.retain_graph and first.backward.target is not None
        ):
            return False
        first_calls = [c for c, _ in _forward_calls(first.backward.target, first, scope, set())]
        shared = {_call_text(c) for c in stale} & {_call_text(c) for c in first_calls}
        shared.discard(None)
        return bool(shared)

    def leave_Module(self, original_node: cst.Module) -> None:
        # the same shape spread over helpers and methods (semantics/interproc.py)
        through_helpers.report_gl015(self)


def _call_text(call: cst.Call) -> str | None:
    return dotted_name(call.func)


def _calls_model(call: cst.Call, models: set[str]) -> bool:
    name = dotted_name(call.func) or ""
    for m in models:
        if name == m or name.startswith(m + "."):
            return True
    return False


_DETACHING = {"detach", "item", "tolist", "cpu_detached", "numpy"}


def _forward_calls(
    expr: cst.BaseExpression, at: Event, scope: ScopeInfo, seen: set[str]
) -> list[tuple[cst.Call, int]]:
    """Calls whose outputs flow into ``expr`` (evaluated at ``at``), each with the order it ran at.

    Follows earlier assignments of the names ``expr`` reads; stops at ``.detach()``/``.item()``.
    """
    out: list[tuple[cst.Call, int]] = []
    stack = [expr]
    names: set[str] = set()
    while stack:
        n = stack.pop()
        if isinstance(n, cst.Call):
            f = n.func
            if isinstance(f, cst.Attribute) and f.attr.value in _DETACHING:
                continue
            out.append((n, at.order))
        if isinstance(n, cst.Lambda):
            continue
        if isinstance(n, (cst.Name, cst.Attribute)):
            d = dotted_name(n)
            if d is not None:
                names.add(d)
                names.add(d.split(".")[0])
                if isinstance(n, cst.Name):
                    continue
        stack.extend(child_nodes(n))
    for name in sorted(names - seen):
        seen.add(name)
        prev = last_assignment(scope, name, at)
        if prev is None or prev.value is None or isinstance(prev.node, (cst.For, cst.With)):
            continue
        if _constructs(prev.value):
            continue  # `model = Net()`, `opt = SGD(...)`, `model = accelerator.prepare(model)`: no forward
        out.extend(_forward_calls(prev.value, prev, scope, seen))
    return [(c, o) for c, o in out if last_part(dotted_name(c.func)) not in _NOT_FORWARD]


_NOT_FORWARD = {"parameters", "named_parameters", "to", "cuda", "cpu", "train", "eval", "zero_grad", "step"}
_BUILDERS = {
    "prepare",
    "prepare_model",
    "create_model",
    "from_pretrained",
    "compile",
    "build_model",
    "get_model",
    "deepcopy",
    "copy",
    "load",
    "DDP",
    "FSDP",
}


def _constructs(value: cst.BaseExpression) -> bool:
    """Object construction rather than a forward pass: a class call or a model builder."""
    if not isinstance(value, cst.Call):
        return False
    last = last_part(dotted_name(value.func))
    # CamelCase is a class; `G(z)` / `D(x)` (single capitals) are the usual GAN module names.
    return bool(last) and ((last[0].isupper() and any(ch.islower() for ch in last)) or last in _BUILDERS)


def _step_or_backward(text: str) -> bool:
    return ".step(" in text or "backward" in text
