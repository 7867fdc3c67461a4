"""The fleet plan: one function for the playbooks and the commands (placement, upstreams, broker, errors)."""

import importlib.util
import re
from pathlib import Path

import jinja2
import pytest
import yaml

from pyfleet import plan
from pyfleet.errors import PyfleetError
from pyfleet.inventory import Inventory

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures" / "apps"

GROUPS = {
    "all": ["lb1", "web1", "web2", "web3", "api1", "broker1", "worker1"],
    "ungrouped": [],
    "loadbalancers": ["lb1"],
    "web": ["web1", "web2", "web3"],
    "api": ["api1", "web3"],
    "eu": ["web1", "api1"],
    "brokers": ["broker1"],
    "workers": ["worker1"],
}
HOSTVARS = {
    "lb1": {"ansible_host": "10.0.0.1"},
    "web1": {"ansible_host": "10.0.0.11", "pyfleet_private_address": "192.168.0.11"},
    "web2": {"ansible_host": "10.0.0.12", "nginx_http_port": 8080},
    "web3": {},
    "api1": {"pyfleet_private_address": "fd00::21", "nginx_http_port": "8081"},
    # web3 has no IP: the broker's firewall (which admits web hosts by IP) is off here.
    "broker1": {"ansible_host": "10.0.0.5", "pyfleet_firewall": False},
    "worker1": {"ansible_host": "10.0.0.31"},
}
CELERY_HOSTVARS = dict(
    HOSTVARS,
    worker1={"ansible_host": "10.0.0.31", "celery_worker_types": ["default"], "celery_beat": True},
    broker1={"ansible_host": "10.0.0.5", "redis_password": "s3cret-for-tests", "pyfleet_firewall": False},
)


def app(name="shop", **overrides):
    """An app spec as the inventory writes it (its source is in the fixtures dir)."""
    base = {
        "name": name,
        "source": {"path": "proj"},
        "kind": "wsgi",
        "entry": "proj.wsgi:app",
        "domains": [f"{name}.example.com"],
    }
    base.update(overrides)
    return base


def build(apps, hostvars=None, groups=None, **fleet):
    """plan.build with ``apps`` (and more fleet-wide variables) in the first host's vars."""
    hostvars = {h: dict(v) for h, v in (hostvars or HOSTVARS).items()}
    groups = groups or GROUPS
    hostvars[groups["all"][0]].update(pyfleet_apps=apps, **fleet)
    return plan.build(hostvars, groups, project_dir=str(FIXTURES))


def error(*args, **kwargs):
    with pytest.raises(PyfleetError) as caught:
        build(*args, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


CELERY = {"celery_worker_catalogue": {"default": {"queues": ["default"]}}}


# --- placement -------------------------------------------------------------------


def test_each_host_gets_the_apps_its_patterns_select():
    result = build([app(), app("api", hosts="api")])
    names = {h: [a["name"] for a in v["apps"]] for h, v in result["hosts"].items()}
    assert names["web1"] == ["shop"] and names["web3"] == ["shop", "api"] and names["api1"] == ["api"]
    assert names["lb1"] == [] and names["worker1"] == []
    assert result["placement"]["api"] == {"web": ["web3", "api1"], "workers": []}


def test_celery_hosts_get_the_release_without_serving_the_app():
    shop = app(celery={"app": "proj.tasks:app", "hosts": "workers"})
    result = build([shop], CELERY_HOSTVARS, **CELERY)
    on_worker = result["hosts"]["worker1"]
    assert on_worker["apps"] == [] and [(a["name"], a["web"]) for a in on_worker["deploy_apps"]] == [("shop", False)]
    assert on_worker["worker_app"] == "shop"
    assert [(a["name"], a["web"]) for a in result["hosts"]["web1"]["deploy_apps"]] == [("shop", True)]
    assert result["hosts"]["web1"]["worker_app"] is None
    assert result["placement"]["shop"]["workers"] == ["worker1"]


def test_a_glob_pattern_matches_a_group_for_the_web_hosts_and_the_upstream_alike():
    # The old matchers disagreed here: the web hosts ran the app, the load balancer had no server.
    groups = dict(GROUPS, webservers=["srv1"], all=GROUPS["all"] + ["srv1"])
    hostvars = dict(HOSTVARS, srv1={"ansible_host": "10.0.0.40"})
    result = build([app(hosts="webs*")], hostvars, groups)
    assert [a["name"] for a in result["hosts"]["srv1"]["apps"]] == ["shop"]
    assert [s["host"] for s in result["upstreams"][0]["servers"]] == ["srv1"]


def test_a_pattern_matching_no_host_is_refused_with_the_fix():
    assert error([app(hosts="webz")]) == (
        "pyfleet_apps[0].hosts (app shop): 'webz' matches no inventory host; "
        "add hosts to that group or set hosts to a group that has some"
    )


def test_a_worker_only_inventory_needs_no_web_host():
    groups = {"all": ["broker1", "worker1"], "brokers": ["broker1"], "workers": ["worker1"]}
    result = build(celery_app(), CELERY_HOSTVARS, groups, **CELERY)
    assert result["placement"]["shop"] == {"web": [], "workers": ["worker1"]}
    assert result["upstreams"][0]["servers"] == []
    # With load balancers, its domains would have no server: refused.
    assert "matches no inventory host" in error(
        celery_app(), CELERY_HOSTVARS, dict(groups, loadbalancers=["lb1"]), **CELERY
    )


def test_an_inventory_without_hosts_is_refused():
    with pytest.raises(PyfleetError, match="the inventory has no hosts"):
        plan.build({}, {"all": []})


# --- upstreams and addresses --------------------------------------------------------


def endpoints(result, index=0):
    return [(s["host"], s["endpoint"]) for s in result["upstreams"][index]["servers"]]


def test_one_upstream_per_app_over_its_web_hosts():
    (shop,) = build([app()])["upstreams"]
    assert (shop["name"], shop["app"], shop["domains"], shop["health_path"]) == (
        "pyfleet_shop",
        "shop",
        ["shop.example.com"],
        "/healthz",
    )


def test_address_prefers_private_address_then_ansible_host_then_name():
    assert endpoints(build([app()])) == [("web1", "192.168.0.11:80"), ("web2", "10.0.0.12:8080"), ("web3", "web3:80")]


def test_ipv6_address_is_bracketed_and_a_port_string_accepted():
    assert endpoints(build([app(hosts="api1")])) == [("api1", "[fd00::21]:8081")]


def test_dash_in_app_name_becomes_underscore_in_upstream_name():
    assert build([app("my-shop")])["upstreams"][0]["name"] == "pyfleet_my_shop"


@pytest.mark.parametrize("port", [0, 70000, "http", True])
def test_bad_port_is_refused(port):
    hostvars = dict(HOSTVARS, web3={"nginx_http_port": port})
    assert re.fullmatch(
        r"nginx_http_port on web3: .* is not a TCP port; set nginx_http_port: 80", error([app(hosts="web3")], hostvars)
    )


def test_bad_address_is_refused():
    hostvars = dict(HOSTVARS, web3={"pyfleet_private_address": "10.0.0.1; evil"})
    assert error([app(hosts="web3")], hostvars) == (
        "pyfleet_private_address on web3: '10.0.0.1; evil' is not an IP address or host name; "
        "set pyfleet_private_address of web3 to its private IP"
    )


def test_a_public_private_address_is_refused():
    hostvars = dict(HOSTVARS, web2={"pyfleet_private_address": "8.8.8.8"})
    assert error([app()], hostvars) == (
        "pyfleet_private_address on web2: '8.8.8.8' is a public address, and pyfleet's hosts reach each other "
        "on their private network; set pyfleet_private_address of web2 to its private IP"
    )


def test_web_hosts_trust_the_load_balancers_addresses():
    assert build([app()])["loadbalancers"] == [{"host": "lb1", "address": "10.0.0.1"}]


# --- broker -----------------------------------------------------------------------------


def celery_app():
    return [app(celery={"app": "proj.tasks:app", "hosts": "workers"})]


def test_the_broker_kind_and_the_producers_ip_come_from_the_plan():
    result = build(celery_app(), CELERY_HOSTVARS, **CELERY)
    assert result["broker_kind"] == "redis" and result["celery_apps"] == ["shop"]
    assert result["producer_ip_allow"] == {"shop": ["10.0.0.5"]}


def test_a_missing_redis_password_is_refused_before_any_host():
    assert error(celery_app(), dict(CELERY_HOSTVARS, broker1={"ansible_host": "10.0.0.5"}), **CELERY) == (
        "redis_password: not set for broker broker1; set it from ansible-vault (redis_password: ...)"
    )


def test_a_short_rabbitmq_password_is_refused():
    hostvars = dict(
        CELERY_HOSTVARS,
        broker1={
            "ansible_host": "10.0.0.5",
            "pyfleet_broker_kind": "rabbitmq",
            "rabbitmq_passwords": {"shop": "short"},
        },
    )
    assert error(celery_app(), hostvars, **CELERY).startswith("rabbitmq_passwords.shop on broker1: shorter than 16")


def test_an_unknown_broker_kind_is_refused_even_without_celery():
    hostvars = dict(HOSTVARS, broker1={"pyfleet_broker_kind": "redsi"})
    assert error([app()], hostvars) == (
        "pyfleet_broker_kind: 'redsi' is not one of redis, rabbitmq; did you mean redis? "
        "set pyfleet_broker_kind: redis (the default) or rabbitmq"
    )


# --- the controller and the playbooks use the same function ----------------------------


def test_the_controller_templates_inventory_values_as_the_play_would():
    hostvars = {h: dict(v) for h, v in HOSTVARS.items()}
    hostvars["web1"] = {"ansible_host": "10.0.0.11", "pyfleet_private_address": "{{ ansible_host }}"}
    hostvars["lb1"]["pyfleet_apps"] = [app()]
    inv = Inventory(path=FIXTURES, hosts=hostvars, groups=GROUPS)
    result = plan.from_inventory(inv, project_dir=str(FIXTURES))
    assert endpoints(result)[0] == ("web1", "10.0.0.11:80")


def _filter():
    path = ROOT / "plugins" / "filter" / "pyfleet_plan.py"
    module_spec = importlib.util.spec_from_file_location("pyfleet_plan_filter", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.FilterModule().filters()["pyfleet_plan"]


def test_the_filter_returns_the_same_plan_and_the_same_line():
    hostvars = {h: dict(v) for h, v in HOSTVARS.items()}
    hostvars["lb1"]["pyfleet_apps"] = [app()]
    assert _filter()(hostvars, GROUPS, project_dir=str(FIXTURES)) == plan.build(hostvars, GROUPS, str(FIXTURES))
    hostvars["lb1"]["pyfleet_apps"] = [app(hosts="webz")]
    assert _filter()(hostvars, GROUPS, project_dir=str(FIXTURES)) == {"error": error([app(hosts="webz")])}


# --- the load balancer's upstreams.conf: drained hosts and the drain edit agree ---------

ROLE = ROOT / "roles" / "loadbalancer"


def _render(drained, keepalive=32, fallback=True):
    """roles/loadbalancer's upstreams.conf for two apps, rendered as Ansible does (trim_blocks)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROLE / "templates")), trim_blocks=True)
    env.filters["comment"] = lambda text: f"#\n# {text}\n#"
    return env.get_template("etc/nginx/pyfleet/upstreams.conf.j2").render(
        ansible_managed="Ansible managed",
        loadbalancer_upstreams=build([app(), app("api", hosts="api")])["upstreams"],
        __loadbalancer_drained=drained,
        loadbalancer_upstream_max_fails=1,
        loadbalancer_upstream_fail_timeout="5s",
        loadbalancer_upstream_keepalive=keepalive,
        loadbalancer_upstream_fallback=fallback,
    )


def _drain_edit(text, host, state):
    """What tasks/drain.yml's replace task does to upstreams.conf (Python re, MULTILINE)."""
    role_vars = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    env = jinja2.Environment()
    env.filters["regex_escape"] = re.escape
    regexp = env.from_string(role_vars["__loadbalancer_server_line_regexp"]).render(loadbalancer_drain_host=host)
    key = "__loadbalancer_server_line_down" if state == "drained" else "__loadbalancer_server_line_up"
    return re.compile(regexp, re.MULTILINE).sub(role_vars[key], text)


@pytest.mark.parametrize("host", ["web1", "web3", "api1"])
def test_drain_edit_matches_a_render_with_the_host_drained(host):
    assert _drain_edit(_render([]), host, "drained") == _render([host])


def test_drain_edit_is_idempotent_and_reversible():
    drained = _drain_edit(_render([]), "web3", "drained")
    assert _drain_edit(drained, "web3", "drained") == drained
    assert _drain_edit(drained, "web3", "active") == _render([])


def test_drain_edit_leaves_hosts_with_a_longer_name_alone():
    text = (
        "    server 10.0.0.1:80 max_fails=1 fail_timeout=5s; # host web1\n"
        "    server 10.0.0.2:80 max_fails=1 fail_timeout=5s; # host web10"
    )
    edited = _drain_edit(text, "web1", "drained")
    assert "fail_timeout=5s down; # host web1\n" in edited and "fail_timeout=5s; # host web10" in edited


def test_rendered_upstream_has_keepalive_down_marker_and_each_fallback_once():
    text = _render(["web2"])
    assert "upstream pyfleet_shop {" in text
    assert "    server 10.0.0.12:8080 max_fails=1 fail_timeout=5s down; # host web2" in text
    assert text.count("keepalive 32;") == 2
    assert text.count("    server 10.0.0.12:8080 backup; # fallback when every server above is down or drained") == 1


def test_fallback_and_keepalive_can_be_turned_off():
    text = _render([], keepalive=0, fallback=False)
    assert " backup;" not in text and "keepalive " not in text
