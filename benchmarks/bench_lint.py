"""Static analyzer speed on a large real tree. Prints figures; asserts nothing.

    python benchmarks/bench_lint.py [PATH] [--select ALL]

Without PATH it downloads the transformers sdist (no dependencies) into
.bench/ and lints its Python files. Runs, each as a fresh `gradlint` process:
cold (-j all cores, empty cache), warm (same cache, nothing changed), and
cold -j1 (single process, empty cache). Targets on a 2-core machine for
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
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", "transformers", "-d", str(BENCH)],
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path", nargs="?")
    ap.add_argument("--select", default=None, help="rule selection (default: gradlint's default set)")
    ns = ap.parse_args()
    path = Path(ns.path) if ns.path else fetch_transformers()
    nfiles, nlines = count(path)
    print(f"tree: {path}  ({nfiles} files, {nlines} lines); cores: {os.cpu_count()}; python {sys.version.split()[0]}")
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
