"""Slicing: libcst sees only the definitions a rule could match, and nothing changes for the rules."""

import ast
import textwrap
from pathlib import Path

import libcst as cst
import pytest

from gradlint.rules import ALL_RULES, RULES_BY_CODE
from gradlint.static.engine import lint_source
from gradlint.static.slicing import relevant_source

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = sorted((ROOT / "fixtures").rglob("*.py"))


def _slice(src, codes):
    src = textwrap.dedent(src)
    return src, relevant_source(src, ast.parse(src), [RULES_BY_CODE[c] for c in codes])


def _key(diags):
    return [(d.code, d.location, d.end_location, d.message, d.fix) for d in diags]


# -- what the sliced text looks like -------------------------------------------------------------

def test_unmatched_definitions_become_stubs_on_the_same_lines():
    src, out = _slice(
        """
        import torch

        @decorator(
            arg=1,
        )
        def unrelated(a,
                      b):
            '''Doc.'''
            return a + b

        def train(model, loader, opt):
            for x, y in loader:
                loss = model(x).sum()
                loss.backward()
        """,
        ["GL001"],
    )
    assert out.count("\n") == src.count("\n")
    lines = out.splitlines()
    assert lines[3:11] == ["", "", "", "def unrelated(): pass", "", "", "", ""]
    assert "return a + b" not in out
    assert out.split("def train", 1)[1] == src.split("def train", 1)[1]
    cst.parse_module(out)


def test_a_class_whose_methods_all_go_keeps_its_skeleton():
    src, out = _slice(
        """
        class Config(Base):
            size = 3

            def one(self):
                return 1

            class Inner:
                def two(self):
                    return 2
        """,
        ["GL001"],
    )
    assert "class Config(Base):\n    size = 3\n" in out
    assert "\n    def one(): pass\n" in out and "\n        def two(): pass\n" in out
    assert "return 1" not in out and "return 2" not in out
    compile(out, "<sliced>", "exec")


def test_columns_survive_non_ascii_tabs_and_crlf():
    src = "def f(\u00e9):\r\n\treturn '\u00e9\u00e9'\r\ndef g(loss):\r\n\tloss.backward()\r\n"
    out = relevant_source(src, ast.parse(src), [RULES_BY_CODE["GL001"]])
    assert out.splitlines()[:2] == ["def f(): pass", ""]
    assert out.splitlines()[2:] == src.splitlines()[2:]
    one_line = "def h(x): return x.sum()\n@dec\nasync def k(\n  a): return a\ndef g(loss):\n    loss.backward()\n"
    out = relevant_source(one_line, ast.parse(one_line), [RULES_BY_CODE["GL001"]])
    assert out.splitlines()[:4] == ["def h(): pass", "", "def k(): pass", ""]


def test_a_decorated_first_statement_goes_with_its_decorator():
    src, out = _slice(
        """
        def wrap(f):
            @functools.wraps(f)
            def inner(*a):
                return f(*a)
            return inner

        def g(loss):
            loss.backward()
        """,
        ["GL001"],
    )
    assert "@functools" not in out and "inner" not in out
    compile(out, "<sliced>", "exec")


def test_module_context_rules_switch_slicing_off():
    src, out = _slice("def a():\n    return 1\n\ndef b(loss, opt):\n    loss.backward()\n    opt.step()\n", ["GL006"])
    assert out == src


# -- what a rule may see beyond the definition that matched ---------------------------------------

CROSS_DEFINITION = {
    # the helper that detaches lives in a definition of its own
    "GL008": """
        import torch

        def repackage(h):
            return h.detach()

        def train(model, loader, opt, h):
            for x, y in loader:
                out, h = model(x, h)
                h = repackage(h)
                loss = (out - y).pow(2).mean()
                loss.backward()
                opt.step()
        """,
    # a caller turns grad off
    "GL017": """
        import torch

        def evaluate(model, val_loader):
            model.eval()
            for x, y in val_loader:
                out = model(x)

        def main(model, val_loader):
            with torch.no_grad():
                evaluate(model, val_loader)
        """,
    # the parameter is declared in __init__, edited in another method
    "GL016": """
        import torch
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.scale = nn.Parameter(torch.ones(1))

            def reset(self):
                self.scale.data.fill_(1.0)
        """,
    # autograd.grad under an alias the definition never spells out
    "GL002": """
        from torch.autograd import grad as g

        def accumulate(model, loader, params, F):
            objective = 0
            for x, y in loader:
                objective += F.mse_loss(model(x), y)
                grads = g(objective, params, retain_graph=True)
        """,
}


@pytest.mark.parametrize("code", sorted(CROSS_DEFINITION))
def test_evidence_in_another_definition_is_kept(code):
    src = textwrap.dedent(CROSS_DEFINITION[code])
    rule = RULES_BY_CODE[code]
    sliced = lint_source("t.py", src.encode(), [rule])
    whole = lint_source("t.py", src.encode(), [rule], slicing=False)
    assert _key(sliced) == _key(whole)
    assert relevant_source(src, ast.parse(src), [rule]) == src  # nothing the rule reads was stubbed


def test_stubbing_really_happens_in_those_files():
    # The guard for the test above: with an unrelated rule, the same files do get stubbed.
    src = textwrap.dedent(CROSS_DEFINITION["GL008"])
    assert relevant_source(src, ast.parse(src), [RULES_BY_CODE["GL011"]]) != src


# -- the differential check: every fixture, every rule, sliced == whole ---------------------------

@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: str(p.relative_to(ROOT / "fixtures")))
def test_fixtures_give_the_same_diagnostics_sliced_and_whole(path):
    data = path.read_bytes()
    for rules in [[r] for r in ALL_RULES] + [list(ALL_RULES)]:
        sliced = lint_source(str(path), data, rules)
        whole = lint_source(str(path), data, rules, slicing=False)
        assert _key(sliced) == _key(whole), [r.code for r in rules]


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.code)
def test_rule_examples_give_the_same_diagnostics_sliced_and_whole(rule):
    # Snippets get an unrelated definition around them so that slicing has something to cut.
    for snippet in list(rule.VALID) + list(rule.INVALID):
        src = "def _unrelated(a):\n    return a\n\n" + textwrap.dedent(snippet)
        for rules in ([rule], list(ALL_RULES)):
            sliced = lint_source("t.py", src.encode(), rules)
            whole = lint_source("t.py", src.encode(), rules, slicing=False)
            assert _key(sliced) == _key(whole)
