"""User-facing error lines; every exit-2 path goes through here."""

from __future__ import annotations

from typing import NoReturn

import click


class UsageFailure(click.exceptions.Exit):
    """Raised after the error line is printed; exits with code 2."""

    def __init__(self) -> None:
        super().__init__(2)


def fail(message: str) -> NoReturn:
    click.echo(f"gradlint: error: {message}", err=True)
    raise UsageFailure()


def warn(message: str) -> None:
    click.echo(f"gradlint: warning: {message}", err=True)


def internal_error(exc: BaseException) -> None:
    text = " ".join(str(exc).split()) or "no details"
    click.echo(f"gradlint: internal error: {type(exc).__name__}: {text} (please report)", err=True)
