"""pyfleet operator commands: `fab --list` shows them, `fab --help TASK` explains one."""

import functools
import os
import sys
import time

from fabric import task
from invoke import Collection, Exit

from pyfleet import ansible, inventory, lab, remote, status as statusmod, suite
from pyfleet.errors import PyfleetError
from pyfleet.tables import table


def friendly(func):
    """Report PyfleetError as one line on stderr with exit code 1, never a traceback."""

    @functools.wraps(func)
    def wrapper(c, *args, **kwargs):
        try:
            return func(c, *args, **kwargs)
        except PyfleetError as exc:
            raise Exit(f"error: {exc}", code=1) from None
        except KeyboardInterrupt:
            raise Exit("interrupted", code=130) from None

    return wrapper


def _inventory(c, path):
    return inventory.load(path or c.pyfleet.inventory)


def _mitogen(c):
    return c.pyfleet.mitogen and os.environ.get("PYFLEET_MITOGEN", "1") != "0"


# --- lab ------------------------------------------------------------------

@task(help={"inventory": "inventory directory (default: inventory/lab)"})
@friendly
def lab_up(c, inventory=None):
    """Create the lab: one podman host (systemd + sshd) per inventory host."""
    inv = _inventory(c, inventory)
    addresses, started = lab.up(inv)
    print(table(["host", "address", "groups", "state"],
                [[h, addresses[h], ",".join(inv.groups_of(h)), "started" if h in started else "was up"]
                 for h in inv.hosts]))


@task(help={"inventory": "inventory directory (default: inventory/lab)"})
@friendly
def lab_down(c, inventory=None):
    """Remove the lab's hosts and its podman network."""
    inv = _inventory(c, inventory)
    names = lab.down(inv)
    print(f"removed {len(names)} lab host(s) and network {lab.Lab(inv).network}")


@task(help={"host": "inventory host name", "inventory": "inventory directory (default: inventory/lab)"})
@friendly
def lab_ssh(c, host, inventory=None):
    """Open a root shell on a lab host."""
    cmd = lab.ssh_command(_inventory(c, inventory), host)
    os.execvp(cmd[0], cmd)


# --- converge and the main job ----------------------------------------------

@task(help={"inventory": "inventory directory (default: inventory/lab)",
            "limit": "only these hosts or groups (Ansible --limit)",
            "check": "dry run: show what would change (--check --diff)"})
@friendly
def site(c, inventory=None, limit=None, check=False):
    """Converge the whole stack (playbooks/site.yml) on the inventory's hosts."""
    inv = _inventory(c, inventory)
    args = (["--limit", limit] if limit else []) + (["--check", "--diff"] if check else [])
    stats = ansible.playbook(inv.path, "site", *args, mitogen=_mitogen(c))
    print(f"site: {len(stats)} host(s), {ansible.total_changed(stats)} change(s)")


@task(help={"inventory": "inventory directory (default: inventory/lab)"})
@friendly
def up(c, inventory=None):
    """The main job: lab hosts up, whole stack converged, a summary of what runs where."""
    inv = _inventory(c, inventory)
    timings = {}
    t = time.monotonic()
    addresses, _ = lab.up(inv)
    timings["lab up"] = time.monotonic() - t
    t = time.monotonic()
    stats = ansible.playbook(inv.path, "site", mitogen=_mitogen(c))
    timings["site.yml"] = time.monotonic() - t
    print()
    print(table(["host", "address", "groups", "changed"],
                [[h, addresses.get(h), ",".join(inv.groups_of(h)), stats.get(h, {}).get("changed")]
                 for h in inv.hosts]))
    print("\n" + "  ".join(f"{k}: {v:.1f} s" for k, v in timings.items()))
    print(f"lab {lab.Lab(inv).name} is up; `fab lab.ssh HOST` opens a shell, `fab lab.down` removes it")


@task(help={"inventory": "inventory directory (default: inventory/lab)",
            "limit": "only these hosts or groups"})
@friendly
def status(c, inventory=None, limit=None):
    """Show every pyfleet service on every host: state, release serving, since when."""
    inv = _inventory(c, inventory)
    hosts = inv.select(limit)
    outputs = remote.run_on(inv, hosts, statusmod.PROBE)
    rows = [row for h in hosts for row in statusmod.rows(h, outputs[h][1])]
    print(table(["host", "service", "state", "release", "since"], rows))


@task(help={"phase": "run only this phase: unit, lint, molecule, e2e (default: all)",
            "scenario": "only this molecule scenario"})
@friendly
def test(c, phase=None, scenario=None):
    """Run the whole test suite: unit tests, lint, molecule scenarios, lab end-to-end."""
    results = suite.run(phase=phase, scenario=scenario)
    print()
    print(table(["phase", "result", "seconds"], [[r.name, r.result, f"{r.seconds:.0f}"] for r in results]))
    failed = [r.name for r in results if r.result != "passed"]
    if failed:
        raise Exit(f"error: failed: {', '.join(failed)}", code=1)


lab_ns = Collection("lab")
lab_ns.add_task(lab_up, "up")
lab_ns.add_task(lab_down, "down")
lab_ns.add_task(lab_ssh, "ssh")

ns = Collection(up, site, status, test, lab_ns)
ns.configure({"pyfleet": {"inventory": "inventory/lab", "mitogen": True}})

if __name__ == "__main__":
    sys.exit("run these with fab: .venv/bin/fab --list")
