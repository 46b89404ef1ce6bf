"""Write DOT source as .dot/.gv text, or draw it with Graphviz's ``dot`` as PNG/SVG."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

# suffix -> Graphviz output format (None: write the DOT source itself)
FORMATS = {".png": "png", ".svg": "svg", ".dot": None, ".gv": None}

INSTALL_HINT = "`apt-get install -y graphviz` (Debian/Ubuntu) or `brew install graphviz` (macOS)"


class GraphvizNotFoundError(RuntimeError):
    """Graphviz's ``dot`` program is needed (PNG/SVG) and is not on PATH."""


def _missing_dot(path: str | Path) -> GraphvizNotFoundError:
    return GraphvizNotFoundError(
        f"Drawing {Path(path).name} needs Graphviz's `dot` program, which is not on PATH: install it with "
        f"{INSTALL_HINT}, or write the DOT source instead by giving a .dot path."
    )


def format_for(path: str | Path, fmt: str | None = None) -> str | None:
    """Output format for ``path``: ``"png"``, ``"svg"`` or ``None`` (DOT source)."""
    if fmt is not None:
        fmt = fmt.lower().lstrip(".")
        if fmt in ("dot", "gv"):
            return None
        if fmt in ("png", "svg"):
            return fmt
        raise ValueError(f"unsupported format {fmt!r}: use png, svg or dot")
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(
            f"cannot tell the output format from {str(path)!r}: end the path with .png, .svg, .dot or .gv"
        )
    return FORMATS[suffix]


def dot_binary() -> str | None:
    return shutil.which("dot")


def pipe(source: str, fmt: str, timeout: float = 120.0, path_for_message: str = "graph") -> bytes:
    """Draw DOT ``source`` with the ``dot`` program; returns the image bytes."""
    exe = dot_binary()
    if exe is None:
        raise _missing_dot(path_for_message)
    try:
        proc = subprocess.run(
            [exe, f"-T{fmt}"], input=source.encode("utf-8"), capture_output=True, timeout=timeout
        )
    except FileNotFoundError:  # raced with an uninstall, or a broken PATH entry
        raise _missing_dot(path_for_message) from None
    if proc.returncode != 0 or not proc.stdout:
        err = proc.stderr.decode("utf-8", "replace").strip()
        raise RuntimeError(f"Graphviz `dot -T{fmt}` failed (exit {proc.returncode}): {err[:500]}")
    return proc.stdout


def write(source: str, path: str | Path, fmt: str | None = None) -> Path:
    """Write ``source`` to ``path`` in the format its suffix (or ``fmt``) names."""
    path = Path(path)
    kind = format_for(path, fmt)
    if path.parent and not path.parent.exists():
        os.makedirs(path.parent, exist_ok=True)
    if kind is None:
        path.write_text(source, encoding="utf-8")
        return path
    data = pipe(source, kind, path_for_message=str(path))
    path.write_bytes(data)
    return path
