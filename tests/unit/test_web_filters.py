"""Tests for the web tier's filters: which apps run on which host."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("pyfleet_web", ROOT / "plugins" / "filter" / "pyfleet_web.py")
web = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(web)

GROUPS = {
    "all": ["lb1", "web1", "web2", "api1", "worker1"],
    "web": ["web1", "web2"],
    "api": ["api1"],
    "loadbalancers": ["lb1"],
    "ungrouped": [],
}


@pytest.mark.parametrize("pattern, hosts", [
    ("web", {"web1", "web2"}),
    ("web1", {"web1"}),
    ("web:api", {"web1", "web2", "api1"}),
    ("web,api", {"web1", "web2", "api1"}),
    ("web:!web2", {"web1"}),
    ("all:&web", {"web1", "web2"}),
    ("web*", {"web1", "web2"}),
    ("a*", {"api1", "web1", "web2", "lb1", "worker1"}),  # group "all" matches too
    ("nothing", set()),
])
def test_pattern_hosts(pattern, hosts):
    assert web.pattern_hosts(pattern, GROUPS) == hosts


def test_host_apps_keeps_the_apps_of_the_host():
    apps = [{"name": "site", "hosts": "web"}, {"name": "api", "hosts": "api:web2"}, {"name": "default"}]
    assert [a["name"] for a in web.pyfleet_host_apps(apps, "web2", GROUPS)] == ["site", "api", "default"]
    assert [a["name"] for a in web.pyfleet_host_apps(apps, "api1", GROUPS)] == ["api"]
    assert web.pyfleet_host_apps(apps, "lb1", GROUPS) == []


def test_host_apps_refuses_a_non_list():
    with pytest.raises(Exception, match="expected the list"):
        web.pyfleet_host_apps({"name": "x"}, "web1", GROUPS)


def test_host_apps_with_celery_adds_the_worker_hosts_without_web():
    apps = [
        {"name": "site", "hosts": "web", "celery": {"app": "site.tasks:app", "hosts": "worker1"}},
        {"name": "api", "hosts": "api", "celery": None},
    ]
    assert web.pyfleet_host_apps(apps, "worker1", {**GROUPS, "workers": ["worker1"]}) == []
    on_worker = web.pyfleet_host_apps(apps, "worker1", GROUPS, celery=True)
    assert [(a["name"], a["web"]) for a in on_worker] == [("site", False)]
    on_web = web.pyfleet_host_apps(apps, "web1", GROUPS, celery=True)
    assert [(a["name"], a["web"]) for a in on_web] == [("site", True)]
    assert [(a["name"], a["web"]) for a in web.pyfleet_host_apps(apps, "api1", GROUPS, celery=True)] == [("api", True)]
