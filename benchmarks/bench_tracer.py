"""Overhead of gradlint.trace() per training step (prints figures; not a test).

    python benchmarks/bench_tracer.py            # CPU: small MLP and small CNN
    python benchmarks/bench_tracer.py --gpu      # + CUDA: ResNet-50-like (bs 64, bf16 autocast), 12-layer d=1024 encoder

For each model, in the same process: step time without tracing, with trace() (default),
with trace(every=10) (sampling), with torch.autograd.detect_anomaly() and with
torch.profiler.profile(profile_memory=True, with_stack=True); ratios against the baseline.
Configurations are interleaved over several rounds and the median step time is reported.
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


def transformer_12x1024():
    return EncoderLM(), (
        lambda dev: (
            torch.randint(0, 8192, (16, 256), device=dev),
            torch.randint(0, 8192, (16 * 256,), device=dev),
        )
    )


# ----------------------------------------------------------------------------- timing


CONFIGS = ("baseline", "trace", "trace_every10", "detect_anomaly", "profiler")


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
        for c in configs:
            n = steps if c != "profiler" else max(3, steps // 4)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with _ctx(c):
                    step()  # first step inside the context is not timed
                    sync()
                    t0 = time.perf_counter()
                    for _ in range(n):
                        step()
                    sync()
                    dt = (time.perf_counter() - t0) / n
            times[c].append(dt)
    med = {c: statistics.median(v) for c, v in times.items()}
    base = med["baseline"]
    print(f"{name} on {device}" + (f" ({autocast_dtype})" if autocast_dtype else "") + ":")
    for c in configs:
        print(f"  {c:<15} {med[c] * 1e3:9.2f} ms/step   {med[c] / base:6.2f}x")
    sys.stdout.flush()
    return {c: med[c] / base for c in configs}, med


def run_cpu(steps=20, rounds=3):
    out = {}
    out["mlp"] = bench_model("small MLP (256-512-512-10, bs 64)", small_mlp, "cpu", steps, rounds)
    out["cnn"] = bench_model("small CNN (2 conv+BN, 32x32, bs 32)", small_cnn, "cpu", steps, rounds)
    return out


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
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    if not a.gpu_only:
        run_cpu(a.steps, a.rounds)
    if a.gpu or a.gpu_only:
        run_gpu(a.steps, a.rounds)


if __name__ == "__main__":
    main()
