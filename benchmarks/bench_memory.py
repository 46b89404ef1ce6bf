"""Peak memory and time of `gradlint check` on large data files and pathological inputs.
Prints figures; asserts nothing.

    python benchmarks/bench_memory.py [--mib 9] [--skip-pathological]

Data files: a list literal of floats (8 a line), a dict of tuples, and a list of
lists, each ``--mib`` MiB, with a training loop after the data so that the
rules run. Each is linted by a fresh ``gradlint check --no-cache -j1`` process;
the peak RSS is the largest of that process and its worker (``RUSAGE_CHILDREN``
reports the largest descendant). Target: peak <= 50x the file size.

Pathological inputs (long sums, attribute chains, ``elif`` ladders, deep ``case``
patterns, 30 nested loops): seconds per file with this interpreter. Target:
< 2 s each on every supported Python; run the script with each one's venv.
"""

from __future__ import annotations

import argparse
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOOP = (
    "\n\ndef train(model, loader, opt):\n    for x in loader:\n        loss = model(x).sum()\n"
    "        loss.backward()\n        opt.step()\n"
)


def data_file(path: Path, kind: str, size: int) -> None:
    rng = random.Random(0)
    with open(path, "w") as fh:
        fh.write("import torch\n\n")
        fh.write({"list": "DATA = [\n", "dict": "TABLE = {\n", "nested": "ROWS = [\n"}[kind])
        written = 0
        i = 0
        while written < size:
            if kind == "list":
                line = "    " + ", ".join(f"{rng.random():.8f}" for _ in range(8)) + ",\n"
            elif kind == "dict":
                line = f"    'key_{i}': ({rng.random():.6f}, {-rng.randrange(10**6)}, 'v{i}', None),\n"
            else:
                line = "    [" + ", ".join(str(rng.randrange(-999, 999)) for _ in range(12)) + "],\n"
            fh.write(line)
            written += len(line)
            i += 1
        fh.write("}\n" if kind == "dict" else "]\n")
        fh.write(LOOP)


def run(path: Path) -> tuple[float, int, int]:
    """Seconds, peak RSS in bytes (of this process's largest descendant so far), exit code."""
    start = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gradlint",
            "check",
            "--no-cache",
            "-j1",
            "--output-format",
            "concise",
            str(path),
        ],
        capture_output=True,
    )
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return seconds, peak, proc.returncode


PATHOLOGICAL = {
    "sum, 10,000 terms": "x = " + "a + " * 10000 + "1\n",
    "sum, 250,000 terms": "x = " + "1+" * 250000 + "1\n",
    "attribute chain, 20,000 links": "x = a" + ".b" * 20000 + "\n",
    "elif ladder, 5,000": "if a:\n    pass\n" + "elif a:\n    pass\n" * 5000,
    "parentheses, 5,000 deep": "x = " + "(" * 5000 + "1" + ")" * 5000 + "\n",
    "case pattern, 14 deep": "match c:\n    case " + '{"a": ' * 14 + "1" + "}" * 14 + ":\n        pass\n",
    "for loops, 30 deep": "def train(model, opt, x, h):\n"
    + "".join("    " * (i + 1) + f"for i{i} in range(2):\n" for i in range(30))
    + "".join(
        "    " * 31 + s + "\n"
        for s in [
            "out, h = model(x, h)",
            "loss = crit(out)",
            "loss.backward()",
            "p = out.detach()",
            "p.clamp_(min=0)",
        ]
    ),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=float, default=9.0)
    ap.add_argument("--skip-pathological", action="store_true")
    args = ap.parse_args()
    size = int(args.mib * 2**20)
    print(f"Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        baseline = Path(tmp) / "empty.py"
        baseline.write_text("x = 1\n")
        seconds, base_peak, _ = run(baseline)
        print(f"{'baseline (a one-line file)':34} {seconds:6.2f} s  peak {base_peak / 2**20:7.1f} MiB")
        # RUSAGE_CHILDREN is a running maximum: largest file kind last would hide the others,
        # so each data file is measured by a fresh interpreter running this function alone.
        for kind in ("list", "dict", "nested"):
            path = Path(tmp) / f"data_{kind}.py"
            data_file(path, kind, size)
            code = (
                f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_memory as b; from pathlib import Path; "
                f"s, p, rc = b.run(Path({str(path)!r})); print(s, p, rc)"
            )
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split()
            seconds, peak, rc = float(out[0]), int(out[1]), int(out[2])
            file_size = path.stat().st_size
            print(
                f"{kind + ' data, ' + format(file_size / 2**20, '.1f') + ' MiB':34} {seconds:6.2f} s  "
                f"peak {peak / 2**20:7.1f} MiB = {peak / file_size:5.1f}x the file  (exit {rc})"
            )
        if args.skip_pathological:
            return
        print("pathological inputs (each file alone):")
        for name, src in PATHOLOGICAL.items():
            path = Path(tmp) / "patho.py"
            path.write_text(src + "loss.backward()\n")
            seconds, _, rc = run(path)
            print(f"  {name:32} {seconds:6.2f} s  (exit {rc})")


if __name__ == "__main__":
    main()
