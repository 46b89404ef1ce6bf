"""Overhead of gradlint.trace() per training step (prints figures; not a test).

    python benchmarks/bench_tracer.py            # CPU: small MLP, small CNN, small transformer
    python benchmarks/bench_tracer.py --compile  # + a compiled model under trace() vs the same model eager under trace()
    python benchmarks/bench_tracer.py --clock process   # CPU time of this process (less noise on a shared machine)
    python benchmarks/bench_tracer.py --gpu      # + CUDA: ResNet-50-like (bs 64, bf16 autocast), 12-layer d=1024 encoder
    python benchmarks/bench_tracer.py --per-op   # only the per-op cost: µs per torch call, op-bound model

--per-op isolates what the tracer adds per torch call, on a deep narrow MLP whose kernels are so small that
a step costs what its Python and dispatch cost, as a GPU step's CPU side does (the GPU runs the kernels
asynchronously, so a traced GPU step is slowed by the tracer only once its CPU time exceeds the GPU time).
It counts the torch calls a step makes under a function mode (forward ops, the tensor attributes the
step reads and writes) and prints, per configuration, the step time and the added µs per torch call and
per forward op. A GPU step's CPU time under the tracer is about
    baseline CPU time + forward ops x (added µs per forward op).

For each model, in the same process: step time without tracing, with trace() (default),
with trace(every=10) (sampling), with torch.autograd.detect_anomaly() and with
torch.profiler.profile(profile_memory=True, with_stack=True); ratios against the baseline.
Configurations are interleaved over several rounds (the order rotates); the median step time and the
median over rounds of each round's ratio to its baseline are reported.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
import warnings

warnings.filterwarnings("ignore")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

sys.path.insert(0, __file__.rsplit("/", 2)[0] if "/" in __file__ else "..")
import gradlint  # noqa: E402

# ----------------------------------------------------------------------------- models


def small_mlp():
    return nn.Sequential(
        nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)
    ), (lambda dev: (torch.randn(64, 256, device=dev), torch.randint(0, 10, (64,), device=dev)))


class _GatedBlock(nn.Module):
    """LayerNorm, Linear, GELU, a SiLU gate and a residual: mostly pointwise work, which inductor fuses."""

    def __init__(self, d):
        super().__init__()
        self.norm, self.lin = nn.LayerNorm(d), nn.Linear(d, d)

    def forward(self, x):
        h = nn.functional.gelu(self.lin(self.norm(x)), approximate="tanh")
        return x + h * torch.sigmoid(h) * 0.5


def pointwise_mlp():
    return nn.Sequential(*[_GatedBlock(128) for _ in range(4)], nn.Linear(128, 10)), (
        lambda dev: (torch.randn(512, 128, device=dev), torch.randint(0, 10, (512,), device=dev))
    )


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.f = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Linear(32 * 8 * 8, 10)

    def forward(self, x):
        return self.head(self.f(x).flatten(1))


def small_cnn():
    return SmallCNN(), (
        lambda dev: (torch.randn(32, 3, 32, 32, device=dev), torch.randint(0, 10, (32,), device=dev))
    )


class Bottleneck(nn.Module):
    def __init__(self, cin, mid, stride):
        super().__init__()
        cout = mid * 4
        self.c1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.b1 = nn.BatchNorm2d(mid)
        self.c2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False)
        self.b2 = nn.BatchNorm2d(mid)
        self.c3 = nn.Conv2d(mid, cout, 1, bias=False)
        self.b3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.down is None else self.down(x)
        out = self.relu(self.b1(self.c1(x)))
        out = self.relu(self.b2(self.c2(out)))
        out = self.b3(self.c3(out))
        out += idt
        return self.relu(out)


class ResNet50Like(nn.Module):
    def __init__(self, num_classes=1000):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        layers, cin = [], 64
        for mid, n, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            for i in range(n):
                layers.append(Bottleneck(cin, mid, stride if i == 0 else 1))
                cin = mid * 4
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.layers(self.stem(x)), 1), 1))


def resnet50_like():
    return ResNet50Like(), (
        lambda dev: (torch.randn(64, 3, 224, 224, device=dev), torch.randint(0, 1000, (64,), device=dev))
    )


class EncoderLM(nn.Module):
    def __init__(self, d=1024, layers=12, vocab=8192):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.enc = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(d, 16, 4 * d, dropout=0.1, batch_first=True),
            layers,
            enable_nested_tensor=False,
        )
        self.out = nn.Linear(d, vocab)

    def forward(self, x):
        return self.out(self.enc(self.emb(x))).flatten(0, 1)


class SmallEncoder(nn.Module):
    def __init__(self, d=64, layers=2, vocab=1000):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.enc = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(d, 4, 2 * d, dropout=0.1, batch_first=True),
            layers,
            enable_nested_tensor=False,
        )
        self.out = nn.Linear(d, vocab)

    def forward(self, x):
        return self.out(self.enc(self.emb(x))).flatten(0, 1)


def small_transformer():
    return SmallEncoder(), (
        lambda dev: (
            torch.randint(0, 1000, (16, 32), device=dev),
            torch.randint(0, 1000, (16 * 32,), device=dev),
        )
    )


def transformer_12x1024():
    return EncoderLM(), (
        lambda dev: (
            torch.randint(0, 8192, (16, 256), device=dev),
            torch.randint(0, 8192, (16 * 256,), device=dev),
        )
    )


def deep_mlp(depth=48, width=16, batch=4):
    layers = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.Tanh()]
    return nn.Sequential(*layers, nn.Linear(width, 10)), (
        lambda dev: (torch.randn(batch, width, device=dev), torch.randint(0, 10, (batch,), device=dev))
    )


# ----------------------------------------------------------------------------- timing


CONFIGS = ("baseline", "trace", "trace_every10", "detect_anomaly", "profiler")
CLOCK = time.perf_counter  # --clock process: time.process_time (this process's CPU time)


def _ctx(name):
    if name == "baseline":
        return contextlib.nullcontext()
    if name == "trace":
        return gradlint.trace()
    if name == "trace_every10":
        return gradlint.trace(every=10)
    if name == "detect_anomaly":
        return torch.autograd.detect_anomaly(check_nan=False)
    if name == "profiler":
        return torch.profiler.profile(profile_memory=True, with_stack=True)
    raise ValueError(name)


def bench_model(
    name, factory, device="cpu", steps=20, rounds=3, autocast_dtype=None, configs=CONFIGS, warmup=3
):
    torch.manual_seed(0)
    model, make_batch = factory()
    model = model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    crit = nn.CrossEntropyLoss()
    x, y = make_batch(device)
    cuda = device.startswith("cuda")

    def step():
        opt.zero_grad(set_to_none=True)
        if autocast_dtype is not None:
            with torch.autocast(device_type="cuda" if cuda else "cpu", dtype=autocast_dtype):
                loss = crit(model(x), y)
        else:
            loss = crit(model(x), y)
        loss.backward()
        opt.step()

    def sync():
        if cuda:
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    sync()
    times = {c: [] for c in configs}
    for r in range(rounds):
        for c in configs[r % len(configs) :] + configs[: r % len(configs)]:  # rotating: none always first
            n = steps if c != "profiler" else max(3, steps // 4)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with _ctx(c):
                    step()  # first step inside the context is not timed
                    sync()
                    t0 = CLOCK()
                    for _ in range(n):
                        step()
                    sync()
                    dt = (CLOCK() - t0) / n
            times[c].append(dt)
    med = {c: statistics.median(v) for c, v in times.items()}
    # the load of a shared machine drifts between rounds: a ratio is taken within each round (to that round's
    # baseline), and the median of those is reported
    ratio = {c: statistics.median(t / b for t, b in zip(times[c], times["baseline"])) for c in configs}
    print(f"{name} on {device}" + (f" ({autocast_dtype})" if autocast_dtype else "") + ":")
    for c in configs:
        print(f"  {c:<15} {med[c] * 1e3:9.2f} ms/step   {ratio[c]:6.2f}x")
    sys.stdout.flush()
    return ratio, med


def _count_calls(fn):
    """``(all torch calls, forward ops)`` one call of ``fn`` makes, seen by a function mode (attribute reads
    and writes such as ``p.grad`` count among all calls, not among forward ops)."""
    from torch.overrides import TorchFunctionMode

    counts = {"all": 0, "ops": 0}

    class Count(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            counts["all"] += 1
            if getattr(func, "__name__", "") not in ("__get__", "__set__"):
                counts["ops"] += 1
            return func(*args, **(kwargs or {}))

    with Count():
        fn()
    return counts["all"], counts["ops"]


@contextlib.contextmanager
def _mode_floor():
    """What any tracer built like gradlint's pays before doing any work: a Python function mode (off inside
    optimizer.step(), as gradlint's) and identity saved-tensor hooks."""
    from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook
    from torch.overrides import BaseTorchFunctionMode

    mode = BaseTorchFunctionMode()

    def pre(*a):
        torch._C._pop_torch_function_stack()  # (a pre-hook returning something replaces step's arguments)

    def post(*a):
        torch._C._push_on_torch_function_stack(mode)

    handles = [register_optimizer_step_pre_hook(pre), register_optimizer_step_post_hook(post)]
    try:
        with torch.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t), mode:
            yield
    finally:
        for h in handles:
            h.remove()


def bench_per_op(steps=30, rounds=5, depth=48):
    """µs the tracer adds per torch call on an op-bound model (see the module docstring)."""

    torch.manual_seed(0)
    model, make_batch = deep_mlp(depth)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    crit = nn.CrossEntropyLoss()
    x, y = make_batch("cpu")

    def forward_backward():
        crit(model(x), y).backward()

    def step():
        opt.zero_grad(set_to_none=True)
        forward_backward()
        opt.step()

    for _ in range(3):
        step()
    # what a function mode sees in a step, but optimizer.step() (gradlint's mode steps aside there, and since
    # this change also in zero_grad(); the count keeps zero_grad so that figures stay comparable)
    n_zero, _ = _count_calls(lambda: opt.zero_grad(set_to_none=True))
    n_fb, n_ops = _count_calls(forward_backward)
    n_all = n_zero + n_fb
    configs = {
        "baseline": contextlib.nullcontext,
        "mode_floor": _mode_floor,
        "trace": gradlint.trace,
        "trace_every10": lambda: gradlint.trace(every=10),
    }
    times = {c: [] for c in configs}
    names = list(configs)
    for r in range(rounds):
        for c in (
            names[r % len(names) :] + names[: r % len(names)]
        ):  # the order rotates: no config always first
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with configs[c]():
                    step()
                    t0 = CLOCK()
                    for _ in range(steps):
                        step()
                    times[c].append((CLOCK() - t0) / steps)
    # a shared machine's load drifts between rounds: ratios are taken within a round, then the median
    ratio = {c: statistics.median(t / b for t, b in zip(times[c], times["baseline"])) for c in configs}
    base = statistics.median(times["baseline"])
    med = {c: base * ratio[c] for c in configs}
    print(
        f"per-op cost: deep MLP ({depth} x Linear(16,16)+Tanh, bs 4) on cpu: {n_ops} forward ops and "
        f"{n_all} torch calls per step under a function mode outside optimizer.step() ({n_zero} in zero_grad)"
    )
    print(
        "  (mode_floor: a no-op Python function mode + identity saved-tensor hooks, the floor of this design;"
    )
    print("   ratios: median over rounds of the ratio to the same round's baseline; µs: from that ratio)")
    print(f"  {'config':<15} {'ms/step':>9} {'ratio':>7} {'+µs/call':>9} {'+µs/fwd op':>11}")
    for c in configs:
        d = (med[c] - base) * 1e6
        print(f"  {c:<15} {med[c] * 1e3:9.3f} {ratio[c]:6.2f}x {d / n_all:9.2f} {d / n_ops:11.2f}")
    sys.stdout.flush()
    return med, n_ops, n_all


def run_cpu(steps=20, rounds=3):
    out = {}
    out["mlp"] = bench_model("small MLP (256-512-512-10, bs 64)", small_mlp, "cpu", steps, rounds)
    out["cnn"] = bench_model("small CNN (2 conv+BN, 32x32, bs 32)", small_cnn, "cpu", steps, rounds)
    out["transformer"] = bench_model(
        "small transformer (2 layers, d 64, seq 32, bs 16)", small_transformer, "cpu", steps, rounds
    )
    return out


def bench_compiled(steps=20, rounds=3, backend="inductor"):
    """The same model under trace(): eager vs torch.compile (the tracer steps aside inside compiled code, so the
    compiled model must not be slower than the eager one).  Two models: the small MLP of the main table, where
    compilation gains nothing on one CPU thread (a matmul-bound step), and a pointwise-heavy one, where
    inductor's fusion makes the compiled step faster than eager: there the question is whether the trace keeps
    that gain."""
    out = {}
    for label, make in (
        ("small MLP", small_mlp),
        ("pointwise-heavy MLP (4 x LayerNorm/Linear/GELU/SiLU gate, d 128, bs 512)", pointwise_mlp),
    ):
        out[label] = _bench_compiled_one(label, make, steps, rounds, backend)
    return out


def _bench_compiled_one(label, make, steps, rounds, backend):
    torch.manual_seed(0)
    model, make_batch = make()
    compiled = torch.compile(model, backend=backend)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    crit = nn.CrossEntropyLoss()
    x, y = make_batch("cpu")

    def step(m):
        opt.zero_grad(set_to_none=True)
        crit(m(x), y).backward()
        opt.step()

    t0 = time.perf_counter()
    with gradlint.trace():
        for _ in range(3):
            step(compiled)  # compiles (under the trace, as a user would)
    print(f"  (compilation with backend={backend!r}: {time.perf_counter() - t0:.1f} s)")
    times = {"eager_untraced": [], "eager_trace": [], "compiled_untraced": [], "compiled_trace": []}
    for _ in range(rounds):
        for c in times:
            m = compiled if c.startswith("compiled") else model
            ctx = gradlint.trace() if c.endswith("_trace") else contextlib.nullcontext()
            with ctx:
                step(m)
                t0 = CLOCK()
                for _ in range(steps):
                    step(m)
                times[c].append((CLOCK() - t0) / steps)
    med = {c: statistics.median(v) for c, v in times.items()}
    print(f"{label}, eager vs torch.compile, on cpu:")
    for c, v in med.items():
        print(f"  {c:<18} {v * 1e3:9.2f} ms/step")
    print(
        f"  compiled under trace() / eager under trace(): {med['compiled_trace'] / med['eager_trace']:.2f}x"
    )
    print(
        f"  compiled under trace() / compiled untraced:   {med['compiled_trace'] / med['compiled_untraced']:.2f}x"
    )
    sys.stdout.flush()
    return med


def run_gpu(steps=20, rounds=3):
    if not torch.cuda.is_available():
        print("no CUDA device; GPU benchmark skipped")
        return {}
    torch.backends.cudnn.benchmark = True
    out = {}
    out["resnet50"] = bench_model(
        "ResNet-50-like (bs 64, bf16 autocast)",
        resnet50_like,
        "cuda",
        steps,
        rounds,
        autocast_dtype=torch.bfloat16,
    )
    out["transformer"] = bench_model(
        "TransformerEncoder 12x1024 (bs 16, seq 256, bf16 autocast)",
        transformer_12x1024,
        "cuda",
        steps,
        rounds,
        autocast_dtype=torch.bfloat16,
    )
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpu", action="store_true", help="also run the CUDA models")
    ap.add_argument("--gpu-only", action="store_true")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--threads", type=int, default=1, help="CPU threads (1 keeps tiny kernels free of OpenMP spin)"
    )
    ap.add_argument("--compile", action="store_true", help="also time a torch.compile'd model under trace()")
    ap.add_argument("--per-op", action="store_true", help="only the per-op cost (µs per torch call)")
    ap.add_argument("--backend", default="inductor", help="torch.compile backend for --compile")
    ap.add_argument(
        "--clock",
        choices=("wall", "process"),
        default="wall",
        help="wall: perf_counter; process: this process's CPU time (steadier on a shared machine)",
    )
    a = ap.parse_args(argv)
    global CLOCK
    CLOCK = time.process_time if a.clock == "process" else time.perf_counter
    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, clock: {a.clock}")
    if a.per_op:
        bench_per_op(a.steps, a.rounds)
        return
    if not a.gpu_only:
        run_cpu(a.steps, a.rounds)
        if a.compile:
            bench_compiled(a.steps, a.rounds, a.backend)
    if a.gpu or a.gpu_only:
        run_gpu(a.steps, a.rounds)


if __name__ == "__main__":
    main()
