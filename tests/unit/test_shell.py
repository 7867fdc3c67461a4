"""pyfleet.shell: controller tools and the one line their failures become (real sh, no network)."""

import pytest

from pyfleet import shell
from pyfleet.errors import PyfleetError


def test_tool_is_the_venvs_first_then_the_one_on_path(tmp_path, monkeypatch):
    venv, elsewhere = tmp_path / "venv-bin", tmp_path / "bin"
    venv.mkdir()
    elsewhere.mkdir()
    for where in (venv, elsewhere):
        (where / "thing").write_text("#!/bin/sh\n")
        (where / "thing").chmod(0o755)
    monkeypatch.setattr(shell, "VENV_BIN", venv)
    monkeypatch.setenv("PATH", str(elsewhere))
    assert shell.tool("thing") == str(venv / "thing")
    (venv / "thing").unlink()
    assert shell.tool("thing") == str(elsewhere / "thing")
    with pytest.raises(PyfleetError) as caught:
        shell.tool("nothing-by-this-name")
    assert str(caught.value) == "nothing-by-this-name is not installed; run ./bootstrap.sh"


def test_the_venv_is_the_repos():
    assert (shell.ROOT / "pyfleet" / "shell.py").is_file() and (shell.ROOT / "pyproject.toml").is_file()
    assert shell.VENV_BIN == shell.ROOT / ".venv" / "bin"


@pytest.mark.parametrize(
    "text, line",
    [
        ("a\nb\n", "b"),
        ("a\n  b  \n\n   \n", "b"),
        ("", "no output"),
        (None, "no output"),
        ("\n \n", "no output"),
    ],
)
def test_last_line(text, line):
    assert shell.last_line(text) == line


def test_run_returns_the_process_with_its_output_as_text():
    proc = shell.run(["sh", "-c", "cat; echo err >&2", "x"], what="w", fix="f", input="in\n")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "in\n", "err\n")


def test_run_passes_its_environment_over_ours_and_converts_arguments(monkeypatch, tmp_path):
    monkeypatch.setenv("PYFLEET_OURS", "ours")
    monkeypatch.setenv("PYFLEET_BOTH", "ours")
    proc = shell.run(
        ["sh", "-c", 'echo "$PYFLEET_OURS $PYFLEET_BOTH $PYFLEET_NEW $1"', "sh", tmp_path],
        what="w",
        fix="f",
        env={"PYFLEET_BOTH": "theirs", "PYFLEET_NEW": "new"},
    )
    assert proc.stdout == f"ours theirs new {tmp_path}\n"
    assert shell.run(["sh", "-c", 'echo "$PYFLEET_OURS"'], what="w", fix="f").stdout == "ours\n"


def test_a_failure_is_one_line_with_stderrs_last_line_and_the_fix():
    with pytest.raises(PyfleetError) as caught:
        shell.run(
            ["sh", "-c", "echo out; echo first >&2; echo 'the reason' >&2; exit 3"], what="building x", fix="see y"
        )
    assert str(caught.value) == "building x failed: the reason; see y"


def test_a_failure_without_stderr_says_stdouts_last_line_or_no_output():
    with pytest.raises(PyfleetError, match=r"^w failed: said on stdout; f$"):
        shell.run(["sh", "-c", "echo 'said on stdout'; exit 1"], what="w", fix="f")
    with pytest.raises(PyfleetError, match=r"^w failed: no output; f$"):
        shell.run(["sh", "-c", "exit 1"], what="w", fix="f")


def test_an_uncaptured_failure_gives_the_exit_code(capfd):
    with pytest.raises(PyfleetError, match=r"^w failed: exit code 4; f$"):
        shell.run(["sh", "-c", "echo shown; exit 4"], what="w", fix="f", capture=False)
    assert capfd.readouterr().out == "shown\n"


def test_a_failure_unchecked_is_returned():
    proc = shell.run(["sh", "-c", "echo x >&2; exit 5"], what="w", fix="f", check=False)
    assert (proc.returncode, proc.stderr) == (5, "x\n")


def test_a_missing_program_and_a_timeout_are_one_line_each(tmp_path):
    missing = tmp_path / "no-such-tool"
    with pytest.raises(PyfleetError) as caught:
        shell.run([missing, "arg"], what="w", fix="f")
    assert str(caught.value) == f"w failed: {missing} is not installed; run ./bootstrap.sh"
    assert caught.value.__suppress_context__
    with pytest.raises(PyfleetError) as caught:
        shell.run(["sleep", "5"], what="waiting", fix="try later", timeout=0.2)
    assert str(caught.value) == "waiting timed out after 0.2 s; try later"
    assert caught.value.__suppress_context__
