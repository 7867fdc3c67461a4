"""How pyfleet's run times grow with the fleet: labs of 6, 12 and 24 hosts.

A lab of its own (inventory `scale`, a copy of inventory/lab, its own podman
network) starts with the lab's six hosts and grows: half the new hosts web, half
workers of the `default` type. At each size it prints
1. first converge: site.yml right after the new hosts came up (new hosts set up,
   the others get their new upstreams and firewall openings);
2. no-op converge: site.yml again, three times, the shortest kept (changed=0 expected), with the CPU seconds it
   cost the controller (ansible-playbook and every process it started: workers,
   Mitogen's, ssh) and the hosts (their containers' cgroups): on real servers
   each host spends its part on its own CPU, and the controller's part is what
   grows with the fleet on one controller;
3. code-only deploy: a copy of the sample app with another VERSION, deployed as
   hello to every web and worker host (the others' apps untouched).
Bounded: five playbook runs per size; the lab is removed at the end (PYFLEET_KEEP_LAB=1
keeps it). Memory: about 150 MB per host (24 hosts: under 4 GB).

Usage: .venv/bin/python bench/scale.py [sizes, default 6 12 24]
"""

import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from pyfleet import ansible, inventory, lab
from pyfleet.podman import podman

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "examples" / "sampleapp"


def timed(inv, playbook, *args):
    start = time.monotonic()
    stats = ansible.playbook(inv.path, playbook, *args, quiet=True)
    return time.monotonic() - start, ansible.total_changed(stats)


def controller_cpu():
    """CPU seconds of this process's finished children and theirs (ansible-playbook and all it ran)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cgroups(inv):
    """The lab containers' cgroup paths (read before the timing: podman is a child process too)."""
    names = [lab.Lab(inv).container(host) for host in inv.hosts]
    return podman("inspect", "--format", "{{.State.CgroupPath}}", *names).stdout.split()


def hosts_cpu(paths):
    """CPU seconds the containers have used (cgroup v2 or v1 accounting), None where unreadable."""
    total = 0.0
    for path in paths:
        for stat, field, scale in (
            (f"/sys/fs/cgroup{path}/cpu.stat", "usage_usec", 1e-6),
            (f"/sys/fs/cgroup/unified{path}/cpu.stat", "usage_usec", 1e-6),
            (f"/sys/fs/cgroup/cpuacct{path}/cpuacct.usage", None, 1e-9),
        ):
            try:
                text = Path(stat).read_text()
            except OSError:
                continue
            values = dict(line.split() for line in text.splitlines()) if field else {None: text.strip()}
            total += int(values[field]) * scale
            break
        else:
            return None
    return total


def timed_with_cpu(inv, playbook):
    """``timed``, and the CPU seconds of the controller and of the hosts meanwhile."""
    paths = cgroups(inv)
    controller, hosts = controller_cpu(), hosts_cpu(paths)
    wall, changed = timed(inv, playbook)
    hosts_after = hosts_cpu(paths)
    return wall, changed, controller_cpu() - controller, None if hosts is None else hosts_after - hosts


def grow(inv_dir, have, want):
    """Add hosts to the inventory directory until it has ``want``: web and default workers in turn."""
    for n in range(have, want):
        number = n // 2 + 3  # web3/worker3 first: the lab has web1-2 and worker1-2
        if n % 2 == 0:
            lab.add_host(inv_dir, f"web{number}", "web")
        else:
            lab.add_host(inv_dir, f"worker{number}", "workers", {"celery_worker_types": ["default"]})


def code_only_source(tmp, n):
    copy = Path(tmp) / f"sampleapp-{n}"
    shutil.copytree(SAMPLE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "dist", "build"))
    (copy / "sampleapp" / "version.py").write_text(f'VERSION = "8.{n}.{int(time.time())}"\n')
    return json.dumps({"deploy_sources": {"hello": str(copy)}})


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [6, 12, 24]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        inv_dir = Path(tmp) / "scale"
        shutil.copytree(ROOT / "inventory" / "lab", inv_dir)
        have = 6
        try:
            for size in sizes:
                grow(inv_dir, have, size)
                have = max(have, size)
                inv = inventory.load(inv_dir)
                lab.up(inv, log=lambda _line: None)
                inv = inventory.load(inv_dir)
                first = timed(inv, "site")
                # the best of three: the first no-op can meet the hosts still settling from the
                # converge, and this machine's speed drifts by 10-20 % from one minute to the next
                noop = min(timed_with_cpu(inv, "site") for _ in range(3))
                deploy = timed(inv, "deploy", "-e", "deploy_apps=hello", "-e", code_only_source(tmp, size))
                rows.append((len(inv.hosts), first, noop, deploy))
                hosts_part = "n/a" if noop[3] is None else f"{noop[3]:.1f} s"
                print(
                    f"{len(inv.hosts):3d} hosts: first converge {first[0]:6.1f} s, no-op {noop[0]:6.1f} s "
                    f"(changed={noop[1]}; CPU: controller {noop[2]:.1f} s, {noop[2] / len(inv.hosts):.2f} s per host, "
                    f"hosts {hosts_part}), code-only deploy {deploy[0]:6.1f} s",
                    flush=True,
                )
        finally:
            if os.environ.get("PYFLEET_KEEP_LAB") != "1":
                lab.down(inventory.load(inv_dir))
    if len(rows) > 1:
        base, last = rows[0], rows[-1]
        print(
            f"{last[0]} hosts against {base[0]}: no-op {last[2][0] / base[2][0]:.1f}x, "
            f"first converge {last[1][0] / base[1][0]:.1f}x, code-only deploy {last[3][0] / base[3][0]:.1f}x"
        )


if __name__ == "__main__":
    main()
