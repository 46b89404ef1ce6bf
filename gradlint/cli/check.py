"""``gradlint check``: lint files and folders (the default command)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click

from gradlint.cli.errors import fail, warn
from gradlint.reporters import FORMATS, ReportContext
from gradlint.reporters.statistics import render_statistics
from gradlint.static.config import ConfigError, Settings, build_settings, discover
from gradlint.static.diagnostic import Diagnostic
from gradlint.static.discovery import MissingPathError, discover_files
from gradlint.static.selection import SelectionError, SelectionLayer, all_rules


def _split(values: Sequence[str]) -> list[str]:
    """Repeatable, comma-separated option values → flat list."""
    out: list[str] = []
    for v in values:
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return out


def _parse_per_file_ignores(values: Sequence[str]) -> dict[str, list[str]] | None:
    if not values:
        return None
    out: dict[str, list[str]] = {}
    for v in values:
        pattern, sep, codes = v.rpartition(":")
        if not sep or not pattern or not codes.strip():
            fail(f"invalid --per-file-ignores value '{v}': expected PATTERN:CODE[,CODE...]")
        out.setdefault(pattern, []).extend(c.strip() for c in codes.split(",") if c.strip())
    return out


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("paths", nargs=-1, metavar="[PATH]...")
@click.option(
    "--select",
    multiple=True,
    metavar="CODES",
    help="Rules to enable (codes, prefixes like GL0, or ALL); replaces the configured `select`. Comma-separated or repeated.",
)
@click.option("--extend-select", multiple=True, metavar="CODES", help="Rules to enable on top of `select`.")
@click.option("--ignore", multiple=True, metavar="CODES", help="Rules to disable (GL000 cannot be disabled).")
@click.option(
    "--per-file-ignores",
    "per_file_ignores",
    multiple=True,
    metavar="PATTERN:CODES",
    help="Disable CODES in files matching the glob PATTERN; replaces the configured table. Repeatable.",
)
@click.option(
    "--exclude",
    multiple=True,
    metavar="PATTERNS",
    help="Files/folders to skip; replaces the default and configured list.",
)
@click.option(
    "--extend-exclude",
    multiple=True,
    metavar="PATTERNS",
    help="Files/folders to skip in addition to `exclude`.",
)
@click.option(
    "--force-exclude",
    is_flag=True,
    help="Apply excludes to paths named on the command line too (for pre-commit).",
)
@click.option(
    "--output-format",
    type=click.Choice(sorted(FORMATS)),
    default="full",
    show_default=True,
    envvar="GRADLINT_OUTPUT_FORMAT",
    help="How to print diagnostics.",
)
@click.option(
    "-o",
    "--output-file",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the report to this file instead of stdout.",
)
@click.option("--statistics", is_flag=True, help="Print counts per rule instead of the diagnostics.")
@click.option("--exit-zero", is_flag=True, help="Exit with 0 even when violations are found.")
@click.option(
    "--exit-non-zero-on-fix",
    is_flag=True,
    help="Exit with 1 when any fix was applied, even if nothing remains.",
)
@click.option("--fix/--no-fix", "fix", default=False, help="Apply safe fixes, then report what remains.")
@click.option("--unsafe-fixes", is_flag=True, help="Also apply (and offer) unsafe fixes.")
@click.option(
    "--diff",
    is_flag=True,
    help="Print the fixes as a unified diff and change nothing; exit 1 if there is one.",
)
@click.option(
    "--fix-only", is_flag=True, help="Apply fixes and report only how many; never report violations."
)
@click.option("--show-fixes", is_flag=True, help="List the fixes that were applied.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the cache.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    envvar="GRADLINT_CACHE_DIR",
    help="Cache location (default: .gradlint_cache at the project root).",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes (default: the number of CPUs; 1 runs in-process).",
)
@click.option(
    "--stdin-filename",
    metavar="PATH",
    help="The name of the file read from `-` (for messages, config discovery and per-file-ignores).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="Use this configuration file instead of discovering one.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print diagnostics only: no summary, no warnings.")
def check(
    paths: tuple[str, ...],
    select: tuple[str, ...],
    extend_select: tuple[str, ...],
    ignore: tuple[str, ...],
    per_file_ignores: tuple[str, ...],
    exclude: tuple[str, ...],
    extend_exclude: tuple[str, ...],
    force_exclude: bool,
    output_format: str,
    output_file: str | None,
    statistics: bool,
    exit_zero: bool,
    exit_non_zero_on_fix: bool,
    fix: bool,
    unsafe_fixes: bool,
    diff: bool,
    fix_only: bool,
    show_fixes: bool,
    no_cache: bool,
    cache_dir: str | None,
    jobs: int | None,
    stdin_filename: str | None,
    config_file: str | None,
    quiet: bool,
) -> None:
    """Lint PATHs (files and folders; `-` reads stdin). Folders are searched for *.py files."""
    wants_fixes = fix or diff or fix_only
    fixer = None
    if wants_fixes:
        try:
            from gradlint.static import fixer as fixer_module
        except ImportError:
            fail("fixes are not available yet")
        fixer = fixer_module

    say_warning = (lambda msg: None) if quiet else warn
    # Like ruff: a --stdin-filename without paths means "read stdin".
    paths_list = list(paths) or (["-"] if stdin_filename else ["."])
    use_stdin = "-" in paths_list
    if use_stdin and len(paths_list) > 1:
        fail("'-' (stdin) cannot be combined with other paths")

    rules = all_rules()
    cli_pfi = _parse_per_file_ignores(per_file_ignores)
    try:
        cfg_start = [stdin_filename] if use_stdin and stdin_filename else ([] if use_stdin else paths_list)
        cfg = discover(cfg_start, explicit=config_file)
        layer = SelectionLayer(
            select=_split(select) if select else None,
            extend_select=_split(extend_select),
            ignore=_split(ignore),
        )
        settings = build_settings(
            cfg,
            rules=rules,
            cli=layer,
            cli_per_file_ignores=cli_pfi,
            cli_exclude=_split(exclude) if exclude else None,
            cli_extend_exclude=_split(extend_exclude),
            no_cache=no_cache,
            cli_cache_dir=cache_dir,
            jobs=jobs if jobs is not None else _default_jobs(),
            force_exclude=force_exclude,
        )
    except (ConfigError, SelectionError) as exc:
        fail(str(exc))
    if any(s.strip().upper() == "GL000" for s in _split(ignore)):
        say_warning("GL000 (file could not be analysed) cannot be ignored; exclude the file instead")

    ctx = ReportContext(
        cwd=os.getcwd(),
        rules=settings.rules,
        show_fixes=show_fixes,
        unsafe_fixes=unsafe_fixes,
        fix_mode=fix or fix_only,
        quiet=quiet,
    )

    if use_stdin:
        diags = _check_stdin(
            settings, stdin_filename, ctx, fixer, fix=fix or fix_only, diff=diff, unsafe=unsafe_fixes
        )
        if diags is None:  # the fixed source or the diff went to stdout
            return
    else:
        try:
            found = discover_files(
                paths_list,
                settings.exclude,
                settings.root,
                force_exclude=settings.force_exclude,
                include=settings.include,
            )
        except MissingPathError as exc:
            fail(str(exc))
        for w in found.warnings:
            say_warning(w)
        if not found.files:
            say_warning("no Python files found under the given path(s)")
        from gradlint.static.runner import lint_paths

        diags = lint_paths(found.files, settings, warn=say_warning)
        if wants_fixes:
            from gradlint.cli.fixing import apply_fixes

            outcome = apply_fixes(
                fixer, diags, settings, ctx, unsafe=unsafe_fixes, diff=diff, warn=say_warning
            )
            if diff:
                _emit(outcome.diff_text, output_file)
                if not quiet:
                    n = len(outcome.fixed)
                    click.echo(
                        f"Would fix {n} error{'' if n == 1 else 's'}." if n else "No errors would be fixed.",
                        err=True,
                    )
                raise click.exceptions.Exit(1 if outcome.diff_text else 0)
            ctx.fixed = outcome.fixed
            diags = outcome.remaining
            if fix_only:
                if not quiet:
                    from gradlint.reporters.context import fixed_listing

                    n = len(ctx.fixed)
                    listing = fixed_listing(ctx.fixed, ctx) if show_fixes and ctx.fixed else ""
                    _emit(
                        listing
                        + (f"Fixed {n} error{'' if n == 1 else 's'}.\n" if n else "No errors fixed.\n"),
                        output_file,
                    )
                raise click.exceptions.Exit(1 if exit_non_zero_on_fix and ctx.fixed else 0)

    _report(diags, ctx, output_format, statistics, output_file)
    code = 1 if diags and not exit_zero else 0
    if exit_non_zero_on_fix and ctx.fixed:
        code = 1
    raise click.exceptions.Exit(code)


def _default_jobs() -> int:
    from gradlint.static.runner import default_jobs

    return default_jobs()


def _report(
    diags: list[Diagnostic], ctx: ReportContext, fmt: str, statistics: bool, output_file: str | None
) -> None:
    if statistics:
        text = render_statistics(diags, ctx, as_json=fmt in ("json", "json-lines"))
    else:
        text = FORMATS[fmt](diags, ctx)
    _emit(text, output_file)


def _emit(text: str, output_file: str | None) -> None:
    """Write the run's single report (called once per run)."""
    if output_file:
        try:
            parent = os.path.dirname(os.path.abspath(output_file))
            os.makedirs(parent, exist_ok=True)
            with open(output_file, "w", encoding="utf-8") as fh:
                fh.write(click.unstyle(text))
        except OSError as exc:
            fail(f"cannot write '{output_file}': {exc.strerror or exc}")
        return
    if text:
        click.echo(text, nl=False)


def _read_stdin() -> bytes:
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is not None:
        return buffer.read()
    return sys.stdin.read().encode("utf-8")


def _check_stdin(
    settings: Settings,
    stdin_filename: str | None,
    ctx: ReportContext,
    fixer,
    *,
    fix: bool,
    diff: bool,
    unsafe: bool,
) -> list[Diagnostic] | None:
    from gradlint.static.runner import lint_stdin

    data = _read_stdin()
    name = os.path.abspath(stdin_filename) if stdin_filename else "-"
    diags = lint_stdin(data, name, settings)
    ctx.sources[name] = data.decode("utf-8", errors="replace")
    if fixer is None:
        return diags
    from gradlint.cli.fixing import fix_stdin

    new_text, old_text, fixed, remaining, errors = fix_stdin(
        fixer, data, name, diags, settings, unsafe=unsafe
    )
    for e in errors:
        if not ctx.quiet:
            warn(f"{stdin_filename or '-'}: {e}")
    if diff:
        if new_text is not None and new_text != old_text:
            click.echo(fixer.unified_diff(stdin_filename or "-", old_text, new_text), nl=False)
            raise click.exceptions.Exit(1)
        raise click.exceptions.Exit(0)
    # ruff's contract: the (fixed) source goes to stdout, the remaining diagnostics to stderr.
    click.echo(new_text if new_text is not None else old_text, nl=False)
    ctx.fixed = fixed
    if remaining and not ctx.quiet:
        click.echo(
            FORMATS["concise"](remaining, ReportContext(cwd=ctx.cwd, rules=ctx.rules, quiet=True)),
            err=True,
            nl=False,
        )
    raise click.exceptions.Exit(1 if remaining else 0)
