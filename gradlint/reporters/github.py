"""``github``: GitHub Actions workflow commands, one ``::error`` annotation per diagnostic."""

from __future__ import annotations

from collections.abc import Sequence

from gradlint.reporters.context import ReportContext, file_rows, position
from gradlint.static.diagnostic import Diagnostic


def _escape_data(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(s: str) -> str:
    return _escape_data(s).replace(":", "%3A").replace(",", "%2C")


def render(diagnostics: Sequence[Diagnostic], ctx: ReportContext) -> str:
    out = []
    for d in diagnostics:
        path = ctx.display_path(d.filename)
        # Notebooks: GitHub annotates the .ipynb file's own lines; the text says the cell.
        line, end_line = file_rows(d)
        props = [
            f"title={_escape_property(f'gradlint ({d.code})')}",
            f"file={_escape_property(path)}",
            f"line={line}",
        ]
        if d.cell is None:
            props += [f"col={d.location.column}", f"endLine={end_line}", f"endColumn={d.end_location.column}"]
        else:
            props += [f"endLine={end_line}"]
        props = ",".join(props)
        text = f"{path}:{position(d)}: {d.code} {d.message}"
        out.append(f"::error {props}::{_escape_data(text)}\n")
    return "".join(out)
