"""Report objects of the runtime tracer: findings, graph records, text/HTML/JSON output."""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

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

    def to_dict(self) -> dict:
        return asdict(self)


def fmt_bytes(n: int) -> str:
    n = int(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0
    return str(n)  # pragma: no cover


def fmt_devbytes(d: dict[str, int]) -> str:
    items = [(k, v) for k, v in sorted(d.items()) if v]
    if not items:
        return "0 B"
    return ", ".join(f"{k}: {fmt_bytes(v)}" for k, v in items)


def _loc(d: dict | None) -> str:
    if not d or not d.get("filename"):
        return "-"
    return f"{d['filename']}:{d.get('line')}"


def render_text(rep: dict) -> str:
    lines = []
    findings = rep["findings"]
    head = f"gradlint.trace: {len(findings)} finding{'s' if len(findings) != 1 else ''}"
    head += (
        f", {len(rep['iterations'])} iteration boundaries, {len(rep['graphs'])} graphs (torch {rep['torch']})"
    )
    lines.append(head)
    for f in findings:
        loc = f"{f['filename']}:{f['line']}" if f.get("filename") else "<unknown>"
        lines.append(f"  {loc}: {f['code']} {CODES.get(f['code'], '')}: {f['message']}")
    if rep["graphs"]:
        lines.append("")
        lines.append("Graphs:")
        lines.append(
            f"  {'id':>4} {'iter':>4} {'nodes':>6}  {'saved now':<18} {'peak saved':<18} {'created':<28} {'freed':<28}"
        )
        for g in rep["graphs"]:
            fr = g.get("freed")
            if fr:
                freed = f"{fr['by']} {_loc(fr)}" if fr.get("filename") else fr["by"]
            else:
                freed = "ALIVE" if g.get("alive_at_exit") else "-"
            created = _loc(g["created"])
            if g["created"].get("op"):
                created += f" ({g['created']['op']})"
            lines.append(
                f"  {g['id']:>4} {g['iteration']:>4} {g['nodes']:>6}  {fmt_devbytes(g['saved_bytes']):<18} "
                f"{fmt_devbytes(g['peak_saved_bytes']):<18} {created:<28} {freed:<28}"
            )
        if rep.get("graphs_dropped"):
            lines.append(f"  ... {rep['graphs_dropped']} older graphs not kept (max_graphs)")
    its = rep["iterations"]
    if its:
        lines.append("")
        lines.append("Memory per iteration:")
        lines.append(
            f"  {'iter':>4}  {'saved activations alive at end':<32} {'cuda allocated':>15} {'cuda peak':>12}"
        )
        shown = its if len(its) <= 20 else its[:10] + [None] + its[-9:]
        for it in shown:
            if it is None:
                lines.append("   ...")
                continue
            lines.append(
                f"  {it['index']:>4}  {fmt_devbytes(it['saved_bytes_alive_at_end']):<32} "
                f"{fmt_bytes(it['cuda_allocated']):>15} {fmt_bytes(it['cuda_peak']):>12}"
            )
    mem = rep["memory"]
    lines.append("")
    lines.append(
        f"Peak saved-tensor bytes: {fmt_devbytes(mem['saved_bytes_peak'])}"
        + (
            f"; CUDA peak allocated: {fmt_bytes(mem['cuda_peak_bytes'])}"
            if mem.get("cuda_peak_bytes")
            else ""
        )
    )
    return "\n".join(lines)


def _table(headers, rows) -> str:
    h = "".join(f"<th>{html.escape(str(x))}</th>" for x in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


# Rendering hook: gradlint.render (or anyone) may register a callable
# ``fn(trace) -> bytes | None`` returning a PNG that _repr_html_ inlines.
_image_hooks: list[Callable[[Any], bytes | None]] = []


def register_image_hook(fn: Callable[[Any], bytes | None]) -> Callable:
    """Register ``fn(trace) -> PNG bytes | None`` used by ``Trace._repr_html_``."""
    if fn not in _image_hooks:
        _image_hooks.append(fn)
    return fn


def _png_for(trace) -> bytes | None:
    hooks = list(_image_hooks)
    if not hooks:
        try:  # the renderer package may expose `trace_png(trace)`; optional.
            import gradlint.render as _render  # noqa: F401

            fn = getattr(_render, "trace_png", None)
            if callable(fn):
                hooks.append(fn)
        except Exception:
            pass
    for fn in hooks:
        try:
            png = fn(trace)
        except Exception:
            continue
        if png:
            return png
    return None


def render_html(rep: dict, trace=None) -> str:
    parts = [
        f"<div class='gradlint-trace'><b>gradlint.trace</b>: {len(rep['findings'])} findings, "
        f"{len(rep['iterations'])} iteration boundaries, {len(rep['graphs'])} graphs (torch {html.escape(rep['torch'])})"
    ]
    if rep["findings"]:
        parts.append(
            _table(
                ["code", "location", "message"],
                [
                    (f["code"] + " " + CODES.get(f["code"], ""), f"{f['filename']}:{f['line']}", f["message"])
                    for f in rep["findings"]
                ],
            )
        )
    if rep["graphs"]:
        rows = []
        for g in rep["graphs"]:
            fr = g.get("freed")
            freed = f"{fr['by']} {_loc(fr)}" if fr else ("ALIVE" if g["alive_at_exit"] else "-")
            rows.append(
                (
                    g["id"],
                    g["iteration"],
                    g["nodes"],
                    fmt_devbytes(g["saved_bytes"]),
                    fmt_devbytes(g["peak_saved_bytes"]),
                    _loc(g["created"]) + f" {g['created'].get('op') or ''}",
                    freed,
                )
            )
        parts.append(
            _table(["graph", "iteration", "nodes", "saved now", "peak saved", "created", "freed"], rows)
        )
    if rep["iterations"]:
        parts.append(
            _table(
                ["iteration", "saved activations alive at end", "cuda allocated", "cuda peak"],
                [
                    (
                        i["index"],
                        fmt_devbytes(i["saved_bytes_alive_at_end"]),
                        fmt_bytes(i["cuda_allocated"]),
                        fmt_bytes(i["cuda_peak"]),
                    )
                    for i in rep["iterations"]
                ],
            )
        )
    if trace is not None:
        png = _png_for(trace)
        if png:
            import base64

            parts.append(f"<img src='data:image/png;base64,{base64.b64encode(png).decode()}'/>")
    parts.append("</div>")
    return "".join(parts)


def dumps(rep: dict, indent: int | None = 2) -> str:
    return json.dumps(rep, indent=indent, default=str)
