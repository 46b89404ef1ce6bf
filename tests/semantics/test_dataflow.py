"""The tensor-kind data flow: what names are bound to, statement by statement."""

import textwrap

import libcst as cst

from gradlint.static.rule import FileContext
from gradlint.static.semantics.dataflow import (
    Dataflow,
    Fact,
    Kind,
    inplace_edits,
    is_model_name,
    join,
    view_root,
    write_roles,
)

K = Kind


def flow_for(src):
    src = textwrap.dedent(src)
    module = cst.parse_module(src)
    ctx = FileContext("t.py", src, module)
    return ctx, ctx.analysis(Dataflow)


def _find_probe(node):
    """The ``probe(...)`` call in the source."""
    found = []

    class V(cst.CSTVisitor):
        def visit_Call(self, call):
            if isinstance(call.func, cst.Name) and call.func.value == "probe":
                found.append(call)

    node.visit(V())
    assert len(found) == 1
    return found[0]


def kinds_at_probe(src):
    """Kinds of the arguments of the ``probe(...)`` call, evaluated where it stands."""
    ctx, flow = flow_for(src)
    call = _find_probe(ctx.module)
    return [flow.kind_of(a.value, at=call) for a in call.args]


def test_activation_sources_and_derived_values():
    kinds = kinds_at_probe(
        """
        import torch
        import torch.nn.functional as F
        def step(model, x, y):
            out = model(x)
            loss = F.cross_entropy(out, y)
            h = out.relu().sum(dim=1)
            scaled = out * 2 + 1
            cat = torch.cat([out, x], dim=1)
            a, b = model(x)
            probe(out, loss, h, scaled, cat, a, b, x)
        """
    )
    assert kinds[:7] == [K.ACTIVATION] * 7
    assert kinds[7] is K.UNKNOWN  # a function argument: no evidence


def test_constructors_loaders_and_state_are_not_activations():
    kinds = kinds_at_probe(
        """
        import numpy as np
        import torch
        import torch.nn as nn
        from torchvision import datasets
        def f(model):
            z = torch.zeros(3)
            ds = datasets.MNIST("data")
            arr = np.zeros(3)
            w = nn.Parameter(torch.randn(3))
            leaf = torch.randn(3, requires_grad=True)
            for p in model.parameters():
                g = p.grad
            weight = model.fc.weight
            probe(z, ds, arr, w, leaf, p, g, weight, model)
        """
    )
    assert kinds == [
        K.TENSOR,
        K.UNKNOWN,
        K.UNKNOWN,
        K.PARAMETER,
        K.LEAF_REQUIRES_GRAD,
        K.PARAMETER,
        K.GRADIENT,
        K.PARAMETER,
        K.MODULE,
    ]


def test_detach_alias_views_and_clone_end_it():
    kinds = kinds_at_probe(
        """
        def f(model, x):
            out = model(x)
            y = out.detach()
            v = y[:, :5]
            t = y.t()
            idx = y[mask]
            c = y.clone()
            d = out.detach().clone()
            e = y * 2
            probe(y, v, t, idx, c, d, e)
        """
    )
    assert kinds == [K.DETACHED_VIEW_OF_ACTIVATION] * 3 + [K.TENSOR, K.CLONE, K.CLONE, K.TENSOR]


def test_rebinding_replaces_the_fact_and_statement_order_matters():
    src = """
        def f(model, x):
            out = model(x)
            y = out.detach()
            first(y)
            y = y.clone()
            second(y)
    """
    ctx, flow = flow_for(src)
    func = ctx.module.body[0]
    stmts = func.body.body
    first, second = stmts[2].body[0].value, stmts[4].body[0].value
    assert flow.kind_of(first.args[0].value, at=stmts[2]) is K.DETACHED_VIEW_OF_ACTIVATION
    assert flow.kind_of(second.args[0].value, at=stmts[4]) is K.CLONE


def test_detach_origin_is_the_detach_call():
    ctx, flow = flow_for(
        """
        def f(model, x):
            y = model(x).detach()
            probe(y)
        """
    )
    call = _find_probe(ctx.module)
    fact = flow.fact_of(call.args[0].value, at=call)
    assert ctx.code_for(fact.origin) == "model(x).detach()"


def test_no_grad_regions_give_plain_tensors():
    kinds = kinds_at_probe(
        """
        import torch
        @torch.no_grad()
        def f(model, x):
            out = model(x)
            probe(out)
        """
    )
    assert kinds == [K.TENSOR]
    kinds = kinds_at_probe(
        """
        import torch as t
        def f(model, x):
            with t.no_grad():
                a = model(x)
            b = model(x)
            probe(a, b)
        """
    )
    assert kinds == [K.TENSOR, K.ACTIVATION]


def test_loop_carried_values_reach_the_next_iteration():
    kinds = kinds_at_probe(
        """
        import torch
        def f(rnn, xs):
            prev = torch.zeros(1, 8)
            for x in xs:
                probe(prev)
                prev = rnn(x, prev)
        """
    )
    assert kinds == [K.ACTIVATION]


def test_branches_that_disagree_join_to_unknown():
    kinds = kinds_at_probe(
        """
        import torch
        def f(model, x, flag):
            if flag:
                y = model(x).detach()
            else:
                y = torch.zeros(3)
            probe(y)
        """
    )
    assert kinds == [K.UNKNOWN]


def test_nonleaf_moves_and_noop_moves():
    kinds = kinds_at_probe(
        """
        import torch
        import torch.nn as nn
        def f(device):
            a = torch.randn(3, requires_grad=True).cuda()
            b = torch.randn(3, requires_grad=True).to(device)
            c = torch.randn(3, requires_grad=True).float()
            d = torch.randn(3, device=device, requires_grad=True).to(device)
            e = nn.Parameter(torch.randn(3)).to(device)
            g = torch.randn(3).to(device)
            g.requires_grad_()
            h = torch.randn(3)
            h.requires_grad = True
            probe(a, b, c, d, e, g, h)
        """
    )
    assert kinds == [
        K.ACTIVATION,
        K.ACTIVATION,
        K.LEAF_REQUIRES_GRAD,
        K.LEAF_REQUIRES_GRAD,
        K.ACTIVATION,
        K.LEAF_REQUIRES_GRAD,
        K.LEAF_REQUIRES_GRAD,
    ]


def test_class_attributes_layers_parameters_buffers():
    kinds = kinds_at_probe(
        """
        import torch
        import torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.encoder = nn.Linear(4, 4)
                self.scale = nn.Parameter(torch.ones(1))
                self.register_buffer("steps", torch.zeros(1))
                self.data = [1, 2]

            def forward(self, x):
                h = self.encoder(x)
                probe(h, self.scale, self.steps, self.data, self(x))
        """
    )
    assert kinds == [K.ACTIVATION, K.PARAMETER, K.BUFFER, K.UNKNOWN, K.ACTIVATION]


def test_comprehension_variables_and_param_groups():
    ctx, flow = flow_for(
        """
        def f(model, optimizer, out):
            x = model(out)
            params = [p for p in model.parameters() if p.requires_grad]
            for group in optimizer.param_groups:
                for q in group["params"]:
                    probe(params[0], q, [p.data for p in model.parameters()])
        """
    )
    call = _find_probe(ctx.module)
    assert flow.kind_of(call.args[0].value, at=call) is K.PARAMETER
    assert flow.kind_of(call.args[1].value, at=call) is K.PARAMETER
    comp = call.args[2].value
    # ``p`` inside the comprehension is the comprehension's own variable.
    assert flow.kind_of(comp.elt.value, at=comp.elt) is K.PARAMETER


def test_named_parameters_zip_and_enumerate_unpack():
    kinds = kinds_at_probe(
        """
        def f(model, ema):
            for name, p in model.named_parameters():
                pass
            for q, avg in zip(model.parameters(), ema.parameters()):
                pass
            for i, r in enumerate(model.parameters()):
                pass
            probe(name, p, q, avg, i, r)
        """
    )
    assert kinds == [K.NON_TENSOR, K.PARAMETER, K.PARAMETER, K.PARAMETER, K.NON_TENSOR, K.PARAMETER]


def test_autograd_grad_results_are_gradients():
    kinds = kinds_at_probe(
        """
        from torch.autograd import grad
        def f(loss, params):
            grads = grad(loss, params, create_graph=True)
            (g0,) = grad(loss, params)
            probe(grads[0], g0)
        """
    )
    assert kinds == [K.GRADIENT, K.GRADIENT]


def test_retain_grad_and_backward_facts():
    ctx, flow = flow_for(
        """
        def f(model, x):
            out = model(x)
            out.retain_grad()
            out.sum().backward()

        def g(model):
            for p in model.parameters():
                p.uniform_()
        """
    )
    f, g = ctx.module.body
    assert flow.scope_facts(f).retained == {"out"}
    assert flow.has_backward(f) and not flow.has_backward(g)


def test_inplace_setitem_makes_buffer_carry_graph():
    kinds = kinds_at_probe(
        """
        import torch
        def f(model, xs):
            buf = torch.zeros(4, 3)
            buf[0] = model(xs[0])
            acc = torch.zeros(3)
            acc += model(xs[1])
            probe(buf, acc)
        """
    )
    assert kinds == [K.ACTIVATION, K.ACTIVATION]


def test_module_level_script_and_aliases():
    kinds = kinds_at_probe(
        """
        import torch as t
        from torch import nn
        net = nn.Sequential(nn.Linear(2, 2))
        w = t.ones(2, requires_grad=True)
        y = net(t.randn(2)) @ w
        probe(net, w, y)
        """
    )
    assert kinds == [K.MODULE, K.LEAF_REQUIRES_GRAD, K.ACTIVATION]


def test_helpers():
    stmt = cst.parse_statement("y[:, 0].mul_(2)\n").body[0].value
    (edit,) = inplace_edits(stmt)
    assert edit.form == "method" and cst.Module([]).code_for_node(view_root(edit.target)) == "y"
    assert inplace_edits(cst.parse_statement("t.requires_grad_()\n").body[0].value) == []
    aug = cst.parse_statement("w -= lr\n").body[0]
    assert [e.form for e in inplace_edits(aug)] == ["augassign"]
    setitem = cst.parse_statement("w[0] = 1\n").body[0]
    assert [e.form for e in inplace_edits(setitem)] == ["setitem"]
    roles = write_roles(cst.parse_statement("p.data.add_(1)\n").body[0].value)
    assert [r for _, r in roles] == ["inplace", "inplace-through-data"]
    assert is_model_name("netD") and is_model_name("text_encoder") and is_model_name("G")
    assert not is_model_name("data") and not is_model_name("loader")
    assert join(Fact(K.ACTIVATION), Fact(K.TENSOR)).kind is K.ACTIVATION
    assert join(Fact(K.PARAMETER), Fact(K.TENSOR)).kind is K.UNKNOWN


def test_odd_code_does_not_crash():
    src = """
        import torch
        match cmd:
            case [x, *rest]:
                y = x
        async def f(model, *args, **kw):
            async with ctx as (a, b):
                z = [*args]
            (q := model(args))
            del z, a
            global G
            try:
                pass
            except* ValueError as e:
                pass
            probe(q, e)
    """
    ctx, flow = flow_for(src)
    call = _find_probe(ctx.module)
    assert flow.kind_of(call.args[1].value, at=call) is K.NON_TENSOR


def test_loads_count_reads_not_bare_targets():
    ctx, flow = flow_for(
        """
        def f(model, x):
            out = model(x)
            y = out.detach()
            y[0] = 1
            self.h = out
            return self.h
        """
    )
    loads = flow.loads(ctx.module.body[0])
    assert loads["out"] == 2 and loads["y"] == 1 and loads["self.h"] == 1 and loads["model"] == 1


def test_same_file_calls_take_the_callees_summary():
    src = """
    import torch

    def step(model, x):
        return model(x).sum()

    def accuracy(model, x, y):
        return (model(x).argmax(1) == y).float().mean().item()

    def both(model, x):
        out = model(x)
        return out.sum(), out.detach()

    def losses(model, xs):
        for x in xs:
            yield model(x).mean()

    def make_model():
        return build()

    class Trainer:
        def compute_loss(self, x):
            return self.net(x).mean()

        def run(self, x):
            a = self.compute_loss(x)
            with torch.no_grad():
                b = self.compute_loss(x)
            probe(a, b)

    for x in data:
        l = step(net, x)
        n = accuracy(net, x, y)
        p, q = both(net, x)
        for g in losses(net, data):
            m = make_model()
            probe(l, n, p, q, g, m)
    """
    assert kinds_at_probe(src.replace("probe(l, n, p, q, g, m)", "pass")) == [K.ACTIVATION, K.TENSOR]
    main = src.replace("probe(a, b)", "pass")
    assert kinds_at_probe(main) == [
        K.ACTIVATION,
        K.NON_TENSOR,
        K.ACTIVATION,
        K.TENSOR,
        K.ACTIVATION,
        K.UNKNOWN,
    ]


def test_same_file_call_summaries_stay_unknown_on_recursion_and_wrappers():
    src = """
    import contextlib

    def walk(model, x):
        if x is None:
            return model(x)
        return walk(model, x.next)

    @contextlib.contextmanager
    def scope(model):
        yield model(1)

    async def fetch(model):
        return model(1)

    probe(walk(net, x), scope(net), fetch(net))
    """
    assert kinds_at_probe(src) == [K.UNKNOWN, K.UNKNOWN, K.UNKNOWN]


def test_parameters_of_a_frozen_module_attribute_carry_no_graph():
    src = """
    import copy

    class EMA:
        def build(self):
            self.avg = copy.deepcopy(self.net)
            for p in self.avg.parameters():
                p.requires_grad = False

        def original(self):
            return self.avg.module

        def update(self):
            for p, q in zip(self.net.parameters(), self.original().parameters()):
                probe(p, q)
    """
    assert kinds_at_probe(src) == [K.PARAMETER, K.TENSOR]


def test_data_batches_and_activation_containers_are_kinds_with_evidence():
    src = """
        def train(model, loader, opt):
            for i, (x, y) in enumerate(loader):
                losses = []
                for head in range(3):
                    losses.append(model(x)[head])
                probe(x, y, losses, i)
        """
    # ``i`` is enumerate's index: a Python number, not part of the batch.
    assert kinds_at_probe(src) == [K.DATA_BATCH, K.DATA_BATCH, K.ACTIVATION_CONTAINER, K.NON_TENSOR]
    ctx, flow = flow_for(src)
    loop = ctx.module.body[0].body.body[0]
    batch = flow.batch_bound_by(loop)
    assert batch is not None and batch.kind is K.DATA_BATCH and batch.origin is loop
    probe = _find_probe(ctx.module)
    container = flow.fact_of(probe.args[2].value, at=probe)
    assert ctx.module.code_for_node(container.origin) == "losses.append(model(x)[head])"


def test_parts_of_a_data_batch_moved_or_reshaped_stay_a_data_batch():
    src = """
        def train(model, loader, dev):
            it = iter(loader)
            for batch in loader:
                x = batch[0].to(dev)
                inp = batch["input_ids"].cuda().view(-1, 8).long()
                text = batch.text
                a, b = next(it)
                c, d = batch[0], batch[1]
                out = model(x)
                probe(x, inp, text, a, b, c, d, out, batch[0].sum(), x.shape, batch[0].item())
        """
    assert kinds_at_probe(src) == [K.DATA_BATCH] * 7 + [K.ACTIVATION, K.UNKNOWN, K.NON_TENSOR, K.NON_TENSOR]
    ctx, flow = flow_for(src)
    probe = _find_probe(ctx.module)
    # The evidence: the ``for`` over the loader, or the ``next`` call.
    assert isinstance(flow.fact_of(probe.args[0].value, at=probe).origin, cst.For)
    assert ctx.module.code_for_node(flow.fact_of(probe.args[3].value, at=probe).origin) == "next(it)"


def test_next_of_a_known_iterable_keeps_its_items_kind():
    assert kinds_at_probe(
        """
        def f(model):
            p = next(model.parameters())
            probe(p)
        """
    ) == [K.PARAMETER]


def test_a_gradient_scalers_scale_keeps_the_kind_of_its_argument():
    assert kinds_at_probe(
        """
        import torch.nn.functional as F
        def f(model, x, y, scaler, use_scaling):
            loss = F.cross_entropy(model(x), y)
            if use_scaling:
                loss = scaler.scale(loss)
            probe(loss, self.state.scaler.scale(x), scaler.scale(x, y))
        """
    ) == [K.ACTIVATION, K.UNKNOWN, K.UNKNOWN]


def test_an_iterable_with_known_items_is_not_a_data_batch():
    # Items of a list of modules keep their kind; a list named like data holds no batch either.
    assert kinds_at_probe(
        """
        import torch.nn as nn
        def f(batches):
            for m in [nn.Linear(2, 2)]:
                probe(m)
        """
    ) == [K.MODULE]


def test_optimizers_are_a_kind_with_their_constructor_as_evidence():
    src = """
        import torch
        import torch.optim as optim
        from torch.optim import AdamW
        from torch import optim as topt
        import bitsandbytes as bnb
        from apex.optimizers import FusedAdam
        from transformers import AdamW as HFAdamW
        from torch.optim.lr_scheduler import StepLR

        class Lookahead(optim.Optimizer):
            pass

        class Adam:  # named like an optimizer, but it is not one
            def step(self):
                pass

        def train(model):
            a = torch.optim.SGD(model.parameters(), lr=0.1)
            b = optim.Adam(model.parameters())
            c = AdamW(model.parameters())
            d = topt.RMSprop(model.parameters())
            e = bnb.optim.Adam8bit(model.parameters())
            f = FusedAdam(model.parameters())
            g = HFAdamW(model.parameters())
            h = Lookahead(a)
            i = Adam()
            j = StepLR(a, 10)
            probe(a, b, c, d, e, f, g, h, i, j)
        """
    O = K.OPTIMIZER
    assert kinds_at_probe(src) == [O, O, O, O, O, O, O, O, K.UNKNOWN, K.UNKNOWN]
    ctx, flow = flow_for(src)
    probe = _find_probe(ctx.module)
    fact = flow.fact_of(probe.args[2].value, at=probe)
    assert ctx.module.code_for_node(fact.origin) == "AdamW(model.parameters())"


def test_an_optimizer_attribute_is_read_through_the_class():
    assert kinds_at_probe(
        """
        import torch
        import torch.nn as nn
        class Trainer:
            def __init__(self):
                self.net = nn.Linear(2, 2)
                self.opt = torch.optim.Adam(self.net.parameters())
            def step(self, x):
                probe(self.opt, self.net)
        """
    ) == [K.OPTIMIZER, K.MODULE]


def test_data_loaders_are_a_kind_and_their_items_are_batches():
    src = """
        import torch
        from torch.utils.data import DataLoader as DL
        def train(model, ds):
            dl = DL(ds, batch_size=4)
            other = torch.utils.data.DataLoader(ds)
            it = iter(dl)
            first = next(iter(other))
            for step, (x, y) in enumerate(dl):
                probe(dl, other, it, first, x, y, step)
        """
    assert kinds_at_probe(src) == [
        K.DATA_LOADER,
        K.DATA_LOADER,
        K.DATA_LOADER,
        K.DATA_BATCH,
        K.DATA_BATCH,
        K.DATA_BATCH,
        K.NON_TENSOR,
    ]
    ctx, flow = flow_for(src)
    loop = ctx.module.body[2].body.body[4]
    batch = flow.batch_bound_by(loop)  # ``dl`` is not named like a loader: its constructor says so
    assert batch is not None and batch.kind is K.DATA_BATCH and batch.origin is loop


def test_a_list_named_dataloader_is_not_a_loader():
    assert kinds_at_probe(
        """
        import torch.nn as nn
        def f():
            dataloader = [nn.Linear(2, 2)]
            batches = next(iter(dataloader))
            probe(dataloader, batches)
        """
    ) == [K.TUPLE, K.MODULE]
