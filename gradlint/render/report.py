"""The presentation of a trace report: the text summary, the HTML report, pictures.

The runtime reaches this module through :mod:`gradlint.runtime.display` (``str(t)``, ``t._repr_html_()``,
``t.render()``); it imports nothing from the runtime at import time.
"""

from __future__ import annotations

from gradlint.runtime.report import CODES
from gradlint.units import fmt_bytes, fmt_devbytes

__all__ = ["text", "html", "render_trace", "loc"]


def loc(d: dict | None) -> str:
    """``file:line`` of a record (``Cell In[3], line 5`` in a notebook), ``-`` when unknown."""
    if not d or not d.get("filename"):
        return "-"
    fn = d["filename"]
    if fn.startswith("Cell In["):
        return f"{fn}, line {d.get('line')}"
    return f"{fn}:{d.get('line')}"


def _plural(n, word, many=None):
    return f"{n} {word if n == 1 else (many or word + 's')}"


def iteration_rows(its: list[dict]) -> list:
    """Iteration records with runs of identical rows collapsed: ``(first, last, record)`` per run."""
    out = []
    for it in its:
        key = (
            tuple(sorted((it.get("saved_bytes_alive_at_end") or {}).items())),
            it.get("nodes_alive_at_end"),
            it.get("cuda_allocated"),
        )
        if out and out[-1][3] == key:
            out[-1][1] = it["index"]
            continue
        out.append([it["index"], it["index"], it, key])
    return [(a, b, r) for a, b, r, _ in out]


def graph_rows(graphs: list[dict]) -> list:
    """Graph records with runs of alike consecutive graphs (same line, size, fate) collapsed:
    ``(first record, last record, count)`` per run."""
    out = []
    for g in graphs:
        fr = g.get("freed") or {}
        key = (
            tuple(sorted((g.get("created") or {}).items())),
            g.get("nodes"),
            tuple(sorted((g.get("peak_saved_bytes") or {}).items())),
            tuple(sorted((g.get("saved_bytes") or {}).items())),
            fr.get("by"),
            fr.get("filename"),
            fr.get("line"),
            g.get("alive_at_exit"),
            tuple(g.get("roots") or ()),
        )
        if out and out[-1][3] == key:
            out[-1][1] = g
            out[-1][2] += 1
            continue
        out.append([g, g, 1, key])
    return [(a, b, n) for a, b, n, _ in out]


def span(a, b, field) -> str:
    return str(a[field]) if a[field] == b[field] else f"{a[field]}..{b[field]}"


def text(rep: dict) -> str:
    lines = []
    findings = rep["findings"]
    graphs = rep["graphs"]
    head = f"gradlint.trace: {_plural(len(findings), 'finding')}"
    head += f", {_plural(len(rep['iterations']), 'iteration boundary', 'iteration boundaries')}, "
    head += f"{_plural(len(graphs), 'graph')} recorded"
    if rep.get("graphs_dropped"):
        head += f" (+{rep['graphs_dropped']} older not kept)"
    head += f" (torch {rep['torch']})"
    lines.append(head)
    exc = rep.get("exception")
    if exc:
        msg = exc["message"] if len(exc["message"]) <= 160 else exc["message"][:157] + "..."
        lines.append(f"  the run ended with {exc['type']}: {msg} ({loc(exc)})")
    for f in findings:
        lines.append(
            f"  {loc(f) if f.get('filename') else '<unknown>'}: {f['code']} {CODES.get(f['code'], '')}: {f['message']}"
        )
    if graphs:
        lines.append("")
        lines.append("Graphs (alike consecutive graphs on one row):")
        lines.append(
            f"  {'id':>9} {'iter':>9} {'count':>5} {'nodes':>6}  {'saved now':<18} {'peak saved':<18} {'created':<28} {'freed':<28}"
        )
        rows = graph_rows(graphs)
        shown = rows if len(rows) <= 30 else rows[:15] + [None] + rows[-14:]
        for r in shown:
            if r is None:
                lines.append(f"   ... ({len(rows) - 29} more rows)")
                continue
            g, last, n = r
            fr = g.get("freed")
            if fr:
                freed = f"{fr['by']} {loc(fr)}" if fr.get("filename") else fr["by"]
            else:
                freed = "ALIVE" if g.get("alive_at_exit") else "-"
            created = loc(g["created"])
            if g["created"].get("op"):
                created += f" ({g['created']['op']})"
            lines.append(
                f"  {span(g, last, 'id'):>9} {span(g, last, 'iteration'):>9} {n:>5} {g['nodes']:>6}  "
                f"{fmt_devbytes(g['saved_bytes']):<18} "
                f"{fmt_devbytes(g['peak_saved_bytes']):<18} {created:<28} {freed:<28}"
            )
    its = rep["iterations"]
    if its:
        lines.append("")
        lines.append("Memory per iteration (identical consecutive iterations on one row):")
        lines.append(
            f"  {'iter':>9}  {'saved activations alive at end':<32} {'nodes alive':>11} {'cuda allocated':>15} {'cuda peak':>12}"
        )
        rows = iteration_rows(its)
        shown = rows if len(rows) <= 20 else rows[:10] + [None] + rows[-9:]
        for r in shown:
            if r is None:
                lines.append("   ...")
                continue
            a, b, it = r
            idx = str(a) if a == b else f"{a}-{b}"
            lines.append(
                f"  {idx:>9}  {fmt_devbytes(it['saved_bytes_alive_at_end']):<32} "
                f"{it.get('nodes_alive_at_end', '-')!s:>11} "
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
    for b in rep.get("blind_spots") or ():
        lines.append(f"Not seen: {b}")
    return "\n".join(lines)


def html(t, namespaces=()) -> str:
    from gradlint.render.html import report_html

    return report_html(t, namespaces=namespaces)


def render_trace(t, path, graph=None, params=None, **kw):
    from gradlint.render.from_trace import render_trace as _r

    return _r(t, path, graph=graph, params=params, **kw)
