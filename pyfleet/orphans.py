"""What pyfleet set up on a host that the inventory no longer names, and how it goes.

An app dropped from ``pyfleet_apps``, a worker type dropped from a host, a host
taken out of a group, or ``pyfleet_broker_kind`` switched all leave units,
nginx files and services behind that no role of the new inventory looks at.
Each host's pyfleet-made things are found by name (``probe``), compared with
what the plan wants there (``wanted``, ``orphans``), and removed by one script
(``removal_script``): the last play of site.yml (plugins/action/pyfleet_prune.py)
and ``fab status`` (which marks them) decide with these same functions.

Data stays unless purged: an app's base dir, users and env files outlive its
units (a record in RETIRED_DIR keeps where they are), and ``--purge`` removes
them. A broker's data is never removed (switching back finds it).
"""

import json
import re
import shlex

UNIT_DIR = "/etc/systemd/system"
RETIRED_DIR = "/var/lib/pyfleet/retired"
APP_ENV_DIRS = ("/etc/pyfleet/apps", "/etc/pyfleet/celery")
NGINX_CONF_D = "/etc/nginx/conf.d"
NGINX_PYFLEET = "/etc/nginx/pyfleet"
MAINTENANCE_DIR = NGINX_PYFLEET + "/maintenance"
WEB_CONF = NGINX_CONF_D + "/pyfleet.conf"
LB_CONF = NGINX_CONF_D + "/pyfleet-loadbalancer.conf"
# Broker units pyfleet configured (its drop-in marks them), by pyfleet_broker_kind:
# RabbitMQ's Erlang port mapper (epmd) comes with it, on loopback only.
BROKER_SERVICES = {"redis": ("redis-server.service",), "rabbitmq": ("epmd.socket", "rabbitmq-server.service")}

# pyfleet-<app>@.service (web), pyfleet-<app>-worker@.service and its per-type
# drop-in dirs pyfleet-<app>-worker@<type>.service.d, pyfleet-<app>-beat.service,
# pyfleet-<app>-flower.service.
SAFE_UNIT = re.compile(r"^pyfleet-[A-Za-z0-9@._:-]+$")
UNIT_NAME = re.compile(r"^pyfleet-(?P<app>.+?)(?P<kind>-worker@|-beat\.|-flower\.|@)")


def wanted(plan, groups, host):
    """What pyfleet keeps on ``host``: unit files, nginx files, broker services, apps (by name)."""
    mine = plan["hosts"][host]
    units = {f"{app['unit_name']}@.service" for app in mine["apps"]}
    celery = plan["celery"]
    if celery.get("enabled"):
        app = celery["app"]
        types = celery["hosts"].get(host) or []
        if types:
            units.add(f"{app['worker_unit']}.service")
            units.update(f"{t['unit']}.d" for t in types)
        if celery.get("beat_host") == host:
            units.add(app["beat_unit"])
        if celery.get("flower_host") == host:
            units.add(app["flower_unit"])
    web = host in (groups.get("web") or [])
    lb = host in (groups.get("loadbalancers") or [])
    nginx = set()
    if web:
        nginx.add(WEB_CONF)
        for app in mine["apps"]:
            nginx.add(f"{NGINX_CONF_D}/pyfleet-app-{app['name']}.conf")
            nginx.add(f"{NGINX_PYFLEET}/{app['name']}.upstream.conf")
    if lb:
        nginx.add(LB_CONF)
        nginx.update(f"{MAINTENANCE_DIR}/{app['name']}.conf" for app in plan["apps"])
    broker = host in (groups.get("brokers") or [])
    return {
        "units": sorted(units),
        "nginx_files": sorted(nginx),
        "nginx": web or lb,
        "services": list(BROKER_SERVICES.get(plan["broker_kind"], ())) if broker else [],
        "apps": sorted(app["name"] for app in mine["deploy_apps"]),
    }


# Run as root on the host: one line per pyfleet-made thing found (parse_probe reads them).
PROBE = f"""cd {UNIT_DIR} 2>/dev/null && for f in pyfleet-*; do [ -e "$f" ] && echo "unitfile|$f"; done
grep -H -E '^(User|WorkingDirectory)=' {UNIT_DIR}/pyfleet-*.service 2>/dev/null | sed 's/^/unitline|/'
for f in {NGINX_CONF_D}/pyfleet*.conf {NGINX_PYFLEET}/*.upstream.conf {MAINTENANCE_DIR}/*.conf; do
  [ -e "$f" ] && echo "nginx|$f"; done
for s in {" ".join(sorted(u for units in BROKER_SERVICES.values() for u in units))}; do
  [ -e {UNIT_DIR}/$s.d/pyfleet.conf ] && echo "service|$s"; done
[ "$(systemctl is-enabled nginx.service 2>/dev/null)" = enabled ] && echo "nginx-enabled|"
ls -A /etc/nginx/sites-enabled {NGINX_CONF_D} 2>/dev/null | grep -v -E '^(pyfleet.*|)$|:$' | sed 's/^/nginx-other|/'
for f in {RETIRED_DIR}/*; do [ -f "$f" ] && echo "retired|$(basename "$f")|$(cat "$f")"; done
true
"""


def parse_probe(output):
    """PROBE's output as {units, unit_lines: {unit file: {User, WorkingDirectory}}, nginx_files, services,
    nginx_enabled, nginx_other (a site that is not pyfleet's), retired: {app: {user, base_dir}}}.

    Unit names that are not plain (letters, digits, ``@._:-``) are left out: the
    removal script uses them in globs.
    """
    found = {
        "units": [],
        "unit_lines": {},
        "nginx_files": [],
        "services": [],
        "nginx_enabled": False,
        "nginx_other": False,
        "retired": {},
    }
    for line in output.splitlines():
        kind, _, rest = line.partition("|")
        if kind == "unitfile" and SAFE_UNIT.match(rest):
            found["units"].append(rest)
        elif kind == "unitline":
            path, _, setting = rest.partition(":")
            key, _, value = setting.partition("=")
            found["unit_lines"].setdefault(path.rsplit("/", 1)[-1], {})[key] = value.strip()
        elif kind == "nginx" and rest:
            found["nginx_files"].append(rest)
        elif kind == "service" and rest:
            found["services"].append(rest)
        elif kind == "nginx-enabled":
            found["nginx_enabled"] = True
        elif kind == "nginx-other":
            found["nginx_other"] = True
        elif kind == "retired":
            app, _, record = rest.partition("|")
            try:
                data = json.loads(record)
            except ValueError:
                continue
            if isinstance(data, dict):
                found["retired"][app] = data
    return found


def app_of_unit(unit):
    """The app a pyfleet unit file (or drop-in dir) belongs to, or None."""
    m = UNIT_NAME.match(unit)
    return m["app"] if m else None


def base_dir_of(working_directory):
    """An app's base dir from its unit's WorkingDirectory (<base>/releases/%i or <base>/current)."""
    m = re.match(r"^(?P<base>/.+?)/(releases/%i|current)/?$", working_directory or "")
    return m["base"] if m else None


def orphans(found, keep):
    """What to remove: found (parse_probe) minus keep (wanted).

    Returns {units, nginx_files, services, stop_nginx, apps: {app: {user, base_dir}}};
    ``apps`` holds the data of apps no longer deployed on the host (their units'
    User and base dir, or a retired record from an earlier removal).
    """
    units = sorted(u for u in found["units"] if u not in keep["units"])
    nginx_files = sorted(f for f in found["nginx_files"] if f not in keep["nginx_files"])
    services = sorted(s for s in found["services"] if s not in keep["services"])
    apps = {}
    for app, record in found["retired"].items():
        if app not in keep["apps"]:
            apps[app] = {"user": record.get("user"), "base_dir": record.get("base_dir")}
    for unit in units:
        app = app_of_unit(unit)
        lines = found["unit_lines"].get(unit) or {}
        if app is None or app in keep["apps"] or not lines:
            continue
        data = apps.setdefault(app, {"user": None, "base_dir": None})
        data["user"] = data["user"] or lines.get("User")
        data["base_dir"] = data["base_dir"] or base_dir_of(lines.get("WorkingDirectory"))
    left = [f for f in found["nginx_files"] if f not in nginx_files and f.startswith(NGINX_CONF_D + "/")]
    stop_nginx = (
        not keep["nginx"] and found["nginx_enabled"] and bool(nginx_files) and not left and not found["nginx_other"]
    )
    return {"units": units, "nginx_files": nginx_files, "services": services, "stop_nginx": stop_nginx, "apps": apps}


def anything(orphaned, purge=False):
    """Whether there is anything to remove (left-over app data counts only when purging)."""
    return bool(
        orphaned["units"]
        or orphaned["nginx_files"]
        or orphaned["services"]
        or orphaned["stop_nginx"]
        or (purge and orphaned["apps"])
    )


def describe(orphaned, purge=False):
    """One short phrase per removal, for the run's output and ``fab status``."""
    said = [f"unit {u}" for u in orphaned["units"]]
    said += [f"nginx file {f}" for f in orphaned["nginx_files"]]
    said += [f"service {s} (stopped, data kept)" for s in orphaned["services"]]
    if orphaned["stop_nginx"]:
        said.append("nginx (stopped: the host serves nothing)")
    for app, data in sorted(orphaned["apps"].items()):
        where = ", ".join(x for x in (data.get("base_dir"), data.get("user") and f"user {data['user']}") if x)
        if purge:
            said.append(f"app {app} data ({where})")
        elif where:
            said.append(f"kept app {app} data ({where}; --purge removes it)")
    return said


def _q(*words):
    return " ".join(shlex.quote(w) for w in words)


def removal_script(orphaned, purge=False):
    """The shell script (run as root) that removes ``orphaned``: units stopped first, then files, then data."""
    lines = ["set -e"]
    for unit in orphaned["units"]:
        name = unit.removesuffix(".d")
        if name.endswith("@.service"):  # a template: every instance, running or enabled
            pattern = name.replace("@.service", "@*.service")
            lines.append(f"systemctl stop {_q(pattern)} || true")
            lines.append(f"rm -f {UNIT_DIR}/*.wants/{pattern}")  # SAFE_UNIT: no quoting, the glob expands
        else:
            lines.append(f"systemctl disable --now {_q(name)} 2>/dev/null || true")
        lines.append(f"rm -rf {_q(UNIT_DIR + '/' + unit)}")
    for service in orphaned["services"]:
        # A socket's service (started by it) stops with it.
        also = [service.removesuffix(".socket") + ".service"] if service.endswith(".socket") else []
        lines.append(f"systemctl disable --now {_q(service, *also)} 2>/dev/null || true")
        lines.append(f"rm -rf {_q(UNIT_DIR + '/' + service + '.d')}")
    if orphaned["units"] or orphaned["services"]:
        lines.append("systemctl daemon-reload && systemctl reset-failed")
    if orphaned["nginx_files"]:
        lines.append(f"rm -f {_q(*orphaned['nginx_files'])}")
        if orphaned["stop_nginx"]:
            lines.append("systemctl disable --now nginx.service")
        else:  # validated before the reload: a config nginx refuses keeps the running one
            lines.append("if systemctl is-active --quiet nginx.service; then nginx -t -q && systemctl reload nginx; fi")
    lines.append(f"install -d -m 0700 {RETIRED_DIR}")
    for app, data in sorted(orphaned["apps"].items()):
        record = f"{RETIRED_DIR}/{app}"
        if not purge:
            lines.append(f"printf '%s' {_q(json.dumps(data, sort_keys=True))} > {_q(record)}")
            continue
        paths = [f"{d}/{app}.env" for d in APP_ENV_DIRS] + [f"/run/{app}"]
        if data.get("base_dir"):
            paths.append(data["base_dir"])
        lines.append(f"rm -rf {_q(*paths)}")
        if data.get("user"):
            user = data["user"]
            lines.append(f"if id -u {_q(user)} >/dev/null 2>&1; then userdel {_q(user)}; fi")
            lines.append(f"if getent group {_q(user)} >/dev/null; then groupdel {_q(user)}; fi")
        lines.append(f"rm -f {_q(record)}")
    return "\n".join(lines) + "\n"
