"""Place Celery worker types on hosts, route tasks to them, and check it all first.

The inventory declares a catalogue of worker types once, assigns types to hosts
and picks one beat host; ``plan_workers`` turns that into what the roles render
(one systemd unit per type on each host, the producers' ``task_routes``, the
broker's visibility timeout), or stops at the first mistake with a one-line
``PyfleetError`` naming the variable or host and the fix, for example::

    celery_worker_types on w3: unknown worker type 'gpu'; use one of cpu, io or add gpu to celery_worker_catalogue

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
import fnmatch
import ipaddress
import re
from urllib.parse import quote

from pyfleet.errors import PyfleetError
from pyfleet.values import is_int as _is_int, kind_of as _kind

CATALOGUE = "celery_worker_catalogue"
TYPES = "celery_worker_types"
BEAT = "celery_beat"
FLOWER = "celery_flower"
ROUTES = "celery_task_routes"
SCHEDULE = "celery_beat_schedule"
DEFAULT_TYPE = "celery_task_default_type"
HOST_KEYS = (TYPES, BEAT, FLOWER)
FLOWER_DOMAIN = "celery_flower_domain"
FLOWER_USERS = "celery_flower_users"
FLOWER_PORT = "celery_flower_port"
# Read from the flower host only (its host_vars or group_vars).
FLOWER_KEYS = (FLOWER_DOMAIN, FLOWER_USERS, FLOWER_PORT)
DEFAULT_FLOWER_PORT = 5555

POOLS = ("prefork", "threads", "solo", "gevent", "eventlet")
# Pools that enforce time limits (prefork by signals and a supervisor, green
# pools by timers); threads and solo cannot interrupt a running task.
TIME_LIMIT_POOLS = ("prefork", "gevent", "eventlet")
TYPE_KEYS = (
    "queues", "pool", "concurrency", "autoscale", "prefetch_multiplier", "soft_time_limit",
    "time_limit", "max_tasks_per_child", "max_memory_per_child", "acks_late",
    "reject_on_worker_lost",
)
SCHEDULE_KEYS = ("task", "every", "cron", "args", "kwargs")

DEFAULT_TIME_LIMIT = 600
MAX_CONCURRENCY = 256
MAX_TIME_LIMIT = 7 * 24 * 3600
# systemd waits this much longer than the hard time limit before it SIGKILLs a
# stopping worker: the warm shutdown lets running tasks finish first.
STOP_MARGIN = 30
# Redis re-delivers an unacked task after the visibility timeout: the longest hard
# time limit plus this margin (see visibility_timeout()).
VISIBILITY_MARGIN = 30
# RabbitMQ closes a consumer's channel that holds a task unacknowledged this long:
# at least an hour, twice the longest time limit (see consumer_timeout()).
MIN_CONSUMER_TIMEOUT = 3600

# pyfleet_broker_kind: the broker role the brokers play applies (redis is the default).
BROKER_KIND = "pyfleet_broker_kind"
BROKER_KINDS = ("redis", "rabbitmq")
# kind -> (the broker host's port variable, its default)
BROKER_PORTS = {"redis": ("redis_port", 6379), "rabbitmq": ("rabbitmq_port", 5672)}
RABBITMQ_PASSWORDS = "rabbitmq_passwords"
# With RabbitMQ, results travel back to the caller as AMQP messages: nothing to
# store, expire or secure besides the broker itself.
RABBITMQ_RESULT_BACKEND = "rpc://"

TYPE_RE = re.compile(r"[a-z][a-z0-9_-]{0,30}")
QUEUE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}")
TASK_RE = re.compile(r"[A-Za-z_*?\[][A-Za-z0-9_.*?\[\]!-]{0,199}")
CRON_RE = re.compile(r"[0-9*/,-]+")
DOMAIN_RE = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]")
# htpasswd user names: no colon (the separator), nothing nginx or a shell would mangle.
FLOWER_USER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


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
    ``loadbalancer_group`` holds the hosts that reach it.

    Returns ``{"enabled": False}`` when the inventory uses no Celery (no
    catalogue, no host with types, no beat), else a dict with ``app``,
    ``types`` (normalised catalogue), ``hosts`` (host -> list of unit specs,
    for every host of ``worker_group``), ``beat_host``, ``flower_host``,
    ``flower`` (``plan_flower``: None without a flower host), ``broker_host``,
    ``default_queue``, ``task_routes``, ``beat_schedule`` and ``visibility_timeout``. Raises
    PyfleetError (one line) at the first mistake.
    """
    groups = {name: list(members or []) for name, members in (groups or {}).items()}
    everyone = _all_hosts(groups)
    settings = {host: _host_settings(host, (host_settings or {}).get(host)) for host in everyone}
    used = any(s[TYPES] or s[BEAT] or s[FLOWER] for s in settings.values())
    if not catalogue and not used:
        return {"enabled": False}
    types = normalize_catalogue(catalogue)

    workers = groups.get(worker_group, [])
    _check_placement(settings, types, workers, worker_group)
    beat_host, flower_host = _beat_and_flower(settings, workers, worker_group)
    broker_host = _broker_host(groups, broker_group)
    app = _celery_app(apps, groups, settings, worker_group)

    if default_type not in types:
        raise PyfleetError(
            f"{DEFAULT_TYPE}: unknown worker type {default_type!r} (unrouted tasks go there); "
            f"set it to one of {_names(types)}"
        )
    default_queue = types[default_type]["queues"][0]
    task_routes = _task_routes(routes, types)
    beat_schedule = _beat_schedule(schedule)
    hosts = {host: _units(app, host, settings[host][TYPES], types) for host in workers}
    longest = max(t["time_limit"] for t in types.values())
    address, port, ip, kind = None, None, None, "redis"
    if hostvars is not None:
        kind = broker_kind(((hostvars or {}).get(broker_host) or {}).get(BROKER_KIND))
        address, port = broker_address(broker_host, hostvars, kind=kind)
        ip = ip_allow(address, broker_host)
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


def normalize_catalogue(catalogue):
    """Validate ``celery_worker_catalogue`` and fill in every default.

    Returns type -> ``{queues, pool, concurrency, autoscale, prefetch_multiplier,
    soft_time_limit, time_limit, max_tasks_per_child, max_memory_per_child,
    acks_late, reject_on_worker_lost, stop_timeout}``.
    """
    if not isinstance(catalogue, dict) or not catalogue:
        raise PyfleetError(
            f"{CATALOGUE}: expected a mapping of worker types, got {_kind(catalogue)}; "
            f"write {CATALOGUE}: {{default: {{queues: [default], concurrency: 2}}}}"
        )
    types = {}
    seen_queues = {}
    for name, spec in catalogue.items():
        where = f"{CATALOGUE}.{name}"
        if not isinstance(name, str) or not TYPE_RE.fullmatch(name):
            raise PyfleetError(
                f"{CATALOGUE}: {name!r} is not a valid worker type name (a lowercase letter, then up to "
                "30 of a-z 0-9 _ -); rename it, e.g. io"
            )
        types[name] = _normalize_type(where, name, {} if spec is None else spec)
        for queue in types[name]["queues"]:
            if queue in seen_queues:
                # Two types on one queue would take each other's tasks with different settings.
                raise PyfleetError(
                    f"{where}.queues: queue {queue} is already consumed by type {seen_queues[queue]}; "
                    "give each type its own queues"
                )
            seen_queues[queue] = name
    return types


def visibility_timeout(types):
    """The broker visibility timeout: the longest hard time limit plus VISIBILITY_MARGIN seconds.

    The trade-off: with Redis, a task whose worker died (main process killed, host
    gone) waits this long before another worker gets it, so shorter is faster
    recovery; but a task still running when it expires is handed out a second
    time, so it must outlast the longest task. With late acks and prefetch 1 a
    task starts as soon as it is delivered and a prefork child is killed at its
    hard time limit, so that limit plus a margin for clocks and delivery is
    enough. It is one value for the whole broker (any worker restores any
    expired task), hence the longest limit of all types. Not covered: thread
    pools cannot kill a task at its limit, and ETA/countdown tasks held longer
    than this are handed out again (keep countdowns shorter, or use RabbitMQ).
    """
    longest = max((t["time_limit"] for t in types.values()), default=DEFAULT_TIME_LIMIT)
    return longest + VISIBILITY_MARGIN


def consumer_timeout(types):
    """RabbitMQ's consumer_timeout in seconds: twice the longest hard time limit, at least an hour.

    Unlike Redis's visibility timeout it buys no recovery speed (RabbitMQ hands a
    dead worker's tasks out again as soon as its connection drops); it only
    catches a consumer that holds a task far too long. So it is generous: ETA and
    countdown tasks, held unacknowledged until they are due, count against it.
    """
    longest = max((t["time_limit"] for t in types.values()), default=DEFAULT_TIME_LIMIT)
    return max(MIN_CONSUMER_TIMEOUT, 2 * longest)


def worker_args(node, spec, events=False):
    """The ``celery worker`` command-line options of one worker type, as a list."""
    args = ["--hostname", node, "--queues", ",".join(spec["queues"]), "--pool", spec["pool"]]
    if spec["autoscale"]:
        args += ["--autoscale", "{},{}".format(*spec["autoscale"])]
    elif spec["concurrency"]:
        args += ["--concurrency", str(spec["concurrency"])]
    if spec["pool"] == "prefork":
        # Hand a task to a child only when it is free: no task waits behind a long one.
        args += ["-O", "fair"]
    args += ["--prefetch-multiplier", str(spec["prefetch_multiplier"])]
    if spec["pool"] in TIME_LIMIT_POOLS:
        args += ["--time-limit", str(spec["time_limit"])]
        if spec["soft_time_limit"]:
            args += ["--soft-time-limit", str(spec["soft_time_limit"])]
    if spec["max_tasks_per_child"]:
        args += ["--max-tasks-per-child", str(spec["max_tasks_per_child"])]
    if spec["max_memory_per_child"]:
        args += ["--max-memory-per-child", str(spec["max_memory_per_child"])]
    if events:
        args += ["--task-events"]
    return args


def plan_flower(host, raw, groups, apps, hostvars=None, loadbalancer_group="loadbalancers", broker_ip=None):
    """Where Flower runs and how the load balancers reach it, checked.

    ``host``: the one host with ``celery_flower: true``. ``raw``: its variables
    ``celery_flower_domain`` (the name the load balancers serve it at, over
    HTTPS), ``celery_flower_users`` (``[{name, password}]``, HTTP basic auth on
    the load balancers; passwords from ansible-vault) and ``celery_flower_port``
    (default 5555). ``apps``: the normalised apps (a domain may serve one thing).

    Returns ``{host, domain, port, users, address, endpoint, allow}``: ``users``
    holds the names only (never a password); ``address`` is the host's private
    address (Flower listens there), ``endpoint`` what nginx proxies to and
    ``allow`` the IPs the Flower unit may talk to besides localhost (the broker
    and every load balancer). The last three are None/[] without ``hostvars``.
    """
    domain = raw.get(FLOWER_DOMAIN)
    if domain is None or domain == "":
        raise PyfleetError(
            f"{FLOWER_DOMAIN}: not set but {host} runs flower, so the load balancers cannot serve it; "
            f"set {FLOWER_DOMAIN}: flower.example.com (a name that resolves to the load balancers) "
            f"or remove {FLOWER} from {host}"
        )
    if not isinstance(domain, str) or not DOMAIN_RE.fullmatch(domain):
        raise PyfleetError(
            f"{FLOWER_DOMAIN}: {domain!r} is not a lowercase DNS name; set {FLOWER_DOMAIN}: flower.example.com"
        )
    for app in apps or []:
        if domain in (app.get("domains") or []):
            raise PyfleetError(
                f"{FLOWER_DOMAIN}: {domain} is also a domain of app {app['name']}; give flower a name of its own"
            )
    users = raw.get(FLOWER_USERS)
    if not users:
        raise PyfleetError(
            f"{FLOWER_USERS}: not set but {host} runs flower, so nobody could log in; set "
            f"{FLOWER_USERS}: [{{name: ops, password: '{{{{ vault_flower_password }}}}'}}] (ansible-vault)"
        )
    if not isinstance(users, list):
        raise PyfleetError(
            f"{FLOWER_USERS}: expected a list of {{name, password}}, got {_kind(users)}; "
            f"write {FLOWER_USERS}: [{{name: ops, password: ...}}]"
        )
    names = []
    for index, user in enumerate(users):
        where = f"{FLOWER_USERS}[{index}]"
        if not isinstance(user, dict):
            # Never the value: it may hold a password.
            raise PyfleetError(f"{where}: expected a mapping {{name, password}}, got {_kind(user)}; fix it")
        _unknown_keys(where, user, ("name", "password"))
        name = user.get("name")
        if not isinstance(name, str) or not FLOWER_USER_RE.fullmatch(name):
            raise PyfleetError(
                f"{where}.name: {name!r} is not a user name (letters, digits, . _ @ -, no colon); set name: ops"
            )
        if name in names:
            raise PyfleetError(f"{where}.name: user {name} is listed twice; remove one")
        password = user.get("password")
        if not isinstance(password, str) or not password:
            raise PyfleetError(
                f"{where}.password (user {name}): not set or not a string; "
                "set password: '{{ vault_flower_password }}' from ansible-vault"
            )
        if len(password.encode()) > 72:
            # bcrypt (the load balancer's password file) reads 72 bytes at most.
            raise PyfleetError(f"{where}.password (user {name}): longer than 72 bytes; use a shorter password")
        names.append(name)
    port = _port(raw.get(FLOWER_PORT, DEFAULT_FLOWER_PORT), FLOWER_PORT, host, DEFAULT_FLOWER_PORT)
    balancers = list(groups.get(loadbalancer_group) or [])
    if not balancers:
        raise PyfleetError(
            f"{FLOWER} on {host}: group {loadbalancer_group} has no host, and flower is only reached "
            f"through the load balancers; add a host to group {loadbalancer_group} or remove {FLOWER}"
        )
    address, endpoint, allow = None, None, []
    if hostvars is not None:
        address = _private_address(host, hostvars)
        endpoint = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        allow = [broker_ip] if broker_ip else []
        for lb in balancers:
            ip = ip_allow(_private_address(lb, hostvars), lb, "the flower unit admits the load balancers by IP only")
            if ip not in allow:
                allow.append(ip)
    return {
        "host": host,
        "domain": domain,
        "port": port,
        "users": names,
        "address": address,
        "endpoint": endpoint,
        "allow": allow,
    }


def _private_address(host, hostvars):
    """A host's ``pyfleet_private_address``, else ``ansible_host``, else its name (no brackets)."""
    hv = (hostvars or {}).get(host) or {}
    return str(hv.get("pyfleet_private_address") or hv.get("ansible_host") or host).strip().strip("[]")


def broker_kind(kind):
    """``pyfleet_broker_kind`` checked: ``redis`` (the default, also when unset) or ``rabbitmq``."""
    if kind is None or kind == "":
        return "redis"
    if kind not in BROKER_KINDS:
        close = difflib.get_close_matches(str(kind), BROKER_KINDS, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise PyfleetError(
            f"{BROKER_KIND}: {kind!r} is not one of {', '.join(BROKER_KINDS)}; "
            f"{hint}set {BROKER_KIND}: redis (the default) or rabbitmq"
        )
    return kind


def broker_url(brokers, hostvars, password, db=0, kind="redis", group="brokers", app=None):
    """The Celery broker URL of the one host in ``brokers`` (the group's members).

    The address is the broker host's ``pyfleet_private_address``, else its
    ``ansible_host``, else its name. ``kind`` is ``pyfleet_broker_kind``:

    - ``redis``: ``redis://:<password>@<address>:<redis_port>/<db>``, where
      ``password`` is ``redis_password``.
    - ``rabbitmq``: ``amqp://<app>:<password>@<address>:<rabbitmq_port>/<app>``:
      each Celery ``app`` has a vhost and a user of its own name (roles/rabbitmq),
      and ``password`` is its entry in ``rabbitmq_passwords``; ``db`` is unused.

    The password is percent-encoded, so any character is safe in it. Example::

        broker_url(["mq1"], {"mq1": {"pyfleet_private_address": "10.0.0.5"}}, "s3cret",
                   kind="rabbitmq", app="hello")   # amqp://hello:s3cret@10.0.0.5:5672/hello
    """
    kind = broker_kind(kind)
    host = _broker_host({group: list(brokers or [])}, group)
    address, port = broker_address(host, hostvars, kind=kind)
    host_part = f"[{address}]" if ":" in address else address
    if kind == "rabbitmq":
        if not isinstance(app, str) or not app:
            raise PyfleetError(
                f"{BROKER_KIND}: rabbitmq gives each Celery app a vhost and user of its name, but no app of "
                "pyfleet_apps has celery: {app: ...}; add celery: {app: 'myapp.tasks:app'} to the app with the tasks"
            )
        if not isinstance(password, str) or not password:
            raise PyfleetError(
                f"{RABBITMQ_PASSWORDS}.{app}: not set for broker {host} (the password of RabbitMQ user {app}); "
                f"set {RABBITMQ_PASSWORDS}: {{{app}: ...}} from ansible-vault"
            )
        user, vhost = quote(app, safe=""), quote(app, safe="")
        return f"amqp://{user}:{quote(password, safe='')}@{host_part}:{port}/{vhost}"
    if not isinstance(password, str) or not password:
        raise PyfleetError(
            f"redis_password: not set for broker {host}; set it from ansible-vault (redis_password: ...)"
        )
    if not _is_int(db) or not 0 <= db <= 15:
        raise PyfleetError(f"broker database {db!r} is not 0..15; use db 0 for tasks and 1 for results")
    return f"redis://:{quote(password, safe='')}@{host_part}:{port}/{db}"


def result_backend(brokers, hostvars, password, kind="redis", group="brokers", app=None):
    """The default Celery result backend of ``pyfleet_broker_kind``.

    ``redis``: database 1 of the broker (``broker_url`` with ``db=1``).
    ``rabbitmq``: ``rpc://`` - results come back to the caller as AMQP
    messages over its broker connection (Celery's choice for RabbitMQ; only the
    caller can read a result). The broker settings are checked either way.
    """
    url = broker_url(brokers, hostvars, password, db=1, kind=kind, group=group, app=app)
    return RABBITMQ_RESULT_BACKEND if broker_kind(kind) == "rabbitmq" else url


def broker_address(host, hostvars, kind="redis"):
    """(address, port) the workers use to reach broker ``host``.

    The port is the host's ``redis_port`` (6379) or ``rabbitmq_port`` (5672),
    after ``kind``.
    """
    variable, default = BROKER_PORTS[broker_kind(kind)]
    port = ((hostvars or {}).get(host) or {}).get(variable, default)
    return _private_address(host, hostvars), _port(port, variable, host, default)


def _port(value, variable, host, default):
    """``value`` as a TCP port (digits in a string too), or a one-line error naming ``variable``."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not _is_int(value) or not 1 <= value <= 65535:
        raise PyfleetError(f"{variable} on {host}: {value!r} is not a TCP port; set {variable}: {default}")
    return value


def ip_allow(address, host, why="worker units may only reach the broker by IP"):
    """``address`` as an IP for systemd's IPAddressAllow, or a one-line error saying ``why`` it must be one."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        raise PyfleetError(
            f"pyfleet_private_address on {host}: {address!r} is not an IP address, and {why}; "
            f"set pyfleet_private_address of {host} to its private IP"
        ) from None


def render_config_module(plan):
    """The Python source of the generated Celery settings module (``pyfleet_celeryconfig``).

    Producers and workers load it through ``CELERY_CONFIG_MODULE``. Per-type
    settings (late acks, re-queue on worker loss, prefetch) are chosen by the
    worker's ``PYFLEET_CELERY_WORKER_TYPE`` environment variable.
    """
    per_type = {
        name: {
            "acks_late": spec["acks_late"],
            "reject_on_worker_lost": spec["reject_on_worker_lost"],
            "prefetch_multiplier": spec["prefetch_multiplier"],
        }
        for name, spec in plan["types"].items()
    }
    schedule = plan["beat_schedule"]
    lines = [
        '"""Celery settings generated by pyfleet from the inventory: do not edit on the host.',
        "",
        "Sources: celery_worker_catalogue, celery_task_routes, celery_task_default_type,",
        "celery_beat_schedule. Broker and result backend come from the environment.",
        '"""',
        "",
        "import os",
    ]
    if any("cron" in item for item in schedule.values()):
        lines.append("from celery.schedules import crontab")
    lines += [
        "",
        f"task_default_queue = {plan['default_queue']!r}",
        f"task_routes = {plan['task_routes']!r}",
    ]
    if plan.get("broker_kind", "redis") == "rabbitmq":
        lines += [
            "# RabbitMQ re-delivers an unacknowledged task when the worker's connection",
            "# drops; its consumer_timeout (roles/rabbitmq) outlasts the longest task.",
        ]
    else:
        lines += [
            "# Redis re-delivers an unacknowledged task after this many seconds: the longest",
            "# hard time limit plus a margin, so a slow task never runs twice and a dead",
            "# worker's tasks come back within minutes.",
            f"broker_transport_options = {{'visibility_timeout': {plan['visibility_timeout']}}}",
            f"result_backend_transport_options = {{'visibility_timeout': {plan['visibility_timeout']}}}",
        ]
    lines += [
        "# Through a broker restart: a producer keeps trying to send a task for about 15 s",
        "# (Celery's default gives up after 0.6 s), a worker keeps trying to store a result.",
        "task_publish_retry_policy = {'max_retries': 10, 'interval_start': 0, 'interval_step': 0.5, 'interval_max': 2}",
        "result_backend_always_retry = True",
        "result_backend_max_retries = 20",
        "broker_connection_retry_on_startup = True",
        "task_track_started = True",
        f"worker_send_task_events = {bool(plan['flower_host'])!r}",
        f"task_send_sent_event = {bool(plan['flower_host'])!r}",
        "",
        "beat_schedule = {",
    ]
    for name, item in schedule.items():
        if "cron" in item:
            minute, hour, dom, month, dow = item["cron"].split()
            when = (
                f"crontab(minute={minute!r}, hour={hour!r}, day_of_month={dom!r}, "
                f"month_of_year={month!r}, day_of_week={dow!r})"
            )
        else:
            when = repr(float(item["every"]))
        lines.append(
            f"    {name!r}: {{'task': {item['task']!r}, 'schedule': {when}, "
            f"'args': {tuple(item['args'])!r}, 'kwargs': {item['kwargs']!r}}},"
        )
    lines += [
        "}",
        "",
        "# Per worker type: late acks, re-queue on worker loss, prefetch 1: no task lost when a worker dies.",
        f"_WORKER_TYPES = {per_type!r}",
        "_TYPE = _WORKER_TYPES.get(os.environ.get('PYFLEET_CELERY_WORKER_TYPE', ''), {})",
        "task_acks_late = _TYPE.get('acks_late', True)",
        "task_reject_on_worker_lost = _TYPE.get('reject_on_worker_lost', True)",
        "worker_prefetch_multiplier = _TYPE.get('prefetch_multiplier', 1)",
        "",
    ]
    return "\n".join(lines)


def topology(plan):
    """Rows (host, type, node, queues, unit) of the plan, for ``fab`` tables."""
    rows = []
    for host, units in (plan.get("hosts") or {}).items():
        for unit in units:
            rows.append((host, unit["type"], unit["node"], ",".join(unit["queues"]), unit["unit"]))
        if host == plan.get("beat_host"):
            rows.append((host, "beat", "-", "-", plan["app"]["beat_unit"]))
    return rows


# --- the catalogue -------------------------------------------------------------


def _normalize_type(where, name, spec):
    """One catalogue entry with its defaults, checked."""
    if not isinstance(spec, dict):
        raise PyfleetError(
            f"{where}: expected a mapping, got {_kind(spec)}; write {name}: {{queues: [{name}]}}"
        )
    _unknown_keys(where, spec, TYPE_KEYS)
    queues = spec.get("queues", [name])
    if isinstance(queues, str):
        queues = [queues]
    if not isinstance(queues, list) or not queues:
        raise PyfleetError(
            f"{where}.queues: expected a list of queue names, got {_kind(queues)}; write queues: [{name}]"
        )
    for queue in queues:
        if not isinstance(queue, str) or not QUEUE_RE.fullmatch(queue):
            raise PyfleetError(
                f"{where}.queues: {queue!r} is not a queue name (letters, digits, _ . : -); rename it"
            )
    if len(set(queues)) != len(queues):
        raise PyfleetError(f"{where}.queues: a queue is listed twice; remove one")

    pool = spec.get("pool", "prefork")
    if pool not in POOLS:
        raise PyfleetError(f"{where}.pool: {pool!r} is not one of {', '.join(POOLS)}; set pool: prefork")
    concurrency = _int(where, "concurrency", spec.get("concurrency"), 1, MAX_CONCURRENCY)
    autoscale = spec.get("autoscale")
    if autoscale is not None:
        if concurrency is not None:
            raise PyfleetError(f"{where}: concurrency and autoscale both set; keep one of them")
        if pool != "prefork":
            raise PyfleetError(
                f"{where}.autoscale: only the prefork pool autoscales, not {pool}; use concurrency"
            )
        ok = (
            isinstance(autoscale, list)
            and len(autoscale) == 2
            and all(_is_int(n) for n in autoscale)
            and 1 <= autoscale[1] <= autoscale[0] <= MAX_CONCURRENCY
        )
        if not ok:
            raise PyfleetError(
                f"{where}.autoscale: {autoscale!r} is not [max, min] with 1 <= min <= max <= {MAX_CONCURRENCY}; "
                "write autoscale: [8, 2]"
            )
        autoscale = list(autoscale)
    if pool == "solo" and concurrency not in (None, 1):
        raise PyfleetError(f"{where}.concurrency: the solo pool runs one task at a time; remove concurrency")

    time_limit = _int(where, "time_limit", spec.get("time_limit"), 1, MAX_TIME_LIMIT)
    time_limit = DEFAULT_TIME_LIMIT if time_limit is None else time_limit
    soft = _int(where, "soft_time_limit", spec.get("soft_time_limit"), 1, MAX_TIME_LIMIT)
    if soft is not None and soft >= time_limit:
        raise PyfleetError(
            f"{where}.soft_time_limit: {soft} is not below time_limit {time_limit}; "
            f"set soft_time_limit below time_limit (e.g. {max(1, time_limit * 9 // 10)})"
        )
    if soft is not None and pool not in TIME_LIMIT_POOLS:
        raise PyfleetError(
            f"{where}.soft_time_limit: the {pool} pool cannot interrupt a task; remove soft_time_limit"
        )
    per_child = {}
    for key, high in (("max_tasks_per_child", 10_000_000), ("max_memory_per_child", 64 * 1024 * 1024)):
        low = 1024 if key == "max_memory_per_child" else 1
        per_child[key] = _int(where, key, spec.get(key), low, high)
        if per_child[key] is not None and pool != "prefork":
            raise PyfleetError(
                f"{where}.{key}: only prefork pool children are replaced, not {pool}; remove {key}"
            )
    acks_late = _bool(where, "acks_late", spec.get("acks_late", True))
    reject = _bool(where, "reject_on_worker_lost", spec.get("reject_on_worker_lost", True))
    if reject and not acks_late:
        raise PyfleetError(
            f"{where}.reject_on_worker_lost: has no effect without acks_late; "
            "set acks_late: true or reject_on_worker_lost: false"
        )
    prefetch = _int(where, "prefetch_multiplier", spec.get("prefetch_multiplier"), 1, 100)
    return {
        "queues": list(queues),
        "pool": pool,
        "concurrency": 1 if pool == "solo" else concurrency,
        "autoscale": autoscale,
        "prefetch_multiplier": 1 if prefetch is None else prefetch,
        "soft_time_limit": soft,
        "time_limit": time_limit,
        "max_tasks_per_child": per_child["max_tasks_per_child"],
        "max_memory_per_child": per_child["max_memory_per_child"],
        "acks_late": acks_late,
        "reject_on_worker_lost": reject,
        "stop_timeout": time_limit + STOP_MARGIN,
    }


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
        result[key] = _bool(f"{key} on {host}", None, value.get(key, False))
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
            f"{BEAT}: no host runs beat (exactly one must); "
            f"set {BEAT}: true in the host_vars of one host of group {worker_group}"
        )
    if len(beats) > 1:
        raise PyfleetError(
            f"{BEAT}: {' and '.join(beats)} both run beat, so periodic tasks would run twice; "
            f"keep {BEAT}: true on one host only"
        )
    flowers = [h for h, s in settings.items() if s[FLOWER]]
    if len(flowers) > 1:
        raise PyfleetError(
            f"{FLOWER}: {' and '.join(flowers)} both run flower; keep {FLOWER}: true on one host only"
        )
    for key, host in ((BEAT, beats[0]), (FLOWER, flowers[0] if flowers else None)):
        if host and host not in workers:
            raise PyfleetError(
                f"{key} on {host}: {host} is not in group {worker_group}; "
                f"set {key}: true on a host of group {worker_group} instead"
            )
    return beats[0], flowers[0] if flowers else None


def _broker_host(groups, broker_group):
    """The one host of the broker group."""
    brokers = groups.get(broker_group) or []
    if not brokers:
        raise PyfleetError(
            f"group {broker_group}: no broker host; add a host to group {broker_group} in the inventory (it runs redis)"
        )
    if len(brokers) > 1:
        raise PyfleetError(
            f"group {broker_group}: {len(brokers)} hosts ({', '.join(brokers)}) but pyfleet runs one broker; "
            f"keep one host in group {broker_group}"
        )
    return brokers[0]


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


def _units(app, host, type_names, types):
    """The worker unit specs of one host."""
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
                "args": worker_args(node, spec),
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
            _unknown_keys(where, target, ("queue",))
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
            raise PyfleetError(
                f"{where}: unknown worker type {target!r}; {hint}route to one of {_names(types)}"
            )
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
        _unknown_keys(where, item, SCHEDULE_KEYS)
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
                raise PyfleetError(
                    f"{where}.cron: {cron!r} is not five cron fields; write cron: '*/5 * * * *'"
                )
            entry["cron"] = " ".join(fields)
        result[str(name)] = entry
    return result


# --- host patterns and small helpers -----------------------------------------------


def _all_hosts(groups):
    """Every inventory host, in inventory order."""
    hosts = list(groups.get("all") or [])
    seen = set(hosts)
    for members in groups.values():
        for host in members:
            if host not in seen:
                seen.add(host)
                hosts.append(host)
    return hosts


def match_hosts(pattern, groups):
    """The hosts an Ansible-style pattern matches (group, host, ``a:b``, ``&x``, ``!x``, wildcards)."""
    everyone = _all_hosts(groups)

    def term_hosts(term):
        if term in groups:
            return set(groups[term])
        if term in everyone:
            return {term}
        if any(c in term for c in "*?["):
            found = set(fnmatch.filter(everyone, term))
            for group in fnmatch.filter(list(groups), term):
                found |= set(groups[group])
            return found
        return set()

    chosen, narrow, drop = set(), [], set()
    for term in re.split(r"[:,]", pattern or ""):
        term = term.strip()
        if not term:
            continue
        if term.startswith("&"):
            narrow.append(term_hosts(term[1:]))
        elif term.startswith("!"):
            drop |= term_hosts(term[1:])
        else:
            chosen |= term_hosts(term)
    for subset in narrow:
        chosen &= subset
    return [h for h in everyone if h in chosen - drop]


def _unknown_keys(where, mapping, allowed):
    """Reject keys not in ``allowed``, suggesting the closest (typos)."""
    for key in sorted(set(map(str, mapping)) - set(allowed)):
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise PyfleetError(f"{where}.{key}: unknown key; {hint}allowed keys: {', '.join(sorted(allowed))}")


def _int(where, key, value, low, high):
    """An integer in low..high, or None when unset."""
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not _is_int(value) or not low <= value <= high:
        raise PyfleetError(
            f"{where}.{key}: {value!r} is not an integer from {low} to {high}; set {key}: {low}..{high}"
        )
    return value


def _bool(where, key, value):
    """A YAML boolean."""
    if not isinstance(value, bool):
        path = f"{where}.{key}" if key else where
        raise PyfleetError(f"{path}: {value!r} is not true or false; write true or false")
    return value



def _names(types):
    """Comma-separated type names for messages."""
    return ", ".join(sorted(types))


