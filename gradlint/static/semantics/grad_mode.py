"""Is a node inside a region where autograd records nothing?

``with torch.no_grad():``, ``torch.inference_mode()``, ``torch.set_grad_enabled(False)``
and functions decorated with ``@torch.no_grad()`` / ``@torch.inference_mode()``
disable recording; ``torch.enable_grad()`` (and ``set_grad_enabled(True)``,
``inference_mode(False)``) re-enable it. The innermost region wins.
"""

from __future__ import annotations

import libcst as cst

from gradlint.static.semantics.imports import ImportMap

_DISABLING = {
    "torch.no_grad",
    "torch.inference_mode",
    "torch.autograd.no_grad",
    "torch.autograd.grad_mode.no_grad",
    "torch.autograd.inference_mode",
    "torch.autograd.grad_mode.inference_mode",
}
_ENABLING = {"torch.enable_grad", "torch.autograd.enable_grad", "torch.autograd.grad_mode.enable_grad"}
_SET = {
    "torch.set_grad_enabled",
    "torch.autograd.set_grad_enabled",
    "torch.autograd.grad_mode.set_grad_enabled",
}


def grad_mode_of(expr: cst.BaseExpression, imports: ImportMap, follow_imports: bool = True) -> bool | None:
    """False if ``expr`` (a context manager or decorator) disables grad, True if it
    enables it, None if it is unrelated or its effect is not a literal.

    The project's own wrappers count too: those defined in the same file (see
    :func:`local_grad_wrappers`): ``@inference`` whose body runs the function under
    ``torch.inference_mode()``, a ``@contextmanager`` that yields under ``no_grad``;
    and those imported from another file of the project (``from .utils import
    evaluating``, ``import mypkg.utils as U`` then ``@U.evaluating``; see
    ``gradlint.static.package_index``), where a class whose ``__enter__`` turns grad
    off counts as well. An import that cannot be resolved is unknown (None).
    ``follow_imports=False`` leaves imported names unknown without looking them up.
    """
    call = expr if isinstance(expr, cst.Call) else None
    target = call.func if call is not None else expr
    name = imports.resolve(target)
    if name is None:
        return None
    if name in imports.grad_wrappers:
        return imports.grad_wrappers[name]
    literal = None
    if call is not None and call.args:
        positional = [a for a in call.args if a.keyword is None]
        kw = {a.keyword.value: a for a in call.args if a.keyword is not None}
        first = positional[0] if positional else kw.get("mode")
        if first is not None and isinstance(first.value, cst.Name) and first.value.value in ("True", "False"):
            literal = first.value.value == "True"
    mode = torch_grad_mode(name, literal)
    if mode is None and follow_imports and not name.startswith("torch."):
        return imports.package_grad_mode(target)
    return mode


def torch_grad_mode(name: str, literal: bool | None) -> bool | None:
    """The grad mode that torch's ``name`` sets, called with the bool ``literal`` as first
    argument (None: no literal argument, or not called)."""
    if name in _DISABLING:
        if name.endswith("inference_mode") and literal is False:
            return True
        return False
    if name in _ENABLING:
        return True
    if name in _SET:
        return literal
    return None


def grad_disabled(node: cst.CSTNode, context) -> bool:
    """True when ``node`` is evidently inside a no-grad/inference region of this file."""
    imports = context.analysis(ImportMap)
    for anc in context.ancestors(node):
        if isinstance(anc, cst.With):
            for item in anc.items:
                mode = grad_mode_of(item.item, imports)
                if mode is not None:
                    return not mode
        elif isinstance(anc, (cst.FunctionDef,)):
            for dec in anc.decorators:
                mode = grad_mode_of(dec.decorator, imports)
                if mode is not None:
                    return not mode
            # Grad mode of the caller is not visible from inside a function.
            return False
        elif isinstance(anc, cst.Lambda):
            return False
    return False


def local_grad_wrappers(module: cst.Module, imports: ImportMap) -> dict[str, bool]:
    """Module-level names of this file that wrap a grad mode, with the mode they set.

    * ``no_grad = torch.no_grad`` (an alias; also ``torch.no_grad()``);
    * a decorator: a function with an inner function that calls or returns under a
      grad-mode ``with`` (``def inference(fn): def wrapper(*a): with torch.no_grad(): return fn(*a)``),
      or that returns ``torch.no_grad()(fn)``;
    * a context manager: a generator that yields under a grad-mode ``with``, or a class
      that derives from one or whose ``__enter__`` sets one.
    """
    out: dict[str, bool] = {}
    for stmt in module.body:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.Assign) and len(small.targets) == 1:
                    target = small.targets[0].target
                    if isinstance(target, cst.Name):
                        # ``no_grad = torch.no_grad()`` or an alias of an imported wrapper; a call
                        # of anything else (``logger = get_logger()``) is not looked up elsewhere.
                        value = small.value
                        mode = grad_mode_of(value, imports, not isinstance(value, cst.Call))
                        if mode is not None:
                            out[target.value] = mode
        elif isinstance(stmt, cst.FunctionDef):
            mode = _wrapped_mode(stmt, imports)
            if mode is not None:
                out[stmt.name.value] = mode
        elif isinstance(stmt, cst.ClassDef):
            mode = _class_mode(stmt, imports)
            if mode is not None:
                out[stmt.name.value] = mode
    return out


def _class_mode(cls: cst.ClassDef, imports: ImportMap) -> bool | None:
    """A class deriving from a grad mode (``class evaluating(torch.no_grad)``), or whose
    ``__enter__`` sets one (``torch.set_grad_enabled(False)``, ``self.ctx = torch.no_grad()``)."""
    from gradlint.static.semantics.walk import walk

    for base in cls.bases:
        if base.keyword is None:  # torch's (``torch.no_grad``); other files' classes are not read
            mode = grad_mode_of(base.value, imports, follow_imports=False)
            if mode is not None:
                return mode
    body = cls.body.body if isinstance(cls.body, cst.IndentedBlock) else ()
    for stmt in body:
        if isinstance(stmt, cst.FunctionDef) and stmt.name.value == "__enter__":
            for node in walk(stmt.body):
                if isinstance(node, cst.Call) and isinstance(node.func, (cst.Name, cst.Attribute)):
                    mode = grad_mode_of(node, imports)
                    if mode is not None:
                        return mode
    return None


def _wrapped_mode(func: cst.FunctionDef, imports: ImportMap) -> bool | None:
    from gradlint.static.semantics.walk import iter_children

    stack: list[tuple[cst.CSTNode, bool | None]] = [(func.body, None)]
    while stack:
        node, mode = stack.pop()
        if isinstance(node, cst.With):
            for item in node.items:
                inner = grad_mode_of(item.item, imports)
                if inner is not None:
                    mode = inner
        elif mode is not None and isinstance(node, (cst.Yield, cst.Return)) and node is not func:
            if isinstance(node, cst.Yield) or isinstance(getattr(node, "value", None), cst.Call):
                return mode
        elif isinstance(node, cst.Call) and isinstance(node.func, cst.Call):
            inner = grad_mode_of(node.func, imports)  # ``torch.no_grad()(fn)``
            if inner is not None:
                return inner
        for child in iter_children(node):
            stack.append((child, mode))
    return None
