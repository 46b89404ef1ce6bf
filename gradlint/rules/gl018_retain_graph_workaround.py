"""GL018: ``retain_graph=True`` that no later backward needs, or that papers over a missing ``.detach()``."""

from __future__ import annotations

import libcst as cst

from gradlint.static.rule import Invalid, Replace, Rule
from gradlint.static.semantics.retained import RetainedGraph, Verdict, find_retained_graphs


class RetainGraphWorkaround(Rule):
    """## What it does
    Flags `backward(retain_graph=True)` in a training step (a loop, or a
    function or method that steps an optimizer, also when the step is spread
    over helper methods such as `self.backward_D()`) when the retained graph

    * is not used by any later backward: the call is the last backward before
      `optimizer.step()`, and nothing carries a graph into the next iteration;
    * is kept for the *next* iteration, through a value built once before the
      loop (a regulariser, a generator output stored by `self.forward()`): every
      iteration backpropagates through it again;
    * is kept for a later backward that reaches it only through a value made
      before `optimizer.step()` changed the weights it saved, and fed into a
      fresh forward after the step (a missing `.detach()`);
    * is taken inside an optimizer closure (`optimizer.step(closure)`, LBFGS),
      which runs several times per step.

    Higher-order uses (`create_graph=True`), a later backward in the same step
    that legitimately shares the graph (several heads over one forward, GAN
    D/G updates without a step in between), and loops that accumulate the loss
    (GL002) are not reported.

    ## Why is this bad?
    `retain_graph=True` is what PyTorch's error message suggests for
    "Trying to backward through the graph a second time", so it is often added
    to silence that error. Kept without need, the saved tensors of the whole
    forward live until the names holding them are rebound: the next forward
    runs while the old graph is still in memory (about twice the activation
    memory, reported as "GPU memory grows"). Kept as a workaround, it hides the
    real bug: the discriminator's loss backpropagates into the generator every
    critic step, or a backward goes through weights that `optimizer.step()`
    already changed in place ("one of the variables needed for gradient
    computation has been modified by an inplace operation" on recent PyTorch,
    silently stale gradients on old ones).

    ## Example
    ```python
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward(retain_graph=True)
        optimizer.step()
    ```

    ```python
    def optimize_parameters(self):
        self.forward()  # self.fake_B = self.netG(self.real_A)
        for _ in range(self.critic_iters):
            self.optimizer_D.zero_grad()
            self.backward_D()  # loss on self.netD(self.fake_B), backward(retain_graph=True)
            self.optimizer_D.step()
    ```

    ## Use instead
    ```python
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    ```

    and give the discriminator `self.fake_B.detach()`, so that its loss does
    not reach into the generator's graph, then drop `retain_graph=True`.
    """

    code = "GL018"
    name = "retain-graph-workaround"
    message = (
        "`retain_graph=True` on the last backward before `{step}` (line {step_line}): no later backward uses "
        "this graph, which stays in memory until `{target}` is rebound (about twice the activation memory); "
        "drop `retain_graph=True`"
    )
    message_term = (
        "`retain_graph=True` keeps the graph of `{term}` (line {term_line}), built once before the loop on line "
        "{loop_line}, for the next iteration, which backpropagates through it again: the graph stays alive for "
        "the whole loop and every iteration adds gradients into what produced `{term}` once more; use "
        "`{term}.detach()` where only this loss needs it (or rebuild it inside the loop) and drop "
        "`retain_graph=True`"
    )
    message_stale = (
        "`retain_graph=True` keeps this graph for the backward on line {later_line}, which reaches it through "
        "`{term}` (line {term_line}), made before `{step}` (line {step_line}) changed the weights it saved, "
        "and fed into `{forward}` after it; pass `{term}.detach()` there and drop `retain_graph=True`"
    )
    message_closure = (
        "`retain_graph=True` inside the optimizer closure `{closure}`, which `{step}` (line {step_line}) calls "
        "once or more per step, each time building a fresh graph: every retained graph stays alive; drop "
        "`retain_graph=True`"
    )
    fix_applicability = "unsafe"  # dropping it is right unless other code reuses the graph in a way we missed
    reads = "module"  # the step is often spread over methods that never mention retain_graph

    VALID = [
        """
        for x, y in loader:
            fake = G(z)
            d_loss = criterion(D(fake), y)
            d_loss.backward(retain_graph=True)
            g_loss = criterion(D(fake), ones)
            g_loss.backward()
            opt.step()
        """,
        """
        feats = backbone(x)
        for head in heads:
            head_loss = criterion(head(feats), y)
            head_loss.backward(retain_graph=True)
        """,
        """
        for x, y in loader:
            loss = criterion(model(x), y)
            grads = torch.autograd.grad(loss, params, create_graph=True, retain_graph=True)
            optimizer.step()
        """,
        """
        for x, y in loader:
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward(retain_graph=keep)
            optimizer.step()
        """,
        """
        for real in loader:
            fake = G(z)
            d_loss = bce(D(real), ones) + bce(D(fake.detach()), zeros)
            d_loss.backward(retain_graph=True)
            opt_D.step()
            g_loss = bce(D(fake), ones)
            g_loss.backward()
            opt_G.step()
        """,
    ]
    INVALID = [
        Invalid(
            """
            for x, y in train_loader:
                optimizer.zero_grad()
                loss = criterion(model(x), y)
                loss.backward(retain_graph=True)  # error
                optimizer.step()
            """,
            expected_replacement="""
            for x, y in train_loader:
                optimizer.zero_grad()
                loss = criterion(model(x), y)
                loss.backward()  # error
                optimizer.step()
            """,
        ),
        """
        def closure():
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward(retain_graph=True)  # error
            return loss
        for _ in range(steps):
            optimizer.step(closure)
        """,
    ]

    @classmethod
    def could_match(cls, text: str) -> bool:
        return "retain_graph" in text

    def leave_Module(self, original_node: cst.Module) -> None:
        # After the traversal: where GL002 already reported this call (an accumulated loss, or its
        # own "retained for nothing" shape), one diagnostic is enough.
        gl002 = {d.location.row for d in self.context.diagnostics if d.code == "GL002"}
        for found in find_retained_graphs(self.context):
            if self.context.position(found.backward.call).start.line not in gl002:
                self._report(found)

    def _report(self, found: RetainedGraph) -> None:
        call = found.backward.call
        fix = Replace(call, _without_retain(call))
        line = self._line
        if found.verdict is Verdict.CLOSURE:
            self.report(
                call,
                self.message_closure,
                fix=fix,
                closure=found.closure,
                step=self._code(found.step),
                step_line=line(found.step),
            )
        elif found.verdict is Verdict.UNNEEDED:
            self.report(
                call,
                self.message,
                fix=fix,
                step=self._code(found.step),
                step_line=line(found.step),
                target=self._code(found.backward.target) if found.backward.target is not None else "the loss",
            )
        elif found.verdict is Verdict.PRE_LOOP_TERM:
            self.report(
                call,
                self.message_term,
                term=found.term,
                term_line=line(found.term_node),
                loop_line=line(found.loop),
            )
        elif found.verdict is Verdict.STALE_INPUT:
            self.report(
                call,
                self.message_stale,
                later_line=line(found.later.call),
                term=found.term,
                term_line=line(found.term_node),
                step=self._code(found.step),
                step_line=line(found.step),
                forward=_short(self._code(found.forward)),
            )

    def _line(self, node: cst.CSTNode) -> int:
        return self.context.position(node).start.line

    def _code(self, node: cst.CSTNode) -> str:
        return self.context.code_for(node).strip()


def _short(code: str, limit: int = 60) -> str:
    code = " ".join(code.split())
    return code if len(code) <= limit else code[: limit - 3] + "..."


def _without_retain(call: cst.Call) -> cst.Call:
    args = [a for a in call.args if not (a.keyword is not None and a.keyword.value == "retain_graph")]
    if args:
        args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
    return call.with_changes(args=args)
