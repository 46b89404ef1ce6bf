"""Configuration: discovery, validation, and the resolved ``Settings`` of each file.

Configuration is hierarchical, as in ruff: each file is linted with the
*nearest* configuration file at or above it.  In each folder gradlint looks, in
this order, for ``.gradlint.toml``, ``gradlint.toml`` (both with the keys at
top level) and ``pyproject.toml`` with a ``[tool.gradlint]`` table; a
``pyproject.toml`` without that table is skipped.  The nearest file applies
whole (settings do not cascade from folders above); ``extend = "../base.toml"``
merges a shared base under it.  A file with no configuration above it uses the
one found from the current folder, else the defaults.  ``--config`` uses one
file for everything, ``--isolated`` none.

The folder of the configuration file is the *project root*: relative patterns
and the cache directory are resolved against it (also for keys inherited
through ``extend``, as ruff does).

Every problem with a configuration file (bad TOML, unknown key, wrong type,
unknown rule code, a missing or cyclic ``extend``) is a ``ConfigError`` whose
message names the file and the key; the CLI prints it on one line and exits 2.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10 only
    import tomli as tomllib

from gradlint.static.rule import Rule
from gradlint.static.selection import (
    SelectionError,
    SelectionLayer,
    check_selectors,
    fixable_codes,
    resolve,
)

CONFIG_NAMES = (".gradlint.toml", "gradlint.toml", "pyproject.toml")

# Folders never worth linting; a configured ``exclude`` replaces this list,
# ``extend-exclude`` adds to it.
DEFAULT_EXCLUDES = (
    ".bzr",
    ".direnv",
    ".eggs",
    ".git",
    ".gradlint_cache",
    ".hg",
    ".ipynb_checkpoints",
    ".mypy_cache",
    ".nox",
    ".pytest_cache",
    ".ruff_cache",
    ".svn",
    ".tox",
    ".venv",
    "__pycache__",
    "__pypackages__",
    "build",
    "dist",
    "node_modules",
    "site-packages",
    "venv",
)

DEFAULT_CACHE_DIR = ".gradlint_cache"

_LIST_KEYS = (
    "select",
    "extend-select",
    "ignore",
    "exclude",
    "extend-exclude",
    "include",
    "extend-include",
    "fixable",
    "unfixable",
)
# Which files a folder walk lints (ruff's ``include``): Python files and notebooks.
DEFAULT_INCLUDE = ("*.py", "*.ipynb")
_SELECTOR_KEYS = ("select", "extend-select", "ignore", "fixable", "unfixable")
_TABLE_KEYS = ("per-file-ignores", "extend-per-file-ignores")
KNOWN_KEYS = _LIST_KEYS + _TABLE_KEYS + ("cache-dir", "respect-gitignore", "extend")


class ConfigError(Exception):
    """A user-facing configuration problem (exit code 2)."""


@dataclass
class FileConfig:
    """The validated contents of one configuration file (or of none).

    The fields hold what this file itself says (None: not set); ``base`` is the
    file it extends.  Read the merged values through the ``resolved_*`` methods.
    """

    path: Path | None = None
    root: Path = field(default_factory=Path.cwd)
    select: list[str] | None = None
    extend_select: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)
    exclude: list[str] | None = None
    extend_exclude: list[str] = field(default_factory=list)
    per_file_ignores: dict[str, list[str]] | None = None
    extend_per_file_ignores: dict[str, list[str]] = field(default_factory=dict)
    cache_dir: str | None = None
    include: list[str] | None = None
    extend_include: list[str] = field(default_factory=list)
    respect_gitignore: bool | None = None
    fixable: list[str] | None = None
    unfixable: list[str] | None = None
    base: FileConfig | None = None

    def where(self, key: str) -> str:
        table = "[tool.gradlint]" if self.path is not None and self.path.name == "pyproject.toml" else ""
        where = f"{self.path}" if self.path is not None else "configuration"
        return f"{where}: {table + ' ' if table else ''}key '{key}'"

    # -- merged with the extended base (ruff's rules for `extend`) ------------
    def chain(self) -> list[FileConfig]:
        """This file and the files it extends, the base last."""
        out, cfg = [], self
        while cfg is not None:
            out.append(cfg)
            cfg = cfg.base
        return out

    def _first(self, attr: str) -> Any:
        """This file's value, else the base's (scalar keys)."""
        for cfg in self.chain():
            value = getattr(cfg, attr)
            if value is not None:
                return value
        return None

    def selection_layers(self) -> list[SelectionLayer]:
        """The base's selection below this file's: a `select` here starts afresh."""
        return [
            SelectionLayer(select=c.select, extend_select=c.extend_select, ignore=c.ignore)
            for c in reversed(self.chain())
        ]

    def resolved_exclude(self) -> list[str]:
        exclude = self._first("exclude")
        out = list(exclude if exclude is not None else DEFAULT_EXCLUDES)
        for cfg in reversed(self.chain()):
            out += cfg.extend_exclude
        return out

    def resolved_include(self) -> list[str]:
        include = self._first("include")
        out = list(include if include is not None else DEFAULT_INCLUDE)
        for cfg in reversed(self.chain()):
            out += cfg.extend_include
        return out

    def resolved_per_file_ignores(self) -> dict[str, list[str]]:
        out = {k: list(v) for k, v in (self._first("per_file_ignores") or {}).items()}
        for cfg in reversed(self.chain()):
            for pattern, codes in cfg.extend_per_file_ignores.items():
                out.setdefault(pattern, []).extend(codes)
        return out

    def resolved_cache_dir(self) -> str | None:
        return self._first("cache_dir")

    def resolved_respect_gitignore(self) -> bool:
        value = self._first("respect_gitignore")
        return True if value is None else bool(value)

    def resolved_fixable(self) -> tuple[list[str], list[str]]:
        return self._first("fixable") or ["ALL"], self._first("unfixable") or []


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{path}: cannot read configuration: {reason}") from None


def _gradlint_table(path: Path) -> dict[str, Any] | None:
    """The gradlint settings in ``path``, or None when a pyproject.toml has none."""
    if path.name != "pyproject.toml":
        return _load_toml(path)
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    if b"gradlint" not in raw:
        return None  # cheap skip: most pyproject.toml files are not ours to judge
    data = _load_toml(path)
    tool = data.get("tool")
    if not isinstance(tool, dict) or "gradlint" not in tool:
        return None
    table = tool["gradlint"]
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: 'tool.gradlint' must be a table")
    return table


def config_in(folder: Path) -> Path | None:
    """The configuration file of ``folder`` itself, if it has one."""
    for name in CONFIG_NAMES:
        candidate = folder / name
        if candidate.is_file():
            if name != "pyproject.toml" or _gradlint_table(candidate) is not None:
                return candidate
    return None


def find_config(start: Path) -> Path | None:
    """The nearest configuration file at or above ``start`` (a file or folder)."""
    start = start if start.is_dir() else start.parent
    for folder in (start, *start.parents):
        found = config_in(folder)
        if found is not None:
            return found
    return None


def _parse_table(cfg: FileConfig, key: str, value: Any) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise ConfigError(f"{cfg.where(key)}: expected a table of glob = [codes], got {_describe(value)}")
    out: dict[str, list[str]] = {}
    for pattern, codes in value.items():
        if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
            raise ConfigError(
                f"{cfg.where(key)}: pattern '{pattern}' expects a list of rule codes, got {_describe(codes)}"
            )
        out[pattern] = list(codes)
    return out


def load_config(path: Path, _extending: tuple[Path, ...] = ()) -> FileConfig:
    path = path.absolute()
    table = _gradlint_table(path)
    cfg = FileConfig(path=path, root=path.parent)
    if table is None:
        if path.name == "pyproject.toml":
            return cfg  # an explicit pyproject.toml without our table: defaults
        table = {}
    for key, value in table.items():
        if key not in KNOWN_KEYS:
            close = difflib.get_close_matches(key, KNOWN_KEYS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known keys: {', '.join(KNOWN_KEYS)})"
            raise ConfigError(f"{cfg.where(key)}: unknown key{hint}")
        if key in _LIST_KEYS:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{cfg.where(key)}: expected a list of strings, got {_describe(value)}")
            setattr(cfg, key.replace("-", "_"), list(value))
        elif key in _TABLE_KEYS:
            setattr(cfg, key.replace("-", "_"), _parse_table(cfg, key, value))
        elif key == "cache-dir":
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{cfg.where(key)}: expected a path string, got {_describe(value)}")
            cfg.cache_dir = value
        elif key == "respect-gitignore":
            if not isinstance(value, bool):
                raise ConfigError(f"{cfg.where(key)}: expected true or false, got {_describe(value)}")
            cfg.respect_gitignore = value
    if "extend" in table:
        cfg.base = _load_base(cfg, table["extend"], (*_extending, path))
    return cfg


def _load_base(cfg: FileConfig, value: Any, extending: tuple[Path, ...]) -> FileConfig:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{cfg.where('extend')}: expected a path string, got {_describe(value)}")
    assert cfg.path is not None
    target = Path(os.path.expandvars(os.path.expanduser(value)))
    target = (cfg.path.parent / target).resolve()
    if any(target == p.resolve() for p in extending):
        cycle = " -> ".join(str(p) for p in (*extending, target))
        raise ConfigError(f"{cfg.where('extend')}: circular extend: {cycle}")
    if target.is_dir():
        raise ConfigError(f"{cfg.where('extend')}: '{value}' is a folder; name a configuration file")
    if not target.is_file():
        raise ConfigError(f"{cfg.where('extend')}: extended file '{value}' does not exist ({target})")
    base = load_config(target, extending)
    return base


def _describe(value: Any) -> str:
    if isinstance(value, list):
        bad = next((v for v in value if not isinstance(v, str)), None)
        if bad is not None:
            return f"a list containing {type(bad).__name__} {bad!r}"
    return f"{type(value).__name__} {value!r}"


def validate_selectors(cfg: FileConfig, rules: Sequence[type[Rule]]) -> None:
    """Unknown codes in a config file (or a file it extends) are errors that name the file and key."""
    for c in cfg.chain():
        for key in _SELECTOR_KEYS:
            values = getattr(c, key.replace("-", "_")) or []
            try:
                check_selectors(values, rules)
            except SelectionError as exc:
                raise ConfigError(f"{c.where(key)}: {exc}") from None
        for key in _TABLE_KEYS:
            for pattern, codes in (getattr(c, key.replace("-", "_")) or {}).items():
                try:
                    check_selectors(codes, rules)
                except SelectionError as exc:
                    raise ConfigError(f"{c.where(key)}: pattern '{pattern}': {exc}") from None


def discover(paths: Sequence[str], explicit: str | None = None) -> FileConfig:
    """The configuration nearest to the common folder of ``paths`` (``explicit``: ``--config``)."""
    if explicit is not None:
        return load_explicit(explicit)
    real = [os.path.abspath(p) for p in paths if p != "-"]
    if real:
        try:
            start = Path(os.path.commonpath(real))
        except ValueError:  # different drives on Windows
            start = Path(real[0])
    else:
        start = Path.cwd()
    found = find_config(start)
    if found is None:
        return FileConfig(root=Path.cwd())
    return load_config(found)


def load_explicit(explicit: str) -> FileConfig:
    p = Path(explicit)
    if not p.is_file():
        raise ConfigError(f"configuration file '{explicit}' does not exist")
    return load_config(p)


@dataclass
class Settings:
    """Everything the runner needs, after config and command line are merged."""

    rules: list[type[Rule]]
    root: str
    config_path: str | None = None
    exclude: list[str] = field(default_factory=lambda: list(DEFAULT_EXCLUDES))
    per_file_ignores: dict[str, list[str]] = field(default_factory=dict)
    cache_dir: str | None = None  # None: no cache
    jobs: int = 1
    force_exclude: bool = False
    include: list[str] = field(default_factory=lambda: list(DEFAULT_INCLUDE))
    respect_gitignore: bool = True
    # Codes whose fixes may be applied and offered (`fixable` minus `unfixable`).
    fixable: frozenset[str] = frozenset()
    # The files this configuration extends, nearest first (for --show-settings).
    extends: list[str] = field(default_factory=list)


@dataclass
class Overrides:
    """What the command line says; it beats every configuration file."""

    selection: SelectionLayer = field(default_factory=SelectionLayer)
    per_file_ignores: Mapping[str, list[str]] | None = None
    extend_per_file_ignores: Mapping[str, list[str]] | None = None
    exclude: list[str] | None = None
    extend_exclude: Sequence[str] = ()
    fixable: list[str] | None = None
    unfixable: list[str] | None = None
    respect_gitignore: bool | None = None
    no_cache: bool = False
    cache_dir: str | None = None
    jobs: int = 1
    force_exclude: bool = False


def build_settings(
    cfg: FileConfig,
    *,
    rules: Sequence[type[Rule]],
    cli: SelectionLayer,
    cli_per_file_ignores: Mapping[str, list[str]] | None = None,
    cli_exclude: list[str] | None = None,
    cli_extend_exclude: Sequence[str] = (),
    no_cache: bool = False,
    cli_cache_dir: str | None = None,
    jobs: int = 1,
    force_exclude: bool = False,
    overrides: Overrides | None = None,
) -> Settings:
    """Merge: defaults < configuration file (and what it extends) < command line.

    Raises ConfigError/SelectionError.  ``overrides`` carries the newer
    command-line options (the keyword arguments are kept for existing callers).
    """
    ov = overrides or Overrides()
    validate_selectors(cfg, rules)
    enabled = resolve([*cfg.selection_layers(), cli], rules)
    exclude = cfg.resolved_exclude()
    if cli_exclude is not None:
        exclude = list(cli_exclude)
    exclude += list(cli_extend_exclude)
    pfi = cfg.resolved_per_file_ignores()
    if cli_per_file_ignores is not None:
        for codes in cli_per_file_ignores.values():
            check_selectors(codes, rules)
        pfi = {k: list(v) for k, v in cli_per_file_ignores.items()}
    for pattern, codes in (ov.extend_per_file_ignores or {}).items():
        check_selectors(codes, rules)
        pfi.setdefault(pattern, []).extend(codes)
    fixable, unfixable = cfg.resolved_fixable()
    if ov.fixable is not None:
        fixable = ov.fixable
    if ov.unfixable is not None:
        unfixable = ov.unfixable
    check_selectors([*fixable, *unfixable], rules)
    cache_dir: str | None = None
    if not no_cache:
        if cli_cache_dir is not None:
            cache_dir = os.path.abspath(cli_cache_dir)
        elif cfg.resolved_cache_dir() is not None:
            cache_dir = str((cfg.root / cfg.resolved_cache_dir()).absolute())
        else:
            cache_dir = str(cfg.root / DEFAULT_CACHE_DIR)
    respect = cfg.resolved_respect_gitignore() if ov.respect_gitignore is None else ov.respect_gitignore
    return Settings(
        rules=enabled,
        root=str(cfg.root),
        config_path=str(cfg.path) if cfg.path is not None else None,
        exclude=exclude,
        per_file_ignores=pfi,
        cache_dir=cache_dir,
        jobs=max(1, jobs),
        force_exclude=force_exclude,
        include=cfg.resolved_include(),
        respect_gitignore=respect,
        fixable=frozenset(fixable_codes(rules, fixable, unfixable)),
        extends=[str(c.path) for c in cfg.chain()[1:] if c.path is not None],
    )


class Resolver:
    """The settings of each file: its nearest configuration file, merged with the command line.

    Lookups are cached per folder and per configuration file, so a tree of
    thousands of files reads each configuration file once.
    """

    def __init__(
        self,
        rules: Sequence[type[Rule]],
        overrides: Overrides,
        *,
        explicit: str | None = None,
        isolated: bool = False,
        cwd: str | None = None,
    ):
        self.rules = list(rules)
        self.overrides = overrides
        self.cwd = Path(cwd or os.getcwd())
        self._fixed: FileConfig | None = None
        if isolated:
            self._fixed = FileConfig(root=self.cwd)
        elif explicit is not None:
            self._fixed = load_explicit(explicit)
        self._near: dict[Path, Path | None] = {}
        self._configs: dict[Path | None, FileConfig] = {}
        self._settings: dict[Path | None, Settings] = {}
        self._default: Path | None | bool = False  # False: not looked up yet

    def _nearest(self, folder: Path) -> Path | None:
        trail: list[Path] = []
        found: Path | None = None
        current: Path | None = folder
        while current is not None:
            if current in self._near:
                found = self._near[current]
                break
            trail.append(current)
            found = config_in(current)
            if found is not None:
                break
            current = current.parent if current.parent != current else None
        for f in trail:
            self._near[f] = found
        return found

    def _default_config(self) -> Path | None:
        if self._default is False:
            self._default = self._nearest(self.cwd)
        return self._default  # type: ignore[return-value]

    def config_path_for(self, path: str | os.PathLike[str]) -> Path | None:
        if self._fixed is not None:
            return self._fixed.path
        p = Path(os.path.abspath(path))
        folder = p if p.is_dir() else p.parent
        found = self._nearest(folder)
        return found if found is not None else self._default_config()

    def _config(self, key: Path | None) -> FileConfig:
        if self._fixed is not None:
            return self._fixed
        cfg = self._configs.get(key)
        if cfg is None:
            cfg = load_config(key) if key is not None else FileConfig(root=self.cwd)
            self._configs[key] = cfg
        return cfg

    def settings_for(self, path: str | os.PathLike[str]) -> Settings:
        """Raises ConfigError/SelectionError for a bad configuration file or option."""
        key = self.config_path_for(path) if path != "-" else self.config_path_for(self.cwd)
        hit = self._settings.get(key)
        if hit is None:
            ov = self.overrides
            hit = build_settings(
                self._config(key),
                rules=self.rules,
                cli=ov.selection,
                cli_per_file_ignores=ov.per_file_ignores,
                cli_exclude=ov.exclude,
                cli_extend_exclude=ov.extend_exclude,
                no_cache=ov.no_cache,
                cli_cache_dir=ov.cache_dir,
                jobs=ov.jobs,
                force_exclude=ov.force_exclude,
                overrides=ov,
            )
            self._settings[key] = hit
        return hit
