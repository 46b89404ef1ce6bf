"""GL012: a misspelt ``requires_grad`` that silently does nothing."""

from __future__ import annotations

import re

import libcst as cst

from gradlint.static.rule import Invalid, Replace, Rule
from gradlint.static.semantics.imports import ImportMap, dotted_name
from gradlint.static.semantics.optim import child_nodes

TYPOS = {
    "require_grad": "requires_grad",
    "requires_grads": "requires_grad",
    "require_grads": "requires_grad",
    "requires_gradient": "requires_grad",
    "requires_gradients": "requires_grad",
    "require_gradient": "requires_grad",
    "require_gradients": "requires_grad",
}
# Tensor methods that take ``requires_grad=`` like the torch factories do.
_TENSOR_FACTORY_METHODS = {"new_tensor", "new_zeros", "new_ones", "new_empty", "new_full"}
# A typo, or an assignment to the in-place method; literal-led, so fast to search.
_PATTERN = re.compile(r"require(?:s_grad(?:s|ients?)\b|_grad(?:s|ients?)?\b|s_grad_\s*=[^=])")


def _mentions_typo(text: str) -> bool:
    for m in _PATTERN.finditer(text):
        i = m.start()
        if i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_"):
            return True
    return False


_METHOD_ASSIGNED = (
    "assigning to `{wrong}` replaces the in-place method instead of calling it, so requires_grad is unchanged; "
    "use `{right}`"
)


class RequiresGradTypo(Rule):
    """## What it does
    Flags assignments to `require_grad`, `requires_grads`, `require_grads`,
    `requires_gradient` (and similar misspellings) on tensors and parameters, the
    same names as keywords of torch calls, and `x.requires_grad_ = False` (the
    in-place *method* assigned instead of called).

    ## Why is this bad?
    Tensors and `nn.Parameter`s accept any attribute, so `p.require_grad = False`
    just creates a new, unused attribute: the parameter keeps training ("frozen
    layers still being updated", "requires_grad False not working"). Assigning
    `requires_grad_` replaces the method on that object and changes nothing. A
    misspelt keyword of a torch factory fails instead:
    `TypeError: zeros() got an unexpected keyword argument 'require_grad'`.

    Names a file defines itself (a dataclass field `require_grad: bool`, a
    parameter `def f(require_grad=True)`, an attribute it reads back) are not
    reported.

    ## Example
    ```python
    for p in model.backbone.parameters():
        p.require_grad = False
    ```

    ## Use instead
    ```python
    for p in model.backbone.parameters():
        p.requires_grad = False
    ```
    (for a whole module, `model.backbone.requires_grad_(False)`).

    ## Fix safety
    The fix replaces the misspelt name with `requires_grad`, which is what the
    code evidently meant. It is unsafe all the same: the parameters it freezes
    (or unfreezes) then really stop (or start) getting gradients, so training
    computes something else than before the fix. That is the repair, but a
    `--fix` without `--unsafe-fixes` never changes what a program computes.
    """

    code = "GL012"
    name = "requires-grad-typo"
    message = "`{wrong}` is not a torch attribute, so this silently does nothing; use `{right}`"
    fix_applicability = "unsafe"
    VALID = [
        """
        import torch
        for p in model.parameters():
            p.requires_grad = False
        """,
        """
        from dataclasses import dataclass
        @dataclass
        class LayerSpec:
            require_grad: bool = True
        spec = LayerSpec()
        spec.require_grad = False
        """,
    ]
    INVALID = [
        Invalid(
            """
        import torch
        for p in model.parameters():
            p.require_grad = False  # error
        """,
            expected_replacement="""
        import torch
        for p in model.parameters():
            p.requires_grad = False  # error
        """,
        ),
        """
        import torch
        w = torch.zeros(3, require_grad=True)  # error
        """,
    ]

    @classmethod
    def could_match(cls, text: str) -> bool:
        # A file that never mentions torch may be another framework's own `require_grad`.
        return "torch" in text and "require" in text and _mentions_typo(text)

    @classmethod
    def could_match_unit(cls, text: str, file_text: str) -> bool:
        return "require" in text and _mentions_typo(text)

    def __init__(self, context) -> None:
        super().__init__(context)
        self._user_names: set[str] | None = None

    def _defined_here(self, name: str) -> bool:
        if self._user_names is None:
            self._user_names = _user_names(self.context.module)
        return name in self._user_names

    def visit_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            target = t.target
            if not isinstance(target, cst.Attribute):
                continue
            wrong = target.attr.value
            right = TYPOS.get(wrong) or ("requires_grad" if wrong == "requires_grad_" else None)
            if right is None or dotted_name(target.value) in ("self", "cls"):
                continue
            if self._defined_here(wrong):
                continue
            message = _METHOD_ASSIGNED if wrong == "requires_grad_" else None
            self.report(target, message, wrong=wrong, right=right, fix=Replace(target.attr, cst.Name(right)))

    def visit_Call(self, node: cst.Call) -> None:
        for arg in node.args:
            if arg.keyword is None:
                continue
            wrong = arg.keyword.value
            right = TYPOS.get(wrong) or ("requires_grad" if wrong == "requires_grad_" else None)
            if right is None or not self._torch_call(node) or self._defined_here(wrong):
                continue
            self.report(arg, wrong=wrong, right=right, fix=Replace(arg.keyword, cst.Name(right)))

    def _torch_call(self, call: cst.Call) -> bool:
        qual = self.context.analysis(ImportMap).resolve(call.func) or ""
        if qual.startswith("torch.") or qual == "torch":
            return True
        return isinstance(call.func, cst.Attribute) and call.func.attr.value in _TENSOR_FACTORY_METHODS


def _user_names(module: cst.Module) -> set[str]:
    """Typo-like names this file defines or reads back: then they are its own, not a typo."""
    names: set[str] = set()
    stored: set[int] = set()

    def add(name: str) -> None:
        if name in TYPOS or name == "requires_grad_":
            names.add(name)

    stack: list = [module]
    while stack:
        node = stack.pop()
        if isinstance(node, cst.Param):
            add(node.name.value)
        elif isinstance(node, cst.FunctionDef):
            add(node.name.value)
        elif isinstance(node, cst.AnnAssign):
            target = node.target
            add(
                target.value
                if isinstance(target, cst.Name)
                else target.attr.value
                if isinstance(target, cst.Attribute)
                else ""
            )
        elif isinstance(node, cst.Assign):
            for t in node.targets:
                target = t.target
                if isinstance(target, cst.Name):
                    add(target.value)
                elif isinstance(target, cst.Attribute):
                    stored.add(id(target))
                    if dotted_name(target.value) in ("self", "cls"):
                        add(target.attr.value)  # an attribute of the user's own class
        elif isinstance(node, cst.Attribute) and id(node) not in stored:
            add(node.attr.value)  # read back (``if p.require_grad:``): the file gives it a meaning
        elif isinstance(node, cst.SimpleString):
            add(
                node.value.strip("\"'").lstrip("-").replace("-", "_")
            )  # getattr(o, "require_grad"), --require-grad
        stack.extend(reversed(child_nodes(node)))
    return names
