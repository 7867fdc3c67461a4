"""What `fab maintenance` decides before any host: state, apps, playbook variables, history record."""

import json
import subprocess

import pytest

from pyfleet import commands, inventory, maintenance, rollback
from pyfleet.errors import PyfleetError


@pytest.fixture(scope="module")
def lab_inv():
    return inventory.load("inventory/lab", with_connection=False)


@pytest.fixture(autouse=True)
def no_lab_addresses(monkeypatch):
    """The lab is not up here: its hosts have names, not the IPs the plan checks."""
    real = commands.fleet_plan.from_inventory
    monkeypatch.setattr(commands.fleet_plan, "from_inventory", lambda inv, **kw: real(inv, check_addresses=False))


@pytest.mark.parametrize("state", ["on", "off", "status"])
def test_known_states_pass(state):
    assert maintenance.check_state(state) == state


def test_an_unknown_state_is_one_line_naming_the_fix():
    with pytest.raises(
        PyfleetError,
        match=r"^fab maintenance: 'onn' is not on, off or status; run fab maintenance on --app NAME, fab maintenance off --app NAME or fab maintenance status$",
    ):
        maintenance.check_state("onn")


def test_the_playbook_gets_the_state_and_the_apps_as_json():
    flag, value = maintenance.playbook_args("on", ["hello"])
    assert flag == "-e"
    assert json.loads(value) == {"maintenance_state": "on", "maintenance_apps": ["hello"]}


def test_the_history_record_names_the_switch_and_its_apps():
    rec = maintenance.record("off", ["hello", "hello-async"], None, 3.21)
    assert rec["action"] == "maintenance off" and rec["apps"] == ["hello", "hello-async"]
    assert rec["result"] == "ok" and rec["reason"] == "" and rec["seconds"] == 3.2
    failed = maintenance.record("on", ["hello"], PyfleetError("lb1: nginx -t failed"), 1)
    assert failed["result"] == "failed" and failed["reason"] == "lb1: nginx -t failed"
    # The fields every history record has (fab history reads them), no release of its own.
    assert sorted(rec) == ["action", "apps", "id", "reason", "release", "result", "seconds", "when", "who"]
    assert rec["release"] == "" and rec["id"] and rec["when"] and rec["who"]


def test_a_maintenance_record_is_never_a_deploy_to_roll_back():
    records = [maintenance.record("on", ["hello"], None, 1)]
    assert rollback.pick_deploy(records, ["hello"])[0] is None


def test_status_rows_read_each_load_balancers_switch_files():
    outputs = {"lb2": (0, ""), "lb1": (0, "hello\nother\n")}
    assert maintenance.status_rows(["hello", "hello-async"], outputs) == [
        ["hello", "lb1", "on"],
        ["hello", "lb2", "off"],
        ["hello-async", "lb1", "off"],
        ["hello-async", "lb2", "off"],
    ]


def test_the_status_probe_lists_switch_file_names(tmp_path, monkeypatch):
    monkeypatch.setattr(maintenance, "SWITCH_DIR", str(tmp_path))
    (tmp_path / "hello.conf").write_text("")
    (tmp_path / "notes.txt").write_text("")
    out = subprocess.run(["sh", "-c", maintenance.status_probe()], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["hello"]
    monkeypatch.setattr(maintenance, "SWITCH_DIR", str(tmp_path / "none"))
    out = subprocess.run(["sh", "-c", maintenance.status_probe()], capture_output=True, text=True, check=True).stdout
    assert out == ""


def test_an_unknown_app_stops_before_any_host(lab_inv, monkeypatch):
    monkeypatch.setattr(commands.ansible, "playbook", lambda *a, **k: pytest.fail("ran a playbook"))
    with pytest.raises(PyfleetError, match=r"no app 'nope' in pyfleet_apps of .*; apps: hello, hello-async"):
        commands.maintenance(lab_inv, "on", "nope")


def test_a_bad_state_stops_before_the_plan(lab_inv, monkeypatch):
    monkeypatch.setattr(commands, "_apps", lambda *a: pytest.fail("built the plan"))
    with pytest.raises(PyfleetError, match="is not on, off or status"):
        commands.maintenance(lab_inv, "maybe")


def test_without_load_balancers_there_is_no_page_to_serve(lab_inv):
    inv = inventory.Inventory(path=lab_inv.path, hosts=lab_inv.hosts, groups={**lab_inv.groups, "loadbalancers": []})
    with pytest.raises(
        PyfleetError,
        match=r"has no host in group loadbalancers; the maintenance page is served by the load balancers: add one, or stop the app itself$",
    ):
        maintenance.load_balancers(inv)


def test_a_switch_runs_the_playbook_records_it_and_names_the_apps(lab_inv, monkeypatch, capsys):
    runs, recorded = [], []
    monkeypatch.setattr(commands.ansible, "playbook", lambda path, name, *args, **kw: runs.append((name, args)))
    monkeypatch.setattr(commands.audit, "record", lambda inv, rec: recorded.append(rec))
    assert commands.maintenance(lab_inv, "on", "hello") == ["hello"]
    assert runs[0][0] == "maintenance" and json.loads(runs[0][1][1])["maintenance_apps"] == ["hello"]
    assert [r["action"] for r in recorded] == ["maintenance on"]
    assert capsys.readouterr().out.startswith("maintenance on: hello on lb1")


def test_a_failed_switch_is_recorded_then_reported_in_one_line(lab_inv, monkeypatch):
    recorded = []

    def fail(*a, **k):
        raise PyfleetError("lb1: task 'Switch the maintenance page' failed: nginx: [emerg] ...")

    monkeypatch.setattr(commands.ansible, "playbook", fail)
    monkeypatch.setattr(commands.audit, "record", lambda inv, rec: recorded.append(rec))
    with pytest.raises(PyfleetError, match=r"^maintenance off failed: lb1: task"):
        commands.maintenance(lab_inv, "off")
    assert recorded[0]["result"] == "failed" and recorded[0]["apps"] == ["hello", "hello-async"]
