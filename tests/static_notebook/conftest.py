"""Fixtures for the notebook tests (helpers live in nbhelpers.py: conftest modules share one name)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from gradlint.cli import cli


@pytest.fixture
def project(tmp_path, monkeypatch):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    monkeypatch.chdir(root)
    monkeypatch.delenv("GRADLINT_OUTPUT_FORMAT", raising=False)
    monkeypatch.delenv("GRADLINT_CACHE_DIR", raising=False)
    monkeypatch.delenv("GRADLINT_EXTRA_RULES", raising=False)
    return root


@pytest.fixture
def run():
    def _run(*args: str):
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)

    return _run
