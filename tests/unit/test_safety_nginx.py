"""The nginx configurations as the roles write them: keepalive, retries, timeouts, headers.

The web host's nginx (roles/nginx) and the load balancer's (roles/loadbalancer) are
rendered with Ansible's templating and pyfleet's filters (tests/unit/rendering.py),
parsed into blocks, and each server and location is checked for the settings that
keep requests safe: which requests may be retried, how long nginx waits, which
headers a client may not forge, and which it always gets.
"""

import pytest
from rendering import find, fleet_plan, nginx, render, role_value, values

PLAN = fleet_plan()
SHOP = next(a for a in PLAN["hosts"]["web1"]["apps"] if a["name"] == "shop")

SECURITY_HEADERS = [
    'Strict-Transport-Security "max-age=31536000" always',
    'X-Content-Type-Options "nosniff" always',
    'X-Frame-Options "DENY" always',
    'Referrer-Policy "strict-origin-when-cross-origin" always',
]
HIDDEN = ["Strict-Transport-Security", "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy"]


def headers(block):
    return dict(v.split(" ", 1) for v in values(block, "proxy_set_header"))


# --- the web host's nginx (roles/nginx) ------------------------------------------------------


def app_conf(**variables):
    return nginx(render("nginx", "etc/nginx/conf.d/pyfleet-app.conf.j2", "web1", item=SHOP, **variables))


def test_web_upstream_is_the_live_release_with_keepalive_shorter_than_the_apps():
    (upstream,) = find(app_conf(), "upstream")
    assert upstream[0] == ["upstream", "pyfleet_shop"]
    assert values(upstream[1], "include") == ["/etc/nginx/pyfleet/shop.upstream.conf"]
    assert values(upstream[1], "keepalive") == ["32"]
    # nginx closes an idle connection before gunicorn does (--keep-alive 75): never
    # a request sent on a connection the app is closing.
    (timeout,) = values(upstream[1], "keepalive_timeout")
    assert timeout == "60s"
    assert int(timeout[:-1]) < 75


def test_web_location_keeps_connections_alive_and_retries_only_what_is_safe():
    tree = app_conf()
    (server,) = find(tree, "server")
    assert values(server[1], "listen") == ["80"]
    assert values(server[1], "server_name") == ["s.test www.s.test"]
    assert values(server[1], "client_max_body_size") == ["10m"]
    (location,) = find(server[1], "location")
    block = location[1]
    assert location[0] == ["location", "/"]
    assert values(block, "proxy_pass") == ["http://pyfleet_shop"]
    assert values(block, "proxy_http_version") == ["1.1"]
    # Retries: errors, timeouts, 502 and 503, never a non-idempotent request once sent.
    (next_upstream,) = values(block, "proxy_next_upstream")
    assert next_upstream.split() == ["error", "timeout", "http_502", "http_503"]
    assert values(block, "proxy_next_upstream_tries") == ["2"]
    assert values(block, "proxy_next_upstream_timeout") == ["10s"]
    assert values(block, "proxy_connect_timeout") == ["5s"]
    assert values(block, "proxy_read_timeout") == ["60s"]
    assert values(block, "proxy_redirect") == ["off"]
    assert values(block, "proxy_buffering") == ["on"]


def test_web_location_sets_the_client_headers_and_drops_forgeable_ones():
    (location,) = find(app_conf(), "server", "location")
    found = headers(location[1])
    assert found["Connection"] == '""'  # keepalive: no "Connection: close" to the app
    assert found["Host"] == "$host"
    assert found["X-Real-IP"] == "$remote_addr"
    assert found["X-Forwarded-For"] == "$remote_addr"  # not $proxy_add_x_forwarded_for: no forged chain
    assert found["X-Forwarded-Proto"] == "$pyfleet_forwarded_proto"
    assert found["X-Forwarded-Host"] == "$pyfleet_forwarded_host"
    assert found["X-Forwarded-Port"] == "$pyfleet_forwarded_port"
    for forgeable in ("X-Forwarded-Protocol", "X-Forwarded-Ssl", "X-Url-Scheme", "Forwarded"):
        assert found[forgeable] == '""', forgeable
    assert len(values(location[1], "proxy_set_header")) == len(found) == 11  # each once


def test_web_timeouts_follow_the_settings():
    (location,) = find(app_conf(nginx_proxy_read_timeout=120, nginx_proxy_connect_timeout=3), "server", "location")
    assert values(location[1], "proxy_read_timeout") == ["120s"]
    assert values(location[1], "proxy_connect_timeout") == ["3s"]


def test_web_static_files_come_from_the_current_release():
    app = dict(SHOP, static_dir="static")
    tree = nginx(render("nginx", "etc/nginx/conf.d/pyfleet-app.conf.j2", "web1", item=app))
    locations = {tuple(n[0]): n[1] for n in find(tree, "server", "location")}
    static = locations[("location", "/static/")]
    assert values(static, "alias") == ["/srv/shop/current/static/"]
    assert values(static, "expires") == ["7d"]
    assert values(static, "access_log") == ["off"]


def test_web_ipv6_listen():
    (server,) = find(app_conf(nginx_listen_ipv6=True), "server")
    assert values(server[1], "listen") == ["80", "[::]:80"]


def global_conf(**variables):
    return nginx(render("nginx", "etc/nginx/conf.d/pyfleet.conf.j2", "web1", **variables))


def test_web_trusts_forwarded_headers_from_the_load_balancers_only():
    tree = global_conf()
    assert values(tree, "set_real_ip_from") == ["10.0.0.1"]
    assert values(tree, "real_ip_header") == ["X-Forwarded-For"]
    assert values(tree, "real_ip_recursive") == ["on"]
    (geo,) = find(tree, "geo")
    assert geo[0] == ["geo", "$realip_remote_addr", "$pyfleet_from_loadbalancer"]
    assert geo[1] == [(["default", "0"], None), (["10.0.0.1", "1"], None)]
    maps = {n[0][2]: n for n in find(tree, "map")}
    for name, header, default in (
        ("$pyfleet_forwarded_proto", "proto", "$scheme"),
        ("$pyfleet_forwarded_host", "host", "$host"),
        ("$pyfleet_forwarded_port", "port", "$server_port"),
    ):
        words, block = maps[name]
        assert words[1] == f'"$pyfleet_from_loadbalancer:$http_x_forwarded_{header}"'
        assert values(block, "default") == [default]
        # Only a request from a load balancer (1:) may name them.
        (rule,) = [w for w, _ in block if w[0] != "default"]
        assert rule[0].startswith('"~^1:')


def test_web_without_load_balancers_trusts_no_forwarded_header():
    tree = global_conf(nginx_trusted_proxies=[])
    assert values(tree, "set_real_ip_from") == []
    assert values(tree, "real_ip_header") == []
    (geo,) = find(tree, "geo")
    assert geo[1] == [(["default", "0"], None)]


def test_web_default_server_drops_unknown_hosts():
    (server,) = find(global_conf(), "server")
    assert values(server[1], "listen") == ["80 default_server"]
    assert values(server[1], "server_name") == ["_"]
    assert values(server[1], "return") == ["444"]
    assert values(server[1], "access_log") == ["off"]  # scanners fill no log
    (ipv6,) = find(global_conf(nginx_listen_ipv6=True), "server")
    assert values(ipv6[1], "listen") == ["80 default_server", "[::]:80 default_server"]


# --- the load balancer (roles/loadbalancer) ----------------------------------------------------


def lb_conf(**variables):
    variables.setdefault("loadbalancer_flower", PLAN["celery"]["flower"])
    return nginx(render("loadbalancer", "etc/nginx/conf.d/pyfleet-loadbalancer.conf.j2", "lb1", **variables))


def servers(tree):
    """{(server_name, https?): block}"""
    out = {}
    for _words, block in find(tree, "server"):
        https = any("ssl" in v.split() for v in values(block, "listen"))
        out[(values(block, "server_name")[0], https)] = block
    return out


def test_lb_tls_settings():
    tree = lb_conf()
    assert values(tree, "ssl_certificate") == ["/etc/nginx/pyfleet/tls/pyfleet.crt"]
    assert values(tree, "ssl_certificate_key") == ["/etc/nginx/pyfleet/tls/pyfleet.key"]
    assert values(tree, "ssl_session_tickets") == ["off"]
    assert values(tree, "ssl_session_timeout") == ["1d"]
    assert values(tree, "ssl_session_cache") == ["shared:pyfleet_tls:10m"]
    assert values(tree, "ssl_ecdh_curve") == ["X25519:prime256v1:secp384r1"]
    (ciphers,) = values(tree, "ssl_ciphers")
    assert ciphers.split(":")[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"
    assert all(c.startswith("ECDHE-") for c in ciphers.split(":"))
    for (name, https), block in servers(tree).items():
        if https:
            assert values(block, "ssl_protocols") == ["TLSv1.2 TLSv1.3"], name
            assert values(block, "ssl_prefer_server_ciphers") == ["off"], name


def test_lb_rate_limit():
    tree = lb_conf()
    assert values(tree, "limit_req_zone") == ["$binary_remote_addr zone=pyfleet_per_client:10m rate=50r/s"]
    assert values(tree, "limit_req_status") == ["429"]
    for (name, https), block in servers(tree).items():
        if https and name != "_":
            assert values(block, "limit_req") == ["zone=pyfleet_per_client burst=100 nodelay"], name
    off = servers(lb_conf(loadbalancer_rate_limit_enabled=False))
    assert values(off[("s.test www.s.test", True)], "limit_req") == []


def test_lb_upgrade_map_closes_upstream_connections_without_keepalive():
    (upgrade,) = find(lb_conf(), "map")
    assert upgrade[0] == ["map", "$http_upgrade", "$pyfleet_upstream_connection"]
    assert upgrade[1] == [(["default", "upgrade"], None), (['""', "close"], None)]
    (kept,) = find(lb_conf(loadbalancer_upstream_keepalive=16), "map")
    assert kept[1][1] == (['""', '""'], None)


def test_lb_refuses_unknown_names_and_redirects_http():
    by_name = servers(lb_conf())
    http_default = by_name[("_", False)]
    assert values(http_default, "listen") == ["80 default_server", "[::]:80 default_server"]
    assert values(http_default, "return") == ["444"]
    https_default = by_name[("_", True)]
    assert values(https_default, "listen") == ["443 ssl http2 default_server", "[::]:443 ssl http2 default_server"]
    assert values(https_default, "ssl_reject_handshake") == ["on"]
    assert values(https_default, "return") == ["444"]
    for name in ("s.test www.s.test", "api.test", "flower.s.test"):
        assert values(by_name[(name, False)], "return") == ["301 https://$host$request_uri"], name
        assert values(by_name[(name, False)], "listen") == ["80", "[::]:80"], name
        assert values(by_name[(name, True)], "listen") == ["443 ssl http2", "[::]:443 ssl http2"], name
    assert values(lb_conf(), "include") == ["/etc/nginx/pyfleet/upstreams.conf"]


@pytest.mark.parametrize(("name", "upstream"), [("s.test www.s.test", "pyfleet_shop"), ("api.test", "pyfleet_api")])
def test_lb_app_server_headers_timeouts_and_retries(name, upstream):
    block = servers(lb_conf())[(name, True)]
    assert values(block, "add_header") == SECURITY_HEADERS
    assert values(block, "client_max_body_size") == ["10m"]
    locations = {tuple(n[0]): n[1] for n in find(block, "location")}
    app = locations[("location", "/")]
    # The whole site's maintenance switch, then the app's own (a glob: no file, no page).
    app_name = upstream.removeprefix("pyfleet_")
    assert values(app, "include") == [
        "/etc/nginx/pyfleet/maintenance.conf",
        f"/etc/nginx/pyfleet/maintenance/{app_name}.con[f]",
    ]
    assert values(app, "proxy_pass") == [f"http://{upstream}"]
    assert values(app, "proxy_http_version") == ["1.1"]
    found = headers(app)
    assert found == {
        "Connection": "$pyfleet_upstream_connection",
        "Upgrade": "$http_upgrade",
        "Host": "$host",
        "X-Real-IP": "$remote_addr",
        "X-Forwarded-For": "$remote_addr",
        "X-Forwarded-Proto": "$scheme",
        "X-Forwarded-Host": "$host",
        "X-Forwarded-Port": "$server_port",
    }
    assert values(app, "proxy_hide_header") == [*HIDDEN, "X-Powered-By"]
    assert values(app, "proxy_connect_timeout") == ["5s"]
    assert values(app, "proxy_read_timeout") == ["60s"]
    assert values(app, "proxy_next_upstream") == ["error timeout http_502 http_503"]
    # The maintenance page: internal, with the same headers, never cached.
    assert values(block, "error_page") == ["503 /pyfleet-maintenance.html"]
    page = locations[("location", "=", "/pyfleet-maintenance.html")]
    assert values(page, "internal") == [""]
    assert values(page, "root") == ["/var/www/pyfleet-maintenance"]
    assert values(page, "try_files") == ["/index.html =503"]
    assert values(page, "add_header") == [
        *SECURITY_HEADERS,
        'Retry-After "300" always',
        'Cache-Control "no-store" always',
    ]


def test_lb_hsts_and_frame_options_follow_the_settings():
    block = servers(
        lb_conf(
            loadbalancer_hsts_include_subdomains=True,
            loadbalancer_hsts_max_age=600,
            loadbalancer_frame_options="SAMEORIGIN",
        )
    )[("api.test", True)]
    assert values(block, "add_header")[0] == 'Strict-Transport-Security "max-age=600; includeSubDomains" always'
    assert values(block, "add_header")[2] == 'X-Frame-Options "SAMEORIGIN" always'


def test_lb_flower_asks_for_a_password_and_does_not_pass_it_on():
    block = servers(lb_conf())[("flower.s.test", True)]
    assert values(block, "auth_basic") == ['"Flower"']
    assert values(block, "auth_basic_user_file") == ["/etc/nginx/pyfleet/flower.htpasswd"]
    assert values(block, "add_header") == SECURITY_HEADERS
    assert values(block, "limit_req") == ["zone=pyfleet_per_client burst=100 nodelay"]
    (location,) = find(block, "location")
    found = headers(location[1])
    assert found["Authorization"] == '""'
    assert found["X-Forwarded-For"] == "$remote_addr"
    assert found["Host"] == "$host"
    assert found["Connection"] == "$pyfleet_upstream_connection"
    assert found["Upgrade"] == "$http_upgrade"
    assert found["X-Real-IP"] == "$remote_addr"
    assert found["X-Forwarded-Proto"] == "$scheme"
    assert values(location[1], "proxy_pass") == ["http://10.0.0.32:5555"]
    assert values(location[1], "proxy_http_version") == ["1.1"]
    assert values(location[1], "proxy_hide_header") == HIDDEN
    assert values(location[1], "proxy_connect_timeout") == ["5s"]
    assert values(location[1], "proxy_read_timeout") == ["60s"]


def test_lb_without_flower_serves_no_flower():
    assert ("flower.s.test", True) not in servers(lb_conf(loadbalancer_flower={}))


def test_lb_ipv4_only():
    by_name = servers(lb_conf(loadbalancer_listen_ipv6=False))
    assert values(by_name[("api.test", True)], "listen") == ["443 ssl http2"]


# --- the load balancer's upstreams and maintenance switch -----------------------------------


def upstreams(**variables):
    variables.setdefault("__loadbalancer_drained", [])
    tree = nginx(render("loadbalancer", "etc/nginx/pyfleet/upstreams.conf.j2", "lb1", **variables))
    return {n[0][1]: n[1] for n in find(tree, "upstream")}


def test_lb_upstreams_fail_over_and_fall_back():
    found = upstreams()
    assert sorted(found) == ["pyfleet_api", "pyfleet_shop"]
    assert values(found["pyfleet_shop"], "server") == [
        "10.0.0.11:80 max_fails=1 fail_timeout=5s",
        "10.0.0.12:80 max_fails=1 fail_timeout=5s",
        "10.0.0.11:80 backup",
        "10.0.0.12:80 backup",
    ]
    assert values(found["pyfleet_shop"], "keepalive") == []  # loadbalancer_upstream_keepalive: 0


def test_lb_upstreams_drained_host_is_down_and_keepalive_when_asked():
    found = upstreams(
        __loadbalancer_drained=["web2"], loadbalancer_upstream_keepalive=8, loadbalancer_upstream_fallback=False
    )
    assert values(found["pyfleet_api"], "server") == [
        "10.0.0.11:80 max_fails=1 fail_timeout=5s",
        "10.0.0.12:80 max_fails=1 fail_timeout=5s down",
    ]
    assert values(found["pyfleet_api"], "keepalive") == ["8"]


@pytest.mark.parametrize(("on", "expected"), [(True, ["503"]), (False, [])])
def test_lb_maintenance_switch(on, expected):
    text = render("loadbalancer", "etc/nginx/pyfleet/maintenance.conf.j2", "lb1", loadbalancer_maintenance=on)
    assert values(nginx(text), "return") == expected


@pytest.mark.parametrize(
    "tls_mode, flower, removed",
    [
        ("acme", {"domain": "flower.example.test"}, []),
        ("selfsigned", {}, ["/etc/nginx/pyfleet/tls/acme-directory", "/etc/nginx/pyfleet/flower.htpasswd"]),
        ("files", {"domain": "flower.example.test"}, ["/etc/nginx/pyfleet/tls/acme-directory"]),
    ],
)
def test_the_load_balancer_removes_only_the_leftovers_of_settings_that_are_off(tls_mode, flower, removed):
    paths = role_value(
        "loadbalancer", "__loadbalancer_paths", loadbalancer_tls_mode=tls_mode, loadbalancer_flower=flower
    )
    assert [(p["path"], p.get("mode")) for p in paths if p["state"] == "directory"] == [
        ("/etc/nginx/pyfleet/drained", "0755"),
        ("/etc/nginx/pyfleet/tls", "0700"),  # the private key's directory
        ("/var/www/pyfleet-maintenance", "0755"),
    ]
    assert [p["path"] for p in paths if p["state"] == "absent"] == removed
