"""Bad input never crashes gradlint: every kind of broken file, through the engine and the CLI.

The CLI runs with the real rule catalog plus ``AlwaysParse`` (a rule without a
prefilter), so every input really reaches the parser.  Inputs that could crash
the native parser (deep nesting) also run in a real subprocess: a segfault
there would show as a negative return code instead of taking pytest down.
"""

import os
import random
import re
import subprocess
import sys

import libcst as cst
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

import gradlint.rules as registry
from gradlint.cli import cli
from gradlint.static import engine
from gradlint.static.engine import lint_source
from gradlint.static.rule import Rule

REAL_RULES = list(registry.ALL_RULES)


class AlwaysParse(Rule):
    """## What it does
    Test rule: parses every file and flags names called `flagme`.
    """

    code = "GL990"
    name = "test-always-parse"
    message = "flagme"

    def visit_Name(self, node: cst.Name) -> None:
        if node.value == "flagme":
            self.report(node)


ALL = sorted(REAL_RULES + [AlwaysParse], key=lambda r: r.code)
CODES = {r.code for r in ALL} | {"GL000"}


@pytest.fixture(autouse=True)
def registry_with_probe(monkeypatch):
    monkeypatch.setattr(registry, "ALL_RULES", ALL)
    monkeypatch.setattr(registry, "RULES_BY_CODE", {r.code: r for r in ALL})
    monkeypatch.delenv("GRADLINT_EXTRA_RULES", raising=False)


@pytest.fixture
def proj(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def cli_run(*args, input=None):
    r = CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)
    assert "internal error" not in r.stderr and "Traceback" not in r.output
    return r


def concise(*args, input=None):
    return cli_run("--output-format", "concise", "--no-cache", "--select", "ALL", "-j1", *args, input=input)


BAD_FILES = {
    "syntax_error": (b"def f(:\n    loss.backward()\n", "SyntaxError"),
    "not_utf8": (b"x = '\xff\xfe\xfa'\nflagme\n", "Cannot decode"),
    "wrong_declared_encoding": (b"# -*- coding: ascii -*-\nx = '\xc3\xa9'\n", "Cannot decode"),
    "unknown_declared_encoding": (b"# -*- coding: klingon -*-\nx = 1\n", "Cannot decode"),
    "null_bytes": (b"x = 1\n\x00\x01\x02binary\n", "null bytes"),
    "deep_parens": (("x = " + "(" * 5000 + "1" + ")" * 5000 + "\n").encode(), "nested"),
    "long_plus_chain": (("x = " + "1+" * 100000 + "1\n").encode(), ""),
    "deep_attributes": (("x = a" + ".b" * 20000 + "\n").encode(), ""),
    "unterminated_string": (b"x = '''\nflagme\n", "SyntaxError"),
    "tabs_spaces_mix": (b"if x:\n\tif y:\n        flagme\n\tz\n", ""),
    "lone_surrogate_escape": (b"x = '\\ud800'\nflagme\n", None),
    # libcst backtracks exponentially in nested patterns (14 mapping levels: minutes); CPython accepts them.
    "deep_case_pattern": (
        ("match c:\n    case " + '{"a": ' * 14 + "1" + "}" * 14 + ":\n        pass\n").encode(),
        "case",
    ),
    "deep_case_pattern_and_error": (
        ("def f(:\n    pass\nmatch c:\n    case " + "[" * 50 + "x" + "]" * 50 + ":\n        pass\n").encode(),
        "case",
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_file_through_cli_is_gl000(proj, kind):
    data, needle = BAD_FILES[kind]
    (proj / "bad.py").write_bytes(data)
    r = concise("bad.py")
    assert r.exit_code in (0, 1), r.output
    codes = re.findall(r": (GL\d{3}) ", r.stdout)
    assert set(codes) <= CODES
    if needle is not None:
        assert codes[:1] == ["GL000"] and r.exit_code == 1, r.stdout
        assert needle in r.stdout


# Pathological inputs, each with the words of its GL000 message: on every supported
# Python (3.10 has no recursion check in CPython's own compile()), in a real process.
PATHOLOGICAL = {
    "deep_parens": "nested",
    "long_plus_chain": "nested more than",
    "deep_attributes": "nested more than",
    "deep_case_pattern": "`case` pattern nested",
    "deep_case_pattern_and_error": "`case` pattern nested",
}
PATHOLOGICAL_SOURCES = {
    "sum_10k": ("x = " + "a + " * 10000 + "1\n", "nested more than"),  # hung for minutes in libcst on 3.10
    "sum_250k": ("x = " + "1+" * 250000 + "1\n", "nested more than"),  # segfaulted CPython 3.10 itself
    "attributes_10k": ("x = a" + ".b" * 10000 + "\n", "nested more than"),
    "calls_5k": ("x = f" + "(1)" * 5000 + "\n", "nested more than"),
    "not_5k": ("x = " + "not " * 5000 + "y\n", "nested more than"),
    "elif_5k": ("if a:\n    pass\n" + "elif a:\n    pass\n" * 5000, "nested more than"),
    "case_sequence_40": (
        "match c:\n    case " + "[" * 40 + "x" + "]" * 40 + ":\n        pass\n",
        "`case` pattern nested",
    ),
}


def test_deep_nesting_in_a_real_process(proj):
    expected = {kind: needle for kind, needle in PATHOLOGICAL.items()}
    for kind in PATHOLOGICAL:
        (proj / f"{kind}.py").write_bytes(BAD_FILES[kind][0] + b"loss.backward()\n")
    for kind, (src, needle) in PATHOLOGICAL_SOURCES.items():
        (proj / f"{kind}.py").write_text(src + "loss.backward()\n")
        expected[kind] = needle
    for i in range(3):
        (proj / f"ok{i}.py").write_text("loss.backward()\n")
    r = subprocess.run(
        [sys.executable, "-m", "gradlint", "--no-cache", "-j2", "--output-format", "concise", "."],
        cwd=proj,
        capture_output=True,
        timeout=300,
        env={**os.environ, "GRADLINT_TIME_BUDGET": "120"},
    )
    assert r.returncode == 1, r.stderr
    assert b"Traceback" not in r.stderr
    lines = r.stdout.decode().splitlines()
    for kind, needle in expected.items():
        (line,) = [line for line in lines if line.startswith(f"{kind}.py:")]
        # the guard's own GL000, not the watchdog's (a crash or a timeout in a worker)
        assert " GL000 " in line and needle in line, line
        assert "crashed" not in line and "too complex to analyse in" not in line, line


def test_deeply_nested_loops_are_analysed(proj):
    """30 nested loops: the loop analysis must not be exponential in the depth."""
    src = "def train(model, opt, x, h):\n" + "".join(
        "    " * (i + 1) + f"for i{i} in range(2):\n" for i in range(30)
    )
    indent = "    " * 31
    for stmt in [
        "out, h = model(x, h)",
        "loss = crit(out)",
        "opt.zero_grad()",
        "loss.backward()",
        "opt.step()",
    ]:
        src += f"{indent}{stmt}\n"
    src += f"{indent}p = out.detach()\n{indent}p.clamp_(min=0)\n"  # line 38: GL004
    (proj / "loops.py").write_text(src)
    r = subprocess.run(
        [sys.executable, "-m", "gradlint", "--no-cache", "-j1", "--output-format", "concise", "loops.py"],
        cwd=proj,
        capture_output=True,
        timeout=120,
        env={**os.environ, "GRADLINT_TIME_BUDGET": "15"},
    )
    assert b"Traceback" not in r.stderr
    assert r.returncode == 1 and b"GL000" not in r.stdout, r.stdout
    assert b"loops.py:38:" in r.stdout and b"GL004" in r.stdout


def test_huge_file(proj, monkeypatch):
    monkeypatch.setattr(engine, "MAX_FILE_BYTES", 1000)
    (proj / "big.py").write_text("x = 1\n" * 400)
    r = concise("big.py")
    assert r.exit_code == 1 and "GL000 File is" in r.stdout and "limit" in r.stdout


def test_empty_and_whitespace_files_are_silent(proj):
    (proj / "empty.py").write_bytes(b"")
    (proj / "blank.py").write_bytes(b"\n\n   \n")
    (proj / "bom.py").write_bytes(b"\xef\xbb\xbfx = 1\n")
    r = concise(".")
    assert r.exit_code == 0 and r.stderr == ""


def test_directory_named_like_a_python_file(proj):
    (proj / "x.py").mkdir()
    (proj / "x.py" / "inner.py").write_text("flagme\n")
    r = concise(".")
    assert r.exit_code == 1 and "x.py/inner.py:1:1: GL990" in r.stdout
    r = concise("x.py")
    assert "x.py/inner.py:1:1: GL990" in r.stdout


def test_broken_symlink(proj):
    (proj / "dangling.py").symlink_to(proj / "nowhere.py")
    (proj / "ok.py").write_text("x = 1\n")
    r = concise(".")
    assert r.exit_code == 0 and "skipping" in r.stderr and "is a broken symlink" in r.stderr
    r = concise("dangling.py")
    assert r.exit_code == 2
    assert r.stderr == (
        f"gradlint: error: path 'dangling.py' is a broken symlink (to '{proj / 'nowhere.py'}', which does not exist)\n"
    )
    r = concise("missing.py")
    assert r.exit_code == 2 and r.stderr == "gradlint: error: path 'missing.py' does not exist\n"


def test_symlink_loops(proj):
    (proj / "pkg").mkdir()
    (proj / "pkg" / "a.py").write_text("flagme\n")
    (proj / "pkg" / "loop").symlink_to(proj / "pkg")
    (proj / "pkg" / "up").symlink_to(proj)
    (proj / "self.py").symlink_to(proj / "self.py")  # a link to itself
    r = concise(".")
    assert r.exit_code == 1
    assert r.stdout.count("GL990") == 1  # each folder walked once
    assert "self.py': it is a symlink loop" in r.stderr


def test_broken_and_looping_symlinks_named_on_the_command_line_fail_alike(proj):
    (proj / "dangling.py").symlink_to(proj / "nowhere.py")
    (proj / "self.py").symlink_to(proj / "self.py")
    (proj / "a.py").symlink_to(proj / "b.py")
    (proj / "b.py").symlink_to(proj / "a.py")
    (proj / "ok.py").write_text("flagme\n")
    for name, why in [
        ("dangling.py", "is a broken symlink"),
        ("self.py", "is a symlink loop"),
        ("a.py", "is a symlink loop"),
    ]:
        r = concise("ok.py", name)
        assert r.exit_code == 2, name
        assert r.stdout == "" and r.stderr.startswith(f"gradlint: error: path '{name}' {why}"), r.stderr


def test_unreadable_file_simulated(proj, monkeypatch):
    import gradlint.static.runner as runner

    (proj / "secret.py").write_text("flagme\n")
    (proj / "ok.py").write_text("flagme\n")

    real = runner.read_bytes

    def deny(path):
        if path.endswith("secret.py"):
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(runner, "read_bytes", deny)
    r = concise(".")
    assert r.exit_code == 1
    assert "secret.py:1:1: GL000 Cannot read file: Permission denied" in r.stdout
    assert "ok.py:1:1: GL990" in r.stdout
    assert "cannot read" in r.stderr and "secret.py" in r.stderr and "Permission denied" in r.stderr


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads every file")
def test_unreadable_file_real(proj):
    p = proj / "secret.py"
    p.write_text("x = 1\n")
    p.chmod(0)
    try:
        r = concise(".")
    finally:
        p.chmod(0o644)
    assert r.exit_code == 1 and "GL000 Cannot read file" in r.stdout and "Permission denied" in r.stderr


def test_unreadable_folder(proj):
    if os.geteuid() == 0:
        pytest.skip("root reads every folder")
    d = proj / "closed"
    d.mkdir()
    (d / "a.py").write_text("x = 1\n")
    d.chmod(0)
    try:
        r = concise(".")
    finally:
        d.chmod(0o755)
    assert r.exit_code == 0 and "cannot read folder" in r.stderr


# -- fuzzing ------------------------------------------------------------------

SEEDS = [
    "import torch\nfor x, y in loader:\n    loss = model(x).sum()\n    loss.backward()\n    opt.step()\n",
    "class M(nn.Module):\n    def forward(self, x):\n        with torch.no_grad():\n            return self.l(x)\n",
    "def train(m, opt, scaler):\n    for i, b in enumerate(dl):\n        with torch.autocast('cuda'):\n"
    "            l = m(b) / 4\n        scaler.scale(l).backward()\n        if (i + 1) % 4 == 0:\n"
    "            scaler.step(opt); scaler.update(); opt.zero_grad()\n",
    "total = 0\nfor b in dl:\n    loss = crit(m(b), t)\n    total += loss\n    loss.backward(retain_graph=True)\n",
    "x = torch.zeros(3, requires_grad=True)\ny = (x * 2).detach()\nflagme(y.grad)\n",
    "@torch.no_grad()\ndef evaluate(m):\n    m.eval()\n    return [m(b) for b in dl]\n",
    "async def f():\n    async with a as b:\n        await flagme(*args, **kw)\nlambda: (yield)\n",
    "match cmd:\n    case [x, *rest] if x > 0:\n        pass\n    case {'k': v}:\n        flagme\n",
]
TOKEN = re.compile(r"\w+|[ \t]+|\n|.", re.S)
JUNK = [
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ":",
    "\n",
    "    ",
    "\t",
    "'",
    '"',
    "'''",
    "\\",
    "#",
    "@",
    "lambda",
    "yield",
    "with",
    "for",
    "backward",
    "no_grad",
    "=",
    "==",
    "**",
    ",",
    ";",
    "\x00",
    "\r",
    "\ufeff",
    "é",
    "\udcff",
]


def mutate(seed: str, ops, rnd: random.Random) -> bytes:
    toks = TOKEN.findall(seed)
    for op in ops:
        if not toks:
            toks = [""]
        i = rnd.randrange(len(toks))
        if op == "delete":
            del toks[i]
        elif op == "insert":
            toks.insert(i, rnd.choice(JUNK))
        elif op == "duplicate":
            j = min(len(toks), i + rnd.randint(1, 8))
            toks[i:i] = toks[i:j]
        elif op == "nest":
            depth = rnd.choice([1, 3, 50, 300])
            toks.insert(i, "(" * depth)
            toks.insert(min(len(toks), i + 2), ")" * depth)
        elif op == "swap":
            j = rnd.randrange(len(toks))
            toks[i], toks[j] = toks[j], toks[i]
    text = "".join(toks)
    data = text.encode("utf-8", errors="surrogateescape" if False else "replace")
    if "bytes" in ops:
        pos = rnd.randrange(len(data) + 1)
        data = data[:pos] + bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 6))) + data[pos:]
    return data


programs = st.builds(
    mutate,
    st.sampled_from(SEEDS),
    st.lists(
        st.sampled_from(["delete", "insert", "duplicate", "nest", "swap", "bytes"]), min_size=0, max_size=8
    ),
    st.randoms(use_true_random=False),
)


def check_diagnostics(diags, data):
    nlines = data.count(b"\n") + 2
    for d in diags:
        assert d.code in CODES
        assert d.location.row >= 1 and d.location.column >= 1
        assert d.location.row <= nlines or d.code == "GL000"


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(programs)
def test_fuzz_engine_never_raises(data):
    diags = lint_source("fuzz.py", data, ALL)
    check_diagnostics(diags, data)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(programs)
def test_fuzz_cli_never_crashes(data):
    r = CliRunner().invoke(
        cli,
        ["-", "--output-format", "json", "--no-cache", "--select", "ALL"],
        input=data,
        catch_exceptions=False,
    )
    assert r.exit_code in (0, 1), r.output
    assert "internal error" not in r.stderr and "Traceback" not in r.output
    import json

    for d in json.loads(r.stdout):
        assert d["code"] in CODES
