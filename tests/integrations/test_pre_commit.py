"""The pre-commit hooks of ``.pre-commit-hooks.yaml``, run for real by pre-commit.

pre-commit clones this checkout at its current HEAD (committed code only, never
the working tree) and pip-installs gradlint into a fresh virtualenv, exactly as
for a user.  That build costs about a minute, so:

* ``try-repo`` runs once (it always builds into a throwaway store);
* every other check runs ``pre-commit run`` with a config naming this checkout
  and the same HEAD commit, sharing one ``PRE_COMMIT_HOME`` (a temporary
  directory, never ~/.cache/pre-commit), so the environment is built once.

The hooks see a fixed toy rule (``toyrules.py``, through ``PYTHONPATH`` and
``GRADLINT_EXTRA_RULES``) so that the test does not depend on the real catalog.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip(
    "pre_commit",
    reason="pre-commit is not installed: pip install pre-commit (a test dependency of the hooks)",
)

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

BAD = "import torch\n\n\ndef f():\n    return bad_call()\n"
CLEAN = "def f():\n    return good_call()\n"


def _git(*args, cwd, env=None, check=True):
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=check)


@pytest.fixture(scope="module")
def head():
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    r = _git("rev-parse", "HEAD", cwd=ROOT, check=False)
    if r.returncode != 0:
        pytest.skip(f"{ROOT} is not a git checkout")
    sha = r.stdout.strip()
    if _git("cat-file", "-e", f"{sha}:.pre-commit-hooks.yaml", cwd=ROOT, check=False).returncode != 0:
        pytest.skip(".pre-commit-hooks.yaml is not committed at HEAD (pre-commit only sees committed code)")
    return sha


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    rules = tmp_path_factory.mktemp("rules")
    shutil.copy(HERE / "toyrules.py", rules / "toyrules.py")
    e = dict(os.environ)
    for k in list(e):
        if k.startswith(("GRADLINT_", "PRE_COMMIT")) or k in ("VIRTUAL_ENV", "PYTHONHOME"):
            del e[k]
    e.update(
        PRE_COMMIT_HOME=str(tmp_path_factory.mktemp("pre-commit-home")),
        PYTHONPATH=str(rules),
        GRADLINT_EXTRA_RULES="toyrules",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.com",
    )
    return e


@pytest.fixture(scope="module")
def config(head, tmp_path_factory):
    # What a user writes, pinned to the commit try-repo would use.
    cfg = tmp_path_factory.mktemp("cfg") / "pre-commit-config.yaml"
    cfg.write_text(
        f"repos:\n- repo: {ROOT}\n  rev: {head}\n  hooks:\n  - id: gradlint\n  - id: gradlint-fix\n"
    )
    return cfg


def make_repo(tmp_path: Path, env, files: dict) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git("init", "-q", ".", cwd=repo, env=env)
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    _git("add", *files, cwd=repo, env=env)
    return repo


def pre_commit(repo: Path, env, *args, timeout=900):
    proc = subprocess.run(
        [sys.executable, "-m", "pre_commit", *args, "--color", "never"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_try_repo_fails_on_a_buggy_file_only(head, env, tmp_path):
    repo = make_repo(tmp_path, env, {"bad.py": BAD, "clean.py": CLEAN})
    rc, out = pre_commit(repo, env, "try-repo", str(ROOT), "gradlint", "--ref", head)
    assert rc == 1, out
    assert "gradlint" in out and "Failed" in out, out
    assert "bad.py:5:12: GL971" in out, out
    assert "clean.py:" not in out, out


def test_clean_file_passes(env, config, tmp_path):
    repo = make_repo(tmp_path, env, {"clean.py": CLEAN, "stub.pyi": "def f() -> int: ...\n"})
    rc, out = pre_commit(repo, env, "run", "gradlint", "-c", str(config))
    assert rc == 0, out
    assert "Passed" in out, out


def test_buggy_file_fails(env, config, tmp_path):
    repo = make_repo(tmp_path, env, {"bad.py": BAD})
    rc, out = pre_commit(repo, env, "run", "gradlint", "-c", str(config))
    assert rc == 1 and "bad.py:5:12: GL971" in out, out


def test_configured_excludes_apply_to_the_files_pre_commit_names(env, config, tmp_path):
    repo = make_repo(
        tmp_path,
        env,
        {
            "pyproject.toml": "[tool.gradlint]\nextend-exclude = ['vendor/']\n",
            "vendor/bad.py": BAD,
            "ok.py": CLEAN,
        },
    )
    rc, out = pre_commit(repo, env, "run", "gradlint", "-c", str(config))
    assert rc == 0 and "GL971" not in out, out


def test_no_python_file_staged_passes(env, config, tmp_path):
    repo = make_repo(tmp_path, env, {"README.md": "bad_call()\n", "data.txt": "x\n"})
    rc, out = pre_commit(repo, env, "run", "-c", str(config))
    assert rc == 0, out
    assert out.count("(no files to check)Skipped") == 2, out  # both hooks


def test_fix_hook_fixes_then_passes(env, config, tmp_path):
    repo = make_repo(tmp_path, env, {"bad.py": BAD, "clean.py": CLEAN})
    rc, out = pre_commit(repo, env, "run", "gradlint-fix", "-c", str(config))
    # pre-commit fails a hook that modified files, so the user sees and stages the fix.
    assert rc == 1 and "files were modified by this hook" in out, out
    assert (repo / "bad.py").read_text() == BAD.replace("bad_call()", "good_call()")
    assert (repo / "clean.py").read_text() == CLEAN
    _git("add", "bad.py", cwd=repo, env=env)
    rc, out = pre_commit(repo, env, "run", "gradlint-fix", "-c", str(config))
    assert rc == 0 and "Passed" in out, out


def test_hook_environment_has_no_torch(env, config, tmp_path):
    make_repo(tmp_path, env, {"clean.py": CLEAN})
    home = Path(env["PRE_COMMIT_HOME"])
    site = list(home.glob("repo*/py_env-*/lib/python*/site-packages"))
    assert site, "the hook environment was not built by the earlier tests"
    names = {p.name.lower() for p in site[0].iterdir()}
    assert any(n.startswith("libcst") for n in names) and any(n.startswith("click") for n in names)
    assert not any(n == "torch" or n.startswith("torch-") for n in names), sorted(names)
