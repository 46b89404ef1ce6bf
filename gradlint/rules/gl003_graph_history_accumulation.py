"""GL003: a graph-carrying tensor accumulated into something that outlives the iteration."""

from __future__ import annotations

import re

import libcst as cst

from gradlint.rules import through_helpers
from gradlint.static.rule import Invalid, Replace, Rule
from gradlint.static.semantics.backward import might_backward, might_backward_in
from gradlint.static.semantics.imports import dotted_name
from gradlint.static.semantics.interproc import might_step_through_helpers
from gradlint.static.semantics.loops import (
    LoopAnalysis,
    LoopFacts,
    ScopeTracker,
    graph_accumulation,
    is_forward_like,
)
from gradlint.static.semantics.reads import LOOP_READS, graph_reads
from gradlint.static.semantics.summaries import calls_matching_helper

# Words of a training/evaluation loop. Kept as specific as the analysis allows:
# bare "_data", "_iter", "batches" or "backward" matched most transformers
# modeling files (hidden_data, "backward compatibility") without adding findings.
# (Literal-led patterns and substring tests: one alternation took 4 s on transformers.)
_IN_DATA = re.compile(r" in\s+(?:\w+_)?(?:batches|data|dataset|samples|it)\b")
_STEP_DEF = re.compile(r"def\s+\w+_step\s*\(")


def _has_context(text: str) -> bool:
    return (
        any(s in text for s in (".step(", "loader", "epoch", "iterator"))
        or might_backward(text)
        or _IN_DATA.search(text) is not None
        or _STEP_DEF.search(text) is not None
    )


# The loop words of loops.is_iteration_loop (`_DATA_NAME`, `_EPOCH_NAME`), an
# optimizer step, or a `*_step` method.
_STEP_CONTEXT = re.compile(
    r"\.step\(|epoch|loader|data_?iter|batches|dataset|_data\b|_iter\b|iterator\b"
    r"|\bin\s+(?:[\w.]+\()?(?:it|data|samples)\b|def\s+\w+_step\s*\(",
    re.I,
)


def _accumulates(text: str) -> bool:
    return "+" in text or ".append(" in text or ".extend(" in text


# Expressions that take ``.detach()`` without parentheses.
_ATOMS = (cst.Name, cst.Attribute, cst.Call, cst.Subscript)


class GraphHistoryAccumulation(ScopeTracker, Rule):
    """## What it does
    Flags a tensor that carries an autograd graph (a loss, a model output, a
    backward target, or arithmetic on one) being accumulated into something that
    outlives the loop iteration: `total += loss`, `total = total + loss`,
    `losses.append(loss)`, `d[k] = d.get(k, 0) + loss`, `self.epoch_loss += loss`,
    in a training or evaluation loop (or a Lightning `*_step`), outside
    `torch.no_grad()`.

    Also when the value comes from a same-file helper that returns the loss with
    its graph: `running += train_step(model, x, y)`, or the dict of losses that
    `self.train_one_batch()` returns, summed per key across the epoch.

    ## Why is this bad?
    The accumulated tensor keeps a reference to the whole graph of every
    iteration it was computed in: all activations saved for backward stay in
    memory until the accumulator is freed. Memory grows every step until
    `CUDA out of memory` (or the host runs out), and every later operation on the
    accumulator extends the graph further. This is the most common "memory leak"
    in PyTorch training loops (PyTorch FAQ: "My model reports cuda runtime
    error(2): out of memory" — "Don't accumulate history across your training
    loop").

    Accumulating inside a model's `forward` (hidden states, auxiliary losses)
    is fine and not reported, and so is a loss summed over terms that is
    backpropagated (GL001/GL002 cover the loop cases).

    ## Example
    ```python
    total_loss = 0
    for x, y in loader:
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        total_loss += loss
    ```

    ## Use instead
    ```python
    total_loss = 0.0
    for x, y in loader:
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        total_loss += loss.item()  # or loss.detach() to keep a tensor on the device
    ```

    ## Fix safety
    The fix inserts `.detach()` on the accumulated value. It is safe: the
    accumulator holds the same numbers without their history. Gradient flow
    through the accumulator is what the rule reports as unintended; when it is
    intended (the accumulator is backpropagated), the rule does not fire.
    """

    code = "GL003"
    name = "graph-history-accumulation"
    message = (
        "`{acc}` accumulates `{value}`, which carries its autograd graph: every iteration's graph stays "
        "in memory as long as `{acc}` lives (memory grows each step); accumulate `{value}.item()` "
        "(a number) or `{value}.detach()` (a tensor)"
    )
    message_helpers = (
        "`{acc}` accumulates `{value}`, which carries the autograd graph that `{helper}` (line {line}) {gives}: "
        "every iteration's graph stays in memory as long as `{acc}` lives (memory grows each step); accumulate "
        "a number (`.item()`) or a detached tensor (`.detach()`), or {give} `loss.item()` from the helper"
    )
    fix_applicability = "safe"

    VALID = [
        """
        total = 0
        for x, y in loader:
            loss = criterion(model(x), y)
            loss.backward()
            total += loss.item()
        """,
        """
        import torch
        preds = []
        with torch.no_grad():
            for x, _ in loader:
                preds.append(model(x))
        """,
        """
        correct = 0
        for x, y in loader:
            out = model(x)
            loss = criterion(out, y)
            loss.backward()
            correct += (out.argmax(1) == y).sum()
        """,
        """
        def forward(self, x):
            all_hidden_states = ()
            for layer in self.layers:
                x = layer(x)
                all_hidden_states += (x,)
            return x, all_hidden_states
        """,
        """
        loss = 0
        for x, y in loader:
            loss = loss + criterion(model(x), y)
        loss.backward()
        """,
    ]
    INVALID = [
        """
        def train_step(model, x, y, optimizer):
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            return loss

        running = 0
        for x, y in loader:
            running += train_step(model, x, y, optimizer)  # error
        """,
        Invalid(
            """
        total = 0
        for x, y in loader:
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss  # error
        """,
            expected_replacement="""
        total = 0
        for x, y in loader:
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.detach()  # error
        """,
        ),
        """
        losses = []
        for x, y in val_loader:
            losses.append(criterion(model(x), y))  # error
        """,
        """
        class LitModel:
            def training_step(self, batch, batch_idx):
                x, y = batch
                loss = F.cross_entropy(self(x), y)
                self.epoch_loss += loss  # error
                return loss
        """,
    ]

    @classmethod
    def could_match(cls, text: str) -> bool:
        # Three conjuncts: an accumulation (``+=``, ``.append(``, ``.extend(``, or a
        # ``+``) and a training/evaluation context (backward, optimizer step, ``*_step``
        # method, a loader/dataset/iterator, epochs), both necessary (see loops.py); and
        # a loss or model word (``self(`` is Lightning's forward), a heuristic: the
        # analysis can flag `results.append(decoder(feats))` in a file that names none,
        # but such files are rare in practice and a miss costs less than the parse.
        if not _accumulates(text):
            return False
        if not any(s in text for s in ("loss", "Loss", "model", "net", "criterion", "self(")):
            return False
        return _has_context(text)

    @classmethod
    def could_match_unit(cls, text: str, file_text: str) -> bool:
        # What graph_accumulation() needs inside the function itself: an accumulation,
        # and a loop over steps (backward, optimizer step, loader, epochs) or a
        # `*_step` method. The loss/model vocabulary is the file's business.
        if (
            _accumulates(text)
            and might_step_through_helpers(file_text)
            and calls_matching_helper(text, file_text, might_backward)
        ):
            return True  # a loop accumulating what a same-file training helper returns
        return _accumulates(text) and (
            might_backward_in(text, file_text) or _STEP_CONTEXT.search(text) is not None
        )

    def _candidate(self, node: cst.CSTNode, key: str | None) -> None:
        if key is None:
            return
        if self.loop_depth == 0 and not key.startswith("self."):
            return
        name = self.scope_name()
        if is_forward_like(name):
            return
        facts: LoopFacts = self.context.analysis(LoopAnalysis).facts(self.current_scope)
        d = facts.def_of_node.get(node)
        if d is None or d.kind != "accum":
            return
        values = graph_accumulation(facts, d, name)
        if not values:
            return
        fixes = [Replace(v, _detached(self.context.code_for(v), v)) for v in _fixable(values)]
        self.report(
            node,
            acc=d.key,
            value=_short(self.context.code_for(values[0])),
            fix=fixes or None,
            fix_message="Detach the accumulated value",
        )

    # The visitors below only pick candidates, cheaply (``i += 1`` and ``n += x.size(0)``
    # never build the function's facts); ``LoopFacts`` decides.
    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if not isinstance(node.operator, (cst.AddAssign, cst.SubtractAssign)) or not _maybe_graph(node.value):
            return
        target = node.target.value if isinstance(node.target, cst.Subscript) else node.target
        self._candidate(node, dotted_name(target))

    def visit_Assign(self, node: cst.Assign) -> None:
        if len(node.targets) != 1 or not isinstance(node.value, (cst.BinaryOperation, cst.Call)):
            return
        target = node.targets[0].target
        target = target.value if isinstance(target, cst.Subscript) else target
        key = dotted_name(target)
        if key is None or key not in graph_reads(node.value, LOOP_READS):
            return
        self._candidate(node, key)

    def visit_Expr(self, node: cst.Expr) -> None:
        call = node.value
        if (
            isinstance(call, cst.Call)
            and isinstance(call.func, cst.Attribute)
            and call.func.attr.value in ("append", "extend", "insert")
            and call.args
            and _maybe_graph(call.args[-1].value)
        ):
            self._candidate(node, dotted_name(call.func.value))

    def leave_Module(self, original_node: cst.Module) -> None:
        # the same shape spread over helpers and methods (semantics/interproc.py)
        through_helpers.report_gl003(self)


def _maybe_graph(value: cst.BaseExpression) -> bool:
    return isinstance(value, cst.Call) or bool(graph_reads(value, LOOP_READS))


def _fixable(values: list[cst.BaseExpression]) -> list[cst.BaseExpression]:
    out: list[cst.BaseExpression] = []
    for v in values:
        if isinstance(v, (cst.Tuple, cst.List)):
            out += [el.value for el in v.elements if not isinstance(el, cst.StarredElement)]
        elif not isinstance(v, (cst.GeneratorExp, cst.ListComp, cst.StarredElement)):
            out.append(v)
    return out


def _detached(code: str, node: cst.BaseExpression) -> str:
    if isinstance(node, _ATOMS) or (node.lpar and node.rpar):
        return f"{code}.detach()"
    return f"({code}).detach()"


def _short(code: str) -> str:
    code = " ".join(code.split())
    return code if len(code) <= 40 else code[:37] + "..."
