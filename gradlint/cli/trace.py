"""``gradlint trace [OPTIONS] train.py [ARGS...]`` / ``gradlint trace [OPTIONS] -m pkg.mod [ARGS...]``.

Runs a script under ``gradlint.trace()`` the way ``python -m cProfile -o out
train.py ARGS`` runs it under the profiler: gradlint's options come before the
script; everything after the script path (or module name) goes to the script
untouched.  ``sys.argv``, ``__name__ == "__main__"``, the script's directory on
``sys.path``, its exit code and its exceptions are those of ``python train.py``.
The report summary goes to stderr afterwards.

This module must not import torch at import time: the ``gradlint`` command group
(which registers ``trace_command``) has to load in torch-free environments.
"""

from __future__ import annotations

import os
import re
import runpy
import sys
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

_CODE_RE = re.compile(r"^(GR\d{0,3}|ALL)$")


def _parse_fail_on(value: str | None) -> list[str]:
    if not value:
        return []
    codes = [c.strip().upper() for c in value.split(",") if c.strip()]
    bad = [c for c in codes if not _CODE_RE.match(c)]
    if bad:
        raise click.BadParameter(
            f"{', '.join(bad)}: expected comma-separated finding codes or prefixes such as GR002,GR00 (or ALL)",
            param_hint="--fail-on",
        )
    return codes


def _matches(code: str, prefixes: Sequence[str]) -> bool:
    return any(p == "ALL" or code.startswith(p) for p in prefixes)


def _user_tb(tb, target: str | None):
    """Drop the frames of gradlint and runpy above the script's first frame, so the
    traceback reads as ``python train.py`` would print it."""
    if target is None:
        return tb
    target = os.path.abspath(target)
    t = tb
    while t is not None:
        if os.path.abspath(t.tb_frame.f_code.co_filename) == target:
            return t
        t = t.tb_next
    # not found (e.g. an import error before the module ran): skip our own frames only
    t = tb
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    while t is not None and (
        t.tb_frame.f_code.co_filename.startswith(here)
        or os.path.basename(t.tb_frame.f_code.co_filename) == "runpy.py"
    ):
        t = t.tb_next
    return t or tb


_GRADLINT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _print_exception(exc: BaseException, script_file: str | None) -> None:
    """Print ``exc`` as Python would for ``python train.py``: from the script's first
    frame on, without the frames of gradlint's own wrappers (they would not exist
    without the tracer); torch's frames stay."""
    tb = _user_tb(exc.__traceback__, script_file)
    try:
        te = traceback.TracebackException(type(exc), exc, tb, compact=True)
    except TypeError:  # Python < 3.10
        te = traceback.TracebackException(type(exc), exc, tb)
    seen = set()
    cur = te
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        kept = [f for f in cur.stack if not f.filename.startswith(_GRADLINT_DIR)]
        if kept:
            cur.stack = traceback.StackSummary.from_list(kept)
        cur = cur.__cause__ or (cur.__context__ if not cur.__suppress_context__ else None)
    sys.stderr.write("".join(te.format()))


def _tb_namespaces(tb) -> list[Mapping[str, Any]]:
    """Locals of the traceback's frames, innermost first, then their globals."""
    import torch

    internal = (_GRADLINT_DIR, os.path.dirname(os.path.abspath(torch.__file__)) + os.sep)
    frames = []
    while tb is not None:
        if not tb.tb_frame.f_code.co_filename.startswith(internal):
            frames.append(tb.tb_frame)
        tb = tb.tb_next
    out: list[Mapping[str, Any]] = []
    for f in reversed(frames):
        out.append(f.f_locals)
    seen = set()
    for f in reversed(frames):
        if id(f.f_globals) not in seen:
            seen.add(id(f.f_globals))
            out.append(f.f_globals)
    return out


def _exit_code_of(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # what Python does with sys.exit("message")
    return 1


@click.command(
    "trace",
    context_settings=dict(
        ignore_unknown_options=True, allow_interspersed_args=False, help_option_names=["-h", "--help"]
    ),
)
@click.option(
    "-m",
    "as_module",
    is_flag=True,
    help="Run a module as a script (like `python -m`): the first argument is the module name.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the trace report as JSON to this file.",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write a self-contained HTML report (tables + graph pictures embedded) to this file.",
)
@click.option(
    "--png-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write one PNG per retained/leaked graph and per finding with a graph here (created if missing).",
)
@click.option(
    "--cuda/--no-cuda",
    default=None,
    help="Record per-iteration CUDA memory (default: only if the script initializes CUDA).",
)
@click.option(
    "--every",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    metavar="N",
    help="Sampling: trace every Nth iteration fully, only cheap counters in between.",
)
@click.option(
    "--fail-on",
    "fail_on",
    default=None,
    metavar="CODES",
    help="Exit 1 if findings with these comma-separated codes or prefixes occur (e.g. GR001,GR002 or GR00).",
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def trace_command(
    ctx: click.Context,
    as_module: bool,
    json_path: Path | None,
    html_path: Path | None,
    png_dir: Path | None,
    cuda: bool | None,
    every: int,
    fail_on: str | None,
    args: Sequence[str],
) -> None:
    """Run a Python script (or `-m module`) under gradlint.trace() and report.

    \b
    gradlint trace train.py --epochs 3          # the script gets `--epochs 3`
    gradlint trace --html report.html --png-dir graphs/ train.py
    gradlint trace --fail-on GR001,GR002 -m mypkg.train --lr 0.1

    Everything after the script path or module name is passed to the script
    untouched.  The script's exit code is kept (an uncaught exception: 1, with the
    traceback as Python prints it); --fail-on turns matching findings into exit 1.
    """
    prefixes = _parse_fail_on(fail_on)
    if not args:
        raise click.UsageError(
            "missing the script to run: gradlint trace [OPTIONS] train.py [ARGS...] "
            "or gradlint trace [OPTIONS] -m module [ARGS...]"
        )
    target, script_args = args[0], list(args[1:])
    if not as_module and not os.path.exists(target):
        raise click.UsageError(f"can't open file {target!r}: no such file")

    code = _run(
        target,
        script_args,
        as_module,
        json_path=json_path,
        html_path=html_path,
        png_dir=png_dir,
        cuda=cuda,
        every=every,
        prefixes=prefixes,
    )
    ctx.exit(code)


def _run(
    target: str,
    script_args: list[str],
    as_module: bool,
    *,
    json_path,
    html_path,
    png_dir,
    cuda,
    every,
    prefixes,
) -> int:
    try:
        import gradlint.runtime  # noqa: F401  (imports torch)
    except ImportError as exc:
        raise click.ClickException(
            f"gradlint trace needs torch and the runtime extra: pip install 'gradlint[runtime]' ({exc})"
        ) from None
    import gradlint

    saved_argv = sys.argv[:]
    saved_path = sys.path[:]
    namespaces: list[Mapping[str, Any]] = []
    exit_code = 0
    t = gradlint.trace(cuda="auto" if cuda is None else cuda, every=every)
    # a `gradlint.trace()` inside the script runs as a view of this trace (docs/runtime.md, "Nested traces")
    t._host = "gradlint trace"
    script_file: str | None = None
    try:
        if as_module:
            sys.argv[:] = [target] + script_args  # run_module(alter_sys=True) replaces argv[0] by the file
            sys.path.insert(0, os.getcwd())  # what `python -m` does
            try:
                import importlib.util

                spec = importlib.util.find_spec(target)
                script_file = spec.origin if spec is not None else None
                if (
                    spec is not None and spec.submodule_search_locations is not None
                ):  # a package: its __main__
                    main_spec = importlib.util.find_spec(target + ".__main__")
                    script_file = main_spec.origin if main_spec is not None else None
            except (ImportError, ValueError):
                script_file = None
        else:
            script_file = os.path.abspath(target)
            sys.argv[:] = [target] + script_args
            sys.path.insert(0, os.path.dirname(script_file))
        t.start()
        ended: BaseException | None = None
        try:
            if as_module:
                glb = runpy.run_module(target, run_name="__main__", alter_sys=True)
            else:
                glb = runpy.run_path(target, run_name="__main__")
            namespaces = [glb]
        except SystemExit as exc:
            exit_code = _exit_code_of(exc)
            namespaces = _tb_namespaces(exc.__traceback__)
            ended = exc
        except KeyboardInterrupt as exc:
            _print_exception(exc, script_file)
            namespaces = _tb_namespaces(exc.__traceback__)
            exit_code = 130
            ended = exc
        except BaseException as exc:  # noqa: BLE001 - reported as Python would
            _print_exception(exc, script_file)
            namespaces = _tb_namespaces(exc.__traceback__)
            exit_code = 1
            ended = exc
        finally:
            t.stop(exception=ended)
            ended = None
        sys.stderr.flush()
        exit_code = _report(
            t,
            namespaces,
            exit_code,
            json_path=json_path,
            html_path=html_path,
            png_dir=png_dir,
            prefixes=prefixes,
        )
    finally:
        sys.argv[:] = saved_argv
        sys.path[:] = saved_path
        namespaces = []
    return exit_code


def _report(t, namespaces, exit_code: int, *, json_path, html_path, png_dir, prefixes) -> int:
    print(str(t), file=sys.stderr)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        t.save_json(json_path)
        print(f"gradlint: wrote {json_path}", file=sys.stderr)
    pictures = None
    if png_dir is not None or html_path is not None:
        pictures = _pictures(t, namespaces, png_dir)
    if html_path is not None:
        from gradlint.render.html import report_page

        html_path.parent.mkdir(parents=True, exist_ok=True)
        html_path.write_text(report_page(t, namespaces=namespaces, pictures=pictures or []), encoding="utf-8")
        print(f"gradlint: wrote {html_path}", file=sys.stderr)
    if prefixes:
        hits = sorted({f.code for f in t.findings if _matches(f.code, prefixes)})
        if hits:
            print(
                f"gradlint: failing because of {', '.join(hits)} (--fail-on {','.join(prefixes)})",
                file=sys.stderr,
            )
            if exit_code == 0:
                exit_code = 1
    return exit_code


def _pictures(t, namespaces, png_dir: Path | None):
    """Draw the graphs worth drawing (into png_dir, or a temporary one for --html);
    returns ``[(GraphPick, png bytes)]``.  A missing `dot` is a warning, not a failure."""
    import tempfile

    from gradlint.render.from_trace import render_picks
    from gradlint.render.output import INSTALL_HINT, dot_binary

    if png_dir is not None:
        png_dir.mkdir(parents=True, exist_ok=True)
    if dot_binary() is None:
        print(
            f"gradlint: no graph pictures: Graphviz's `dot` program is not on PATH (install it with "
            f"{INSTALL_HINT})",
            file=sys.stderr,
        )
        return []
    tmp = None
    try:
        directory = png_dir
        if directory is None:
            tmp = tempfile.TemporaryDirectory()
            directory = Path(tmp.name)
        try:
            drawn = render_picks(t, directory, namespaces)
        except Exception as exc:  # a picture must never cost the report
            print(f"gradlint: graph pictures failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return []
        if png_dir is not None:
            print(
                f"gradlint: wrote {len(drawn)} graph picture{'s' if len(drawn) != 1 else ''} to {png_dir}",
                file=sys.stderr,
            )
        return [(pick, Path(p).read_bytes()) for pick, p in drawn]
    finally:
        if tmp is not None:
            tmp.cleanup()


def main(argv: Sequence[str] | None = None) -> None:  # pragma: no cover - convenience
    trace_command.main(args=list(argv) if argv is not None else None, prog_name="gradlint trace")
