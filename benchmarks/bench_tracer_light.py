"""What a sampled-out iteration of ``trace(every=N)`` still costs per call (prints figures).

    python benchmarks/bench_tracer_light.py

Between sampled iterations nothing per op is installed; what remains are the wrappers around
``backward()``, ``optimizer.step()`` and ``zero_grad()``. Each is timed on a one-element graph (so the
call itself costs little and the wrapper's share shows) without a trace and under ``trace(every=10**9)``
after its first iteration, i.e. in light mode; best of three runs of 20,000 calls, wall clock.
"""

from __future__ import annotations

import time
import warnings

warnings.filterwarnings("ignore")

import torch  # noqa: E402

import gradlint  # noqa: E402

N = 20_000


def main() -> None:
    x = torch.randn(4, requires_grad=True)
    opt = torch.optim.SGD([x], lr=0.01)

    def backward():
        x.sum().backward()

    cases = {"backward()": backward, "optimizer.step()": opt.step, "zero_grad()": opt.zero_grad}

    def best(fn) -> float:
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(N):
                fn()
            runs.append((time.perf_counter() - t0) / N * 1e6)
        return min(runs)

    print(f"torch {torch.__version__}; µs per call, best of 3 x {N}")
    for label, fn in cases.items():
        base = best(fn)
        with gradlint.trace(every=10**9):
            opt.step()  # ends iteration 0: from here on every iteration is a light one
            light = best(fn)
        print(f"  {label:<18} untraced {base:6.1f}   light {light:6.1f}   (+{light - base:.1f})")


if __name__ == "__main__":
    main()
