"""Each fix, run: the programs in ``fixtures/fixes/`` before and after their rule's fix.

A fix claims to keep some values (``KEEP``) and to repair others (``AFTER``
pairs that must be equal once fixed); see ``fixtures/fixes/README.md``. The
test checks both by executing the program with torch, so a fix that silently
removes what the author computed (GL004's clone of a discarded edit) fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from gradlint.rules import ALL_RULES
from gradlint.static.engine import lint_source
from gradlint.static.fixer import fix_text

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = sorted((ROOT / "fixtures" / "fixes").glob("gl*.py"))
FIXABLE = {r.code for r in ALL_RULES if r.fix_applicability}


def _spec(text: str) -> dict:
    spec = {}
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in ("RULE", "KEEP", "AFTER"):
                spec[node.targets[0].id] = ast.literal_eval(node.value)
    return spec


def _fixed(text: str, name: str, code: str) -> str:
    rules = [r for r in ALL_RULES if r.code == code]
    diags = lint_source(name, text.encode(), rules)
    new, applied, errors = fix_text(text, diags, unsafe=True, filename=name, rules=rules)
    assert errors == []
    assert applied, f"{code} offers no fix on {name}"
    return new


def _run(text: str, name: str) -> dict:
    namespace = {"__name__": "fix_behaviour"}
    exec(compile(text, name, "exec"), namespace)
    return namespace["main"]()


def _same(a, b) -> bool:
    import torch

    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and bool(torch.allclose(a, b, rtol=1e-6, atol=1e-7))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def test_every_rule_with_a_fix_has_a_behaviour_example():
    covered = {_spec(p.read_text())["RULE"] for p in PROGRAMS}
    assert FIXABLE <= covered, f"add a program to fixtures/fixes/ for {sorted(FIXABLE - covered)}"


@pytest.mark.parametrize("path", PROGRAMS, ids=[p.name for p in PROGRAMS])
def test_fix_keeps_what_it_claims_and_repairs_the_rest(path: Path):
    pytest.importorskip("torch")
    text = path.read_text()
    spec = _spec(text)
    name = str(path.relative_to(ROOT))
    fixed = _fixed(text, name, spec["RULE"])
    assert fixed != text
    before, after = _run(text, name), _run(fixed, name)
    for key in spec["KEEP"]:
        assert _same(before[key], after[key]), f"the {spec['RULE']} fix changed {key!r}"
    for a, b in spec["AFTER"]:
        assert _same(after[a], after[b]), f"after the {spec['RULE']} fix, {a!r} != {b!r}"
    # The examples are chosen so that the repaired values were wrong before: a fix that
    # changes nothing would pass KEEP; AFTER must show the repair.
    for a, b in spec["AFTER"]:
        assert not _same(before[a], before[b]), f"{path.name}: {a!r} already equals {b!r} before the fix"


def test_gl004_gives_no_fix_that_makes_the_edit_dead_code():
    """The issue's case: the clamped copy is discarded, so `.clone()` would undo the clamp."""
    src = (
        "import torch\n"
        "def f(model, x):\n"
        "    probs = model(x).softmax(-1)\n"
        "    probs.detach().clamp_(min=0.3)\n"
        "    return probs\n"
    )
    (d,) = [d for d in lint_source("t.py", src.encode(), ALL_RULES) if d.code == "GL004"]
    assert d.fix is None
