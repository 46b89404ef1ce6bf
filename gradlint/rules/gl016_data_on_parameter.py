"""GL016: ``.data`` on parameters, gradients and buffers (legacy style; off by default)."""

from __future__ import annotations

import re

import libcst as cst

from gradlint.static.rule import Replace, Rule
from gradlint.static.semantics.dataflow import (
    TracksStatements,
    TracksWrites,
    no_grad_wrap,
    state_data_receiver,
    strip_state_data,
)

_DATA = re.compile(r"\.data\b")
_FIXABLE_ROLES = ("inplace", "augassign", "setitem")


class DataOnParameter(TracksStatements, TracksWrites, Rule):
    """## What it does
    Flags `.data` on parameters, gradients and buffers (`p.data.clamp_(-c, c)`,
    `p.data.add_(p.grad.data, alpha=-lr)`, `m.weight.data.normal_(0, 0.02)`).
    Off by default: select it explicitly.

    ## Why is this bad?
    `.data` is a legacy (pre-0.4) way to edit a tensor behind autograd's back. It
    skips the version counter, so a parameter edited while autograd still holds it
    for backward gives silently wrong gradients instead of the error
    "one of the variables needed for gradient computation has been modified by an
    inplace operation". The supported way is to make the edit on the tensor itself
    under `torch.no_grad()` (or to use `torch.nn.init`), which also works with
    `torch.compile`, functorch and tensor subclasses.

    ## Example
    ```python
    for p in critic.parameters():
        p.data.clamp_(-0.01, 0.01)
    ```

    ## Use instead
    ```python
    with torch.no_grad():
        for p in critic.parameters():
            p.clamp_(-0.01, 0.01)
    ```

    ## Fix safety
    The fix is unsafe (opt-in). For an in-place edit statement it removes `.data`
    from the parameters, gradients and buffers of the statement and, unless the
    statement already runs under `torch.no_grad()`, wraps it in
    `with torch.no_grad():` (only if `torch` is imported under a name). Unlike
    `.data`, the edit then bumps the version counter, so an edit that autograd
    would have missed now raises. Reads (`x = p.data`) get no fix: `p` itself is
    not equivalent.
    """

    code = "GL016"
    name = "data-on-parameter"
    message = (
        "`.data` on `{target}` ({kind}) is a legacy style that hides the edit from autograd; "
        "operate on the tensor itself under `with torch.no_grad():` (or use `torch.nn.init`)"
    )
    fix_applicability = "unsafe"
    default_enabled = False

    VALID = [
        """
        out = model(x)
        feats = out.data
        """,
        """
        import torch
        with torch.no_grad():
            for p in model.parameters():
                p.clamp_(-0.01, 0.01)
        """,
        """
        images = train_set.data
        """,
        """
        class Batch:
            def size(self):
                return len(self.data)
        """,
    ]
    INVALID = [
        """
        for p in critic.parameters():
            p.data.clamp_(-0.01, 0.01)  # error
        """,
        """
        def init(m):
            m.weight.data.normal_(0.0, 0.02)  # error
        """,
        """
        for p in model.parameters():
            p.data.add_(p.grad.data, alpha=-lr)  # error
        """,
    ]

    # Parameters and buffers are declared in `__init__`, used in other methods.
    reads = "class"

    @classmethod
    def could_match(cls, text: str) -> bool:
        return _DATA.search(text) is not None

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if node.attr.value != "data":
            return
        base = node.value
        if isinstance(base, cst.Name) and base.value in ("self", "cls"):
            return
        kind = state_data_receiver(self.flow_fact, base)
        if kind is None:
            return
        self.report(
            node,
            target=self.context.code_for(base),
            kind=kind.value.replace("-", " "),
            fix=self._fix(node),
            fix_message="Edit the tensor itself under `torch.no_grad()`",
        )

    def _fix(self, node: cst.Attribute):
        if self.write_role(node) not in _FIXABLE_ROLES:
            return None
        small = self.flow_small_statement(node)
        line = self.flow_statement
        if small is None or not isinstance(small, (cst.Expr, cst.AugAssign, cst.Assign)):
            return None
        if isinstance(small, cst.Expr) and not isinstance(small.value, cst.Call):
            return None
        new_code = strip_state_data(self.context, small, self.flow_fact)
        if self.flow_grad_disabled():
            return Replace(small, new_code)
        return no_grad_wrap(self.context, small, line, new_code)
