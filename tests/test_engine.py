"""The engine on its own: parsing, bad input, crash isolation, noqa, fixes-to-edits."""

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


def test_prefilter_skips_parse_but_not_decoding():
    assert lint("x = (\n") == []  # syntax error, but nothing could match: not parsed
    bad = lint(b"x = '\xff\xfe'\n")
    assert [d.code for d in bad] == ["GL000"] and "decode" in bad[0].message


def test_syntax_error_reported_at_position():
    (d,) = lint("loss.backward(\n")
    assert d.code == "GL000" and d.message.startswith("SyntaxError")


def test_pathological_nesting_is_a_diagnostic_not_a_crash():
    for src in ["x = " + "(" * 5000 + ")" * 5000, "x = " + "1+" * 100000 + "1", "x = a" + ".b" * 20000]:
        (d,) = lint(src + "\nloss.backward()\n")
        assert d.code == "GL000"


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
