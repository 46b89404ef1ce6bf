"""Which rules run: the rule registry and ruff-style selector resolution.

Selectors are ``ALL``, a full code (``GL001``) or a code prefix (``GL0``,
``GL01``, ``GL``).  Resolution works in layers (defaults, then the config file,
then the command line), like ruff:

* a layer that sets ``select`` starts again from nothing; otherwise it builds on
  the layer below;
* inside a layer, selectors apply from least to most specific (``ALL`` <
  ``GL`` < ``GL0`` < ``GL001``), and at equal specificity ``ignore`` wins, so
  ``select = ["GL0"], ignore = ["GL001"]`` and ``select = ["GL001"],
  ignore = ["GL0"]`` both do what they say;
* an off-by-default rule is enabled only by its exact code or by ``ALL``: a
  prefix never switches one on (but does switch it off).

``GL000`` (the file could not be analysed) is not a rule: it is always reported,
and ``ignore``/``per-file-ignores`` do not silence it.
"""

from __future__ import annotations

import fnmatch
import importlib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from gradlint.static.diagnostic import GL000
from gradlint.static.rule import Rule

# Extra rule modules (comma-separated importable names) are added to the
# registry: this is how tests and out-of-tree experiments reach rules in
# processes gradlint starts itself (``-j``) or in a ``python -m gradlint`` child.
EXTRA_RULES_ENV = "GRADLINT_EXTRA_RULES"

_SELECTOR = re.compile(r"^[A-Z]+[0-9]*$")


class SelectionError(ValueError):
    """A selector that names no rule; the message is user-facing."""


def all_rules() -> list[type[Rule]]:
    """The registry, read at call time so tests can patch ``gradlint.rules``."""
    import gradlint.rules as registry

    rules = list(registry.ALL_RULES)
    extra = os.environ.get(EXTRA_RULES_ENV, "").strip()
    if extra:
        seen = {r.code for r in rules}
        for name in filter(None, (n.strip() for n in extra.split(","))):
            module = importlib.import_module(name)
            for value in vars(module).values():
                if (
                    isinstance(value, type)
                    and issubclass(value, Rule)
                    and value is not Rule
                    and value.code
                    and value.code not in seen
                ):
                    rules.append(value)
                    seen.add(value.code)
    return sorted(rules, key=lambda r: r.code)


def rules_by_code(rules: Sequence[type[Rule]] | None = None) -> dict[str, type[Rule]]:
    return {r.code: r for r in (all_rules() if rules is None else rules)}


def normalize_selector(selector: str) -> str:
    return selector.strip().upper()


def is_wellformed(selector: str) -> bool:
    return selector == "ALL" or bool(_SELECTOR.match(selector))


def _matches(selector: str, code: str) -> bool:
    return selector == "ALL" or code.startswith(selector)


def _specificity(selector: str) -> int:
    return 0 if selector == "ALL" else len(selector)


def check_selectors(selectors: Iterable[str], rules: Sequence[type[Rule]]) -> None:
    """Raise SelectionError for the first selector that matches no rule."""
    codes = [r.code for r in rules] + [GL000]
    for raw in selectors:
        sel = normalize_selector(raw)
        if not is_wellformed(sel) or not any(_matches(sel, c) for c in codes):
            raise SelectionError(f"unknown rule selector '{raw.strip()}'")


@dataclass
class SelectionLayer:
    select: list[str] | None = None
    extend_select: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)

    def selectors(self) -> list[str]:
        return list(self.select or []) + list(self.extend_select) + list(self.ignore)


def resolve(layers: Sequence[SelectionLayer], rules: Sequence[type[Rule]] | None = None) -> list[type[Rule]]:
    """The enabled rules, in code order, after applying ``layers`` bottom-up."""
    rules = all_rules() if rules is None else list(rules)
    for layer in layers:
        check_selectors(layer.selectors(), rules)
    enabled: set[str] = {r.code for r in rules if r.default_enabled}
    for layer in layers:
        ops: list[tuple[str, bool]] = []
        if layer.select is not None:
            enabled = set()
            ops += [(normalize_selector(s), True) for s in layer.select]
        ops += [(normalize_selector(s), True) for s in layer.extend_select]
        ops += [(normalize_selector(s), False) for s in layer.ignore]
        # Least specific first; at equal specificity "ignore" (False) last, so it wins.
        ops.sort(key=lambda op: (_specificity(op[0]), op[1] is False))
        for sel, on in ops:
            exact = sel != "ALL" and any(r.code == sel for r in rules)
            for r in rules:
                if not _matches(sel, r.code):
                    continue
                if on:
                    if r.default_enabled or sel == "ALL" or exact:
                        enabled.add(r.code)
                else:
                    enabled.discard(r.code)
    return [r for r in rules if r.code in enabled]


def fixable_codes(rules: Sequence[type[Rule]], fixable: Sequence[str], unfixable: Sequence[str]) -> list[str]:
    """Codes whose fixes may be applied: ruff's ``fixable``/``unfixable`` (default ``ALL``/none).

    Same precedence as selection (more specific wins, ``unfixable`` at a tie),
    but any selector matches off-by-default rules too: it only gates fixes.
    """
    ops = [(normalize_selector(s), True) for s in fixable] + [
        (normalize_selector(s), False) for s in unfixable
    ]
    ops.sort(key=lambda op: (_specificity(op[0]), op[1] is False))
    on: set[str] = set()
    for sel, add in ops:
        for r in rules:
            if _matches(sel, r.code):
                (on.add if add else on.discard)(r.code)
    return sorted(on)


# -- per-file ignores --------------------------------------------------------


def path_matches(pattern: str, path: str, root: str | None) -> bool:
    """ruff-style glob test of an absolute ``path``.

    A pattern without ``/`` matches the file name or any directory name on the
    way to it (``tests`` excludes every ``tests`` folder, ``*_pb2.py`` every such
    file).  A pattern with ``/`` matches the path relative to ``root`` (the
    project root), or the absolute path when it starts with ``/``.  ``*`` may
    cross ``/`` (``src/*`` covers all of ``src``); ``**/`` may match nothing.
    """
    pattern = pattern.replace(os.sep, "/").rstrip("/")
    if pattern.startswith("./"):
        pattern = pattern[2:]
    posix = path.replace(os.sep, "/")
    rel = None
    if root is not None:
        rel = os.path.relpath(path, root).replace(os.sep, "/")
        if rel == ".." or rel.startswith("../"):
            rel = None
    if "/" not in pattern:
        # Only names below the project root count: a project living in /tmp/build
        # is not excluded by "build".
        parts = (rel if rel is not None else posix).split("/")
        return any(fnmatch.fnmatchcase(part, pattern) for part in parts if part and part != ".")
    candidates = [posix] + ([rel] if rel is not None else [])
    variants = {pattern}
    if pattern.startswith("**/"):
        variants.add(pattern[3:])
    variants |= {v + "/*" for v in list(variants)}
    return any(fnmatch.fnmatchcase(c, v) for c in candidates for v in variants)


def ignored_codes_for(
    path: str, per_file_ignores: Mapping[str, Sequence[str]], root: str | None
) -> list[str]:
    """Selectors ignored for this file by ``per-file-ignores`` (not yet expanded)."""
    out: list[str] = []
    for pattern, selectors in per_file_ignores.items():
        if path_matches(pattern, path, root):
            out.extend(normalize_selector(s) for s in selectors)
    return out


def rules_for_file(enabled: Sequence[type[Rule]], ignored_selectors: Sequence[str]) -> list[type[Rule]]:
    if not ignored_selectors:
        return list(enabled)
    return [r for r in enabled if not any(_matches(s, r.code) for s in ignored_selectors)]
