"""What the operator commands in tasks.py do; each function prints its result."""

import json
import os
import sys
import tempfile
import threading
import time

from pyfleet import ansible, audit, remote, topology
from pyfleet.errors import PyfleetError
from pyfleet.tables import table

RELEASES_PROBE = (
    "for d in /srv/*/releases; do [ -d \"$d\" ] || continue; app=$(basename \"$(dirname \"$d\")\"); "
    "cur=$(readlink -f \"$(dirname \"$d\")/current\" 2>/dev/null); "
    "for r in $(ls \"$d\" | sort); do mark=''; [ \"$cur\" = \"$d/$r\" ] && mark=current; "
    "printf '%s|%s|%s|%s\\n' \"$app\" \"$r\" \"$mark\" \"$(head -n1 \"$d/$r/REVISION\" 2>/dev/null)\"; done; done; true"
)


def _apps(inv, app=None):
    """The validated plan, and the app names to act on (all, or the one asked for)."""
    the_plan = topology.plan(inv)
    names = [a["name"] for a in the_plan["apps"]]
    if app and app not in names:
        raise PyfleetError(f"no app '{app}' in pyfleet_apps of {inv.path}; apps: {', '.join(names) or 'none'}")
    return the_plan, ([app] if app else names)


def run_release_playbook(inv, action, playbook, extra, apps, mitogen=True):
    """Lock the apps, run a deploy-like playbook with progress, record the history, unlock.

    Returns the summary dict; raises PyfleetError (after recording) when it failed.
    """
    taken = audit.acquire(inv, apps, action)
    start = time.monotonic()
    summary_file = tempfile.NamedTemporaryFile(prefix="pyfleet-summary-", suffix=".json", delete=False)
    summary_file.close()
    env = {"ANSIBLE_STDOUT_CALLBACK": "pyfleet_progress", "ANSIBLE_CALLBACKS_ENABLED": "",
           "PYFLEET_SUMMARY": summary_file.name}
    error = None
    try:
        try:
            ansible.playbook(inv.path, playbook, *extra, mitogen=mitogen, extra_env=env)
        except PyfleetError as exc:
            error = exc
        summary = _read_summary(summary_file.name)
        release = summary.get("custom", {}).get("release", "")
        result = "failed" if error else "ok"
        audit.record(inv, {"when": audit.now(), "who": audit.operator(), "action": action, "apps": apps,
                           "release": release, "result": result,
                           "reason": _reason(summary, error), "seconds": round(time.monotonic() - start, 1)})
    finally:
        audit.release(inv, taken)
        os.unlink(summary_file.name)
    print_summary(action, summary, time.monotonic() - start)
    if error:
        raise PyfleetError(f"{action} failed: {_reason(summary, error)}")
    return summary


def _read_summary(path):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def _reason(summary, error):
    if not error:
        return ""
    failures = summary.get("failures") or []
    if failures:
        f = failures[0]
        return f"{f['host']}: {f['msg']}"
    return str(error)


def print_summary(action, summary, seconds):
    """The end of a deploy: release, hosts switched, phases with times, failures."""
    release = summary.get("custom", {}).get("release", "")
    switched = summary.get("custom", {}).get("switched") or sorted(
        h for h, tasks in (summary.get("changed") or {}).items() if h != "localhost")
    print()
    print(f"{action}: release {release or '-'}; hosts switched: {', '.join(switched) or 'none'}; {seconds:.0f} s in all")
    plays = summary.get("plays") or []
    if plays:
        print(table(["phase", "hosts", "seconds"], [[p["name"], ", ".join(p["hosts"]), p["seconds"]] for p in plays]))
    for f in summary.get("failures") or []:
        print(f"FAILED {f['host']}: {f['task']}: {f['msg']}")


def releases(inv, limit=None):
    """Releases per host and app, which one is current, and whether the hosts agree."""
    hosts = inv.select(limit or "all")
    outputs = remote.run_on(inv, hosts, RELEASES_PROBE)
    rows, current = [], {}
    for h in hosts:
        for line in outputs[h][1].splitlines():
            app, rel, mark, revision = (line.split("|") + ["", "", "", ""])[:4]
            rows.append([h, app, rel, "*" if mark else "", revision])
            if mark:
                current.setdefault(app, {})[h] = rel
    if not rows:
        print("no releases on these hosts; run fab deploy")
        return {}
    print(table(["host", "app", "release", "current", "revision"], rows))
    for app, per_host in sorted(current.items()):
        ids = set(per_host.values())
        verdict = f"all hosts on {ids.pop()}" if len(ids) == 1 else \
            "hosts DISAGREE: " + ", ".join(f"{h}={r}" for h, r in sorted(per_host.items()))
        print(f"{app}: {verdict}")
    return current


def unit_pattern(inv, service):
    """systemd unit glob for a service name: nginx, redis, beat, an app, or a worker type."""
    the_plan = topology.plan(inv)
    apps = [a["name"] for a in the_plan["apps"]]
    types = list((the_plan["workers"].get("types") or {}).keys())
    if service in ("nginx", "redis", "redis-server"):
        return "nginx.service" if service == "nginx" else "redis-server.service"
    if service == "beat":
        return "pyfleet-*-beat.service"
    if service in apps:
        return f"pyfleet-{service}@*.service"
    if service in types:
        return f"pyfleet-*-worker@{service}.service"
    raise PyfleetError(f"unknown service '{service}'; choose nginx, redis, beat, an app ({', '.join(apps)}) "
                       f"or a worker type ({', '.join(types)})")


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
        raise PyfleetError(f"service {service} ({pattern}) is not deployed on {limit or 'any host'}; "
                           "see fab status for what runs where")
    cmd = f"journalctl --no-pager -o short-iso -n {int(lines)} -u '{pattern}'" + (" -f" if follow else "")
    width = max(len(h) for h in hosts)

    def one(h):
        conn = remote.connection(inv, h)
        try:
            conn.run(cmd, warn=True, hide=False, out_stream=_Prefixed(h, width), err_stream=_Prefixed(h, width),
                     in_stream=False)
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


def show_history(inv, last=20):
    """The shared audit log, oldest first."""
    entries = audit.history(inv, last)
    if not entries:
        print(f"no deploys recorded yet (history lives on {audit.control_host(inv)}:{audit.HISTORY})")
        return entries
    print(table(["when", "who", "action", "apps", "release", "result", "seconds", "reason"],
                [[e.get("when"), e.get("who"), e.get("action"), ",".join(e.get("apps", [])), e.get("release"),
                  e.get("result"), e.get("seconds"), e.get("reason", "")] for e in entries]))
    return entries


def show_locks(inv, clear_app=None):
    """The locks held now; with ``clear_app``, remove that app's lock on purpose."""
    held = audit.locks(inv)
    if clear_app:
        if clear_app not in held:
            raise PyfleetError(f"app {clear_app} is not locked; nothing to clear")
        audit.release(inv, [clear_app])
        print(f"cleared the lock of {clear_app} ({audit.describe_holder(clear_app, json.dumps(held[clear_app])).split(';')[0]})")
        return
    if not held:
        print("no locks held")
        return
    now = int(time.time())
    print(table(["app", "owner", "action", "since", "age"],
                [[a, h.get("owner"), h.get("action"), h.get("since"), f"{(now - int(h.get('epoch', now))) // 60} min"]
                 for a, h in sorted(held.items())]))
