"""Errors raised by the runtime tracer."""

from __future__ import annotations


class GradlintError(RuntimeError):
    """Base class of errors raised by the gradlint runtime tracer."""


class BackwardThroughFreedGraphError(GradlintError):
    """GR003: backward would run through a graph whose buffers were already freed.

    ``graph``: id of the freed graph the backward reached (or None); ``details``: the finding's details."""

    code = "GR003"
    graph = None
    details = None


class InplaceOnSavedTensorError(GradlintError):
    """GR004: a tensor saved for backward was modified in place before backward used it.

    ``graph``: id of the graph of the node that saved the tensor (or None); ``details``: the finding's
    details (also in ``t.findings`` and the JSON report)."""

    code = "GR004"
    graph = None
    details = None


class TraceStateError(GradlintError):
    """Nested or double-started traces, or stop() without start()."""
