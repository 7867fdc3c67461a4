"""Scale out: a seventh host, added to the inventory as a worker of one type.

The test works on a copy of the lab inventory (named ``lab`` too, so it shares
the lab's hosts, network and connection file) with ``worker3`` added to group
``workers`` and assigned the ``io`` type. ``fab lab.up`` on that copy starts
the new host; site.yml converges it. Then tasks of type io are taken by
worker3 as well as by worker1, and no service on the six other hosts was
restarted. Afterwards the seventh host is removed and the connection file is
the six-host lab's again.
"""

import pytest

from pyfleet import ansible, inventory, lab as labmod

NEW_HOST, NEW_TYPE = "worker3", "io"
# A service's main PID changes when it restarts (an nginx reload keeps it).
MAIN_PIDS = (
    "for u in $(systemctl list-units --state=running --no-legend --plain "
    "'pyfleet-*' nginx.service redis-server.service | awk '{print $1}'); do "
    "echo \"$u $(systemctl show -p MainPID --value \"$u\")\"; done"
)


def main_pids(host_run, hosts):
    """{host: {unit: main PID}} of the pyfleet services running on ``hosts``."""
    return {h: dict(line.split() for line in host_run(h, MAIN_PIDS).stdout.splitlines()) for h in hosts}


@pytest.fixture(scope="module")
def grown(inv, lab, host_run, tmp_path_factory):
    """The lab grown by worker3 and converged; yields (inventory, PIDs before, PIDs after)."""
    copy = labmod.grown_inventory(inv, tmp_path_factory.mktemp("scale"), NEW_HOST, "workers",
                                  {"celery_worker_types": [NEW_TYPE]})
    before = main_pids(host_run, inv.hosts)
    try:
        labmod.up(inventory.load(copy), log=lambda *_: None)
        grown_inv = inventory.load(copy)  # now with worker3's address
        stats = ansible.playbook(grown_inv.path, "site", quiet=True)
        assert stats[NEW_HOST]["changed"] > 0, stats
        after = main_pids(host_run, inv.hosts)
        yield grown_inv, before, after
    finally:
        labmod.remove_host(inv, NEW_HOST)


def test_the_new_worker_takes_tasks_of_its_type(grown, inv, post_task):
    old_hosts = {h for h in inv.groups["workers"] if NEW_TYPE in (inv.hosts[h].get("celery_worker_types") or [])}
    seen = []
    for _ in range(16):
        status, answer = post_task("sleep", {"args": [0.05]})
        assert status == 200, answer
        seen.append(answer["result"]["node"])
    assert set(seen) <= {f"{NEW_TYPE}@{h}" for h in old_hosts | {NEW_HOST}}, seen
    assert f"{NEW_TYPE}@{NEW_HOST}" in seen, f"worker3 took none of 16 io tasks: {seen}"


def test_no_service_restarted_on_the_other_hosts(grown):
    _, before, after = grown
    assert after == before
