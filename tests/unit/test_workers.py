"""Unit tests for pyfleet.workers: placement, routes, beat schedule, topology and every one-line error."""

import copy

import pytest
from celery_inventory import GROUPS, HOSTS, apps, error, plan, with_type

from pyfleet.apps import normalize_apps
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
    )  # fmt: skip
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
