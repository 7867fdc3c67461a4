"""What runs where: the pyfleet services on each host, their state, release and start time."""

import re

# Units pyfleet manages (app servers, workers, beat, flower) and the system services it configures.
UNIT_PATTERNS = "'pyfleet-*' 'celery*' 'flower*' nginx.service redis-server.service rabbitmq-server.service"

# One line per unit: "unit|<id>|<active>|<sub>|<since>", one per app: "current|<app>|<release>".
PROBE = (
    f"for u in $(systemctl list-units --all --type=service --no-legend --plain {UNIT_PATTERNS} "
    "| awk '{print $1}'); do "
    "printf 'unit|%s|%s|%s|%s\\n' \"$u\" \"$(systemctl show -p ActiveState --value \"$u\")\" "
    "\"$(systemctl show -p SubState --value \"$u\")\" \"$(systemctl show -p ActiveEnterTimestamp --value \"$u\")\"; "
    "done; "
    "for d in /srv/*/current; do [ -L \"$d\" ] && printf 'current|%s|%s\\n' "
    "\"$(basename \"$(dirname \"$d\")\")\" \"$(basename \"$(readlink \"$d\")\")\"; done; true"
)

INSTANCE = re.compile(r"^(?P<base>[^@]+)@(?P<instance>[^.]*)\.service$")


def parse_probe(output):
    """(units, currents) from PROBE's output: units as dicts, currents as {app: release}."""
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
    for app, release in currents.items():
        if app in unit:
            return release
    return ""


def rows(host, output):
    """Table rows (host, service, state, release, since) for one host's PROBE output."""
    units, currents = parse_probe(output)
    out = []
    for u in sorted(units, key=lambda u: u["unit"]):
        if u["active"] == "inactive" and "@" in u["unit"] and release_of(u["unit"], currents):
            continue  # an old release's stopped instance: history, not status
        state = u["active"] if u["sub"] in ("running", "exited", "", u["active"]) else f"{u['active']} ({u['sub']})"
        out.append([host, u["unit"].removesuffix(".service"), state, release_of(u["unit"], currents),
                    u["since"] or "-"])
    if not out:
        out.append([host, "-", "no pyfleet services", "", ""])
    return out
