"""The public graph API the renderer relies on: node_info, graph_roots, named_parameters, details["graph"]."""

import gc
import weakref

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from runtime_markers import markers_in, only  # noqa: E402

import gradlint  # noqa: E402
from gradlint.runtime import BackwardThroughFreedGraphError, InplaceOnSavedTensorError  # noqa: E402

line_of = markers_in(__file__)


def test_node_info_site_graph_bytes_and_state():
    model = nn.Linear(6, 4)
    before = model(torch.randn(2, 6)).sum()  # created outside the trace
    with gradlint.trace() as t:
        h = model(torch.randn(3, 6)).sigmoid()  # <fwd>
        h.retain_grad()
        loss = h.sum()
        info = t.node_info(h.grad_fn)
        assert info["state"] == "alive"
        loss.backward(retain_graph=True)
        assert t.node_info(h.grad_fn)["state"] == "alive"
    assert t.node_info(before.grad_fn) is None
    assert t.node_info(object()) is None
    info = t.node_info(h.grad_fn)
    assert info["op"] == "SigmoidBackward0" and info["call"] == "sigmoid"
    assert info["site"]["line"] == line_of("fwd") and info["source"].endswith(f":{line_of('fwd')}")
    assert info["site"]["function"] == "test_node_info_site_graph_bytes_and_state"
    assert info["iteration"] == 0 and info["saved_tensors"] == 1 and info["saved_bytes"] == 3 * 4 * 4
    assert info["retains_grad"] is True and t.node_info(loss.grad_fn)["retains_grad"] is False
    gid = only(t, "GR001").details["graph"]
    assert info["graph"] == gid and gid in [g.id for g in t.graphs]
    # the state stays exact after stop(): the graph is freed by a backward without retain_graph
    loss.backward()
    assert t.node_info(h.grad_fn)["state"] == "freed"
    assert t.node_info(loss.grad_fn)["state"] is None  # SumBackward0 saves nothing


def test_graph_roots_are_weak_and_cover_unconsumed_graphs():
    model = nn.Linear(5, 1)
    with gradlint.trace() as t:
        loss = model(torch.randn(4, 5)).pow(2).mean()
        loss.backward()
        gid = t.node_info(loss.grad_fn)["graph"]
        assert t.graph_roots(gid) == [loss] or t.graph_roots(gid)[0] is loss
        evals = [model(torch.randn(2, 5)) for _ in range(2)]  # never backwarded: the iteration's graph
        pending = t.node_info(evals[0].grad_fn)["graph"]
        assert {id(x) for x in t.graph_roots(pending)} == {id(x) for x in evals}
        t.step()
    roots = t.graph_roots(pending)
    assert {id(x) for x in roots} == {id(x) for x in evals}
    assert t.graph_roots(12345) == []
    refs = [weakref.ref(x) for x in evals] + [weakref.ref(loss)]
    del evals, roots, loss
    gc.collect()
    assert all(r() is None for r in refs)  # the trace kept none of them alive
    assert t.graph_roots(gid) == [] and t.graph_roots(pending) == []


def test_named_parameters():
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gradlint.trace() as t:
        for _ in range(2):
            opt.zero_grad()
            model(torch.randn(2, 3)).sum().backward()
            opt.step()
    names = dict(t.named_parameters())
    assert names["0.weight"] is model[0].weight and names["1.bias"] is model[1].bias


def test_details_graph_on_gr002_and_gr004_and_gr003_error():
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with gradlint.trace() as t:
        total = 0
        for _ in range(4):
            loss = model(torch.randn(3, 4)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss
    f = only(t, "GR002")
    assert f.details["graph"] in [g.id for g in t.graphs]

    x = torch.randn(5, requires_grad=True)
    with pytest.raises(InplaceOnSavedTensorError) as ei:
        with gradlint.trace() as t:
            z = x.sigmoid()
            z.detach().add_(1)
            y = (z * 2).sum()
            y.backward()
    f = only(t, "GR004")
    # recorded while the graph was pending; the backward grouped it into a graph with another id
    assert f.details["graph"] == ei.value.graph == t.node_info(z.grad_fn)["graph"]
    assert f.details["graph"] in [g.id for g in t.graphs]

    with pytest.raises(BackwardThroughFreedGraphError) as ei:
        with gradlint.trace() as t:
            w = x.exp()
            w.sum().backward()
            w.sum().backward()
    err = ei.value
    assert err.graph is not None and err.graph == only(t, "GR003").details["graph"] == err.details["graph"]
    assert err.graph == t.node_info(w.grad_fn)["graph"]
