"""Export a notebook's code cells to a .py, independently of gradlint's reader.

Like ``jupyter nbconvert --to script``: one ``# In[n]:`` line before each code
cell, IPython lines commented out, non-Python cell magics left out.  Returns
the text and, per .py row, the (cell, row in cell) it came from, so that the
diagnostics of the .py can be compared with the notebook's.
"""

from __future__ import annotations

import ast
import json
import re

_IPY = re.compile(r"^\s*(?:[%!?]|\w[\w.]*\?\??\s*$|\w+\s*=\s*[!%])")


def export(path) -> tuple[str, dict[int, tuple[int, int]]]:
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    cells = doc["cells"] if "cells" in doc else [c for ws in doc["worksheets"] for c in ws["cells"]]
    out: list[str] = []
    where: dict[int, tuple[int, int]] = {}
    for number, cell in enumerate(cells, start=1):
        if cell.get("cell_type") != "code":
            continue
        src = cell.get("source", cell.get("input", ""))
        src = src if isinstance(src, str) else "".join(src)
        rows = src.split("\n")
        if rows and rows[0].startswith("%%"):
            if rows[0][2:].split()[:1] not in (["time"], ["timeit"], ["capture"]):
                continue
            rows[0] = "# " + rows[0]
        out.append(f"# In[{number}]:")
        try:  # IPython escapes only start logical lines: a cell that compiles has none
            compile("\n".join(rows), "cell", "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            plain = True
        except SyntaxError:
            plain = False
        for i, row in enumerate(rows, start=1):
            if not plain and _IPY.match(row):
                indent = row[: len(row) - len(row.lstrip())]
                row = indent + "pass  # " + row.strip()
            out.append(row)
            where[len(out)] = (number, i)
    return "\n".join(out) + "\n", where
