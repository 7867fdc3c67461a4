"""The firewall's openings follow from the groups (pyfleet.firewall, through the plan)."""

import subprocess
from pathlib import Path

import jinja2
import pytest
from rendering import GROUPS  # the six-host lab's groups, shared with the render tests

from pyfleet import firewall as firewall_mod, plan
from pyfleet.errors import PyfleetError

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures" / "apps"

APP = {"name": "shop", "source": {"path": "proj"}, "kind": "wsgi", "entry": "proj.wsgi:app", "domains": ["s.test"]}


def hostvars(**extra):
    hv = {
        "lb1": {"ansible_host": "10.0.0.1"},
        "web1": {"ansible_host": "10.0.0.11"},
        "web2": {"ansible_host": "10.0.0.12", "nginx_http_port": 8080},
        "broker1": {"ansible_host": "10.0.0.5", "redis_password": "s3cret-for-tests"},
        "worker1": {"ansible_host": "10.0.0.31", "celery_worker_types": ["default"], "celery_beat": True},
        "worker2": {
            "ansible_host": "fd00::32",
            "celery_worker_types": ["default"],
            "celery_flower": True,
            "celery_flower_domain": "flower.s.test",
            "celery_flower_users": [{"name": "ops", "password": "a-long-flower-password"}],
        },
    }
    for host, values in extra.items():
        hv[host].update(values)
    hv["lb1"].update(
        pyfleet_apps=[dict(APP, celery={"app": "proj.tasks:app", "hosts": "workers"})],
        celery_worker_catalogue={"default": {"queues": ["default"]}},
    )
    return hv


def firewall(groups=GROUPS, **extra):
    return plan.build(hostvars(**extra), groups, project_dir=str(FIXTURES))["firewall"]


def rules(fw, host):
    return {r["port"]: r["matches"] for r in fw[host]["rules"]}


def test_each_tier_accepts_only_its_clients():
    fw = firewall()
    assert rules(fw, "lb1") == {22: [""], 80: [""], 443: [""]}
    assert rules(fw, "web1") == {22: [""], 80: ["ip saddr { 10.0.0.1 }"]}
    assert rules(fw, "web2") == {22: [""], 8080: ["ip saddr { 10.0.0.1 }"]}
    assert rules(fw, "broker1") == {
        22: [""],
        6379: ["ip saddr { 10.0.0.11, 10.0.0.12, 10.0.0.31 }", "ip6 saddr { fd00::32 }"],
    }
    assert rules(fw, "worker1") == {22: [""]}
    assert rules(fw, "worker2") == {22: [""], 5555: ["ip saddr { 10.0.0.1 }"]}
    assert all(fw[h]["enabled"] for h in fw)


def test_a_new_worker_opens_the_broker_to_it():
    groups = dict(GROUPS, all=[*GROUPS["all"], "worker3"], workers=[*GROUPS["workers"], "worker3"])
    hv = hostvars()
    hv["worker3"] = {"ansible_host": "10.0.0.33", "celery_worker_types": ["default"]}
    fw = plan.build(hv, groups, project_dir=str(FIXTURES))["firewall"]
    assert "10.0.0.33" in rules(fw, "broker1")[6379][0]


def test_rabbitmq_port_on_the_broker():
    fw = firewall(
        broker1={
            "pyfleet_broker_kind": "rabbitmq",
            "rabbitmq_port": 5673,
            "rabbitmq_passwords": {"shop": "a-sixteen-char-password"},
        }
    )
    assert set(rules(fw, "broker1")) == {22, 5673}


def test_ssh_allow_list_and_extra_openings_merge_per_port():
    fw = firewall(
        web1={
            "pyfleet_firewall_ssh_allow": ["192.0.2.0/24", "2001:db8::/32"],
            "pyfleet_firewall_allow": [{"port": 9100, "from": ["10.0.0.9"]}, {"port": 22, "from": "192.0.2.7"}],
        }
    )
    assert rules(fw, "web1") == {
        22: ["ip saddr { 192.0.2.0/24 }", "ip6 saddr { 2001:db8::/32 }"],
        80: ["ip saddr { 10.0.0.1 }"],
        9100: ["ip saddr { 10.0.0.9 }"],
    }


def test_without_load_balancers_web_hosts_are_the_edge():
    groups = {k: v for k, v in GROUPS.items() if k != "loadbalancers"}
    groups["all"] = [h for h in GROUPS["all"] if h != "lb1"]
    hv = hostvars()
    hv["web1"].update({k: v for k, v in hv.pop("lb1").items() if k != "ansible_host"})
    hv["worker2"]["celery_flower"] = False
    fw = plan.build(hv, groups, project_dir=str(FIXTURES))["firewall"]
    assert rules(fw, "web1")[80] == [""]


def test_a_host_with_its_own_firewall_gets_no_rules_and_needs_no_ips():
    fw = firewall(broker1={"pyfleet_firewall": False}, web1={"pyfleet_private_address": "web1.internal"})
    assert fw["broker1"] == {"enabled": False, "rules": []}


@pytest.mark.parametrize(
    "extra, expected",
    [
        (
            {"web1": {"pyfleet_private_address": "web1.internal"}},
            "pyfleet_private_address on web1: 'web1.internal' "
            "is not an IP address, and the firewall of broker1 admits web1 by IP",
        ),
        (
            {"web1": {"pyfleet_firewall_ssh_allow": ["10.0.0.300/8"]}},
            "pyfleet_firewall_ssh_allow on web1: '10.0.0.300/8' is not an IP network",
        ),
        ({"web1": {"pyfleet_firewall_ssh_allow": {}}}, "pyfleet_firewall_ssh_allow on web1: expected a list"),
        ({"web1": {"pyfleet_firewall_allow": [{"port": 70000}]}}, "pyfleet_firewall_allow[0].port on web1: 70000"),
        (
            {"web1": {"pyfleet_firewall_allow": [{"port": 1, "to": "x"}]}},
            "pyfleet_firewall_allow[0] on web1: unknown key 'to'",
        ),
    ],
)
def test_mistakes_stop_with_one_line(extra, expected):
    with pytest.raises(PyfleetError) as caught:
        firewall(**extra)
    assert str(caught.value).startswith(expected)
    assert "\n" not in str(caught.value)


def test_the_rules_render_to_a_ruleset_nft_accepts(tmp_path):
    """The role's template with the plan's rules: nft parses it (where nft and a netns are at hand)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(ROOT / "roles/firewall/templates"), keep_trailing_newline=True
    )
    env.filters["comment"] = lambda text: "# " + text
    text = env.get_template("etc/nftables.conf.j2").render(
        ansible_managed="managed", firewall_rules=firewall()["broker1"]["rules"], firewall_table="pyfleet"
    )
    assert "ip saddr { 10.0.0.11, 10.0.0.12, 10.0.0.31 } tcp dport 6379 accept" in text
    assert "policy drop" in text and "ct state established,related accept" in text
    nft = "/usr/sbin/nft"  # bootstrap.sh installs nftables on the controller for this check
    path = tmp_path / "nftables.conf"
    path.write_text(text)
    proc = subprocess.run(["unshare", "-n", nft, "-c", "-f", str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    "connection, locked",
    [
        ("10.89.0.1 51234 10.89.0.5 22", False),
        ("192.0.2.7 51234 10.89.0.5 22", False),
        ("::ffff:192.0.2.7 51234 10.89.0.5 22", False),
        ("198.51.100.9 51234 10.89.0.5 22", True),  # not in the allow list
        ("192.0.2.7 51234 10.89.0.5 2222", True),  # a port the rules do not open
        ("", False),  # not over SSH (podman exec, local): nothing to cut
    ],
)
def test_rules_that_would_lock_the_controller_out_are_refused(connection, locked):
    fw = firewall(web1={"pyfleet_firewall_ssh_allow": ["192.0.2.0/24", "10.89.0.1"]})
    problem = firewall_mod.ssh_lockout(connection, fw["web1"]["rules"], "web1")
    assert bool(problem) == locked
    if locked:
        assert problem.startswith("pyfleet_firewall_ssh_allow on web1: the firewall would refuse new SSH connections")
