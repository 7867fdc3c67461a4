"""How long `fab topology` takes on a generated inventory of N hosts (default 500).

The inventory is the lab's (its group_vars: apps, Celery catalogue, routes)
with N hosts: 2 load balancers, 1 broker, and the rest split between web
and worker hosts. Prints the seconds of reading the inventory (ansible-inventory)
and of the fleet plan, and of the whole `fab topology` command. Nothing is contacted.

Usage: .venv/bin/python bench/topology_scale.py [N]
"""

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from pyfleet import inventory, plan as fleet_plan

ROOT = Path(__file__).resolve().parent.parent


def generated(directory, count):
    """An inventory dir of ``count`` hosts with the lab's group_vars."""
    webs = (count - 3) // 2
    workers = count - 3 - webs
    hosts = {
        "loadbalancers": {"hosts": {f"lb{i}": {"ansible_host": f"10.90.0.{i}"} for i in (1, 2)}},
        "brokers": {"hosts": {"broker1": {"ansible_host": "10.90.0.3"}}},
        "web": {"hosts": {f"web{i}": {"ansible_host": f"10.91.{i // 250}.{i % 250 + 1}"} for i in range(webs)}},
        "workers": {
            "hosts": {
                f"worker{i}": {
                    "ansible_host": f"10.92.{i // 250}.{i % 250 + 1}",
                    "celery_worker_types": ["default", "io"] if i % 2 else ["cpu"],
                }
                for i in range(workers)
            }
        },
    }
    hosts["workers"]["hosts"]["worker0"]["celery_beat"] = True
    directory.mkdir()
    (directory / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": hosts}}))
    shutil.copytree(ROOT / "inventory" / "lab" / "group_vars", directory / "group_vars")
    return directory


def main(count):
    with tempfile.TemporaryDirectory() as tmp:
        path = generated(Path(tmp) / "scale", count)
        start = time.monotonic()
        inv = inventory.load(path, with_connection=False)
        read = time.monotonic() - start
        start = time.monotonic()
        fleet_plan.from_inventory(inv, check_paths=False)
        planned = time.monotonic() - start
        start = time.monotonic()
        subprocess.run(
            [
                str(ROOT / ".venv" / "bin" / "fab"),
                "topology",
                "--inventory",
                str(path),
                "--picture",
                str(Path(tmp) / "t.svg"),
            ],
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        whole = time.monotonic() - start
    print(f"{count} hosts: inventory read {read:.2f} s, plan {planned:.2f} s, fab topology {whole:.2f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
