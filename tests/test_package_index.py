"""Grad-off wrappers defined in another file of the project (gradlint.static.package_index)."""

import os
import shutil
from pathlib import Path

import pytest

from gradlint.rules import ALL_RULES, RULES_BY_CODE
from gradlint.static import package_index
from gradlint.static.engine import lint_source
from gradlint.static.testing import expected_markers, found_markers

ROOT = Path(__file__).resolve().parents[1]
EVALPKG = ROOT / "fixtures" / "packages" / "evalpkg"
TRAIN = EVALPKG / "train.py"


@pytest.fixture(autouse=True)
def fresh_index():
    package_index.clear()
    yield
    package_index.clear()


def mode(importer, dotted, level=0):
    return package_index.grad_mode_of_import(str(importer), level, dotted)


def test_relative_absolute_and_module_attribute_imports():
    assert mode(TRAIN, "utils.evaluating", level=1) is False
    assert mode(TRAIN, "evalpkg.utils.no_grad_eval") is False  # an alias of torch.no_grad
    assert mode(TRAIN, "evalpkg.utils.inference") is False  # a decorator around inference_mode
    assert mode(TRAIN, "evalpkg.utils.frozen") is False  # a class whose __enter__ turns grad off


def test_reexports_through_init_files():
    assert mode(TRAIN, "common.eval_ctx", level=1) is False  # ..utils.evaluating as eval_ctx
    assert mode(TRAIN, "common.frozen_again", level=1) is False  # two hops: .ctx, then evalpkg.utils
    assert mode(EVALPKG / "common" / "ctx.py", "frozen_again", level=1) is False


def test_near_misses():
    assert mode(TRAIN, "utils.with_grad", level=1) is True  # set_grad_enabled(True): grad ON
    assert mode(TRAIN, "utils.timing", level=1) is None  # a context manager that leaves grad alone
    assert mode(TRAIN, "other.utils.evaluating", level=1) is None  # the same name, no no_grad
    assert mode(TRAIN, "missing.mystery", level=1) is None  # no such module: unknown
    assert mode(TRAIN, "utils.nothing_here", level=1) is None  # no such name
    assert mode(TRAIN, "torch.no_grad") is None  # torch is never looked up on disk


def _package(tmp_path, utils_bytes: bytes):
    pkg = tmp_path / "proj" / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "utils.py").write_bytes(utils_bytes)
    train = pkg / "train.py"
    train.write_text("from .utils import evaluating\n")
    return train


@pytest.mark.parametrize(
    "data",
    [
        b"import torch\ndef evaluating(:\n    with torch.no_grad():\n        yield\n",  # syntax error
        b"import torch\nx = '\xff\xfe'\nevaluating = torch.no_grad\n",  # not UTF-8
        b"import torch\nevaluating = torch.no_grad\n\0",  # null bytes
        b"import torch\nevaluating = torch.no_grad\n" + b"#" * (package_index.MAX_BYTES + 1),  # huge
        b"x = (" * 3000 + b"1" + b")" * 3000 + b"\n",  # too deep for the parser
    ],
    ids=["syntax-error", "not-utf8", "null-bytes", "huge", "too-deep"],
)
def test_bad_files_are_unknown(tmp_path, data):
    train = _package(tmp_path, data)
    assert mode(train, "utils.evaluating", level=1) is None


def test_cycles_and_self_imports_are_unknown(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from .a import w\n")
    (pkg / "a.py").write_text("from .b import w\n")
    (pkg / "b.py").write_text("from .a import w\n")
    assert mode(pkg / "train.py", "a.w", level=1) is None
    assert mode(pkg / "a.py", "pkg.a.w") is None


def test_script_folder_and_project_root(tmp_path):
    # A script next to its helpers (no package), and a script in a sub-folder of the project.
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "helpers.py").write_text(
        "import contextlib, torch\n"
        "@contextlib.contextmanager\n"
        "def evaluating():\n"
        "    with torch.inference_mode():\n"
        "        yield\n"
    )
    (tmp_path / "scripts").mkdir()
    assert mode(tmp_path / "train.py", "helpers.evaluating") is False
    assert mode(tmp_path / "scripts" / "eval.py", "helpers.evaluating") is False


def test_answers_follow_edits(tmp_path):
    train = _package(tmp_path, b"import torch\nevaluating = torch.enable_grad\n")
    assert mode(train, "utils.evaluating", level=1) is True
    utils = train.parent / "utils.py"
    utils.write_text("import torch\nevaluating = torch.no_grad  # now off\n")
    st = os.stat(utils)
    os.utime(utils, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert mode(train, "utils.evaluating", level=1) is False


def test_recording_collects_the_consulted_files_also_from_memoised_answers():
    for _ in range(2):
        with package_index.recording() as deps:
            assert mode(TRAIN, "common.frozen_again", level=1) is False
        assert {os.path.relpath(p, EVALPKG) for p in deps} == {
            "common/__init__.py",
            "common/ctx.py",
            "utils.py",
        }
        assert all(len(v) == 3 for v in deps.values())


def test_nothing_is_read_without_an_imported_wrapper(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("looked up")

    monkeypatch.setattr(package_index, "grad_mode_of_import", boom)
    src = b"import torch\nimport os\n\n@property\ndef f(model, loader):\n    model.eval()\n    with torch.no_grad():\n        for x in loader:\n            model(x)\n"
    lint_source(str(TRAIN), src, list(ALL_RULES))


def test_the_fixture_package_reports_its_markers_with_every_rule():
    # GL017 and GL013 silent under imported grad-off wrappers; GL011 where a loss is computed under one.
    text = TRAIN.read_text(encoding="utf-8")
    expected = expected_markers(text)
    assert {code for _, code in expected} == {"GL011", "GL013", "GL017"}
    for rules in [[RULES_BY_CODE[c]] for c in ("GL011", "GL013", "GL017")] + [list(ALL_RULES)]:
        codes = {r.code for r in rules}
        for slicing in (True, False):
            diags = lint_source(str(TRAIN), TRAIN.read_bytes(), rules, slicing=slicing)
            assert found_markers(diags) == {e for e in expected if e[1] in codes}


def test_unresolvable_file_behaves_as_before(tmp_path):
    # The same code, copied where its imports resolve to nothing: every loop is reported.
    lone = tmp_path / "train.py"
    shutil.copy(TRAIN, lone)
    diags = lint_source(str(lone), lone.read_bytes(), [RULES_BY_CODE["GL017"]])
    assert len([d for d in diags if d.code == "GL017"]) == 12


def test_sliced_and_whole_file_agree_on_the_package():
    for path in sorted(EVALPKG.rglob("*.py")):
        data = path.read_bytes()
        for rules in [[r] for r in ALL_RULES] + [list(ALL_RULES)]:
            sliced = lint_source(str(path), data, rules)
            whole = lint_source(str(path), data, rules, slicing=False)
            key = [(d.code, d.location.row, d.location.column, d.message) for d in sliced]
            assert key == [(d.code, d.location.row, d.location.column, d.message) for d in whole]


def test_cli_on_the_fixture_package(tmp_path):
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "gradlint", "check", "--select", "ALL", "--no-cache", "-j", "2"]
        + ["--output-format", "concise", str(EVALPKG)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    found = set()
    for line in out.stdout.splitlines():
        if line.startswith(str(EVALPKG)):
            path, row, _, rest = line.split(":", 3)
            found.add((os.path.basename(path), int(row), rest.split()[0]))
    text = TRAIN.read_text(encoding="utf-8")
    assert found == {("train.py", row, code) for row, code in expected_markers(text)}, out.stdout + out.stderr


def test_wrappers_defined_under_if_and_try(tmp_path):
    # Module-level code under `if`/`try`: the binding is parsed again from its (indented) lines.
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "compat.py").write_text(
        "# -*- coding: latin-1 -*-\n"
        "import contextlib\n"
        "import sys\n"
        "import torch\n"
        "s = 'caf\xe9'\n"
        "if sys.version_info >= (3, 8):\n"
        "    @contextlib.contextmanager\n"
        "    def evaluating():\n"
        "        with torch.no_grad():\n"
        "            yield\n"
        "else:\n"
        "    evaluating = torch.no_grad\n"
        "try:\n"
        "    quiet = torch.inference_mode\n"
        "except AttributeError:\n"
        "    quiet = torch.no_grad\n"
        "if sys.platform == 'x': loud = torch.enable_grad\n",
        encoding="latin-1",
    )
    train = pkg / "train.py"
    assert mode(train, "compat.evaluating", level=1) is False
    assert mode(train, "compat.quiet", level=1) is False
    assert mode(train, "compat.loud", level=1) is None  # on the `if` line itself: not followed


def test_an_answer_cut_by_the_hop_limit_is_not_memoised(tmp_path):
    # r5 -> r4 -> ... -> r0 (the wrapper): past MAX_HOPS from r5, within it from r1.
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "r0.py").write_text("import torch\nw = torch.no_grad\n")
    for i in range(1, 7):
        (pkg / f"r{i}.py").write_text(f"from .r{i - 1} import w\n")
    train = pkg / "train.py"
    assert mode(train, "r6.w", level=1) is None
    assert mode(train, "r2.w", level=1) is False
