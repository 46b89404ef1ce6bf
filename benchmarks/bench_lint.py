"""Static analyzer speed on a large real tree. Prints figures; asserts nothing.

    python benchmarks/bench_lint.py [PATH] [--select ALL]

Without PATH it downloads the transformers sdist (no dependencies) into
.bench/ and lints its Python files. Runs, each as a fresh `gradlint` process:
cold (-j all cores, empty cache), warm (same cache, nothing changed), and
cold -j1 (single process, empty cache). With --phases it instead times each
stage of the engine (pre-filters, CPython parse, slicing, libcst, rules) in
one process. Targets on a 2-core machine for
transformers (~3,000 files, ~1.25M lines): cold < 20 s, warm < 1 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / ".bench"


def fetch_transformers() -> Path:
    # The whole sdist (src, tests, examples, utils): the ~3,000 files the target is about.
    existing = sorted(p for p in BENCH.glob("transformers-*") if p.is_dir())
    if existing:
        return existing[-1]
    BENCH.mkdir(exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--no-binary",
            ":all:",
            "transformers",
            "-d",
            str(BENCH),
        ],
        check=True,
    )
    (sdist,) = sorted(BENCH.glob("transformers-*.tar.gz"))[-1:]
    with tarfile.open(sdist) as tf:
        tf.extractall(BENCH, filter="data") if sys.version_info >= (3, 12) else tf.extractall(BENCH)
    return sorted(p for p in BENCH.glob("transformers-*") if p.is_dir())[-1]


def count(path: Path):
    files = [p for p in path.rglob("*.py")]
    lines = 0
    for p in files:
        with open(p, "rb") as fh:
            lines += fh.read().count(b"\n")
    return len(files), lines


def run(args, label, nfiles):
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "gradlint", "check", *args], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        print(proc.stderr, file=sys.stderr)
        raise SystemExit(f"{label}: gradlint exited {proc.returncode}")
    findings = sum(1 for line in proc.stdout.splitlines() if ": GL" in line)
    print(f"{label:<22} {wall:7.2f} s  {nfiles / wall:8.0f} files/s  ({findings} findings)")
    return wall


def phases(path: Path, select) -> None:
    """CPU seconds of each stage of engine.lint_source, in this process, one file after another."""
    from gradlint.rules import ALL_RULES
    from gradlint.static import engine
    from gradlint.static.rule import FileContext
    from gradlint.static.slicing import relevant_source

    rules = [
        r for r in ALL_RULES if select == "ALL" or (select is None and r.default_enabled) or r.code == select
    ]
    t = dict.fromkeys(
        ["read+decode", "text pre-filters", "CPython parse", "slicing", "libcst parse", "rules"], 0.0
    )
    passed = parsed = 0
    for p in sorted(path.rglob("*.py")):
        t0 = time.perf_counter()
        text, _ = engine.decode_source(p.read_bytes(), str(p))
        t1 = time.perf_counter()
        t["read+decode"] += t1 - t0
        if text is None:
            continue
        rules_here = engine.select_rules_for(text, rules)
        t2 = time.perf_counter()
        t["text pre-filters"] += t2 - t1
        if not rules_here:
            continue
        passed += 1
        tree, _ = engine._cpython_parse(text, str(p))
        t3 = time.perf_counter()
        t["CPython parse"] += t3 - t2
        source = relevant_source(text, tree, rules_here) if tree is not None else text
        t4 = time.perf_counter()
        t["slicing"] += t4 - t3
        if source is None:
            continue
        parsed += 1
        module = engine.cst.parse_module(source)
        t5 = time.perf_counter()
        t["libcst parse"] += t5 - t4
        engine._run_rules(FileContext(str(p), source, module), rules_here)
        t["rules"] += time.perf_counter() - t5
    print(f"files past the text pre-filters: {passed}; handed to libcst: {parsed}")
    for name, secs in t.items():
        print(f"  {name:<18} {secs:6.1f} s")
    print(f"  {'total':<18} {sum(t.values()):6.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path", nargs="?")
    ap.add_argument("--select", default=None, help="rule selection (default: gradlint's default set)")
    ap.add_argument(
        "--phases", action="store_true", help="instead: CPU seconds per engine stage, one process"
    )
    ns = ap.parse_args()
    path = Path(ns.path) if ns.path else fetch_transformers()
    if ns.phases:
        phases(path, ns.select)
        return
    nfiles, nlines = count(path)
    print(
        f"tree: {path}  ({nfiles} files, {nlines} lines); cores: {os.cpu_count()}; python {sys.version.split()[0]}"
    )
    sel = ["--select", ns.select] if ns.select else []
    common = ["--output-format", "concise", "--exit-zero", *sel]
    cache = Path(tempfile.mkdtemp(prefix="gradlint-bench-"))
    try:
        run([*common, "--cache-dir", str(cache), str(path)], "cold (all cores)", nfiles)
        run([*common, "--cache-dir", str(cache), str(path)], "warm (cached)", nfiles)
        shutil.rmtree(cache)
        run([*common, "--no-cache", "-j", "1", str(path)], "cold -j1", nfiles)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
