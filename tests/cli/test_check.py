"""`gradlint [check]`: commands, flags, output formats and exit codes."""

import json
import re

import pytest

BACKWARD = "import torch\n\ndef step(loss):\n    loss.backward()\n"


def write(root, rel, text):
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_default_command_and_explicit_check_agree(project, run):
    write(project, "src/a.py", BACKWARD)
    implicit = run("src", "--output-format", "concise", "--no-cache")
    explicit = run("check", "src", "--output-format", "concise", "--no-cache")
    assert implicit.exit_code == explicit.exit_code == 1
    assert implicit.stdout == explicit.stdout
    assert "src/a.py:4:5: GL901 `loss.backward()` called" in implicit.stdout


def test_options_before_path_still_reach_check(project, run):
    write(project, "a.py", BACKWARD)
    r = run("--output-format", "concise", "--no-cache", "a.py")
    assert r.exit_code == 1 and "a.py:4:5: GL901" in r.stdout


def test_no_paths_means_current_folder(project, run):
    write(project, "pkg/a.py", BACKWARD)
    r = run("--output-format", "concise", "--no-cache")
    assert r.exit_code == 1 and "pkg/a.py:4:5: GL901" in r.stdout


def test_clean_tree_exits_zero(project, run):
    write(project, "a.py", "x = 1\n")
    r = run("check", ".", "--no-cache")
    assert r.exit_code == 0
    assert "All checks passed!" in r.stdout


def test_version_and_help(run):
    r = run("--version")
    assert r.exit_code == 0 and re.fullmatch(r"gradlint \d+\.\d+\.\d+\S*\n", r.stdout)
    r = run("--help")
    assert r.exit_code == 0 and "rule" in r.stdout and "check" in r.stdout
    r = run("check", "--help")
    for flag in (
        "--select",
        "--ignore",
        "--extend-select",
        "--per-file-ignores",
        "--output-format",
        "--statistics",
        "--exit-zero",
        "--no-cache",
        "--cache-dir",
        "--jobs",
        "--quiet",
        "--fix",
        "--unsafe-fixes",
        "--diff",
        "--fix-only",
        "--show-fixes",
        "--stdin-filename",
    ):
        assert flag in r.stdout, flag


def test_missing_path_is_usage_error(project, run):
    r = run("nope.py")
    assert r.exit_code == 2
    assert r.stderr == "gradlint: error: path 'nope.py' does not exist\n"
    assert r.stdout == ""


def test_unknown_flag_is_usage_error(project, run):
    r = run("--no-such-flag", ".")
    assert r.exit_code == 2 and "no such option" in r.stderr.lower()


@pytest.mark.parametrize("option", ["--select", "--ignore", "--extend-select"])
def test_unknown_selector_exits_2(project, run, option):
    write(project, "a.py", BACKWARD)
    r = run(option, "GL999", ".")
    assert r.exit_code == 2
    assert r.stderr.strip() == "gradlint: error: unknown rule selector 'GL999'"


def test_unknown_selector_in_per_file_ignores_option(project, run):
    write(project, "a.py", BACKWARD)
    r = run("--per-file-ignores", "a.py:GL999", ".")
    assert r.exit_code == 2 and "unknown rule selector 'GL999'" in r.stderr
    r = run("--per-file-ignores", "nocolon", ".")
    assert r.exit_code == 2 and "PATTERN:CODE" in r.stderr


def test_select_ignore_extend_select(project, run):
    write(project, "a.py", BACKWARD + "print(1)\noptimizer.zero_grad()\n")

    def codes(*args):
        r = run("--output-format", "json", "--no-cache", *args, ".")
        return sorted({d["code"] for d in json.loads(r.stdout)})

    assert codes() == ["GL901", "GL902"]  # GL950 is off by default
    assert codes("--select", "GL901") == ["GL901"]
    assert codes("--ignore", "GL901") == ["GL902"]
    assert codes("--extend-select", "GL950") == ["GL901", "GL902", "GL950"]
    assert codes("--select", "ALL") == ["GL901", "GL902", "GL950"]
    assert codes("--select", "GL9") == ["GL901", "GL902"]  # a prefix never enables off-by-default rules
    assert codes("--select", "GL901,GL950") == ["GL901", "GL950"]
    assert codes("--select", "GL901", "--select", "GL902") == ["GL901", "GL902"]
    assert codes("--select", "ALL", "--ignore", "GL90") == ["GL950"]
    # More specific wins, whichever list it is in.
    assert codes("--select", "GL901", "--ignore", "GL9") == ["GL901"]


def test_per_file_ignores_option(project, run):
    write(project, "a.py", BACKWARD)
    write(project, "tests/test_a.py", BACKWARD)
    r = run("--per-file-ignores", "tests/*:GL901", "--output-format", "concise", "--no-cache", ".")
    assert "a.py:4:5: GL901" in r.stdout
    assert "tests/test_a.py" not in r.stdout


def test_gl000_cannot_be_ignored(project, run):
    write(project, "bad.py", "loss.backward(\n")
    r = run("--ignore", "GL000", "--output-format", "concise", "--no-cache", ".")
    assert r.exit_code == 1
    assert "bad.py:" in r.stdout and "GL000 SyntaxError" in r.stdout
    assert "cannot be ignored" in r.stderr
    r = run("--per-file-ignores", "bad.py:GL000", "--output-format", "concise", "--no-cache", ".")
    assert "GL000" in r.stdout
    r = run("--extend-exclude", "bad.py", "--no-cache", ".")
    assert r.exit_code == 0


def test_noqa_through_cli(project, run):
    write(
        project,
        "a.py",
        "loss.backward()  # noqa\nl2.backward()  # noqa: GL901\nl3.backward()  # noqa: GL902\n"
        "l4.backward()\n",
    )
    r = run("--output-format", "concise", "--no-cache", ".")
    assert [l.split(":")[1] for l in r.stdout.splitlines() if "GL901" in l] == ["3", "4"]
    write(project, "a.py", "# gradlint: noqa\nloss.backward()\n")
    assert run("--no-cache", ".").exit_code == 0


def test_full_format_shows_source_caret_and_fix(project, run):
    write(project, "a.py", BACKWARD)
    r = run("--no-cache", "a.py")
    assert r.exit_code == 1
    out = r.stdout
    assert "a.py:4:5: GL901 [*] `loss.backward()` called" in out
    assert "4 |     loss.backward()" in out
    assert "  |     ^^^^^^^^^^^^^^^ GL901" in out
    assert "= help: Use `backward_checked()`" in out
    assert "+ 4 |     loss.backward_checked()" in out
    assert "Found 1 error." in out
    assert "[*] 1 fixable with the `--fix` option." in out


def test_full_format_unsafe_fix_is_hidden_without_unsafe_fixes(project, run):
    write(project, "a.py", "print(1)\n")
    r = run("--no-cache", "a.py")
    assert "GL902 `print` call" in r.stdout and "[*]" not in r.stdout.split("\n")[0]
    assert "1 hidden fix can be enabled with the `--unsafe-fixes` option" in r.stdout
    r = run("--no-cache", "--unsafe-fixes", "a.py")
    assert "GL902 [*] `print` call" in r.stdout


def test_full_format_caret_keeps_tabs(project, run):
    write(project, "a.py", "if x:\n\tloss.backward()\n")
    r = run("--no-cache", "a.py")
    assert "  | \t^^^^^^^^^^^^^^^ GL901" in r.stdout


def test_concise_format(project, run):
    write(project, "a.py", BACKWARD)
    write(project, "b.py", "print(2)\n")
    r = run("--output-format", "concise", "--no-cache", ".")
    lines = r.stdout.splitlines()
    assert lines[:2] == [
        "a.py:4:5: GL901 `loss.backward()` called; call `loss.backward_checked()` instead",
        "b.py:1:1: GL902 `print` call; use `log` instead",
    ]
    assert "Found 2 errors." in lines


def test_json_format_uses_ruff_field_names(project, run):
    write(project, "a.py", BACKWARD)
    r = run("--output-format", "json", "--no-cache", ".")
    assert r.exit_code == 1
    (d,) = json.loads(r.stdout)
    assert set(d) >= {"code", "message", "filename", "location", "end_location", "fix", "url", "noqa_row"}
    assert d["code"] == "GL901"
    assert d["filename"] == str(project / "a.py")
    assert d["location"] == {"row": 4, "column": 5}
    assert d["end_location"] == {"row": 4, "column": 20}
    assert d["noqa_row"] == 4
    assert d["fix"]["applicability"] == "safe"
    assert d["fix"]["message"] == "Use `backward_checked()`"
    assert d["fix"]["edits"] == [
        {
            "content": "backward_checked",
            "location": {"row": 4, "column": 10},
            "end_location": {"row": 4, "column": 18},
        }
    ]


def test_json_empty_and_json_lines(project, run):
    write(project, "a.py", "x = 1\n")
    r = run("--output-format", "json", "--no-cache", ".")
    assert r.exit_code == 0 and json.loads(r.stdout) == []
    write(project, "a.py", BACKWARD + "print(1)\n")
    r = run("--output-format", "json-lines", "--no-cache", ".")
    objs = [json.loads(l) for l in r.stdout.splitlines()]
    assert [o["code"] for o in objs] == ["GL901", "GL902"]
    full = json.loads(run("--output-format", "json", "--no-cache", ".").stdout)
    assert objs == full


def test_github_format(project, run):
    write(project, "a.py", BACKWARD)
    r = run("--output-format", "github", "--no-cache", ".")
    assert r.stdout == (
        "::error title=gradlint (GL901),file=a.py,line=4,col=5,endLine=4,endColumn=20::"
        "a.py:4:5: GL901 `loss.backward()` called; call `loss.backward_checked()` instead\n"
    )


def test_github_format_escapes(project, run, monkeypatch):
    import testrules

    monkeypatch.setattr(testrules.FlagPrint, "message", "50% of\nthis")
    write(project, "a,b.py", "print(1)\n")
    r = run("--output-format", "github", "--no-cache", ".")
    assert "file=a%2Cb.py," in r.stdout and "GL902 50%25 of%0Athis" in r.stdout


def test_statistics(project, run):
    write(project, "a.py", BACKWARD + "x.backward()\nprint(1)\n")
    r = run("--statistics", "--no-cache", ".")
    assert r.exit_code == 1
    assert r.stdout.splitlines() == ["2\tGL901\t[*] test-backward", "1\tGL902\t    test-print"]
    r = run("--statistics", "--output-format", "json", "--no-cache", ".")
    assert json.loads(r.stdout) == [
        {"code": "GL901", "name": "test-backward", "count": 2, "fixable": True},
        {"code": "GL902", "name": "test-print", "count": 1, "fixable": False},
    ]


def test_exit_zero_and_quiet(project, run):
    write(project, "a.py", BACKWARD)
    r = run("--exit-zero", "--no-cache", ".")
    assert r.exit_code == 0 and "GL901" in r.stdout
    r = run("-q", "--output-format", "concise", "--no-cache", ".")
    assert r.exit_code == 1
    assert r.stdout == "a.py:4:5: GL901 `loss.backward()` called; call `loss.backward_checked()` instead\n"
    write(project, "a.py", "x = 1\n")
    r = run("-q", "--no-cache", ".")
    assert r.exit_code == 0 and r.stdout == ""


def test_output_file(project, run):
    write(project, "a.py", BACKWARD)
    r = run("--output-format", "json", "-o", "out/report.json", "--no-cache", ".")
    assert r.exit_code == 1 and r.stdout == ""
    assert json.loads((project / "out" / "report.json").read_text())[0]["code"] == "GL901"


def test_env_output_format(project, run, monkeypatch):
    write(project, "a.py", BACKWARD)
    monkeypatch.setenv("GRADLINT_OUTPUT_FORMAT", "json")
    assert json.loads(run("--no-cache", ".").stdout)[0]["code"] == "GL901"


def test_default_excludes_and_explicit_file(project, run):
    for folder in (
        ".git",
        ".venv",
        "venv",
        "build",
        "dist",
        "__pycache__",
        "node_modules",
        ".tox",
        "lib/site-packages",
    ):
        write(project, f"{folder}/x.py", BACKWARD)
    write(project, "ok/x.py", BACKWARD)
    r = run("--output-format", "concise", "--no-cache", ".")
    assert [l.split(":")[0] for l in r.stdout.splitlines() if "GL901" in l] == ["ok/x.py"]
    # A file named explicitly is linted even inside an excluded folder (as in ruff) ...
    r = run("--output-format", "concise", "--no-cache", "build/x.py")
    assert "build/x.py:4:5: GL901" in r.stdout
    # ... unless --force-exclude.
    r = run("--output-format", "concise", "--no-cache", "--force-exclude", "build/x.py")
    assert r.exit_code == 0 and "GL901" not in r.stdout


def test_exclude_options(project, run):
    write(project, "gen/x_pb2.py", BACKWARD)
    write(project, "src/a.py", BACKWARD)
    write(project, "src/legacy/old.py", BACKWARD)
    r = run("--extend-exclude", "*_pb2.py,src/legacy", "--output-format", "concise", "--no-cache", ".")
    assert [l.split(":")[0] for l in r.stdout.splitlines() if "GL901" in l] == ["src/a.py"]
    write(project, "build/b.py", BACKWARD)
    r = run(
        "--exclude", "gen", "--output-format", "concise", "--no-cache", "."
    )  # replaces defaults: build/ is in
    files = [l.split(":")[0] for l in r.stdout.splitlines() if "GL901" in l]
    assert "build/b.py" in files and "gen/x_pb2.py" not in files


def test_only_py_files_are_collected_from_folders(project, run):
    write(project, "a.txt", BACKWARD)
    write(project, "b.pyi", BACKWARD)
    write(project, "c.py", BACKWARD)
    r = run("--output-format", "concise", "--no-cache", ".")
    assert [l.split(":")[0] for l in r.stdout.splitlines() if "GL901" in l] == ["c.py"]
    # Named explicitly, any file is linted.
    r = run("--output-format", "concise", "--no-cache", "a.txt")
    assert "a.txt:4:5: GL901" in r.stdout


def test_no_python_files_warns_and_passes(project, run):
    (project / "empty").mkdir()
    r = run("--no-cache", "empty")
    assert r.exit_code == 0 and "no Python files found" in r.stderr


def test_internal_error_is_one_line_exit_2(project, run, monkeypatch):
    import gradlint.static.runner as runner

    def boom(*a, **k):
        raise RuntimeError("kaputt\nsecond line")

    monkeypatch.setattr(runner, "lint_paths", boom)
    write(project, "a.py", "x = 1\n")
    r = run("--no-cache", ".")
    assert r.exit_code == 2
    assert r.stderr == "gradlint: internal error: RuntimeError: kaputt second line (please report)\n"


def test_jobs_validation(project, run):
    r = run("-j", "0", ".")
    assert r.exit_code == 2


def test_project_inside_a_folder_with_an_excluded_name(tmp_path, run, monkeypatch):
    root = tmp_path / "build" / "proj"
    write(root, "pyproject.toml", "[tool.gradlint]\nextend-exclude = ['tmp*']\n")
    write(root, "src/a.py", BACKWARD)
    monkeypatch.chdir(root)
    for args in ([], ["--force-exclude"]):
        r = run("--output-format", "concise", "--no-cache", *args, ".")
        assert "src/a.py:4:5: GL901" in r.stdout, args
