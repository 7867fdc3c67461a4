"""How long deploys take on the lab: a code-only redeploy, an unchanged deploy, and back.

1. code-only: a copy of the sample project with another VERSION, deployed to
   every app host (new wheelhouse of the app's own wheel, release venvs built
   offline, health-gated switch host by host);
2. unchanged: the same again (nothing to build or switch: the no-op path);
3. one app alone: another version of the first app only (the lab's hello: 2 web
   and 2 worker hosts);
4. back: the inventory's own source, as the lab was.
Bounded: four playbook runs. Needs the lab up and converged (`fab up`).

Usage: .venv/bin/python bench/redeploy.py
"""

import json
import shutil
import tempfile
import time
from pathlib import Path

from pyfleet import ansible, inventory

ROOT = Path(__file__).resolve().parent.parent

SAMPLE = ROOT / "examples" / "sampleapp"


def timed(inv, *args):
    start = time.monotonic()
    stats = ansible.playbook(inv.path, "deploy", *args, quiet=True)
    return time.monotonic() - start, ansible.total_changed(stats)


def main():
    inv = inventory.load("inventory/lab")
    apps = [a["name"] for a in next(iter(inv.hosts.values())).get("pyfleet_apps") or []]
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "sampleapp"
        shutil.copytree(SAMPLE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "dist", "build"))
        (copy / "sampleapp" / "version.py").write_text(f'VERSION = "9.9.{int(time.time())}"\n')
        sources = json.dumps({"deploy_sources": {name: str(copy) for name in apps}})
        figures = {
            "code-only redeploy": timed(inv, "-e", sources),
            "unchanged deploy": timed(inv, "-e", sources),
        }
        # One app alone (the first: the lab's hello has web and worker hosts), another version.
        (copy / "sampleapp" / "version.py").write_text(f'VERSION = "9.8.{int(time.time())}"\n')
        figures[f"code-only redeploy, {apps[0]} alone"] = timed(inv, "-e", sources, "-e", f"deploy_apps={apps[0]}")
    figures["back to the inventory's source"] = timed(inv)
    hosts = len(set(inv.groups.get("web", [])) | set(inv.groups.get("workers", [])))
    print(f"deploys of {', '.join(apps)} to {hosts} app hosts (web hosts one per batch, then worker hosts in waves):")
    for name, (seconds, changed) in figures.items():
        print(f"  {name:34s} {seconds:6.1f} s   (changed={changed})")


if __name__ == "__main__":
    main()
