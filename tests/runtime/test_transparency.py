"""The tracer must not change results, must clean up after itself and must not keep tensors alive."""

import gc
import json
import weakref

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import gradlint  # noqa: E402
from gradlint.runtime import (  # noqa: E402
    Finding,
    GraphRecord,
    Trace,
    TraceStateError,
    hooks,  # noqa: E402
)


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        h = torch.relu(self.bn(self.c1(x)))
        h = nn.functional.max_pool2d(torch.relu(self.c2(h)) + h, 2)
        return self.fc(h.flatten(1))


def _models():
    yield (
        "mlp",
        lambda: nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Dropout(0.1), nn.Linear(32, 4)),
        lambda: torch.randn(8, 16),
    )
    yield "cnn", SmallCNN, lambda: torch.randn(4, 3, 16, 16)
    yield "lstm", lambda: nn.LSTM(6, 12, num_layers=2, batch_first=True), lambda: torch.randn(3, 5, 6)
    yield (
        "transformer",
        lambda: nn.TransformerEncoder(
            nn.TransformerEncoderLayer(16, 2, 32, dropout=0.1, batch_first=True),
            2,
            enable_nested_tensor=False,
        ),
        lambda: torch.randn(2, 5, 16),
    )


def _run(make, inp, traced, steps=3):
    torch.manual_seed(1)
    model = make()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    torch.manual_seed(2)
    xs = [inp() for _ in range(steps)]
    torch.manual_seed(3)
    t = gradlint.trace() if traced else None
    if t:
        t.start()
    try:
        for x in xs:
            out = model(x)
            out = out[0] if isinstance(out, tuple) else out
            loss = out.pow(2).mean() + out.sin().sum() * 0.01
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        if t:
            t.stop()
    return [p.grad.clone() for p in model.parameters()] + [p.detach().clone() for p in model.parameters()], t


@pytest.mark.parametrize("name,make,inp", list(_models()), ids=[m[0] for m in _models()])
def test_gradients_bit_identical(name, make, inp):
    ref, _ = _run(make, inp, traced=False)
    got, t = _run(make, inp, traced=True)
    assert len(ref) == len(got)
    for a, b in zip(ref, got):
        assert torch.equal(a, b)
    assert t.findings == [], [str(f) for f in t.findings]
    assert len(t.graphs) >= 3


def test_double_backward_identical():
    def gp(traced):
        torch.manual_seed(0)
        w = torch.randn(5, requires_grad=True)
        x = torch.randn(5, requires_grad=True)
        t = gradlint.trace().start() if traced else None
        try:
            y = (w * x.tanh()).sum()
            (g,) = torch.autograd.grad(y, x, create_graph=True)
            (g.pow(2).sum() + y).backward()
        finally:
            if t:
                t.stop()
        return w.grad.clone(), x.grad.clone()

    a, b = gp(False), gp(True)
    assert all(torch.equal(u, v) for u, v in zip(a, b))


def _assert_clean_state():
    assert hooks.ACTIVE is None
    assert torch._C._autograd._top_saved_tensors_default_hooks(False) is None
    assert torch._C._len_torch_function_stack() == 0
    from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks

    assert len(_global_optimizer_pre_hooks) == 0 and len(_global_optimizer_post_hooks) == 0
    assert not getattr(torch.Tensor.backward, "_gradlint_wrapper", False)
    assert not getattr(torch.autograd.backward, "_gradlint_wrapper", False)
    assert not getattr(torch.autograd.grad, "_gradlint_wrapper", False)
    assert not getattr(torch.optim.Optimizer.zero_grad, "_gradlint_wrapper", False)
    assert not getattr(torch.nn.Module.zero_grad, "_gradlint_wrapper", False)
    # a fresh saved_tensors_hooks pair works and PyTorch's own version check is back
    seen = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: (seen.append(1), t)[1], lambda t: t):
        x = torch.randn(3, requires_grad=True)
        x.sigmoid().sum().backward()
    assert seen
    z = torch.randn(3, requires_grad=True).sigmoid()
    z.detach().add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.sum().backward()


def test_everything_removed_after_normal_exit():
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gradlint.trace() as t:
        assert torch._C._len_torch_function_stack() == 1
        assert torch._C._autograd._top_saved_tensors_default_hooks(False) is not None
        model(torch.randn(2, 3)).sum().backward()
        opt.step()
    _assert_clean_state()
    assert len(t.iterations) == 1


def test_everything_removed_after_exception():
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ZeroDivisionError):
        with gradlint.trace():
            model(torch.randn(2, 3)).sum().backward()
            opt.step()
            raise ZeroDivisionError
    _assert_clean_state()


def test_exception_inside_optimizer_step_still_cleans_up():
    p = nn.Parameter(torch.randn(3))

    class Boom(torch.optim.SGD):
        def step(self, closure=None):
            raise ValueError("boom")

    opt = torch.optim.SGD([p], lr=0.1)

    def pre(o, a, k):
        raise ValueError("boom")

    with pytest.raises(ValueError):
        with gradlint.trace():
            p.sum().backward()
            h = opt.register_step_pre_hook(pre)
            try:
                opt.step()
            finally:
                h.remove()
    _assert_clean_state()


def test_stop_with_user_hooks_left_open_removes_only_ours():
    t = gradlint.trace().start()
    cm = torch.autograd.graph.saved_tensors_hooks(lambda a: a, lambda a: a)
    cm.__enter__()
    with pytest.raises(TraceStateError, match="still open"):
        t.stop()
    top = torch._C._autograd._top_saved_tensors_default_hooks(False)
    assert top is not None and getattr(top[0], "__self__", None) is not t  # the user's pair survived
    cm.__exit__(None, None, None)
    _assert_clean_state()


def test_nested_trace_raises_clear_error():
    with gradlint.trace() as outer:
        with pytest.raises(TraceStateError, match="nested traces are not supported"):
            with gradlint.trace():
                pass
        assert hooks.ACTIVE is outer
    _assert_clean_state()
    t = gradlint.trace()
    with pytest.raises(TraceStateError):
        t.stop()


def test_tensors_are_freed_after_block_and_during():
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1))
    refs = []
    with gradlint.trace() as t:
        for i in range(3):
            x = torch.randn(4, 8)
            h = model[1](model[0](x))
            out = model[2](h)
            refs += [weakref.ref(x), weakref.ref(h), weakref.ref(out)]
            out.sum().backward()
        del x, h, out
        gc.collect()
        assert all(r() is None for r in refs)
        # a live graph that was never backwarded also dies with its last reference
        y = model(torch.randn(4, 8))
        r = weakref.ref(y)
        del y
        assert r() is None
    assert all(r() is None for r in refs)
    del t
    gc.collect()


def test_trace_object_does_not_keep_saved_tensors():
    with gradlint.trace() as t:
        a = torch.randn(1000, requires_grad=True)
        b = a.exp()
        rb = weakref.ref(b)
    del b
    gc.collect()
    assert rb() is None
    assert t.report()["memory"]["saved_bytes_peak"]["cpu"] >= 4000


def test_json_schema_round_trip(tmp_path):
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gradlint.trace() as t:
        for i in range(2):
            out = model(torch.randn(3, 4)).tanh()
            opt.zero_grad()
            out.sum().backward(retain_graph=True)
            opt.step()
    data = json.loads(t.to_json())
    assert set(data) >= {"version", "torch", "devices", "findings", "graphs", "grads", "iterations", "memory"}
    assert data["version"] == 1 and data["torch"] == torch.__version__.split("+")[0]
    assert "cpu" in data["devices"]
    f = data["findings"][0]
    assert set(f) == {"code", "message", "filename", "line", "details"} and f["code"] == "GR001"
    g = data["graphs"][0]
    assert set(g) >= {
        "id",
        "iteration",
        "created",
        "saved_bytes",
        "peak_saved_bytes",
        "nodes",
        "backward_calls",
        "freed",
        "alive_at_exit",
    }
    assert set(g["created"]) == {"filename", "line", "op"}
    assert g["backward_calls"][0]["retain_graph"] is True
    assert set(g["backward_calls"][0]) == {"filename", "line", "iteration", "retain_graph"}
    assert isinstance(g["peak_saved_bytes"]["cpu"], int) and g["peak_saved_bytes"]["cpu"] > 0
    leaf = data["grads"]["leaf"]
    assert {"name": "weight", "shape": [2, 4], "has_grad": True} in leaf
    it = data["iterations"][0]
    assert set(it) >= {"index", "saved_bytes_alive_at_end", "cuda_allocated", "cuda_peak"}
    assert set(data["memory"]) == {"cuda_peak_bytes", "saved_bytes_peak"}
    p = tmp_path / "r.json"
    t.save_json(p)
    assert json.loads(p.read_text()) == data
    # typed views agree with the JSON
    assert isinstance(t.findings[0], Finding) and t.findings[0].to_dict() == data["findings"][0]
    assert isinstance(t.graphs[0], GraphRecord) and t.graphs[0].to_dict() == data["graphs"][0]


def test_print_summary_text_and_html():
    model = nn.Linear(4, 2)
    with gradlint.trace() as t:
        out = model(torch.randn(3, 4)).tanh()
        out.sum().backward(retain_graph=True)
    text = str(t)
    assert text.startswith("gradlint.trace: 1 finding")
    lines = text.splitlines()
    assert "GR001 retained-graph" in lines[1]
    assert "Graphs (" in text and "Peak saved-tensor bytes" in text
    assert text.index("GR001") < text.index("Graphs (")
    html = t._repr_html_()
    assert "<table" in html and "</table>" in html and "GR001" in html


def test_image_hook_is_used_in_html():
    from gradlint.runtime import register_image_hook, report

    with gradlint.trace() as t:
        torch.randn(2, requires_grad=True).exp().sum().backward()
    hook = register_image_hook(lambda tr: b"\x89PNG-fake" if tr is t else None)
    try:
        assert "data:image/png;base64," in t._repr_html_()
    finally:
        report._image_hooks.remove(hook)


def test_decorator_and_start_stop_forms():
    t = gradlint.trace()

    @t
    def step(w):
        loss = (w * w.exp()).sum()
        loss.backward(retain_graph=True)
        return loss  # keeps the retained graph alive past the trace's exit

    w = torch.randn(3, requires_grad=True)
    kept = step(w)
    assert [f.code for f in t.findings] == ["GR001"]
    assert step.trace is t
    del kept

    @gradlint.trace
    def step2(w):
        (w * 2).sum().backward()

    step2(w)
    assert step2.trace.findings == []
    _assert_clean_state()

    t2 = gradlint.trace()
    assert t2.start() is t2
    torch.randn(2, requires_grad=True).exp().sum().backward()
    t2.step()
    t2.stop()
    assert len(t2.iterations) == 1 and len(t2.graphs) == 1
    _assert_clean_state()


def test_tracer_prints_nothing(capsys):
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gradlint.trace():
        for i in range(2):
            model(torch.randn(2, 4)).sum().backward()
            opt.step()
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_import_gradlint_is_torch_free():
    import subprocess
    import sys

    code = "import sys, gradlint; assert 'torch' not in sys.modules; gradlint.trace; assert 'torch' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_user_saved_tensors_hooks_checkpoint_and_save_on_cpu_coexist():
    from torch.utils.checkpoint import checkpoint

    def run(traced):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 6), nn.Tanh(), nn.Linear(6, 6), nn.Tanh())
        x = torch.randn(4, 6)
        packed = []
        t = gradlint.trace().start() if traced else None
        try:
            with torch.autograd.graph.saved_tensors_hooks(lambda a: (packed.append(1), a)[1], lambda a: a):
                y1 = model(x)
            y2 = checkpoint(model, x, use_reentrant=False)
            with torch.autograd.graph.save_on_cpu():
                y3 = model(x)
            (y1.sum() + y2.sum() + y3.sum()).backward()
        finally:
            if t:
                t.stop()
        return [p.grad.clone() for p in model.parameters()], len(packed), t

    ga, na, _ = run(False)
    gb, nb, t = run(True)
    assert all(torch.equal(a, b) for a, b in zip(ga, gb))
    assert na == nb > 0  # the user's own hooks still see every saved tensor
    assert t.findings == []


def test_sampling_every_n_keeps_gradients_and_counts_iterations():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with gradlint.trace(every=3) as t:
        for i in range(7):
            opt.zero_grad()
            model(torch.randn(4, 8)).pow(2).mean().backward()
            opt.step()
            if i == 1:
                assert torch._C._len_torch_function_stack() == 0  # mode off between sampled iterations
            if i == 2:
                assert torch._C._len_torch_function_stack() == 1
    traced = [it["traced"] for it in t.iterations]
    assert traced == [True, False, False, True, False, False, True]
    _assert_clean_state()


def test_sampling_still_checks_versions_in_light_iterations():
    w = torch.randn(4, requires_grad=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        with gradlint.trace(every=2) as t:
            t.step()  # iteration 1 is a light one
            z = w.sigmoid()
            z.detach().mul_(2)
            z.sum().backward()


def test_sampling_reports_a_second_backward_in_a_light_iteration_at_the_users_line():
    # the light path reads the call's site only when torch raises: it must still be the user's line
    w = torch.randn(4, requires_grad=True)
    with pytest.raises(RuntimeError, match="second time"):
        with gradlint.trace(every=2) as t:
            t.step()  # iteration 1 is a light one
            y = (w * w).sum()
            y.backward()
            y.backward()  # the line GR003 must name
    (f,) = [f for f in t.findings if f.code == "GR003"]
    assert f.filename.endswith("test_transparency.py")
    import inspect

    src = inspect.getsource(test_sampling_reports_a_second_backward_in_a_light_iteration_at_the_users_line)
    first = (
        test_sampling_reports_a_second_backward_in_a_light_iteration_at_the_users_line.__code__.co_firstlineno
    )
    expected = first + next(i for i, ln in enumerate(src.splitlines()) if "the line GR003 must name" in ln)
    assert f.line == expected
    _assert_clean_state()


def test_options_validated():
    with pytest.raises(ValueError):
        gradlint.trace(every=0)
    with pytest.raises(ValueError):
        gradlint.trace(cuda="yes")
    assert isinstance(gradlint.trace(), Trace)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gradients_identical_and_memory_recorded():
    def run(traced):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 1)).cuda()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        t = gradlint.trace(cuda=True).start() if traced else None
        try:
            for i in range(3):
                opt.zero_grad()
                model(torch.randn(16, 32, device="cuda")).pow(2).mean().backward()
                opt.step()
        finally:
            if t:
                t.stop()
        return [p.grad.clone() for p in model.parameters()], t

    a, _ = run(False)
    b, t = run(True)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert t.iterations[0]["cuda_peak"] > 0


def test_cuda_auto_starts_recording_when_the_traced_code_initializes_cuda(monkeypatch):
    """`gradlint trace train.py` starts tracing before the script touches CUDA: 'auto' is decided again at each
    iteration boundary (CUDA's memory calls are mocked: this runs without a device)."""
    state = {"init": False}
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: state["init"])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda *a: 4096)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a: 8192)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda *a: None)
    with gradlint.trace() as t:
        t.step()
        state["init"] = True  # the script's first .cuda()
        t.step()
        t.step()  # and every iteration after it (the GPU run found only the first one recorded)
    its = t.iterations
    assert [i["cuda_allocated"] for i in its] == [0, 4096, 4096]
    assert its[1]["cuda_peak"] == its[2]["cuda_peak"] == 8192 and "cuda:0" in t.report()["devices"]


def test_cuda_true_records_every_iteration(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda *a: 4096)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a: 8192)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda *a: None)
    with gradlint.trace(cuda=True) as t:
        for _ in range(3):
            t.step()
    assert [(i["cuda_allocated"], i["cuda_peak"]) for i in t.iterations] == [(4096, 8192)] * 3


@pytest.mark.parametrize("raise_inside", [False, True])
def test_a_kept_trace_keeps_no_tensor_of_the_run_alive(raise_inside):
    """The trace outlives the run (``t`` is kept); the exception that ended it must not keep the frames."""

    def work():
        model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1))
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        t = gradlint.trace()
        try:
            with t:
                total = 0
                for _ in range(3):
                    loss = model(torch.randn(8, 16)).pow(2).mean()
                    opt.zero_grad()
                    loss.backward(retain_graph=True)
                    opt.step()
                    total += loss
                if raise_inside:
                    raise KeyError("boom")
        except KeyError:
            pass
        return t, [weakref.ref(x) for x in (total, loss, model[0].weight)]

    t, refs = work()
    gc.collect()
    assert [r() for r in refs] == [None, None, None]
    assert (t.report()["exception"] is not None) == raise_inside


def test_sampling_leaves_the_users_saved_tensor_hooks_on_top():
    """every=N takes gradlint's saved-tensor hooks off between sampled iterations; a block of the user's own
    hooks that spans a boundary keeps seeing its tensors, and nothing is left installed afterwards."""
    model = nn.Linear(4, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    seen = []
    with gradlint.trace(every=2):
        opt.zero_grad()
        model(torch.randn(2, 4)).sum().backward()
        opt.step()  # iteration 1 is sampled out: gradlint's hooks come off
        with torch.autograd.graph.saved_tensors_hooks(lambda t: seen.append(1) or t, lambda t: t):
            opt.zero_grad()
            model(torch.randn(2, 4)).sum().backward()
            opt.step()  # iteration 2 is traced again, but the user's block is still open
            n = len(seen)
            model(torch.randn(2, 4)).sum().backward()
            assert len(seen) > n  # the user's hooks still receive the saved tensors
    assert torch._C._autograd._top_saved_tensors_default_hooks(False) is None


def test_backward_argument_binder_matches_inspect():
    """The wrappers' argument binding (a fast path of inspect's) sees what inspect sees, and a call that would
    fail still fails with TypeError (the wrapper then lets torch raise its own error)."""
    from gradlint.runtime.hooks import _Binder

    x = torch.randn(2, requires_grad=True)
    y = x.sum()
    calls = {
        torch.Tensor.backward: [
            ((y,), {}),
            ((y, None, True), {}),
            ((y,), {"retain_graph": True, "inputs": [x]}),
        ],
        torch.autograd.backward: [
            ((y,), {}),
            (([y],), {"retain_graph": False}),
            ((y, None, True, False), {}),
        ],
        torch.autograd.grad: [
            ((y, x), {}),
            ((y,), {"inputs": x, "create_graph": True}),
            ((y, [x], None, True), {}),
        ],
    }
    for fn, cases in calls.items():
        b = _Binder(fn)
        for args, kwargs in cases:
            assert b.bind(*args, **kwargs) == dict(b.sig.bind(*args, **kwargs).arguments)
    g = _Binder(torch.autograd.grad)
    for args, kwargs in [
        ((), {}),
        ((y,), {"outputs": y}),
        ((y, x), {"bogus": 1}),
        ((y, x) + (None,) * 9, {}),
    ]:
        with pytest.raises(TypeError):
            g.bind(*args, **kwargs)
