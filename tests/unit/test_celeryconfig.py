"""Unit tests for pyfleet.celeryconfig: the generated Celery settings module is Python with the plan's settings."""

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
