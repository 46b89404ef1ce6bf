"""Notebook use: `%load_ext gradlint`, `%%gradlint_trace`, rich display, and the quickstart notebook."""

import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
IPython = pytest.importorskip("IPython", reason="IPython is not installed (pip install ipykernel)")

ROOT = Path(__file__).resolve().parents[2]
HAVE_DOT = shutil.which("dot") is not None

LEAK_CELL = """\
net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
opt = torch.optim.SGD(net.parameters(), lr=0.01)
total_loss = 0
for step in range(3):
    opt.zero_grad()
    loss = net(torch.randn(32, 8)).pow(2).mean()
    loss.backward()
    opt.step()
    total_loss += loss
"""


@pytest.fixture(scope="module")
def ip():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_cell("import torch\nfrom torch import nn\nimport gradlint\n%load_ext gradlint")
    yield shell
    shell.run_cell("%reset -f")


def _html_outputs(cap):
    return [o.data["text/html"] for o in cap.outputs if "text/html" in o.data]


def test_cell_magic_traces_the_cell_and_displays_the_report(ip):
    from IPython.utils.capture import capture_output

    with capture_output() as cap:
        res = ip.run_cell("%%gradlint_trace leak_t\n" + LEAK_CELL)
    assert res.success, res.error_in_exec
    (html,) = _html_outputs(cap)
    assert "class='gradlint-report'" in html and "<table class='findings'>" in html
    assert "GR002" in html and "total_loss" in html
    if HAVE_DOT:
        assert "data:image/png;base64," in html  # the leaked graph's picture, inline
    t = ip.user_ns["leak_t"]
    (leak,) = t.findings  # one leak, held by the user's variable (not by IPython's own namespaces)
    assert leak.code == "GR002" and leak.details.get("holder") == "total_loss"
    # line numbers point into the cell (IPython's cell cache), line 9: `total_loss += loss`
    assert leak.line == 9


def test_cell_magic_reraises_after_showing_the_report(ip):
    from IPython.utils.capture import capture_output

    cell = (
        "%%gradlint_trace bad\n"
        "w = torch.randn(3, requires_grad=True)\n"
        "loss = 0\n"
        "for j in range(3):\n"
        "    loss += (w * j).sin().sum()\n"
        "    loss.backward()\n"
    )
    with capture_output() as cap:
        res = ip.run_cell(cell)
    assert not res.success
    assert type(res.error_in_exec).__name__ == "BackwardThroughFreedGraphError"
    (html,) = _html_outputs(cap)
    assert "GR003" in html
    assert [f.code for f in ip.user_ns["bad"].findings] == ["GR003"]


def test_trace_as_last_expression_renders_the_rich_report(ip):
    ip.run_cell(
        "with gradlint.trace() as t2:\n    (torch.randn(3, requires_grad=True) * 2).sum().backward()\n"
    )
    t2 = ip.user_ns["t2"]
    data, _ = ip.display_formatter.format(t2)
    html = data["text/html"]
    assert "class='gradlint-report'" in html and "No findings." in html
    from gradlint.render.html import report_html

    assert "<table class='findings'>" in report_html(ip.user_ns["leak_t"], images=[])


def test_bad_magic_arguments(ip):
    res = ip.run_cell("%%gradlint_trace --every\npass\n")
    assert not res.success and "usage: %%gradlint_trace" in str(res.error_in_exec)


def test_quickstart_notebook_executes(tmp_path):
    nbformat = pytest.importorskip("nbformat", reason="pip install nbformat nbclient ipykernel")
    nbclient = pytest.importorskip("nbclient", reason="pip install nbformat nbclient ipykernel")
    pytest.importorskip("ipykernel", reason="pip install ipykernel")
    nb = nbformat.read(ROOT / "docs" / "notebooks" / "quickstart.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    t0 = time.perf_counter()
    client.execute()  # raises CellExecutionError on any error outside cells tagged raises-exception
    elapsed = time.perf_counter() - t0
    assert elapsed < 150, elapsed  # ~10 s of CPU; generous for loaded CI machines
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert [e.ename for e in errors] == ["BackwardThroughFreedGraphError"]
    assert "GR003" in errors[0].evalue and "sum the losses and call backward once" in errors[0].evalue
    html = [o.data["text/html"] for c in code for o in c.outputs if "text/html" in o.get("data", {})]
    assert any("No findings." in h for h in html)  # the fixed loop
    assert any("GR002" in h and "total_loss" in h for h in html)  # the leak, named
    if HAVE_DOT:
        assert any("image/png" in o.get("data", {}) for c in code for o in c.outputs)
        assert (tmp_path / "total_loss.png").exists()


def test_locations_read_cell_in_n_line_k(ip):
    res = ip.run_cell(
        "with gradlint.trace() as t3:\n"
        "    w3 = torch.randn(3, requires_grad=True)\n"
        "    acc = 0\n"
        "    for j in range(3):\n"
        "        acc = acc + (w3 * j).sin().sum()\n"
        "        acc.backward()\n",
        store_history=True,  # as a notebook runs cells: In[n] counts
    )
    n = ip.execution_count - 1
    assert type(res.error_in_exec).__name__ == "BackwardThroughFreedGraphError"
    (f,) = ip.user_ns["t3"].findings
    assert (f.filename, f.line) == (f"Cell In[{n}]", 6)
    assert f"Cell In[{n}], line 5" in f.message  # where `acc = acc + ...` accumulates
    assert "ipykernel" not in f.message and ".py" not in str(f.filename)
    assert f"Cell In[{n}], line 6" in str(ip.user_ns["t3"])


def test_cell_magic_locations_read_cell_in_n(ip):
    res = ip.run_cell("%%gradlint_trace t4\n" + LEAK_CELL, store_history=True)
    assert res.success
    (leak,) = ip.user_ns["t4"].findings
    assert leak.filename == f"Cell In[{ip.execution_count - 1}]" and leak.line == 9
