"""The flake8 plugin, through a real ``flake8`` process (entry point ``GL``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip(
    "flake8", reason="flake8 is not installed: pip install flake8 (a test dependency of the flake8 plugin)"
)

from gradlint.integrations.flake8 import GradlintChecker  # noqa: E402

HERE = Path(__file__).resolve().parent


def _entry_point_installed() -> bool:
    from importlib.metadata import entry_points

    return any(
        ep.name == "GL" and ep.group == "flake8.extension" for ep in entry_points(group="flake8.extension")
    )


needs_entry_point = pytest.mark.skipif(
    not _entry_point_installed(),
    reason="gradlint is not installed in this environment (pip install -e .): flake8 cannot see its GL entry point",
)


def flake8(tmp_path: Path, *args: str):
    env = dict(
        os.environ,
        GRADLINT_EXTRA_RULES="toyrules",
        PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "flake8", "--isolated", "--select=GL", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


SRC = (
    "x = 1\n"
    "y = bad_call()\n"
    "if x:\n"
    "    z = bad_call()  # noqa: GL971\n"
    "w = bad_call()  # noqa\n"
    "v = bad_call()  # noqa: E501\n"
    "pedantic = 2\n"
)


@needs_entry_point
def test_flake8_reports_gl_codes_with_0_based_columns_converted(tmp_path):
    (tmp_path / "m.py").write_text(SRC)
    proc = flake8(tmp_path, "m.py")
    assert proc.returncode == 1
    # flake8 prints col + 1: our 1-based column 5 round-trips to 5.
    assert proc.stdout.splitlines() == [
        "m.py:2:5: GL971 `bad_call()` is wrong; call `good_call()`",
        "m.py:6:5: GL971 `bad_call()` is wrong; call `good_call()`",
    ]


@needs_entry_point
def test_disable_noqa_shows_everything_so_we_do_not_filter_twice(tmp_path):
    (tmp_path / "m.py").write_text(SRC)
    proc = flake8(tmp_path, "--disable-noqa", "m.py")
    assert [ln.split(":")[1] for ln in proc.stdout.splitlines()] == ["2", "4", "5", "6"]


@needs_entry_point
def test_off_by_default_rule_runs_when_selected_by_exact_code(tmp_path):
    (tmp_path / "m.py").write_text(SRC)
    proc = flake8(tmp_path, "--extend-select=GL972", "m.py")
    assert "m.py:7:1: GL972 pedantic name" in proc.stdout.splitlines()
    assert "GL972" not in flake8(tmp_path, "m.py").stdout


@needs_entry_point
def test_clean_file_and_file_level_exemption(tmp_path):
    (tmp_path / "ok.py").write_text("x = good_call()\n")
    (tmp_path / "exempt.py").write_text("# gradlint: noqa\nbad_call()\n")
    proc = flake8(tmp_path, "ok.py", "exempt.py")
    assert proc.returncode == 0 and proc.stdout == ""


@needs_entry_point
def test_non_utf8_file_columns_count_characters(tmp_path):
    (tmp_path / "l1.py").write_bytes("# -*- coding: latin-1 -*-\ns = 'éé'; bad_call()\n".encode("latin-1"))
    proc = flake8(tmp_path, "l1.py")
    assert proc.stdout.splitlines() == ["l1.py:2:11: GL971 `bad_call()` is wrong; call `good_call()`"]


def test_checker_directly_yields_flake8_tuples(monkeypatch):
    sys.path.insert(0, str(HERE))
    import toyrules

    monkeypatch.setattr(GradlintChecker, "_rules", [toyrules.ToyBadCall])
    out = list(GradlintChecker(None, "t.py", ["a = 1\n", "  # c\n", "b = [bad_call()]\n"]).run())
    assert out == [(3, 5, "GL971 `bad_call()` is wrong; call `good_call()`", GradlintChecker)]
