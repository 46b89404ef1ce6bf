"""Lint many files: per-file rule sets, the cache, and a process pool.

``lint_paths(files, settings)`` returns every diagnostic of ``files`` sorted by
``(path, row, column, code)``, whatever ``settings.jobs`` is: the serial and
parallel paths produce identical output.  Only files the cache cannot answer
reach the workers; each worker reads its files itself, so the parent never
holds the whole tree in memory.

Files are linted in worker processes, also with ``-j 1`` where fork is
available, under a watchdog: a file that takes longer than the per-file time
budget (``time_budget()``) has its worker killed and gets a GL000, as does a file
whose worker dies (a native crash); the other files are unaffected.  Workers are
forked where that is safe (Linux): they inherit the parent's rule registry
(including rules patched in by tests) and skip re-importing libcst.  Elsewhere
the rule classes travel by reference (module + name), which works for every
importable rule, and a few files with ``-j 1`` are linted in-process.  If no
process can be started, the remaining files are linted in-process.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import sys
import time
from collections.abc import Callable, Sequence

from gradlint.static import package_index
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
# (path, content hash, diagnostics, read error, the other files the result depended on)
_Result = tuple[str, str | None, list[Diagnostic], str | None, dict[str, tuple[int, int, str]]]


def _init_worker(rules: Sequence[type[Rule]]) -> None:
    _WORKER_RULES.clear()
    _WORKER_RULES.update({r.code: r for r in rules})


def _lint_item(item: _Item) -> _Result:
    """(path, content hash or None, diagnostics, read-error text or None, dependencies)."""
    path, codes = item
    try:
        data = read_bytes(path)
    except OSError as exc:
        d = read_error(path, exc)
        return path, None, [d], d.message, {}
    rules = [_WORKER_RULES[c] for c in codes]
    with package_index.recording() as deps:
        diags = lint_source(path, data, rules)
    return path, content_hash(data), diags, None, deps


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
    if not items:
        return []
    ctx = _pool_context()
    if ctx is None and (jobs <= 1 or len(items) < _MIN_PARALLEL):
        # Without fork a worker must re-import everything: not worth it for a few files.
        _init_worker(rules)
        return [_lint_item(it) for it in items]
    # Largest files first: a 5,000-line file dealt out last would leave the
    # other workers idle while it runs. Results are sorted afterwards.
    items = sorted(items, key=lambda it: -_size(it[0]))
    workers = max(1, min(jobs, len(items)))
    results: list[_Result] = []
    try:
        _watched(items, rules, workers, ctx or multiprocessing.get_context(), time_budget(), results)
    except OSError as exc:  # no processes allowed here (sandbox, process limit)
        warn(f"worker processes failed ({type(exc).__name__}); linting the remaining files in-process")
        done = {r[0] for r in results}
        _init_worker(rules)
        results += [_lint_item(it) for it in items if it[0] not in done]
    return results


# -- worker processes under a watchdog ------------------------------------------

# A file gets this many seconds; then its worker is killed and the file gets a
# GL000 instead of hanging the run (a pre-commit hook must never hang).
DEFAULT_TIME_BUDGET_S = 30.0


def time_budget() -> float:
    """Seconds per file: ``GRADLINT_TIME_BUDGET`` if set to a positive number, else the default."""
    try:
        value = float(os.environ.get("GRADLINT_TIME_BUDGET", ""))
    except ValueError:
        return DEFAULT_TIME_BUDGET_S
    return value if value > 0 else DEFAULT_TIME_BUDGET_S


def _worker_main(conn, rules: Sequence[type[Rule]]) -> None:
    _init_worker(rules)
    while True:
        try:
            item = conn.recv()
        except (EOFError, OSError):
            return
        if item is None:
            return
        conn.send(_lint_item(item))


def _stopped(path: str, message: str) -> _Result:
    loc = Location(1, 1)
    d = Diagnostic(path, GL000, message, loc, loc, rule_name="analysis-stopped")
    return path, None, [d], None, {}  # no content hash: never cached, the next run tries again


def _watched(items, rules, workers: int, ctx, budget: float, results: list[_Result]) -> None:
    """Lint ``items`` in ``workers`` processes, one file at a time each; a worker
    that runs past ``budget`` on a file is killed, one that dies (a native crash)
    is replaced, and that file gets a GL000."""
    todo = list(reversed(items))
    busy: dict = {}  # connection -> (process, item, deadline)
    idle: list = []

    def start():
        parent_end, child_end = ctx.Pipe()
        proc = ctx.Process(target=_worker_main, args=(child_end, list(rules)), daemon=True)
        proc.start()
        child_end.close()
        return proc, parent_end

    def stop(proc, conn) -> None:
        if proc.is_alive():
            proc.kill()
        proc.join()
        conn.close()

    pool = [start() for _ in range(workers)]
    idle.extend(pool)
    try:
        while todo or busy:
            while todo and idle:
                proc, conn = idle.pop()
                item = todo.pop()
                conn.send(item)
                busy[conn] = (proc, item, time.monotonic() + budget)
            timeout = max(0.0, min(deadline for _, _, deadline in busy.values()) - time.monotonic())
            for conn in multiprocessing.connection.wait(list(busy), timeout):
                proc, item, _ = busy.pop(conn)
                try:
                    results.append(conn.recv())
                    idle.append((proc, conn))
                except (EOFError, OSError):
                    stop(proc, conn)
                    code = proc.exitcode
                    how = (
                        f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                    )
                    results.append(
                        _stopped(
                            item[0],
                            f"gradlint's analysis crashed on this file (worker process {how}); "
                            "the file was not analysed. Please report this.",
                        )
                    )
                    if todo:
                        idle.append(start())
            now = time.monotonic()
            for conn, (proc, item, deadline) in list(busy.items()):
                if now >= deadline:
                    del busy[conn]
                    stop(proc, conn)
                    results.append(
                        _stopped(
                            item[0],
                            f"File too complex to analyse in {budget:g} s (gradlint's per-file time budget); "
                            "it was not analysed",
                        )
                    )
                    if todo:
                        idle.append(start())
    finally:
        for proc, conn in idle:
            try:
                conn.send(None)  # done: let it exit on its own
            except OSError:
                pass
        for proc, conn in idle:
            proc.join(timeout=5)
            stop(proc, conn)
        for conn, (proc, _, _) in busy.items():  # only on an exception (Ctrl-C)
            stop(proc, conn)


def lint_paths(files: Sequence[str], settings: Settings, *, warn: Warn | None = None) -> list[Diagnostic]:
    warn = warn or (lambda msg: None)
    package_index.clear()  # files may have changed since an earlier run in this process
    cache: Cache | None = None
    if settings.cache_dir is not None:
        cache = Cache.open(
            settings.cache_dir, settings_key(settings.rules, settings.per_file_ignores, settings.root)
        )

    out: list[Diagnostic] = []
    todo: list[_Item] = []
    stats: dict[str, os.stat_result] = {}
    rkeys: dict[str, str] = {}
    seen: list[str] = []  # files that exist (the cache drops entries of files that do not)
    rules_cache: dict[tuple[str, ...], tuple[tuple[str, ...], str]] = {}
    for path in files:
        try:
            st = os.stat(path)
        except OSError as exc:
            d = read_error(path, exc)
            warn(f"cannot read '{path}': {exc.strerror or exc}")
            out.append(d)
            continue
        seen.append(path)
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

    for path, digest, diags, error, deps in _run_items(todo, settings.rules, settings.jobs, warn):
        out.extend(diags)
        if error is not None:
            warn(f"cannot read '{path}': {error.split(': ', 1)[-1]}")
        elif cache is not None and digest is not None:
            cache.store(path, stats[path], digest, rkeys[path], diags, deps)

    if cache is not None:
        cache.save(seen=seen)
    out.sort(key=lambda d: d.sort_key)
    return out


def lint_stdin(data: bytes, filename: str, settings: Settings) -> list[Diagnostic]:
    """Lint source read from stdin; ``filename`` is used for display and per-file ignores."""
    rules = effective_rules(os.path.abspath(filename), settings) if filename != "-" else list(settings.rules)
    diags = lint_source(filename, data, rules)
    diags.sort(key=lambda d: d.sort_key)
    return diags
