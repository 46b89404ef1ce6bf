"""The fixer with toy rules: safe/unsafe, overlaps, rounds, encodings, newlines, atomic writes."""

from __future__ import annotations

import codecs
import os
import stat
from pathlib import Path

import libcst as cst

from gradlint.static import fixer
from gradlint.static.diagnostic import Diagnostic, Edit, Fix, Location
from gradlint.static.engine import lint_source
from gradlint.static.fixer import FixResult, fix_file, fix_text, unified_diff
from gradlint.static.rule import InsertAfter, Replace, Rule


class RenameOld(Rule):
    """## What it does
    Test rule: `old_api` -> `new_api` (safe).
    """

    code = "GL951"
    name = "test-rename-old"
    message = "use new_api"
    fix_applicability = "safe"
    prefilter = ("old_api",)

    def visit_Name(self, node):
        if node.value == "old_api":
            self.report(node, fix=Replace(node, cst.Name("new_api")))


class RiskyCall(Rule):
    """## What it does
    Test rule: `risky(x)` -> `careful(x)` (unsafe).
    """

    code = "GL952"
    name = "test-risky"
    message = "risky call"
    fix_applicability = "unsafe"
    prefilter = ("risky",)

    def visit_Call(self, node):
        if isinstance(node.func, cst.Name) and node.func.value == "risky":
            self.report(node, fix=Replace(node.func, cst.Name("careful")))


class BreaksCode(Rule):
    """## What it does
    Test rule whose fix is a syntax error.
    """

    code = "GL953"
    name = "test-breaks"
    message = "broken"
    fix_applicability = "safe"
    prefilter = ("broken",)

    def visit_Call(self, node):
        if isinstance(node.func, cst.Name) and node.func.value == "broken":
            self.report(node, fix=Replace(node, "broken("))


class OuterWrap(Rule):
    """## What it does
    Test rule: `outer(X)` -> `outer2(X)` by replacing the whole call (overlaps GL951 inside).
    """

    code = "GL954"
    name = "test-outer"
    message = "outer"
    fix_applicability = "safe"
    prefilter = ("outer(",)

    def visit_Call(self, node):
        if isinstance(node.func, cst.Name) and node.func.value == "outer":
            self.report(node, fix=Replace(node, node.with_changes(func=cst.Name("outer2"))))


class MarkAfterSetup(Rule):
    """## What it does
    Test rule: a `setup()` statement must be followed by `marker()` (inserts two lines).
    """

    code = "GL955"
    name = "test-marker"
    message = "add marker"
    fix_applicability = "safe"
    prefilter = ("setup()",)

    def visit_SimpleStatementLine(self, node):
        first = node.body[0]
        is_setup = isinstance(first, cst.Expr) and self.context.code_for(first.value) == "setup()"
        if is_setup and "marker()" not in self.context.source:
            self.report(node, fix=InsertAfter(node, "marker()\nmore()"))


class DropDebug(Rule):
    """## What it does
    Test rule: delete `debug()` statements.
    """

    code = "GL956"
    name = "test-drop-debug"
    message = "drop debug"
    fix_applicability = "safe"
    prefilter = ("debug()",)

    def visit_SimpleStatementLine(self, node):
        if self.context.code_for(node).strip() == "debug()":
            self.report(node, fix=Replace(node, None))


class WrapInIf(Rule):
    """## What it does
    Test rule: wraps a `for` loop over `items` in `if items:`, rebuilding it from the old node.
    """

    code = "GL958"
    name = "test-wrap-if"
    message = "guard the loop"
    fix_applicability = "safe"
    prefilter = ("items",)

    def visit_For(self, node):
        if isinstance(node.iter, cst.Name) and node.iter.value == "items":
            guarded = cst.If(
                test=cst.Name("items"),
                body=cst.IndentedBlock(body=[node.with_changes(iter=cst.Name("itemz"), leading_lines=[])]),
                leading_lines=node.leading_lines,
            )
            self.report(node, fix=Replace(node, guarded))


class NoFix(Rule):
    """## What it does
    Test rule without a fix.
    """

    code = "GL957"
    name = "test-nofix"
    message = "no fix here"
    prefilter = ("nofix",)

    def visit_Name(self, node):
        if node.value == "nofix":
            self.report(node)


TOY = [RenameOld, RiskyCall, BreaksCode, OuterWrap, MarkAfterSetup, DropDebug, WrapInIf, NoFix]


def lint_text(text: str, rules=TOY, filename="t.py"):
    # Encoded as its coding cookie says, as the bytes on disk or on stdin would be.
    return lint_source(filename, text.encode(fixer._encoding_of_text(text)), rules)


def fix(text: str, unsafe=False, rules=TOY):
    return fix_text(text, lint_text(text, rules), unsafe=unsafe, rules=rules, filename="t.py")


def write(tmp_path: Path, text: str | bytes, name="m.py") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return p


def fix_path(p: Path, unsafe=False, write=True, rules=TOY) -> FixResult:
    return fix_file(p, lint_source(str(p), p.read_bytes(), rules), unsafe=unsafe, write=write, rules=rules)


# -- applicability ------------------------------------------------------------------


def test_safe_fix_applies_and_comments_and_formatting_survive():
    src = "x = old_api(  1,2 )  # keep me\n# and me\nold_api . attr\n"
    new, applied, errors = fix(src)
    assert new == "x = new_api(  1,2 )  # keep me\n# and me\nnew_api . attr\n"
    assert [d.code for d in applied] == ["GL951", "GL951"] and errors == []


def test_unsafe_fix_needs_unsafe_flag():
    src = "risky(1)\nold_api\n"
    new, applied, _ = fix(src)
    assert new == "risky(1)\nnew_api\n" and [d.code for d in applied] == ["GL951"]
    new, applied, _ = fix(src, unsafe=True)
    assert new == "careful(1)\nnew_api\n" and sorted(d.code for d in applied) == ["GL951", "GL952"]


def test_nothing_to_fix_returns_the_text_itself():
    src = "nofix = 1\nrisky(2)\n"
    new, applied, errors = fix(src)
    assert new == src and applied == [] and errors == []


def test_remaining_is_relinted_after_fixing(tmp_path):
    p = write(tmp_path, "old_api\nnofix\nrisky(x)\n")
    res = fix_path(p)
    assert res.new_text == "new_api\nnofix\nrisky(x)\n"
    assert [(d.code, d.location.row) for d in res.remaining] == [("GL957", 2), ("GL952", 3)]
    assert [d.code for d in res.applied] == ["GL951"]


# -- overlapping fixes and rounds --------------------------------------------------------


def test_overlapping_edits_first_wins_then_relint_converges():
    src = "y = outer(old_api)\n"
    new, applied, errors = fix(src)
    # Round 1: the outer call starts first and wins; GL951 inside waits.
    # Round 2: the re-lint finds old_api again and fixes it.
    assert new == "y = outer2(new_api)\n"
    assert [d.code for d in applied] == ["GL954", "GL951"] and errors == []


def test_overlapping_without_relint_leaves_the_loser_in_remaining(tmp_path):
    p = write(tmp_path, "y = outer(old_api)\n")
    diags = lint_source(str(p), p.read_bytes(), TOY)
    res = fix_file(p, diags, unsafe=False, rules=[])  # no rules to re-lint with
    assert p.read_text() == "y = outer2(old_api)\n"
    assert [d.code for d in res.applied] == ["GL954"]
    assert [d.code for d in res.remaining] == ["GL951"]


def test_identical_fixes_from_two_diagnostics_apply_once():
    edit = Edit("b", Location(1, 1), Location(1, 2))
    f = Fix("x", "safe", (edit,))
    d1 = Diagnostic("t.py", "GL951", "m", Location(1, 1), Location(1, 2), fix=f)
    d2 = Diagnostic("t.py", "GL958", "m", Location(1, 1), Location(1, 2), fix=f)
    new, applied, errors = fix_text("a = 1\n", [d1, d2], unsafe=False, rules=[])
    assert new == "b = 1\n" and len(applied) == 2 and errors == []


def test_a_fix_whose_edits_overlap_each_other_is_refused():
    f = Fix(
        "x", "safe", (Edit("p", Location(1, 1), Location(1, 4)), Edit("q", Location(1, 2), Location(1, 5)))
    )
    d = Diagnostic("t.py", "GL959", "m", Location(1, 1), Location(1, 2), fix=f)
    new, applied, errors = fix_text("abcdef\n", [d], unsafe=False, rules=[])
    assert new == "abcdef\n" and applied == [] and "overlap" in errors[0]


def test_oscillating_fixes_stop_and_report():
    class Flip(Rule):
        """## What it does
        Flips a <-> b forever.
        """

        code = "GL960"
        name = "test-flip"
        message = "flip"
        fix_applicability = "safe"

        def visit_Name(self, node):
            if node.value in ("a", "b"):
                self.report(node, fix=Replace(node, cst.Name("b" if node.value == "a" else "a")))

    new, applied, errors = fix("a\n", rules=[Flip])
    assert new in ("a\n", "b\n")
    assert any("converge" in e for e in errors)


def test_rule_that_always_has_a_fresh_fix_stops_after_max_rounds():
    class Grow(Rule):
        """## What it does
        Appends forever.
        """

        code = "GL961"
        name = "test-grow"
        message = "grow"
        fix_applicability = "safe"

        def visit_Name(self, node):
            if node.value.startswith("x"):
                self.report(node, fix=Replace(node, cst.Name(node.value + "x")))

    new, applied, errors = fix("x\n", rules=[Grow])
    assert new == "x" * (fixer.MAX_ROUNDS + 1) + "\n"
    assert len(applied) == fixer.MAX_ROUNDS and any("rounds" in e for e in errors)


# -- fixes that would break the code ----------------------------------------------------


def test_fix_producing_syntax_error_is_dropped_file_untouched(tmp_path):
    p = write(tmp_path, "broken()\n")
    before = p.stat().st_mtime_ns
    res = fix_path(p)
    assert res.new_text is None and res.applied == []
    assert [d.code for d in res.remaining] == ["GL953"]
    assert len(res.errors) == 1 and res.errors[0].startswith(
        "GL953 fix at 1:1 dropped: it would make the code invalid ("
    )
    assert p.read_text() == "broken()\n" and p.stat().st_mtime_ns == before


def test_bad_fix_dropped_but_good_fixes_in_same_file_still_apply():
    new, applied, errors = fix("broken()\nold_api\n")
    assert new == "broken()\nnew_api\n"
    assert [d.code for d in applied] == ["GL951"]
    assert len(errors) == 1 and "GL953" in errors[0]  # reported once, not once per round


def test_fix_that_only_cpython_rejects_is_dropped():
    # A module-level `nonlocal`: libcst's grammar accepts it, CPython's compiler does not.
    d = Diagnostic(
        "t.py",
        "GL962",
        "m",
        Location(1, 1),
        Location(1, 2),
        fix=Fix("x", "safe", (Edit("nonlocal q\n", Location(1, 1), Location(1, 1)),)),
    )
    new, applied, errors = fix_text("x = 1\n", [d], unsafe=False, rules=[])
    assert cst.parse_module("nonlocal q\nx = 1\n")  # libcst alone would accept it
    assert new == "x = 1\n" and applied == [] and "nonlocal" in errors[0]


def test_file_cpython_already_rejects_is_still_fixable():
    # `return` outside a function: libcst parses it, compile() does not, before and after.
    new, applied, errors = fix("return old_api\n")
    assert new == "return new_api\n" and errors == []


# -- statements inserted and deleted, newlines ---------------------------------------------


def test_insert_after_keeps_indentation():
    new, _, errors = fix("def f():\n    setup()\n    go()\n")
    assert new == "def f():\n    setup()\n    marker()\n    more()\n    go()\n" and errors == []


def test_insert_after_a_line_with_a_comment_keeps_the_comment_on_that_line():
    new, _, _ = fix("if x:\n    setup()  # set up\n    go()\n")
    assert new == "if x:\n    setup()  # set up\n    marker()\n    more()\n    go()\n"


def test_statement_replacement_keeps_leading_and_trailing_comments_once():
    src = "def f():\n    # loop over items\n    for i in items:  # header\n        use(i)  # last line\n    done()\n"
    new, _, errors = fix(src)
    assert errors == []
    assert new == (
        "def f():\n"
        "    # loop over items\n"
        "    if items:\n"
        "        for i in itemz:  # header\n"
        "            use(i)  # last line\n"
        "    done()\n"
    )


def test_delete_statement_including_last_line_without_newline():
    new, _, _ = fix("a = 1\ndebug()\nb = 2\ndebug()")
    assert new == "a = 1\nb = 2\n"


def test_crlf_file_keeps_crlf_everywhere(tmp_path):
    src = "def f():\r\n    setup()\r\n    debug()\r\n    old_api()\r\n"
    p = write(tmp_path, src)
    res = fix_path(p)
    data = p.read_bytes()
    assert data == b"def f():\r\n    setup()\r\n    marker()\r\n    more()\r\n    new_api()\r\n"
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert res.old_text == src


def test_fix_text_crlf_insert():
    new, _, _ = fix("setup()\r\nx = 1\r\n")
    assert new == "setup()\r\nmarker()\r\nmore()\r\nx = 1\r\n"


# -- encodings ----------------------------------------------------------------------------


def test_bom_is_kept(tmp_path):
    p = write(tmp_path, codecs.BOM_UTF8 + "s = 'é'\nold_api\n".encode())
    fix_path(p)
    assert p.read_bytes() == codecs.BOM_UTF8 + "s = 'é'\nnew_api\n".encode()


def test_latin1_cookie_is_kept_and_columns_count_characters(tmp_path):
    src = "# -*- coding: latin-1 -*-\ns = 'ééé'; t = old_api\n"
    p = write(tmp_path, src.encode("latin-1"))
    res = fix_path(p)
    assert p.read_bytes() == "# -*- coding: latin-1 -*-\ns = 'ééé'; t = new_api\n".encode("latin-1")
    assert res.old_text == src


def test_fix_text_with_cookie_relints_correctly():
    # Text carrying a latin-1 cookie: the re-lint must see the same characters.
    new, applied, errors = fix("# coding: latin-1\ns = 'é'; y = outer(old_api)\n")
    assert new == "# coding: latin-1\ns = 'é'; y = outer2(new_api)\n" and errors == []


def test_fix_that_cannot_be_encoded_is_not_written(tmp_path):
    class Euro(Rule):
        """## What it does
        Inserts a character latin-1 cannot hold.
        """

        code = "GL963"
        name = "test-euro"
        message = "euro"
        fix_applicability = "safe"

        def visit_Name(self, node):
            if node.value == "money":
                self.report(node, fix=Replace(node, "'€'"))

    p = write(tmp_path, "# coding: latin-1\nmoney\n".encode("latin-1"))
    before = p.read_bytes()
    res = fix_path(p, rules=[Euro])
    assert p.read_bytes() == before and res.new_text is None
    assert any("encoded" in e for e in res.errors)


# -- the file on disk ---------------------------------------------------------------------


def test_no_applicable_fix_never_rewrites(tmp_path):
    p = write(tmp_path, "risky(1)\nnofix\n")
    os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    res = fix_path(p)  # only an unsafe fix and a diagnostic without one
    assert res.new_text is None and res.applied == [] and len(res.remaining) == 2
    assert p.stat().st_mtime_ns == 1_000_000_000


def test_write_false_computes_without_writing_and_diff(tmp_path):
    p = write(tmp_path, "a = 1\nold_api\n")
    res = fix_path(p, write=False)
    assert p.read_text() == "a = 1\nold_api\n"
    assert res.new_text == "a = 1\nnew_api\n"
    diff = unified_diff(p, res.old_text, res.new_text)
    assert diff.splitlines() == [f"--- {p}", f"+++ {p}", "@@ -1,2 +1,2 @@", " a = 1", "-old_api", "+new_api"]


def test_unified_diff_marks_missing_final_newline_and_is_empty_when_equal():
    d = unified_diff("f.py", "old_api", "new_api")
    assert d.endswith("-old_api\n\\ No newline at end of file\n+new_api\n\\ No newline at end of file\n")
    assert unified_diff("f.py", "x\n", "x\n") == ""


def test_permission_bits_are_kept(tmp_path):
    p = write(tmp_path, "old_api\n")
    os.chmod(p, 0o751)
    fix_path(p)
    assert p.read_text() == "new_api\n"
    assert stat.S_IMODE(p.stat().st_mode) == 0o751
    assert [x.name for x in tmp_path.iterdir()] == ["m.py"]  # no temp file left behind


def test_read_only_file_is_a_clear_error(tmp_path):
    p = write(tmp_path, "old_api\n")
    os.chmod(p, 0o444)
    try:
        res = fix_path(p)
    finally:
        os.chmod(p, 0o644)
    assert p.read_text() == "old_api\n" and res.new_text is None and res.applied == []
    assert res.errors == ["cannot write fixes: the file is read-only (fixes not applied)"]
    assert [d.code for d in res.remaining] == ["GL951"]


def test_failure_mid_write_leaves_original_intact(tmp_path, monkeypatch):
    p = write(tmp_path, "old_api\n")

    def half_then_fail(fd, data):
        os.write(fd, data[:3])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fixer, "_write_bytes", half_then_fail)
    res = fix_path(p)
    assert p.read_text() == "old_api\n"
    assert res.new_text is None and "No space left on device" in res.errors[0]
    assert [x.name for x in tmp_path.iterdir()] == ["m.py"]


def test_failure_at_replace_leaves_original_intact(tmp_path, monkeypatch):
    p = write(tmp_path, "old_api\n")

    def boom(src, dst):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(fixer.os, "replace", boom)
    res = fix_path(p)
    assert p.read_text() == "old_api\n" and "Input/output error" in res.errors[0]
    assert [x.name for x in tmp_path.iterdir()] == ["m.py"]


def test_symlink_target_is_updated_and_link_kept(tmp_path):
    real = write(tmp_path, "old_api\n", name="real.py")
    link = tmp_path / "link.py"
    link.symlink_to(real)
    fix_path(link)
    assert link.is_symlink() and real.read_text() == "new_api\n"


def test_missing_file_is_an_error_not_an_exception(tmp_path):
    p = tmp_path / "gone.py"
    d = Diagnostic(
        str(p),
        "GL951",
        "m",
        Location(1, 1),
        Location(1, 2),
        fix=Fix("x", "safe", (Edit("y", Location(1, 1), Location(1, 2)),)),
    )
    res = fix_file(p, [d], unsafe=False, rules=[])
    assert res.new_text is None and "cannot read" in res.errors[0] and res.remaining == [d]


def test_second_fix_run_changes_nothing(tmp_path):
    p = write(tmp_path, "def f():\n    setup()\n    y = outer(old_api)\n    debug()\n    risky(2)\n")
    first = fix_path(p, unsafe=True)
    assert first.new_text is not None
    mtime = p.stat().st_mtime_ns
    second = fix_path(p, unsafe=True)
    assert second.new_text is None and second.applied == [] and p.stat().st_mtime_ns == mtime


def test_default_relint_rules_come_from_the_registry(monkeypatch):
    import gradlint.rules as registry

    monkeypatch.setattr(registry, "ALL_RULES", [RenameOld, OuterWrap])
    src = "y = outer(old_api)\n"
    new, applied, _ = fix_text(src, lint_text(src), unsafe=False)
    assert new == "y = outer2(new_api)\n"


# -- property: any mix of the toy cases, either newline style ---------------------------

from hypothesis import (  # noqa: E402
    given,
    settings,
    strategies as st,  # noqa: E402
)

_STATEMENTS = [
    "x = old_api(1)  # c",
    "y = outer(old_api)",
    "risky(old_api)",
    "broken()",
    "setup()  # s",
    "debug()",
    "nofix = 1",
    "for i in items:\n    use(old_api)  # inner",
    "if a:\n    debug()\n    z = outer(outer(old_api))",
    "s = 'é ü'; t = old_api",
]


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.sampled_from(_STATEMENTS), min_size=1, max_size=6),
    st.sampled_from(["\n", "\r\n"]),
    st.booleans(),
)
def test_fixing_any_mix_parses_keeps_newlines_and_is_idempotent(stmts, newline, unsafe):
    src = (
        "def f():\n    pass\n"
        + "".join("    " + s.replace("\n", "\n    ") + "\n" for s in stmts)
        + "done()\n"
    )
    src = src.replace("\n", newline)
    once, _, errors = fix(src, unsafe=unsafe)
    assert all("GL953" in e for e in errors), errors  # only the deliberately broken fix fails
    cst.parse_module(once)
    if newline == "\r\n":
        assert "\n" not in once.replace("\r\n", "")
    twice, applied, _ = fix(once, unsafe=unsafe)
    assert twice == once and applied == []
