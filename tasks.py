"""pyfleet operator commands: `fab --list` shows them, `fab --help TASK` explains one."""

import functools
import os
import sys
import time

from fabric import task
from fabric.executor import Executor as FabricExecutor
from invoke import Collection, Exit

from pyfleet import (
    ansible,
    commands,
    inventory,
    lab,
    orphans,
    plan as fleet_plan,
    remote,
    status as statusmod,
    suite,
    topology as topo,
)
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
    print(
        table(
            ["host", "address", "groups", "state"],
            [[h, addresses[h], ",".join(inv.groups_of(h)), "started" if h in started else "was up"] for h in inv.hosts],
        )
    )


@task(help={"inventory": "inventory directory (default: inventory/lab)"})
@friendly
def lab_down(c, inventory=None):
    """Remove the lab's hosts and its podman network."""
    inv = _inventory(c, inventory)
    names = lab.down(inv)
    print(f"removed {len(names)} lab host(s) and network {lab.Lab(inv).network}")


@task(
    help={
        "host": "inventory host name",
        "inventory": "inventory directory (default: inventory/lab)",
        "command": "run this instead of a shell (also: fab lab.ssh web1 -- COMMAND)",
    }
)
@friendly
def lab_ssh(c, host, inventory=None, command=None):
    """Open a shell on a lab host as its login user, deploy (sudo -i for root); the host key is checked."""
    cmd = lab.ssh_command(_inventory(c, inventory), host, command)
    os.execvp(cmd[0], cmd)


class Executor(FabricExecutor):
    """Fabric's, except for what follows `--` when no -H hosts are given.

    `fab lab.ssh web1 -- COMMAND` runs COMMAND on the lab host. Fabric itself runs
    what follows `--` only on -H hosts and otherwise stops with a traceback
    (NothingToDo): with any other command that is one line now.
    """

    def expand_calls(self, calls, apply_hosts=True):
        if apply_hosts and self.core.remainder and not self.core[0].args.hosts.value:
            ssh = [call for call in calls if call.task.body is lab_ssh.body]
            if not ssh:
                raise Exit(
                    "error: `-- COMMAND` runs COMMAND on the hosts given with -H, or on a lab host with "
                    "fab lab.ssh HOST -- COMMAND; pyfleet's commands take no `--`",
                    code=1,
                )
            for call in ssh:
                call.kwargs["command"] = self.core.remainder
            self.core.remainder = ""
        return super().expand_calls(calls, apply_hosts)


# --- converge and the main job ----------------------------------------------


@task(
    help={
        "inventory": "inventory directory (default: inventory/lab)",
        "limit": "only these hosts or groups (Ansible --limit)",
        "check": "dry run: show what would change (--check --diff)",
        "purge": "also remove the data (base dir, user, env files) of apps no longer on a host",
    }
)
@friendly
def site(c, inventory=None, limit=None, check=False, purge=False):
    """Converge the whole stack (playbooks/site.yml) on the inventory's hosts; remove what it no longer names."""
    inv = _inventory(c, inventory)
    fleet_plan.from_inventory(inv)  # the pre-check of fab check and deploy: a bad inventory stops here, before any host
    commands.check_limit(inv, limit)
    args = (["--limit", limit] if limit else []) + (["--check", "--diff"] if check else [])
    args += ["-e", "pyfleet_purge=true"] if purge else []
    stats = ansible.playbook(inv.path, "site", *args, mitogen=_mitogen(c))
    print(f"site: {len(stats)} host(s), {ansible.total_changed(stats)} change(s)")


@task(help={"inventory": "inventory directory (default: inventory/lab)"})
@friendly
def up(c, inventory=None):
    """The main job: lab hosts up, whole stack converged and the apps deployed, their URLs printed."""
    inv = _inventory(c, inventory)
    # A bad inventory stops here, before any host is touched; the addresses
    # come with the lab (site.yml's plan checks them).
    the_plan = fleet_plan.from_inventory(inv, check_addresses=False)
    timings = {}
    t = time.monotonic()
    lab.up(inv)
    timings["lab up"] = time.monotonic() - t
    t = time.monotonic()
    inv = _inventory(c, inventory)  # now with the lab's addresses
    stats = ansible.playbook(inv.path, "site", mitogen=_mitogen(c))
    timings["site.yml"] = time.monotonic() - t
    print()
    print(table(["host", "address", "groups", "runs"], topo.rows(inv, the_plan)))
    print(
        "\n" + "  ".join(f"{k}: {v:.1f} s" for k, v in timings.items()) + f"  changes: {ansible.total_changed(stats)}"
    )
    lbs = inv.groups.get("loadbalancers") or []
    if lbs:
        lb_ip = inv.hosts[lbs[0]].get("ansible_host", lbs[0])
        for app in the_plan["apps"]:
            domain = app["domains"][0]
            print(f"{app['name']}: https://{domain}/  (lab: curl -k --resolve {domain}:443:{lb_ip} https://{domain}/)")
    print(f"lab {lab.Lab(inv).name} is up; `fab status` shows what runs where, `fab lab.down` removes it")


INV_HELP = "inventory directory (default: inventory/lab)"


@task(help={"inventory": INV_HELP, "limit": "only these hosts or groups"})
@friendly
def status(c, inventory=None, limit=None):
    """Show every pyfleet service on every host: state, release serving, since when."""
    inv = _inventory(c, inventory)
    hosts = inv.select(limit)
    the_plan = fleet_plan.from_inventory(inv, check_paths=False)
    outputs = remote.run_on(inv, hosts, statusmod.probe(statusmod.base_dirs(inv, the_plan)) + "\n" + orphans.PROBE)
    rows = [row for h in hosts for row in statusmod.rows(h, outputs[h][1])]
    print(table(["host", "service", "state", "release", "since"], rows))
    for line in statusmod.orphan_lines(hosts, outputs, the_plan):
        print(line)


@task(
    help={
        "inventory": INV_HELP,
        "app": "only this app (default: every app)",
        "batch": "web hosts switched at a time (default 1)",
    }
)
@friendly
def deploy(c, inventory=None, app=None, batch=1):
    """Deploy the apps: build once, then switch web hosts in batches, health-gated and drained."""
    inv = _inventory(c, inventory)
    _, apps = commands._apps(inv, app)
    extra = ["-e", f"deploy_batch_size={int(batch)}"] + (["-e", f"deploy_apps={app}"] if app else [])
    commands.run_release_playbook(inv, "deploy", "deploy", extra, apps, mitogen=_mitogen(c))


@task(
    help={
        "inventory": INV_HELP,
        "app": "only this app (default: every app the last deploy changed)",
        "release": "release id to return to (default: the one each app ran before the last deploy)",
        "batch": "web hosts switched at a time (default 1)",
    }
)
@friendly
def rollback(c, inventory=None, app=None, release=None, batch=1):
    """Undo the last deploy (every app it changed, back to the release it ran before), or go to a named release.

    Every target is checked on every host before anything is switched; the
    summary lists per app and host the release served afterwards.
    """
    inv = _inventory(c, inventory)
    _, apps = commands._apps(inv, app)
    extra = ["-e", f"deploy_batch_size={int(batch)}"]
    prepare = commands.rollback_prepare(inv, apps, release=release, app_given=bool(app))
    commands.run_release_playbook(inv, "rollback", "rollback", extra, apps, mitogen=_mitogen(c), prepare=prepare)


@task(help={"inventory": INV_HELP, "limit": "only these hosts or groups (default: all)"})
@friendly
def releases(c, inventory=None, limit=None):
    """List the releases on each host, which one is current, and whether all hosts agree."""
    commands.releases(_inventory(c, inventory), limit)


@task(
    help={
        "service": "nginx, redis, rabbitmq, beat, flower, an app name or a worker type",
        "inventory": INV_HELP,
        "limit": "host or group (default: every host running it)",
        "lines": "lines of history to show (default 50)",
        "follow": "keep following new lines",
    }
)
@friendly
def logs(c, service, inventory=None, limit=None, lines=50, follow=False):
    """Show the journal of a service on one host or a group, optionally following it."""
    commands.logs(_inventory(c, inventory), service, limit, lines=lines, follow=follow)


@task(help={"inventory": INV_HELP, "picture": "SVG file to write (default: topology.svg)"})
@friendly
def topology(c, inventory=None, picture="topology.svg"):
    """Show which host runs what (from the inventory alone) and draw it to an SVG file."""
    inv = _inventory(c, inventory)
    the_plan = fleet_plan.from_inventory(inv, check_paths=False)
    print(table(["host", "address", "groups", "runs"], topo.rows(inv, the_plan)))
    with open(picture, "w", encoding="utf-8") as fh:
        fh.write(topo.svg(inv, the_plan))
    print(f"picture: {picture}")


@task(help={"inventory": INV_HELP, "limit": "only these hosts or groups"})
@friendly
def check(c, inventory=None, limit=None):
    """Validate the inventory and variables, then show what a converge would change (--check --diff)."""
    inv = _inventory(c, inventory)
    the_plan = fleet_plan.from_inventory(inv)
    commands.check_limit(inv, limit)
    print(
        f"inventory {inv.path}: {len(inv.hosts)} hosts, {len(the_plan['apps'])} apps, "
        f"{len(the_plan['celery'].get('types') or {})} worker types: valid"
    )
    args = ["--check", "--diff"] + (["--limit", limit] if limit else [])
    output = []
    stats = ansible.playbook(inv.path, "site", *args, mitogen=_mitogen(c), output=output)
    print(f"check: {ansible.total_changed(stats)} change(s) would be made")
    print(commands.check_suggestion(output))


@task(
    help={
        "service": "nginx, redis, rabbitmq, beat, flower, an app name or a worker type",
        "inventory": INV_HELP,
        "limit": "only these hosts (default: every host running it)",
    }
)
@friendly
def restart(c, service, inventory=None, limit=None):
    """Restart a service or a worker type: one host at a time, apps drained and health-checked."""
    inv = _inventory(c, inventory)
    hosts = commands.restart_targets(inv, service)
    extra = ["-e", f"restart_service={service}", "-e", f"restart_hosts={hosts}"] + (["--limit", limit] if limit else [])
    ansible.playbook(
        inv.path, "restart", *extra, mitogen=_mitogen(c), extra_env={"ANSIBLE_STDOUT_CALLBACK": "pyfleet_progress"}
    )
    print(f"restarted {service} on {hosts}")


@task(help={"inventory": INV_HELP, "type": "only this worker type", "host": "only this host"})
@friendly
def workers(c, inventory=None, type=None, host=None):
    """Inspect live Celery workers by type and host: active, reserved, processed, queues."""
    commands.workers(_inventory(c, inventory), type, host)


@task(help={"inventory": INV_HELP, "last": "how many records (default 20)"})
@friendly
def history(c, inventory=None, last=20):
    """Show the audit log of deploys, rollbacks and maintenance switches: who, when, what release, result."""
    commands.show_history(_inventory(c, inventory), last)


@task(
    help={
        "app": "the app to pin (its name in pyfleet_apps)",
        "extra": "optional dependency groups of pyproject.toml to include, comma-separated",
        "upgrade": "newest versions (by default the file's current pins stay where they fit)",
        "inventory": INV_HELP,
    }
)
@friendly
def pin(c, app=None, extra="", upgrade=False, inventory=None):
    """Pin an app's requirements exactly, for the hosts' Python and platform, from its uv.lock, requirements.in or
    pyproject.toml (with uv); writes the spec's requirements file."""
    extras = [e.strip() for e in extra.split(",") if e.strip()]
    commands.pin(_inventory(c, inventory), app, extras, upgrade)


@task(
    help={
        "state": "on, off, or status (which apps are in maintenance on each load balancer)",
        "app": "only this app (default: every app)",
        "inventory": INV_HELP,
    }
)
@friendly
def maintenance(c, state, app=None, inventory=None):
    """Serve the maintenance page (503, Retry-After) for an app's domains, or stop; fab history records it.

    The app's health path still reaches it, deploys go on behind the page, and
    the switch outlives fab site.
    """
    commands.maintenance(_inventory(c, inventory), state, app, mitogen=_mitogen(c))


@task(
    help={"inventory": INV_HELP, "clear": "remove the lock (of --app) on purpose", "app": "the app whose lock to clear"}
)
@friendly
def lock(c, inventory=None, clear=False, app=None):
    """Show deploy locks (owner, age); --clear --app NAME removes a lock left by a crashed deploy."""
    if clear and not app:
        raise PyfleetError("--clear needs --app NAME (the app whose lock to remove)")
    commands.show_locks(_inventory(c, inventory), app if clear else None)


@task(
    help={
        "phase": "run only this phase: unit, lint, molecule, e2e, mutants (default: all but mutants)",
        "scenario": "only this molecule scenario",
    }
)
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

ns = Collection(
    up,
    site,
    deploy,
    rollback,
    pin,
    maintenance,
    status,
    releases,
    logs,
    restart,
    workers,
    topology,
    check,
    history,
    lock,
    test,
    lab_ns,
)
ns.configure({"pyfleet": {"inventory": "inventory/lab", "mitogen": True}})

if __name__ == "__main__":
    sys.exit("run these with fab: .venv/bin/fab --list")
