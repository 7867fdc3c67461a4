"""What runs where: the pyfleet services on each host, their state, release and start time."""

import re
import shlex

from pyfleet import orphans, plan as fleet_plan

# Units pyfleet manages (app servers, workers, beat, flower) and the system services it configures.
UNIT_PATTERNS = "'pyfleet-*' 'celery*' 'flower*' nginx.service redis-server.service rabbitmq-server.service"

# One line per unit: "unit|<id>|<active>|<sub>|<since>".
UNITS_PROBE = (
    f"for u in $(systemctl list-units --all --type=service --no-legend --plain {UNIT_PATTERNS} "
    "| awk '{print $1}'); do "
    'printf \'unit|%s|%s|%s|%s\\n\' "$u" "$(systemctl show -p ActiveState --value "$u")" '
    '"$(systemctl show -p SubState --value "$u")" "$(systemctl show -p ActiveEnterTimestamp --value "$u")"; '
    "done; "
)


def base_dirs(inv, the_plan=None):
    """``{app: base_dir}`` of the inventory's apps, from the fleet plan (default /srv/<app>); ``the_plan``
    if the caller built it already."""
    the_plan = the_plan or fleet_plan.from_inventory(inv, check_paths=False)
    return {app["name"]: app["base_dir"] for app in the_plan["apps"]}


def probe(dirs):
    """The command ``fab status`` runs on a host: UNITS_PROBE's lines, then "current|<app>|<release>" per app.

    ``dirs``: ``{app: base_dir}``; an app that is not on the host prints nothing.
    """
    currents = "".join(
        f"[ -L {shlex.quote(base + '/current')} ] && printf 'current|%s|%s\\n' {shlex.quote(app)} "
        f'"$(basename "$(readlink {shlex.quote(base + "/current")})")"; '
        for app, base in sorted(dirs.items())
    )
    return UNITS_PROBE + currents + "true"


INSTANCE = re.compile(r"^(?P<base>[^@]+)@(?P<instance>[^.]*)\.service$")


def parse_probe(output):
    """(units, currents) from ``probe``'s output: units as dicts, currents as {app: release}."""
    units, currents = [], {}
    for line in output.splitlines():
        parts = line.split("|")
        if parts[0] == "unit" and len(parts) == 5:
            units.append({"unit": parts[1], "active": parts[2], "sub": parts[3], "since": parts[4]})
        elif parts[0] == "current" and len(parts) == 3:
            currents[parts[1]] = parts[2]
    return units, currents


def release_of(unit, currents):
    """The release a unit serves: its instance when it is a per-release unit, else its app's current."""
    m = INSTANCE.match(unit)
    if m and re.fullmatch(r"\d{8}T\d{6}Z?", m["instance"]):
        return m["instance"]
    # Longest name first: a unit of app "hello-async" also contains "hello".
    for app in sorted(currents, key=len, reverse=True):
        if app in unit:
            return currents[app]
    return ""


def rows(host, output):
    """Table rows (host, service, state, release, since) for one host's ``probe`` output."""
    units, currents = parse_probe(output)
    out = []
    for u in sorted(units, key=lambda u: u["unit"]):
        if u["active"] == "inactive" and "@" in u["unit"] and release_of(u["unit"], currents):
            continue  # an old release's stopped instance: history, not status
        state = u["active"] if u["sub"] in ("running", "exited", "", u["active"]) else f"{u['active']} ({u['sub']})"
        out.append(
            [host, u["unit"].removesuffix(".service"), state, release_of(u["unit"], currents), u["since"] or "-"]
        )
    if not out:
        out.append([host, "-", "no pyfleet services", "", ""])
    return out


def orphan_lines(hosts, outputs, plan):
    """One line per host that holds pyfleet-made things the inventory no longer names there.

    ``outputs``: {host: (exit code, probe output)} of a probe that includes
    orphans.PROBE; the decision is pyfleet.orphans', as in site.yml's last play.
    """
    lines = []
    for host in hosts:
        found = orphans.parse_probe(outputs[host][1])
        orphaned = orphans.orphans(found, plan["hosts"][host]["wanted"])
        said = orphans.describe(orphaned)
        if said:
            lines.append(
                f"orphaned on {host} (the inventory no longer names it; fab site removes it): {'; '.join(said)}"
            )
    return lines
