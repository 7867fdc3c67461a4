"""What the operator commands in tasks.py do; each function prints its result."""

import json
import os
import re
import shlex
import sys
import tempfile
import threading
import time

from pyfleet import (
    ansible,
    audit,
    maintenance as maint,
    pin as pinmod,
    plan as fleet_plan,
    remote,
    rollback,
    rollout,
    status,
)
from pyfleet.errors import PyfleetError
from pyfleet.patterns import match_hosts
from pyfleet.tables import table


def releases_probe(dirs):
    """The command ``fab releases`` runs on a host: "<app>|<release>|current or empty|<REVISION's first line>".

    ``dirs``: ``{app: base_dir}``; an app that is not on the host prints nothing.
    """
    parts = []
    for app, base in sorted(dirs.items()):
        d = shlex.quote(base + "/releases")
        parts.append(
            f'cur=$(basename "$(readlink {shlex.quote(base + "/current")} 2>/dev/null)" 2>/dev/null); '
            f'for r in $(ls {d} 2>/dev/null | sort); do mark=\'\'; [ "$cur" = "$r" ] && mark=current; '
            f'printf \'%s|%s|%s|%s\\n\' {shlex.quote(app)} "$r" "$mark" "$(head -n1 {d}/$r/REVISION 2>/dev/null)"; done; '
        )
    return "".join(parts) + "true"


def check_limit(inv, limit):
    """Refuse an Ansible ``--limit`` that matches no inventory host (Ansible would only warn and do nothing)."""
    if not limit or any(c in limit for c in "~@"):  # regexes and @retry files: Ansible's own business
        return
    if not match_hosts(limit, inv.groups):
        groups = sorted(g for g in inv.groups if g not in ("all", "ungrouped"))
        raise PyfleetError(
            f"--limit {limit}: matches no host of inventory {inv.path}; "
            f"use hosts ({', '.join(inv.hosts)}) or groups ({', '.join(groups)})"
        )


def _apps(inv, app=None):
    """The validated plan, and the app names to act on (all, or the one asked for)."""
    the_plan = fleet_plan.from_inventory(inv)
    names = [a["name"] for a in the_plan["apps"]]
    if app and app not in names:
        raise PyfleetError(f"no app '{app}' in pyfleet_apps of {inv.path}; apps: {', '.join(names) or 'none'}")
    return the_plan, ([app] if app else names)


def _fleet(inv, apps):
    """``fleet_state`` of ``apps``: each host's current release and the releases it keeps."""
    the_plan = fleet_plan.from_inventory(inv, check_paths=False)
    specs = {a["name"]: a for a in the_plan["apps"]}
    return rollback.fleet_state(inv, specs, apps, lambda spec: the_plan["placement"][spec["name"]]["web"])


def run_release_playbook(inv, action, playbook, extra, apps, mitogen=True, prepare=None):
    """Lock the apps, run a deploy-like playbook with progress, record the history, unlock.

    Each host's release of each app is read before and after the playbook: the
    history record keeps them (``changes``: {app: {host: {from, to}}}) and the
    summary lists, per app and host, the release it serves now. ``prepare(before)``
    (a rollback's plan) returns ``(extra args, record fields, notes)`` or raises
    PyfleetError, one line, before anything is switched; no extra args and no
    error: nothing to switch. Returns the summary dict; raises PyfleetError
    (after recording) when it failed.
    """
    taken = audit.acquire(inv, apps, action)
    start = time.monotonic()
    fd, summary_path = tempfile.mkstemp(prefix="pyfleet-summary-", suffix=".json")
    os.close(fd)
    env = {"ANSIBLE_STDOUT_CALLBACK": "pyfleet_progress", "PYFLEET_SUMMARY": summary_path}
    error, change_map, fields = None, None, {}
    try:
        before = _fleet(inv, apps)
        more, notes = list(extra), []
        if prepare:
            args, fields, notes = prepare(before)
            for note in notes:
                print(note)
            if not args:
                print(f"{action}: every host already serves its target release; nothing to switch")
            more += args
        summary = {}
        if not prepare or more != list(extra):
            try:
                ansible.playbook(inv.path, playbook, *more, mitogen=mitogen, extra_env=env)
            except PyfleetError as exc:
                error = exc
            summary = _read_summary(summary_path)
        try:
            change_map = rollback.changes(before, _fleet(inv, apps))
        except PyfleetError as exc:  # a host went away: say so, keep the record
            print(f"could not read the releases after the {action}: {exc}")
        result = "failed" if error else "ok"
        release = (
            rollback.release_text(change_map)
            if change_map is not None
            else summary.get("custom", {}).get("release", "")
        )
        record = {
            "id": audit.new_id(),
            "when": audit.now(),
            "who": audit.operator(),
            "action": action,
            "apps": apps,
            "release": release,
            "result": result,
            "reason": str(error or ""),
            "seconds": round(time.monotonic() - start, 1),
        }
        if change_map is not None:
            record.update(changes=change_map, releases=rollback.releases_now(change_map))
        record.update(fields)
        audit.record(inv, record)
    finally:
        audit.release(inv, taken)
        os.unlink(summary_path)
    print_summary(action, summary, time.monotonic() - start, change_map)
    if error:
        raise PyfleetError(f"{action} failed: {error}")
    return summary


def rollback_prepare(inv, apps, release=None, app_given=False):
    """``prepare`` for ``fab rollback``: plan it from the history and the hosts, check every target first."""

    def prepare(before):
        the_plan = rollback.plan_rollback(audit.history(inv, 1000), before, apps, release=release, app_given=app_given)
        notes = list(the_plan.notes) + [f"{app}: back to {rel}" for app, rel in sorted(the_plan.targets.items())]
        fields = {"undoes": the_plan.undoes, "targets": the_plan.targets}
        if not the_plan.switch:
            return [], fields, notes
        switching = the_plan.hosts()
        fleet = fleet_plan.from_inventory(inv, check_paths=False)
        order = rollout.plan_rollout(
            [h for h in inv.hosts if h in switching], fleet["placement"], fleet["celery"].get("hosts")
        )
        # The rollout names every host that switches: playbooks/rollback.yml needs no host pattern.
        return ["-e", json.dumps({"rollback_targets": the_plan.switch, "rollback_rollout": order})], fields, notes

    return prepare


def _read_summary(path):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def print_summary(action, summary, seconds, change_map=None):
    """The end of a deploy: release, hosts switched, per app and host the release served now, failures."""
    if change_map is not None:
        release = rollback.release_text(change_map)
        switched = rollback.switched_hosts(change_map)
    else:
        release = summary.get("custom", {}).get("release", "")
        switched = summary.get("custom", {}).get("switched") or sorted(
            h for h, tasks in (summary.get("changed") or {}).items() if h != "localhost"
        )
    print()
    print(
        f"{action}: release {release or '-'}; hosts switched: {', '.join(switched) or 'none'}; {seconds:.0f} s in all"
    )
    unchanged = summary.get("custom", {}).get("unchanged") or []
    if unchanged:
        print(f"unchanged, no task on any host: {', '.join(unchanged)}")
    plays = summary.get("plays") or []
    if plays:
        print(table(["phase", "hosts", "seconds"], [[p["name"], ", ".join(p["hosts"]), p["seconds"]] for p in plays]))
    if change_map:
        print(table(["app", "host", "serves", "before"], rollback.summary_rows(change_map)))
        for line in rollback.verdicts(change_map):
            print(line)
    for f in summary.get("failures") or []:
        print(f["line"])


def releases(inv, limit=None):
    """Releases per host and app, which one is current, and whether the hosts agree."""
    hosts = inv.select(limit or "all")
    outputs = remote.run_on(inv, hosts, releases_probe(status.base_dirs(inv)))
    rows, current = [], {}
    for h in hosts:
        for line in outputs[h][1].splitlines():
            app, rel, mark, revision = [*line.split("|"), "", "", ""][:4]
            rows.append([h, app, rel, "*" if mark else "", revision])
            if mark:
                current.setdefault(app, {})[h] = rel
    if not rows:
        print("no releases on these hosts; run fab deploy")
        return {}
    print(table(["host", "app", "release", "current", "revision"], rows))
    for app, per_host in sorted(current.items()):
        ids = set(per_host.values())
        verdict = (
            f"all hosts on {ids.pop()}"
            if len(ids) == 1
            else "hosts DISAGREE: " + ", ".join(f"{h}={r}" for h, r in sorted(per_host.items()))
        )
        print(f"{app}: {verdict}")
    return current


# Services named after their package: fab name -> systemd unit.
SYSTEM_UNITS = {
    "nginx": "nginx.service",
    "redis": "redis-server.service",
    "redis-server": "redis-server.service",
    "rabbitmq": "rabbitmq-server.service",
    "rabbitmq-server": "rabbitmq-server.service",
}


def unit_pattern(inv, service):
    """systemd unit glob for a service name: nginx, redis, rabbitmq, beat, flower, an app, or a worker type."""
    the_plan = fleet_plan.from_inventory(inv, check_paths=False)
    apps = [a["name"] for a in the_plan["apps"]]
    types = list((the_plan["celery"].get("types") or {}).keys())
    if service in SYSTEM_UNITS:
        return SYSTEM_UNITS[service]
    if service in ("beat", "flower"):
        return f"pyfleet-*-{service}.service"
    if service in apps:
        return f"pyfleet-{service}@*.service"
    if service in types:
        return f"pyfleet-*-worker@{service}.service"
    raise PyfleetError(
        f"unknown service '{service}'; choose nginx, redis, rabbitmq, beat, flower, an app ({', '.join(apps)}) "
        f"or a worker type ({', '.join(types)})"
    )


class _Prefixed:
    """A stream that prefixes each line with the host name (for logs of several hosts)."""

    lock = threading.Lock()

    def __init__(self, host, width):
        self.prefix = f"{host:<{width}} | "
        self.buffer = ""

    def write(self, data):
        self.buffer += data
        *lines, self.buffer = self.buffer.split("\n")
        with self.lock:
            for line in lines:
                sys.stdout.write(self.prefix + line + "\n")
            sys.stdout.flush()

    def flush(self):
        pass


def logs(inv, service, limit, lines=50, follow=False):
    """The journal of a service on the hosts that run it (all hosts of ``limit``)."""
    pattern = unit_pattern(inv, service)
    hosts = inv.select(limit or "all")
    present = remote.run_on(inv, hosts, f"systemctl list-units --all --no-legend --plain '{pattern}' | grep -q .")
    hosts = [h for h in hosts if present[h][0] == 0]
    if not hosts:
        raise PyfleetError(
            f"service {service} ({pattern}) is not deployed on {limit or 'any host'}; "
            "see fab status for what runs where"
        )
    cmd = f"journalctl --no-pager -o short-iso -n {int(lines)} -u '{pattern}'" + (" -f" if follow else "")
    width = max(len(h) for h in hosts)

    errors = []

    def one(h):
        conn = remote.connection(inv, h)
        try:
            remote.run(conn, cmd, hide=False, out_stream=_Prefixed(h, width), err_stream=_Prefixed(h, width))
        except PyfleetError as exc:  # the other hosts' journals go on; the command fails at the end
            errors.append(str(exc))
        finally:
            conn.close()

    threads = [threading.Thread(target=one, args=(h,), daemon=True) for h in hosts]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.5)
    except KeyboardInterrupt:
        pass
    if errors:
        raise PyfleetError("; and ".join(sorted(errors)))


def show_history(inv, last=20):
    """The shared audit log, oldest first."""
    entries = audit.history(inv, last)
    if not entries:
        print(f"no deploys recorded yet (history lives on {audit.control_host(inv)}:{audit.HISTORY})")
        return entries
    print(
        table(
            ["when", "who", "action", "apps", "release", "result", "seconds", "reason"],
            [
                [
                    e.get("when"),
                    e.get("who"),
                    e.get("action"),
                    ",".join(e.get("apps", [])),
                    e.get("release"),
                    e.get("result"),
                    e.get("seconds"),
                    e.get("reason", ""),
                ]
                for e in entries
            ],
        )
    )
    return entries


def show_locks(inv, clear_app=None):
    """The locks held now; with ``clear_app``, remove that app's lock on purpose."""
    held = audit.locks(inv)
    if clear_app:
        if clear_app not in held:
            raise PyfleetError(f"app {clear_app} is not locked; nothing to clear")
        audit.release(inv, [clear_app])
        holder = audit.describe_holder(clear_app, json.dumps(held[clear_app])).split(";")[0]
        print(f"cleared the lock of {clear_app} ({holder})")
        return
    if not held:
        print("no locks held")
        return
    now = int(time.time())
    print(
        table(
            ["app", "owner", "action", "since", "age"],
            [
                [a, h.get("owner"), h.get("action"), h.get("since"), f"{(now - int(h.get('epoch', now))) // 60} min"]
                for a, h in sorted(held.items())
            ],
        )
    )


INSPECT = (
    "import importlib, json\n"
    "mod, _, attr = '{celery_app}'.partition(':')\n"
    "app = getattr(importlib.import_module(mod), attr or 'app')\n"
    "i = app.control.inspect(timeout=3)\n"
    "print(json.dumps({{'active': i.active() or {{}}, 'reserved': i.reserved() or {{}}, "
    "'stats': i.stats() or {{}}, 'queues': i.active_queues() or {{}}}}, default=str))\n"
)


def worker_rows(data, type_filter=None, host_filter=None):
    """Rows (node, host, type, queues, active, reserved, processed) from Celery's inspect replies."""
    rows = []
    for node in sorted(data.get("stats", {})):
        wtype, _, host = node.partition("@")
        if (type_filter and wtype != type_filter) or (host_filter and host != host_filter):
            continue
        queues = ",".join(q.get("name", "?") for q in data.get("queues", {}).get(node, []))
        processed = sum((data["stats"][node].get("total") or {}).values())
        rows.append(
            [
                node,
                host,
                wtype,
                queues,
                len(data.get("active", {}).get(node, [])),
                len(data.get("reserved", {}).get(node, [])),
                processed,
            ]
        )
    return rows


def workers(inv, type_filter=None, host_filter=None):
    """Live worker inspection, from Celery itself: one row per worker node."""
    the_plan = fleet_plan.from_inventory(inv, check_paths=False)
    plan = the_plan["celery"]
    if not plan.get("enabled"):
        raise PyfleetError(f"inventory {inv.path} runs no Celery workers (no celery_worker_catalogue)")
    if type_filter and type_filter not in plan["types"]:
        raise PyfleetError(f"unknown worker type '{type_filter}'; types: {', '.join(plan['types'])}")
    if host_filter and host_filter not in plan["hosts"]:
        raise PyfleetError(f"'{host_filter}' is not a worker host; worker hosts: {', '.join(plan['hosts'])}")
    app = plan["app"]
    via = next(iter(plan["hosts"]))
    script = INSPECT.format(celery_app=app["celery_app"])
    env_file = f"/etc/pyfleet/celery/{app['name']}.env"
    cmd = (
        f"set -a; . {env_file}; set +a; cd {app['current_link']} && "
        f"runuser -u {app['user']} -- {app['current_link']}/venv/bin/python -c {shlex.quote(script)}"
    )
    code, out = remote.run_on(inv, [via], cmd)[via]
    if code != 0 or not out.strip():
        raise PyfleetError(f"celery inspect on {via} failed (exit {code}); is the app deployed there? see fab status")
    data = json.loads(out.strip().splitlines()[-1])
    rows = worker_rows(data, type_filter, host_filter)
    if not rows:
        print("no worker node answered" + (f" for type {type_filter}" if type_filter else ""))
        return rows
    print(table(["node", "host", "type", "queues", "active", "reserved", "processed"], rows))
    expected = {
        u["node"]
        for units in plan["hosts"].values()
        for u in units
        if (not type_filter or u["type"] == type_filter) and (not host_filter or u["node"].endswith("@" + host_filter))
    }
    missing = sorted(expected - {r[0] for r in rows})
    if missing:
        print(f"not answering: {', '.join(missing)}")
    return rows


def restart_targets(inv, service):
    """(hosts pattern) that run ``service``, for playbooks/restart.yml."""
    the_plan = fleet_plan.from_inventory(inv, check_paths=False)
    apps = {a["name"]: a for a in the_plan["apps"]}
    plan = the_plan["celery"]
    if service == "nginx":
        return ",".join(inv.groups.get("loadbalancers", []) + inv.groups.get("web", []))
    if service in ("redis", "redis-server", "rabbitmq", "rabbitmq-server"):
        return ",".join(inv.groups.get("brokers", []))
    if service == "beat" and plan.get("beat_host"):
        return plan["beat_host"]
    if service == "flower" and plan.get("flower_host"):
        return plan["flower_host"]
    if service in apps:
        return ",".join(the_plan["placement"][service]["web"])
    if plan.get("enabled") and service in plan["types"]:
        return ",".join(h for h, units in plan["hosts"].items() if any(u["type"] == service for u in units))
    unit_pattern(inv, service)  # raises the one-line "unknown service" error
    raise PyfleetError(f"no host runs {service}; see fab topology")


def maintenance(inv, state, app=None, mitogen=True):
    """Switch the maintenance page of one app or all on every load balancer, record it; or show it (status)."""
    maint.check_state(state)
    _, apps = _apps(inv, app)
    lbs = maint.load_balancers(inv)
    if state == "status":
        rows = maint.status_rows(apps, remote.run_on(inv, lbs, maint.status_probe()))
        print(table(["app", "load balancer", "maintenance"], rows))
        return rows
    start, error = time.monotonic(), None
    try:
        ansible.playbook(inv.path, "maintenance", *maint.playbook_args(state, apps), mitogen=mitogen, quiet=True)
    except PyfleetError as exc:
        error = exc
    audit.record(inv, maint.record(state, apps, error, time.monotonic() - start))
    if error:
        raise PyfleetError(f"maintenance {state} failed: {error}")
    print(f"maintenance {state}: {', '.join(apps)} on {', '.join(lbs)} ({time.monotonic() - start:.0f} s)")
    return apps


def pin(inv, app, extras=(), upgrade=False):
    """Write an app's exact pins (pyfleet/pin.py) and say where; the app's files need not exist yet."""
    # check_paths=False: the requirements file is what this makes, and no lab is needed.
    specs = {a["name"]: a for a in fleet_plan.from_inventory(inv, check_paths=False)["apps"]}
    if app not in specs:
        given = f"no app '{app}' in pyfleet_apps of {inv.path}" if app else "fab pin needs --app NAME"
        raise PyfleetError(f"{given}; apps: {', '.join(specs) or 'none'}")
    start = time.monotonic()
    path, count, kind = pinmod.pin(specs[app], extras, upgrade)
    print(f"{app}: {count} pins from {kind} written to {path} ({time.monotonic() - start:.1f} s)")
    if not specs[app]["requirements"]:
        print(f"add  requirements: {path}  to app {app} in pyfleet_apps: deploys then install exactly these")
    return path


TASK_LINE = re.compile(r"^TASK \[(?:(?P<role>[\w.-]+) : )?(?P<task>.*?)\] \*")
# A delegated task's line names the inventory host, then where it ran: "changed: [web1 -> lb1]".
CHANGED_LINE = re.compile(r"^changed: \[(?P<host>[^\]\s]+)(?: -> [^\]]+)?\]")


def changes_in(output_lines):
    """{host: [roles (or "play tasks")]} that a --check run reports as changed, in order of appearance."""
    changes, role = {}, None
    for line in output_lines:
        task = TASK_LINE.match(line)
        if task:
            role = task["role"] or "play tasks"
            continue
        changed = CHANGED_LINE.match(line)
        if changed and role:
            roles = changes.setdefault(changed["host"], [])
            if role not in roles:
                roles.append(role)
    return changes


def check_suggestion(output_lines):
    """What `fab check` says after its dry run: where the changes are, and the shortest converge that makes them."""
    changes = changes_in(output_lines)
    if not changes:
        return "nothing to converge"
    where = "; ".join(f"{host} ({', '.join(roles)})" for host, roles in sorted(changes.items()))
    return f"changes on {where}; converge only them: fab site --limit {','.join(sorted(changes))}"
