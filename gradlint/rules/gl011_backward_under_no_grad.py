"""GL011: backward on a loss computed with autograd disabled."""

from __future__ import annotations

import re

import libcst as cst

from gradlint.static.rule import Rule
from gradlint.static.semantics.backward import might_backward, might_backward_in
from gradlint.static.semantics.imports import ImportMap, dotted_name
from gradlint.static.semantics.optim import Event, OptimAnalysis, ScopeInfo, grad_mode_at, last_assignment

_GRAD_OFF = ("no_grad", "inference_mode", "set_grad_enabled")
# A decorator or a `with` statement: the project's own wrapper may turn grad off there, defined
# in this file or imported from another (`from .utils import evaluating`).
_MAY_WRAP = re.compile(r"^[ \t]*(?:@|(?:async[ \t]+)?with\b)", re.M)


def _may_turn_grad_off(text: str) -> bool:
    return any(s in text for s in _GRAD_OFF) or _MAY_WRAP.search(text) is not None


class BackwardUnderNoGrad(Rule):
    """## What it does
    Flags a backward call inside `with torch.no_grad():`,
    `torch.inference_mode()`, `torch.set_grad_enabled(False)`, or a function
    decorated with `@torch.no_grad()` / `@torch.inference_mode()`, when the loss
    it backpropagates was computed in that same no-grad region. The project's own
    decorators and context managers that wrap these count too, whether defined in
    the same file or imported from another file of the project
    (`from .utils import evaluating`).

    ## Why is this bad?
    With grad mode off, autograd records nothing: the loss has no `grad_fn`, and
    the backward call fails with

    `RuntimeError: element 0 of tensors does not require grad and does not have a grad_fn`

    (under `inference_mode` the tensors are also inference tensors, which cannot
    be used in autograd at all). A `with torch.enable_grad():` block nested inside
    re-enables recording and is not reported; neither is a backward under
    `no_grad` of a loss computed before the block (that works).

    ## Example
    ```python
    @torch.no_grad()
    def finetune_step(model, x, y):
        loss = F.cross_entropy(model(x), y)
        loss.backward()
    ```

    ## Use instead
    ```python
    def finetune_step(model, x, y):
        loss = F.cross_entropy(model(x), y)
        loss.backward()
    ```
    """

    code = "GL011"
    name = "backward-under-no-grad"
    message = (
        "`{target}` was computed with autograd disabled ({region}), so it has no graph and this backward fails "
        '("element 0 of tensors does not require grad"); compute the loss outside the no-grad region'
    )
    VALID = [
        """
        import torch
        with torch.no_grad():
            with torch.enable_grad():
                loss = model(x).sum()
                loss.backward()
        """,
        """
        import torch
        loss = model(x).sum()
        with torch.no_grad():
            loss.backward()
        """,
    ]
    INVALID = [
        """
        import torch
        with torch.no_grad():
            loss = model(x).sum()
            loss.backward()  # error
        """,
    ]

    @classmethod
    def could_match(cls, text: str) -> bool:
        return might_backward(text) and _may_turn_grad_off(text)

    @classmethod
    def could_match_unit(cls, text: str, file_text: str) -> bool:
        return _may_turn_grad_off(text) and might_backward_in(text, file_text)

    def visit_Module(self, node: cst.Module) -> None:
        analysis = self.context.analysis(OptimAnalysis)
        imports = self.context.analysis(ImportMap)
        for scope in analysis.scopes:
            for bw in scope.events:
                if bw.kind != "backward" or bw.backward is None or bw.backward.target is None:
                    continue
                mode, region = grad_mode_at(bw, scope, imports)
                if mode is not False:
                    continue
                if self._computed_without_grad(bw.backward.target, bw, scope, imports, set()):
                    self.report(
                        bw.node,
                        target=self.context.code_for(bw.backward.target),
                        region=_describe(region, self.context),
                    )

    def _computed_without_grad(self, expr, at: Event, scope: ScopeInfo, imports, seen: set[str]) -> bool:
        name = dotted_name(expr)
        if name is None:
            # An operation evaluated right here, where grad mode is off.
            return isinstance(expr, (cst.Call, cst.BinaryOperation, cst.UnaryOperation))
        # `out.loss`: look for the assignment of `out.loss`, then of `out`.
        parts = name.split(".")
        for i in range(len(parts), 0, -1):
            key = ".".join(parts[:i])
            if key in seen:
                return False
            assign = last_assignment(scope, key, at)
            if assign is None:
                continue
            seen.add(key)
            value = assign.value
            mode, _ = grad_mode_at(assign, scope, imports)
            if assign.augmented:
                return mode is False
            if value is None or isinstance(assign.node, (cst.For, cst.With)):
                return False
            if dotted_name(value) is not None or isinstance(value, cst.Subscript):
                root = value
                while isinstance(root, cst.Subscript):
                    root = root.value
                return self._computed_without_grad(root, assign, scope, imports, seen)
            return mode is False and isinstance(value, (cst.Call, cst.BinaryOperation, cst.UnaryOperation))
        return False


def _describe(region: cst.CSTNode | None, context) -> str:
    if isinstance(region, cst.With):
        return "`with " + ", ".join(context.code_for(i.item) for i in region.items) + "`"
    if isinstance(region, cst.FunctionDef):
        return f"`{region.name.value}` is decorated with a no-grad decorator"
    return "grad mode off"
