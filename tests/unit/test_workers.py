"""Unit tests for pyfleet.workers: placement, routes, beat schedule, topology and every one-line error."""

import copy

import pytest
from celery_inventory import GROUPS, HOSTS, apps, error, plan, with_type

from pyfleet.apps import normalize_apps
from pyfleet.catalogue import consumer_timeout, visibility_timeout, worker_args
from pyfleet.errors import PyfleetError
from pyfleet.workers import plan_workers, topology

# --- the plan ----------------------------------------------------------------------------------


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


def test_error_beat_outside_worker_group():
    hosts = dict(HOSTS, web1={"celery_beat": True})
    hosts["worker2"] = {"celery_worker_types": ["cpu"]}
    app_list = apps(celery={"app": "sampleapp.tasks:app", "hosts": "workers"}, hosts="web")
    assert error(hosts=hosts, app_list=app_list).startswith("celery_beat on web1: web1 is not in group workers")


def test_error_worker_host_without_the_app():
    message = error(app_list=apps(celery={"app": "sampleapp.tasks:app"}))
    assert message.startswith("pyfleet_apps[0].celery.hosts (app hello): worker1 runs celery workers")
    assert "not deployed there (hosts: web)" in message
    assert "set celery: {app: 'sampleapp.tasks:app', hosts: workers}" in message


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


# --- what the roles render: every key of the plan ------------------------------------------------

HOSTVARS = {
    "lb1": {"pyfleet_private_address": "10.0.0.2"},
    "broker1": {"pyfleet_private_address": "10.0.0.5", "rabbitmq_port": 5673, "redis_port": 6380},
    "worker1": {"pyfleet_private_address": "10.0.0.11"},
    "worker2": {"pyfleet_private_address": "10.0.0.12"},
}
FLOWER_HOST = {
    "celery_flower": True,
    "celery_flower_domain": "flower.lab.test",
    "celery_flower_users": [{"name": "ops", "password": "s3cret"}],
}


def with_flower(host="worker1"):
    hosts = copy.deepcopy(HOSTS)
    hosts[host] = dict(hosts.get(host, {}), **FLOWER_HOST)
    return hosts


def test_the_plan_holds_everything_the_roles_render():
    result = plan(hostvars=HOSTVARS, kind="rabbitmq")
    assert set(result) == {
        "enabled", "app", "types", "hosts", "beat_host", "flower_host", "flower", "broker_host", "broker_kind",
        "broker_address", "broker_port", "broker_ip", "default_queue", "task_routes", "beat_schedule",
        "visibility_timeout", "consumer_timeout", "longest_time_limit",
    }  # fmt: skip
    assert (result["broker_kind"], result["broker_address"], result["broker_port"], result["broker_ip"]) == (
        "rabbitmq",
        "10.0.0.5",
        5673,
        "10.0.0.5",
    )
    assert result["flower"] is None and result["flower_host"] is None
    assert sorted(result["types"]) == ["cpu", "default", "io"]
    assert result["types"]["cpu"]["queues"] == ["cpu", "cpu.bulk"]
    assert result["longest_time_limit"] == 600  # default's unset time_limit, the longest
    assert result["visibility_timeout"] == visibility_timeout(result["types"]) > 600
    assert result["consumer_timeout"] == consumer_timeout(result["types"]) >= 3600
    assert result["beat_schedule"] == {"tick": {"task": "sampleapp.tasks.tick", "every": 10, "args": [], "kwargs": {}}}
    assert result["app"] == {
        "name": "hello",
        "celery_app": "sampleapp.tasks:app",
        "user": "app_hello",
        "group": "app_hello",
        "base_dir": "/srv/hello",
        "current_link": "/srv/hello/current",
        "shared_dir": "/srv/hello/shared",
        "celery_dir": "/srv/hello/shared/celery",
        "beat_dir": "/srv/hello/shared/celery-beat",
        "worker_unit": "pyfleet-hello-worker@",
        "beat_unit": "pyfleet-hello-beat.service",
        "flower_unit": "pyfleet-hello-flower.service",
    }


def test_the_broker_kind_defaults_to_redis_and_its_port():
    result = plan(hostvars=HOSTVARS)
    assert (result["broker_kind"], result["broker_port"], result["broker_ip"]) == ("redis", 6380, "10.0.0.5")
    assert plan()["broker_kind"] == "redis" and plan()["broker_address"] is None


def test_the_broker_must_be_reached_by_ip():
    hostvars = dict(HOSTVARS, broker1={"pyfleet_private_address": "broker1.lab.test"})
    assert error(hostvars=hostvars) == (
        "pyfleet_private_address on broker1: 'broker1.lab.test' is not an IP address, and worker units may only "
        "reach the broker by IP; set pyfleet_private_address of broker1 to its private IP"
    )


def test_a_unit_carries_its_types_settings_and_worker_args():
    unit = plan()["hosts"]["worker2"][0]
    cpu = plan()["types"]["cpu"]
    assert unit == {
        "type": "cpu",
        "node": "cpu@worker2",
        "unit": "pyfleet-hello-worker@cpu.service",
        "queues": ["cpu", "cpu.bulk"],
        "pool": "prefork",
        "args": worker_args("cpu@worker2", cpu, flower=False),
        "time_limit": 60,
        "stop_timeout": cpu["stop_timeout"],
    }
    assert "--without-heartbeat" in unit["args"] and "cpu@worker2" in " ".join(unit["args"])


def test_with_flower_the_workers_send_heartbeats_and_flower_is_planned():
    result = plan(hosts=with_flower(), hostvars=HOSTVARS)
    assert result["flower_host"] == "worker1"
    assert result["flower"] == {
        "host": "worker1",
        "domain": "flower.lab.test",
        "port": 5555,
        "users": ["ops"],
        "address": "10.0.0.11",
        "endpoint": "10.0.0.11:5555",
        "allow": ["10.0.0.5", "10.0.0.2"],  # the broker, then each load balancer
    }
    for units in result["hosts"].values():
        for unit in units:
            assert "--without-heartbeat" not in unit["args"]


def test_flower_is_reached_through_the_named_load_balancer_group():
    groups = copy.deepcopy(GROUPS)
    groups["edge"] = groups.pop("loadbalancers")
    result = plan(hosts=with_flower(), groups=groups, loadbalancer_group="edge", hostvars=HOSTVARS)
    assert result["flower"]["allow"] == ["10.0.0.5", "10.0.0.2"]
    # The default group, loadbalancers, is empty here.
    assert "group loadbalancers has no host" in error(hosts=with_flower(), groups=groups, hostvars=HOSTVARS)


def test_one_flower_host_at_most_and_in_the_worker_group():
    hosts = with_flower("worker1")
    hosts["worker2"].update(FLOWER_HOST)
    assert error(hosts=hosts) == (
        "celery_flower: worker1 and worker2 both run flower; keep celery_flower: true on one host only"
    )
    app_list = apps(celery={"app": "sampleapp.tasks:app", "hosts": "workers"}, hosts="web")
    message = error(hosts=with_flower("web1"), app_list=app_list)
    assert message == (
        "celery_flower on web1: web1 is not in group workers; set celery_flower: true on a host of group workers instead"
    )


@pytest.mark.parametrize("key", ["celery_worker_types", "celery_beat", "celery_flower"])
def test_any_host_setting_turns_celery_on_even_without_a_catalogue(key):
    value = ["default"] if key == "celery_worker_types" else True
    with pytest.raises(PyfleetError):
        plan_workers(None, {"worker1": {key: value}}, GROUPS, apps())


def test_a_catalogue_without_hosts_is_a_mistake_not_celery_off():
    message = error(hosts={})
    assert message.startswith("celery_worker_types on worker1: worker1 is in group workers but runs no worker type")


def test_types_on_hosts_without_a_worker_group_name_the_group():
    groups = {k: v for k, v in GROUPS.items() if k != "workers"}
    assert error(groups=groups).startswith("celery_worker_types on worker1: worker1 is not in group workers")


def test_topology_joins_a_types_queues():
    assert ("worker2", "cpu", "cpu@worker2", "cpu,cpu.bulk", "pyfleet-hello-worker@cpu.service") in topology(plan())


# --- host settings, one line each ----------------------------------------------------------------


def test_one_type_may_be_written_without_a_list():
    hosts = dict(HOSTS, worker1={"celery_worker_types": "default"}, worker3={"celery_worker_types": ["io"]})
    groups = copy.deepcopy(GROUPS)
    groups["workers"].append("worker3")
    groups["all"].append("worker3")
    result = plan(hosts=hosts, groups=groups)
    assert [u["node"] for u in result["hosts"]["worker1"]] == ["default@worker1"]


def test_error_types_not_a_list_names_its_kind():
    hosts = dict(HOSTS, worker1={"celery_worker_types": 3})
    assert error(hosts=hosts) == (
        "celery_worker_types on worker1: expected a list of worker types, got a number; "
        "write celery_worker_types: [default]"
    )


def test_error_a_type_name_that_is_not_a_string():
    hosts = dict(HOSTS, worker1={"celery_worker_types": ["default", 7]})
    assert error(hosts=hosts) == (
        "celery_worker_types on worker1: 7 is not a type name; write celery_worker_types: [default]"
    )


def test_error_unknown_type_without_a_close_one_gives_the_list():
    hosts = dict(HOSTS, worker1={"celery_worker_types": ["default", "zzzzzz"]})
    assert error(hosts=hosts) == (
        "celery_worker_types on worker1: unknown worker type 'zzzzzz'; use one of cpu, default, io "
        "or add zzzzzz to celery_worker_catalogue"
    )


# --- the Celery app -------------------------------------------------------------------------------


def test_error_no_app_with_celery_says_how_to_add_it():
    assert error(app_list=apps(celery={})) == (
        "pyfleet_apps: no app has celery: {app: module:attribute}, so workers have nothing to run; "
        "add celery: {app: 'myapp.tasks:app', hosts: workers} to the app with the tasks"
    )


def test_error_two_apps_with_celery_say_keep_one():
    two = normalize_apps(
        [
            {"name": n, "source": {"requirement": f"{n}==1"}, "kind": "wsgi", "entry": "a.b:c",
             "domains": [f"{n}.test"], "celery": {"app": "a.tasks:app", "hosts": "workers"}}
            for n in ("one", "two")
        ],
        check_paths=False,
    )  # fmt: skip
    assert error(app_list=two) == (
        "pyfleet_apps: apps one, two all have celery, but pyfleet runs the workers of one app; keep celery on one app"
    )


@pytest.mark.parametrize("extra", ["  ", 5, ""])
def test_error_celery_hosts_that_are_not_a_pattern(extra):
    message = error(app_list=apps(celery={"app": "sampleapp.tasks:app", "hosts": extra}))
    assert message == (f"pyfleet_apps[0].celery.hosts (app hello): {extra!r} is not a host pattern; set hosts: workers")


def test_error_beat_host_without_the_app_names_its_role():
    groups = copy.deepcopy(GROUPS)
    groups["workers"] = ["worker1", "worker2", "beat1"]
    groups["all"].append("beat1")
    app_list = apps(celery={"app": "sampleapp.tasks:app", "hosts": "worker1:worker2"}, hosts="web")
    hosts = {"worker1": {"celery_worker_types": ["default", "io"]}, "worker2": {"celery_worker_types": ["cpu"]}}
    beat = error(hosts=dict(hosts, beat1={"celery_beat": True}), groups=groups, app_list=app_list)
    assert beat.startswith("pyfleet_apps[0].celery.hosts (app hello): beat1 runs celery beat but the app is not")
    assert "(hosts: web, celery.hosts: worker1:worker2)" in beat


# --- routes ---------------------------------------------------------------------------------------


def test_error_routes_of_the_wrong_kind_say_which():
    assert error(routes=["x"]) == (
        "celery_task_routes: expected a mapping of task name or glob to worker type, got a list; "
        "write celery_task_routes: {'myapp.tasks.slow': io}"
    )


@pytest.mark.parametrize("pattern", ["x y", "", 5, "9tasks"])
def test_error_a_route_that_is_no_task_name(pattern):
    assert error(routes={pattern: "io"}) == (
        f"celery_task_routes[{pattern!r}]: not a task name or glob; write e.g. 'myapp.tasks.*'"
    )


def test_error_a_route_to_a_queue_with_another_key():
    assert error(routes={"x.y": {"queue": "io", "prio": 1}}).startswith("celery_task_routes['x.y'].prio: unknown key")


def test_error_a_route_to_an_unknown_type_suggests_the_closest():
    assert error(routes={"x.y": "cpx"}) == (
        "celery_task_routes['x.y']: unknown worker type 'cpx'; did you mean cpu? route to one of cpu, default, io"
    )
    assert error(routes={"x.y": 42}) == (
        "celery_task_routes['x.y']: unknown worker type 42; route to one of cpu, default, io"
    )


# --- the beat schedule ----------------------------------------------------------------------------


def test_a_schedule_entry_keeps_its_arguments_and_normalises_cron():
    schedule = {
        "report": {"task": "Sample.Tasks.Report", "cron": " 0   3 * * 1-5 ", "args": [1], "kwargs": {"k": 2}},
        7: {"task": "x.y", "every": 1},
        "monthly": {"task": "x.z", "every": 31 * 86400},
        "half": {"task": "x.h", "every": 1.5},
    }
    assert plan(schedule=schedule)["beat_schedule"] == {
        "report": {"task": "Sample.Tasks.Report", "args": [1], "kwargs": {"k": 2}, "cron": "0 3 * * 1-5"},
        "7": {"task": "x.y", "args": [], "kwargs": {}, "every": 1},
        "monthly": {"task": "x.z", "args": [], "kwargs": {}, "every": 2678400},
        "half": {"task": "x.h", "args": [], "kwargs": {}, "every": 1.5},
    }


@pytest.mark.parametrize("every", [0.5, 31 * 86400 + 1, True, "60", None])
def test_error_every_out_of_range_or_not_a_number(every):
    assert error(schedule={"t": {"task": "x.y", "every": every}}) == (
        f"celery_beat_schedule.t.every: {every!r} is not a number of seconds from 1 to 2678400; set every: 60"
    )


@pytest.mark.parametrize("cron", ["* * * * * *", "a b c d e", 5, "* * * * x"])
def test_error_cron_not_five_fields(cron):
    assert error(schedule={"t": {"task": "x.y", "cron": cron}}) == (
        f"celery_beat_schedule.t.cron: {cron!r} is not five cron fields; write cron: '*/5 * * * *'"
    )


@pytest.mark.parametrize(("args", "kwargs"), [("a", None), (None, ["a"]), ((1,), None)])
def test_error_args_not_a_list_or_kwargs_not_a_mapping(args, kwargs):
    item = {"task": "x.y", "every": 5, "args": args, "kwargs": kwargs}
    assert error(schedule={"t": item}) == "celery_beat_schedule.t: args must be a list and kwargs a mapping; fix them"


def test_error_schedule_and_entries_of_the_wrong_kind_say_which():
    assert error(schedule=["tick"]) == (
        "celery_beat_schedule: expected a mapping, got a list; write celery_beat_schedule: {tick: {task: x, every: 10}}"
    )
    assert error(schedule={"t": 5}) == (
        "celery_beat_schedule.t: expected a mapping, got a number; write {task: myapp.tasks.x, every: 60}"
    )


def test_no_routes_and_no_schedule_are_empty():
    result = plan(routes=None, schedule=None)
    assert result["task_routes"] == {} and result["beat_schedule"] == {}


def test_flower_may_not_take_a_domain_of_an_app():
    hosts = with_flower()
    hosts["worker1"]["celery_flower_domain"] = "hello.lab.test"
    assert error(hosts=hosts, hostvars=HOSTVARS).startswith(
        "celery_flower_domain: hello.lab.test is also a domain of app hello; give flower a name of its own"
    )
