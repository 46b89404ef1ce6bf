"""Regenerate docs/images/leak_graph.png, the picture in the README's "At run time" section.

    .venv/bin/python scripts/make_readme_image.py            # writes docs/images/leak_graph.png
    .venv/bin/python scripts/make_readme_image.py --out x.svg

It runs a small training loop with the classic logging leak (`total_loss += loss`)
under gradlint.trace() and draws the graph that `total_loss` keeps alive, annotated
from the trace.  Needs torch and Graphviz's `dot` for PNG/SVG.
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Compiled as "train.py" so that the picture shows the lines a user would see.
TRAIN_PY = """\
import torch
from torch import nn

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
total_loss = 0
for step in range(3):
    opt.zero_grad()
    loss = model(torch.randn(32, 8)).pow(2).mean()
    loss.backward()
    opt.step()
    total_loss += loss          # GR002: keeps every step's graph alive
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "images" / "leak_graph.png"))
    args = ap.parse_args(argv)

    import gradlint
    from gradlint.render import annotations_from_trace

    ns = {"__name__": "__main__"}
    with gradlint.trace() as t:
        exec(compile(TRAIN_PY, "train.py", "exec"), ns)
    codes = [f.code for f in t.findings]
    assert "GR002" in codes, codes
    out = gradlint.render(
        ns["total_loss"],
        args.out,
        params=dict(ns["model"].named_parameters()),
        annotations=annotations_from_trace(t),
        output_names=["total_loss"],
        title="train.py: `total_loss += loss` keeps 3 steps of graphs alive (GR002)",
    )
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
