"""Issue 11: the right diagnosis, the user's line and the right fix; no finding on the correct variant."""

import warnings

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from runtime_markers import markers_in, only  # noqa: E402

import gradlint  # noqa: E402
from gradlint.runtime import BackwardThroughFreedGraphError, InplaceOnSavedTensorError  # noqa: E402

line_of = markers_in(__file__)


def clean(t):
    assert t.findings == [], [str(f) for f in t.findings]


# ----------------------------------------------------------------------------- 1. optimizer.step() as the cause


def _gan(step_between):
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 4))
    D = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    optD = torch.optim.SGD(D.parameters(), lr=0.1)
    optG = torch.optim.SGD(G.parameters(), lr=0.1)
    t = gradlint.trace()
    with pytest.raises(InplaceOnSavedTensorError) if step_between else warnings.catch_warnings():
        with t:
            for _ in range(2):
                fake = G(torch.randn(8, 4))
                d_out = D(fake)  # <dforward>
                lossD = d_out.mean()
                optD.zero_grad()
                lossD.backward(retain_graph=True)
                if step_between:
                    optD.step()  # <dstep>
                lossG = -d_out.mean()
                optG.zero_grad()
                lossG.backward()  # <gbackward>
                optG.step()
                if not step_between:
                    optD.step()
    return t


def test_gr004_by_optimizer_step_names_step_parameter_and_forward(tmp_path):
    t = _gan(step_between=True)
    f = only(t, "GR004")
    assert f.line == line_of("gbackward")
    assert f.details["op"] == "optimizer.step()"
    assert f.details["parameter"] == "D.2.weight"
    assert f.details["step"]["line"] == line_of("dstep")
    assert f.details["saved_at"]["line"] == line_of("dforward")
    assert "`D.2.weight`" in f.message and "optimizer.step()" in f.message
    assert "compute the second loss after the step" in f.message
    assert "`.clone()`" not in f.message
    # the raised GR004 reaches the JSON (a CI job reads it), and no GR001 for the graph that backward used
    t.save_json(tmp_path / "r.json")
    import json

    rep = json.loads((tmp_path / "r.json").read_text())
    assert [x["code"] for x in rep["findings"]] == ["GR004"]
    assert rep["exception"]["type"] == "InplaceOnSavedTensorError"


def test_gan_stepping_after_both_backward_calls_is_clean():
    clean(_gan(step_between=False))


def test_gr004_gru_retain_graph_and_step_names_the_weight():
    torch.manual_seed(0)
    rnn = nn.GRU(3, 5)
    opt = torch.optim.SGD(rnn.parameters(), lr=0.1)
    h = torch.zeros(1, 2, 5)
    with pytest.raises(InplaceOnSavedTensorError), gradlint.trace() as t:
        for _ in range(3):
            out, h = rnn(torch.randn(4, 2, 3), h)
            opt.zero_grad()
            out.sum().backward(retain_graph=True)  # <gru_backward>
            opt.step()
    f = only(t, "GR004")
    assert f.details["op"] == "optimizer.step()"
    assert f.details["parameter"].startswith("rnn.weight_")
    assert f.line == line_of("gru_backward")


# ----------------------------------------------------------------------------- 2. recurrent state


@pytest.mark.parametrize("cell", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("batch_first", [False, True])
def test_gr003_recurrent_state_named_with_detach_fix(cell, layers, batch_first):
    torch.manual_seed(0)
    rnn = getattr(nn, cell)(3, 5, num_layers=layers, batch_first=batch_first)
    head = nn.Linear(5, 1)
    opt = torch.optim.SGD([*rnn.parameters(), *head.parameters()], lr=0.01)
    shape = (2, 4, 3) if batch_first else (4, 2, 3)
    if cell == "LSTM":
        state = (torch.zeros(layers, 2, 5), torch.zeros(layers, 2, 5))
    else:
        state = torch.zeros(layers, 2, 5)
    with pytest.raises(BackwardThroughFreedGraphError), gradlint.trace() as t:
        for _ in range(3):
            out, state = rnn(torch.randn(*shape), state)
            loss = head(out).pow(2).mean()
            opt.zero_grad()
            loss.backward()  # <rnn_backward>
            opt.step()
    f = only(t, "GR003")
    assert f.line == line_of("rnn_backward")
    assert f.details["cause"] == "carried-state"
    assert f.details["holder"] == "state"
    if cell == "LSTM":
        assert "`state = tuple(s.detach() for s in state)`" in f.message
    else:
        assert "`state = state.detach()`" in f.message
    assert f.message.startswith("Trying to backward through the graph a second time")


@pytest.mark.parametrize("cell", ["GRU", "LSTM"])
def test_recurrent_state_detached_is_clean(cell):
    rnn = getattr(nn, cell)(3, 5)
    opt = torch.optim.SGD(rnn.parameters(), lr=0.01)
    h = None
    with gradlint.trace() as t:
        for _ in range(3):
            out, h = rnn(torch.randn(4, 2, 3), h)
            h = tuple(s.detach() for s in h) if isinstance(h, tuple) else h.detach()
            opt.zero_grad()
            out.pow(2).mean().backward()
            opt.step()
    clean(t)


def test_gr003_hidden_and_cell_named_when_unpacked():
    lstm = nn.LSTM(3, 5)
    opt = torch.optim.SGD(lstm.parameters(), lr=0.01)
    h, c = torch.zeros(1, 2, 5), torch.zeros(1, 2, 5)
    with pytest.raises(BackwardThroughFreedGraphError), gradlint.trace() as t:
        for _ in range(3):
            out, (h, c) = lstm(torch.randn(4, 2, 3), (h, c))
            opt.zero_grad()
            out.mean().backward()
            opt.step()
    f = only(t, "GR003")
    assert f.details["cause"] == "carried-state"
    assert "h.detach()" in f.message and "c.detach()" in f.message


# ----------------------------------------------------------------------------- 3. false alarms


class LayerDrop(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(6, 6) for _ in range(4))

    def forward(self, x, keep):
        for i, layer in enumerate(self.layers):
            if keep[i]:
                x = x + layer(x)
        return x


class MoE(nn.Module):
    def __init__(self):
        super().__init__()
        self.gate = nn.Linear(6, 3)
        self.experts = nn.ModuleList(nn.Linear(6, 6) for _ in range(3))

    def forward(self, x, e):
        return self.experts[e](x) * self.gate(x).softmax(-1)[:, e : e + 1]


class MultiTask(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(6, 6)
        self.heads = nn.ModuleList(nn.Linear(6, 1) for _ in range(3))

    def forward(self, x, task):
        return self.heads[task](self.body(x))


@pytest.mark.parametrize("kind", ["layerdrop", "moe", "multitask"])
def test_gr006_not_raised_for_parameters_idle_by_design(kind):
    torch.manual_seed(0)
    model = {"layerdrop": LayerDrop, "moe": MoE, "multitask": MultiTask}[kind]()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with gradlint.trace() as t:
        for i in range(6):
            x = torch.randn(4, 6)
            if kind == "layerdrop":
                out = model(x, keep=[(i + j) % 2 == 0 for j in range(4)])
            else:
                out = model(x, i % 3)
            opt.zero_grad()
            out.pow(2).mean().backward()
            opt.step()
    clean(t)


def test_gr006_head_never_trained_is_reported_at_the_backward():
    model = MultiTask()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with gradlint.trace() as t:
        for i in range(4):
            opt.zero_grad()
            model(torch.randn(4, 6), i % 2).mean().backward()  # <mt_backward>
            opt.step()
    f = only(t, "GR006")
    assert f.details["parameters"] == ["heads.2.weight", "heads.2.bias"]
    assert "model.heads.2.weight" in f.message
    assert f.line == line_of("mt_backward") and f.filename


def test_gr006_not_raised_for_heads_a_crashed_run_never_reached():
    model = MultiTask()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with pytest.raises(ValueError), gradlint.trace() as t:
        for i in range(3):
            opt.zero_grad()
            model(torch.randn(4, 6), i % 3).mean().backward()
            opt.step()
            if i == 1:
                raise ValueError("data loader failed")
    clean(t)
    assert t.report()["exception"]["type"] == "ValueError"


def test_gr001_not_raised_when_next_backward_consumes_retained_graph():
    model = nn.Sequential(nn.Linear(6, 6), nn.Tanh())
    ha, hb = nn.Linear(6, 1), nn.Linear(6, 1)
    opt = torch.optim.SGD([*model.parameters(), *ha.parameters(), *hb.parameters()], lr=0.01)
    with gradlint.trace() as t:
        for _ in range(3):
            h = model(torch.randn(4, 6))
            la, lb = ha(h).mean(), hb(h).pow(2).mean()
            opt.zero_grad()
            la.backward(retain_graph=True)
            lb.backward()
            opt.step()
    clean(t)


def test_gr001_not_raised_for_maml_create_graph():
    torch.manual_seed(0)
    w = torch.randn(6, 1, requires_grad=True)
    meta = torch.optim.SGD([w], lr=0.01)
    with gradlint.trace() as t:
        for _ in range(3):
            meta.zero_grad()
            total = 0
            for _ in range(2):
                x = torch.randn(4, 6)
                inner = (x @ w).pow(2).mean()
                (g,) = torch.autograd.grad(inner, w, create_graph=True)
                fast = w - 0.1 * g
                total = total + (torch.randn(4, 6) @ fast).pow(2).mean()
            total.backward()
            meta.step()
    clean(t)


def test_gr001_create_graph_never_used_names_the_call():
    w = torch.randn(6, 1, requires_grad=True)
    with gradlint.trace() as t:
        x = torch.randn(4, 6)
        inner = (x @ w).pow(2).mean()
        (g,) = torch.autograd.grad(inner, w, create_graph=True)  # <cg>
    f = only(t, "GR001")
    assert f.line == line_of("cg")
    assert "`torch.autograd.grad(..., create_graph=True)`" in f.message
    assert "backward(retain_graph=True)" not in f.message


# ----------------------------------------------------------------------------- 4. what the messages say


def test_gr003_repeated_backward_on_one_line_is_not_called_accumulation():
    x = torch.randn(3, requires_grad=True)
    with pytest.raises(BackwardThroughFreedGraphError), gradlint.trace() as t:
        y = (x * x).sum()
        y.backward()
        y.backward()  # noqa: E702  # <twice>
    f = only(t, "GR003")
    assert f.line == line_of("twice")
    assert f.details["cause"] == "repeated-backward"
    assert "accumulat" not in f.message and "+=" not in f.message
    assert "retain_graph=True` to the first one" in f.message
    assert f.message.startswith("Trying to backward through the graph a second time")


def test_gr003_accumulation_written_as_the_user_wrote_it():
    model = nn.Linear(4, 1)
    with pytest.raises(BackwardThroughFreedGraphError), gradlint.trace() as t:
        loss = torch.zeros(())
        for _ in range(3):
            loss = loss + model(torch.randn(2, 4)).pow(2).mean()
            loss.backward()
    f = only(t, "GR003")
    assert f.details["cause"] == "accumulation"
    assert "`loss = loss + ...`" in f.message and "loss +=" not in f.message


def test_gr002_list_holder_fix_appends_a_number():
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    history = []
    with gradlint.trace() as t:
        for _ in range(4):
            loss = model(torch.randn(2, 4)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            history.append(loss)
    f = only(t, "GR002")
    assert f.details["holder"] == "history"
    assert "`history.append(loss.item())`" in f.message and "history +=" not in f.message


def test_gc_line_is_where_the_graph_died():
    x = torch.randn(4, 4, requires_grad=True)
    with gradlint.trace() as t:
        a = (x * 2).sigmoid().sum()
        a.backward(retain_graph=True)
        del a  # <del>
        y = x.sum()  # noqa: F841
        z = y * 3  # noqa: F841
    fr = [g.freed for g in t.graphs if g.freed]
    assert fr and fr[0]["by"] == "gc" and fr[0]["line"] == line_of("del")


def test_header_counts_agree_with_the_rows():
    model = nn.Linear(4, 1)
    with gradlint.trace() as t:
        for _ in range(3):
            model(torch.randn(2, 4)).sum().backward()
            t.step()
    text = str(t)
    rows = [ln for ln in text.split("Graphs (")[1].split("\n\n")[0].splitlines()[2:] if ln.strip()]
    assert f"{len(t.graphs)} graphs recorded" in text.splitlines()[0]
    # alike graphs share a row that says how many: every graph is counted once
    assert sum(int(r.split()[2]) for r in rows) == len(t.graphs)


# ----------------------------------------------------------------------------- 5. warnings


def test_warnings_keep_the_users_file_and_line_and_none_is_swallowed():
    def run():
        x = torch.randn(3, requires_grad=True)
        y = x * 2
        _ = y.grad  # <w1>
        z = x * 3
        _ = z.grad  # <w2>
        w = x * 4
        _ = w.grad  # <w3>

    with warnings.catch_warnings(record=True) as plain:
        warnings.simplefilter("default")
        run()
    with warnings.catch_warnings(record=True) as traced:
        warnings.simplefilter("default")
        with gradlint.trace():
            run()
    lines = [line_of("w1"), line_of("w2"), line_of("w3")]
    assert [w.lineno for w in plain] == lines
    assert [w.lineno for w in traced] == lines
    assert all(w.filename == __file__ for w in traced)


# ----------------------------------------------------------------------------- 6./7. compile, closures, threads


def test_compiled_model_runs_without_graph_breaks_and_the_report_says_what_it_cannot_see():
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    ref = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    ref.load_state_dict(model.state_dict())
    compiled = torch.compile(model, backend="aot_eager")
    x = torch.randn(4, 8)
    with gradlint.trace() as t:
        for _ in range(3):
            loss = compiled(x).pow(2).mean()
            loss.backward()
    ref(x).pow(2).mean().backward()
    assert dict(counters["graph_break"]) == {}
    assert counters["stats"]["unique_graphs"] == 1
    assert torch.equal(model[0].weight.grad, 3 * ref[0].weight.grad) or torch.allclose(
        model[0].weight.grad, 3 * ref[0].weight.grad
    )
    assert any("torch.compile" in b for b in t.report()["blind_spots"])
    torch._dynamo.reset()


def test_lbfgs_closure_graphs_are_seen():
    model = nn.Linear(4, 1)
    opt = torch.optim.LBFGS(model.parameters(), max_iter=5)
    x, y = torch.randn(8, 4), torch.randn(8, 1)

    def closure():
        opt.zero_grad()
        loss = (model(x) - y).pow(2).mean()
        loss.backward(retain_graph=True)  # <lbfgs_backward>
        return loss

    with gradlint.trace() as t:
        for _ in range(2):
            opt.step(closure)
    # each closure's graph is recorded with its backward line; LBFGS drops the loss after each call, so the
    # retained buffers are freed (no GR001: nothing stays alive)
    calls = [c for g in t.graphs for c in g.backward_calls]
    assert len(calls) >= 5
    assert {(c["line"], c["retain_graph"]) for c in calls} == {(line_of("lbfgs_backward"), True)}


def test_lbfgs_closure_clean():
    model = nn.Linear(4, 1)
    opt = torch.optim.LBFGS(model.parameters(), max_iter=5)
    x, y = torch.randn(8, 4), torch.randn(8, 1)

    def closure():
        opt.zero_grad()
        loss = (model(x) - y).pow(2).mean()
        loss.backward()
        return loss

    with gradlint.trace() as t:
        for _ in range(2):
            opt.step(closure)
    clean(t)
    assert t.graphs


def test_backward_in_a_worker_thread_is_reported_as_not_seen():
    import threading

    model = nn.Linear(4, 1)

    def work():
        model(torch.randn(2, 4)).sum().backward()

    with gradlint.trace() as t:
        th = threading.Thread(target=work)
        th.start()
        th.join()
    assert any("thread" in b for b in t.report()["blind_spots"])
    assert model.weight.grad is not None
