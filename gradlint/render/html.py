"""The HTML report of a trace: tables plus graph pictures embedded as data URIs.

``report_html(t)`` is the fragment ``Trace._repr_html_`` shows in a notebook;
``report_page(t)`` wraps it in a complete, self-contained page (``gradlint trace
--html``).  No script, no external resource: it opens offline and anywhere.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from typing import Any

CSS = """
.gradlint-report{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;font-size:13px;color:#222;max-width:1200px}
.gradlint-report h2{font-size:17px;margin:10px 0 4px}
.gradlint-report h3{font-size:14px;margin:14px 0 4px}
.gradlint-report table{border-collapse:collapse;margin:4px 0 10px}
.gradlint-report th,.gradlint-report td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
.gradlint-report th{background:#f2f2f2}
.gradlint-report td.code{font-family:Menlo,Consolas,monospace;white-space:nowrap;font-weight:600}
.gradlint-report td.msg{max-width:760px}
.gradlint-report .alive{color:#b35806;font-weight:600}
.gradlint-report .none{color:#1a9850}
.gradlint-report figure{display:inline-block;margin:6px 12px 12px 0;vertical-align:top}
.gradlint-report figure img{max-width:100%;border:1px solid #ddd}
.gradlint-report figcaption{font-size:12px;color:#555}
.gradlint-report .note{color:#666}
"""

Image = tuple[str, bytes]  # (caption, PNG bytes)


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _loc(d: dict | None) -> str:
    if not d or not d.get("filename"):
        return "-"
    return f"{d['filename']}:{d.get('line')}"


def _table(cls: str, headers: Sequence[str], rows: Sequence[Sequence[tuple[str, str]]]) -> str:
    """rows: cells as (css class, already-escaped html)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td class='{c}'>{v}</td>" if c else f"<td>{v}</td>" for c, v in r) + "</tr>"
        for r in rows
    )
    return f"<table class='{cls}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def trace_images(
    t, namespaces: Sequence[Mapping[str, Any]] = (), limit: int = 6
) -> tuple[list[Image], str | None]:
    """PNG pictures of the graphs worth drawing, and a note when none could be drawn."""
    import tempfile
    from pathlib import Path

    from gradlint.render.from_trace import render_picks
    from gradlint.render.output import INSTALL_HINT, dot_binary

    if dot_binary() is None:
        return [], f"Graph pictures need Graphviz's dot program: install it with {INSTALL_HINT}."
    out: list[Image] = []
    with tempfile.TemporaryDirectory() as d:
        try:
            drawn = render_picks(t, d, namespaces, limit=limit)
        except Exception as exc:  # never lose the report over a picture
            return [], f"Graph pictures unavailable: {exc}"
        for pick, p in drawn:
            out.append((pick.title, Path(p).read_bytes()))
    return out, None


def _hook_images(t) -> list[Image] | None:
    """Pictures from hooks registered with ``gradlint.runtime.register_image_hook`` (None: no hook answered)."""
    try:
        from gradlint.runtime.display import _image_hooks
    except ImportError:  # pragma: no cover
        return None
    for hook in list(_image_hooks):
        try:
            png = hook(t)
        except Exception:  # a hook must never cost the report
            continue
        if png:
            return [("graph", png)]
    return None


def report_html(
    t,
    images: Sequence[Image] | None = None,
    namespaces: Sequence[Mapping[str, Any]] = (),
    title: str = "gradlint.trace",
) -> str:
    """HTML fragment: summary, findings, graphs, memory per iteration, graph pictures."""
    from gradlint.runtime.report import CODES
    from gradlint.units import fmt_bytes, fmt_devbytes

    rep = t.report()
    note = None
    if images is None:
        images = _hook_images(t)
    if images is None:
        images, note = trace_images(t, namespaces)
    f = rep.get("findings", [])
    gs = rep.get("graphs", [])
    its = rep.get("iterations", [])
    parts = [f"<div class='gradlint-report'><style>{CSS}</style>"]
    parts.append(
        f"<h2>{_e(title)}: {len(f)} finding{'s' if len(f) != 1 else ''}, {len(gs)} graph{'s' if len(gs) != 1 else ''}, "
        f"{len(its)} iteration boundar{'ies' if len(its) != 1 else 'y'}</h2>"
        f"<div class='note'>torch {_e(rep.get('torch'))}; devices: {_e(', '.join(rep.get('devices') or []) or '-')}</div>"
    )
    parts.append("<h3>Findings</h3>")
    if f:
        parts.append(
            _table(
                "findings",
                ["code", "location", "message"],
                [
                    [
                        ("code", f"{_e(x['code'])} {_e(CODES.get(x['code'], ''))}"),
                        ("", _e(f"{x['filename']}:{x['line']}" if x.get("filename") else "-")),
                        ("msg", _e(x["message"])),
                    ]
                    for x in f
                ],
            )
        )
    else:
        parts.append("<p class='none findings-none'>No findings.</p>")
    if gs:
        rows = []
        for g in gs:
            fr = g.get("freed")
            if fr:
                freed = ("", _e(f"{fr.get('by')} {_loc(fr)}"))
            elif g.get("alive_at_exit"):
                freed = ("alive", "ALIVE")
            else:
                freed = ("", "-")
            created = _loc(g.get("created")) + (
                f" ({g['created']['op']})" if (g.get("created") or {}).get("op") else ""
            )
            rows.append(
                [
                    ("", _e(g["id"])),
                    ("", _e(g["iteration"])),
                    ("", _e(g["nodes"])),
                    ("", _e(fmt_devbytes(g.get("saved_bytes") or {}))),
                    ("", _e(fmt_devbytes(g.get("peak_saved_bytes") or {}))),
                    ("", _e(created)),
                    freed,
                ]
            )
        parts.append("<h3>Graphs</h3>")
        parts.append(
            _table(
                "graphs", ["graph", "iteration", "nodes", "saved now", "peak saved", "created", "freed"], rows
            )
        )
    if its:
        parts.append("<h3>Memory per iteration</h3>")
        parts.append(
            _table(
                "iterations",
                ["iteration", "saved activations alive at end", "CUDA allocated", "CUDA peak"],
                [
                    [
                        ("", _e(i.get("index"))),
                        ("", _e(fmt_devbytes(i.get("saved_bytes_alive_at_end") or {}))),
                        ("", _e(fmt_bytes(i.get("cuda_allocated") or 0))),
                        ("", _e(fmt_bytes(i.get("cuda_peak") or 0))),
                    ]
                    for i in its
                ],
            )
        )
    mem = rep.get("memory") or {}
    parts.append(
        f"<p>Peak saved-tensor bytes: {_e(fmt_devbytes(mem.get('saved_bytes_peak') or {}))}"
        + (
            f"; CUDA peak allocated: {_e(fmt_bytes(mem['cuda_peak_bytes']))}"
            if mem.get("cuda_peak_bytes")
            else ""
        )
        + "</p>"
    )
    if images:
        parts.append("<h3>Graphs still alive / involved in findings</h3>")
        for caption, png in images:
            b64 = base64.b64encode(png).decode("ascii")
            parts.append(
                f"<figure><img class='graph' alt='{_e(caption)}' src='data:image/png;base64,{b64}'/>"
                f"<figcaption>{_e(caption)}</figcaption></figure>"
            )
    if note:
        parts.append(f"<p class='note'>{_e(note)}</p>")
    parts.append("</div>")
    return "".join(parts)


def report_page(
    t,
    images: Sequence[Image] | None = None,
    namespaces: Sequence[Mapping[str, Any]] = (),
    title: str = "gradlint.trace report",
) -> str:
    """A complete, self-contained HTML document (``gradlint trace --html``)."""
    body = report_html(t, images=images, namespaces=namespaces, title="gradlint.trace")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(title)}</title><link rel='icon' href='data:,'></head><body>{body}</body></html>"
    )
