"""Configuration: discovery, validation, and the resolved ``Settings`` of a run.

gradlint reads one configuration file per run, found by walking up from the
checked path (the common parent of all checked paths; the current directory for
stdin).  In each directory it looks, in this order, for ``.gradlint.toml``,
``gradlint.toml`` (both with the keys at top level) and ``pyproject.toml`` with a
``[tool.gradlint]`` table; a ``pyproject.toml`` without that table is skipped.
The directory of the file found is the *project root*: relative patterns and the
cache directory are resolved against it.

Every problem with a configuration file (bad TOML, unknown key, wrong type,
unknown rule code) is a ``ConfigError`` whose message names the file and the key;
the CLI prints it on one line and exits 2.
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
from gradlint.static.selection import SelectionError, SelectionLayer, check_selectors, resolve

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

_LIST_KEYS = ("select", "extend-select", "ignore", "exclude", "extend-exclude", "include", "extend-include")
# Which files a folder walk lints (ruff's ``include``): Python files and notebooks.
DEFAULT_INCLUDE = ("*.py", "*.ipynb")
_SELECTOR_KEYS = ("select", "extend-select", "ignore")
KNOWN_KEYS = _LIST_KEYS + ("per-file-ignores", "cache-dir")


class ConfigError(Exception):
    """A user-facing configuration problem (exit code 2)."""


@dataclass
class FileConfig:
    """The validated contents of one configuration file (or of none)."""

    path: Path | None = None
    root: Path = field(default_factory=Path.cwd)
    select: list[str] | None = None
    extend_select: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)
    exclude: list[str] | None = None
    extend_exclude: list[str] = field(default_factory=list)
    per_file_ignores: dict[str, list[str]] = field(default_factory=dict)
    cache_dir: str | None = None
    include: list[str] | None = None
    extend_include: list[str] = field(default_factory=list)

    def where(self, key: str) -> str:
        table = "[tool.gradlint]" if self.path is not None and self.path.name == "pyproject.toml" else ""
        where = f"{self.path}" if self.path is not None else "configuration"
        return f"{where}: {table + ' ' if table else ''}key '{key}'"


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


def find_config(start: Path) -> Path | None:
    """The nearest configuration file at or above ``start`` (a file or folder)."""
    start = start if start.is_dir() else start.parent
    for folder in (start, *start.parents):
        for name in CONFIG_NAMES:
            candidate = folder / name
            if candidate.is_file():
                if name != "pyproject.toml" or _gradlint_table(candidate) is not None:
                    return candidate
    return None


def load_config(path: Path) -> FileConfig:
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
        elif key == "per-file-ignores":
            if not isinstance(value, dict):
                raise ConfigError(
                    f"{cfg.where(key)}: expected a table of glob = [codes], got {_describe(value)}"
                )
            pfi: dict[str, list[str]] = {}
            for pattern, codes in value.items():
                if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
                    raise ConfigError(
                        f"{cfg.where(key)}: pattern '{pattern}' expects a list of rule codes, got {_describe(codes)}"
                    )
                pfi[pattern] = list(codes)
            cfg.per_file_ignores = pfi
        elif key == "cache-dir":
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{cfg.where(key)}: expected a path string, got {_describe(value)}")
            cfg.cache_dir = value
    return cfg


def _describe(value: Any) -> str:
    if isinstance(value, list):
        bad = next((v for v in value if not isinstance(v, str)), None)
        if bad is not None:
            return f"a list containing {type(bad).__name__} {bad!r}"
    return f"{type(value).__name__} {value!r}"


def validate_selectors(cfg: FileConfig, rules: Sequence[type[Rule]]) -> None:
    """Unknown codes in a config file are errors that name the file and key."""
    for key in _SELECTOR_KEYS:
        values = getattr(cfg, key.replace("-", "_")) or []
        try:
            check_selectors(values, rules)
        except SelectionError as exc:
            raise ConfigError(f"{cfg.where(key)}: {exc}") from None
    for pattern, codes in cfg.per_file_ignores.items():
        try:
            check_selectors(codes, rules)
        except SelectionError as exc:
            raise ConfigError(f"{cfg.where('per-file-ignores')}: pattern '{pattern}': {exc}") from None


def discover(paths: Sequence[str], explicit: str | None = None) -> FileConfig:
    """The configuration for a run over ``paths`` (``explicit``: ``--config``)."""
    if explicit is not None:
        p = Path(explicit)
        if not p.is_file():
            raise ConfigError(f"configuration file '{explicit}' does not exist")
        return load_config(p)
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
) -> Settings:
    """Merge: defaults < config file < command line.  Raises ConfigError/SelectionError."""
    validate_selectors(cfg, rules)
    layers = [
        SelectionLayer(select=cfg.select, extend_select=cfg.extend_select, ignore=cfg.ignore),
        cli,
    ]
    enabled = resolve(layers, rules)
    exclude = list(cfg.exclude if cfg.exclude is not None else DEFAULT_EXCLUDES) + list(cfg.extend_exclude)
    if cli_exclude is not None:
        exclude = list(cli_exclude)
    exclude += list(cli_extend_exclude)
    pfi = dict(cfg.per_file_ignores)
    if cli_per_file_ignores is not None:
        for codes in cli_per_file_ignores.values():
            check_selectors(codes, rules)
        pfi = dict(cli_per_file_ignores)
    cache_dir: str | None = None
    if not no_cache:
        if cli_cache_dir is not None:
            cache_dir = os.path.abspath(cli_cache_dir)
        elif cfg.cache_dir is not None:
            cache_dir = str((cfg.root / cfg.cache_dir).absolute())
        else:
            cache_dir = str(cfg.root / DEFAULT_CACHE_DIR)
    return Settings(
        rules=enabled,
        root=str(cfg.root),
        config_path=str(cfg.path) if cfg.path is not None else None,
        exclude=exclude,
        per_file_ignores=pfi,
        cache_dir=cache_dir,
        jobs=max(1, jobs),
        force_exclude=force_exclude,
        include=list(cfg.include if cfg.include is not None else DEFAULT_INCLUDE) + list(cfg.extend_include),
    )
