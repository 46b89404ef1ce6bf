"""Step-time overhead of gradlint.trace() on CUDA training steps, beside PyTorch's own tools (prints figures).

    python benchmarks/bench_gpu.py                      # H200-sized: ResNet-50 and a 12x1024 Transformer
    python benchmarks/bench_gpu.py --json out.json      # also write the figures as JSON
    python benchmarks/bench_gpu.py --cpu-smoke          # no GPU: tiny models on CPU, to check the script runs

Configurations, timed in one process and interleaved round by round (the order rotates every round):
baseline, trace(), trace(every=10), trace(every=1000) (unsampled steps only, after its first), the PyTorch profiler (profile_memory=True, with_stack=True), CUDA memory
history recording (torch.cuda.memory._record_memory_history) and anomaly mode (detect_anomaly).
Each round enters the configuration, runs one untimed step, then times `--steps` steps between two
torch.cuda.synchronize() calls; the context's exit (the profiler's post-processing) is timed apart.
A configuration's ratio is the median over rounds of (its step time / that round's baseline step time).
With --steps 10, every=10 times exactly one fully traced iteration in ten.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
import warnings

warnings.filterwarnings("ignore")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

import gradlint  # noqa: E402

# trace_every1000: after its first step only unsampled steps, i.e. what every=N costs between samples
CONFIGS = (
    "baseline",
    "trace",
    "trace_every10",
    "trace_every1000",
    "profiler_mem_stack",
    "cuda_memory_history",
    "anomaly",
)


# ----------------------------------------------------------------------------- models


def resnet50(small):
    try:
        import torchvision
    except ImportError:  # the CPU dev venv has no torchvision; the GPU machine has it
        sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
        from bench_tracer import ResNet50Like

        model, name = ResNet50Like(), "ResNet-50 (bench_tracer's copy: no torchvision)"
    else:
        model, name = torchvision.models.resnet50(weights=None), "torchvision ResNet-50"
    bs, hw = (2, 64) if small else (64, 224)
    name += f", batch {bs}, {hw}x{hw}, bf16 autocast"

    def batch(dev):
        return torch.randn(bs, 3, hw, hw, device=dev), torch.randint(0, 1000, (bs,), device=dev)

    return name, model, batch


class EncoderLM(nn.Module):
    def __init__(self, d, layers, heads, vocab):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.enc = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.1, batch_first=True, norm_first=True),
            layers,
            enable_nested_tensor=False,
        )
        self.out = nn.Linear(d, vocab)

    def forward(self, x):
        return self.out(self.enc(self.emb(x))).flatten(0, 1)


def transformer(small):
    d, layers, heads, vocab, bs, seq = (64, 2, 4, 512, 2, 32) if small else (1024, 12, 16, 32000, 16, 512)
    model = EncoderLM(d, layers, heads, vocab)
    name = f"TransformerEncoder {layers}x{d} ({heads} heads, vocab {vocab}), batch {bs}, seq {seq}, bf16 autocast"

    def batch(dev):
        return torch.randint(0, vocab, (bs, seq), device=dev), torch.randint(
            0, vocab, (bs * seq,), device=dev
        )

    return name, model, batch


# ----------------------------------------------------------------------------- configurations


@contextlib.contextmanager
def memory_history():
    torch.cuda.memory._record_memory_history(max_entries=100_000)
    try:
        yield
    finally:
        torch.cuda.memory._record_memory_history(enabled=None)


def make_ctx(name, cuda):
    if name == "baseline":
        return contextlib.nullcontext()
    if name == "trace":
        return gradlint.trace()
    if name == "trace_every10":
        return gradlint.trace(every=10)
    if name == "trace_every1000":
        return gradlint.trace(every=1000)
    if name == "profiler_mem_stack":
        acts = [torch.profiler.ProfilerActivity.CPU]
        if cuda:
            acts.append(torch.profiler.ProfilerActivity.CUDA)
        return torch.profiler.profile(activities=acts, profile_memory=True, with_stack=True)
    if name == "cuda_memory_history":
        return memory_history()
    if name == "anomaly":
        return torch.autograd.detect_anomaly()  # as users turn it on (check_nan=True)
    raise ValueError(name)


# ----------------------------------------------------------------------------- timing


def bench(factory, dev, small, steps, rounds, warmup, deadline):
    cuda = dev == "cuda"
    torch.manual_seed(0)
    name, model, batch = factory(small)
    model = model.to(dev)
    if cuda:
        model = model.to(memory_format=torch.channels_last) if "ResNet" in name else model
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    crit = nn.CrossEntropyLoss()
    x, y = batch(dev)
    if cuda and x.dim() == 4:
        x = x.to(memory_format=torch.channels_last)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=dev, dtype=torch.bfloat16):
            loss = crit(model(x), y)
        loss.backward()
        opt.step()

    def sync():
        if cuda:
            torch.cuda.synchronize()

    configs = [c for c in CONFIGS if cuda or c != "cuda_memory_history"]
    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    sync()
    print(f"\n{name} on {dev}: warm-up {warmup} steps in {time.perf_counter() - t0:.1f}s", flush=True)

    per_step = {c: [] for c in configs}
    exit_s = {c: [] for c in configs}
    peak = {c: 0 for c in configs}
    done = 0
    for r in range(rounds):
        if r >= 2 and time.perf_counter() > deadline:
            print(f"  time budget reached: stopping after {r} rounds", flush=True)
            break
        order = configs[r % len(configs) :] + configs[: r % len(configs)]
        for c in order:
            ctx = make_ctx(c, cuda)
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ctx.__enter__()
                try:
                    step()  # untimed: the first step inside a context pays its one-time setup
                    sync()
                    ts = time.perf_counter()
                    for _ in range(steps):
                        step()
                    sync()
                    dt = (time.perf_counter() - ts) / steps
                finally:
                    te = time.perf_counter()
                    ctx.__exit__(None, None, None)
                    sync()
                    exit_s[c].append(time.perf_counter() - te)
            per_step[c].append(dt)
            if cuda:
                peak[c] = max(peak[c], torch.cuda.max_memory_allocated())
        done += 1

    base = per_step["baseline"]
    out = {"model": name, "device": dev, "rounds": done, "steps_per_round": steps, "configs": {}}
    print(
        f"  {'config':<20} {'ms/step':>9} {'ratio':>7} {'min..max ratio':>15} {'exit s':>7} {'peak GiB':>9}"
    )
    for c in configs:
        ratios = [v / b for v, b in zip(per_step[c], base)]
        rec = {
            "ms_per_step_median": statistics.median(per_step[c]) * 1e3,
            "ratio_median": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "exit_s_median": statistics.median(exit_s[c]),
            "peak_bytes": peak[c],
            "ms_per_step_rounds": [v * 1e3 for v in per_step[c]],
        }
        out["configs"][c] = rec
        print(
            f"  {c:<20} {rec['ms_per_step_median']:9.2f} {rec['ratio_median']:6.3f}x "
            f"{rec['ratio_min']:6.3f}..{rec['ratio_max']:.3f} {rec['exit_s_median']:7.2f} {peak[c] / 2**30:9.2f}",
            flush=True,
        )
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-smoke", action="store_true", help="without CUDA: tiny models on CPU")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per round (default 10; smoke 2)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds (default 5; smoke 2)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 10; smoke 1)")
    ap.add_argument("--budget-s", type=float, default=170.0, help="stop adding rounds (after 2) past this")
    ap.add_argument("--models", default="resnet50,transformer")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)

    cuda = torch.cuda.is_available()
    if not cuda and not a.cpu_smoke:
        print("no CUDA device; GPU benchmark skipped (use --cpu-smoke to check the script on CPU)")
        return 0
    small = a.cpu_smoke
    dev = "cuda" if cuda and not small else "cpu"
    steps = a.steps or (2 if small else 10)
    rounds = a.rounds or (2 if small else 5)
    warmup = a.warmup or (1 if small else 10)
    if dev == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        card = torch.cuda.get_device_name()
    else:
        torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
        card = "cpu (smoke run: tiny sizes, figures meaningless)"
    print(
        f"card: {card}; torch {torch.__version__}, CUDA {torch.version.cuda}; gradlint {gradlint.__version__}"
    )
    print(f"{steps} timed steps per round, {rounds} rounds, {warmup} warm-up steps, budget {a.budget_s:.0f}s")

    factories = {"resnet50": resnet50, "transformer": transformer}
    names = [m for m in a.models.split(",") if m]
    start = time.perf_counter()
    results = []
    for i, m in enumerate(names):
        # each model gets its share of what is left of the budget
        left = a.budget_s - (time.perf_counter() - start)
        deadline = time.perf_counter() + left / (len(names) - i)
        try:
            results.append(bench(factories[m], dev, small, steps, rounds, warmup, deadline))
        except Exception as e:  # one model failing must not lose the other's figures
            import traceback

            traceback.print_exc()
            results.append({"model": m, "error": f"{type(e).__name__}: {e}"})
        if dev == "cuda":
            torch.cuda.empty_cache()

    print(f"\nSummary on {card} (ratio = step time / baseline step time, median over rounds):")
    print(f"  {'model':<12} " + " ".join(f"{c:>20}" for c in CONFIGS))
    for m, r in zip(names, results):
        cells = []
        for c in CONFIGS:
            rec = r.get("configs", {}).get(c)
            cells.append(f"{rec['ratio_median']:19.3f}x" if rec else f"{'-':>20}")
        print(f"  {m:<12} " + " ".join(cells))
    print(f"total {time.perf_counter() - start:.0f}s")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(
                {"card": card, "torch": torch.__version__, "cuda": torch.version.cuda, "results": results},
                fh,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
