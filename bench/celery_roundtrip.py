"""No-op Celery task round trips per second through the lab, with one and two worker hosts.

Runs a small producer on one lab host (default web1) in the app's current
release, with the generated Celery environment (broker, result backend,
routes): it sends `sampleapp.tasks.noop` (the default type's queue) and waits
for each result. Two figures: one task at a time (latency bound), and a window
of tasks in flight (throughput). Then the lab grows by one worker host of the
default type (worker3, as an operator would add it: inventory + site.yml), the
same is measured again, and worker3 is removed. Bounded: COUNT tasks per
figure, each with a timeout. Needs the lab up and converged (`fab up`).

In the lab every host shares the controller's CPUs: a second worker host adds
consumers, not CPU, so the ratio shows the cost of more processes on the same
cores. On real servers each host brings its own.

Usage: .venv/bin/python bench/celery_roundtrip.py [count] [host] [in_flight]
"""

import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from pyfleet import ansible, inventory, lab

ROOT = Path(__file__).resolve().parent.parent

APP = "hello"
EXTRA_HOST = "worker3"

PRODUCER = r"""
import sys, time
from sampleapp.tasks import app
count, window = int(sys.argv[1]), int(sys.argv[2])
app.send_task("sampleapp.tasks.noop").get(timeout=30)  # warm up connections
start = time.monotonic()
for _ in range(count):
    app.send_task("sampleapp.tasks.noop").get(timeout=30)
serial = count / (time.monotonic() - start)
start = time.monotonic()
pending = []
for _ in range(count):
    pending.append(app.send_task("sampleapp.tasks.noop"))
    if len(pending) >= window:
        pending.pop(0).get(timeout=30)
for result in pending:
    result.get(timeout=30)
parallel = count / (time.monotonic() - start)
print(f"{serial:.1f} {parallel:.1f}")
"""


def measure(inv, host, count, window):
    """(one at a time, in flight) tasks/s from a producer on ``host``."""
    conn = inv.hosts[host]
    remote = (
        f"set -a; . /etc/pyfleet/celery/{APP}.env; set +a; cd /srv/{APP}/current && "
        f"timeout 300 venv/bin/python - {count} {window}"
    )
    out = subprocess.run(
        [
            "ssh",
            *lab.ssh_options(lab.Lab(inv)),
            "-i",
            conn["ansible_ssh_private_key_file"],
            f"{lab.LAB_USER}@{conn['ansible_host']}",
            f"sudo -n sh -c {shlex.quote(remote)}",
        ],
        input=PRODUCER,
        capture_output=True,
        text=True,
        timeout=330,
        check=False,
    )
    if out.returncode != 0:
        sys.exit(f"producer on {host} failed: {(out.stderr or out.stdout).strip().splitlines()[-1:]}")
    serial, parallel = out.stdout.split()
    return float(serial), float(parallel)


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    host = sys.argv[2] if len(sys.argv) > 2 else "web1"
    window = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    inv = inventory.load("inventory/lab")
    default_hosts = [h for h in inv.groups["workers"] if "default" in (inv.hosts[h].get("celery_worker_types") or [])]
    figures = {len(default_hosts): measure(inv, host, count, window)}
    with tempfile.TemporaryDirectory() as tmp:
        grown = lab.grown_inventory(inv, tmp, EXTRA_HOST, "workers", {"celery_worker_types": ["default"]})
        try:
            lab.up(inventory.load(grown), log=lambda *_: None)
            ansible.playbook(grown, "site", quiet=True)
            figures[len(default_hosts) + 1] = measure(inventory.load(grown), host, count, window)
        finally:
            lab.remove_host(inv, EXTRA_HOST)
    print(f"no-op task round trips from {host}, {count} tasks per figure (tasks/s):")
    print(f"  {'default-type worker hosts':28s} {'one at a time':>14s} {f'{window} in flight':>14s}")
    for hosts, (serial, parallel) in figures.items():
        print(f"  {hosts:<28d} {serial:14.1f} {parallel:14.1f}")
    (s1, p1), (s2, p2) = figures.values()
    print(f"  ratio two/one hosts: one at a time {s2 / s1:.2f}x, in flight {p2 / p1:.2f}x")


if __name__ == "__main__":
    main()
