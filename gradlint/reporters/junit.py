"""``junit``: JUnit XML for CI test-report viewers (GitLab, Jenkins, Azure, CircleCI).

One ``<testsuite>`` per file, one ``<testcase>`` per diagnostic with a
``<failure>`` (``name`` is ``gradlint.<code>``, ``classname`` the path, plus
``line``/``column`` attributes).  A clean run is one passing test case, so CI
shows "1 passed" rather than an empty report (as ruff does).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from gradlint.reporters.context import ReportContext, file_rows, position
from gradlint.static.diagnostic import Diagnostic

# Characters XML 1.0 cannot carry at all, even escaped.
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _x(s: str) -> str:
    return _ILLEGAL.sub("\ufffd", s)


def render(diagnostics: Sequence[Diagnostic], ctx: ReportContext) -> str:
    root = ET.Element("testsuites", name="gradlint")
    by_file: dict[str, list[Diagnostic]] = {}
    for d in diagnostics:
        by_file.setdefault(ctx.display_path(d.filename), []).append(d)
    if not by_file:
        suite = ET.SubElement(
            root, "testsuite", name="gradlint", tests="1", failures="0", errors="0", skipped="0"
        )
        ET.SubElement(suite, "testcase", name="No errors found", classname="gradlint")
    for path, diags in by_file.items():
        n = str(len(diags))
        suite = ET.SubElement(root, "testsuite", name=_x(path), tests=n, failures=n, errors="0", skipped="0")
        for d in diags:
            case = ET.SubElement(
                suite,
                "testcase",
                name=f"gradlint.{d.code}",
                classname=_x(path),
                file=_x(path),
                line=str(file_rows(d)[0]),
                column=str(d.location.column),
            )
            failure = ET.SubElement(case, "failure", message=_x(d.message), type=d.code)
            failure.text = _x(f"{path}:{position(d)}: {d.code} {d.message}")
    total = str(len(diagnostics)) if diagnostics else "1"
    root.set("tests", total)
    root.set("failures", str(len(diagnostics)))
    root.set("errors", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
