"""GL001-GL003 beyond their snippets and fixtures: messages, fixes, prefilters, aliases."""

import textwrap

import pytest

from gradlint.rules.gl001_backward_in_accumulation_loop import BackwardInAccumulationLoop as GL001
from gradlint.rules.gl002_retain_graph_in_accumulation_loop import RetainGraphInAccumulationLoop as GL002
from gradlint.rules.gl003_graph_history_accumulation import GraphHistoryAccumulation as GL003
from gradlint.static.fixer import fix_text
from gradlint.static.testing import lint_snippet

RULES = [GL001, GL002, GL003]


def lint(code, rules=RULES):
    text, diags = lint_snippet(code, rules)
    return text, sorted(diags, key=lambda d: (d.location.row, d.code))


def test_one_finding_per_mistake():
    """An accumulated loss backpropagated in the loop is GL001's, not also GL003's."""
    _, diags = lint(
        """
        loss = 0
        for x, y in loader:
            loss += criterion(model(x), y)
            loss.backward()
        """
    )
    assert [(d.location.row, d.code) for d in diags] == [(5, "GL001")]
    assert "`loss`" in diags[0].message and "graph a second time" in diags[0].message


def test_aliased_autograd_grad_is_seen():
    _, diags = lint(
        """
        from torch.autograd import grad as g
        obj = 0
        for x in loader:
            obj = obj + model(x).sum()
            g(obj, params)
            g(obj, params, retain_graph=True)
        """
    )
    assert [(d.location.row, d.code) for d in diags] == [(6, "GL001"), (7, "GL002")]
    assert "re-adds" not in diags[1].message  # autograd.grad returns fresh gradients


def test_gl002_messages_distinguish_accumulation_from_unused_graph():
    _, diags = lint(
        """
        total = 0
        for x, y in loader:
            total = total + criterion(model(x), y)
            total.backward(retain_graph=True)
        for x, y in loader:
            loss = criterion(model(x), y)
            loss.backward(retain_graph=True)
        """,
        [GL002],
    )
    assert [d.location.row for d in diags] == [5, 8]
    assert "re-adds" in diags[0].message and "never used" in diags[1].message


@pytest.mark.parametrize(
    "line,fixed",
    [
        ("total += loss", "total += loss.detach()"),
        ("total = total + loss * 2", "total = total + (loss * 2).detach()"),
        ("losses.append(loss)", "losses.append(loss.detach())"),
        ("losses += [loss]", "losses += [loss.detach()]"),
        ("d['l'] = d.get('l', 0) + out.loss", "d['l'] = d.get('l', 0) + out.loss.detach()"),
    ],
)
def test_gl003_fix_detaches_the_value(line, fixed):
    code = textwrap.dedent(
        f"""
        total, losses, d = 0, [], {{}}
        for x, y in loader:
            out = model(x)
            loss = criterion(out, y)
            loss.backward()
            {line}
        """
    )
    _, diags = lint(code, [GL003])
    (diag,) = diags
    assert diag.fix is not None and diag.fix.applicability == "safe"
    assert ".item()" in diag.message
    new, applied, errors = fix_text(code, diags, unsafe=False, rules=[GL003])
    assert not errors and applied
    assert fixed in new
    assert lint(new, [GL003])[1] == []


def test_gl003_reported_at_the_accumulation_not_the_loss():
    _, diags = lint(
        """
        def train(model, loader, opt):
            running = 0
            for x, y in loader:
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                running = running + loss
        """,
        [GL003],
    )
    (d,) = diags
    assert (d.location.row, d.location.column) == (8, 9)


@pytest.mark.parametrize(
    "text,matches",
    [
        ("for x in l:\n    loss.backward()\n", True),
        ("from torch.autograd import grad as g\ng(l, p)\n", True),
        ("for x in l:\n    y = x + 1\n", False),
    ],
)
def test_prefilter_gl001_gl002(text, matches):
    assert GL001.could_match(text) is matches and GL002.could_match(text) is matches


def test_prefilter_gl003_needs_accumulation_a_loss_or_model_and_a_loop_context():
    assert GL003.could_match("for b in loader:\n    total += loss\n")
    assert GL003.could_match("for x in val_loader:\n    preds.append(model(x))\n")
    assert GL003.could_match("def training_step(self, b):\n    self.s += F.mse_loss(self(b), b)\n")
    assert not GL003.could_match("for b in loader:\n    total += x\n")
    assert not GL003.could_match("for b in loader:\n    loss = model(x)\n")
    assert not GL003.could_match("for layer in self.layers:\n    hidden = hidden + layer(hidden)  # model\n")


def test_gl001_unsafe_fix_moves_backward_after_the_loop():
    code = textwrap.dedent(
        """
        def f(model, loader, criterion):
            loss = 0
            for x, y in loader:
                # sum the batch losses
                loss += criterion(model(x), y)
                loss.backward()
            return loss
        """
    )
    _, diags = lint(code, [GL001])
    (diag,) = diags
    assert diag.fix is not None and diag.fix.applicability == "unsafe"
    assert fix_text(code, diags, unsafe=False, rules=[GL001])[1] == []
    new, applied, errors = fix_text(code, diags, unsafe=True, rules=[GL001])
    assert not errors and applied
    assert new == textwrap.dedent(
        """
        def f(model, loader, criterion):
            loss = 0
            for x, y in loader:
                # sum the batch losses
                loss += criterion(model(x), y)
            loss.backward()
            return loss
        """
    )


def test_gl001_no_fix_when_the_loop_steps_an_optimizer():
    _, diags = lint(
        """
        loss = 0
        for x, y in loader:
            loss += criterion(model(x), y)
            loss.backward()
            optimizer.step()
        """,
        [GL001],
    )
    (diag,) = diags
    assert diag.fix is None
