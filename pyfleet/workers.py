"""Place Celery worker types on hosts, route tasks to them, and check it all first.

The inventory declares a catalogue of worker types once, assigns types to hosts
and picks one beat host; ``plan_workers`` turns that into what the roles render
(one systemd unit per type on each host, the producers' ``task_routes``, the
broker's visibility timeout), or stops at the first mistake with a one-line
``PyfleetError`` naming the variable or host and the fix, for example::

    celery_worker_types on worker3: unknown worker type 'gpu'; use one of cpu, default, io or add gpu to celery_worker_catalogue

The inventory form (group_vars/all/workers.yml and host_vars)::

    celery_worker_catalogue:          # type -> settings, declared once
      default:
        queues: [default]             # default: [<type>]
        pool: prefork                 # prefork | threads | solo | gevent | eventlet
        concurrency: 4                # 1..256; default: the host's CPU count
        # autoscale: [8, 2]           # [max, min] instead of concurrency (prefork only)
        prefetch_multiplier: 1        # 1..100
        soft_time_limit: 240          # seconds, below time_limit (prefork and gevent/eventlet)
        time_limit: 300               # hard limit, seconds; default 600
        max_tasks_per_child: 1000     # prefork only
        max_memory_per_child: 262144  # KiB, prefork only
        acks_late: true               # ack after the task ran (default true)
        reject_on_worker_lost: true   # re-queue when the child dies (default true)
        track_started: false          # store a STARTED state before each task (default false)
        gossip: false                 # worker-to-worker events (default false: --without-gossip)
        mingle: false                 # ask the other workers for revoked ids at start (default false)
        heartbeat: true               # worker-heartbeat events (default: true when the fleet has Flower)
    celery_task_routes:               # task name or glob -> worker type
      "sampleapp.tasks.sleep": io
    celery_task_default_type: default # where unrouted tasks go
    celery_beat_schedule:
      tick: {task: sampleapp.tasks.tick, every: 10}   # or cron: "*/5 * * * *"

    # host_vars/worker1.yml (hosts of group workers; group_vars of a sub-group work too)
    celery_worker_types: [default, io]
    # host_vars/worker2.yml
    celery_worker_types: [cpu]
    celery_beat: true                 # exactly one host in the inventory
    # celery_flower: true             # at most one host: Flower, behind the load balancers
    # celery_flower_domain: flower.example.com       # (host_vars or group_vars/all)
    # celery_flower_users: [{name: ops, password: "{{ vault_flower_password }}"}]
    # celery_flower_port: 5555        # on the host's private address

The Celery app is the one app of ``pyfleet_apps`` with ``celery: {app: ...}``.
Its code must be on every worker host: the app's ``hosts`` pattern or
``celery.hosts`` (for example ``celery: {app: "x.tasks:app", hosts: workers}``)
has to match them.
"""

import difflib
import re

from pyfleet import addresses
from pyfleet.broker import broker_address, broker_host_of, broker_kind
from pyfleet.catalogue import CATALOGUE, consumer_timeout, normalize_catalogue, visibility_timeout, worker_args
from pyfleet.errors import PyfleetError
from pyfleet.flower import FLOWER, plan_flower
from pyfleet.patterns import all_hosts, match_hosts
from pyfleet.values import boolean, kind_of as _kind, unknown_keys

TYPES = "celery_worker_types"
BEAT = "celery_beat"
ROUTES = "celery_task_routes"
SCHEDULE = "celery_beat_schedule"
DEFAULT_TYPE = "celery_task_default_type"
HOST_KEYS = (TYPES, BEAT, FLOWER)
SCHEDULE_KEYS = ("task", "every", "cron", "args", "kwargs")

TASK_RE = re.compile(r"[A-Za-z_*?\[][A-Za-z0-9_.*?\[\]!-]{0,199}")
CRON_RE = re.compile(r"[0-9*/,-]+")


def plan_workers(
    catalogue,
    host_settings,
    groups,
    apps,
    routes=None,
    schedule=None,
    default_type="default",
    worker_group="workers",
    broker_group="brokers",
    hostvars=None,
    loadbalancer_group="loadbalancers",
    kind="redis",
):
    """Validate the Celery inventory and return the plan the roles render.

    ``catalogue``: ``celery_worker_catalogue`` (type -> settings).
    ``host_settings``: host -> ``{celery_worker_types, celery_beat, celery_flower}``
    for every inventory host (missing keys mean none/false).
    ``groups``: the inventory's groups (Ansible's ``groups``).
    ``apps``: the normalised apps (``pyfleet.apps.normalize_apps``).
    ``routes``: ``celery_task_routes`` (task name or glob -> type name, or
    ``{queue: name}``). ``schedule``: ``celery_beat_schedule``.
    ``default_type``: the type whose first queue gets unrouted tasks.
    ``hostvars``: host -> variables (Ansible's ``hostvars``); when given, the
    broker's address and port are added and the address must be an IP (the
    worker units' sandbox allows IP traffic to it only).
    The flower host's ``host_settings`` also carry ``celery_flower_domain``,
    ``celery_flower_users`` and ``celery_flower_port`` (see ``plan_flower``);
    ``loadbalancer_group`` holds the hosts that reach it. ``kind``: the
    broker's ``pyfleet_broker_kind``.

    Returns ``{"enabled": False}`` when the inventory uses no Celery (no
    catalogue, no host with types, no beat), else a dict with ``app``,
    ``types`` (normalised catalogue), ``hosts`` (host -> list of unit specs,
    for every host of ``worker_group``), ``beat_host``, ``flower_host``,
    ``flower`` (``plan_flower``: None without a flower host), ``broker_host``,
    ``default_queue``, ``task_routes``, ``beat_schedule`` and ``visibility_timeout``. Raises PyfleetError (one line) at the first mistake.
    """
    groups = {name: list(members or []) for name, members in (groups or {}).items()}
    everyone = all_hosts(groups)
    settings = {host: _host_settings(host, (host_settings or {}).get(host)) for host in everyone}
    used = any(s[TYPES] or s[BEAT] or s[FLOWER] for s in settings.values())
    if not catalogue and not used:
        return {"enabled": False}
    types = normalize_catalogue(catalogue)

    workers = groups.get(worker_group, [])
    _check_placement(settings, types, workers, worker_group)
    beat_host, flower_host = _beat_and_flower(settings, workers, worker_group)
    broker_host = broker_host_of(groups, broker_group)
    app = _celery_app(apps, groups, settings, worker_group)

    if default_type not in types:
        raise PyfleetError(
            f"{DEFAULT_TYPE}: unknown worker type {default_type!r} (unrouted tasks go there); "
            f"set it to one of {_names(types)}"
        )
    default_queue = types[default_type]["queues"][0]
    task_routes = _task_routes(routes, types)
    beat_schedule = _beat_schedule(schedule)
    hosts = {host: _units(app, host, settings[host][TYPES], types, flower=bool(flower_host)) for host in workers}
    longest = max(t["time_limit"] for t in types.values())
    kind = broker_kind(kind)
    address, port, ip = None, None, None
    if hostvars is not None:
        address, port = broker_address(broker_host, hostvars, kind=kind)
        ip = addresses.ip(address, broker_host, "worker units may only reach the broker by IP")
    flower = None
    if flower_host:
        raw = (host_settings or {}).get(flower_host) or {}
        flower = plan_flower(flower_host, raw, groups, apps, hostvars, loadbalancer_group, ip)
    return {
        "enabled": True,
        "app": app,
        "types": types,
        "hosts": hosts,
        "beat_host": beat_host,
        "flower_host": flower_host,
        "flower": flower,
        "broker_host": broker_host,
        "broker_kind": kind,
        "broker_address": address,
        "broker_port": port,
        "broker_ip": ip,
        "default_queue": default_queue,
        "task_routes": task_routes,
        "beat_schedule": beat_schedule,
        "visibility_timeout": visibility_timeout(types),
        "consumer_timeout": consumer_timeout(types),
        "longest_time_limit": longest,
    }


def topology(plan):
    """Rows (host, type, node, queues, unit) of the plan, for ``fab`` tables."""
    rows = []
    for host, units in (plan.get("hosts") or {}).items():
        for unit in units:
            rows.append((host, unit["type"], unit["node"], ",".join(unit["queues"]), unit["unit"]))
        if host == plan.get("beat_host"):
            rows.append((host, "beat", "-", "-", plan["app"]["beat_unit"]))
    return rows


# --- hosts -----------------------------------------------------------------------


def _host_settings(host, value):
    """One host's Celery variables, type-checked."""
    value = value or {}
    types = value.get(TYPES)
    if types is None:
        types = []
    if isinstance(types, str):
        types = [types]
    if not isinstance(types, list):
        raise PyfleetError(
            f"{TYPES} on {host}: expected a list of worker types, got {_kind(types)}; write {TYPES}: [default]"
        )
    for name in types:
        if not isinstance(name, str):
            raise PyfleetError(f"{TYPES} on {host}: {name!r} is not a type name; write {TYPES}: [default]")
    result = {TYPES: list(types)}
    for key in (BEAT, FLOWER):
        result[key] = boolean(f"{key} on {host}", None, value.get(key, False))
    return result


def _check_placement(settings, types, workers, worker_group):
    """Every assigned type exists, is assigned once per host, and every type has a host."""
    placed = {name: [] for name in types}
    for host, s in settings.items():
        if s[TYPES] and host not in workers:
            raise PyfleetError(
                f"{TYPES} on {host}: {host} is not in group {worker_group}, so nothing starts its workers; "
                f"add {host} to group {worker_group} or remove {TYPES}"
            )
        seen = set()
        for name in s[TYPES]:
            if name not in types:
                close = difflib.get_close_matches(name, list(types), n=1)
                hint = f"did you mean {close[0]}? " if close else ""
                raise PyfleetError(
                    f"{TYPES} on {host}: unknown worker type {name!r}; {hint}use one of {_names(types)} "
                    f"or add {name} to {CATALOGUE}"
                )
            if name in seen:
                # Two units would register the same node name <type>@<host>.
                raise PyfleetError(
                    f"{TYPES} on {host}: {name} is listed twice (duplicate node {name}@{host}); remove one"
                )
            seen.add(name)
            placed[name].append(host)
    for host in workers:
        if not settings[host][TYPES] and not settings[host][BEAT]:
            raise PyfleetError(
                f"{TYPES} on {host}: {host} is in group {worker_group} but runs no worker type; "
                f"set {TYPES}: [{next(iter(types))}] or remove it from {worker_group}"
            )
    for name, hosts in placed.items():
        if not hosts:
            raise PyfleetError(
                f"{CATALOGUE}.{name}: no host runs this type, so its queues have no consumer; "
                f"add {name} to {TYPES} of a host in group {worker_group} or remove it from {CATALOGUE}"
            )


def _beat_and_flower(settings, workers, worker_group):
    """The one beat host and the optional flower host."""
    beats = [h for h, s in settings.items() if s[BEAT]]
    if not beats:
        raise PyfleetError(
            f"{BEAT}: no host runs beat (exactly one must); set {BEAT}: true in the host_vars of one host of group {worker_group}"
        )
    if len(beats) > 1:
        raise PyfleetError(
            f"{BEAT}: {' and '.join(beats)} both run beat, so periodic tasks would run twice; "
            f"keep {BEAT}: true on one host only"
        )
    flowers = [h for h, s in settings.items() if s[FLOWER]]
    if len(flowers) > 1:
        raise PyfleetError(f"{FLOWER}: {' and '.join(flowers)} both run flower; keep {FLOWER}: true on one host only")
    for key, host in ((BEAT, beats[0]), (FLOWER, flowers[0] if flowers else None)):
        if host and host not in workers:
            raise PyfleetError(
                f"{key} on {host}: {host} is not in group {worker_group}; "
                f"set {key}: true on a host of group {worker_group} instead"
            )
    return beats[0], flowers[0] if flowers else None


def _celery_app(apps, groups, settings, worker_group):
    """The app with ``celery: {app: ...}`` whose code is on every Celery host."""
    with_celery = [(i, a) for i, a in enumerate(apps or []) if (a.get("celery") or {}).get("app")]
    if not with_celery:
        raise PyfleetError(
            "pyfleet_apps: no app has celery: {app: module:attribute}, so workers have nothing to run; "
            "add celery: {app: 'myapp.tasks:app', hosts: workers} to the app with the tasks"
        )
    if len(with_celery) > 1:
        names = ", ".join(a["name"] for _, a in with_celery)
        raise PyfleetError(
            f"pyfleet_apps: apps {names} all have celery, but pyfleet runs the workers of one app; "
            "keep celery on one app"
        )
    index, app = with_celery[0]
    celery = app["celery"]
    extra = celery.get("hosts")
    if extra is not None and (not isinstance(extra, str) or not extra.strip()):
        raise PyfleetError(
            f"pyfleet_apps[{index}].celery.hosts (app {app['name']}): {extra!r} is not a host pattern; "
            f"set hosts: {worker_group}"
        )
    deployed = set(match_hosts(app["hosts"], groups)) | set(match_hosts(extra or "", groups))
    for host, s in settings.items():
        role = "celery workers" if s[TYPES] else "celery beat" if s[BEAT] else "flower" if s[FLOWER] else None
        if role and host not in deployed:
            where = f"hosts: {app['hosts']}" + (f", celery.hosts: {extra}" if extra else "")
            raise PyfleetError(
                f"pyfleet_apps[{index}].celery.hosts (app {app['name']}): {host} runs {role} but the app is not "
                f"deployed there ({where}); set celery: {{app: '{celery['app']}', hosts: {worker_group}}}"
            )
    name = app["name"]
    return {
        "name": name,
        "celery_app": celery["app"],
        "user": app["user"],
        "group": app["group"],
        "base_dir": app["base_dir"],
        "current_link": app["current_link"],
        "shared_dir": app["shared_dir"],
        "celery_dir": f"{app['shared_dir']}/celery",
        "beat_dir": f"{app['shared_dir']}/celery-beat",
        "worker_unit": f"pyfleet-{name}-worker@",
        "beat_unit": f"pyfleet-{name}-beat.service",
        "flower_unit": f"pyfleet-{name}-flower.service",
    }


def _units(app, host, type_names, types, flower=False):
    """The worker unit specs of one host (``flower``: the fleet has Flower, which wants heartbeats)."""
    units = []
    for name in type_names:
        spec = types[name]
        node = f"{name}@{host}"
        units.append(
            {
                "type": name,
                "node": node,
                "unit": f"{app['worker_unit']}{name}.service",
                "queues": spec["queues"],
                "pool": spec["pool"],
                "args": worker_args(node, spec, flower=flower),
                "time_limit": spec["time_limit"],
                "stop_timeout": spec["stop_timeout"],
            }
        )
    return units


# --- routes and schedule ---------------------------------------------------------


def _task_routes(routes, types):
    """``celery_task_routes`` as Celery's ``task_routes``: pattern -> {queue}."""
    if routes is None:
        return {}
    if not isinstance(routes, dict):
        raise PyfleetError(
            f"{ROUTES}: expected a mapping of task name or glob to worker type, got {_kind(routes)}; "
            f"write {ROUTES}: {{'myapp.tasks.slow': io}}"
        )
    consumed = {q: name for name, t in types.items() for q in t["queues"]}
    result = {}
    for pattern, target in routes.items():
        where = f"{ROUTES}[{pattern!r}]"
        if not isinstance(pattern, str) or not TASK_RE.fullmatch(pattern):
            raise PyfleetError(f"{where}: not a task name or glob; write e.g. 'myapp.tasks.*'")
        if isinstance(target, dict):
            unknown_keys(where, target, ("queue",))
            queue = target.get("queue")
            if queue not in consumed:
                raise PyfleetError(
                    f"{where}: no worker type consumes queue {queue!r}, so its tasks would wait forever; "
                    f"route to a type ({_names(types)}) or a queue of one"
                )
        elif target in types:
            queue = types[target]["queues"][0]
        else:
            close = difflib.get_close_matches(str(target), list(types), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise PyfleetError(f"{where}: unknown worker type {target!r}; {hint}route to one of {_names(types)}")
        result[pattern] = {"queue": queue}
    return result


def _beat_schedule(schedule):
    """``celery_beat_schedule`` checked: name -> {task, every | cron, args, kwargs}."""
    if schedule is None:
        return {}
    if not isinstance(schedule, dict):
        raise PyfleetError(
            f"{SCHEDULE}: expected a mapping, got {_kind(schedule)}; write {SCHEDULE}: {{tick: {{task: x, every: 10}}}}"
        )
    result = {}
    for name, item in schedule.items():
        where = f"{SCHEDULE}.{name}"
        if not isinstance(item, dict):
            raise PyfleetError(
                f"{where}: expected a mapping, got {_kind(item)}; write {{task: myapp.tasks.x, every: 60}}"
            )
        unknown_keys(where, item, SCHEDULE_KEYS)
        task = item.get("task")
        if not isinstance(task, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", task):
            raise PyfleetError(f"{where}.task: {task!r} is not a task name; write task: myapp.tasks.x")
        entry = {"task": task, "args": item.get("args") or [], "kwargs": item.get("kwargs") or {}}
        if not isinstance(entry["args"], list) or not isinstance(entry["kwargs"], dict):
            raise PyfleetError(f"{where}: args must be a list and kwargs a mapping; fix them")
        if ("every" in item) == ("cron" in item):
            raise PyfleetError(f"{where}: set exactly one of every (seconds) or cron ('*/5 * * * *')")
        if "every" in item:
            every = item["every"]
            if isinstance(every, bool) or not isinstance(every, (int, float)) or not 1 <= every <= 31 * 86400:
                raise PyfleetError(
                    f"{where}.every: {every!r} is not a number of seconds from 1 to 2678400; set every: 60"
                )
            entry["every"] = every
        else:
            cron = item["cron"]
            fields = cron.split() if isinstance(cron, str) else []
            if len(fields) != 5 or not all(CRON_RE.fullmatch(f) for f in fields):
                raise PyfleetError(f"{where}.cron: {cron!r} is not five cron fields; write cron: '*/5 * * * *'")
            entry["cron"] = " ".join(fields)
        result[str(name)] = entry
    return result


# --- small helpers ----------------------------------------------------------------


def _names(types):
    """Comma-separated type names for messages."""
    return ", ".join(sorted(types))
