"""Rules for the integration tests, loaded into child processes with ``GRADLINT_EXTRA_RULES=toyrules``.

The real catalog changes while these tests must not: the flake8 and pre-commit
tests exercise the plumbing with rules whose behaviour is fixed here.
"""

import libcst as cst

from gradlint.static.rule import Replace, Rule


class ToyBadCall(Rule):
    """## What it does
    Test rule: flags `bad_call()`, with a safe fix to `good_call()`.
    """

    code = "GL971"
    name = "toy-bad-call"
    message = "`bad_call()` is wrong; call `good_call()`"
    fix_applicability = "safe"
    prefilter = ("bad_call",)

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Name) and node.func.value == "bad_call":
            self.report(node, fix=Replace(node.func, cst.Name("good_call")))


class ToyOffByDefault(Rule):
    """## What it does
    Test rule, off by default: flags the name `pedantic`.
    """

    code = "GL972"
    name = "toy-pedantic"
    message = "pedantic name"
    default_enabled = False
    prefilter = ("pedantic",)

    def visit_Name(self, node: cst.Name) -> None:
        if node.value == "pedantic":
            self.report(node)
