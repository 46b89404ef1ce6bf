"""IPython / Jupyter integration: ``%load_ext gradlint``.

* ``%%gradlint_trace [NAME] [--every N] [--json PATH]`` traces the cell and
  displays the HTML report (findings, graphs, pictures of the graphs still alive);
  the trace is stored in the user namespace as ``NAME`` (default ``_gradlint_trace``).
  An exception in the cell is re-raised after the report is shown.
* Trace objects display as the rich report (:func:`gradlint.render.html.report_html`),
  so ``t`` as the last expression of a cell shows it.

This module imports neither torch nor IPython at import time.
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="%%gradlint_trace", add_help=False)
    p.add_argument("name", nargs="?", default="_gradlint_trace")
    p.add_argument("--every", type=int, default=1)
    p.add_argument("--json", dest="json_path", default=None)
    p.add_argument("--no-pictures", dest="pictures", action="store_false")
    return p


def _html_for(t, ipython=None, pictures: bool = True) -> str:
    from gradlint.render.html import report_html

    ns = [ipython.user_ns] if ipython is not None else []
    return report_html(t, namespaces=ns, images=None if pictures else [])


def _cell_number(ip) -> int:
    """The number IPython gave the cell running this magic (its ``In[N]``), read from the calling frames."""
    import sys

    known = getattr(ip.compile, "_filename_map", {})
    f = sys._getframe(1)
    while f is not None:
        n = known.get(f.f_code.co_filename)
        if isinstance(n, int):
            return n
        f = f.f_back
    return ip.execution_count


def gradlint_trace(line: str, cell: str, ipython=None) -> None:
    """Body of the ``%%gradlint_trace`` cell magic."""
    from IPython import get_ipython
    from IPython.display import HTML, display

    import gradlint

    ip = ipython or get_ipython()
    try:
        opts = _parser().parse_args(shlex.split(line))
    except SystemExit:
        raise ValueError(
            f"%%gradlint_trace: bad arguments {line!r}; usage: %%gradlint_trace [NAME] [--every N] "
            f"[--json PATH] [--no-pictures]"
        ) from None
    # IPython's own compiler caches the source, so tracebacks and gradlint's
    # "file:line" point into the cell.
    try:
        filename = ip.compile.cache(cell, _cell_number(ip))  # "Cell In[N]" in tracebacks and findings
    except Exception:  # pragma: no cover - very old IPython
        filename = "<gradlint_trace cell>"
    code = compile(cell, filename, "exec")
    t = gradlint.trace(every=opts.every)
    t._host = "%%gradlint_trace"  # a gradlint.trace() inside the cell runs as a view of this one
    ip.user_ns[opts.name] = t
    err: BaseException | None = None
    t.start()
    try:
        exec(code, ip.user_ns)
    except BaseException as exc:  # noqa: BLE001 - shown after the report
        err = exc
    finally:
        t.stop(exception=err)
    if opts.json_path:
        t.save_json(opts.json_path)
    display(HTML(_html_for(t, ip, opts.pictures)))
    if err is not None:
        raise err


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext gradlint``: the cell magic and the rich display of traces."""

    def _magic(line, cell):
        return gradlint_trace(line, cell, ipython)

    _magic.__doc__ = gradlint_trace.__doc__
    ipython.register_magic_function(_magic, magic_kind="cell", magic_name="gradlint_trace")
    try:
        fmt = ipython.display_formatter.formatters["text/html"]
        fmt.for_type_by_name("gradlint.runtime._tracer", "Trace", lambda t: _html_for(t, ipython))
    except Exception:  # pragma: no cover - a frontend without HTML
        pass


def unload_ipython_extension(ipython: Any) -> None:  # pragma: no cover - symmetry
    try:
        ipython.display_formatter.formatters["text/html"].pop("gradlint.runtime._tracer.Trace", None)
    except Exception:
        pass
