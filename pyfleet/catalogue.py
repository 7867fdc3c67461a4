"""The worker type catalogue (``celery_worker_catalogue``): each type's settings checked.

``normalize_catalogue`` fills in every default or stops at the first mistake
with a one-line ``PyfleetError``; what follows from the types is decided here
too: the ``celery worker`` options of a type (``worker_args``), Redis's
visibility timeout and RabbitMQ's consumer timeout.
"""

import re

from pyfleet.errors import PyfleetError
from pyfleet.values import boolean, is_int as _is_int, kind_of as _kind, unknown_keys

CATALOGUE = "celery_worker_catalogue"

POOLS = ("prefork", "threads", "solo", "gevent", "eventlet")
# Pools that enforce time limits (prefork by signals and a supervisor, green
# pools by timers); threads and solo cannot interrupt a running task.
TIME_LIMIT_POOLS = ("prefork", "gevent", "eventlet")
TYPE_KEYS = (
    "queues",
    "pool",
    "concurrency",
    "autoscale",
    "prefetch_multiplier",
    "soft_time_limit",
    "time_limit",
    "max_tasks_per_child",
    "max_memory_per_child",
    "acks_late",
    "reject_on_worker_lost",
    "track_started",
    "gossip",
    "mingle",
    "heartbeat",
)

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

TYPE_RE = re.compile(r"[a-z][a-z0-9_-]{0,30}")
QUEUE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}")


def normalize_catalogue(catalogue):
    """Validate ``celery_worker_catalogue`` and fill in every default.

    Returns type -> ``{queues, pool, concurrency, autoscale, prefetch_multiplier,
    soft_time_limit, time_limit, max_tasks_per_child, max_memory_per_child,
    acks_late, reject_on_worker_lost, track_started, gossip, mingle, heartbeat
    (None: follow Flower, see broker_chatter), stop_timeout}``.
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


def broker_chatter(spec, flower=False):
    """Which of Celery's worker-to-worker features a type's workers run: {gossip, mingle, heartbeat}.

    All three cost every worker CPU and broker traffic and protect no task (late
    acks, re-queue on worker loss and the visibility timeout do that).
    bench/celery_roundtrip.py measured about 1 ms of CPU per second per worker at
    rest with two worker hosts; with gossip the cost grows with the square of the
    workers (each reads every other one's heartbeats).

    - gossip: each worker subscribes to every other worker's events (clock sync,
      leader election), which pyfleet never uses; off unless the type says so;
    - mingle: at start a worker asks all the others for their revoked task ids
      and waits up to a second; pyfleet revokes nothing; off unless the type says so;
    - heartbeat: the ``worker-heartbeat`` event every 2 s, which Flower shows
      workers online by; on when the fleet has Flower, unless the type says. (Not
      the AMQP connection heartbeat, ``broker_heartbeat``, which stays as it is.)
    """
    heartbeat = spec.get("heartbeat")
    return {
        "gossip": bool(spec.get("gossip")),
        "mingle": bool(spec.get("mingle")),
        "heartbeat": bool(flower) if heartbeat is None else heartbeat,
    }


def worker_args(node, spec, events=False, flower=False):
    """The ``celery worker`` command-line options of one worker type, as a list.

    ``flower``: the fleet has Flower (the default of the type's ``heartbeat``).
    """
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
    args += [f"--without-{name}" for name, on in broker_chatter(spec, flower).items() if not on]
    return args


# --- one type -------------------------------------------------------------------


def _normalize_type(where, name, spec):
    """One catalogue entry with its defaults, checked."""
    if not isinstance(spec, dict):
        raise PyfleetError(f"{where}: expected a mapping, got {_kind(spec)}; write {name}: {{queues: [{name}]}}")
    unknown_keys(where, spec, TYPE_KEYS)
    queues = spec.get("queues", [name])
    if isinstance(queues, str):
        queues = [queues]
    if not isinstance(queues, list) or not queues:
        raise PyfleetError(
            f"{where}.queues: expected a list of queue names, got {_kind(queues)}; write queues: [{name}]"
        )
    for queue in queues:
        if not isinstance(queue, str) or not QUEUE_RE.fullmatch(queue):
            raise PyfleetError(f"{where}.queues: {queue!r} is not a queue name (letters, digits, _ . : -); rename it")
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
            raise PyfleetError(f"{where}.autoscale: only the prefork pool autoscales, not {pool}; use concurrency")
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
        raise PyfleetError(f"{where}.soft_time_limit: the {pool} pool cannot interrupt a task; remove soft_time_limit")
    per_child = {}
    for key, high in (("max_tasks_per_child", 10_000_000), ("max_memory_per_child", 64 * 1024 * 1024)):
        low = 1024 if key == "max_memory_per_child" else 1
        per_child[key] = _int(where, key, spec.get(key), low, high)
        if per_child[key] is not None and pool != "prefork":
            raise PyfleetError(f"{where}.{key}: only prefork pool children are replaced, not {pool}; remove {key}")
    acks_late = boolean(where, "acks_late", spec.get("acks_late", True))
    reject = boolean(where, "reject_on_worker_lost", spec.get("reject_on_worker_lost", True))
    if reject and not acks_late:
        raise PyfleetError(
            f"{where}.reject_on_worker_lost: has no effect without acks_late; "
            "set acks_late: true or reject_on_worker_lost: false"
        )
    prefetch = _int(where, "prefetch_multiplier", spec.get("prefetch_multiplier"), 1, 100)
    chatter = {key: boolean(where, key, spec.get(key, False)) for key in ("track_started", "gossip", "mingle")}
    heartbeat = spec.get("heartbeat")
    heartbeat = None if heartbeat is None else boolean(where, "heartbeat", heartbeat)
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
        **chatter,
        "heartbeat": heartbeat,
        "stop_timeout": time_limit + STOP_MARGIN,
    }


def _int(where, key, value, low, high):
    """An integer in low..high, or None when unset."""
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not _is_int(value) or not low <= value <= high:
        raise PyfleetError(f"{where}.{key}: {value!r} is not an integer from {low} to {high}; set {key}: {low}..{high}")
    return value
