"""No-op converge of playbooks/site.yml on the lab: stock Ansible settings vs pyfleet's.

Prints seconds for each and the ratio, measured in one run. Needs the lab up
(`fab lab.up`) and converged once (`fab site`). Usage: .venv/bin/python bench/converge_speed.py [rounds]
"""

import sys
import time

from pyfleet import ansible, inventory

STOCK = {  # Ansible's own defaults for what ansible.cfg tunes
    "ANSIBLE_STRATEGY": "linear",
    "ANSIBLE_PIPELINING": "false",
    "ANSIBLE_FORKS": "5",
    "ANSIBLE_SSH_ARGS": "-C -o ControlMaster=auto -o ControlPersist=60s",
    "ANSIBLE_INJECT_FACT_VARS": "true",
    "ANSIBLE_GATHERING": "implicit",
    "ANSIBLE_CACHE_PLUGIN": "memory",
}
NO_MITOGEN = {"ANSIBLE_STRATEGY": "linear"}


def timed(inv, env):
    start = time.monotonic()
    stats = ansible.playbook(inv.path, "site", quiet=True, extra_env=env)
    return time.monotonic() - start, ansible.total_changed(stats)


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    inv = inventory.load("inventory/lab")
    timed(inv, {})  # warm up: facts cache, SSH control sockets
    results = {"stock": [], "pyfleet without mitogen": [], "pyfleet (mitogen)": []}
    for _ in range(rounds):
        results["stock"].append(timed(inv, STOCK))
        results["pyfleet without mitogen"].append(timed(inv, NO_MITOGEN))
        results["pyfleet (mitogen)"].append(timed(inv, {}))
    best = {k: min(t for t, _ in v) for k, v in results.items()}
    print(f"no-op site.yml over {len(inv.hosts)} lab hosts, best of {rounds}:")
    for name, secs in best.items():
        changed = max(c for _, c in results[name])
        print(f"  {name:26s} {secs:6.1f} s   (changed={changed})")
    print(f"  speed-up stock -> pyfleet: {best['stock'] / best['pyfleet (mitogen)']:.1f}x")


if __name__ == "__main__":
    main()
