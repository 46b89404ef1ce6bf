"""GL005: ``.data`` on a tensor that carries a graph."""

from __future__ import annotations

import re

import libcst as cst

from gradlint.rules import through_helpers
from gradlint.static.rule import Invalid, Replace, Rule
from gradlint.static.semantics.dataflow import (
    Kind,
    TracksStatements,
    TracksWrites,
    state_data_receiver,
)
from gradlint.static.semantics.interproc import cuts_with_data, might_cut_with_data
from gradlint.static.semantics.sinks import leaves_autograd
from gradlint.static.semantics.summaries import calls_matching_helper
from gradlint.static.semantics.vocabulary import INFERENCE_FUNCTION

_DATA = re.compile(r"\.data\b")
# In-place methods whose out-of-place twin is the same name without "_".
_ARITH = frozenset(
    {
        "add_",
        "sub_",
        "mul_",
        "div_",
        "clamp_",
        "clamp_min_",
        "clamp_max_",
        "pow_",
        "neg_",
        "abs_",
        "exp_",
        "log_",
        "sqrt_",
        "sigmoid_",
        "tanh_",
        "relu_",
        "masked_fill_",
        "addcmul_",
        "addcdiv_",
        "lerp_",
    }
)
_AUG_OPS = {
    "AddAssign": "+",
    "SubtractAssign": "-",
    "MultiplyAssign": "*",
    "DivideAssign": "/",
    "FloorDivideAssign": "//",
    "ModuloAssign": "%",
    "PowerAssign": "**",
    "MatrixMultiplyAssign": "@",
}
_ATOMIC = (cst.Name, cst.Attribute, cst.Call, cst.Subscript, cst.Integer, cst.Float)


class DataOnActivation(TracksStatements, TracksWrites, Rule):
    """## What it does
    Flags `.data` taken of a tensor that carries an autograd graph: a model or layer
    output, or the result of an operation on tensors that require grad
    (`delta = G(z); delta.data += 1`, `h = prev.data.clone()` in a recurrent loop,
    `out.data` passed on into further computation).

    Also `.data` that cuts a value carried between the time steps of a loop
    inside a forward (`h = h.data.clone()`, then `h[:n] = new_h`): backpropagation
    through time stops at every step; and in-place arithmetic through `.data`
    (`delta.data += 1`) in a helper that a same-file caller hands a network output.

    ## Why is this bad?
    `.data` gives the same storage with autograd switched off and, unlike
    `.detach()`, without the version counter: autograd cannot see what is done
    through it. An in-place edit through `.data` changes values autograd saved for
    backward without the usual "one of the variables needed for gradient computation
    has been modified by an inplace operation" error, so gradients come out silently
    wrong; a value read through `.data` and reused cuts the graph where the code
    does not say so.

    `.data` on parameters, gradients and buffers (`p.data.clamp_(-c, c)`,
    `module.weight.data.normal_()`) is a legacy style, reported by GL016 instead;
    `.data` of datasets, numpy arrays and user objects is not a tensor's and is
    never flagged, nor is a read whose every use leaves autograd's world
    (`loss.data.item()`, `out.data.cpu().numpy()`, `print(out.data)`,
    `out.data.max(1)[1]`, `(m - loss.data).item()`, `torch.equal(out.data, y)`,
    `save_image(torch.cat((real.data, fake.data)), ...)`, also through a name
    assigned on the way: the data flow follows it to its sinks).

    ## Example
    ```python
    for t in range(steps):
        h = rnn_cell(x[t], h)
        outputs.append(h.data)  # cut from the graph: no gradient through outputs
    ```

    ## Use instead
    ```python
    for t in range(steps):
        h = rnn_cell(x[t], h)
        outputs.append(h)  # or h.detach(), saying that the cut is meant
    ```

    ## Fix safety
    The fix is unsafe (opt-in): a read `X.data` becomes `X.detach()`, which raises
    instead of computing wrong gradients if the result is later modified in place;
    an in-place edit `X.data += v` / `X.data.add_(v)` becomes the out-of-place
    `X = X + v` / `X = X.add(v)`, which lets gradients flow through the edit. Edits
    that have no mechanical out-of-place form (`X.data.zero_()`, `X.data[i] = v`)
    get no fix.
    """

    code = "GL005"
    name = "data-on-activation"
    reads = "class"  # `self.w` is a parameter because `__init__` says so
    message = (
        "In-place edit through `{target}.data`, which carries an autograd graph: autograd cannot see it, "
        "so gradients are silently wrong; edit `{target}` itself, out of place"
    )
    message_time_steps = (
        "`.data` cuts `{key}` from its graph between the steps of the loop on line {loop}, and the next step "
        "computes from it: gradients stop at every time step (backpropagation through time is lost); keep "
        "`{key}.clone()` and write the new values out of place (`torch.where`, `torch.cat`)"
    )
    message_passed = (
        "in-place arithmetic through `{param}.data` on the network output that `{call}` (line {line}) passes "
        "in: autograd does not see this change, so the gradients through `{param}` are wrong; compute it out "
        "of place (`{param} = ({param} + 1) * 0.5`)"
    )
    read_message = (
        "`.data` on `{target}`, which carries an autograd graph, cuts this value from the graph without "
        "autograd's checks, and it flows on into computation: use `{target}` to keep the gradient, "
        "or `{target}.detach()` if the cut is meant"
    )
    fix_applicability = "unsafe"

    VALID = [
        """
        for p in model.parameters():
            p.data.clamp_(-0.01, 0.01)
        """,
        """
        out = model(x)
        loss = criterion(out, y)
        total += loss.data.item()
        preds = out.data.cpu().numpy()
        pred = out.data.max(1, keepdim=True)[1]
        print(out.data)
        """,
        """
        module.weight.data.normal_(mean=0.0, std=0.02)
        """,
        """
        train_set = datasets.MNIST("data", download=True)
        images = train_set.data.float() / 255
        """,
        """
        with torch.no_grad():
            out = model(x)
        pred = out.data.argmax(1)
        """,
        """
        for p in model.parameters():
            p.data.add_(p.grad.data, alpha=-lr)
        """,
    ]
    INVALID = [
        """
        def normalize(delta):
            delta.data *= 0.5  # error
            return delta

        for x, y in loader:
            delta = normalize(netG(x))
            loss = criterion(clf(x + delta), y)
            loss.backward()
        """,
        Invalid(
            """
        delta = G(z)
        delta.data += 1  # error
        """,
            expected_replacement="""
        delta = G(z)
        delta = delta + 1  # error
        """,
        ),
        """
        def embed(model, head, x):
            out = model(x)
            feats = out.data  # error
            return head(feats)
        """,
        """
        import torch
        h = torch.zeros(1, 16)
        for t in range(10):
            h = rnn(x[t], h.data)  # error
        """,
    ]

    @classmethod
    def could_match(cls, text: str) -> bool:
        return _DATA.search(text) is not None

    @classmethod
    def could_match_unit(cls, text: str, file_text: str) -> bool:
        # also a loop whose evidence sits in the same-file helpers it calls (slicing keeps it)
        return cls.could_match(text) or (
            might_cut_with_data(file_text) and calls_matching_helper(text, file_text, cuts_with_data)
        )

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if node.attr.value != "data":
            return
        base = node.value
        # Fast exits before any data flow: ``m.weight.data``, ``p.grad.data``, ``self.data``.
        if isinstance(base, cst.Attribute) and base.attr.value in ("weight", "bias", "grad"):
            return
        if isinstance(base, cst.Name) and base.value in ("self", "cls"):
            return
        if self.flow_kind(base) is not Kind.ACTIVATION:
            return
        if state_data_receiver(self.flow_fact, base) is not None:
            return  # a view of a parameter: GL016's business
        written = self.write_role(node) is not None
        if not written:
            scope = self.flow_scope()
            if leaves_autograd(node, self.context.parent, scope):
                return
            if isinstance(scope, cst.FunctionDef) and INFERENCE_FUNCTION.search(scope.name.value):
                return  # ``viterbi_tags``, ``generate``: the caller wants values, not gradients
            if self.flow.has_backward(scope):
                # In the training step itself a cut through ``.data`` is the old spelling of an
                # intended ``.detach()`` (truncated BPTT, the D step of a GAN, a gradient penalty's
                # interpolates); in model code (no backward here) the caller wants the gradient.
                return
        self.report(
            node,
            self.message if written else self.read_message,
            target=self.context.code_for(base),
            fix=self._fix(node),
            fix_message="Operate on the tensor itself instead of through `.data`",
        )

    def _fix(self, node: cst.Attribute):
        code = self.context.code_for
        base = node.value
        role = self.write_role(node)
        if role is None:
            return Replace(node, f"{code(base)}.detach()")
        if not isinstance(base, cst.Name):
            return None
        small = self.flow_small_statement(node)
        name = base.value
        if role == "augassign" and isinstance(small, cst.AugAssign) and small.target is node:
            op = _AUG_OPS.get(type(small.operator).__name__)
            if op is None:
                return None
            value = code(small.value)
            if not isinstance(small.value, _ATOMIC):
                value = f"({value})"
            return Replace(small, f"{name} = {name} {op} {value}")
        if (
            role == "inplace"
            and isinstance(small, cst.Expr)
            and isinstance(small.value, cst.Call)
            and isinstance(small.value.func, cst.Attribute)
            and small.value.func.value is node
            and small.value.func.attr.value in _ARITH
        ):
            call = small.value
            method = call.func.attr.value[:-1]
            args = code(call).split("(", 1)[1] if "(" in code(call) else ")"
            return Replace(small, f"{name} = {name}.{method}({args}")
        return None

    def leave_Module(self, original_node: cst.Module) -> None:
        # the same shape spread over helpers and methods (semantics/interproc.py)
        through_helpers.report_gl005(self)
