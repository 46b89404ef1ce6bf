"""Unit tests for gradlint.static.semantics.loops: defs, graph refs, graph evidence, loop facts."""

import textwrap

import libcst as cst
import pytest

from gradlint.static.semantics.imports import ImportMap
from gradlint.static.semantics.loops import (
    LoopFacts,
    accumulated_backward,
    graph_accumulation,
    is_loss_call,
    is_model_call,
    unused_retained_graph,
)
from gradlint.static.semantics.reads import LOOP_READS, graph_reads


class _Ctx:
    def __init__(self, module):
        self.module = module


def facts_of(src: str) -> LoopFacts:
    module = cst.parse_module(textwrap.dedent(src))
    func = next(s for s in module.body if isinstance(s, cst.FunctionDef))
    return LoopFacts(func, ImportMap(_Ctx(module)))


def expr(code: str) -> cst.BaseExpression:
    return cst.parse_expression(code)


def kinds(facts, key):
    return [d.kind for d in facts.defs.get(key, [])]


# -- graph references ---------------------------------------------------------


@pytest.mark.parametrize(
    "code,refs",
    [
        ("loss", {"loss"}),
        ("loss.item()", set()),
        ("loss.detach() + 1", set()),
        ("float(loss)", set()),
        ("(pred == y).sum()", set()),
        ("out.argmax(1).eq(y).sum()", set()),
        ("x.size(0)", set()),
        ("criterion(model(x), y)", {"x", "y"}),
        ("self.criterion(self.model(x), y)", {"x", "y"}),
        ("x.to(device)", {"x"}),
        ("out.loss * w", {"out", "out.loss", "w"}),
        ("self.total", {"self", "self.total"}),
        ("sum(l for l in losses)", {"losses"}),
        ("torch.stack(losses).mean()", {"losses"}),
        ("x.shape[0] * y.data", set()),
    ],
)
def test_graph_refs(code, refs):
    assert graph_reads(expr(code), LOOP_READS) == refs


@pytest.mark.parametrize(
    "code,loss,model",
    [
        ("criterion(out, y)", True, False),
        ("F.cross_entropy(out, y)", True, False),
        ("self.loss_fn(out, y)", True, False),
        ("model.loss(x)", True, False),
        ("compute_loss(model, batch)", True, False),
        ("loss_scale(x)", False, False),
        ("model(x)", False, True),
        ("self.encoder(h)", False, True),
        ("G(z)", False, True),
        ("self(x)", False, True),
        ("model.module(x)", False, True),
        ("model.generate(x)", False, False),
        ("torch.relu(x)", False, False),
        ("model()", False, False),
    ],
)
def test_loss_and_model_calls(code, loss, model):
    call = expr(code)
    assert is_loss_call(call) is loss
    assert is_model_call(call) is model


# -- definitions --------------------------------------------------------------


def test_def_kinds():
    f = facts_of(
        """
        def f(model, loader):
            total = 0
            losses = []
            d = {}
            for x, y in loader:
                total += loss
                total = total + loss
                total = loss + total
                total = total / 2
                losses.append(loss)
                d[k] = d.get(k, 0) + loss
                h = model(x, h)
                total = total.detach()
                losses.clear()
                preds = torch.cat([preds, out])
        """
    )
    assert kinds(f, "total") == ["kill", "accum", "accum", "accum", "keep", "kill"]
    assert kinds(f, "losses") == ["kill", "accum", "kill"]
    assert kinds(f, "d") == ["kill", "accum"]
    assert kinds(f, "h") == ["keep"]
    assert kinds(f, "x") == ["kill"] and kinds(f, "preds") == ["accum"]
    accum = f.defs["d"][1]
    assert [cst.Module([]).code_for_node(i) for i in accum.increments] == ["loss"]


def test_units_know_loops_and_conditions():
    f = facts_of(
        """
        def f(loader, outer):
            for e in outer:
                a = 1
                for x in loader:
                    if x:
                        b = 2
                    with ctx():
                        c = 3
                    break
        """
    )
    outer, inner = f.loops
    a, b, c = (f.defs[k][0].unit for k in "abc")
    assert a.loops == (outer,) and b.loops == (outer, inner)
    assert a.unconditional_in(outer) and not b.unconditional_in(inner) and c.unconditional_in(inner)
    assert inner in b.exits and outer not in b.exits


def test_graph_evidence_follows_reaching_definitions():
    f = facts_of(
        """
        def f(model, loader, criterion):
            for x, y in loader:
                out = model(x)
                loss = criterion(out, y)
                _, pred = torch.max(out, 1)
                probs = torch.softmax(out, -1)
                n = x.size(0)
                use(loss, pred, probs, n, out.logits)
                loss = loss.item()
                use(loss)
        """
    )
    first_use = f.units[-3]
    last_use = f.units[-1]
    for name, graph in [
        ("out", True),
        ("loss", True),
        ("pred", False),
        ("probs", True),
        ("n", False),
        ("out.logits", True),
        ("x", False),
    ]:
        assert f.is_graph_value(expr(name), first_use) is graph, name
    assert f.is_graph_value(expr("loss"), last_use) is False


def test_iteration_loops():
    f = facts_of(
        """
        def f(model, loader, layers, epochs, opt):
            for x in loader:
                pass
            for epoch in range(epochs):
                pass
            for layer in layers:
                pass
            for i in range(10):
                opt.step()
            for t in range(steps):
                pass
        """
    )
    assert [f.is_iteration_loop(l) for l in f.loops] == [True, True, False, True, False]


# -- the rule questions -------------------------------------------------------


def _site(f, i=0):
    return f.backwards[i]


def test_accumulated_backward_and_its_resets():
    bad = facts_of(
        """
        def f(loader):
            loss = 0
            for x in loader:
                loss += crit(model(x))
                loss.backward()
        """
    )
    found = accumulated_backward(bad, _site(bad))
    assert found is not None and found.key == "loss"
    for reset in ["loss = 0", "loss = loss.detach()", "loss.detach_()", "loss = crit(model(x))"]:
        good = facts_of(
            f"""
            def f(loader):
                loss = 0
                for x in loader:
                    loss += crit(model(x))
                    loss.backward()
                    if cond:
                        {reset}
            """
        )
        assert accumulated_backward(good, _site(good)) is None, reset


def test_accumulation_through_a_derived_name_and_enclosing_loop():
    f = facts_of(
        """
        def f(loader, epochs):
            running = 0
            for e in range(epochs):
                running = running + reg()
                for x in loader:
                    loss = running / 2
                    loss.backward()
        """
    )
    found = accumulated_backward(f, _site(f))
    assert found is not None and found.key == "running" and found.loop is f.loops[0]


def test_unused_retained_graph():
    fresh = facts_of(
        """
        def f(model, train_loader, device):
            for x, y in train_loader:
                x = x.to(device)
                loss = crit(model(x), y)
                loss.backward(retain_graph=True)
        """
    )
    assert unused_retained_graph(fresh, _site(fresh)) is fresh.loops[0]
    carried = ["out, h = model(x, h)", "loss = crit(out, y)"]  # state from the previous iteration
    from_before = ["loss = crit(feats, y)"]  # a graph computed before the loop
    for body in (carried, from_before):
        lines = "\n".join("        " + line for line in body + ["loss.backward(retain_graph=True)"])
        f = facts_of(
            "def f(model, train_loader, device):\n"
            "    feats = model(z)\n"
            "    h = None\n"
            "    for x, y in train_loader:\n" + lines + "\n"
        )
        assert unused_retained_graph(f, _site(f)) is None, body
    two = facts_of(
        """
        def f(model, train_loader):
            for x, y in train_loader:
                loss = crit(model(x), y)
                loss.backward(retain_graph=True)
                other = crit(model(y), x)
                other.backward()
        """
    )
    assert unused_retained_graph(two, _site(two)) is None


def test_graph_accumulation():
    f = facts_of(
        """
        def train(model, loader, opt):
            total, totals, seen = 0, [], 0
            for x, y in loader:
                loss = crit(model(x), y)
                loss.backward()
                opt.step()
                total += loss
                totals.append(loss.item())
                seen += x.size(0)
        """
    )
    found = {
        d.key: graph_accumulation(f, d, "train") for ds in f.defs.values() for d in ds if d.kind == "accum"
    }
    assert [cst.Module([]).code_for_node(v) for v in found["total"]] == ["loss"]
    assert found["totals"] == [] and found["seen"] == []
    assert all(graph_accumulation(f, d, "forward") == [] for ds in f.defs.values() for d in ds)
