"""Unit tests for pyfleet.workers: placement, routes, visibility timeout and every one-line error."""

import copy
import importlib.util
from pathlib import Path

import pytest

from pyfleet.apps import normalize_apps
from pyfleet.errors import PyfleetError
from pyfleet.workers import (
    broker_url,
    ip_allow,
    match_hosts,
    normalize_catalogue,
    plan_workers,
    render_config_module,
    result_backend,
    topology,
    visibility_timeout,
    worker_args,
)

ROOT = Path(__file__).resolve().parents[2]

CATALOGUE = {
    "default": {"queues": ["default"], "concurrency": 2},
    "io": {"queues": ["io"], "pool": "threads", "concurrency": 16, "time_limit": 120},
    "cpu": {
        "queues": ["cpu", "cpu.bulk"],
        "concurrency": 1,
        "soft_time_limit": 50,
        "time_limit": 60,
        "max_tasks_per_child": 100,
        "max_memory_per_child": 262144,
    },
}
GROUPS = {
    "all": ["lb1", "web1", "web2", "broker1", "worker1", "worker2"],
    "ungrouped": [],
    "loadbalancers": ["lb1"],
    "web": ["web1", "web2"],
    "brokers": ["broker1"],
    "workers": ["worker1", "worker2"],
}
HOSTS = {
    "worker1": {"celery_worker_types": ["default", "io"]},
    "worker2": {"celery_worker_types": ["cpu"], "celery_beat": True},
}
ROUTES = {"sampleapp.tasks.sleep": "io", "sampleapp.tasks.crunch*": "cpu"}
SCHEDULE = {"tick": {"task": "sampleapp.tasks.tick", "every": 10}}


def apps(celery=None, hosts=None):
    """The lab's app with Celery on web and worker hosts."""
    spec = {
        "name": "hello",
        "source": {"requirement": "hello==1.0"},
        "kind": "wsgi",
        "entry": "sampleapp.wsgi:app",
        "domains": ["hello.lab.test"],
        "celery": celery if celery is not None else {"app": "sampleapp.tasks:app", "hosts": "workers"},
    }
    if hosts:
        spec["hosts"] = hosts
    return normalize_apps([spec], check_paths=False)


def plan(catalogue=None, hosts=None, groups=None, app_list=None, **kwargs):
    """plan_workers over the lab inventory, with overrides."""
    kwargs.setdefault("routes", ROUTES)
    kwargs.setdefault("schedule", SCHEDULE)
    return plan_workers(
        copy.deepcopy(CATALOGUE if catalogue is None else catalogue),
        copy.deepcopy(HOSTS if hosts is None else hosts),
        copy.deepcopy(GROUPS if groups is None else groups),
        apps() if app_list is None else app_list,
        **kwargs,
    )


def error(*args, **kwargs):
    """The one-line message plan_workers raises."""
    with pytest.raises(PyfleetError) as caught:
        plan(*args, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def with_type(name, **settings):
    """The catalogue with one type's settings replaced."""
    catalogue = copy.deepcopy(CATALOGUE)
    catalogue[name] = settings
    return catalogue


# --- the plan ------------------------------------------------------------------------


def test_units_per_host_follow_the_inventory():
    result = plan()
    assert [u["node"] for u in result["hosts"]["worker1"]] == ["default@worker1", "io@worker1"]
    assert [u["node"] for u in result["hosts"]["worker2"]] == ["cpu@worker2"]
    assert set(result["hosts"]) == {"worker1", "worker2"}


def test_unit_names_are_instances_of_one_template():
    units = plan()["hosts"]["worker1"]
    assert [u["unit"] for u in units] == [
        "pyfleet-hello-worker@default.service",
        "pyfleet-hello-worker@io.service",
    ]


def test_beat_broker_and_app():
    result = plan()
    assert result["beat_host"] == "worker2"
    assert result["flower_host"] is None
    assert result["broker_host"] == "broker1"
    assert result["app"]["celery_app"] == "sampleapp.tasks:app"
    assert result["app"]["user"] == "app_hello"
    assert result["app"]["current_link"] == "/srv/hello/current"
    assert result["app"]["celery_dir"] == "/srv/hello/shared/celery"


def test_stop_timeout_is_longer_than_the_hard_time_limit():
    for units in plan()["hosts"].values():
        for unit in units:
            assert unit["stop_timeout"] > unit["time_limit"]


def test_default_time_limit_applies():
    assert plan()["types"]["default"]["time_limit"] == 600


def test_no_lost_tasks_defaults():
    for spec in plan()["types"].values():
        assert spec["acks_late"] is True
        assert spec["reject_on_worker_lost"] is True
        assert spec["prefetch_multiplier"] == 1


def test_task_routes_point_at_the_types_first_queue():
    assert plan()["task_routes"] == {
        "sampleapp.tasks.sleep": {"queue": "io"},
        "sampleapp.tasks.crunch*": {"queue": "cpu"},
    }


def test_route_to_a_consumed_queue():
    result = plan(routes={"x.bulk": {"queue": "cpu.bulk"}})
    assert result["task_routes"] == {"x.bulk": {"queue": "cpu.bulk"}}


def test_default_queue():
    assert plan()["default_queue"] == "default"
    assert plan(default_type="io")["default_queue"] == "io"


@pytest.mark.parametrize(
    ("limits", "expected"),
    [([60], 90), ([600, 60], 630), ([1800], 1830), ([3000, 10], 3030)],
)
def test_visibility_timeout_is_the_longest_limit_plus_a_margin(limits, expected):
    catalogue = {f"t{i}": {"time_limit": limit} for i, limit in enumerate(limits)}
    assert visibility_timeout(normalize_catalogue(catalogue)) == expected


def test_visibility_timeout_in_plan():
    # The default type sets no time limit: it gets DEFAULT_TIME_LIMIT (600).
    assert plan()["visibility_timeout"] == 630
    assert plan(catalogue=with_type("cpu", time_limit=7200, queues=["cpu"]))["visibility_timeout"] == 7230


def test_rabbitmq_consumer_timeout_stays_generous():
    # RabbitMQ re-delivers on a dropped connection; its timeout only catches a stuck consumer.
    assert plan()["consumer_timeout"] == 3600
    assert plan(catalogue=with_type("cpu", time_limit=5400, queues=["cpu"]))["consumer_timeout"] == 10800


def test_worker_args_prefork():
    spec = normalize_catalogue(CATALOGUE)["cpu"]
    assert worker_args("cpu@w2", spec) == [
        "--hostname", "cpu@w2", "--queues", "cpu,cpu.bulk", "--pool", "prefork", "--concurrency", "1",
        "-O", "fair", "--prefetch-multiplier", "1", "--time-limit", "60", "--soft-time-limit", "50",
        "--max-tasks-per-child", "100", "--max-memory-per-child", "262144",
    ]  # fmt: skip  # each option beside its value


def test_worker_args_threads_have_no_time_limit_or_fair():
    args = worker_args("io@w1", normalize_catalogue(CATALOGUE)["io"])
    assert "--time-limit" not in args and "-O" not in args
    assert args[args.index("--pool") + 1] == "threads"


def test_worker_args_autoscale():
    spec = normalize_catalogue({"a": {"autoscale": [8, 2]}})["a"]
    args = worker_args("a@h", spec)
    assert args[args.index("--autoscale") + 1] == "8,2"
    assert "--concurrency" not in args


def test_worker_args_without_concurrency_leave_celery_default():
    assert "--concurrency" not in worker_args("a@h", normalize_catalogue({"a": {}})["a"])


def test_queues_default_to_the_type_name():
    assert normalize_catalogue({"mail": None})["mail"]["queues"] == ["mail"]


def test_solo_pool_runs_one_task():
    assert normalize_catalogue({"s": {"pool": "solo"}})["s"]["concurrency"] == 1


def test_no_celery_at_all_is_disabled():
    assert plan_workers(None, {}, GROUPS, apps()) == {"enabled": False}


def test_beat_only_host_is_allowed():
    groups = copy.deepcopy(GROUPS)
    groups["workers"] = ["worker1", "beat1"]
    groups["all"] = ["web1", "broker1", "worker1", "beat1"]
    hosts = {"worker1": {"celery_worker_types": ["default", "io", "cpu"]}, "beat1": {"celery_beat": True}}
    result = plan(hosts=hosts, groups=groups)
    assert result["beat_host"] == "beat1"
    assert result["hosts"]["beat1"] == []


def test_adding_a_host_adds_units_only_there():
    groups = copy.deepcopy(GROUPS)
    groups["workers"].append("worker3")
    groups["all"].append("worker3")
    hosts = dict(HOSTS, worker3={"celery_worker_types": ["io"]})
    before, after = plan(), plan(hosts=hosts, groups=groups)
    assert after["hosts"]["worker3"][0]["node"] == "io@worker3"
    for host in ("worker1", "worker2"):
        assert after["hosts"][host] == before["hosts"][host]


def test_app_hosts_pattern_may_cover_workers():
    result = plan(app_list=apps(celery={"app": "sampleapp.tasks:app"}, hosts="web:workers"))
    assert result["enabled"]


def test_topology_rows():
    rows = topology(plan())
    assert ("worker1", "io", "io@worker1", "io", "pyfleet-hello-worker@io.service") in rows
    assert ("worker2", "beat", "-", "-", "pyfleet-hello-beat.service") in rows


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("web", ["web1", "web2"]),
        ("web:workers", ["web1", "web2", "worker1", "worker2"]),
        ("web,worker1", ["web1", "web2", "worker1"]),
        ("all:!web", ["lb1", "broker1", "worker1", "worker2"]),
        ("workers:&worker2", ["worker2"]),
        ("work*", ["worker1", "worker2"]),
        ("nothing", []),
    ],
)
def test_match_hosts(pattern, expected):
    assert match_hosts(pattern, GROUPS) == expected


# --- the generated settings module --------------------------------------------------------


def test_config_module_is_python_with_the_settings():
    source = render_config_module(plan())
    namespace = {}
    exec(compile(source, "pyfleet_celeryconfig.py", "exec"), namespace)  # our own output
    assert namespace["task_routes"]["sampleapp.tasks.sleep"] == {"queue": "io"}
    assert namespace["task_default_queue"] == "default"
    assert namespace["broker_transport_options"] == {"visibility_timeout": 630}
    assert namespace["beat_schedule"]["tick"]["schedule"] == 10.0
    assert namespace["task_acks_late"] is True
    assert namespace["worker_prefetch_multiplier"] == 1
    # A broker restart loses no task: producers retry the send, workers the result.
    assert namespace["task_publish_retry_policy"]["max_retries"] >= 10
    assert namespace["result_backend_always_retry"] is True


def test_config_module_picks_the_worker_types_settings(monkeypatch):
    catalogue = with_type("io", pool="threads", queues=["io"], acks_late=False, reject_on_worker_lost=False,
                          prefetch_multiplier=4)
    source = render_config_module(plan(catalogue=catalogue))
    monkeypatch.setenv("PYFLEET_CELERY_WORKER_TYPE", "io")
    namespace = {}
    exec(compile(source, "pyfleet_celeryconfig.py", "exec"), namespace)
    assert namespace["task_acks_late"] is False
    assert namespace["task_reject_on_worker_lost"] is False
    assert namespace["worker_prefetch_multiplier"] == 4


def test_config_module_cron_schedule():
    source = render_config_module(plan(schedule={"nightly": {"task": "x.y", "cron": "0 3 * * *"}}))
    assert "from celery.schedules import crontab" in source
    assert "crontab(minute='0', hour='3'" in source


# --- the broker URL ------------------------------------------------------------------------


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
            r"rabbitmq_passwords.hello: not set for broker b1 "
            r".*set rabbitmq_passwords: \{hello: ...\} from ansible-vault",
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


def test_ip_allow():
    assert ip_allow("10.0.0.5", "broker1") == "10.0.0.5"
    with pytest.raises(PyfleetError, match=r"pyfleet_private_address on broker1: 'broker1\.lan' is not an IP"):
        ip_allow("broker1.lan", "broker1")


# --- one-line errors ---------------------------------------------------------------------------


def test_error_unknown_type_on_a_host():
    hosts = dict(HOSTS, worker1={"celery_worker_types": ["default", "iox"]})
    message = error(hosts=hosts)
    assert message.startswith("celery_worker_types on worker1: unknown worker type 'iox'; did you mean io?")
    assert "add iox to celery_worker_catalogue" in message


def test_error_type_without_host():
    message = error(catalogue=with_type("gpu", queues=["gpu"]))
    assert message.startswith("celery_worker_catalogue.gpu: no host runs this type")
    assert "add gpu to celery_worker_types of a host in group workers" in message


def test_error_route_to_unknown_type():
    message = error(routes={"x.y": "gpu"})
    assert message.startswith("celery_task_routes['x.y']: unknown worker type 'gpu'")


def test_error_route_to_queue_without_consumer():
    message = error(routes={"x.y": {"queue": "mail"}})
    assert "no worker type consumes queue 'mail'" in message


def test_error_unknown_default_type():
    assert error(default_type="fast").startswith("celery_task_default_type: unknown worker type 'fast'")


def test_error_no_beat():
    hosts = {"worker1": HOSTS["worker1"], "worker2": {"celery_worker_types": ["cpu"]}}
    assert error(hosts=hosts).startswith("celery_beat: no host runs beat (exactly one must)")


def test_error_two_beats():
    hosts = copy.deepcopy(HOSTS)
    hosts["worker1"]["celery_beat"] = True
    assert error(hosts=hosts).startswith("celery_beat: worker1 and worker2 both run beat")


def test_error_two_flowers():
    hosts = copy.deepcopy(HOSTS)
    hosts["worker1"]["celery_flower"] = True
    hosts["worker2"]["celery_flower"] = True
    assert error(hosts=hosts).startswith("celery_flower: worker1 and worker2 both run flower")


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
        "celery_flower on worker2: group loadbalancers has no host, "
        "and flower is only reached through the load balancers"
    )


def test_flower_error_load_balancer_without_ip():
    hostvars = dict(HOSTVARS, lb1={"ansible_host": "lb1.internal"})
    assert error(hosts=with_flower(), hostvars=hostvars).startswith(
        "pyfleet_private_address on lb1: 'lb1.internal' is not an IP address, and the flower unit admits"
    )


def test_flower_error_outside_worker_group():
    hosts = dict(HOSTS, web1=dict(FLOWER_VARS))
    assert error(hosts=hosts).startswith("celery_flower on web1: web1 is not in group workers")


def test_error_beat_outside_worker_group():
    hosts = dict(HOSTS, web1={"celery_beat": True})
    hosts["worker2"] = {"celery_worker_types": ["cpu"]}
    app_list = apps(celery={"app": "sampleapp.tasks:app", "hosts": "workers"}, hosts="web")
    assert error(hosts=hosts, app_list=app_list).startswith(
        "celery_beat on web1: web1 is not in group workers"
    )


def test_error_no_broker():
    groups = dict(GROUPS, brokers=[])
    assert error(groups=groups).startswith("group brokers: no broker host; add a host to group brokers")


def test_error_two_brokers():
    groups = dict(GROUPS, brokers=["broker1", "lb1"])
    assert "keep one host in group brokers" in error(groups=groups)


def test_error_worker_host_without_the_app():
    message = error(app_list=apps(celery={"app": "sampleapp.tasks:app"}))
    assert message.startswith("pyfleet_apps[0].celery.hosts (app hello): worker1 runs celery workers")
    assert "not deployed there (hosts: web)" in message
    assert "set celery: {app: 'sampleapp.tasks:app', hosts: workers}" in message


def test_error_no_app_with_celery():
    message = error(app_list=apps(celery={}))
    assert message.startswith("pyfleet_apps: no app has celery: {app: module:attribute}")


def test_error_two_apps_with_celery():
    two = normalize_apps(
        [
            {"name": n, "source": {"requirement": f"{n}==1"}, "kind": "wsgi", "entry": "a.b:c",
             "domains": [f"{n}.test"], "celery": {"app": "a.tasks:app", "hosts": "workers"}}
            for n in ("one", "two")
        ],
        check_paths=False,
    )
    assert "apps one, two all have celery" in error(app_list=two)


def test_error_duplicate_node_name():
    hosts = dict(HOSTS, worker1={"celery_worker_types": ["default", "io", "default"]})
    message = error(hosts=hosts)
    assert (
        message
        == "celery_worker_types on worker1: default is listed twice (duplicate node default@worker1); remove one"
    )


def test_error_types_on_a_host_outside_the_worker_group():
    hosts = dict(HOSTS, web1={"celery_worker_types": ["io"]})
    assert error(hosts=hosts).startswith("celery_worker_types on web1: web1 is not in group workers")


def test_error_worker_host_without_types():
    hosts = {"worker1": {"celery_worker_types": ["default", "io", "cpu"], "celery_beat": True}}
    assert error(hosts=hosts).startswith(
        "celery_worker_types on worker2: worker2 is in group workers but runs no worker type"
    )


def test_error_types_not_a_list():
    hosts = dict(HOSTS, worker1={"celery_worker_types": {"default": 1}})
    assert error(hosts=hosts).startswith("celery_worker_types on worker1: expected a list of worker types")


def test_error_beat_not_boolean():
    hosts = copy.deepcopy(HOSTS)
    hosts["worker2"]["celery_beat"] = "yes please"
    assert error(hosts=hosts).startswith("celery_beat on worker2: 'yes please' is not true or false")


def test_error_shared_queue():
    catalogue = with_type("io", pool="threads", queues=["default"])
    assert "queue default is already consumed by type default" in error(catalogue=catalogue)


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"concurrency": 0}, "celery_worker_catalogue.io.concurrency: 0 is not an integer from 1 to 256"),
        ({"concurrency": 257}, "concurrency: 257 is not an integer from 1 to 256"),
        ({"concurrency": True}, "concurrency: True is not an integer"),
        ({"time_limit": 0}, "time_limit: 0 is not an integer from 1 to 604800"),
        ({"time_limit": 60, "soft_time_limit": 60}, "soft_time_limit: 60 is not below time_limit 60"),
        ({"soft_time_limit": 700}, "soft_time_limit: 700 is not below time_limit 600"),
        ({"prefetch_multiplier": 0}, "prefetch_multiplier: 0 is not an integer from 1 to 100"),
        ({"max_memory_per_child": 10}, "max_memory_per_child: 10 is not an integer from 1024"),
        ({"max_tasks_per_child": -1}, "max_tasks_per_child: -1 is not an integer"),
        ({"autoscale": [2, 8]}, "autoscale: [2, 8] is not [max, min] with 1 <= min <= max <= 256"),
        ({"autoscale": [8, 2], "concurrency": 2}, "concurrency and autoscale both set"),
        ({"pool": "threads", "autoscale": [8, 2]}, "only the prefork pool autoscales, not threads"),
        ({"pool": "threadz"}, "pool: 'threadz' is not one of prefork, threads, solo, gevent, eventlet"),
        ({"pool": "threads", "soft_time_limit": 5}, "the threads pool cannot interrupt a task"),
        (
            {"pool": "threads", "max_tasks_per_child": 5},
            "only prefork pool children are replaced, not threads",
        ),
        ({"pool": "solo", "concurrency": 4}, "the solo pool runs one task at a time"),
        ({"acks_late": False}, "reject_on_worker_lost: has no effect without acks_late"),
        ({"acks_late": "yes"}, "acks_late: 'yes' is not true or false"),
        ({"queues": []}, "queues: expected a list of queue names"),
        ({"queues": ["a b"]}, "queues: 'a b' is not a queue name"),
        ({"queues": ["io", "io"]}, "queues: a queue is listed twice"),
        ({"concurency": 2}, "celery_worker_catalogue.io.concurency: unknown key; did you mean concurrency?"),
    ],
)
def test_error_catalogue_values(settings, fragment):
    message = error(catalogue=with_type("io", **settings))
    assert fragment in message
    assert message.startswith("celery_worker_catalogue.io")


def test_error_catalogue_not_a_mapping():
    assert error(catalogue=["default"]).startswith(
        "celery_worker_catalogue: expected a mapping of worker types"
    )


def test_error_bad_type_name():
    catalogue = dict(CATALOGUE, **{"Big Type": {}})
    assert "'Big Type' is not a valid worker type name" in error(catalogue=catalogue)


@pytest.mark.parametrize(
    ("schedule", "fragment"),
    [
        ({"t": {"task": "x.y"}}, "celery_beat_schedule.t: set exactly one of every (seconds) or cron"),
        ({"t": {"task": "x.y", "every": 0}}, "celery_beat_schedule.t.every: 0 is not a number of seconds"),
        (
            {"t": {"task": "x.y", "cron": "* * *"}},
            "celery_beat_schedule.t.cron: '* * *' is not five cron fields",
        ),
        ({"t": {"task": "x y", "every": 5}}, "celery_beat_schedule.t.task: 'x y' is not a task name"),
        ({"t": {"task": "x.y", "every": 5, "queue": "io"}}, "celery_beat_schedule.t.queue: unknown key"),
        ({"t": "x.y"}, "celery_beat_schedule.t: expected a mapping"),
    ],
)
def test_error_schedule(schedule, fragment):
    assert fragment in error(schedule=schedule)


def test_error_routes_not_a_mapping():
    assert error(routes=["x"]).startswith("celery_task_routes: expected a mapping")


# --- the Ansible filter -------------------------------------------------------------------------


def _filters():
    path = ROOT / "plugins" / "filter" / "pyfleet_workers.py"
    module_spec = importlib.util.spec_from_file_location("pyfleet_workers_filter", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.FilterModule().filters()


RAW_APPS = [
    {
        "name": "hello",
        "source": {"path": "examples/sampleapp"},
        "kind": "wsgi",
        "entry": "sampleapp.wsgi:app",
        "domains": ["hello.lab.test"],
        "celery": {"app": "sampleapp.tasks:app", "hosts": "workers"},
    }
]


def test_filter_plans_from_hostvars():
    hostvars = {host: HOSTS.get(host, {}) for host in GROUPS["all"]}
    hostvars["broker1"] = {"pyfleet_private_address": "10.0.0.5"}
    result = _filters()["pyfleet_workers"](
        CATALOGUE, hostvars, GROUPS, RAW_APPS, routes=ROUTES, schedule=SCHEDULE
    )
    assert result["beat_host"] == "worker2"
    assert (result["broker_ip"], result["broker_port"]) == ("10.0.0.5", 6379)


def test_broker_must_have_an_ip_when_hostvars_are_given():
    hostvars = {"broker1": {"ansible_host": "broker1.lan"}}
    with pytest.raises(PyfleetError, match=r"pyfleet_private_address on broker1: 'broker1\.lan' is not an IP"):
        plan(hostvars=hostvars)


def test_filter_turns_errors_into_ansible_filter_errors():
    from ansible.errors import AnsibleFilterError

    hostvars = {host: {} for host in GROUPS["all"]}
    hostvars.update(worker1=HOSTS["worker1"], worker2={"celery_worker_types": ["cpu"]})
    with pytest.raises(AnsibleFilterError, match="celery_beat: no host runs beat"):
        _filters()["pyfleet_workers"](CATALOGUE, hostvars, GROUPS, RAW_APPS)


def test_filter_broker_url():
    url = _filters()["pyfleet_broker_url"](
        ["broker1"], {"broker1": {"ansible_host": "10.1.0.4"}}, "pw", db="1"
    )
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


# --- the broker kind in the plan ---------------------------------------------------------


def test_plan_with_rabbitmq_uses_the_amqp_port_and_the_same_ip():
    hostvars = {"broker1": {"pyfleet_private_address": "10.0.0.5", "pyfleet_broker_kind": "rabbitmq"}}
    result = plan(hostvars=hostvars)
    assert (result["broker_kind"], result["broker_ip"], result["broker_port"]) == ("rabbitmq", "10.0.0.5", 5672)


def test_plan_defaults_to_redis():
    result = plan(hostvars={"broker1": {"pyfleet_private_address": "10.0.0.5"}})
    assert (result["broker_kind"], result["broker_port"]) == ("redis", 6379)


def test_plan_rejects_an_unknown_broker_kind():
    hostvars = {"broker1": {"pyfleet_private_address": "10.0.0.5", "pyfleet_broker_kind": "sqs"}}
    assert error(hostvars=hostvars) == (
        "pyfleet_broker_kind: 'sqs' is not one of redis, rabbitmq; "
        "set pyfleet_broker_kind: redis (the default) or rabbitmq"
    )


def test_config_module_has_no_redis_visibility_timeout_with_rabbitmq():
    hostvars = {"broker1": {"pyfleet_private_address": "10.0.0.5", "pyfleet_broker_kind": "rabbitmq"}}
    namespace = {}
    exec(compile(render_config_module(plan(hostvars=hostvars)), "pyfleet_celeryconfig.py", "exec"), namespace)
    assert "broker_transport_options" not in namespace
    assert namespace["task_acks_late"] is True
