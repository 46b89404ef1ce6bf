"""gradlint's rules as a flake8 plugin: ``flake8 --select=GL``.

Registered in ``pyproject.toml`` under ``flake8.extension`` as ``GL``, so
flake8 runs it for every file once gradlint is installed in flake8's
environment.  The plugin lints flake8's ``lines`` (the decoded text) with the
default-enabled rules, plus any off-by-default rule whose exact code is named
in flake8's ``--select``/``--extend-select``.

``# noqa`` comments are left to flake8 (so ``--disable-noqa`` and flake8's
multi-line ``noqa`` handling behave as for every other plugin); a
``# gradlint: noqa`` line still exempts the whole file, as it does for the
``gradlint`` command.  gradlint's columns are 1-based; flake8's are 0-based.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import ClassVar

from gradlint import __version__
from gradlint.static.engine import lint_source
from gradlint.static.noqa import file_is_exempt
from gradlint.static.rule import Rule


def _encoding_for(text: str) -> str:
    from gradlint.static.fixer import _encoding_of_text

    return _encoding_of_text(text)


def _default_rules() -> list[type[Rule]]:
    from gradlint.static.selection import all_rules

    return [r for r in all_rules() if r.default_enabled]


class GradlintChecker:
    name = "gradlint"
    version = __version__

    # Set from flake8's options; None until flake8 has parsed them (direct use).
    _rules: ClassVar[list[type[Rule]] | None] = None

    def __init__(self, tree, filename: str, lines: Sequence[str]):
        # ``tree`` is flake8's ast: unused (the rules need libcst's tree), but
        # asking for it makes flake8 run the plugin only on files that parse.
        self.filename = filename
        self.lines = lines

    @classmethod
    def parse_options(cls, options) -> None:
        explicit = set()
        for opt in ("select", "extend_select", "enable_extensions"):
            for code in getattr(options, opt, None) or ():
                explicit.add(code.strip().upper())
        from gradlint.static.selection import all_rules

        cls._rules = [r for r in all_rules() if r.default_enabled or r.code in explicit]

    def run(self) -> Iterator[tuple[int, int, str, type]]:
        if str(self.filename).endswith(".ipynb"):
            return  # flake8 cannot place a cell's positions; `gradlint check` lints notebooks
        text = "".join(self.lines)
        if not text or file_is_exempt(text):
            return
        rules = self._rules if self._rules is not None else _default_rules()
        # lint_source decodes bytes per PEP 263: encode as the file's cookie says
        # so that columns (characters) match the text flake8 has.
        try:
            data = text.encode(_encoding_for(text))
        except (UnicodeEncodeError, LookupError):
            data = text.encode("utf-8")
        for d in lint_source(self.filename, data, rules, noqa=False):
            message = " ".join(d.message.split())
            yield d.location.row, max(d.location.column - 1, 0), f"{d.code} {message}", type(self)
