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


# --- plan_firewall on its own: each opening, its reason and each one-line mistake ----------


def small(groups=None, hostvars=None, lbs=("lb1",), flower=None, kind="redis"):
    """plan_firewall on a small fleet: lb1 -> web1:80, worker1 and web1 on broker1 (addresses 10.0.0.x)."""
    groups = groups or {"loadbalancers": list(lbs), "web": ["web1"], "workers": ["worker1"], "brokers": ["broker1"]}
    hv = {
        "lb1": {"ansible_host": "10.0.0.1"},
        "web1": {"ansible_host": "10.0.0.11"},
        "worker1": {"ansible_host": "10.0.0.31"},
        "broker1": {"ansible_host": "10.0.0.5"},
    }
    for host, values in (hostvars or {}).items():
        hv.setdefault(host, {}).update(values)
    upstreams = [{"servers": [{"host": h, "port": 80} for h in groups.get("web", [])]}]
    return firewall_mod.plan_firewall(groups, hv, upstreams, [{"host": h} for h in lbs], kind, flower)


def whys(fw, host):
    return {r["port"]: r["why"] for r in fw[host]["rules"]}


def test_every_rule_says_why_it_is_open():
    fw = small(flower={"host": "worker1", "port": 5555})
    assert whys(fw, "lb1") == {22: "SSH", 80: "HTTP, the load balancer", 443: "HTTPS, the load balancer"}
    assert whys(fw, "web1") == {22: "SSH", 80: "nginx of the web host, for the load balancers"}
    assert whys(fw, "broker1") == {22: "SSH", 6379: "redis, for the web and worker hosts"}
    assert whys(fw, "worker1") == {22: "SSH", 5555: "Flower, for the load balancers"}
    assert fw["lb1"]["rules"][0] == {"port": 22, "why": "SSH", "sources": ["0.0.0.0/0", "::/0"], "matches": [""]}


def test_without_load_balancers_the_web_rule_says_so():
    fw = small(groups={"web": ["web1"], "workers": ["worker1"], "brokers": ["broker1"]}, lbs=())
    assert fw["web1"]["rules"][1] == {
        "port": 80,
        "why": "nginx of the web host",
        "sources": ["0.0.0.0/0", "::/0"],
        "matches": [""],
    }


@pytest.mark.parametrize("off", [False, "false", "no"])
def test_pyfleet_firewall_off_in_any_yaml_spelling(off):
    fw = small(hostvars={"broker1": {"pyfleet_firewall": off}})
    assert fw["broker1"] == {"enabled": False, "rules": []}
    assert fw["web1"]["enabled"] is True  # on unless told otherwise


def test_ssh_and_load_balancer_ports_follow_the_hosts_settings():
    fw = small(
        hostvars={
            "web1": {"ansible_port": "2222"},
            "lb1": {"loadbalancer_http_port": 8080, "loadbalancer_https_port": 8443},
            "broker1": {"redis_port": 6380},
        }
    )
    assert set(whys(fw, "web1")) == {2222, 80}
    assert set(whys(fw, "lb1")) == {22, 8080, 8443}
    assert set(whys(fw, "broker1")) == {22, 6380}


@pytest.mark.parametrize(
    "host, values, expected",
    [
        ("web1", {"ansible_port": "ssh"}, "ansible_port on web1: 'ssh' is not a TCP port; set ansible_port: 22"),
        (
            "lb1",
            {"loadbalancer_https_port": 0},
            "loadbalancer_https_port on lb1: 0 is not a TCP port; set loadbalancer_https_port: 443",
        ),
        ("broker1", {"redis_port": "x"}, "redis_port on broker1: 'x' is not a TCP port; set redis_port: 6379"),
    ],
)
def test_a_wrong_port_names_its_variable_and_host(host, values, expected):
    with pytest.raises(PyfleetError) as caught:
        small(hostvars={host: values})
    assert str(caught.value) == expected


def test_a_fleet_without_workers_or_brokers_has_no_broker_rules():
    fw = small(groups={"loadbalancers": ["lb1"], "web": ["web1"]})
    assert set(fw) == {"lb1", "web1"}
    assert set(whys(fw, "web1")) == {22, 80}


def test_the_flower_hosts_firewall_needs_the_load_balancers_ip():
    # Only the Flower host's firewall admits lb1 (web1 runs its own): lb1's address must still be an IP.
    with pytest.raises(PyfleetError) as caught:
        small(
            hostvars={"lb1": {"pyfleet_private_address": "lb1.internal"}, "web1": {"pyfleet_firewall": False}},
            flower={"host": "worker1", "port": 5555},
        )
    assert "the firewall of worker1 admits lb1 by IP" in str(caught.value)
    # Without Flower nobody matches lb1 by address.
    small(hostvars={"lb1": {"pyfleet_private_address": "lb1.internal"}, "web1": {"pyfleet_firewall": False}})


def test_flower_without_load_balancers_gets_no_rule_and_later_ports_stay():
    fw = small(
        groups={"web": ["web1"], "workers": ["worker1"], "brokers": ["broker1"]},
        lbs=(),
        flower={"host": "worker1", "port": 5555},
        hostvars={"worker1": {"pyfleet_firewall_allow": [{"port": 9100, "from": "10.0.0.9"}]}},
    )
    assert set(whys(fw, "worker1")) == {22, 9100}


def test_extra_openings_default_to_anywhere_and_say_why():
    fw = small(
        hostvars={
            "web1": {
                "pyfleet_firewall_allow": [
                    {"port": 9100, "why": "node exporter"},
                    {"port": 22, "from": ["192.0.2.7/24"]},
                ]
            }
        }
    )
    rules_ = {r["port"]: r for r in fw["web1"]["rules"]}
    assert rules_[9100] == {"port": 9100, "why": "node exporter", "sources": ["0.0.0.0/0", "::/0"], "matches": [""]}
    # A network written with host bits is taken as its network; the reasons of one port are joined.
    assert rules_[22]["why"] == "SSH; pyfleet_firewall_allow[1]"
    assert rules_[22]["sources"] == ["0.0.0.0/0", "::/0"]
    fw = small(hostvars={"web1": {"pyfleet_firewall_ssh_allow": ["192.0.2.7/24"]}})
    assert fw["web1"]["rules"][0]["matches"] == ["ip saddr { 192.0.2.0/24 }"]


@pytest.mark.parametrize(
    "values, expected",
    [
        (
            {"pyfleet_firewall_ssh_allow": []},
            "pyfleet_firewall_ssh_allow on web1: expected a list of IP networks, got a list; "
            "set pyfleet_firewall_ssh_allow: ['0.0.0.0/0', '::/0'] (anywhere) or your admin networks",
        ),
        (
            {"pyfleet_firewall_ssh_allow": {"10.0.0.0/8": "admins"}},
            "pyfleet_firewall_ssh_allow on web1: expected a list of IP networks, got a mapping; "
            "set pyfleet_firewall_ssh_allow: ['0.0.0.0/0', '::/0'] (anywhere) or your admin networks",
        ),
        (
            {"pyfleet_firewall_allow": [{"from": ["10.0.0.9"]}]},
            "pyfleet_firewall_allow[0] on web1: expected a mapping with port (and from); "
            "set it like {port: 9100, from: [10.0.0.5]}",
        ),
        (
            {"pyfleet_firewall_allow": ["9100"]},
            "pyfleet_firewall_allow[0] on web1: expected a mapping with port (and from); "
            "set it like {port: 9100, from: [10.0.0.5]}",
        ),
        (
            {"pyfleet_firewall_allow": [{"port": 9100, "from": ["nowhere"]}]},
            "pyfleet_firewall_allow[0].from on web1: 'nowhere' is not an IP network; "
            "write it like 192.0.2.0/24 or 2001:db8::/32",
        ),
    ],
)
def test_firewall_settings_mistakes_say_the_fix(values, expected):
    with pytest.raises(PyfleetError) as caught:
        small(hostvars={"web1": values})
    assert str(caught.value) == expected


def test_a_lockout_names_the_controllers_address_without_its_zone():
    rules_ = [{"port": 22, "why": "SSH", "sources": ["10.0.0.0/8"], "matches": ["ip saddr { 10.0.0.0/8 }"]}]
    assert firewall_mod.ssh_lockout("fe80::1%eth0 51234 fe80::2%eth0 22", rules_, "web1") == (
        "pyfleet_firewall_ssh_allow on web1: the firewall would refuse new SSH connections from fe80::1 "
        "(this controller) to port 22; add fe80::1 (or its network) to pyfleet_firewall_ssh_allow"
    )
