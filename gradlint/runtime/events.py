"""Named events and op kinds of the tracer.

Finalizers (saved-tensor handles, node sentinels) may run on autograd's worker threads, so they only
append an event to the trace's :class:`Sink`; the tracing thread drains it under the trace's lock.
"""

from __future__ import annotations

import collections
import enum
import threading
from typing import NamedTuple


class Sink:
    """Queue shared by handles and node sentinels; outlives the trace harmlessly (``open`` turns False)."""

    __slots__ = ("q", "open", "main_ident")

    def __init__(self):
        self.q = collections.deque()
        self.open = True
        self.main_ident = threading.get_ident()


class NodeDied(NamedTuple):
    """The autograd node carrying ``tag`` was freed; ``site`` is the user line that dropped it (or None)."""

    tag: object
    site: tuple | None


class HandleReleased(NamedTuple):
    """Autograd released a saved tensor (the handle packed by the saved-tensor hook died)."""

    key: object  # storage key
    tag: object  # the NodeTag it was saved for, or None
    nbytes: int
    dev: str
    leaf: bool


class OpKind(enum.IntEnum):
    """What the function mode does with a torch call."""

    PLAIN = 0
    INPLACE = 1
    GETTER = 2  # a property read such as ``t.grad`` / ``t.data``
    SETTER = 3  # a property write such as ``p.grad = None``
    CUT = 4  # may cut the graph: ``.detach()``, integer casts, ``.item()``
    PASSTHROUGH = 5  # gradlint's own backward wrappers
    RETAIN_GRAD = 6


ACCUM_FUNCS = frozenset(
    {
        "add",
        "__add__",
        "__radd__",
        "__iadd__",
        "add_",
        "sum",
        "stack",
        "cat",
        "append",
        "__isub__",
        "sub",
        "__sub__",
        "__rsub__",
        "sub_",
    }
)
INPLACE_ACCUM = frozenset({"__iadd__", "add_", "__isub__", "sub_"})
_NOT_MUTATING = frozenset(
    {
        "requires_grad_",
        "detach_",
        "share_memory_",
        "retain_grad",
        "_fix_weakref",
        "record_stream",
        "pin_memory_",
        "set_grad_enabled_",
    }
)
_INPLACE_DUNDER = frozenset(
    {
        "__iadd__",
        "__isub__",
        "__imul__",
        "__itruediv__",
        "__ifloordiv__",
        "__imod__",
        "__ipow__",
        "__iand__",
        "__ior__",
        "__ixor__",
        "__ilshift__",
        "__irshift__",
        "__imatmul__",
        "__setitem__",
    }
)
_CUT_FUNCS = frozenset(
    {
        "detach",
        "long",
        "int",
        "short",
        "byte",
        "bool",
        "char",
        "item",
        "tolist",
        "numpy",
        "round",
        "argmax",
        "argmin",
    }
)

# the properties a finding needs: ``.grad`` reads (GR005), ``.data`` reads (GR006 cuts), ``.grad`` writes (GR007)
_WATCHED_ATTRS = {OpKind.GETTER: ("grad", "data"), OpKind.SETTER: ("grad",)}

_KIND_CACHE: dict = {}


def classify(func) -> tuple[OpKind, str]:
    """``(kind, name)`` of a torch function, cached per function object."""
    kn = _KIND_CACHE.get(func)
    if kn is not None:
        return kn
    name = getattr(func, "__name__", "") or ""
    kind = OpKind.PLAIN
    if name in ("__get__", "__set__"):
        owner = getattr(func, "__self__", None)
        kind = OpKind.GETTER if name == "__get__" else OpKind.SETTER
        name = getattr(owner, "__name__", "")
        if name not in _WATCHED_ATTRS.get(kind, ()):
            # most property reads (``shape``, ``requires_grad``, ``_version``, ``grad_fn``) serve no finding
            kind = OpKind.PASSTHROUGH
    elif getattr(func, "_gradlint_wrapper", False):
        kind = OpKind.PASSTHROUGH
    elif name in _INPLACE_DUNDER or (
        name.endswith("_") and not name.endswith("__") and name not in _NOT_MUTATING
    ):
        kind = OpKind.INPLACE
    elif name in _CUT_FUNCS:
        kind = OpKind.CUT
    elif name == "retain_grad":
        kind = OpKind.RETAIN_GRAD
    kind = int(kind)
    try:
        _KIND_CACHE[func] = (kind, name)
    except TypeError:  # pragma: no cover - unhashable callables
        pass
    return kind, name
