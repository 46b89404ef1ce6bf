"""GL017: an evaluation loop that runs the model with autograd recording."""

from __future__ import annotations

import re

import libcst as cst

from gradlint.static.fixes import wrap_statements
from gradlint.static.rule import Rule
from gradlint.static.semantics.dataflow import Dataflow, Kind, unwrap_data_wrappers
from gradlint.static.semantics.imports import ImportMap, dotted_name
from gradlint.static.semantics.optim import (
    LIGHTNING_EVAL_HOOKS,
    Event,
    OptimAnalysis,
    ScopeInfo,
    grad_mode_at,
    last_part,
    looks_like_eval_function,
    looks_like_eval_loader,
    looks_like_model_name,
    names_in,
)
from gradlint.static.semantics.summaries import Summaries, bind_arguments
from gradlint.static.semantics.vocabulary import EVAL_LOADER_NAME, NOT_FORWARD_METHODS
from gradlint.static.semantics.walk import contains

# Some sign of evaluation: `.eval()`, an eval-like function name, an eval-like loader name.
# Each pattern starts with a literal (fast to search for) and runs on the
# lowercased text; one case-insensitive alternation took 4 s over transformers.
_EVAL_LOADERS = tuple(
    re.compile(prefix + r"_?(?:data)?(?:loader|set|dl)\b")
    for prefix in (r"val(?:id|idation)?", "test", "eval", "dev")
)


def _has_evidence(text: str) -> bool:
    if ".eval(" in text or ".train(False" in text:
        return True
    low = text.lower()
    return any(p.search(low) for p in _EVAL_LOADERS)


_DEF = re.compile(r"def\s+(\w+)")
_LOOP = re.compile(r"^[ \t]*(?:async[ \t]+)?(?:for|while)\b", re.M)


class EvalWithoutNoGrad(Rule):
    """## What it does
    Flags an evaluation loop (after `model.eval()`, or in a function or loop that
    is evidently for validation, testing or inference: `evaluate`, `validate`,
    `test`, `predict`, `val_loader`, `test_loader`) that calls the model outside
    `torch.no_grad()` / `torch.inference_mode()` and never calls backward. It is
    reported once per loop, at the first model call.

    The model call may be a helper of the same file (a function, or a method on
    `self`) that receives the model and runs it with grad on (`greedy_decode(model,
    src)`) or runs the file's model itself (`self.predict(x)` whose body calls
    `self.model(x)`), or each model of a list, tuple or dict that the loop iterates
    and puts in eval mode (`for net in nets: net.eval(); out = net(x)`).

    ## Why is this bad?
    `model.eval()` only switches dropout and batch-norm behaviour; it does not
    turn autograd off. Every forward still builds a graph and saves its
    activations for a backward that never comes, and outputs kept across the loop
    (`preds.append(out)`, `total += loss`) hold those graphs for the whole pass:
    evaluation uses several times the memory it needs and runs slower, the
    typical "CUDA out of memory during validation" / "torch.OutOfMemoryError:
    CUDA out of memory. Tried to allocate ..." that does not happen in training.

    Grad counts as off under the project's own decorators and context managers
    that wrap `no_grad`, `inference_mode` or `set_grad_enabled(False)` (an
    `@inference` decorator, a `@contextmanager` that yields under `no_grad`, a
    class whose `__enter__` turns grad off, an alias `evaluating = torch.no_grad`),
    whether they are defined in the same file or imported from another file of the
    project (`from .utils import evaluating`); a wrapper whose definition cannot be
    found counts as unknown, and the loop is reported as without it.

    Not reported when the caller visibly disables grad (`with torch.no_grad():
    evaluate(model, loader)` in the same file), when the helper runs the model
    under its own `@torch.no_grad()` / `with torch.no_grad():` (or only calls
    `model.eval()`, `model.to(...)`), for Lightning's `validation_step`
    / `test_step` / `predict_step` (the framework disables grad), nor for
    `model.eval()` in training code that calls backward (batch-norm freezing).

    ## Example
    ```python
    def evaluate(model, val_loader):
        model.eval()
        correct = 0
        for x, y in val_loader:
            out = model(x)
            correct += (out.argmax(1) == y).sum().item()
        return correct
    ```

    ## Use instead
    ```python
    def evaluate(model, val_loader):
        model.eval()
        correct = 0
        with torch.inference_mode():
            for x, y in val_loader:
                out = model(x)
                correct += (out.argmax(1) == y).sum().item()
        return correct
    ```

    ## Fix safety
    The fix wraps the loop in `with torch.inference_mode():`. It is unsafe: code
    in the loop that does need gradients (an input-gradient saliency map, a
    tensor created there and trained later) would stop working, and tensors
    created under inference mode cannot be used in autograd afterwards.
    """

    code = "GL017"
    name = "eval-without-no-grad"
    silenced_elsewhere = True  # a caller may turn grad off
    message = (
        "`{model}` runs in an evaluation loop with autograd on: every forward builds a graph and keeps its "
        "activations for a backward that never comes; wrap the loop in `with torch.inference_mode():`"
    )
    fix_applicability = "unsafe"
    VALID = [
        """
        import torch
        def evaluate(model, val_loader):
            model.eval()
            with torch.no_grad():
                for x, y in val_loader:
                    out = model(x)
        """,
        """
        import torch
        def train(model, loader, opt):
            model.eval()  # freeze batch norm
            for x, y in loader:
                loss = model(x).sum()
                loss.backward()
                opt.step()
        """,
        """
        import torch
        @torch.no_grad()
        def greedy_decode(model, src):
            return model(src).argmax(-1)
        def to_device(model, src):
            model.eval()
            return src.to(next(model.parameters()).device)
        def inference(model, test_loader):
            model.eval()
            for src in test_loader:
                print(greedy_decode(model, to_device(model, src)))
        """,
        """
        import torch
        def compare(nets, test_x):
            with torch.no_grad():
                for net in nets:
                    net.eval()
                    out = net(test_x)
                    net.train()
        """,
    ]
    INVALID = [
        """
        import torch
        def evaluate(model, val_loader):
            model.eval()
            for x, y in val_loader:
                out = model(x)  # error
        """,
        """
        import torch
        def greedy_decode(model, src):
            return model(src).argmax(-1)
        def inference(model, test_loader):
            model.eval()
            for src in test_loader:
                print(greedy_decode(model, src))  # error
        """,
        """
        import torch
        def compare(nets, test_x):
            outs = []
            for net in nets:
                net.eval()
                outs.append(net(test_x))  # error
                net.train()
            return outs
        """,
    ]

    @classmethod
    def could_match(cls, text: str) -> bool:
        if "torch" not in text:
            return False
        return _has_evidence(text) or any(looks_like_eval_function(n) for n in _DEF.findall(text))

    @classmethod
    def could_match_unit(cls, text: str, file_text: str) -> bool:
        # The loop is in the definition; `.train(` counts too: a module put in
        # train/eval mode anywhere counts as a model.
        return _LOOP.search(text) is not None and (
            _has_evidence(text)
            or ".train(" in text
            or any(looks_like_eval_function(n) for n in _DEF.findall(text))
        )

    def visit_Module(self, node: cst.Module) -> None:
        analysis = self.context.analysis(OptimAnalysis)
        imports = self.context.analysis(ImportMap)
        modules = {e.key for s in analysis.scopes for e in s.events if e.kind in ("eval", "train") and e.key}
        for scope in analysis.scopes:
            if _framework_or_test(scope):
                continue
            reported: list[cst.CSTNode] = []
            loops = _loops_outermost_first(scope)
            if not loops:
                continue
            eval_name = any(looks_like_eval_function(s.name) for s in _scope_chain(scope))
            for loop in loops:
                if any(r in _enclosing_loops(scope, loop) for r in reported):
                    continue
                in_loop = [e for e in scope.events if loop in e.loops]
                if not in_loop or any(analysis.calls_backward(e) for e in in_loop):
                    continue
                by_loader = isinstance(loop, cst.For) and (
                    _eval_iterable(loop, scope)
                    or _eval_named_loader(loop, scope, self.context.analysis(Dataflow))
                )
                by_eval_mode = _after_eval(scope, loop, in_loop[0])
                # `for net in nets: net.eval(); out = net(x); net.train()`: each model of a list
                # evaluated in turn (a backward later in the scope trains them, it does not read these)
                iterated = _models_evaluated_in_loop(scope, loop, in_loop)
                # A backward later in the scope may consume what the loop computes (REINFORCE
                # collects log-probs in a loop, then backpropagates their sum): then only an
                # evaluation loader is evidence enough.
                later_backward = any(
                    analysis.calls_backward(e) and e.order > in_loop[0].order for e in scope.events
                )
                if not (by_loader or iterated or ((eval_name or by_eval_mode) and not later_backward)):
                    continue
                call = self._first_model_call(in_loop, scope, loop, modules, imports, iterated)
                if call is None:
                    continue
                if self._grad_off(call, scope, analysis, imports):
                    continue
                reported.append(loop)
                self.report(
                    call.node,
                    model=self._model_label(call.node, modules, scope),
                    fix=self._fix(loop, imports),
                    fix_message="Wrap the loop in `with torch.inference_mode():`",
                )

    # -- what is a model call -----------------------------------------------------------------
    def _first_model_call(
        self, events: list[Event], scope: ScopeInfo, loop, modules: set[str], imports, iterated: set[str]
    ) -> Event | None:
        batch_names = {e.key for e in events if e.kind == "assign" and e.key}
        batch_names |= {e.key for e in scope.events if e.kind == "assign" and e.node is loop and e.key}
        for e in events:
            if e.kind == "call" and e.key in iterated and e.node.args:
                return e  # the model changes each iteration, the input need not
        for e in events:
            if e.kind != "call" or not e.key or not e.node.args:
                continue
            name = e.key[: -len(".forward")] if e.key.endswith(".forward") else e.key
            head = name.split(".")[0]
            if head in imports.aliases and head != name:
                continue  # torch.cat(...), np.mean(...), F.relu(...)
            if head in imports.aliases and name not in modules:
                continue
            if not (
                name in modules or looks_like_model_name(name) or self._helper_runs(e.node, modules, scope)
            ):
                continue
            args_names: set[str] = set()
            for a in e.node.args:
                args_names |= names_in(a.value)
            if args_names & batch_names:
                return e
        return None

    def _model_label(self, call: cst.Call, modules: set[str], scope: ScopeInfo) -> str:
        func = self.context.code_for(call.func)
        name = dotted_name(call.func) or ""
        if name in modules or looks_like_model_name(name) or not self._helper_runs(call, modules, scope):
            return func
        for arg in call.args:
            arg_name = dotted_name(arg.value)
            if arg_name is not None and (arg_name in modules or looks_like_model_name(arg_name)):
                return f"{func}({arg_name}, ...)"
        return func

    def _helper_runs(self, call: cst.Call, modules: set[str], scope: ScopeInfo) -> bool:
        """``decode(model, src)``, ``self.decode(self.model, src)``: a function or method of this file
        that receives the model and runs it with grad on (its summary's ``runs_params``; not when it
        is decorated with ``@torch.no_grad()`` or runs it under its own ``no_grad``)."""
        summaries = self.context.analysis(Summaries)
        callee = summaries.resolve(call, scope.classes[-1] if scope.classes else None)
        if callee is None:
            return False
        summary = summaries.of(callee)
        for param, arg in bind_arguments(summary, call):
            name = dotted_name(arg)
            if name is None or not (name in modules or looks_like_model_name(name)):
                continue
            if summary.runs_params.get(param):
                return True
        # `self.predict(x)` whose body runs `self.model(x)`: a model of this file (put in eval or train
        # mode here, or a model-named attribute), run with grad on
        return any(
            e.kind == "forward"
            and e.grad_enabled
            and isinstance(e.node, cst.Call)
            and e.node.args
            and e.name.rpartition(".")[2] not in NOT_FORWARD_METHODS
            and _runs_a_model(e.name, modules)
            for e in summary.effects
        )

    # -- is grad visibly off? ---------------------------------------------------------------------
    def _grad_off(self, call: Event, scope: ScopeInfo, analysis, imports) -> bool:
        mode, _ = grad_mode_at(call, scope, imports)
        if mode is not None:
            return mode is False
        for w in call.withs:  # `torch.no_grad() if cond else nullcontext()`: unknown, stay silent
            text = " ".join(self.context.code_for(i.item) for i in w.items)
            if "no_grad" in text or "inference_mode" in text or "set_grad_enabled" in text:
                return True
        for e in scope.events:
            if e.order >= call.order:
                break
            if (
                e.kind == "call"
                and e.key
                and (last_part(e.key) in ("set_grad_enabled", "requires_grad_", "inference_mode", "no_grad"))
            ):
                return True
            # `for p in model.parameters(): p.requires_grad = False`: frozen weights build no graph
            if (
                e.kind == "assign"
                and (e.key or "").endswith(".requires_grad")
                and isinstance(e.value, cst.Name)
                and e.value.value == "False"
            ):
                return True
        return self._callers_disable(scope, analysis, imports, depth=2)

    def _callers_disable(self, scope: ScopeInfo, analysis, imports, depth: int) -> bool:
        """Is a function of this chain called from this file under no_grad (or by an unknown mode)?"""
        for s in _scope_chain(scope):
            if not isinstance(s.node, cst.FunctionDef):
                continue
            if grad_mode_of_decorators(s, imports) or self._framework_no_grad(s):
                return True
            fname = s.node.name.value
            for other in analysis.scopes:
                for e in other.events:
                    if e.kind != "call" or last_part(e.key) != fname:
                        continue
                    mode, _ = grad_mode_at(e, other, imports)
                    if mode is False:
                        return True
                    if (
                        mode is None
                        and depth > 0
                        and other is not s
                        and self._callers_disable(other, analysis, imports, depth - 1)
                    ):
                        return True
        return False

    def _framework_no_grad(self, scope: ScopeInfo) -> bool:
        """Hooks a framework runs with grad off: Lightning's eval steps, a transformers Pipeline's
        ``_forward`` (run under ``inference_mode`` by ``Pipeline.forward``)."""
        name = scope.node.name.value
        if name in LIGHTNING_EVAL_HOOKS:
            return True
        return name == "_forward" and "Pipeline" in self.context.source

    # -- the fix ---------------------------------------------------------------------------------------
    def _fix(self, loop, imports):
        alias = next((local for local, full in sorted(imports.aliases.items()) if full == "torch"), None)
        if alias is None:
            return None  # no module alias to spell torch.inference_mode with
        return wrap_statements(self.context, [loop], f"{alias}.inference_mode()")


def grad_mode_of_decorators(scope: ScopeInfo, imports) -> bool:
    from gradlint.static.semantics.grad_mode import grad_mode_of

    return any(grad_mode_of(d.decorator, imports) is False for d in scope.node.decorators)


def _runs_a_model(callee: str, modules: set[str]) -> bool:
    """``self.model(x)``, ``self.model.encode(x)``, ``model(x)`` / ``model.encode(x)`` when ``model`` is put in
    eval or train mode in this file; not a method whose own name mentions a model (``acc.unwrap_model``)."""
    if callee in modules:
        return True
    receiver = callee.rpartition(".")[0]
    if receiver == "self":
        return looks_like_model_name(callee)
    return bool(receiver) and (
        receiver in modules
        or (receiver.startswith("self.") and receiver.count(".") == 1 and looks_like_model_name(receiver))
    )


def _scope_chain(scope: ScopeInfo):
    s: ScopeInfo | None = scope
    while s is not None:
        yield s
        s = s.parent


def _framework_or_test(scope: ScopeInfo) -> bool:
    for s in _scope_chain(scope):
        if not isinstance(s.node, cst.FunctionDef):
            continue
        name = s.node.name.value
        if name in LIGHTNING_EVAL_HOOKS or name.startswith("test_"):
            return True
        if any(c.startswith("Test") or c.endswith("Test") or c.endswith("Tests") for c in s.classes):
            return True
    return False


def _loops_outermost_first(scope: ScopeInfo):
    seen, out = set(), []
    for e in scope.events:
        for loop in e.loops:
            if id(loop) not in seen:
                seen.add(id(loop))
                out.append(loop)
    return out


def _eval_named_loader(loop: cst.For, scope: ScopeInfo, flow: Dataflow) -> bool:
    """``valid = DataLoader(valid_set); for x in tqdm(valid)``: the name says evaluation, dataflow a loader.

    Only a loader built in the loop's own function counts (its constructor is the evidence).
    """
    it = unwrap_data_wrappers(loop.iter)
    if not isinstance(it, cst.Name) or "train" in it.value.lower() or not EVAL_LOADER_NAME.search(it.value):
        return False
    fact = flow.fact_of(it, at=loop)
    return fact.kind is Kind.DATA_LOADER and fact.origin is not None and contains(scope.node, fact.origin)


def _enclosing_loops(scope: ScopeInfo, loop) -> tuple:
    for e in scope.events:
        if loop in e.loops:
            return e.loops[: e.loops.index(loop)]
    return ()


def _eval_iterable(loop: cst.For, scope: ScopeInfo) -> bool:
    """``for b in val_loader`` or ``val_bar = tqdm(val_loader); for b in val_bar``."""
    if looks_like_eval_loader(loop.iter):
        return True
    if isinstance(loop.iter, cst.Name):
        value = None
        for e in scope.events:
            if e.node is loop:
                break
            if e.kind == "assign" and e.key == loop.iter.value:
                value = e.value
        return value is not None and looks_like_eval_loader(value)
    return False


def _models_evaluated_in_loop(scope: ScopeInfo, loop, in_loop: list[Event]) -> set[str]:
    """Names the loop binds to a model (``for net in nets``, ``for name, m in models.items()``)
    that it puts in eval mode (``net.eval()``) before calling it, not back in train mode between."""
    targets = {e.key for e in scope.events if e.kind == "assign" and e.node is loop and e.key}
    state: dict[str, str] = {}
    out: set[str] = set()
    for e in in_loop:
        if e.key not in targets:
            continue
        if e.kind in ("eval", "train"):
            state[e.key] = e.kind
        elif e.kind == "call" and state.get(e.key) == "eval":
            out.add(e.key)
    return out


def _after_eval(scope: ScopeInfo, loop, first: Event) -> bool:
    """A ``X.eval()`` earlier in this scope (outside the loop), not undone by ``X.train()``."""
    state = {}
    for e in scope.events:
        if e.order >= first.order:
            break
        if loop in e.loops:
            continue
        if e.kind in ("eval", "train") and e.key:
            state[e.key] = e.kind
    return any(v == "eval" for v in state.values())
