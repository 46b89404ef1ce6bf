"""The runtime is a model: no module of it imports the renderer, and one graph search serves everyone."""

import ast
import pathlib
import subprocess
import sys

import gradlint

ROOT = pathlib.Path(gradlint.__file__).parent


def _imports(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:  # relative: resolve against the package
                base = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts[: -node.level])
                mod = f"{base}.{mod}" if mod else base
            yield mod
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names)


def test_no_runtime_module_imports_render():
    offenders = [
        (p.name, m)
        for p in (ROOT / "runtime").glob("*.py")
        for m in _imports(p)
        if m == "gradlint.render" or m.startswith("gradlint.render.")
    ]
    assert offenders == []


def test_importing_the_runtime_does_not_load_the_renderer():
    code = "import sys, gradlint.runtime; print(any(m.startswith('gradlint.render') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_next_functions_is_walked_in_one_place():
    users = [
        str(p.relative_to(ROOT))
        for d in ("runtime", "render")
        for p in (ROOT / d).glob("*.py")
        if "next_functions" in p.read_text(encoding="utf-8")
    ]
    # graphs.iter_graph is the search; render/walk.py builds the drawn graph's edges (it needs every edge)
    assert sorted(users) == ["render/walk.py", "runtime/graphs.py"]
