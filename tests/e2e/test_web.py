"""The web tier end to end on the lab: through the load balancer over HTTPS.

The tests run in file order and share the lab's state: both apps from both web
hosts, static files from nginx, a release the health gate refuses, and keep-5
pruning. At the end the lab is put back on the inventory's own source (a
deploy), so later tests and converges see the lab as site.yml left it. A deploy
of changed code and its rollback, under load: test_rollback.py.
"""

import http.client
import json
import shutil
import socket
import ssl
import time
from pathlib import Path

import pytest

from pyfleet.errors import PyfleetError

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sampleapp"
WSGI, ASGI = "hello.lab.test", "hello-async.lab.test"


@pytest.fixture(scope="module")
def web_hosts(inv):
    """The lab's web hosts (the apps' hosts group)."""
    hosts = sorted(inv.groups.get("web", []))
    assert len(hosts) >= 2, "the web tests need two web hosts"
    return hosts


class _LBConnection(http.client.HTTPSConnection):
    """HTTPS to the load balancer's address, with the app's domain as SNI and Host."""

    def __init__(self, address, domain):
        self._address = address
        super().__init__(domain, 443, timeout=15, context=ssl._create_unverified_context())  # lab: self-signed

    def connect(self):
        sock = socket.create_connection((self._address, 443), timeout=15)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def get(address, domain, path="/"):
    """(status, body) of one HTTPS request through the load balancer, on a new connection."""
    conn = _LBConnection(address, domain)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def answers(address, domain, count=8):
    """The JSON bodies of ``count`` requests for / (fresh connections, so both hosts take turns)."""
    bodies = []
    for _ in range(count):
        status, body = get(address, domain)
        assert status == 200, f"{domain}: HTTP {status}: {body[:200]}"
        bodies.append(json.loads(body))
    return bodies


def copy_sample(tmp_path, version, broken_health=False):
    """A copy of the sample project with another VERSION (and optionally a failing /healthz)."""
    dest = tmp_path / f"sampleapp-{version}"
    shutil.copytree(SAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "dist", "build"))
    (dest / "sampleapp" / "version.py").write_text(f'VERSION = "{version}"\n')
    if broken_health:
        wsgi = dest / "sampleapp" / "wsgi.py"
        text = wsgi.read_text()
        assert 'return "ok", 200' in text
        wsgi.write_text(text.replace('return "ok", 200', 'return "broken", 500'))
    return dest


def deploy(run_playbook, sources, *args):
    """Run the deploy playbook with other source trees for some apps."""
    extra = json.dumps({"deploy_sources": {name: str(path) for name, path in sources.items()}})
    return run_playbook("deploy", "-e", extra, *args)


def releases(host_run, host, app="hello"):
    return host_run(host, f"ls /srv/{app}/releases").stdout.split()


@pytest.fixture(scope="module", autouse=True)
def restore_inventory_source(run_playbook):
    """Leave the lab on the inventory's own source when the file is done."""
    yield
    run_playbook("deploy")


@pytest.mark.parametrize("domain, kind", [(WSGI, "sampleapp-wsgi"), (ASGI, "sampleapp-asgi")])
def test_apps_answer_from_both_web_hosts(lb_address, web_hosts, domain, kind):
    bodies = answers(lb_address, domain)
    assert {b["app"] for b in bodies} == {kind}
    assert {b["host"] for b in bodies} == set(web_hosts)


def test_static_file_served_by_nginx(lb_address):
    status, body = get(lb_address, WSGI, "/static/hello.txt")
    assert status == 200
    assert body == (SAMPLE / "static" / "hello.txt").read_text()


def test_broken_release_is_refused_while_the_old_keeps_serving(
    lb_address, web_hosts, run_playbook, host_run, tmp_path_factory
):
    serving = answers(lb_address, WSGI, 4)
    first = web_hosts[0]
    before = releases(host_run, first)
    source = copy_sample(tmp_path_factory.mktemp("broken"), "6.6.6", broken_health=True)
    with pytest.raises(PyfleetError) as failure:
        deploy(run_playbook, {"hello": source}, "-e", "deploy_apps=hello")
    message = str(failure.value)
    assert first in message and "hello" in message and "HTTP 500" in message, message
    # The first host refused it and stayed; the others were never touched (max_fail_percentage 0).
    assert releases(host_run, first) == before
    after = answers(lb_address, WSGI)
    assert {b["version"] for b in after} == {serving[0]["version"]}
    assert {b["host"] for b in after} == set(web_hosts)


def test_six_deploys_leave_five_releases(lb_address, web_hosts, run_playbook, host_run, tmp_path_factory):
    base = tmp_path_factory.mktemp("six")
    # The releases the earlier tests left count: as many deploys as make six releases
    # in all (at least one), so the oldest is pruned; each deploy costs about 14 s.
    before = {host: releases(host_run, host) for host in web_hosts}
    # A host whose current release is not its newest (a rollback's) keeps it through
    # the first deploy, as the release that served until the switch: two deploys then.
    current = {host: host_run(host, "readlink /srv/hello/current").stdout.strip() for host in web_hosts}
    least = 2 if any(current[host] != f"releases/{max(before[host])}" for host in web_hosts) else 1
    deploys = max(least, 6 - min(len(kept) for kept in before.values()))
    for number in range(deploys):
        source = copy_sample(base, f"3.0.{number}")
        # The web hosts only (what this test checks): the worker hosts' restarts would
        # cost a third of each deploy; restore_inventory_source deploys everywhere after.
        deploy(run_playbook, {"hello": source}, "-e", "deploy_apps=hello", "-e", "deploy_hosts=web")
        time.sleep(1)  # release ids are UTC seconds
    for host in web_hosts:
        kept = releases(host_run, host)
        assert len(before[host]) + deploys >= 6, before  # something had to be pruned
        assert len(kept) == 5, f"{host}: {kept}"
        # The newest five stay: the new ones, then the newest of those before.
        assert kept == sorted(set(before[host]) | set(kept))[-5:], (before[host], kept)
        current = host_run(host, "readlink /srv/hello/current").stdout.strip()
        assert current == f"releases/{max(kept)}"
    assert {b["version"] for b in answers(lb_address, WSGI, 4)} == {f"3.0.{deploys - 1}"}
