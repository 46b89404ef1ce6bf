"""The part of GL003/GL005/GL006/GL010/GL015 that sees a step spread over helpers and methods.

Each rule keeps its own single-body analysis; these functions add what only the
per-file summaries (``semantics/summaries.py``, ``semantics/interproc.py``) can
see, with the rule's own message templates, and never a second diagnostic where
the rule already reported.
"""

from __future__ import annotations

import libcst as cst

from gradlint.static.semantics import interproc
from gradlint.static.semantics.summaries import Summaries


def _already(rule, node: cst.CSTNode) -> bool:
    row = rule.context.position(node).start.line
    return any(d.code == rule.code and d.location.row == row for d in rule.context.diagnostics)


def _line(rule, node: cst.CSTNode) -> int:
    return rule.context.position(node).start.line


def _code(rule, node: cst.CSTNode, limit: int = 60) -> str:
    text = " ".join(rule.context.code_for(node).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def report_gl003(rule) -> None:
    if not interproc.might_step_through_helpers(rule.context.source):
        return
    for f in interproc.accumulated_helper_loss(rule.context.analysis(Summaries)):
        if _already(rule, f.node):
            continue
        value = f.node.value if isinstance(f.node, cst.AugAssign) else f.node
        rule.report(
            f.node,
            rule.message_helpers,
            acc=f.key,
            value=_code(rule, value),
            helper=_code(rule, f.call),
            line=_line(rule, f.call),
            gives="yields" if f.generator else "returns",
            give="yield" if f.generator else "return",
        )


def report_gl005(rule) -> None:
    if not interproc.might_cut_with_data(rule.context.source):
        return
    summaries = rule.context.analysis(Summaries)
    for f in interproc.data_cut_in_time_loop(summaries):
        if not _already(rule, f.node):
            rule.report(f.node, rule.message_time_steps, key=f.key, loop=_line(rule, f.loop))
    for f in interproc.data_write_on_passed_activation(summaries):
        if not _already(rule, f.node):
            rule.report(
                f.node,
                rule.message_passed,
                param=f.param,
                call=_code(rule, f.call.node),
                line=_line(rule, f.call.node),
            )


def report_gl006(rule) -> None:
    if not interproc.might_step_through_helpers(rule.context.source):
        return
    summaries = rule.context.analysis(Summaries)
    for f in interproc.loops_missing_zero_grad(summaries):
        if not _already(rule, f.step.node):
            via = (
                f.step.via[0]
                if f.step.via
                else next(
                    (e.via[0] for e in f.function.effects if e.kind == "backward" and e.via), f.step.node
                )
            )
            rule.report(
                f.step.node,
                rule.message_helpers,
                step=_code(rule, f.step.node),
                loop=_line(rule, f.loop),
                via=_code(rule, via),
                optimizer=f.step.name,
            )
    for f in interproc.optimizer_never_cleared(summaries):
        if not _already(rule, f.step.node):
            cleared = sorted(
                e.name
                for e in f.function.effects
                if e.kind == "zero_grad" and f.function.loop_around(e.index) is not None
            )
            rule.report(
                f.step.node,
                rule.message_other_cleared,
                step=_code(rule, f.step.node),
                loop=_line(rule, f.loop),
                cleared="`, `".join(dict.fromkeys(cleared)),
                optimizer=f.step.name,
            )


def report_gl010(rule) -> None:
    if not interproc.might_step_through_helpers(rule.context.source):
        return
    for f in interproc.freed_graph_reuse(rule.context.analysis(Summaries)):
        if _already(rule, f.later.node):
            continue
        later = f.later.backward.target if f.later.backward is not None else f.later.node
        rule.report(
            f.later.node,
            rule.message_freed,
            loss=_code(rule, later) if later is not None else "this loss",
            source=f.key or f.source.keys[0],
            source_line=_line(rule, f.source.node),
            line=_line(rule, f.first.node),
        )


def report_gl015(rule) -> None:
    if not interproc.might_step_through_helpers(rule.context.source):
        return
    for f in interproc.stale_after_step(rule.context.analysis(Summaries)):
        if _already(rule, f.step.node):
            continue
        rule.report(
            f.step.node,
            rule.message_helpers,
            step=_code(rule, f.step.node),
            attr=f.attr,
            attr_line=_line(rule, f.written.node),
            loss=_code(rule, f.later.backward.target) if f.later.backward.target is not None else "the loss",
            line=_line(rule, f.later.node),
        )
