"""How pyfleet's run times grow with the fleet: labs of 6, 12 and 24 hosts.

A lab of its own (inventory `scale`, a copy of inventory/lab, its own podman
network) starts with the lab's six hosts and grows: half the new hosts web, half
workers of the `default` type. At each size it prints
1. first converge: site.yml right after the new hosts came up (new hosts set up,
   the others get their new upstreams and firewall openings);
2. no-op converge: site.yml again (changed=0 expected);
3. code-only deploy: a copy of the sample app with another VERSION, deployed as
   hello to every web and worker host (the others' apps untouched).
Bounded: three playbook runs per size; the lab is removed at the end (PYFLEET_KEEP_LAB=1
keeps it). Memory: about 150 MB per host (24 hosts: under 4 GB).

Usage: .venv/bin/python bench/scale.py [sizes, default 6 12 24]
"""

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from pyfleet import ansible, inventory, lab

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "examples" / "sampleapp"


def timed(inv, playbook, *args):
    start = time.monotonic()
    stats = ansible.playbook(inv.path, playbook, *args, quiet=True)
    return time.monotonic() - start, ansible.total_changed(stats)


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
                noop = timed(inv, "site")
                deploy = timed(inv, "deploy", "-e", "deploy_apps=hello", "-e", code_only_source(tmp, size))
                rows.append((len(inv.hosts), first, noop, deploy))
                print(
                    f"{len(inv.hosts):3d} hosts: first converge {first[0]:6.1f} s, no-op {noop[0]:6.1f} s "
                    f"(changed={noop[1]}), code-only deploy {deploy[0]:6.1f} s",
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
