"""`fab maintenance on|off [--app NAME]`: what to switch, how, and what the history keeps.

The load balancers serve the switch (roles/loadbalancer/tasks/maintenance.yml,
run by playbooks/maintenance.yml): one file per app in maintenance under
``SWITCH_DIR``, which the app's HTTPS server includes if it exists. So the
switch is per app, outlives `fab site`, and needs no deploy lock: deploys and
the app's health path go on behind the page.
"""

import json
import shlex

from pyfleet import audit
from pyfleet.errors import PyfleetError

STATES = ("on", "off", "status")
# Where the switch files live on a load balancer (__loadbalancer_maintenance_apps_dir).
SWITCH_DIR = "/etc/nginx/pyfleet/maintenance"


def check_state(state):
    """``state`` must be on, off or status; one line with the fix otherwise."""
    if state not in STATES:
        raise PyfleetError(
            f"fab maintenance: {state!r} is not on, off or status; "
            "run fab maintenance on --app NAME, fab maintenance off --app NAME or fab maintenance status"
        )
    return state


def load_balancers(inv):
    """The inventory's load balancers, which serve the page; none is a mistake."""
    lbs = list(inv.groups.get("loadbalancers") or [])
    if not lbs:
        raise PyfleetError(
            f"inventory {inv.path} has no host in group loadbalancers; the maintenance page is served by "
            "the load balancers: add one, or stop the app itself"
        )
    return lbs


def playbook_args(state, apps):
    """The extra variables of playbooks/maintenance.yml."""
    return ["-e", json.dumps({"maintenance_state": state, "maintenance_apps": list(apps)})]


def record(state, apps, error, seconds):
    """The history record of one switch (fab history shows it beside deploys and rollbacks)."""
    return {
        "id": audit.new_id(),
        "when": audit.now(),
        "who": audit.operator(),
        "action": f"maintenance {state}",
        "apps": list(apps),
        "release": "",
        "result": "failed" if error else "ok",
        "reason": str(error or ""),
        "seconds": round(seconds, 1),
    }


def status_probe():
    """The command that lists the apps in maintenance on a load balancer, one name a line."""
    d = shlex.quote(SWITCH_DIR)
    return f'for f in {d}/*.conf; do [ -f "$f" ] && basename "$f" .conf; done; true'


def status_rows(apps, outputs):
    """Rows (app, load balancer, on/off) from each load balancer's ``(code, output)`` of status_probe."""
    rows = []
    for app in apps:
        for lb, (_, out) in sorted(outputs.items()):
            rows.append([app, lb, "on" if app in out.split() else "off"])
    return rows
