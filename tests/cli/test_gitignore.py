"""`.gitignore` support: git's pattern semantics, checked against git itself and ruff."""

import os
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest
from test_check import BACKWARD, write

from gradlint.static.gitignore import GitIgnore, parse_line

GIT = shutil.which("git")
RUFF = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "ruff"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """No user-level gitconfig or global excludes leak into the tests."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    return home


def matches(pattern, path, is_dir=False):
    p = parse_line(pattern)
    assert p is not None, pattern
    target = path if p.anchored else path.rsplit("/", 1)[-1]
    hit = p.regex.match(target) is not None and (is_dir or not p.dir_only)
    return hit


@pytest.mark.parametrize(
    "pattern,path,is_dir,expected",
    [
        ("*.py", "a/b/c.py", False, True),
        ("*.py", "a/b/c.pyx", False, False),
        ("/top.py", "top.py", False, True),
        ("/top.py", "sub/top.py", False, False),
        ("logs/", "x/logs", True, True),
        ("logs/", "x/logs", False, False),  # trailing slash: folders only
        ("doc/*.py", "doc/a.py", False, True),
        ("doc/*.py", "doc/sub/a.py", False, False),  # "*" does not cross "/"
        ("doc/*.py", "x/doc/a.py", False, False),  # a middle slash anchors
        ("**/gen", "gen", True, True),
        ("**/gen", "a/b/gen", True, True),
        ("a/**/b", "a/b", True, True),
        ("a/**/b", "a/x/y/b", True, True),
        ("a/**", "a/x/y.py", False, True),
        ("a/**", "a", True, False),
        ("fo?.py", "foo.py", False, True),
        ("fo?.py", "fo/.py", False, False),
        ("[ab].py", "b.py", False, True),
        ("[!ab].py", "b.py", False, False),
        ("[!ab].py", "c.py", False, True),
        ("\\#x.py", "#x.py", False, True),
        ("\\!x.py", "!x.py", False, True),
        ("x.py\\ ", "x.py ", False, True),
        ("x.py   ", "x.py", False, True),  # unescaped trailing spaces are dropped
        ("a**b.py", "aXb.py", False, True),  # other "**" are plain "*"
        ("a**b.py", "a/b.py", False, False),
        # doubled `-`/`&`/`~`/`|` in a class: literal characters or a range's end, not re's future set operations
        ("[+--].py", "-.py", False, True),
        ("[+--].py", ",.py", False, True),
        ("[&&].py", "&.py", False, True),
        ("[~~|].py", "|.py", False, True),
        ("[!--].py", "-.py", False, False),
    ],
)
def test_pattern_semantics(pattern, path, is_dir, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a FutureWarning from re would be printed to the user
        assert matches(pattern, path, is_dir) is expected


@pytest.mark.parametrize("line", ["", "   ", "# comment", "!", "/"])
def test_lines_without_patterns(line):
    assert parse_line(line) is None


def _git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


TREE_GITIGNORE = """\
# comment line
*.gen.py
!keep.gen.py
/top_only.py
logs/
docs/*.py
a/**/deep.py
data/**/raw
\\#hash.py
spaced.py{SPACES}
sub/skipped/
""".format(SPACES="   ")

TREE_FILES = [
    "main.py",
    "x.gen.py",
    "keep.gen.py",
    "top_only.py",
    "pkg/top_only.py",
    "logs/a.py",
    "pkg/logs/b.py",
    "docs/c.py",
    "docs/inner/d.py",
    "pkg/docs/e.py",
    "a/deep.py",
    "a/x/y/deep.py",
    "a/x/other.py",
    "data/raw/f.py",
    "data/2024/raw/g.py",
    "data/2024/cooked/h.py",
    "#hash.py",
    "spaced.py",
    "sub/skipped/i.py",
    "sub/kept/j.py",
    "sub/local.py",
    "sub/anch.py",
    "sub/inner/anch.py",
    "sub/reinc.gen.py",
    "info_excluded.py",
    "untracked_ok.py",
]


def make_tree(root):
    write(root, ".gitignore", TREE_GITIGNORE)
    write(root, "sub/.gitignore", "local.py\n/anch.py\n!reinc.gen.py\n")
    for f in TREE_FILES:
        write(root, f, "x = 1\n")
    _git("init", "-q", cwd=root)
    write(root, ".git/info/exclude", "info_excluded.py\n")


@pytest.mark.skipif(GIT is None, reason="git is not installed")
def test_same_files_as_git(tmp_path, run, monkeypatch):
    root = tmp_path / "repo"
    make_tree(root)
    monkeypatch.chdir(root)
    expected = sorted(
        line
        for line in _git("ls-files", "-o", "--exclude-standard", cwd=root).splitlines()
        if line.endswith(".py")
    )
    r = run("--show-files", "--isolated", ".")
    assert r.exit_code == 0, r.output
    got = sorted(os.path.relpath(line, root) for line in r.stdout.splitlines())
    assert got == expected
    # The tree is not trivial: git itself ignores about half of it.
    assert 8 < len(expected) < len(TREE_FILES) - 8


@pytest.mark.skipif(GIT is None or not RUFF.exists(), reason="git or ruff is not installed")
def test_same_files_as_ruff(tmp_path, run, monkeypatch):
    root = tmp_path / "repo"
    make_tree(root)
    monkeypatch.chdir(root)
    # Also ignored paths named explicitly: both lint them, with or without --force-exclude.
    for args in (["."], ["logs", "x.gen.py", "sub"], ["--force-exclude", "logs", "x.gen.py"]):
        out = subprocess.run(
            [str(RUFF), "check", "--isolated", "--no-cache", "--show-files", *args],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout
        expected = sorted(os.path.relpath(line.strip(), root) for line in out.splitlines() if line.strip())
        r = run("--show-files", "--isolated", *args)
        got = sorted(os.path.relpath(line, root) for line in r.stdout.splitlines())
        assert got == expected, args
        assert expected, args


@pytest.fixture
def repo(project):
    subprocess.run(["git", "init", "-q"], cwd=project, check=True) if GIT else (project / ".git").mkdir()
    return project


def lint_files(run, *args):
    r = run("--output-format", "concise", "--no-cache", *args)
    assert r.exit_code in (0, 1), r.output
    return sorted({line.split(":")[0] for line in r.stdout.splitlines() if "GL901" in line})


def test_gitignore_respected_by_default_and_switchable(repo, run):
    write(repo, ".gitignore", "generated/\nscratch_*.py\n")
    write(repo, "src/a.py", BACKWARD)
    write(repo, "generated/b.py", BACKWARD)
    write(repo, "src/scratch_c.py", BACKWARD)
    assert lint_files(run, ".") == ["src/a.py"]
    everything = ["generated/b.py", "src/a.py", "src/scratch_c.py"]
    assert lint_files(run, "--no-respect-gitignore", ".") == everything
    write(repo, "pyproject.toml", "[tool.gradlint]\nrespect-gitignore = false\n")
    assert lint_files(run, ".") == everything
    # The command line beats the configuration.
    assert lint_files(run, "--respect-gitignore", ".") == ["src/a.py"]


def test_explicitly_named_paths_are_linted_even_if_ignored(repo, run):
    write(repo, ".gitignore", "generated/\nscratch_*.py\n")
    write(repo, "generated/b.py", BACKWARD)
    write(repo, "scratch_c.py", BACKWARD)
    assert lint_files(run, "scratch_c.py") == ["scratch_c.py"]
    assert lint_files(run, "generated") == ["generated/b.py"]


def test_gitignore_outside_a_repository_is_not_used_but_dot_ignore_is(project, run):
    # As in ruff: a .gitignore counts only inside a git repository (an exported
    # tarball is linted whole); a .ignore file counts everywhere.
    write(project, ".gitignore", "b.py\n")
    write(project, ".ignore", "c.py\n")
    for name in ("a.py", "b.py", "c.py"):
        write(project, name, BACKWARD)
    assert lint_files(run, ".") == ["a.py", "b.py"]
    (project / ".git").mkdir()
    assert lint_files(run, ".") == ["a.py"]


def test_nested_repository_starts_afresh(repo, run):
    write(repo, ".gitignore", "*_tmp.py\n")
    write(repo, "x_tmp.py", BACKWARD)
    write(repo, "vendor/lib/.git/HEAD", "ref: refs/heads/main\n")
    write(repo, "vendor/lib/y_tmp.py", BACKWARD)
    write(repo, "vendor/lib/.gitignore", "z.py\n")
    write(repo, "vendor/lib/z.py", BACKWARD)
    assert lint_files(run, ".") == ["vendor/lib/y_tmp.py"]


def test_global_excludes_file(repo, run, isolated_home):
    write(isolated_home, ".config/git/ignore", "global_*.py\n")
    write(repo, "global_a.py", BACKWARD)
    write(repo, "b.py", BACKWARD)
    assert lint_files(run, ".") == ["b.py"]
    # core.excludesFile wins over the default location.
    write(isolated_home, ".gitconfig", "[core]\n\texcludesFile = ~/my_ignores\n")
    write(isolated_home, "my_ignores", "b.py\n")
    assert lint_files(run, ".") == ["global_a.py"]


def test_deeper_gitignore_overrides_shallower(tmp_path):
    root = tmp_path / "r"
    (root / ".git").mkdir(parents=True)
    write(root, ".gitignore", "*.gen.py\n")
    write(root, "pkg/.gitignore", "!keep.gen.py\n")
    gi = GitIgnore(use_global=False)
    assert gi.ignored(str(root / "pkg" / "x.gen.py"), False)
    assert not gi.ignored(str(root / "pkg" / "keep.gen.py"), False)
    assert gi.ignored(str(root / "keep.gen.py"), False)


def test_any_line_parses_without_raising():
    from hypothesis import given, settings, strategies as st

    alphabet = st.sampled_from(list("ab*?[]!^\\/# -.\r\t]&~|") + ["**", "[!", "[]", "\\ "])

    @settings(max_examples=200, deadline=None)
    @given(st.lists(alphabet, max_size=12).map("".join), st.sampled_from(["a", "a/b.py", "x/[a]/b", "*"]))
    def check(line, path):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            p = parse_line(line)
        if p is not None:
            p.regex.match(path)

    check()
