"""Configuration discovery, validation errors, and CLI-over-config precedence."""

import json

import pytest
from test_check import BACKWARD, write


def codes_in(run, *args):
    r = run("--output-format", "json", "--no-cache", *args)
    assert r.exit_code in (0, 1), r.output
    return sorted({(d["filename"].rsplit("/", 1)[-1], d["code"]) for d in json.loads(r.stdout)})


def test_config_found_by_walking_up(project, run):
    (project / "pyproject.toml").write_text("[tool.gradlint]\nignore = ['GL901']\n")
    write(project, "src/pkg/deep/a.py", BACKWARD + "print(1)\n")
    # Run from a folder without any config of its own, pointing below the project.
    assert codes_in(run, "src/pkg/deep") == [("a.py", "GL902")]
    assert codes_in(run, "src/pkg/deep/a.py") == [("a.py", "GL902")]


def test_config_discovered_from_checked_path_not_cwd(project, run, tmp_path, monkeypatch):
    (project / "pyproject.toml").write_text("[tool.gradlint]\nselect = ['GL902']\n")
    write(project, "a.py", BACKWARD + "print(1)\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert codes_in(run, project / "a.py") == [("a.py", "GL902")]


def test_pyproject_without_table_is_skipped(project, run):
    (project / "pyproject.toml").write_text("[tool.gradlint]\nignore = ['GL902']\n")
    sub = project / "sub"
    write(project, "sub/pyproject.toml", "[project]\nname = 'sub'\n")
    write(project, "sub/a.py", "print(1)\n" + BACKWARD)
    assert codes_in(run, sub) == [("a.py", "GL901")]


def test_gradlint_toml_beats_pyproject_and_dot_file_beats_both(project, run):
    (project / "pyproject.toml").write_text("[tool.gradlint]\nselect = ['GL901']\n")
    write(project, "a.py", BACKWARD + "print(1)\n")
    (project / "gradlint.toml").write_text("select = ['GL902']\n")
    assert codes_in(run, ".") == [("a.py", "GL902")]
    (project / ".gradlint.toml").write_text("select = ['GL901', 'GL902']\n")
    assert codes_in(run, ".") == [("a.py", "GL901"), ("a.py", "GL902")]


def test_nearer_config_wins(project, run):
    (project / "pyproject.toml").write_text("[tool.gradlint]\nselect = ['GL901']\n")
    write(project, "sub/gradlint.toml", "select = ['GL902']\n")
    write(project, "sub/a.py", BACKWARD + "print(1)\n")
    assert codes_in(run, "sub") == [("a.py", "GL902")]


def test_explicit_config_option(project, run, tmp_path):
    cfg = tmp_path / "other.toml"
    cfg.write_text("select = ['GL902']\n")
    write(project, "a.py", BACKWARD + "print(1)\n")
    assert codes_in(run, "--config", cfg, ".") == [("a.py", "GL902")]
    r = run("--config", tmp_path / "missing.toml", ".")
    assert r.exit_code == 2 and "does not exist" in r.stderr


def test_cli_overrides_config(project, run):
    (project / "pyproject.toml").write_text(
        "[tool.gradlint]\nselect = ['GL901']\nignore = ['GL902']\nper-file-ignores = {'a.py' = ['GL950']}\n"
    )
    write(project, "a.py", BACKWARD + "print(1)\noptimizer.zero_grad()\n")
    assert codes_in(run, ".") == [("a.py", "GL901")]
    # --select replaces the configured select (and starts the selection afresh).
    assert codes_in(run, "--select", "GL902", ".") == [("a.py", "GL902")]
    # --extend-select adds to it; the configured per-file ignore still applies.
    assert codes_in(run, "--extend-select", "GL950", ".") == [("a.py", "GL901")]
    # --per-file-ignores replaces the configured table.
    assert codes_in(run, "--extend-select", "GL950", "--per-file-ignores", "a.py:GL901", ".") == [
        ("a.py", "GL950")
    ]
    # --ignore on top of the configured select.
    assert codes_in(run, "--ignore", "GL901", ".") == []


def test_config_extend_select_off_by_default_rule(project, run):
    (project / "pyproject.toml").write_text("[tool.gradlint]\nextend-select = ['GL950']\n")
    write(project, "a.py", "optimizer.zero_grad()\n")
    assert codes_in(run, ".") == [("a.py", "GL950")]


def test_config_exclude_and_extend_exclude(project, run):
    write(project, "gen/g.py", BACKWARD)
    write(project, "src/a.py", BACKWARD)
    write(project, "build/b.py", BACKWARD)
    (project / "pyproject.toml").write_text("[tool.gradlint]\nextend-exclude = ['gen']\n")
    assert codes_in(run, ".") == [("a.py", "GL901")]
    (project / "pyproject.toml").write_text("[tool.gradlint]\nexclude = ['gen']\n")
    assert codes_in(run, ".") == [("a.py", "GL901"), ("b.py", "GL901")]


def test_config_per_file_ignores_globs(project, run):
    (project / "pyproject.toml").write_text(
        "[tool.gradlint.per-file-ignores]\n'tests/**/*.py' = ['GL901']\n'conftest.py' = ['GL9']\n"
    )
    write(project, "tests/unit/test_x.py", BACKWARD)
    write(project, "pkg/conftest.py", BACKWARD + "print(1)\n")
    write(project, "pkg/a.py", BACKWARD)
    assert codes_in(run, ".") == [("a.py", "GL901")]


def test_relative_patterns_are_relative_to_the_config_folder(project, run, monkeypatch):
    (project / "pyproject.toml").write_text("[tool.gradlint]\nextend-exclude = ['src/gen']\n")
    write(project, "src/gen/a.py", BACKWARD)
    write(project, "src/b.py", BACKWARD)
    monkeypatch.chdir(project / "src")
    assert codes_in(run, ".") == [("b.py", "GL901")]


@pytest.mark.parametrize(
    "toml, expected",
    [
        ("[tool.gradlint\nselect = 1\n", "pyproject.toml: invalid TOML"),
        (
            "[tool.gradlint]\nselct = ['GL901']\n",
            "pyproject.toml: [tool.gradlint] key 'selct': unknown key (did you mean 'select'?)",
        ),
        ("[tool.gradlint]\nwhatever = 1\n", "key 'whatever': unknown key (known keys:"),
        ("[tool.gradlint]\nselect = 'GL901'\n", "key 'select': expected a list of strings, got str 'GL901'"),
        (
            "[tool.gradlint]\nignore = ['GL901', 3]\n",
            "key 'ignore': expected a list of strings, got a list containing int 3",
        ),
        ("[tool.gradlint]\nselect = ['GL999']\n", "key 'select': unknown rule selector 'GL999'"),
        (
            "[tool.gradlint]\nextend-select = ['nonsense!']\n",
            "key 'extend-select': unknown rule selector 'nonsense!'",
        ),
        ("[tool.gradlint]\nper-file-ignores = ['x']\n", "key 'per-file-ignores': expected a table"),
        (
            "[tool.gradlint.per-file-ignores]\n'a.py' = 'GL901'\n",
            "pattern 'a.py' expects a list of rule codes",
        ),
        (
            "[tool.gradlint.per-file-ignores]\n'a.py' = ['GL998']\n",
            "key 'per-file-ignores': pattern 'a.py': unknown rule selector 'GL998'",
        ),
        ("[tool.gradlint]\nexclude = {a = 1}\n", "key 'exclude': expected a list of strings"),
        ("[tool]\ngradlint = 3\n", "'tool.gradlint' must be a table"),
    ],
)
def test_bad_config_is_one_line_exit_2(project, run, toml, expected):
    (project / "pyproject.toml").write_text(toml)
    write(project, "a.py", BACKWARD)
    r = run(".")
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("gradlint: error: ")
    assert str(project / "pyproject.toml") in r.stderr
    assert expected in r.stderr
    assert "Traceback" not in r.output and r.stdout == ""


def test_bad_gradlint_toml(project, run):
    (project / "gradlint.toml").write_text("select = [\n")
    write(project, "a.py", BACKWARD)
    r = run(".")
    assert r.exit_code == 2 and "gradlint.toml: invalid TOML" in r.stderr


def test_malformed_foreign_pyproject_is_skipped(project, run):
    # A broken pyproject.toml that does not mention gradlint is not ours to judge.
    write(project, "sub/pyproject.toml", "[project\n")
    write(project, "sub/a.py", BACKWARD)
    r = run("--no-cache", "sub")
    assert r.exit_code == 1 and "GL901" in r.stdout


def test_cache_dir_config_key(project, run):
    (project / "pyproject.toml").write_text("[tool.gradlint]\ncache-dir = '.mycache'\n")
    write(project, "a.py", BACKWARD)
    run(".")
    assert (project / ".mycache").is_dir() and not (project / ".gradlint_cache").exists()


# -- hierarchical configuration (ruff: the nearest configuration file applies) ----


def _two_projects(root):
    write(root, "alpha/pyproject.toml", "[tool.gradlint]\nselect = ['GL901']\n")
    write(root, "beta/gradlint.toml", "select = ['GL902']\n")
    for name in ("alpha", "beta"):
        write(root, f"{name}/src/m.py", BACKWARD + "print(1)\n")


def paths_codes(run, *args):
    r = run("--output-format", "json", "--no-cache", *args)
    assert r.exit_code in (0, 1), r.output
    return sorted({(d["filename"].split("/")[-3], d["code"]) for d in json.loads(r.stdout)})


def test_each_file_uses_its_nearest_config(project, run):
    _two_projects(project)
    assert paths_codes(run, ".") == [("alpha", "GL901"), ("beta", "GL902")]
    # Also when the files are named one by one (pre-commit passes file names).
    assert paths_codes(run, "alpha/src/m.py", "beta/src/m.py") == [("alpha", "GL901"), ("beta", "GL902")]


def test_nearest_config_applies_whole_no_cascade(project, run):
    (project / "pyproject.toml").write_text("[tool.gradlint]\nignore = ['GL902']\n")
    write(project, "top.py", BACKWARD + "print(1)\n")
    write(project, "sub/gradlint.toml", "extend-select = ['GL950']\n")
    write(project, "sub/a.py", BACKWARD + "print(1)\noptimizer.zero_grad()\n")
    # The root's ignore does not reach into sub/ (as in ruff, settings do not cascade).
    assert codes_in(run, ".") == [
        ("a.py", "GL901"),
        ("a.py", "GL902"),
        ("a.py", "GL950"),
        ("top.py", "GL901"),
    ]


def test_command_line_overrides_every_config(project, run):
    _two_projects(project)
    assert paths_codes(run, "--select", "GL902", ".") == [("alpha", "GL902"), ("beta", "GL902")]
    assert paths_codes(run, "--extend-select", "GL902", ".") == [
        ("alpha", "GL901"),
        ("alpha", "GL902"),
        ("beta", "GL902"),
    ]


def test_explicit_config_applies_to_every_file(project, run, tmp_path):
    _two_projects(project)
    cfg = tmp_path / "shared.toml"
    cfg.write_text("select = ['GL901', 'GL902']\n")
    assert paths_codes(run, "--config", cfg, ".") == [
        ("alpha", "GL901"),
        ("alpha", "GL902"),
        ("beta", "GL901"),
        ("beta", "GL902"),
    ]


def test_isolated_ignores_every_config_even_a_broken_one(project, run):
    _two_projects(project)
    write(project, "beta/gradlint.toml", "select = [\n")
    assert run("--no-cache", ".").exit_code == 2
    assert paths_codes(run, "--isolated", ".") == [
        ("alpha", "GL901"),
        ("alpha", "GL902"),
        ("beta", "GL901"),
        ("beta", "GL902"),
    ]
    r = run("--isolated", "--config", "x.toml", ".")
    assert r.exit_code == 2 and "cannot be combined" in r.stderr


def test_nested_config_excludes_and_patterns_are_relative_to_it(project, run):
    (project / "pyproject.toml").write_text("[tool.gradlint]\n")
    write(
        project, "sub/gradlint.toml", "extend-exclude = ['gen']\n[per-file-ignores]\n'tests/*' = ['GL901']\n"
    )
    write(project, "sub/gen/g.py", BACKWARD)
    write(project, "sub/tests/t.py", BACKWARD + "print(1)\n")
    write(project, "gen/top_gen.py", BACKWARD)
    write(project, "tests/top_t.py", BACKWARD)
    assert codes_in(run, ".") == [("t.py", "GL902"), ("top_gen.py", "GL901"), ("top_t.py", "GL901")]


def test_broken_nested_config_found_while_walking_is_exit_2(project, run):
    write(project, "a.py", BACKWARD)
    write(project, "deep/er/gradlint.toml", "selct = ['GL901']\n")
    write(project, "deep/er/b.py", BACKWARD)
    r = run("--no-cache", ".")
    assert r.exit_code == 2 and r.stdout == ""
    assert "deep/er/gradlint.toml: key 'selct': unknown key (did you mean 'select'?)" in r.stderr
    assert "Traceback" not in r.output


# -- extend ------------------------------------------------------------------------


def test_extend_merges_a_shared_base(project, run):
    write(
        project,
        "base.toml",
        "ignore = ['GL902']\nextend-exclude = ['gen']\n[per-file-ignores]\n'legacy/*' = ['GL901']\n",
    )
    write(
        project, "svc/pyproject.toml", "[tool.gradlint]\nextend = '../base.toml'\nextend-select = ['GL950']\n"
    )
    write(project, "svc/a.py", BACKWARD + "print(1)\noptimizer.zero_grad()\n")
    write(project, "svc/gen/g.py", BACKWARD)
    write(project, "svc/legacy/l.py", BACKWARD)
    # The base's ignore, exclude and per-file-ignores apply (relative to svc/, as in ruff).
    assert codes_in(run, "svc") == [("a.py", "GL901"), ("a.py", "GL950")]


def test_extend_child_select_starts_afresh_and_lists_combine(project, run):
    write(project, "base.toml", "select = ['GL901']\n[per-file-ignores]\n'a.py' = ['GL901']\n")
    write(project, "svc/gradlint.toml", "extend = '../base.toml'\nselect = ['GL901', 'GL902']\n")
    write(project, "svc/a.py", BACKWARD + "print(1)\n")
    write(project, "svc/b.py", BACKWARD)
    assert codes_in(run, "svc") == [("a.py", "GL902"), ("b.py", "GL901")]
    # extend-per-file-ignores adds to the inherited table; per-file-ignores would replace it.
    write(
        project,
        "svc/gradlint.toml",
        "extend = '../base.toml'\nselect = ['GL901', 'GL902']\n[extend-per-file-ignores]\n'b.py' = ['GL901']\n",
    )
    assert codes_in(run, "svc") == [("a.py", "GL902")]
    write(
        project,
        "svc/gradlint.toml",
        "extend = '../base.toml'\nselect = ['GL901', 'GL902']\n[per-file-ignores]\n'b.py' = ['GL901']\n",
    )
    assert codes_in(run, "svc") == [("a.py", "GL901"), ("a.py", "GL902")]


def test_extend_chain_of_three(project, run):
    write(project, "a.toml", "ignore = ['GL902']\n")
    write(project, "b.toml", "extend = 'a.toml'\nextend-select = ['GL950']\n")
    write(project, "svc/gradlint.toml", "extend = '../b.toml'\n")
    write(project, "svc/x.py", BACKWARD + "print(1)\noptimizer.zero_grad()\n")
    assert codes_in(run, "svc") == [("x.py", "GL901"), ("x.py", "GL950")]


@pytest.mark.parametrize(
    "files, expected",
    [
        (
            {"gradlint.toml": "extend = 'missing.toml'\n"},
            "key 'extend': extended file 'missing.toml' does not exist",
        ),
        ({"gradlint.toml": "extend = 'gradlint.toml'\n"}, "key 'extend': circular extend"),
        (
            {"gradlint.toml": "extend = 'b.toml'\n", "b.toml": "extend = 'gradlint.toml'\n"},
            "key 'extend': circular extend",
        ),
        ({"gradlint.toml": "extend = 3\n"}, "key 'extend': expected a path string, got int 3"),
        ({"gradlint.toml": "extend = '..'\n"}, "key 'extend': '..' is a folder; name a configuration file"),
        (
            {"gradlint.toml": "extend = 'b.toml'\n", "b.toml": "select = ['GL999']\n"},
            "b.toml: key 'select': unknown rule selector 'GL999'",
        ),
        ({"gradlint.toml": "extend = 'b.toml'\n", "b.toml": "select = [\n"}, "b.toml: invalid TOML"),
        ({"gradlint.toml": "respect-gitignore = 'yes'\n"}, "key 'respect-gitignore': expected true or false"),
        ({"gradlint.toml": "fixable = ['GL999']\n"}, "key 'fixable': unknown rule selector 'GL999'"),
        ({"gradlint.toml": "unfixable = 'GL901'\n"}, "key 'unfixable': expected a list of strings"),
        (
            {"gradlint.toml": "[extend-per-file-ignores]\n'a.py' = ['GL999']\n"},
            "key 'extend-per-file-ignores': pattern 'a.py': unknown rule selector 'GL999'",
        ),
    ],
)
def test_bad_extend_and_new_keys_are_one_line_exit_2(project, run, files, expected):
    for name, text in files.items():
        write(project, f"svc/{name}", text)
    write(project, "svc/a.py", BACKWARD)
    r = run("--no-cache", "svc")
    assert r.exit_code == 2, r.output
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("gradlint: error: ")
    assert expected in r.stderr
    assert "Traceback" not in r.output and r.stdout == ""


def test_explicit_config_may_extend_relative_to_itself(project, run, tmp_path):
    shared = tmp_path / "shared"
    write(shared, "base.toml", "ignore = ['GL902']\n")
    write(shared, "ci.toml", "extend = 'base.toml'\nextend-select = ['GL950']\n")
    write(project, "a.py", BACKWARD + "print(1)\noptimizer.zero_grad()\n")
    assert codes_in(run, "--config", shared / "ci.toml", ".") == [("a.py", "GL901"), ("a.py", "GL950")]


def test_extend_include_combines_with_the_base(project, run):
    write(project, "base.toml", "extend-include = ['*.pyw']\n")
    write(project, "svc/gradlint.toml", "extend = '../base.toml'\nextend-include = ['*.pyx']\n")
    for name in ("a.py", "b.pyw", "c.pyx", "d.txt"):
        write(project, f"svc/{name}", BACKWARD)
    assert codes_in(run, "svc") == [("a.py", "GL901"), ("b.pyw", "GL901"), ("c.pyx", "GL901")]
    r = run("--show-settings", "svc/a.py")
    assert 'include = ["*.py", "*.ipynb", "*.pyw", "*.pyx"]' in r.stdout.splitlines()
