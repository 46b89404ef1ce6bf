"""``gradlint rule``: a rule's documentation, or the list of all rules."""

from __future__ import annotations

import json
from typing import Any

import click

from gradlint.cli.errors import fail
from gradlint.static.rule import Rule
from gradlint.static.selection import all_rules

GL000_DOC = """\
## What it does
Reports a file that gradlint could not analyse at all: a syntax error, an
undecodable file (not UTF-8 and no valid coding declaration), null bytes,
a file over the size limit, code nested too deeply for the parser, an
unreadable file, or an internal error in a rule.

## Why is this bad?
Nothing in the file was checked, so it may hide any other violation.

## What to do
Fix the reported problem, or exclude the file (`exclude`/`extend-exclude`).
GL000 cannot be disabled with `ignore`, `per-file-ignores` or `# noqa`.
"""


def _fix(rule: type[Rule]) -> str:
    return rule.fix_applicability or "none"


def rule_dict(rule: type[Rule]) -> dict[str, Any]:
    return {
        "code": rule.code,
        "name": rule.name,
        "message": rule.message,
        "summary": rule.summary(),
        "fix": _fix(rule),
        "default_enabled": bool(rule.default_enabled),
        "docs": rule.docs(),
    }


def _gl000_dict() -> dict[str, Any]:
    return {
        "code": "GL000",
        "name": "parse-error",
        "message": "The file could not be analysed",
        "summary": "Reports a file that gradlint could not analyse at all.",
        "fix": "none",
        "default_enabled": True,
        "docs": GL000_DOC.strip(),
    }


def _text(info: dict[str, Any]) -> str:
    return (
        f"# {info['code']}: {info['name']}\n\n"
        f"Fix: {info['fix']}\n"
        f"Default: {'on' if info['default_enabled'] else 'off'}\n"
        f"Message: {info['message']}\n\n"
        f"{info['docs']}\n"
    )


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("code", required=False)
@click.option("--all", "show_all", is_flag=True, help="List every rule.")
@click.option("--output-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
def rule(code: str | None, show_all: bool, output_format: str) -> None:
    """Explain rule CODE (e.g. GL001, or its name), or list all rules with --all."""
    rules = all_rules()
    if show_all:
        if code:
            fail("give either a rule code or --all, not both")
        if output_format == "json":
            click.echo(json.dumps([rule_dict(r) for r in rules], indent=2))
            return
        if not rules:
            click.echo("No rules are installed.")
            return
        width = max(len(r.name) for r in rules)
        for r in rules:
            flags = "[*]" if r.fix_applicability == "safe" else "[~]" if r.fix_applicability else "   "
            off = "" if r.default_enabled else " (off by default)"
            click.echo(f"{r.code}  {r.name:<{width}}  {flags} {r.summary()}{off}")
        click.echo("\n[*] safe fix  [~] unsafe fix (--unsafe-fixes)")
        return
    if not code:
        fail("give a rule code (e.g. `gradlint rule GL001`) or --all")
    wanted = code.strip()
    if wanted.upper() == "GL000":
        info = _gl000_dict()
    else:
        match = next((r for r in rules if r.code == wanted.upper() or r.name == wanted.lower()), None)
        if match is None:
            fail(f"unknown rule '{code}' (see `gradlint rule --all`)")
        info = rule_dict(match)
    if output_format == "json":
        click.echo(json.dumps(info, indent=2))
    else:
        click.echo(_text(info), nl=False)
