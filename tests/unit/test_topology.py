"""fab topology: which host runs what, from the inventory alone."""

import xml.etree.ElementTree as ET

import pytest

from pyfleet import audit, plan as fleet_plan, topology
from pyfleet.errors import PyfleetError
from pyfleet.inventory import Inventory

APPS = [
    {
        "name": "shop",
        "source": {"path": "examples/sampleapp"},
        "kind": "wsgi",
        "entry": "sampleapp.wsgi:app",
        "domains": ["shop.test"],
        "hosts": "web",
    }
]


def make_inventory(extra_vars=None, control=None):
    groups = {
        "all": ["lb1", "web1", "web2", "mq1"],
        "loadbalancers": ["lb1"],
        "web": ["web1", "web2"],
        "brokers": ["mq1"],
        "workers": [],
    }
    common = {"pyfleet_apps": APPS, **(extra_vars or {})}
    if control:
        common["pyfleet_control_host"] = control
    hosts = {h: dict(common, ansible_host=f"10.0.0.{i + 2}") for i, h in enumerate(groups["all"])}
    return Inventory(path=__import__("pathlib").Path("inventory/test"), hosts=hosts, groups=groups)


def test_rows_name_every_host_and_what_it_runs():
    inv = make_inventory()
    rows = topology.rows(inv, fleet_plan.from_inventory(inv))
    assert [r[0] for r in rows] == ["lb1", "web1", "web2", "mq1"]
    by_host = {r[0]: r[3] for r in rows}
    assert "load balancer" in by_host["lb1"]
    assert "shop (wsgi, gunicorn)" in by_host["web1"] and by_host["web1"].startswith("nginx")
    assert by_host["mq1"] == "redis broker"


def test_broker_row_names_the_broker_kind():
    inv = make_inventory({"pyfleet_broker_kind": "rabbitmq"})
    by_host = {r[0]: r[3] for r in topology.rows(inv, fleet_plan.from_inventory(inv))}
    assert by_host["mq1"] == "rabbitmq broker"


def test_svg_is_well_formed_and_names_every_host():
    inv = make_inventory()
    picture = topology.svg(inv, fleet_plan.from_inventory(inv))
    root = ET.fromstring(picture)
    texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {"lb1", "web1", "web2", "mq1"} <= texts
    assert len(list(root.iter("{http://www.w3.org/2000/svg}line"))) == 2 + 2  # lb->web x2, web->broker x2


def test_bad_app_spec_is_refused_before_any_host_is_contacted():
    inv = make_inventory({"pyfleet_apps": [dict(APPS[0], kind="cgi")]})
    with pytest.raises(PyfleetError, match=r"pyfleet_apps\[0\]\.kind"):
        fleet_plan.from_inventory(inv)


def test_control_host_defaults_to_first_load_balancer_and_can_be_chosen():
    assert audit.control_host(make_inventory()) == "lb1"
    assert audit.control_host(make_inventory(control="web2")) == "web2"
    with pytest.raises(PyfleetError, match="pyfleet_control_host: 'nope' is not an inventory host"):
        audit.control_host(make_inventory(control="nope"))


def test_lock_holder_is_described_with_owner_age_and_fix():
    line = audit.describe_holder(
        "shop", '{"owner": "ann@ops", "action": "deploy", "since": "2026-01-01T00:00:00Z", "epoch": 0}'
    )
    assert line.startswith("app shop is locked by ann@ops (deploy) since 2026-01-01T00:00:00Z")
    assert line.endswith("fab lock --clear --app shop")
