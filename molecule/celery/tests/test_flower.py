"""What a user of the flower role (and Flower on the load balancers) notices.

The fleet of molecule.yml: the Debian 12 host is broker, worker, the fleet's
Flower host and a load balancer; the Debian 13 host is a worker, a second load
balancer (serving the fleet's Flower from the Debian 12 host) and runs a second,
standalone Flower of its own (converge.yml). Every test runs on both hosts.
(test_celery.py checks the workers and beat of the same fleet.)
"""

import json
import re

import pytest
import testinfra

BOOKWORM = "pyfleet-molecule-celery"
TRIXIE = "pyfleet-molecule-celery-trixie"
# The platforms of molecule.yml, reached with `podman exec`: about ten times
# faster per command than testinfra's ansible backend over molecule's podman connection.
testinfra_hosts = [f"podman://{name}" for name in (BOOKWORM, TRIXIE)]

UNIT = "pyfleet-hello-flower.service"
DOMAIN = "flower.example.test"
LOGIN = "ops:molecule-only-flower-password"
HTPASSWD = "/etc/nginx/pyfleet/flower.htpasswd"
# Every worker of the fleet (molecule.yml's host_vars): Flower sees them all, whichever host it runs on.
NODES = sorted([f"default@{BOOKWORM}", f"io@{BOOKWORM}", f"cpu@{TRIXIE}"])


def _address(host):
    """A host's private address: the source address of its default route, as Ansible's ansible_default_ipv4."""
    return re.search(r"\bsrc (\S+)", host.check_output("ip -4 route get 1.1.1.1")).group(1)


@pytest.fixture(scope="module")
def addresses():
    """Host name -> private address, read on each host."""
    return {name: _address(testinfra.get_host(f"podman://{name}")) for name in (BOOKWORM, TRIXIE)}


@pytest.fixture(scope="module")
def address(host, addresses):
    """This host's private address (its Flower listens there)."""
    return addresses[host.backend.get_hostname()]


def _show(host, prop):
    return host.run(f"systemctl show -P {prop} {UNIT}").stdout.strip()


def _via_lb(host, path, login=None):
    """(status, body) of an HTTPS request for Flower's domain to this host's load balancer."""
    auth = f"--user {login} " if login else ""
    result = host.run(
        f"curl -sk --max-time 15 --resolve {DOMAIN}:443:127.0.0.1 {auth}"
        f"-o /tmp/flower-body -w '%{{http_code}}' https://{DOMAIN}{path}"
    )
    return int(result.stdout or 0), host.file("/tmp/flower-body").content_string


# ---- the Flower unit (the fleet's on Debian 12, the standalone one on Debian 13) ----------


def test_unit_running_and_enabled(host):
    service = host.service(UNIT)
    assert service.is_running
    assert service.is_enabled


def test_runs_as_the_app_user_from_the_current_release(host):
    pid = _show(host, "MainPID")
    assert host.run(f"ps -o user= -p {pid}").stdout.strip() == "app_hello"
    assert host.file(f"/proc/{pid}/cwd").linked_to == "/srv/hello/releases/molecule"


def test_unit_sandboxed(host):
    out = host.run(f"systemd-analyze security {UNIT} --no-pager").stdout
    score = float(re.search(r"exposure level for \S+: ([0-9.]+)", out).group(1))
    assert score <= 1.5, out.strip().splitlines()[-1]


def test_listens_on_the_private_address_only(host, address):
    assert host.socket(f"tcp://{address}:5555").is_listening
    assert not host.socket("tcp://0.0.0.0:5555").is_listening


def test_only_localhost_the_broker_and_the_load_balancers_may_connect(host, addresses):
    # The broker is the Debian 12 host; both hosts are load balancers.
    assert set(_show(host, "IPAddressDeny").split()) == {"0.0.0.0/0", "::/0"}
    expected = ["127.0.0.0/8", "::1/128"] + [f"{ip}/32" for ip in addresses.values()]
    assert sorted(_show(host, "IPAddressAllow").split()) == sorted(expected)


def test_flower_lists_the_workers_of_both_hosts(host, address):
    # Directly on its port (the API needs no login of its own: the sandbox admits the LBs only).
    result = host.run(f"curl -sf --max-time 15 'http://{address}:5555/api/workers?refresh=1'")
    assert result.rc == 0, result.stderr
    assert sorted(json.loads(result.stdout)) == NODES


# ---- the load balancer in front of the fleet's Flower ---------------------------------


def test_load_balancer_proxies_to_the_fleets_flower(host, addresses):
    # On the Debian 13 host that is the other host: its requests cross the network.
    assert f"proxy_pass http://{addresses[BOOKWORM]}:5555;" in host.check_output("nginx -T 2>/dev/null")


def test_load_balancer_asks_for_a_password(host):
    status, _ = _via_lb(host, "/")
    assert status == 401


def test_load_balancer_refuses_a_wrong_password(host):
    status, _ = _via_lb(host, "/", "ops:wrong")
    assert status == 401


def test_load_balancer_serves_flower_with_the_password(host):
    status, body = _via_lb(host, "/api/workers", LOGIN)
    assert status == 200
    assert sorted(json.loads(body)) == NODES


def test_dashboard_through_the_load_balancer(host):
    status, body = _via_lb(host, "/workers", LOGIN)
    assert status == 200
    assert "Flower" in body


def test_plain_http_redirects_to_https(host):
    result = host.run(
        f"curl -s --max-time 15 --resolve {DOMAIN}:80:127.0.0.1 -o /dev/null -w '%{{http_code}} %{{redirect_url}}' http://{DOMAIN}/"
    )
    assert result.stdout == f"301 https://{DOMAIN}/"


def test_certificate_names_the_flower_domain(host):
    text = host.run("openssl x509 -noout -ext subjectAltName -in /etc/nginx/pyfleet/tls/pyfleet.crt").stdout
    assert f"DNS:{DOMAIN}" in text


def test_password_file_is_hashed_and_not_world_readable(host):
    htpasswd = host.file(HTPASSWD)
    assert (htpasswd.user, htpasswd.group, htpasswd.mode) == ("root", "www-data", 0o640)
    # One newline-terminated line per user.
    assert host.run(f"wc -l < {HTPASSWD}").stdout.strip() == "1"
    assert re.fullmatch(r"ops:\$2b\$08\$[./A-Za-z0-9]{53}", htpasswd.content_string.strip())
    assert LOGIN.split(":", 1)[1] not in htpasswd.content_string
