"""gradlint runtime tracer: ``with gradlint.trace() as t: ...`` (imports torch)."""

from ._tracer import (
    BackwardThroughFreedGraphError,
    GradlintError,
    InplaceOnSavedTensorError,
    Trace,
    TraceStateError,
    trace,
)
from .report import CODES, Finding, GraphRecord, register_image_hook

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
]
