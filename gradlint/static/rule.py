"""The base class every rule derives from, and what a rule sees of its file.

A rule is one small class (Fixit style): ``code``, ``name``, a one-line
``message`` that says what is wrong *and* what to do, its docs as the class
docstring (``## What it does`` / ``## Why is this bad?`` / ``## Example`` /
``## Use instead``), ``VALID``/``INVALID`` snippets, and ``visit_*`` methods.
All selected rules of a file run in one batched libcst traversal.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from gradlint.static.diagnostic import Applicability, Diagnostic, Edit, Fix, Location

if TYPE_CHECKING:  # pragma: no cover
    from libcst.metadata.base_provider import ProviderT

T = TypeVar("T")


class Replace:
    """One node-for-node replacement; the engine turns it into a text edit.

    ``new`` may be ``None`` to delete ``old`` (a whole statement), or a string of
    source code to put in its place.
    """

    __slots__ = ("old", "new")

    def __init__(self, old: cst.CSTNode, new: cst.CSTNode | str | None):
        self.old = old
        self.new = new


class InsertAfter:
    """Insert ``code`` (one or more statements) on new lines after statement ``anchor``."""

    __slots__ = ("anchor", "code")

    def __init__(self, anchor: cst.CSTNode, code: str):
        self.anchor = anchor
        self.code = code


FixPart = Replace | InsertAfter


class FileContext:
    """What the rules of one file share: source, tree, lazily resolved metadata, analyses.

    Metadata is resolved on first use, for the whole module at once, and cached:
    a rule that never finds a candidate never pays for scope analysis, and
    positions are computed only for files with findings. Parents come free with
    the batched traversal (see ``parent``).
    """

    def __init__(self, filename: str, source: str, module: cst.Module):
        self.filename = filename
        self.source = source
        self.module = module
        # unsafe_skip_copy: the tree is ours alone; copying it would double the parse cost.
        self.wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
        self._metadata: dict[Any, Any] = {}
        self._analyses: dict[Any, Any] = {}
        self._parents: dict[cst.CSTNode, cst.CSTNode] = {}
        self._parents_complete = False
        self._stack: list[cst.CSTNode] = []
        self.diagnostics: list[Diagnostic] = []

    def metadata(self, provider: ProviderT) -> Any:
        try:
            return self._metadata[provider]
        except KeyError:
            value = self._metadata[provider] = self.wrapper.resolve(provider)
            return value

    def position(self, node: cst.CSTNode):
        return self.metadata(PositionProvider)[node]

    def parent(self, node: cst.CSTNode) -> cst.CSTNode | None:
        # Parents are recorded during the one batched traversal (see `_enter`),
        # so a rule asking about the node it is visiting, or anything above it,
        # pays nothing; ParentNodeProvider would walk the whole tree again.
        # Nodes not reached yet (an analysis looking ahead into a subtree) make
        # us complete the map once with the fast walker.
        parent = self._parents.get(node)
        if parent is not None or node is self.module:
            return parent
        if not self._parents_complete:
            self._complete_parents()
            return self._parents.get(node)
        return None

    def ancestors(self, node: cst.CSTNode):
        node = self.parent(node)
        while node is not None:
            yield node
            node = self.parent(node)

    def _enter(self, node: cst.CSTNode) -> None:
        stack = self._stack
        if stack:
            self._parents[node] = stack[-1]
        stack.append(node)

    def _leave(self, node: cst.CSTNode) -> None:
        self._stack.pop()

    def _complete_parents(self) -> None:
        from gradlint.static.semantics.walk import iter_children

        parents = self._parents
        todo = [self.module]
        while todo:
            current = todo.pop()
            for child in iter_children(current):
                parents[child] = current
                todo.append(child)
        self._parents_complete = True

    def analysis(self, factory: type[T]) -> T:
        """A per-file analysis shared by every rule that asks for it (built once)."""
        try:
            return self._analyses[factory]
        except KeyError:
            value = self._analyses[factory] = factory(self)  # type: ignore[call-arg]
            return value

    def code_for(self, node: cst.CSTNode) -> str:
        return self.module.code_for_node(node)


class Invalid(str):
    """An INVALID example that also states the code after its fix, like Fixit's
    ``Invalid(code, expected_replacement=...)``.

    It is the snippet itself (a ``str``), so anything that reads examples as text
    keeps working; ``tests/rules/test_rule_examples.py`` applies the rule's fixes
    (unsafe ones included) and compares the result with ``expected_replacement``.
    """

    expected_replacement: str | None

    def __new__(cls, code: str, expected_replacement: str | None = None) -> Invalid:
        obj = super().__new__(cls, code)
        obj.expected_replacement = expected_replacement
        return obj


class Rule(cst.BatchableCSTVisitor):
    code: ClassVar[str] = ""
    name: ClassVar[str] = ""
    message: ClassVar[str] = ""
    # None: no fix; "safe": applied by --fix; "unsafe": only with --unsafe-fixes.
    fix_applicability: ClassVar[Applicability | None] = None
    # Off-by-default rules run only when selected explicitly (or with ALL).
    default_enabled: ClassVar[bool] = True
    # The file is parsed for this rule only if its text contains one of these
    # substrings. An empty tuple means "always parse".
    prefilter: ClassVar[tuple[str, ...]] = ()
    # The facts the rule reads beyond a definition its ``could_match_unit`` accepts:
    # "function" (that definition and the helpers it calls), "class" (also the methods
    # of its class that assign ``self`` attributes: where ``__init__`` decides that
    # ``self.w`` is a parameter or ``self.lin`` a module; every rule that asks the value
    # kinds of ``dataflow`` reads these) or "module" (the whole file). Slicing keeps
    # exactly that. See ``gradlint.static.slicing``.
    reads: ClassVar[str] = "function"
    # Can code that slicing stubs out (a caller under no_grad, another method that
    # resets state) silence a finding of this rule? Then a finding in a sliced file
    # is decided on the whole file. Most rules read only what ``reads`` keeps; the
    # few that look further set this True. tests/test_slicing.py checks both.
    silenced_elsewhere: ClassVar[bool] = False
    # Snippets the rule must stay silent on / must flag.  In INVALID snippets
    # mark each expected report line with a trailing ``# error``; an ``Invalid(code,
    # expected_replacement=...)`` also states the code after the rule's fix.
    VALID: ClassVar[Sequence[str]] = ()
    INVALID: ClassVar[Sequence[str]] = ()

    def __init__(self, context: FileContext) -> None:
        super().__init__()
        self.context = context

    @classmethod
    def _visitor_names(cls) -> tuple[str, ...]:
        # libcst finds visitor methods with inspect.getmembers on every instance,
        # which walks ~1,000 attributes: per file and rule that cost more than
        # the parse. The set of methods is a property of the class: compute once.
        names = cls.__dict__.get("_gradlint_visitor_names")
        if names is None:
            names = tuple(
                n
                for n in dir(cls)
                if n.startswith(("visit_", "leave_"))
                and callable(getattr(cls, n))
                and not getattr(getattr(cls, n), "_is_no_op", False)
            )
            cls._gradlint_visitor_names = names
        return names

    def get_visitors(self):
        return {n: getattr(self, n) for n in self._visitor_names()}

    @classmethod
    def could_match(cls, text: str) -> bool:
        """Cheap text test run before parsing; override for conjunctions."""
        return not cls.prefilter or any(s in text for s in cls.prefilter)

    @classmethod
    def could_match_unit(cls, text: str, file_text: str) -> bool:
        """Could a finding lie in this one definition (``text``) of a file that passed ``could_match``?

        The default reuses the file test; a rule whose file test asks for
        evidence that may sit elsewhere in the file (an import, a module-level
        leaf) overrides this with the part that must be in the definition.
        """
        return cls.could_match(text)

    # -- reporting -------------------------------------------------------
    def report(
        self,
        node: cst.CSTNode,
        message: str | None = None,
        *,
        fix: FixPart | Sequence[FixPart] | None = None,
        fix_message: str | None = None,
        **format_args: Any,
    ) -> None:
        ctx = self.context
        pos = ctx.position(node)
        msg = message if message is not None else self.message
        if format_args:
            msg = msg.format(**format_args)
        fix_obj = None
        if fix is not None and self.fix_applicability is not None:
            parts = [fix] if isinstance(fix, (Replace, InsertAfter)) else list(fix)
            edits = tuple(_to_edit(ctx, p) for p in parts)
            fix_obj = Fix(
                message=fix_message or f"Apply the {self.name} fix",
                applicability=self.fix_applicability,
                edits=edits,
            )
        ctx.diagnostics.append(
            Diagnostic(
                filename=ctx.filename,
                code=self.code,
                message=msg,
                location=Location(pos.start.line, pos.start.column + 1),
                end_location=Location(pos.end.line, pos.end.column + 1),
                fix=fix_obj,
                noqa_row=pos.start.line,
                rule_name=self.name,
            )
        )

    # -- docs --------------------------------------------------------------
    @classmethod
    def docs(cls) -> str:
        return inspect.cleandoc(cls.__doc__ or "")

    @classmethod
    def summary(cls) -> str:
        """``## What it does`` up to its first full stop, for rule listings
        (a paragraph that ends in "when" or ":" continues into its list)."""
        m = re.search(r"## What it does\s*\n(.+?)(?=\n\s*## |\Z)", cls.docs(), re.S)
        if not m:
            return cls.message
        taken = []
        for para in re.split(r"\n\s*\n", m.group(1).strip()):
            taken.append(re.sub(r"(^|\n)\s*[*-]\s+", " ", para))
            if para.rstrip().endswith("."):
                break
        return " ".join(" ".join(taken).split())


def _indent_of_line(ctx: FileContext, row: int) -> str:
    lines = ctx.source.splitlines()
    line = lines[row - 1] if 0 < row <= len(lines) else ""
    return line[: len(line) - len(line.lstrip())]


def _end_of_line(ctx: FileContext, row: int) -> Location:
    lines = ctx.source.splitlines()
    line = lines[row - 1] if 0 < row <= len(lines) else ""
    return Location(row, len(line) + 1)


def _same_lines(a: Sequence[cst.EmptyLine], b: Sequence[cst.EmptyLine]) -> bool:
    return len(a) == len(b) and all(x.deep_equals(y) for x, y in zip(a, b))


def _to_edit(ctx: FileContext, part: FixPart | Edit) -> Edit:
    if isinstance(part, Edit):  # built by gradlint.static.fixes, already in text positions
        return part
    if isinstance(part, InsertAfter):
        pos = ctx.position(part.anchor)
        indent = _indent_of_line(ctx, pos.start.line)
        code = textwrap.dedent(part.code).strip("\n")
        body = "".join("\n" + (indent + ln if ln.strip() else ln) for ln in code.splitlines())
        # After the anchor's whole last line: its trailing comment stays on it.
        end = _end_of_line(ctx, pos.end.line)
        return Edit(content=body, location=end, end_location=end)

    pos = ctx.position(part.old)
    start = Location(pos.start.line, pos.start.column + 1)
    end = Location(pos.end.line, pos.end.column + 1)
    new = part.new
    if new is None:
        # Deleting a statement: take its whole line(s), newline included.
        return Edit(content="", location=Location(start.row, 1), end_location=Location(end.row + 1, 1))
    if isinstance(new, cst.BaseStatement) and isinstance(part.old, cst.BaseStatement):
        # A statement node owns its leading comment lines and the comment ending its
        # last line, but its position excludes both: keep the old leading lines where
        # they are, and replace through the end of the last line so the comment is
        # not written twice.
        if _same_lines(new.leading_lines, part.old.leading_lines):
            new = new.with_changes(leading_lines=())
        end = _end_of_line(ctx, end.row)
    if isinstance(new, str):
        code = new
    elif isinstance(new, cst.BaseStatement):
        code = cst.Module(body=[new]).code.strip("\n")
    elif isinstance(new, cst.BaseSmallStatement):
        code = cst.Module(body=[cst.SimpleStatementLine([new])]).code.strip("\n")
    else:
        code = ctx.module.code_for_node(new)
    if "\n" in code:
        # Continuation lines inherit the indentation of the replaced node's line.
        from gradlint.static.fixes import indent_continuation_lines

        code = indent_continuation_lines(code, _indent_of_line(ctx, start.row))
    return Edit(content=code, location=start, end_location=end)
