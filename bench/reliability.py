"""Requests through the load balancer while the fleet changes: how many fail.

A keepalive HTTPS load (pyfleet/load.py: GET / and POST /echo in turn, on every
app) runs through each scenario, and the table gives requests, failed, resent
(an idle keepalive connection closed by a reload, sent again as browsers do)
and p99 latency:

1. deploy: a code change to every app, rolled out host by host;
2. rollback: `fab rollback` (undoes that deploy);
3. restart: `fab restart <first app>` (hosts drained one at a time);
4. deploy --batch 2: a code change, both web hosts at once;
5. new domain: site.yml with one more domain for the first app (load balancer
   and web hosts' nginx reload), then back;
6. web host stopped: `podman stop` of the last web host, then started again.

Bounded: each load stops with its scenario (at most 15 minutes), traffic goes
only to the lab's load balancer. Needs the lab up and converged (`fab up`).
Takes about 6 minutes.

Usage: .venv/bin/python bench/reliability.py [--inventory inventory/lab] [--connections 4]
"""

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from pyfleet import ansible, commands, inventory, lab
from pyfleet.load import Load
from pyfleet.podman import podman
from pyfleet.shell import VENV_BIN
from pyfleet.tables import table

ROOT = Path(__file__).resolve().parent.parent

SAMPLE = ROOT / "examples" / "sampleapp"


def sample_copy(tmp, version):
    dest = Path(tmp) / f"sampleapp-{version}"
    shutil.copytree(SAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "dist", "build"))
    (dest / "sampleapp" / "version.py").write_text(f'VERSION = "{version}"\n')
    return dest


def fab(inv, *args):
    subprocess.run(
        [str(VENV_BIN / "fab"), *args, "--inventory", str(inv.path)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL
    )


def code_deploy(inv, apps, tmp, *extra):
    source = sample_copy(tmp, f"9.{int(time.time())}")
    sources = json.dumps({"deploy_sources": {a: str(source) for a in apps}})
    commands.run_release_playbook(inv, "deploy", "deploy", ["-e", sources, *extra], apps)


def with_domain(inv, tmp, app, domain):
    """A copy of the inventory (same name, so the same lab) whose ``app`` serves one more domain."""
    copy = Path(tmp) / "inv" / inv.path.name
    shutil.rmtree(copy.parent, ignore_errors=True)
    shutil.copytree(inv.path, copy)
    return lab.add_domain(copy, app, domain)


def stop_and_start(inv, host):
    the_lab = lab.Lab(inv)
    podman("stop", "-t", "10", the_lab.container(host))
    time.sleep(15)
    podman("start", the_lab.container(host))
    lab.wait_for_ssh(the_lab, host, lab.address(the_lab, host))
    time.sleep(10)  # the load balancer tries the host again after fail_timeout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", default="inventory/lab")
    parser.add_argument("--connections", type=int, default=4, help="keepalive connections per app")
    args = parser.parse_args()
    inv = inventory.load(args.inventory)
    any_host = next(iter(inv.hosts.values()))
    apps = {a["name"]: a["domains"][0] for a in any_host.get("pyfleet_apps") or []}
    lb = inv.hosts[sorted(inv.groups["loadbalancers"])[0]].get("ansible_host")
    first = next(iter(apps))
    web_last = sorted(inv.groups["web"])[-1]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        scenarios = [
            ("deploy (code change, every app)", lambda: code_deploy(inv, list(apps), tmp)),
            ("fab rollback", lambda: fab(inv, "rollback")),
            (f"fab restart {first}", lambda: fab(inv, "restart", first)),
            ("deploy --batch 2", lambda: code_deploy(inv, list(apps), tmp, "-e", "deploy_batch_size=2")),
            (
                "site.yml: a new domain, then back",
                lambda: (
                    ansible.playbook(with_domain(inv, tmp, first, f"new.{apps[first]}"), "site", quiet=True),
                    ansible.playbook(inv.path, "site", quiet=True),
                ),
            ),
            (f"{web_last} stopped hard, then started", lambda: stop_and_start(inv, web_last)),
        ]
        for name, action in scenarios:
            load = Load(lb, apps, connections=args.connections, max_seconds=900).start()
            time.sleep(2)
            started = time.monotonic()
            try:
                action()
                outcome = ""
            except Exception as exc:  # the table says what went wrong
                outcome = f" ({type(exc).__name__}: {str(exc)[:80]})"
            seconds = time.monotonic() - started
            time.sleep(2)
            report = load.stop()
            rows.append(
                [
                    name + outcome,
                    f"{seconds:.0f}",
                    report.total,
                    report.failed,
                    sum(report.resent.values()),
                    report.p99_ms(),
                ]
            )
            print(f"{name}: {report.describe(5)}", flush=True)
        # Leave the lab on the inventory's own source.
        ansible.playbook(inv.path, "deploy", quiet=True)
    print()
    print(table(["scenario", "seconds", "requests", "failed", "resent", "p99 ms"], rows))


if __name__ == "__main__":
    main()
