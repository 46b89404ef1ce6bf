"""Fixtures for the CLI tests: a registry of test rules, a project folder, a runner."""

import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import testrules  # noqa: E402

from gradlint.cli import cli  # noqa: E402


@pytest.fixture(autouse=True)
def test_registry(monkeypatch):
    """Only the test rules exist (forked -j workers inherit the patch)."""
    import gradlint.rules as registry

    monkeypatch.setattr(registry, "ALL_RULES", list(testrules.TEST_RULES))
    monkeypatch.setattr(registry, "RULES_BY_CODE", {r.code: r for r in testrules.TEST_RULES})
    monkeypatch.delenv("GRADLINT_EXTRA_RULES", raising=False)
    monkeypatch.delenv("GRADLINT_OUTPUT_FORMAT", raising=False)
    monkeypatch.delenv("GRADLINT_CACHE_DIR", raising=False)
    return testrules.TEST_RULES


@pytest.fixture
def project(tmp_path, monkeypatch):
    """An empty project folder (with a pyproject.toml) that is also the cwd."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'p'\n\n[tool.gradlint]\n")
    monkeypatch.chdir(root)
    return root


class Runner:
    def __init__(self):
        self.runner = CliRunner()

    def __call__(self, *args, input=None):
        result = self.runner.invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)
        return result


@pytest.fixture
def run():
    return Runner()


@pytest.fixture
def fake_fixer(monkeypatch):
    import fake_fixer as module

    import gradlint.static

    module.CALLS.clear()
    monkeypatch.setitem(sys.modules, "gradlint.static.fixer", module)
    monkeypatch.setattr(gradlint.static, "fixer", module, raising=False)
    return module


def subprocess_env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(HERE.parents[1]), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    )
    env["GRADLINT_EXTRA_RULES"] = "testrules"
    env.pop("GRADLINT_OUTPUT_FORMAT", None)
    env.update(extra)
    return env
