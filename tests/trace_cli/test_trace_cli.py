"""`gradlint trace`: runs a script like `python script.py` would, under gradlint.trace()."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
from click.testing import CliRunner  # noqa: E402

from gradlint.cli.trace import trace_command  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "fixtures" / "trace"
HAVE_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(
    not HAVE_DOT, reason="Graphviz `dot` is not installed (apt-get install -y graphviz)"
)
ENTRY = "from gradlint.cli.trace import trace_command; trace_command()"


def run_cli(*args, cwd=ROOT, env=None):
    """The command as a real process (exit codes, stderr, sys.argv as a user sees them)."""
    e = dict(os.environ, PYTHONWARNINGS="ignore")
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", ENTRY, *map(str, args)],
        cwd=cwd,
        env=e,
        capture_output=True,
        text=True,
        timeout=300,
    )


def last_json_line(out):
    return json.loads([line for line in out.splitlines() if line.startswith("{")][-1])


def test_argv_name_syspath_passthrough_and_exit_code():
    p = run_cli("--json", os.devnull, FIX / "argv_exit.py", "--flag", "7", "--json", "x", "--code", "3")
    assert p.returncode == 3, p.stderr
    seen = last_json_line(p.stdout)
    # everything after the script path reaches the script untouched, gradlint's own option names included
    assert seen["argv"] == [str(FIX / "argv_exit.py"), "--flag", "7", "--json", "x", "--code", "3"]
    assert seen["name"] == "__main__"
    assert seen["path0"] == str(FIX)
    assert seen["helper"] == 42  # imported from the script's directory
    assert "gradlint.trace: 0 findings" in p.stderr  # the report summary, on stderr


def test_uncaught_exception_prints_python_traceback_and_exits_1():
    # in-process (the exit code of a real process is checked above): same output, no extra torch import
    r = CliRunner().invoke(trace_command, [str(FIX / "argv_exit.py"), "--raise"])
    assert r.exit_code == 1
    err = r.stderr
    assert err.startswith("Traceback (most recent call last):\n")
    assert f'File "{FIX / "argv_exit.py"}", line' in err
    assert "ValueError: boom from the script" in err
    assert "runpy" not in err and "gradlint/cli" not in err  # our frames are not the user's
    assert err.index("ValueError: boom") < err.index("gradlint.trace:")  # traceback first, then the report


def test_gr003_and_gr004_enriched_errors_exit_1():
    r = CliRunner().invoke(trace_command, [str(FIX / "accumulate_backward.py")])
    assert r.exit_code == 1
    err = r.stderr
    assert err.startswith("Traceback (most recent call last):")
    assert "BackwardThroughFreedGraphError: gradlint GR003" in err
    assert "sum the losses and call backward once" in err
    assert "gradlint/runtime" not in err.split("gradlint.trace:")[0]  # wrapper frames hidden
    r = CliRunner().invoke(trace_command, [str(FIX / "inplace.py")])
    assert r.exit_code == 1
    assert "InplaceOnSavedTensorError" in r.stderr and "GR004" in r.stderr


def test_dash_m_module_with_args(monkeypatch):
    monkeypatch.chdir(FIX)  # `python -m` finds the package from the current directory
    argv, path = sys.argv[:], sys.path[:]
    p = CliRunner().invoke(
        trace_command, ["--fail-on", "GR001", "-m", "tracepkg.train", "--code", "0", "--flag", "7"]
    )
    seen = last_json_line(p.stdout)
    assert seen["name"] == "__main__"
    assert seen["argv"][0].endswith(os.path.join("tracepkg", "train.py"))
    assert seen["argv"][1:] == ["--code", "0", "--flag", "7"]
    assert "GR001" in p.stderr
    assert p.exit_code == 1  # --fail-on GR001 turned the finding into a failure
    r = CliRunner().invoke(trace_command, ["-m", "tracepkg.train", "--code", "5"])
    assert r.exit_code == 5, r.output
    assert (sys.argv, sys.path) == (argv, path)  # restored


def test_missing_script_is_a_usage_error():
    r = CliRunner().invoke(trace_command, ["does_not_exist.py"])
    assert r.exit_code == 2 and "does_not_exist.py" in r.output
    r = CliRunner().invoke(trace_command, [])
    assert r.exit_code == 2 and "missing the script" in r.output
    r = CliRunner().invoke(trace_command, ["--fail-on", "XX1", str(FIX / "clean.py")])
    assert r.exit_code == 2 and "--fail-on" in r.output


def test_fail_on_codes_and_prefixes(tmp_path):
    runner = CliRunner()
    leak = str(FIX / "leak.py")
    r = runner.invoke(trace_command, ["--fail-on", "GR002", leak, "--steps", "3"])
    assert r.exit_code == 1, r.output
    assert "failing because of GR002" in r.output
    r = runner.invoke(trace_command, ["--fail-on", "gr00", leak, "--steps", "3"])  # prefix, any case
    assert r.exit_code == 1
    r = runner.invoke(trace_command, ["--fail-on", "GR001,GR004", leak, "--steps", "3"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(trace_command, [leak, "--steps", "3"])
    assert r.exit_code == 0


def test_json_output_and_every_option_reach_the_tracer(tmp_path):
    out = tmp_path / "sub" / "trace.json"
    r = CliRunner().invoke(
        trace_command, ["--json", str(out), "--every", "2", "--no-cuda", str(FIX / "leak.py"), "--steps", "8"]
    )
    assert r.exit_code == 0, r.output
    rep = json.loads(out.read_text())
    assert [f["code"] for f in rep["findings"]] == ["GR002"]
    assert rep["findings"][0]["details"]["holder"] == "total_loss"
    assert rep["options"]["every"] == 2 and rep["options"]["cuda"] is False


@needs_dot
def test_png_dir_one_picture_per_leaked_graph_or_finding(tmp_path):
    d = tmp_path / "graphs" / "new"
    r = CliRunner().invoke(trace_command, ["--png-dir", str(d), str(FIX / "leak.py"), "--steps", "3"])
    assert r.exit_code == 0, r.output
    pngs = sorted(p.name for p in d.iterdir())
    assert pngs == ["01_GR002_total_loss.png"]
    assert (d / pngs[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # GR004 (raised) and GR003: the graphs are drawn from the traceback's frames
    for script, name in [("inplace.py", "GR004_SigmoidBackward0"), ("accumulate_backward.py", "GR003_loss")]:
        d2 = tmp_path / script
        r = CliRunner().invoke(trace_command, ["--png-dir", str(d2), str(FIX / script)])
        assert r.exit_code == 1
        assert [p.stem for p in d2.iterdir()] == [f"01_{name}"], r.output
    d3 = tmp_path / "retained"
    CliRunner().invoke(trace_command, ["--png-dir", str(d3), str(FIX / "retained.py")])
    assert len(list(d3.glob("*.png"))) == 1  # the graph still alive at exit


def test_png_dir_without_dot_warns_and_still_reports(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    out = tmp_path / "t.json"
    r = CliRunner().invoke(
        trace_command,
        ["--png-dir", str(tmp_path / "g"), "--json", str(out), str(FIX / "leak.py"), "--steps", "2"],
    )
    assert r.exit_code == 0
    assert "apt-get install -y graphviz" in r.output
    assert out.exists() and (tmp_path / "g").is_dir()


@needs_dot
def test_html_report_is_self_contained(tmp_path):
    page = tmp_path / "report.html"
    r = CliRunner().invoke(trace_command, ["--html", str(page), str(FIX / "leak.py"), "--steps", "3"])
    assert r.exit_code == 0, r.output
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert "<table class='findings'>" in html and "GR002" in html and "total_loss" in html
    assert "data:image/png;base64," in html
    assert "http://" not in html and "https://" not in html and "<script" not in html


def test_module_imports_without_torch():
    # The `gradlint` command group registers trace_command; it must load where torch is absent.
    code = (
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'torchviz', 'graphviz'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, _Block())\n"
        "from click.testing import CliRunner\n"
        "from gradlint.cli.trace import trace_command\n"
        "assert 'torch' not in sys.modules\n"
        "r = CliRunner().invoke(trace_command, ['fixtures/trace/clean.py'])\n"
        "print(r.exit_code, r.output.strip())\n"
    )
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("1 ") and "pip install 'gradlint[runtime]'" in p.stdout


def test_script_with_its_own_trace_runs_it_as_a_view(tmp_path):
    """In-process (no extra interpreter start): the script's trace() shares the command's trace."""
    from click.testing import CliRunner

    res = CliRunner().invoke(trace_command, ["--json", str(tmp_path / "t.json"), str(FIX / "nested.py")])
    assert res.exit_code == 0, res.output
    seen = last_json_line(res.output)
    assert seen == {"codes": ["GR002"], "iterations": [1, 2, 3, 4], "nested_in": "gradlint trace"}
    host = json.loads((tmp_path / "t.json").read_text())
    assert [f["code"] for f in host["findings"]] == ["GR002"] and len(host["iterations"]) == 5
