"""Targeted behaviour of the loop-structure rules beyond their fixtures: fixes, messages, pairing."""

import textwrap

import libcst as cst

from gradlint.rules import RULES_BY_CODE
from gradlint.static.fixer import fix_text
from gradlint.static.testing import lint_snippet

GL006, GL007, GL011, GL012, GL014, GL015, GL017 = (
    RULES_BY_CODE[c] for c in ("GL006", "GL007", "GL011", "GL012", "GL014", "GL015", "GL017")
)


def _codes(code, rule):
    _, diags = lint_snippet(code, [rule])
    return [(d.code, d.location.row) for d in diags]


def _fix(code, rule, unsafe=False):
    text, diags = lint_snippet(code, [rule])
    new, applied, errors = fix_text(text, diags, unsafe=unsafe, rules=[rule])
    assert errors == []
    return new, applied


# -- GL012 ---------------------------------------------------------------------------------


def test_gl012_fix_renames_attribute_and_keyword():
    new, applied = _fix(
        """
        import torch
        for p in model.parameters():
            p.require_grad = False  # freeze
        w = torch.zeros(3, requires_grads=True)
        layer.weight.requires_grad_ = True
        """,
        GL012,
        unsafe=True,
    )
    assert len(applied) == 3
    assert "p.requires_grad = False  # freeze" in new
    assert "torch.zeros(3, requires_grad=True)" in new
    assert "layer.weight.requires_grad = True" in new
    assert _codes(new, GL012) == []


def test_gl012_method_assignment_has_its_own_message():
    _, diags = lint_snippet("import torch\nx.requires_grad_ = False\n", [GL012])
    (d,) = diags
    assert (
        "replaces the in-place method" in d.message and d.fix is not None and d.fix.applicability == "unsafe"
    )


def test_gl012_silent_for_names_the_file_defines_or_non_torch_calls():
    t = "import torch\n"
    assert (
        _codes(t + "def f(require_grad=True):\n    pass\nf(require_grad=False)\nx.require_grad = 1\n", GL012)
        == []
    )
    assert _codes(t + "import foo\nfoo.make(require_grad=True)\n", GL012) == []
    assert _codes(t + "class A:\n    def __init__(self):\n        self.require_grad = True\n", GL012) == []
    assert _codes(t + "if getattr(p, 'require_grad', False):\n    p.require_grad = False\n", GL012) == []
    # the same assignment alone is reported, and a file without torch is left alone
    assert _codes(t + "p.require_grad = False\n", GL012) == [("GL012", 2)]
    assert _codes("p.require_grad = False\n", GL012) == []


# -- GL017 ---------------------------------------------------------------------------------

EVAL = """
import torch as th


def evaluate(model, val_loader):
    model.eval()
    preds = []
    # walk the validation set
    for x, y in val_loader:  # batches
        out = model(x)  # forward
        preds.append(out)
    return preds
"""


def test_gl017_fix_wraps_loop_keeps_comments_and_is_idempotent():
    new, applied = _fix(EVAL, GL017, unsafe=True)
    assert len(applied) == 1
    cst.parse_module(new)
    compile(new, "<fixed>", "exec")
    assert (
        "    # walk the validation set\n    with th.inference_mode():\n        for x, y in val_loader:  # batches\n"
        in new
    )
    assert "            out = model(x)  # forward\n" in new
    assert "    return preds\n" in new
    assert _codes(new, GL017) == []
    again, applied_again = _fix(new, GL017, unsafe=True)
    assert again == new and applied_again == []


def test_gl017_fix_is_unsafe_only():
    new, applied = _fix(EVAL, GL017, unsafe=False)
    assert applied == [] and new == textwrap.dedent(EVAL)


def test_gl017_no_fix_without_a_torch_module_alias():
    _, diags = lint_snippet(
        "from torch import nn\ndef validate(model, val_loader):\n    for x in val_loader:\n        model(x)\n",
        [GL017],
    )
    (d,) = diags
    assert d.fix is None


def test_gl017_reports_model_call_not_criterion_and_once_per_loop():
    code = """
    import torch
    def test(model, test_loader, criterion):
        model.eval()
        for epoch in range(2):
            for x, y in test_loader:
                loss = criterion(model(x), y)
                model(x)
    """
    _, diags = lint_snippet(code, [GL017])
    assert [(d.location.row, d.location.column) for d in diags] == [(7, 30)]


def test_gl017_caller_under_no_grad_silences_helper_two_levels_up():
    code = """
    import torch
    def _loop(model, loader):
        for x in loader:
            model(x)
    def evaluate(model, loader):
        model.eval()
        return _loop(model, loader)
    def main(model, val_loader):
        with torch.no_grad():
            evaluate(model, val_loader)
    """
    assert _codes(code, GL017) == []
    assert _codes(code.replace("with torch.no_grad():", "if True:"), GL017) == []  # `_loop`: no eval evidence
    # One replace renames both the def and the call (both read `_loop(model`).
    flagged = code.replace("with torch.no_grad():", "if True:").replace("_loop(model", "_evaluate_loop(model")
    assert [c for c, _ in _codes(flagged, GL017)] == ["GL017"]


def test_gl017_non_model_calls_are_not_forwards():
    code = """
    import torch
    def validate(model, val_loader, metric):
        for x, y in val_loader:
            metric(x, y)
            print(len(x))
            torch.cat([x, y])
            tokenizer(x)
    """
    assert _codes(code, GL017) == []


def test_gl017_an_evaluation_loader_by_its_constructor():
    # ``valid`` is not named like a loader; dataflow says it is one (a DataLoader built here).
    code = """
    import torch
    from torch.utils.data import DataLoader
    def run(model, valid_set):
        valid = DataLoader(valid_set, batch_size=8)
        for x, y in enumerate(valid):
            out = model(x)
    """
    assert [c for c, _ in _codes(code, GL017)] == ["GL017"]
    assert _codes(code.replace("DataLoader(valid_set, batch_size=8)", "make(valid_set)"), GL017) == []
    assert _codes(code.replace("valid", "train_valid"), GL017) == []


# -- GL006 / GL007 pairing ------------------------------------------------------------------


def test_gl007_message_names_the_backward_line():
    code = """
    for x in loader:
        loss = model(x)
        loss.backward()
        optimizer.zero_grad()
        optimizer.step()
    """
    _, diags = lint_snippet(code, [GL007])
    (d,) = diags
    assert "line 4" in d.message and "`optimizer.step()`" in d.message


def test_gl007_pairs_model_zero_grad_through_optimizer_construction():
    base = """
    import torch
    opt_d = torch.optim.Adam(netD.parameters())
    opt_g = torch.optim.Adam(netG.parameters())
    for real in loader:
        d_loss = netD(real).mean()
        d_loss.backward()
        {model}.zero_grad()
        opt_d.step()
    """
    assert [c for c, _ in _codes(base.format(model="netD"), GL007)] == ["GL007"]
    assert _codes(base.format(model="netG"), GL007) == []


def test_gl006_step_of_scheduler_or_unknown_receiver_is_not_a_step():
    code = """
    for x in loader:
        model(x).backward()
        scheduler.step()
        env.step(action)
    """
    assert _codes(code, GL006) == []


def test_gl006_bound_optimizer_name_counts_even_when_not_named_like_one():
    code = """
    import torch
    solver = torch.optim.SGD(model.parameters(), lr=0.1)
    for x in loader:
        model(x).backward()
        solver.step()
    """
    assert _codes(code, GL006) == [("GL006", 6)]


# -- GL011 / GL014 / GL015 -----------------------------------------------------------------


def test_gl011_follows_attribute_chains_to_the_no_grad_assignment():
    code = """
    import torch
    with torch.no_grad():
        out = model(x)
        loss = out.loss
        loss.backward()
    """
    assert _codes(code, GL011) == [("GL011", 6)]


def test_gl014_is_off_by_default_and_respects_helper_scaling():
    assert GL014.default_enabled is False
    code = """
    def train(model, loader, optimizer, accum):
        for i, (x, y) in enumerate(loader):
            loss_a = model.a(x) / accum
            loss = loss_a + 0
            loss.backward()
            if (i + 1) % accum == 0:
                optimizer.step()
                optimizer.zero_grad()
    """
    assert _codes(code, GL014) == []
    assert _codes(code.replace(" / accum", ""), GL014) == [("GL014", 6)]


def test_gl015_needs_the_forward_before_the_step():
    code = """
    import torch
    opt_d = torch.optim.Adam(D.parameters())
    for real, z in loader:
        fake = G(z)
        d_loss = D(real).mean() - D(fake.detach()).mean()
        {g_before}
        d_loss.backward()
        opt_d.step()
        {g_after}
        g_loss.backward()
    """
    line = "g_loss = -D(fake).mean()"
    assert _codes(code.format(g_before=line, g_after="pass"), GL015) == [("GL015", 9)]
    assert _codes(code.format(g_before="pass", g_after=line), GL015) == []


def test_gl017_fix_keeps_the_file_indentation():
    code = "import torch\ndef validate(model, val_loader):\n  model.eval()\n  for b in val_loader:\n    if b:\n      out = model(b)\n  return out\n"
    new, applied = _fix(code, GL017, unsafe=True)
    assert len(applied) == 1
    assert (
        "  with torch.inference_mode():\n    for b in val_loader:\n      if b:\n        out = model(b)\n  return out\n"
        in new
    )
