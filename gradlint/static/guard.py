"""What must be decided about a file's text before any parser sees it.

Two things, found in one pass of a regular-expression scanner:

* **Nesting depth.** libcst's native parser overflows its stack (a segfault that
  takes the whole run down) or runs for minutes on very deep trees: a long
  ``a + b + ...`` sum, an ``a.b.c...`` chain, a ``not not ...`` run, an
  ``elif`` ladder. CPython >= 3.11 refuses such code itself (``RecursionError``
  during AST construction, around depth 3,000; 3.13 only past 6,000 to 10,000),
  but CPython 3.10 has no such check and segfaults in ``compile()`` from about
  150,000 levels. So gradlint measures the depth itself, the same way on every
  Python: the scan gives an upper bound; a bound over ``MAX_DEPTH`` is checked
  exactly on CPython's tree (when the bound proves that ``compile()`` is safe) or
  refused outright.

* **Large literal data.** A 9 MiB list of numbers costs CPython's ``compile()``
  ~90x and libcst ~700x its size in memory. No rule looks inside a literal, so
  every display (list, dict, set or tuple brackets) holding only literals and
  larger than ``BLANK_MIN`` is emptied before parsing (``[ ... ]`` becomes
  ``[]``) and checked piecewise for syntax errors instead; positions found on the
  shorter text are mapped back (``Blanked.position``).
"""

from __future__ import annotations

import ast
import bisect
import keyword
import re
from dataclasses import dataclass, field

# Deeper than this, code is generated, and libcst plus the rules' recursive
# traversal would hit the recursion limit anyway (measured: a 1,000-term sum).
MAX_DEPTH = 1000
# CPython 3.10's compile() recurses in C without a limit: it was measured to
# survive 100,000 levels and to segfault at 250,000. Below this bound it is safe.
_COMPILE_SAFE = 50_000
# A file this large is scanned before CPython compiles it, whether or not a rule
# could match: its literals would cost compile() ~90x their size.
SCAN_FIRST_BYTES = 1024 * 1024
# Literal displays at least this large are blanked; each piece checked on its own
# is about this large (CPython's tree of a piece costs ~90x the piece).
BLANK_MIN = 16 * 1024
_PIECE = 64 * 1024

_NUM = r"(?:0[xXoObB][0-9a-fA-F_]+|(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][-+]?\d[\d_]*)?[jJ]?)"
_BODY = r"""(?:'''(?:[^'\\]|\\.|'(?!''))*'''|\"\"\"(?:[^"\\]|\\.|"(?!""))*\"\"\"|'(?:[^'\\\r\n]|\\.)*'|"(?:[^"\\\r\n]|\\.)*")"""
_STR = rf"(?:[rRbBuU]{{0,2}}{_BODY})"
_SEP = r"(?:[,:][ \t\f]*[-+]?)"  # a sign right after a comma or colon is unary, part of the literal
_LIT_ITEM = rf"(?:{_STR}|{_NUM}|{_SEP}|\b(?:True|False|None)\b)"
_TOKEN = re.compile(
    rf"""
    (?P<lit>{_LIT_ITEM}(?:[ \t\f]+|{_LIT_ITEM})*)
  | (?P<fstr>(?:[fF][rRbB]?|[rRbB][fF]){_BODY})
  | (?P<nl>\r\n|\r|\n)
  | (?P<cont>\\\r?\n)
  | (?P<comment>\#[^\r\n]*)
  | (?P<open>[(\[{{][ \t\f]*[-+]?)
  | (?P<close>[)\]}}])
  | (?P<name>[^\W\d]\w*)
  | (?P<assign>(?:\*\*|//|<<|>>|[-+*/%@&|^:])?=(?!=)|->|;|\.\.\.)
  | (?P<op>\*\*|//|<<|>>|<=|>=|==|!=|[-+*/%@&|^~<>.])
    """,
    re.VERBOSE | re.DOTALL,
)
# Keywords that add a level to the tree (``not``, ``lambda``, a conditional expression...).
_DEEPENING = frozenset({"not", "and", "or", "if", "else", "lambda", "await", "in", "is", "yield"})


class _Frame:
    __slots__ = ("start", "display", "ops", "child", "best", "pure", "comma_end", "cuts")

    def __init__(self, start: int, display: bool):
        self.start = start  # offset of the first character inside the brackets
        self.display = display  # a list/dict/set/tuple display, not a call or subscript
        self.ops = 0  # operators and bracket groups in the current item at this level
        self.child = 0  # deepest group in the current item
        self.best = 0  # deepest item so far
        self.pure = True  # only literals so far
        self.comma_end = False  # the last literal run ended with a comma
        self.cuts: list[int] = []  # line ends between items, where the content may be split

    def end_item(self) -> int:
        self.best = max(self.best, self.ops + self.child)
        self.ops = self.child = 0
        return self.best


@dataclass
class Scan:
    depth: int = 0  # an upper bound of the tree depth of any statement
    deep_at: int = 0  # offset of the logical line where ``depth`` was found
    elifs: int = 0
    elif_at: int = 0  # offset of the elif that went past MAX_DEPTH
    # (content start, content end, split points) of the literal displays to blank
    literals: list[tuple[int, int, list[int]]] = field(default_factory=list)


def scan(text: str) -> Scan:
    out = Scan()
    stack = [_Frame(0, False)]
    line_start = 0
    prev = "sep"  # what came before a bracket: "atom" makes it a call or subscript
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        f = stack[-1]
        if line_start < 0 and kind not in ("nl", "comment", "cont"):
            line_start = m.start()  # the statement's first token
        if kind == "lit":
            s = m.group()
            if "," in s:
                f.end_item()
            tail = s.rstrip(" \t\f")
            f.comma_end = tail.endswith(",")
            prev = "sep" if tail[-1] in ",:+-" else "atom"
        elif kind == "nl":
            if len(stack) == 1:
                if f.end_item() > out.depth:
                    out.depth, out.deep_at = f.best, line_start
                f.best = 0
                line_start = -1
                prev = "sep"
            elif f.pure and f.comma_end and m.end() - (f.cuts[-1] if f.cuts else f.start) >= _PIECE:
                f.cuts.append(m.end())
        elif kind == "open":
            display = prev != "atom"
            f.ops += 1
            if not display:
                f.pure = False
            stack.append(_Frame(m.start() + 1, display))
            prev = "sep"
        elif kind == "close":
            if len(stack) == 1:
                continue  # unbalanced: CPython will say so
            child = stack.pop()
            parent = stack[-1]
            parent.child = max(parent.child, child.end_item() + 1)
            if not child.pure:
                parent.pure = False
            elif child.display and m.start() - child.start >= BLANK_MIN:
                while out.literals and out.literals[-1][0] >= child.start:
                    out.literals.pop()  # an inner display: this one covers it
                out.literals.append((child.start, m.start(), child.cuts))
            parent.comma_end = False
            prev = "atom"
        elif kind == "name":
            f.pure = False
            word = m.group()
            if word in _DEEPENING:
                f.ops += 1
            elif word == "elif":
                out.elifs += 1
                if out.elifs == MAX_DEPTH + 1:
                    out.elif_at = m.start()
            prev = "sep" if keyword.iskeyword(word) else "atom"
        elif kind == "fstr":
            f.pure = False
            prev = "atom"
        elif kind in ("op", "assign"):
            f.pure = False
            if kind == "op":
                f.ops += 1
            elif m.group() == ";" and len(stack) == 1:
                f.end_item()
            prev = "sep"
        # comments and line continuations change nothing
    while len(stack) > 1:  # unclosed brackets (a syntax error): count what is there
        child = stack.pop()
        stack[-1].child = max(stack[-1].child, child.end_item() + 1)
    if stack[0].end_item() > out.depth:
        out.depth, out.deep_at = stack[0].best, max(line_start, 0)
    return out


def row_col(text: str, offset: int) -> tuple[int, int]:
    nl = "\r" if "\n" not in text and "\r" in text else "\n"  # CR-only files (classic Mac) too
    row = text.count(nl, 0, offset) + 1
    return row, offset - (text.rfind(nl, 0, offset) + 1) + 1


def too_deep(text: str, found: Scan) -> tuple[int, int] | None:
    """Where the code nests deeper than MAX_DEPTH, or None (it does not)."""
    bound = max(found.depth, found.elifs)
    if bound <= MAX_DEPTH:
        return None
    where = row_col(text, found.deep_at if found.depth >= found.elifs else found.elif_at)
    if bound >= _COMPILE_SAFE:
        return where
    try:
        tree = compile(text, "<guard>", "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    except (RecursionError, MemoryError):
        return where  # CPython >= 3.11 refuses it too
    except (SyntaxError, ValueError, OverflowError):
        return None  # not a depth problem: the caller's parse reports it
    return where if _ast_depth(tree) > MAX_DEPTH else None


def _ast_depth(tree: ast.AST) -> int:
    deepest = 0
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


@dataclass
class Blanked:
    """``text`` with its large literal displays emptied, and the way back to the original positions."""

    text: str
    # per blanked display: (row, column) just inside its brackets in ``text`` and in the original
    anchors: list[tuple[tuple[int, int], tuple[int, int]]]

    def position(self, row: int, column: int) -> tuple[int, int]:
        """The original position of ``(row, column)`` of ``self.text`` (outside the blanked displays)."""
        i = bisect.bisect_right(self.anchors, ((row, column), (1 << 62, 0))) - 1
        if i < 0:
            return row, column
        (new_row, new_col), (old_row, old_col) = self.anchors[i]
        if row == new_row:
            return old_row, old_col + column - new_col
        return row + old_row - new_row, column

    def touches(self, start: tuple[int, int], end: tuple[int, int]) -> bool:
        """Whether the range ``start``..``end`` of ``self.text`` contains a blanked display."""
        return any(start <= new <= end for new, _ in self.anchors)


def blank(
    text: str, literals: list[tuple[int, int, list[int]]]
) -> tuple[Blanked, tuple[int, int, str] | None]:
    """Empty ``literals``; also the first syntax error found inside one, as (row, column, message)."""
    parts = []
    anchors = []
    pos = 0
    removed_rows = 0
    for start, end, cuts in literals:
        error = _check_pieces(text, start, end, cuts)
        if error is not None:
            return Blanked(text, []), error
        parts.append(text[pos:start])
        # The closing bracket moves to just inside the opening one, itself maybe moved by an earlier display.
        row, col = row_col(text, start)
        if anchors and anchors[-1][1][0] == row:
            (new_row, new_col), (_, old_col) = anchors[-1]
            anchors.append(((new_row, new_col + col - old_col), row_col(text, end)))
        else:
            anchors.append(((row - removed_rows, col), row_col(text, end)))
        removed_rows += row_col(text, end)[0] - row

        pos = end
    parts.append(text[pos:])
    return Blanked("".join(parts), anchors), None


_CLOSER = {"[": "]", "(": ")", "{": "}"}
# The common shapes of data, recognised without building a tree: items that are
# literals, or bracketed flat sequences of literals, comma-separated, with keys in a
# dict. Stricter than the scanner (no invalid number like 007, no bytes glued to
# text); anything else, and anything with a backslash (escapes can be invalid),
# goes to compile().
_DIG = r"\d(?:_?\d)*"
_EXACT_NUM = (
    rf"(?:0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+"
    rf"|(?:{_DIG}\.(?:{_DIG})?|\.{_DIG})(?:[eE][-+]?{_DIG})?[jJ]?|{_DIG}[eE][-+]?{_DIG}[jJ]?|{_DIG}[jJ]"
    rf"|0(?:_?0)*|[1-9](?:_?\d)*)"
)
_WS = r"(?:[ \t\f\r\n]|\#[^\r\n]*)*"
_TEXT = rf"(?:[rRuU]?{_BODY})"
_BYTES = rf"(?:(?:[bB][rR]?|[rR][bB]){_BODY})"
_ATOM = rf"(?:[-+]?{_EXACT_NUM}|{_TEXT}(?:{_WS}{_TEXT})*|{_BYTES}(?:{_WS}{_BYTES})*|True|False|None)"
_FLAT = rf"{_WS}(?:{_ATOM}{_WS},{_WS})*(?:{_ATOM}{_WS})?"
_VALUE = rf"(?:{_ATOM}|\({_FLAT}\)|\[{_FLAT}\])"
_SEQUENCE = re.compile(rf"{_WS}(?:{_VALUE}{_WS},{_WS})*(?:{_VALUE}{_WS})?", re.DOTALL)
_MAPPING = re.compile(
    rf"{_WS}(?:{_ATOM}{_WS}:{_WS}{_VALUE}{_WS},{_WS})*(?:{_ATOM}{_WS}:{_WS}{_VALUE}{_WS})?", re.DOTALL
)


def _plainly_valid(opener: str, text: str, a: int, b: int) -> bool:
    if text.find("\\", a, b) >= 0:
        return False
    if _SEQUENCE.fullmatch(text, a, b):
        return True
    return opener == "{" and _MAPPING.fullmatch(text, a, b) is not None


def _check_pieces(text: str, start: int, end: int, cuts: list[int]) -> tuple[int, int, str] | None:
    """A syntax error inside the display, checked piece by piece (each piece ends between items)."""
    opener = text[start - 1]
    bounds = [start, *cuts, end]
    for a, b in zip(bounds, bounds[1:]):
        if _plainly_valid(opener, text, a, b):
            continue
        try:
            compile(
                opener + text[a:b] + _CLOSER[opener],
                "<literal>",
                "eval",
                ast.PyCF_ONLY_AST,
                dont_inherit=True,
            )
        except SyntaxError as exc:
            row0, col0 = row_col(text, a)
            row = row0 + (exc.lineno or 1) - 1
            col = (exc.offset or 1) + (col0 - 2 if (exc.lineno or 1) == 1 else 0)
            return row, max(col, 1), str(exc.msg or "invalid syntax")
        except (ValueError, RecursionError, MemoryError, OverflowError):
            continue  # not a syntax error; the literal is still data
    return None
