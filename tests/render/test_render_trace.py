"""Annotations from gradlint.trace(): source lines, bytes, GR codes; render_trace / trace_png."""

import re
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import gradlint  # noqa: E402
from gradlint.render import annotations_from_trace, render_trace, to_dot, trace_png  # noqa: E402
from gradlint.render.dot import COLORS  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).name
HAVE_DOT = shutil.which("dot") is not None
SRC = Path(__file__).read_text().splitlines()


def line_of(marker):
    (n,) = [i + 1 for i, line in enumerate(SRC) if line.rstrip().endswith("# <" + marker + ">")]
    return n


def leak_loop(steps=3):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with gradlint.trace() as t:
        total_loss = 0
        for _ in range(steps):
            opt.zero_grad()
            loss = model(torch.randn(32, 8)).pow(2).mean()  # <fwd>
            loss.backward()
            opt.step()
            total_loss += loss  # <acc>
    return t, model, total_loss


def test_trace_annotations_source_lines_bytes_and_leak_code():
    t, model, total_loss = leak_loop()
    assert "GR002" in [f.code for f in t.findings]
    src = to_dot(total_loss, params=dict(model.named_parameters()), annotations=annotations_from_trace(t))
    assert f"{HERE}:{line_of('fwd')}" in src and f"{HERE}:{line_of('acc')}" in src
    # ReLU saved its (32, 16) float32 output: 2 KiB, freed by backward; the tracer remembers the size
    assert "ReluBackward0\nsaved: freed (2.0 KiB)" in src
    assert f'color="{COLORS["leak"]}"' in src and "GR002" in src
    assert "0.weight\n(16, 8)\ngrad: set" in src


def test_render_trace_default_picks_the_leaked_graph_and_names_leaves(tmp_path):
    t, model, total_loss = leak_loop()
    out = render_trace(t, tmp_path / "leak.dot", namespaces=[{"total_loss": total_loss}])
    src = out.read_text()
    assert "total_loss\n()" in src  # the output is named after its holder
    assert 'label="GR002 ' in src  # the title names the finding
    assert "0.weight" in src  # parameter names found from the live modules
    # Trace objects are accepted by gradlint.render itself
    assert "GR002" in gradlint.render(t, tmp_path / "t.dot").read_text()


def test_render_trace_graph_id_and_dead_graph():
    model = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with gradlint.trace() as t:
        for _ in range(2):
            loss = model(torch.randn(64, 10)).pow(2).mean()
            opt.zero_grad()
            loss.backward(retain_graph=True)  # <retain>
            opt.step()
    alive = [g for g in t.graphs if g.freed is None and g.alive_at_exit]
    assert alive
    gid = alive[-1].id
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        src = render_trace(t, Path(d) / "g.dot", graph=gid).read_text()
        assert "TanhBackward0\nsaved 8.0 KiB (alive)" in src  # (64, 32) float32 output kept by retain_graph
        dead = [g.id for g in t.graphs if g.id != gid and g.freed is not None]
        with pytest.raises(LookupError, match="not alive any more"):
            render_trace(t, Path(d) / "g.dot", graph=dead[0] if dead else 10_000)


def test_gr004_node_is_marked():
    x = torch.randn(5, requires_grad=True)
    with pytest.raises(RuntimeError):
        with gradlint.trace() as t:
            z = x.sigmoid()  # <sig>
            z.detach().add_(1)
            z.sum().backward()
    src = to_dot(z, annotations=annotations_from_trace(t))
    assert re.search(
        r"SigmoidBackward0\nsaved 20 B \(alive\)\n\S*"
        + re.escape(f"{HERE}:{line_of('sig')}")
        + r"\nGR004: saved tensor modified in place",
        src,
    )
    assert f'color="{COLORS["inplace"]}"' in src


@pytest.mark.skipif(not HAVE_DOT, reason="Graphviz `dot` is not installed")
def test_trace_png_and_the_tracers_html_hook():
    t, _, total_loss = leak_loop()
    png = trace_png(t)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    from gradlint.render.html import report_html

    html = report_html(t)
    assert "data:image/png;base64," in html and "<table class='findings'>" in html


@pytest.mark.skipif(not HAVE_DOT, reason="Graphviz `dot` is not installed")
def test_readme_image_script(tmp_path):
    import runpy

    out = tmp_path / "leak.png"
    # in-process: the script's main(argv) (no second interpreter importing torch again)
    main = runpy.run_path(str(ROOT / "scripts" / "make_readme_image.py"), run_name="make_readme_image")[
        "main"
    ]
    assert main(["--out", str(out)]) in (0, None)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (ROOT / "docs" / "images" / "leak_graph.png").exists()
