"""Unit tests for pyfleet.broker: broker URL, result backend, broker kind and host, and their filters."""

from pathlib import Path

import pytest
from celery_inventory import GROUPS, error, plan
from plugin_module import load

from pyfleet import addresses
from pyfleet.broker import broker_address, broker_kind, broker_url, result_backend
from pyfleet.errors import PyfleetError

ROOT = Path(__file__).resolve().parents[2]


# --- the broker URL ----------------------------------------------------------------------------


def test_broker_url_uses_the_private_address_and_encodes_the_password():
    hostvars = {"broker1": {"pyfleet_private_address": "10.0.0.5", "ansible_host": "203.0.113.9"}}
    assert broker_url(["broker1"], hostvars, "p@ss/w:rd") == "redis://:p%40ss%2Fw%3Ard@10.0.0.5:6379/0"


def test_broker_url_result_db_and_port():
    hostvars = {"broker1": {"ansible_host": "10.0.0.5", "redis_port": 6380}}
    assert broker_url(["broker1"], hostvars, "secret", db=1) == "redis://:secret@10.0.0.5:6380/1"


def test_rabbitmq_url_is_the_apps_vhost_and_user_on_the_private_address():
    hostvars = {"broker1": {"pyfleet_private_address": "10.0.0.5", "ansible_host": "203.0.113.9"}}
    url = broker_url(["broker1"], hostvars, "p@ss/w:rd", kind="rabbitmq", app="hello")
    assert url == "amqp://hello:p%40ss%2Fw%3Ard@10.0.0.5:5672/hello"


def test_rabbitmq_url_port_ipv6_and_unused_db():
    hostvars = {"broker1": {"pyfleet_private_address": "fd00::5", "rabbitmq_port": "5673", "redis_port": 1}}
    url = broker_url(["broker1"], hostvars, "pw", db=1, kind="rabbitmq", app="hello")
    assert url == "amqp://hello:pw@[fd00::5]:5673/hello"


def test_unset_broker_kind_means_redis():
    hostvars = {"broker1": {"ansible_host": "10.0.0.5"}}
    assert broker_url(["broker1"], hostvars, "pw", kind=None) == "redis://:pw@10.0.0.5:6379/0"


def test_result_backend_redis_database_1_or_rpc_with_rabbitmq():
    hostvars = {"broker1": {"ansible_host": "10.0.0.5"}}
    assert result_backend(["broker1"], hostvars, "pw") == "redis://:pw@10.0.0.5:6379/1"
    assert result_backend(["broker1"], hostvars, "pw", kind="rabbitmq", app="hello") == "rpc://"


def test_result_backend_checks_the_broker_settings_too():
    with pytest.raises(PyfleetError, match=r"rabbitmq_passwords\.hello: not set"):
        result_backend(["broker1"], {}, "", kind="rabbitmq", app="hello")


def test_broker_url_ipv6():
    hostvars = {"broker1": {"pyfleet_private_address": "fd00::5"}}
    assert broker_url(["broker1"], hostvars, "pw").startswith("redis://:pw@[fd00::5]:6379")


@pytest.mark.parametrize(
    ("args", "kwargs", "fragment"),
    [
        (([], {}, "pw"), {}, "group brokers: no broker host"),
        ((["b1", "b2"], {}, "pw"), {}, "keep one host in group brokers"),
        ((["b1"], {}, ""), {}, "redis_password: not set for broker b1"),
        ((["b1"], {}, "pw"), {"kind": "kafka"}, "pyfleet_broker_kind: 'kafka' is not one of redis, rabbitmq; set"),
        ((["b1"], {}, "pw"), {"kind": "rabbit"}, "did you mean rabbitmq"),
        (
            (["b1"], {}, ""),
            {"kind": "rabbitmq", "app": "hello"},
            r"rabbitmq_passwords.hello: not set for broker b1 .*set rabbitmq_passwords: \{hello: ...\} from ansible-vault",
        ),
        ((["b1"], {}, None), {"kind": "rabbitmq", "app": "hello"}, "rabbitmq_passwords.hello: not set"),
        ((["b1"], {}, "pw"), {"kind": "rabbitmq"}, "no app of pyfleet_apps has celery"),
        (
            (["b1"], {"b1": {"rabbitmq_port": 70000}}, "pw"),
            {"kind": "rabbitmq", "app": "hello"},
            "rabbitmq_port on b1: 70000 is not a TCP port; set rabbitmq_port: 5672",
        ),
        ((["b1"], {}, "pw"), {"db": 16}, "broker database 16 is not 0..15"),
        ((["b1"], {"b1": {"redis_port": "x"}}, "pw"), {}, "redis_port on b1"),
    ],
)
def test_broker_url_errors(args, kwargs, fragment):
    with pytest.raises(PyfleetError, match=fragment) as caught:
        broker_url(*args, **kwargs)
    assert "\n" not in str(caught.value)


def test_units_reach_the_broker_by_ip_only():
    assert addresses.ip("10.0.0.5", "broker1", "why") == "10.0.0.5"
    with pytest.raises(PyfleetError, match=r"pyfleet_private_address on broker1: 'broker1\.lan' is not an IP"):
        addresses.ip("broker1.lan", "broker1", "why")


# --- the broker host ---------------------------------------------------------------------------


def test_error_no_broker():
    groups = dict(GROUPS, brokers=[])
    assert error(groups=groups).startswith("group brokers: no broker host; add a host to group brokers")


def test_error_two_brokers():
    groups = dict(GROUPS, brokers=["broker1", "lb1"])
    assert "keep one host in group brokers" in error(groups=groups)


def test_broker_must_have_an_ip_when_hostvars_are_given():
    hostvars = {"broker1": {"ansible_host": "broker1.lan"}}
    with pytest.raises(PyfleetError, match=r"pyfleet_private_address on broker1: 'broker1\.lan' is not an IP"):
        plan(hostvars=hostvars)


# --- the Ansible filter ------------------------------------------------------------------------


def _filters():
    return load("plugins/filter/pyfleet_workers.py").FilterModule().filters()


def test_filter_broker_url():
    url = _filters()["pyfleet_broker_url"](["broker1"], {"broker1": {"ansible_host": "10.1.0.4"}}, "pw", db="1")
    assert url == "redis://:pw@10.1.0.4:6379/1"


def test_filter_rabbitmq_url_and_result_backend():
    hostvars = {"broker1": {"ansible_host": "10.1.0.4"}}
    filters = _filters()
    url = filters["pyfleet_broker_url"](["broker1"], hostvars, "pw", kind="rabbitmq", app="hello")
    assert url == "amqp://hello:pw@10.1.0.4:5672/hello"
    assert filters["pyfleet_result_backend"](["broker1"], hostvars, "pw", kind="rabbitmq", app="hello") == "rpc://"


def test_filter_result_backend_error_is_an_ansible_filter_error():
    from ansible.errors import AnsibleFilterError

    with pytest.raises(AnsibleFilterError, match=r"rabbitmq_passwords\.hello: not set for broker broker1"):
        _filters()["pyfleet_result_backend"](["broker1"], {}, "", kind="rabbitmq", app="hello")


# --- the broker kind in the plan ---------------------------------------------------------------


def test_plan_with_rabbitmq_uses_the_amqp_port_and_the_same_ip():
    hostvars = {"broker1": {"pyfleet_private_address": "10.0.0.5"}}
    result = plan(hostvars=hostvars, kind="rabbitmq")
    assert (result["broker_kind"], result["broker_ip"], result["broker_port"]) == ("rabbitmq", "10.0.0.5", 5672)


def test_plan_defaults_to_redis():
    result = plan(hostvars={"broker1": {"pyfleet_private_address": "10.0.0.5"}})
    assert (result["broker_kind"], result["broker_port"]) == ("redis", 6379)


def test_plan_rejects_an_unknown_broker_kind():
    hostvars = {"broker1": {"pyfleet_private_address": "10.0.0.5"}}
    assert error(hostvars=hostvars, kind="sqs") == (
        "pyfleet_broker_kind: 'sqs' is not one of redis, rabbitmq; set pyfleet_broker_kind: redis (the default) or rabbitmq"
    )


# --- each one-line message in full, and the edges of what is accepted ----------------------------


def _broker_error(*args, **kwargs):
    with pytest.raises(PyfleetError) as caught:
        broker_url(*args, **kwargs)
    return str(caught.value)


def test_broker_kind_unset_or_empty_is_redis_and_a_typo_gets_the_closest():
    assert broker_kind(None) == broker_kind("") == "redis"
    assert broker_kind("rabbitmq") == "rabbitmq"
    with pytest.raises(PyfleetError) as caught:
        broker_kind("rabbit")
    assert str(caught.value) == (
        "pyfleet_broker_kind: 'rabbit' is not one of redis, rabbitmq; did you mean rabbitmq? "
        "set pyfleet_broker_kind: redis (the default) or rabbitmq"
    )


def test_broker_errors_in_full():
    assert _broker_error([], {}, "pw") == (
        "group brokers: no broker host; add a host to group brokers in the inventory (it runs redis)"
    )
    assert _broker_error(["b1", "b2"], {}, "pw", group="mq") == (
        "group mq: 2 hosts (b1, b2) but pyfleet runs one broker; keep one host in group mq"
    )
    assert _broker_error(["b1"], {}, None) == (
        "redis_password: not set for broker b1; set it from ansible-vault (redis_password: ...)"
    )
    assert _broker_error(["b1"], {}, "pw", kind="rabbitmq", app="") == (
        "pyfleet_broker_kind: rabbitmq gives each Celery app a vhost and user of its name, but no app of "
        "pyfleet_apps has celery: {app: ...}; add celery: {app: 'myapp.tasks:app'} to the app with the tasks"
    )
    assert _broker_error(["b1"], {}, "", kind="rabbitmq", app="hello") == (
        "rabbitmq_passwords.hello: not set for broker b1 (the password of RabbitMQ user hello); "
        "set rabbitmq_passwords: {hello: ...} from ansible-vault"
    )


@pytest.mark.parametrize("db", [-1, 16, "1", True, 1.0])
def test_the_redis_database_is_0_to_15(db):
    assert _broker_error(["b1"], {"b1": {"ansible_host": "10.0.0.5"}}, "pw", db=db) == (
        f"broker database {db!r} is not 0..15; use db 0 for tasks and 1 for results"
    )


def test_databases_0_and_15_are_taken():
    hostvars = {"b1": {"ansible_host": "10.0.0.5"}}
    assert broker_url(["b1"], hostvars, "pw", db=15) == "redis://:pw@10.0.0.5:6379/15"
    assert broker_url(["b1"], hostvars, "pw", db=0, group="mq") == "redis://:pw@10.0.0.5:6379/0"


def test_a_rabbitmq_app_name_and_vhost_are_encoded():
    url = broker_url(["b1"], {"b1": {"ansible_host": "10.0.0.5"}}, "pw", kind="rabbitmq", app="a/b")
    assert url == "amqp://a%2Fb:pw@10.0.0.5:5672/a%2Fb"


def test_broker_address_takes_the_kinds_port_and_defaults():
    hostvars = {"b1": {"pyfleet_private_address": "10.0.0.5", "redis_port": 6380, "rabbitmq_port": 5673}}
    assert broker_address("b1", hostvars) == ("10.0.0.5", 6380)
    assert broker_address("b1", hostvars, kind="rabbitmq") == ("10.0.0.5", 5673)
    assert broker_address("b1", None, kind=None) == ("b1", 6379)
    assert broker_address("b1", {}, kind="rabbitmq") == ("b1", 5672)


def test_result_backend_of_another_group_and_db_1():
    hostvars = {"mq1": {"ansible_host": "10.0.0.6"}}
    assert result_backend(["mq1"], hostvars, "pw", group="mq") == "redis://:pw@10.0.0.6:6379/1"
    assert result_backend(["mq1"], hostvars, "pw", kind=None) == "redis://:pw@10.0.0.6:6379/1"


def test_result_backend_errors_name_the_broker_group():
    with pytest.raises(PyfleetError, match=r"^group brokers: no broker host; add a host to group brokers"):
        result_backend([], {}, "pw")
    with pytest.raises(PyfleetError, match=r"^group mq: 2 hosts \(b1, b2\) but pyfleet runs one broker"):
        result_backend(["b1", "b2"], {}, "pw", group="mq")
