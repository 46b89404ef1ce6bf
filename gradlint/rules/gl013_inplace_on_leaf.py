"""GL013: in-place edit of a leaf tensor that requires grad, outside no_grad."""

from __future__ import annotations

import re

import libcst as cst

from gradlint.static.fixes import no_grad_block
from gradlint.static.rule import Invalid, Rule
from gradlint.static.semantics.backward import might_backward
from gradlint.static.semantics.dataflow import (
    Kind,
    TracksStatements,
    inplace_edits,
    is_inplace_method,
    view_root,
)

_PARAMS_KEY = re.compile(r"\[.params.\]")
_REQUIRES_GRAD_TRUE = re.compile(r"requires_grad(?:\s*=\s*True|_\(\s*(?:True\s*)?\))")


def _leaf_sign(text: str) -> bool:
    return any(s in text for s in ("requires_grad", "Parameter", "parameters(")) or (
        "params" in text and _PARAMS_KEY.search(text) is not None
    )


# An in-place edit of a ``self`` attribute: ``self.w -= ...``, ``self.w.add_(...)``, ``self.w[i] = ...``.
_SELF_INPLACE = re.compile(r"self\.\w+(?:\.\w+_\(|\s*[-+*/%&|^@]=|\[[^\]\n]*\]\s*=[^=])")
_INPLACE_SIGN = re.compile(r"[a-z0-9]_\(|[-+*/%&|^@]=|\]\s*=[^=]")


class InplaceOnLeaf(TracksStatements, Rule):
    """## What it does
    Flags an in-place edit (`w -= lr * w.grad`, `w.add_()`, `w[i] = v`,
    `w.uniform_()`) of a leaf tensor that requires grad, or of a view of one: a
    tensor created with `requires_grad=True`, an `nn.Parameter`, an item of
    `.parameters()`, outside `torch.no_grad()` / `torch.inference_mode()`.

    Only evident cases are flagged: the leaf is created in the same function, or
    the parameters are iterated in code that also runs `backward()` (a training
    step, which no caller wraps in `no_grad`), or at module level. Edits of
    `p.grad` and through `.data` (GL016) are not this rule's business.

    ## Why is this bad?
    Autograd refuses to modify a leaf it tracks:

    ```
    RuntimeError: a leaf Variable that requires grad is being used in an in-place operation.
    RuntimeError: a view of a leaf Variable that requires grad is being used in an in-place operation.
    ```

    Manual parameter updates must not be recorded in the graph anyway.

    ## Example
    ```python
    w = torch.randn(3, requires_grad=True)
    for x, y in data:
        loss = ((x @ w - y) ** 2).mean()
        loss.backward()
        w -= lr * w.grad
        w.grad.zero_()
    ```

    ## Use instead
    ```python
    w = torch.randn(3, requires_grad=True)
    for x, y in data:
        loss = ((x @ w - y) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            w -= lr * w.grad
        w.grad.zero_()
    ```

    ## Fix safety
    The fix wraps the statement in `with torch.no_grad():` (only when `torch` is
    imported under a name and the statement is alone on its line), together with
    the updates next to it, and around the whole loop when every statement of
    the loop is such an update. It is unsafe
    (opt-in) because the edit is then no longer part of the graph, which is what a
    parameter update wants but not what every in-place edit means.
    """

    code = "GL013"
    name = "inplace-on-leaf"
    reads = "class"  # `self.w` requires grad because `__init__` says so
    message = (
        "In-place edit of `{target}`, a leaf tensor that requires grad, outside `torch.no_grad()`: "
        '"a leaf Variable that requires grad is being used in an in-place operation"; '
        "wrap the update in `with torch.no_grad():`"
    )
    fix_applicability = "unsafe"

    VALID = [
        """
        import torch
        w = torch.randn(3, requires_grad=True)
        with torch.no_grad():
            w -= 0.1 * w.grad
        """,
        """
        import torch
        w = torch.randn(3, requires_grad=True)
        w = w - 0.1 * w.grad
        """,
        """
        import torch
        w = torch.randn(3, requires_grad=True)
        w.grad.zero_()
        w.data.add_(1)
        """,
        """
        import torch
        class SGD(torch.optim.Optimizer):
            @torch.no_grad()
            def step(self):
                for group in self.param_groups:
                    for p in group["params"]:
                        p.add_(p.grad, alpha=-group["lr"])
        """,
    ]
    INVALID = [
        Invalid(
            """
        import torch
        w = torch.randn(3, requires_grad=True)
        loss = (w * 2).sum()
        loss.backward()
        w -= 0.1 * w.grad  # error
        """,
            expected_replacement="""
        import torch
        w = torch.randn(3, requires_grad=True)
        loss = (w * 2).sum()
        loss.backward()
        with torch.no_grad():
            w -= 0.1 * w.grad  # error
        """,
        ),
        """
        import torch
        def step(model, x):
            model(x).sum().backward()
            for p in model.parameters():
                p.add_(p.grad, alpha=-0.1)  # error
        """,
        """
        import torch
        def make():
            w = torch.zeros(4, requires_grad=True)
            w[0] = 1.0  # error
            return w
        """,
    ]

    @classmethod
    def could_match(cls, text: str) -> bool:
        # A finding needs evidence that no caller disabled grad: a leaf made with
        # requires_grad=True, or a backward in the same function. Files with only
        # nn.Parameter (every model definition) cannot provide it.
        return (
            _INPLACE_SIGN.search(text) is not None
            and _leaf_sign(text)
            and (_REQUIRES_GRAD_TRUE.search(text) is not None or might_backward(text))
        )

    @classmethod
    def could_match_unit(cls, text: str, file_text: str) -> bool:
        # The leaf is made (or its parameters listed) where it is edited, or, for an
        # edit of ``self.w``, in the class set-up (kept with the unit: ``reads = "class"``);
        # the evidence that grad is on may come from anywhere in the file.
        if _INPLACE_SIGN.search(text) is None:
            return False
        return _leaf_sign(text) or (_SELF_INPLACE.search(text) is not None and _leaf_sign(file_text))

    def visit_Call(self, node: cst.Call) -> None:
        self._check(node)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._check(node)

    def visit_Assign(self, node: cst.Assign) -> None:
        self._check(node)

    def _check(self, node: cst.CSTNode) -> None:
        for edit in inplace_edits(node):
            target = edit.target
            if (
                isinstance(target, cst.Call)
                and isinstance(target.func, cst.Attribute)
                and is_inplace_method(target.func.attr.value)
            ):
                continue  # ``w.mul_(a).add_(b)``: one edit chain, reported once, at ``w.mul_``
            root = view_root(edit.target)
            if isinstance(root, cst.Attribute) and root.attr.value in ("grad", "data"):
                continue
            fact = self.flow_fact(root)
            if fact.kind not in (Kind.LEAF_REQUIRES_GRAD, Kind.PARAMETER) or fact.origin is None:
                continue
            if self.flow_grad_disabled():
                continue
            scope = self.flow_scope()
            if not (
                fact.kind is Kind.LEAF_REQUIRES_GRAD
                or isinstance(scope, cst.Module)
                or self.flow.has_backward(scope)
            ):
                continue
            small = self.flow_small_statement(node)
            fix = None
            if small is not None and small is not self.flow_statement:
                fix = no_grad_block(
                    self.context,
                    self.flow.torch_alias(),
                    self.flow_statement,
                    self._edits_leaf,
                    self._fix_cache,
                )
            self.report(
                node,
                target=self.context.code_for(edit.target),
                fix=fix,
                fix_message="Make the update under `with torch.no_grad():`",
            )

    def _edits_leaf(self, line: cst.BaseStatement) -> cst.BaseStatement | None:
        """``line`` itself when it is one in-place edit of a leaf or parameter that this
        rule wraps in ``no_grad`` (evaluated where ``line`` is): the statements next to
        the reported one join its block."""
        if not isinstance(line, cst.SimpleStatementLine) or len(line.body) != 1:
            return None
        small = line.body[0]
        node = small.value if isinstance(small, cst.Expr) else small
        for edit in inplace_edits(node):
            root = view_root(edit.target)
            if isinstance(root, cst.Attribute) and root.attr.value in ("grad", "data"):
                continue
            fact = self.flow.fact_of(root, at=line)
            if fact.kind in (Kind.LEAF_REQUIRES_GRAD, Kind.PARAMETER) and fact.origin is not None:
                return line
        return None

    @property
    def _fix_cache(self) -> dict:
        return self.__dict__.setdefault("_no_grad_blocks", {})
