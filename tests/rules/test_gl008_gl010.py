"""GL008/GL010 messages: where they point and what they tell the user."""

from gradlint.rules.gl008_rnn_hidden_not_detached import RnnHiddenNotDetached, _rebinds_self_state
from gradlint.rules.gl010_multiple_backward_shared_graph import MultipleBackwardSharedGraph
from gradlint.static.testing import lint_snippet


def test_gl008_points_at_the_rebinding_call_and_names_the_state():
    _, (d,) = lint_snippet(
        """
        for x, y in loader:
            out, (h, c) = lstm(x, (h, c))
            crit(out, y).backward()
        """,
        [RnnHiddenNotDetached],
    )
    assert (d.location.row, d.location.column) == (3, 19)
    assert "`h`" in d.message or "`c`" in d.message
    assert "backward through the graph a second time" in d.message


def test_gl008_module_message_mentions_batches():
    _, (d,) = lint_snippet(
        """
        class M(nn.Module):
            def forward(self, x):
                out, self.hidden = self.lstm(x, self.hidden)
                return out
        """,
        [RnnHiddenNotDetached],
    )
    assert "`self.hidden`" in d.message and "between batches" in d.message


def test_gl008_prefilter_reads_state_rebinding_lines_only():
    assert _rebinds_self_state("        out, self.hidden = self.lstm(x, self.hidden)\n")
    assert _rebinds_self_state("    self.h = self.cell(x, self.h)\n")
    assert not _rebinds_self_state("    self.stages = self.stages[:3]\n")
    assert not RnnHiddenNotDetached.could_match("x = 1\nself.a = f(self.b)\n")


def test_gl010_names_the_first_backward_line():
    _, (d,) = lint_snippet(
        """
        feats = backbone(x)
        a = ce(head_a(feats), y)
        b = ce(head_b(feats), y)
        a.backward()
        b.backward()
        """,
        [MultipleBackwardSharedGraph],
    )
    assert d.location.row == 6 and "line 5" in d.message and "(loss1 + loss2).backward()" in d.message


def test_gl010_wrappers_and_aliases():
    _, diags = lint_snippet(
        """
        import torch as t
        out = model(x)
        l1 = crit(out, y)
        t.autograd.backward(l1)
        self.manual_backward(crit2(out, z))
        """,
        [MultipleBackwardSharedGraph],
    )
    assert [d.location.row for d in diags] == [6]
