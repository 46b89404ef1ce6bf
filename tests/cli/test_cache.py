"""The cache: warm runs skip linting (and reading), edits invalidate, damage is harmless."""

import json
import os

import pytest
from test_check import BACKWARD, write

import gradlint.static.runner as runner


class _Log:
    """A list of names kept in a file, so that forked worker processes can append to it."""

    def __init__(self, path):
        self.path = path

    def append(self, name):
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(name + "\n")

    def clear(self):
        open(self.path, "w").close()

    def __iter__(self):
        try:
            with open(self.path, encoding="utf-8") as fh:
                return iter(fh.read().split())
        except FileNotFoundError:
            return iter([])

    def __eq__(self, other):
        return list(self) == list(other)

    def __repr__(self):
        return repr(list(self))


@pytest.fixture
def counting(monkeypatch, tmp_path):
    """Counts files linted and files read by the runner, in the workers too."""
    calls = {"lint": _Log(tmp_path / "lint.log"), "read": _Log(tmp_path / "read.log")}
    real_lint, real_read = runner.lint_source, runner.read_bytes

    def lint(filename, data, rules):
        calls["lint"].append(os.path.basename(filename))
        return real_lint(filename, data, rules)

    def read(path):
        calls["read"].append(os.path.basename(path))
        return real_read(path)

    monkeypatch.setattr(runner, "lint_source", lint)
    monkeypatch.setattr(runner, "read_bytes", read)
    return calls


def age(path, seconds=60):
    """Pretend the file was written a while ago (fresh mtimes are not trusted)."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - seconds * 10**9))


def test_warm_run_neither_lints_nor_reads(project, run, counting):
    a = write(project, "a.py", BACKWARD)
    b = write(project, "b.py", "x = 1\n")
    age(a), age(b)
    first = run("-j1", "--output-format", "json", ".")
    assert sorted(counting["lint"]) == ["a.py", "b.py"]
    assert (project / ".gradlint_cache" / "CACHEDIR.TAG").is_file()
    counting["lint"].clear(), counting["read"].clear()
    second = run("-j1", "--output-format", "json", ".")
    assert counting["lint"] == [] and counting["read"] == []
    assert second.stdout == first.stdout and second.exit_code == first.exit_code == 1


def test_edit_invalidates(project, run, counting):
    a = write(project, "a.py", BACKWARD)
    age(a)
    assert run("-j1", "--output-format", "concise", ".").exit_code == 1
    # Same size, different content, same second: the hash still catches it.
    a.write_text(BACKWARD.replace("loss.backward()", "loss.forward_()"))
    counting["lint"].clear()
    r = run("-j1", "--output-format", "concise", ".")
    assert counting["lint"] == ["a.py"]
    assert r.exit_code == 0 and "GL901" not in r.stdout
    a.write_text("print(1)\n")
    r = run("-j1", "--output-format", "concise", ".")
    assert "a.py:1:1: GL902" in r.stdout


def test_touch_without_change_uses_hash(project, run, counting):
    a = write(project, "a.py", BACKWARD)
    age(a, 120)
    run("-j1", ".")
    age(a, 60)  # new mtime, same content
    counting["lint"].clear()
    r = run("-j1", "--output-format", "concise", ".")
    assert counting["lint"] == [] and "GL901" in r.stdout


def test_selection_change_is_not_served_stale(project, run, counting):
    a = write(project, "a.py", BACKWARD + "print(1)\n")
    age(a)
    run("-j1", ".")
    r = run("-j1", "--select", "GL902", "--output-format", "concise", ".")
    assert "GL902" in r.stdout and "GL901" not in r.stdout
    r = run("-j1", "--per-file-ignores", "a.py:GL902", "--output-format", "concise", ".")
    assert "GL901" in r.stdout and "GL902" not in r.stdout


def test_corrupt_cache_is_ignored_and_rebuilt(project, run, counting):
    a = write(project, "a.py", BACKWARD)
    age(a)
    run("-j1", ".")
    (cache_file,) = (project / ".gradlint_cache").rglob("*.json")
    for garbage in (
        b"{not json",
        b"",
        b"[1,2]",
        json.dumps({"format": 1, "files": {str(a): "x"}}).encode(),
        json.dumps({"format": 1, "files": {str(a): [1, 2, 3, 4, [{"bad": 1}]]}}).encode(),
    ):
        cache_file.write_bytes(garbage)
        r = run("-j1", "--output-format", "concise", ".")
        assert r.exit_code == 1 and "a.py:4:5: GL901" in r.stdout and r.stderr == ""
    json.loads(cache_file.read_text())  # rewritten whole


def test_unwritable_cache_dir_is_harmless(project, run, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder should be")
    write(project, "a.py", BACKWARD)
    r = run("--cache-dir", blocker / "sub", "--output-format", "concise", ".")
    assert r.exit_code == 1 and "GL901" in r.stdout and r.stderr == ""


def test_no_cache_and_cache_dir(project, run, tmp_path, counting):
    write(project, "a.py", BACKWARD)
    run("--no-cache", ".")
    assert not (project / ".gradlint_cache").exists()
    elsewhere = tmp_path / "c"
    run("--cache-dir", elsewhere, ".")
    assert list(elsewhere.rglob("*.json")) and not (project / ".gradlint_cache").exists()


def test_cache_lives_at_project_root(project, run, monkeypatch):
    write(project, "src/a.py", BACKWARD)
    monkeypatch.chdir(project / "src")
    run(".")
    assert (project / ".gradlint_cache").is_dir() and not (project / "src" / ".gradlint_cache").exists()


def test_parallel_run_fills_the_cache(project, run, counting):
    for i in range(12):
        age(write(project, f"m{i}.py", BACKWARD))
    first = run("-j2", "--output-format", "json", ".")
    counting["lint"].clear()
    second = run("-j1", "--output-format", "json", ".")
    assert counting["lint"] == [] and second.stdout == first.stdout


def test_fresh_file_edited_in_the_same_tick_is_relinted(project, run, monkeypatch):
    a = write(project, "a.py", BACKWARD)
    st = os.stat(a)
    run("-j1", ".")
    a.write_text(BACKWARD.replace("loss.backward()", "loss.forward_()"))
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime as when cached
    r = run("-j1", "--output-format", "concise", ".")
    assert r.exit_code == 0 and "GL901" not in r.stdout


def test_concurrent_runs_keep_each_others_entries(project, tmp_path):
    from gradlint.static.cache import Cache

    a, b = write(project, "a.py", BACKWARD), write(project, "b.py", "x = 1\n")
    first, second = Cache.open(str(tmp_path / "c"), "k"), Cache.open(str(tmp_path / "c"), "k")
    first.store(str(a), os.stat(a), "h1", "GL901", [])  # two runs that started from the same (empty) cache
    second.store(str(b), os.stat(b), "h2", "GL901", [])
    first.save()
    second.save()
    assert sorted(Cache.open(str(tmp_path / "c"), "k").entries) == [str(a), str(b)]


def test_concurrent_processes_keep_each_others_entries(project):
    import subprocess
    import sys

    names = [f"m{i}.py" for i in range(8)]
    for name in names:
        age(write(project, name, BACKWARD))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "gradlint", "--output-format", "concise", "-j1", *half], cwd=project
        )
        for half in (names[::2], names[1::2])
    ]
    assert all(p.wait(timeout=120) in (0, 1) for p in procs)
    (cache_file,) = (project / ".gradlint_cache").rglob("*.json")
    files = json.loads(cache_file.read_text())["files"]
    assert sorted(os.path.basename(p) for p in files) == sorted(names)


def test_deleted_files_are_pruned(project, run):
    a, b = write(project, "a.py", BACKWARD), write(project, "b.py", "x = 1\n")
    age(a), age(b)
    run("-j1", ".")
    (cache_file,) = (project / ".gradlint_cache").rglob("*.json")
    assert len(json.loads(cache_file.read_text())["files"]) == 2
    b.unlink()
    run("-j1", "a.py")  # even a run that does not name the other files
    assert list(json.loads(cache_file.read_text())["files"]) == [str(a)]


_UTILS_OFF = """
import contextlib
import torch


@contextlib.contextmanager
def evaluating(model):
    model.eval()
    with torch.no_grad():
        yield model
"""

_TRAIN = """
import torch

from .utils import evaluating


def validate(model, loader):
    model.eval()
    with evaluating(model):
        for x, y in loader:
            out = model(x)
"""


def test_a_changed_dependency_invalidates_the_files_that_used_it(project, run, counting, monkeypatch):
    # train.py's answer depends on pkg/utils.py (a grad-off wrapper it imports): the cache
    # entry of train.py records utils.py and is linted again when utils.py changes.
    import gradlint.rules as registry
    from gradlint.rules.gl017_eval_without_no_grad import EvalWithoutNoGrad

    monkeypatch.setattr(registry, "ALL_RULES", [EvalWithoutNoGrad])
    monkeypatch.setattr(registry, "RULES_BY_CODE", {"GL017": EvalWithoutNoGrad})
    write(project, "pkg/__init__.py", "")
    utils = write(project, "pkg/utils.py", _UTILS_OFF)
    write(project, "pkg/train.py", _TRAIN)
    for p in (project / "pkg").iterdir():
        age(p, 120)

    def lint():
        counting["lint"].clear()
        return run("-j1", "--select", "GL017", "--output-format", "concise", ".")

    assert lint().exit_code == 0
    assert sorted(counting["lint"]) == ["__init__.py", "train.py", "utils.py"]
    (cache_file,) = (project / ".gradlint_cache").rglob("*.json")
    entries = json.loads(cache_file.read_text())["files"]
    (train_entry,) = [e for p, e in entries.items() if p.endswith("train.py")]
    assert [os.path.basename(d[0]) for d in train_entry[5]] == ["utils.py"]

    assert lint().exit_code == 0 and counting["lint"] == []  # warm: nothing linted

    age(utils, 60)  # touched, same content: the hash says unchanged
    assert lint().exit_code == 0 and counting["lint"] == []

    utils.write_text(_UTILS_OFF.replace("with torch.no_grad():", "if True:"))  # grad stays on now
    r = lint()
    assert sorted(counting["lint"]) == ["train.py", "utils.py"]
    assert "train.py:11:19: GL017" in r.stdout

    utils.write_text(_UTILS_OFF)
    age(utils, 30)
    assert lint().exit_code == 0 and sorted(counting["lint"]) == ["train.py", "utils.py"]

    utils.unlink()  # the wrapper is gone: unknown, reported as without it
    r = lint()
    assert counting["lint"] == ["train.py"] and "train.py:11:19: GL017" in r.stdout
