"""The lint cache (like ``.ruff_cache``): one JSON file per project and settings.

Layout: ``<cache-dir>/<gradlint version>/<settings key>.json``.  The settings
key hashes the enabled rules, the per-file ignores, the project root and a
fingerprint of gradlint's own source files (so editing a rule during development
invalidates results as a version bump would).  Each entry is keyed by absolute
path and holds ``(mtime_ns, size)``, the content hash, the effective rule set of
that file, and its diagnostics; and, when the file's answers depended on other
files (a grad-off wrapper imported from another file of the project, see
``gradlint.static.package_index``), each of those files with its
``(mtime_ns, size)`` and content hash.

A lookup first compares ``(mtime_ns, size)`` with ``os.stat``: an unchanged tree
is answered without reading a single source file.  When the stat differs, the
content hash decides (a ``touch`` or a checkout does not force a re-lint).  The
files an entry depends on are checked the same way (stat, then hash): an entry
whose dependency changed or disappeared is linted again.  A
file modified within the last two seconds is stored without its mtime, because
an edit in the same clock tick could keep both mtime and size: it is re-hashed
next time.

The file is read once at the start; at the end, under an exclusive lock
(``flock`` on ``<key>.json.lock``), it is read again, this run's entries are
merged in, entries of deleted files are dropped, and it is written atomically
(temp file + ``os.replace``): concurrent runs keep each other's entries.  A
missing, corrupt or unreadable cache is ignored and rebuilt; a cache that cannot
be written is silently skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from typing import Any

from gradlint import __version__
from gradlint.static.diagnostic import Diagnostic
from gradlint.static.rule import Rule

_FORMAT = 1
_RECENT_NS = 2_000_000_000


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _implementation_fingerprint(rules: Sequence[type[Rule]]) -> list[tuple[str, int, int]]:
    import gradlint.static as static_pkg

    files = set()
    static_dir = os.path.dirname(static_pkg.__file__)
    for folder in (static_dir, os.path.join(static_dir, "semantics")):
        try:
            files.update(os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".py"))
        except OSError:
            pass
    for rule in rules:
        module = sys.modules.get(rule.__module__)
        f = getattr(module, "__file__", None)
        if f:
            files.add(f)
    out = []
    for f in sorted(files):
        try:
            st = os.stat(f)
            out.append((f, st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((f, 0, 0))
    return out


def settings_key(rules: Sequence[type[Rule]], per_file_ignores: dict[str, list[str]], root: str) -> str:
    payload = json.dumps(
        {
            "format": _FORMAT,
            "version": __version__,
            "rules": [r.code for r in rules],
            "per_file_ignores": sorted((k, sorted(v)) for k, v in per_file_ignores.items()),
            "root": root,
            "impl": _implementation_fingerprint(rules),
        },
        sort_keys=True,
    )
    return hashlib.blake2b(payload.encode(), digest_size=10).hexdigest()


def rules_key(rules: Iterable[type[Rule]]) -> str:
    return ",".join(r.code for r in rules)


class Cache:
    def __init__(self, path: str):
        self.path = path
        self.entries: dict[str, list[Any]] = {}
        # What this run wrote: merged into what is on disk when saving, so that
        # concurrent runs (pre-commit hooks, editors) do not drop each other's entries.
        self.changed: dict[str, list[Any]] = {}
        self.dirty = False
        self._dep_ok: dict[tuple, bool] = {}  # a dependency shared by many files is checked once

    @classmethod
    def open(cls, cache_dir: str, key: str) -> Cache:
        cache = cls(os.path.join(cache_dir, __version__, f"{key}.json"))
        cache.entries = _read_entries(cache.path)
        return cache

    # entry: [mtime_ns | None, size, hash, rules_key, [diagnostic dicts]]
    #        + [[dependency path, mtime_ns | None, size, hash], ...] when it has dependencies
    def _diagnostics(self, entry: list[Any]) -> list[Diagnostic] | None:
        if len(entry) == 6 and not self._dependencies_unchanged(entry[5]):
            return None
        try:
            return [Diagnostic.from_dict(d) for d in entry[4]]
        except Exception:
            return None

    def _dependencies_unchanged(self, deps: Any) -> bool:
        if not isinstance(deps, list):
            return False
        for dep in deps:
            key = tuple(dep) if isinstance(dep, list) else None
            if key is None or len(key) != 4:
                return False
            ok = self._dep_ok.get(key)
            if ok is None:
                ok = self._dep_ok[key] = _unchanged(*key)
            if not ok:
                return False
        return True

    def lookup_stat(self, path: str, st: os.stat_result, rkey: str) -> list[Diagnostic] | None:
        entry = self.entries.get(path)
        if (
            entry is None
            or not isinstance(entry, list)
            or len(entry) not in (5, 6)
            or entry[0] is None
            or entry[0] != st.st_mtime_ns
            or entry[1] != st.st_size
            or entry[3] != rkey
        ):
            return None
        return self._diagnostics(entry)

    def lookup_hash(self, path: str, st: os.stat_result, digest: str, rkey: str) -> list[Diagnostic] | None:
        entry = self.entries.get(path)
        if entry is None or not isinstance(entry, list) or len(entry) not in (5, 6):
            return None
        if entry[2] != digest or entry[3] != rkey:
            return None
        diags = self._diagnostics(entry)
        if diags is not None:
            # Same content under a new mtime (touch, checkout): remember the new stat.
            self.entries[path] = self.changed[path] = [
                _trusted_mtime(st),
                st.st_size,
                digest,
                rkey,
                *entry[4:],
            ]
            self.dirty = True
        return diags

    def store(
        self,
        path: str,
        st: os.stat_result,
        digest: str,
        rkey: str,
        diags: Sequence[Diagnostic],
        deps: dict[str, tuple[int, int, str]] | None = None,
    ) -> None:
        """``deps``: the other files the result depended on, ``{path: (mtime_ns, size, hash)}``
        (``package_index.recording``)."""
        entry: list[Any] = [_trusted_mtime(st), st.st_size, digest, rkey, [d.to_dict() for d in diags]]
        if deps:
            recent = time.time_ns() - _RECENT_NS
            entry.append(
                [
                    [p, m if m <= recent else None, size, h]
                    for p, (m, size, h) in sorted(deps.items())
                    if p != os.path.abspath(path)
                ]
            )
        self.entries[path] = self.changed[path] = entry
        self.dirty = True

    def save(self, seen: Iterable[str] = ()) -> None:
        """Write this run's entries, merged into what is on disk now, and drop
        the entries of files that no longer exist (``seen``: paths known to exist)."""
        seen = set(seen)
        gone = [p for p in self.entries if p not in seen and p not in self.changed and not os.path.exists(p)]
        if not self.dirty and not gone:
            return
        folder = os.path.dirname(self.path)
        try:
            os.makedirs(folder, exist_ok=True)
            top = os.path.dirname(folder)
            _write_marker(os.path.join(top, ".gitignore"), "# Automatically created by gradlint.\n*\n")
            _write_marker(
                os.path.join(top, "CACHEDIR.TAG"),
                "Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by gradlint.\n",
            )
            with _locked(self.path + ".lock"):
                entries = _read_entries(self.path)
                entries.update(self.changed)
                for p in gone:
                    entries.pop(p, None)
                fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
                try:
                    with os.fdopen(fd, "w", encoding="utf-8") as fh:
                        json.dump({"format": _FORMAT, "files": entries}, fh, separators=(",", ":"))
                    os.replace(tmp, self.path)
                except BaseException:
                    try:
                        os.unlink(tmp)
                    except OSError:
                        pass
                    raise
        except OSError:
            return  # read-only checkout, full disk: linting still worked
        self.entries = entries
        self.changed = {}
        self.dirty = False


def _read_entries(path: str) -> dict[str, list[Any]]:
    try:
        with open(path, "rb") as fh:
            data = json.load(fh)
        if isinstance(data, dict) and data.get("format") == _FORMAT and isinstance(data.get("files"), dict):
            return data["files"]
    except Exception:  # missing, truncated, garbage, permissions: start afresh
        pass
    return {}


@contextlib.contextmanager
def _locked(path: str):
    """Hold an exclusive lock on ``path`` (POSIX ``flock``; elsewhere no lock, the merge still helps)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _unchanged(path: Any, mtime: Any, size: Any, digest: Any) -> bool:
    """Is the dependency ``path`` as it was: the same stat (a trusted mtime), else the same content?"""
    try:
        st = os.stat(path)
    except (OSError, TypeError, ValueError):
        return False
    if mtime is not None and st.st_mtime_ns == mtime and st.st_size == size:
        return True
    if not digest:
        return False  # never read (too large to analyse): its stat alone decides
    try:
        with open(path, "rb") as fh:
            return content_hash(fh.read()) == digest
    except OSError:
        return False


def _trusted_mtime(st: os.stat_result) -> int | None:
    if st.st_mtime_ns > time.time_ns() - _RECENT_NS:
        return None
    return st.st_mtime_ns


def _write_marker(path: str, text: str) -> None:
    if not os.path.exists(path):
        try:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError:
            pass
