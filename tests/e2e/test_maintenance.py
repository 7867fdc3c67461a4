"""`fab maintenance` on the lab: one app's domains get the 503 page with Retry-After,
its health path and a deploy go on behind it, the other app is untouched, and
`fab history` records both switches."""

import http.client
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from pyfleet import audit

ROOT = Path(__file__).resolve().parents[2]
FAB = str(ROOT / ".venv" / "bin" / "fab")
APP, DOMAIN = "hello-async", "hello-async.lab.test"
OTHER = "hello.lab.test"


def fab(*args):
    proc = subprocess.run([FAB, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


def request(address, domain, path="/", method="GET"):
    """(status, headers, body) of one HTTPS request through the load balancer, SNI and Host = ``domain``."""
    context = ssl._create_unverified_context()  # lab: self-signed
    sock = context.wrap_socket(socket.create_connection((address, 443), timeout=15), server_hostname=domain)
    conn = http.client.HTTPSConnection(domain, 443, timeout=15)
    conn.sock = sock
    try:
        conn.request(method, path, body=b"{}" if method == "POST" else None)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read().decode(errors="replace")
    finally:
        conn.close()


@pytest.fixture(scope="module")
def in_maintenance(inv, lab, lb_address):
    """hello-async in maintenance for the tests of this module; switched off at the end whatever happens."""
    state = {"history": len(audit.history(inv, 1000)), "on": True}
    code, out, err = fab("maintenance", "on", "--app", APP)
    assert code == 0, err
    assert f"maintenance on: {APP} on " in out
    try:
        yield state
    finally:
        if state["on"]:  # a test failed before switching it off
            code, _, err = fab("maintenance", "off", "--app", APP)
            assert code == 0, err


def test_the_app_answers_503_with_the_page_and_retry_after(in_maintenance, lb_address):
    for method in ("GET", "POST"):
        status, headers, body = request(lb_address, DOMAIN, "/any/path", method)
        assert status == 503, (method, status, body[:200])
        assert headers.get("Retry-After") == "300" and "Down for maintenance" in body
        assert headers.get("Strict-Transport-Security")


def test_its_health_path_still_reaches_the_app(in_maintenance, lb_address):
    status, _, body = request(lb_address, DOMAIN, "/healthz")
    assert status == 200, body[:200]


def test_the_other_app_is_served(in_maintenance, lb_address):
    status, _, body = request(lb_address, OTHER, "/")
    assert status == 200, body[:200]


def test_status_shows_the_switch_per_app(in_maintenance, inv):
    code, out, err = fab("maintenance", "status")
    assert code == 0, err
    rows = {tuple(line.split()[:3]) for line in out.splitlines()[2:] if line.strip()}
    lb = sorted(inv.groups["loadbalancers"])[0]
    assert (APP, lb, "on") in rows and ("hello", lb, "off") in rows


def test_a_deploy_switches_behind_the_page(in_maintenance, run_playbook, lb_address):
    # A new release goes through the whole health-gated switch on every web host.
    stats = run_playbook("deploy", "-e", f"deploy_apps={APP}", "-e", "app_force_release=true")
    assert all(s["failed"] == 0 for s in stats.values())
    assert request(lb_address, DOMAIN, "/")[0] == 503
    assert request(lb_address, DOMAIN, "/healthz")[0] == 200


def test_off_serves_the_app_again_and_history_has_both_switches(in_maintenance, inv, lb_address):
    code, out, err = fab("maintenance", "off", "--app", APP)
    assert code == 0, err
    in_maintenance["on"] = False
    status, headers, _ = request(lb_address, DOMAIN, "/")
    assert status == 200 and "Retry-After" not in headers
    records = audit.history(inv, 1000)[in_maintenance["history"] :]
    assert [(r["action"], r["apps"], r["result"]) for r in records] == [
        ("maintenance on", [APP], "ok"),
        ("maintenance off", [APP], "ok"),
    ]
    code, out, _ = fab("history", "--last", "2")
    assert code == 0 and out.index("maintenance on") < out.index("maintenance off")


def test_an_unknown_app_is_one_line(inv, lab):
    code, _, err = fab("maintenance", "on", "--app", "nope")
    assert code != 0 and "Traceback" not in err
    assert err.strip().startswith("error: no app 'nope' in pyfleet_apps") and len(err.strip().splitlines()) == 1
