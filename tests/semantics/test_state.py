"""semantics/state.py: graph reads, loop-carried state (GL008) and shared graphs (GL010)."""

import textwrap

import libcst as cst

from gradlint.static.rule import FileContext
from gradlint.static.semantics.imports import ImportMap
from gradlint.static.semantics.reads import graph_reads
from gradlint.static.semantics.state import (
    RecurrentState,
    Sanitisers,
    SharedGraphs,
    is_graph_origin,
)


def ctx(src):
    src = textwrap.dedent(src)
    return FileContext("t.py", src, cst.parse_module(src))


def reads(expr, module_src=""):
    san = Sanitisers(cst.parse_module(module_src))
    return graph_reads(cst.parse_expression(expr), san.reads)


def state_findings(src):
    c = ctx(src)
    return [(c.position(f.call).start.line, f.var, f.kind) for f in c.analysis(RecurrentState).findings]


def shared_findings(src):
    c = ctx(src)
    out = []
    for f in c.analysis(SharedGraphs).findings:
        first = c.position(f.first).start.line if f.first is not None else None
        out.append((c.position(f.call).start.line, first, f.loss, f.kind))
    return out


# -- graph_reads -----------------------------------------------------------------


def test_detach_and_data_cut_the_graph():
    assert reads("h.detach()") == set()
    assert reads("h.data") == set()
    assert reads("(h[0].detach(), h[1].detach())") == set()
    assert reads("tuple(s.detach() for s in state)") == set()
    assert reads("[s.detach() for s in h]") == set()
    assert reads("tuple(map(lambda s: s.detach(), state))") == set()
    assert reads("repackage_hidden(h)") == set()
    assert reads("h.size(0) + len(h)") == set()


def test_graph_flows_through_calls_and_comprehensions():
    assert reads("rnn(x, (h, c))") == {"x", "h", "c"}
    assert reads("h.clone() * 2") == {"h"}
    assert reads("self.lstm(x, self.hidden)") == {"x", "self.hidden"}
    # the loop variable is only called (a module), so the iterable carries nothing
    assert reads("[crit(out, y) for crit in crits]") == {"out", "y"}
    assert reads("tuple(s * 2 for s in state)") == {"state"}
    # a module's method receiver is an object, not a graph
    assert reads("model.encode(x)") == {"x"}


def test_in_file_helper_that_detaches_is_a_sanitiser():
    helper = "def cut(state):\n    return [s.detach() for s in state]\n"
    assert reads("cut(h)", helper) == set()
    assert reads("keep(h)", helper) == {"h"}


def test_graph_origin_is_a_model_call_not_data_or_torch():
    c = ctx("import torch\n")
    imports, san = ImportMap(c), Sanitisers(c.module)
    origin = lambda e: is_graph_origin(cst.parse_expression(e), imports, san)  # noqa: E731
    assert origin("model(x)") and origin("self.backbone(x)") and origin("D(fake)")
    assert not origin("x.to(device).float()")
    assert not origin("torch.zeros(3)")
    assert not origin("tokenizer(text)")
    assert not origin("MyModel()")


# -- GL008 -------------------------------------------------------------------------


def test_loop_state_rebound_across_backward_is_found():
    src = """
    def train():
        h = model.init_hidden(4)
        for x, y in loader:
            out, h = model(x, h)
            loss = crit(out, y)
            loss.backward()
    """
    assert state_findings(src) == [(5, "h", "loop")]


def test_cut_anywhere_on_the_cycle_silences():
    for cut in [
        "h = h.detach()",
        "h.detach_()",
        "h = repackage_hidden(h)",
        "h = model.init_hidden(4)",
        "h = None",
        "h = tuple(s.detach() for s in h)",
    ]:
        src = f"""
        for x, y in loader:
            out, h = model(x, h)
            crit(out, y).backward()
            {cut}
        """
        assert state_findings(src) == [], cut


def test_backward_must_lie_between_rebinding_and_next_use():
    # backward per outer iteration, state re-created per outer iteration: fine
    ok = """
    for seq, y in data:
        h = None
        for t in range(len(seq)):
            h = cell(seq[t], h)
        crit(h, y).backward()
    """
    # state created once per epoch, backward per batch: the batches chain
    bad = """
    for epoch in range(3):
        h = None
        for x, y in loader:
            out, h = model(x, h)
            crit(out, y).backward()
    """
    assert state_findings(ok) == []
    assert state_findings(bad) == [(5, "h", "loop")]


def test_loss_unrelated_to_the_state_frees_nothing():
    src = """
    for x, y in loader:
        z, state = world_model(x, state)
        loss = crit(policy(x), y)
        loss.backward()
    """
    assert state_findings(src) == []


def test_retained_or_unknown_retain_graph_frees_nothing():
    for flag in ["retain_graph=True", "retain_graph=keep"]:
        src = f"""
        for x in xs:
            h = cell(x, h)
            crit(h).backward({flag})
        """
        assert state_findings(src) == [], flag


def test_no_grad_loop_is_not_training():
    src = """
    import torch
    with torch.no_grad():
        for x in xs:
            h = cell(x, h)
            crit(h).backward()
    """
    assert state_findings(src) == []


def test_alias_rebinding_reports_the_call_that_reads_the_state():
    src = """
    for x, y in loader:
        out, new_h = model(x, h)
        h = new_h
        crit(out, y).backward()
    """
    assert state_findings(src) == [(3, "h", "loop")]


def test_module_state_needs_a_cut_somewhere_in_the_class():
    bad = """
    class M(nn.Module):
        def forward(self, x):
            out, self.hidden = self.lstm(x, self.hidden)
            return out
    """
    ok = (
        bad
        + """
        def reset(self):
            self.hidden = None
    """
    )
    assert state_findings(bad) == [(4, "self.hidden", "module")]
    assert state_findings(ok) == []


def test_module_state_reset_from_outside_the_class():
    src = """
    class M(nn.Module):
        def forward(self, x):
            self.h = self.cell(x, self.h)
            return self.h
    for x in xs:
        model.h = None
        model(x).sum().backward()
    """
    assert state_findings(src) == []


def test_module_state_in_inference_methods_is_ignored():
    src = """
    class M(nn.Module):
        def generate(self, x):
            out, self.hidden = self.lstm(x, self.hidden)
            return out
    """
    assert state_findings(src) == []


# -- GL010 -------------------------------------------------------------------------


def test_second_backward_through_shared_output():
    src = """
    out = model(x)
    a = ce(out, y)
    b = mse(out, z)
    a.backward()
    b.backward()
    """
    assert shared_findings(src) == [(6, 5, "b", "sequence")]


def test_recomputed_forward_is_a_fresh_graph():
    src = """
    out = model(x)
    ce(out, y).backward()
    out = model(x)
    ce(out, y).backward()
    """
    assert shared_findings(src) == []


def test_detached_input_is_not_shared():
    src = """
    fake = G(z)
    d = bce(D(fake.detach()), 0)
    d.backward()
    g = bce(D(fake), 1)
    g.backward()
    """
    assert shared_findings(src) == []


def test_create_graph_retains():
    src = """
    from torch.autograd import grad
    out = D(x)
    g = grad(out, x, create_graph=True)[0]
    (out + g.norm()).backward()
    """
    assert shared_findings(src) == []


def test_inputs_and_parameters_are_not_graphs():
    src = """
    x = batch["x"].cuda()
    w = model.weight
    m1(x, w).sum().backward()
    m2(x, w).sum().backward()
    """
    assert shared_findings(src) == []


def test_loop_over_losses_needs_a_common_intermediate():
    shared = """
    out = model(x)
    losses = [l1(out), l2(out)]
    for loss in losses:
        loss.backward()
    """
    disjoint = """
    losses = [l1(m1(x)), l2(m2(x))]
    for loss in losses:
        loss.backward()
    """
    assert shared_findings(shared) == [(5, None, "loss", "loop")]
    assert shared_findings(disjoint) == []


def test_branches_do_not_leak_frees():
    src = """
    out = model(x)
    if a:
        ce(out, y).backward()
    else:
        mse(out, y).backward()
    """
    assert shared_findings(src) == []


def test_factories_and_integer_results_carry_no_graph():
    assert reads("torch.randn_like(reference)") == set()
    assert reads("torch.randn((2, *input_size))") == set()
    assert reads("logits.argmax(-1)") == set()
    assert reads("np.asarray(out)") == set()
    assert reads("torch.cat([a, b])") == {"a", "b"}


def test_functions_called_by_name_are_helpers_not_modules():
    c = ctx("from utils import patchify\ndef make_inputs(x):\n    return x\n")
    imports, san = ImportMap(c), Sanitisers(c.module)
    origin = lambda e: is_graph_origin(cst.parse_expression(e), imports, san)  # noqa: E731
    assert not origin("patchify(images)") and not origin("make_inputs(x)")
    assert origin("net(images)")


def test_module_state_through_a_helper_method_is_a_cache():
    src = """
    class PosEnc(nn.Module):
        def extend(self, x, pe):
            return torch.zeros(x.size(1))
        def forward(self, x):
            self.pe = self.extend(x, self.pe)
            return x + self.pe
    """
    assert state_findings(src) == []


def test_object_names_hold_no_graph_but_model_outputs_do():
    src = """
    model_output = model(x)
    l1 = ce(model_output, y)
    l2 = mse(model_output, z)
    l1.backward()
    l2.backward()
    """
    assert [f[0] for f in shared_findings(src)] == [6]
    objects = """
    ddp_model = wrap(model(x))
    compute(ddp_model, x).backward()
    compute(ddp_model, y).backward()
    """
    assert shared_findings(objects) == []
