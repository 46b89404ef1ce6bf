"""GL009: ``.grad`` read on a tensor that is evidently not a leaf."""

from __future__ import annotations

import re

import libcst as cst

from gradlint.static.rule import Rule
from gradlint.static.semantics.dataflow import Kind, TracksStatements, TracksWrites
from gradlint.static.semantics.imports import dotted_name

_GRAD_READ = re.compile(r"\.grad\b(?![_(])")


class NonLeafGradAccess(TracksStatements, TracksWrites, Rule):
    """## What it does
    Flags a read of `.grad` on a tensor that is evidently not a leaf: a model
    output, the result of an operation on tensors that require grad, or a
    `requires_grad=True` tensor moved afterwards (`torch.randn(3,
    requires_grad=True).cuda()` is the *copy* on the GPU, not the leaf), when no
    `retain_grad()` is called on it.

    Writes (`x.grad = None`, `del x.grad`, `x.grad.zero_()`) are not flagged: they
    are grad bookkeeping, not a read of a result.

    ## Why is this bad?
    Autograd fills `.grad` only for leaves. For any other tensor the read returns
    `None`, and PyTorch only warns:

    ```
    UserWarning: The .grad attribute of a Tensor that is not a leaf Tensor is being
    accessed. Its .grad attribute won't be populated during autograd.backward().
    ```

    so the code goes on with `None` (or crashes later on `None`), or reads the
    gradient of the wrong tensor.

    ## Example
    ```python
    x = torch.randn(8, 3, requires_grad=True).to(device)
    loss = model(x).sum()
    loss.backward()
    saliency = x.grad.abs()
    ```

    ## Use instead
    ```python
    x = torch.randn(8, 3, device=device, requires_grad=True)  # a leaf on the device
    loss = model(x).sum()
    loss.backward()
    saliency = x.grad.abs()
    ```
    or call `x.retain_grad()` before `backward()` when the gradient of an
    intermediate value is wanted.
    """

    code = "GL009"
    name = "nonleaf-grad-access"
    reads = "class"  # value kinds (dataflow) read `__init__`
    message = (
        "`{target}` is not a leaf tensor, so its `.grad` is never populated (None); "
        "call `{target}.retain_grad()` before backward, or read the grad of the leaf it was computed from"
    )

    VALID = [
        """
        import torch
        x = torch.randn(3, requires_grad=True)
        (x * 2).sum().backward()
        print(x.grad)
        """,
        """
        out = model(x)
        out.retain_grad()
        out.sum().backward()
        g = out.grad
        """,
        """
        for p in model.parameters():
            if p.grad is not None:
                p.grad = None
        """,
        """
        import torch
        x = torch.randn(3, device=device, requires_grad=True)
        x.sum().backward()
        g = x.grad
        """,
    ]
    INVALID = [
        """
        import torch
        x = torch.randn(3, requires_grad=True).cuda()
        (x * 2).sum().backward()
        print(x.grad)  # error
        """,
        """
        import torch
        w = torch.randn(3, requires_grad=True)
        h = w * 2
        h.sum().backward()
        g = h.grad  # error
        """,
        """
        out = model(x)
        out.sum().backward()
        sal = out.grad.abs()  # error
        """,
    ]

    @classmethod
    def could_match(cls, text: str) -> bool:
        return _GRAD_READ.search(text) is not None

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if node.attr.value != "grad" or self.write_role(node) is not None:
            return
        base = node.value
        if isinstance(base, cst.Attribute) and base.attr.value in ("weight", "bias", "data"):
            return
        if isinstance(base, cst.Name) and base.value in ("self", "cls"):
            return
        if self.flow_kind(base) is not Kind.ACTIVATION:
            return
        name = dotted_name(base)
        if name is not None and name in self.flow.scope_facts(self.flow_scope()).retained:
            return
        self.report(node, target=self.context.code_for(base))
