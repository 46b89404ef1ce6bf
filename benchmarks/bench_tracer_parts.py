"""Where the tracer's time goes on an op-bound step: each part of the trace switched off in turn (prints figures).

    python benchmarks/bench_tracer_parts.py --clock process --rounds 9

The model is bench_tracer's deep narrow MLP (a step costs what its Python and dispatch cost, as a GPU step's
CPU side does). Each configuration below is a full trace() with ONE part replaced by a no-op, so the step
time it saves is what that part costs; the findings that part serves are named beside it. The parts overlap
a little (a node's site is also read when it dies), so the savings do not add up exactly. A part switched
off here breaks the findings it serves: this is a measurement, never a mode to run.

    mode_floor   a no-op Python function mode + identity saved-tensor hooks (what the design costs at least)
    -site        the user-frame lookup per node and per node death (every finding's line, render's labels)
    -after_op    the node tag per torch call (graphs, nodes alive: GR001, GR002, GR003, render)
    -pack        the saved-tensor handle's bookkeeping (bytes per graph/device, GR004 at the write: GR001,
                 GR002 bytes, GR004); the version check stays
    -backward    the graph walk before each backward (grouping, GR003 before torch raises, GR006 reach)
    -boundary    the iteration-boundary checks (GR001 filing, GR002 leak search, GR006)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
import warnings

warnings.filterwarnings("ignore")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from bench_tracer import _count_calls, _mode_floor, deep_mlp  # noqa: E402

import gradlint  # noqa: E402
from gradlint.runtime import _frames, _tracer, handles  # noqa: E402

_ORIG = {
    "after": _tracer.Trace._after_op,
    "pack": handles.SavedTensorHooks.pack,
    "backward": _tracer.Trace._run_backward,
    "boundary": _tracer.Trace._boundary_checks,
    "site": _frames.user_site,
}


def _light_pack(self, t):
    return handles.Light(t.detach(), t._version)


def _plain_backward(self, kind, orig, sig, args, kwargs):
    return orig(*args, **kwargs)


def _set(part):
    """Switch ``part`` off (None: everything on)."""
    _tracer.Trace._after_op = (lambda self, r, name, pend: None) if part == "after_op" else _ORIG["after"]
    handles.SavedTensorHooks.pack = _light_pack if part == "pack" else _ORIG["pack"]
    _tracer.Trace._run_backward = _plain_backward if part == "backward" else _ORIG["backward"]
    _tracer.Trace._boundary_checks = (lambda self: None) if part == "boundary" else _ORIG["boundary"]
    _frames.user_site = (lambda depth=1, start=2: ()) if part == "site" else _ORIG["site"]


CONFIGS = {
    "baseline": (None, contextlib.nullcontext),
    "mode_floor": (None, _mode_floor),
    "trace": (None, gradlint.trace),
    "-site": ("site", gradlint.trace),
    "-after_op": ("after_op", gradlint.trace),
    "-pack": ("pack", gradlint.trace),
    "-backward": ("backward", gradlint.trace),
    "-boundary": ("boundary", gradlint.trace),
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--clock", choices=("wall", "process"), default="process")
    a = ap.parse_args(argv)
    clock = time.process_time if a.clock == "process" else time.perf_counter
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model, make_batch = deep_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    crit = nn.CrossEntropyLoss()
    x, y = make_batch("cpu")

    def step():
        opt.zero_grad(set_to_none=True)
        crit(model(x), y).backward()
        opt.step()

    for _ in range(3):
        step()
    _, n_ops = _count_calls(lambda: crit(model(x), y).backward())
    times = {c: [] for c in CONFIGS}
    names = list(CONFIGS)
    try:
        for r in range(a.rounds):
            for c in names[r % len(names) :] + names[: r % len(names)]:
                part, make = CONFIGS[c]
                _set(part)
                with make():
                    step()
                    t0 = clock()
                    for _ in range(a.steps):
                        step()
                    times[c].append((clock() - t0) / a.steps)
    finally:
        _set(None)
    ratio = {c: statistics.median(t / b for t, b in zip(times[c], times["baseline"])) for c in CONFIGS}
    base = statistics.median(times["baseline"])
    print(f"torch {torch.__version__}, clock {a.clock}, {a.rounds} rounds x {a.steps} steps")
    print(f"deep MLP, {n_ops} forward ops per step; baseline {base * 1e3:.2f} ms/step")
    print(f"  {'config':<12} {'ratio':>7} {'µs/fwd op vs baseline':>22} {'part costs µs/fwd op':>21}")
    for c in CONFIGS:
        over = (ratio[c] - 1) * base * 1e6 / n_ops
        saves = (ratio["trace"] - ratio[c]) * base * 1e6 / n_ops if c.startswith("-") else None
        cost = f"{saves:21.1f}" if saves is not None else f"{'':21}"
        print(f"  {c:<12} {ratio[c]:6.2f}x {over:22.1f} {cost}")


if __name__ == "__main__":
    main()
