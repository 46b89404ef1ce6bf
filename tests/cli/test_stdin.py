"""`-` reads the source from stdin."""

import json

from test_check import BACKWARD, write


def test_stdin_default_name(project, run):
    r = run("-", "--output-format", "concise", input=BACKWARD)
    assert r.exit_code == 1
    assert r.stdout.startswith("-:4:5: GL901 ")


def test_stdin_filename_for_display_config_and_per_file_ignores(project, run):
    (project / "pyproject.toml").write_text("[tool.gradlint]\nper-file-ignores = {'tests/*' = ['GL901']}\n")
    r = run("-", "--stdin-filename", "src/train.py", "--output-format", "concise", input=BACKWARD)
    assert r.exit_code == 1 and r.stdout.startswith("src/train.py:4:5: GL901 ")
    r = run("-", "--stdin-filename", "tests/test_train.py", "--output-format", "concise", input=BACKWARD)
    assert r.exit_code == 0 and "GL901" not in r.stdout


def test_stdin_full_format_shows_source(project, run):
    r = run("-", "--stdin-filename", "t.py", input=BACKWARD)
    assert "4 |     loss.backward()" in r.stdout and "^^^^^^^^^^^^^^^ GL901" in r.stdout


def test_stdin_json_filename_and_clean_input(project, run):
    r = run("-", "--stdin-filename", "t.py", "--output-format", "json", input=BACKWARD)
    assert json.loads(r.stdout)[0]["filename"] == str(project / "t.py")
    r = run("-", input="x = 1\n")
    assert r.exit_code == 0


def test_stdin_bad_input(project, run):
    r = run("-", "--output-format", "concise", input=b"loss.backward()\x00\n")
    assert r.exit_code == 1 and "GL000 File contains null bytes" in r.stdout
    r = run("-", "--output-format", "concise", input=b"print('\xff')\n")
    assert r.exit_code == 1 and "GL000 Cannot decode" in r.stdout


def test_stdin_cannot_mix_with_paths(project, run):
    write(project, "a.py", "x = 1\n")
    r = run("-", "a.py", input="x = 1\n")
    assert r.exit_code == 2 and "cannot be combined" in r.stderr


def test_stdin_filename_alone_reads_stdin(project, run):
    write(project, "a.py", "x = 1\n")  # not linted: stdin is
    r = run("--stdin-filename", "t.py", "--output-format", "concise", input=BACKWARD)
    assert r.exit_code == 1 and r.stdout.startswith("t.py:4:5: GL901")
