"""Lint a tree twice, sliced (the default) and whole, and print every difference.

    python scripts/check_slicing.py PATH [PATH ...] [--select ALL] [--jobs N]

Slicing (gradlint/static/slicing.py) must not change what gradlint reports;
tests/test_slicing.py checks that on the fixtures, this checks it on real code.
Prints the files and diagnostics that differ and a summary line; exits 1 if any
differ.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import sys
import time
from pathlib import Path

from gradlint.rules import ALL_RULES
from gradlint.static.engine import lint_source

_RULES = []


def _keys(diags):
    return sorted((d.code, d.location.row, d.location.column, d.message) for d in diags)


def _check(path: str) -> tuple[str, list, list, float, float]:
    data = Path(path).read_bytes()
    t0 = time.perf_counter()
    sliced = _keys(lint_source(path, data, _RULES))
    t1 = time.perf_counter()
    whole = _keys(lint_source(path, data, _RULES, slicing=False))
    return path, sliced, whole, t1 - t0, time.perf_counter() - t1


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--select", default="default", help="'ALL' for every rule, else the default set")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    _RULES[:] = [r for r in ALL_RULES if args.select == "ALL" or r.default_enabled]
    files = sorted(str(p) for root in args.paths for p in Path(root).rglob("*.py"))
    differ = 0
    t_sliced = t_whole = 0.0
    with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
        for path, sliced, whole, ts, tw in pool.map(_check, files, chunksize=8):
            t_sliced += ts
            t_whole += tw
            if sliced != whole:
                differ += 1
                print(path)
                for k in sorted(set(whole) - set(sliced)):
                    print("  only whole: ", *k)
                for k in sorted(set(sliced) - set(whole)):
                    print("  only sliced:", *k)
    print(f"{len(files)} files, {differ} differ; CPU seconds sliced {t_sliced:.1f}, whole {t_whole:.1f}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
