"""Scripted scenarios for every GR code, each with a clean counterpart."""

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from runtime_markers import markers_in, only  # noqa: E402

import gradlint  # noqa: E402
from gradlint.runtime import (  # noqa: E402
    BackwardThroughFreedGraphError,
    GradlintError,
    InplaceOnSavedTensorError,
)

line_of = markers_in(__file__)


def codes(t):
    return [f.code for f in t.findings]


def mlp():
    return nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 1))


# ----------------------------------------------------------------------------- GR003


def test_gr003_accumulated_loss_backward_in_loop():
    model = nn.Linear(4, 3)
    x = torch.randn(5, 4)
    targets = torch.randn(5, 3)
    crit = nn.MSELoss()
    with pytest.raises(BackwardThroughFreedGraphError) as ei:
        with gradlint.trace() as t:
            loss = 0
            for j in range(5):
                out = model(x)
                loss += crit(out[j], targets[j])  # <acc>
                loss.backward()  # <bwd>
    err = ei.value
    assert isinstance(err, RuntimeError) and isinstance(err, GradlintError)
    msg = str(err)
    fname = __file__.rsplit("/", 1)[-1]
    assert f"{fname}:{line_of('bwd')}" in msg  # current and earlier backward (same line here)
    assert "iteration 0" in msg and "backward call #1" in msg
    assert f"{fname}:{line_of('acc')}" in msg
    assert "`loss`" in msg
    assert "sum the losses and call backward once" in msg
    assert "do NOT add retain_graph=True" in msg
    f = only(t, "GR003")
    assert f.line == line_of("bwd")
    assert f.details["holder"] == "loss" and f.details["cause"] == "accumulation"
    # the tracer raised before the engine: no partial gradient from the failing call
    assert model.weight.grad is not None


def test_gr003_clean_when_losses_summed():
    model = nn.Linear(4, 3)
    x = torch.randn(5, 4)
    targets = torch.randn(5, 3)
    with gradlint.trace() as t:
        out = model(x)
        loss = sum(nn.functional.mse_loss(out[j], targets[j]) for j in range(5))
        loss.backward()
    assert t.findings == []


def _rnn_cell():
    return nn.Linear(8, 8), nn.Linear(4, 8)


def test_gr003_tbptt_without_detach_names_state():
    w_h, w_x = _rnn_cell()
    opt = torch.optim.SGD(list(w_h.parameters()) + list(w_x.parameters()), lr=0.01)
    h = torch.zeros(2, 8)
    with pytest.raises(BackwardThroughFreedGraphError) as ei:
        with gradlint.trace() as t:
            for chunk in range(3):
                for step in range(4):
                    h = torch.tanh(w_h(h) + w_x(torch.randn(2, 4)))  # <state>
                loss = h.pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
    msg = str(ei.value)
    assert "`h`" in msg and "detach" in msg and "do NOT add retain_graph=True" in msg
    assert f":{line_of('state')}" in msg
    assert only(t, "GR003").details["cause"] == "carried-state"


def test_tbptt_with_detach_is_clean():
    w_h, w_x = _rnn_cell()
    opt = torch.optim.SGD(list(w_h.parameters()) + list(w_x.parameters()), lr=0.01)
    h = torch.zeros(2, 8)
    with gradlint.trace() as t:
        for chunk in range(4):
            h = h.detach()
            for step in range(4):
                h = torch.tanh(w_h(h) + w_x(torch.randn(2, 4)))
            loss = h.pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert t.findings == [], [str(f) for f in t.findings]
    assert len(t.iterations) == 4


# ----------------------------------------------------------------------------- GR002


def _train_accumulating(n, model, opt, detach):
    total_loss = 0
    for i in range(n):
        loss = model(torch.randn(8, 10)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if detach:
            total_loss += loss.item()
        else:
            total_loss += loss  # <leak>
    return total_loss


def test_gr002_total_loss_leak_names_holder_and_grows():
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with gradlint.trace() as t:
        _train_accumulating(5, model, opt, detach=False)
    f = only(t, "GR002")
    assert "`total_loss`" in f.message and "_train_accumulating()" in f.message
    assert f.details["holder"] == "total_loss"
    assert f.line == line_of("leak")
    assert f.details["kind"] == "graph-nodes"  # backward freed the buffers, nodes stay
    series = f.details["series"]
    assert len(series) >= 3
    nodes = [s["nodes_alive"] for s in series]
    assert all(b > a for a, b in zip(nodes, nodes[1:])), nodes
    assert all(s["saved_bytes_alive"] == 0 for s in series)


def test_gr002_clean_with_item():
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with gradlint.trace() as t:
        _train_accumulating(5, model, opt, detach=True)
    assert t.findings == [], [str(f) for f in t.findings]


def test_gr002_eval_without_no_grad_keeps_activations():
    model = mlp()
    with gradlint.trace() as t:
        outputs = []
        for i in range(4):
            outputs.append(model(torch.randn(16, 10)))
            t.step()
    f = only(t, "GR002")
    assert f.details["kind"] == "saved-activations"
    assert f.details["saved_bytes_alive"] > 0
    assert f.details["holder"] == "outputs"
    assert "no_grad" in f.message


class _Logger:
    def __init__(self):
        self.history = {"train": [], "val": []}

    def log(self, loss):
        self.history["train"].append(loss)  # a graph per step, held two containers deep


class _Metrics:
    def __init__(self):
        self.total = 0


class _Trainer:
    def __init__(self, model):
        self.model = model
        self.opt = torch.optim.SGD(model.parameters(), lr=0.01)
        self.metrics = _Metrics()

    def fit(self, n):
        for _ in range(n):
            loss = self.model(torch.randn(4, 10)).pow(2).mean()
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            self.metrics.total = self.metrics.total + loss  # <metrics>


def _train_logging(n, model, opt, logger):
    for _ in range(n):
        loss = model(torch.randn(4, 10)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        logger.log(loss)


def _closure_logger():
    state = _Logger()

    class _Log:
        def log(self, loss):
            state.log(loss)

    return _Log()


def test_gr002_holder_named_by_referrers_dict_in_object_attribute():
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    logger = _Logger()
    with gradlint.trace() as t:
        _train_logging(4, model, opt, logger)
    f = only(t, "GR002")
    assert f.details["holder"] == "logger.history['train']", f.details
    assert f.details["where"] == "_train_logging()"
    assert f.details["holder_kind"] == "local variable (list)"
    assert "`logger.history['train']`" in f.message and "could not name" not in f.message


def test_gr002_holder_named_two_attributes_deep():
    with gradlint.trace() as t:
        _Trainer(mlp()).fit(4)
    f = only(t, "GR002")
    assert f.details["holder"] == "self.metrics.total", f.details
    assert f.details["where"] == "fit()"
    assert f.line == line_of("metrics")  # the accumulation that rebinds the holder


def test_gr002_holder_list_inside_list_and_object_without_a_name():
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with gradlint.trace() as t:
        runs = [[], []]
        for i in range(4):
            loss = model(torch.randn(4, 10)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            runs[1].append(loss)
    assert only(t, "GR002").details["holder"] == "runs[1]"
    # an object no frame or module names (a closure's): named from the object's type
    with gradlint.trace() as t2:
        _train_logging(4, model, opt, _closure_logger())
    f = only(t2, "GR002")
    assert f.details["holder"] == "history['train']" and f.details["where"] == "a _Logger object", f.details


def test_gr002_referrer_search_keeps_no_tensor_alive():
    import gc
    import weakref

    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    logger = _Logger()
    with gradlint.trace() as t:
        _train_logging(4, model, opt, logger)
    assert only(t, "GR002").details["holder"] == "logger.history['train']"
    refs = [weakref.ref(x) for x in logger.history["train"]]
    del logger
    gc.collect()
    assert all(r() is None for r in refs)  # neither the tracer nor frame snapshots keep the losses


def test_eval_with_no_grad_clean():
    model = mlp()
    with gradlint.trace() as t:
        outputs = []
        for i in range(4):
            with torch.no_grad():
                outputs.append(model(torch.randn(16, 10)))
            t.step()
    assert t.findings == []


# ----------------------------------------------------------------------------- GR001


def test_gr001_retained_graph():
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with gradlint.trace() as t:
        for i in range(3):
            out = model(torch.randn(64, 10))  # <fwd1>
            loss = out.pow(2).mean()
            opt.zero_grad()
            loss.backward(retain_graph=True)  # <retain>
            opt.step()
    f = only(t, "GR001")
    assert f.line == line_of("retain")
    assert f.details["bytes"].get("cpu", 0) > 0
    assert f.details["created"]["line"] == line_of("fwd1") or f.details["created"]["line"] is not None
    assert f"{f.filename}:{line_of('retain')}" in f.message
    assert "retain_graph=True" in f.message


def test_retain_graph_consumed_later_is_clean():
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with gradlint.trace() as t:
        for i in range(3):
            out = model(torch.randn(8, 10))
            opt.zero_grad()
            out.pow(2).mean().backward(retain_graph=True)
            out.abs().mean().backward()
            opt.step()
    assert t.findings == [], [str(f) for f in t.findings]


# ----------------------------------------------------------------------------- GAN (clean)


def test_gan_step_is_clean():
    G = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 8))
    D = nn.Sequential(nn.Linear(8, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
    optG = torch.optim.Adam(G.parameters(), 1e-3)
    optD = torch.optim.Adam(D.parameters(), 1e-3)
    bce = nn.BCEWithLogitsLoss()
    with gradlint.trace() as t:
        for i in range(4):
            real = torch.randn(8, 8)
            fake = G(torch.randn(8, 4))
            optD.zero_grad()
            d_loss = bce(D(real), torch.ones(8, 1)) + bce(D(fake.detach()), torch.zeros(8, 1))
            d_loss.backward()
            optD.step()
            optG.zero_grad()
            g_loss = bce(D(fake), torch.ones(8, 1))
            g_loss.backward()
            optG.step()
    assert t.findings == [], [str(f) for f in t.findings]
    assert len(t.iterations) >= 3


# ----------------------------------------------------------------------------- GR004


def test_gr004_detach_add_on_saved_sigmoid_raises_at_unpack():
    x = torch.randn(5, requires_grad=True)
    with pytest.raises(InplaceOnSavedTensorError) as ei:
        with gradlint.trace() as t:
            z = x.sigmoid()  # <sig>
            y = z.detach()
            y.add_(1)  # <mut>
            z.sum().backward()
    assert isinstance(ei.value, RuntimeError)
    msg = str(ei.value)
    assert "modified by an inplace operation" in msg
    assert f":{line_of('mut')}" in msg and f":{line_of('sig')}" in msg
    assert x.grad is None  # no wrong gradient got through
    f = only(t, "GR004")
    assert f.line == line_of("mut")
    assert f.details["op"] == "add_" and f.details["path"] == "through .detach()"
    assert f.details["saved_by_op"] == "sigmoid" and f.details["saved_at"]["line"] == line_of("sig")


def test_without_tracer_detach_mutation_is_caught_by_torch():
    # Baseline for the test above: PyTorch itself catches it when no hooks are installed.
    x = torch.randn(5, requires_grad=True)
    z = x.sigmoid()
    z.detach().add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.sum().backward()


def test_gr004_data_mutation_recorded():
    w = torch.randn(4, requires_grad=True)
    x = torch.randn(4)
    with gradlint.trace() as t:
        y = (w * w * x).sum()  # saves w
        x_alias = w.data
        x_alias.mul_(2)  # <data>
        y.backward()
    f = only(t, "GR004")
    assert f.line == line_of("data")
    assert f.details["path"] == "through .data"
    assert "silently" in f.message


def test_gr004_clean_after_backward_released_and_batchnorm():
    bn_model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
    opt = torch.optim.SGD(bn_model.parameters(), lr=0.1)
    x = torch.randn(5, requires_grad=True)
    with gradlint.trace() as t:
        z = x.sigmoid()
        z.sum().backward()
        z.detach().add_(1)  # saved tensor already released by backward: fine
        for i in range(3):
            a = bn_model(torch.randn(16, 6))
            b = bn_model(torch.randn(16, 6))  # running stats updated in place between forwards
            opt.zero_grad()
            (a.mean() + b.mean()).backward()
            opt.step()
        y = torch.randn(3, requires_grad=True) * 2
        y.add_(1)  # in-place on an unsaved tensor
    assert t.findings == [], [str(f) for f in t.findings]


# ----------------------------------------------------------------------------- GR005


def test_gr005_nonleaf_grad_read():
    w = torch.randn(3, requires_grad=True)
    with gradlint.trace() as t:
        h = w * 2
        h.sum().backward()
        g = h.grad  # <nonleaf>
    assert g is None
    f = only(t, "GR005")
    assert f.line == line_of("nonleaf")
    assert f.details["op"] == "MulBackward0"
    assert "retain_grad()" in f.message


def test_gr005_clean_with_retain_grad():
    w = torch.randn(3, requires_grad=True)
    with gradlint.trace() as t:
        h = w * 2
        h.retain_grad()
        h.sum().backward()
        assert h.grad is not None and w.grad is not None
    assert t.findings == []
    assert len(t.report()["grads"]["nonleaf_retained"]) == 1


# ----------------------------------------------------------------------------- GR006


class TwoBranch(nn.Module):
    def __init__(self, detach):
        super().__init__()
        self.body = nn.Linear(6, 8)
        self.aux = nn.Linear(6, 8)
        self.head = nn.Linear(16, 1)
        self.detach = detach

    def forward(self, x):
        a = self.aux(x)
        if self.detach:
            a = a.detach()  # <cut>
        return self.head(torch.cat([self.body(x), a], dim=1))


def test_gr006_branch_cut_by_detach():
    model = TwoBranch(detach=True)  # built before trace() starts
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gradlint.trace() as t:
        for i in range(2):
            opt.zero_grad()
            model(torch.randn(4, 6)).mean().backward()
            opt.step()
    f = only(t, "GR006")
    assert f.details["parameters"] == ["aux.weight", "aux.bias"]
    assert "aux.weight" in f.message
    assert f.details["cut"]["line"] == line_of("cut")
    assert f.line == line_of("cut")


def test_gr006_clean_and_frozen_params_ignored():
    model = TwoBranch(detach=False)
    frozen = TwoBranch(detach=False)
    frozen.aux.requires_grad_(False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gradlint.trace() as t:
        for i in range(2):
            opt.zero_grad()
            (model(torch.randn(4, 6)).mean() + frozen(torch.randn(4, 6)).mean()).backward()
            opt.step()
    assert t.findings == [], [str(f) for f in t.findings]


def test_gr006_trusts_the_optimizer_when_the_graph_walk_misses_leaves(monkeypatch):
    """On CUDA the pre-backward walk was seen to miss leaves (GPU run, issue 13) and GR006 then said trained
    parameters never got a gradient.  A parameter stepped while holding a gradient received one."""
    from gradlint.runtime import checks

    real = checks.walk_backward

    def lossy(roots, note_leaf):
        walk = real(roots, note_leaf)
        walk["params"] = set(list(sorted(walk["params"]))[:1])  # keep one leaf: the module is still "trained"
        return walk

    monkeypatch.setattr(checks, "walk_backward", lossy)
    model = TwoBranch(detach=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gradlint.trace() as t:
        for i in range(2):
            opt.zero_grad()
            model(torch.randn(4, 6)).mean().backward()
            opt.step()
    assert t.findings == [], [str(f) for f in t.findings]


# ----------------------------------------------------------------------------- GR007


def test_gr007_missing_zero_grad():
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with gradlint.trace() as t:
        for i in range(3):
            model(torch.randn(4, 10)).mean().backward()
            opt.step()  # <step>
    f = only(t, "GR007")
    assert f.line == line_of("step")
    assert "0.weight" in f.details["parameters"]
    assert "zero_grad" in f.message


@pytest.mark.parametrize("set_to_none", [True, False])
def test_gr007_clean_with_zero_grad_and_accumulation(set_to_none):
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with gradlint.trace() as t:
        for i in range(6):
            model(torch.randn(4, 10)).mean().backward()
            if i % 2 == 1:  # gradient accumulation over two micro-batches
                opt.step()
                opt.zero_grad(set_to_none=set_to_none)
    assert t.findings == [], [str(f) for f in t.findings]


@pytest.mark.parametrize("how", ["module", "manual_none", "manual_zero"])
def test_gr007_clean_with_other_resets(how):
    """zero_grad() runs without the function mode and reports its reset; the other ways of resetting are
    still seen through the mode."""
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with gradlint.trace() as t:
        for _ in range(4):
            model(torch.randn(4, 10)).mean().backward()
            opt.step()
            if how == "module":
                model.zero_grad()
            elif how == "manual_none":
                for p in model.parameters():
                    p.grad = None
            else:
                for p in model.parameters():
                    p.grad.zero_()
    assert t.findings == [], [str(f) for f in t.findings]


def test_gr007_only_the_optimizer_not_reset():
    a, b = mlp(), mlp()
    opt_a = torch.optim.SGD(a.parameters(), lr=0.01)
    opt_b = torch.optim.SGD(b.parameters(), lr=0.01)
    with gradlint.trace() as t:
        for _ in range(3):
            opt_a.zero_grad()
            (a(torch.randn(4, 10)).mean() + b(torch.randn(4, 10)).mean()).backward()
            opt_a.step()
            opt_b.step()  # <step_b>
    f = only(t, "GR007")
    assert f.line == line_of("step_b")
    assert len(f.details["parameters"]) == len(list(b.parameters()))
