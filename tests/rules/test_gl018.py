"""GL018 (retain-graph-workaround): each verdict's message, the fix, and the shapes it must leave alone."""

import subprocess
import sys
import textwrap
from pathlib import Path

from gradlint.rules.gl018_retain_graph_workaround import RetainGraphWorkaround
from gradlint.static.fixer import fix_text
from gradlint.static.testing import lint_snippet

ROOT = Path(__file__).resolve().parents[2]


def apply_fixes(code, diags):
    new, applied, errors = fix_text(code, diags, unsafe=True, rules=[RetainGraphWorkaround])
    assert applied and not errors
    return new


def findings(code):
    _, diags = lint_snippet(code, [RetainGraphWorkaround])
    return [(d.location.row, d.message) for d in diags]


def test_last_backward_before_step_names_the_step_and_the_target():
    [(row, msg)] = findings(
        """
        for x, y in loader:
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward(retain_graph=True)
            optimizer.step()
        """
    )
    assert row == 5
    assert "last backward before `optimizer.step()` (line 6)" in msg
    assert "until `loss` is rebound" in msg and "drop `retain_graph=True`" in msg


def test_only_the_last_of_several_retaining_backward_calls_is_reported():
    got = findings(
        """
        for real_a, real_b in loader:
            g_loss, d_loss = model(real_a, real_b)
            g_loss.backward(retain_graph=True)
            d_loss.backward(retain_graph=True)
            opt_G.step()
            opt_D.step()
        """
    )
    assert [row for row, _ in got] == [5]


def test_term_built_before_the_loop_through_helper_methods():
    [(row, msg)] = findings(
        """
        class Model:
            def forward(self):
                self.fake_B = self.netG(self.real_A)

            def backward_D(self):
                self.loss_D = self.netD(self.fake_B).mean()
                self.loss_D.backward(retain_graph=True)

            def optimize_parameters(self):
                self.forward()
                for _ in range(5):
                    self.optimizer_D.zero_grad()
                    self.backward_D()
                    self.optimizer_D.step()
        """
    )
    assert row == 8
    assert "`self.fake_B` (line 4), built once before the loop on line 12" in msg
    assert "`self.fake_B.detach()`" in msg


def test_stale_input_fed_to_a_fresh_forward_after_the_step():
    [(row, msg)] = findings(
        """
        opt_EG = Adam(list(E.parameters()) + list(G.parameters()))
        opt_D = Adam(D.parameters())
        for frames, marks in loader:
            e_hat = E(frames)
            loss = crit(G(marks, e_hat), frames) + crit(D(G(marks, e_hat)), ones)
            loss.backward(retain_graph=True)
            opt_EG.step()
            loss_D = crit(D(G(marks, e_hat)), zeros)
            loss_D.backward()
            opt_D.step()
        """
    )
    assert row == 7
    assert "backward on line 10" in msg and "`e_hat` (line 5)" in msg
    assert "before `opt_EG.step()` (line 8)" in msg and "fed into `G(marks, e_hat)`" in msg


def test_stale_input_is_silent_when_the_step_did_not_touch_its_producer():
    assert not findings(
        """
        opt_E = Adam(encoder.parameters())
        for a, b in loader:
            fake = generator(a)
            loss = crit(fake, b)
            loss.backward(retain_graph=True)
            opt_E.step()
            mu = encoder(fake)
            mu.mean().backward()
        """
    )


def test_stale_input_is_silent_when_the_optimizer_is_unknown():
    assert not findings(
        """
        def step(E, G, optimizer, loader):
            for x in loader:
                h = E(x)
                loss = G(h).mean()
                loss.backward(retain_graph=True)
                optimizer.step()
                G(h).sum().backward()
        """
    )


def test_closure_and_its_fix():
    code = textwrap.dedent(
        """\
        def closure():
            optimizer.zero_grad()
            loss = F.mse_loss(model(x), y)
            loss.backward(retain_graph=True)
            return loss
        optimizer.step(closure)
        """
    )
    _, diags = lint_snippet(code, [RetainGraphWorkaround])
    [d] = diags
    assert "optimizer closure `closure`" in d.message and "(line 6)" in d.message
    assert d.fix is not None and d.fix.applicability == "unsafe"
    fixed = apply_fixes(code, [d])
    assert "loss.backward()" in fixed and "retain_graph" not in fixed


def test_fix_keeps_other_arguments():
    code = "for x in loader:\n    loss = model(x)\n    loss.backward(gradient=g, retain_graph=True)\n    opt.step()\n"
    _, [d] = lint_snippet(code, [RetainGraphWorkaround])
    assert "loss.backward(gradient=g)" in apply_fixes(code, [d])


def test_no_fix_where_the_graph_is_reused():
    code = textwrap.dedent(
        """
        feats = encoder(images)
        for _ in range(10):
            loss = F.cross_entropy(head(feats), labels)
            loss.backward(retain_graph=True)
            optimizer.step()
        """
    )
    _, [d] = lint_snippet(code, [RetainGraphWorkaround])
    assert d.fix is None


def test_recall_script_scores_bugs_and_look_alikes(tmp_path):
    files = tmp_path / "files"
    (files / "a").mkdir(parents=True)
    (files / "a" / "train.py").write_text(
        "for x, y in loader:\n"
        "    loss = criterion(model(x), y)\n"
        "    loss.backward(retain_graph=True)\n"
        "    optimizer.step()\n"
    )
    (files / "a" / "ok.py").write_text(
        "for x, y in loader:\n    loss = model(x)\n    loss.backward()\n    opt.step()\n"
    )
    bugs = tmp_path / "bugs.jsonl"
    bugs.write_text(
        '{"pattern": "P2", "label": "bug", "key_lines": "3", "local": "a/train.py"}\n'
        '{"pattern": "P2", "label": "ok", "key_lines": "3", "local": "a/ok.py"}\n'
        '{"pattern": "P3", "label": "bug", "key_lines": "2", "local": "a/train.py"}\n'
        '{"pattern": "P1", "label": "bug", "key_lines": "1", "local": "gone.py", "exclude": "no file"}\n'
    )
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "recall.py"), str(bugs), str(files), "--select", "ALL"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "recall 1/2 = 0.50" in out
    assert "retain_graph (P2): 1/1" in out
    assert "ok look-alikes flagged by the pattern's rule: 0/1" in out
    assert "P3 bug a/train.py:2" in out  # listed as missed


def test_silent_when_a_backward_after_the_loop_reuses_the_last_graph():
    assert not findings(
        """
        for x, y in loader:
            loss = criterion(model(x), y)
            loss.backward(retain_graph=True)
            optimizer.step()
        (loss * 2).backward()
        """
    )


def test_one_diagnostic_where_gl002_reports_the_same_call():
    from gradlint.rules import RULES_BY_CODE

    code = """
    for x, y in train_loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward(retain_graph=True)
        optimizer.step()
    """
    _, alone = lint_snippet(code, [RetainGraphWorkaround])
    _, both = lint_snippet(code, [RetainGraphWorkaround, RULES_BY_CODE["GL002"]])
    assert [d.code for d in alone] == ["GL018"]
    assert len(both) == 1
