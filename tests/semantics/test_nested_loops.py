"""The loop analyses walk a nest of loops a number of times linear in its depth, not 2**depth."""

import libcst as cst
import pytest

from gradlint.static.rule import FileContext
from gradlint.static.semantics import dataflow
from gradlint.static.semantics.dataflow import Dataflow, Kind

BODIES = {
    "rebinding": ["h = model(h).detach()", "h.add_(1)", "loss = model(h).sum()", "loss.backward()"],
    "rotating": ["a = b", "b = c", "c = model(a)", "loss = c.sum()", "loss.backward()"],
    "no_grad": ["with torch.no_grad():", "    a = model(b)", "b = a.detach()", "out = model(x)"],
}


def _nest(depth, body, header="for i{i} in range(2):"):
    lines = ["import torch", "def f(model, x, b, c):", "    h = x"]
    indent = "    "
    for i in range(depth):
        lines.append(indent + header.format(i=i))
        indent += "    "
    lines += [indent + line for line in body]
    lines.append("    return out")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("header", ["for i{i} in range(2):", "while i{i} < 3:"])
@pytest.mark.parametrize("body", sorted(BODIES))
def test_walks_grow_linearly_with_depth(monkeypatch, body, header):
    walks = []
    original = dataflow._Walker._loop

    def counting(self, stmt, env, disabled):
        walks.append(stmt)
        return original(self, stmt, env, disabled)

    monkeypatch.setattr(dataflow._Walker, "_loop", counting)
    counts = {}
    for depth in (10, 30):
        walks.clear()
        src = _nest(depth, BODIES[body], header)
        module = cst.parse_module(src)
        flow = FileContext("t.py", src, module).analysis(Dataflow)
        func = module.body[1]
        ret = func.body.body[-1].body[0]
        assert flow.kind_of(ret.value, at=ret) in (Kind.ACTIVATION, Kind.UNKNOWN)
        counts[depth] = len(walks)
    # Linear: 3x the depth costs at most ~3x the walks (2**depth would be 2**20 times more).
    assert counts[30] <= 4 * counts[10], counts
    assert counts[30] <= 8 * 30, counts
