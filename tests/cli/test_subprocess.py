"""Real `python -m gradlint` processes: entry point, exit codes, streams, -j pools, real rules."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import subprocess_env
from test_check import BACKWARD, write

REPO = Path(__file__).resolve().parents[2]


def gradlint(*args, cwd, input=None, **env):
    return subprocess.run(
        [sys.executable, "-m", "gradlint", *map(str, args)],
        cwd=cwd,
        input=input,
        capture_output=True,
        env=subprocess_env(**env),
        timeout=120,
    )


def test_module_entry_point_and_exit_codes(project):
    write(project, "a.py", BACKWARD)
    r = gradlint("a.py", "--select", "GL901", "--output-format", "concise", "--no-cache", cwd=project)
    assert r.returncode == 1
    assert r.stdout.decode().startswith("a.py:4:5: GL901 ")
    assert gradlint("missing.py", cwd=project).returncode == 2
    r = gradlint("--select", "GL999", "a.py", cwd=project)
    assert r.returncode == 2 and r.stderr.decode() == "gradlint: error: unknown rule selector 'GL999'\n"
    write(project, "b.py", "x = 1\n")
    assert gradlint("b.py", "--select", "GL9", "--no-cache", cwd=project).returncode == 0


def test_parallel_pool_in_a_real_process(project):
    for i in range(20):
        write(project, f"m{i:02d}.py", BACKWARD * (i % 3 + 1))
    serial = gradlint("-j1", "--select", "GL9", "--output-format", "json", "--no-cache", ".", cwd=project)
    parallel = gradlint("-j2", "--select", "GL9", "--output-format", "json", "--no-cache", ".", cwd=project)
    assert serial.returncode == parallel.returncode == 1
    assert serial.stdout == parallel.stdout and len(json.loads(serial.stdout)) == 39
    assert parallel.stderr == b""


def test_stdin_in_a_real_process(project):
    r = gradlint("-", "--select", "GL901", "--output-format", "concise", cwd=project, input=BACKWARD.encode())
    assert r.returncode == 1 and r.stdout.decode().startswith("-:4:5: GL901")


def test_bad_config_no_traceback(project):
    (project / "pyproject.toml").write_text("[tool.gradlint]\nselect = 3\n")
    r = gradlint(".", cwd=project)
    assert r.returncode == 2 and b"Traceback" not in r.stderr and r.stderr.count(b"\n") == 1


def test_unexpected_exception_is_one_line(project):
    # A registry module that explodes on import stands in for any internal bug.
    write(project, "explode.py", "raise RuntimeError('boom')\n")
    r = gradlint(".", cwd=project, GRADLINT_EXTRA_RULES="explode", PYTHONPATH=str(project))
    assert r.returncode == 2
    assert r.stderr.decode() == "gradlint: internal error: RuntimeError: boom (please report)\n"


def test_real_rules_end_to_end(tmp_path):
    """Once the real catalog exists: its fixtures through the CLI report exactly the marked lines."""
    import gradlint.rules
    from gradlint.static.testing import expected_markers

    real_codes = {r.code for r in gradlint.rules._discover()}  # the autouse fixture hides the real registry
    fixtures = REPO / "fixtures" / "rules"
    files = sorted(fixtures.glob("gl*/**/*.py")) if fixtures.is_dir() else []
    files = [f for f in files if f.relative_to(fixtures).parts[0].upper() in real_codes]
    if not files:
        pytest.skip("no rule fixtures yet")
    # One process for all fixtures (process start-up dominates); each fixture is
    # judged only on the code of its own folder.
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "gradlint",
            "--select",
            ",".join(sorted(real_codes)),
            "--output-format",
            "json",
            "--no-cache",
            "-j2",
            *map(str, files),
        ],
        cwd=tmp_path,
        capture_output=True,
        env=subprocess_env(GRADLINT_EXTRA_RULES=""),
        timeout=300,
    )
    assert r.returncode in (0, 1), r.stderr.decode()
    diags = json.loads(r.stdout)
    for f in files:
        code = f.relative_to(fixtures).parts[0].upper()
        found = {d["location"]["row"] for d in diags if d["filename"] == str(f) and d["code"] == code}
        expected = {row for row, c in expected_markers(f.read_text(), code) if c == code}
        assert found == expected, (str(f), code)
