"""The rule catalog: one module per rule, named after its code.

``ALL_RULES`` is ordered by code. To add a rule, create ``glNNN_<name>.py`` with
one ``Rule`` subclass and list it here.
"""

from __future__ import annotations

import importlib
import pkgutil

from gradlint.static.rule import Rule


def _discover() -> list[type[Rule]]:
    found = []
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("gl"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Rule)
                and value is not Rule
                and value.code
                and value.__module__ == module.__name__
            ):
                found.append(value)
    return sorted(found, key=lambda r: r.code)


ALL_RULES: list[type[Rule]] = _discover()
RULES_BY_CODE: dict[str, type[Rule]] = {r.code: r for r in ALL_RULES}
RULES_BY_NAME: dict[str, type[Rule]] = {r.name: r for r in ALL_RULES}
