"""pyfleet.audit: the deploy lock and the history, run through a stand-in for SSH that runs sh here.

The commands the control host runs are the real ones; only their paths point
into a temporary directory and the "host" is this machine's sh.
"""

import json
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from pyfleet import audit, remote
from pyfleet.errors import PyfleetError
from pyfleet.inventory import Inventory


def fleet(**common):
    groups = {"all": ["web1", "lb1", "lb2"], "loadbalancers": ["lb1", "lb2"], "web": ["web1"]}
    return Inventory(path=Path("inventory/test"), hosts={h: dict(common) for h in groups["all"]}, groups=groups)


class Conn:
    closed = 0

    def __init__(self, host):
        self.host = host

    def close(self):
        Conn.closed += 1


@pytest.fixture
def control(tmp_path, monkeypatch):
    """The control host's state under tmp_path; every command it ran, with the host it ran on."""
    state = tmp_path / "var-lib-pyfleet"
    monkeypatch.setattr(audit, "STATE_DIR", str(state))
    monkeypatch.setattr(audit, "HISTORY", f"{state}/history.jsonl")
    monkeypatch.setattr(audit, "LOCK_DIR", f"{state}/locks")
    ran = []

    def run(conn, command, **kwargs):
        ran.append((conn.host, command, kwargs))
        proc = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=False)
        return SimpleNamespace(stdout=proc.stdout, exited=proc.returncode)

    monkeypatch.setattr(remote, "connection", lambda inv, host: Conn(host) if inv.hosts else None)
    monkeypatch.setattr(remote, "run", run)
    Conn.closed = 0
    return SimpleNamespace(state=state, ran=ran)


def test_control_host_is_the_first_load_balancer_else_the_first_host():
    assert audit.control_host(fleet()) == "lb1"
    groups = {"all": ["web2", "web1"], "web": ["web2", "web1"]}
    inv = Inventory(path=Path("inventory/test"), hosts={"web2": {}, "web1": {}}, groups=groups)
    assert audit.control_host(inv) == "web2"
    with pytest.raises(PyfleetError) as caught:
        audit.control_host(fleet(pyfleet_control_host="db9"))
    assert str(caught.value) == "pyfleet_control_host: 'db9' is not an inventory host; set it to one of web1, lb1, lb2"


def test_a_lock_is_taken_on_the_control_host_as_root_and_says_who_holds_it(control, monkeypatch):
    monkeypatch.setenv("SUDO_USER", "ann")
    monkeypatch.setattr(audit.socket, "gethostname", lambda: "laptop")
    assert audit.acquire(fleet(), ["shop", "blog"], "deploy") == ["blog", "shop"]
    assert {host for host, _, _ in control.ran} == {"lb1"}
    assert all(kwargs == {"hide": True} for _, _, kwargs in control.ran)
    assert Conn.closed == len(control.ran)  # each connection closed after its command
    holder = json.loads((control.state / "locks" / "shop.json").read_text())
    assert holder["owner"] == "ann@laptop" and holder["action"] == "deploy"
    assert abs(holder["epoch"] - time.time()) < 60 and len(holder["token"]) == 32
    assert time.strptime(holder["since"], "%Y-%m-%dT%H:%M:%SZ")
    assert audit.locks(fleet()) == {"blog": holder, "shop": holder}


def test_a_held_lock_refuses_the_second_operator_and_leaves_nothing_of_theirs(control):
    inv = fleet()
    audit.acquire(inv, ["shop"], "deploy")
    first = (control.state / "locks" / "shop.json").read_text()
    with pytest.raises(PyfleetError) as caught:
        audit.acquire(inv, ["blog", "shop"], "rollback")
    assert str(caught.value).startswith("app shop is locked by ")
    assert "(deploy) since " in str(caught.value) and str(caught.value).endswith("fab lock --clear --app shop")
    # blog, taken before shop was found held, is released again; shop's lock is the first operator's.
    assert sorted(p.name for p in (control.state / "locks").iterdir()) == ["shop.json"]
    assert (control.state / "locks" / "shop.json").read_text() == first


def test_release_removes_only_the_locks_named(control):
    inv = fleet()
    audit.acquire(inv, ["a", "b", "c"], "deploy")
    audit.release(inv, ["a", "c"])
    assert set(audit.locks(inv)) == {"b"}
    before = len(control.ran)
    audit.release(inv, [])
    assert len(control.ran) == before  # nothing to release: no command


def test_an_unreadable_lock_is_listed_as_such(control):
    (control.state / "locks").mkdir(parents=True)
    (control.state / "locks" / "shop.json").write_text("{not json")
    assert audit.locks(fleet()) == {"shop": {"owner": "?", "since": "?", "action": "unreadable lock"}}
    assert audit.describe_holder("shop", "") == (
        "app shop is locked by an unreadable lock; wait for it to finish, "
        "or if that deploy crashed: fab lock --clear --app shop"
    )


def test_describe_holder_gives_the_age_in_minutes():
    text = json.dumps({"owner": "bob@ci", "action": "deploy", "since": "x", "epoch": int(time.time()) - 3540})
    assert audit.describe_holder("shop", "noise\n" + text + "\n") == (
        "app shop is locked by bob@ci (deploy) since x, 59 min ago; wait for it to finish, "
        "or if that deploy crashed: fab lock --clear --app shop"
    )


def test_history_is_the_last_records_oldest_first_and_skips_broken_lines(control):
    inv = fleet()
    assert audit.history(inv) == []  # no history yet
    for i in range(25):
        audit.record(inv, {"id": i, "note": "it's 'quoted'"})
    with open(control.state / "history.jsonl", "a") as f:
        f.write("garbage\n")
    audit.record(inv, {"id": 25, "a": 1})
    records = audit.history(inv, last=5)
    assert [r["id"] for r in records] == [22, 23, 24, 25]
    # One JSON object per line, keys sorted (a history diffable across controllers).
    assert (control.state / "history.jsonl").read_text().splitlines()[-1] == '{"a": 1, "id": 25}'
    assert records[0] == {"id": 22, "note": "it's 'quoted'"}
    assert [r["id"] for r in audit.history(inv)] == list(range(7, 26))


def test_an_unreachable_control_host_says_how_to_go_on(control, monkeypatch):
    def unreachable(conn, command, **kwargs):
        raise remote.Unreachable("lb1", "10.0.0.1", "No route to host")

    monkeypatch.setattr(remote, "run", unreachable)
    with pytest.raises(PyfleetError) as caught:
        audit.history(fleet())
    assert str(caught.value) == (
        "control host lb1 is unreachable (No route to host); bring it up or set pyfleet_control_host"
    )
    assert Conn.closed == 1


def test_operator_and_ids(monkeypatch):
    monkeypatch.delenv("SUDO_USER", raising=False)
    monkeypatch.setattr(audit.getpass, "getuser", lambda: "carl")
    monkeypatch.setattr(audit.socket, "gethostname", lambda: "ctl")
    assert audit.operator() == "carl@ctl"
    assert len(audit.new_id()) == 12 and audit.new_id() != audit.new_id()
    assert time.strptime(audit.now(), "%Y-%m-%dT%H:%M:%SZ")


def test_a_lock_without_its_start_time_is_described_as_just_taken():
    assert audit.describe_holder("shop", '{"owner": "ann@x", "action": "deploy", "since": "s"}').startswith(
        "app shop is locked by ann@x (deploy) since s, 0 min ago;"
    )
