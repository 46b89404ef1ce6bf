"""gradlint runtime tracer: ``with gradlint.trace() as t: ...`` (imports torch).

A model with no presentation code: text, HTML and pictures live in :mod:`gradlint.render`."""

from ._tracer import (
    BackwardThroughFreedGraphError,
    GradlintError,
    InplaceOnSavedTensorError,
    Trace,
    TraceStateError,
    trace,
)
from .display import register_image_hook
from .graphs import iter_graph
from .report import CODES, Finding, GraphRecord

TraceReport = Trace

__all__ = [
    "trace",
    "Trace",
    "TraceReport",
    "Finding",
    "GraphRecord",
    "CODES",
    "GradlintError",
    "BackwardThroughFreedGraphError",
    "InplaceOnSavedTensorError",
    "TraceStateError",
    "register_image_hook",
    "iter_graph",
]
