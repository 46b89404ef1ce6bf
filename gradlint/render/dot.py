"""Turn a walked (and annotated) autograd graph into Graphviz DOT.

Picture conventions (documented in docs/rendering.md, drawn in the legend):

* backward node, saved tensors alive .... orange fill
* backward node, saved tensors freed .... grey fill, dashed outline
* backward node that saves nothing ...... white
* leaf tensor / parameter ............... light blue (solid: has ``.grad``; dashed: ``.grad`` is None)
* output tensor (what was drawn) ........ green
* ``retain_grad()`` tensor .............. double outline
* GR004 (saved tensor modified in place)  thick red outline
* GR001/GR002 (retained / leaked graph) . thick purple outline
* collapsed group of nodes .............. 3-D box

Edges go from an input to the node that consumes it (forward direction, as
torchviz draws them); the loss is at the bottom.
"""

from __future__ import annotations

import html as _html
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gradlint.render.annotations import NodeInfo
from gradlint.render.walk import GNode, Walk
from gradlint.units import fmt_bytes

COLORS = {
    "alive": "#fdae61",
    "freed": "#d9d9d9",
    "none": "#ffffff",
    "leaf": "#a6cee3",
    "output": "#b8e186",
    "inplace": "#d7191c",
    "leak": "#7b3294",
    "other_code": "#e66101",
}

LEGEND_TEXT = {
    "alive": "saved tensors alive (memory held)",
    "freed": "saved tensors freed by backward",
    "none": "saves no tensors",
    "leaf_grad": "leaf / parameter, .grad set",
    "leaf_nograd": "leaf / parameter, .grad is None",
    "output": "output tensor (drawn from here)",
    "retain": "retain_grad() tensor",
    "inplace": "GR004: saved tensor modified in place",
    "leak": "GR001/GR002: retained / leaked graph",
    "group": "collapsed group of nodes",
}

DEFAULT_MAX_NODES = 150
DEFAULT_COLLAPSE_TO = 40


format_bytes = fmt_bytes  # the one byte formatter (gradlint.units)


def _esc(s: str) -> str:
    # DOT quoted strings: graphviz's quoting escapes '"' but keeps backslashes (for \l, \n);
    # a Windows path in a source line must not turn into an escape sequence.
    return s.replace("\\", "\\\\")


def _label(lines: Sequence[str]) -> str:
    import graphviz

    # nohtml: a label such as "<stdin>:3" must not be taken for an HTML-like label.
    return graphviz.nohtml("\n".join(_esc(x) for x in lines if x))


@dataclass
class Annotated:
    node: GNode
    codes: list[str] = field(default_factory=list)
    module: str | None = None
    note: str | None = None


def apply_annotations(w: Walk, annotate: Callable) -> dict[int, Annotated]:
    out: dict[int, Annotated] = {}
    for key, n in w.nodes.items():
        a = Annotated(n)
        info: NodeInfo | None = annotate(n.obj) if n.kind != "output" else None
        if info is not None:
            if info.saved_bytes is not None:
                n.saved_bytes = info.saved_bytes
            if info.state is not None:
                n.state = info.state
            if info.source:
                n.source = info.source
            if info.retains_grad:
                n.retains_grad = True
            a.codes = list(dict.fromkeys(info.codes))
            a.module = info.module
            a.note = info.note
            if info.findings_known and n.inplace_modified and "GR004" not in a.codes:
                n.inplace_modified = False  # no finding: not drawn as one
                a.note = a.note or "saved tensor updated since (no backward used it after)"
        out[key] = a
    return out


def _inplace(a: Annotated) -> bool:
    return a.node.inplace_modified or "GR004" in a.codes


def _leak(a: Annotated) -> bool:
    return any(c in ("GR001", "GR002") for c in a.codes)


# --------------------------------------------------------------------------- modules


def _common_prefix(paths: list[str]) -> str | None:
    parts = [p.split(".") for p in paths if p]
    if not parts:
        return None
    pre = []
    for xs in zip(*parts):
        if all(x == xs[0] for x in xs):
            pre.append(xs[0])
        else:
            break
    return ".".join(pre) or None


def assign_modules(w: Walk, ann: dict[int, Annotated]) -> dict[int, str | None]:
    """Module path per node: from annotations, else from the parameters a node
    consumes, else inherited from its most recently created input (the forward pass
    was "inside" that module when the node was created)."""
    mod: dict[int, str | None] = {}
    for key in w.order:
        a = ann[key]
        n = a.node
        if a.module is not None:
            mod[key] = a.module or None
            continue
        if n.kind == "leaf":
            mod[key] = n.param_name.rsplit(".", 1)[0] if n.param_name and "." in n.param_name else None
            continue
        if n.kind == "output":
            mod[key] = None
            continue
        leaf_mods = [mod.get(i) for i in n.inputs if w.nodes[i].kind == "leaf" and mod.get(i)]
        if leaf_mods:
            mod[key] = _common_prefix(leaf_mods)
            continue
        best, best_seq = None, -2
        for i in n.inputs:
            m = mod.get(i)
            inp = w.nodes.get(i)
            if m and inp is not None and inp.kind == "fn" and inp.seq > best_seq:
                best, best_seq = m, inp.seq
        mod[key] = best
    return mod


# --------------------------------------------------------------------------- collapsing


@dataclass
class Plan:
    unit_of: dict[int, str]  # node key -> unit id
    groups: dict[str, list[int]]  # unit id -> member node keys (only for groups of >= 2)
    group_titles: dict[str, str]
    note: str | None = None


def _pinned(a: Annotated) -> bool:
    return a.node.kind == "output" or _inplace(a)


def plan_units(w: Walk, ann: dict[int, Annotated], max_nodes: int | None, collapse_to: int) -> Plan:
    keys = list(w.order)
    total = len(keys)
    single = Plan(unit_of={k: f"n{k}" for k in keys}, groups={}, group_titles={})
    if max_nodes is None or total <= max_nodes:
        return single
    target = max(4, min(collapse_to, max_nodes))
    pinned = [k for k in keys if _pinned(ann[k])][: max(1, target // 4)]
    pinned_set = set(pinned)
    mods = assign_modules(w, ann)
    n_fn = sum(1 for k in keys if w.nodes[k].kind == "fn")

    def by_depth(d):
        unit_of, groups = {}, {}
        for k in keys:
            m = mods.get(k)
            if m and k not in pinned_set:
                g = "g_" + ".".join(m.split(".")[:d])
                unit_of[k] = g
                groups.setdefault(g, []).append(k)
            else:
                unit_of[k] = f"n{k}"
        return unit_of, groups

    with_module = sum(1 for k in keys if mods.get(k))
    if with_module >= total // 2:
        depth = max(len(m.split(".")) for m in mods.values() if m)
        for d in range(depth, 0, -1):
            unit_of, groups = by_depth(d)
            count = len(set(unit_of.values()))
            if count <= target:
                titles = {g: g[2:] for g in groups}
                return Plan(
                    unit_of,
                    groups,
                    titles,
                    note=f"{n_fn:,} autograd nodes collapsed per module (depth {d}) into {count} boxes; "
                    f"render(..., max_nodes=None) draws every node",
                )

    # Fallback: contiguous runs in creation order (sequence number), with each leaf in
    # the run of its first consumer.  Always fits the target.
    fns = sorted(
        (k for k in keys if w.nodes[k].kind == "fn" and k not in pinned_set),
        key=lambda k: (w.nodes[k].seq, 0),
    )
    budget = max(1, target - len(pinned) - 1)
    size = max(1, math.ceil(len(fns) / budget))
    unit_of: dict[int, str] = {}
    groups: dict[str, list[int]] = {}
    titles: dict[str, str] = {}
    for idx, k in enumerate(fns):
        g = f"b_{idx // size}"
        unit_of[k] = g
        groups.setdefault(g, []).append(k)
    consumers: dict[int, list[int]] = {}
    for k in keys:
        for i in w.nodes[k].inputs:
            consumers.setdefault(i, []).append(k)
    shared_left = 8  # a leaf used all over (a shared weight) is drawn once, on its own
    for k in keys:
        if k in unit_of:
            continue
        n = w.nodes[k]
        if n.kind == "leaf" and k not in pinned_set:
            cons = list(dict.fromkeys(unit_of[c] for c in consumers.get(k, []) if c in unit_of))
            if len(cons) > 1 and shared_left > 0:
                shared_left -= 1
            elif cons and cons[0].startswith("b_"):
                unit_of[k] = cons[0]
                groups[cons[0]].append(k)
                continue
        unit_of[k] = f"n{k}"
    start = 1
    for g in sorted(groups, key=lambda s: int(s[2:])):
        nf = sum(1 for k in groups[g] if w.nodes[k].kind == "fn")
        titles[g] = f"ops {start:,}-{start + nf - 1:,}" if nf > 1 else f"op {start:,}"
        start += nf
    count = len(set(unit_of.values()))
    return Plan(
        unit_of,
        groups,
        titles,
        note=f"{n_fn:,} autograd nodes collapsed in creation order into {count} boxes "
        f"(~{size} ops each); render(..., max_nodes=None) draws every node",
    )


# --------------------------------------------------------------------------- emitting


def _node_style(a: Annotated) -> dict[str, str]:
    n = a.node
    attrs: dict[str, str] = {}
    if n.kind == "leaf":
        attrs["fillcolor"] = COLORS["leaf"]
        attrs["style"] = "filled" if n.has_grad else "filled,dashed"
    elif n.kind == "output":
        attrs["fillcolor"] = COLORS["output"]
        attrs["style"] = "filled,rounded"
    else:
        attrs["fillcolor"] = COLORS.get(n.state or "none", COLORS["none"])
        attrs["style"] = "filled,dashed" if n.state == "freed" else "filled"
        if n.state == "freed":
            attrs["fontcolor"] = "#555555"
    if n.retains_grad:
        attrs["peripheries"] = "2"
    if _inplace(a):
        attrs.update(color=COLORS["inplace"], penwidth="3")
    elif _leak(a):
        attrs.update(color=COLORS["leak"], penwidth="2.5")
    elif a.codes:
        attrs.update(color=COLORS["other_code"], penwidth="2.5")
    return attrs


def _shape(shape) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")" if shape is not None else ""


def _node_lines(a: Annotated) -> list[str]:
    n = a.node
    lines: list[str] = []
    if n.kind == "leaf":
        lines.append(n.param_name or "leaf tensor")
        lines.append(_shape(n.shape))
        lines.append("grad: set" if n.has_grad else "grad: None")
    elif n.kind == "output":
        lines.append(n.name)
        lines.append(_shape(n.shape))
    else:
        lines.append(n.name)
        if n.state == "alive":
            lines.append(
                f"saved {format_bytes(n.saved_bytes)} (alive)"
                if n.saved_bytes is not None
                else "saved (alive)"
            )
        elif n.state == "freed":
            lines.append("saved: freed" + (f" ({format_bytes(n.saved_bytes)})" if n.saved_bytes else ""))
    if n.retains_grad:
        lines.append("retain_grad()")
    if n.source:
        lines.append(n.source)
    if n.inplace_modified and "GR004" not in a.codes:
        lines.append("saved tensor modified in place")
    for c in a.codes:
        lines.append(c + (": saved tensor modified in place" if c == "GR004" else ""))
    if a.note:
        lines.append(a.note)
    return lines


def _group_lines(title: str, members: list[Annotated]) -> list[str]:
    fns = [a for a in members if a.node.kind == "fn"]
    leaves = [a for a in members if a.node.kind == "leaf"]
    lines = [f"{title}  [{len(fns)} op{'s' if len(fns) != 1 else ''}]"]
    hist = Counter(a.node.name for a in fns)
    top = ", ".join(
        f"{name.replace('Backward0', '').replace('Backward1', '')} ×{c}" for name, c in hist.most_common(3)
    )
    if len(hist) > 3:
        top += ", ..."
    if top:
        lines.append(top)
    alive = [a for a in fns if a.node.state == "alive"]
    freed = [a for a in fns if a.node.state == "freed"]
    if alive or freed:
        b = sum(a.node.saved_bytes or 0 for a in alive)
        s = (
            f"saved {format_bytes(b)} alive in {len(alive)}/{len(alive) + len(freed)}"
            if alive
            else f"saved: freed ({len(freed)})"
        )
        lines.append(s)
    if leaves:
        with_grad = sum(1 for a in leaves if a.node.has_grad)
        lines.append(f"params {len(leaves)} (grad {with_grad}/{len(leaves)})")
    rg = sum(1 for a in members if a.node.retains_grad)
    if rg:
        lines.append(f"retain_grad() x{rg}")
    srcs = [a.node.source for a in fns if a.node.source]
    if srcs:
        uniq = list(dict.fromkeys(srcs))
        lines.append(uniq[0] + (f" (+{len(uniq) - 1} lines)" if len(uniq) > 1 else ""))
    codes = Counter(c for a in members for c in a.codes)
    inpl = sum(1 for a in members if a.node.inplace_modified and "GR004" not in a.codes)
    if inpl:
        codes["in-place"] += inpl
    if codes:
        lines.append(", ".join(f"{c} x{k}" if k > 1 else c for c, k in codes.items()))
    return lines


def _group_style(members: list[Annotated]) -> dict[str, str]:
    fns = [a for a in members if a.node.kind == "fn"]
    attrs = {"shape": "box3d"}
    if any(a.node.state == "alive" for a in fns):
        attrs.update(fillcolor=COLORS["alive"], style="filled")
    elif any(a.node.state == "freed" for a in fns):
        attrs.update(fillcolor=COLORS["freed"], style="filled,dashed", fontcolor="#555555")
    elif not fns:
        attrs.update(fillcolor=COLORS["leaf"], style="filled")
    else:
        attrs.update(fillcolor=COLORS["none"], style="filled")
    if any(a.node.retains_grad for a in members):
        attrs["peripheries"] = "2"
    if any(_inplace(a) for a in members):
        attrs.update(color=COLORS["inplace"], penwidth="3")
    elif any(_leak(a) for a in members):
        attrs.update(color=COLORS["leak"], penwidth="2.5")
    elif any(a.codes for a in members):
        attrs.update(color=COLORS["other_code"], penwidth="2.5")
    return attrs


def _legend_html(used: list[str]) -> str:
    rows = []
    for key in used:
        text = _html.escape(LEGEND_TEXT[key])
        if key in ("alive", "freed", "none", "output"):
            cell = f'<TD BGCOLOR="{COLORS[key]}" WIDTH="24"> </TD>'
        elif key in ("leaf_grad", "leaf_nograd"):
            cell = f'<TD BGCOLOR="{COLORS["leaf"]}" WIDTH="24" STYLE="{"dashed" if key == "leaf_nograd" else "solid"}"> </TD>'
        elif key == "retain":
            cell = '<TD BORDER="3" WIDTH="24"> </TD>'
        elif key in ("inplace", "leak"):
            cell = f'<TD BORDER="3" COLOR="{COLORS[key]}" WIDTH="24"> </TD>'
        else:  # group
            cell = '<TD WIDTH="24">3D</TD>'
        rows.append(f'<TR>{cell}<TD ALIGN="LEFT">{text}</TD></TR>')
    return (
        '<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="2" CELLPADDING="3">'
        '<TR><TD COLSPAN="2"><B>gradlint legend</B></TD></TR>' + "".join(rows) + "</TABLE>>"
    )


def build_dot(
    w: Walk,
    ann: dict[int, Annotated],
    *,
    max_nodes: int | None = DEFAULT_MAX_NODES,
    collapse_to: int = DEFAULT_COLLAPSE_TO,
    title: str | None = None,
    legend: bool = True,
    graph_codes: Sequence[str] = (),
):
    """Build a ``graphviz.Digraph``; returns ``(digraph, plan)``."""
    import graphviz

    plan = plan_units(w, ann, max_nodes, collapse_to)
    g = graphviz.Digraph(
        name="autograd",
        graph_attr={
            "rankdir": "TB",
            "fontname": "Helvetica",
            "fontsize": "12",
            "labelloc": "t",
            "nodesep": "0.25",
            "ranksep": "0.3",
        },
        # No "size" attribute (torchviz sets one): it shrinks big graphs to illegible PNGs.
        node_attr={
            "shape": "box",
            "style": "filled",
            "fontname": "Helvetica",
            "fontsize": "10",
            "margin": "0.08,0.04",
            "height": "0.2",
        },
        edge_attr={"arrowsize": "0.6", "color": "#555555"},
    )
    used = set()
    emitted = set()
    for key in w.order:
        unit = plan.unit_of[key]
        if unit in emitted:
            continue
        emitted.add(unit)
        if unit in plan.groups:
            members = [ann[k] for k in plan.groups[unit]]
            attrs = _group_style(members)
            g.node(unit, _label(_group_lines(plan.group_titles.get(unit, unit), members)), **attrs)
            used.add("group")
        else:
            a = ann[key]
            attrs = _node_style(a)
            g.node(unit, _label(_node_lines(a)), **attrs)
            members = [a]
        for a in members:
            n = a.node
            if n.kind == "leaf":
                used.add("leaf_grad" if n.has_grad else "leaf_nograd")
            elif n.kind == "output":
                used.add("output")
            else:
                used.add(n.state or "none")
            if n.retains_grad:
                used.add("retain")
            if _inplace(a):
                used.add("inplace")
            if _leak(a):
                used.add("leak")
    edges = set()
    for key in w.order:
        dst = plan.unit_of[key]
        for i in w.nodes[key].inputs:
            src = plan.unit_of.get(i)
            if src is None or src == dst or (src, dst) in edges:
                continue
            if src.startswith("b_") and w.nodes[i].kind == "leaf":
                continue  # a leaf folded into a run of ops: its other uses would only add noise
            edges.add((src, dst))
            g.edge(src, dst)
    if any(c in ("GR001", "GR002") for c in graph_codes):
        used.add("leak")
    label_lines = [x for x in (title, plan.note) if x]
    if label_lines:
        g.attr(label=_label(label_lines))
    if legend:
        order = [
            "alive",
            "freed",
            "none",
            "leaf_grad",
            "leaf_nograd",
            "output",
            "retain",
            "inplace",
            "leak",
            "group",
        ]
        g.node("gradlint_legend", _legend_html([k for k in order if k in used]), shape="plaintext", style="")
    return g, plan
