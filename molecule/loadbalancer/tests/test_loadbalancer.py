"""What a user of the loadbalancer role notices, from the load balancer host itself.

Two test backends run on the host (prepare.yml): backend1 on 127.0.0.1:8081 and
backend2 on 127.0.0.1:8082, each answering its own name. App shop runs on both,
app api on backend1 only (molecule.yml). The drain and maintenance tests run the
role's entry points through toggle.yml, as deploy.yml and the operator tool do.
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

# The platform of molecule.yml, reached with `podman exec`: testinfra's ansible://
# backend does not know molecule's podman connection and would run every command
# through an Ansible module, ten times slower.
# Both platforms (Debian 12 and 13): the whole file runs for one, then the other.
LOAD_BALANCERS = ["pyfleet-molecule-loadbalancer", "pyfleet-molecule-loadbalancer-trixie"]
testinfra_hosts = [f"podman://{name}" for name in LOAD_BALANCERS]

SCENARIO = Path(__file__).resolve().parents[1]
ROOT = SCENARIO.parents[1]
SHOP = "shop.example.test"
WWW = "www.shop.example.test"
API = "api.example.test"
RESOLVE = " ".join(
    f"--resolve {name}:{port}:127.0.0.1" for name in (SHOP, WWW, API, "unknown.example.test") for port in (80, 443)
)


def curl(host, url, options=""):
    """Run curl on the load balancer with every test name resolved to 127.0.0.1."""
    return host.run(f"curl -sk --max-time 10 {RESOLVE} {options} '{url}'")


def bodies(host, url, count):
    """The bodies of ``count`` requests (one curl, one connection; nginx balances per request)."""
    return curl(host, f"{url}?n=[1-{count}]", "-w '\\n'").stdout.split()


def headers(host, url, options=""):
    """Response headers of a GET, names lower-cased."""
    out = curl(host, url, f"-o /dev/null -D - {options}").stdout
    found = {}
    for line in out.splitlines()[1:]:
        name, sep, value = line.partition(":")
        if sep:
            found[name.strip().lower()] = value.strip()
    return found


def status(host, url, options=""):
    """The HTTP status code of a request."""
    return curl(host, url, f"-o /dev/null -w '%{{http_code}}' {options}").stdout.strip()


@pytest.fixture(scope="module")
def playbook(pytestconfig, host):
    """Run a playbook of this scenario against the molecule inventory; return {host: {"changed": n}}.

    It takes ``host`` so that every test depends on testinfra's parametrized host
    fixture: pytest then keeps the tests in file order, which the state changes
    below (maintenance, drains) rely on.
    """
    inventory = pytestconfig.option.ansible_inventory or os.environ["MOLECULE_INVENTORY_FILE"]
    env = dict(
        os.environ,
        ANSIBLE_ROLES_PATH=str(ROOT / "roles"),
        ANSIBLE_FILTER_PLUGINS=str(ROOT / "plugins" / "filter"),
        ANSIBLE_ACTION_PLUGINS=str(ROOT / "plugins" / "action"),
        ANSIBLE_LIBRARY=str(ROOT / "plugins" / "modules"),
        ANSIBLE_STRATEGY="mitogen_hosts_linear",  # as molecule.yml: Mitogen on the containers
        ANSIBLE_STRATEGY_PLUGINS=str(ROOT / "plugins" / "strategy"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",  # molecule forces colour for its own runs
    )

    def run(name, expect_failure=False, **extra_vars):
        args = [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            inventory,
            str(SCENARIO / name),
        ]
        for key, value in extra_vars.items():
            args += ["-e", f"{key}={value}"]
        done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
        plain = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)
        if expect_failure:
            assert done.returncode != 0, plain[-3000:]
            return plain
        assert done.returncode == 0, plain[-3000:]
        recap = re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", plain, re.M)
        return {name: {"changed": int(changed)} for name, changed in recap}

    return run


# ---- the configuration and the service ---------------------------------------------


def test_nginx_configuration_is_valid(host):
    assert host.run("nginx -t").rc == 0


def test_nginx_runs_and_starts_at_boot(host):
    nginx = host.service("nginx")
    assert nginx.is_running
    assert nginx.is_enabled


def test_debian_default_site_is_gone(host):
    assert not host.file("/etc/nginx/sites-enabled/default").exists


# ---- HTTPS to the apps -------------------------------------------------------------


@pytest.mark.parametrize("domain", [SHOP, WWW])
def test_every_domain_answers_from_a_backend(host, domain):
    assert curl(host, f"https://{domain}/").stdout.strip() in ("backend1", "backend2")


def test_requests_spread_over_both_backends(host):
    assert set(bodies(host, f"https://{SHOP}/", 12)) == {"backend1", "backend2"}


def test_app_upstream_holds_only_its_hosts(host):
    assert set(bodies(host, f"https://{API}/", 6)) == {"backend1"}


def test_https_speaks_http2(host):
    assert curl(host, f"https://{SHOP}/", "--http2 -o /dev/null -w '%{http_version}'").stdout == "2"


@pytest.mark.parametrize(
    "name, value",
    [
        ("strict-transport-security", "max-age=31536000"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "strict-origin-when-cross-origin"),
        ("server", "nginx"),
    ],
)
def test_security_header(host, name, value):
    assert headers(host, f"https://{SHOP}/").get(name) == value


def test_certificate_names_every_domain(host):
    sans = host.run("openssl x509 -noout -ext subjectAltName -in /etc/nginx/pyfleet/tls/pyfleet.crt").stdout
    for domain in (SHOP, WWW, API):
        assert f"DNS:{domain}" in sans


def test_tls_1_2_is_accepted(host):
    assert curl(host, f"https://{SHOP}/", "--tlsv1.2 --tls-max 1.2").rc == 0


def test_tls_1_1_is_refused(host):
    assert curl(host, f"https://{SHOP}/", "--tlsv1.1 --tls-max 1.1").rc != 0


def test_tls_follows_mozilla_intermediate(host):
    # sslyze checks it from the outside (tests/e2e/test_tls_ssh.py); this is the config.
    config = host.run("nginx -T").stdout
    assert "ssl_ecdh_curve X25519:prime256v1:secp384r1;" in config
    assert "DHE-" not in config.replace("ECDHE-", "")


def test_server_tokens_off_once_in_nginx_conf(host):
    lines = [line for line in host.run("nginx -T").stdout.splitlines() if line.strip().startswith("server_tokens")]
    assert lines == ["\tserver_tokens off;"]
    assert "\tserver_tokens off;\n" in host.file("/etc/nginx/nginx.conf").content_string


def test_certificate_lives_a_year_and_names_its_own_key(host):
    cert = "/etc/nginx/pyfleet/tls/pyfleet.crt"
    # Valid now, ended within 366 days (Mozilla's longest), signed by its own key.
    assert host.run(f"openssl x509 -noout -checkend 0 -in {cert}").rc == 0
    assert host.run(f"openssl x509 -noout -checkend {366 * 86400} -in {cert}").rc == 1
    ids = host.run(f"openssl x509 -noout -ext subjectKeyIdentifier,authorityKeyIdentifier -in {cert}").stdout
    values = [line.strip() for line in ids.splitlines() if ":" in line and "Identifier" not in line]
    assert len(values) == 2 and values[0] == values[1].removeprefix("keyid:"), ids


def test_private_key_is_private(host):
    key = host.file("/etc/nginx/pyfleet/tls/pyfleet.key")
    assert key.mode == 0o600
    assert key.user == "root"


# ---- HTTP and unknown names --------------------------------------------------------


def test_http_redirects_to_https(host):
    out = curl(
        host,
        f"http://{SHOP}/path?q=1",
        "-o /dev/null -w '%{http_code} %{redirect_url}'",
    ).stdout
    assert out == f"301 https://{SHOP}/path?q=1"


def test_unknown_host_gets_no_http_answer(host):
    assert curl(host, "http://unknown.example.test/").rc == 52  # empty reply: nginx's 444


def test_unknown_host_gets_no_tls_handshake(host):
    assert curl(host, "https://unknown.example.test/").rc == 35  # TLS handshake refused


def test_unknown_host_header_after_known_server_name_is_refused(host):
    result = curl(host, f"https://{SHOP}/", "--http1.1 -H 'Host: unknown.example.test'")
    # nginx's 444 closes without a TLS close_notify: curl 7 (Debian 12) says empty
    # reply (52), curl 8 (Debian 13) unexpected end of data (56).
    assert result.rc in (52, 56)
    assert "backend" not in result.stdout


# ---- maintenance -------------------------------------------------------------------


class TestMaintenance:
    """loadbalancer_maintenance: true through tasks_from: maintenance, then false again."""

    @pytest.fixture(scope="class")
    def switched_on(self, playbook):
        stats = playbook("toggle.yml", maintenance="true")
        yield stats
        playbook("toggle.yml", maintenance="false")

    def test_switching_on_changes_the_host(self, host, switched_on):
        assert switched_on[host.backend.get_hostname()]["changed"] == 2  # switch file, reload

    @pytest.mark.parametrize("domain", [SHOP, API])
    def test_every_app_answers_503(self, host, switched_on, domain):
        assert status(host, f"https://{domain}/") == "503"

    def test_page_is_the_maintenance_page(self, host, switched_on):
        assert "Down for maintenance" in curl(host, f"https://{SHOP}/any/path").stdout

    def test_post_gets_the_maintenance_page_too(self, host, switched_on):
        result = curl(host, f"https://{SHOP}/form", "-X POST -d a=1 -w '\n%{http_code}'")
        assert "Down for maintenance" in result.stdout
        assert result.stdout.strip().endswith("503")

    def test_retry_after_and_security_headers(self, host, switched_on):
        found = headers(host, f"https://{SHOP}/")
        assert found.get("retry-after") == "300"
        assert found.get("strict-transport-security") == "max-age=31536000"
        assert found.get("x-content-type-options") == "nosniff"

    def test_switching_on_again_changes_nothing(self, host, playbook, switched_on):
        assert playbook("toggle.yml", maintenance="true")[host.backend.get_hostname()]["changed"] == 0


def test_after_maintenance_the_apps_answer_again(host):
    assert status(host, f"https://{SHOP}/") == "200"


# ---- drain -------------------------------------------------------------------------


class TestDrain:
    """tasks_from: drain with backend2, delegated to the load balancer as deploy.yml does."""

    @pytest.fixture(scope="class")
    def drained(self, playbook):
        state = {
            "stats": playbook("toggle.yml", drain_host="backend2", drain_state="drained"),
            "restored": False,
        }
        yield state
        if not state["restored"]:
            playbook("toggle.yml", drain_host="backend2", drain_state="active")

    def test_draining_changes_the_host(self, drained):
        # Marker, upstream lines, reload: on each load balancer (delegated, counted as backend2's).
        assert drained["stats"]["backend2"]["changed"] == 3 * len(LOAD_BALANCERS)

    def test_all_requests_go_to_the_other_backend(self, host, drained):
        assert set(bodies(host, f"https://{SHOP}/", 12)) == {"backend1"}

    def test_drain_marker_is_recorded(self, host, drained):
        assert host.file("/etc/nginx/pyfleet/drained/backend2").exists

    def test_draining_again_changes_nothing(self, playbook, drained):
        assert playbook("toggle.yml", drain_host="backend2", drain_state="drained")["backend2"]["changed"] == 0

    def test_reconverge_keeps_the_host_drained_without_changes(self, host, playbook, drained):
        assert playbook("converge.yml")[host.backend.get_hostname()]["changed"] == 0
        assert set(bodies(host, f"https://{SHOP}/", 8)) == {"backend1"}

    def test_restoring_serves_from_both_again(self, host, playbook, drained):
        stats = playbook("toggle.yml", drain_host="backend2", drain_state="active")
        drained["restored"] = True
        assert stats["backend2"]["changed"] == 3 * len(LOAD_BALANCERS)
        assert not host.file("/etc/nginx/pyfleet/drained/backend2").exists
        assert set(bodies(host, f"https://{SHOP}/", 12)) == {"backend1", "backend2"}


class TestDrainOnlyHost:
    """Draining backend1, the only host of app api: api keeps answering (backup lines)."""

    @pytest.fixture(scope="class")
    def drained(self, playbook):
        playbook("toggle.yml", drain_host="backend1", drain_state="drained")
        yield
        playbook("toggle.yml", drain_host="backend1", drain_state="active")

    def test_app_with_another_host_avoids_the_drained_one(self, host, drained):
        assert set(bodies(host, f"https://{SHOP}/", 12)) == {"backend2"}

    def test_app_whose_only_host_is_drained_still_answers(self, host, drained):
        assert set(bodies(host, f"https://{API}/", 6)) == {"backend1"}


# ---- mistakes fail clearly, and nginx keeps serving ------------------------------------


def test_acme_mode_without_a_directory_fails_before_any_change(playbook):
    out = playbook("converge.yml", expect_failure=True, loadbalancer_tls_mode="acme")
    assert "not set, and loadbalancer_tls_mode is acme; set it to your ACME CA's directory URL" in out
    assert "changed=0" in out


def test_bad_rate_fails_before_any_change(playbook):
    out = playbook("converge.yml", expect_failure=True, loadbalancer_rate_limit="lots")
    assert 'loadbalancer_rate_limit "lots" is not an nginx rate' in out
    assert "changed=0" in out


def test_config_nginx_refuses_fails_the_run_and_the_old_config_keeps_serving(host, playbook):
    try:
        out = playbook("converge.yml", expect_failure=True, loadbalancer_proxy_read_timeout="soon")
        assert "Validate the nginx configuration" in out
        assert "proxy_read_timeout" in out and "directive invalid value" in out
        assert curl(host, f"https://{SHOP}/").stdout.strip() in ("backend1", "backend2")
    finally:
        playbook("converge.yml")  # the next run with good values repairs it
    assert host.run("nginx -t").rc == 0


# ---- rate limit (last: it uses up the client's burst) --------------------------------


def test_rate_limit_answers_429_beyond_the_burst(host):
    out = curl(host, f"https://{SHOP}/health.txt?n=[1-400]", "-w '\\n%{http_code}\\n'").stdout
    codes = [word for word in out.split() if word.isdigit()]
    time.sleep(3)  # let the burst refill for whoever runs next
    assert len(codes) == 400
    assert "429" in codes
    assert codes.count("200") >= 100  # the burst (100) was served
