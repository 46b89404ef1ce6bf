"""gradlint.render: formats, annotations, big graphs, missing `dot`, no distutils."""

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import gradlint  # noqa: E402
from gradlint.render import GraphvizNotFoundError, NodeInfo, format_bytes, render, to_dot  # noqa: E402
from gradlint.render.dot import COLORS  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HAVE_DOT = subprocess.run(["which", "dot"], capture_output=True).returncode == 0
needs_dot = pytest.mark.skipif(
    not HAVE_DOT, reason="Graphviz `dot` is not installed (apt-get install -y graphviz)"
)

NODE_RE = re.compile(r'^\t("[^"]+"|\w+) \[', re.M)


def dot_nodes(src):
    return [n for n in NODE_RE.findall(src) if n not in ("graph", "node", "edge", "gradlint_legend")]


def mlp_loss():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    x = torch.randn(16, 4)
    return m, m(x).pow(2).mean()


def test_alive_then_freed_with_bytes_and_colours():
    m, loss = mlp_loss()
    before = to_dot(loss, params=dict(m.named_parameters()))
    # ReLU saves its (16, 8) float32 result: 512 bytes, shown in human units.
    assert re.search(r'ReluBackward0\nsaved 512 B \(alive\)" fillcolor="' + COLORS["alive"], before)
    assert "0.weight\n(8, 4)\ngrad: None" in before
    assert "saved tensors alive (memory held)" in before  # legend row
    loss.backward()
    after = to_dot(loss, params=dict(m.named_parameters()))
    assert re.search(r'ReluBackward0\nsaved: freed" fillcolor="' + COLORS["freed"], after)
    assert "(alive)" not in after
    assert "0.weight\n(8, 4)\ngrad: set" in after
    assert "saved tensors freed by backward" in after
    assert "saved tensors alive" not in after  # the legend lists only what is drawn


@needs_dot
@pytest.mark.parametrize(
    "suffix,magic",
    [(".png", b"\x89PNG\r\n\x1a\n"), (".svg", b"<svg"), (".dot", b"digraph"), (".gv", b"digraph")],
)
def test_format_from_suffix_after_backward(tmp_path, suffix, magic):
    m, loss = mlp_loss()
    loss.backward()
    out = gradlint.render(loss, tmp_path / f"g{suffix}", params=dict(m.named_parameters()))
    data = out.read_bytes()
    assert magic in data[:400]
    if suffix == ".svg":
        assert b"ReluBackward0" in data and b"saved: freed" in data


def test_unknown_suffix_is_a_clear_error(tmp_path):
    _, loss = mlp_loss()
    with pytest.raises(ValueError, match=r"\.png, \.svg, \.dot or \.gv"):
        render(loss, tmp_path / "g.jpeg")


def test_module_is_callable_after_package_import(tmp_path):
    import gradlint.render  # binds the module to gradlint.render

    _, loss = mlp_loss()
    assert gradlint.render(loss, tmp_path / "g.dot").read_text().startswith("digraph")


def test_annotations_mapping_and_callable():
    w = torch.randn(3, 3, requires_grad=True)
    h = (torch.randn(2, 3) @ w).tanh()
    loss = h.sum()
    tanh = h.grad_fn
    mm = tanh.next_functions[0][0]
    infos = {
        tanh: NodeInfo(
            saved_bytes=3 * 1024 * 1024,
            state="alive",
            source="train.py:12",
            codes=["GR004"],
            retains_grad=True,
        ),
        id(mm): {"source": "train.py:11", "codes": ["GR001"], "state": "freed"},
    }
    src = to_dot(loss, params={"w": w}, annotations=infos)
    assert (
        "TanhBackward0\nsaved 3.0 MiB (alive)\nretain_grad()\ntrain.py:12\nGR004: saved tensor modified in place"
        in src
    )
    tanh_line = next(
        line for line in src.splitlines() if "TanhBackward0" in line or "GR004:" in line and "color" in line
    )
    assert tanh_line
    assert f'color="{COLORS["inplace"]}"' in src and "peripheries=2" in src
    assert f'color="{COLORS["leak"]}"' in src and "train.py:11" in src
    assert "GR004: saved tensor modified in place" in src and "GR001/GR002: retained / leaked graph" in src
    # the same through a callable
    src2 = to_dot(loss, annotations=lambda node: infos.get(node) or infos.get(id(node)))
    assert "train.py:12" in src2 and "train.py:11" in src2
    with pytest.raises(ValueError):
        NodeInfo(state="gone")


def test_inplace_modification_is_detected_without_the_tracer():
    w = torch.randn(3, requires_grad=True)
    a = w * 2
    b = a.sin()  # saves a
    a.mul_(3)
    src = to_dot(b.sum())
    block = src[src.index("SinBackward0") :]
    assert block.startswith("SinBackward0\nsaved (alive)\nsaved tensor modified in place")
    assert f'color="{COLORS["inplace"]}"' in src


def test_anomaly_mode_gives_source_lines():
    w = torch.randn(3, requires_grad=True)
    with torch.autograd.detect_anomaly(check_nan=False):
        y = (w * 3).exp()  # this line
    line = sys._getframe().f_lineno - 1
    src = to_dot(y)
    assert f"test_render.py:{line}" in src


def test_format_bytes():
    assert [format_bytes(x) for x in (0, 1023, 1024, 1536, 5 * 2**20, 3 * 2**30)] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "1.5 KiB",
        "5.0 MiB",
        "3.0 GiB",
    ]


def _chain(n_ops):
    w = torch.randn(3, requires_grad=True)
    y = w
    for _ in range(n_ops // 2):
        y = y * 1.0001 + w
    return w, y.sum()


def test_10000_node_graph_is_walked_iteratively_and_capped(tmp_path):
    w, loss = _chain(10_000)
    assert sys.getrecursionlimit() < 10_000
    t0 = time.perf_counter()
    src = render(loss, tmp_path / "big.dot", max_nodes=150, collapse_to=40).read_text()
    elapsed = time.perf_counter() - t0
    nodes = dot_nodes(src)
    assert len(nodes) <= 40, len(nodes)
    assert re.search(r"10,00\d autograd nodes collapsed in creation order", src) and "max_nodes=None" in src
    assert elapsed < 30, elapsed
    full = to_dot(loss, max_nodes=None, legend=False)
    assert len(dot_nodes(full)) == 10_000 + 1 + 1 + 1  # ops + SumBackward + leaf + output
    loss.backward()  # and after backward
    src = to_dot(loss)
    assert "saved: freed" in src and len(dot_nodes(src)) <= 40


@needs_dot
def test_10000_node_graph_png_in_reasonable_time(tmp_path):
    _, loss = _chain(10_000)
    t0 = time.perf_counter()
    out = render(loss, tmp_path / "big.png")
    assert time.perf_counter() - t0 < 60
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _png_size(path):
    import struct

    return struct.unpack(">II", Path(path).read_bytes()[16:24])


@needs_dot
def test_resnet50_sized_graph_collapses_per_module(tmp_path):
    from resnet_like import ResNet50

    m = ResNet50(width=8, num_classes=10)
    loss = m(torch.randn(2, 3, 64, 64)).logsumexp(1).mean()
    params = dict(m.named_parameters())
    full = to_dot(loss, params=params, max_nodes=None)
    assert len(dot_nodes(full)) > 300  # ~180 ops + 161 parameters
    src = to_dot(loss, params=params)
    names = dot_nodes(src)
    assert len(names) <= 40
    for block in ["layer1.0", "layer2.3", "layer3.5", "layer4.2"]:
        assert f'"g_{block}" [label="{block}  [' in src
    assert "per module (depth 2)" in src
    out = render(loss, tmp_path / "resnet.png", params=params)
    width, height = _png_size(out)
    assert width < 2500 and height < 4000, (width, height)


def test_missing_dot_binary_is_one_clear_sentence_and_dot_source_still_works(tmp_path, monkeypatch):
    _, loss = mlp_loss()
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(GraphvizNotFoundError) as ei:
        render(loss, tmp_path / "g.png")
    msg = str(ei.value)
    assert "apt-get install -y graphviz" in msg and "brew install graphviz" in msg and ".dot" in msg
    assert msg.count(". ") == 0 and "\n" not in msg  # one sentence
    assert not (tmp_path / "g.png").exists()
    with pytest.raises(GraphvizNotFoundError):
        render(loss, tmp_path / "g.svg")
    assert render(loss, tmp_path / "g.dot").read_text().startswith("digraph")


def test_digraph_passthrough(tmp_path):
    import graphviz

    g = graphviz.Digraph()
    g.node("a", "from torchviz")
    assert "from torchviz" in render(g, tmp_path / "g.gv").read_text()


def test_no_distutils_or_torchviz_import():
    # Python 3.12 has no distutils; torchviz imports it at import time.
    code = (
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('distutils', 'torchviz', 'setuptools'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, _Block())\n"
        "import torch, gradlint, tempfile, os\n"
        "w = torch.randn(3, requires_grad=True)\n"
        "loss = (w * 2).sin().sum(); loss.backward()\n"
        "d = tempfile.mkdtemp()\n"
        "src = gradlint.render(loss, os.path.join(d, 'g.dot')).read_text()\n"
        "assert 'SinBackward0' in src\n"
        "assert 'distutils' not in sys.modules and 'torchviz' not in sys.modules\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_torchviz_limits_that_the_renderer_works_around():
    """Documents why gradlint does not call torchviz.make_dot (see render/walk.py)."""
    torchviz = pytest.importorskip("torchviz")  # imports distutils: only on Python < 3.12
    w = torch.randn(3, requires_grad=True)
    loss = (w * 2).sin().sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="freed"):
        torchviz.make_dot(loss, show_saved=True)
    assert "saved: freed" in to_dot(loss)


def test_make_dot_is_a_torchviz_compatible_entry_point():
    from gradlint.render import make_dot

    m, loss = mlp_loss()
    loss.backward()
    g = make_dot(loss, params=dict(m.named_parameters()), show_attrs=True, show_saved=True)
    assert type(g).__name__ == "Digraph"
    assert "ReluBackward0\nsaved: freed" in g.source and "2.weight" in g.source
    # from a grad_fn node, without an output tensor
    assert "output" not in to_dot(loss.grad_fn, legend=False) and "MeanBackward0" in to_dot(loss.grad_fn)
