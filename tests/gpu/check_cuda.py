"""CUDA checks for the runtime tracer -- a prepared script for a GPU machine (not collected by pytest).

    python tests/gpu/check_cuda.py                    # on a CUDA machine
    python tests/gpu/check_cuda.py --json out.json    # also write every check's result as JSON
    python tests/gpu/check_cuda.py --cpu-smoke        # no GPU: run the device-independent parts on CPU

Every check prints PASS/FAIL/SKIP with its details and never stops the others. Without CUDA (and without
--cpu-smoke) it prints "no CUDA device; skipped" and exits 0; otherwise it exits 1 if a check failed.
Checks compare each CUDA run against the same scenario on CPU wherever the tracer's figures do not depend on
the device (bytes saved, findings and their lines), so a CUDA-only difference shows up as a diff.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import traceback
import warnings
import weakref

# cuBLAS is only deterministic with a fixed workspace; it must be set before CUDA initializes.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
warnings.filterwarnings("ignore")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

import gradlint  # noqa: E402
from gradlint.runtime import BackwardThroughFreedGraphError, InplaceOnSavedTensorError  # noqa: E402

RESULTS: list[dict] = []
DEV = "cuda"  # set in main(): "cuda", or "cpu" under --cpu-smoke
THIS = os.path.abspath(__file__)


class Skip(Exception):
    pass


def check(name):
    """Run the decorated function now; record PASS (it returned), SKIP (Skip) or FAIL (anything else)."""

    def deco(fn):
        t0 = time.perf_counter()
        info: list[str] = []
        try:
            fn(info)
            status = "PASS"
        except Skip as e:
            status = "SKIP"
            info.append(str(e))
        except Exception as e:
            status = "FAIL"
            info.append(f"{type(e).__name__}: {e}")
            info.append(traceback.format_exc(limit=4))
        dt = time.perf_counter() - t0
        print(f"{status} {name} ({dt:.1f}s)")
        for line in info:
            print(textwrap.indent(str(line).rstrip(), "    "))
        sys.stdout.flush()
        RESULTS.append({"name": name, "status": status, "seconds": round(dt, 2), "info": info})
        if DEV == "cuda":
            torch.cuda.synchronize()
        gc.collect()
        return fn

    return deco


def devkey(dev):
    return "cpu" if dev == "cpu" else f"cuda:{torch.cuda.current_device()}"


def norm(text, dev):
    """Messages with the device name replaced, so CPU and CUDA runs compare equal when the figures do."""
    return str(text).replace(devkey(dev), "<dev>")


def fmt(findings):
    return [str(f) for f in findings]


def line_of(marker):
    src = open(THIS).read().splitlines()
    hits = [i + 1 for i, l in enumerate(src) if l.rstrip().endswith("# <" + marker + ">")]
    assert len(hits) == 1, marker
    return hits[0]


# ----------------------------------------------------------------------------- scenarios (one per GR code)
# Each takes a device and returns (trace, raised exception or None). They are the fixtures/trace/ and
# tests/runtime/ scenarios with every tensor on `dev`.


def _mlp(dev):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 1)).to(dev)


def sc_gr001_retained(dev):
    model = _mlp(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with gradlint.trace(cuda=dev != "cpu") as t:
        for i in range(3):
            out = model(torch.randn(64, 10, device=dev))
            loss = out.pow(2).mean()
            opt.zero_grad()
            loss.backward(retain_graph=True)  # <retain>
            opt.step()
    return t, None


def sc_retain_consumed_clean(dev):
    model = _mlp(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with gradlint.trace(cuda=dev != "cpu") as t:
        for i in range(3):
            out = model(torch.randn(8, 10, device=dev))
            opt.zero_grad()
            out.pow(2).mean().backward(retain_graph=True)
            out.abs().mean().backward()
            opt.step()
    return t, None


def _train_accumulating(n, model, opt, dev, detach):
    total_loss = 0
    for i in range(n):
        loss = model(torch.randn(8, 10, device=dev)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if detach:
            total_loss += loss.item()
        else:
            total_loss += loss  # <leak>
    return total_loss


def sc_gr002_leak(dev):
    model = _mlp(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with gradlint.trace(cuda=dev != "cpu") as t:
        _train_accumulating(5, model, opt, dev, detach=False)
    return t, None


def sc_gr002_clean_item(dev):
    model = _mlp(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with gradlint.trace(cuda=dev != "cpu") as t:
        _train_accumulating(5, model, opt, dev, detach=True)
    return t, None


def sc_gr002_eval_activations(dev):
    model = _mlp(dev)
    with gradlint.trace(cuda=dev != "cpu") as t:
        outputs = []
        for i in range(4):
            outputs.append(model(torch.randn(16, 10, device=dev)))  # <evalleak>
            t.step()
    return t, None


def sc_eval_no_grad_clean(dev):
    model = _mlp(dev)
    with gradlint.trace(cuda=dev != "cpu") as t:
        outputs = []
        for i in range(4):
            with torch.no_grad():
                outputs.append(model(torch.randn(16, 10, device=dev)))
            t.step()
    return t, None


def sc_gr003_accumulate_backward(dev):
    torch.manual_seed(0)
    model = nn.Linear(4, 3).to(dev)
    crit = nn.MSELoss()
    x = torch.randn(5, 4, device=dev)
    targets = torch.randn(5, 3, device=dev)
    t = gradlint.trace(cuda=dev != "cpu")
    try:
        with t:
            out = model(x)
            loss = 0
            for j in range(5):
                loss += crit(out[j], targets[j])
                loss.backward()  # <gr003>
    except BackwardThroughFreedGraphError as e:
        return t, e
    return t, None


def sc_gr003_clean_summed(dev):
    torch.manual_seed(0)
    model = nn.Linear(4, 3).to(dev)
    x = torch.randn(5, 4, device=dev)
    targets = torch.randn(5, 3, device=dev)
    with gradlint.trace(cuda=dev != "cpu") as t:
        out = model(x)
        loss = sum(nn.functional.mse_loss(out[j], targets[j]) for j in range(5))
        loss.backward()
    return t, None


def sc_gr004_inplace(dev):
    torch.manual_seed(0)
    x = torch.randn(1000, device=dev, requires_grad=True)
    t = gradlint.trace(cuda=dev != "cpu")
    try:
        with t:
            z = x.sigmoid()
            y = z.detach()
            y.add_(1)  # <mut>
            z.sum().backward()  # on CUDA the unpack (and the raise) happens on autograd's device thread
    except InplaceOnSavedTensorError as e:
        assert x.grad is None, "a gradient got through"
        return t, e
    return t, None


def sc_gr004_clean_bn(dev):
    torch.manual_seed(0)
    bn_model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1)).to(dev)
    opt = torch.optim.SGD(bn_model.parameters(), lr=0.1)
    x = torch.randn(5, device=dev, requires_grad=True)
    with gradlint.trace(cuda=dev != "cpu") as t:
        z = x.sigmoid()
        z.sum().backward()
        z.detach().add_(1)  # released by backward already: fine
        for i in range(3):
            a = bn_model(torch.randn(16, 6, device=dev))
            b = bn_model(torch.randn(16, 6, device=dev))
            opt.zero_grad()
            (a.mean() + b.mean()).backward()
            opt.step()
    return t, None


def sc_gr005_nonleaf_grad(dev):
    w = torch.randn(3, device=dev, requires_grad=True)
    with gradlint.trace(cuda=dev != "cpu") as t:
        h = w * 2
        h.sum().backward()
        g = h.grad  # <nonleaf>
    assert g is None
    return t, None


def sc_gr005_clean_retain_grad(dev):
    w = torch.randn(3, device=dev, requires_grad=True)
    with gradlint.trace(cuda=dev != "cpu") as t:
        h = w * 2
        h.retain_grad()
        h.sum().backward()
        assert h.grad is not None
    return t, None


class TwoBranch(nn.Module):
    def __init__(self, detach):
        super().__init__()
        self.body = nn.Linear(6, 8)
        self.aux = nn.Linear(6, 8)
        self.head = nn.Linear(16, 1)
        self.detach = detach

    def forward(self, x):
        a = self.aux(x)
        if self.detach:
            a = a.detach()  # <cut>
        return self.head(torch.cat([self.body(x), a], dim=1))


def _two_branch(dev, detach):
    torch.manual_seed(0)
    model = TwoBranch(detach).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gradlint.trace(cuda=dev != "cpu") as t:
        for i in range(2):
            opt.zero_grad()
            model(torch.randn(4, 6, device=dev)).mean().backward()
            opt.step()
    return t, None


def sc_gr006_cut(dev):
    return _two_branch(dev, True)


def sc_gr006_clean(dev):
    return _two_branch(dev, False)


def sc_gr007_no_zero_grad(dev):
    model = _mlp(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with gradlint.trace(cuda=dev != "cpu") as t:
        for i in range(3):
            model(torch.randn(4, 10, device=dev)).mean().backward()
            opt.step()  # <step>
    return t, None


def sc_gr007_clean_accumulation(dev):
    model = _mlp(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with gradlint.trace(cuda=dev != "cpu") as t:
        for i in range(6):
            model(torch.randn(4, 10, device=dev)).mean().backward()
            if i % 2 == 1:
                opt.step()
                opt.zero_grad()
    return t, None


def sc_gan_clean(dev):
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 8)).to(dev)
    D = nn.Sequential(nn.Linear(8, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1)).to(dev)
    optG = torch.optim.Adam(G.parameters(), 1e-3)
    optD = torch.optim.Adam(D.parameters(), 1e-3)
    bce = nn.BCEWithLogitsLoss()
    ones, zeros = torch.ones(8, 1, device=dev), torch.zeros(8, 1, device=dev)
    with gradlint.trace(cuda=dev != "cpu") as t:
        for i in range(4):
            fake = G(torch.randn(8, 4, device=dev))
            optD.zero_grad()
            d_loss = bce(D(torch.randn(8, 8, device=dev)), ones) + bce(D(fake.detach()), zeros)
            d_loss.backward()
            optD.step()
            optG.zero_grad()
            bce(D(fake), ones).backward()
            optG.step()
    return t, None


# (scenario, expected codes, expected line marker of the first finding or None, expected exception type)
SCENARIOS = [
    (sc_gr001_retained, ["GR001"], "retain", None),
    (sc_retain_consumed_clean, [], None, None),
    (sc_gr002_leak, ["GR002"], "leak", None),
    (sc_gr002_clean_item, [], None, None),
    (sc_gr002_eval_activations, ["GR002"], None, None),
    (sc_eval_no_grad_clean, [], None, None),
    (sc_gr003_accumulate_backward, ["GR003"], "gr003", BackwardThroughFreedGraphError),
    (sc_gr003_clean_summed, [], None, None),
    (sc_gr004_inplace, ["GR004"], "mut", InplaceOnSavedTensorError),
    (sc_gr004_clean_bn, [], None, None),
    (sc_gr005_nonleaf_grad, ["GR005"], "nonleaf", None),
    (sc_gr005_clean_retain_grad, [], None, None),
    (sc_gr006_cut, ["GR006"], "cut", None),
    (sc_gr006_clean, [], None, None),
    (sc_gr007_no_zero_grad, ["GR007"], "step", None),
    (sc_gr007_clean_accumulation, [], None, None),
    (sc_gan_clean, [], None, None),
]


def run_scenario(fn, dev):
    t, exc = fn(dev)
    if dev != "cpu":
        torch.cuda.synchronize()
    return t, exc


def summary(t, exc, dev):
    """The device-independent content of a run: findings (messages with the device name replaced), and the
    per-device byte figures under '<dev>'."""
    rep = t.report()
    out = {
        "raised": type(exc).__name__ if exc is not None else None,
        "findings": [
            {"code": f["code"], "line": f["line"], "message": norm(f["message"], dev)}
            for f in rep["findings"]
        ],
        "graph_saved_bytes": [
            {k.replace(devkey(dev), "<dev>"): v for k, v in g["saved_bytes"].items()} for g in rep["graphs"]
        ],
        "graph_peak_saved_bytes": [
            {k.replace(devkey(dev), "<dev>"): v for k, v in g["peak_saved_bytes"].items()}
            for g in rep["graphs"]
        ],
        "freed": [(g["freed"] or {}).get("by") for g in rep["graphs"]],
    }
    return out


# ----------------------------------------------------------------------------- transparency


def _transparency_models(dev, small):
    d = 32 if small else 256

    def mlp():
        return nn.Sequential(nn.Linear(64, d), nn.GELU(), nn.Linear(d, 8)), lambda: torch.randn(
            32, 64, device=dev
        )

    def cnn_bn():
        return (
            nn.Sequential(
                nn.Conv2d(3, 16, 3, padding=1),
                nn.BatchNorm2d(16),
                nn.ReLU(inplace=True),
                nn.Conv2d(16, 8, 3, padding=1),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(),
            ),
            lambda: torch.randn(8, 3, 32, 32, device=dev),
        )

    def encoder_dropout():
        # dropout draws from the device RNG: the tracer must not consume or reorder random numbers
        layer = nn.TransformerEncoderLayer(d, 4, 2 * d, dropout=0.1, batch_first=True)
        return nn.TransformerEncoder(layer, 2, enable_nested_tensor=False), lambda: torch.randn(
            4, 16, d, device=dev
        )

    return [
        ("MLP fp32", mlp, False),
        ("CNN+BN bf16 autocast", cnn_bn, True),
        ("encoder+dropout bf16", encoder_dropout, True),
    ]


def _train_state(dev, make, amp, steps, tracer):
    torch.manual_seed(0)
    if dev != "cpu":
        torch.cuda.manual_seed_all(0)
    model, inp = make()
    model = model.to(dev)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    torch.manual_seed(1)
    xs = [inp() for _ in range(steps)]
    losses = []
    t = tracer() if tracer else None
    if t is not None:
        t.start()
    try:
        for x in xs:
            with torch.autocast(dev, dtype=torch.bfloat16, enabled=amp):
                loss = model(x).float().pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.detach().clone())
    finally:
        if t is not None:
            t.stop()
    state = {f"param {n}": p.detach().clone() for n, p in model.named_parameters()}
    state.update({f"grad {n}": p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    state.update({f"buffer {n}": b.clone() for n, b in model.named_buffers()})
    for i, p in enumerate(model.parameters()):
        for k, v in opt.state[p].items():
            if torch.is_tensor(v):
                state[f"adam {i} {k}"] = v.clone()
    state["losses"] = torch.stack(losses)
    if dev != "cpu":
        state["rng"] = torch.cuda.get_rng_state()
    state["cpu rng"] = torch.get_rng_state()
    return state


def _diff(a, b):
    if a.keys() != b.keys():
        return [f"different keys: {sorted(set(a) ^ set(b))}"]
    bad = []
    for k in a:
        x, y = a[k], b[k]
        if x.dtype != y.dtype or x.shape != y.shape or not torch.equal(x, y):
            delta = (x.double() - y.double()).abs().max().item() if x.shape == y.shape else "shape"
            bad.append(f"{k}: max |diff| {delta}")
    return bad


# ----------------------------------------------------------------------------- main


def main(argv=None):
    global DEV
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--cpu-smoke", action="store_true", help="without CUDA: run the checks on CPU, tiny sizes"
    )
    ap.add_argument("--json", default=None, help="write every check's result here")
    ap.add_argument("--example-json", default=None, help="write one CUDA trace report (GR001) here")
    ap.add_argument("--steps", type=int, default=6, help="training steps for the transparency check")
    a = ap.parse_args(argv)

    cuda = torch.cuda.is_available()
    if not cuda and not a.cpu_smoke:
        print("no CUDA device; skipped")
        return 0
    DEV = "cuda" if cuda else "cpu"
    small = a.cpu_smoke
    if cuda:
        torch.cuda.init()
        p = torch.cuda.get_device_properties(0)
        print(
            f"torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}), "
            f"device {p.name}, {p.total_memory / 2**30:.0f} GiB, {torch.cuda.device_count()} device(s)"
        )
    else:
        print(f"torch {torch.__version__}: no CUDA, --cpu-smoke runs the checks on CPU")
    sys.stdout.flush()

    def need_cuda():
        if DEV != "cuda":
            raise Skip("needs CUDA")

    # ---------------------------------------------------------------- GR001..GR007 on the device
    for fn, want, marker, exc_type in SCENARIOS:
        name = fn.__name__[3:]

        @check(f"{name} on {DEV}: findings {want or 'none'}")
        def _(info, fn=fn, want=want, marker=marker, exc_type=exc_type):
            t, exc = run_scenario(fn, DEV)
            got = [f.code for f in t.findings]
            info.extend(fmt(t.findings))
            assert got == want, f"codes {got}, expected {want}"
            if exc_type is not None:
                assert isinstance(exc, exc_type), f"raised {exc!r}, expected {exc_type.__name__}"
            if marker is not None:
                f = t.findings[0]
                assert f.line == line_of(marker) and os.path.abspath(f.filename or "") == THIS, (
                    f"finding at {f.filename}:{f.line}, expected line {line_of(marker)}"
                )
            # bytes are per device and under this device's key
            keys = {k for g in t.report()["graphs"] for k, v in g["peak_saved_bytes"].items() if v}
            assert keys <= {devkey(DEV)}, f"saved bytes under {keys}, expected only {devkey(DEV)}"

    @check(f"same findings, messages and byte figures on {DEV} as on CPU (all {len(SCENARIOS)} scenarios)")
    def _(info):
        need_cuda()
        bad = []
        for fn, *_rest in SCENARIOS:
            a_ = summary(*run_scenario(fn, "cpu"), "cpu")
            b_ = summary(*run_scenario(fn, DEV), DEV)
            if a_ != b_:
                bad.append(fn.__name__)
                info.append(f"{fn.__name__}:\n  cpu : {json.dumps(a_)}\n  cuda: {json.dumps(b_)}")
        assert not bad, f"differ: {bad}"

    # ---------------------------------------------------------------- per-device bytes
    @check(f"GR001 retained graph: bytes under {devkey(DEV)}, equal to the CPU figure")
    def _(info):
        t, _ = run_scenario(sc_gr001_retained, DEV)
        f = [f for f in t.findings if f.code == "GR001"][0]
        b = f.details["bytes"]
        info.append(f"details.bytes {b}, leaf_bytes {f.details.get('leaf_bytes')}")
        info.append(f.message)
        assert b.get(devkey(DEV), 0) > 0 and set(b) == {devkey(DEV)}, b
        if a.example_json:
            t.save_json(a.example_json)
            info.append(f"report saved to {a.example_json}")
        if DEV != "cpu":
            tc, _ = run_scenario(sc_gr001_retained, "cpu")
            fc = [f for f in tc.findings if f.code == "GR001"][0]
            assert fc.details["bytes"]["cpu"] == b[devkey(DEV)], (fc.details["bytes"], b)

    @check("GR002 leaked activations: per-device bytes alive at iteration ends")
    def _(info):
        t, _ = run_scenario(sc_gr002_eval_activations, DEV)
        f = [f for f in t.findings if f.code == "GR002"][0]
        info.append(f.message)
        assert f.details["kind"] == "saved-activations" and f.details["saved_bytes_alive"] > 0, f.details
        assert f.details["holder"] == "outputs", f.details
        alive = [i["saved_bytes_alive_at_end"].get(devkey(DEV), 0) for i in t.iterations]
        info.append(f"saved bytes alive at iteration ends ({devkey(DEV)}): {alive}")
        assert all(y > x for x, y in zip(alive, alive[1:])), "not growing"
        # 16x32 tanh output + 16x32 hidden, fp32, per forward: the same on every device
        tc, _ = run_scenario(sc_gr002_eval_activations, "cpu")
        alive_cpu = [i["saved_bytes_alive_at_end"].get("cpu", 0) for i in tc.iterations]
        assert alive == alive_cpu, (alive, alive_cpu)

    @check("per-iteration CUDA memory figures (trace(cuda=True))")
    def _(info):
        need_cuda()
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 1)).cuda()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        with gradlint.trace(cuda=True) as t:
            for i in range(3):
                opt.zero_grad()
                model(torch.randn(512, 256, device="cuda")).pow(2).mean().backward()
                opt.step()
        its = t.iterations
        for i in its:
            info.append(
                f"iteration {i['index']}: cuda_allocated {i.get('cuda_allocated')} cuda_peak {i.get('cuda_peak')} "
                f"saved alive {i['saved_bytes_alive_at_end']}"
            )
        rep = t.report()
        info.append(f"devices {rep['devices']}, memory {rep['memory']}")
        assert len(its) == 3 and all(i["cuda_peak"] > 0 and i["cuda_allocated"] > 0 for i in its), its
        assert rep["memory"]["cuda_peak_bytes"] > 0
        assert "cuda:0" in rep["devices"], rep["devices"]
        assert t.findings == [], fmt(t.findings)

    @check("trace() with cuda='auto' (the default) after CUDA is initialized records CUDA memory")
    def _(info):
        need_cuda()
        model = nn.Linear(64, 64).cuda()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        with gradlint.trace() as t:
            for i in range(2):
                opt.zero_grad()
                model(torch.randn(32, 64, device="cuda")).sum().backward()
                opt.step()
        info.append(f"iterations {t.iterations}")
        assert all(i.get("cuda_peak", 0) > 0 for i in t.iterations), t.iterations

    # ---------------------------------------------------------------- autograd's device thread
    @check("backward of CUDA tensors runs on autograd's device thread (probe for the checks below)")
    def _(info):
        need_cuda()
        seen = {}

        class Probe(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x * 2

            @staticmethod
            def backward(ctx, g):
                seen["thread"] = threading.get_ident()
                return g * 2

        x = torch.randn(4, device="cuda", requires_grad=True)
        Probe.apply(x).sum().backward()
        info.append(f"backward thread {seen['thread']}, main thread {threading.get_ident()}")
        assert seen["thread"] != threading.get_ident(), "backward ran on the calling thread"

    @check(f"graphs freed by backward (on the device thread) are attributed to the backward line on {DEV}")
    def _(info):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 1)).to(DEV)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        with gradlint.trace(cuda=DEV != "cpu") as t:
            for i in range(4):
                loss = model(torch.randn(32, 64, device=DEV)).pow(2).mean()
                opt.zero_grad()
                loss.backward()  # <bwdline>
                opt.step()
            del loss
            dropped = model(torch.randn(32, 64, device=DEV)).sum()  # never backpropagated
            del dropped
            t.step()
        rep = t.report()
        for g in rep["graphs"]:
            info.append(f"graph {g['id']} it {g['iteration']}: saved {g['saved_bytes']} freed {g['freed']}")
        assert t.findings == [], fmt(t.findings)
        bwd = [g for g in rep["graphs"] if g["backward_calls"]]
        assert len(bwd) == 4, f"{len(bwd)} graphs with a backward call, expected 4"
        for g in bwd:
            fr = g["freed"] or {}
            assert fr.get("by") == "backward" and fr.get("line") == line_of("bwdline"), g
            assert os.path.abspath(fr.get("filename") or "") == THIS, g
        for g in rep["graphs"]:
            assert not any(g["saved_bytes"].values()), f"graph {g['id']} still holds {g['saved_bytes']}"
            assert not g["alive_at_exit"], g
        ends = [sum(i["saved_bytes_alive_at_end"].values()) for i in t.iterations]
        assert all(e == 0 for e in ends), ends

    @check("thread safety: finalizers on autograd's device thread + a second Python thread training")
    def _(info):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 1)).to(DEV)
        errors = []

        def other():
            try:
                for _ in range(50):
                    m = nn.Linear(64, 64).to(DEV)
                    m(torch.randn(32, 64, device=DEV)).sum().backward()
            except Exception as e:  # pragma: no cover
                errors.append(e)

        with gradlint.trace(cuda=DEV != "cpu") as t:
            th = threading.Thread(target=other)
            th.start()
            for i in range(50):
                y = model(torch.randn(128, 256, device=DEV))
                y.pow(2).mean().backward()
                t.step()
            th.join()
        assert not errors, errors
        assert t.findings == [], fmt(t.findings)
        ends = [sum(i["saved_bytes_alive_at_end"].values()) for i in t.iterations[1:]]
        assert all(e == 0 for e in ends), ends

    # ---------------------------------------------------------------- transparency
    @check(f"transparency: bit-identical parameters, grads, buffers, Adam state, RNG after {a.steps} steps")
    def _(info):
        if DEV == "cuda":
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        prev = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(True, warn_only=True)
        bad = []
        compared = 0
        try:
            for label, make, amp in _transparency_models(DEV, small):
                ref = _train_state(DEV, make, amp, a.steps, None)
                ref2 = _train_state(DEV, make, amp, a.steps, None)
                if _diff(ref, ref2):
                    info.append(
                        f"{label}: baseline itself not deterministic ({_diff(ref, ref2)[:3]}); skipped"
                    )
                    continue
                compared += 1
                for tname, tracer in (
                    ("trace()", lambda: gradlint.trace(cuda=DEV != "cpu")),
                    ("trace(every=3)", lambda: gradlint.trace(cuda=DEV != "cpu", every=3)),
                ):
                    d = _diff(ref, _train_state(DEV, make, amp, a.steps, tracer))
                    info.append(f"{label} under {tname}: {'identical' if not d else 'DIFFERS'}")
                    if d:
                        bad.append(f"{label} {tname}")
                        info.extend("  " + x for x in d[:8])
        finally:
            torch.use_deterministic_algorithms(prev)
        assert not bad, bad
        if not compared:
            raise Skip("no model trains deterministically here, nothing to compare")

    # ---------------------------------------------------------------- hooks removed, nothing kept alive
    @check(f"no {DEV} memory kept alive by the tracer and no hooks left after exit (also after an exception)")
    def _(info):
        def alloc():
            gc.collect()
            if DEV == "cuda":
                torch.cuda.synchronize()
                return torch.cuda.memory_allocated()
            return None

        def work(raise_inside, traced=True):
            torch.manual_seed(0)
            model = nn.Sequential(nn.Linear(256, 1024), nn.ReLU(), nn.Linear(1024, 1)).to(DEV)
            opt = torch.optim.SGD(model.parameters(), lr=0.01)
            t = gradlint.trace(cuda=DEV != "cpu") if traced else contextlib.nullcontext()
            try:
                with t:
                    total = 0
                    for i in range(3):
                        loss = model(torch.randn(512, 256, device=DEV)).pow(2).mean()
                        opt.zero_grad()
                        loss.backward(retain_graph=True)
                        opt.step()
                        total += loss  # a leak and a retained graph: the tracer sees them, must not keep them
                    if raise_inside:
                        raise KeyError("boom")
            except KeyError:
                pass
            return t, [weakref.ref(x) for x in (total, loss, model[0].weight)]

        work(True, traced=False)  # the same work untraced first: cuBLAS workspaces etc. stay allocated
        before = alloc()
        kept, refs = zip(work(False), work(True))
        after = alloc()
        alive = sum(r() is not None for rs in refs for r in rs)
        assert alive == 0, f"{alive} of the loop's tensors (total, loss, a weight) still alive after the loop"
        info.append(f"{DEV} memory allocated before {before}, after (traces kept) {after}")
        info.append(f"findings of the kept traces: {[[f.code for f in t.findings] for t in kept]}")
        if DEV == "cuda":
            assert after == before, f"{after - before} bytes still allocated"
        n_modes = torch._C._len_torch_function_stack()
        assert n_modes == 0, f"{n_modes} torch function modes left"
        x = torch.randn(5, device=DEV, requires_grad=True)
        z = x.sigmoid()
        z.detach().add_(1)
        try:
            z.sum().backward()
        except RuntimeError as e:
            assert "inplace" in str(e)
        else:
            raise AssertionError("PyTorch's own saved-tensor check did not fire: a saved-tensor hook is left")

    # ---------------------------------------------------------------- render, JSON
    @check(f"render a {DEV} graph to DOT (and PNG if Graphviz's dot is installed); str(t) and save_json")
    def _(info):
        try:
            import graphviz  # noqa: F401
        except ImportError:
            raise Skip("the graphviz python package is not installed") from None
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 1)).to(DEV)
        with gradlint.trace(cuda=DEV != "cpu") as t:
            loss = model(torch.randn(32, 64, device=DEV)).pow(2).mean()
            loss.backward(retain_graph=True)  # kept alive by `loss`: the graph to draw
        with tempfile.TemporaryDirectory() as d:
            t.render(os.path.join(d, "g.dot"))
            src = open(os.path.join(d, "g.dot")).read()
            info.append(f"DOT: {len(src)} chars")
            assert "digraph" in src
            import shutil

            if shutil.which("dot"):
                t.render(os.path.join(d, "g.png"))
                assert os.path.getsize(os.path.join(d, "g.png")) > 0
                info.append("PNG drawn")
            t.save_json(os.path.join(d, "t.json"))
            rep = json.load(open(os.path.join(d, "t.json")))
            assert rep["findings"][0]["code"] == "GR001"
        text = str(t)
        assert "GR001" in text and (DEV == "cpu" or "cuda:0" in text), text
        info.append(text.splitlines()[0])

    # ---------------------------------------------------------------- the CLI on a CUDA script
    @check(f"`gradlint trace` CLI on a {DEV} script (default --cuda: the script initializes CUDA itself)")
    def _(info):
        script = textwrap.dedent(
            f"""
            import torch
            from torch import nn
            dev = {DEV!r}
            torch.manual_seed(0)
            model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1)).to(dev)
            opt = torch.optim.SGD(model.parameters(), lr=0.01)
            total_loss = 0
            for step in range(4):
                opt.zero_grad()
                loss = model(torch.randn(32, 8, device=dev)).pow(2).mean()
                loss.backward()
                opt.step()
                total_loss += loss
            """
        )
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "leak_dev.py")
            open(path, "w").write(script)
            out = os.path.join(d, "r.json")
            env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
            p = subprocess.run(
                [sys.executable, "-m", "gradlint", "trace", "--json", out, path],
                capture_output=True,
                text=True,
                timeout=120,
                env=env,
            )
            info.append(
                f"exit {p.returncode}; stdout tail: {p.stdout[-600:]}; stderr tail: {p.stderr[-600:]}"
            )
            rep = json.load(open(out))
        codes = [f["code"] for f in rep["findings"]]
        info.append(f"codes {codes}, devices {rep['devices']}, memory {rep['memory']}")
        info.append(f"iterations {[(i['index'], i.get('cuda_peak')) for i in rep['iterations']]}")
        assert codes == ["GR002"], codes
        if DEV == "cuda":
            assert rep["memory"]["cuda_peak_bytes"] > 0 and any(
                i.get("cuda_peak") for i in rep["iterations"]
            ), (
                "no CUDA memory figures although the script used CUDA (the help says: default records them "
                "if the script initializes CUDA)"
            )

    failed = [r["name"] for r in RESULTS if r["status"] == "FAIL"]
    n = {s: sum(r["status"] == s for r in RESULTS) for s in ("PASS", "FAIL", "SKIP")}
    print(f"\n{n['PASS']} passed, {n['FAIL']} failed, {n['SKIP']} skipped on {DEV}")
    for f in failed:
        print(f"FAILED: {f}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(
                {
                    "device": torch.cuda.get_device_name() if DEV == "cuda" else "cpu",
                    "torch": torch.__version__,
                    "cuda": torch.version.cuda,
                    "results": RESULTS,
                },
                fh,
                indent=1,
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
