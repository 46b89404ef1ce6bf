"""The HTML report of a trace (the only one): findings with their pictures, graphs, memory per iteration.

``report_html(t)`` is the fragment a notebook shows (``Trace._repr_html_``, ``%%gradlint_trace``);
``report_page(t)`` wraps it in a complete, self-contained page (``gradlint trace --html``).  No script, no
external resource: it opens offline and anywhere.  Each picture sits under the finding it illustrates, with
a caption saying what went wrong and the one-line fix; a click opens it at full size.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping, Sequence
from typing import Any

from gradlint.units import fmt_bytes, fmt_devbytes

CSS = """
.gradlint-report{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;font-size:13px;color:#222;max-width:1200px}
.gradlint-report h2{font-size:17px;margin:10px 0 4px}
.gradlint-report h3{font-size:14px;margin:14px 0 4px}
.gradlint-report table{border-collapse:collapse;margin:4px 0 10px}
.gradlint-report th,.gradlint-report td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
.gradlint-report th{background:#f2f2f2}
.gradlint-report td.code{font-family:Menlo,Consolas,monospace;white-space:nowrap;font-weight:600}
.gradlint-report td.msg{max-width:900px}
.gradlint-report .alive{color:#b35806;font-weight:600}
.gradlint-report .none{color:#1a9850}
.gradlint-report .exception{border-left:4px solid #d73027;background:#fdf0ef;padding:4px 8px;margin:6px 0}
.gradlint-report figure{display:block;margin:8px 0 4px 0}
.gradlint-report figure img{max-width:100%;border:1px solid #ddd;cursor:zoom-in}
.gradlint-report figcaption{font-size:12px;color:#333;margin-top:2px}
.gradlint-report figcaption .fix{color:#1a6b30}
.gradlint-report .note{color:#666}
"""

Image = tuple[str, bytes]  # (caption, PNG bytes)


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _loc(d: dict | None) -> str:
    from gradlint.render.report import loc

    return loc(d)


def _table(cls: str, headers: Sequence[str], rows: Sequence[Sequence[tuple[str, str]]]) -> str:
    """rows: cells as (css class, already-escaped html)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td class='{c}'>{v}</td>" if c else f"<td>{v}</td>" for c, v in r) + "</tr>"
        for r in rows
    )
    return f"<table class='{cls}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_SENT = re.compile(r"(?<=[.;])\s+(?=[A-Z`(])")


def what_and_fix(message: str) -> tuple[str, str]:
    """A finding's message cut into what went wrong (one sentence) and the fix (one sentence)."""
    msg = message.strip()
    head, _, fix = msg.partition("Fix: ")
    if "gradlint: " in head:  # GR003 starts with PyTorch's own sentence
        head = head.split("gradlint: ", 1)[1]
    elif "gradlint GR004: " in head:
        head = head.split("gradlint GR004: ", 1)[1]
    sentences = [x for x in _SENT.split(head) if x]
    what = sentences[0].rstrip(". ") if sentences else head
    if not fix:
        fix = sentences[-1] if len(sentences) > 1 else ""
    fix = fix.split("; do NOT")[0].rstrip(". ")
    return what, fix


def trace_pictures(t, namespaces: Sequence[Mapping[str, Any]] = (), limit: int = 8):
    """``([(GraphPick, PNG bytes)], note)``: the pictures worth drawing, and a note when none could be."""
    import tempfile
    from pathlib import Path

    from gradlint.render.from_trace import render_picks
    from gradlint.render.output import INSTALL_HINT, dot_binary

    if dot_binary() is None:
        return [], f"Graph pictures need Graphviz's dot program: install it with {INSTALL_HINT}."
    out = []
    with tempfile.TemporaryDirectory() as d:
        try:
            drawn = render_picks(t, d, namespaces, limit=limit)
        except Exception as exc:  # never lose the report over a picture
            return [], f"Graph pictures unavailable: {exc}"
        for pick, p in drawn:
            out.append((pick, Path(p).read_bytes()))
    return out, None


def trace_images(
    t, namespaces: Sequence[Mapping[str, Any]] = (), limit: int = 6
) -> tuple[list[Image], str | None]:
    """PNG pictures of the graphs worth drawing (caption, bytes), and a note when none could be drawn."""
    pics, note = trace_pictures(t, namespaces, limit)
    return [(pick.title, png) for pick, png in pics], note


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


def _figure(png: bytes, alt: str, caption_html: str) -> str:
    b64 = base64.b64encode(png).decode("ascii")
    src = f"data:image/png;base64,{b64}"
    return (
        f"<figure><a href='{src}' target='_blank' title='open at full size'>"
        f"<img class='graph' alt='{_e(alt)}' src='{src}'/></a>"
        f"<figcaption>{caption_html}</figcaption></figure>"
    )


def _caption(f: dict, extra: str = "") -> str:
    what, fix = what_and_fix(f["message"])
    where = _loc(f) if f.get("filename") else ""
    out = f"<b>{_e(f['code'])}</b> {_e(where)}: {_e(what)}{_e(extra)}."
    if fix:
        out += f" <span class='fix'>Fix: {_e(fix)}.</span>"
    return out


def report_html(
    t,
    images: Sequence[Image] | None = None,
    namespaces: Sequence[Mapping[str, Any]] = (),
    title: str = "gradlint.trace",
    pictures: Sequence[tuple] | None = None,
) -> str:
    """HTML fragment: summary, findings (each with its picture), graphs, memory per iteration.

    ``images``: ``[(caption, PNG)]`` shown as they are (``[]``: no pictures); ``pictures``: ``[(GraphPick,
    PNG)]`` already drawn (``gradlint trace``); neither: drawn here (or taken from an image hook)."""
    from gradlint.render.report import iteration_rows
    from gradlint.runtime.report import CODES

    rep = t.report()
    note = None
    extra: list[Image] = []
    if pictures is not None:
        pictures = list(pictures)
    elif images is None:
        pictures = []
        hooked = _hook_images(t)
        if hooked is not None:
            extra = hooked
        else:
            pictures, note = trace_pictures(t, namespaces)
    else:
        pictures = []
        extra = list(images)
    f = rep.get("findings", [])
    gs = rep.get("graphs", [])
    its = rep.get("iterations", [])
    by_finding: dict[int, tuple] = {}
    loose = []
    for pick, png in pictures:
        if pick.findings:
            by_finding[pick.findings[0]] = (pick, png)
        else:
            loose.append((pick, png))
    parts = [f"<div class='gradlint-report'><style>{CSS}</style>"]
    dropped = rep.get("graphs_dropped") or 0
    parts.append(
        f"<h2>{_e(title)}: {len(f)} finding{'s' if len(f) != 1 else ''}, {len(gs)} graph{'s' if len(gs) != 1 else ''} "
        f"recorded{f' (+{dropped} older not kept)' if dropped else ''}, "
        f"{len(its)} iteration boundar{'ies' if len(its) != 1 else 'y'}</h2>"
        f"<div class='note'>torch {_e(rep.get('torch'))}; devices: {_e(', '.join(rep.get('devices') or []) or '-')}</div>"
    )
    exc = rep.get("exception")
    if exc:
        parts.append(
            f"<div class='exception'>The run ended with <b>{_e(exc['type'])}</b>: {_e(exc['message'])}"
            f" ({_e(_loc(exc))})</div>"
        )
    parts.append("<h3>Findings</h3>")
    if f:
        rows = []
        for i, x in enumerate(f):
            cell = _e(x["message"])
            if i in by_finding:
                pick, png = by_finding[i]
                others = [j + 1 for j in pick.findings[1:]]
                also = (
                    f" (also the graph of finding{'s' if len(others) > 1 else ''} {', '.join(map(str, others))})"
                    if others
                    else ""
                )
                cell += _figure(png, pick.title, _caption(x, also))
            else:
                for pick, _ in by_finding.values():
                    if i in pick.findings[1:]:
                        cell += f"<div class='note'>Picture: under finding {pick.findings[0] + 1} (the same graph).</div>"
            rows.append(
                [
                    ("", _e(i + 1)),
                    ("code", f"{_e(x['code'])} {_e(CODES.get(x['code'], ''))}"),
                    ("", _e(_loc(x) if x.get("filename") else "-")),
                    ("msg", cell),
                ]
            )
        parts.append(_table("findings", ["#", "code", "location", "message"], rows))
    else:
        parts.append("<p class='none findings-none'>No findings.</p>")
    if gs:
        from gradlint.render.report import graph_rows, span

        rows = []
        for g, last, n in graph_rows(gs):
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
                    ("", _e(span(g, last, "id"))),
                    ("", _e(span(g, last, "iteration"))),
                    ("", _e(n)),
                    ("", _e(", ".join(g.get("roots") or []) or "-")),
                    ("", _e(g["nodes"])),
                    ("", _e(g.get("nodes_alive", "-"))),
                    ("", _e(fmt_devbytes(g.get("saved_bytes") or {}))),
                    ("", _e(fmt_devbytes(g.get("peak_saved_bytes") or {}))),
                    ("", _e(created)),
                    freed,
                ]
            )
        parts.append("<h3>Graphs</h3>")
        parts.append(
            _table(
                "graphs",
                [
                    "graph",
                    "iteration",
                    "count",
                    "roots",
                    "nodes",
                    "nodes alive",
                    "saved now",
                    "peak saved",
                    "created",
                    "freed",
                ],
                rows,
            )
        )
    if its:
        rows = []
        for a, b, i in iteration_rows(its):
            rows.append(
                [
                    ("", _e(a if a == b else f"{a}-{b}")),
                    ("", _e(fmt_devbytes(i.get("saved_bytes_alive_at_end") or {}))),
                    ("", _e(i.get("nodes_alive_at_end", "-"))),
                    ("", _e(fmt_bytes(i.get("cuda_allocated") or 0))),
                    ("", _e(fmt_bytes(i.get("cuda_peak") or 0))),
                ]
            )
        parts.append("<h3>Memory per iteration</h3>")
        if len(rows) < len(its):
            parts.append(
                "<div class='note'>Consecutive iterations that ended in the same state share a row.</div>"
            )
        parts.append(
            _table(
                "iterations",
                [
                    "iteration",
                    "saved activations alive at end",
                    "nodes alive at end",
                    "CUDA allocated",
                    "CUDA peak",
                ],
                rows,
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
    if loose or extra:
        parts.append("<h3>Graphs still alive</h3>")
        for pick, png in loose:
            parts.append(_figure(png, pick.title, _e(pick.title)))
        for caption, png in extra:
            parts.append(_figure(png, caption, _e(caption)))
    for b in rep.get("blind_spots") or ():
        parts.append(f"<p class='note'>Not seen: {_e(b)}</p>")
    if note:
        parts.append(f"<p class='note'>{_e(note)}</p>")
    parts.append("</div>")
    return "".join(parts)


def report_page(
    t,
    images: Sequence[Image] | None = None,
    namespaces: Sequence[Mapping[str, Any]] = (),
    title: str = "gradlint.trace report",
    pictures: Sequence[tuple] | None = None,
) -> str:
    """A complete, self-contained HTML document (``gradlint trace --html``)."""
    body = report_html(t, images=images, namespaces=namespaces, title="gradlint.trace", pictures=pictures)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(title)}</title><link rel='icon' href='data:,'></head><body>{body}</body></html>"
    )
