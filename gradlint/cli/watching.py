"""``gradlint check --watch``: lint, then lint again whenever a file changes (like ``ruff check --watch``).

Each run is a complete ``check`` run with the same options.  If the first run
fails (a missing path, a bad configuration), the watch ends with exit code 2; a
later run that fails (a configuration file broken while editing) prints its
error and the watch goes on.  Ctrl-C ends the watch with exit code 0.  ``GRADLINT_WATCH_INTERVAL`` sets the
polling interval in seconds (default 0.5).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import click

from gradlint.cli.errors import UsageFailure, warn
from gradlint.static.watch import poll, snapshot

DEFAULT_INTERVAL = 0.5


def _interval() -> float:
    raw = os.environ.get("GRADLINT_WATCH_INTERVAL", "")
    try:
        value = float(raw) if raw else DEFAULT_INTERVAL
    except ValueError:
        warn(f"ignoring GRADLINT_WATCH_INTERVAL={raw!r}: not a number")
        return DEFAULT_INTERVAL
    return value if value > 0 else DEFAULT_INTERVAL


def watch_loop(
    opts,
    run_once: Callable[[object], int],
    *,
    max_changes: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    def header(text: str) -> None:
        if not opts.silent:
            click.echo(f"[{time.strftime('%H:%M:%S')}] {text}")

    def run() -> None:
        try:
            run_once(opts)
        except UsageFailure:
            pass  # the error line is printed; wait for the next change

    try:
        header("Starting linter in watch mode...")
        # Taken before the first run, so that an edit made while it runs is not missed.
        before = snapshot(opts.path_list)
        # A first run that cannot even start (a missing path, a bad option or
        # configuration) ends the watch with exit code 2: there is nothing to watch yet.
        run_once(opts)
        header("Watching for file changes.")

        def on_change() -> None:
            header("File change detected...")
            run()
            header("Watching for file changes.")

        poll(
            opts.path_list,
            on_change,
            interval=_interval(),
            max_changes=max_changes,
            sleep=sleep,
            before=before,
        )
    except KeyboardInterrupt:
        pass
    return 0
