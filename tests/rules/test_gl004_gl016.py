"""Targeted tests for GL004/GL005/GL009/GL013/GL016: fixes, messages, prefilters."""

import ast
import textwrap

import pytest

from gradlint.rules import RULES_BY_CODE
from gradlint.static.engine import lint_source

GL004, GL005, GL009, GL013, GL016 = (RULES_BY_CODE[c] for c in ("GL004", "GL005", "GL009", "GL013", "GL016"))


def lint(src, rule):
    return [d for d in lint_source("t.py", src.encode(), [rule]) if d.code == rule.code]


def _offset(lines, loc):
    return sum(len(line) for line in lines[: loc.row - 1]) + loc.column - 1


def apply_fixes(src, diags):
    """Apply every fix once (identical edits once; overlapping ones skipped)."""
    lines = src.splitlines(keepends=True)
    edits = []
    for d in diags:
        if d.fix is None:
            continue
        for e in d.fix.edits:
            edits.append((_offset(lines, e.location), _offset(lines, e.end_location), e.content))
    edits = sorted(set(edits), reverse=True)
    out, last_start = src, None
    for start, end, content in edits:
        if last_start is not None and end > last_start:
            continue
        out = out[:start] + content + out[end:]
        last_start = start
    return out


def fix_until_stable(src, rule, rounds=4):
    src = textwrap.dedent(src)
    for _ in range(rounds):
        new = apply_fixes(src, lint(src, rule))
        if new == src:
            return src
        ast.parse(new)  # every intermediate result must parse
        src = new
    raise AssertionError("fix does not converge:\n" + src)


def assert_fix(rule, before, after):
    fixed = fix_until_stable(before, rule)
    assert fixed == textwrap.dedent(after)
    # A second --fix changes nothing.
    assert apply_fixes(fixed, lint(fixed, rule)) == fixed


# ------------------------------------------------------------------ GL004
def test_gl004_fix_clones_at_the_detach_call():
    assert_fix(
        GL004,
        """
        def f(model, x):
            out = model(x)
            y = out.detach()  # keep this comment
            y[:, :5].mul_(2)
            y += 1
            return out, y
        """,
        """
        def f(model, x):
            out = model(x)
            y = out.detach().clone()  # keep this comment
            y[:, :5].mul_(2)
            y += 1
            return out, y
        """,
    )


def test_gl004_chained_fix_and_message():
    src = "def f(model, x):\n    out = model(x)\n    out.detach().zero_()\n    return out\n"
    (d,) = lint(src, GL004)
    assert "shares its storage" in d.message and ".detach().clone()" in d.message
    assert (d.location.row, d.location.column) == (3, 5)
    # The zeroed copy is discarded: the edit's only effect is on `out`, and a clone would
    # make it dead code (tests/fixer/test_rule_fixes.py has the cases that get a fix).
    assert d.fix is None


def test_gl004_silent_when_nothing_else_holds_the_original():
    temporary = "def f(model, x):\n    model(x).detach().zero_()\n"
    dead = "def f(model, x):\n    out = model(x)\n    y = out.detach()\n    y.zero_()\n    return y\n"
    rebound = "def f(rnn, x, h):\n    h = rnn(x, h)\n    h = h.detach()\n    h.zero_()\n    return h\n"
    for src in (temporary, dead, rebound):
        assert lint(src, GL004) == [], src


def test_gl004_alias_survives_loops_but_not_rebinding():
    src = textwrap.dedent(
        """
        def f(model, xs):
            for x in xs:
                out = model(x)
                y = out.detach()
                for _ in range(3):
                    y.add_(1)
                y = y.clone()
                y.add_(1)
                out.sum().backward()
        """
    )
    assert [d.location.row for d in lint(src, GL004)] == [7]


# ------------------------------------------------------------------ GL005
def test_gl005_read_fix_uses_detach():
    assert_fix(
        GL005,
        """
        def f(model, x):
            out = model(x)
            feats = out.data.cpu()
            return feats
        """,
        """
        def f(model, x):
            out = model(x)
            feats = out.detach().cpu()
            return feats
        """,
    )


def test_gl005_inplace_fixes_go_out_of_place():
    assert_fix(
        GL005,
        """
        def f(G, z, a, b):
            delta = G(z)
            delta.data += a - b
            delta.data.mul_(2)
            delta.data.zero_()
            return delta
        """,
        """
        def f(G, z, a, b):
            delta = G(z)
            delta = delta + (a - b)
            delta = delta.mul(2)
            delta.data.zero_()
            return delta
        """,
    )
    src = "def f(G, z):\n    d = G(z)\n    d.data.zero_()\n"
    (d,) = lint(src, GL005)
    assert d.fix is None  # no mechanical out-of-place form


def test_gl005_message_names_the_tensor():
    (d,) = lint("def f(net, x):\n    y = net(x)\n    return y.data\n", GL005)
    assert "`y`" in d.message and "detach" in d.message


# ------------------------------------------------------------------ GL016
def test_gl016_is_off_by_default_and_fixes_with_no_grad():
    assert GL016.default_enabled is False
    assert_fix(
        GL016,
        """
        import torch


        def clip(critic):
            for p in critic.parameters():
                p.data.clamp_(-0.01, 0.01)  # WGAN


        def sgd(model, lr):
            for p in model.parameters():
                p.data.add_(p.grad.data, alpha=-lr)
        """,
        """
        import torch


        def clip(critic):
            with torch.no_grad():
                for p in critic.parameters():
                    p.clamp_(-0.01, 0.01)  # WGAN


        def sgd(model, lr):
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(p.grad, alpha=-lr)
        """,
    )


def test_gl016_inside_no_grad_just_drops_data_and_reads_get_no_fix():
    assert_fix(
        GL016,
        """
        import torch as th
        def init(m):
            with th.no_grad():
                m.weight.data.normal_(0.0, 0.02)
        """,
        """
        import torch as th
        def init(m):
            with th.no_grad():
                m.weight.normal_(0.0, 0.02)
        """,
    )
    (d,) = lint(
        "import torch\ndef f(model):\n    for p in model.parameters():\n        s = p.data.clone()\n", GL016
    )
    assert d.fix is None and "parameter" in d.message


def test_gl016_without_torch_import_has_no_fix():
    (d,) = lint("def init(m):\n    m.weight.data.normal_(0.0, 0.02)\n", GL016)
    assert d.fix is None


# ------------------------------------------------------------------ GL013
def test_gl013_fix_wraps_in_no_grad_and_goes_silent():
    assert_fix(
        GL013,
        """
        import torch
        w = torch.randn(3, requires_grad=True)
        for step in range(10):
            loss = (w ** 2).sum()
            loss.backward()
            w -= 0.1 * (
                w.grad
            )  # update
            w.grad.zero_()
        """,
        """
        import torch
        w = torch.randn(3, requires_grad=True)
        for step in range(10):
            loss = (w ** 2).sum()
            loss.backward()
            with torch.no_grad():
                w -= 0.1 * (
                    w.grad
                )  # update
            w.grad.zero_()
        """,
    )


def test_gl013_needs_backward_evidence_for_parameters():
    helper = "def init(model):\n    for p in model.parameters():\n        p.uniform_(-0.1, 0.1)\n"
    assert lint(helper, GL013) == []
    step = "def step(model, loss):\n    loss.backward()\n    for p in model.parameters():\n        p.sub_(p.grad)\n"
    (d,) = lint(step, GL013)
    assert "leaf Variable" in d.message and d.fix is None  # no torch import: no fix


def test_gl013_silent_under_inference_mode_and_enable_grad_restores():
    src = textwrap.dedent(
        """
        import torch
        w = torch.ones(2, requires_grad=True)
        with torch.inference_mode():
            w.add_(1)
        with torch.no_grad():
            with torch.enable_grad():
                w.add_(1)
        """
    )
    assert [d.location.row for d in lint(src, GL013)] == [8]


# ------------------------------------------------------------------ GL009
def test_gl009_reports_reads_only():
    src = textwrap.dedent(
        """
        def f(model, x):
            out = model(x)
            out.sum().backward()
            out.grad = None
            del out.grad
            out.grad.zero_()
            return out.grad
        """
    )
    (d,) = lint(src, GL009)
    assert d.location.row == 8 and "retain_grad" in d.message


def test_gl009_moved_leaf_message():
    src = "import torch\nx = torch.randn(3, requires_grad=True).cuda()\nx.sum().backward()\nprint(x.grad)\n"
    (d,) = lint(src, GL009)
    assert "`x` is not a leaf" in d.message


# ------------------------------------------------------------------ prefilters
@pytest.mark.parametrize(
    "rule,text,expected",
    [
        (GL004, "y = x.detach()\n", False),
        (GL004, "y = x.detach()\ny.add_(1)\n", True),
        (GL005, "x.database = 1\n", False),
        (GL005, "x.data\n", True),
        (GL009, "torch.autograd.grad(l, p)\nx.grad_fn\n", False),
        (GL009, "x.grad\n", True),
        (GL013, "w.add_(1)\n", False),
        (GL013, "w = torch.ones(1, requires_grad=True)\nw.add_(1)\n", True),
        (GL016, "x.data_ptr()\n", False),
    ],
)
def test_prefilters(rule, text, expected):
    assert rule.could_match(text) is expected
