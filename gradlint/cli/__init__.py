"""The ``gradlint`` command line.

``gradlint [check] PATH...`` lints (``check`` is the default command, so
``gradlint src/`` works), ``gradlint rule CODE`` / ``gradlint rule --all``
documents the rules.  Exit codes follow ruff: 0 clean, 1 violations, 2 usage,
configuration or internal error.  No traceback ever reaches the user: an
unexpected exception becomes one ``gradlint: internal error: ...`` line and
exit code 2 (set ``GRADLINT_DEBUG=1`` to get the traceback instead).
"""

from __future__ import annotations

import os
import sys

import click

from gradlint import __version__
from gradlint.cli.errors import internal_error


class DefaultGroup(click.Group):
    """A group whose first argument, when it names no command, starts ``check``."""

    default_command = "check"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h", "--version")):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            if os.environ.get("GRADLINT_DEBUG"):
                raise
            internal_error(exc)
            ctx.exit(2)


@click.group(
    cls=DefaultGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "--version", prog_name="gradlint", message="%(prog)s %(version)s")
def cli() -> None:
    """gradlint: find autograd bugs in PyTorch code without running it.

    \b
    gradlint src/               lint (same as `gradlint check src/`)
    gradlint rule GL001         explain a rule
    gradlint rule --all         list all rules
    gradlint trace train.py     run a script under gradlint.trace() (needs gradlint[runtime])

    Exit codes: 0 no violations, 1 violations found, 2 usage or configuration error.
    """


from gradlint.cli.check import check  # noqa: E402  (commands register on `cli`)
from gradlint.cli.rule_cmd import rule  # noqa: E402
from gradlint.cli.trace import trace_command  # noqa: E402  (imports torch only when run)

cli.add_command(check)
cli.add_command(rule)
cli.add_command(trace_command)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``gradlint``, ``python -m gradlint``)."""
    try:
        cli.main(args=argv, prog_name="gradlint", standalone_mode=True)
    except SystemExit:
        raise
    except Exception as exc:  # outside the group's own guard (argument parsing, output)
        if os.environ.get("GRADLINT_DEBUG"):
            raise
        internal_error(exc)
        sys.exit(2)


__all__ = ["cli", "main"]
