"""Pictures of autograd graphs, annotated with what gradlint knows.

``gradlint.render(loss, "graph.png", params=dict(model.named_parameters()))`` draws
the graph behind ``loss``; ``render_trace(t, "graph.png", graph=3)`` (and
``t.render(...)``) draws a graph the tracer recorded, annotated from the trace.
The format follows the suffix: ``.png``/``.svg`` (drawn by Graphviz's ``dot``),
``.dot``/``.gv`` (the DOT source; needs no ``dot`` binary).

Works after ``backward()`` (freed buffers are drawn as freed), on Python 3.12 (no
torchviz import, hence no ``distutils``) and on 10,000-node graphs (iterative walk;
big graphs are collapsed per module or in creation order, with a note saying so).
See docs/rendering.md for the legend.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gradlint.render.annotations import Annotations, NodeInfo, resolver
from gradlint.render.dot import DEFAULT_COLLAPSE_TO, DEFAULT_MAX_NODES, format_bytes
from gradlint.render.output import FORMATS, GraphvizNotFoundError, format_for

__all__ = [
    "render",
    "to_dot",
    "make_dot",
    "render_trace",
    "trace_png",
    "annotations_from_trace",
    "NodeInfo",
    "GraphvizNotFoundError",
    "FORMATS",
    "format_bytes",
]


def _roots(tensor_or_graph) -> Sequence[Any]:
    if isinstance(tensor_or_graph, (list, tuple)):
        return list(tensor_or_graph)
    return [tensor_or_graph]


def _is_digraph(obj) -> bool:
    # a graphviz.Digraph / graphviz.Source, e.g. what torchviz.make_dot returns
    return hasattr(obj, "source") and hasattr(obj, "pipe") and not hasattr(obj, "grad_fn")


def to_digraph(
    tensor_or_graph,
    params: dict[str, Any] | None = None,
    annotations: Annotations = None,
    *,
    max_nodes: int | None = DEFAULT_MAX_NODES,
    collapse_to: int = DEFAULT_COLLAPSE_TO,
    title: str | None = None,
    legend: bool = True,
    introspect: bool = True,
    output_names: Sequence[str] | None = None,
    graph_codes: Sequence[str] = (),
):
    """The annotated ``graphviz.Digraph`` of the graph behind ``tensor_or_graph``."""
    from gradlint.render.dot import apply_annotations, build_dot
    from gradlint.render.walk import walk

    w = walk(_roots(tensor_or_graph), params=params, introspect=introspect, output_names=output_names)
    ann = apply_annotations(w, resolver(annotations))
    g, _plan = build_dot(
        w,
        ann,
        max_nodes=max_nodes,
        collapse_to=collapse_to,
        title=title,
        legend=legend,
        graph_codes=graph_codes,
    )
    return g


def to_dot(
    tensor_or_graph, params: dict[str, Any] | None = None, annotations: Annotations = None, **kw
) -> str:
    """The DOT source (a string) that :func:`render` would draw."""
    if _is_digraph(tensor_or_graph):
        return tensor_or_graph.source
    return to_digraph(tensor_or_graph, params, annotations, **kw).source


def make_dot(
    var,
    params: dict[str, Any] | None = None,
    show_attrs: bool = False,
    show_saved: bool = False,
    max_attr_chars: int = 50,
    **kw,
):
    """Drop-in for ``torchviz.make_dot(var, params)``: returns a ``graphviz.Digraph``.

    Unlike torchviz's it works after ``backward()``, on graphs deeper than the
    recursion limit, and does not import ``distutils``; it adds gradlint's annotations.
    ``show_attrs``/``show_saved``/``max_attr_chars`` are accepted for compatibility:
    saved tensors are always summarised on their node (bytes, alive/freed).
    """
    return to_digraph(var, params, **kw)


def render(
    tensor_or_graph,
    path: str | Path,
    params: dict[str, Any] | None = None,
    annotations: Annotations = None,
    *,
    format: str | None = None,
    max_nodes: int | None = DEFAULT_MAX_NODES,
    collapse_to: int = DEFAULT_COLLAPSE_TO,
    title: str | None = None,
    legend: bool = True,
    introspect: bool = True,
    output_names: Sequence[str] | None = None,
) -> Path:
    """Draw the autograd graph behind ``tensor_or_graph`` into ``path``; returns the path.

    tensor_or_graph
        a tensor (usually the loss), a list/tuple of tensors, a ``grad_fn`` node, a
        ``gradlint.Trace`` (same as :func:`render_trace`), or a ``graphviz.Digraph`` /
        ``Source`` (e.g. from ``torchviz.make_dot``), written as is.
    path
        ``.png``/``.svg`` need Graphviz's ``dot`` program; ``.dot``/``.gv`` write
        the DOT source.  ``format=`` overrides the suffix.
    params
        ``dict(model.named_parameters())``: names the leaf parameters (and lets big
        graphs be collapsed per module).
    annotations
        a callable ``node -> NodeInfo | None`` or a mapping ``node|id(node) -> NodeInfo``
        (see :class:`NodeInfo`); ``None``: what the renderer can read by itself.
    max_nodes
        graphs with more drawn nodes are collapsed into at most ``collapse_to`` boxes
        (per module when parameter names / annotations give modules, else runs of
        ops in creation order); ``None`` draws every node.
    """
    fmt = format_for(path, format)  # validate the suffix before any work
    from gradlint.render import output

    if _is_trace(tensor_or_graph):
        return render_trace(
            tensor_or_graph,
            path,
            params=params,
            format=format,
            max_nodes=max_nodes,
            collapse_to=collapse_to,
            legend=legend,
        )
    if _is_digraph(tensor_or_graph):
        return output.write(tensor_or_graph.source, path, format)
    if fmt is not None and output.dot_binary() is None:  # fail before walking a big graph
        raise output._missing_dot(path)
    src = to_dot(
        tensor_or_graph,
        params,
        annotations,
        max_nodes=max_nodes,
        collapse_to=collapse_to,
        title=title,
        legend=legend,
        introspect=introspect,
        output_names=output_names,
    )
    return output.write(src, path, format)


def _is_trace(obj) -> bool:
    return type(obj).__name__ == "Trace" and hasattr(obj, "report") and hasattr(obj, "findings")


def annotations_from_trace(t, graph_id: int | None = None):
    """A ``node -> NodeInfo`` callable built from a ``gradlint.trace()`` object."""
    from gradlint.render.from_trace import annotations_from_trace as _a

    return _a(t, graph_id=graph_id)


def render_trace(
    t, path: str | Path, graph: int | None = None, params: dict[str, Any] | None = None, **kw
) -> Path:
    """Draw graph ``graph`` (an id from ``t.graphs``; default: the most relevant
    graph still alive) of trace ``t`` into ``path``.  Backs ``Trace.render``."""
    from gradlint.render.from_trace import render_trace as _r

    return _r(t, path, graph=graph, params=params, **kw)


def trace_png(t) -> bytes | None:
    """PNG bytes of the most relevant live graph of trace ``t``, or ``None``
    (no live graph, or no ``dot`` binary).  Used by the HTML report."""
    from gradlint.render.from_trace import trace_png as _p

    return _p(t)


# `gradlint.render` is both this package and (through gradlint.__getattr__) the
# `render` function; once the package is imported Python binds the *module* to the
# `gradlint.render` attribute, so the module itself must be callable.
import sys as _sys  # noqa: E402
import types as _types  # noqa: E402


class _CallableModule(_types.ModuleType):
    def __call__(self, *args, **kwargs):
        return render(*args, **kwargs)


_sys.modules[__name__].__class__ = _CallableModule
