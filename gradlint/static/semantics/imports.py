"""Resolve names through the file's imports: ``t.autograd.grad`` -> ``torch.autograd.grad``.

libcst's ``QualifiedNameProvider`` does this properly (scopes, shadowing) but
costs ~14x the parse on large files, for every file.  Rules here only need to
recognise a few dozen torch entry points, so this analysis reads import
statements alone (any depth of compound statements, expressions never) and
maps the first component of a dotted name.  Shadowing a torch alias with a
local variable is not tracked; that trade is deliberate.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import libcst as cst


def dotted_name(node: cst.CSTNode) -> str | None:
    """``a.b.c`` for Name/Attribute chains, else None (calls, subscripts...)."""
    parts = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if isinstance(node, cst.Name):
        parts.append(node.value)
        return ".".join(reversed(parts))
    return None


def _attr_chain(node: cst.BaseExpression) -> str:
    name = dotted_name(node)
    return name or ""


def _iter_import_statements(body) -> Iterator[cst.CSTNode]:
    stack = list(body)
    while stack:
        stmt = stack.pop()
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, (cst.Import, cst.ImportFrom)):
                    yield small
        elif isinstance(stmt, cst.BaseCompoundStatement):
            block = getattr(stmt, "body", None)  # ``match`` has cases, not a body
            for case in getattr(stmt, "cases", ()) or ():
                stack.extend(getattr(case.body, "body", ()))
            if isinstance(block, cst.IndentedBlock):
                stack.extend(block.body)
            elif isinstance(block, cst.SimpleStatementSuite):
                stack.append(cst.SimpleStatementLine(body=block.body))
            for extra in ("orelse", "finalbody"):
                other = getattr(stmt, extra, None)
                if other is not None and isinstance(getattr(other, "body", None), cst.BaseSuite):
                    stack.extend(getattr(other.body, "body", ()))
            for handler in getattr(stmt, "handlers", ()) or ():
                stack.extend(getattr(handler.body, "body", ()))


class ImportMap:
    """Per-file alias table; build with ``context.analysis(ImportMap)``."""

    def __init__(self, context) -> None:
        self.aliases: dict[str, str] = {}
        # ``from .utils import evaluating`` / ``from . import utils``: local name -> (level, dotted)
        self.relative: dict[str, tuple[int, str]] = {}
        self._filename: str | None = getattr(context, "filename", None)
        self._checked_filename = False
        self._package_modes: dict[str, bool | None] = {}
        self._module: cst.Module | None = context.module
        self._source: str = getattr(context, "source", "")
        self._grad_wrappers: dict[str, bool] | None = None
        for imp in _iter_import_statements(context.module.body):
            if isinstance(imp, cst.Import):
                for alias in imp.names:
                    full = _attr_chain(alias.name)
                    if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                        self.aliases[alias.asname.name.value] = full
                    else:
                        top = full.split(".")[0]
                        self.aliases.setdefault(top, top)
            elif isinstance(imp, cst.ImportFrom) and imp.relative:
                if isinstance(imp.names, cst.ImportStar):
                    continue
                base = _attr_chain(imp.module) if imp.module is not None else ""
                for alias in imp.names:
                    name = _attr_chain(alias.name)
                    local = name
                    if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                        local = alias.asname.name.value
                    self.relative[local] = (len(imp.relative), f"{base}.{name}" if base else name)
            elif isinstance(imp, cst.ImportFrom) and imp.module is not None:
                base = _attr_chain(imp.module)
                if isinstance(imp.names, cst.ImportStar):
                    continue
                for alias in imp.names:
                    name = _attr_chain(alias.name)
                    local = name
                    if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                        local = alias.asname.name.value
                    self.aliases[local] = f"{base}.{name}"

    @property
    def grad_wrappers(self) -> dict[str, bool]:
        """This file's own names that wrap a grad mode (see ``grad_mode.local_grad_wrappers``)."""
        wrappers = self._grad_wrappers
        if wrappers is None:
            from gradlint.static.semantics.grad_mode import local_grad_wrappers

            self._grad_wrappers = {}  # a wrapper of a wrapper is looked up while this is built
            module, text = self._module, self._source
            mentions = any(w in text for w in ("no_grad", "inference_mode", "set_grad_enabled"))
            wrappers = self._grad_wrappers = (
                local_grad_wrappers(module, self) if module is not None and mentions else {}
            )
        return wrappers

    def package_grad_mode(self, node: cst.CSTNode) -> bool | None:
        """The grad mode that an imported name (``evaluating`` from ``from .utils import
        evaluating``, ``U.evaluating`` after ``import mypkg.utils as U``) sets, when its
        definition is in another file of the project (``gradlint.static.package_index``);
        None for anything else or unknown. Looked up on first use only."""
        name = dotted_name(node)
        if name is None:
            return None
        head, _, rest = name.partition(".")
        if head in self.aliases:
            level, dotted = 0, f"{self.aliases[head]}.{rest}" if rest else self.aliases[head]
        elif head in self.relative:
            level, base = self.relative[head]
            dotted = f"{base}.{rest}" if rest else base
        else:
            return None  # a builtin, a local name: not imported
        if dotted.split(".")[0] == "torch":
            return None
        key = f"{level}:{dotted}"
        if key in self._package_modes:
            return self._package_modes[key]
        mode = None
        importer = self._importer()
        if importer is not None:
            from gradlint.static.package_index import grad_mode_of_import

            mode = grad_mode_of_import(importer, level, dotted)
        self._package_modes[key] = mode
        return mode

    def _importer(self) -> str | None:
        """The absolute path of the file linted, when it is a file on disk."""
        if self._checked_filename:
            return self._filename
        self._checked_filename = True
        filename = self._filename
        path = (
            os.path.abspath(filename) if filename and filename.endswith((".py", ".pyi", ".ipynb")) else None
        )
        self._filename = path if path is not None and os.path.isfile(path) else None
        return self._filename

    def resolve(self, node: cst.CSTNode) -> str | None:
        """Fully qualified dotted name of a Name/Attribute chain, aliases applied."""
        name = dotted_name(node)
        if name is None:
            return None
        head, _, rest = name.partition(".")
        full = self.aliases.get(head, head)
        return f"{full}.{rest}" if rest else full

    def callee(self, call: cst.Call) -> str | None:
        return self.resolve(call.func)


def qualified_name(context, node: cst.CSTNode) -> str | None:
    return context.analysis(ImportMap).resolve(node)
