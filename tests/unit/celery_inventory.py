"""The lab's Celery inventory and the plan_workers helpers the Celery unit tests share."""

import copy

import pytest

from pyfleet.apps import normalize_apps
from pyfleet.errors import PyfleetError
from pyfleet.workers import plan_workers

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
