"""Poll-based change detection for ``--watch`` (no dependency, works on every filesystem).

A snapshot maps each watched file to ``(mtime_ns, size)``: the Python sources
under the checked paths and the files that change what gradlint does
(configuration, ``.gitignore``/``.ignore``).  Folders excluded by default
(``.git``, virtual environments, caches) are not walked.  Comparing two
snapshots tells whether anything was added, removed or modified.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

from gradlint.static.config import CONFIG_NAMES, DEFAULT_EXCLUDES

Snapshot = dict[str, tuple[int, int]]

_WATCHED_NAMES = frozenset(CONFIG_NAMES) | {".gitignore", ".ignore"}
_SKIP_DIRS = frozenset(DEFAULT_EXCLUDES)


def _stat(path: str, out: Snapshot) -> None:
    try:
        st = os.stat(path)
    except OSError:
        return
    out[path] = (st.st_mtime_ns, st.st_size)


def snapshot(paths: Sequence[str], suffixes: tuple[str, ...] = (".py", ".ipynb")) -> Snapshot:
    out: Snapshot = {}
    for raw in paths:
        top = os.path.abspath(raw)
        if not os.path.isdir(top):
            _stat(top, out)
            continue
        for folder, dirs, names in os.walk(top):
            dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
            for name in names:
                if name.endswith(suffixes) or name in _WATCHED_NAMES:
                    _stat(os.path.join(folder, name), out)
        # Configuration above the checked folder applies too.
        for parent in (os.path.dirname(top),):
            for name in CONFIG_NAMES:
                _stat(os.path.join(parent, name), out)
    return out


def poll(
    paths: Sequence[str],
    on_change: Callable[[], None],
    *,
    interval: float,
    max_changes: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    before: Snapshot | None = None,
) -> None:
    """Call ``on_change`` each time the snapshot differs from ``before`` (default: now).

    Returns after ``max_changes`` changes (for tests); otherwise runs until interrupted.
    """
    if before is None:
        before = snapshot(paths)
    changes = 0
    while max_changes is None or changes < max_changes:
        sleep(interval)
        now = snapshot(paths)
        if now != before:
            before = now
            changes += 1
            on_change()
