"""Traces started inside a host trace (`gradlint trace`, `%%gradlint_trace`) run as views of it."""

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import gradlint  # noqa: E402
from gradlint.runtime import TraceStateError  # noqa: E402


def _host():
    t = gradlint.trace()
    t._host = "gradlint trace"  # what the command and the cell magic set
    return t


def _step(model, opt, retain=False):
    opt.zero_grad()
    loss = model(torch.randn(4, 6)).pow(2).mean()
    loss.backward(retain_graph=retain)
    opt.step()
    return loss


def test_inner_trace_is_a_view_of_the_host():
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    host = _host()
    with host:
        _step(model, opt)  # iteration 0, before the view
        with gradlint.trace(every=7, stacks=2) as inner:
            assert inner.iteration == host.iteration == 1
            total = 0
            for _ in range(4):
                total += _step(model, opt)  # GR002 inside the view
            kept = model(torch.randn(4, 6)).sum()
            kept.backward(retain_graph=True)  # still holds buffers when the view ends: GR001 for the view
        rep = inner.report()
        kept.backward()  # ... but the host sees the graph consumed again: no GR001 for the host
    assert sorted(f.code for f in inner.findings) == ["GR001", "GR002"], [str(f) for f in inner.findings]
    assert rep["nested_in"]["host"] == "gradlint trace" and rep["nested_in"]["first_iteration"] == 1
    assert rep["options"]["every"] == 1 and rep["options"]["stacks"] == 1  # the host's options apply
    assert [i["index"] for i in rep["iterations"]] == [1, 2, 3, 4]
    assert {g["id"] for g in rep["graphs"]} <= {g.id for g in host.graphs}
    assert all(g["iteration"] >= 1 for g in rep["graphs"])
    assert [f.code for f in host.findings] == ["GR002"]
    # the view answers the graph API from the host's records
    assert inner.node_info(total.grad_fn) == host.node_info(total.grad_fn) is not None
    gid = inner.findings[0].details["graph"]
    assert inner.graph_roots(gid) == host.graph_roots(gid)


def test_view_findings_are_its_own_even_if_the_host_saw_them_before():
    x = torch.randn(3, requires_grad=True)
    host = _host()
    with host:
        for _ in range(2):
            with gradlint.trace() as inner:
                h = x.exp()
                h.sum().backward()
                _ = h.grad  # GR005, same line both times
            assert [f.code for f in inner.findings] == ["GR005"]
    assert [f.code for f in host.findings] == ["GR005"]


def test_view_left_running_ends_with_the_host_and_plain_nesting_still_raises():
    host = _host()
    with host:
        inner = gradlint.trace().start()
        torch.randn(2, requires_grad=True).exp().sum().backward()
    assert not inner._running and inner.report()["nested_in"]["host"] == "gradlint trace"
    with pytest.raises(TraceStateError, match="not running"):
        inner.step()
    with gradlint.trace():
        with pytest.raises(TraceStateError, match="nested traces are not supported"):
            gradlint.trace().start()
