"""Which units and hosts `fab logs` and `fab restart` act on, and what `fab releases` reads."""

import subprocess
from pathlib import Path

import pytest

from pyfleet import commands, failures, inventory
from pyfleet.errors import PyfleetError


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
