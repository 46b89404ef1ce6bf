"""The engine on its own: parsing, bad input, crash isolation, noqa, fixes-to-edits."""

import pytest
from hypothesis import given, settings, strategies as st

from gradlint.static import guard
from gradlint.static.engine import lint_source
from gradlint.static.rule import Replace, Rule
from gradlint.static.semantics.backward import is_backward_call


class FlagBackward(Rule):
    """## What it does
    Test rule: flags every backward call.
    """

    code = "GL901"
    name = "test-flag-backward"
    message = "backward on `{target}`"
    fix_applicability = "safe"
    prefilter = ("backward",)

    def visit_Call(self, node):
        bw = is_backward_call(node, self.context)
        if bw is not None:
            target = self.context.code_for(bw.target) if bw.target is not None else "?"
            self.report(node, target=target, fix=Replace(node, "pass_backward()"))


class Crashes(Rule):
    """## What it does
    Test rule that always raises.
    """

    code = "GL902"
    name = "test-crashes"

    def visit_Name(self, node):
        raise ValueError("boom")


def lint(src, rules=(FlagBackward,)):
    return lint_source("t.py", src.encode() if isinstance(src, str) else src, list(rules))


def test_backward_forms_are_recognised_with_their_targets():
    src = (
        "import torch as t\n"
        "from torch.autograd import grad\n"
        "loss.backward()\n"
        "t.autograd.backward(l2)\n"
        "grad(l3, params)\n"
        "scaler.scale(l4).backward()\n"
        "accelerator.backward(l5)\n"
        "self.manual_backward(l6)\n"
        "self.fabric.backward(l7)\n"
        "super().backward(x)\n"
        "other.grad(l8)\n"
    )
    diags = lint(src)
    assert [(d.location.row, d.message) for d in diags] == [
        (3, "backward on `loss`"),
        (4, "backward on `l2`"),
        (5, "backward on `l3`"),
        (6, "backward on `l4`"),
        (7, "backward on `l5`"),
        (8, "backward on `l6`"),
        (9, "backward on `l7`"),
    ]
    assert diags[0].location.column == 1 and diags[0].end_location.column == len("loss.backward()") + 1


def test_prefilter_skips_rules_but_not_decoding_or_syntax_errors():
    assert lint("x = 1\n") == []
    # nothing in it could match, and yet a broken file is never called clean (ruff's E999)
    (d,) = lint("x = (\n")
    assert (d.code, d.location.row, d.location.column) == ("GL000", 1, 5)
    assert d.message == "SyntaxError: '(' was never closed"
    bad = lint(b"x = '\xff\xfe'\n")
    assert [d.code for d in bad] == ["GL000"] and "decode" in bad[0].message


def test_syntax_newer_than_this_python_is_left_to_libcst():
    # CPython < 3.12 rejects a type alias; libcst knows it: not a syntax error on any version
    assert lint("type Vector = list[float]\n") == []
    assert [d.code for d in lint("type Vector = list[float]\nif x:\n    loss.backward()\n")] == ["GL901"]


def _cpython_position(src):
    try:
        compile(src, "t.py", "exec", dont_inherit=True)
    except SyntaxError as exc:
        return exc.lineno, exc.offset, exc.msg
    raise AssertionError("no syntax error")


def test_syntax_error_positions_are_cpythons():
    for src in [
        "x = 1\ndef f(:\n    loss.backward()\n",
        "def f():\n    x = 1\n    if x:\n  y = 2\n",  # bad dedent on line 4
        "loss.backward(\n",
        "x = [1, 2\nloss.backward()\n",
    ]:
        (d,) = lint(src)
        row, column, msg = _cpython_position(src)
        assert (d.code, d.location.row, d.location.column) == ("GL000", row, column), src
        assert d.message == f"SyntaxError: {msg}"
    (d,) = lint("x = 1\ndef f(:\n    loss.backward()\n")
    assert (d.location.row, d.location.column) == (2, 7)


PATHOLOGICAL = {
    "parentheses": "x = " + "(" * 5000 + ")" * 5000,
    "sum": "x = " + "1+" * 100000 + "1",
    "huge_sum": "x = " + "1+" * 250000 + "1",  # segfaulted CPython 3.10's own compile()
    "attributes": "x = a" + ".b" * 20000,
    "calls": "x = f" + "()" * 5000,
    "unary": "x = " + "-" * 5000 + "1",
    "power": "x = " + "2**" * 5000 + "1",
    "not": "x = " + "not " * 5000 + "1",
    "conditional": "x = " + "1 if c else " * 5000 + "1",
    "lambda": "x = " + "lambda: " * 5000 + "1",
    "elif": "if a:\n    pass\n" + "elif a:\n    pass\n" * 5000,
    "sum_in_a_call_in_a_def": "def f():\n    return g(1, [" + "a + " * 5000 + "b])",
    "sum_one_term_a_line": "x = (\n" + "    a\n    + " * 5000 + "b\n)",
}


def test_pathological_nesting_is_a_diagnostic_not_a_crash():
    for kind, src in PATHOLOGICAL.items():
        (d,) = lint(src + "\nloss.backward()\n")
        assert d.code == "GL000", kind
        assert "nested" in d.message, kind
    # Without a pre-filter word no rule runs: only CPython's verdict counts, with its own
    # limits (3.10-3.12 refuse a 100,000-term sum, 3.13 compiles it), and never a crash.
    diags = lint(PATHOLOGICAL["huge_sum"] + "\n")
    assert diags == [] or [(d.code, d.location.row, d.location.column) for d in diags] == [("GL000", 1, 1)]
    (d,) = lint("import x\n\n" + PATHOLOGICAL["sum_in_a_call_in_a_def"] + "\nloss.backward()\n")
    assert (d.location.row, d.location.column) == (4, 5)  # the statement that nests


def test_deep_but_not_too_deep_code_is_analysed():
    # the scanner's bound is generous (it counts every operator of an item): the tree decides
    src = "x = " + " + ".join(["a * b * c * d"] * 300) + "\nif x:\n    loss.backward()\n"
    assert [d.code for d in lint(src)] == ["GL901"]
    data = "x = [" + ", ".join(["-a.b + c.d * e[0]"] * 400) + "]\nif x:\n    loss.backward()\n"
    assert [d.code for d in lint(data)] == ["GL901"]
    ladder = "if a:\n    pass\n" + "elif a:\n    pass\n" * 250 + "if x:\n    loss.backward()\n"
    assert [d.code for d in lint(ladder)] == ["GL901"]


def test_null_bytes_and_empty_file():
    assert lint(b"") == []
    (d,) = lint(b"loss.backward()\x00\n")
    assert d.code == "GL000" and "null" in d.message


def test_crashing_rule_is_isolated():
    diags = lint("loss.backward()\n", rules=(FlagBackward, Crashes))
    codes = sorted(d.code for d in diags)
    assert codes == ["GL000", "GL901"]
    assert "GL902" in [d for d in diags if d.code == "GL000"][0].message


def test_noqa_forms():
    src = "loss.backward()  # noqa\nloss.backward()  # noqa: GL901\nloss.backward()  # noqa: GL123\nloss.backward()\n"
    assert [d.location.row for d in lint(src)] == [3, 4]
    assert lint("# gradlint: noqa\nloss.backward()\n") == []


def test_fix_becomes_text_edit():
    (d,) = lint("if x:\n    loss.backward()\n")
    (edit,) = d.fix.edits
    assert edit.content == "pass_backward()"
    assert (edit.location.row, edit.location.column) == (2, 5)


def test_match_statements_of_ordinary_depth_are_analysed():
    src = (
        "match event:\n"
        "    case {'loss': [x, (y, z)], 'name': \"(((((((\"}:\n"  # brackets in a string do not count
        "        loss.backward()\n"
    )
    assert [d.code for d in lint(src)] == ["GL901"]


# -- large literal data ---------------------------------------------------------

KEYED = "".join(f"    'k{i}': ({i}, {-i * 0.5}, None),  # row\n" for i in range(60))
FLAT = ", ".join(str(i) for i in range(400))
ROWS = "".join(f"    {i}, {-i * 0.5}, 'k{i}', None, (1, 2.0e-3),  # row\n" for i in range(60))


@pytest.fixture(autouse=True)
def small_literal_limits(monkeypatch):
    """Blank literals from 1 KiB, check them in 512-byte pieces: small tests reach every path."""
    monkeypatch.setattr(guard, "BLANK_MIN", 1024)
    monkeypatch.setattr(guard, "_PIECE", 512)


def test_large_literals_are_not_parsed_yet_positions_are_exact(monkeypatch):
    src = (
        "import torch\n"
        f"DATA = [\n{ROWS}]; w = torch.zeros(3); loss.backward()\n"
        f"TABLE = {{\n{KEYED}}}  # noqa: GL123\n"
        "if x:  loss.backward()  # noqa: GL999\n"
        f"NESTED = ([{ROWS}], [{ROWS}])\n"
        f"A, B = [{FLAT}], [{FLAT}]; loss.backward()  # noqa\n"
        f"C, D = [{FLAT}], [{FLAT}]; loss.backward()\n"
        "if y:\n    loss.backward()\n"
    )
    assert len(src) > 4 * guard.BLANK_MIN
    assert len(guard.scan(src).literals) == 7  # NESTED's tuple holds both its lists
    blanked = lint(src)
    monkeypatch.setattr(guard, "BLANK_MIN", 10**9)
    assert guard.scan(src).literals == []
    whole = lint(src)
    assert [(d.location, d.end_location, d.message) for d in blanked] == [
        (d.location, d.end_location, d.message) for d in whole
    ]
    lines = src.splitlines()
    assert [(d.location.row, d.location.column) for d in blanked] == [
        (i + 1, line.index("loss.backward()") + 1)
        for i, line in enumerate(lines)
        if "loss.backward()" in line and not line.endswith("# noqa")
    ]
    assert len(blanked) == 4 and len(lines) > 240
    # each fix's edits land where they would without blanking
    assert [d.fix for d in blanked[1:]] == [d.fix for d in whole[1:]]


def test_a_fix_never_rewrites_a_blanked_literal():
    class WrapStatement(Rule):
        """## What it does
        Test rule: replaces the whole statement that holds a backward call.
        """

        code = "GL903"
        name = "test-wrap-statement"
        message = "wrap"
        fix_applicability = "safe"
        prefilter = ("backward",)

        def visit_SimpleStatementLine(self, node):
            if "backward" in self.context.code_for(node):
                self.report(node, fix=Replace(node, "pass"))

    src = f"DATA = [\n{ROWS}]; loss.backward()\nloss.backward()\n"
    first, second = lint(src, rules=(WrapStatement,))
    assert first.fix is None  # its text would have held the emptied literal
    (edit,) = second.fix.edits
    assert (edit.location.row, edit.content) == (63, "pass")


def test_syntax_error_inside_a_large_literal():
    rows = ROWS.splitlines(keepends=True)
    rows[40] = rows[40].replace("None,", "None 7,")
    src = "DATA = [\n" + "".join(rows) + "]\n"
    ((_, _, cuts),) = guard.scan(src).literals
    assert len(cuts) > 2  # checked in pieces, the error in a middle one
    (d,) = lint(src)
    row, column, msg = _cpython_position(src)
    assert (d.code, d.location.row, d.location.column, d.message) == (
        "GL000",
        row,
        column,
        f"SyntaxError: {msg}",
    )
    assert row == 42


DATA_TOKENS = [
    *["1", "-2.5", "3e4", "0x1F", "1_000", ".5", "5.", "0", "00", "1j", "007", "1__0", "1_", "0b2", "- 1"],
    *["'a'", '"b"', "b'x'", "rb'y'", "ur'z'", "'''t\nq'''", "'\\x4'", "'\\n'", "f'{x}'", "None", "True"],
    *[", ", ",", ":", " ", "\n", "# c\n", "(", ")", "[", "]", "{", "}", "\xa0", "\t"],
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(DATA_TOKENS), max_size=12), st.sampled_from("[({"))
def test_data_fast_path_never_accepts_what_cpython_rejects(tokens, opener):
    content = "".join(tokens)
    if guard._plainly_valid(opener, content, 0, len(content)):
        compile(opener + content + {"[": "]", "(": ")", "{": "}"}[opener], "t.py", "eval", dont_inherit=True)
