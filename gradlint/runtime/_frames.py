"""Cheap user-frame capture.

A *site* is a flat tuple ``(code, lineno, code, lineno, ...)`` of the innermost
user frames (frames whose file is not inside torch/ or gradlint/).  Capturing a
site costs a few dictionary look-ups; formatting is done lazily, only when a
report is built.
"""

from __future__ import annotations

import os
import sys

import torch

_INTERNAL_DIRS = (
    os.path.dirname(os.path.abspath(torch.__file__)) + os.sep,
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,  # gradlint/
)
_STDLIB = os.path.dirname(os.path.abspath(os.__file__)) + os.sep
_STDLIB_WRAPPERS = {"contextlib.py", "functools.py", "threading.py"}

_internal_cache: dict = {}


def _classify(code) -> bool:
    fn = code.co_filename
    internal = fn.startswith(_INTERNAL_DIRS) or (
        fn.startswith(_STDLIB) and os.path.basename(fn) in _STDLIB_WRAPPERS
    )
    if fn.startswith("<frozen"):
        internal = True
    _internal_cache[code] = internal
    return internal


def is_internal_code(code) -> bool:
    r = _internal_cache.get(code)
    if r is None:
        r = _classify(code)
    return r


def is_library_code(code) -> bool:
    """Installed third-party or stdlib code (site-packages, the stdlib directory)."""
    fn = code.co_filename
    return "site-packages" in fn or "dist-packages" in fn or fn.startswith(_STDLIB)


def user_site(depth: int = 1, start: int = 2):
    """Return the innermost ``depth`` user frames as ``(code, lineno, ...)``, or ``()``."""
    try:
        f = sys._getframe(start)
    except ValueError:  # pragma: no cover
        return ()
    cache = _internal_cache
    if depth == 1:
        while f is not None:
            code = f.f_code
            r = cache.get(code)
            if r is None:
                r = _classify(code)
            if not r:
                return (code, f.f_lineno)
            f = f.f_back
        return ()
    out = []
    while f is not None and len(out) < 2 * depth:
        code = f.f_code
        r = cache.get(code)
        if r is None:
            r = _classify(code)
        if not r:
            out.append(code)
            out.append(f.f_lineno)
        f = f.f_back
    return tuple(out)


def user_frame(start: int = 2):
    """Return the innermost user frame object (or None)."""
    try:
        f = sys._getframe(start)
    except ValueError:  # pragma: no cover
        return None
    while f is not None:
        if not is_internal_code(f.f_code):
            return f
        f = f.f_back
    return None


def user_frames(start: int = 2, limit: int = 8):
    out = []
    try:
        f = sys._getframe(start)
    except ValueError:  # pragma: no cover
        return out
    while f is not None and len(out) < limit:
        if not is_internal_code(f.f_code):
            out.append(f)
        f = f.f_back
    return out


def _cell_name(fn: str) -> str | None:
    """``Cell In[3]`` for a file IPython compiled from cell 3 (what IPython's tracebacks show)."""
    ip_mod = sys.modules.get("IPython")
    if ip_mod is None:
        return None
    try:
        ip = ip_mod.get_ipython()
        n = ip.compile._filename_map.get(fn) if ip is not None else None
    except Exception:
        return None
    return f"Cell In[{n}]" if isinstance(n, int) else None


def short_filename(fn: str) -> str:
    cell = _cell_name(fn)
    if cell is not None:
        return cell
    try:
        cwd = os.getcwd() + os.sep
    except OSError:  # pragma: no cover
        return fn
    if fn.startswith(cwd):
        return fn[len(cwd) :]
    return fn


def site_parts(site):
    """``(filename, line, function)`` of the innermost frame of a site, or ``(None, None, None)``."""
    if not site:
        return (None, None, None)
    code, line = site[0], site[1]
    return (short_filename(code.co_filename), line, code.co_name)


def site_stack(site):
    return [
        {"filename": short_filename(site[i].co_filename), "line": site[i + 1], "function": site[i].co_name}
        for i in range(0, len(site), 2)
    ]


def loc(fn, line) -> str:
    """``train.py:12``; ``Cell In[3], line 5`` for a notebook cell (as IPython writes it)."""
    if fn is None:
        return "<unknown>"
    if fn.startswith("Cell In["):
        return f"{fn}, line {line}"
    return f"{fn}:{line}"


def fmt_site(site) -> str:
    fn, line, _ = site_parts(site)
    return loc(fn, line)


# Reading ``frame.f_locals`` of a function frame (Python < 3.13) leaves a snapshot dict on the frame that
# keeps every value it saw alive until the next read: searches that read them say so, and the trace
# empties those snapshots afterwards (refresh_locals).
_touched = False


def touched() -> None:
    global _touched
    _touched = True


def refresh_locals() -> None:
    """Empty the ``f_locals`` snapshots of the live user function frames (module frames untouched: their
    ``f_locals`` is the real namespace)."""
    global _touched
    if not _touched or sys.version_info >= (3, 13):
        return
    _touched = False
    import inspect

    for fr in user_frames(start=2, limit=8):
        if fr.f_code.co_flags & inspect.CO_OPTIMIZED:
            try:
                fr.f_locals.clear()
            except Exception:  # pragma: no cover
                pass
