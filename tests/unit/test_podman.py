"""pyfleet.podman: podman always runs with the project's containers.conf, and refuses early without root."""

import subprocess

import pytest

from pyfleet import podman as podman_module
from pyfleet.errors import PyfleetError
from pyfleet.shell import ROOT


class FakeRun:
    """Stands in for pyfleet.shell.run: records each call and answers ``answer``."""

    def __init__(self, answer="ok\n"):
        self.calls = []
        self.answer = answer

    def __call__(self, args, **kwargs):
        self.calls.append((args, kwargs))
        return subprocess.CompletedProcess(args, 0, stdout=self.answer, stderr="")


@pytest.fixture
def fake_run(monkeypatch):
    fake = FakeRun()
    monkeypatch.setattr(podman_module, "run", fake)
    monkeypatch.setattr(podman_module.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(podman_module.os, "geteuid", lambda: 0)
    return fake


def test_the_projects_containers_conf_is_the_lab_file():
    assert podman_module.CONTAINERS_CONF == ROOT / "lab" / "containers.conf"
    assert 'runtime = "runc"' in podman_module.CONTAINERS_CONF.read_text()


def test_podman_env_adds_containers_conf_to_the_environment(monkeypatch):
    monkeypatch.setenv("PYFLEET_TEST_MARK", "kept")
    env = podman_module.podman_env()
    assert env["CONTAINERS_CONF"] == str(ROOT / "lab" / "containers.conf")
    assert env["PYFLEET_TEST_MARK"] == "kept"


def test_podman_runs_with_the_projects_settings_and_the_callers_options(fake_run):
    proc = podman_module.podman("ps", "-a", check=False, what="listing", fix="start it", timeout=7, input_text="in")
    assert proc.stdout == "ok\n"
    [(args, kwargs)] = fake_run.calls
    assert args == ["podman", "ps", "-a"]
    assert kwargs == {
        "env": {"CONTAINERS_CONF": str(ROOT / "lab" / "containers.conf")},
        "check": False,
        "what": "listing",
        "fix": "start it",
        "timeout": 7,
        "input": "in",
    }


def test_podman_defaults_check_name_the_subcommand_and_wait_five_minutes(fake_run):
    podman_module.podman("image", "exists", "x")
    [(_args, kwargs)] = fake_run.calls
    assert kwargs["check"] is True
    assert kwargs["what"] == "podman image"
    assert kwargs["fix"] == "see podman's message"
    assert kwargs["timeout"] == 300
    assert kwargs["input"] is None


def test_without_podman_installed_the_error_says_how_to_get_it(fake_run, monkeypatch):
    seen = []
    monkeypatch.setattr(podman_module.shutil, "which", lambda name: seen.append(name))
    with pytest.raises(PyfleetError, match=r"^podman is not installed; run ./bootstrap.sh$"):
        podman_module.podman("ps")
    assert seen == ["podman"]
    assert fake_run.calls == []


def test_without_root_the_error_says_to_run_fab_as_root(fake_run, monkeypatch):
    monkeypatch.setattr(podman_module.os, "geteuid", lambda: 1000)
    with pytest.raises(
        PyfleetError, match=r"^the lab needs root for podman; run fab as root \(sudo .venv/bin/fab ...\)$"
    ):
        podman_module.podman("ps")
    assert fake_run.calls == []
