"""The report model of the runtime tracer: finding codes, findings, graph records, the JSON form.

Presentation (text, HTML, pictures, byte formatting) lives in :mod:`gradlint.render`; this module has no
rendering code.  ``register_image_hook`` is kept here for compatibility (see :mod:`.display`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from .display import _image_hooks, register_image_hook  # noqa: F401  (compatibility re-export)

# Version 1 of the JSON report.  Fields added since (readers of version 1 ignore them): iterations[]
# "nodes_alive_at_end"; graphs[] "roots", "nodes_alive"; findings[] details "picture_key"; report "exception",
# "iterations_summary", "blind_spots".
SCHEMA_VERSION = 1

CODES = {
    "GR001": "retained-graph",
    "GR002": "graph-leak-across-iterations",
    "GR003": "backward-through-freed-graph",
    "GR004": "inplace-on-saved-tensor",
    "GR005": "nonleaf-grad-access",
    "GR006": "parameters-without-grad",
    "GR007": "gradients-not-reset",
}


@dataclass
class Finding:
    code: str
    message: str
    filename: str | None
    line: int | None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return CODES.get(self.code, self.code)

    def to_dict(self) -> dict:
        return {
            "code": self.code,
            "message": self.message,
            "filename": self.filename,
            "line": self.line,
            "details": self.details,
        }

    def __str__(self) -> str:
        loc = f"{self.filename}:{self.line}" if self.filename else "<unknown>"
        return f"{loc}: {self.code} {self.name}: {self.message}"


@dataclass
class GraphRecord:
    id: int
    iteration: int
    created: dict[str, Any]
    saved_bytes: dict[str, int]
    peak_saved_bytes: dict[str, int]
    nodes: int
    backward_calls: list[dict[str, Any]]
    freed: dict[str, Any] | None
    alive_at_exit: bool
    leaf_saved_bytes: dict[str, int] = field(default_factory=dict)
    roots: list[str] = field(default_factory=list)
    nodes_alive: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def dumps(rep: dict, indent: int | None = 2) -> str:
    return json.dumps(rep, indent=indent, default=str)


class FindingLog:
    """The findings of a trace, deduplicated by key, and the views (traces started inside a host trace)
    that each see what was found while they ran."""

    def __init__(self):
        self.findings: list[Finding] = []
        self.keys: set = set()
        self.views: list = []

    def add(self, code, msg, fn, line, func, details, key=None) -> bool:
        if key is None:
            key = (code, fn, line, msg)
        seen = key in self.keys
        if seen and not self.views:
            return False
        if func and "function" not in details:
            details["function"] = func
        f = Finding(code, msg, fn, line, details)
        for v in self.views:  # a view reports what it saw, also what the host saw before it started
            v._view_add(f, key)
        if seen:
            return False
        self.keys.add(key)
        self.findings.append(f)
        return True
