"""semantics/interproc.py: findings across helpers and methods, each with its near-misses."""

import textwrap

import libcst as cst

from gradlint.static.rule import FileContext
from gradlint.static.semantics import interproc
from gradlint.static.semantics.summaries import Summaries


def run(finder, src):
    src = textwrap.dedent(src)
    ctx = FileContext("t.py", src, cst.parse_module(src))
    return ctx, finder(ctx.analysis(Summaries))


def lines(finder, src, attr):
    ctx, found = run(finder, src)
    return [ctx.position(getattr(f, attr) if not callable(attr) else attr(f)).start.line for f in found]


# -- GL006 through helpers ----------------------------------------------------------------

TRAINER_NO_ZERO = """
class Trainer:
    def forward_backward(self, batch):
        loss = self.loss_fn(self.model(batch["x"]), batch["y"])
        loss.backward()
        return loss

    def train_step(self, batch):
        loss = self.forward_backward(batch)
        self.optimizer.step()

    def train(self):
        self.optimizer.zero_grad()
        while self.step < self.steps:
            self.train_step(next(self.data))
"""


def test_loop_of_helpers_that_never_clears_gradients():
    assert lines(interproc.loops_missing_zero_grad, TRAINER_NO_ZERO, lambda f: f.step.node) == [10]


def test_helpers_that_clear_or_accumulate_are_fine():
    cleared = TRAINER_NO_ZERO.replace(
        "        self.optimizer.step()", "        self.optimizer.step()\n        self.optimizer.zero_grad()"
    )
    assert not run(interproc.loops_missing_zero_grad, cleared)[1]
    accumulating = TRAINER_NO_ZERO.replace(
        "        self.optimizer.step()", "        if self.step % 4 == 0:\n            self.optimizer.step()"
    )
    assert not run(interproc.loops_missing_zero_grad, accumulating)[1]
    # all in one body: the rule's own analysis decides
    assert not run(
        interproc.loops_missing_zero_grad,
        """
        for x, y in loader:
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
        """,
    )[1]


def test_optimizer_stepped_but_only_another_one_cleared():
    src = """
    optimizer_D = torch.optim.Adam(D.parameters())
    optimizer_E = torch.optim.Adam(E.parameters())
    for x in loader:
        d_loss = D(x).mean() - D(E(x).detach()).mean()
        d_loss.backward()
        optimizer_D.step()
        optimizer_E.zero_grad()
        e_loss = -D(E(x)).mean()
        e_loss.backward()
        optimizer_E.step()
    """
    assert lines(interproc.optimizer_never_cleared, src, lambda f: f.step.node) == [7]
    shared = src.replace(
        "optimizer_E = torch.optim.Adam(E.parameters())", "optimizer_E = torch.optim.Adam(D.parameters())"
    )
    assert not run(interproc.optimizer_never_cleared, shared)[1]
    by_model = src.replace("optimizer_E.zero_grad()", "model.zero_grad()")
    assert not run(interproc.optimizer_never_cleared, by_model)[1]


# -- GL015 through methods ----------------------------------------------------------------

BICYCLE = """
class Model:
    def initialize(self):
        self.optimizer_G = torch.optim.Adam(self.netG.parameters())
        self.optimizer_E = torch.optim.Adam(self.netE.parameters())

    def forward(self):
        self.fake = self.netG(self.real_A, self.z)
        self.mu2 = self.netE(self.fake)

    def backward_EG(self):
        self.loss_G = self.netD(self.fake).mean()
        self.loss_G.backward(retain_graph=True)

    def backward_G_alone(self):
        self.loss_z = torch.mean(torch.abs(self.mu2 - self.z))
        self.loss_z.backward()

    def optimize_parameters(self):
        self.forward()
        self.backward_EG()
        self.optimizer_G.step()
        self.optimizer_E.step()
        self.backward_G_alone()
        self.optimizer_G.step()
"""


def test_loss_written_after_the_step_from_a_pre_step_forward():
    ctx, found = run(interproc.stale_after_step, BICYCLE)
    [f] = found
    assert ctx.position(f.step.node).start.line == 23 and f.attr == "self.mu2"
    assert ctx.position(f.later.node).start.line == 17


def test_pre_step_forward_of_a_module_the_step_did_not_change_is_fine():
    fresh = BICYCLE.replace(
        "        self.backward_G_alone()",
        "        self.mu2 = self.netE(self.fake.detach())\n        self.backward_G_alone()",
    )
    assert not run(interproc.stale_after_step, fresh)[1]
    g_only = BICYCLE.replace("        self.optimizer_E.step()\n", "")
    g_only = g_only.replace("self.mu2 = self.netE(self.fake)", "self.mu2 = self.netE(self.real_B)")
    assert not run(interproc.stale_after_step, g_only)[1]


# -- GL010: freed graphs --------------------------------------------------------------------


def test_graph_freed_in_the_critic_loop_is_reused_after_it():
    src = """
    for i in range(n):
        for _ in range(n_critic):
            fake_imgs = generator(torch.randn(b, d))
            fake_validity = discriminator(fake_imgs)
            fake_validity.backward(fake)
            optimizer_D.step()
        gen_validity = discriminator(fake_imgs)
        gen_validity.backward(valid)
    """
    assert lines(interproc.freed_graph_reuse, src, lambda f: f.later.node) == [9]
    detached = src.replace(
        "discriminator(fake_imgs)\n            fake_validity",
        "discriminator(fake_imgs.detach())\n            fake_validity",
    )
    assert not run(interproc.freed_graph_reuse, detached)[1]
    regenerated = src.replace(
        "        gen_validity =", "        fake_imgs = generator(torch.randn(b, d))\n        gen_validity ="
    )
    assert not run(interproc.freed_graph_reuse, regenerated)[1]


def test_helper_called_with_backward_true_after_a_freeing_backward():
    src = """
    def step(self):
        pred, phi = self.netD(self.netG(noise), True)
        loss = criterion(pred)
        loss.backward()
        gdpp_loss(phi_real, phi, backward=True)
    """
    assert lines(interproc.freed_graph_reuse, src, lambda f: f.later.node) == [6]
    retained = src.replace("loss.backward()", "loss.backward(retain_graph=True)")
    assert not run(interproc.freed_graph_reuse, retained)[1]


# -- GL005 ------------------------------------------------------------------------------------


LSTM = """
class AugmentedLstm(nn.Module):
    def forward(self, inputs, state, memory):
        for t in range(steps):
            prev_state = state[0:n].clone()
            out, mem = self.cell(inputs[:, t], prev_state)
            state = state.data.clone()
            state[0:n] = out
        return state
"""


def test_data_clone_between_time_steps_cuts_backprop_through_time():
    assert lines(interproc.data_cut_in_time_loop, LSTM, "node") == [7]


def test_data_between_training_steps_is_truncation_on_purpose():
    src = """
    for step in range(n):
        prediction, h_state = rnn(x, h_state)
        h_state = h_state.data
        loss = loss_func(prediction, y)
        loss.backward()
        optimizer.step()
    """
    assert not run(interproc.data_cut_in_time_loop, src)[1]
    no_grad = LSTM.replace(
        "        for t in range(steps):", "        for t in range(steps):\n          with torch.no_grad():"
    )
    no_grad = no_grad.replace("\n            ", "\n              ").replace(
        "\n          with", "\n            with"
    )
    assert not run(interproc.data_cut_in_time_loop, no_grad)[1]


def test_data_arithmetic_on_an_activation_passed_to_a_helper():
    src = """
    def normalize(delta, mode="train"):
        delta.data += 1
        delta.data *= 0.5
        return delta

    for image, label in loader:
        delta = normalize(netG(image))
        delta2 = netG(image)
        delta2 = normalize(delta2)
        loss = criterion(clf(image + delta2), label)
        loss.backward()
    """
    assert lines(interproc.data_write_on_passed_activation, src, "node") == [3]
    not_activation = src.replace("normalize(netG(image))", "normalize(image.clone())").replace(
        "delta2 = netG(image)", "delta2 = image * 2"
    )
    assert not run(interproc.data_write_on_passed_activation, not_activation)[1]
    swap = src.replace("delta.data += 1", "delta.data = delta.data.half()").replace(
        "delta.data *= 0.5", "pass"
    )
    assert not run(interproc.data_write_on_passed_activation, swap)[1]


# -- GL003 through a helper's return ------------------------------------------------------------


SOLVER = """
class Solver:
    def train_one_batch(self, images, targets):
        self.optimizer.zero_grad()
        loss, loss_item = self.loss_fn(self.model(images), targets)
        loss.backward()
        self.optimizer.step()
        return loss_item

    def train_one_epoch(self, loader):
        total = defaultdict(float)
        for bs, images, targets in loader:
            loss_each = self.train_one_batch(images, targets)
            for name, value in loss_each.items():
                total[name] += value * bs
"""


def test_accumulating_what_a_helper_returns():
    assert lines(interproc.accumulated_helper_loss, SOLVER, "node") == [15]


def test_accumulating_numbers_from_a_helper_is_fine():
    numbers = SOLVER.replace("return loss_item", "return {k: v.item() for k, v in loss_item.items()}")
    assert not run(interproc.accumulated_helper_loss, numbers)[1]
    items = SOLVER.replace("total[name] += value * bs", "total[name] += value.item() * bs")
    assert not run(interproc.accumulated_helper_loss, items)[1]
    listed = """
    def train_batch(model, x, y):
        losses = []
        for i in range(3):
            loss = criterion(model(x), y)
            losses.append(loss.item())
        return losses

    def train(model, loader):
        totals = [0, 0, 0]
        for x, y in loader:
            losses = train_batch(model, x, y)
            for i in range(3):
                totals[i] += losses[i]
    """
    assert not run(interproc.accumulated_helper_loss, listed)[1]
