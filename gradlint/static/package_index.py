"""Is a name imported from another file of the project a grad-off wrapper?

``from .utils import evaluating`` then ``with evaluating(model):``, or
``import mypkg.utils as U`` then ``@U.no_grad_eval``: whether grad is off there
depends on a definition in another file. This module finds that file (relative
imports from the importing file's folder; absolute ones from the folder of the
file, the folder above its top-level package, and the folders up to the
project's root, marked by ``pyproject.toml``, ``setup.py``, ``setup.cfg`` or
``.git``), parses its top level with CPython's ``ast`` (it is never imported or
run) and answers as ``grad_mode.grad_mode_of`` does for a wrapper of the
file itself:

* ``False``: it turns grad off (a decorator whose wrapper calls the function
  under ``no_grad``/``inference_mode``/``set_grad_enabled(False)``, or returns
  ``torch.no_grad()(fn)``; a ``@contextmanager`` that yields under one; a class
  whose ``__enter__`` turns grad off, or that derives from ``torch.no_grad``; an
  alias ``evaluating = torch.no_grad``);
* ``True``: it turns grad on (the same shapes around ``enable_grad`` or
  ``set_grad_enabled(True)``);
* ``None``: anything else, and whatever cannot be known (no such file, a syntax
  error, undecodable or huge file, a name that is not defined there, more than
  ``MAX_HOPS`` re-exports through ``__init__.py`` files).

Only on demand: nothing is looked at until a rule asks about a decorator or a
``with`` item whose name comes from an import, and every file and answer is
kept for the rest of the process (checked against ``os.stat`` when reused).

The lint cache must know which other files a file's result depends on: while
``recording()`` is active, every file consulted (also through a memoised
answer) is collected with its stat and content hash.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import sys
import tokenize
from collections.abc import Iterator

from gradlint.static.cache import content_hash

MAX_BYTES = 1024 * 1024  # a larger file is generated code or data: unknown
MAX_HOPS = 4  # re-exports and wrappers of wrappers followed across files
_ROOT_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", ".git")
_MAX_ANCESTORS = 4

# path -> (mtime_ns, size, hash) of every file consulted while recording
_recording: dict[str, tuple[int, int, str]] | None = None


@contextlib.contextmanager
def recording() -> Iterator[dict[str, tuple[int, int, str]]]:
    """Collect ``{path: (mtime_ns, size, content hash)}`` of the files consulted inside the block."""
    global _recording
    outer, _recording = _recording, {}
    try:
        yield _recording
    finally:
        inner, _recording = _recording, outer
        if outer is not None:
            outer.update(inner)


def clear() -> None:
    """Forget every file and answer (a new run: files may have been created or deleted)."""
    _modules.clear()
    _isfile.clear()
    _roots.clear()
    _answers.clear()


# -- files ------------------------------------------------------------------------------------------

_isfile: dict[str, bool] = {}
_roots: dict[str, tuple[str, ...]] = {}


def _is_file(path: str) -> bool:
    found = _isfile.get(path)
    if found is None:
        found = _isfile[path] = os.path.isfile(path)
    return found


def _search_roots(folder: str) -> tuple[str, ...]:
    """Folders an absolute import from a file in ``folder`` may start from."""
    roots = _roots.get(folder)
    if roots is not None:
        return roots
    out = [folder]
    top = folder
    while _is_file(os.path.join(top, "__init__.py")):
        parent = os.path.dirname(top)
        if parent == top:
            break
        top = parent
    if top not in out:
        out.append(top)
    here = top
    for _ in range(_MAX_ANCESTORS):
        if any(os.path.exists(os.path.join(here, m)) for m in _ROOT_MARKERS):
            break
        parent = os.path.dirname(here)
        if parent == here:
            break
        here = parent
        out.append(here)
    roots = _roots[folder] = tuple(out)
    return roots


def _module_file(base: str, parts: list[str]) -> str | None:
    """``base/a/b.py`` or ``base/a/b/__init__.py`` for ``parts == [a, b]`` (``base/__init__.py`` for ``[]``)."""
    folder = os.path.join(base, *parts)
    if parts and _is_file(folder + ".py"):
        return folder + ".py"
    init = os.path.join(folder, "__init__.py")
    return init if _is_file(init) else None


def _locate(importer: str, level: int, dotted: str) -> tuple[str, str] | None:
    """(module file, name defined in it) for the import ``dotted`` (``level`` leading dots) in ``importer``."""
    parts = dotted.split(".") if dotted else []
    if not parts:
        return None
    folder = os.path.dirname(importer)
    if level:
        for _ in range(level - 1):
            folder = os.path.dirname(folder)
        bases: tuple[str, ...] = (folder,)
        shortest = 0
    else:
        bases = _search_roots(folder)
        shortest = 1
    # The name is an attribute of the longest prefix that is a module: `pkg.utils.evaluating`.
    for base in bases:
        found = _module_file(base, parts[:-1]) if len(parts) - 1 >= shortest else None
        if found is not None:
            return (found, parts[-1]) if found != importer else None
    return None


class _Module:
    """The top level of one file: its imports and where each name is bound.

    No tree is kept (hundreds of thousands of AST objects held for the rest of a run
    made every garbage collection slower): a binding is a line range, parsed again
    when a name bound there is asked about (each answer is memoised)."""

    __slots__ = ("path", "text", "aliases", "relative", "bindings")

    def __init__(self, path: str, text: str, tree: ast.Module) -> None:
        self.path = path
        self.text = text
        self.aliases: dict[str, str] = {}  # local name -> absolute dotted name
        self.relative: dict[str, tuple[int, str]] = {}  # local name -> (level, dotted)
        # name -> ("from", level, dotted) | ("module",) | ("stmt", first line, last line, indent)
        self.bindings: dict[str, list[tuple]] = {}
        for stmt in _top_level(tree.body):
            if isinstance(stmt, ast.Import):
                for alias in stmt.names:
                    if alias.asname:
                        self.aliases[alias.asname] = alias.name
                        self._bind(alias.asname, ("module",))
                    else:
                        top = alias.name.split(".")[0]
                        self.aliases.setdefault(top, top)
            elif isinstance(stmt, ast.ImportFrom):
                for alias in stmt.names:
                    if alias.name == "*":
                        continue
                    local = alias.asname or alias.name
                    dotted = _join(stmt.module or "", alias.name)
                    if stmt.level:
                        self.relative[local] = (stmt.level, dotted)
                    else:
                        self.aliases[local] = dotted
                    self._bind(local, ("from", stmt.level, dotted))
            elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self._bind(stmt.name, _span(stmt))
            elif isinstance(stmt, ast.Assign):
                for target in stmt.targets:
                    if isinstance(target, ast.Name):
                        self._bind(target.id, _span(stmt))
            elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value:
                self._bind(stmt.target.id, _span(stmt))

    def _bind(self, name: str, where: tuple) -> None:
        self.bindings.setdefault(name, []).append(where)

    def statement(self, where: tuple) -> ast.stmt | None:
        """The statement at ``where`` (a ``("stmt", ...)`` binding), parsed again; None if it does not parse."""
        _, first, last, indent = where
        lines = self.text.splitlines(keepends=True)[first - 1 : last]
        if indent:  # inside ``if``/``try``: the indentation is whitespace (ASCII: bytes == characters)
            lines = [line[indent:] if not line[:indent].strip() else line for line in lines]
        try:
            body = ast.parse("".join(lines)).body
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return None
        return body[0] if body else None

    def resolve(self, node: ast.AST) -> tuple[str, bool] | None:
        """(dotted name with this file's import aliases applied, whether its head was imported)."""
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        parts.append(node.id)
        parts.reverse()
        head = parts[0]
        if head in self.aliases:
            return ".".join([self.aliases[head], *parts[1:]]), True
        return ".".join(parts), head in self.relative


def _span(stmt: ast.stmt) -> tuple:
    return ("stmt", stmt.lineno, stmt.end_lineno or stmt.lineno, stmt.col_offset)


def _join(module: str, name: str) -> str:
    return f"{module}.{name}" if module else name


def _top_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Module-level statements, also inside ``if``/``try`` blocks (``try: from x import y``)."""
    stack = list(reversed(body))
    while stack:
        stmt = stack.pop()
        if isinstance(stmt, ast.If):
            stack.extend(reversed(stmt.body + stmt.orelse))
        elif isinstance(stmt, ast.Try):
            inner = stmt.body + [s for h in stmt.handlers for s in h.body] + stmt.orelse + stmt.finalbody
            stack.extend(reversed(inner))
        else:
            yield stmt


# path -> ((mtime_ns, size), content hash, parsed top level or None)
_modules: dict[str, tuple[tuple[int, int], str, _Module | None]] = {}


def _load(path: str) -> _Module | None:
    """The parsed top level of ``path``; None when it cannot be read or parsed (or is too large).

    Recorded as consulted either way (a syntax error fixed later changes the answer)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    stat = (st.st_mtime_ns, st.st_size)
    known = _modules.get(path)
    if known is not None and known[0] == stat:
        digest, module = known[1], known[2]
    else:
        digest, module = "", None  # too large: never read (its stat alone decides)
        if st.st_size <= MAX_BYTES:
            tree = None
            try:
                with open(path, "rb") as fh:
                    data = fh.read()
                digest = content_hash(data)  # the cache compares it with the file's content later
                if _too_deep(data):
                    raise ValueError("nested too deeply to parse safely")
                tree = compile(data, path, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
                encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
                text = data.decode(encoding)
            except (
                OSError,
                SyntaxError,
                ValueError,
                OverflowError,
                RecursionError,
                MemoryError,
                LookupError,
            ):
                tree = None  # ValueError: null bytes, undecodable text; SyntaxError also covers bad cookies
            if tree is not None:
                module = _Module(path, text.removeprefix("\ufeff"), tree)
        _modules[path] = (stat, digest, module)
    if _recording is not None:
        _recording[path] = (*stat, digest)
    return module


def _too_deep(data: bytes) -> bool:
    """CPython before 3.11 can crash building the tree of pathologically nested code
    (``engine`` guards the linted file the same way); later versions raise RecursionError."""
    if sys.version_info >= (3, 11):
        return False
    from gradlint.static import guard

    text = data.decode("utf-8", errors="replace")
    return guard.too_deep(text, guard.scan(text)) is not None


# -- answers ------------------------------------------------------------------------------------------

# (module path, name) -> (mode, {dependency path: stat}) ; the dependencies include the module itself
_answers: dict[tuple[str, str], tuple[bool | None, dict[str, tuple[int, int]]]] = {}
_in_progress: set[tuple[str, str]] = set()
_cut = 0  # how many times a chain was cut (a cycle, or past MAX_HOPS)


def grad_mode_of_import(importer: str, level: int, dotted: str, hops: int = 0) -> bool | None:
    """The grad mode that the definition behind an imported name sets (see module docs).

    ``importer``: the absolute path of the file that imports; ``level``: the number
    of leading dots of a relative import (0: absolute); ``dotted``: the module
    path and name, ``"utils.evaluating"`` for ``from .utils import evaluating``
    (level 1) or ``"mypkg.utils.evaluating"``.
    """
    global _cut
    if dotted.split(".")[0] == "torch":
        return None
    if hops > MAX_HOPS:
        _cut += 1  # the answers being computed depend on where the chain started: not memoised
        return None
    where = _locate(importer, level, dotted)
    if where is None:
        return None
    return _answer(where[0], where[1], hops)


def _answer(path: str, name: str, hops: int) -> bool | None:
    key = (path, name)
    known = _answers.get(key)
    if known is not None and _still_valid(known[1]):
        if _recording is not None:
            for dep in known[1]:
                _load(dep)  # records it (memoised: one stat)
        return known[0]
    global _cut
    if key in _in_progress:
        _cut += 1
        return None  # a cycle of re-exports
    _in_progress.add(key)
    cut = _cut
    try:
        with recording() as deps:
            module = _load(path)
            mode = _name_mode(module, name, hops) if module is not None else None
    finally:
        _in_progress.discard(key)
    if _cut == cut:
        _answers[key] = (mode, {p: (m, s) for p, (m, s, _) in deps.items()})
    return mode


def _still_valid(deps: dict[str, tuple[int, int]]) -> bool:
    for path, stat in deps.items():
        known = _modules.get(path)
        if known is None or known[0] != stat:
            return False
        try:
            st = os.stat(path)
        except OSError:
            return False
        if (st.st_mtime_ns, st.st_size) != stat:
            return False
    return True


def _name_mode(module: _Module, name: str, hops: int) -> bool | None:
    """The mode ``name`` (a top-level name of ``module``) sets; None when unknown or conflicting."""
    modes = set()
    for where in module.bindings.get(name, ()):
        modes.add(_binding_mode(module, where, hops))
    return modes.pop() if len(modes) == 1 else None


def _binding_mode(module: _Module, where: tuple, hops: int) -> bool | None:
    if where[0] == "from":
        return grad_mode_of_import(module.path, where[1], where[2], hops + 1)
    if where[0] != "stmt":
        return None  # ``import mypkg.x as name``: a module
    stmt = module.statement(where)
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return _wrapped_mode(stmt, module, hops)
    if isinstance(stmt, ast.ClassDef):
        return _class_mode(stmt, module, hops)
    if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
        # ``no_grad_eval = torch.no_grad`` or an alias of another wrapper; a call of anything
        # but torch (``logger = get_logger()``) is not followed into other files.
        return _expr_mode(stmt.value, module, hops, follow_imports=not isinstance(stmt.value, ast.Call))
    return None


def _expr_mode(expr: ast.AST, module: _Module, hops: int, follow_imports: bool = True) -> bool | None:
    """``grad_mode.grad_mode_of`` on an expression of ``module``."""
    from gradlint.static.semantics.grad_mode import torch_grad_mode

    call = expr if isinstance(expr, ast.Call) else None
    target = call.func if call is not None else expr
    resolved = module.resolve(target)
    if resolved is None:
        return None
    name, imported = resolved
    literal = None
    if call is not None:
        first = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "mode"), None)
        if isinstance(first, ast.Constant) and isinstance(first.value, bool):
            literal = first.value
    mode = torch_grad_mode(name, literal)
    if mode is not None or name.split(".")[0] == "torch":
        return mode
    if "." not in name and name in module.bindings and not imported:
        return _answer(module.path, name, hops + 1)  # a wrapper of a wrapper in the same file
    if imported and follow_imports:
        head = name.split(".")[0]
        if head in module.relative:
            level, base = module.relative[head]
            return grad_mode_of_import(module.path, level, base + name[len(head) :], hops + 1)
        return grad_mode_of_import(module.path, 0, name, hops + 1)
    return None


def _wrapped_mode(func: ast.AST, module: _Module, hops: int) -> bool | None:
    """As ``grad_mode._wrapped_mode``: a decorator whose wrapper returns a call under a grad-mode
    ``with``, a generator that yields under one, or ``torch.no_grad()(fn)``."""
    stack: list[tuple[ast.AST, bool | None]] = [(s, None) for s in reversed(func.body)]
    while stack:
        node, mode = stack.pop()
        if isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                inner = _expr_mode(item.context_expr, module, hops)
                if inner is not None:
                    mode = inner
        elif mode is not None and isinstance(node, (ast.Yield, ast.YieldFrom, ast.Return)):
            if not isinstance(node, ast.Return) or isinstance(node.value, ast.Call):
                return mode
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Call):
            inner = _expr_mode(node.func, module, hops)  # ``torch.no_grad()(fn)``
            if inner is not None:
                return inner
        stack.extend((child, mode) for child in reversed(list(ast.iter_child_nodes(node))))
    return None


def _class_mode(cls: ast.ClassDef, module: _Module, hops: int) -> bool | None:
    """A class deriving from a grad mode (``class evaluating(torch.no_grad)``), or whose
    ``__enter__`` sets one (``torch.set_grad_enabled(False)``, ``self.ctx = torch.no_grad()``)."""
    for base in cls.bases:  # torch's, or a class of this file; other files' classes are not read
        mode = _expr_mode(base, module, hops, follow_imports=False)
        if mode is not None:
            return mode
    for stmt in cls.body:
        if isinstance(stmt, ast.FunctionDef) and stmt.name == "__enter__":
            for node in ast.walk(stmt):
                if isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)):
                    mode = _expr_mode(node, module, hops)
                    if mode is not None:
                        return mode
    return None
