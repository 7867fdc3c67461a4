"""plugins/callback: pyfleet_failures and pyfleet_progress in-process, fed the objects Ansible hands them.

test_ansible and test_playbook_failures run them inside real ansible-playbook runs;
here each event is one call, so what is recorded, shown and written is checked line by line.
"""

import datetime
import json
from types import SimpleNamespace

import pytest
from plugin_module import load

from pyfleet import failures

failures_cb = load("plugins/callback/pyfleet_failures.py")
progress_cb = load("plugins/callback/pyfleet_progress.py")


class Host:
    def __init__(self, name, hostvars=None):
        self.name, self.vars = name, hostvars or {}

    def get_name(self):
        return self.name


class Named:
    def __init__(self, name, path=None, serial=None):
        self.name, self.path, self.serial = name, path, serial

    def get_name(self):
        return self.name

    def get_path(self):
        return self.path


class Play(Named):
    """A play whose variable manager gives each host its ``hostvars``."""

    def __init__(self, name, hostvars=None, serial=None):
        super().__init__(name, serial=serial)
        self.hostvars = hostvars or {}

    def get_variable_manager(self):
        return SimpleNamespace(get_vars=lambda play, host, include_hostvars: self.hostvars.get(host.name, {}))


def result(host, task, res, path="roles/app/tasks/main.yml:3"):
    """A TaskResult as both callbacks read it (public and private attributes)."""
    h, t = Host(host), Named(f" {task} ", path)
    return SimpleNamespace(host=h, task=t, result=res, _host=h, _task=t, _result=res)


class Display:
    def __init__(self):
        self.lines = []

    def display(self, text, color=None):
        self.lines.append((text, color))


def stats(processed, failed=(), dark=(), custom=None):
    return SimpleNamespace(
        processed=dict.fromkeys(processed, 1),
        failures=dict.fromkeys(failed, 1),
        dark=dict.fromkeys(dark, 1),
        custom=custom,
        summarize=lambda h: {"ok": 1, "failures": int(h in failed)},
    )


FAILED = {"failed": True, "msg": "the health check of app hello failed", "rc": 1}
HOST_KEY_MSG = "Failed to connect to the host via ssh: Host key verification failed."
UNREACHABLE_MSG = "Failed to connect to the host via ssh: ssh: connect to host 10.0.0.12 port 22: Connection refused"


# --- pyfleet_failures ---------------------------------------------------------------------


@pytest.fixture
def recorder(tmp_path, monkeypatch):
    path = tmp_path / "failures.json"
    monkeypatch.setenv("PYFLEET_FAILURES", str(path))
    cb = failures_cb.CallbackModule()
    cb.file = path
    return cb


def written(cb):
    return json.loads(cb.file.read_text(encoding="utf-8"))


def test_failures_is_a_notification_callback_that_must_be_enabled():
    assert failures_cb.CallbackModule.CALLBACK_NAME == "pyfleet_failures"
    assert failures_cb.CallbackModule.CALLBACK_TYPE == "notification"
    assert failures_cb.CallbackModule.CALLBACK_NEEDS_ENABLED is True


def test_each_failure_is_written_at_once_with_its_play_and_task(recorder):
    recorder.v2_playbook_on_play_start(Play(" Deploy apps "))
    recorder.v2_runner_on_failed(result("web1", "Check health", FAILED))
    expected = failures.record("web1", "Check health", FAILED, "Deploy apps", "roles/app/tasks/main.yml:3")
    assert written(recorder) == {"failures": [expected], "failed_hosts": None}
    assert not (recorder.file.parent / "failures.json.tmp").exists()


def test_an_ignored_failure_is_not_recorded(recorder):
    recorder.v2_runner_on_failed(result("web1", "Probe", FAILED), ignore_errors=True)
    assert recorder.failures == [] and not recorder.file.exists()


def test_a_failure_before_any_play_and_without_a_path_has_empty_ones(recorder):
    recorder.v2_runner_on_failed(result("web1", "Probe", FAILED, path=None))
    [rec] = written(recorder)["failures"]
    assert rec["play"] == "" and rec["path"] == ""


def test_an_unreachable_host_is_recorded_with_the_address_ansible_uses(recorder):
    recorder.v2_playbook_on_play_start(Play("Site", {"web1": {"ansible_host": "10.0.0.12", "ansible_port": 2222}}))
    recorder.v2_runner_on_unreachable(result("web1", "Gathering Facts", {"msg": UNREACHABLE_MSG, "unreachable": True}))
    expected = failures.unreachable_record("web1", "Gathering Facts", UNREACHABLE_MSG, "10.0.0.12", 2222, "Site")
    assert written(recorder)["failures"] == [expected]


def test_the_recap_names_the_hosts_that_ended_failed_or_unreachable(recorder):
    recorder.v2_playbook_on_stats(stats(["web2", "web1", "lb1", "broker1"], failed=["web2"], dark=["lb1"]))
    assert written(recorder) == {"failures": [], "failed_hosts": ["lb1", "web2"]}


def test_without_the_environment_variable_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.delenv("PYFLEET_FAILURES", raising=False)
    monkeypatch.chdir(tmp_path)
    cb = failures_cb.CallbackModule()
    cb.v2_runner_on_failed(result("web1", "Probe", FAILED))
    cb.v2_playbook_on_stats(stats(["web1"], failed=["web1"]))
    assert len(cb.failures) == 1 and list(tmp_path.iterdir()) == []


# --- pyfleet_progress ---------------------------------------------------------------------


@pytest.fixture
def progress(tmp_path, monkeypatch):
    clock = iter(x * 1.25 for x in range(1, 100))
    monkeypatch.setattr(progress_cb.time, "monotonic", lambda: next(clock))
    monkeypatch.setenv("PYFLEET_SUMMARY", str(tmp_path / "summary.json"))
    cb = progress_cb.CallbackModule()
    cb._display = Display()
    cb.summary = tmp_path / "summary.json"
    return cb


def test_progress_is_the_stdout_callback():
    assert progress_cb.CallbackModule.CALLBACK_NAME == "pyfleet_progress"
    assert progress_cb.CallbackModule.CALLBACK_TYPE == "stdout"


def test_plays_changes_and_failures_are_one_line_each_and_the_summary_has_them(progress):
    progress.v2_playbook_on_play_start(Play(" Deploy "))
    progress.v2_runner_on_ok(result("web1", "Gather", {"changed": False}))
    progress.v2_runner_on_ok(result("web1", "Install", {"changed": True}))
    progress.v2_runner_on_ok(result("web2", "Install", {"changed": True}))
    progress.v2_runner_on_ok(result("web1", "Restart", {"changed": True}))
    progress.v2_runner_on_failed(result("web2", "Check health", FAILED))
    progress.v2_playbook_on_stats(stats(["web2", "web1"], failed=["web2"], custom={"_run": {"release": "r1"}}))
    rec = failures.record("web2", "Check health", FAILED, "Deploy", "roles/app/tasks/main.yml:3")
    assert progress._display.lines == [
        ("> Deploy", None),
        ("  web1: Install", None),
        ("  web2: Install", None),
        ("  web1: Restart", None),
        (f"  web2: FAILED Check health: {rec['cause']}", "red"),
        ("  done in 1.2 s (web1, web2)", None),
    ]
    assert json.loads(progress.summary.read_text(encoding="utf-8")) == {
        "plays": [{"name": "Deploy", "hosts": ["web1", "web2"], "seconds": 1.2}],
        "changed": {"web1": ["Install", "Restart"], "web2": ["Install"]},
        "failures": [rec],
        "stats": {"web1": {"ok": 1, "failures": 0}, "web2": {"ok": 1, "failures": 1}},
        "custom": {"release": "r1"},
    }


def test_a_play_run_again_or_in_batches_is_labelled_with_its_batch(progress):
    progress.v2_playbook_on_play_start(Play("Deploy"))
    progress.v2_playbook_on_play_start(Play("Deploy"))
    progress.v2_playbook_on_play_start(Play("Switch", serial=1))
    progress.v2_playbook_on_play_start(Play("Check"))
    assert [p["label"] for p in progress.plays] == ["Deploy", "Deploy (batch 2)", "Switch (batch 1)", "Check"]
    assert ("  done in 1.2 s (no hosts)", None) in progress._display.lines


def test_an_ignored_failure_counts_the_host_but_is_no_failure(progress):
    progress.v2_playbook_on_play_start(Play("Deploy"))
    progress.v2_runner_on_failed(result("web1", "Probe", FAILED), ignore_errors=True)
    assert progress.plays[0]["hosts"] == ["web1"]
    assert progress.failures == [] and progress._display.lines == [("> Deploy", None)]


def test_an_unreachable_host_is_a_red_line_with_the_address_used(progress):
    progress.v2_playbook_on_play_start(Play("Site", {"web1": {"ansible_host": "10.0.0.12"}}))
    progress.v2_runner_on_unreachable(result("web1", "Gathering Facts", {"msg": UNREACHABLE_MSG}))
    rec = failures.unreachable_record("web1", "Gathering Facts", UNREACHABLE_MSG, "10.0.0.12", None, "Site")
    assert progress.failures == [rec]
    assert progress._display.lines[-1] == (f"  web1: UNREACHABLE {rec['cause']}", "red")


def test_events_before_any_play_have_no_play(progress):
    progress.v2_runner_on_ok(result("web1", "Install", {"changed": True}))
    progress.v2_runner_on_failed(result("web1", "Check", FAILED))
    progress.v2_runner_on_unreachable(result("web2", "Facts", {"msg": "gone"}))
    assert [f["play"] for f in progress.failures] == ["", ""]
    progress.v2_playbook_on_stats(stats(["web1"], custom=None))
    summary = json.loads(progress.summary.read_text(encoding="utf-8"))
    assert summary["plays"] == [] and summary["custom"] == {}


def test_without_the_environment_variable_no_summary_is_written(progress, monkeypatch):
    monkeypatch.delenv("PYFLEET_SUMMARY")
    progress.v2_playbook_on_play_start(Play("Deploy"))
    progress.v2_playbook_on_stats(stats(["web1"], custom={}))
    assert not progress.summary.exists()
    assert progress._display.lines[-1] == ("  done in 1.2 s (no hosts)", None)


def test_a_changed_host_key_names_the_address_and_port_of_the_play_the_host_is_in(recorder):
    recorder.v2_playbook_on_play_start(Play("Site", {"web1": {"ansible_host": "10.0.0.12", "ansible_port": 2222}}))
    recorder.v2_runner_on_unreachable(result("web1", "Gathering Facts", {"msg": HOST_KEY_MSG}))
    [rec] = written(recorder)["failures"]
    assert rec == failures.unreachable_record("web1", "Gathering Facts", HOST_KEY_MSG, "10.0.0.12", 2222, "Site")
    assert "ssh-keyscan -p 2222 10.0.0.12" in rec["fix"]


def test_a_value_json_cannot_write_is_written_as_text(recorder):
    recorder.v2_runner_on_failed(result("web1", "Probe", {"failed": True, "msg": "x", "rc": datetime.date(2026, 1, 2)}))
    assert written(recorder)["failures"][0]["rc"] == "2026-01-02"


def test_progress_names_the_address_and_port_of_a_host_whose_key_changed(progress):
    progress.v2_playbook_on_play_start(Play("Site", {"web1": {"ansible_host": "10.0.0.12", "ansible_port": 2222}}))
    progress.v2_runner_on_unreachable(result("web1", "Gathering Facts", {"msg": HOST_KEY_MSG}))
    [rec] = progress.failures
    assert rec == failures.unreachable_record("web1", "Gathering Facts", HOST_KEY_MSG, "10.0.0.12", 2222, "Site")
    assert "ssh-keyscan -p 2222 10.0.0.12" in rec["fix"]


def test_progress_records_a_task_without_a_path_with_an_empty_one(progress):
    progress.v2_runner_on_failed(result("web1", "Check", FAILED, path=None))
    assert progress.failures[0]["path"] == ""


def test_the_summary_writes_what_json_cannot_as_text_and_no_run_data_as_empty(progress):
    progress.v2_playbook_on_stats(stats(["web1"], custom={"_run": {"started": datetime.date(2026, 1, 2)}}))
    assert json.loads(progress.summary.read_text(encoding="utf-8"))["custom"] == {"started": "2026-01-02"}
    progress.v2_playbook_on_stats(stats(["web1"], custom={"web1": {"x": 1}}))
    assert json.loads(progress.summary.read_text(encoding="utf-8"))["custom"] == {}
