"""GL004: in-place edit of ``.detach()`` of an activation."""

from __future__ import annotations

import re

import libcst as cst

from gradlint.static.rule import Replace, Rule
from gradlint.static.semantics.dataflow import Kind, TracksStatements, inplace_edits
from gradlint.static.semantics.imports import dotted_name

_INPLACE_SIGN = re.compile(r"[a-z0-9]_\(|[-+*/%&|^@]=|\]\s*=[^=]")


class InplaceOnDetached(TracksStatements, Rule):
    """## What it does
    Flags an in-place operation (`add_`, `zero_`, `mul_`, `clamp_`, `copy_`, `fill_`,
    `masked_fill_`, `+=`, `t[i] = v`...) on the result of `.detach()` of an activation
    (a model output or a value computed from tensors that require grad), whether the
    edit is chained (`out.detach().zero_()`), made through a name bound to it, or
    through a view of it (`y = out.detach(); y[:, :5].mul_(2)`).

    ## Why is this bad?
    `.detach()` returns a tensor that shares storage **and the version counter** with
    the original. Editing it in place edits the activation itself: if autograd saved
    that value for backward, the next `backward()` fails with

    ```
    RuntimeError: one of the variables needed for gradient computation has been
    modified by an inplace operation: [torch.FloatTensor [64, 10]], which is output 0
    of SigmoidBackward0, is at version 1; expected version 0 instead.
    ```

    and if it did not, the forward result (and everything computed from it later)
    silently changes.

    Parameters, gradients and buffers are not activations: `p.detach().copy_(avg)`
    (SWA/EMA), `p.grad.detach().mul_(scale)` and `weight[0].detach().zero_()` at
    initialisation are idiomatic and not flagged.

    ## Example
    ```python
    probs = model(x).sigmoid()
    masked = probs.detach()
    masked[masked < 0.5] = 0.0
    loss = criterion(probs, y)
    loss.backward()
    ```

    ## Use instead
    ```python
    probs = model(x).sigmoid()
    masked = probs.detach().clone()
    masked[masked < 0.5] = 0.0
    loss = criterion(probs, y)
    loss.backward()
    ```

    ## Fix safety
    The fix appends `.clone()` to the `.detach()` call. It is safe: the edit then
    applies to a private copy, which is what the code can only have meant, since
    the shared storage is exactly what breaks the graph.
    """

    code = "GL004"
    name = "inplace-on-detached"
    reads = "class"  # `self.lin` is a module because `__init__` says so
    message = (
        "In-place edit of `{target}`, which is `.detach()` of an activation and shares its storage and "
        "version counter: backward fails or the forward result changes; use `.detach().clone()`"
    )
    fix_applicability = "safe"
    prefilter = ("detach",)

    VALID = [
        """
        next_q = target_net(next_states).detach()
        next_q[dones] = 0.0
        """,
        """
        for x in xs:
            h = rnn(x, h)
            h = h.detach()
            h.clamp_(-1, 1)
        """,
        """
        out = model(x)
        y = out.detach().clone()
        y.zero_()
        """,
        """
        out = model(x)
        y = out.detach()
        y = y.clone()
        y[:, :5].mul_(2)
        """,
        """
        for p, avg in zip(model.parameters(), ema.parameters()):
            avg.detach().mul_(0.99).add_(p.detach(), alpha=0.01)
        """,
        """
        for p in model.parameters():
            p.grad.detach().mul_(0.5)
        """,
        """
        out = model(x)
        z = out.detach() * 2
        z += 1
        """,
    ]
    INVALID = [
        """
        out = model(x)
        out.detach().zero_()  # error
        out.sum().backward()
        """,
        """
        out = model(x)
        y = out.detach()
        y[:, :5].mul_(2)  # error
        loss = (out - y).pow(2).mean()
        """,
        """
        h = encoder(x)
        y = h.detach()
        y += 1  # error
        y[0] = 0  # error
        loss = h.sum()
        """,
    ]

    @classmethod
    def could_match(cls, text: str) -> bool:
        return "detach" in text and _INPLACE_SIGN.search(text) is not None

    def visit_Call(self, node: cst.Call) -> None:
        self._check(node)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._check(node)

    def visit_Assign(self, node: cst.Assign) -> None:
        self._check(node)

    def _original_in_use(self, origin) -> bool:
        """Is the activation behind ``origin`` (its ``.detach()`` call) still wanted?

        ``target_net(s).detach()`` detaches a temporary nothing else refers to, and
        ``h = h.detach()`` drops the only name of the old value: editing those harms
        no one. The original must be a name read somewhere else in the function.
        """
        if not (isinstance(origin, cst.Call) and isinstance(origin.func, cst.Attribute)):
            return False
        name = dotted_name(origin.func.value)
        if name is None:
            return False
        for anc in self.context.ancestors(origin):
            if isinstance(anc, cst.Assign):
                if any(dotted_name(t.target) == name for t in anc.targets):
                    return False  # rebinds the name of the original
                break
            if isinstance(anc, (cst.BaseSmallStatement, cst.BaseCompoundStatement)):
                break
        return self.flow.loads(self.flow_scope()).get(name, 0) >= 2

    def _check(self, node: cst.CSTNode) -> None:
        for edit in inplace_edits(node):
            target = edit.target
            if edit.form == "setitem":
                target = target.value  # ``y[mask] = v`` writes ``y`` whatever the index is
            fact = self.flow_fact(target)
            if fact.kind is not Kind.DETACHED_VIEW_OF_ACTIVATION or not self._original_in_use(fact.origin):
                continue
            fix = None
            origin = fact.origin
            if isinstance(origin, cst.Call):
                fix = Replace(origin, self.context.code_for(origin) + ".clone()")
            self.report(
                node,
                target=self.context.code_for(edit.target if edit.form != "setitem" else target),
                fix=fix,
                fix_message="Clone the detached tensor: `.detach().clone()`",
            )
