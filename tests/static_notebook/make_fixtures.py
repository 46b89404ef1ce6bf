"""Regenerate fixtures/notebooks/*.ipynb (run from the repository root).

The notebooks are written the way Jupyter writes them (nbformat 4, one-space
indent, sorted keys, ``ensure_ascii=False``, trailing newline) and carry
outputs, including an image, so fixes are tested on realistic files.  Expected
findings are marked in the code with ``# error: GLnnn`` as in fixtures/rules.
"""

from __future__ import annotations

import base64
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "notebooks"
PNG = base64.b64encode(bytes(range(256)) * 40).decode()


def md(text):
    return {"cell_type": "markdown", "metadata": {}, "source": _lines(text)}


def code(text, n=None, outputs=()):
    return {
        "cell_type": "code",
        "execution_count": n,
        "metadata": {},
        "outputs": list(outputs),
        "source": _lines(text),
    }


def stream(text):
    return {"name": "stdout", "output_type": "stream", "text": _lines(text)}


def image():
    return {
        "data": {"image/png": PNG, "text/plain": ["<Figure size 640x480 with 1 Axes>"]},
        "metadata": {},
        "output_type": "display_data",
    }


def _lines(text):
    text = text.strip("\n")
    return [ln + "\n" for ln in text.split("\n")[:-1]] + [text.split("\n")[-1]]


def notebook(cells):
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python", "version": "3.11.4"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


SETUP = """
%matplotlib inline
!pip install -q torch
import torch
import torch.nn as nn
"""

MODEL = """
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
criterion = nn.MSELoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
loader = [(torch.randn(8, 10), torch.randn(8, 1)) for _ in range(20)]
"""

BUGGY_TRAIN = """
total_loss = 0
for epoch in range(3):
    for x, y in loader:
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()  # error: GL006
        total_loss += loss  # error: GL003
    print(epoch, total_loss)
"""

GOOD_TRAIN = """
total_loss = 0.0
for epoch in range(3):
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        total_loss += loss.item()
    print(epoch, total_loss)
"""

BUGGY_EVAL = """
model.eval()
for x, y in loader:
    pred = model(x)  # error: GL017
    print(criterion(pred, y).item())
"""

GOOD_EVAL = """
model.eval()
with torch.no_grad():
    for x, y in loader:
        pred = model(x)
        print(criterion(pred, y).item())
"""

BUGGY_DATA = """
x, y = loader[0]
out = model(x)
out.data.clamp_(-1, 1)  # error: GL005
print(criterion(out, y).item())
"""

GOOD_DATA = """
x, y = loader[0]
out = model(x).clamp(-1, 1)
print(criterion(out, y).item())
"""

RNN_SETUP = """
import torch
from torch import nn

rnn = nn.LSTM(input_size=8, hidden_size=16)
head = nn.Linear(16, 1)
params = list(rnn.parameters()) + list(head.parameters())
optimizer = torch.optim.Adam(params, lr=1e-3)
criterion = nn.MSELoss()
chunks = [(torch.randn(5, 1, 8), torch.randn(5, 1, 1)) for _ in range(10)]
"""

BUGGY_RNN = """
hidden = None
for x, y in chunks:
    optimizer.zero_grad()
    out, hidden = rnn(x, hidden)  # error: GL008
    loss = criterion(head(out), y)
    loss.backward()
    optimizer.step()
"""

GOOD_RNN = """
hidden = None
for x, y in chunks:
    optimizer.zero_grad()
    if hidden is not None:
        hidden = tuple(h.detach() for h in hidden)
    out, hidden = rnn(x, hidden)
    loss = criterion(head(out), y)
    loss.backward()
    optimizer.step()
"""

BUGGY_ACCUM = """
loss = 0
for x, y in chunks:
    optimizer.zero_grad()
    out, _ = rnn(x)
    loss += criterion(head(out), y)
    loss.backward()  # error: GL001
    optimizer.step()
"""

GOOD_ACCUM = """
for x, y in chunks:
    optimizer.zero_grad()
    out, _ = rnn(x)
    loss = criterion(head(out), y)
    loss.backward()
    optimizer.step()
"""

BUGGY_INPLACE = """
x, y = chunks[0]
out, _ = rnn(x)
feat = out.detach()
feat.relu_()  # error: GL004
loss = criterion(head(out), y)
loss.backward()
"""

GOOD_INPLACE = """
x, y = chunks[0]
out, _ = rnn(x)
feat = out.detach().clone()
feat.relu_()
loss = criterion(head(out), y)
loss.backward()
"""

BASH = """
%%bash
echo "checkpoints:" && ls -la
"""

TIMED = """
%%time
print(sum(p.numel() for p in params))
"""


def main():
    nbs = {
        "buggy_training.ipynb": [
            md("# Regression\nA small training notebook with the usual autograd traps."),
            code(SETUP, 1),
            code(MODEL, 2),
            code(BUGGY_TRAIN, 3, [stream("0 tensor(20.1, grad_fn=<AddBackward0>)\n")]),
            md("## Evaluation"),
            code(BUGGY_EVAL, 4, [stream("0.93\n0.88\n")]),
            code(BUGGY_DATA, 5, [image()]),
            code(BASH, 6, [stream("checkpoints:\n")]),
        ],
        "correct_training.ipynb": [
            md("# Regression\nThe same notebook, written correctly."),
            code(SETUP, 1),
            code(MODEL, 2),
            code(GOOD_TRAIN, 3, [stream("0 20.1\n")]),
            md("## Evaluation"),
            code(GOOD_EVAL, 4, [stream("0.93\n0.88\n")]),
            code(GOOD_DATA, 5, [image()]),
            code(BASH, 6, [stream("checkpoints:\n")]),
        ],
        "buggy_rnn.ipynb": [
            md("# Sequence model — truncated BPTT"),
            code(RNN_SETUP, 1),
            code(TIMED, 2, [stream("1489\nCPU times: user 1 ms\n")]),
            code(BUGGY_RNN, 3),
            code(BUGGY_ACCUM, 4),
            code(BUGGY_INPLACE, 5, [image()]),
        ],
        "correct_rnn.ipynb": [
            md("# Sequence model — truncated BPTT"),
            code(RNN_SETUP, 1),
            code(TIMED, 2, [stream("1489\nCPU times: user 1 ms\n")]),
            code(GOOD_RNN, 3),
            code(GOOD_ACCUM, 4),
            code(GOOD_INPLACE, 5, [image()]),
        ],
    }
    ROOT.mkdir(parents=True, exist_ok=True)
    for name, cells in nbs.items():
        text = json.dumps(notebook(cells), indent=1, sort_keys=True, ensure_ascii=False) + "\n"
        (ROOT / name).write_text(text, encoding="utf-8")
        print("wrote", ROOT / name)


if __name__ == "__main__":
    main()
