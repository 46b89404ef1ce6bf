"""Print gradlint's precision figures on the training-script development set.

    python scripts/accuracy.py [--shared /work/shared/corpus] [--trees /work/corpus/trees]
                               [--slicing-check] [--jobs N]

Runs the default rules (as ``gradlint check`` does, slicing on) over the nine
pinned trees named in ``verdicts.md`` and prints:

- every judged diagnostic of the default-rule table with its verdict and
  whether it is still reported (``kept``) or not (``removed``);
- every diagnostic the table does not judge (to be read and judged by hand);
- the misses listed at the end of ``verdicts.md``, found or not (a miss is
  found when its rule reports a line in the listed range of that file);
- precision on the five training-script repositories: TRUE / (TRUE + FALSE +
  unjudged), DEBATABLE left out of both sides, and judged-false per 10k lines.

``--slicing-check`` also lints every file with slicing off and prints any
difference (the sliced result must equal the whole file's for every rule).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import re
from pathlib import Path

from gradlint.rules import ALL_RULES, RULES_BY_CODE
from gradlint.static.engine import lint_source

TRAINING_REPOS = (
    "pytorch+examples",
    "karpathy+nanoGPT",
    "eriklindernoren+PyTorch-GAN",
    "yunjey+pytorch-tutorial",
    "MorvanZhou+PyTorch-Tutorial",
)

# Diagnostics the development set's table does not hold, judged by hand after
# reading the whole loop (see docs/accuracy.md): (corpus, path, line, rule) -> verdict.
EXTRA_VERDICTS: dict[tuple[str, str, int, str], str] = {
    # The listed miss: inference() runs greedy_decode(model, ...) per sentence after model.eval().
    ("pytorch+examples", "language_translation/main.py", 93, "GL017"): "TRUE",
    # A test helper runs one batch of the trained model per test loader and drops the graph after
    # .item(). Judged "autograd on" before; the helper is decorated with @torch.no_grad() in this
    # version, so the diagnostic was wrong and is gone since summaries follow grad mode.
    ("Lightning-AI+pytorch-lightning", "tests/tests_pytorch/helpers/pipelines.py", 44, "GL017"): "FALSE",
    # The listed GL017 miss: `for net, l in zip(nets, losses): net.eval(); pred, layer_input, pre_act = net(test_x)`
    # keeps every eval forward's graph in lists until they are plotted (minor).
    ("MorvanZhou+PyTorch-Tutorial", "tutorial-contents/504_batch_normalization.py", 128, "GL017"): "TRUE",
    # The listed GL002 miss: D_loss.backward(retain_graph=True) left over after #89, no later backward
    # needs the graph. GL018 owns the "retained for nothing" shape now.
    ("MorvanZhou+PyTorch-Tutorial", "tutorial-contents/406_GAN.py", 71, "GL018"): "TRUE",
    # `h = h.data.clone()` between the time steps of AugmentedLstm.forward: the bug of allenai/allennlp#2530
    # (grad_fn None, BPTT cut), still in this version of the file.
    ("allenai+allennlp", "allennlp/modules/augmented_lstm.py", 275, "GL005"): "TRUE",
    ("allenai+allennlp", "allennlp/modules/augmented_lstm.py", 276, "GL005"): "TRUE",
    # `for loss_item in ensure_tuple(loss): loss_item.backward()` after one forward: ComposerModel.loss may
    # return a sequence of losses (its documented return type), whose backwards share that forward's graph;
    # the trainer fixed the same shape in mosaicml/composer#1240 by summing, this warm-up pass did not.
    ("mosaicml+composer", "composer/algorithms/seq_length_warmup/seq_length_warmup.py", 322, "GL010"): "TRUE",
}
# A listed miss of one rule that another rule now reports (the shape moved there).
MISS_RULE_ALIASES = {"GL002": ("GL002", "GL018")}


def _verdicts(path: Path):
    rows = []
    misses = []
    section = "table"
    for line in path.read_text().splitlines():
        if line.startswith("## GL016"):
            section = "gl016"
        elif line.startswith("## Misses"):
            section = "misses"
        elif line.startswith("## ") and section == "misses":
            section = "done"
        if not line.startswith("| ") or line.startswith("|---") or line.startswith("| ---"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if section == "table" and len(cells) >= 6 and cells[0] != "corpus":
            corpus, loc, rule, default, verdict = cells[:5]
            file, _, row = loc.strip("`").rpartition(":")
            rows.append(
                {
                    "corpus": corpus,
                    "path": file,
                    "line": int(row),
                    "rule": rule,
                    "default": default.startswith("yes"),
                    "verdict": verdict.strip("*"),
                }
            )
        elif section == "misses" and len(cells) >= 3 and cells[0] != "file:line":
            m = re.match(r"`([^`/]+)/([^`:]+):(\d+)(?:-(\d+))?`", cells[0])
            if m:
                lo = int(m.group(3))
                hi = int(m.group(4) or lo)
                misses.append((m.group(1), m.group(2), lo, hi, cells[1], cells[0]))
    return rows, misses


def _lint(args):
    path, codes, check = args
    rules = [RULES_BY_CODE[c] for c in codes]
    data = Path(path).read_bytes()
    sliced = [(d.code, d.location.row, d.message) for d in lint_source(path, data, rules)]
    whole = None
    if check:
        whole = [(d.code, d.location.row, d.message) for d in lint_source(path, data, rules, slicing=False)]
    return path, sliced, whole


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default="/work/shared/corpus")
    ap.add_argument("--trees", default="/work/corpus/trees")
    ap.add_argument("--slicing-check", action="store_true")
    ap.add_argument("--select", default="DEFAULT", help="DEFAULT, ALL, or codes for the slicing check")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ns = ap.parse_args()
    rows, misses = _verdicts(Path(ns.shared) / "verdicts.md")
    trees = Path(ns.trees)
    if ns.select == "ALL":
        codes = [r.code for r in ALL_RULES]
    elif ns.select == "DEFAULT":
        codes = [r.code for r in ALL_RULES if r.default_enabled]
    else:
        codes = [c.strip() for c in ns.select.split(",")]
    corpora = sorted({r["corpus"] for r in rows} | set(TRAINING_REPOS))
    corpora = [c for c in corpora if (trees / c).is_dir()]
    files = sorted(str(p) for c in corpora for p in (trees / c).rglob("*.py") if p.is_file())
    lines = {c: 0 for c in corpora}
    found: dict[tuple[str, str, int, str], str] = {}
    slicing_diffs = []
    with cf.ProcessPoolExecutor(ns.jobs) as pool:
        for path, sliced, whole in pool.map(
            _lint, [(f, codes, ns.slicing_check) for f in files], chunksize=8
        ):
            rel = Path(path).relative_to(trees)
            corpus, relpath = rel.parts[0], str(Path(*rel.parts[1:]))
            lines[corpus] += Path(path).read_bytes().count(b"\n")
            for code, row, message in sliced:
                found[(corpus, relpath, row, code)] = message
            if whole is not None and sorted(whole) != sorted(sliced):
                slicing_diffs.append((path, sorted(set(whole) ^ set(sliced))))

    print("== judged diagnostics (verdicts.md, default rules) ==")
    seen = set()
    tally = {}
    for r in rows:
        if not r["default"]:
            continue
        key = (r["corpus"], r["path"], r["line"], r["rule"])
        if key in seen:  # the table lists one diagnostic per line; duplicates are one finding each
            continue
        seen.add(key)
        state = "kept" if key in found else "removed"
        tally[(r["verdict"], state)] = tally.get((r["verdict"], state), 0) + 1
        print(f"  {r['verdict']:<9} {state:<7} {r['rule']} {r['corpus']}/{r['path']}:{r['line']}")
    for (verdict, state), n in sorted(tally.items()):
        print(f"  -> {verdict} {state}: {n}")

    print("== diagnostics the table does not judge ==")
    judged = seen | set(EXTRA_VERDICTS)
    unjudged = sorted(k for k in found if k not in judged)
    for k in unjudged:
        print(f"  {k[3]} {k[0]}/{k[1]}:{k[2]}: {found[k]}")
    if not unjudged:
        print("  (none)")
    for k, v in sorted(EXTRA_VERDICTS.items()):
        state = "kept" if k in found else "removed"
        print(f"  (judged in docs/accuracy.md) {v:<9} {state:<7} {k[3]} {k[0]}/{k[1]}:{k[2]}")

    print("== misses listed in verdicts.md ==")
    for corpus, path, lo, hi, rule, label in misses:
        rules = MISS_RULE_ALIASES.get(rule, (rule,))
        hit = any(k[0] == corpus and k[1] == path and lo <= k[2] <= hi and k[3] in rules for k in found)
        print(f"  {'found ' if hit else 'MISSED'} {rule} {label}")

    print("== precision on the training-script repositories ==")
    verdict_of = {(r["corpus"], r["path"], r["line"], r["rule"]): r["verdict"] for r in rows}
    verdict_of.update(EXTRA_VERDICTS)
    t = f = d = u = 0
    for k in found:
        if k[0] not in TRAINING_REPOS:
            continue
        v = verdict_of.get(k)
        if v == "TRUE":
            t += 1
        elif v == "FALSE":
            f += 1
        elif v == "DEBATABLE":
            d += 1
        else:
            u += 1
    n_lines = sum(lines[c] for c in TRAINING_REPOS if c in lines)
    denom = t + f + u
    prec = t / denom if denom else 1.0
    print(f"  {n_lines} lines, {t + f + d + u} diagnostics: TRUE {t}, FALSE {f}, DEBATABLE {d}, unjudged {u}")
    print(f"  precision TRUE/(TRUE+FALSE+unjudged) = {prec:.2f}")
    print(f"  judged-false (FALSE+unjudged) per 10k lines = {10000 * (f + u) / max(n_lines, 1):.2f}")
    total_lines = sum(lines.values())
    all_false = sum(1 for k in found if verdict_of.get(k, "FALSE") == "FALSE")
    print(f"  all nine trees: {total_lines} lines, {len(found)} diagnostics, {all_false} FALSE or unjudged")
    if ns.slicing_check:
        print("== sliced vs whole file ==")
        for path, diff in slicing_diffs:
            print(f"  DIFFERS {path}: {diff}")
        print(f"  {len(files)} files, {len(slicing_diffs)} differ")


if __name__ == "__main__":
    main()
