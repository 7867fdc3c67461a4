"""The lab, converged once per test session, and ways to reach its hosts.

The lab is the default inventory's (inventory/lab; PYFLEET_E2E_INVENTORY names
another, e.g. a copy for a second lab beside the first). If the tests brought it
up, they take it down at the end; a lab that was already up is left as it was.
Set PYFLEET_KEEP_LAB=1 to keep it either way. Tests marked ``last`` run after
all others (the lab-wide checks of what the other tests left behind).
"""

import http.client
import json
import os
import socket
import ssl
import time

import pytest
import testinfra

from pyfleet import ansible, inventory, lab as labmod, plan as fleet_plan
from pyfleet.load import Load

INVENTORY = os.environ.get("PYFLEET_E2E_INVENTORY", "inventory/lab")
LOAD_APPS = {"hello": "hello.lab.test", "hello-async": "hello-async.lab.test"}
# A load that answered fewer requests than this ran too short to prove anything.
MIN_REQUESTS = 1000
# The `fab` commands the tests run take the same inventory by default.
os.environ.setdefault("FABRIC_PYFLEET_INVENTORY", INVENTORY)


def pytest_configure(config):
    config.addinivalue_line("markers", "last(order=1): run after every other test of the session, lower order first")


def _last_order(item):
    """0 for ordinary tests; a ``last`` test's order (default 1)."""
    mark = item.get_closest_marker("last")
    return 0 if mark is None else mark.kwargs.get("order", 1)


def pytest_collection_modifyitems(items):
    """Tests marked ``last`` go to the end, by their order (a stable sort keeps the others' order)."""
    items.sort(key=_last_order)


@pytest.fixture(scope="session")
def lab():
    """The lab with every host up and playbooks/site.yml converged; yields {host: address}."""
    declared = inventory.load(INVENTORY)
    lab_ = labmod.Lab(declared)
    was_up = all(labmod.container_state(lab_, h)[0] == "running" for h in declared.hosts)
    addresses, _ = labmod.up(declared)
    first = ansible.playbook(declared.path, "site", quiet=True)
    kept = was_up or os.environ.get("PYFLEET_KEEP_LAB") == "1"
    # "kept": the lab outlives the session, so a test that changes it puts it back.
    yield {"addresses": addresses, "first_converge": first, "kept": kept}
    if not kept:
        labmod.down(declared)


@pytest.fixture(scope="session")
def inv(lab):
    """The lab inventory as the commands see it once the lab is up (with each host's address)."""
    return inventory.load(INVENTORY)


@pytest.fixture(scope="session")
def run_playbook(inv, lab):
    """Run playbooks/<name>.yml on the lab; returns recap stats, raises PyfleetError on failure."""

    def run(name, *args, **kwargs):
        return ansible.playbook(inv.path, name, *args, quiet=True, **kwargs)

    return run


@pytest.fixture(scope="session")
def lab_host(inv, lab):
    """A testinfra host for an inventory host name, over the lab's SSH.

    It logs in as Ansible does (the lab's deploy user, host key checked against
    the lab's known_hosts) and runs every command through sudo: the checks see
    the hosts as root does, and no test needs a root login.
    """
    cache = {}
    the_lab = labmod.Lab(inv)

    def get(name):
        if name not in cache:
            ip = lab["addresses"][name]
            cache[name] = testinfra.get_host(
                f"ssh://{labmod.LAB_USER}@{ip}",
                ssh_identity_file=str(the_lab.key),
                ssh_extra_args=" ".join(labmod.ssh_options(the_lab)),
                sudo=True,
            )
        return cache[name]

    return get


@pytest.fixture(scope="session")
def host_run(lab_host):
    """Run a shell command on a lab host; returns testinfra's CommandResult."""

    def run(name, command):
        return lab_host(name).run(command)

    return run


@pytest.fixture(scope="session")
def lb_address(inv, lab):
    """The address of the lab's (first) load balancer."""
    return lab["addresses"][sorted(inv.groups["loadbalancers"])[0]]


@pytest.fixture(scope="session")
def post_task(lb_address):
    """POST /tasks/<name> to the sample app through the load balancer; returns (status, JSON body)."""

    def post(name, body=None, domain="hello.lab.test", timeout=40):
        class Conn(http.client.HTTPSConnection):
            def connect(self):
                self.sock = socket.create_connection((lb_address, 443), timeout=self.timeout)
                self.sock = self._context.wrap_socket(self.sock, server_hostname=domain)

        conn = Conn(domain, 443, timeout=timeout, context=ssl._create_unverified_context())  # lab: self-signed
        try:
            conn.request(
                "POST",
                f"/tasks/{name}",
                body=json.dumps(body or {}),
                headers={"Content-Type": "application/json", "Host": domain},
            )
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"null")
        finally:
            conn.close()

    return post


@pytest.fixture(scope="session")
def lb_domains(inv):
    """Every name the load balancer serves over HTTPS: the apps' domains and Flower's, from the plan."""
    plan = fleet_plan.from_inventory(inv, check_paths=False)
    domains = [d for upstream in plan["upstreams"] for d in upstream["domains"]]
    flower = (plan.get("celery") or {}).get("flower") or {}
    if flower.get("domain"):
        domains.append(flower["domain"])
    assert domains, "the lab's load balancer serves no domain"
    return domains


@pytest.fixture(scope="session")
def under_load(lb_address):
    """Run ``action()`` under a keepalive HTTPS load on both apps; return (its result, the load's Report).

    Three connections per app, 10 ms apart: about 450 requests/s here, which
    leaves this 2-core machine half its CPU for the deploy or restart being
    watched (without the pause, about 1,050/s took 90 % of it and doubled the
    deploy's time). ``bench/reliability.py`` runs the same scenarios at full rate.
    """

    def run(action, apps=LOAD_APPS, settle=1.0):
        load = Load(lb_address, apps, connections=3, max_seconds=600, pause=0.01).start()
        time.sleep(settle)
        try:
            result = action()
        finally:
            time.sleep(settle)
            report = load.stop()
        assert report.total >= MIN_REQUESTS, f"the load hardly ran: {report.describe()}"
        return result, report

    return run
