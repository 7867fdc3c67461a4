"""The deploy lock and the audit log, kept on one host that every operator reaches.

The control host is ``pyfleet_control_host`` when set, else the first load
balancer, else the first inventory host: state lives with the fleet, not on one
operator's laptop. Files: ``/var/lib/pyfleet/history.jsonl`` (one JSON record per
deploy, rollback or maintenance switch) and ``/var/lib/pyfleet/locks/<app>.json``.
"""

import getpass
import json
import os
import shlex
import socket
import time
import uuid
from datetime import UTC, datetime

from pyfleet import remote
from pyfleet.errors import PyfleetError

STATE_DIR = "/var/lib/pyfleet"
HISTORY = f"{STATE_DIR}/history.jsonl"
LOCK_DIR = f"{STATE_DIR}/locks"


def control_host(inv):
    """The host that keeps the lock and the history."""
    any_vars = next(iter(inv.hosts.values()), {})
    chosen = any_vars.get("pyfleet_control_host") or (inv.groups.get("loadbalancers") or list(inv.hosts))[0]
    if chosen not in inv.hosts:
        raise PyfleetError(
            f"pyfleet_control_host: '{chosen}' is not an inventory host; set it to one of {', '.join(inv.hosts)}"
        )
    return chosen


def operator():
    """Who is deploying: the sudo caller when run through sudo, on which controller."""
    return f"{os.environ.get('SUDO_USER') or getpass.getuser()}@{socket.gethostname()}"


def new_id():
    """A history record's id (a rollback names the deploy it undid by it)."""
    return uuid.uuid4().hex[:12]


def now():
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _run(inv, command):
    """Run ``command`` as root on the control host (a refused host key or sudo: one line, from remote.run)."""
    host = control_host(inv)
    conn = remote.connection(inv, host)
    try:
        return remote.run(conn, command, hide=True)
    except remote.Unreachable as exc:
        raise PyfleetError(
            f"control host {host} is unreachable ({exc.cause}); bring it up or set pyfleet_control_host"
        ) from None
    finally:
        conn.close()


def acquire(inv, apps, action):
    """Take the lock of each app, or fail naming who holds it and since when (nothing is taken then)."""
    # The token tells our own lock file from an identical-looking one of another operator.
    record = {
        "owner": operator(),
        "action": action,
        "since": now(),
        "epoch": int(time.time()),
        "token": uuid.uuid4().hex,
    }
    data = shlex.quote(json.dumps(record))
    taken = []
    for app in sorted(apps):
        path = shlex.quote(f"{LOCK_DIR}/{app}.json")
        # noclobber makes creating the lock file atomic: exactly one operator wins.
        result = _run(inv, f"mkdir -p {LOCK_DIR} && (set -C; echo {data} > {path}) 2>/dev/null || cat {path}")
        if result.stdout.strip():
            release(inv, taken)
            raise PyfleetError(describe_holder(app, result.stdout))
        taken.append(app)
    return taken


def describe_holder(app, text):
    """One line about a held lock: owner, action, age, and how to clear it."""
    try:
        holder = json.loads(text.strip().splitlines()[-1])
        age = int(time.time()) - int(holder.get("epoch", time.time()))
        who = f"{holder.get('owner')} ({holder.get('action')}) since {holder.get('since')}, {age // 60} min ago"
    except (ValueError, IndexError):
        who = "an unreadable lock"
    return (
        f"app {app} is locked by {who}; wait for it to finish, or if that deploy crashed: fab lock --clear --app {app}"
    )


def release(inv, apps):
    """Remove the locks of ``apps``."""
    if apps:
        paths = " ".join(shlex.quote(f"{LOCK_DIR}/{a}.json") for a in apps)
        _run(inv, f"rm -f {paths}")


def locks(inv):
    """{app: holder record} of the locks held now."""
    result = _run(
        inv, f'for f in {LOCK_DIR}/*.json; do [ -f "$f" ] && printf \'%s\\t%s\\n\' "$f" "$(cat "$f")"; done; true'
    )
    held = {}
    for line in result.stdout.splitlines():
        path, _, text = line.partition("\t")
        try:
            held[os.path.basename(path)[:-5]] = json.loads(text)
        except ValueError:
            held[os.path.basename(path)[:-5]] = {"owner": "?", "since": "?", "action": "unreadable lock"}
    return held


def record(inv, entry):
    """Append one record to the shared history."""
    line = shlex.quote(json.dumps(entry, sort_keys=True))
    _run(inv, f"mkdir -p {STATE_DIR} && echo {line} >> {HISTORY}")


def history(inv, last=20):
    """The last ``last`` history records, oldest first."""
    result = _run(inv, f"tail -n {int(last)} {HISTORY} 2>/dev/null; true")
    out = []
    for line in result.stdout.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out
