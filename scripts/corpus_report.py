"""Lint a folder of real code with every rule and print per-rule counts.

    python scripts/corpus_report.py PATH [PATH...] [--select ALL] [--show GL003] [--jobs N]

Used to hunt false positives on large correct code bases (timm, transformers,
lightning...): every finding it prints is one to read. It calls the engine
directly (no cache), so it measures the rules, not the cache.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures as cf
import os
import sys
import time
from pathlib import Path

from gradlint.rules import ALL_RULES, RULES_BY_CODE
from gradlint.static.engine import lint_source


def _rules(select: str):
    if select == "ALL":
        return list(ALL_RULES)
    if select == "DEFAULT":
        return [r for r in ALL_RULES if r.default_enabled]
    codes = [c.strip() for c in select.split(",")]
    return [r for r in ALL_RULES if any(r.code.startswith(c) for c in codes)]


def _lint(args):
    path, codes = args
    rules = [RULES_BY_CODE[c] for c in codes]
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return path, [], str(exc)
    return path, [d.to_dict() for d in lint_source(path, data, rules)], None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--select", default="ALL")
    ap.add_argument("--show", default="", help="comma-separated codes whose findings to print in full")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ns = ap.parse_args()
    rules = _rules(ns.select)
    codes = [r.code for r in rules]
    files = sorted(str(p) for root in ns.paths for p in Path(root).rglob("*.py") if p.is_file())
    t0 = time.perf_counter()
    counts = collections.Counter()
    show = {c.strip() for c in ns.show.split(",") if c.strip()}
    with cf.ProcessPoolExecutor(ns.jobs) as pool:
        for path, diags, err in pool.map(_lint, [(f, codes) for f in files], chunksize=16):
            if err:
                print(f"{path}: {err}", file=sys.stderr)
            for d in diags:
                counts[d["code"]] += 1
                if d["code"] in show or "ALL" in show:
                    print(
                        f"{d['filename']}:{d['location']['row']}:{d['location']['column']}: {d['code']} {d['message']}"
                    )
    wall = time.perf_counter() - t0
    print(f"\n{len(files)} files in {wall:.1f} s with {len(rules)} rules")
    for code in sorted(set(codes) | {"GL000"}):
        print(f"  {code}: {counts.get(code, 0)}")


if __name__ == "__main__":
    main()
