"""``.gitignore`` support for file discovery, with git's pattern semantics and ruff's scope.

Like ruff (which uses the ``ignore`` crate), gradlint skips what these files ignore,
from the lowest to the highest precedence:

* the global excludes file (``core.excludesFile`` in ``~/.gitconfig``, else
  ``$XDG_CONFIG_HOME/git/ignore`` or ``~/.config/git/ignore``);
* ``.git/info/exclude`` of the repository;
* every ``.gitignore`` from the repository root down to the file's folder (a
  deeper file overrides a shallower one);
* ``.ignore`` files (ripgrep's), which apply also outside a git repository.

The git files apply only inside a git repository (a folder with a ``.git``
entry at or above it), as in ruff: a tarball without ``.git`` is linted whole.
A nested repository (a submodule) starts afresh: its parent's ``.gitignore``
files do not reach into it.

Pattern rules (gitignore(5)): blank lines and ``#`` comments are skipped; ``!``
re-includes; a trailing ``/`` matches folders only; a pattern with a ``/``
before its end is anchored to its file's folder, one without matches a name at
any depth; ``*``, ``?`` and ``[...]`` do not cross ``/``; ``**/``, ``/**`` and
``/**/`` match any number of folders; ``\\`` escapes.  The last matching
pattern wins.  A file inside an ignored folder cannot be re-included (the walk
never enters that folder), which is also git's rule.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

_CACHE_ENTRY = tuple[bool, tuple["IgnoreFile", ...]]


@dataclass(frozen=True)
class Pattern:
    regex: re.Pattern[str]
    negate: bool
    dir_only: bool
    anchored: bool  # matched against the path relative to the base; else against the name


@dataclass(frozen=True)
class IgnoreFile:
    base: str  # the folder patterns are relative to (absolute, no trailing separator)
    patterns: tuple[Pattern, ...]


def _translate(body: str) -> str:
    """The regex for one gitignore glob (no leading ``!``/``/``, no trailing ``/``)."""
    out: list[str] = []
    i, n = 0, len(body)
    while i < n:
        ch = body[i]
        if ch == "\\" and i + 1 < n:
            out.append(re.escape(body[i + 1]))
            i += 2
        elif ch == "*":
            j = i
            while j < n and body[j] == "*":
                j += 1
            stars = j - i
            at_start = i == 0 or body[i - 1] == "/"
            at_end = j == n or body[j] == "/"
            if stars >= 2 and at_start and at_end:
                if j == n:
                    out.append(".*")  # "foo/**": everything inside
                else:
                    out.append("(?:.*/)?")  # "**/" (also inside "a/**/b"): zero or more folders
                    j += 1
            else:
                out.append("[^/]*")
            i = j
        elif ch == "?":
            out.append("[^/]")
            i += 1
        elif ch == "[":
            j = i + 1
            if j < n and body[j] in "!^":
                j += 1
            if j < n and body[j] == "]":
                j += 1
            while j < n and body[j] != "]":
                j += 1
            if j >= n:  # no closing bracket: a literal "["
                out.append(re.escape(ch))
                i += 1
                continue
            inner = body[i + 1 : j]
            negate = inner[:1] in ("!", "^")
            if negate:
                inner = inner[1:]
            inner = inner.replace("[", "\\[")
            # Doubled `-`, `&`, `~`, `|` inside a class are set operations to come in Python's re (it warns
            # today); in a gitignore class they are literal characters or a range's end.
            inner = re.sub(r"([&~|])", r"\\\1", inner)
            if inner.startswith("--"):
                inner = "\\" + inner
            inner = inner.replace("--", "-\\-")
            out.append(f"[^/{inner}]" if negate else f"[{inner}]")
            i = j + 1
        else:
            out.append(re.escape(ch))
            i += 1
    return "".join(out)


def parse_line(line: str) -> Pattern | None:
    line = line.rstrip("\n").rstrip("\r")
    # Trailing spaces are dropped unless escaped with a backslash.
    stripped = line.rstrip(" ")
    if stripped.endswith("\\") and len(stripped) < len(line):
        stripped += " "
    line = stripped
    if not line or line.startswith("#"):
        return None
    negate = line.startswith("!")
    if negate:
        line = line[1:]
    elif line.startswith(("\\!", "\\#")):
        line = line[1:]
    dir_only = line.endswith("/") and not line.endswith("\\/")
    if dir_only:
        line = line.rstrip("/")
    if not line:
        return None
    anchored = "/" in line
    line = line.lstrip("/") if anchored else line
    if not line:
        return None
    try:
        regex = re.compile(_translate(line) + r"\Z", re.S)
    except re.error:
        return None  # a malformed class git would also not match anything with
    return Pattern(regex, negate, dir_only, anchored)


def parse_text(text: str, base: str) -> IgnoreFile:
    patterns = tuple(p for p in map(parse_line, text.splitlines()) if p is not None)
    return IgnoreFile(base=base, patterns=patterns)


def _read(path: str, base: str) -> IgnoreFile | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError:  # missing, a folder, unreadable: no patterns
        return None
    parsed = parse_text(text, base)
    return parsed if parsed.patterns else None


def global_excludes_path() -> str | None:
    """git's global excludes file, if one is configured or present at the default place."""
    home = os.path.expanduser("~")
    configured = _core_excludes_file(os.path.join(home, ".gitconfig"))
    if configured:
        return os.path.expanduser(configured)
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    return os.path.join(xdg, "git", "ignore")


def _core_excludes_file(gitconfig: str) -> str | None:
    """``core.excludesFile`` from a gitconfig (a minimal reader: section + key = value)."""
    try:
        with open(gitconfig, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    section = ""
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]").strip().split()[0].lower() if line.strip("[]").strip() else ""
            continue
        key, sep, value = line.partition("=")
        if sep and section == "core" and key.strip().lower() == "excludesfile":
            return value.strip().strip('"') or None
    return None


def _is_match(files: tuple[IgnoreFile, ...], path: str, is_dir: bool) -> bool:
    name = os.path.basename(path)
    posix = path.replace(os.sep, "/")
    for f in reversed(files):
        base = f.base.replace(os.sep, "/").rstrip("/") + "/"
        if not posix.startswith(base):
            continue
        rel = posix[len(base) :]
        for p in reversed(f.patterns):
            if p.dir_only and not is_dir:
                continue
            if p.regex.match(rel if p.anchored else name):
                return not p.negate
    return False


class GitIgnore:
    """Answers "is this path ignored?" for paths met while walking (absolute paths)."""

    def __init__(self, *, global_file: str | None = None, use_global: bool = True):
        self._chains: dict[str, _CACHE_ENTRY] = {}
        self._global: IgnoreFile | None | bool = False  # False: not read yet
        self._global_path = global_file
        self._use_global = use_global

    def _global_file(self, repo_root: str) -> IgnoreFile | None:
        if not self._use_global:
            return None
        path = self._global_path or global_excludes_path()
        if not path:
            return None
        # Global patterns are relative to each repository's root.
        return _read(path, repo_root)

    def _chain(self, folder: str) -> _CACHE_ENTRY:
        """(inside a git repository?, the ignore files that apply in ``folder``, lowest first)."""
        hit = self._chains.get(folder)
        if hit is not None:
            return hit
        parent = os.path.dirname(folder)
        files: list[IgnoreFile] = []
        if os.path.lexists(os.path.join(folder, ".git")):
            in_repo = True
            for extra in (
                self._global_file(folder),
                _read(os.path.join(folder, ".git", "info", "exclude"), folder),
            ):
                if extra is not None:
                    files.append(extra)
        elif parent and parent != folder:
            in_repo, above = self._chain(parent)
            files.extend(above)
        else:
            in_repo = False
        for name, needs_repo in ((".gitignore", True), (".ignore", False)):
            if needs_repo and not in_repo:
                continue
            f = _read(os.path.join(folder, name), folder)
            if f is not None:
                files.append(f)
        entry = (in_repo, tuple(files))
        self._chains[folder] = entry
        return entry

    def ignored(self, path: str, is_dir: bool) -> bool:
        path = os.path.abspath(path)
        files = self._chain(os.path.dirname(path))[1]
        return bool(files) and _is_match(files, path, is_dir)
