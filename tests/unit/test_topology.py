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


# --- services, rows and the picture's layout from a given plan -------------------------------


def small_fleet(beat=True, flower=True):
    """lb1, web1 (app shop), web2 (no app), mq1 (redis), w1 (a worker, beat, flower), ctl (in no tier)."""
    groups = {
        "all": ["lb1", "web1", "web2", "mq1", "w1", "ctl"],
        "loadbalancers": ["lb1"],
        "web": ["web1", "web2"],
        "brokers": ["mq1"],
        "workers": ["w1"],
    }
    hosts = {h: {} for h in groups["all"]}
    hosts["lb1"]["ansible_host"] = "10.0.0.1"
    inv = Inventory(path=__import__("pathlib").Path("inventory/small.yml"), hosts=hosts, groups=groups)
    the_plan = {
        "apps": [{"name": "shop", "kind": "wsgi", "server": "gunicorn"}],
        "placement": {"shop": {"web": ["web1"]}},
        "celery": {
            "enabled": True,
            "hosts": {"w1": [{"type": "default", "queues": ["default", "io"]}]},
            "beat_host": "w1" if beat else None,
            "flower_host": "w1" if flower else None,
        },
    }
    return inv, the_plan


def test_services_of_each_host():
    assert topology.services(*small_fleet()) == {
        "lb1": ["nginx load balancer (TLS)"],
        "web1": ["nginx", "shop (wsgi, gunicorn)"],
        "web2": [],
        "mq1": ["redis broker"],
        "w1": ["worker default [default,io]", "celery beat", "flower"],
        "ctl": [],
    }
    assert topology.services(*small_fleet(beat=False, flower=False))["w1"] == ["worker default [default,io]"]
    inv, the_plan = small_fleet()
    the_plan["celery"] = {"enabled": False, "hosts": {"w1": [{"type": "x", "queues": []}]}, "beat_host": "w1"}
    assert topology.services(inv, the_plan)["w1"] == []


def test_rows_give_address_groups_and_services_or_a_dash():
    rows = topology.rows(*small_fleet())
    assert rows[0] == ["lb1", "10.0.0.1", "loadbalancers", "nginx load balancer (TLS)"]
    assert rows[2] == ["web2", "-", "web", "-"]
    assert rows[4] == ["w1", "-", "workers", "worker default [default,io]; celery beat; flower"]


def test_layout_puts_a_column_per_tier_a_box_per_host_and_arrows_for_traffic():
    picture = topology.layout(*small_fleet())
    assert picture["title"] == "small"
    assert (picture["margin"], picture["line_height"]) == (70, 16)
    columns = [(c["label"], c["x"], c["bottom"], [b["host"] for b in c["boxes"]]) for c in picture["columns"]]
    assert columns == [
        ("load balancer", 70, 134, ["lb1"]),
        ("web", 370, 220, ["web1", "web2"]),
        ("broker", 670, 134, ["mq1"]),
        ("workers", 970, 166, ["w1"]),
        ("other", 1270, 134, ["ctl"]),
    ]
    web2 = picture["columns"][1]["boxes"][1]
    assert web2 == {"host": "web2", "x": 370, "y": 150, "width": 230, "height": 50, "lines": ["-"]}
    assert picture["columns"][3]["boxes"][0]["height"] == 34 + 16 * 3
    assert picture["arrows"] == [
        {"x1": 300, "y1": 89.0, "x2": 370, "y2": 97.0},
        {"x1": 300, "y1": 89.0, "x2": 370, "y2": 175.0},
        {"x1": 600, "y1": 97.0, "x2": 670, "y2": 89.0},
        {"x1": 600, "y1": 175.0, "x2": 670, "y2": 89.0},
        {"x1": 970, "y1": 105.0, "x2": 900, "y2": 89.0},
    ]
    assert (picture["width"], picture["height"]) == (1570, 236)


def test_layout_of_an_empty_inventory_has_the_least_height():
    inv = Inventory(path=__import__("pathlib").Path("inventory/empty"), hosts={}, groups={})
    picture = topology.layout(inv, {"apps": [], "placement": {}, "celery": {}})
    assert [c["label"] for c in picture["columns"]] == ["load balancer", "web", "broker", "workers"]
    assert (picture["width"], picture["height"]) == (4 * 300 + 70, 140)


def test_a_host_in_two_tiers_lists_everything_it_runs_and_all_its_groups():
    inv, the_plan = small_fleet()
    inv.groups["workers"].append("mq1")
    the_plan["celery"]["hosts"]["mq1"] = [{"type": "io", "queues": ["io"]}]
    assert topology.services(inv, the_plan)["mq1"] == ["redis broker", "worker io [io]"]
    assert topology.rows(inv, the_plan)[3] == ["mq1", "-", "brokers,workers", "redis broker; worker io [io]"]


def test_layout_without_brokers_draws_only_the_load_balancer_arrows():
    inv, the_plan = small_fleet()
    del inv.groups["brokers"]
    inv.groups["all"].remove("mq1")
    del inv.hosts["mq1"]
    assert len(topology.layout(inv, the_plan)["arrows"]) == 2


def test_svg_escapes_what_it_prints():
    inv, the_plan = small_fleet()
    inv.path = __import__("pathlib").Path("inventory/r&d <eu>")
    root = ET.fromstring(topology.svg(inv, the_plan))
    assert "pyfleet topology: r&d <eu>" in {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
