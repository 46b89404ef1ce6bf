"""One walk, four rule sets: what each analysis counts as a read of an expression."""

from __future__ import annotations

import libcst as cst
import pytest

from gradlint.static.semantics.reads import ANY_READ, HELPER_READS, LOOP_READS, graph_reads
from gradlint.static.semantics.state import Sanitisers


def _state_reads():
    return Sanitisers(cst.parse_module("def repackage(h):\n    return h.detach()\n")).reads


@pytest.mark.parametrize(
    "code, rules, expected",
    [
        # every key, callees and indices included; `self` alone is not a key
        ("model(x[i]) + self.w.grad", ANY_READ, {"model", "x", "i", "self.w"}),
        # the helpers' cuts: a cut method's receiver goes, its arguments stay
        ("a.detach() + b.new_zeros(n) + len(c) + d.data", HELPER_READS, {"n"}),
        # loops: dotted names with prefixes, values only, comprehension variables bound
        ("out.logits + sum(l for l in losses) + (x > 0)", LOOP_READS, {"out", "out.logits", "losses"}),
        ("self.encoder.forward(x).view(b, -1)", LOOP_READS, {"x"}),
        # state: tensor methods' receivers only, the file's detaching helpers cut
        ("h.clone() + model.encode(x) + repackage(c)", None, {"h", "x"}),
        ("[s.detach() for s in hs] + [t * 2 for t in ts]", None, {"ts"}),
    ],
)
def test_graph_reads(code, rules, expected):
    rules = rules if rules is not None else _state_reads()
    assert graph_reads(cst.parse_expression(code), rules) == expected
