"""Scale out: a worker of one type and a web host, added to the inventory.

The test works on a copy of the lab inventory (named ``lab`` too, so it shares
the lab's hosts, network and connection file) with ``worker3`` added to group
``workers`` (type ``io``) and ``web3`` to group ``web``, and one more domain for
``hello`` (every web host's nginx and the load balancer change). ``fab lab.up`` on
that copy starts the new hosts; site.yml converges them while a load runs through
the load balancer. Then tasks of type io are taken by worker3 as well as by worker1,
web3 answers through the load balancer, not one request failed while it joined,
and no service on the six other hosts was restarted. Afterwards the new hosts are
removed; the module runs after every ordinary test, and test_secrets' `fab up`
next converges the load balancer back to the six-host lab (a lab that outlives
the session is converged back here).
"""

import pytest

from pyfleet import ansible, inventory, lab as labmod
from pyfleet.load import Load, get_json

NEW_HOST, NEW_TYPE = "worker3", "io"
NEW_WEB = "web3"
APPS = {"hello": "hello.lab.test", "hello-async": "hello-async.lab.test"}
NEW_DOMAIN = "www.hello.lab.test"
# After every ordinary test (they expect the six-host lab), before test_secrets and test_removal.
pytestmark = pytest.mark.last(order=1)
# A service's main PID changes when it restarts (an nginx reload keeps it).
MAIN_PIDS = (
    "for u in $(systemctl list-units --state=running --no-legend --plain "
    "'pyfleet-*' nginx.service redis-server.service | awk '{print $1}'); do "
    'echo "$u $(systemctl show -p MainPID --value "$u")"; done'
)


def main_pids(host_run, hosts):
    """{host: {unit: main PID}} of the pyfleet services running on ``hosts``."""
    return {h: dict(line.split() for line in host_run(h, MAIN_PIDS).stdout.splitlines()) for h in hosts}


@pytest.fixture(scope="module")
def grown(inv, lab, host_run, lb_address, tmp_path_factory):
    """The lab grown by worker3 and web3, converged under load; yields (inventory, PIDs before, PIDs after, load)."""
    copy = labmod.grown_inventory(
        inv, tmp_path_factory.mktemp("scale"), NEW_HOST, "workers", {"celery_worker_types": [NEW_TYPE]}
    )
    labmod.add_host(copy, NEW_WEB, "web")
    labmod.add_domain(copy, "hello", NEW_DOMAIN)
    before = main_pids(host_run, inv.hosts)
    try:
        labmod.up(inventory.load(copy), log=lambda *_: None)
        grown_inv = inventory.load(copy)  # now with the new hosts' addresses
        with Load(lb_address, APPS, connections=2, max_seconds=600, pause=0.01) as load:
            stats = ansible.playbook(grown_inv.path, "site", quiet=True)
        assert stats[NEW_HOST]["changed"] > 0 and stats[NEW_WEB]["changed"] > 0, stats
        after = main_pids(host_run, inv.hosts)
        yield grown_inv, before, after, load.report
    finally:
        labmod.remove_host(inv, NEW_HOST)
        labmod.remove_host(inv, NEW_WEB)
        if lab["kept"]:
            # The load balancer forgets web3, the web hosts the new domain, the broker's firewall both.
            ansible.playbook(inv.path, "site", "--limit", "web,loadbalancers,brokers", quiet=True)


def test_the_new_worker_takes_tasks_of_its_type(grown, inv, post_task):
    old_hosts = {h for h in inv.groups["workers"] if NEW_TYPE in (inv.hosts[h].get("celery_worker_types") or [])}
    seen = []
    for _ in range(16):
        status, answer = post_task("sleep", {"args": [0.05]})
        assert status == 200, answer
        seen.append(answer["result"]["node"])
    assert set(seen) <= {f"{NEW_TYPE}@{h}" for h in old_hosts | {NEW_HOST}}, seen
    assert f"{NEW_TYPE}@{NEW_HOST}" in seen, f"worker3 took none of 16 io tasks: {seen}"


def test_the_new_web_host_answers_through_the_load_balancer(grown, lb_address):
    seen = {get_json(lb_address, APPS["hello"])["host"] for _ in range(12)}
    assert NEW_WEB in seen, f"{NEW_WEB} answered none of 12 requests: {seen}"


def test_the_new_domain_is_served(grown, lb_address):
    assert get_json(lb_address, NEW_DOMAIN)["app"] == "sampleapp-wsgi"


def test_no_request_failed_while_the_web_host_and_the_domain_were_added(grown):
    report = grown[3]
    assert report.total >= 500, report.describe()
    assert report.failed == 0, report.describe()


def test_no_service_restarted_on_the_other_hosts(grown):
    _, before, after, _ = grown
    assert after == before
