"""CUDA checks for the runtime tracer -- a prepared script for a GPU machine (not collected by pytest).

    python tests/gpu/check_cuda.py            # scenarios + overhead benchmark
    python tests/gpu/check_cuda.py --no-bench # scenarios only

Exits 0 with "no CUDA device; skipped" when there is no GPU; exits 1 if a check fails.
"""

from __future__ import annotations

import os
import sys
import threading
import traceback
import warnings

warnings.filterwarnings("ignore")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

import gradlint  # noqa: E402
from gradlint.runtime import InplaceOnSavedTensorError  # noqa: E402

FAILED = []


def check(name):
    def deco(fn):
        try:
            fn()
            print(f"PASS {name}")
        except Exception:
            FAILED.append(name)
            print(f"FAIL {name}")
            traceback.print_exc()
        sys.stdout.flush()
        return fn

    return deco


def _mlp():
    return nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 1)).cuda()


def main():
    if not torch.cuda.is_available():
        print("no CUDA device; skipped")
        return 0
    print(f"torch {torch.__version__}, device {torch.cuda.get_device_name()}")

    @check("bit-identical gradients on CUDA (MLP, CNN+BN, bf16 autocast)")
    def _():
        def run(traced, make, inp, amp):
            torch.manual_seed(0)
            model = make().cuda()
            opt = torch.optim.AdamW(model.parameters(), 1e-3)
            torch.manual_seed(1)
            xs = [inp() for _ in range(3)]
            t = gradlint.trace(cuda=True).start() if traced else None
            try:
                for x in xs:
                    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                        loss = model(x).float().pow(2).mean()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            finally:
                if t:
                    t.stop()
            return [p.grad.clone() for p in model.parameters()] + [
                p.detach().clone() for p in model.parameters()
            ]

        cases = [
            (
                lambda: nn.Sequential(nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 8)),
                lambda: torch.randn(32, 64, device="cuda"),
                False,
            ),
            (
                lambda: nn.Sequential(
                    nn.Conv2d(3, 16, 3, padding=1),
                    nn.BatchNorm2d(16),
                    nn.ReLU(inplace=True),
                    nn.Conv2d(16, 8, 3, padding=1),
                ),
                lambda: torch.randn(8, 3, 32, 32, device="cuda"),
                True,
            ),
        ]
        for make, inp, amp in cases:
            torch.backends.cudnn.deterministic = True
            a, b = run(False, make, inp, amp), run(True, make, inp, amp)
            assert all(torch.equal(x, y) for x, y in zip(a, b)), "gradients differ"

    @check("GR001 retained graph on CUDA: bytes per device")
    def _():
        model = _mlp()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        with gradlint.trace(cuda=True) as t:
            for i in range(3):
                loss = model(torch.randn(256, 256, device="cuda")).pow(2).mean()
                opt.zero_grad()
                loss.backward(retain_graph=True)
                opt.step()
        f = [f for f in t.findings if f.code == "GR001"]
        assert f and f[0].details["bytes"].get("cuda:0", 0) > 0, [str(x) for x in t.findings]
        print("   ", f[0].message)

    @check("GR002 total_loss leak on CUDA")
    def _():
        model = _mlp()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)

        def train():
            total_loss = 0
            for i in range(5):
                loss = model(torch.randn(64, 256, device="cuda")).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                total_loss += loss
            return total_loss

        with gradlint.trace(cuda=True) as t:
            train()
        f = [f for f in t.findings if f.code == "GR002"]
        assert f and f[0].details["holder"] == "total_loss", [str(x) for x in t.findings]

    @check("GR004 detach().add_ on a saved CUDA tensor raises at unpack (worker thread)")
    def _():
        x = torch.randn(1000, device="cuda", requires_grad=True)
        try:
            with gradlint.trace(cuda=True) as t:
                z = x.sigmoid()
                z.detach().add_(1)
                z.sum().backward()
        except InplaceOnSavedTensorError as e:
            assert "modified by an inplace operation" in str(e)
        else:
            raise AssertionError("no error raised")
        assert [f.code for f in t.findings] == ["GR004"]

    @check("per-iteration CUDA memory figures")
    def _():
        model = _mlp()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        with gradlint.trace(cuda=True) as t:
            for i in range(3):
                opt.zero_grad()
                model(torch.randn(512, 256, device="cuda")).pow(2).mean().backward()
                opt.step()
        its = t.iterations
        assert len(its) == 3 and all(i["cuda_peak"] > 0 and i["cuda_allocated"] > 0 for i in its), its
        assert t.report()["memory"]["cuda_peak_bytes"] > 0
        for i in its:
            print(
                f"    iteration {i['index']}: allocated {i['cuda_allocated']} peak {i['cuda_peak']} "
                f"saved alive {i['saved_bytes_alive_at_end']}"
            )

    @check("thread safety: finalizers on autograd's worker thread + a second Python thread")
    def _():
        model = _mlp()
        errors = []

        def other():
            try:
                for _ in range(50):
                    m = nn.Linear(64, 64).cuda()
                    m(torch.randn(32, 64, device="cuda")).sum().backward()
            except Exception as e:  # pragma: no cover
                errors.append(e)

        with gradlint.trace(cuda=True) as t:
            th = threading.Thread(target=other)
            th.start()
            for i in range(50):
                y = model(torch.randn(128, 256, device="cuda"))
                y.pow(2).mean().backward()
                t.step()
            th.join()
        assert not errors, errors
        assert t.findings == [], [str(f) for f in t.findings]
        assert all(sum(i["saved_bytes_alive_at_end"].values()) == 0 for i in t.iterations[1:])

    if "--no-bench" not in sys.argv:
        sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
        import bench_tracer

        bench_tracer.run_gpu(steps=15, rounds=3)

    print("FAILED: " + ", ".join(FAILED) if FAILED else "all CUDA checks passed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
