"""GL016: ``.data`` on parameters, gradients and buffers (legacy style; off by default)."""

from __future__ import annotations

import re

import libcst as cst

from gradlint.static.fixes import no_grad_block
from gradlint.static.rule import Replace, Rule
from gradlint.static.semantics.dataflow import (
    TracksStatements,
    TracksWrites,
    is_data_attr,
    state_data_receiver,
    strip_state_data,
    write_roles,
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
    `with torch.no_grad():` (only if `torch` is imported under a name): one block
    for a run of such statements, around the whole loop or `if` when all its
    statements are. Unlike
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
        line = self.flow_statement
        small = self.flow_small_statement(node)
        if small is None or small is line or self._without_data(line) is None:
            return None
        if self.flow_grad_disabled():
            return Replace(small, strip_state_data(self.context, small, self.flow_fact))
        return no_grad_block(self.context, self.flow.torch_alias(), line, self._without_data, self._fix_cache)

    def _without_data(self, line: cst.BaseStatement) -> cst.BaseStatement | None:
        """``line`` without ``.data`` on its state tensors, when this rule fixes it: one
        in-place edit (call, augmented or item assignment) of ``X.data`` of a
        parameter, gradient or buffer. Evaluated where ``line`` is, so that the
        statements next to the reported one can join its ``no_grad`` block."""
        if not isinstance(line, cst.SimpleStatementLine) or len(line.body) != 1:
            return None
        small = line.body[0]
        if not isinstance(small, (cst.Expr, cst.AugAssign, cst.Assign)):
            return None
        if isinstance(small, cst.Expr) and not isinstance(small.value, cst.Call):
            return None

        def fact(expr):
            return self.flow.fact_of(expr, at=line)

        written = {
            id(expr)
            for node in _writers(small)
            for expr, role in write_roles(node)
            if role in _FIXABLE_ROLES and is_data_attr(expr)
        }
        fixable = any(
            not (isinstance(a.value, cst.Name) and a.value.value in ("self", "cls"))
            and state_data_receiver(fact, a.value) is not None
            for a in _data_attributes(small)
            if id(a) in written
        )
        if not fixable:
            return None
        code = strip_state_data(self.context, small, fact)
        try:
            new = cst.parse_statement(code)
        except cst.ParserSyntaxError:
            return None
        if not isinstance(new, cst.SimpleStatementLine) or len(new.body) != 1:
            return None
        return line.with_changes(body=[new.body[0]])

    @property
    def _fix_cache(self) -> dict:
        return self.__dict__.setdefault("_no_grad_blocks", {})


def _writers(small: cst.CSTNode):
    """The calls and assignments in ``small`` that may write something."""
    stack = [small]
    while stack:
        node = stack.pop()
        if isinstance(node, (cst.Call, cst.Assign, cst.AugAssign)):
            yield node
        stack.extend(node.children)


def _data_attributes(small: cst.CSTNode):
    stack = [small]
    while stack:
        node = stack.pop()
        if is_data_attr(node):
            yield node
        stack.extend(node.children)
