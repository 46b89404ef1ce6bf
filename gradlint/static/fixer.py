"""Apply the fixes rules attach to their diagnostics: ``--fix``, ``--unsafe-fixes``, ``--diff``.

Rules express fixes as libcst node replacements; the engine has already turned
them into text ``Edit``s (1-based rows, columns counting characters of the line),
so everything the edits do not touch — formatting, comments — survives as is.

What ``fix_file`` guarantees:

* Only fixes whose applicability is allowed are applied: ``safe`` always,
  ``unsafe`` only with ``unsafe=True``.
* Overlapping fixes: the first by position wins, the others wait.  Like ruff,
  the fixer then re-lints the new text with the same rules and applies again,
  up to ``MAX_ROUNDS`` rounds, until no fix applies.  A fix that would bring the
  text back to one already seen stops the loop (reported, nothing oscillates).
* Every intermediate text is re-parsed (libcst ``parse_module`` and CPython
  ``compile``).  A fix that breaks the code is dropped and reported in
  ``errors``; the other fixes still apply.
* The original newline style (LF, CRLF, CR), encoding (PEP 263 coding cookie)
  and UTF-8 BOM are kept.
* The file is replaced atomically (temporary file in the same directory, then
  ``os.replace``) with its permission bits kept; a file without an applicable
  fix is never written (its mtime does not change).  Writing through a symlink
  updates the file it points to.
"""

from __future__ import annotations

import codecs
import difflib
import io
import os
import re
import stat
import tempfile
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst

from gradlint.static import notebook, notebook_fix
from gradlint.static.diagnostic import Diagnostic, Fix
from gradlint.static.engine import decode_source, lint_source
from gradlint.static.rule import Rule

# ruff stops after 100 rounds; our rules' fixes are local and converge in one or
# two, so ten leaves room for chains of overlapping fixes without hiding a bug.
MAX_ROUNDS = 10

_NEWLINE = re.compile(r"\r\n|\r|\n")


@dataclass
class FixResult:
    applied: list[Diagnostic] = field(default_factory=list)
    # What is left to report: re-linted positions when the fixer re-linted,
    # else the input diagnostics that were not fixed.
    remaining: list[Diagnostic] = field(default_factory=list)
    new_text: str | None = None
    old_text: str = ""
    errors: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.new_text is not None


# -- text positions -------------------------------------------------------------


def _line_starts(text: str) -> list[int]:
    # Python's own line breaks only: str.splitlines() would also split on \f,
    # \x1c, \u2028..., which the tokenizer (and libcst's positions) do not.
    return [0] + [m.end() for m in _NEWLINE.finditer(text)]


def _line_end(text: str, starts: list[int], idx: int) -> int:
    """Offset of the end of line ``idx``'s content (before its newline)."""
    end = starts[idx + 1] if idx + 1 < len(starts) else len(text)
    while end > starts[idx] and text[end - 1] in "\r\n":
        end -= 1
    return end


def _offset(text: str, starts: list[int], row: int, column: int) -> int:
    if row < 1:
        return 0
    if row > len(starts):
        return len(text)
    idx = row - 1
    return min(starts[idx] + max(column, 1) - 1, _line_end(text, starts, idx)) if column > 1 else starts[idx]


def _newline_of(text: str) -> str:
    m = _NEWLINE.search(text)
    return m.group(0) if m else "\n"


# -- choosing and applying fixes -----------------------------------------------

Span = tuple[int, int, str]  # (start offset, end offset, replacement)


def _spans(text: str, starts: list[int], fix: Fix, newline: str) -> list[Span] | None:
    spans = []
    for e in fix.edits:
        s = _offset(text, starts, e.location.row, e.location.column)
        t = _offset(text, starts, e.end_location.row, e.end_location.column)
        if t < s:
            return None
        content = e.content
        if newline != "\n" and ("\n" in content or "\r" in content):
            content = _NEWLINE.sub(newline, content)
        spans.append((s, t, content))
    spans.sort(key=lambda sp: (sp[0], sp[1]))
    for (_, t1, _), (s2, _, _) in zip(spans, spans[1:]):
        if s2 < t1:
            return None  # a fix whose own edits overlap is a rule bug
    return spans


def _collides(span: Span, taken: list[Span]) -> bool:
    # Touching counts as a collision (as in ruff): two edits at the same point
    # would be applied in an order nobody chose.
    s, t, _ = span
    return any(s <= t2 and s2 <= t for s2, t2, _ in taken)


def _apply(text: str, spans: list[Span]) -> str:
    out = []
    pos = 0
    for s, t, content in sorted(spans, key=lambda sp: (sp[0], sp[1])):
        out.append(text[pos:s])
        out.append(content)
        pos = t
    out.append(text[pos:])
    return "".join(out)


def _compile_error(text: str, filename: str) -> str | None:
    try:
        compile(text, filename, "exec", dont_inherit=True)
    except SyntaxError as exc:
        return f"line {exc.lineno}: {exc.msg}"
    except (ValueError, RecursionError, MemoryError, OverflowError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _parse_error(text: str, filename: str, use_compile: bool = True) -> str | None:
    """Why ``text`` is not valid Python, or None (libcst first, then CPython as a guard).

    ``use_compile=False`` when the original text already fails CPython's check
    (syntax newer than this interpreter, ``return`` outside a function...): then
    libcst's parse is the only test a fix can be held to.
    """
    try:
        cst.parse_module(text)
    except cst.ParserSyntaxError as exc:
        return f"line {exc.raw_line}: {' '.join(str(exc.message).split())}"
    except Exception as exc:  # RecursionError and friends
        return f"{type(exc).__name__}: {exc}"
    return _compile_error(text, filename) if use_compile else None


def _fix_key(d: Diagnostic, text: str, spans: list[Span]) -> tuple:
    """Identifies a fix independently of where it sits, to remember ones that failed."""
    return (d.code, tuple((text[s:t], c) for s, t, c in spans))


def _display(d: Diagnostic) -> str:
    return f"{d.code} fix at {d.location.row}:{d.location.column}"


def _one_round(
    text: str,
    diagnostics: Sequence[Diagnostic],
    unsafe: bool,
    filename: str,
    failed: set[tuple],
    errors: list[str],
    use_compile: bool,
) -> tuple[str, list[Diagnostic]]:
    """Apply every compatible fix once; returns the new text and the diagnostics fixed."""
    starts = _line_starts(text)
    newline = _newline_of(text)
    candidates = []
    for d in diagnostics:
        fix = d.fix
        if fix is None or not fix.edits:
            continue
        if fix.applicability != "safe" and not (unsafe and fix.applicability == "unsafe"):
            continue
        spans = _spans(text, starts, fix, newline)
        if spans is None:
            errors.append(
                f"{_display(d)} skipped: its edits overlap each other (a bug in the rule; please report it)"
            )
            continue
        key = _fix_key(d, text, spans)
        if key in failed:
            continue
        candidates.append((spans[0][0], spans[-1][1], d.code, spans, d, key))
    if not candidates:
        return text, []
    candidates.sort(key=lambda c: c[:3])

    chosen: list[tuple[list[Span], Diagnostic, tuple]] = []
    taken: list[Span] = []
    seen_edits: dict[tuple, int] = {}
    duplicates: list[tuple[int, Diagnostic]] = []
    for *_, spans, d, key in candidates:
        ident = tuple(spans)
        if ident in seen_edits:
            # The same edits proposed twice (two diagnostics, one cure): apply once, count both.
            duplicates.append((seen_edits[ident], d))
            continue
        if any(_collides(sp, taken) for sp in spans):
            continue
        seen_edits[ident] = len(chosen)
        chosen.append((spans, d, key))
        taken.extend(spans)

    new = _apply(text, [sp for spans, _, _ in chosen for sp in spans])
    if _parse_error(new, filename, use_compile) is None:
        ok = list(range(len(chosen)))
    else:
        # Some fix (or an interaction of fixes) breaks the code: add them one at a
        # time, keeping each that leaves the text parseable.
        ok = []
        for i, (spans, d, key) in enumerate(chosen):
            trial = _apply(text, [sp for j in ok + [i] for sp in chosen[j][0]])
            why = _parse_error(trial, filename, use_compile)
            if why is None:
                ok.append(i)
            else:
                failed.add(key)
                errors.append(
                    f"{_display(d)} dropped: it would make the code invalid ({why}); "
                    "the file was left as it was for this fix. Please report this."
                )
        new = _apply(text, [sp for j in ok for sp in chosen[j][0]])
    kept = set(ok)
    applied = [chosen[i][1] for i in ok] + [d for i, d in duplicates if i in kept]
    return new, applied


def _rules_for(diagnostics: Sequence[Diagnostic]) -> list[type[Rule]]:
    from gradlint.static.selection import rules_by_code

    registry = rules_by_code()
    return [registry[c] for c in sorted({d.code for d in diagnostics}) if c in registry]


def _fix_loop(
    text: str,
    diagnostics: Sequence[Diagnostic],
    *,
    unsafe: bool,
    filename: str,
    rules: Sequence[type[Rule]] | None,
    encode,
) -> tuple[str, list[Diagnostic], list[Diagnostic], list[str]]:
    """(final text, applied, remaining, errors)."""
    if rules is None:
        rules = _rules_for(diagnostics)
    relint_codes = {r.code for r in rules}
    # Diagnostics of codes we cannot re-lint keep their original positions.
    stale = [d for d in diagnostics if d.code not in relint_codes]
    errors: list[str] = []
    failed: set[tuple] = set()
    applied: list[Diagnostic] = []
    seen = {text}
    current = list(diagnostics)
    use_compile: bool | None = None
    for round_no in range(MAX_ROUNDS):
        if use_compile is None and any(d.fix is not None for d in current):
            use_compile = _compile_error(text, filename) is None
        new, fixed = _one_round(text, current, unsafe, filename, failed, errors, bool(use_compile))
        if not fixed:
            break
        applied.extend(fixed)
        if new in seen:
            errors.append(
                f"fixes did not converge (round {round_no + 1} brought back an earlier text); "
                "stopped. Please report this."
            )
            text = new
            break
        seen.add(new)
        text = new
        if not rules:
            fixed_ids = {id(d) for d in fixed}
            current = [d for d in current if id(d) not in fixed_ids]
            continue
        data = encode(text)
        if data is None:
            break
        current = lint_source(filename, data, rules)
    else:
        errors.append(f"fixes still applied after {MAX_ROUNDS} rounds; stopped. Please report this.")
    if not applied:
        return text, [], list(diagnostics), errors
    if rules:
        fixed_ids = {id(d) for d in applied}
        remaining = [d for d in current if id(d) not in fixed_ids] + [
            d for d in stale if id(d) not in fixed_ids
        ]
    else:
        fixed_ids = {id(d) for d in applied}
        remaining = [d for d in diagnostics if id(d) not in fixed_ids]
    remaining.sort(key=lambda d: d.sort_key)
    return text, applied, remaining, errors


# -- encoding ---------------------------------------------------------------------


def _encoding_of(data: bytes) -> str:
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError:
        encoding = "utf-8"
    return encoding


def _encoding_of_text(text: str) -> str:
    """The encoding a text's PEP 263 cookie declares (the cookie is ASCII), else UTF-8."""
    head = "".join(text.splitlines(keepends=True)[:2])
    return _encoding_of(head.encode("utf-8", errors="replace"))


def _encoder(encoding: str, errors: list[str], filename: str):
    def encode(text: str) -> bytes | None:
        try:
            return text.encode(encoding)
        except UnicodeEncodeError as exc:
            errors.append(f"fixed text cannot be encoded as {encoding} ({exc.reason}); file left unchanged")
            return None

    return encode


# -- public API -------------------------------------------------------------------


def fix_text(
    text: str,
    diagnostics: Sequence[Diagnostic],
    *,
    unsafe: bool,
    filename: str = "-",
    rules: Sequence[type[Rule]] | None = None,
) -> tuple[str, list[Diagnostic], list[str]]:
    """Fix a text that is not a file (stdin): ``(new_text, applied, errors)``.

    ``new_text`` is ``text`` itself when nothing applied, so it can always be
    printed.  ``rules`` are the rules to re-lint with between rounds (default:
    the registered rules of the codes in ``diagnostics``).
    """
    errors: list[str] = []
    new, applied, _, loop_errors = _fix_loop(
        text,
        diagnostics,
        unsafe=unsafe,
        filename=filename,
        rules=rules,
        encode=_encoder(_encoding_of_text(text), errors, filename),
    )
    return new, applied, errors + loop_errors


def fix_file(
    path: Path,
    diagnostics: Sequence[Diagnostic],
    *,
    unsafe: bool,
    write: bool = True,
    rules: Sequence[type[Rule]] | None = None,
) -> FixResult:
    """Fix one file in place (or, with ``write=False``, only compute the result for ``--diff``).

    ``rules``: what to re-lint with between rounds; pass the file's effective
    rules.  By default, the registered rules of the codes in ``diagnostics``.
    Nothing raises for an I/O problem: it is reported in ``errors``, whose
    messages do not repeat the path (the caller prefixes it).
    """
    path = Path(path)
    filename = str(path)
    if filename.endswith(notebook.NOTEBOOK_SUFFIX):
        return _fix_notebook(path, diagnostics, unsafe=unsafe, write=write, rules=rules)
    result = FixResult(remaining=list(diagnostics))
    if not any(d.fix is not None for d in diagnostics):
        # Nothing could apply: do not even read the file.
        try:
            result.old_text = _read_text(path)[0] or ""
        except OSError:
            pass
        return result
    try:
        text, encoding = _read_text(path)
    except OSError as exc:
        result.errors.append(f"cannot read file: {exc.strerror or exc}")
        return result
    if text is None:
        result.errors.append("cannot decode file; not fixed")
        return result
    result.old_text = text

    errors: list[str] = []
    new, applied, remaining, loop_errors = _fix_loop(
        text,
        diagnostics,
        unsafe=unsafe,
        filename=filename,
        rules=rules,
        encode=_encoder(encoding, errors, filename),
    )
    result.errors = errors + loop_errors
    if new == text or not applied:
        return result
    data = _encoder(encoding, result.errors, filename)(new)
    if data is None:
        return result
    if write:
        err = _atomic_write(path, data)
        if err is not None:
            result.errors.append(err)
            return result
    result.new_text = new
    result.applied = applied
    result.remaining = remaining
    return result


def _fix_notebook(path: Path, diagnostics, *, unsafe: bool, write: bool, rules) -> FixResult:
    """fix_file for a .ipynb: the fixes go into the cells (see gradlint.static.notebook)."""
    result = FixResult(remaining=list(diagnostics))
    if not any(d.fix is not None for d in diagnostics):
        return result  # never read, never written
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        result.errors.append(f"cannot read file: {exc.strerror or exc}")
        return result
    nf = notebook_fix.fix_notebook_data(data, str(path), diagnostics, unsafe=unsafe, rules=rules)
    result.old_text, result.errors = nf.old_text, nf.errors
    if nf.new_text is None:
        return result
    if write:
        bom = b"\xef\xbb\xbf" if data.startswith(b"\xef\xbb\xbf") else b""
        err = _atomic_write(path, bom + nf.new_text.encode("utf-8"))
        if err is not None:
            result.errors.append(err)
            return result
    result.new_text, result.applied, result.remaining = nf.new_text, nf.applied, nf.remaining
    return result


def _read_text(path: Path) -> tuple[str | None, str]:
    with open(path, "rb") as fh:
        data = fh.read()
    encoding = _encoding_of(data)
    text, err = decode_source(data, str(path))
    if err is not None:
        return None, encoding
    if encoding == "utf-8" and data.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    return text, encoding


def _write_bytes(fd: int, data: bytes) -> None:
    """Indirection so tests can simulate a failure in the middle of a write."""
    with os.fdopen(fd, "wb", closefd=False) as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _atomic_write(path: Path, data: bytes) -> str | None:
    """Replace ``path``'s content atomically; an error message, or None on success."""
    target = Path(os.path.realpath(path))
    try:
        st = os.stat(target)
    except OSError as exc:
        return f"cannot write fixes: {exc.strerror or exc}"
    mode = stat.S_IMODE(st.st_mode)
    # os.replace would happily swap a read-only file for a writable one (only the
    # directory's permissions matter), and root passes os.access: check the bits too.
    if not (mode & 0o222) or not os.access(target, os.W_OK):
        return "cannot write fixes: the file is read-only (fixes not applied)"
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".gradlint-fix", dir=target.parent)
    except OSError as exc:
        return f"cannot write fixes: cannot create a temporary file in {target.parent}: {exc.strerror or exc}"
    try:
        try:
            _write_bytes(fd, data)
            os.chmod(tmp, mode)
            if hasattr(os, "chown"):
                try:
                    os.chown(tmp, st.st_uid, st.st_gid)
                except OSError:
                    pass  # not ours to give away; the mode is what matters
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        return f"cannot write fixes: {reason} (the file was left unchanged)"
    return None


def _split_keepends(text: str) -> list[str]:
    starts = _line_starts(text)
    lines = [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])]
    return [ln for ln in lines if ln]


def unified_diff(path, old_text: str, new_text: str) -> str:
    """``--diff`` output for one file (empty when nothing changed)."""
    if old_text == new_text:
        return ""
    name = str(path)
    if name.endswith(notebook.NOTEBOOK_SUFFIX):
        return notebook_fix.unified_diff(name, old_text, new_text)
    lines = difflib.unified_diff(
        _split_keepends(old_text),
        _split_keepends(new_text),
        fromfile=name,
        tofile=name,
    )
    out = []
    for line in lines:
        if not line.endswith(("\n", "\r")):
            line += "\n\\ No newline at end of file\n"
        out.append(line)
    return "".join(out)
