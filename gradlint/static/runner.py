"""Lint many files: per-file rule sets, the cache, and a process pool.

``lint_paths(files, settings)`` returns every diagnostic of ``files`` sorted by
``(path, row, column, code)``, whatever ``settings.jobs`` is: the serial and
parallel paths produce identical output.  Only files the cache cannot answer
reach the workers; each worker reads its files itself, so the parent never
holds the whole tree in memory.  With ``jobs == 1`` (or only a few files to
lint) everything runs in-process.

Workers are forked where that is safe (Linux): they inherit the parent's rule
registry (including rules patched in by tests) and skip re-importing libcst.
Elsewhere the rule classes travel by reference (module + name), which works for
every importable rule.  If the pool breaks (a worker killed by the OS), the
remaining files are linted in-process.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence

from gradlint.static.cache import Cache, content_hash, rules_key, settings_key
from gradlint.static.config import Settings
from gradlint.static.diagnostic import GL000, Diagnostic, Location
from gradlint.static.engine import lint_source
from gradlint.static.rule import Rule
from gradlint.static.selection import ignored_codes_for, rules_for_file

Warn = Callable[[str], None]

# Fewer files than this are not worth starting worker processes for.
_MIN_PARALLEL = 4

_WORKER_RULES: dict[str, type[Rule]] = {}


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def read_bytes(path: str) -> bytes:
    """Indirection so tests can simulate unreadable files."""
    with open(path, "rb") as fh:
        return fh.read()


def read_error(path: str, exc: OSError) -> Diagnostic:
    reason = exc.strerror or str(exc) or type(exc).__name__
    loc = Location(1, 1)
    return Diagnostic(path, GL000, f"Cannot read file: {reason}", loc, loc, rule_name="io-error")


def effective_rules(path: str, settings: Settings) -> list[type[Rule]]:
    ignored = ignored_codes_for(path, settings.per_file_ignores, settings.root)
    return rules_for_file(settings.rules, ignored)


# -- the unit of work, run in a worker or in-process --------------------------

_Item = tuple[str, tuple[str, ...]]
_Result = tuple[str, str | None, list[Diagnostic], str | None]


def _init_worker(rules: Sequence[type[Rule]]) -> None:
    _WORKER_RULES.clear()
    _WORKER_RULES.update({r.code: r for r in rules})


def _lint_item(item: _Item) -> _Result:
    """(path, content hash or None, diagnostics, read-error text or None)."""
    path, codes = item
    try:
        data = read_bytes(path)
    except OSError as exc:
        d = read_error(path, exc)
        return path, None, [d], d.message
    rules = [_WORKER_RULES[c] for c in codes]
    return path, content_hash(data), lint_source(path, data, rules), None


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _pool_context():
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return None


def _run_items(items: list[_Item], rules: Sequence[type[Rule]], jobs: int, warn: Warn) -> list[_Result]:
    if jobs <= 1 or len(items) < _MIN_PARALLEL:
        _init_worker(rules)
        return [_lint_item(it) for it in items]
    workers = min(jobs, len(items))
    # Largest files first, in small chunks: a 5,000-line file dealt out last would
    # leave the other workers idle while it runs. Results are sorted afterwards.
    items = sorted(items, key=lambda it: -_size(it[0]))
    chunksize = max(1, min(8, len(items) // (workers * 16)))
    results: list[_Result] = []
    try:
        with concurrent.futures.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=_pool_context(),
            initializer=_init_worker,
            initargs=(list(rules),),
        ) as pool:
            for res in pool.map(_lint_item, items, chunksize=chunksize):
                results.append(res)
    except (concurrent.futures.process.BrokenProcessPool, OSError) as exc:
        warn(f"worker processes failed ({type(exc).__name__}); linting the remaining files in-process")
        done = {r[0] for r in results}
        _init_worker(rules)
        results += [_lint_item(it) for it in items if it[0] not in done]
    return results


def lint_paths(files: Sequence[str], settings: Settings, *, warn: Warn | None = None) -> list[Diagnostic]:
    warn = warn or (lambda msg: None)
    cache: Cache | None = None
    if settings.cache_dir is not None:
        cache = Cache.open(
            settings.cache_dir, settings_key(settings.rules, settings.per_file_ignores, settings.root)
        )

    out: list[Diagnostic] = []
    todo: list[_Item] = []
    stats: dict[str, os.stat_result] = {}
    rkeys: dict[str, str] = {}
    rules_cache: dict[tuple[str, ...], tuple[tuple[str, ...], str]] = {}
    for path in files:
        try:
            st = os.stat(path)
        except OSError as exc:
            d = read_error(path, exc)
            warn(f"cannot read '{path}': {exc.strerror or exc}")
            out.append(d)
            continue
        ignored = tuple(ignored_codes_for(path, settings.per_file_ignores, settings.root))
        if ignored not in rules_cache:
            file_rules = rules_for_file(settings.rules, ignored)
            rules_cache[ignored] = (tuple(r.code for r in file_rules), rules_key(file_rules))
        codes, rkey = rules_cache[ignored]
        if cache is not None:
            hit = cache.lookup_stat(path, st, rkey)
            if hit is None and path in cache.entries:
                # Stat changed but the content may not have (touch, checkout).
                try:
                    hit = cache.lookup_hash(path, st, content_hash(read_bytes(path)), rkey)
                except OSError:
                    hit = None
            if hit is not None:
                out.extend(hit)
                continue
        stats[path] = st
        rkeys[path] = rkey
        todo.append((path, codes))

    for path, digest, diags, error in _run_items(todo, settings.rules, settings.jobs, warn):
        out.extend(diags)
        if error is not None:
            warn(f"cannot read '{path}': {error.split(': ', 1)[-1]}")
        elif cache is not None and digest is not None:
            cache.store(path, stats[path], digest, rkeys[path], diags)

    if cache is not None:
        cache.save()
    out.sort(key=lambda d: d.sort_key)
    return out


def lint_stdin(data: bytes, filename: str, settings: Settings) -> list[Diagnostic]:
    """Lint source read from stdin; ``filename`` is used for display and per-file ignores."""
    rules = effective_rules(os.path.abspath(filename), settings) if filename != "-" else list(settings.rules)
    diags = lint_source(filename, data, rules)
    diags.sort(key=lambda d: d.sort_key)
    return diags
