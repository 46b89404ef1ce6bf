"""Recall on confirmed real bugs: lint every file of a realworld-bugs.jsonl and score it.

    python scripts/recall.py BUGS.jsonl FILES_ROOT [--near 2] [--select DEFAULT] [-v]

``BUGS.jsonl`` lists real bugs and correct look-alikes (``label`` ``bug`` / ``ok``),
each with a ``pattern`` (P1..P9), the 1-based ``key_lines`` of the bug and
``local``, the file's path under ``FILES_ROOT``. Entries marked ``exclude`` and
entries without a file are not scored.

A bug counts as *found* when a diagnostic of one of the pattern's rules
(``PATTERN_RULES``) starts or ends within ``--near`` lines of one of its key
lines (default 2: a rule may point at the ``backward()`` of a statement pair the
key lines name by its ``step()``, or at the first line of a wrapped call). An
``ok`` entry is *flagged* when such a diagnostic lands within the same distance
of its key lines: a false alarm on a look-alike. Diagnostics of other rules are
not scored either way (they are printed with ``-v``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from gradlint.rules import ALL_RULES
from gradlint.static.engine import lint_source

# Which rules speak for which pattern of the corpus (see its README for the patterns).
PATTERN_RULES: dict[str, tuple[str, ...]] = {
    "P1": ("GL001",),  # backward on a loss accumulated across iterations
    "P2": ("GL002", "GL018"),  # retain_graph misuse
    "P3": ("GL003",),  # graph history kept in an accumulator
    "P4": ("GL004", "GL013"),  # in-place on a detached alias / a leaf
    "P5": ("GL005",),  # `.data` on activations
    "P6": ("GL006", "GL007", "GL014"),  # missing or misplaced zero_grad
    "P7": ("GL008",),  # recurrent or stateful-layer state not detached
    "P8": ("GL009",),  # `.grad` of a non-leaf
    "P9": ("GL015", "GL010"),  # step between backward calls on a shared graph
}


def _rules(select: str):
    if select == "ALL":
        return list(ALL_RULES)
    if select == "DEFAULT":
        return [r for r in ALL_RULES if r.default_enabled]
    codes = [c.strip() for c in select.split(",")]
    return [r for r in ALL_RULES if any(r.code.startswith(c) for c in codes)]


def _key_lines(entry: dict) -> list[int]:
    raw = str(entry.get("key_lines") or "")
    return [int(x) for x in raw.replace(" ", "").split(",") if x.isdigit()]


def _near(diag: dict, lines: list[int], near: int) -> bool:
    start, end = diag["location"]["row"], diag["end_location"]["row"]
    return any(start - near <= k <= end + near for k in lines)


def score(entries: list[dict], root: Path, rules, near: int, verbose: bool = False, out=sys.stdout) -> dict:
    """Lint each scorable entry's file once and score it; returns the figures."""
    cache: dict[str, list[dict]] = {}
    found = Counter()
    total = Counter()
    ok_flagged: list[str] = []
    missed: list[str] = []
    ok_total = 0
    for entry in entries:
        if entry.get("exclude") or not entry.get("local"):
            continue
        path = root / entry["local"]
        if not path.is_file():
            print(f"missing file (rebuild the corpus): {path}", file=sys.stderr)
            continue
        if entry["local"] not in cache:
            cache[entry["local"]] = [d.to_dict() for d in lint_source(str(path), path.read_bytes(), rules)]
        diags = cache[entry["local"]]
        codes = PATTERN_RULES[entry["pattern"]]
        lines = _key_lines(entry)
        hits = [d for d in diags if d["code"] in codes and _near(d, lines, near)]
        name = f"{entry['pattern']} {entry['label']} {entry['local']}:{entry['key_lines']}"
        if entry["label"] == "bug":
            total[entry["pattern"]] += 1
            if hits:
                found[entry["pattern"]] += 1
            else:
                missed.append(name)
        elif entry["label"] == "ok":
            ok_total += 1
            if hits:
                ok_flagged.append(
                    name + "  <- " + ", ".join(f"{d['code']}@{d['location']['row']}" for d in hits)
                )
        if verbose:
            mark = (
                ("FOUND" if hits else "MISSED")
                if entry["label"] == "bug"
                else ("FLAGGED" if hits else "clean")
            )
            print(f"{mark:8} {name}", file=out)
            for d in diags:
                print(f"           {d['location']['row']}: {d['code']} {d['message'][:110]}", file=out)
    n_bugs = sum(total.values())
    n_found = sum(found.values())
    return {
        "bugs": n_bugs,
        "found": n_found,
        "recall": n_found / n_bugs if n_bugs else 0.0,
        "by_pattern": {p: (found[p], total[p]) for p in sorted(total)},
        "ok": ok_total,
        "ok_flagged": ok_flagged,
        "missed": missed,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bugs", type=Path, help="realworld-bugs.jsonl")
    ap.add_argument("root", type=Path, help="folder holding each entry's `local` file")
    ap.add_argument("--near", type=int, default=2, help="lines of tolerance around a key line (default 2)")
    ap.add_argument("--select", default="DEFAULT", help="DEFAULT (default), ALL, or comma-separated codes")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every entry and its diagnostics")
    ns = ap.parse_args(argv)
    try:
        entries = [json.loads(line) for line in ns.bugs.read_text().splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        print(f"cannot read {ns.bugs}: {exc}", file=sys.stderr)
        return 2
    res = score(entries, ns.root, _rules(ns.select), ns.near, ns.verbose)
    print(
        f"\nrecall {res['found']}/{res['bugs']} = {res['recall']:.2f} (a diagnostic of the pattern's rule within {ns.near} lines of a key line, rules {ns.select})"
    )
    for pattern, (f, t) in res["by_pattern"].items():
        print(f"  {pattern} ({'/'.join(PATTERN_RULES[pattern])}): {f}/{t}")
    print(
        f"retain_graph (P2): {res['by_pattern'].get('P2', (0, 0))[0]}/{res['by_pattern'].get('P2', (0, 0))[1]}"
    )
    print(f"ok look-alikes flagged by the pattern's rule: {len(res['ok_flagged'])}/{res['ok']}")
    for name in res["ok_flagged"]:
        print(f"  {name}")
    print("missed:")
    for name in res["missed"]:
        print(f"  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
