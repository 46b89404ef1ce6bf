"""Turn the paths given on the command line into the list of files to lint.

Folders are walked recursively for ``*.py`` files, skipping excluded names
(``DEFAULT_EXCLUDES`` plus ``exclude``/``extend-exclude``).  A file named
explicitly is linted whatever its extension, and even when an exclude pattern
matches it, unless ``--force-exclude`` is given (as in ruff, so that pre-commit,
which passes file names, still honours excludes when asked to).

Symlinked folders are followed once: each folder is identified by
``(st_dev, st_ino)``, so loops and repeated links end the walk instead of
recursing forever.  Problems along the way (broken links, unreadable folders)
are returned as warnings, never raised.

``skip(path, is_dir)``, when given, is asked about every entry met while walking
(not about the paths named on the command line): it is how ``.gitignore`` files
and the excludes of nested configuration files take part.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gradlint.static.selection import path_matches

SOURCE_SUFFIXES = (".py", ".ipynb")


class MissingPathError(Exception):
    """A path given on the command line does not exist, or is a broken or looping symlink (exit code 2)."""

    def __init__(self, path: str, why: str = "does not exist"):
        super().__init__(f"path '{path}' {why}")
        self.path = path


def _symlink_problem(path: str) -> str | None:
    """Why the symlink ``path`` leads nowhere ("a broken symlink", "a symlink loop"), or None."""
    if not os.path.islink(path):
        return None
    try:
        os.stat(path)
    except FileNotFoundError:
        return f"is a broken symlink (to '{os.readlink(path)}', which does not exist)"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symlink loop"
    return None


@dataclass
class Discovered:
    files: list[str] = field(default_factory=list)  # absolute, sorted, unique
    warnings: list[str] = field(default_factory=list)


def is_excluded(path: str, patterns: Sequence[str], root: str | None) -> bool:
    return any(path_matches(p, path, root) for p in patterns)


def discover_files(
    paths: Sequence[str],
    exclude: Sequence[str],
    root: str | None,
    *,
    force_exclude: bool = False,
    include: Sequence[str] | None = None,
    skip: Callable[[str, bool], bool] | None = None,
) -> Discovered:
    """Raises MissingPathError for the first path that does not exist.

    ``include``: the glob patterns a walked file must match (ruff's ``include``;
    a pattern without ``/`` matches the file name); default ``*.py`` and ``*.ipynb``.
    """
    out = Discovered()
    found: set[str] = set()
    visited: set[tuple[int, int]] = set()
    for raw in paths:
        path = os.path.abspath(raw)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise MissingPathError(raw, _symlink_problem(path) or "does not exist") from None
        except OSError as exc:
            why = _symlink_problem(path)
            if why is not None:  # as unusable as a broken link: the same error
                raise MissingPathError(raw, why) from None
            # A path we cannot even stat (e.g. a parent folder without x permission).
            out.warnings.append(f"cannot access '{raw}': {exc.strerror or exc}")
            continue
        if stat.S_ISDIR(st.st_mode):
            if force_exclude and is_excluded(path, exclude, root):
                continue
            _walk(path, exclude, root, found, visited, out, include, skip)
        else:
            if force_exclude and is_excluded(path, exclude, root):
                continue
            found.add(path)
    out.files = sorted(found)
    return out


def _included(name: str, path: str, include: Sequence[str], root: str | None) -> bool:
    return any(path_matches(p, path, root) if "/" in p else fnmatch.fnmatchcase(name, p) for p in include)


def _walk(
    top: str,
    exclude: Sequence[str],
    root: str | None,
    found: set[str],
    visited: set[tuple[int, int]],
    out: Discovered,
    include: Sequence[str] | None = None,
    skip: Callable[[str, bool], bool] | None = None,
) -> None:
    # Plain names (the common case: ".git", "build") are tested with a set
    # lookup; only real glob patterns go through fnmatch.
    plain = {p for p in exclude if not any(ch in p for ch in "*?[/")}
    name_globs = [p for p in exclude if p not in plain and "/" not in p]
    path_globs = [p for p in exclude if "/" in p]
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
        except OSError as exc:
            out.warnings.append(f"cannot access '{folder}': {exc.strerror or exc}")
            continue
        key = (st.st_dev, st.st_ino)
        if key in visited:
            continue  # a symlink loop or a second link to a folder already walked
        visited.add(key)
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            out.warnings.append(f"cannot read folder '{folder}': {exc.strerror or exc}")
            continue
        for entry in entries:
            name = entry.name
            if name in plain:
                continue
            path = entry.path
            # Folders above were checked on the way down: only this entry's name is new.
            if name_globs and any(fnmatch.fnmatchcase(name, g) for g in name_globs):
                continue
            if path_globs and any(path_matches(g, path, root) for g in path_globs):
                continue
            try:
                is_dir = entry.is_dir()  # follows symlinks
            except OSError:
                is_dir = False
            if is_dir:
                if skip is None or not skip(path, True):
                    stack.append(path)
                continue
            if include is None:
                if not name.endswith(SOURCE_SUFFIXES):
                    continue
            elif not _included(name, path, include, root):
                continue
            if skip is not None and skip(path, False):
                continue
            try:
                is_file = entry.is_file()
            except OSError:
                is_file = False
            if not is_file:
                why = _symlink_problem(path)
                if why is not None:
                    out.warnings.append(f"skipping '{path}': it {why}")
                continue
            found.add(path)
