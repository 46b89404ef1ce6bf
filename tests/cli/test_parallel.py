"""-j N produces exactly the output of -j 1."""

import random

import pytest
from test_check import write

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


def test_broken_pool_falls_back_to_serial(tree, run, monkeypatch):
    import concurrent.futures

    import gradlint.static.runner as runner

    class Broken:
        def __init__(self, *a, **k):
            raise concurrent.futures.process.BrokenProcessPool("simulated")

    serial = run("-j1", "--no-cache", "--output-format", "json", ".")
    monkeypatch.setattr(runner.concurrent.futures, "ProcessPoolExecutor", Broken)
    r = run("-j2", "--no-cache", "--output-format", "json", ".")
    assert r.stdout == serial.stdout and "worker processes failed" in r.stderr
