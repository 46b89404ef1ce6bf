"""The annotation contract between whoever knows things about a graph (the tracer)
and the renderer.

``render(..., annotations=A)`` accepts, for ``A``:

* ``None``: the renderer introspects what it can by itself (saved bytes, alive /
  freed from the ``_saved_*`` slots, in-place modification, anomaly-mode source lines);
* a callable ``A(node) -> NodeInfo | None`` called with each autograd node
  (``grad_fn`` object, ``AccumulateGrad`` included);
* a mapping whose keys are autograd nodes or their ``id()``, values ``NodeInfo``
  (or plain dicts with the same keys).

A field left at ``None`` falls back to introspection; a ``NodeInfo`` never has to
be complete.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class NodeInfo:
    """What is known about one autograd node.

    saved_bytes
        bytes held by the node's saved tensors (``None``: unknown / nothing saved).
    state
        ``"alive"`` (saved tensors still held), ``"freed"`` (released by a backward
        pass) or ``None`` (the node saves nothing / unknown).
    source
        ``"file.py:LINE"`` of the user line that created the node.
    codes
        finding codes that concern this node: ``GR004`` (a saved tensor of this node
        was modified in place), ``GR001``/``GR002`` (the node belongs to a retained /
        leaked graph), any other ``GRnnn``.
    module
        dotted module path (``"layer1.0.conv1"``) that created the node; used to
        collapse big graphs per module.  Without it the renderer derives one from
        the parameter names passed in ``params``.
    retains_grad
        the tensor this node produced had ``retain_grad()`` called.
    note
        one extra free-text line for the label.
    findings_known
        the annotations come from a trace that reports in-place writes as GR004: a saved tensor the
        renderer finds modified without a GR004 on the node (a weight updated by ``optimizer.step()``
        after its graph was used) is noted, not outlined as an error.
    """

    saved_bytes: int | None = None
    state: str | None = None
    source: str | None = None
    codes: list[str] = field(default_factory=list)
    module: str | None = None
    retains_grad: bool = False
    note: str | None = None
    findings_known: bool = False

    def __post_init__(self):
        if self.state not in (None, "alive", "freed"):
            raise ValueError(f"NodeInfo.state must be 'alive', 'freed' or None, not {self.state!r}")
        self.codes = list(self.codes or [])


Annotations = Callable[[Any], NodeInfo | None] | Mapping[Any, Any] | None


def _coerce(info) -> NodeInfo | None:
    if info is None or isinstance(info, NodeInfo):
        return info
    if isinstance(info, Mapping):
        known = {k: info[k] for k in NodeInfo.__dataclass_fields__ if k in info}
        return NodeInfo(**known)
    raise TypeError(f"annotation must be a NodeInfo, a dict or None, not {type(info).__name__}")


def resolver(annotations: Annotations) -> Callable[[Any], NodeInfo | None]:
    """Turn any accepted ``annotations`` value into ``f(node) -> NodeInfo | None``."""
    if annotations is None:
        return lambda node: None
    if isinstance(annotations, Mapping):
        m = annotations

        def look(node):
            try:
                info = m.get(node)
            except TypeError:  # unhashable key type
                info = None
            if info is None:
                info = m.get(id(node))
            return _coerce(info)

        return look
    if callable(annotations):
        return lambda node: _coerce(annotations(node))
    raise TypeError("annotations must be None, a callable node -> NodeInfo, or a mapping")
