"""The loop-structure analysis: events, their order and guards, reachability, optimizer pairing."""

import textwrap

import libcst as cst

from gradlint.static.rule import FileContext
from gradlint.static.semantics.imports import ImportMap
from gradlint.static.semantics.optim import (
    OptimAnalysis,
    grad_mode_at,
    guard_tests_within,
    is_accumulation_guard,
    looks_like_eval_function,
    looks_like_eval_loader,
    looks_like_model_name,
    looks_like_optimizer_name,
)


def analyse(code):
    text = textwrap.dedent(code)
    ctx = FileContext("t.py", text, cst.parse_module(text))
    return ctx, ctx.analysis(OptimAnalysis)


def scope_named(analysis, name):
    return next(s for s in analysis.scopes if s.name == name)


def kinds(scope, *only):
    return [
        (e.kind, e.key)
        for e in scope.events
        if e.kind in (only or ("backward", "step", "zero_grad", "clear", "clear_helper"))
    ]


def test_events_in_source_order_through_nested_blocks():
    _, a = analyse(
        """
        def train(model, loader, opt, scaler, accum):
            for i, (x, y) in enumerate(loader):
                with autocast():
                    loss = model(x, y)
                scaler.scale(loss).backward()
                if (i + 1) % accum == 0:
                    scaler.step(opt)
                    opt.zero_grad(set_to_none=True)
                for p in model.parameters():
                    p.grad = None
                self.optimizer_zero_grad()
                lr_scheduler.step()
        """
    )
    s = scope_named(a, "train")
    assert kinds(s) == [
        ("backward", None),
        ("step", "opt"),
        ("zero_grad", "opt"),
        ("clear", "p"),
        ("clear_helper", "self"),
    ]
    step = s.of_kind("step")[0]
    loop = step.loops[0]
    (test,) = guard_tests_within(step, loop)
    assert is_accumulation_guard(test, s)
    assert guard_tests_within(s.of_kind("backward")[0], loop) == []


def test_nested_functions_are_their_own_scopes():
    _, a = analyse(
        """
        def fit(model, x, opt):
            for _ in range(3):
                def closure():
                    opt.zero_grad()
                    loss = model(x)
                    loss.backward()
                    return loss
                opt.step(closure)
        """
    )
    assert kinds(scope_named(a, "fit")) == [("step", "opt")]
    assert kinds(scope_named(a, "closure")) == [("zero_grad", "opt"), ("backward", None)]


def test_reaches_respects_branches_and_terminators():
    _, a = analyse(
        """
        def f(loader, opt, bad):
            for x in loader:
                x.backward()
                if bad:
                    opt.zero_grad()
                    continue
                else:
                    other.zero_grad()
                opt.step()
                for y in x:
                    if y:
                        break
                    helper.zero_grad()
                    break
                opt.step()
        """
    )
    s = scope_named(a, "f")
    bw = s.of_kind("backward")[0]
    z_opt, z_other, z_helper = s.of_kind("zero_grad")
    first_step, last_step = s.of_kind("step")
    assert a.reaches(bw, z_opt) and a.reaches(bw, first_step)
    assert not a.reaches(z_opt, first_step)  # continue ends the iteration first
    assert not a.reaches(z_opt, z_other)  # if / else
    assert a.reaches(z_other, first_step)
    assert a.reaches(z_helper, last_step)  # break leaves the inner loop, then goes on
    assert not a.reaches(first_step, bw)  # only forward in the source


def test_return_in_enclosing_block_blocks_the_path():
    _, a = analyse(
        """
        def f(opt, loss, cond):
            if cond:
                loss.backward()
                return
            opt.step()
        """
    )
    s = scope_named(a, "f")
    assert not a.reaches(s.of_kind("backward")[0], s.of_kind("step")[0])


def test_optimizer_bindings_and_model_pairing():
    _, a = analyse(
        """
        import torch
        from torch import optim
        solver = optim.SGD(net.parameters(), lr=0.1)
        opt_g = torch.optim.Adam(list(netG.parameters()) + list(enc.parameters()))
        g_opt, d_opt = self.optimizers()
        def loop():
            solver.step()
            netD.zero_grad()
            solver.zero_grad()
        """
    )
    assert a.optimizer_models["solver"] == {"net"}
    assert a.optimizer_models["opt_g"] == {"netG", "enc"}
    assert {"g_opt", "d_opt", "solver", "opt_g"} <= a.optimizer_names
    s = scope_named(a, "loop")
    z_model, z_opt = s.of_kind("zero_grad")
    assert a.zero_grad_pairs_with(z_opt, "solver", s)
    assert not a.zero_grad_pairs_with(z_model, "solver", s)  # netD is not what solver optimizes
    assert a.is_optimizer("solver") and not a.is_optimizer("scheduler")


def test_unknown_mapping_pairs_model_only_when_unambiguous():
    _, a = analyse(
        """
        def one(model, optimizer):
            model.zero_grad()
            optimizer.step()
        def two(netD, optD, optG):
            netD.zero_grad()
            optD.step()
            optG.step()
        """
    )
    one, two = scope_named(a, "one"), scope_named(a, "two")
    assert a.zero_grad_pairs_with(one.of_kind("zero_grad")[0], "optimizer", one)
    assert not a.zero_grad_pairs_with(two.of_kind("zero_grad")[0], "optD", two)


def test_helpers_of_the_file_that_clear_or_backpropagate():
    _, a = analyse(
        """
        def reset(m):
            for p in m.parameters():
                p.grad = None
        def outer(m):
            reset(m)
        def step_fn(loss):
            loss.backward()
        def train(m):
            outer(m)
            step_fn(m)
            unrelated(m)
        """
    )
    s = scope_named(a, "train")
    calls = [e for e in s.events if e.kind == "call"]
    assert [a.clears(e) for e in calls] == [True, False, False]
    assert [a.calls_backward(e) for e in calls] == [False, True, False]


def test_grad_mode_at_innermost_region():
    ctx, a = analyse(
        """
        import torch
        @torch.no_grad()
        def f(m, x):
            a = m(x)
            with torch.enable_grad():
                b = m(x)
        def g(m, x):
            c = m(x)
        """
    )
    imports = ctx.analysis(ImportMap)
    f, g = scope_named(a, "f"), scope_named(a, "g")
    calls = [e for e in f.events if e.kind == "call" and e.key == "m"]
    assert grad_mode_at(calls[0], f, imports)[0] is False
    assert grad_mode_at(calls[1], f, imports)[0] is True
    assert grad_mode_at([e for e in g.events if e.kind == "call"][0], g, imports) == (None, None)


def test_name_heuristics():
    for name in ("optimizer", "opt", "optD", "opt_g", "g_optim", "self.optimizer_G", "discOpt"):
        assert looks_like_optimizer_name(name), name
    for name in ("lr_scheduler", "options", "opts", "env", "self.optional", "adapter"):
        assert not looks_like_optimizer_name(name), name
    for name in ("evaluate", "validate", "_val_epoch", "run_eval", "predict", "test", "inference"):
        assert looks_like_eval_function(name), name
    for name in ("test_forward_shapes", "train", "retest", "evaluator_factory_setup"):
        assert not looks_like_eval_function(name), name
    for expr in (
        "val_loader",
        "self.test_dataloader()",
        "enumerate(valid_loader)",
        "tqdm(eval_dl)",
        "dev_dataset",
    ):
        assert looks_like_eval_loader(cst.parse_expression(expr)), expr
    for expr in ("train_loader", "loader", "models_to_test", "test_cases", "range(10)"):
        assert not looks_like_eval_loader(cst.parse_expression(expr)), expr
    for name in ("model", "self.net", "netG", "encoder", "teacher_model", "ResNet"):
        assert looks_like_model_name(name) or name == "ResNet", name
    for name in ("tokenizer", "criterion", "loss_fn", "model_name", "metric", "model_path", "len"):
        assert not looks_like_model_name(name), name


def test_reaches_around_goes_to_the_next_iteration():
    from gradlint.static.semantics.optim import reaches_around

    _, a = analyse(
        """
        def f(loader, opt):
            for x in loader:
                opt.step()
                x.backward()
                if x:
                    opt.zero_grad()
                    continue
                other.zero_grad()
                return
        """
    )
    s = scope_named(a, "f")
    step = s.of_kind("step")[0]
    z_cont, z_ret = s.of_kind("zero_grad")
    loop = step.loops[0]
    assert reaches_around(z_cont, step, loop)  # continue goes round
    assert not reaches_around(z_ret, step, loop)  # return leaves the loop
    assert not reaches_around(step, z_cont, loop)  # only backwards in the source


def test_dataflow_decides_what_is_an_optimizer_before_the_name():
    _, a = analyse(
        """
        import torch
        import torch.nn as nn
        import bitsandbytes as bnb

        class Trainer:
            def __init__(self, net):
                self.updater = bnb.optim.PagedAdamW32bit(net.parameters())  # named like no optimizer
                self.optimizer_head = nn.Linear(2, 2)  # named like one, but a module

            def fit(self, loss):
                loss.backward()
                self.updater.step()
                self.optimizer_head.zero_grad()

        def train(model, loss, opt):
            loss.backward()
            opt.step()  # a parameter: dataflow cannot say, the name decides
        """
    )
    assert kinds(scope_named(a, "fit"), "step", "zero_grad") == [
        ("step", "self.updater"),
        ("zero_grad", "self.optimizer_head"),
    ]
    assert kinds(scope_named(a, "train"), "step") == [("step", "opt")]
    zero = next(e for e in scope_named(a, "fit").events if e.kind == "zero_grad")
    assert not a.is_optimizer("self.optimizer_head", zero) and a.is_optimizer("self.optimizer_head")
