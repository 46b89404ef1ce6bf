"""The one byte formatter of gradlint (runtime messages, text/HTML reports, graph pictures); torch-free."""

from __future__ import annotations


def fmt_bytes(n: int | None) -> str:
    """Binary units: ``512 B``, ``1.5 KiB``, ``3.2 MiB``; ``?`` for None."""
    if n is None:
        return "?"
    n = int(n)
    if abs(n) < 1024:
        return f"{n} B"
    x = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        x /= 1024.0
        if abs(x) < 1024 or unit == "TiB":
            return f"{x:.1f} {unit}"
    return f"{n} B"  # pragma: no cover


def fmt_devbytes(d: dict[str, int]) -> str:
    """``cpu: 1.5 KiB, cuda:0: 3.0 MiB`` (zero entries left out; ``0 B`` when nothing)."""
    items = [(k, v) for k, v in sorted(d.items()) if v]
    if not items:
        return "0 B"
    return ", ".join(f"{k}: {fmt_bytes(v)}" for k, v in items)
