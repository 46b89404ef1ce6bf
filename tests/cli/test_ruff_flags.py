"""The flags a ruff user expects: --show-files, --show-settings, --add-noqa, --extend-per-file-ignores,
--fixable/--unfixable, -v/-s/-q, --watch."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from test_check import BACKWARD, write

from gradlint.cli.check import CheckOptions, run_once
from gradlint.cli.watching import watch_loop
from gradlint.static.add_noqa import add_noqa_to_text

SRC = BACKWARD + "print(1)\n"
HERE = Path(__file__).resolve().parent


def subprocess_env(**extra):
    """A child `python -m gradlint` that sees the test rules (not `from conftest import`:
    another test folder's conftest module may hold that name)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(HERE.parents[1]), env.get("PYTHONPATH", "")])
    env["GRADLINT_EXTRA_RULES"] = "testrules"
    env.pop("GRADLINT_OUTPUT_FORMAT", None)
    env.update(extra)
    return env


def concise(run, *args):
    r = run("--output-format", "concise", "--no-cache", *args)
    return r, [line for line in r.stdout.splitlines() if ": GL" in line]


# -- --show-files / --show-settings ----------------------------------------------------


def test_show_files_lists_what_would_be_linted(project, run):
    write(project, "b/x.py", BACKWARD)
    write(project, "a.py", "x = 1\n")
    write(project, "build/skip.py", BACKWARD)
    write(project, "notes.txt", "")
    r = run("--show-files", ".")
    assert r.exit_code == 0
    assert r.stdout.splitlines() == [str(project / "a.py"), str(project / "b" / "x.py")]
    assert not (project / ".gradlint_cache").exists()  # nothing was linted


def test_show_settings_of_the_first_file(project, run):
    write(project, "base.toml", "ignore = ['GL902']\n")
    write(project, "sub/gradlint.toml", "extend = '../base.toml'\nunfixable = ['GL901']\n")
    write(project, "sub/a.py", BACKWARD)
    r = run("--show-settings", "sub")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == f"Resolved settings for: {project / 'sub' / 'a.py'}"
    assert lines[1] == f"Settings path: {project / 'sub' / 'gradlint.toml'}"
    assert f'extends = ["{project / "base.toml"}"]' in lines
    assert 'rules = ["GL901"]' in lines
    assert "fixable = []" in lines
    assert "respect-gitignore = true" in lines
    r = run("--show-settings", "--isolated", "--extend-select", "GL950", "sub")
    assert "Settings path: (none: defaults)" in r.stdout
    assert 'rules = ["GL901", "GL902", "GL950"]' in r.stdout.splitlines()


def test_show_settings_without_files_is_an_error(project, run):
    (project / "empty").mkdir()
    r = run("--show-settings", "empty")
    assert r.exit_code == 2 and "no files to show settings for" in r.stderr


# -- --add-noqa ----------------------------------------------------------------------------


def test_add_noqa_exact_text_merge_and_idempotent(project, run):
    src = (
        "import torch\n"
        "\n"
        "def step(loss):\n"
        "    loss.backward()\n"
        "    print(loss)  # why: debugging\n"
        "    loss.backward(); print(2)  # noqa: GL950\n"
        "    loss.backward()  # noqa\n"
    )
    a = write(project, "a.py", src)
    r = run("--add-noqa", "--no-cache", ".")
    assert r.exit_code == 0, r.output
    assert r.stderr == "Added 3 noqa directives.\n"
    assert a.read_text() == (
        "import torch\n"
        "\n"
        "def step(loss):\n"
        "    loss.backward()  # noqa: GL901\n"
        "    print(loss)  # why: debugging  # noqa: GL902\n"
        "    loss.backward(); print(2)  # noqa: GL901, GL902, GL950\n"
        "    loss.backward()  # noqa\n"
    )
    # Everything is silenced now; a second run changes nothing.
    r, found = concise(run, ".")
    assert r.exit_code == 0 and found == []
    before = a.stat().st_mtime_ns
    r = run("--add-noqa", "--no-cache", ".")
    assert r.exit_code == 0 and r.stderr == "Added 0 noqa directives.\n"
    assert a.stat().st_mtime_ns == before


def test_add_noqa_keeps_crlf_bom_and_skips_lines_that_cannot_take_a_comment(project, run):
    src = (
        "\ufeffx = 1\r\n"
        "loss.backward()\r\n"
        'y = f(loss.backward(), """\r\n'  # this line ends inside a string
        '""")\r\n'
        "z = loss.backward() + \\\r\n"  # and this one in a backslash continuation
        "    1\r\n"
    )
    a = project / "a.py"
    a.write_bytes(src.encode("utf-8"))
    r = run("--add-noqa", "--no-cache", "a.py")
    assert r.exit_code == 0
    assert a.read_bytes().decode("utf-8") == src.replace(
        "loss.backward()\r\ny", "loss.backward()  # noqa: GL901\r\ny"
    )
    assert "a.py: line 3: a comment cannot go there" in r.stderr
    assert "a.py: line 5: a comment cannot go there" in r.stderr
    assert "Added 1 noqa directive." in r.stderr


def test_add_noqa_leaves_a_read_only_file_alone(project, run):
    a = write(project, "a.py", SRC)
    a.chmod(0o444)
    try:
        r = run("--add-noqa", "--no-cache", ".")
    finally:
        a.chmod(0o644)
    assert r.exit_code == 0 and "read-only" in r.stderr
    assert a.read_text() == SRC


def test_add_noqa_text_level_rules():
    # Codes sorted and merged; a blanket noqa is left as it is; other comment text kept.
    text, changed, skipped = add_noqa_to_text(
        "a = 1  # noqa:GL2 trailing words\nb = 2  # NOQA\nc = 3\n",
        {1: {"GL1"}, 2: {"GL5"}, 3: {"GL3", "GL1"}},
    )
    assert text == "a = 1  # noqa: GL1, GL2 trailing words\nb = 2  # NOQA\nc = 3  # noqa: GL1, GL3\n"
    assert changed == 2 and skipped == []


@pytest.mark.parametrize("flag", ["--fix", "--diff", "--fix-only"])
def test_add_noqa_conflicts(project, run, flag):
    write(project, "a.py", SRC)
    r = run("--add-noqa", flag, ".")
    assert r.exit_code == 2 and "cannot be combined" in r.stderr
    assert (project / "a.py").read_text() == SRC


# -- --extend-per-file-ignores, --fixable/--unfixable --------------------------------------


def test_extend_per_file_ignores_adds_to_the_configured_table(project, run):
    (project / "pyproject.toml").write_text("[tool.gradlint.per-file-ignores]\n'a.py' = ['GL902']\n")
    write(project, "a.py", SRC)
    write(project, "b.py", SRC)
    _, found = concise(run, ".")
    assert sorted(line.split(": ")[1].split()[0] + "@" + line.split(":")[0] for line in found) == [
        "GL901@a.py",
        "GL901@b.py",
        "GL902@b.py",
    ]
    _, found = concise(run, "--extend-per-file-ignores", "b.py:GL901", ".")
    assert sorted(line.split(":")[0] + " " + line.split()[1] for line in found) == [
        "a.py GL901",
        "b.py GL902",
    ]
    r = run("--extend-per-file-ignores", "b.py:GL999", ".")
    assert r.exit_code == 2 and "unknown rule selector 'GL999'" in r.stderr
    r = run("--extend-per-file-ignores", "nocolon", ".")
    assert r.exit_code == 2 and "--extend-per-file-ignores" in r.stderr


def test_unfixable_rules_are_neither_offered_nor_applied(project, run):
    a = write(project, "a.py", SRC)
    r, found = concise(run, "--unfixable", "GL901", ".")
    assert "fixable with the `--fix` option" not in r.stdout
    r = run("--fix", "--unfixable", "GL901", "--no-cache", ".")
    assert a.read_text() == SRC
    (project / "pyproject.toml").write_text("[tool.gradlint]\nunfixable = ['GL9']\nfixable = ['GL901']\n")
    # More specific wins: GL901 stays fixable.
    run("--fix", "--no-cache", ".")
    assert a.read_text() == SRC.replace("loss.backward()", "loss.backward_checked()")


def test_fixable_limits_fixes_to_the_listed_rules(project, run):
    a = write(project, "a.py", SRC)
    r = run("--fix", "--unsafe-fixes", "--fixable", "GL902", "--no-cache", "--output-format", "concise", ".")
    assert a.read_text() == SRC.replace("print(1)", "log(1)")
    assert "a.py:4:5: GL901" in r.stdout
    r = run("--fixable", "GL999", ".")
    assert r.exit_code == 2 and "unknown rule selector 'GL999'" in r.stderr


def test_json_has_no_fix_for_unfixable_rules(project, run):
    write(project, "a.py", SRC)
    r = run("--output-format", "json", "--no-cache", "--unfixable", "GL901", ".")
    by_code = {d["code"]: d for d in json.loads(r.stdout)}
    assert by_code["GL901"]["fix"] is None and by_code["GL902"]["fix"] is not None


# -- -q / -s / -v ----------------------------------------------------------------------------


def test_silent_prints_nothing_but_keeps_the_exit_code(project, run):
    write(project, "a.py", SRC)
    (project / "empty").mkdir()
    for args in (["."], ["--statistics", "."], ["empty"]):
        r = run("-s", "--no-cache", *args)
        assert r.stdout == "" and r.stderr == "", args
    assert run("-s", "--no-cache", ".").exit_code == 1
    assert run("--silent", "--no-cache", "empty").exit_code == 0
    # Errors are still errors.
    r = run("-s", "--select", "GL999", ".")
    assert r.exit_code == 2 and "GL999" in r.stderr


def test_quiet_prints_diagnostics_only(project, run):
    write(project, "a.py", SRC)
    r = run("-q", "--no-cache", "--output-format", "concise", ".")
    assert r.exit_code == 1 and "Found" not in r.stdout and "a.py:4:5: GL901" in r.stdout


def test_verbose_tells_what_happens_on_stderr(project, run):
    write(project, "a.py", SRC)
    r = run("-v", "--no-cache", "--output-format", "concise", ".")
    assert r.exit_code == 1
    assert "configuration " + str(project / "pyproject.toml") in r.stderr
    assert "found 1 file to lint" in r.stderr
    assert "linted 1 file(s)" in r.stderr
    plain = run("--no-cache", "--output-format", "concise", ".")
    assert r.stdout == plain.stdout  # the report itself is unchanged


# -- --watch ----------------------------------------------------------------------------------


def test_watch_relints_on_change_in_process(project, capsys):
    a = write(project, "a.py", "x = 1\n")
    runs = []

    def counting_run(opts):
        runs.append(a.read_text())
        return run_once(opts)

    edits = iter(["x = 1\nloss.backward()\n"])

    def sleep(_):
        text = next(edits, None)
        if text is not None:
            a.write_text(text)
            os.utime(a, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))

    opts = CheckOptions(paths=(".",), output_format="concise", no_cache=True, watch=True)
    code = watch_loop(opts, counting_run, max_changes=1, sleep=sleep)
    assert code == 0
    assert runs == ["x = 1\n", "x = 1\nloss.backward()\n"]
    out = capsys.readouterr().out
    assert "Starting linter in watch mode..." in out and "File change detected..." in out
    assert "All checks passed!" in out and "a.py:2:1: GL901" in out


def test_watch_keeps_going_after_a_config_error(project, capsys):
    write(project, "a.py", "x = 1\n")
    steps = iter(
        [
            lambda: (project / "pyproject.toml").write_text("[tool.gradlint]\nselct = []\n"),
            lambda: (project / "pyproject.toml").write_text("[tool.gradlint]\n"),
        ]
    )

    def sleep(_):
        step = next(steps, None)
        if step:
            step()

    opts = CheckOptions(paths=(".",), output_format="concise", no_cache=True, watch=True)
    assert watch_loop(opts, run_once, max_changes=2, sleep=sleep) == 0
    captured = capsys.readouterr()
    assert "unknown key (did you mean 'select'?)" in captured.err
    assert captured.out.count("All checks passed!") == 2


def test_watch_in_a_real_process_exits_0_on_ctrl_c(project):
    a = write(project, "a.py", "x = 1\n")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gradlint",
            "check",
            "--watch",
            "--no-cache",
            "--output-format",
            "concise",
            ".",
        ],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(GRADLINT_WATCH_INTERVAL="0.1"),
    )
    # A stuck child must fail the test, not hang it: readline() returns "" once it is killed.
    killer = threading.Timer(60, proc.kill)
    killer.start()
    try:
        lines = []
        deadline = time.monotonic() + 60

        def read_until(marker):
            while time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    break
                lines.append(line)
                if marker in line:
                    return
            raise AssertionError(f"no {marker!r} in {lines!r}")

        read_until("Watching for file changes.")
        a.write_text("x = 1\nloss.backward()\n")
        read_until("GL901")
        read_until("Watching for file changes.")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        killer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    text = "".join(lines)
    assert (
        text.index("All checks passed!")
        < text.index("File change detected...")
        < text.index("a.py:2:1: GL901")
    )


@pytest.mark.parametrize("args", [["--watch", "-"], ["--watch", "--diff", "."], ["--add-noqa", "-"]])
def test_watch_and_add_noqa_refuse_what_they_cannot_do(project, run, args):
    r = run(*args, input="x = 1\n")
    assert r.exit_code == 2 and r.stderr.startswith("gradlint: error: ")


def test_add_noqa_leaves_notebooks_alone(project, run):
    import shutil
    from pathlib import Path

    nb = Path(__file__).resolve().parents[2] / "fixtures" / "notebooks" / "buggy_rnn.ipynb"
    shutil.copy(nb, project / "nb.ipynb")
    before = (project / "nb.ipynb").read_bytes()
    r = run("--add-noqa", "--no-cache", "--isolated", "nb.ipynb")
    assert r.exit_code == 0
    assert "nb.ipynb: --add-noqa does not edit notebooks" in r.stderr
    assert (project / "nb.ipynb").read_bytes() == before


def test_watch_ends_with_exit_2_when_the_first_run_fails(project, run):
    r = run("--watch", "--no-cache", "missing.py")
    assert r.exit_code == 2 and "path 'missing.py' does not exist" in r.stderr
    (project / "pyproject.toml").write_text("[tool.gradlint]\nselct = []\n")
    r = run("--watch", "--no-cache", ".")
    assert r.exit_code == 2 and "did you mean 'select'" in r.stderr
