"""Unit tests for pyfleet.flower: the flower host, its domain, users, port and addresses, and every one-line error."""

import copy

import pytest
from celery_inventory import GROUPS, HOSTS, error, plan

from pyfleet import flower as flower_mod
from pyfleet.celeryconfig import render_config_module
from pyfleet.errors import PyfleetError

FLOWER_VARS = {
    "celery_flower": True,
    "celery_flower_domain": "flower.lab.test",
    "celery_flower_users": [{"name": "ops", "password": "s3cret-from-vault"}],
}
HOSTVARS = {
    "lb1": {"pyfleet_private_address": "10.0.0.2"},
    "broker1": {"pyfleet_private_address": "10.0.0.5"},
    "worker1": {"ansible_host": "10.0.0.6"},
    "worker2": {"pyfleet_private_address": "10.0.0.7"},
}


def with_flower(host="worker2", **overrides):
    """HOSTS with flower on ``host``; a value of None removes that variable."""
    hosts = copy.deepcopy(HOSTS)
    hosts[host].update(copy.deepcopy(FLOWER_VARS))
    for key, value in overrides.items():
        if value is None:
            hosts[host].pop(key, None)
        else:
            hosts[host][key] = value
    return hosts


def test_flower_on_one_host():
    result = plan(hosts=with_flower("worker1"))
    assert result["flower_host"] == "worker1"
    assert result["flower"]["domain"] == "flower.lab.test"
    assert "worker_send_task_events = True" in render_config_module(result)


def test_flower_keeps_the_workers_heartbeats():
    # Flower shows a worker online by its heartbeat events; gossip and mingle stay off.
    for units in plan(hosts=with_flower("worker1"))["hosts"].values():
        for unit in units:
            assert "--without-heartbeat" not in unit["args"]
            assert "--without-gossip" in unit["args"] and "--without-mingle" in unit["args"]
    for units in plan()["hosts"].values():
        for unit in units:
            assert "--without-heartbeat" in unit["args"]


def test_no_flower_no_events():
    result = plan()
    assert result["flower"] is None
    assert "worker_send_task_events = False" in render_config_module(result)


def test_flower_plan_addresses_and_allow_list():
    flower = plan(hosts=with_flower(), hostvars=HOSTVARS)["flower"]
    assert flower["host"] == "worker2"
    assert flower["address"] == "10.0.0.7"
    assert flower["port"] == 5555
    assert flower["endpoint"] == "10.0.0.7:5555"
    # The broker (Flower reads events and inspects workers through it) and the load balancer.
    assert flower["allow"] == ["10.0.0.5", "10.0.0.2"]


def test_flower_plan_has_user_names_but_never_passwords():
    flower = plan(hosts=with_flower(), hostvars=HOSTVARS)["flower"]
    assert flower["users"] == ["ops"]
    assert "s3cret-from-vault" not in repr(flower)


def test_flower_port_and_ipv6_endpoint():
    hostvars = dict(HOSTVARS, worker2={"pyfleet_private_address": "fd00::7"})
    flower = plan(hosts=with_flower(celery_flower_port=5566), hostvars=hostvars)["flower"]
    assert flower["endpoint"] == "[fd00::7]:5566"


def test_flower_app_unit_name():
    assert plan()["app"]["flower_unit"] == "pyfleet-hello-flower.service"


# --- one-line errors ---------------------------------------------------------------------------


def test_error_two_flowers():
    hosts = copy.deepcopy(HOSTS)
    hosts["worker1"]["celery_flower"] = True
    hosts["worker2"]["celery_flower"] = True
    assert error(hosts=hosts).startswith("celery_flower: worker1 and worker2 both run flower")


@pytest.mark.parametrize(
    ("overrides", "start"),
    [
        ({"celery_flower_domain": None}, "celery_flower_domain: not set but worker2 runs flower"),
        ({"celery_flower_domain": "Flower"}, "celery_flower_domain: 'Flower' is not a lowercase DNS name"),
        (
            {"celery_flower_domain": "hello.lab.test"},
            "celery_flower_domain: hello.lab.test is also a domain of app hello",
        ),
        ({"celery_flower_users": None}, "celery_flower_users: not set but worker2 runs flower"),
        ({"celery_flower_users": []}, "celery_flower_users: not set but worker2 runs flower"),
        ({"celery_flower_users": "ops"}, "celery_flower_users: expected a list of {name, password}, got a string"),
        (
            {"celery_flower_users": [{"name": "a:b", "password": "x"}]},
            "celery_flower_users[0].name: 'a:b' is not a user name",
        ),
        ({"celery_flower_users": [{"name": "ops"}]}, "celery_flower_users[0].password (user ops): not set"),
        (
            {"celery_flower_users": [{"name": "ops", "password": "x" * 73}]},
            "celery_flower_users[0].password (user ops): longer than 72 bytes",
        ),
        (
            {"celery_flower_users": [{"name": "ops", "pasword": "x"}]},
            "celery_flower_users[0].pasword: unknown key; did you mean password?",
        ),
        (
            {"celery_flower_users": [{"name": "ops", "password": "x"}] * 2},
            "celery_flower_users[1].name: user ops is listed twice",
        ),
        ({"celery_flower_port": 70000}, "celery_flower_port on worker2: 70000 is not a TCP port"),
    ],
)
def test_flower_errors(overrides, start):
    message = error(hosts=with_flower(**overrides))
    assert message.startswith(start), message
    assert "; " in message  # names the fix
    assert "s3cret" not in message


def test_flower_error_never_prints_a_password():
    message = error(hosts=with_flower(celery_flower_users=["ops:s3cret"]))
    assert message.startswith("celery_flower_users[0]: expected a mapping {name, password}, got a string")
    assert "s3cret" not in message


def test_flower_error_without_load_balancers():
    groups = dict(GROUPS, loadbalancers=[])
    assert error(hosts=with_flower(), groups=groups).startswith(
        "celery_flower on worker2: group loadbalancers has no host, and flower is only reached through the load balancers"
    )


def test_flower_error_load_balancer_without_ip():
    hostvars = dict(HOSTVARS, lb1={"ansible_host": "lb1.internal"})
    assert error(hosts=with_flower(), hostvars=hostvars).startswith(
        "pyfleet_private_address on lb1: 'lb1.internal' is not an IP address, and the flower unit admits"
    )


def test_flower_error_outside_worker_group():
    hosts = dict(HOSTS, web1=dict(FLOWER_VARS))
    assert error(hosts=hosts).startswith("celery_flower on web1: web1 is not in group workers")


# --- plan_flower on its own: the whole one-line error, and the edges of what it accepts -----

USERS = [{"name": "ops", "password": "s3cret-from-vault"}]


def plan_flower(groups=None, apps=(), hostvars=None, broker_ip=None, **raw):
    raw = {"celery_flower_domain": "flower.lab.test", "celery_flower_users": USERS, **raw}
    raw = {k: v for k, v in raw.items() if v is not None}
    groups = {"loadbalancers": ["lb1"]} if groups is None else groups
    return flower_mod.plan_flower("worker2", raw, groups, list(apps), hostvars=hostvars, broker_ip=broker_ip)


def flower_error(**kwargs):
    with pytest.raises(PyfleetError) as caught:
        plan_flower(**kwargs)
    return str(caught.value)


def test_plan_flower_without_hostvars_has_no_addresses():
    assert plan_flower() == {
        "host": "worker2",
        "domain": "flower.lab.test",
        "port": 5555,
        "users": ["ops"],
        "address": None,
        "endpoint": None,
        "allow": [],
    }


def test_plan_flower_admits_each_load_balancer_once_and_the_broker_first():
    hostvars = {
        "worker2": {"pyfleet_private_address": "10.0.0.7"},
        "lb1": {"pyfleet_private_address": "10.0.0.2"},
        "lb2": {"pyfleet_private_address": "10.0.0.5"},  # the broker's address too
        "lb3": {"pyfleet_private_address": "10.0.0.3"},
    }
    groups = {"loadbalancers": ["lb1", "lb2", "lb3"]}
    flower = plan_flower(groups=groups, hostvars=hostvars, broker_ip="10.0.0.5")
    assert flower["allow"] == ["10.0.0.5", "10.0.0.2", "10.0.0.3"]
    assert plan_flower(groups=groups, hostvars=hostvars)["allow"] == ["10.0.0.2", "10.0.0.5", "10.0.0.3"]


def test_plan_flower_reads_the_load_balancers_of_the_group_it_is_given():
    raw = {"celery_flower_domain": "flower.lab.test", "celery_flower_users": USERS}
    hostvars = {"worker2": {"pyfleet_private_address": "10.0.0.7"}, "edge1": {"pyfleet_private_address": "10.0.0.9"}}
    flower = flower_mod.plan_flower("worker2", raw, {"edge": ["edge1"]}, [], hostvars, "edge")
    assert flower["allow"] == ["10.0.0.9"]


@pytest.mark.parametrize(
    "name",
    ["o", "ops.team_1@example-corp", "A" + "b" * 63],  # up to 64 characters
)
def test_user_names_flower_accepts(name):
    assert plan_flower(celery_flower_users=[{"name": name, "password": "x"}])["users"] == [name]


def test_a_password_of_72_bytes_is_accepted_73_are_not():
    assert plan_flower(celery_flower_users=[{"name": "ops", "password": "é" * 36}])["users"] == ["ops"]
    assert flower_error(celery_flower_users=[{"name": "ops", "password": "x" * 36 + "é" * 18 + "y"}]) == (
        "celery_flower_users[0].password (user ops): longer than 72 bytes; use a shorter password"
    )


@pytest.mark.parametrize(
    "raw, expected",
    [
        (
            {"celery_flower_domain": ""},
            "celery_flower_domain: not set but worker2 runs flower, so the load balancers cannot serve it; "
            "set celery_flower_domain: flower.example.com (a name that resolves to the load balancers) "
            "or remove celery_flower from worker2",
        ),
        (
            {"celery_flower_domain": 5},
            "celery_flower_domain: 5 is not a lowercase DNS name; set celery_flower_domain: flower.example.com",
        ),
        (
            {"celery_flower_users": []},
            "celery_flower_users: not set but worker2 runs flower, so nobody could log in; set "
            "celery_flower_users: [{name: ops, password: '{{ vault_flower_password }}'}] (ansible-vault)",
        ),
        (
            {"celery_flower_users": {"name": "ops"}},
            "celery_flower_users: expected a list of {name, password}, got a mapping; "
            "write celery_flower_users: [{name: ops, password: ...}]",
        ),
        (
            {"celery_flower_users": ["ops:s3cret"]},
            "celery_flower_users[0]: expected a mapping {name, password}, got a string; fix it",
        ),
        (
            {"celery_flower_users": [{"name": "o" * 65, "password": "x"}]},
            f"celery_flower_users[0].name: {'o' * 65!r} is not a user name (letters, digits, . _ @ -, no colon); "
            "set name: ops",
        ),
        (
            {"celery_flower_users": [{"password": "x"}]},
            "celery_flower_users[0].name: None is not a user name (letters, digits, . _ @ -, no colon); set name: ops",
        ),
        (
            {"celery_flower_users": [{"name": "ops", "password": "x"}, {"name": "ops", "password": "y"}]},
            "celery_flower_users[1].name: user ops is listed twice; remove one",
        ),
        (
            {"celery_flower_users": [{"name": "ops", "password": ""}]},
            "celery_flower_users[0].password (user ops): not set or not a string; "
            "set password: '{{ vault_flower_password }}' from ansible-vault",
        ),
        (
            {"celery_flower_users": [{"name": "ops", "password": 1234}]},
            "celery_flower_users[0].password (user ops): not set or not a string; "
            "set password: '{{ vault_flower_password }}' from ansible-vault",
        ),
        (
            {"celery_flower_port": "x"},
            "celery_flower_port on worker2: 'x' is not a TCP port; set celery_flower_port: 5555",
        ),
        (
            {"groups": {"loadbalancers": []}},
            "celery_flower on worker2: group loadbalancers has no host, and flower is only reached through the "
            "load balancers; add a host to group loadbalancers or remove celery_flower",
        ),
        (
            {"groups": {}},
            "celery_flower on worker2: group loadbalancers has no host, and flower is only reached through the "
            "load balancers; add a host to group loadbalancers or remove celery_flower",
        ),
        (
            {"apps": [{"name": "a", "domains": None}, {"name": "shop", "domains": ["x.test", "flower.lab.test"]}]},
            "celery_flower_domain: flower.lab.test is also a domain of app shop; give flower a name of its own",
        ),
    ],
)
def test_plan_flower_mistakes_are_one_whole_line(raw, expected):
    assert flower_error(**raw) == expected


def test_a_load_balancer_without_an_ip_is_one_whole_line():
    hostvars = {"worker2": {"pyfleet_private_address": "10.0.0.7"}, "lb1": {"ansible_host": "lb1.internal"}}
    assert flower_error(hostvars=hostvars) == (
        "pyfleet_private_address on lb1: 'lb1.internal' is not an IP address, and the flower unit admits the "
        "load balancers by IP only; set pyfleet_private_address of lb1 to its private IP"
    )
