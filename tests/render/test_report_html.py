"""The report a person reads (issue 11, item 8): pictures under their findings, names, rows, the exception."""

import re
import shutil

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import gradlint  # noqa: E402
from gradlint.render import render_trace  # noqa: E402
from gradlint.render.dot import COLORS  # noqa: E402
from gradlint.render.html import report_html, what_and_fix  # noqa: E402

HAVE_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAVE_DOT, reason="Graphviz `dot` is not installed")


def leak_loop():
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    history = []
    with gradlint.trace() as t:
        for _ in range(3):
            opt.zero_grad()
            loss = model(torch.randn(32, 8)).pow(2).mean()
            loss.backward()
            opt.step()
            history.append(loss)
    return t, model, history


@needs_dot
def test_picture_sits_in_its_findings_row_with_caption_and_fix():
    t, model, history = leak_loop()
    html = report_html(t, namespaces=[{"model": model, "history": history}])
    rows = re.findall(r"<tr>.*?</tr>", html.split("<table class='findings'>")[1].split("</table>")[0])
    (row,) = [r for r in rows if "GR002" in r]
    assert "data:image/png;base64," in row and "<figcaption>" in row
    cap = row.split("<figcaption>")[1]
    assert "Fix:" in cap and "history.append(loss.item())" in cap
    assert "target='_blank'" in row  # a click opens the picture at full size


def test_roots_and_parameters_carry_the_users_names(tmp_path):
    t, model, history = leak_loop()
    src = render_trace(t, tmp_path / "g.dot", namespaces=[{"model": model, "history": history}]).read_text()
    assert re.search(r"history\[\d\]\n\(\)", src)  # the root is named after its holder, not "output"
    assert "model.0.weight" in src


def test_gr003_mark_on_the_freed_node(tmp_path):
    rnn = nn.GRU(3, 4)
    opt = torch.optim.SGD(rnn.parameters(), lr=0.01)
    h = torch.zeros(1, 2, 4)
    with pytest.raises(RuntimeError), gradlint.trace() as t:
        for _ in range(3):
            out, h = rnn(torch.randn(5, 2, 3), h)
            opt.zero_grad()
            out.sum().backward()
            opt.step()
    src = render_trace(t, tmp_path / "g.dot", namespaces=[{"h": h, "out": out}]).read_text()
    assert "GR003" in src.split("label=", 2)[2]  # on a node, not only in the title


def test_saved_weights_updated_by_a_step_are_not_drawn_as_gr004(tmp_path):
    model = nn.Sequential(nn.Linear(6, 6), nn.Tanh(), nn.Linear(6, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gradlint.trace() as t:
        for _ in range(2):
            loss = model(torch.randn(4, 6)).pow(2).mean()
            opt.zero_grad()
            loss.backward(retain_graph=True)
            opt.step()
    assert "GR004" not in [f.code for f in t.findings]
    src = render_trace(t, tmp_path / "g.dot").read_text()
    assert f'color="{COLORS["inplace"]}"' not in src
    assert "saved tensor updated since" in src


def test_one_picture_for_two_findings_on_one_graph():
    from gradlint.render.from_trace import pick_graphs

    t, model, history = leak_loop()
    picks = pick_graphs(t, [{"history": history}])
    keys = [tuple(sorted(id(r.grad_fn) for r in p.roots)) for p in picks]
    assert len(keys) == len(set(keys))


def test_exception_nodes_alive_and_collapsed_rows():
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with pytest.raises(ValueError), gradlint.trace() as t:
        for i in range(300):
            opt.zero_grad()
            model(torch.randn(2, 4)).pow(2).mean().backward()
            opt.step()
        raise ValueError("loader crashed")
    html = report_html(t, images=[])
    assert "The run ended with <b>ValueError</b>: loader crashed" in html
    table = html.split("<table class='iterations'>")[1].split("</table>")[0]
    assert table.count("<tr>") <= 4  # header + a few runs, not 300 rows
    assert "nodes alive at end" in table
    assert "ValueError: loader crashed" in str(t)
    assert len(str(t).splitlines()) < 40


def test_node_leak_shows_nodes_alive():
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with gradlint.trace() as t:
        total = 0
        for _ in range(4):
            opt.zero_grad()
            loss = model(torch.randn(2, 4)).pow(2).mean()
            loss.backward()
            opt.step()
            total = total + loss
    assert [f.code for f in t.findings] == ["GR002"]
    assert t.iterations[-1]["nodes_alive_at_end"] > 0
    html = report_html(t, images=[])
    assert "nodes alive" in html


def test_caption_split():
    what, fix = what_and_fix(
        "Trying to backward through the graph a second time (or directly access saved tensors after they "
        "have already been freed). gradlint: backward at a.py:3 goes through a freed graph. Fix: call backward "
        "once; do NOT add retain_graph=True."
    )
    assert what.startswith("backward at a.py:3") and fix == "call backward once"


def test_render_after_the_block_draws_the_retained_graph(tmp_path):
    """What tests/gpu/check_cuda.py does on CUDA, on CPU: t.render() after the `with` block, `loss` alive."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 1))
    with gradlint.trace() as t:
        loss = model(torch.randn(32, 64)).pow(2).mean()
        loss.backward(retain_graph=True)
    src = t.render(tmp_path / "g.dot").read_text()
    assert "digraph" in src and "GR001" in src
    del loss
    import gc

    gc.collect()
    with pytest.raises(LookupError, match="call t.render"):
        t.render(tmp_path / "h.dot")
