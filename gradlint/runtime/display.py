"""The runtime's side of presentation: a hook, nothing drawn here.

The runtime is a model; text, HTML and pictures live in :mod:`gradlint.render`.  ``Trace.__str__``,
``_repr_html_`` and ``render()`` go through :func:`presenter`, which loads the presentation package by
name on first use (``PRESENTER``), so no runtime module imports the renderer and the renderer may
import the runtime freely.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

PRESENTER = "gradlint.render.report"

# ``fn(trace) -> bytes | None`` returning a PNG that the HTML report shows (instead of gradlint's pictures)
_image_hooks: list[Callable[[Any], bytes | None]] = []


def register_image_hook(fn: Callable[[Any], bytes | None]) -> Callable:
    """Register ``fn(trace) -> PNG bytes | None`` used by the HTML report of a trace."""
    if fn not in _image_hooks:
        _image_hooks.append(fn)
    return fn


def presenter():
    return importlib.import_module(PRESENTER)
