"""Unit tests for pyfleet.celeryconfig: the generated Celery settings module is Python with the plan's settings."""

import sys
import types

from celery_inventory import plan, with_type

from pyfleet.celeryconfig import render_config_module


def test_config_module_is_python_with_the_settings():
    source = render_config_module(plan())
    namespace = {}
    exec(compile(source, "pyfleet_celeryconfig.py", "exec"), namespace)
    assert namespace["task_routes"]["sampleapp.tasks.sleep"] == {"queue": "io"}
    assert namespace["task_default_queue"] == "default"
    assert namespace["broker_transport_options"] == {
        "visibility_timeout": 630,
        "unacked_restore_throttle": 1,
        "socket_connect_timeout": 5,
    }
    assert namespace["beat_schedule"]["tick"]["schedule"] == 10.0
    assert namespace["task_acks_late"] is True
    assert namespace["worker_prefetch_multiplier"] == 1
    # A broker restart loses no task: producers retry the send, workers the result.
    assert namespace["task_publish_retry_policy"]["max_retries"] >= 10
    assert namespace["result_backend_always_retry"] is True


def test_config_module_picks_the_worker_types_settings(monkeypatch):
    catalogue = with_type(
        "io", pool="threads", queues=["io"], acks_late=False, reject_on_worker_lost=False, prefetch_multiplier=4
    )
    source = render_config_module(plan(catalogue=catalogue))
    monkeypatch.setenv("PYFLEET_CELERY_WORKER_TYPE", "io")
    namespace = {}
    exec(compile(source, "pyfleet_celeryconfig.py", "exec"), namespace)
    assert namespace["task_acks_late"] is False
    assert namespace["task_reject_on_worker_lost"] is False
    assert namespace["worker_prefetch_multiplier"] == 4
    assert namespace["task_track_started"] is False


def test_config_module_stores_started_only_for_the_types_that_ask(monkeypatch):
    source = render_config_module(plan(catalogue=with_type("io", pool="threads", queues=["io"], track_started=True)))
    for worker_type, expected in (("io", True), ("default", False), ("", False)):
        monkeypatch.setenv("PYFLEET_CELERY_WORKER_TYPE", worker_type)
        namespace = {}
        exec(compile(source, "pyfleet_celeryconfig.py", "exec"), namespace)
        assert namespace["task_track_started"] is expected
        assert namespace["task_acks_late"] is True


def test_config_module_cron_schedule():
    source = render_config_module(plan(schedule={"nightly": {"task": "x.y", "cron": "0 3 * * *"}}))
    assert "from celery.schedules import crontab" in source
    assert "crontab(minute='0', hour='3'" in source


def test_config_module_has_no_redis_visibility_timeout_with_rabbitmq():
    hostvars = {"broker1": {"pyfleet_private_address": "10.0.0.5"}}
    namespace = {}
    exec(
        compile(render_config_module(plan(hostvars=hostvars, kind="rabbitmq")), "pyfleet_celeryconfig.py", "exec"),
        namespace,
    )
    assert "broker_transport_options" not in namespace
    assert namespace["task_acks_late"] is True


def _load(source, monkeypatch=None, worker_type=None):
    """The generated module's settings, as Celery reads them (celery.schedules.crontab stubbed: no Celery here)."""
    if monkeypatch is not None:
        schedules = types.ModuleType("celery.schedules")
        schedules.crontab = lambda **fields: ("crontab", fields)
        monkeypatch.setitem(sys.modules, "celery", types.ModuleType("celery"))
        monkeypatch.setitem(sys.modules, "celery.schedules", schedules)
        if worker_type is None:
            monkeypatch.delenv("PYFLEET_CELERY_WORKER_TYPE", raising=False)
        else:
            monkeypatch.setenv("PYFLEET_CELERY_WORKER_TYPE", worker_type)
    namespace = {}
    exec(compile(source, "pyfleet_celeryconfig.py", "exec"), namespace)
    return namespace


def test_cron_fields_map_to_crontab_in_order_and_every_is_seconds(monkeypatch):
    schedule = {
        "nightly": {"task": "x.y", "cron": "5 3 1-7 */2 1-5", "args": [1, "a"], "kwargs": {"k": 2}},
        "tick": {"task": "x.t", "every": 10, "args": [], "kwargs": {}},
    }
    namespace = _load(render_config_module(plan(schedule=schedule)), monkeypatch)
    assert namespace["beat_schedule"] == {
        "nightly": {
            "task": "x.y",
            "schedule": (
                "crontab",
                {"minute": "5", "hour": "3", "day_of_month": "1-7", "month_of_year": "*/2", "day_of_week": "1-5"},
            ),
            "args": (1, "a"),
            "kwargs": {"k": 2},
        },
        "tick": {"task": "x.t", "schedule": 10.0, "args": (), "kwargs": {}},
    }


def test_a_schedule_of_intervals_only_needs_no_celery_import():
    source = render_config_module(plan())
    assert "crontab" not in source
    assert _load(source)["beat_schedule"] == {
        "tick": {"task": "sampleapp.tasks.tick", "schedule": 10.0, "args": (), "kwargs": {}}
    }


def test_redis_settings_bound_redelivery_and_connection_time():
    namespace = _load(render_config_module(plan()))
    assert namespace["broker_transport_options"] == {
        "visibility_timeout": 630,
        "unacked_restore_throttle": 1,
        "socket_connect_timeout": 5,
    }
    assert namespace["result_backend_transport_options"] == {"visibility_timeout": 630}
    assert namespace["redis_socket_connect_timeout"] == 5


def test_a_broker_restart_is_ridden_out_by_producers_and_workers():
    for kind in ("redis", "rabbitmq"):
        hostvars = {"broker1": {"pyfleet_private_address": "10.0.0.5"}}
        namespace = _load(render_config_module(plan(hostvars=hostvars, kind=kind)))
        policy = namespace["task_publish_retry_policy"]
        assert policy == {"max_retries": 10, "interval_start": 0, "interval_step": 0.5, "interval_max": 2}
        assert namespace["result_backend_always_retry"] is True
        assert namespace["result_backend_max_retries"] == 20
        assert namespace["broker_connection_retry_on_startup"] is True


def test_task_events_only_when_flower_watches():
    assert _load(render_config_module(plan()))["worker_send_task_events"] is False
    assert _load(render_config_module(plan()))["task_send_sent_event"] is False
    with_flower = dict(plan(), flower_host="worker1")
    namespace = _load(render_config_module(with_flower))
    assert namespace["worker_send_task_events"] is True and namespace["task_send_sent_event"] is True


def test_an_unknown_or_unset_worker_type_gets_the_safe_defaults(monkeypatch):
    catalogue = with_type(
        "io", pool="threads", queues=["io"], acks_late=False, reject_on_worker_lost=False, prefetch_multiplier=4
    )
    source = render_config_module(plan(catalogue=catalogue))
    for worker_type in (None, "nope"):
        namespace = _load(source, monkeypatch, worker_type)
        assert namespace["task_acks_late"] is True
        assert namespace["task_reject_on_worker_lost"] is True
        assert namespace["worker_prefetch_multiplier"] == 1
        assert namespace["task_track_started"] is False


def test_the_module_says_it_is_generated():
    namespace = _load(render_config_module(plan()))
    assert namespace["__doc__"].startswith("Celery settings generated by pyfleet from the inventory: do not edit")


def test_the_header_names_where_the_settings_come_from():
    doc = _load(render_config_module(plan()))["__doc__"]
    assert doc == (
        "Celery settings generated by pyfleet from the inventory: do not edit on the host.\n\n"
        "Sources: celery_worker_catalogue, celery_task_routes, celery_task_default_type,\n"
        "celery_beat_schedule. Broker and result backend come from the environment.\n"
    )


def test_a_plan_without_a_broker_kind_is_redis():
    old = {k: v for k, v in plan().items() if k != "broker_kind"}
    namespace = _load(render_config_module(old))
    assert namespace["broker_transport_options"]["visibility_timeout"] == 630
    assert namespace["redis_socket_connect_timeout"] == 5
