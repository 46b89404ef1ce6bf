"""The static analyzer must import and run where torch is not installed (pre-commit envs)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Make `import torch` (and torchviz/graphviz) fail in the child, as in an env without them.
_BLOCK = (
    "import sys\n"
    "class _Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('torch', 'torchviz', 'graphviz'):\n"
    "            raise ImportError('blocked: ' + name)\n"
    "sys.meta_path.insert(0, _Block())\n"
)


def _run(code):
    return subprocess.run(
        [sys.executable, "-c", _BLOCK + code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_import_and_rules_without_torch():
    proc = _run(
        "import gradlint, gradlint.rules, gradlint.static.engine\n"
        "from gradlint.rules import ALL_RULES\n"
        "assert ALL_RULES\n"
        "assert 'torch' not in sys.modules\n"
        "print(len(ALL_RULES))\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.strip()) >= 1


def test_cli_lints_fixtures_without_torch():
    proc = _run(
        "from gradlint.cli import main\n"
        "sys.argv = ['gradlint', 'check', '--no-cache', '--output-format', 'concise', 'fixtures/rules']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as e:\n"
        "    assert 'torch' not in sys.modules\n"
        "    raise\n"
    )
    assert proc.returncode == 1, proc.stderr  # the fixtures hold violations on purpose
    assert "GL0" in proc.stdout
    assert "Traceback" not in proc.stderr
