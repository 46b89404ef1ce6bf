"""Output is byte-identical whatever PYTHONHASHSEED is (set iteration order must never leak)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(seed: str) -> bytes:
    env = dict(os.environ, PYTHONHASHSEED=seed)
    proc = subprocess.run(
        [sys.executable, "-m", "gradlint", "check", "fixtures/rules", "--select", "ALL", "--no-cache"]
        + ["--output-format", "json", "-j", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=600,
    )
    assert proc.returncode in (0, 1), proc.stderr.decode()
    return proc.stdout


def test_output_does_not_depend_on_the_hash_seed():
    first, second = _run("1"), _run("2")
    assert b'"GL008"' in first  # the (h, c) messages that once named either name are in there
    assert first == second
