"""Helpers the runtime scenario tests share: a line found by its `# <name>` marker, and the one finding of a code."""


def markers_in(path):
    """``line_of(name)`` for the file at ``path``: the 1-based line ending in ``# <name>`` (exactly one)."""
    with open(path) as f:
        src = f.read().splitlines()

    def line_of(marker):
        hits = [i + 1 for i, l in enumerate(src) if l.rstrip().endswith("# <" + marker + ">")]
        assert len(hits) == 1, marker
        return hits[0]

    return line_of


def only(t, code):
    fs = [f for f in t.findings if f.code == code]
    assert len(fs) == 1, [str(f) for f in t.findings]
    return fs[0]
