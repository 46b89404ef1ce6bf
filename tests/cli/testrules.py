"""Small rules for the CLI tests (the real catalog is written in parallel).

Importable by name so that ``GRADLINT_EXTRA_RULES=testrules`` brings them into
``python -m gradlint`` child processes too.
"""

import libcst as cst

from gradlint.static.rule import Replace, Rule


class FlagBackward(Rule):
    """## What it does
    Test rule: flags every `.backward()` call.

    ## Why is this bad?
    It is not; this rule exists for tests.

    ## Example
    ```python
    loss.backward()
    ```

    ## Use instead
    ```python
    loss.backward_checked()
    ```

    ## Fix safety
    Safe.
    """

    code = "GL901"
    name = "test-backward"
    message = "`{target}.backward()` called; call `{target}.backward_checked()` instead"
    fix_applicability = "safe"
    prefilter = ("backward",)

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value == "backward":
            target = self.context.code_for(func.value)
            self.report(
                node,
                target=target,
                fix=Replace(func.attr, cst.Name("backward_checked")),
                fix_message="Use `backward_checked()`",
            )


class FlagPrint(Rule):
    """## What it does
    Test rule: flags `print(...)` calls, with an unsafe fix.
    """

    code = "GL902"
    name = "test-print"
    message = "`print` call; use `log` instead"
    fix_applicability = "unsafe"
    prefilter = ("print",)

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Name) and node.func.value == "print":
            self.report(
                node, fix=Replace(node.func, cst.Name("log")), fix_message="Replace `print` with `log`"
            )


class FlagZeroGrad(Rule):
    """## What it does
    Test rule, off by default: flags `zero_grad` attribute calls.
    """

    code = "GL950"
    name = "test-zero-grad-off"
    message = "`zero_grad()` call"
    default_enabled = False
    prefilter = ("zero_grad",)

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Attribute) and node.func.attr.value == "zero_grad":
            self.report(node)


TEST_RULES = [FlagBackward, FlagPrint, FlagZeroGrad]
