"""Helpers for the notebook tests: build notebooks the way Jupyter saves them."""

from __future__ import annotations

import json
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures" / "notebooks"


def lines(text: str) -> list[str]:
    """A cell source list the way Jupyter saves it (every line but the last ends with \\n)."""
    parts = text.split("\n")
    out = [p + "\n" for p in parts[:-1]] + [parts[-1]]
    return [p for p in out if p]


def code(text: str, outputs=(), n=None) -> dict:
    return {
        "cell_type": "code",
        "execution_count": n,
        "metadata": {},
        "outputs": list(outputs),
        "source": lines(text),
    }


def md(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": lines(text)}


def nb_json(cells, *, language="python", indent=1, ensure_ascii=False, newline=True, sort_keys=True) -> str:
    meta = {"kernelspec": {"display_name": "K", "language": language, "name": language}}
    doc = {"cells": cells, "metadata": meta, "nbformat": 4, "nbformat_minor": 5}
    text = json.dumps(doc, indent=indent, ensure_ascii=ensure_ascii, sort_keys=sort_keys)
    return text + ("\n" if newline else "")


def write_nb(root: Path, name: str, cells, **fmt) -> Path:
    p = root / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(nb_json(cells, **fmt).encode("utf-8"))
    return p


def mtime(p: Path) -> int:
    return os.stat(p).st_mtime_ns
