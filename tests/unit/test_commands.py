"""Which units and hosts `fab logs` and `fab restart` act on, and what `fab releases` reads."""

import copy
import json
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from pyfleet import commands, failures, inventory
from pyfleet.errors import PyfleetError
from pyfleet.tables import table


@pytest.fixture(scope="module")
def lab_inv():
    return inventory.load("inventory/lab", with_connection=False)


@pytest.mark.parametrize(
    "service, unit",
    [
        ("nginx", "nginx.service"),
        ("redis", "redis-server.service"),
        ("rabbitmq", "rabbitmq-server.service"),
        ("beat", "pyfleet-*-beat.service"),
        ("flower", "pyfleet-*-flower.service"),
        ("hello", "pyfleet-hello@*.service"),
        ("io", "pyfleet-*-worker@io.service"),
    ],
)
def test_unit_pattern(lab_inv, service, unit):
    assert commands.unit_pattern(lab_inv, service) == unit


@pytest.mark.parametrize(
    "service, hosts",
    [
        ("nginx", "lb1,web1,web2"),
        ("redis", "broker1"),
        ("rabbitmq", "broker1"),
        ("beat", "worker2"),
        ("flower", "worker2"),
        ("hello", "web1,web2"),
        ("io", "worker1"),
    ],
)
def test_restart_targets(lab_inv, service, hosts):
    assert commands.restart_targets(lab_inv, service) == hosts


def test_unknown_service_is_one_line_listing_the_choices(lab_inv):
    with pytest.raises(
        PyfleetError,
        match=r"unknown service 'postgres'; choose nginx, redis, rabbitmq, beat, flower, "
        r"an app \(hello, hello-async\) or a worker type \(cpu, default, io\)",
    ):
        commands.restart_targets(lab_inv, "postgres")


def test_releases_reads_each_apps_base_dir(tmp_path, monkeypatch, capsys):
    """`fab releases` finds an app whose base_dir is not under /srv, and marks its current release."""
    base = tmp_path / "opt" / "hello"
    for release in ("20261124T052000Z", "20261124T053000Z"):
        (base / "releases" / release).mkdir(parents=True)
        (base / "releases" / release / "REVISION").write_text(f"deployer=ops\nrelease={release}\n")
    (base / "current").symlink_to("releases/20261124T053000Z/")
    apps = [
        {
            "name": "hello",
            "source": {"path": "examples/sampleapp"},
            "kind": "wsgi",
            "entry": "sampleapp.wsgi:app",
            "domains": ["hello.test"],
            "base_dir": str(base),
        }
    ]
    inv = inventory.Inventory(
        path=Path("inventory/test"), hosts={"web1": {"pyfleet_apps": apps}}, groups={"all": ["web1"], "web": ["web1"]}
    )
    ran = []

    def run_on(inv, hosts, command):
        ran.append(command)
        out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True).stdout
        return dict.fromkeys(hosts, (0, out))

    monkeypatch.setattr(commands.remote, "run_on", run_on)
    assert commands.releases(inv) == {"hello": {"web1": "20261124T053000Z"}}
    assert "/srv/" not in ran[0]
    printed = capsys.readouterr().out
    assert "20261124T052000Z" in printed and "deployer=ops" in printed
    assert "hello: all hosts on 20261124T053000Z" in printed


def test_the_deploy_summary_ends_with_each_failure_line(capsys):
    rec = failures.record("web1", "nginx : Reload nginx", {"msg": "non-zero return code", "stderr": "nginx: [emerg] x"})
    commands.print_summary("deploy", {"failures": [rec], "custom": {"release": "20260101T000000Z"}}, 12.0)
    assert capsys.readouterr().out.splitlines()[-1] == "web1: task 'nginx : Reload nginx' failed: nginx: [emerg] x"


def test_the_deploy_summary_names_the_apps_it_left_alone(capsys):
    commands.print_summary("deploy", {"custom": {"release": "20260101T000000Z", "unchanged": ["api", "hello"]}}, 3.0)
    assert "unchanged, no task on any host: api, hello" in capsys.readouterr().out.splitlines()
    commands.print_summary("deploy", {"custom": {"release": "20260101T000000Z", "unchanged": []}}, 3.0)
    assert "unchanged" not in capsys.readouterr().out


CHECK_OUTPUT = """PLAY [Load balancers] ****
TASK [loadbalancer : Configure nginx] ******************************************
changed: [lb1] => (item=/etc/nginx/conf.d/pyfleet-loadbalancer.conf)
ok: [lb1] => (item=/etc/nginx/pyfleet/upstreams.conf)
TASK [nginx : Write a server block per app] ****
ok: [web1] => (item=hello)
changed: [web2] => (item=hello)
TASK [loadbalancer : Validate the nginx configuration] ****
changed: [lb1]
TASK [Remove units, nginx files and services the inventory no longer names] ****
changed: [web2]
""".splitlines(keepends=True)


def test_check_names_the_hosts_and_roles_that_would_change_and_the_limit_that_converges_them():
    assert commands.changes_in(CHECK_OUTPUT) == {"lb1": ["loadbalancer"], "web2": ["nginx", "play tasks"]}
    assert commands.check_suggestion(CHECK_OUTPUT) == (
        "changes on lb1 (loadbalancer); web2 (nginx, play tasks); converge only them: fab site --limit lb1,web2"
    )
    assert (
        commands.check_suggestion(["TASK [common : Set the time zone] ***\n", "ok: [web1]\n"]) == "nothing to converge"
    )


# --- stand-ins: the control host's lock and history, the hosts' releases, ansible-playbook, a clock ---------------


@pytest.fixture
def fleet_inv(lab_inv):
    """The lab inventory with IP addresses, as a deploy's full pre-check (check_paths=True) wants them."""
    inv = copy.deepcopy(lab_inv)
    for i, host in enumerate(inv.hosts, start=11):
        inv.hosts[host]["ansible_host"] = f"10.0.0.{i}"
    return inv


def an_inventory(inv):
    """What every stand-in checks: commands.py hands the inventory on (the real functions read its hosts)."""
    assert isinstance(inv, inventory.Inventory), inv
    return inv


class Clock:
    """commands.time: monotonic() gives the readings in turn (then the last one again); time() a fixed epoch."""

    def __init__(self, *readings, epoch=1_800_000_000):
        self.readings, self.epoch = list(readings), epoch

    def monotonic(self):
        return self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]

    def time(self):
        return self.epoch


class Control:
    """pyfleet.audit on the control host, kept in memory: every call commands.py makes, in order."""

    def __init__(self, history=(), held=None):
        self.calls, self.records, self.past, self.held = [], [], list(history), dict(held or {})

    def acquire(self, inv, apps, action):
        an_inventory(inv)
        self.calls.append(("acquire", list(apps), action))
        return sorted(apps)

    def release(self, inv, apps):
        an_inventory(inv)
        self.calls.append(("release", list(apps)))

    def record(self, inv, entry):
        an_inventory(inv)
        self.calls.append(("record", entry["action"]))
        self.records.append(entry)

    def history(self, inv, last=20):
        an_inventory(inv)
        self.calls.append(("history", last))
        return self.past[-last:]

    def locks(self, inv):
        an_inventory(inv)
        self.calls.append(("locks",))
        return self.held


@pytest.fixture
def control(monkeypatch):
    ctl = Control()
    for name in ("acquire", "release", "record", "history", "locks"):
        monkeypatch.setattr(commands.audit, name, getattr(ctl, name))
    monkeypatch.setattr(commands.audit, "new_id", lambda: "c0ffee000001")
    monkeypatch.setattr(commands.audit, "now", lambda: "2026-12-04T02:40:00Z")
    monkeypatch.setattr(commands.audit, "operator", lambda: "ann@ctl")
    monkeypatch.setattr(commands.audit, "control_host", lambda inv: an_inventory(inv) and "lb1")
    return ctl


class Hosts:
    """remote.run_on for rollback's release probe: each host answers for the apps the command asks about."""

    def __init__(self, state):
        self.state, self.commands, self.fail_after = state, [], None

    def run_on(self, inv, hosts, command):
        an_inventory(inv)
        self.commands.append((list(hosts), command))
        if self.fail_after is not None and len(self.commands) > self.fail_after:
            raise PyfleetError("host web2 (10.0.0.13) is unreachable: timed out")
        out = {}
        for h in hosts:
            lines = [
                f"{app}|{s['current'] or ''}| {' '.join(s['releases'])}"
                for app, s in sorted(self.state.get(h, {}).items())
                if f"printf '%s|%s|%s\\n' {app} " in command
            ]
            out[h] = (0, "".join(line + "\n" for line in lines))
        return out


def on(current, *releases):
    return {"current": current, "releases": sorted({*releases, current} - {None})}


R1, R2, R3 = "20261201T100000Z", "20261202T100000Z", "20261203T100000Z"


@pytest.fixture
def hosts(monkeypatch):
    fake = Hosts(
        {
            "web1": {"hello": on(R2, R1), "hello-async": on(R2, R1)},
            "web2": {"hello": on(R2, R1), "hello-async": on(R2, R1)},
        }
    )
    monkeypatch.setattr(commands.remote, "run_on", fake.run_on)
    return fake


class Playbook:
    """ansible.playbook: records each run, writes the progress callback's summary, switches the hosts."""

    def __init__(self, hosts, switch=None, summary=None, error=None):
        self.hosts, self.switch, self.summary, self.error, self.runs = hosts, switch or {}, summary, error, []

    def __call__(self, inventory_path, name, *args, mitogen=True, quiet=False, extra_env=None, output=None):
        self.runs.append(
            {
                "inventory": inventory_path,
                "name": name,
                "args": list(args),
                "mitogen": mitogen,
                "quiet": quiet,
                "env": dict(extra_env or {}),
            }
        )
        for app, per_host in self.switch.items():
            for host, rel in per_host.items():
                self.hosts.state[host][app] = on(rel, *self.hosts.state[host][app]["releases"])
        if self.summary is not None:
            with open(extra_env["PYFLEET_SUMMARY"], "w", encoding="utf-8") as fh:
                json.dump(self.summary, fh)
        if self.error:
            raise PyfleetError(self.error)
        return {}


# --- fab releases -------------------------------------------------------------------------------------------


def test_the_releases_probe_lists_every_release_marks_the_current_and_reads_the_revision(tmp_path):
    shop = tmp_path / "srv" / "my shop"  # a space: every path is quoted
    for rel in (R1, R2):
        (shop / "releases" / rel).mkdir(parents=True)
    (shop / "releases" / R1 / "REVISION").write_text("deployer=ann\nrelease=r1\n")
    (shop / "current").symlink_to(shop / "releases" / R2)
    api = tmp_path / "srv" / "api"
    (api / "releases" / R3).mkdir(parents=True)
    dirs = {"shop": str(shop), "blog": str(tmp_path / "srv" / "blog"), "api": str(api)}
    proc = subprocess.run(["sh", "-c", commands.releases_probe(dirs)], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.splitlines() == [f"api|{R3}||", f"shop|{R1}||deployer=ann", f"shop|{R2}|current|"]
    assert commands.releases_probe({}) == "true"


def test_releases_say_when_the_hosts_disagree_and_read_only_the_limit(lab_inv, monkeypatch, capsys):
    asked = []

    def run_on(inv, hosts, command):
        an_inventory(inv)
        asked.append((list(hosts), command))
        return {
            "web1": (0, f"hello|{R1}||deployer=ann\nhello|{R2}|current|deployer=bob\nhello-async|{R2}|current|\n"),
            "web2": (0, f"hello|{R1}|current|deployer=ann\nhello-async|{R2}|current\nhello|{R3}\nhello\n"),
        }

    monkeypatch.setattr(commands.remote, "run_on", run_on)
    assert commands.releases(lab_inv, "web") == {
        "hello": {"web1": R2, "web2": R1},
        "hello-async": {"web1": R2, "web2": R2},
    }
    assert asked == [
        (["web1", "web2"], commands.releases_probe({"hello": "/srv/hello", "hello-async": "/srv/hello-async"}))
    ]
    assert capsys.readouterr().out.splitlines() == [
        "host  app          release           current  revision",
        "----  -----------  ----------------  -------  ------------",
        f"web1  hello        {R1}           deployer=ann",
        f"web1  hello        {R2}  *        deployer=bob",
        f"web1  hello-async  {R2}  *",
        f"web2  hello        {R1}  *        deployer=ann",
        f"web2  hello-async  {R2}  *",
        f"web2  hello        {R3}",
        "web2  hello",
        f"hello: hosts DISAGREE: web1={R2}, web2={R1}",
        f"hello-async: all hosts on {R2}",
    ]


def test_releases_on_hosts_without_any_say_to_deploy(lab_inv, monkeypatch, capsys):
    asked = []

    def run_on(inv, hosts, command):
        an_inventory(inv)
        asked.append(list(hosts))
        return dict.fromkeys(hosts, (0, ""))

    monkeypatch.setattr(commands.remote, "run_on", run_on)
    assert commands.releases(lab_inv) == {}
    assert asked == [["lb1", "web1", "web2", "broker1", "worker1", "worker2"]]
    assert capsys.readouterr().out == "no releases on these hosts; run fab deploy\n"


# --- fab site --limit ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [None, "", "web1", "web", "web:!web1", "~nosuch.*", "@nosuch.retry"])
def test_a_limit_that_matches_a_host_or_is_ansibles_own_business_passes(lab_inv, limit):
    assert commands.check_limit(lab_inv, limit) is None


def test_a_limit_that_matches_no_host_is_one_line_naming_the_hosts_and_groups(lab_inv):
    with pytest.raises(PyfleetError, match=r"^--limit webX: matches no host"):
        commands.check_limit(lab_inv, "webX")
    with pytest.raises(PyfleetError) as caught:
        commands.check_limit(lab_inv, "web3")
    assert str(caught.value) == (
        f"--limit web3: matches no host of inventory {lab_inv.path}; "
        "use hosts (lb1, web1, web2, broker1, worker1, worker2) or groups (brokers, loadbalancers, web, workers)"
    )


# --- the apps a command acts on -------------------------------------------------------------------------------


def test_apps_are_all_of_the_plan_or_the_one_asked_for(fleet_inv):
    the_plan, names = commands._apps(fleet_inv)
    assert names == ["hello", "hello-async"] and [a["name"] for a in the_plan["apps"]] == names
    assert commands._apps(fleet_inv, "hello-async")[1] == ["hello-async"]
    with pytest.raises(PyfleetError) as caught:
        commands._apps(fleet_inv, "shop")
    assert str(caught.value) == f"no app 'shop' in pyfleet_apps of {fleet_inv.path}; apps: hello, hello-async"


def test_apps_run_the_full_pre_check(lab_inv):
    with pytest.raises(PyfleetError, match="is not an IP address"):
        commands._apps(lab_inv)


def test_an_inventory_without_apps_says_none():
    inv = inventory.Inventory(
        path=Path("inventory/test"), hosts={"web1": {}}, groups={"all": ["web1"], "web": ["web1"]}
    )
    assert commands._apps(inv) == (commands.fleet_plan.from_inventory(inv), [])
    with pytest.raises(PyfleetError) as caught:
        commands._apps(inv, "shop")
    assert str(caught.value) == "no app 'shop' in pyfleet_apps of inventory/test; apps: none"


def test_the_fleet_state_reads_each_apps_web_hosts(lab_inv, hosts):
    hosts.state["worker1"] = {"hello": on(R1)}  # a worker host keeps releases too; not the app's web placement
    assert commands._fleet(lab_inv, ["hello"]) == {"hello": {"web1": on(R2, R1), "web2": on(R2, R1)}}
    assert [h for h, _ in hosts.commands] == [["web1", "web2"]]
    assert "/srv/hello/releases" in hosts.commands[0][1] and "hello-async" not in hosts.commands[0][1]


# --- fab deploy and fab rollback ------------------------------------------------------------------------------


def test_a_deploy_locks_runs_the_playbook_records_the_switch_and_unlocks(lab_inv, control, hosts, monkeypatch, capsys):
    switch = {"hello": {"web1": R3, "web2": R3}}
    summary = {
        "custom": {"release": R3, "unchanged": ["hello-async"]},
        "plays": [{"name": "Web servers", "hosts": ["web1", "web2"], "seconds": 7.5}],
    }
    playbook = Playbook(hosts, switch, summary)
    monkeypatch.setattr(commands.ansible, "playbook", playbook)
    monkeypatch.setattr(commands, "time", Clock(100.0, 112.345, 114.0))
    got = commands.run_release_playbook(
        lab_inv, "deploy", "deploy", ["-e", "deploy_apps=hello"], ["hello", "hello-async"], mitogen=False
    )
    assert got == summary
    [run] = playbook.runs
    assert run["inventory"] == lab_inv.path and run["name"] == "deploy"
    assert run["args"] == ["-e", "deploy_apps=hello"] and run["mitogen"] is False and run["quiet"] is False
    summary_path = run["env"].pop("PYFLEET_SUMMARY")
    assert run["env"] == {"ANSIBLE_STDOUT_CALLBACK": "pyfleet_progress"}
    assert Path(summary_path).name.startswith("pyfleet-summary-") and summary_path.endswith(".json")
    assert not Path(summary_path).exists()  # removed after reading
    assert control.calls == [
        ("acquire", ["hello", "hello-async"], "deploy"),
        ("record", "deploy"),
        ("release", ["hello", "hello-async"]),
    ]
    changes = {
        "hello": {"web1": {"from": R2, "to": R3}, "web2": {"from": R2, "to": R3}},
        "hello-async": {"web1": {"from": R2, "to": R2}, "web2": {"from": R2, "to": R2}},
    }
    assert control.records == [
        {
            "id": "c0ffee000001",
            "when": "2026-12-04T02:40:00Z",
            "who": "ann@ctl",
            "action": "deploy",
            "apps": ["hello", "hello-async"],
            "release": R3,
            "result": "ok",
            "reason": "",
            "seconds": 12.3,
            "changes": changes,
            "releases": {"hello": R3},
        }
    ]
    assert len(hosts.commands) == 2  # the releases before and after
    assert capsys.readouterr().out.splitlines() == [
        "",
        f"deploy: release {R3}; hosts switched: web1, web2; 14 s in all",
        "unchanged, no task on any host: hello-async",
        "phase        hosts       seconds",
        "-----------  ----------  -------",
        "Web servers  web1, web2  7.5",
        "app          host  serves            before",
        "-----------  ----  ----------------  ----------------",
        f"hello        web1  {R3}  {R2}",
        f"hello        web2  {R3}  {R2}",
        f"hello-async  web1  {R2}  {R2}",
        f"hello-async  web2  {R2}  {R2}",
        f"hello: every host on {R3}",
        f"hello-async: every host on {R2}",
    ]


def test_a_failed_deploy_is_recorded_unlocked_summarised_and_raised_as_one_line(
    lab_inv, control, hosts, monkeypatch, capsys
):
    rec = failures.record("web2", "release : Check the health path", {"msg": "Status code was 502"})
    playbook = Playbook(hosts, {"hello": {"web1": R3}}, {"failures": [rec]}, error="web2: task failed")
    monkeypatch.setattr(commands.ansible, "playbook", playbook)
    monkeypatch.setattr(commands, "time", Clock(0.0, 61.04, 62.6))
    with pytest.raises(PyfleetError) as caught:
        commands.run_release_playbook(lab_inv, "deploy", "deploy", [], ["hello"])
    assert str(caught.value) == "deploy failed: web2: task failed"
    assert playbook.runs[0]["mitogen"] is True
    assert control.calls == [("acquire", ["hello"], "deploy"), ("record", "deploy"), ("release", ["hello"])]
    [record] = control.records
    assert record["result"] == "failed" and record["reason"] == "web2: task failed" and record["seconds"] == 61.0
    assert record["release"] == "hello=SPLIT" and record["releases"] == {"hello": None}
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["", "deploy: release hello=SPLIT; hosts switched: web1; 63 s in all"]
    assert out[-2] == f"hello: SPLIT: web1 {R3}, web2 {R2}; finish with fab rollback or fab deploy --app hello"
    assert out[-1] == rec["line"] == "web2: task 'release : Check the health path' failed: Status code was 502"


def test_when_the_hosts_cannot_be_read_after_a_deploy_the_record_keeps_the_summarys_release(
    lab_inv, control, hosts, monkeypatch, capsys
):
    hosts.fail_after = 1  # the releases before are read; then web2 goes away
    summary = {"custom": {"release": R3, "switched": ["web1"]}, "changed": {"web1": 3, "web2": 1}}
    monkeypatch.setattr(commands.ansible, "playbook", Playbook(hosts, {}, summary))
    monkeypatch.setattr(commands, "time", Clock(0.0, 5.0))
    assert commands.run_release_playbook(lab_inv, "deploy", "deploy", [], ["hello"]) == summary
    [record] = control.records
    assert record["release"] == R3 and record["result"] == "ok"
    assert "changes" not in record and "releases" not in record
    assert control.calls[-1] == ("release", ["hello"])
    assert capsys.readouterr().out.splitlines() == [
        "could not read the releases after the deploy: host web2 (10.0.0.13) is unreachable: timed out",
        "",
        f"deploy: release {R3}; hosts switched: web1; 5 s in all",
    ]


def test_a_deploy_that_crashes_still_unlocks_and_removes_its_summary_file(lab_inv, control, hosts, monkeypatch):
    seen = []

    def crash(inventory_path, name, *args, extra_env=None, **kwargs):
        seen.append(extra_env["PYFLEET_SUMMARY"])
        raise KeyboardInterrupt

    monkeypatch.setattr(commands.ansible, "playbook", crash)
    with pytest.raises(KeyboardInterrupt):
        commands.run_release_playbook(lab_inv, "deploy", "deploy", [], ["hello"])
    assert control.calls == [("acquire", ["hello"], "deploy"), ("release", ["hello"])]
    assert not Path(seen[0]).exists()


def deploy_record(rid, changes, when="2026-12-03T10:00:00Z"):
    return {
        "id": rid,
        "action": "deploy",
        "when": when,
        "who": "bob@ctl",
        "result": "ok",
        "release": R3,
        "apps": sorted(changes),
        "changes": changes,
    }


def test_a_rollback_undoes_the_last_deploy_switching_only_the_hosts_that_moved(
    lab_inv, control, hosts, monkeypatch, capsys
):
    hosts.state["web1"]["hello"] = on(R3, R1, R2)
    hosts.state["web2"]["hello"] = on(R2, R1, R3)  # already back on R2
    control.past = [
        deploy_record("d1", {"hello": {"web1": {"from": R2, "to": R3}, "web2": {"from": R2, "to": R3}}}),
        {"id": "m1", "action": "maintenance on", "apps": ["hello"], "result": "ok"},
    ]
    playbook = Playbook(hosts, {"hello": {"web1": R2}}, {"custom": {}})
    monkeypatch.setattr(commands.ansible, "playbook", playbook)
    monkeypatch.setattr(commands, "time", Clock(0.0, 9.0))
    prepare = commands.rollback_prepare(lab_inv, ["hello", "hello-async"])
    commands.run_release_playbook(
        lab_inv, "rollback", "rollback", ["-e", "x=1"], ["hello", "hello-async"], prepare=prepare
    )
    [run] = playbook.runs
    assert run["name"] == "rollback"
    assert run["args"] == [
        "-e",
        "x=1",
        "-e",
        json.dumps(
            {
                "rollback_targets": {"hello": {"web1": R2}},
                "rollback_rollout": {"web": ["web1"], "workers": [], "worker_serial": []},
            }
        ),
    ]
    assert ("history", 1000) in control.calls
    [record] = control.records
    assert record["action"] == "rollback" and record["result"] == "ok"
    assert record["undoes"] == {"hello": "d1"} and record["targets"] == {"hello": R2}
    assert record["release"] == R2 and record["releases"] == {"hello": R2}
    out = capsys.readouterr().out.splitlines()
    assert out[:4] == [
        f"undoing the deploy of 2026-12-03T10:00:00Z by bob@ctl (release {R3}): hello",
        f"hello: back to {R2}",
        "",
        f"rollback: release {R2}; hosts switched: web1; 9 s in all",
    ]


def test_a_rollback_to_where_the_hosts_are_runs_no_playbook(lab_inv, control, hosts, monkeypatch, capsys):
    playbook = Playbook(hosts)
    monkeypatch.setattr(commands.ansible, "playbook", playbook)
    monkeypatch.setattr(commands, "time", Clock(0.0, 1.0))
    prepare = commands.rollback_prepare(lab_inv, ["hello"], release=R2, app_given=True)
    assert (
        commands.run_release_playbook(lab_inv, "rollback", "rollback", ["-e", "x=1"], ["hello"], prepare=prepare) == {}
    )
    assert playbook.runs == []
    [record] = control.records
    assert record["undoes"] == {} and record["targets"] == {"hello": R2}
    assert record["release"] == "unchanged" and record["result"] == "ok" and record["releases"] == {}
    assert control.calls[0] == ("acquire", ["hello"], "rollback") and control.calls[-1] == ("release", ["hello"])
    assert capsys.readouterr().out.splitlines()[:4] == [
        f"hello: back to {R2}",
        "rollback: every host already serves its target release; nothing to switch",
        "",
        "rollback: release unchanged; hosts switched: none; 1 s in all",
    ]


def test_a_rollback_that_cannot_be_planned_switches_nothing_and_still_unlocks(lab_inv, control, hosts, monkeypatch):
    playbook = Playbook(hosts)
    monkeypatch.setattr(commands.ansible, "playbook", playbook)
    prepare = commands.rollback_prepare(lab_inv, ["hello"], release=R3, app_given=True)
    with pytest.raises(PyfleetError, match=f"^release {R3} of app hello is not on web1"):
        commands.run_release_playbook(lab_inv, "rollback", "rollback", [], ["hello"], prepare=prepare)
    assert playbook.runs == [] and control.records == []
    assert control.calls == [("acquire", ["hello"], "rollback"), ("history", 1000), ("release", ["hello"])]


def test_rollback_prepare_names_every_host_to_switch(lab_inv, control):
    before = {
        "hello": {"web1": on(R3, R1, R2), "web2": on(R3, R1, R2)},
        "hello-async": {"web1": on(R3, R1), "web2": on(R1, R3)},
    }
    args, fields, notes = commands.rollback_prepare(lab_inv, ["hello", "hello-async"], release=R1)(before)
    assert args == [
        "-e",
        json.dumps(
            {
                "rollback_targets": {"hello": {"web1": R1, "web2": R1}, "hello-async": {"web1": R1}},
                # The web hosts in inventory order, one play; no worker host switches.
                "rollback_rollout": {"web": ["web1", "web2"], "workers": [], "worker_serial": []},
            }
        ),
    ]
    assert fields == {"undoes": {}, "targets": {"hello": R1, "hello-async": R1}}
    assert notes == [f"hello: back to {R1}", f"hello-async: back to {R1}"]


def test_a_rollback_switches_worker_hosts_after_the_web_hosts_side_by_side_when_they_share_no_type(lab_inv, control):
    before = {"hello": {h: on(R3, R1, R3) for h in ("worker2", "web2", "worker1", "web1")}}
    args, _, _ = commands.rollback_prepare(lab_inv, ["hello"], release=R1)(before)
    # The lab's worker1 runs default and io, worker2 cpu: one wave of two.
    assert json.loads(args[1])["rollback_rollout"] == {
        "web": ["web1", "web2"],
        "workers": ["worker1", "worker2"],
        "worker_serial": [2],
    }
    assert len(args) == 2  # the rollout names every host that switches


# --- the summary file ------------------------------------------------------------------------------------------


def test_the_summary_file_is_read_and_a_missing_or_broken_one_is_empty(tmp_path):
    good = tmp_path / "summary.json"
    good.write_text('{"custom": {"release": "r"}}', encoding="utf-8")
    assert commands._read_summary(good) == {"custom": {"release": "r"}}
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    assert commands._read_summary(broken) == {}
    assert commands._read_summary(tmp_path / "none.json") == {}


def test_without_releases_read_the_summary_names_the_changed_hosts_but_not_localhost(capsys):
    commands.print_summary("site", {"changed": {"web2": 1, "localhost": 2, "lb1": 4}}, 0.4)
    assert capsys.readouterr().out == "\nsite: release -; hosts switched: lb1, web2; 0 s in all\n"
    commands.print_summary("site", {"custom": {"switched": ["web1"]}, "changed": {"web2": 1}}, 59.5)
    assert capsys.readouterr().out == "\nsite: release -; hosts switched: web1; 60 s in all\n"
    commands.print_summary("site", {"plays": [], "failures": []}, 1)
    assert capsys.readouterr().out == "\nsite: release -; hosts switched: none; 1 s in all\n"


def test_a_summary_with_an_empty_change_map_prints_no_release_table(capsys):
    commands.print_summary("rollback", {"plays": [{"name": "P", "hosts": ["a"], "seconds": 1}]}, 2, {})
    assert capsys.readouterr().out.splitlines() == [
        "",
        "rollback: release unchanged; hosts switched: none; 2 s in all",
        "phase  hosts  seconds",
        "-----  -----  -------",
        "P      a      1",
    ]


# --- fab logs ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "service, unit", [("redis-server", "redis-server.service"), ("rabbitmq-server", "rabbitmq-server.service")]
)
def test_system_services_answer_to_their_package_names_too(lab_inv, service, unit):
    assert commands.unit_pattern(lab_inv, service) == unit


def test_a_prefixed_stream_writes_whole_lines_only_each_under_its_host(capsys):
    stream = commands._Prefixed("web1", 7)
    stream.write("first\nsec")
    assert capsys.readouterr().out == "web1    | first\n"
    stream.write("ond\nthird\n")
    stream.flush()
    assert capsys.readouterr().out == "web1    | second\nweb1    | third\n"
    assert stream.buffer == ""


class Journals:
    """remote.connection and remote.run for `fab logs`: each host's journal, or its one-line failure."""

    def __init__(self, present, journal=None, errors=None):
        self.present, self.journal, self.errors = present, journal or {}, errors or {}
        self.probes, self.runs, self.closed, self.daemons = [], [], [], []

    def run_on(self, inv, hosts, command):
        an_inventory(inv)
        self.probes.append((list(hosts), command))
        return {h: (0 if h in self.present else 1, "") for h in hosts}

    def connection(self, inv, host):
        an_inventory(inv)
        journals = self

        class Conn:
            def close(self):
                journals.closed.append(host)

        conn = Conn()
        conn.host = host
        return conn

    def run(self, conn, command, hide=True, out_stream=None, err_stream=None):
        self.runs.append((conn.host, command, hide))
        # A daemon thread: Ctrl-C ends `fab logs -f` even while journals still follow.
        self.daemons.append(threading.current_thread().daemon)
        time.sleep(0.05)  # the journal takes a moment: the command waits for every host
        if conn.host in self.errors:
            raise PyfleetError(self.errors[conn.host])
        out, err = self.journal.get(conn.host, ("", ""))
        out_stream.write(out)
        err_stream.write(err)


@pytest.fixture
def journals(monkeypatch):
    def make(*args, **kwargs):
        fake = Journals(*args, **kwargs)
        monkeypatch.setattr(commands.remote, "run_on", fake.run_on)
        monkeypatch.setattr(commands.remote, "connection", fake.connection)
        monkeypatch.setattr(commands.remote, "run", fake.run)
        return fake

    return make


def test_logs_follow_the_journal_of_the_hosts_that_run_the_service_each_line_under_its_host(lab_inv, journals, capsys):
    fake = journals(
        {"lb1", "web2"},
        {
            "lb1": ("2026-12-04T02:40:00+0000 lb1 nginx[7]: started\n", "warning: journal rotated\n"),
            "web2": ("2026-12-04T02:40:01+0000 web2 nginx[9]: started\n", ""),
        },
    )
    commands.logs(lab_inv, "nginx", None, lines="20", follow=True)
    unit = "nginx.service"
    assert fake.probes == [
        (list(lab_inv.hosts), f"systemctl list-units --all --no-legend --plain '{unit}' | grep -q .")
    ]
    cmd = f"journalctl --no-pager -o short-iso -n 20 -u '{unit}' -f"
    assert sorted(fake.runs) == [("lb1", cmd, False), ("web2", cmd, False)]
    assert sorted(fake.closed) == ["lb1", "web2"]
    assert fake.daemons == [True, True]
    assert sorted(capsys.readouterr().out.splitlines()) == [
        "lb1  | 2026-12-04T02:40:00+0000 lb1 nginx[7]: started",
        "lb1  | warning: journal rotated",
        "web2 | 2026-12-04T02:40:01+0000 web2 nginx[9]: started",
    ]


def test_logs_without_follow_read_the_last_lines_of_the_limits_hosts(lab_inv, journals):
    fake = journals({"web1", "web2"})
    commands.logs(lab_inv, "hello", "web1")
    assert fake.probes == [
        (["web1"], "systemctl list-units --all --no-legend --plain 'pyfleet-hello@*.service' | grep -q .")
    ]
    assert fake.runs == [("web1", "journalctl --no-pager -o short-iso -n 50 -u 'pyfleet-hello@*.service'", False)]


def test_logs_of_a_service_no_host_runs_is_one_line(lab_inv, journals):
    journals(set())
    with pytest.raises(PyfleetError) as caught:
        commands.logs(lab_inv, "io", "web")
    assert str(caught.value) == (
        "service io (pyfleet-*-worker@io.service) is not deployed on web; see fab status for what runs where"
    )
    with pytest.raises(PyfleetError) as caught:
        commands.logs(lab_inv, "io", None)
    assert str(caught.value).startswith("service io (pyfleet-*-worker@io.service) is not deployed on any host; ")


def test_logs_go_on_on_the_other_hosts_and_fail_at_the_end_naming_each_failure(lab_inv, journals, capsys):
    fake = journals(
        {"lb1", "web1", "web2"},
        {"web1": ("up\n", "")},
        {"web2": "host web2 (web2) is unreachable: timed out", "lb1": "host lb1 (lb1) is unreachable: refused"},
    )
    with pytest.raises(PyfleetError) as caught:
        commands.logs(lab_inv, "nginx", None)
    assert str(caught.value) == (
        "host lb1 (lb1) is unreachable: refused; and host web2 (web2) is unreachable: timed out"
    )
    assert capsys.readouterr().out == "web1 | up\n"
    assert sorted(fake.closed) == ["lb1", "web1", "web2"]


# --- fab history and fab lock ------------------------------------------------------------------------------------


def test_history_is_a_table_of_the_last_records(lab_inv, control, capsys):
    control.past = [
        {
            "when": "2026-12-01T10:00:00Z",
            "who": "ann@ctl",
            "action": "deploy",
            "apps": ["hello", "hello-async"],
            "release": R1,
            "result": "ok",
            "seconds": 61.2,
        },
        {
            "when": "2026-12-02T10:00:00Z",
            "who": "bob@ctl",
            "action": "deploy",
            "apps": ["hello"],
            "release": R2,
            "result": "failed",
            "seconds": 3.0,
            "reason": "web2: task failed",
        },
        {
            "when": "2026-12-03T10:00:00Z",
            "who": "bob@ctl",
            "action": "maintenance on",
            "release": "",
            "result": "ok",
            "seconds": 1.0,
        },
    ]
    assert commands.show_history(lab_inv, 2) == control.past[1:]
    assert control.calls == [("history", 2)]
    assert capsys.readouterr().out.splitlines() == [
        "when                  who      action          apps   release           result  seconds  reason",
        "--------------------  -------  --------------  -----  ----------------  ------  -------  -----------------",
        f"2026-12-02T10:00:00Z  bob@ctl  deploy          hello  {R2}  failed  3.0      web2: task failed",
        "2026-12-03T10:00:00Z  bob@ctl  maintenance on                           ok      1.0",
    ]
    commands.show_history(lab_inv)
    assert control.calls[-1] == ("history", 20)
    assert capsys.readouterr().out.splitlines()[2].split()[3] == "hello,hello-async"


def test_no_history_says_where_it_lives(lab_inv, control, capsys):
    assert commands.show_history(lab_inv) == []
    assert capsys.readouterr().out == f"no deploys recorded yet (history lives on lb1:{commands.audit.HISTORY})\n"


def test_locks_are_a_table_with_their_age_in_minutes(lab_inv, control, monkeypatch, capsys):
    epoch = 1_800_000_000
    monkeypatch.setattr(commands, "time", Clock(0.0, epoch=epoch))
    control.held = {
        "hello": {"owner": "ann@ctl", "action": "deploy", "since": "2026-12-04T02:29:01Z", "epoch": epoch - 3000},
        "api": {"owner": "?", "since": "?", "action": "unreadable lock"},
    }
    assert commands.show_locks(lab_inv) is None
    assert capsys.readouterr().out.splitlines() == [
        "app    owner    action           since                 age",
        "-----  -------  ---------------  --------------------  ------",
        "api    ?        unreadable lock  ?                     0 min",
        "hello  ann@ctl  deploy           2026-12-04T02:29:01Z  50 min",
    ]
    assert control.calls == [("locks",)]


def test_no_locks_held(lab_inv, control, capsys):
    commands.show_locks(lab_inv)
    assert capsys.readouterr().out == "no locks held\n"


def test_clearing_a_lock_removes_only_that_one_and_names_its_holder(lab_inv, control, capsys):
    control.held = {
        "hello": {"owner": "ann@ctl", "action": "deploy", "since": "s", "epoch": int(time.time()) - 125},
        "api": {"owner": "bob@ctl", "action": "rollback", "since": "t", "epoch": int(time.time())},
    }
    commands.show_locks(lab_inv, clear_app="hello")
    assert control.calls == [("locks",), ("release", ["hello"])]
    assert (
        capsys.readouterr().out
        == "cleared the lock of hello (app hello is locked by ann@ctl (deploy) since s, 2 min ago)\n"
    )
    with pytest.raises(PyfleetError) as caught:
        commands.show_locks(lab_inv, clear_app="shop")
    assert str(caught.value) == "app shop is not locked; nothing to clear"
    assert control.calls[-1] == ("locks",)


# --- fab workers --------------------------------------------------------------------------------------------------

INSPECTED = {
    "stats": {"default@worker1": {"total": {"tasks.add": 5, "tasks.mul": 2}}, "io@worker1": {"pid": 12}},
    "queues": {"default@worker1": [{"name": "default"}], "io@worker1": [{"name": "io"}, {"exclusive": True}]},
    "active": {"default@worker1": [{"id": "a"}, {"id": "b"}]},
    "reserved": {"io@worker1": [{"id": "c"}], "default@worker1": []},
}


def test_worker_rows_read_celerys_inspect_replies_and_filter_by_type_and_host():
    assert commands.worker_rows(INSPECTED) == [
        ["default@worker1", "worker1", "default", "default", 2, 0, 7],
        ["io@worker1", "worker1", "io", "io,?", 0, 1, 0],
    ]
    assert commands.worker_rows(INSPECTED, type_filter="io") == [["io@worker1", "worker1", "io", "io,?", 0, 1, 0]]
    assert commands.worker_rows(INSPECTED, host_filter="worker2") == []
    assert [r[0] for r in commands.worker_rows(INSPECTED, "default", "worker1")] == ["default@worker1"]
    assert commands.worker_rows({"stats": {"cpu@worker2": {"total": {"t": 1}}}}) == [
        ["cpu@worker2", "worker2", "cpu", "", 0, 0, 1]
    ]
    assert commands.worker_rows({}) == []


FAKE_APP = """
import json


class Inspect:
    def __init__(self, timeout):
        assert timeout == 3
        self.data = json.loads({data!r})

    def active(self):
        return self.data.get("active")

    def reserved(self):
        return self.data.get("reserved")

    def stats(self):
        return self.data.get("stats")

    def active_queues(self):
        return self.data.get("queues")


class App:
    class control:
        inspect = Inspect


app = App()
"""


@pytest.fixture
def celery(tmp_path, monkeypatch):
    """remote.run_on for `fab workers`: runs the inspect script here, against a stand-in sampleapp.tasks."""
    asked = []
    state = {"data": INSPECTED, "code": None}

    def run_on(inv, hosts, command):
        an_inventory(inv)
        asked.append((list(hosts), command))
        if state["code"] is not None:
            return dict.fromkeys(hosts, (state["code"], ""))
        pkg = tmp_path / "sampleapp"
        pkg.mkdir(exist_ok=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "tasks.py").write_text(FAKE_APP.format(data=json.dumps(state["data"])))
        script = shlex.split(command)[-1]
        proc = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env={"PYTHONPATH": str(tmp_path)}
        )
        return dict.fromkeys(hosts, (proc.returncode, "celery: a warning\nand another\n" + proc.stdout + proc.stderr))

    monkeypatch.setattr(commands.remote, "run_on", run_on)
    return SimpleNamespace(asked=asked, state=state)


def test_workers_inspect_through_the_first_worker_host_as_the_app_and_name_the_silent_ones(lab_inv, celery, capsys):
    rows = commands.workers(lab_inv)
    assert rows == commands.worker_rows(INSPECTED)
    [(hosts, command)] = celery.asked
    assert hosts == ["worker1"]
    script = commands.INSPECT.format(celery_app="sampleapp.tasks:app")
    assert command == (
        "set -a; . /etc/pyfleet/celery/hello.env; set +a; cd /srv/hello/current && "
        f"runuser -u app_hello -- /srv/hello/current/venv/bin/python -c {shlex.quote(script)}"
    )
    assert "'sampleapp.tasks:app'.partition(':')" in script
    out = capsys.readouterr().out
    assert out == (
        table(["node", "host", "type", "queues", "active", "reserved", "processed"], rows)
        + "\nnot answering: cpu@worker2\n"
    )
    assert out.splitlines()[0].split() == ["node", "host", "type", "queues", "active", "reserved", "processed"]


def test_workers_filtered_expect_only_their_own_nodes(lab_inv, celery, capsys):
    assert [r[0] for r in commands.workers(lab_inv, type_filter="io")] == ["io@worker1"]
    assert "not answering" not in capsys.readouterr().out
    assert [r[0] for r in commands.workers(lab_inv, host_filter="worker1")] == ["default@worker1", "io@worker1"]
    assert "not answering" not in capsys.readouterr().out
    celery.state["data"] = {"stats": {"default@worker1": {}, "cpu@worker2": {}}}
    assert [r[0] for r in commands.workers(lab_inv, host_filter="worker1")] == ["default@worker1"]
    assert capsys.readouterr().out.splitlines()[-1] == "not answering: io@worker1"
    assert [r[0] for r in commands.workers(lab_inv, type_filter="default")] == ["default@worker1"]
    assert "not answering" not in capsys.readouterr().out


def test_workers_that_do_not_answer_say_so(lab_inv, celery, capsys):
    assert commands.workers(lab_inv, type_filter="cpu") == []
    assert capsys.readouterr().out == "no worker node answered for type cpu\n"
    celery.state["data"] = {}
    assert commands.workers(lab_inv) == []
    assert capsys.readouterr().out == "no worker node answered\n"


@pytest.mark.parametrize("code", [1, 0])
def test_a_failed_inspect_is_one_line(lab_inv, celery, code):
    celery.state["code"] = code
    with pytest.raises(PyfleetError) as caught:
        commands.workers(lab_inv)
    assert str(caught.value) == (
        f"celery inspect on worker1 failed (exit {code}); is the app deployed there? see fab status"
    )


def test_workers_refuse_an_unknown_type_or_host_and_an_inventory_without_workers(lab_inv, celery):
    with pytest.raises(PyfleetError) as caught:
        commands.workers(lab_inv, type_filter="gpu")
    assert str(caught.value) == "unknown worker type 'gpu'; types: cpu, default, io"
    with pytest.raises(PyfleetError) as caught:
        commands.workers(lab_inv, host_filter="web1")
    assert str(caught.value) == "'web1' is not a worker host; worker hosts: worker1, worker2"
    inv = inventory.Inventory(
        path=Path("inventory/test"), hosts={"web1": {}}, groups={"all": ["web1"], "web": ["web1"]}
    )
    with pytest.raises(PyfleetError) as caught:
        commands.workers(inv)
    assert str(caught.value) == "inventory inventory/test runs no Celery workers (no celery_worker_catalogue)"
    assert celery.asked == []


# --- fab restart ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "service, hosts",
    [
        ("redis-server", "broker1"),
        ("rabbitmq-server", "broker1"),
        ("hello-async", "web1,web2"),
        ("cpu", "worker2"),
        ("default", "worker1"),
    ],
)
def test_restart_targets_of_aliases_apps_and_types(lab_inv, service, hosts):
    assert commands.restart_targets(lab_inv, service) == hosts


def test_restart_targets_on_a_fleet_without_workers(capsys):
    inv = inventory.Inventory(
        path=Path("inventory/test"), hosts={"web1": {}}, groups={"all": ["web1"], "web": ["web1"]}
    )
    assert commands.restart_targets(inv, "nginx") == "web1"
    assert commands.restart_targets(inv, "redis") == ""
    for service in ("beat", "flower"):
        with pytest.raises(PyfleetError) as caught:
            commands.restart_targets(inv, service)
        assert str(caught.value) == f"no host runs {service}; see fab topology"
    with pytest.raises(PyfleetError, match=r"^unknown service 'io'; choose "):
        commands.restart_targets(inv, "io")


# --- fab maintenance ------------------------------------------------------------------------------------------------


def test_maintenance_status_reads_each_load_balancers_switches(fleet_inv, monkeypatch, capsys):
    asked = []

    def run_on(inv, hosts, command):
        an_inventory(inv)
        asked.append((list(hosts), command))
        return {"lb1": (0, "hello\n")}

    monkeypatch.setattr(commands.remote, "run_on", run_on)
    assert commands.maintenance(fleet_inv, "status") == [["hello", "lb1", "on"], ["hello-async", "lb1", "off"]]
    assert asked == [(["lb1"], commands.maint.status_probe())]
    assert capsys.readouterr().out.splitlines() == [
        "app          load balancer  maintenance",
        "-----------  -------------  -----------",
        "hello        lb1            on",
        "hello-async  lb1            off",
    ]


def test_maintenance_on_runs_the_playbook_quietly_and_records_the_switch(fleet_inv, control, monkeypatch, capsys):
    runs = []

    def playbook(inventory_path, name, *args, mitogen=True, quiet=False, **kwargs):
        runs.append((inventory_path, name, list(args), mitogen, quiet, kwargs))

    monkeypatch.setattr(commands.ansible, "playbook", playbook)
    monkeypatch.setattr(commands, "time", Clock(10.0, 12.26, 13.6))
    assert commands.maintenance(fleet_inv, "on", "hello", mitogen=False) == ["hello"]
    assert runs == [
        (
            fleet_inv.path,
            "maintenance",
            ["-e", '{"maintenance_state": "on", "maintenance_apps": ["hello"]}'],
            False,
            True,
            {},
        )
    ]
    [record] = control.records
    assert record["action"] == "maintenance on" and record["apps"] == ["hello"]
    assert record["result"] == "ok" and record["seconds"] == 2.3
    assert capsys.readouterr().out == "maintenance on: hello on lb1 (4 s)\n"


def test_a_failed_maintenance_switch_is_recorded_and_one_line(fleet_inv, control, monkeypatch, capsys):
    def playbook(inventory_path, name, *args, mitogen=True, quiet=False, **kwargs):
        assert mitogen is True
        raise PyfleetError("lb1: task 'loadbalancer : Validate' failed: nginx -t")

    monkeypatch.setattr(commands.ansible, "playbook", playbook)
    with pytest.raises(PyfleetError) as caught:
        commands.maintenance(fleet_inv, "off")
    assert str(caught.value) == "maintenance off failed: lb1: task 'loadbalancer : Validate' failed: nginx -t"
    [record] = control.records
    assert record["result"] == "failed" and record["apps"] == ["hello", "hello-async"]
    assert record["reason"] == "lb1: task 'loadbalancer : Validate' failed: nginx -t"
    assert capsys.readouterr().out == ""


def test_maintenance_checks_the_state_first(fleet_inv, control):
    with pytest.raises(PyfleetError, match=r"^fab maintenance: 'onn' is not on, off or status"):
        commands.maintenance(fleet_inv, "onn", "shop")
    assert control.calls == []


# --- fab pin --------------------------------------------------------------------------------------------------------


@pytest.fixture
def pins(monkeypatch):
    calls = []

    def pin(spec, extras, upgrade):
        calls.append((spec["name"], extras, upgrade))
        return Path(f"/src/{spec['name']}/requirements.txt"), 12, "pyproject.toml"

    monkeypatch.setattr(commands.pinmod, "pin", pin)
    monkeypatch.setattr(commands, "time", Clock(1.0, 2.25))
    return calls


def test_pin_writes_the_apps_pins_and_says_where(lab_inv, pins, capsys):
    assert commands.pin(lab_inv, "hello", ["redis"], upgrade=True) == Path("/src/hello/requirements.txt")
    assert pins == [("hello", ["redis"], True)]
    assert (
        capsys.readouterr().out == "hello: 12 pins from pyproject.toml written to /src/hello/requirements.txt (1.2 s)\n"
    )


def test_pin_of_an_app_without_requirements_says_how_to_use_them(pins, capsys):
    apps = [
        {"name": "hello", "source": {"path": "nowhere/yet"}, "kind": "wsgi", "entry": "app:app", "domains": ["h.test"]}
    ]
    inv = inventory.Inventory(
        path=Path("inventory/test"), hosts={"web1": {"pyfleet_apps": apps}}, groups={"all": ["web1"], "web": ["web1"]}
    )
    commands.pin(inv, "hello")
    assert pins == [("hello", (), False)]
    assert capsys.readouterr().out.splitlines()[1] == (
        "add  requirements: /src/hello/requirements.txt  to app hello in pyfleet_apps: deploys then install exactly these"
    )


def test_pin_needs_a_known_app(lab_inv, pins):
    with pytest.raises(PyfleetError) as caught:
        commands.pin(lab_inv, None)
    assert str(caught.value) == "fab pin needs --app NAME; apps: hello, hello-async"
    with pytest.raises(PyfleetError) as caught:
        commands.pin(lab_inv, "shop")
    assert str(caught.value) == f"no app 'shop' in pyfleet_apps of {lab_inv.path}; apps: hello, hello-async"
    inv = inventory.Inventory(
        path=Path("inventory/test"), hosts={"web1": {}}, groups={"all": ["web1"], "web": ["web1"]}
    )
    with pytest.raises(PyfleetError) as caught:
        commands.pin(inv, "shop")
    assert str(caught.value) == "no app 'shop' in pyfleet_apps of inventory/test; apps: none"
    assert pins == []


# --- fab check --------------------------------------------------------------------------------------------------------


def test_changes_count_from_the_first_task_and_only_changed_lines_at_the_start():
    lines = [
        "changed: [web1]\n",  # no task yet
        "TASK [my.collection-role : Do it] ***\n",
        "  changed: [web2]\n",
        "fatal: [web2]: FAILED!\n",
        "TASK [Gathering Facts] *********\n",
        "changed: [lb1]\n",
        "changed: [lb1]\n",
        "TASK [my.collection-role : Again] ***\n",
        "changed: [lb1]\n",
    ]
    assert commands.changes_in(lines) == {"lb1": ["play tasks", "my.collection-role"]}
    assert commands.check_suggestion(lines) == (
        "changes on lb1 (play tasks, my.collection-role); converge only them: fab site --limit lb1"
    )


def test_a_delegated_change_counts_for_the_inventory_host_not_where_it_ran():
    """Bug: "changed: [web1 -> lb1]" (the app's switch drains web1 on lb1) made the limit "web1 -> lb1"."""
    lines = [
        "TASK [loadbalancer : Take web1 out] ***\n",
        "changed: [web1 -> lb1]\n",
        "changed: [web2 -> lb1] => (item=hello)\n",
        "TASK [app : Start the release] ***\n",
        "changed: [web1]\n",
    ]
    assert commands.changes_in(lines) == {"web1": ["loadbalancer", "app"], "web2": ["loadbalancer"]}
    assert commands.check_suggestion(lines).endswith("converge only them: fab site --limit web1,web2")


def test_a_deploy_whose_releases_cannot_be_read_after_and_that_wrote_no_summary_records_no_release(
    lab_inv, control, hosts, monkeypatch, capsys
):
    hosts.fail_after = 1
    monkeypatch.setattr(commands.ansible, "playbook", Playbook(hosts))
    assert commands.run_release_playbook(lab_inv, "deploy", "deploy", [], ["hello"]) == {}
    [record] = control.records
    assert record["release"] == "" and record["result"] == "ok"
    assert capsys.readouterr().out.splitlines()[-1].startswith("deploy: release -; hosts switched: none; ")


def test_a_rollback_of_one_app_given_goes_back_from_the_history_without_undoing_the_whole_deploy(lab_inv, control):
    control.past = [
        deploy_record(
            "d1",
            {
                "hello": {"web1": {"from": R1, "to": R2}, "web2": {"from": R1, "to": R2}},
                "hello-async": {"web1": {"from": R1, "to": R2}, "web2": {"from": R1, "to": R2}},
            },
        )
    ]
    before = {"hello": {"web1": on(R2, R1), "web2": on(R2, R1)}}
    args, fields, notes = commands.rollback_prepare(lab_inv, ["hello"], app_given=True)(before)
    assert notes == [f"hello: back to {R1}"]  # not "undoing the deploy of ...: hello, hello-async"
    assert fields == {"undoes": {"hello": "d1"}, "targets": {"hello": R1}}
    assert json.loads(args[-1])["rollback_rollout"]["web"] == ["web1", "web2"]
    assert control.calls == [("history", 1000)]


def test_worker_nodes_split_at_the_first_at_sign_as_celery_does():
    # celery.utils.nodenames.nodesplit: "name@host" split once, from the left.
    assert commands.worker_rows({"stats": {"io@worker1@2": {}}}) == [["io@worker1@2", "worker1@2", "io", "", 0, 0, 0]]


def test_workers_name_every_node_that_does_not_answer(lab_inv, celery, capsys):
    celery.state["data"] = {"stats": {"default@worker1": {}}}
    commands.workers(lab_inv)
    assert capsys.readouterr().out.splitlines()[-1] == "not answering: cpu@worker2, io@worker1"


def test_restart_targets_join_every_host(lab_inv, monkeypatch):
    inv = inventory.Inventory(
        path=Path("inventory/test"),
        hosts={"lb1": {}, "b1": {}, "b2": {}},
        groups={"all": ["lb1", "b1", "b2"], "loadbalancers": ["lb1"], "brokers": ["b1", "b2"]},
    )
    assert commands.restart_targets(inv, "nginx") == "lb1"  # no group web
    assert commands.restart_targets(inv, "rabbitmq") == "b1,b2"
    real = commands.fleet_plan.from_inventory(lab_inv, check_paths=False)
    real["celery"]["hosts"]["worker2"].append({"type": "default", "node": "default@worker2"})
    monkeypatch.setattr(commands.fleet_plan, "from_inventory", lambda inv, **kwargs: real)
    assert commands.restart_targets(lab_inv, "default") == "worker1,worker2"


def test_maintenance_of_every_app_on_every_load_balancer(fleet_inv, control, monkeypatch, capsys):
    fleet_inv.hosts["lb2"] = {**fleet_inv.hosts["lb1"], "ansible_host": "10.0.0.99"}
    fleet_inv.groups["loadbalancers"].append("lb2")
    fleet_inv.groups["all"].append("lb2")
    monkeypatch.setattr(commands.ansible, "playbook", lambda *args, **kwargs: {})
    monkeypatch.setattr(commands, "time", Clock(0.0))
    assert commands.maintenance(fleet_inv, "off") == ["hello", "hello-async"]
    assert capsys.readouterr().out == "maintenance off: hello, hello-async on lb1, lb2 (0 s)\n"
