"""pyfleet.suite (`fab test`): the commands each phase runs, and how a phase runs them (real sh, no podman)."""

import os
import time

import pytest

from pyfleet import suite
from pyfleet.errors import PyfleetError

PY = str(suite.VENV_BIN / "python")


@pytest.fixture
def steps(monkeypatch):
    """Every _step call as (name, commands, capture); the phases themselves do nothing."""
    ran = []

    def step(name, *commands, capture=False):
        ran.append((name, [list(c) for c in commands], capture))
        return suite.Result(name, "passed", 0.0)

    monkeypatch.setattr(suite, "_step", step)
    monkeypatch.setattr(suite, "_ensure_images", lambda: {"PYFLEET_IMAGE": "img:12", "PYFLEET_IMAGE_TRIXIE": "img:13"})
    monkeypatch.setattr(suite, "scenarios", lambda: ["web", "celery"])
    monkeypatch.setenv("PYFLEET_MOLECULE_JOBS", "3")
    for name in ("PYFLEET_IMAGE", "PYFLEET_IMAGE_TRIXIE"):
        monkeypatch.setenv(name, "before")
    return ran


def test_the_default_run_has_every_phase_but_mutants_and_its_commands(steps, monkeypatch):
    lanes = []
    real = suite._molecule
    monkeypatch.setattr(suite, "_molecule", lambda names, n: lanes.append(n) or real(names, n))
    results = suite.run()
    assert lanes == [2]  # PYFLEET_MOLECULE_JOBS=3, one lane fewer beside e2e
    e2e = [PY, "-m", "pytest", "-q", "-x", "--durations=12", "tests/e2e"]
    ruff = str(suite.VENV_BIN / "ruff")
    by_name = {name: (commands, capture) for name, commands, capture in steps}
    assert by_name["unit"] == ([[PY, "-m", "pytest", "-q", "tests/unit", "tests/badinput"]], False)
    assert by_name["lint"] == (
        [
            [str(suite.VENV_BIN / "yamllint"), "-s", "."],
            [str(suite.VENV_BIN / "ansible-lint"), "--profile", "production", "-q"],
            [ruff, "check", "."],
            [ruff, "format", "--check", "."],
            [str(suite.VENV_BIN / "actionlint")],
        ],
        False,
    )
    assert by_name["e2e"] == ([e2e], True)  # beside the others: its output whole at its end
    molecule = str(suite.VENV_BIN / "molecule")
    assert by_name["molecule web"] == ([[molecule, "test", "-s", "web"]], True)
    assert by_name["molecule celery"] == ([[molecule, "test", "-s", "celery"]], True)
    assert [r.name for r in results] == ["unit", "lint", "base images", "molecule web", "molecule celery", "e2e"]
    assert results[2].result == "passed" and 0 <= results[2].seconds < 60
    # The base images built are the ones the scenarios' platforms read.
    assert (os.environ["PYFLEET_IMAGE"], os.environ["PYFLEET_IMAGE_TRIXIE"]) == ("img:12", "img:13")


def test_e2e_alone_runs_in_the_foreground(steps):
    assert [r.name for r in suite.run("e2e")] == ["e2e"]
    assert steps == [("e2e", [[PY, "-m", "pytest", "-q", "-x", "--durations=12", "tests/e2e"]], False)]


def test_one_phase_runs_only_that_phase(steps):
    assert [r.name for r in suite.run("unit")] == ["unit"]
    assert [r.name for r in suite.run("lint")] == ["lint"]
    assert os.environ["PYFLEET_IMAGE"] == "before"  # no images without molecule


def test_one_scenario_runs_alone(steps, monkeypatch):
    lanes = []
    real = suite._molecule
    monkeypatch.setattr(suite, "_molecule", lambda names, n: lanes.append((names, n)) or real(names, n))
    assert [r.name for r in suite.run("molecule", "celery")] == ["base images", "molecule celery"]
    assert lanes == [(["celery"], 3)]


def test_unknown_phases_and_scenarios_are_refused_naming_the_choices(steps):
    with pytest.raises(PyfleetError) as caught:
        suite.run("speed")
    assert str(caught.value) == "unknown test phase 'speed'; choose one of unit, lint, molecule, e2e, mutants"
    with pytest.raises(PyfleetError) as caught:
        suite.run("molecule", "redis")
    assert str(caught.value) == "no molecule scenario 'redis'; choose one of web, celery"
    assert steps == []


def test_molecule_lanes_run_scenarios_side_by_side(monkeypatch):
    import threading

    together = threading.Barrier(3, timeout=5)

    def step(name, *commands, capture=False):
        together.wait()  # breaks unless three scenarios run at once
        return suite.Result(name, "passed", 0.0)

    monkeypatch.setattr(suite, "_step", step)
    results = suite._molecule(["a", "b", "c"], 3)
    assert [r.name for r in results] == ["molecule a", "molecule b", "molecule c"]


def test_the_phases_environment(monkeypatch):
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)
    monkeypatch.setenv("PY_COLORS", "1")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    env = suite._env()
    assert env["ANSIBLE_CONFIG"] == str(suite.ROOT / "ansible.cfg")
    assert env["CONTAINERS_CONF"] == str(suite.CONTAINERS_CONF)
    assert (env["PYTHONUNBUFFERED"], env["PY_COLORS"], env["ANSIBLE_FORCE_COLOR"]) == ("1", "0", "0")
    assert env["PATH"] == f"{suite.VENV_BIN}:/usr/bin:/bin"
    monkeypatch.delenv("PATH")
    assert suite._env()["PATH"] == f"{suite.VENV_BIN}:"


def test_the_base_images_are_bookworms_and_trixies(monkeypatch):
    from pyfleet import image

    monkeypatch.setattr(image, "ensure_image", lambda debian: f"localhost/pyfleet-base:{debian}-1")
    assert suite._ensure_images() == {
        "PYFLEET_IMAGE": "localhost/pyfleet-base:bookworm-1",
        "PYFLEET_IMAGE_TRIXIE": "localhost/pyfleet-base:trixie-1",
    }


def test_molecule_runs_as_many_lanes_as_it_is_given(monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    sizes = []

    class Pool(ThreadPoolExecutor):
        def __init__(self, max_workers):
            sizes.append(max_workers)
            super().__init__(max_workers=max_workers)

    monkeypatch.setattr(suite, "ThreadPoolExecutor", Pool)
    monkeypatch.setattr(suite, "_step", lambda name, *c, capture=False: suite.Result(name, "passed", 0.0))
    assert len(suite._molecule(["a", "b", "c"], 2)) == 3
    assert sizes == [2]


def test_the_mutants_phase_runs_the_venvs_python(steps):
    suite.run("mutants")
    assert [(name, commands) for name, commands, _ in steps] == [
        ("mutants roles", [[PY, "tests/mutants/roles.py", "--min-score", "0.9"]]),
        ("mutants python", [[PY, "tests/mutants/python.py", "--min-score", "0.85"]]),
    ]


def test_a_phases_header_comes_before_its_output_in_a_pipe_too(tmp_path):
    """Run in a Python whose stdout is a pipe (as in CI): print's buffer must not hold the header back."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import os\n"
        "from pyfleet import suite\n"
        "suite._step('plain', ['sh', '-c', 'echo one'])\n"
        "suite._step('lane', ['sh', '-c', 'echo two'], capture=True)\n"
        "os.system('echo three')\n"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(suite.__file__).resolve().parents[1]))
    env.pop("PYTHONUNBUFFERED", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out == "\n=== plain ===\none\n\n=== lane ===\ntwo\nthree\n"


def test_a_step_runs_its_commands_in_turn_in_the_repo_and_stops_at_the_first_failure(tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)
    log = tmp_path / "log"
    result = suite._step(
        "demo",
        ["sh", "-c", f'echo "one $(pwd) $PY_COLORS" >> {log}'],
        ["sh", "-c", f"echo two >> {log}; exit 1"],
        ["sh", "-c", f"echo three >> {log}"],
    )
    assert log.read_text() == f"one {suite.ROOT} 0\ntwo\n"
    assert (result.name, result.result) == ("demo", "FAILED")
    assert capfd.readouterr().out == "\n=== demo ===\n"
    ok = suite._step("fine", ["true"], ["true"])
    assert (ok.name, ok.result) == ("fine", "passed")


def test_a_captured_step_prints_its_header_and_output_whole_at_its_end(capfd):
    started = time.monotonic()
    result = suite._step("lane", ["sh", "-c", "echo out; echo err >&2; sleep 0.2"], capture=True)
    assert capfd.readouterr() == ("\n=== lane ===\nout\nerr\n", "")
    assert result.result == "passed" and 0.2 <= result.seconds <= time.monotonic() - started


def test_an_uncaptured_step_leaves_its_output_to_the_terminal_and_a_captured_one_prints_it_whole(capfd):
    suite._step("plain", ["sh", "-c", "echo straight through; echo err >&2"])
    assert capfd.readouterr() == ("\n=== plain ===\nstraight through\n", "err\n")
    suite._step("lane", ["sh", "-c", "echo held; echo err >&2"], capture=True)
    assert capfd.readouterr() == ("\n=== lane ===\nheld\nerr\n", "")
