"""Fix every file of a sample of real code, fuzzed, and check what a fix must never break.

    python scripts/check_fixes.py DIR [DIR ...] [--files 600] [--seed 14]

Takes a deterministic sample of ``.py`` files that mention torch under the
given directories; each file is checked as it is and fuzzed (its newlines made
LF, CRLF or CR, its indentation made 2 spaces or a tab for some, a comment added
at the end of every logical line and above most statements). Every file is fixed
with all rules, unsafe fixes included, and must:

* parse (libcst and CPython), with no fix dropped by the fixer;
* keep every comment exactly once (the comments, as tokens, are the same multiset);
* keep its newline style (no new kind of line ending);
* be stable: a second fix pass applies nothing;
* compute the same thing up to what the fixes declare: with `no_grad`/
  `inference_mode` blocks flattened, `.data`, `.detach()` and `.clone()` removed
  and `requires_grad` spellings unified, the fixed and the original syntax trees
  are equal (no statement lost, duplicated or reordered). Fixes that restructure
  by design (GL001 moves a statement, GL005 rewrites an in-place edit) are
  checked by the other properties only.

Prints the figures and each problem; exit status 1 when there is one.
Meaning is checked by executing fixes in tests/fixer/test_fix_behaviour.py;
real files cannot be run here.
"""

from __future__ import annotations

import argparse
import ast
import io
import random
import re
import sys
import time
import tokenize
from collections import Counter
from pathlib import Path

import libcst as cst

from gradlint.rules import ALL_RULES
from gradlint.static.engine import decode_source, lint_source
from gradlint.static.fixer import fix_text

NEWLINES = ("\n", "\r\n", "\r")
_NL = re.compile(r"\r\n|\r|\n")


# -- fuzzing ------------------------------------------------------------------------------------


def _tokens(text: str):
    return list(tokenize.generate_tokens(io.StringIO(text).readline))


def mutate(text: str, seed: int, newline: str = "\n", indent: str | None = None) -> str | None:
    """``text`` (LF) with a comment ending every logical line, comment lines above most
    statements, indentation re-unit'ed to ``indent`` and line ends ``newline``; None
    when the result would not compile (indentation the conversion cannot map)."""
    rng = random.Random(seed)
    try:
        toks = _tokens(text)
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return None
    lines = text.split("\n")
    commented = {t.start[0] for t in toks if t.type == tokenize.COMMENT}
    ends: dict[int, int] = {}  # row -> column of the logical line's NEWLINE token
    starts: list[int] = []  # rows where a logical line starts
    at_start = True
    for t in toks:
        if t.type == tokenize.NEWLINE:
            if t.start[0] not in commented:
                ends[t.start[0]] = t.start[1]
            at_start = True
        elif at_start and t.type not in (
            tokenize.NL,
            tokenize.COMMENT,
            tokenize.INDENT,
            tokenize.DEDENT,
            tokenize.ENCODING,
        ):
            starts.append(t.start[0])
            at_start = False
    logical_starts = set(starts)
    n = 0
    for row, col in ends.items():
        line = lines[row - 1]
        if col <= len(line) and line[col:].strip() == "":
            n += 1
            lines[row - 1] = line[:col] + f"  # m{n}" + line[col:]
    out: list[str] = []
    for i, line in enumerate(lines, start=1):
        if i in logical_starts and rng.random() < 0.7:
            n += 1
            lead = line[: len(line) - len(line.lstrip(" \t"))]
            out.append(f"{lead}# c{n}")
        if indent is not None and i in logical_starts:
            spaces = len(line) - len(line.lstrip(" "))
            if spaces % 4 == 0:
                line = indent * (spaces // 4) + line[spaces:]
        out.append(line)
    result = "\n".join(out)
    try:
        compile(result, "<fuzzed>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    return result.replace("\n", newline)


# -- checking -----------------------------------------------------------------------------------


def comments(text: str) -> Counter:
    try:
        return Counter(t.string for t in _tokens(_NL.sub("\n", text)) if t.type == tokenize.COMMENT)
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return Counter()


class _Normalise(ast.NodeTransformer):
    """Undo what fixes add, so that the rest of the program can be compared."""

    def generic_visit(self, node):
        if hasattr(node, "ctx"):
            node.ctx = ast.Load()  # `p.data -= v` stores through `p`; `p -= v` stores `p`
        return super().generic_visit(node)

    def visit_With(self, node: ast.With):
        self.generic_visit(node)
        if all(
            isinstance(i.context_expr, ast.Call)
            and isinstance(i.context_expr.func, ast.Attribute)
            and i.context_expr.func.attr in ("no_grad", "inference_mode")
            for i in node.items
        ):
            return node.body
        return node

    def visit_Attribute(self, node: ast.Attribute):
        self.generic_visit(node)
        if node.attr == "data":
            return node.value
        if node.attr.startswith("require"):
            node.attr = "requires_grad"
        return node

    def visit_Call(self, node: ast.Call):
        self.generic_visit(node)
        f = node.func
        if (
            isinstance(f, ast.Attribute)
            and f.attr in ("detach", "clone")
            and not node.args
            and not node.keywords
        ):
            return f.value
        for k in node.keywords:
            if k.arg and k.arg.startswith("require"):
                k.arg = "requires_grad"
        node.keywords = [k for k in node.keywords if k.arg != "retain_graph"]  # GL018 drops it
        return node


def _normalised(text: str) -> str:
    return ast.dump(_Normalise().visit(ast.parse(_NL.sub("\n", text))))


_RESTRUCTURING = {"GL001", "GL005"}


def _fix(name: str, text: str, rules):
    diags = lint_source(name, text.encode("utf-8"), rules)
    return diags, fix_text(text, diags, unsafe=True, filename=name, rules=rules)


def check(name: str, text: str, rules=ALL_RULES) -> tuple[list, list[str]]:
    """(fixes applied, problems) for one text."""
    problems: list[str] = []
    _, (fixed, applied, errors) = _fix(name, text, rules)
    problems += [f"fixer: {e}" for e in errors]
    if not applied:
        return [], problems
    try:
        cst.parse_module(fixed)
        compile(fixed, name, "exec", dont_inherit=True)
    except Exception as exc:  # the fixer must never let this through
        problems.append(f"fixed text does not parse: {type(exc).__name__}: {exc}")
        return applied, problems
    before, after = comments(text), comments(fixed)
    if before != after:
        lost = sorted((before - after).elements())[:3]
        added = sorted((after - before).elements())[:3]
        problems.append(f"comments changed: lost {lost}, added {added}")
    if not {d.code for d in applied} & _RESTRUCTURING and _normalised(fixed) != _normalised(text):
        problems.append("the program changed beyond what the fixes declare")
    if set(_NL.findall(fixed)) - set(_NL.findall(text)):
        problems.append("a new kind of line ending appeared")
    _, (again, applied_again, _) = _fix(name, fixed, rules)
    if applied_again or again != fixed:
        problems.append(f"not idempotent: a second pass applied {sorted({d.code for d in applied_again})}")
    return applied, problems


def sample(roots: list[Path], count: int, seed: int) -> list[Path]:
    files = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            try:
                data = path.read_bytes()
            except OSError:
                continue
            if b"torch" in data and len(data) < 400_000:
                files.append(path)
    rng = random.Random(seed)
    return sorted(rng.sample(files, min(count, len(files))))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("roots", nargs="+", type=Path)
    ap.add_argument("--files", type=int, default=600)
    ap.add_argument("--seed", type=int, default=14)
    args = ap.parse_args(argv)
    files = sample(args.roots, args.files, args.seed)
    t0 = time.perf_counter()
    per_rule: Counter = Counter()
    variants = fixed_files = 0
    problems: list[str] = []
    styles: Counter = Counter()
    for i, path in enumerate(files):
        text, err = decode_source(path.read_bytes(), str(path))
        if text is None:
            continue
        text = _NL.sub("\n", text)
        newline = NEWLINES[i % 3]
        indent = ("  ", "\t", None)[(i // 3) % 3]
        fuzzed = mutate(text, seed=args.seed + i, newline=newline, indent=indent)
        todo = [("as is", text)]
        if fuzzed is not None:
            todo.append((f"fuzzed {newline!r} indent {indent!r}", fuzzed))
            styles[repr(newline)] += 1
        for label, variant in todo:
            variants += 1
            applied, found = check(str(path), variant)
            per_rule.update(d.code for d in applied)
            fixed_files += bool(applied)
            problems += [f"{path} ({label}): {p}" for p in found]
    elapsed = time.perf_counter() - t0
    print(
        f"files sampled: {len(files)} (seed {args.seed}); texts checked: {variants} ({variants - len(files)} fuzzed)"
    )
    print(f"fuzzed newline styles: {dict(styles)}")
    print(f"texts with fixes applied: {fixed_files}; fixes applied: {sum(per_rule.values())}")
    print("fixes per rule: " + ", ".join(f"{c} {n}" for c, n in sorted(per_rule.items())))
    print(f"problems: {len(problems)}; time: {elapsed:.0f} s")
    for p in problems:
        print("  " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
