"""Removing is converging: what the inventory drops, the next `fab site` removes.

A copy of the lab inventory (named ``lab``, so it is the same lab) drops the app
hello-async, takes web2 out of group web (it stays in the inventory, in group
spare), moves worker type io from worker1 to worker2 and switches
``pyfleet_broker_kind`` from redis to rabbitmq. `fab status` marks what is left
over, `fab site` on the copy stops and removes it and says so, and keeps the
apps' and the old broker's data; `fab site --purge` then removes the apps' data
too. The tests run last; a lab that outlives the session is put back by `fab
site` on the lab's own inventory (Redis again; RabbitMQ stopped and disabled).
"""

import shutil
import subprocess

import pytest
import yaml

from pyfleet.load import get_json
from pyfleet.shell import ROOT

FAB = str(ROOT / ".venv" / "bin" / "fab")
DROPPED, KEPT = "hello-async", "hello"
DOMAINS = {KEPT: "hello.lab.test", DROPPED: "hello-async.lab.test"}

# It takes an app and a web host away: after every other test (test_secrets
# included: this module's `fab site` also puts the lab's own secrets back), before
# the lab-wide check that no unit failed.
pytestmark = pytest.mark.last(order=3)


def fab(*args, timeout=900):
    """Run `fab ARGS` from the project root; (exit code, stdout + stderr)."""
    proc = subprocess.run([FAB, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


def shrunk_inventory(inv, dest):
    """The lab inventory without hello-async, web2 out of group web, worker type io on worker2 instead of worker1,
    and RabbitMQ as the broker instead of Redis."""
    copy = dest / inv.path.name
    shutil.copytree(inv.path, copy)
    hosts = yaml.safe_load((copy / "hosts.yml").read_text())
    del hosts["all"]["children"]["web"]["hosts"]["web2"]
    hosts["all"]["children"]["spare"] = {"hosts": {"web2": {}}}
    (copy / "hosts.yml").write_text(yaml.safe_dump(hosts, sort_keys=False))
    apps_yml = copy / "group_vars" / "all" / "apps.yml"
    apps = yaml.safe_load(apps_yml.read_text())
    apps["pyfleet_apps"] = [a for a in apps["pyfleet_apps"] if a["name"] != DROPPED]
    apps_yml.write_text(yaml.safe_dump(apps, sort_keys=False))
    (copy / "host_vars" / "worker1.yml").write_text("celery_worker_types: [default]\n")
    (copy / "host_vars" / "worker2.yml").write_text(
        "celery_worker_types: [cpu, io]\ncelery_beat: true\ncelery_flower: true\nlab_debian_suite: trixie\n"
    )
    broker_yml = copy / "group_vars" / "all" / "broker.yml"
    broker = yaml.safe_load(broker_yml.read_text())
    broker.update(
        pyfleet_broker_kind="rabbitmq",
        rabbitmq_passwords={KEPT: "pyfleet-lab-rabbitmq-password-not-for-production"},
        rabbitmq_limit_nofile=4096,  # the podman lab's hard open-file limit
    )
    broker_yml.write_text(yaml.safe_dump(broker, sort_keys=False))
    return copy


def pyfleet_units(host_run, host):
    """The pyfleet units loaded on a host (instances included), and its unit files."""
    out = host_run(
        host,
        "systemctl list-units --all --no-legend --plain 'pyfleet-*' | awk '{print $1}'; "
        "ls /etc/systemd/system | grep '^pyfleet-' | sed 's/^/file /'",
    ).stdout
    return out.split("\n")


@pytest.fixture(scope="module")
def removed(inv, lab, tmp_path_factory):
    """`fab status` and `fab site` on the shrunk copy; yields (status output, site output)."""
    copy = str(shrunk_inventory(inv, tmp_path_factory.mktemp("removal")))
    try:
        code, status_out = fab("status", "--inventory", copy)
        assert code == 0, status_out
        code, site_out = fab("site", "--inventory", copy)
        assert code == 0, site_out[-3000:]
        yield copy, status_out, site_out
    finally:
        if lab["kept"]:
            code, out = fab("site")
            assert code == 0, out[-3000:]


def test_status_marks_what_the_inventory_no_longer_names(removed):
    _, status_out, _ = removed
    lines = {line.split(" (")[0]: line for line in status_out.splitlines() if line.startswith("orphaned on ")}
    assert set(lines) == {"orphaned on web1", "orphaned on web2", "orphaned on worker1", "orphaned on broker1"}, (
        status_out
    )
    assert "unit pyfleet-hello-async@.service" in lines["orphaned on web1"]
    assert "unit pyfleet-hello@.service" in lines["orphaned on web2"]
    assert "unit pyfleet-hello-worker@io.service.d" in lines["orphaned on worker1"]
    assert "service redis-server.service" in lines["orphaned on broker1"]


def test_site_says_what_it_removed(removed):
    _, _, site_out = removed
    said = [line for line in site_out.splitlines() if '"msg": "removed: ' in line]
    assert any("unit pyfleet-hello-async@.service" in line for line in said), site_out[-3000:]
    assert any("nginx (stopped: the host serves nothing)" in line for line in said), said
    assert any("unit pyfleet-hello-worker@io.service.d" in line for line in said), said
    assert any("service redis-server.service (stopped, data kept)" in line for line in said), said


def test_the_dropped_app_is_stopped_and_unreachable_its_data_kept(removed, host_run, lb_address):
    units = pyfleet_units(host_run, "web1")
    assert not [u for u in units if DROPPED in u], units
    assert [u for u in units if u.startswith(f"pyfleet-{KEPT}@2")], units  # hello still runs
    assert host_run("web1", f"ls /etc/nginx/conf.d/pyfleet-app-{DROPPED}.conf").rc != 0
    assert host_run("web1", f"test -d /srv/{DROPPED}/releases && id app_hello_async").rc == 0
    assert get_json(lb_address, DOMAINS[KEPT])["app"] == "sampleapp-wsgi"
    with pytest.raises(OSError):
        get_json(lb_address, DOMAINS[DROPPED])


def test_a_host_out_of_group_web_runs_no_app_and_no_nginx(removed, host_run, lb_address):
    assert [u for u in pyfleet_units(host_run, "web2") if u] == []
    assert host_run("web2", "systemctl is-active nginx").stdout.strip() != "active"
    assert host_run("web2", "systemctl is-enabled nginx").stdout.strip() == "disabled"
    seen = {get_json(lb_address, DOMAINS[KEPT])["host"] for _ in range(8)}
    assert seen == {"web1"}, seen


def test_a_dropped_worker_type_stops_where_it_was_and_runs_where_it_went(removed, host_run):
    assert host_run("worker1", "systemctl is-active pyfleet-hello-worker@io").stdout.strip() != "active"
    assert host_run("worker1", "test -e /etc/systemd/system/pyfleet-hello-worker@io.service.d").rc != 0
    assert host_run("worker2", "systemctl is-active pyfleet-hello-worker@io").stdout.strip() == "active"


def test_a_switched_broker_carries_the_tasks_and_the_old_one_is_stopped_its_data_kept(removed, host_run, post_task):
    assert host_run("broker1", "systemctl is-active rabbitmq-server").stdout.strip() == "active"
    assert host_run("broker1", "systemctl is-active redis-server").stdout.strip() != "active"
    assert host_run("broker1", "systemctl is-enabled redis-server").stdout.strip() == "disabled"
    assert host_run("broker1", "test -e /etc/systemd/system/redis-server.service.d").rc != 0
    assert host_run("broker1", "test -d /var/lib/redis").rc == 0  # Redis' data stays (switching back finds it)
    # Every worker type, those that ran before the switch included, takes its tasks from the new broker:
    # sent by the app on web1, the result back over AMQP (rpc://). Redis is stopped: a worker left on it
    # would answer nothing.
    where = {"whoami": ({}, "default@worker1"), "sleep": ({"args": [0.05]}, "io@worker2"), "tick": ({}, "cpu@worker2")}
    for task, (body, node) in where.items():
        status, answer = post_task(task, body)
        assert status == 200, (task, answer)
        assert answer["result"]["node"] == node, (task, answer)


def test_purge_removes_the_dropped_apps_data(removed, host_run):
    copy, _, _ = removed
    code, out = fab("site", "--inventory", copy, "--purge", "--limit", "web1,web2")
    assert code == 0, out[-3000:]
    assert f"app {DROPPED} data (/srv/{DROPPED}, user app_hello_async)" in out
    for host in ("web1", "web2"):
        assert host_run(host, f"test -e /srv/{DROPPED}").rc != 0
        assert host_run(host, "id app_hello_async").rc != 0
    assert host_run("web2", f"test -e /srv/{KEPT}").rc != 0  # web2 serves nothing any more
    assert host_run("web1", f"test -d /srv/{KEPT}/current").rc == 0  # web1 still serves hello
