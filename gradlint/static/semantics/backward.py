"""Recognise backward calls and the tensor each one backpropagates from.

"Backward call" means any of ``X.backward(...)``, ``torch.autograd.backward(X)``,
``torch.autograd.grad(X, ...)``, ``scaler.scale(X).backward()``,
``accelerator.backward(X)``, ``self.manual_backward(X)`` (Lightning),
``fabric.backward(X)`` (and DeepSpeed's ``engine.backward(X)``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import libcst as cst

from gradlint.static.semantics.imports import ImportMap, dotted_name
from gradlint.static.semantics.vocabulary import (
    BACKWARD_WRAPPER_RECEIVER,
)

# Text that any backward call of the forms above must contain: ``.backward(``,
# ``manual_backward(``, ``grad(`` (any alias of autograd.grad is imported from a
# line that says ``autograd ... import``). "backward" alone is a poor filter:
# transformers has it in 267 files, mostly "backward compatibility" in prose;
# this matches 35. Each pattern starts with a literal, which re searches for
# quickly; one alternation of the three scanned every position (1.7 s per rule
# over transformers).
_BACKWARD_CALL = re.compile(r"backward\s*\(")
_GRAD_CALL = re.compile(r"grad\s*\(")
_AUTOGRAD_IMPORT = re.compile(r"autograd\b[^\n]*\bimport\b")
_ALIAS = re.compile(r"\b(?:grad|backward)\s+as\s+(\w+)")


def _grad_call(text: str) -> bool:
    for m in _GRAD_CALL.finditer(text):
        i = m.start()
        if i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_"):  # `zero_grad(` is not one
            return True
    return False


def _calls_backward_by_name(text: str) -> bool:
    return _BACKWARD_CALL.search(text) is not None or _grad_call(text)


# Several rules ask about the same text in a row: remember the last answer.
_last_file: list = [None, False]


def might_backward(text: str) -> bool:
    """Cheap pre-filter: can this source text contain a backward call at all?"""
    if _last_file[0] is not text:
        found = _calls_backward_by_name(text) or (
            "autograd" in text and _AUTOGRAD_IMPORT.search(text) is not None
        )
        _last_file[:] = [text, found]
    return _last_file[1]


_last_aliases: list = [None, None]


def might_backward_in(unit: str, file_text: str) -> bool:
    """Can this definition (of a file that passed ``might_backward``) contain a backward call?

    Beyond the names themselves, calls through the aliases the file imports:
    ``from torch.autograd import grad as g`` ... ``g(loss, params)``.
    """
    if _calls_backward_by_name(unit):
        return True
    if _last_aliases[0] is not file_text:
        aliases = set(_ALIAS.findall(file_text)) if "autograd" in file_text else set()
        pattern = (
            re.compile(r"\b(?:" + "|".join(map(re.escape, sorted(aliases))) + r")\s*\(") if aliases else None
        )
        _last_aliases[:] = [file_text, pattern]
    pattern = _last_aliases[1]
    return pattern is not None and pattern.search(unit) is not None


class NeedsBackwardCall:
    """Pre-filters for a rule none of whose findings exists without a backward call in its definition.

    Mix in before ``Rule``: ``class GL0xx(NeedsBackwardCall, Rule)``.
    """

    @classmethod
    def could_match(cls, text: str) -> bool:
        return might_backward(text)

    @classmethod
    def could_match_unit(cls, text: str, file_text: str) -> bool:
        return might_backward_in(text, file_text)


AUTOGRAD_BACKWARD = "torch.autograd.backward"
AUTOGRAD_GRAD = "torch.autograd.grad"


@dataclass(frozen=True)
class BackwardCall:
    call: cst.Call
    target: cst.BaseExpression | None  # the loss; None when not visible
    kind: str  # "tensor", "autograd.backward", "autograd.grad", "scaler", "wrapper"
    retain_graph: bool | None  # None: given but not a literal (unknown)
    create_graph: bool

    @property
    def is_grad(self) -> bool:
        return self.kind == "autograd.grad"


def _arg(call: cst.Call, index: int, keyword: str) -> cst.Arg | None:
    for a in call.args:
        if a.keyword is not None and a.keyword.value == keyword:
            return a
    positional = [a for a in call.args if a.keyword is None and not a.star]
    if index < len(positional):
        return positional[index]
    return None


def _literal_bool(arg: cst.Arg | None) -> bool | None:
    """True/False for literal bools, False when absent, None when not a literal."""
    if arg is None:
        return False
    value = arg.value
    if isinstance(value, cst.Name) and value.value in ("True", "False"):
        return value.value == "True"
    if isinstance(value, cst.Name) and value.value == "None":
        return False
    return None


def _flags(call: cst.Call, retain_index: int, create_index: int):
    create = _literal_bool(_arg(call, create_index, "create_graph")) is True
    retain = _literal_bool(_arg(call, retain_index, "retain_graph"))
    if retain is False and create:
        retain = True  # retain_graph defaults to create_graph
    return retain, create


def backward_call(call: cst.Call, imports: ImportMap) -> BackwardCall | None:
    func = call.func
    if isinstance(func, cst.Attribute) and func.attr.value in ("backward", "manual_backward"):
        receiver = func.value
        if func.attr.value == "manual_backward":
            first = _arg(call, 0, "loss")
            retain, create = _flags(call, 99, 99)
            return BackwardCall(call, first.value if first else None, "wrapper", retain, create)
        qual = imports.resolve(func)
        if qual == AUTOGRAD_BACKWARD:
            return _autograd_backward(call)
        if (
            isinstance(receiver, cst.Call)
            and isinstance(receiver.func, cst.Attribute)
            and receiver.func.attr.value == "scale"
        ):
            first = _arg(receiver, 0, "outputs")
            retain, create = _flags(call, 1, 2)
            return BackwardCall(call, first.value if first else None, "scaler", retain, create)
        recv_name = dotted_name(receiver) or ""
        last = recv_name.rsplit(".", 1)[-1]
        if recv_name in ("self", "super") or (
            isinstance(receiver, cst.Call) and dotted_name(receiver.func) == "super"
        ):
            return None  # a class defining/overriding backward, not a backward call on a loss
        if last and BACKWARD_WRAPPER_RECEIVER.search(last):
            first = _arg(call, 0, "loss")
            if first is None:
                return None
            retain, create = _flags(call, 99, 99)
            return BackwardCall(call, first.value, "wrapper", retain, create)
        retain, create = _flags(call, 1, 2)
        return BackwardCall(call, receiver, "tensor", retain, create)

    qual = imports.resolve(func)
    if qual == AUTOGRAD_BACKWARD:
        return _autograd_backward(call)
    if qual == AUTOGRAD_GRAD:
        first = _arg(call, 0, "outputs")
        retain, create = _flags(call, 3, 4)
        return BackwardCall(call, first.value if first else None, "autograd.grad", retain, create)
    return None


def _autograd_backward(call: cst.Call) -> BackwardCall:
    first = _arg(call, 0, "tensors")
    retain, create = _flags(call, 2, 3)
    return BackwardCall(call, first.value if first else None, "autograd.backward", retain, create)


def is_backward_call(call: cst.Call, context) -> BackwardCall | None:
    return backward_call(call, context.analysis(ImportMap))
