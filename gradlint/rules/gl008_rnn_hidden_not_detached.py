"""GL008: recurrent state carried across backward passes without a cut."""

from __future__ import annotations

import re

import libcst as cst

from gradlint.static.rule import Rule
from gradlint.static.semantics.backward import might_backward, might_backward_in
from gradlint.static.semantics.state import RecurrentState

# Module state rebound through a submodule call that takes it (the analysis only
# looks at `self.<submodule>(...)` calls): `out, self.h = self.rnn(x, self.h)`.
# One regex with a back-reference backtracked over every line (11 s on
# transformers); finding the `= self.f(` first and checking its line is instant.
_SELF_CALL_ASSIGN = re.compile(r"=[ \t]*self\.\w+\(")
_TARGETS = re.compile(r"[ \t]*[\w., ()\[\]*]*")
_SELF_ATTR = re.compile(r"\bself\.(\w+)\b")


def _rebinds_self_state(text: str) -> bool:
    for m in _SELF_CALL_ASSIGN.finditer(text):
        start = text.rfind("\n", 0, m.start()) + 1
        end = text.find("\n", m.end())
        targets, rest = text[start : m.start()], text[m.end() : end if end >= 0 else len(text)]
        if not _TARGETS.fullmatch(targets):
            continue
        for attr in _SELF_ATTR.findall(targets):
            if re.search(r"\bself\." + attr + r"\b", rest):
                return True
    return False


class RnnHiddenNotDetached(Rule):
    """## What it does
    Flags recurrent state that is fed back into the call that produces it
    (`out, hidden = model(x, hidden)`, `out, (h, c) = lstm(x, (h, c))`,
    `out, self.hidden = self.lstm(x, self.hidden)`) across backward passes,
    when nothing cuts the state's autograd history between one backward and the
    next use: no `hidden = hidden.detach()`, `hidden.detach_()`,
    `repackage_hidden(hidden)`, `tuple(s.detach() for s in hidden)`, and no
    re-initialisation (`hidden = model.init_hidden(bs)`) at the top of the loop.

    ## Why is this bad?
    The new state is computed from the old one, so its graph reaches back into
    the previous batch. The previous backward already freed that part of the
    graph, and the next backward fails with

    `RuntimeError: Trying to backward through the graph a second time (or directly access saved tensors after they have already been freed). Saved intermediate values of the graph are freed when you call .backward() or autograd.grad(). Specify retain_graph=True if you need to backward through the graph a second time or if you need to access saved tensors after calling backward.`

    Passing `retain_graph=True` only hides the error: every backward then walks
    the whole history since the first batch, so each step gets slower and memory
    grows until it runs out. Truncated backpropagation through time needs the
    state detached once per backward.

    ## Example
    ```python
    hidden = model.init_hidden(batch_size)
    for data, targets in batches:
        optimizer.zero_grad()
        output, hidden = model(data, hidden)
        loss = criterion(output, targets)
        loss.backward()
        optimizer.step()
    ```

    ## Use instead
    ```python
    hidden = model.init_hidden(batch_size)
    for data, targets in batches:
        hidden = tuple(h.detach() for h in hidden)  # keep the values, cut the graph
        optimizer.zero_grad()
        output, hidden = model(data, hidden)
        loss = criterion(output, targets)
        loss.backward()
        optimizer.step()
    ```

    For state kept on the module, detach it in `forward` (or in a method the
    training loop calls once per batch):
    ```python
    def forward(self, x):
        self.hidden = tuple(h.detach() for h in self.hidden)
        out, self.hidden = self.lstm(x, self.hidden)
        return self.fc(out)
    ```
    """

    code = "GL008"
    name = "rnn-hidden-not-detached"
    reads = "class"  # value kinds (dataflow) read `__init__`
    silenced_elsewhere = True  # another method may reset the state between batches
    message = (
        "`{var}` is fed back into the call that rebinds it after a backward pass without being detached: the "
        'next backward walks into the freed graph of the previous batch ("Trying to backward through the graph '
        'a second time"); detach it once per iteration (`{var} = {var}.detach()`, or '
        "`tuple(h.detach() for h in {var})` for an LSTM's (h, c))"
    )
    module_message = (
        "`{var}` is kept on the module and fed back into the call that rebinds it, and nothing detaches or "
        "re-creates it between batches: the second batch's backward walks into the freed graph of the first "
        '("Trying to backward through the graph a second time"); detach it before use '
        "(`{var} = tuple(h.detach() for h in {var})`) or reset it once per batch"
    )
    VALID = [
        """
        hidden = model.init_hidden(bs)
        for x, y in batches:
            hidden = repackage_hidden(hidden)
            out, hidden = model(x, hidden)
            criterion(out, y).backward()
        """,
        """
        for x, y in batches:
            hidden = model.init_hidden(bs)
            out, hidden = model(x, hidden)
            criterion(out, y).backward()
        """,
        """
        h = None
        for t in range(100):  # generation: no backward
            logits, h = model(tok, h)
            tok = logits.argmax(-1)
        """,
    ]
    INVALID = [
        """
        hidden = model.init_hidden(bs)
        for x, y in batches:
            out, hidden = model(x, hidden)  # error
            loss = criterion(out, y)
            loss.backward()
        """,
        """
        import torch.nn as nn
        class Net(nn.Module):
            def forward(self, x):
                out, self.hidden = self.lstm(x, self.hidden)  # error
                return self.fc(out)
        """,
    ]

    @classmethod
    def could_match(cls, text: str) -> bool:
        if might_backward(text):
            return True
        return "self." in text and _rebinds_self_state(text)

    @classmethod
    def could_match_unit(cls, text: str, file_text: str) -> bool:
        return might_backward_in(text, file_text) or cls.could_match(text)

    def visit_Module(self, node: cst.Module) -> None:
        for finding in self.context.analysis(RecurrentState).findings:
            message = self.module_message if finding.kind == "module" else self.message
            self.report(finding.call, message, var=finding.var)
