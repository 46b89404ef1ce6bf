"""Notebook linting speed: a 50 MB notebook (image and log outputs) against its code alone.

    python benchmarks/bench_notebook.py [--mb 50] [--cells 40] [--rounds 5]

Builds the notebook in a temporary folder: ``--cells`` code cells of training
code (with the seed's bugs), each with a base64 PNG output and a log output,
padded to ``--mb`` megabytes. Prints, best of ``--rounds``:

* in-process ``lint_source`` of the notebook, and of its code exported to a ``.py``;
* the notebook reader alone (JSON scan, outputs skipped);
* ``gradlint check`` processes: cold (no cache) and warm (cache, nothing changed);
* ``--fix`` on a copy (read, fix, re-check, write).

Target: the 50 MB notebook lints in under 2 s, about the time of its code.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CELL = """\
model_{i} = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 1))
optimizer_{i} = torch.optim.Adam(model_{i}.parameters(), lr=1e-3)
total_loss = 0
for epoch in range(5):
    for x, y in loader:
        loss = criterion(model_{i}(x), y)
        loss.backward()
        optimizer_{i}.step()
        total_loss += loss
    print(epoch, total_loss)
model_{i}.eval()
for x, y in loader:
    print(model_{i}(x).data.mean())
"""


def build(path: Path, mb: int, cells: int) -> None:
    per_cell = mb * 2**20 // cells
    png = base64.b64encode(os.urandom(per_cell * 3 // 4 * 9 // 10)).decode()  # ~90% image
    log_line = "step 00000 loss 0.123456 lr 0.001000 grad_norm 1.2345\n"
    log = [log_line] * max(1, (per_cell // 10) // len(log_line))  # ~10% text, many short strings
    out_cells = [
        {
            "cell_type": "code",
            "execution_count": 1,
            "metadata": {},
            "outputs": [],
            "source": [
                "%matplotlib inline\n",
                "import torch\n",
                "from torch import nn\n",
                "criterion = nn.MSELoss()\n",
                "loader = []",
            ],
        }
    ]
    for i in range(cells):
        out_cells.append({"cell_type": "markdown", "metadata": {}, "source": [f"## Experiment {i}"]})
        src = CELL.format(i=i).splitlines(keepends=True)
        out_cells.append(
            {
                "cell_type": "code",
                "execution_count": i + 2,
                "metadata": {},
                "outputs": [
                    {"name": "stdout", "output_type": "stream", "text": log},
                    {
                        "data": {"image/png": png, "text/plain": ["<Figure>"]},
                        "metadata": {},
                        "output_type": "display_data",
                    },
                ],
                "source": src,
            }
        )
    doc = {
        "cells": out_cells,
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def best(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def gradlint(*args: str, cwd: Path) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gradlint", *args], cwd=cwd, capture_output=True, check=False)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=int, default=50)
    ap.add_argument("--cells", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT))
    from gradlint.rules import ALL_RULES
    from gradlint.static import notebook
    from gradlint.static.engine import lint_source

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        nb_path = folder / "big.ipynb"
        build(nb_path, args.mb, args.cells)
        data = nb_path.read_bytes()
        model = notebook.read_notebook(data, str(nb_path))
        py = model.module.encode("utf-8")
        print(
            f"notebook: {len(data) / 2**20:.1f} MiB, {len(model.cells)} code cells, {len(py) / 1024:.1f} KiB of code"
        )

        def lint_nb():
            notebook._MODELS.clear()  # no in-process reuse: a cold read every round
            return lint_source(str(nb_path), data, ALL_RULES)

        diags = lint_nb()
        print(f"findings: {len(diags)} ({', '.join(sorted({d.code for d in diags}))})")
        t_read = best(lambda: notebook.read_notebook(data, str(nb_path)), args.rounds)
        t_nb = best(lint_nb, args.rounds)
        t_py = best(lambda: lint_source(str(folder / "big.py"), py, ALL_RULES), args.rounds)
        print(f"read notebook (JSON scan, outputs skipped):   {t_read:6.3f} s")
        print(f"lint_source(notebook):                        {t_nb:6.3f} s")
        print(
            f"lint_source(its code as .py):                 {t_py:6.3f} s   (notebook overhead {t_nb - t_py:+.3f} s)"
        )

        cold = min(
            gradlint("check", "--no-cache", "--output-format", "concise", "big.ipynb", cwd=folder)
            for _ in range(args.rounds)
        )
        shutil.rmtree(folder / ".gradlint_cache", ignore_errors=True)
        gradlint("check", "--output-format", "concise", "big.ipynb", cwd=folder)  # fill the cache
        warm = min(
            gradlint("check", "--output-format", "concise", "big.ipynb", cwd=folder)
            for _ in range(args.rounds)
        )
        baseline = min(
            gradlint("check", "--no-cache", "--output-format", "concise", "empty.py", cwd=folder)
            for _ in range([(folder / "empty.py").write_text(""), args.rounds][1])
        )
        print(
            f"gradlint check big.ipynb, no cache (process): {cold:6.3f} s   (gradlint on an empty .py: {baseline:.3f} s)"
        )
        print(f"gradlint check big.ipynb, warm cache:         {warm:6.3f} s")
        fixes = []
        for _ in range(args.rounds):
            shutil.copy(nb_path, folder / "fix.ipynb")
            fixes.append(gradlint("check", "--no-cache", "--fix", "--unsafe-fixes", "fix.ipynb", cwd=folder))
        changed = (folder / "fix.ipynb").read_bytes() != data
        print(
            f"gradlint check --fix --unsafe-fixes (copy):   {min(fixes):6.3f} s   (notebook changed: {changed})"
        )
        verdict = "met" if cold < 2.0 else "NOT met"
        print(
            f"target: {args.mb} MB notebook linted in < 2 s by the CLI: {verdict} ({cold:.2f} s, "
            f"{cold - baseline:.2f} s over gradlint's own start-up; load average {os.getloadavg()[0]:.1f} "
            f"on {os.cpu_count()} CPUs)"
        )


if __name__ == "__main__":
    main()
