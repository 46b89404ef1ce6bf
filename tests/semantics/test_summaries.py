"""semantics/summaries.py: per-function effects, applied at same-file call sites."""

import textwrap

import libcst as cst

from gradlint.static.rule import FileContext
from gradlint.static.semantics.summaries import (
    ACTIVATION,
    DETACHED,
    LOSS,
    NONE,
    NUMBER,
    UNKNOWN,
    Summaries,
    backward_of,
)


def summaries(src):
    src = textwrap.dedent(src)
    ctx = FileContext("t.py", src, cst.parse_module(src))
    return ctx, ctx.analysis(Summaries)


def summary_of(src, name):
    ctx, s = summaries(src)
    for fn in s.functions():
        if isinstance(fn, cst.FunctionDef) and fn.name.value == name:
            return ctx, s.of(fn)
    if name == "<module>":
        return ctx, s.of(ctx.module)
    raise AssertionError(name)


TRAINER = """
class GAN:
    def forward(self):
        self.fake = self.netG(self.real_A)

    def backward_D(self):
        self.loss_D = self.netD(self.fake.detach()).mean()
        self.loss_D.backward(retain_graph=True)

    def backward_G(self):
        self.loss_G = -self.netD(self.fake).mean()
        self.loss_G.backward()

    def optimize(self):
        self.forward()
        for _ in range(5):
            self.optimizer_D.zero_grad()
            self.backward_D()
            self.optimizer_D.step()
        self.optimizer_G.zero_grad()
        self.backward_G()
        self.optimizer_G.step()
"""


def test_method_effects_are_applied_at_the_call_site_in_order():
    ctx, opt = summary_of(TRAINER, "optimize")
    kinds = [(e.kind, e.name) for e in opt.effects if e.kind in ("backward", "step", "zero_grad", "write")]
    assert kinds == [
        ("write", "self.fake"),
        ("zero_grad", "self.optimizer_D"),
        ("write", "self.loss_D"),
        ("backward", ""),
        ("step", "self.optimizer_D"),
        ("zero_grad", "self.optimizer_G"),
        ("write", "self.loss_G"),
        ("backward", ""),
        ("step", "self.optimizer_G"),
    ]
    retains = [e.backward.retain_graph for e in opt.backwards]
    assert retains == [True, None]
    # the applied backward remembers the call site it came through
    first = opt.backwards[0]
    assert [ctx.code_for(c) for c in first.via] == ["self.backward_D()"]
    assert opt.steps == {"self.optimizer_D", "self.optimizer_G"}
    assert opt.zeroes == {"self.optimizer_D", "self.optimizer_G"}


def test_loop_structure_and_attribute_reads_and_writes():
    _, opt = summary_of(TRAINER, "optimize")
    (loop, start, end) = opt.loops[0]
    assert isinstance(loop, cst.For)
    inside = [e.kind for e in opt.effects if start < e.index < end and e.kind in ("backward", "step")]
    assert inside == ["backward", "step"]
    assert opt.loop_around(opt.backwards[1].index) is None
    _, fwd = summary_of(TRAINER, "forward")
    assert set(fwd.attr_writes) == {"self.fake"}
    assert {"self.netG", "self.real_A"} <= fwd.attr_reads
    assert fwd.forward_with_grad


def test_forward_under_no_grad_is_not_with_grad():
    _, s = summary_of(
        """
        def evaluate(model, loader):
            with torch.no_grad():
                for x, y in loader:
                    out = model(x)
        """,
        "evaluate",
    )
    assert [e.kind for e in s.effects] == ["forward"]
    assert not s.forward_with_grad


def test_returns_kinds():
    src = """
    def act(model, x):
        return model(x)

    def loss_of(model, x, y):
        loss = criterion(model(x), y)
        return loss

    def detached(model, x):
        return model(x).detach()

    def scalar(model, x):
        return model(x).sum().item()

    def nothing(x):
        print(x)

    def masked(seq):
        return seq.data.masked_fill_(seq == 0, 1)

    def through_helper(model, x):
        return act(model, x)

    def mixed(x):
        if x:
            return 1
        return model(x)
    """
    expect = {
        "act": ACTIVATION,
        "loss_of": LOSS,
        "detached": DETACHED,
        "scalar": NUMBER,
        "nothing": NONE,
        "masked": DETACHED,
        "through_helper": ACTIVATION,
        "mixed": UNKNOWN,
    }
    for name, kind in expect.items():
        assert summary_of(src, name)[1].returns == kind, name


def test_recursion_and_unknown_backpropagating_callees_make_it_incomplete():
    src = """
    def rec(n):
        if n:
            rec(n - 1)
        loss.backward()

    def with_helper(loss, phi):
        loss.backward(retain_graph=True)
        gdpp_loss(phi, backward=True)

    def plain(loss):
        loss.backward()
    """
    assert not summary_of(src, "rec")[1].complete
    s = summary_of(src, "with_helper")[1]
    assert not s.complete and [e.kind for e in s.effects][-1] == "unknown"
    assert summary_of(src, "plain")[1].complete


def test_top_level_functions_and_module_code_are_summarised():
    src = """
    def train_step(model, x, y, optimizer):
        optimizer.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    for x, y in loader:
        train_step(net, x, y, opt)
    """
    ctx, mod = summary_of(src, "<module>")
    assert [e.kind for e in mod.effects if e.kind != "forward"] == ["call", "zero_grad", "backward", "step"]
    _, s = summaries(src)
    callers = s.callers(next(f for f in s.functions() if isinstance(f, cst.FunctionDef)))
    assert [c.qualname for c, _ in callers] == ["<module>"]
    assert mod.loop_around(mod.backwards[0].index) is not None


def test_optimizer_closure_runs_at_the_step():
    src = """
    def fit(model, x, y):
        optimizer = optim.LBFGS(model.parameters())
        def closure():
            optimizer.zero_grad()
            loss = F.mse_loss(model(x), y)
            loss.backward()
            return loss
        optimizer.step(closure)
    """
    _, s = summary_of(src, "fit")
    assert [e.kind for e in s.effects if e.kind in ("step", "backward", "zero_grad")] == [
        "step",
        "zero_grad",
        "backward",
    ]


def test_backward_forms():
    def bw(code):
        return backward_of(cst.parse_expression(code))

    assert bw("loss.backward(retain_graph=True)").retain_graph is True
    assert bw("scaler.scale(loss).backward()").target.value == "loss"
    assert bw("self.accelerator.backward(loss, retain_graph=True)").target.value == "loss"
    g = bw("torch.autograd.grad(out, x, create_graph=True)")
    assert g.is_grad and g.create_graph and g.retain_graph is True
    assert bw("loss.backward(retain_graph=keep)").retain_graph is None
    assert bw("model.forward(x)") is None


def test_scheduler_step_is_not_an_optimizer_step():
    _, s = summary_of(
        """
        def f(optimizer, scheduler, lr_scheduler, scaler):
            scheduler.step()
            lr_scheduler.step()
            scaler.step(optimizer)
        """,
        "f",
    )
    assert [(e.kind, e.name) for e in s.effects] == [("step", "optimizer")]


def test_calls_matching_helper_follows_same_file_helpers():
    from gradlint.static.semantics.summaries import calls_matching_helper

    src = textwrap.dedent(
        """
        class Recipe:
            def forward_backward(self, batch):
                self.loss_fn(self.model(batch)).backward()

            def train_step(self, batch):
                self.forward_backward(batch)
                self.optimizer.step()

            def train(self):
                while True:
                    self.train_step(next(self.data))

            def log(self):
                print(self.step)
        """
    )
    train = src[src.index("    def train(self)") : src.index("    def log")]
    log = src[src.index("    def log") :]
    has_backward = lambda text: ".backward(" in text  # noqa: E731
    assert calls_matching_helper(train, src, has_backward)
    assert not calls_matching_helper(train, src, has_backward, depth=1)
    assert not calls_matching_helper(log, src, has_backward)


def test_grad_mode_of_decorators_wrappers_and_callers():
    src = """
    import torch

    def inference(fn):
        def wrapper(*args):
            with torch.inference_mode():
                return fn(*args)
        return wrapper

    @torch.no_grad()
    def decorated(model, x):
        return model(x)

    @inference
    def wrapped(model, x):
        return model.encode(x)

    def plain(model, x):
        out = model(x)
        return out

    def caller(model, x):
        with torch.no_grad():
            plain(model, x)

    def caller_on(model, x):
        plain(model, x)

    def only_eval(model, x):
        model.eval()
        model.to(x)
    """
    _, d = summary_of(src, "decorated")
    assert d.grad_off and not d.forward_with_grad
    assert d.runs_params == {"model": False}
    assert d.returns == DETACHED
    _, w = summary_of(src, "wrapped")
    assert w.grad_off and w.runs_params == {"model": False}
    _, p = summary_of(src, "plain")
    assert p.forward_with_grad and p.runs_params == {"model": True} and p.returns == ACTIVATION
    _, c = summary_of(src, "caller")
    assert not c.forward_with_grad and c.runs_params == {"model": False}
    _, on = summary_of(src, "caller_on")
    assert on.forward_with_grad and on.runs_params == {"model": True}
    _, e = summary_of(src, "only_eval")
    assert e.runs_params == {}


def test_returns_under_no_grad_carry_no_graph():
    src = """
    import torch

    def predict(model, x):
        with torch.no_grad():
            out = model(x)
        return out

    def pair(model, x):
        with torch.no_grad():
            return model(x), model(x).argmax(1)
    """
    assert summary_of(src, "predict")[1].returns == DETACHED
    assert summary_of(src, "pair")[1].return_items == (DETACHED, DETACHED)


def test_builtins_on_tensors_keep_their_arguments_kind():
    src = """
    def total(model, xs):
        losses = []
        for x in xs:
            losses.append(model(x).mean())
        return sum(losses)

    def count(xs):
        return max(len(xs), 1)
    """
    assert summary_of(src, "total")[1].returns == ACTIVATION
    assert summary_of(src, "count")[1].returns == NUMBER
