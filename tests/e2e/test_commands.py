"""The operator commands (`fab ...`) against the lab, as an operator types them."""

import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from test_celery import unit_started

from pyfleet import audit, commands, plan as fleet_plan

ROOT = Path(__file__).resolve().parents[2]
FAB = str(ROOT / ".venv" / "bin" / "fab")


def fab(*args, timeout=900):
    """Run `fab ARGS` from the project root; (exit code, stdout, stderr)."""
    proc = subprocess.run([FAB, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def assert_one_line_error(code, err):
    assert code != 0
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err


def serving_hello(inv):
    """{host: hello's current release}."""
    return {h: s["current"] for h, s in commands._fleet(inv, ["hello"])["hello"].items()}


@pytest.fixture(scope="module")
def converged(lab):
    return lab


def test_status_lists_every_host_and_the_app_units(inv, converged):
    code, out, _ = fab("status")
    assert code == 0
    hosts_in_table = {line.split()[0] for line in out.splitlines()[2:] if line.strip()}
    assert hosts_in_table == set(inv.hosts)
    for web in inv.groups["web"]:
        assert any(
            line.startswith(web) and "pyfleet-hello@" in line and " active " in line for line in out.splitlines()
        )


def test_releases_table_and_agreement_verdict_match(inv, converged):
    code, out, _ = fab("releases")
    assert code == 0
    current = {}
    for line in out.splitlines()[2:]:
        cols = line.split()
        if len(cols) >= 4 and cols[3] == "*":
            current.setdefault(cols[1], {})[cols[0]] = cols[2]
    assert set(current["hello"]) >= set(inv.groups["web"])
    for app, per_host in current.items():
        ids = set(per_host.values())
        verdict = f"{app}: all hosts on {ids.pop()}" if len(ids) == 1 else f"{app}: hosts DISAGREE: "
        assert verdict in out


def test_topology_table_and_picture_name_every_host(inv, tmp_path):
    picture = tmp_path / "topology.svg"
    code, out, _ = fab("topology", "--picture", str(picture))
    assert code == 0
    for host in inv.hosts:
        assert host in out
    texts = {t.text for t in ET.parse(picture).getroot().iter("{http://www.w3.org/2000/svg}text")}
    assert set(inv.hosts) <= texts


def test_logs_show_the_app_journal_of_one_host(converged):
    code, out, _ = fab("logs", "hello", "--limit", "web1", "--lines", "5")
    assert code == 0
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines and all(line.startswith("web1 |") for line in lines)


@pytest.mark.parametrize(
    "args, expected",
    [
        (("status", "--limit", "web9"), "'web9' is neither a host nor a group"),
        (("logs", "postgres"), "unknown service 'postgres'"),
        (("restart", "nope"), "unknown service 'nope'"),
        (("rollback", "--release", "19990101T000000Z"), "19990101T000000Z"),
        (("deploy", "--inventory", "inventory/nope"), "inventory inventory/nope does not exist"),
    ],
)
def test_bad_input_is_one_line_without_traceback(converged, args, expected):
    code, _, err = fab(*args)
    assert_one_line_error(code, err)
    assert expected in err


def test_deploy_and_rollback_are_recorded_in_order(inv, converged, run_playbook):
    # A forced release makes sure an older release exists to roll back to.
    run_playbook("deploy", "-e", "deploy_apps=hello", "-e", "app_force_release=true")
    (newest,) = set(serving_hello(inv).values())
    before = len(audit.history(inv, 1000))
    code, out, err = fab("deploy", "--app", "hello")
    assert code == 0, err
    assert "deploy: release " in out
    # Nothing changed since the forced release: no host got a rollout task, and the summary says why.
    assert "hosts switched: none" in out, out
    assert "unchanged, no task on any host: hello" in out.splitlines(), out
    other = commands._fleet(inv, ["hello-async"])["hello-async"]
    code, out, err = fab("rollback", "--app", "hello")
    assert code == 0, err
    assert commands._fleet(inv, ["hello-async"])["hello-async"] == other, "the app not named was rolled back too"
    records = audit.history(inv, 1000)[before:]
    assert [r["action"] for r in records] == ["deploy", "rollback"]
    assert all(r["result"] == "ok" and r["apps"] == ["hello"] for r in records)
    code, out, _ = fab("history", "--last", "2")
    assert code == 0 and out.index(" deploy ") < out.index(" rollback ")
    # Leave the newest release serving again, as the other tests expect of the lab:
    # forward to the release the rollback left (every host keeps it; nothing is built).
    code, out, err = fab("rollback", "--app", "hello", "--release", newest)
    assert code == 0, err
    assert set(serving_hello(inv).values()) == {newest}


def test_a_second_concurrent_deploy_is_refused_by_the_lock(inv, converged):
    first = subprocess.Popen(
        [FAB, "deploy", "--app", "hello"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while "hello" not in audit.locks(inv) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "hello" in audit.locks(inv), "the first deploy never took the lock"
        code, _, err = fab("deploy", "--app", "hello")
        assert_one_line_error(code, err)
        assert "app hello is locked by " in err and "fab lock --clear --app hello" in err
    finally:
        _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert "hello" not in audit.locks(inv)


def test_workers_lists_each_type_on_its_assigned_host(inv, converged):
    code, out, err = fab("workers")
    assert code == 0, err
    nodes = {line.split()[0] for line in out.splitlines()[2:] if line.strip()}
    expected = {f"{t}@{h}" for h, v in inv.hosts.items() for t in v.get("celery_worker_types", [])}
    assert expected and nodes == expected


def test_restart_beat_and_flower_restarts_their_units_where_they_run(inv, converged, host_run):
    celery = fleet_plan.from_inventory(inv, check_paths=False)["celery"]
    for service, host in (("beat", celery["beat_host"]), ("flower", celery["flower_host"])):
        unit = celery["app"][f"{service}_unit"]
        before = unit_started(host_run, host, unit)
        assert before > 0, f"{unit} does not run on {host}"
        time.sleep(1.1)  # the start time has whole seconds
        code, out, err = fab("restart", service)
        assert code == 0, err
        assert f"restarted {service} on {host}" in out
        assert unit_started(host_run, host, unit) > before, f"{unit} on {host} was not restarted"
