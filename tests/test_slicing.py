"""Slicing: libcst sees only the definitions a rule could match, and nothing changes for the rules."""

import ast
import textwrap
from pathlib import Path

import libcst as cst
import pytest

from gradlint.rules import ALL_RULES, RULES_BY_CODE
from gradlint.static.engine import _run_rules, decode_source, lint_source
from gradlint.static.noqa import filter_noqa
from gradlint.static.rule import FileContext
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
    # the body keeps its own line and indentation (libcst takes the default indent from the first block)
    assert lines[3:11] == ["", "", "", "def unrelated():", '    """', "", '"""', ""]
    assert "return a + b" not in out
    assert out.split("def train", 1)[1] == src.split("def train", 1)[1]
    cst.parse_module(out)


def test_a_class_keeps_its_header_and_its_live_methods():
    src, out = _slice(
        """
        '''Module docs.'''
        class Config(Base):
            '''Nothing here can match.'''
            size = 3

            def one(self):
                return 1

        @register
        class Trainer(
            Config,
        ):
            '''Class docs.'''
            steps = 3

            def fit(self, loss):
                loss.backward()

            class Inner:
                def two(self):
                    return 2
        """,
        ["GL001"],
    )
    assert out.count("\n") == src.count("\n")
    assert "Nothing here" not in out
    assert 'class Config(Base):\n    """\n' in out and "size = 3" not in out
    assert "@register\nclass Trainer(\n    Config,\n):\n" in out
    assert "    steps = 3\n" in out and src.split("def fit")[1].split("class Inner")[0] in out
    assert "\n        def two():\n            pass\n" in out and "return 2" not in out
    compile(out, "<sliced>", "exec")
    same_line = "class A: x = 1\nclass B(\n  A): y = 2\ndef f(loss):\n    loss.backward()\n"
    assert relevant_source(same_line, ast.parse(same_line), [RULES_BY_CODE["GL001"]]) == same_line


def test_columns_survive_non_ascii_tabs_and_crlf():
    src = "def f(\u00e9):\r\n\treturn '\u00e9\u00e9'\r\ndef g(loss):\r\n\tloss.backward()\r\n"
    out = relevant_source(src, ast.parse(src), [RULES_BY_CODE["GL001"]])
    assert out.splitlines()[:2] == ["def f():", "\tpass"]
    assert out.count("\r\n") == src.count("\r\n")
    assert out.splitlines()[2:] == src.splitlines()[2:]
    one_line = (
        "def h(x): return x.sum()\n@dec\nasync def k(\n  a): return a\ndef g(loss):\n    loss.backward()\n"
    )
    out = relevant_source(one_line, ast.parse(one_line), [RULES_BY_CODE["GL001"]])
    assert out.splitlines()[:4] == ["def h(): pass", "", 'def k(): """', '"""']


def test_sliced_module_renders_code_like_the_whole_one():
    # Fix code is rendered with the module's default indent and newline: a stubbed
    # first function must not change them.
    src = "def first(a):\r\n  if a:\r\n    return a\r\n\r\ndef g(loss):\r\n  loss.backward()\r\n"
    out = relevant_source(src, ast.parse(src), [RULES_BY_CODE["GL001"]])
    assert out != src
    whole, sliced = cst.parse_module(src), cst.parse_module(out)
    assert (
        (sliced.default_indent, sliced.default_newline)
        == (whole.default_indent, whole.default_newline)
        == ("  ", "\r\n")
    )


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


def test_nothing_to_parse_when_no_definition_and_no_module_code_can_match():
    # GL003's file test sees an accumulation, a loss and a loader; no one definition has them together.
    src = "def total(loss_fn):\n    return 1 + 2\n\ndef first(loader):\n    return next(iter(loader))\n"
    assert RULES_BY_CODE["GL003"].could_match(src)
    assert relevant_source(src, ast.parse(src), [RULES_BY_CODE["GL003"]]) is None
    script = (
        "for x in loader:\n    loss = loss + model(x)\n    loss.backward()\n\ndef helper(x):\n    return x\n"
    )
    out = relevant_source(script, ast.parse(script), [RULES_BY_CODE["GL001"]])
    assert out is not None and "loss.backward()" in out and "return x" not in out
    assert [d.code for d in lint_source("t.py", script.encode(), [RULES_BY_CODE["GL001"]])] == ["GL001"]


def test_module_context_rules_switch_slicing_off():
    class WholeFile(RULES_BY_CODE["GL001"]):
        reads = "module"

    src = "def a():\n    return 1\n\ndef b(loss):\n    loss.backward()\n"
    assert relevant_source(src, ast.parse(src), [WholeFile]) == src
    assert relevant_source(src, ast.parse(src), [RULES_BY_CODE["GL001"]]) != src


def test_class_context_keeps_the_whole_class():
    src, out = _slice(
        """
        class Net(nn.Module):
            def __init__(self):
                self.scale = nn.Parameter(torch.ones(1))

            def reset(self):
                self.scale.data.fill_(1.0)

        class Other:
            def f(self):
                return 1
        """,
        ["GL016"],
    )
    assert out.split("class Other")[0] == src.split("class Other")[0]
    assert "return 1" not in out


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
    # ``self.w`` requires grad because ``__init__`` says so (repros/sl13.py)
    "GL013": """
        import torch

        class Model:
            def __init__(self, n):
                self.w = torch.randn(n, n, requires_grad=True)

            def step(self, x, lr):
                loss = (x @ self.w).sum()
                loss.backward()
                self.w -= lr * self.w.grad
        """,
    # ``self.lin`` is a module because ``__init__`` says so (repros/sl4c.py)
    "GL004": """
        import torch

        class Net(torch.nn.Module):
            def __init__(self, n):
                super().__init__()
                self.lin = torch.nn.Linear(n, n)

            def forward(self, x):
                h = self.lin(x)
                d = h.detach()
                d.zero_()
                return h.sum()
        """,
    # ``self.w`` is a Parameter because ``__init__`` says so (repros/crf2.py)
    "GL005": """
        import torch

        class Net(torch.nn.Module):
            def __init__(self, n):
                super().__init__()
                self.w = torch.nn.Parameter(torch.empty(n, n))

            def forward(self, x):
                h = x @ self.w
                h.data.clamp_(0, 1)
                return h.sum()
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
    # The verdict must not depend on which other rules are selected (they may read less).
    others = [r for r in ALL_RULES if r.reads == "function"]
    assert [d for d in lint_source("t.py", src.encode(), [rule, *others]) if d.code == code] == sliced
    if code in FINDS:
        assert [d.code for d in whole] == [code]


# The cross-definition cases above that hold a finding (the others are silenced by the evidence).
FINDS = {"GL004", "GL005", "GL013", "GL016"}


# Code that can only silence a finding may be stubbed: a finding in the sliced file
# is then decided on the whole file.
SILENCED_ELSEWHERE = {
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
    # a function elsewhere in the file cuts the state between batches
    "GL008": """
        import torch
        from torch import nn

        def new_epoch(model):
            model.hidden = None

        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = nn.LSTM(4, 4)
                self.hidden = None

            def forward(self, x):
                out, self.hidden = self.lstm(x, self.hidden)
                return out

        def train(model, loader, opt):
            for x, y in loader:
                loss = model(x).sum()
                loss.backward()
                opt.step()
        """,
}


@pytest.mark.parametrize("code", sorted(SILENCED_ELSEWHERE))
def test_a_finding_silenced_by_stubbed_code_is_decided_on_the_whole_file(code):
    src = textwrap.dedent(SILENCED_ELSEWHERE[code])
    rule = RULES_BY_CODE[code]
    sliced_text = relevant_source(src, ast.parse(src), [rule])
    assert sliced_text != src  # the silencing code was stubbed...
    assert _raw_sliced(src.encode(), [rule])  # ...so the sliced file alone reports...
    assert lint_source("t.py", src.encode(), [rule]) == []  # ...and the whole file says no
    assert lint_source("t.py", src.encode(), [rule], slicing=False) == []


def test_stubbing_really_happens_in_those_files():
    # The guard for the test above: with an unrelated rule, the same files do get stubbed.
    src = textwrap.dedent(CROSS_DEFINITION["GL008"])
    assert relevant_source(src, ast.parse(src), [RULES_BY_CODE["GL011"]]) != src


# -- the differential check: every fixture, every rule, sliced == whole ---------------------------


def _raw_sliced(data, rules):
    """What the rules report on the sliced text alone, before any whole-file decision."""
    text, _ = decode_source(data, "t.py")
    rules = [r for r in rules if r.could_match(text)]
    sliced = relevant_source(text, ast.parse(text), rules)
    if sliced is None:
        return []
    return filter_noqa(_run_rules(FileContext("t.py", sliced, cst.parse_module(sliced)), rules), text)


def _assert_slicing_misses_nothing(data, rules):
    whole = lint_source("t.py", data, rules, slicing=False)
    raw = {(d.code, d.location) for d in _raw_sliced(data, rules)}
    whole_keys = {(d.code, d.location) for d in whole}
    # The sliced text may report more (code that silences a finding was stubbed), never less...
    assert whole_keys <= raw, [r.code for r in rules]
    # ...and exactly as much for a rule that says nothing stubbed can silence it.
    final = {r.code for r in rules if not r.silenced_elsewhere}
    assert {k for k in raw if k[0] in final} == {k for k in whole_keys if k[0] in final}, [
        r.code for r in rules
    ]
    # ...and what gets reported is the whole file's verdict.
    assert _key(lint_source("t.py", data, rules)) == _key(whole), [r.code for r in rules]


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: str(p.relative_to(ROOT / "fixtures")))
def test_fixtures_give_the_same_diagnostics_sliced_and_whole(path):
    data = path.read_bytes()
    try:
        ast.parse(data)
    except SyntaxError:
        pytest.skip("not Python this interpreter parses: never sliced")
    for rules in [[r] for r in ALL_RULES] + [list(ALL_RULES)]:
        _assert_slicing_misses_nothing(data, rules)


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.code)
def test_rule_examples_give_the_same_diagnostics_sliced_and_whole(rule):
    # Snippets get an unrelated definition around them so that slicing has something to cut.
    for snippet in list(rule.VALID) + list(rule.INVALID):
        src = "def _unrelated(a):\n    return a\n\n" + textwrap.dedent(snippet)
        for rules in ([rule], list(ALL_RULES)):
            _assert_slicing_misses_nothing(src.encode(), rules)


# -- generated files: the slice always parses, keeps every line, and hides no finding -------------

from hypothesis import (  # noqa: E402
    HealthCheck,
    given,
    settings,
    strategies as st,  # noqa: E402
)
from test_robustness import SEEDS  # noqa: E402  (tests/ is on sys.path under pytest)


def _as_definition(seed: str, shape: str, n: int) -> str:
    body = textwrap.indent(seed, "    ")
    if shape == "def":
        return f"def f{n}(model, loader, opt):\n{body}"
    if shape == "decorated":
        return f"@torch.no_grad()\n@other(\n    1,\n)\nasync def f{n}(\n    model,\n):\n{body}"
    if shape == "method":
        return f"class C{n}(nn.Module):\n    '''Doc.'''\n    size = 3\n\n    def m{n}(self, x):\n{textwrap.indent(seed, '        ')}"
    return seed  # module-level code


files = st.lists(
    st.tuples(st.sampled_from(SEEDS), st.sampled_from(["def", "decorated", "method", "module"])),
    min_size=1,
    max_size=6,
).map(
    lambda parts: "import torch\n\n" + "\n\n".join(_as_definition(s, k, i) for i, (s, k) in enumerate(parts))
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(files, st.lists(st.sampled_from(ALL_RULES), min_size=1, max_size=4, unique=True))
def test_generated_files_slice_cleanly(src, rules):
    tree = ast.parse(src)
    out = relevant_source(src, tree, rules)
    if out is not None:
        assert len(out.splitlines()) == len(src.splitlines())
        compile(out, "<sliced>", "exec")
        cst.parse_module(out)
    _assert_slicing_misses_nothing(src.encode(), rules)
