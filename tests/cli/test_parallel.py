"""-j N produces exactly the output of -j 1."""

import faulthandler
import os
import random
import signal
import time

import pytest
from test_check import write

from gradlint.static.rule import Rule

SNIPPETS = [
    "loss.backward()\n",
    "print('x')\n",
    "optimizer.zero_grad()\n",
    "def f(x):\n    return x\n",
    "for b in loader:\n    out = model(b)\n    out.backward()\n    print(out)\n",
    "x = (\n",  # syntax error -> GL000 (the prefilter passes: 'print' below)
    "class A:\n    def step(self, l):\n        l.backward()  # noqa\n",
]


@pytest.fixture
def tree(project):
    rng = random.Random(1234)
    for i in range(30):
        parts = [rng.choice(SNIPPETS) for _ in range(rng.randint(1, 6))]
        write(project, f"pkg{i % 4}/mod_{i:02d}.py", "".join(parts) + "print(1)\n")
    return project


@pytest.mark.parametrize("fmt", ["json", "concise", "full"])
def test_parallel_equals_serial(tree, run, fmt):
    serial = run("-j1", "--no-cache", "--select", "ALL", "--output-format", fmt, ".")
    parallel = run("-j2", "--no-cache", "--select", "ALL", "--output-format", fmt, ".")
    assert serial.exit_code == parallel.exit_code == 1
    assert parallel.stdout == serial.stdout
    assert serial.stdout.count("GL000") >= 1 and serial.stdout.count("GL901") >= 5


def test_order_is_path_row_column_code(tree, run):
    import json

    diags = json.loads(run("-j2", "--no-cache", "--select", "ALL", "--output-format", "json", ".").stdout)
    keys = [(d["filename"], d["location"]["row"], d["location"]["column"], d["code"]) for d in diags]
    assert keys == sorted(keys)


def test_no_processes_falls_back_to_in_process(tree, run, monkeypatch):
    import gradlint.static.runner as runner

    class NoProcesses:
        def Pipe(self):
            raise OSError(11, "Resource temporarily unavailable")

    serial = run("-j1", "--no-cache", "--output-format", "json", ".")
    monkeypatch.setattr(runner, "_pool_context", lambda: NoProcesses())
    r = run("-j2", "--no-cache", "--output-format", "json", ".")
    assert r.stdout == serial.stdout and "worker processes failed" in r.stderr


class Slow(Rule):
    """## What it does
    Test rule: takes forever on files that mention `slowpoke`.
    """

    code = "GL950"
    name = "test-slow"
    message = "never"
    prefilter = ("slowpoke",)

    def visit_Module(self, node):
        time.sleep(600)


@pytest.mark.parametrize("jobs", ["-j1", "-j2"])
def test_time_budget_stops_a_file_not_the_run(project, run, monkeypatch, jobs):
    import gradlint.rules as registry
    import gradlint.static.runner as runner

    monkeypatch.setattr(registry, "ALL_RULES", [*registry.ALL_RULES, Slow])
    monkeypatch.setattr(registry, "RULES_BY_CODE", {**registry.RULES_BY_CODE, "GL950": Slow})
    monkeypatch.setenv("GRADLINT_TIME_BUDGET", "1.5")
    write(project, "slow.py", "slowpoke = 1\nloss.backward()\n")
    write(project, "crash.py", "loss.backward()\n")
    for i in range(3):
        write(project, f"ok{i}.py", "loss.backward()\n")

    lint_item = runner._lint_item

    def crash_on_one_file(item):  # as a native crash in libcst would
        if item[0].endswith("crash.py"):
            faulthandler.disable()  # pytest's, inherited: it would print the crash
            os.kill(os.getpid(), signal.SIGSEGV)
        return lint_item(item)

    monkeypatch.setattr(runner, "_lint_item", crash_on_one_file)
    start = time.monotonic()
    r = run(jobs, "--select", "ALL", "--output-format", "concise", ".")
    assert time.monotonic() - start < 60
    assert (
        "slow.py:1:1: GL000 File too complex to analyse in 1.5 s (gradlint's per-file time budget)"
        in r.stdout
    )
    assert (
        "crash.py:1:1: GL000 gradlint's analysis crashed on this file (worker process killed by signal 11)"
        in r.stdout
    )
    assert r.stdout.count("GL901") == 3 and r.exit_code == 1  # the other files were analysed
    # stopped files are not cached: the next run tries them again
    monkeypatch.setenv("GRADLINT_TIME_BUDGET", "1")
    again = run(jobs, "--select", "ALL", "--output-format", "concise", ".")
    assert "slow.py:1:1: GL000 File too complex to analyse in 1 s" in again.stdout
    assert again.stdout.count("GL901") == 3
