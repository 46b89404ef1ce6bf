"""``gradlint check``: lint files and folders (the default command).

One run: resolve each path's configuration (the nearest configuration file,
merged with the command line), collect the files (excludes, ``.gitignore``),
lint each group of files that shares settings, then fix, add ``noqa``
comments, or report.  ``--watch`` repeats the run whenever a file changes.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import click

from gradlint.cli.errors import UsageFailure, fail, warn
from gradlint.reporters import FORMATS, ReportContext
from gradlint.reporters.statistics import render_statistics
from gradlint.static.config import ConfigError, Overrides, Resolver, Settings
from gradlint.static.diagnostic import Diagnostic
from gradlint.static.discovery import MissingPathError, discover_files, is_excluded
from gradlint.static.gitignore import GitIgnore
from gradlint.static.rule import Rule
from gradlint.static.selection import SelectionError, SelectionLayer, all_rules


def _split(values: Sequence[str]) -> list[str]:
    """Repeatable, comma-separated option values → flat list."""
    out: list[str] = []
    for v in values:
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return out


def _parse_per_file_ignores(
    values: Sequence[str], option: str = "--per-file-ignores"
) -> dict[str, list[str]] | None:
    if not values:
        return None
    out: dict[str, list[str]] = {}
    for v in values:
        pattern, sep, codes = v.rpartition(":")
        if not sep or not pattern or not codes.strip():
            fail(f"invalid {option} value '{v}': expected PATTERN:CODE[,CODE...]")
        out.setdefault(pattern, []).extend(c.strip() for c in codes.split(",") if c.strip())
    return out


def _ruff_ux_options(f):
    """Options a ruff user expects (kept together so other option groups merge cleanly)."""
    options = [
        click.option(
            "--extend-per-file-ignores",
            "extend_per_file_ignores",
            multiple=True,
            metavar="PATTERN:CODES",
            help="Like --per-file-ignores, but added to the configured table. Repeatable.",
        ),
        click.option(
            "--fixable",
            multiple=True,
            metavar="CODES",
            help="Rules whose fixes may be applied (default: ALL); replaces the configured `fixable`.",
        ),
        click.option(
            "--unfixable",
            multiple=True,
            metavar="CODES",
            help="Rules whose fixes are never applied nor offered; replaces the configured `unfixable`.",
        ),
        click.option(
            "--respect-gitignore/--no-respect-gitignore",
            "respect_gitignore",
            default=None,
            help="Skip files ignored by .gitignore, .git/info/exclude, the global gitignore and .ignore "
            "(default: on, or the configured `respect-gitignore`).",
        ),
        click.option(
            "--isolated", is_flag=True, help="Ignore all configuration files (defaults + command line only)."
        ),
        click.option(
            "--show-settings", is_flag=True, help="Print the settings used for the first file, then exit."
        ),
        click.option("--show-files", is_flag=True, help="Print the files that would be linted, then exit."),
        click.option(
            "--add-noqa",
            is_flag=True,
            help="Add `# noqa: CODE` comments to every line with a violation (merging with existing ones).",
        ),
        click.option("--watch", is_flag=True, help="Lint again whenever a file changes (Ctrl-C to stop)."),
        click.option("-v", "--verbose", is_flag=True, help="Also print what gradlint does (to stderr)."),
        click.option(
            "-s", "--silent", is_flag=True, help="Print nothing at all; the exit code still tells the result."
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


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
    help="Use this configuration file for every file instead of the nearest one.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print diagnostics only: no summary, no warnings.")
@_ruff_ux_options
def check(**options) -> None:
    """Lint PATHs (files and folders; `-` reads stdin). Folders are searched for *.py files."""
    opts = CheckOptions(**options)
    _check_combinations(opts)  # before --watch, which would otherwise keep waiting after the error
    if opts.watch:
        from gradlint.cli.watching import watch_loop

        raise click.exceptions.Exit(watch_loop(opts, run_once))
    raise click.exceptions.Exit(run_once(opts))


@dataclass
class CheckOptions:
    """The command line of one ``check`` run (the click parameters, by name)."""

    paths: tuple[str, ...] = ()
    select: tuple[str, ...] = ()
    extend_select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    per_file_ignores: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    extend_exclude: tuple[str, ...] = ()
    force_exclude: bool = False
    output_format: str = "full"
    output_file: str | None = None
    statistics: bool = False
    exit_zero: bool = False
    exit_non_zero_on_fix: bool = False
    fix: bool = False
    unsafe_fixes: bool = False
    diff: bool = False
    fix_only: bool = False
    show_fixes: bool = False
    no_cache: bool = False
    cache_dir: str | None = None
    jobs: int | None = None
    stdin_filename: str | None = None
    config_file: str | None = None
    quiet: bool = False
    extend_per_file_ignores: tuple[str, ...] = ()
    fixable: tuple[str, ...] = ()
    unfixable: tuple[str, ...] = ()
    respect_gitignore: bool | None = None
    isolated: bool = False
    show_settings: bool = False
    show_files: bool = False
    add_noqa: bool = False
    watch: bool = False
    verbose: bool = False
    silent: bool = False

    @property
    def path_list(self) -> list[str]:
        # Like ruff: a --stdin-filename without paths means "read stdin".
        return list(self.paths) or (["-"] if self.stdin_filename else ["."])


class Log:
    """Where the run's side messages go: warnings (not under -q/-s) and -v details."""

    def __init__(self, opts: CheckOptions):
        self.quiet = opts.quiet or opts.silent
        self.verbose = opts.verbose and not opts.silent
        self.started = time.perf_counter()

    def warn(self, message: str) -> None:
        if not self.quiet:
            warn(message)

    def debug(self, message: str) -> None:
        if self.verbose:
            click.echo(f"gradlint: [{time.perf_counter() - self.started:6.3f}s] {message}", err=True)


def _check_combinations(opts: CheckOptions) -> None:
    paths = opts.path_list
    if "-" in paths and len(paths) > 1:
        fail("'-' (stdin) cannot be combined with other paths")
    if opts.add_noqa and (opts.fix or opts.diff or opts.fix_only):
        fail("--add-noqa cannot be combined with --fix, --fix-only or --diff")
    if "-" in paths and (opts.add_noqa or opts.watch):
        fail(f"{'--add-noqa' if opts.add_noqa else '--watch'} needs files, not stdin")
    if opts.watch and (opts.diff or opts.add_noqa or opts.show_settings or opts.show_files):
        fail("--watch cannot be combined with --diff, --add-noqa, --show-settings or --show-files")
    if opts.isolated and opts.config_file:
        fail("--isolated and --config cannot be combined")


def make_resolver(opts: CheckOptions, rules: Sequence[type[Rule]]) -> Resolver:
    """Raises ConfigError/SelectionError (the caller turns them into exit 2)."""
    overrides = Overrides(
        selection=SelectionLayer(
            select=_split(opts.select) if opts.select else None,
            extend_select=_split(opts.extend_select),
            ignore=_split(opts.ignore),
        ),
        per_file_ignores=_parse_per_file_ignores(opts.per_file_ignores),
        extend_per_file_ignores=_parse_per_file_ignores(
            opts.extend_per_file_ignores, "--extend-per-file-ignores"
        ),
        exclude=_split(opts.exclude) if opts.exclude else None,
        extend_exclude=_split(opts.extend_exclude),
        fixable=_split(opts.fixable) if opts.fixable else None,
        unfixable=_split(opts.unfixable) if opts.unfixable else None,
        respect_gitignore=opts.respect_gitignore,
        no_cache=opts.no_cache,
        cache_dir=opts.cache_dir,
        jobs=opts.jobs if opts.jobs is not None else _default_jobs(),
        force_exclude=opts.force_exclude,
    )
    # Every command-line selector is checked up front, even if no file is found.
    from gradlint.static.selection import check_selectors

    check_selectors(overrides.selection.selectors(), rules)
    for table in (overrides.per_file_ignores, overrides.extend_per_file_ignores):
        for codes in (table or {}).values():
            check_selectors(codes, rules)
    check_selectors([*(overrides.fixable or []), *(overrides.unfixable or [])], rules)
    return Resolver(rules, overrides, explicit=opts.config_file, isolated=opts.isolated)


def run_once(opts: CheckOptions) -> int:
    """One complete run; returns the exit code (UsageFailure for exit 2)."""
    _check_combinations(opts)
    log = Log(opts)
    wants_fixes = opts.fix or opts.diff or opts.fix_only
    fixer = _load_fixer() if wants_fixes else None
    rules = all_rules()
    paths_list = opts.path_list
    use_stdin = "-" in paths_list
    try:
        resolver = make_resolver(opts, rules)
        if use_stdin:
            target = os.path.abspath(opts.stdin_filename) if opts.stdin_filename else os.getcwd()
            stdin_settings = resolver.settings_for(target)
            files: list[str] = []
            by_file: dict[str, Settings] = {}
        else:
            files, by_file = collect_files(paths_list, resolver, log)
    except (ConfigError, SelectionError) as exc:
        fail(str(exc))
    if any(s.strip().upper() == "GL000" for s in _split(opts.ignore)):
        log.warn("GL000 (file could not be analysed) cannot be ignored; exclude the file instead")

    if opts.show_files:
        if not opts.silent:
            _emit("".join(f + "\n" for f in files), opts.output_file)
        return 0
    if opts.show_settings:
        first = (opts.stdin_filename or "-") if use_stdin else (files[0] if files else None)
        if first is None:
            fail("no files to show settings for")
        settings = stdin_settings if use_stdin else by_file[first]
        if not opts.silent:
            _emit(describe_settings(first, settings), opts.output_file)
        return 0

    all_settings = [stdin_settings] if use_stdin else _distinct(by_file.values())
    ctx = ReportContext(
        cwd=os.getcwd(),
        rules=_union_rules(all_settings),
        show_fixes=opts.show_fixes,
        unsafe_fixes=opts.unsafe_fixes,
        fix_mode=opts.fix or opts.fix_only,
        quiet=opts.quiet or opts.silent,
    )
    if use_stdin:
        diags, code = _check_stdin(opts, stdin_settings, ctx, fixer, log)
        if code is not None:
            return code
    else:
        if not files:
            log.warn("no Python files found under the given path(s)")
        diags = lint_files(files, by_file, log)
        diags = apply_fix_policy(diags, by_file)
        if opts.add_noqa:
            return _add_noqa(diags, ctx, opts, log)
        if wants_fixes:
            diags, code = _fix(fixer, diags, by_file, ctx, opts, log)
            if code is not None:
                return code

    if not opts.silent:
        _report(diags, ctx, opts.output_format, opts.statistics, opts.output_file)
    code = 1 if diags and not opts.exit_zero else 0
    if opts.exit_non_zero_on_fix and ctx.fixed:
        code = 1
    return code


def _load_fixer():
    try:
        from gradlint.static import fixer as fixer_module
    except ImportError:
        fail("fixes are not available yet")
    return fixer_module


def _distinct(settings: Sequence[Settings] | object) -> list[Settings]:
    seen: dict[int, Settings] = {}
    for s in settings:  # type: ignore[union-attr]
        seen.setdefault(id(s), s)
    return list(seen.values())


def _union_rules(all_settings: Sequence[Settings]) -> list[type[Rule]]:
    by_code: dict[str, type[Rule]] = {}
    for s in all_settings:
        for r in s.rules:
            by_code.setdefault(r.code, r)
    return [by_code[c] for c in sorted(by_code)]


# -- which files ----------------------------------------------------------------


def collect_files(
    paths: Sequence[str], resolver: Resolver, log: Log
) -> tuple[list[str], dict[str, Settings]]:
    """The files to lint and the settings of each.  Raises ConfigError/SelectionError."""
    gitignore = GitIgnore()
    found: set[str] = set()
    for raw in paths:
        top = resolver.settings_for(raw)
        log.debug(f"'{raw}': configuration {top.config_path or '(defaults)'}, project root {top.root}")
        try:
            result = discover_files(
                [raw],
                top.exclude,
                top.root,
                force_exclude=top.force_exclude,
                skip=_skipper(top, resolver, gitignore),
                include=top.include,
            )
        except MissingPathError as exc:
            fail(str(exc))
        for w in result.warnings:
            log.warn(w)
        found.update(result.files)
    files = sorted(found)
    by_file = {f: resolver.settings_for(f) for f in files}
    log.debug(f"found {len(files)} file{'' if len(files) == 1 else 's'} to lint")
    return files, by_file


def _skipper(top: Settings, resolver: Resolver, gitignore: GitIgnore) -> Callable[[str, bool], bool]:
    """What the walk under ``top`` skips besides ``top``'s own excludes.

    ``.gitignore`` (when the walk's settings respect it, as ruff takes it from
    the root configuration), and the excludes of a nested configuration file,
    which governs the entries of its folders.
    """
    by_folder: dict[str, Settings] = {}

    def skip(path: str, is_dir: bool) -> bool:
        if top.respect_gitignore and gitignore.ignored(path, is_dir):
            return True
        folder = os.path.dirname(path)
        settings = by_folder.get(folder)
        if settings is None:
            settings = by_folder[folder] = resolver.settings_for(folder)
        return settings is not top and is_excluded(path, settings.exclude, settings.root)

    return skip


# -- linting --------------------------------------------------------------------


def lint_files(files: Sequence[str], by_file: dict[str, Settings], log: Log) -> list[Diagnostic]:
    """Lint each group of files sharing settings (one cache and one pool per group)."""
    from gradlint.static.runner import lint_paths

    groups: dict[int, tuple[Settings, list[str]]] = {}
    for f in files:
        s = by_file[f]
        groups.setdefault(id(s), (s, []))[1].append(f)
    out: list[Diagnostic] = []
    for settings, group in groups.values():
        start = time.perf_counter()
        out += lint_paths(group, settings, warn=log.warn)
        log.debug(
            f"linted {len(group)} file(s) with {settings.config_path or 'the defaults'} "
            f"({len(settings.rules)} rules, jobs={settings.jobs}) in {time.perf_counter() - start:.3f}s"
        )
    out.sort(key=lambda d: d.sort_key)
    return out


def apply_fix_policy(diags: list[Diagnostic], by_file: dict[str, Settings]) -> list[Diagnostic]:
    """Drop the fixes of rules that ``fixable``/``unfixable`` rule out (they are neither shown nor applied)."""
    out = []
    for d in diags:
        s = by_file.get(d.filename)
        if d.fix is not None and s is not None and d.code not in s.fixable:
            d = dataclasses.replace(d, fix=None)
        out.append(d)
    return out


_FIX_RULES: dict[tuple[int, frozenset[str]], list[type[Rule]]] = {}


def fixing_settings(settings: Settings) -> Settings:
    """``settings`` whose unfixable rules report no fix, for the fixer's re-lint rounds."""
    if all(r.code in settings.fixable for r in settings.rules):
        return settings
    rules = [
        r
        if r.code in settings.fixable
        else type(
            r.__name__, (r,), {"fix_applicability": None, "__module__": r.__module__, "__doc__": r.__doc__}
        )
        for r in settings.rules
    ]
    return dataclasses.replace(settings, rules=rules)


def _fix(
    fixer, diags, by_file, ctx: ReportContext, opts: CheckOptions, log: Log
) -> tuple[list[Diagnostic], int | None]:
    """Apply fixes (per settings group): (what remains, the exit code when the run ends here)."""
    from gradlint.cli.fixing import FixOutcome, apply_fixes

    total = FixOutcome()
    groups: dict[int, tuple[Settings, list[Diagnostic]]] = {}
    for d in diags:
        s = by_file[d.filename]
        groups.setdefault(id(s), (s, []))[1].append(d)
    for settings, group in groups.values():
        outcome = apply_fixes(
            fixer,
            group,
            fixing_settings(settings),
            ctx,
            unsafe=opts.unsafe_fixes,
            diff=opts.diff,
            warn=log.warn,
        )
        total.fixed += outcome.fixed
        total.remaining += outcome.remaining
        total.diff_text += outcome.diff_text
    total.remaining.sort(key=lambda d: d.sort_key)
    if opts.diff:
        if not opts.silent:
            _emit(total.diff_text, opts.output_file)
        if not log.quiet:
            n = len(total.fixed)
            click.echo(
                f"Would fix {n} error{'' if n == 1 else 's'}." if n else "No errors would be fixed.", err=True
            )
        return [], 1 if total.diff_text else 0
    ctx.fixed = total.fixed
    if opts.fix_only:
        if not log.quiet:
            from gradlint.reporters.context import fixed_listing

            n = len(ctx.fixed)
            listing = fixed_listing(ctx.fixed, ctx) if opts.show_fixes and ctx.fixed else ""
            _emit(
                listing + (f"Fixed {n} error{'' if n == 1 else 's'}.\n" if n else "No errors fixed.\n"),
                opts.output_file,
            )
        return [], 1 if opts.exit_non_zero_on_fix and ctx.fixed else 0
    return total.remaining, None


def _add_noqa(diags: list[Diagnostic], ctx: ReportContext, opts: CheckOptions, log: Log) -> int:
    from gradlint.static.add_noqa import add_noqa

    result = add_noqa(diags)
    for path, error in result.errors:
        log.warn(f"{ctx.display_path(path)}: {error}")
    if not log.quiet:
        n = result.added
        click.echo(f"Added {n} noqa directive{'' if n == 1 else 's'}.", err=True)
    return 0


def _default_jobs() -> int:
    from gradlint.static.runner import default_jobs

    return default_jobs()


# -- output ---------------------------------------------------------------------


def describe_settings(path: str, s: Settings) -> str:
    """``--show-settings``: what applies to ``path``, one setting per line (stable order)."""

    def listing(values: Sequence[str]) -> str:
        return "[" + ", ".join(f'"{v}"' for v in values) + "]"

    lines = [
        f"Resolved settings for: {path}",
        f"Settings path: {s.config_path or '(none: defaults)'}",
        f"extends = {listing(s.extends)}",
        f"project-root = {s.root}",
        f"rules = {listing([r.code for r in s.rules])}",
        f"fixable = {listing(sorted(s.fixable & {r.code for r in s.rules}))}",
        f"include = {listing(s.include)}",
        f"exclude = {listing(s.exclude)}",
        "per-file-ignores = {"
        + ", ".join(f'"{k}" = {listing(v)}' for k, v in sorted(s.per_file_ignores.items()))
        + "}",
        f"respect-gitignore = {'true' if s.respect_gitignore else 'false'}",
        f"force-exclude = {'true' if s.force_exclude else 'false'}",
        f"cache-dir = {s.cache_dir or '(disabled)'}",
        f"jobs = {s.jobs}",
    ]
    return "\n".join(lines) + "\n"


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
    opts: CheckOptions, settings: Settings, ctx: ReportContext, fixer, log: Log
) -> tuple[list[Diagnostic], int | None]:
    """Lint (and fix) stdin: (diagnostics to report, or the exit code when the output is done)."""
    from gradlint.static.runner import lint_stdin

    stdin_filename = opts.stdin_filename
    data = _read_stdin()
    name = os.path.abspath(stdin_filename) if stdin_filename else "-"
    diags = lint_stdin(data, name, settings)
    diags = apply_fix_policy(diags, {name: settings})
    ctx.sources[name] = data.decode("utf-8", errors="replace")
    if fixer is None:
        return diags, None
    from gradlint.cli.fixing import fix_stdin

    new_text, old_text, fixed, remaining, errors = fix_stdin(
        fixer, data, name, diags, fixing_settings(settings), unsafe=opts.unsafe_fixes
    )
    for e in errors:
        log.warn(f"{stdin_filename or '-'}: {e}")
    if opts.diff:
        if new_text is not None and new_text != old_text:
            click.echo(fixer.unified_diff(stdin_filename or "-", old_text, new_text), nl=False)
            return [], 1
        return [], 0
    # ruff's contract: the (fixed) source goes to stdout, the remaining diagnostics to stderr.
    click.echo(new_text if new_text is not None else old_text, nl=False)
    ctx.fixed = fixed
    if remaining and not ctx.quiet:
        click.echo(
            FORMATS["concise"](remaining, ReportContext(cwd=ctx.cwd, rules=ctx.rules, quiet=True)),
            err=True,
            nl=False,
        )
    return [], 1 if remaining else 0


__all__ = ["CheckOptions", "UsageFailure", "check", "run_once"]
