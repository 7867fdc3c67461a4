"""Unit tests for the pyfleet_upstreams filter: hosts per app, addresses, ports, drained hosts, errors."""

import importlib.util
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "pyfleet_upstreams", ROOT / "plugins" / "filter" / "pyfleet_upstreams.py"
)
plugin = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(plugin)
upstreams = plugin.pyfleet_upstreams
match_hosts = plugin.match_hosts

GROUPS = {
    "all": ["lb1", "web1", "web2", "web3", "api1"],
    "ungrouped": [],
    "loadbalancers": ["lb1"],
    "web": ["web1", "web2", "web3"],
    "api": ["api1", "web3"],
    "eu": ["web1", "api1"],
}
HOSTVARS = {
    "lb1": {"ansible_host": "10.0.0.1"},
    "web1": {"ansible_host": "10.0.0.11", "pyfleet_private_address": "192.168.0.11"},
    "web2": {"ansible_host": "10.0.0.12", "nginx_http_port": 8080},
    "web3": {},
    "api1": {"pyfleet_private_address": "fd00::21", "nginx_http_port": "8081"},
}


def app(name="shop", **overrides):
    """A normalised app as the pyfleet_apps filter returns it (only the keys used here)."""
    base = {
        "name": name,
        "domains": [f"{name}.example.com"],
        "hosts": "web",
        "health_path": "/healthz",
    }
    base.update(overrides)
    return base


def servers(result, index=0):
    """(host, endpoint, down) of one upstream."""
    return [(s["host"], s["endpoint"], s["down"]) for s in result[index]["servers"]]


def test_one_upstream_per_app_over_the_group():
    (shop,) = upstreams([app()], GROUPS, HOSTVARS)
    assert shop["name"] == "pyfleet_shop"
    assert shop["app"] == "shop"
    assert shop["domains"] == ["shop.example.com"]
    assert shop["health_path"] == "/healthz"
    assert [s["host"] for s in shop["servers"]] == ["web1", "web2", "web3"]


def test_address_prefers_private_address_then_ansible_host_then_name():
    result = upstreams([app()], GROUPS, HOSTVARS)
    assert servers(result) == [
        ("web1", "192.168.0.11:80", False),
        ("web2", "10.0.0.12:8080", False),
        ("web3", "web3:80", False),
    ]


def test_ipv6_address_is_bracketed_and_port_string_accepted():
    result = upstreams([app(hosts="api1")], GROUPS, HOSTVARS)
    assert servers(result) == [("api1", "[fd00::21]:8081", False)]


def test_default_port_is_used_without_nginx_http_port():
    result = upstreams([app(hosts="web3")], GROUPS, HOSTVARS, default_port=8000)
    assert servers(result) == [("web3", "web3:8000", False)]


def test_drained_hosts_are_down_in_every_upstream():
    result = upstreams(
        [app(), app("api", hosts="api")], GROUPS, HOSTVARS, drained=["web3"]
    )
    assert [s["down"] for s in result[0]["servers"]] == [False, False, True]
    assert [(s["host"], s["down"]) for s in result[1]["servers"]] == [
        ("web3", True),
        ("api1", False),
    ]


def test_fallback_lists_each_endpoint_once_drained_or_not():
    hostvars = dict(
        HOSTVARS, web3={"pyfleet_private_address": "192.168.0.11"}
    )  # same endpoint as web1
    (shop,) = upstreams([app()], GROUPS, hostvars, drained=["web1"])
    assert shop["fallback"] == ["192.168.0.11:80", "10.0.0.12:8080"]


def test_fallback_can_be_turned_off():
    assert upstreams([app()], GROUPS, HOSTVARS, fallback=False)[0]["fallback"] == []


def test_dash_in_app_name_becomes_underscore_in_upstream_name():
    assert upstreams([app("my-shop")], GROUPS, HOSTVARS)[0]["name"] == "pyfleet_my_shop"


def test_no_apps_no_upstreams():
    assert upstreams([], GROUPS, HOSTVARS) == []


def test_hosts_defaults_to_web():
    spec = app()
    del spec["hosts"]
    assert [s["host"] for s in upstreams([spec], GROUPS, HOSTVARS)[0]["servers"]] == [
        "web1",
        "web2",
        "web3",
    ]


@pytest.mark.parametrize(
    "pattern, hosts",
    [
        ("web", ["web1", "web2", "web3"]),
        ("web2", ["web2"]),
        ("web:api", ["web1", "web2", "web3", "api1"]),
        ("web,api", ["web1", "web2", "web3", "api1"]),
        ("web:&eu", ["web1"]),
        ("web:!web2", ["web1", "web3"]),
        ("web*", ["web1", "web2", "web3"]),
        ("all:!loadbalancers", ["web1", "web2", "web3", "api1"]),
        ("nosuchgroup", []),
    ],
)
def test_host_patterns(pattern, hosts):
    assert match_hosts(pattern, GROUPS) == hosts


def test_pattern_matching_nobody_fails_with_app_and_fix():
    with pytest.raises(AnsibleFilterError) as caught:
        upstreams([app(hosts="webz")], GROUPS, HOSTVARS)
    message = str(caught.value)
    assert message.startswith(
        "pyfleet_upstreams (app shop): hosts 'webz' matches no inventory host"
    )
    assert "\n" not in message


@pytest.mark.parametrize("port", [0, 70000, "http", True])
def test_bad_port_fails(port):
    hostvars = dict(HOSTVARS, web3={"nginx_http_port": port})
    with pytest.raises(
        AnsibleFilterError, match=r"host web3: nginx_http_port .* is not a port number"
    ):
        upstreams([app(hosts="web3")], GROUPS, hostvars)


def test_bad_address_fails():
    hostvars = dict(HOSTVARS, web3={"pyfleet_private_address": "10.0.0.1; evil"})
    with pytest.raises(
        AnsibleFilterError, match=r"host web3: .* is not an IP address or host name"
    ):
        upstreams([app(hosts="web3")], GROUPS, hostvars)


def test_unnormalised_app_fails():
    with pytest.raises(AnsibleFilterError, match=r"element #0 is not a normalised app"):
        upstreams([{"name": "shop"}], GROUPS, HOSTVARS)


def test_drained_must_be_a_list():
    with pytest.raises(AnsibleFilterError, match="drained must be a list"):
        upstreams([app()], GROUPS, HOSTVARS, drained="web1")


def test_filter_is_registered():
    assert plugin.FilterModule().filters() == {"pyfleet_upstreams": upstreams}


# ---- the drain edit agrees with the template -------------------------------------------

ROLE = ROOT / "roles" / "loadbalancer"


def _render(drained, keepalive=32):
    """roles/loadbalancer's upstreams.conf for two apps, rendered as Ansible does (trim_blocks)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(ROLE / "templates")), trim_blocks=True
    )
    env.filters["comment"] = lambda text: f"#\n# {text}\n#"
    result = upstreams(
        [app(), app("api", hosts="api")], GROUPS, HOSTVARS, drained=drained
    )
    return env.get_template("etc/nginx/pyfleet/upstreams.conf.j2").render(
        ansible_managed="Ansible managed",
        __loadbalancer_upstreams=result,
        loadbalancer_upstream_max_fails=1,
        loadbalancer_upstream_fail_timeout="5s",
        loadbalancer_upstream_keepalive=keepalive,
    )


def _drain_edit(text, host, state):
    """What tasks/drain.yml's replace task does to upstreams.conf (Python re, MULTILINE)."""
    import re

    import jinja2
    import yaml

    role_vars = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    env = jinja2.Environment()
    env.filters["regex_escape"] = re.escape
    regexp = env.from_string(role_vars["__loadbalancer_server_line_regexp"]).render(
        loadbalancer_drain_host=host
    )
    replacement = role_vars[
        (
            "__loadbalancer_server_line_down"
            if state == "drained"
            else "__loadbalancer_server_line_up"
        )
    ]
    return re.compile(regexp, re.MULTILINE).sub(replacement, text)


@pytest.mark.parametrize("host", ["web1", "web3", "api1"])
def test_drain_edit_matches_a_render_with_the_host_drained(host):
    assert _drain_edit(_render([]), host, "drained") == _render([host])


def test_drain_edit_is_idempotent_and_reversible():
    drained = _drain_edit(_render([]), "web3", "drained")
    assert _drain_edit(drained, "web3", "drained") == drained
    assert _drain_edit(drained, "web3", "active") == _render([])


def test_drain_edit_leaves_hosts_with_a_longer_name_alone():
    groups = dict(GROUPS, web=["web1", "web10"], all=GROUPS["all"] + ["web10"])
    hostvars = dict(HOSTVARS, web10={})
    text = "\n".join(
        f"    server {s['endpoint']} max_fails=1 fail_timeout=5s; # host {s['host']}"
        for s in upstreams([app()], groups, hostvars)[0]["servers"]
    )
    edited = _drain_edit(text, "web1", "drained")
    assert "fail_timeout=5s down; # host web1" in edited
    assert "fail_timeout=5s; # host web10" in edited


def test_rendered_upstream_has_keepalive_and_down_marker():
    text = _render(["web2"])
    assert "upstream pyfleet_shop {" in text
    assert (
        "    server 10.0.0.12:8080 max_fails=1 fail_timeout=5s down; # host web2"
        in text
    )
    assert text.count("keepalive 32;") == 2
    assert (
        "    server 10.0.0.12:8080 backup; # fallback when every server above is down or drained"
        in text
    )


def test_no_upstream_keepalive_by_default():
    """The role's default: no idle connection for a web host's nginx reload to close under a POST."""
    import yaml

    default = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())["loadbalancer_upstream_keepalive"]
    assert default == 0
    assert "keepalive" not in _render([], keepalive=default).replace("# ", "")
