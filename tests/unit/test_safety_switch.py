"""The switch: ``current`` and the nginx upstream move only after the health gate passes.

plugins/modules/pyfleet_release.py runs a web host's switch against a fake host (its
systemctl, nginx and health checks recorded; the release tree, ``current`` and the
upstream file real files under tmp_path). Every step records where ``current`` and
the upstream pointed at that moment. A refused release leaves ``current`` exactly as
it was (same link, same inode) and the upstream file byte for byte.

The task files that wrap the module (roles/app/tasks/switch.yml, deploy.yml) are read
as Ansible reads them: the host leaves the load balancers before the switch and
comes back after it, also when the switch fails.
"""

import os
from pathlib import Path

import pytest
import yaml
from release_module import rel

wait_gone = rel.wait_gone

ROOT = Path(__file__).resolve().parents[2]

OLD, NEW = "20261124T050000Z", "20261124T050100Z"
OLD_UNIT, NEW_UNIT = f"pyfleet-hello@{OLD}.service", f"pyfleet-hello@{NEW}.service"


def make_release(base, release):
    path = base / "releases" / release
    (path / "venv" / "bin").mkdir(parents=True)
    (path / rel.META).write_text('{"wheelhouse": "aaaa"}', encoding="utf-8")


class FakeHost:
    """systemctl, nginx and the two health checks of one web host, recording every step."""

    def __init__(self, base, monkeypatch, fail=None, running=None, enabled=None):
        self.base = base
        self.running = {OLD_UNIT: "active"} if running is None else running
        self.enabled = [OLD_UNIT] if enabled is None else enabled
        self.argv = []  # (argv, timeout) of every command
        self.gates = []  # wait_healthy's and check_through_nginx's arguments
        self.upstream = base / "hello.upstream.conf"
        self.old_upstream = rel.upstream_text("hello", str(base / "run"), OLD)
        self.upstream.write_text(self.old_upstream, encoding="utf-8")
        self.fail = fail
        self.events = []
        self.reloads = 0
        for release in (OLD, NEW):
            make_release(base, release)
        rel.switch_current(str(base), OLD)
        self.link = os.lstat(base / "current")
        names = ("run", "wait_healthy", "check_through_nginx", "nginx_workers", "instances", "enabled_instances")
        for name in (*names, "wait_gone"):
            monkeypatch.setattr(rel, name, getattr(self, name))

    def state(self):
        return rel.current_release(str(self.base)), self.upstream.read_text(encoding="utf-8")

    def record(self, step):
        current, upstream = self.state()
        self.events.append((step, current, NEW if f"/{NEW}/" in upstream else OLD))

    def run(self, args, env=None, timeout=600, stdin=None):
        step = " ".join(a for a in args if not a.startswith("-"))
        self.record(step)
        self.argv.append((list(args), timeout))
        if args[:2] == ["systemctl", "reload"] and args[-1] == "nginx":
            self.reloads += 1
        if self.fail == "nginx -t" and args[0] == "nginx":
            return 1, "nginx: [emerg] no such socket"
        if self.fail == "start" and args[:2] == ["systemctl", "start"]:
            return 1, ""
        if self.fail == "enable" and args[:2] == ["systemctl", "enable"]:
            return 1, "Failed to enable unit: Unit file is masked."
        return 0, ""

    def wait_healthy(self, unit, sock, path, host, timeout):
        self.record(f"health {unit}")
        self.gates.append((unit, sock, path, host, timeout))
        if self.fail == "health":
            raise rel.Failed("health check /healthz answered HTTP 500")

    def check_through_nginx(self, params):
        self.record("health through nginx")
        self.gates.append((params["nginx_port"], params["health_path"], params["health_host"]))
        if self.fail == "through nginx":
            raise rel.Failed("health check /healthz through nginx failed: HTTP 502")

    def nginx_workers(self):
        return {100 + self.reloads: "nginx: worker process"}

    def wait_gone(self, pids, timeout):
        self.record(f"old nginx workers gone {sorted(pids)}")
        return True

    def instances(self, unit):
        assert unit == "pyfleet-hello"
        return dict(self.running)

    def enabled_instances(self, unit):
        assert unit == "pyfleet-hello"
        return list(self.enabled)

    def steps(self):
        return [e[0] for e in self.events]

    def at(self, step):
        """(current, upstream) when ``step`` ran."""
        (found,) = [e[1:] for e in self.events if e[0] == step]
        return found


def params(base, **overrides):
    values = {
        "app": "hello",
        "base_dir": str(base),
        "release": NEW,
        "unit": "pyfleet-hello",
        "socket_dir": str(base / "run"),
        "health_path": "/healthz",
        "health_host": "hello.test",
        "health_timeout": 5,
        "upstream_file": str(base / "hello.upstream.conf"),
        "nginx_port": 80,
        "drain_wait": 0,
        "stop_wait": 0,
        "keep_releases": 5,
        "remove_on_failure": True,
        "celery_app": None,
    }
    values.update(overrides)
    return values


def test_current_and_upstream_move_only_after_the_gate(tmp_path, monkeypatch):
    host = FakeHost(tmp_path, monkeypatch)
    result = rel.action_activate(params(tmp_path))
    assert result["changed"] is True
    assert (result["release"], result["previous"]) == (NEW, OLD)
    steps = host.steps()
    order = [
        f"systemctl start {NEW_UNIT}",
        f"health {NEW_UNIT}",
        "nginx",  # nginx -t -q
        "systemctl reload nginx",
        "health through nginx",
        f"systemctl enable {NEW_UNIT}",
        f"systemctl disable {OLD_UNIT}",
        "old nginx workers gone [100]",  # the old nginx workers finish their requests first
        f"systemctl stop {OLD_UNIT}",
    ]
    assert [s for s in steps if s in order] == order
    # The new instance answers its health path while nothing points at it yet.
    assert host.at(f"health {NEW_UNIT}") == (OLD, OLD)
    # nginx checks and takes the new upstream before current moves.
    assert host.at("nginx") == (OLD, NEW)
    assert host.at("health through nginx") == (OLD, NEW)
    # current moves once the new release answered through nginx, before the old one stops.
    assert host.at(f"systemctl enable {NEW_UNIT}") == (NEW, NEW)
    assert host.at(f"systemctl stop {OLD_UNIT}") == (NEW, NEW)
    assert host.state() == (NEW, rel.upstream_text("hello", str(tmp_path / "run"), NEW))
    assert result["stopped"] == [OLD_UNIT]
    # How long each step took (the deploy reports them): started, through nginx, in all.
    seconds = result["seconds"]
    assert list(seconds) == ["start", "nginx", "total"]
    assert 0 <= seconds["start"] <= seconds["nginx"] <= seconds["total"]


@pytest.mark.parametrize("fail", ["start", "health", "nginx -t", "through nginx"])
def test_a_refused_release_leaves_current_and_the_upstream_exactly_as_they_were(tmp_path, monkeypatch, fail):
    host = FakeHost(tmp_path, monkeypatch, fail=fail)
    with pytest.raises(rel.Failed, match=rf"release {NEW} refused: .* \(still serving {OLD}, release removed\)"):
        rel.action_activate(params(tmp_path))
    link = os.lstat(tmp_path / "current")
    assert os.readlink(tmp_path / "current") == f"releases/{OLD}"
    assert (link.st_ino, link.st_mtime_ns) == (host.link.st_ino, host.link.st_mtime_ns)
    assert host.upstream.read_text(encoding="utf-8") == host.old_upstream
    assert not (tmp_path / "hello.upstream.conf.tmp").exists()
    # The old release kept serving: never stopped, never disabled; the new one is gone.
    steps = host.steps()
    assert not [s for s in steps if OLD_UNIT in s]
    assert f"systemctl enable {NEW_UNIT}" not in steps
    assert f"systemctl stop {NEW_UNIT}" in steps
    assert rel.releases(str(tmp_path)) == [OLD]
    # nginx reloads only once the new upstream was written: to take it, then the old one back
    # (after a refused `nginx -t`, the old file is back before that one reload).
    assert host.reloads == {"nginx -t": 1, "through nginx": 2}.get(fail, 0)
    # The reload that undoes the switch reads the old upstream again.
    reloads = [(current, upstream) for step, current, upstream in host.events if step == "systemctl reload nginx"]
    assert reloads == {"nginx -t": [(OLD, OLD)], "through nginx": [(OLD, NEW), (OLD, OLD)]}.get(fail, [])
    assert all(current == OLD for _, current, _ in host.events)


def test_a_refused_rollback_keeps_its_target(tmp_path, monkeypatch):
    host = FakeHost(tmp_path, monkeypatch, fail="health")
    with pytest.raises(rel.Failed, match=rf"\(still serving {OLD}\)$"):
        rel.action_activate(params(tmp_path, remove_on_failure=False))
    assert rel.releases(str(tmp_path)) == [OLD, NEW]
    assert host.state()[0] == OLD


# --- the tasks around the module --------------------------------------------------------------


def load(path):
    return yaml.safe_load((ROOT / path).read_text(encoding="utf-8"))


def drain_state(task):
    include = task.get("ansible.builtin.include_role", {})
    if include.get("name") == "loadbalancer" and include.get("tasks_from") == "drain":
        assert include["apply"] == {"delegate_to": "{{ __app_lb }}"}
        assert task["vars"]["loadbalancer_drain_host"] == "{{ inventory_hostname }}"
        assert task["loop"] == "{{ __app_loadbalancers }}"
        assert task["loop_control"] == {"loop_var": "__app_lb"}  # item stays the switch's
        return task["vars"]["loadbalancer_drain_state"]
    return None


def test_switch_drains_the_host_first_and_puts_it_back_after_and_on_failure():
    (switch,) = load("roles/app/tasks/switch.yml")
    block, rescue = switch["block"], switch["rescue"]
    assert [drain_state(t) for t in block] == ["drained", None, "active"]
    assert block[1]["pyfleet_release"] == {
        "action": "activate",
        "app": "{{ item.app.name }}",
        "base_dir": "{{ item.app.base_dir }}",
        "release": "{{ item.release }}",
        "unit": "{{ item.app.unit_name }}",
        "socket_dir": "{{ item.app.socket_dir }}",
        "health_path": "{{ item.app.health_path }}",
        "health_host": "{{ item.app.domains | first }}",
        "health_timeout": "{{ app_health_timeout }}",
        "upstream_file": "{{ app_nginx_upstream_dir }}/{{ item.app.name }}.upstream.conf",
        "nginx_port": "{{ app_nginx_port }}",
        "drain_wait": "{{ app_drain_wait }}",
        "keep_releases": "{{ item.app.keep_releases }}",
        "remove_on_failure": "{{ __app_switch_remove }}",
        "host": "{{ inventory_hostname }}",
    }
    assert block[1]["loop"] == "{{ __app_switch }}"
    assert block[1]["register"] == "app__register_switch"
    # A failed switch still puts the host back (it serves its old release), then stops the deploy.
    assert drain_state(rescue[0]) == "active"
    assert "ansible.builtin.fail" in rescue[-1]


def test_deploy_builds_and_runs_hooks_before_any_switch():
    tasks = load("roles/app/tasks/deploy.yml")
    prepare, switch_web, switch_workers = tasks
    steps = [
        next(k for k in t if k not in ("name", "loop", "loop_control", "when", "vars", "register", "changed_when"))
        for t in prepare["block"]
    ]
    assert steps == ["ansible.builtin.copy", "pyfleet_release", "ansible.builtin.command", "ansible.builtin.command"]
    assert prepare["block"][1]["pyfleet_release"]["action"] == "build"
    # A failed build or hook removes what it built and stops before the switch.
    assert prepare["rescue"][0]["pyfleet_release"]["action"] == "absent"
    assert "ansible.builtin.fail" in prepare["rescue"][-1]
    assert switch_web["ansible.builtin.include_tasks"] == "switch.yml"
    assert switch_workers["ansible.builtin.include_tasks"] == "switch_workers.yml"
    assert switch_web["vars"]["__app_switch_remove_on_failure"] is True


def test_check_mode_reports_the_switch_and_changes_nothing(tmp_path, monkeypatch):
    host = FakeHost(tmp_path, monkeypatch)
    expected = {"changed": True, "release": NEW, "previous": OLD, "pruned": [], "seconds": {}}
    assert rel.action_activate(params(tmp_path, _check_mode=True)) == expected
    # A release the deploy has not built yet (check mode builds nothing): reported, not refused.
    later = "20261124T050200Z"
    assert rel.action_activate(params(tmp_path, release=later, _check_mode=True)) == dict(expected, release=later)
    assert [s for s in host.steps() if s.startswith(("systemctl", "nginx", "health"))] == []
    assert host.state() == (OLD, host.old_upstream)
    assert os.lstat(tmp_path / "current").st_ino == host.link.st_ino


def test_the_switch_passes_the_apps_gate_settings_and_cleans_up_stale_instances(tmp_path, monkeypatch):
    stale = "pyfleet-hello@20261124T040000Z.service"
    starting = "pyfleet-hello@20261124T043000Z.service"
    host = FakeHost(
        tmp_path,
        monkeypatch,
        running={OLD_UNIT: "active", stale: "failed", starting: "activating"},
        enabled=[OLD_UNIT, stale],
    )
    result = rel.action_activate(params(tmp_path, health_timeout=9, stop_wait=0))
    assert host.gates == [
        (NEW_UNIT, str(tmp_path / "run" / NEW / "app.sock"), "/healthz", "hello.test", 9),
        (80, "/healthz", "hello.test"),
    ]
    commands = [argv for argv, _ in host.argv]
    assert (["systemctl", "start", NEW_UNIT], 9 + 120) in host.argv
    assert ["systemctl", "reset-failed", NEW_UNIT] in commands
    assert commands.index(["systemctl", "reset-failed", NEW_UNIT]) < commands.index(["systemctl", "start", NEW_UNIT])
    assert ["systemctl", "enable", "--quiet", NEW_UNIT] in commands
    assert ["systemctl", "disable", "--quiet", OLD_UNIT, stale] in commands
    # The old release and one still starting are stopped; a failed one is only reset.
    assert ["systemctl", "stop", "--no-block", OLD_UNIT, starting] in commands
    assert commands[-1] == ["systemctl", "reset-failed", stale]
    assert result["stopped"] == [OLD_UNIT, starting]
    assert all(isinstance(v, float) and 0 <= v < 60 for v in result["seconds"].values())


def test_a_switch_to_a_running_instance_does_not_restart_it(tmp_path, monkeypatch):
    host = FakeHost(tmp_path, monkeypatch, running={OLD_UNIT: "active", NEW_UNIT: "active"})
    rel.action_activate(params(tmp_path))
    assert not [s for s in host.steps() if s.startswith(("systemctl start", "systemctl reset-failed"))]
    assert host.state()[0] == NEW


def test_switch_in_place_only_when_unit_upstream_and_boot_all_agree(tmp_path, monkeypatch):
    host = FakeHost(tmp_path, monkeypatch, running={NEW_UNIT: "active"}, enabled=[NEW_UNIT])
    rel.switch_current(str(tmp_path), NEW)
    host.upstream.write_text(rel.upstream_text("hello", str(tmp_path / "run"), NEW), encoding="utf-8")
    assert rel.action_activate(params(tmp_path)) == {
        "changed": False,
        "release": NEW,
        "previous": NEW,
        "pruned": [],
        "seconds": {},
    }
    assert host.steps() == []
    for running, enabled, upstream in (
        ({NEW_UNIT: "active", OLD_UNIT: "active"}, [NEW_UNIT], NEW),  # the old one still runs
        ({NEW_UNIT: "active"}, [NEW_UNIT, OLD_UNIT], NEW),  # the old one would start at boot
        ({NEW_UNIT: "active"}, [NEW_UNIT], OLD),  # nginx still points at the old one
        ({NEW_UNIT: "failed"}, [NEW_UNIT], NEW),  # the new one is not running
    ):
        host.running, host.enabled = running, enabled
        host.upstream.write_text(rel.upstream_text("hello", str(tmp_path / "run"), upstream), encoding="utf-8")
        assert rel.action_activate(params(tmp_path, _check_mode=True))["changed"] is True, (running, enabled, upstream)


def test_a_switch_that_cannot_enable_the_new_release_says_so(tmp_path, monkeypatch):
    FakeHost(tmp_path, monkeypatch, fail="enable")
    with pytest.raises(rel.Failed, match=rf"^enabling {NEW_UNIT}: Failed to enable unit: Unit file is masked.$"):
        rel.action_activate(params(tmp_path))


def test_the_switch_prunes_beyond_the_kept_releases(tmp_path, monkeypatch):
    FakeHost(tmp_path, monkeypatch)
    for minute in range(10, 15):
        make_release(tmp_path, f"20261124T04{minute}00Z")
    result = rel.action_activate(params(tmp_path, keep_releases=3))
    assert result["pruned"] == ["20261124T041000Z", "20261124T041100Z", "20261124T041200Z", "20261124T041300Z"]
    assert rel.releases(str(tmp_path)) == ["20261124T041400Z", OLD, NEW]


def test_the_switch_keeps_the_release_that_served_until_then_even_the_oldest(tmp_path, monkeypatch):
    # OLD serves (a rollback went back to it) while newer releases exist: the deploy of
    # NEW prunes the oldest beyond keep_releases, but never OLD, what a rollback returns to.
    FakeHost(tmp_path, monkeypatch)
    newer = [f"20261124T0500{second:02d}Z" for second in range(10, 14)]
    for release in newer:
        make_release(tmp_path, release)
    result = rel.action_activate(params(tmp_path, keep_releases=3))
    assert result["previous"] == OLD
    assert result["pruned"] == newer[:2]
    assert rel.releases(str(tmp_path)) == [OLD, *newer[2:], NEW]


def test_a_switch_without_nginx_stops_every_old_instance_that_runs(tmp_path, monkeypatch):
    """A host whose app nginx does not front (no upstream file): no reload, no old nginx workers to wait for."""
    reloading = "pyfleet-hello@20261124T043000Z.service"
    host = FakeHost(tmp_path, monkeypatch, running={OLD_UNIT: "active", reloading: "reloading"})
    monkeypatch.setattr(rel, "wait_gone", wait_gone)  # the real one: nothing to wait for
    result = rel.action_activate(params(tmp_path, upstream_file=None, drain_wait=30))
    assert result["stopped"] == [OLD_UNIT, reloading]
    assert ["systemctl", "stop", "--no-block", OLD_UNIT, reloading] in [argv for argv, _ in host.argv]
    assert not [s for s in host.steps() if s.startswith(("nginx", "systemctl reload"))]
    assert result["seconds"]["total"] < 5
    assert host.state() == (NEW, host.old_upstream)  # the file nginx would read is left alone
